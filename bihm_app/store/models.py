"""A BiHM rebuilt from a checkpoint (shared by the command line and the dashboard)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bihm_app.errors import RunError
from bihm_app.store.checkpoint import load_checkpoint
from bihm_app.store.runs import resolve_checkpoint


def load_model(arg: str | Path, root: Path, device="cpu", which: str = "best", labels_ok: bool = False):
    """A run name, run folder or checkpoint file -> (BiHM on ``device`` in eval mode, meta, path).

    ``which`` picks ``best.h5`` or ``checkpoint.h5`` ("latest") inside a run folder. A
    semi-supervised checkpoint gives a :class:`~bihm_app.engine.semisup.SemiBiHM`: with the label
    at the bottom its x-model is a plain BiHM, usable everywhere; with the label on top only where
    the caller handles labels (``labels_ok``), else RunError. Raises CheckpointError/RunError with
    one line for anything missing or damaged.
    """
    import torch

    from bihm_app.engine.model import BiHM

    path = resolve_checkpoint(arg, Path(root), which=which)
    ck = load_checkpoint(path)
    labels = ck.meta["config"]["model"].get("labels")
    if labels is not None:
        from bihm_app.engine.semisup import LabelConfig, SemiBiHM

        lc = LabelConfig.from_dict(labels)
        if lc.placement == "top" and not labels_ok:
            raise RunError(f"checkpoint {path}: a semi-supervised model with the label on top has no label-free "
                           "p(x, h) to sample or inpaint from (use `bihm classify` or `bihm eval`)")  # fmt: skip
        model = SemiBiHM(ck.model_config(), lc)
    else:
        model = BiHM(ck.model_config())
    params = ck.params()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(np.asarray(params[name])))
    return model.to(device).eval(), dict(ck.meta), path
