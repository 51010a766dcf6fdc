"""`bihm eval` of a semi-supervised run (thesis chapter 4): classification error, log p̃*(y|x) and
log p̃*(x) per K, then 2 log Z of the labelled model and log p*(x). Not sharded under torchrun."""

from __future__ import annotations

import json
from pathlib import Path

from bihm_app.cli.common import out, progress_bar


def eval_semisup(model, meta, split, ks, z_samples, z_inner, n, batch, seed, as_json) -> None:
    """`bihm eval` of a semi-supervised run: per K the classification error, log p̃*(y|x) and
    log p̃*(x) = 2 log Ã (y summed exactly), then 2 log Z of the labelled model and log p*(x)."""
    from bihm_app.runner.classify import classify_split
    from bihm_app.runner.evaluation import estimate_z2

    results, z = [], None
    with progress_bar() as prog:
        for K in ks:
            task = prog.add_task(f"K = {K}", total=None)
            results.append(classify_split(model, meta["data"]["name"], split, K, seed=seed, n=n, batch=batch, n_wrong=0,
                                          where=f"checkpoint {meta['_path']}", progress=lambda m, t=task: prog.advance(t, m)))  # fmt: skip
        if z_samples >= 2:
            task = prog.add_task("2 log Z", total=int(z_samples))
            z = estimate_z2(model, int(z_samples), z_inner, seed, progress=lambda m: prog.advance(task, m))
    best = results[-1].evaluation
    star = best.log_ptilde - z if z is not None else None  # log p*(x) = log p̃*(x) − 2 log Z (3.3), SEs in quadrature
    lc = model.labels
    if as_json:
        payload = {
            "checkpoint": meta["_path"], "data": results[-1].data, "split": split, "n": best.n, **results[-1].subset,
            "labels": lc.to_dict(),
            "estimates": [{k: v for k, v in r.evaluation.to_dict().items() if k != "confusion"} for r in results],
            "log_z2": None if z is None else {"mean": z.mean, "se": z.se, "samples": int(z_samples), "inner": z_inner},
            "log_pstar": None if star is None else {"mean": star.mean, "se": star.se, "K": best.K},
        }  # fmt: skip
        out.print_json(json.dumps(payload))
        return
    from bihm_app.render.fit_table import Column, fit_table

    columns = [Column("K", "right"), Column("error", "right"), Column("log p̃*(y|x)", "right", drop=1), Column("log p̃*(x)", "right")]
    rows = [[str(r.evaluation.K), f"{100 * r.evaluation.error.mean:.2f} ± {100 * r.evaluation.error.se:.2f} %",
             f"{r.evaluation.log_py.mean:.3f} ± {r.evaluation.log_py.se:.3f}",
             f"{r.evaluation.log_ptilde.mean:.2f} ± {r.evaluation.log_ptilde.se:.2f}"] for r in results]  # fmt: skip
    title = f"{results[-1].data} / {split} — {best.n} points — {Path(meta['_path']).name} (semi-supervised, label {lc.placement})"
    for table in fit_table(columns, rows, out.width, title=title):
        out.print(table)
    if z is not None:
        out.print(f"2 log Z = {z.mean:.3f} ± {z.se:.3f}   ({int(z_samples):,} samples, inner {z_inner}; labelled model)", highlight=False)
        out.print(f"log p*(x) = log p̃*(x) − 2 log Z = [bold]{star.mean:.2f} ± {star.se:.2f}[/]   (K = {best.K})", highlight=False)
