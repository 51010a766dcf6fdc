"""Gibbs sampling speed (Algorithm 2): chain sweeps per second and samples per second.

    python benchmarks/bench_gibbs.py [--device cpu|cuda] [--chains 64] [-K 100] [--inner-k 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from bihm_app.engine.gibbs import run_gibbs
from bihm_app.engine.model import PAPER12, BiHM, ModelConfig, make_generator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--chains", type=int, default=64)
    ap.add_argument("-K", type=int, default=100)
    ap.add_argument("--inner-k", type=int, default=10)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}")
    for layers in (PAPER12, (200, 200)):
        m = BiHM(ModelConfig(784, layers)).to(dev).eval()
        run_gibbs(m, args.chains, 1, args.K, make_generator(0, dev), inner_K=args.inner_k)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        run_gibbs(m, args.chains, args.steps, args.K, make_generator(1, dev), inner_K=args.inner_k)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / args.steps
        name = "paper12" if layers == PAPER12 else ",".join(map(str, layers))
        print(f"{name:>10}: {args.chains} chains, K={args.K}, inner K={args.inner_k}: "
              f"{1 / dt:6.2f} sweeps/s = {args.chains / dt:7.1f} chain-samples/s")


if __name__ == "__main__":
    main()
