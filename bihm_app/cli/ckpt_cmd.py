"""`bihm ckpt show|verify|compare`: look inside checkpoints, check them, put runs side by side."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import cli_errors, err, out, runs_root

app = typer.Typer(
    name="ckpt",
    help="Inspect, verify and compare checkpoints (a run name, a run folder or an .h5 file).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

RunsDir = Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder (default $BIHM_HOME/runs).")]
Latest = Annotated[bool, typer.Option("--latest", help="For a run: the latest checkpoint instead of best.h5.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]

#: Metrics shown by `show` and `compare`, in order: (history key, label). Higher is better for all.
METRICS = (
    ("valid_log_ptilde", "valid log p̃*"),
    ("valid_log_p", "valid log p"),
    ("log_z2", "2 log Z"),
    ("valid_log_pstar", "valid log p*"),
    ("train_objective", "train objective"),
    ("ess", "ESS"),
)
_NOT_METRICS = {"epoch", "step", "time", "lr"}


# ---------------------------------------------------------------------------------------------
# small helpers (pure; used by show and compare)
# ---------------------------------------------------------------------------------------------
def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v, se=None, digits: int = 2) -> str:
    if not _finite(v):
        return "—"
    text = f"{v:,.{digits}f}"
    if _finite(se):
        text += f" ± {se:.{digits}f}"
    return text


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def _show_value(v) -> str:
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return "—" if v is None else str(v)


def _last(history: dict, key: str) -> tuple[float | None, float | None, int | None]:
    """(value, se, epoch) of the last finite entry of a history column."""
    values = history.get(key)
    if not isinstance(values, list):
        return None, None, None
    ses = history.get(f"{key}_se") if isinstance(history.get(f"{key}_se"), list) else []
    epochs = history.get("epoch") if isinstance(history.get("epoch"), list) else []
    for i in range(len(values) - 1, -1, -1):
        if _finite(values[i]):
            se = ses[i] if i < len(ses) and _finite(ses[i]) else None
            ep = epochs[i] if i < len(epochs) else i + 1
            return float(values[i]), se, ep
    return None, None, None


def _best(history: dict, key: str) -> tuple[float | None, float | None, int | None]:
    """(value, se, epoch) of the largest finite entry of a history column."""
    values = history.get(key)
    if not isinstance(values, list):
        return None, None, None
    ses = history.get(f"{key}_se") if isinstance(history.get(f"{key}_se"), list) else []
    epochs = history.get("epoch") if isinstance(history.get("epoch"), list) else []
    best = None
    for i, v in enumerate(values):
        if _finite(v) and (best is None or v > values[best]):
            best = i
    if best is None:
        return None, None, None
    se = ses[best] if best < len(ses) and _finite(ses[best]) else None
    return float(values[best]), se, (epochs[best] if best < len(epochs) else best + 1)


def _series(history: dict, key: str) -> tuple[list[float], list[float], list[float | None]]:
    """(epochs, values, se) of the finite entries of one history column."""
    values = history.get(key) if isinstance(history.get(key), list) else []
    epochs = history.get("epoch") if isinstance(history.get("epoch"), list) else list(range(1, len(values) + 1))
    ses = history.get(f"{key}_se") if isinstance(history.get(f"{key}_se"), list) else []
    xs, ys, es = [], [], []
    for i, v in enumerate(values):
        if _finite(v) and i < len(epochs) and _finite(epochs[i]):
            xs.append(float(epochs[i]))
            ys.append(float(v))
            es.append(float(ses[i]) if i < len(ses) and _finite(ses[i]) else None)
    return xs, ys, es


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _param_counts(ckpt) -> dict[str, int]:
    params = ckpt.params()
    p = sum(a.size for k, a in params.items() if k.startswith("p_"))
    q = sum(a.size for k, a in params.items() if k.startswith("q_"))
    y = sum(a.size for k, a in params.items() if k.startswith("y_"))  # a semi-supervised label layer
    counts = {"p": int(p), "q": int(q), "total": int(p + q + y)}
    if y:
        counts["labels"] = int(y)
    return counts


def _unique_labels(paths: list[Path]) -> list[str]:
    """Short names for the columns: the run name (``run/best`` or ``#n`` only where needed)."""

    def short(p: Path) -> str:
        return p.parent.name if p.name in ("checkpoint.h5", "best.h5") else p.stem

    def longer(p: Path) -> str:
        return f"{p.parent.name}/{p.stem}"

    labels = [short(p) for p in paths]
    labels = [longer(p) if labels.count(lab) > 1 else lab for p, lab in zip(paths, labels)]
    out_labels, seen = [], {}
    for lab in labels:
        if labels.count(lab) > 1:
            seen[lab] = seen.get(lab, 0) + 1
            lab = f"{lab}#{seen[lab]}"
        out_labels.append(lab)
    return out_labels


def _resolve(target: str, runs_dir: Optional[Path], latest: bool) -> Path:
    from bihm_app.store.runs import resolve_checkpoint

    return resolve_checkpoint(target, runs_root(runs_dir), which="latest" if latest else "best")


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
    from rich.table import Table

    from bihm_app.store.checkpoint import load_checkpoint

    path = _resolve(target, runs_dir, latest)
    ckpt = load_checkpoint(path)
    meta = ckpt.meta
    history = meta["history"]
    counts = _param_counts(ckpt)
    groups: dict[str, list[int]] = {}
    for name, a in ckpt.arrays.items():
        g = groups.setdefault(name.split("/", 1)[0], [0, 0, 0])
        g[0] += 1
        g[1] += int(a.size)
        g[2] += int(a.nbytes)
    metrics = {}
    for key, _ in METRICS:
        if key in history:
            last, last_se, last_ep = _last(history, key)
            best, best_se, best_ep = _best(history, key)
            metrics[key] = {
                "last": last, "last_se": last_se, "last_epoch": last_ep,
                "best": best, "best_se": best_se, "best_epoch": best_ep,
            }  # fmt: skip

    if as_json:
        doc = {
            "path": str(path),
            "attrs": ckpt.attrs,
            "config": meta["config"],
            "data": meta["data"],
            "progress": meta["progress"],
            "parameters": counts,
            "arrays": {g: {"count": c, "elements": n, "bytes": b} for g, (c, n, b) in sorted(groups.items())},
            "metrics": metrics,
            "history_length": max((len(v) for v in history.values() if isinstance(v, list)), default=0),
        }
        out.print_json(json.dumps(_json_safe(doc), default=str))
        return

    a = ckpt.attrs
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("file", str(path))
    head.add_row("format", f"{a.get('schema')} v{a.get('schema_version')}, {a.get('file_size', 0):,} bytes")
    head.add_row("written", f"{a.get('created')} by bihm-app {a.get('package_version')}, torch {a.get('torch_version')}")
    head.add_row("params sha256", str(a.get("params_sha256", ""))[:16] + "…")
    model = meta["config"]["model"]
    head.add_row("model", f"D={model['n_visible']}, layers {','.join(map(str, model['layers']))} (L={len(model['layers'])})")
    head.add_row("parameters", f"{counts['total']:,} (p {counts['p']:,}, q {counts['q']:,}"
                 + (f", label layer {counts['labels']:,})" if "labels" in counts else ")"))  # fmt: skip
    sha = meta["data"].get("sha256") or "—"
    head.add_row("data", f"{meta['data'].get('name')}  sha256 {sha[:16]}{'…' if len(sha) > 16 else ''}")
    prog = meta["progress"]
    head.add_row("progress", ", ".join(f"{k} {_show_value(v)}" for k, v in prog.items()))
    out.print(head)

    train_cfg = meta["config"].get("train") or {}
    other = {k: v for k, v in meta["config"].items() if k not in ("model", "train")}
    flat = _flatten(train_cfg, "train.")
    flat.update(_flatten(other))
    if flat:
        t = Table(title="configuration", title_justify="left", show_header=False, box=None, padding=(0, 2))
        t.add_column(style="cyan")
        t.add_column()
        for k, v in flat.items():
            t.add_row(k, _show_value(v))
        out.print(t)

    t = Table(title="arrays", title_justify="left")
    t.add_column("group")
    t.add_column("arrays", justify="right")
    t.add_column("elements", justify="right")
    t.add_column("bytes", justify="right")
    for g, (c, n, b) in sorted(groups.items()):
        t.add_row(g, str(c), f"{n:,}", f"{b:,}")
    out.print(t)

    if metrics:
        t = Table(title="metric history", title_justify="left")
        t.add_column("metric")
        t.add_column("last", justify="right")
        t.add_column("epoch", justify="right")
        t.add_column("best", justify="right")
        t.add_column("epoch", justify="right")
        labels = dict(METRICS)
        for key, m in metrics.items():
            t.add_row(
                labels[key], _fmt(m["last"], m["last_se"]), _show_value(m["last_epoch"]),
                _fmt(m["best"], m["best_se"]), _show_value(m["best_epoch"]),
            )  # fmt: skip
        out.print(t)
    else:
        out.print("[dim]no metric history yet[/]")


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
    """Check seal, schema, meta, manifest, every dataset's checksums and the parameter shapes.

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
                out.print(f"  {sym} {c.name:<10} {escape(detail)}", highlight=False)
    bad = [r for r in reports if not r.ok]
    if bad:
        if not as_json:
            err.print(f"[bold red]error:[/] {len(bad)} of {len(reports)} checkpoint(s) failed verification", highlight=False)
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------
def _chart(series: dict, bands: dict, title: str):
    """A terminal line chart (``bands``: standard errors per series), or None without a renderer."""
    try:
        from bihm_app.render.chart import LineChart
    except ImportError:  # pragma: no cover - the render layer ships with the package
        return None
    return LineChart(series, height=16, title=title, x_label="epoch", bands=bands)


@app.command("compare")
@cli_errors
def compare(
    targets: Annotated[list[str], typer.Argument(help="Two or more runs or checkpoint files.")],
    latest: Latest = False,
    metric: Annotated[str, typer.Option(help="History column to plot.")] = "valid_log_ptilde",
    chart: Annotated[bool, typer.Option(help="Draw the curves as a terminal chart.")] = True,
    diff_only: Annotated[bool, typer.Option("--diff-only", help="Show only the configuration keys that differ.")] = False,
    as_json: AsJson = False,
    runs_dir: RunsDir = None,
) -> None:
    """Configuration differences, metrics with standard errors, and overlaid curves."""
    from rich.table import Table

    from bihm_app.errors import ConfigError
    from bihm_app.store.checkpoint import load_checkpoint

    if len(targets) < 2:
        raise ConfigError("compare needs at least two runs or checkpoints")
    paths = [_resolve(t, runs_dir, latest) for t in targets]
    ckpts = [load_checkpoint(p) for p in paths]
    labels = _unique_labels(paths)

    flats = []
    for c in ckpts:
        flat = {f"config.{k}": v for k, v in _flatten(c.meta["config"]).items()}
        flat.update({f"data.{k}": v for k, v in _flatten(c.meta["data"]).items()})
        flats.append(flat)
    keys = []
    for flat in flats:
        keys += [k for k in flat if k not in keys]
    differing = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]

    rows = {}
    for key, _ in METRICS:
        if any(key in c.meta["history"] for c in ckpts):
            rows[key] = [dict(zip(("value", "se", "epoch"), _last(c.meta["history"], key))) for c in ckpts]
    best = [dict(zip(("value", "se", "epoch"), _best(c.meta["history"], "valid_log_ptilde"))) for c in ckpts]

    if as_json:
        doc = {
            "runs": [
                {
                    "label": lab,
                    "path": str(p),
                    "config": c.meta["config"],
                    "data": c.meta["data"],
                    "progress": c.meta["progress"],
                    "parameters": _param_counts(c),
                    "metrics": {k: v[i] for k, v in rows.items()},
                    "best_valid_log_ptilde": best[i],
                    "history": c.meta["history"],
                }
                for i, (lab, p, c) in enumerate(zip(labels, paths, ckpts))
            ],
            "config_differences": {k: [f.get(k) for f in flats] for k in differing},
        }
        out.print_json(json.dumps(_json_safe(doc), default=str))
        return

    t = Table(title="configuration" + (" (differences only)" if diff_only else ""), title_justify="left")
    t.add_column("key")
    for lab in labels:
        t.add_column(lab, overflow="fold")
    for k in keys:
        if diff_only and k not in differing:
            continue
        style = "bold yellow" if k in differing else None
        shown = [_show_value(f.get(k)) for f in flats]
        if k == "data.sha256":
            shown = [s[:12] + "…" if len(s) > 12 else s for s in shown]
        t.add_row(("≠ " if k in differing else "  ") + k, *shown, style=style)
    out.print(t)
    if not differing:
        out.print("[green]identical configuration and data[/]")

    t = Table(title="metrics at each checkpoint (± standard error)", title_justify="left")
    t.add_column("metric")
    for lab in labels:
        t.add_column(lab, justify="right")
    t.add_row("epoch / step", *[f"{c.meta['progress'].get('epoch')} / {c.meta['progress'].get('step')}" for c in ckpts])
    t.add_row("parameters", *[f"{_param_counts(c)['total']:,}" for c in ckpts])
    names = dict(METRICS)
    for key, cells in rows.items():
        vals = [c["value"] for c in cells]
        top = max((v for v in vals if _finite(v)), default=None)
        shown = []
        for c in cells:
            s = _fmt(c["value"], c["se"])
            if top is not None and c["value"] == top and sum(1 for v in vals if _finite(v)) > 1:
                s = f"[bold green]{s}[/]"
            shown.append(s)
        t.add_row(names[key], *shown)
    t.add_row(
        "best valid log p̃* (epoch)",
        *[f"{_fmt(b['value'], b['se'])} ({b['epoch']})" if _finite(b["value"]) else "—" for b in best],
    )
    out.print(t)

    if chart:
        series, bands = {}, {}
        for lab, c in zip(labels, ckpts):
            xs, ys, es = _series(c.meta["history"], metric)
            if xs:
                series[lab] = (xs, ys)
                if any(e is not None for e in es):
                    bands[lab] = [math.nan if e is None else e for e in es]
        if series:
            renderable = _chart(series, bands, f"{names.get(metric, metric)} by epoch")
            if renderable is None:
                err.print("[dim](terminal charts are not available in this install)[/]")
            else:
                out.print(renderable)
        else:
            out.print(f"[dim]no history of {metric!r} to plot[/]")
