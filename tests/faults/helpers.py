"""Shared pieces of the fault suite: running `bihm` as a child with a time bound, one-line checks,
finishing-or-failing for calls that could block, small hostile-file builders."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: A tiny, fast training run (14 updates an epoch, 100 validation points, no 2 log Z).
TINY = ["--data", "dna", "--layers", "8,4", "--valid-max", "100", "--z-samples", "0", "--patience", "0", "--quiet"]


def child_env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def bihm_child(*args, timeout: float = 120, env: dict | None = None, pre: str = "") -> subprocess.CompletedProcess:
    """Run ``bihm ARGS`` in a child process (``pre``: Python run first, e.g. to inject a fault)."""
    code = f"{pre}\nimport sys\nsys.argv = ['bihm'] + {list(map(str, args))!r}\nfrom bihm_app.cli.app import main\nmain()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=env or child_env(), cwd=ROOT)  # fmt: skip


def bihm_here(*args):
    """Run ``bihm ARGS`` in this process (Typer's CliRunner): no interpreter start-up."""
    from typer.testing import CliRunner

    from bihm_app.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args])


def start_child(*args, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bihm_app", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or child_env(), cwd=ROOT)  # fmt: skip


def flat(text: str) -> str:
    """Text with line wrapping undone (Rich wraps long lines at the terminal width)."""
    return " ".join(text.split())


def one_error_line(text: str) -> str:
    """The single non-empty line of ``text`` (stderr of a failed command), checked to be an error
    line with no traceback; returns it."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert "Traceback" not in text and "Segmentation" not in text, text
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    return lines[0]


def in_child(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run Python ``code`` in a child; a child still running after ``timeout`` is a hang (fail).

    For calls that may block inside HDF5, which holds the GIL while it waits: a thread could not
    even notice the hang.
    """
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                              env=child_env(), cwd=ROOT)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still blocked after {timeout} s (a hang)") from None


def finishes(fn, seconds: float = 20.0, fifos: tuple = ()):
    """Call ``fn()`` in a daemon thread; fail if it does not return within ``seconds`` (a hang).
    Any FIFO in ``fifos`` is then opened for writing so a reader blocked on it wakes up.
    Only for blocking calls that release the GIL (``open()``); see :func:`in_child` for HDF5."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        # wake the blocked reader (repeatedly: HDF5 may open a file more than once), feeding it
        # junk so that it fails instead of blocking again, so that the suite ends with a failure
        # instead of hanging forever (the blocked call may hold h5py's global lock)
        end = time.monotonic() + 15
        while t.is_alive() and time.monotonic() < end:
            for f in fifos:
                try:
                    fd = os.open(f, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                try:
                    os.write(fd, b"not a checkpoint\n" * 64)
                except OSError:
                    pass
                os.close(fd)
            t.join(0.05)
        raise AssertionError(f"still blocked after {seconds} s (a hang)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


_MEASURE = """
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
sys.stdout.write(f"{rc} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
"""


def run_measured(cmd: list[str], timeout: float = 60, env: dict | None = None) -> tuple[int, int, str, float]:
    """(exit code, peak RSS in bytes, stderr, wall seconds) of ``cmd``.

    ``ru_maxrss`` survives ``exec``, so a child forked from this (large) test process would
    report this process's size: ``cmd`` is started by a small wrapper interpreter instead.
    """
    t0 = time.monotonic()
    try:
        res = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, timeout=timeout,
                             env=env or child_env(), cwd=ROOT)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{cmd} still running after {timeout} s (a hang)") from None
    rc, maxrss = (int(v) for v in res.stdout.split()[-2:])
    return rc, maxrss * 1024, res.stderr, time.monotonic() - t0


# ---- hostile MAT-files (a minimal level-5 writer, from the format description) ---------------------
def mat_element(mtype: int, payload: bytes, small_ok: bool = True) -> bytes:
    if small_ok and len(payload) <= 4:
        return struct.pack("<HH", mtype, len(payload)) + payload.ljust(4, b"\0")
    return struct.pack("<II", mtype, len(payload)) + payload + b"\0" * ((-len(payload)) % 8)


MAT_HEADER = b"MATLAB 5.0 MAT-file, hostile".ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"


def mat_matrix(name: bytes, dims_raw: bytes, data: bytes, flags: bytes = struct.pack("<II", 9, 0), mtype: int = 2) -> bytes:
    """An miMATRIX element with the given raw flags, dims and uint8 data (all as the file says)."""
    body = mat_element(6, flags, small_ok=len(flags) < 8) + mat_element(5, dims_raw, small_ok=False)
    body += mat_element(1, name) + mat_element(mtype, data, small_ok=False)
    return mat_element(14, body, small_ok=False)
