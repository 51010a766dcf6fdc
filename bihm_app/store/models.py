"""A BiHM rebuilt from a checkpoint (shared by the command line and the dashboard)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bihm_app.store.checkpoint import load_checkpoint
from bihm_app.store.runs import resolve_checkpoint


def load_model(arg: str | Path, root: Path, device="cpu", which: str = "best"):
    """A run name, run folder or checkpoint file -> (BiHM on ``device`` in eval mode, meta, path).

    ``which`` picks ``best.h5`` or ``checkpoint.h5`` ("latest") inside a run folder. Raises
    CheckpointError/RunError with one line for anything missing or damaged.
    """
    import torch

    from bihm_app.engine.model import BiHM

    path = resolve_checkpoint(arg, Path(root), which=which)
    ck = load_checkpoint(path)
    model = BiHM(ck.model_config())
    params = ck.params()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(np.asarray(params[name])))
    return model.to(device).eval(), dict(ck.meta), path
