"""A writer killed with SIGKILL at random moments never leaves a checkpoint that fails to load."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bihm_app.store.checkpoint import load_checkpoint
from bihm_app.store.runs import RunFolder
from tests.store._save_server import arrays_for

ROOT = Path(__file__).resolve().parents[2]
KILLS = 24


def _check(ckpt) -> int:
    """The checkpoint is one whole save: every array matches its step; returns the step."""
    step = ckpt.meta["progress"]["step"]
    want = arrays_for(step)
    assert set(ckpt.arrays) == set(want)
    for name, a in want.items():
        assert np.array_equal(ckpt.arrays[name], a), (step, name)
    return step


def test_sigkill_during_saves_never_breaks_the_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.h5"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.store._save_server", str(path)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    rng = random.Random(4)
    steps_seen = []
    killed_mid_write = 0
    concurrent_loads = 0
    try:
        assert server.stdout.readline().strip() == "ready"
        for i in range(KILLS):
            server.stdin.write("fork\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            # meanwhile, read the file as a dashboard would while the writer replaces it; the
            # first child and every sixth one run until a new save has landed (so the test
            # sees progress however slow the machine), the others are killed at random moments
            must_advance = i == 0 or i % 6 == 5
            last = steps_seen[-1] if steps_seen else 0
            deadline = time.monotonic() + (60.0 if must_advance else rng.uniform(0.0, 0.25))
            while time.monotonic() < deadline:
                if path.exists():
                    step = _check(load_checkpoint(path))
                    concurrent_loads += 1
                    if must_advance and step > last:
                        break
                else:
                    time.sleep(0.01)
            os.kill(pid, signal.SIGKILL)
            server.stdin.write(f"reap {pid}\n")
            server.stdin.flush()
            status = int(server.stdout.readline())
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
            leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
            killed_mid_write += bool(leftovers)
            # the file at `path` is always a complete checkpoint, and never a mixture of two saves
            steps_seen.append(_check(load_checkpoint(path)))
            # a restarting writer sweeps the temp files of killed writes
            assert sorted(RunFolder(tmp_path).sweep_temp_files()) == sorted(leftovers)
        server.stdin.write("quit\n")
        server.stdin.flush()
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    print(f"{KILLS} kills, {killed_mid_write} inside a write, {concurrent_loads} concurrent loads, steps {steps_seen}")
    assert steps_seen == sorted(steps_seen) and steps_seen[-1] > steps_seen[0]  # saves made progress
    assert killed_mid_write >= 3, killed_mid_write  # kills landed inside writes, not only between
    assert concurrent_loads >= 4, concurrent_loads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.h5"]
