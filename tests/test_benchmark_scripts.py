"""The measurement scripts of benchmarks/ that a person runs by hand: what they do before any
training (no timing is asserted here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bf16_fidelity_trains_into_the_home_it_evaluates(tmp_path, monkeypatch):
    """`python benchmarks/bf16_fidelity.py --home DIR` from another folder than the repository:
    the trainings (children started in the repository) took a relative DIR against the repository
    while the script looked for their best.h5, and evaluated, against the working directory, so
    after minutes of training it found nothing. Catches that: the child's BIHM_HOME is the folder
    the script's own paths name."""
    bench = _script("bf16_fidelity")
    started = []

    class _Popen:
        def __init__(self, cmd, env=None, cwd=None):
            started.append((cmd, env, cwd))

    monkeypatch.setattr(bench.subprocess, "Popen", _Popen)
    monkeypatch.chdir(tmp_path)
    assert bench._train(Path("fid"), "fp32-s0", "fp32", 0, 1) is not None
    ((_cmd, env, cwd),) = started
    assert Path(env["BIHM_HOME"]).is_absolute() and Path(env["BIHM_HOME"]) == tmp_path / "fid", (env["BIHM_HOME"], cwd)
    (tmp_path / "fid" / "runs" / "fp32-s0").mkdir(parents=True)
    (tmp_path / "fid" / "runs" / "fp32-s0" / "best.h5").write_bytes(b"")
    assert bench._train(Path("fid"), "fp32-s0", "fp32", 0, 1) is None  # found where it was trained: reused
