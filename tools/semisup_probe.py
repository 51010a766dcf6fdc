"""Probe a semi-supervised checkpoint's code h_1 with offline L2 logistic regressions.

    python tools/semisup_probe.py CHECKPOINT.h5 [--k 10] [--n-valid 2000]

Draws K codes h_1 ~ q(h_1 | x) for the run's labelled training digits (the run's seeded draw)
and the first validation digits, fits softmax(V_x x + V_h h_1 + e) and
softmax(V_h h_1 + e) by L-BFGS with the penalties λ_x/2 ‖V_x‖² + λ_h/2 ‖V_h‖² (mean cross-entropy
over the K codes of every labelled digit), and prints the validation error of the mean of the K
softmaxes; also the checkpoint's own label layer read the same way, and with K = 1 and 100 codes.
A diagnosis of what a label layer could get from the code, not a method of bihm-app
(docs/semi-supervised.md, "Label at the bottom: what beats the overfitting").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bihm_app.data import as_tensor
from bihm_app.data.labelled import labelled_indices
from bihm_app.data.registry import load_dataset
from bihm_app.store.checkpoint import load_checkpoint

SETTINGS = {"x,h1": [(1e-3, 1e-3), (1e-2, 1e-2), (3e-2, 3e-2), (1e-1, 1e-2), (1.0, 1e-2), (1e-1, 1e-3), (1e-2, 1e-3)],
            "h1": [(0.0, 1e-3), (0.0, 1e-2), (0.0, 3e-2), (0.0, 1e-1)]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--n-valid", type=int, default=2000)
    args = ap.parse_args()
    torch.manual_seed(0)
    ck = load_checkpoint(args.checkpoint)
    P = {k.split("/", 1)[1]: torch.as_tensor(np.asarray(v)).double() for k, v in ck.arrays.items() if k.startswith("params/")}
    ds = load_dataset(ck.meta["data"]["name"])
    lab = labelled_indices(ds, int(ck.meta["config"]["semisup"]["n_labels"]), int(ck.meta["config"]["train"]["seed"]))
    X = as_tensor(ds, "train")[torch.from_numpy(lab)].double()
    Y = torch.from_numpy(np.asarray(ds.labels("train"))[lab]).long()
    Xv = as_tensor(ds, "valid")[: args.n_valid].double()
    Yv = torch.from_numpy(np.asarray(ds.labels("valid"))[: args.n_valid]).long()

    def codes(x, k):
        p = torch.sigmoid(x @ P["q_weights.0"].t() + P["q_biases.0"])
        return (torch.rand(k, *p.shape, dtype=p.dtype) < p).double()  # (K, B, n_1)

    def err(z):  # z (K, B, C): error of the mean softmax
        return 100 * float((torch.softmax(z, -1).mean(0).argmax(1) != Yv).double().mean())

    own_x = Xv @ P["y_q_weights_x"].t() if "y_q_weights_x" in P else 0.0
    for k in (1, args.k, 100):
        print(f"checkpoint's label layer, mean of {k} softmaxes: {err(codes(Xv, k) @ P['y_q_weights'].t() + P['y_q_biases'] + own_x):.2f} %")
    H, Hv = codes(X, args.k), codes(Xv, args.k)
    for mode, settings in SETTINGS.items():
        for lam_x, lam_h in settings:
            Vx = torch.zeros(10, X.shape[1], dtype=torch.double, requires_grad=True)
            Vh = torch.zeros(10, H.shape[-1], dtype=torch.double, requires_grad=True)
            e = torch.zeros(10, dtype=torch.double, requires_grad=True)
            use_x = mode == "x,h1"
            opt = torch.optim.LBFGS([Vx, Vh, e], max_iter=300, line_search_fn="strong_wolfe")

            def closure():
                opt.zero_grad()
                z = H @ Vh.t() + e + ((X @ Vx.t()).unsqueeze(0) if use_x else 0)
                loss = torch.nn.functional.cross_entropy(z.reshape(-1, 10), Y.repeat(args.k))
                loss = loss + 0.5 * lam_x * (Vx**2).sum() + 0.5 * lam_h * (Vh**2).sum()
                loss.backward()
                return loss

            opt.step(closure)
            with torch.no_grad():
                e_v = err(Hv @ Vh.t() + e + ((Xv @ Vx.t()).unsqueeze(0) if use_x else 0))
            se = (e_v * (100 - e_v) / len(Yv)) ** 0.5
            print(f"{mode:5s} λ_x {lam_x:<6g} λ_h {lam_h:<6g}: validation error {e_v:.2f} ± {se:.2f} %", flush=True)


if __name__ == "__main__":
    main()
