"""`bihm repro uci` / `bihm repro mnist`: the thesis' tables from one command (logic in runner.repro)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import TaskBars, cli_errors, err, out, runs_root, table_of
from bihm_app.errors import ConfigError

app = typer.Typer(help="Reproduce the thesis' tables: train (or adopt) the runs, evaluate, compare.", no_args_is_help=True)

Budget = Annotated[Optional[str], typer.Option(help="Training time per set (UCI) or protocol (MNIST), e.g. 30m, 2h; "
                                               "counts each run's cumulative training time (default: no limit).")]  # fmt: skip
Seeds = Annotated[int, typer.Option(help="Seeds per configuration (0, 1, …).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the results as JSON.")]
OutDir = Annotated[Optional[Path], typer.Option("--out", help="Write <kind>.md and <kind>.json here (default $BIHM_HOME/repro).")]
EvalOnly = Annotated[bool, typer.Option("--eval-only", help="Train nothing: evaluate and compare what the runs hold now.")]
K10kPoints = Annotated[int, typer.Option("--k10k-points", help="Test points for the K = 10⁴ estimate, drawn at random with --seed (0: all).")]
ZSamples = Annotated[float, typer.Option("--z-samples", help="Samples for 2 log Z (inner 1).")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No training progress bars.")]
RunsDir = Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder (default $BIHM_HOME/runs).")]


def _lrs(spec: str) -> list[float]:
    try:
        vals = [float(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--lrs {spec!r} is not a comma-separated list of numbers") from None
    if not vals or any(not 0 < v <= 1 for v in vals):
        raise ConfigError(f"--lrs must be learning rates in (0, 1], got {spec!r}")
    from bihm_app.runner.repro import lr_label

    unique: dict[str, float] = {}  # 1e-2 and 0.01 name the same run: trained once, with the whole budget
    for v in vals:
        unique.setdefault(lr_label(v), v)
    return list(unique.values())


def _eval_settings(ks: list[int], big_k: int, k10k_points: int, z_samples: float, k_option: str):
    """The test-set evaluation, checked before any training (it used to fail after the budget was spent)."""
    from bihm_app.runner import repro

    if any(k < 1 for k in ks):
        raise ConfigError(f"{k_option} must be at least 1, got {min(ks)}")
    if big_k < 0:
        raise ConfigError(f"--big-k must be 0 (skip) or at least 1, got {big_k}")
    if k10k_points < 0:
        raise ConfigError(f"--k10k-points must be 0 (all) or more, got {k10k_points}")
    if not (math.isfinite(z_samples) and z_samples >= 2 and z_samples == int(z_samples)):
        raise ConfigError(f"--z-samples must be a whole number of at least 2, got {z_samples:g}")
    points = [(k, 0) for k in ks] + ([(big_k, k10k_points)] if big_k else [])
    return repro.EvalSettings(points=points, z_samples=int(z_samples))


def _run(kind: str, call, as_json: bool, out_dir: Path | None, runs_dir: Path | None, quiet: bool, heading: str) -> None:
    from bihm_app.cli.train_report import RichReporter
    from bihm_app.runner import repro

    from bihm_app.runner.outputs import check_output_dir

    root = runs_root(runs_dir)
    check_output_dir(out_dir, "--out")
    log = (lambda s: None) if as_json and quiet else (lambda s: err.print(f"[dim]{s}[/]", highlight=False))
    try:
        with TaskBars() as bars:
            result = call(root, reporter=lambda plan: RichReporter(err, quiet=quiet), progress=bars, log=log)
    except repro.Interrupted as exc:
        err.print(f"[yellow]interrupted: {exc}[/]", highlight=False)
        raise typer.Exit(143 if "SIGTERM" in str(exc) else 130) from None  # as `bihm train`
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: finished results are cached in the run folders; run the same command again to continue[/]")
        raise typer.Exit(130) from None
    tables = result.tables()
    payload = result.to_dict()
    target = Path(out_dir) if out_dir is not None else root.parent / "repro"
    try:
        target.mkdir(parents=True, exist_ok=True)
        from bihm_app.store.runs import write_json_atomic

        stem = kind.replace(":", "-")
        md = target / f"{stem}.md"
        md.write_text(repro.to_markdown(tables, heading), encoding="utf-8")
        write_json_atomic(target / f"{stem}.json", payload)
    except OSError as exc:
        raise ConfigError(f"--out {target}: cannot write ({exc})") from None
    if as_json:
        out.print_json(json.dumps(payload, default=str))
    else:
        _print_tables(tables, md)
    if not result.evaluated:
        why = "; ".join(f"{g.group}: {g.not_evaluated}" for g in result.groups if g.not_evaluated) or "no run is ready"
        err.print(f"[red]nothing evaluated ({why})[/]", highlight=False)
        raise typer.Exit(1)


def _print_tables(tables, md: Path) -> None:
    for t in tables:
        for part in table_of(t, out.width):
            out.print(part)
        for note in t.notes:
            out.print(f"[dim]{note}[/]", highlight=False)
    out.print(f"wrote {md} and {md.with_suffix('.json')}", highlight=False)


@app.command("uci")
@cli_errors
def uci(
    sets: Annotated[str, typer.Option(help="Comma-separated UCI sets.")] = "adult,connect4,dna,mushrooms,nips",
    budget: Budget = None,
    seeds: Seeds = 1,
    lrs: Annotated[str, typer.Option(help="Learning rates to try per set; the better validation wins.")] = "1e-2,1e-3",
    as_json: AsJson = False,
    out_dir: OutDir = None,
    eval_only: EvalOnly = False,
    test_k: Annotated[int, typer.Option("--test-k", help="K for the whole test set.")] = 1000,
    big_k: Annotated[int, typer.Option("--big-k", help="The large K, on --k10k-points test points drawn at random (0: skip).")] = 10_000,
    k10k_points: K10kPoints = 2000,
    z_samples: ZSamples = 1e6,
    device: Device = "auto",
    quiet: Quiet = False,
    runs_dir: RunsDir = None,
) -> None:
    """Table 3.1: train every UCI set with the thesis' architecture and protocol at each --lrs, keep
    the better learning rate, evaluate the test set and compare with the thesis."""
    from bihm_app.runner import repro

    names = [s.strip() for s in sets.split(",") if s.strip()]
    if not names:
        raise ConfigError("--sets is empty")
    settings = _eval_settings([test_k], big_k, k10k_points, z_samples, "--test-k")
    budget_s, lr_list = repro.parse_duration(budget), _lrs(lrs)

    def call(root, **kw):
        return repro.run_uci(root, names, lr_list, seeds, budget_s, settings, eval_only, device, **kw)

    _run("uci", call, as_json, out_dir, runs_dir, quiet, "bihm repro uci — thesis table 3.1")


@app.command("mnist")
@cli_errors
def mnist(
    protocol: Annotated[str, typer.Option(help="thesis12 (12 layers + fine-tuning), rws7 (7 layers, RWS protocol) or small (200,200).")] = "small",
    budget: Budget = None,
    seeds: Seeds = 1,
    as_json: AsJson = False,
    out_dir: OutDir = None,
    eval_only: EvalOnly = False,
    ks: Annotated[str, typer.Option("--ks", help="K values on the whole test set.")] = "10,100,1000",
    big_k: Annotated[int, typer.Option("--big-k", help="The large K, on --k10k-points test points drawn at random (0: skip).")] = 10_000,
    k10k_points: K10kPoints = 2000,
    z_samples: ZSamples = 1e6,
    device: Device = "auto",
    quiet: Quiet = False,
    runs_dir: RunsDir = None,
) -> None:
    """Binarized MNIST: train a protocol's runs, evaluate log p(x), log p̃*(x), log p*(x) at several K
    and compare with the thesis (−84.5 / −84.8 for the 12-layer net)."""
    from bihm_app.runner import repro
    from bihm_app.runner.evaluation import parse_k_list

    settings = _eval_settings(parse_k_list(ks, what="--ks"), big_k, k10k_points, z_samples, "--ks")
    budget_s = repro.parse_duration(budget)

    def call(root, **kw):
        return repro.run_mnist(root, protocol, seeds, budget_s, settings, eval_only, device, **kw)

    _run(f"mnist-{protocol}", call, as_json, out_dir, runs_dir, quiet, f"bihm repro mnist --protocol {protocol}")
