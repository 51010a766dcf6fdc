"""`bihm ckpt show|verify|compare`: look inside checkpoints, check them, put runs side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.ckpt_compare import compare
from bihm_app.cli.ckpt_common import AsJson, Latest, RunsDir, fmt_value, resolve, show_value
from bihm_app.cli.common import cli_errors, err, out, runs_root
from bihm_app.runner.checkpoints import METRICS, checkpoint_summary, json_safe
from bihm_app.runner.formats import flatten, printable

app = typer.Typer(
    name="ckpt",
    help="Inspect, verify and compare checkpoints (a run name, a run folder or an .h5 file).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.command("compare")(cli_errors(compare))  # in its own module

# ---------------------------------------------------------------------------------------------
# show
# ---------------------------------------------------------------------------------------------
@app.command("show")
@cli_errors
def show(
    target: Annotated[str, typer.Argument(help="RUN name, run folder or checkpoint .h5 file.")],
    latest: Latest = False,
    as_json: AsJson = False,
    runs_dir: RunsDir = None,
) -> None:
    """Config, data identity, parameter counts, progress and metric history of a checkpoint."""
    doc = checkpoint_summary(resolve(target, runs_dir, latest))
    if as_json:
        out.print_json(json.dumps(json_safe(doc), default=str))
        return
    out.print(_show_head(doc))
    cfg = doc["config"]
    flat = flatten(cfg.get("train") or {}, "train.")
    flat.update(flatten({k: v for k, v in cfg.items() if k not in ("model", "train")}))
    if flat:
        out.print(_config_grid(flat))
    rows = [[g, str(a["count"]), f"{a['elements']:,}", f"{a['bytes']:,}"] for g, a in doc["arrays"].items()]
    _print_table("arrays", ["group", "arrays", "elements", "bytes"], rows)
    labels = dict(METRICS)
    rows = [[labels[k], fmt_value(m["last"], m["last_se"], key=k), show_value(m["last_epoch"]), fmt_value(m["best"], m["best_se"], key=k),
             show_value(m["best_epoch"])] for k, m in doc["metrics"].items()]  # fmt: skip
    if rows:
        _print_table("metric history", ["metric", "last", "epoch", "best", "epoch"], rows)
    else:
        out.print("[dim]no metric history yet[/]")


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A table fitted to the terminal: the first column left-aligned, the others right-aligned."""
    from bihm_app.render.fit_table import Column, fit_table

    for part in fit_table([Column(c, "left" if i == 0 else "right") for i, c in enumerate(columns)], rows, out.width, title=title):
        out.print(part)


