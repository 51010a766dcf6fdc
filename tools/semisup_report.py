"""Table and curves of semi-supervised runs (written by tools/semisup_experiment.sh).

    python tools/semisup_report.py --runs-dir DIR --out FOLDER [--by-name] RUN [RUN ...]

Reads each run's checkpoints (history: validation error, log p̃*(y|x), log p̃*(x) per epoch) and
the ``<run>-classify.json`` / ``<run>-logz.json`` files in FOLDER; writes FOLDER/table.md (test
error ± SE, −log p̃*(x), −log p̃*(y|x) next to the thesis' table 4.1) and FOLDER/curves.png
(validation error per epoch ± 2 SE) and FOLDER/curves-logpy.png.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from bihm_app.render.chart import save_chart_png
from bihm_app.store.checkpoint import load_checkpoint
from bihm_app.store.runs import open_run

THESIS = "| thesis table 4.1, best (top, γ = 0, 200,170,140,110,80,50,25) | — | 13 % | 110.03 | 0.47 |"


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--by-name", action="store_true", help="name the curves by run (several runs of one placement)")
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = ["| run | epochs (best) | test error ± SE | −log p̃*(x) ± SE | −log p̃*(y\\|x) ± SE | −log p*(x) |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    err_curves, err_bands, py_curves, py_bands = {}, {}, {}, {}
    for name in args.runs:
        run = open_run(name, args.runs_dir)
        ck = load_checkpoint(run.best_path)
        latest = load_checkpoint(run.checkpoint_path)
        h = latest.meta["history"]  # the curves of every epoch (best.h5 stops at the best one)
        cfg = ck.meta["config"]
        lab = cfg["model"]["labels"]
        label = name if args.by_name else f"{lab['placement']}/{lab['proposal']}"
        ep = [e for e in h["epoch"]]
        err_curves[label] = (ep, [100 * (v if v is not None else math.nan) for v in h["valid_error"]])
        err_bands[label] = [2 * 100 * (v if v is not None else math.nan) for v in h["valid_error_se"]]
        py_curves[label] = (ep, [v if v is not None else math.nan for v in h["valid_log_py"]])
        py_bands[label] = [2 * (v if v is not None else math.nan) for v in h["valid_log_py_se"]]
        c = _json(args.out / f"{name}-classify.json")
        z = _json(args.out / f"{name}-logz.json")
        last = latest.meta["progress"]
        if c is None:
            rows.append(f"| {name} ({label}) | {last['epoch']} ({ck.meta['progress']['best_epoch']}) | — | — | — | — |")
            continue
        pstar = f"{-(c['log_ptilde'] - z['log_z2']):.2f} ± {math.hypot(c['log_ptilde_se'], z['se']):.2f}" if z else "—"
        rows.append(
            f"| {name} ({label}, K = {c['K']}) | {last['epoch']} ({ck.meta['progress']['best_epoch']}) "
            f"| {100 * c['error']:.2f} ± {100 * c['error_se']:.2f} % | {-c['log_ptilde']:.2f} ± {c['log_ptilde_se']:.2f} "
            f"| {-c['log_py']:.3f} ± {c['log_py_se']:.3f} | {pstar} |"
        )
    rows.append(THESIS)
    (args.out / "table.md").write_text("\n".join(rows) + "\n")
    save_chart_png(err_curves, args.out / "curves.png", title="validation error % (± 2 SE)", bands=err_bands, y_label="error %")
    save_chart_png(py_curves, args.out / "curves-logpy.png", title="validation log p̃*(y|x) (± 2 SE)", bands=py_bands)
    print("\n".join(rows))
    print(f"wrote {args.out / 'table.md'}, {args.out / 'curves.png'}, {args.out / 'curves-logpy.png'}")


if __name__ == "__main__":
    main()
