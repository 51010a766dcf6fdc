"""Cost of a semi-supervised update against an unsupervised one of the same net (target ≤ 1.5×).

Both trainers run in the same process on the same minibatch, interleaved, so the ratio is robust
to a noisy machine; absolute times are printed for context only. The semi-supervised batch holds
``--labelled`` labelled points (the runner's default mix is 50 of 100) and the rest unlabelled.

    python benchmarks/bench_semisup.py [--device cpu|cuda] [--repeats 5] [--updates 10] [--layers 200,200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bihm_app.engine.model import PAPER12, BiHM, ModelConfig, make_generator, parse_layers
from bihm_app.engine.semisup import LabelConfig, SemiBiHM, SemiTrainer
from bihm_app.engine.training import Trainer, TrainConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, n: int, device: torch.device) -> float:
    _sync(device)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / n


def bench(layers, device, B: int, K: int, n_labelled: int, updates: int, repeats: int) -> dict:
    g = make_generator(0, device)
    x = (torch.rand(B, 784, generator=g, device=device) < 0.13).float()
    y = torch.randint(0, 10, (B,), generator=g, device=device)
    labelled = torch.arange(B, device=device) < n_labelled
    cfg = TrainConfig(K=K, batch_size=B)
    unsup = Trainer(BiHM(ModelConfig(784, layers)).to(device), cfg, make_generator(1, device))
    steps = {"unsupervised": lambda: unsup.step(x)}
    for placement, proposal in (("top", "q"), ("top", "mixed"), ("top", "sum"), ("bottom", "q")):
        m = SemiBiHM(ModelConfig(784, layers), LabelConfig(10, placement, proposal)).to(device)
        tr = SemiTrainer(m, cfg, make_generator(1, device))
        steps[f"{placement}/{proposal}"] = lambda tr=tr: tr.step(x, y, labelled)
    for fn in steps.values():  # warm-up
        _time(fn, 2, device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):  # interleaved, so load changes hit all alike
        for k, fn in steps.items():
            times[k].append(_time(fn, updates, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"ups": {k: 1 / t for k, t in med.items()}, "ratio": {k: t / med["unsupervised"] for k, t in med.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--labelled", type=int, default=50)
    ap.add_argument("-K", type=int, default=10)
    ap.add_argument("--layers", action="append", help="layer spec (repeatable); default paper12 and 200,200")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"B={args.batch} ({args.labelled} labelled), K={args.K}")  # fmt: skip
    specs = [parse_layers(s) for s in args.layers] if args.layers else [PAPER12, (200, 200)]
    for layers in specs:
        res = bench(layers, device, args.batch, args.K, args.labelled, args.updates, args.repeats)
        name = "paper12" if layers == PAPER12 else ",".join(map(str, layers))
        cells = " | ".join(f"{k} {res['ratio'][k]:.2f}x" for k in res["ratio"] if k != "unsupervised")
        print(f"{name:>28}: unsupervised {res['ups']['unsupervised']:6.1f} upd/s; semi-supervised / unsupervised time: {cells}")


if __name__ == "__main__":
    main()
