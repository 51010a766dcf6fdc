"""How much does data loading cost a training epoch?

For bmnist and mnist-dyn: the time to produce one epoch of shuffled minibatches (batch 100) as
float32 torch tensors with `bihm_app.data.batches` (which for mnist-dyn includes a fresh Bernoulli
binarization of all 50,000 training images), against the baseline of indexing a pre-made
in-memory float32 tensor with a fresh random permutation. Prints medians and the overhead ratio.

    python benchmarks/bench_data.py [--repeats 5] [--batch 100] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bihm_app.data import batches, load_dataset


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (first-touch allocations, lazy initialisation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(name: str, batch: int, repeats: int, device: str) -> tuple[float, float]:
    ds = load_dataset(name)
    premade = torch.from_numpy(ds.get("train", epoch=0, seed=0).copy()).to(device=device, dtype=torch.float32)
    n = premade.shape[0]
    epoch = [0]

    def ours() -> None:
        epoch[0] += 1
        for xb in batches(ds, "train", batch, epoch=epoch[0], seed=0, device=device):
            xb.sum()  # touch every batch, as a training step would
        if device != "cpu":
            torch.cuda.synchronize()

    gen = torch.Generator(device="cpu").manual_seed(0)

    def baseline() -> None:
        perm = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n, batch):
            xb = premade.index_select(0, perm[start : start + batch])
            xb.sum()
        if device != "cpu":
            torch.cuda.synchronize()

    return _median_time(ours, repeats), _median_time(baseline, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, batch {args.batch}")
    print(f"{'data set':10s} {'batches() s/epoch':>18s} {'pre-made tensor s/epoch':>24s} {'overhead ratio':>15s}")
    for name in ("bmnist", "mnist-dyn"):
        ours, base = bench(name, args.batch, args.repeats, args.device)
        print(f"{name:10s} {ours:18.3f} {base:24.3f} {ours / base:15.2f}")


if __name__ == "__main__":
    main()
