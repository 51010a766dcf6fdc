"""Does ``--precision bf16`` train as well as fp32 on a real net? (benchmarks/RESULTS.md, eighth session)

    python benchmarks/bf16_fidelity.py [--epochs 8] [--seeds 2] [--points 2000] [-K 1000] [--home DIR]

Trains paper12 on binarized MNIST with the shipped defaults, once per precision and seed (two
trainings at a time, one thread each: 2 CPU cores), then evaluates every best model on the same
random test points at K importance samples and prints per-point *paired* differences (bf16 − fp32
for each seed, and seed − seed within each precision: the spread training noise alone gives) as
markdown. Runs already in ``--home`` are reused (delete it to train again). ~6 minutes at the
defaults on 2 cores with AMX (bf16 is slow on CPUs without bf16 matrix units).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _train(home: Path, name: str, precision: str, seed: int, epochs: int) -> subprocess.Popen | None:
    home = home.resolve()  # the child runs in the repository: a relative --home would be another folder
    if (home / "runs" / name / "best.h5").exists():
        return None
    cmd = [sys.executable, "-m", "bihm_app", "train", "--layers", "paper12", "--epochs", str(epochs), "--patience", "0",
           "--z-samples", "0", "--valid-max", "2000", "--threads", "1", "--quiet", "--precision", precision,
           "--seed", str(seed), "--name", name]  # fmt: skip
    env = {**os.environ, "BIHM_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, cwd=ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--points", type=int, default=2000, help="test points (a seeded random subset)")
    ap.add_argument("-K", type=int, default=1000)
    ap.add_argument("--home", type=Path, default=Path("bf16-fidelity"), help="BIHM_HOME of the runs")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    names = {(p, s): f"{p}-s{s}" for s in range(args.seeds) for p in ("fp32", "bf16")}
    for s in range(args.seeds):  # fp32 and bf16 of one seed side by side
        t0 = time.perf_counter()
        procs = [_train(args.home, names[(p, s)], p, s, args.epochs) for p in ("fp32", "bf16")]
        codes = [pr.wait() for pr in procs if pr is not None]  # both, even when one fails
        if any(codes):
            raise SystemExit(f"a training failed (exit codes {codes}); see the messages above")
        print(f"seed {s}: trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    per_point = _paired_estimates(args, names)
    _print_tables(per_point, names, args)


def _paired_estimates(args, names) -> dict:
    import numpy as np
    import torch

    import bihm_app as bihm
    from bihm_app.engine.estimators import point_estimates
    from bihm_app.engine.model import make_generator

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    x = torch.tensor(np.asarray(bihm.dataset("bmnist").get("test")), dtype=torch.float32)
    x = x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(11))[: args.points]]
    out = {}
    for name in names.values():
        model = bihm.load(args.home / "runs" / name / "best.h5").model
        parts = [point_estimates(model, xb, args.K, make_generator(7)) for xb in x.split(100)]
        out[name] = (torch.cat([p.log_ptilde for p in parts]).double(), torch.cat([p.log_p for p in parts]).double())
        print(f"{name}: evaluated", file=sys.stderr)
    return out


def _pm(t) -> str:
    return f"{float(t.mean()):+.3f} ± {float(t.std()) / math.sqrt(t.numel()):.3f}"


def _print_tables(est: dict, names: dict, args) -> None:
    print(f"{args.points} test points, K = {args.K}, the same points and draws' seed for every model\n")
    print("| run | test log p̃*(x) ± SE | test log p(x) ± SE |\n|---|---:|---:|")
    for name, (lpt, lp) in est.items():
        print(f"| {name} | {_pm(lpt)} | {_pm(lp)} |")
    pairs = [(names[("bf16", s)], names[("fp32", s)]) for s in range(args.seeds)]
    pairs += [(names[(p, s)], names[(p, 0)]) for p in ("fp32", "bf16") for s in range(1, args.seeds)]
    print("\n| paired difference | log p̃*(x) | log p(x) |\n|---|---:|---:|")
    for a, b in pairs:
        print(f"| {a} − {b} | {_pm(est[a][0] - est[b][0])} | {_pm(est[a][1] - est[b][1])} |")


if __name__ == "__main__":
    main()
