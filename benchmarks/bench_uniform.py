"""ns per float32 uniform: torch's ``Tensor.uniform_`` (mt19937) against ``bihm_app.engine.uniform.uniform_``
(SFC64 bits seeded from the same torch generator), at several buffer sizes.

    python benchmarks/bench_uniform.py [--sizes 1e4,1e5,5.5e5,5e6] [--repeats 31] [--clock cpu|wall] [--json OUT]

Both fill the same reused buffer, interleaved (torch, ours, torch, ours, …); each repeat times enough
calls for ≥ 2 ms. The table shows the median ns per uniform of each and the median of the paired
ratios torch / ours with its interquartile range. ``--clock cpu`` (the default) times this thread's
CPU time, which a machine shared with other jobs disturbs much less than wall time; one intra-op
thread (``--threads``), as both generators are single-threaded on CPUs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bihm_app.engine.uniform import MIN_NUMEL, uniform_  # noqa: E402


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4)
    return q[0], statistics.median(xs), q[2]


def bench(n: int, repeats: int, clock) -> dict:
    buf = torch.empty(n)
    g = torch.Generator().manual_seed(0)
    fns = {"torch": lambda: buf.uniform_(generator=g), "ours": lambda: uniform_(buf, g)}
    inner = max(1, int(2e6 / (3.5 * n)))  # ≥ 2 ms of torch's work per repeat
    for f in fns.values():  # warm-up: first touch of the buffer, numpy's and torch's lazy set-up
        f()
    ns: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            t = clock()
            for _ in range(inner):
                f()
            ns[name].append((clock() - t) / (inner * n) * 1e9)
    ratios = [a / b for a, b in zip(ns["torch"], ns["ours"])]
    return {
        "n": n,
        "fast_path": n >= MIN_NUMEL,
        "torch_ns": statistics.median(ns["torch"]),
        "ours_ns": statistics.median(ns["ours"]),
        "ratio_q1_median_q3": _quartiles(ratios),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e4,1e5,5.5e5,5e6")
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    rows = [bench(int(float(s)), args.repeats, clock) for s in args.sizes.split(",")]
    print(f"float32 uniforms, {args.clock} clock, {args.threads} thread(s), median of {args.repeats} repeats")
    print(f"{'elements':>10} {'torch ns':>9} {'ours ns':>8} {'torch/ours (q1 median q3)':>28}")
    for r in rows:
        q1, med, q3 = r["ratio_q1_median_q3"]
        note = "" if r["fast_path"] else "  (below MIN_NUMEL: torch's path)"
        print(f"{r['n']:>10,} {r['torch_ns']:>9.2f} {r['ours_ns']:>8.2f} {q1:>10.2f} {med:>6.2f} {q3:>6.2f}{note}")
    if args.json:
        args.json.write_text(json.dumps({"clock": args.clock, "threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
