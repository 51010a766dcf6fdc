"""Helper process for the atomicity test (not a test module).

Imports everything once, then for each ``fork`` line on stdin forks a child that saves
checkpoints to ``argv[1]`` in an endless loop (step 1, 2, 3 … continuing from the file) and
prints the child's pid. The test kills the child with SIGKILL; ``reap <pid>`` waits for it.
Each checkpoint's arrays are derived from its step, so a reader can tell a mixture apart.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from bihm_app.store.checkpoint import load_checkpoint, save_checkpoint
from tests.store.helpers import SMALL, make_meta

BIG = 400_000  # float32 elements of ballast: makes each write long enough to be hit by a kill


def arrays_for(step: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(step)
    out = {}
    from bihm_app.engine.model import parameter_shapes

    for name, shape in parameter_shapes(SMALL).items():
        out[f"params/{name}"] = rng.standard_normal(shape).astype(np.float32)
    out["optim/ballast"] = np.full(BIG, step, dtype=np.float32)
    out["rng/train"] = rng.integers(0, 256, size=5056, dtype=np.uint8)  # a CPU generator state's size
    return out


def save_loop(path: Path) -> None:
    step = 0
    if path.exists():
        step = load_checkpoint(path).meta["progress"]["step"]
    while True:
        step += 1
        save_checkpoint(path, arrays_for(step), make_meta(step=step))


def main() -> None:
    path = Path(sys.argv[1])
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "fork":
            pid = os.fork()
            if pid == 0:
                try:
                    save_loop(path)
                finally:
                    os._exit(1)
            print(pid, flush=True)
        elif cmd == "reap":
            _, status = os.waitpid(int(args[0]), 0)
            print(status, flush=True)
        elif cmd == "quit":
            break


if __name__ == "__main__":
    main()
