"""CUDA-graph replay of the training update (Algorithm 1's closed-form step plus Adam).

On a GPU the update of a paper-sized net is a few hundred small kernels, so eager PyTorch is
launch-bound: paper12 (B = 100, K = 10) ran 264 updates/s eager on an H100 and 1,417/s replayed
from a graph (5.4×; benchmarks/RESULTS.md). :class:`StepGraph` records one update for one input
shape and replays it:

* its own :class:`~bihm_app.engine.passes.Workspace`, allocated during capture from the graph's
  private memory pool — never the eager step's buffers, which the eager path may reallocate;
* the training generator registered with the graph, so every replay draws fresh samples;
* the divergence check on the device: Adam's fused kernel skips the whole update (parameters and
  moments) when ``found_inf`` is set, exactly as the eager step skips a non-finite update, and the
  step counters are given back; the caller reads the flag after the replay (one sync per update,
  as the eager step's check).

The parameters and Adam's moments must keep their storage while a graph lives:
:class:`~bihm_app.engine.training.Trainer` drops its graphs whenever it loads a state or changes
the learning rate (a Python number baked into the recording).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from bihm_app.engine.passes import Workspace

#: Eager updates of a shape before it is captured (the optimiser's state and the eager buffers
#: exist by then; capture needs no lazily created tensors).
WARMUP_STEPS = 2


def graphs_available(device: torch.device) -> bool:
    """A CUDA device whose torch can register a private generator with a graph."""
    return device.type == "cuda" and hasattr(torch.cuda.CUDAGraph, "register_generator_state")


class StepGraph:
    """One training update recorded for inputs of one shape; :meth:`replay` runs it on new data.

    ``body(x, ws)`` computes the update on ``x`` (B, D) with buffers from ``ws`` and returns the
    objective (B,) and the 0-d float flag ``bad`` (1 when the update was skipped as non-finite).
    """

    def __init__(self, body: Callable[[Tensor, Workspace], tuple[Tensor, Tensor]], x: Tensor,
                 generator: torch.Generator | None) -> None:  # fmt: skip
        self.x = x.clone()
        self.graph = torch.cuda.CUDAGraph()
        if generator is not None:
            self.graph.register_generator_state(generator)
        torch.cuda.synchronize(x.device)
        with torch.cuda.graph(self.graph):
            self.objective, self.bad = body(self.x, Workspace())

    def replay(self, x: Tensor) -> tuple[Tensor, bool]:
        """The update on ``x``: (objective (B,), a copy the next replay does not overwrite; finite?)."""
        self.x.copy_(x)
        self.graph.replay()
        return self.objective.clone(), not bool(self.bad)