def _config_grid(flat: dict):
    """key  value lines; a long value wraps onto more lines, never cut."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="configuration", title_justify="left", show_header=False, box=None, padding=(0, 2))
    t.add_column(style="cyan", no_wrap=True)
    t.add_column(justify="right", overflow="fold")
    for k, v in flat.items():
        t.add_row(escape(k), escape(show_value(v)))
    return t


def _show_head(doc: dict):
    from rich.table import Table

    a, meta, counts = doc["attrs"], doc, doc["parameters"]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")  # a long path wraps, never cut
    model = meta["config"]["model"]
    sha = meta["data"].get("sha256") or "—"
    for k, v in (
        ("file", doc["path"]),
        ("format", f"{a.get('schema')} v{a.get('schema_version')}, {a.get('file_size', 0):,} bytes"),
        ("written", f"{a.get('created')} by bihm-app {a.get('package_version')}, torch {a.get('torch_version')}"),
        ("params sha256", str(a.get("params_sha256", ""))[:16] + "…"),
        ("model", f"D={model['n_visible']}, layers {','.join(map(str, model['layers']))} (L={len(model['layers'])})"),
        ("parameters", f"{counts['total']:,} (p {counts['p']:,}, q {counts['q']:,}"
                       + (f", label layer {counts['labels']:,})" if "labels" in counts else ")")),
        ("data", f"{meta['data'].get('name')}  sha256 {sha[:16]}{'…' if len(sha) > 16 else ''}"),
        ("progress", _progress_text(meta)),
    ):  # fmt: skip
        head.add_row(k, v)
    return head


def _progress_text(meta: dict) -> str:
    """'epoch 2/1000, batch 328 (…)' or '1/1000 epochs done' (runner/progress.py), then the other fields."""
    from bihm_app.runner.progress import duration, position_text

    p = dict(meta.get("progress") or {})
    total = (meta.get("config", {}).get("train") or {}).get("epochs")
    done, batch = p.pop("epoch", 0), p.pop("batch", 0)
    parts = []
    if isinstance(done, int) and isinstance(batch, int):
        parts.append(position_text(done, batch, total if isinstance(total, int) and total > 0 else None))
    else:
        parts += [f"epoch {show_value(done)}", f"batch {show_value(batch)}"]
    if (meta.get("config", {}).get("train") or {}).get("method") == "rws" and "best_valid" in p:
        p["best_valid (log p, the RWS criterion)"] = p.pop("best_valid")
    elif "semisup" in (meta.get("config") or {}) and isinstance(p.get("best_valid"), (int, float)):
        p["best valid error"] = f"{-100 * p.pop('best_valid'):.2f} %"  # the criterion: −(validation error)
    elapsed = p.get("elapsed")
    if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool) and elapsed >= 0:
        p["elapsed"] = f"{duration(elapsed)} of training"
    return ", ".join(parts + [f"{k} {show_value(v)}" for k, v in p.items()])


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------
def _verify_targets(target: str, runs_dir: Optional[Path]) -> list[tuple[Path, Optional[Path]]]:
    """(file, folder it must not lead out of): a file, or every checkpoint of a run (both
    checkpoint.h5 and best.h5, which must stay inside the run folder)."""
    import os

    from bihm_app.errors import BihmError
    from bihm_app.store.runs import open_run

    p = Path(target)
    if (os.path.lexists(p) and not p.is_dir()) or target.endswith(".h5"):
        return [(p, None)]
    try:
        run = open_run(target, runs_root(runs_dir))
    except BihmError:
        return [(p, None)]
    found = [q for q in (run.checkpoint_path, run.best_path) if os.path.lexists(q)]
    return [(q, run.path) for q in found or [run.checkpoint_path]]


@app.command("verify")
@cli_errors
def verify(
    files: Annotated[list[str], typer.Argument(help="Checkpoint files, run names or run folders.")],
    as_json: AsJson = False,
    runs_dir: RunsDir = None,
) -> None:
    """Check the seal, schema, meta, every dataset (fletcher32), the parameter shapes and params_sha256.

    Exits 1 if any check of any file fails.
    """
    from rich.markup import escape

    from bihm_app.store.checkpoint import verify_checkpoint

    reports = []
    for target in files:
        for path, within in _verify_targets(target, runs_dir):
            reports.append(verify_checkpoint(path, within=within))
    if as_json:
        out.print_json(json.dumps([r.to_dict() for r in reports]))
    else:
        for r in reports:
            mark = "[green]✓[/]" if r.ok else "[red]✗[/]"
            out.print(f"{mark} [bold]{escape(str(r.path))}[/]", highlight=False)
            for c in r.checks:
                sym = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[dim]·[/]"}[c.ok]
                detail = c.detail
                prefix = f"checkpoint {r.path}: "
                if detail.startswith(prefix):
                    detail = detail[len(prefix) :]
                out.print(f"  {sym} {c.name:<10} {escape(printable(detail))}", highlight=False)
    bad = [r for r in reports if not r.ok]
    if bad:
        if not as_json:
            err.print(f"[bold red]error:[/] {len(bad)} of {len(reports)} checkpoint(s) failed verification", highlight=False)
        raise typer.Exit(1)
