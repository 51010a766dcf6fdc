"""Disk full: one line, status "crashed" with that reason, exit code 1, no segfault, the last
checkpoint intact, and the run resumes once space is freed.

Two ways to fill the disk: a real 3 MB tmpfs filled with a ballast file (what the issue reported:
HDF5 itself meets ENOSPC, in the checkpoint or in the SWMR metrics file; skipped where mounting is
not permitted), and ENOSPC injected into a child's file writes (runs everywhere).
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from bihm_app.store.checkpoint import load_checkpoint, verify_checkpoint
from bihm_app.store.metrics import MetricsReader, MetricsWriter
from tests.faults.helpers import ROOT, TINY, bihm_child, bihm_here, child_env, one_error_line

pytestmark = pytest.mark.faults

DISK_FULL = re.compile(
    r"^error: no space left on device while writing (\S+); "
    r"(the last checkpoint (\S+) is intact|no checkpoint was written yet)$"
)


@pytest.fixture
def small_fs(tmp_path):
    """A 3 MB tmpfs (root only); skipped where mounting is not allowed."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.decode(errors='replace').strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(fs: Path, leave_kb: int) -> Path:
    """Fill ``fs`` with a ballast file until only about ``leave_kb`` KB are free."""
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    ballast = fs / "ballast"
    with open(ballast, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_kb * 1024))
    return ballast


def _check_crash(res, run: Path) -> None:
    assert res.returncode == 1, (res.returncode, res.stderr[-2000:])
    line = one_error_line(res.stderr)
    m = DISK_FULL.match(line)
    assert m, line
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "crashed" and status["message"] == line[len("error: "):], status
    if m.group(3):  # "the last checkpoint … is intact" must be true
        assert verify_checkpoint(Path(m.group(3))).ok
    assert not list(run.glob(".*.tmp"))  # no temp file eats the space that is left


@pytest.mark.parametrize("leave_kb,batch", [(60, 2), (200, 500)])
def test_real_full_disk_is_one_line_then_resume_works(small_fs, leave_kb, batch):
    """60 KB with tiny batches: the SWMR metrics file meets ENOSPC first (on main a Rich traceback,
    then a segfault at exit); 200 KB: a checkpoint write does (on main exit 139 after ~100 lines)."""
    ballast = fill(small_fs, leave_kb)
    args = ["train", "--data", "adult", "--layers", "30,10", "--batch", batch, "--z-samples", "1000",
            "--valid-max", "500", "--epochs", "40", "--patience", "0", "--runs-dir", small_fs, "--name", "r", "--quiet"]
    res = bihm_child(*args, timeout=240)
    run = small_fs / "r"
    _check_crash(res, run)
    ballast.unlink()
    if (run / "checkpoint.h5").exists():
        res = bihm_here("train", "--resume", "r", "--epochs", "3", "--runs-dir", small_fs, "--quiet")
        assert res.exit_code == 0, res.output
        assert load_checkpoint(run / "checkpoint.h5").meta["progress"]["epoch"] == 3
        assert json.loads((run / "status.json").read_text())["state"] == "finished"
    else:  # it failed before the first save: nothing to resume, and it says so in one line
        res = bihm_here("train", "--resume", "r", "--runs-dir", small_fs, "--quiet")
        assert res.exit_code == 1 and "no checkpoint to resume from" in one_error_line(res.stderr)


def test_injected_enospc_in_a_checkpoint_write_keeps_the_last_one(tmp_path, monkeypatch):
    """Every file write into the runs folder after the first two fails with ENOSPC (the third
    checkpoint write): one line naming the file, the last checkpoint verifies, status crashed with
    that reason, and the run resumes once writes succeed again."""
    root = tmp_path / "runs"
    real_write, left = os.write, [2]

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(str(root)):
            if left[0] <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            left[0] -= 1
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    res = bihm_here("train", *TINY, "--epochs", "5", "--runs-dir", root, "--name", "inj")
    monkeypatch.undo()
    run = root / "inj"
    _check_crash(SimpleNamespace(returncode=res.exit_code, stderr=res.stderr), run)
    assert f"the last checkpoint {run / 'checkpoint.h5'} is intact" in res.stderr
    res = bihm_here("train", "--resume", "inj", "--epochs", "3", "--runs-dir", root, "--quiet")
    assert res.exit_code == 0, res.output


def test_metrics_writer_on_a_full_disk_closes_without_crashing(small_fs):
    """A SWMR metrics writer whose flush meets ENOSPC: DiskFull, a close that neither raises nor
    crashes the interpreter at exit, and the rows committed before stay readable."""
    script = f"""
import os, sys
from pathlib import Path
from bihm_app.errors import DiskFull
from bihm_app.store.metrics import MetricsWriter
w = MetricsWriter(Path({str(small_fs)!r}) / "metrics-1.h5", {{"run": "x"}}, flush_every_s=0, flush_rows=100)
for i in range(300):
    w.log_update(i + 1, 0, 0.0, -1.0)
w.log_epoch({{"epoch": 1, "step": 300}})
with open(Path({str(small_fs)!r}) / "ballast", "wb", buffering=0) as fh:
    try:
        while True:
            fh.write(b"\\0" * 65536)
    except OSError:
        pass
try:
    for i in range(300, 200000):
        w.log_update(i + 1, 1, 0.0, -1.0)
    print("no error")
except DiskFull as exc:
    print("diskfull", exc)
w.close()
print("closed")
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=child_env(), cwd=ROOT)
    assert res.returncode == 0, (res.returncode, res.stderr[-3000:])
    assert "diskfull no space left on device while writing" in res.stdout and "closed" in res.stdout, res.stdout
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr[-3000:]
    (small_fs / "ballast").unlink()
    with MetricsReader(small_fs / "metrics-1.h5") as r:
        d = r.read_all()
    assert len(d.epochs) == 1 and len(d.updates) >= 300


def test_metrics_file_that_cannot_be_created_on_a_full_disk_is_disk_full(tmp_path, monkeypatch):
    """Creating the metrics file meets ENOSPC: DiskFull naming it, and no empty file is left."""
    import h5py

    from bihm_app.errors import DiskFull

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(h5py, "File", full)
    path = tmp_path / f"metrics-{uuid.uuid4().hex[:4]}.h5"
    with pytest.raises(DiskFull, match=f"no space left on device while writing {re.escape(str(path))}"):
        MetricsWriter(path, {})
    assert not path.exists()
