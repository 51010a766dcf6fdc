"""Training updates per second: the engine's closed-form Algorithm 1 against plain autograd.

Both run in the same process on the same data, interleaved, so the ratio is robust to a noisy
machine; absolute times are printed for context only.

    python benchmarks/bench_train.py [--device cpu|cuda] [--repeats 5] [--updates 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autograd_baseline import AutogradBiHM  # noqa: E402

from bihm_app.engine.model import PAPER12, BiHM, ModelConfig, make_generator  # noqa: E402
from bihm_app.engine.training import Trainer, TrainConfig  # noqa: E402


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


def bench(layers: tuple[int, ...], device: torch.device, B: int, K: int, updates: int, repeats: int) -> dict:
    g = make_generator(0, device)
    x = (torch.rand(B, 784, generator=g, device=device) < 0.13).float()
    engine = Trainer(BiHM(ModelConfig(784, layers)).to(device), TrainConfig(K=K, batch_size=B), make_generator(1, device))
    ref = AutogradBiHM((784, *layers)).to(device)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-3)

    def ref_step(tuned: bool):
        opt.zero_grad(set_to_none=True)
        ref.surrogate_loss(x, K, tuned=tuned).backward()
        opt.step()

    steps = {
        "engine": lambda: engine.step(x),
        "plain": lambda: ref_step(False),
        "tuned": lambda: ref_step(True),
    }
    for fn in steps.values():  # warm-up
        _time(fn, 3, device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):  # interleaved, so load changes hit all three alike
        for k, fn in steps.items():
            times[k].append(_time(fn, updates, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "layers": layers,
        **{f"{k}_ups": 1 / t for k, t in med.items()},
        "ratio_plain": med["plain"] / med["engine"],
        "ratio_tuned": med["tuned"] / med["engine"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("-K", type=int, default=10)
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, B={args.batch}, K={args.K}")
    for layers in (PAPER12, (200, 200)):
        res = bench(layers, device, args.batch, args.K, args.updates, args.repeats)
        name = "paper12 (12 layers)" if layers == PAPER12 else ",".join(map(str, layers))
        print(
            f"{name:>20}: engine {res['engine_ups']:7.1f} upd/s | plain autograd {res['plain_ups']:7.1f} upd/s"
            f" -> {res['ratio_plain']:.2f}x | tuned autograd {res['tuned_ups']:7.1f} upd/s -> {res['ratio_tuned']:.2f}x"
        )


if __name__ == "__main__":
    main()
