"""Soak test: random kill -9, disk-full and concurrent-resume rounds against real `bihm train`
processes, plus every hostile input file, then a table of what survived.

    python tools/soak.py --rounds 30 --seed 1            # about 10 s a round on a busy 2-core machine

Each round picks one fault at random and checks afterwards that nothing was lost:

* ``kill``        SIGKILL a training (or resuming) process at a random moment; its checkpoints must
                  verify, the run must read as "crashed" (not "running"), and the next resume must
                  continue from an epoch not before the last saved one;
* ``enospc``      train on a 3 MB tmpfs left with 40–600 KB (ENOSPC injected into checkpoint writes
                  where mounting is not permitted): exit code 1, one line, status "crashed", the
                  checkpoint it names intact, and a resume that works once space is freed;
* ``concurrent``  two resumes of one run at once: exactly one trains, the other says which process
                  holds the run; SIGTERM then saves cleanly.

After the rounds every hostile file of the fault suite is imported once, with its peak memory.
A round *survives* when every check passed, is *lost* when a checkpoint that existed became
unusable or a resume went backwards; tracebacks and hangs (a child past ``--timeout``) are counted
apart. Exit code 0 only if nothing was lost and there was no traceback and no hang.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "dna", "--layers", "8,4", "--valid-max", "100", "--z-samples", "0", "--patience", "0", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "COLUMNS": "300"}

_INJECT = """
import errno, os
_real, _left = os.write, int(os.environ["SOAK_WRITES_LEFT"])
def _write(fd, data):
    global _left
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = ""
    if target.startswith(os.environ["SOAK_DIR"]):
        if _left <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        _left -= 1
    return _real(fd, data)
os.write = _write
"""


@dataclass
class Tally:
    tried: int = 0
    survived: int = 0
    lost: int = 0
    tracebacks: int = 0
    hangs: int = 0
    notes: list[str] = field(default_factory=list)


def bihm(*args, timeout: float, env: dict | None = None, pre: str = "") -> subprocess.CompletedProcess:
    code = f"{pre}\nimport sys\nsys.argv = ['bihm'] + {[str(a) for a in args]!r}\nfrom bihm_app.cli.app import main\nmain()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env or ENV, cwd=ROOT)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bihm_app", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)  # fmt: skip


def status(run: Path) -> dict:
    from bihm_app.store.runs import RunFolder

    try:
        return RunFolder(run).read_status()
    except Exception as exc:  # noqa: BLE001
        return {"state": f"unreadable ({exc})"}


def saved_epoch(run: Path) -> int | None:
    """The epoch of checkpoint.h5 if it verifies; -1 if it exists but is damaged; None if absent."""
    from bihm_app.store.checkpoint import load_checkpoint

    p = run / "checkpoint.h5"
    if not p.exists():
        return None
    try:
        return load_checkpoint(p).meta["progress"]["epoch"]
    except Exception:  # noqa: BLE001
        return -1


def wait_running(run: Path, proc: subprocess.Popen, timeout: float) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            return False
        try:
            st = json.loads((run / "status.json").read_text())
            if st.get("state") == "running" and st.get("pid") == proc.pid:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    return False


def has_traceback(text: str) -> bool:
    return "Traceback" in text or "Segmentation fault" in text or "Exception ignored" in text


# ---- rounds -------------------------------------------------------------------------------------------
def round_kill(rng: random.Random, work: Path, t: Tally, timeout: float) -> None:
    root = work / "runs"
    run = root / "kill"
    before = saved_epoch(run)
    if before is None and run.exists():
        shutil.rmtree(run)  # killed before its first save last time: start it again
    args = ["train", "--resume", "kill", "--epochs", "100000", "--runs-dir", root, "--quiet"] if before is not None else \
        ["train", *TINY, "--epochs", "100000", "--runs-dir", root, "--name", "kill"]  # fmt: skip
    proc = start(*args)
    ok = True
    if not wait_running(run, proc, timeout):
        err = proc.stderr.read() if proc.poll() is not None else ""
        if proc.poll() is None:
            proc.kill()
            t.hangs += 1
        t.tracebacks += has_traceback(err)
        t.notes.append(f"kill: the trainer did not start ({err.strip()[-200:]})")
        ok = False
    else:
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    after = saved_epoch(run)
    st = status(run)["state"]
    if after == -1 or (before is not None and (after is None or after < before)):
        t.lost += 1
        t.notes.append(f"kill: checkpoint went from epoch {before} to {after}")
        ok = False
    if st not in ("crashed",):
        t.notes.append(f"kill: the killed run reads as {st!r}, not 'crashed'")
        ok = False
    t.survived += ok


def _mount_small_fs(where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)], capture_output=True).returncode == 0


def round_enospc(rng: random.Random, work: Path, t: Tally, timeout: float, real_fs: bool) -> None:
    from bihm_app.store.checkpoint import verify_checkpoint

    fs = work / f"fs-{t.tried}"
    mounted = real_fs and _mount_small_fs(fs)
    ok = True
    try:
        fs.mkdir(parents=True, exist_ok=True)
        args = ["train", "--data", "adult", "--layers", "30,10", "--batch", rng.choice([5, 100, 500]), "--z-samples", "1000",
                "--valid-max", "500", "--epochs", "12", "--patience", "0", "--runs-dir", fs, "--name", "r", "--quiet"]  # fmt: skip
        if mounted:
            st = os.statvfs(fs)
            leave = rng.randint(40, 600) * 1024
            with open(fs / "ballast", "wb") as fh:
                fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
            res = bihm(*args, timeout=timeout)
        else:
            env = {**ENV, "SOAK_WRITES_LEFT": str(rng.randint(0, 6)), "SOAK_DIR": str(fs)}
            res = bihm(*args, timeout=timeout, env=env, pre=_INJECT)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        if has_traceback(res.stderr) or res.returncode not in (0, 1):
            t.tracebacks += 1
            t.notes.append(f"enospc: exit {res.returncode}: {res.stderr.strip()[-300:]}")
            ok = False
        elif res.returncode == 1:
            if len(lines) != 1 or "no space left on device while writing" not in lines[0]:
                t.notes.append(f"enospc: not one disk-full line: {lines[-3:]}")
                ok = False
            if status(fs / "r")["state"] != "crashed":
                t.notes.append(f"enospc: status {status(fs / 'r')['state']!r} after a full disk")
                ok = False
            if "is intact" in lines[-1]:
                named = Path(lines[-1].split("the last checkpoint ", 1)[1].split(" is intact")[0])
                if not verify_checkpoint(named).ok:
                    t.lost += 1
                    t.notes.append(f"enospc: {named} said intact but does not verify")
                    ok = False
        (fs / "ballast").unlink(missing_ok=True)
        saved = saved_epoch(fs / "r")
        if saved is not None:
            res = bihm("train", "--resume", "r", "--epochs", max(saved, 0) + 1, "--runs-dir", fs, "--quiet", timeout=timeout)
            if res.returncode != 0 and "already finished" not in res.stderr:
                t.lost += 1
                t.notes.append(f"enospc: resume after freeing space failed: {res.stderr.strip()[-300:]}")
                ok = False
            t.tracebacks += has_traceback(res.stderr)
    except subprocess.TimeoutExpired:
        t.hangs += 1
        ok = False
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(fs)], capture_output=True)
        shutil.rmtree(fs, ignore_errors=True)
    t.survived += ok


def round_concurrent(rng: random.Random, work: Path, t: Tally, timeout: float) -> None:
    root = work / "runs"
    run = root / "conc"
    ok = True
    if saved_epoch(run) in (None, -1):
        shutil.rmtree(run, ignore_errors=True)
        res = bihm("train", *TINY, "--epochs", "1", "--runs-dir", root, "--name", "conc", timeout=timeout)
        if res.returncode != 0:
            t.notes.append(f"concurrent: setup failed: {res.stderr.strip()[-200:]}")
            t.tracebacks += has_traceback(res.stderr)
            return
    before = saved_epoch(run)
    a = start("train", "--resume", "conc", "--epochs", "100000", "--runs-dir", root, "--quiet")
    time.sleep(rng.uniform(0.0, 0.3))
    b = start("train", "--resume", "conc", "--epochs", "100000", "--runs-dir", root, "--quiet")
    procs = (a, b)
    try:
        t0 = time.monotonic()
        while all(p.poll() is None for p in procs) and time.monotonic() - t0 < timeout:
            time.sleep(0.05)
        loser = next((p for p in procs if p.poll() is not None), None)
        if loser is None:
            t.hangs += 1
            t.notes.append("concurrent: both resumes kept running (no lock?)")
            ok = False
        else:
            winner = b if loser is a else a
            err = loser.stderr.read()
            lines = [ln for ln in err.splitlines() if ln.strip()]
            if loser.returncode != 1 or len(lines) != 1 or f"process {winner.pid} " not in lines[0]:
                t.notes.append(f"concurrent: the second resume said {lines[-2:]} (exit {loser.returncode})")
                ok = False
            t.tracebacks += has_traceback(err)
            if wait_running(run, winner, timeout):
                time.sleep(rng.uniform(0.1, 1.0))
                winner.send_signal(signal.SIGTERM)
                rc = winner.wait(timeout=timeout)
                werr = winner.stderr.read()
                t.tracebacks += has_traceback(werr)
                if rc != 143:
                    t.notes.append(f"concurrent: SIGTERM gave exit {rc}: {werr.strip()[-200:]}")
                    ok = False
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stderr.close()
    after = saved_epoch(run)
    if after == -1 or after is None or (before is not None and after < before):
        t.lost += 1
        t.notes.append(f"concurrent: checkpoint went from epoch {before} to {after}")
        ok = False
    t.survived += ok


# ---- hostile files ------------------------------------------------------------------------------------
MAT_HEADER = b"MATLAB 5.0 MAT-file, soak".ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"


def _el(mtype: int, payload: bytes) -> bytes:
    if len(payload) <= 4 and mtype != 14:
        return struct.pack("<HH", mtype, len(payload)) + payload.ljust(4, b"\0")
    return struct.pack("<II", mtype, len(payload)) + payload + b"\0" * ((-len(payload)) % 8)


def _mat(flags: bytes, dims: bytes, data: bytes = b"") -> bytes:
    return MAT_HEADER + _el(14, _el(6, flags) + struct.pack("<II", 5, len(dims)) + dims + b"\0" * ((-len(dims)) % 8)
                            + _el(1, b"x") + struct.pack("<II", 2, len(data)) + data + b"\0" * ((-len(data)) % 8))  # fmt: skip


def hostile_files(folder: Path) -> dict[str, Path]:
    import io

    import h5py
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    out = {}

    def put(name, data):
        (folder / name).write_bytes(data)
        out[name] = folder / name

    put("flags.mat", _mat(struct.pack("<H", 9), struct.pack("<ii", 2, 2), bytes(4)))
    put("odd-dims.mat", _mat(struct.pack("<II", 9, 0), struct.pack("<iih", 2, 2, 1), bytes(4)))
    put("negative-dims.mat", _mat(struct.pack("<II", 9, 0), struct.pack("<ii", -2, -2), bytes(4)))
    put("overflow-dims.mat", _mat(struct.pack("<II", 9, 0), struct.pack("<iiii", 65536, 65536, 65536, 65536)))
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    put("huge-header.npy", hdr.getvalue() + bytes(16))
    put("zeros.npy", bytes(4096))
    with open(folder / "sparse.csv", "wb") as fh:
        fh.write(b"0,1,0\n")
        fh.truncate(2 * 10**9)
    out["sparse.csv"] = folder / "sparse.csv"
    with open(folder / "sparse.mat", "wb") as fh:
        fh.write(MAT_HEADER)
        fh.truncate(2 * 10**9)
    out["sparse.mat"] = folder / "sparse.mat"
    chunk = 1 << 20
    z = zlib.compress(bytes(chunk), 9)
    with h5py.File(folder / "bomb.h5", "w") as f:
        d = f.create_dataset("train", shape=(10**6, 1000), dtype="u1", chunks=(chunk // 1000, 1000), compression="gzip")
        for i in range(0, 10**6, chunk // 1000):
            d.id.write_direct_chunk((i, 0), z)
    out["bomb.h5"] = folder / "bomb.h5"
    with h5py.File(folder / "declared.h5", "w") as f:
        f.create_dataset("train", shape=(10**6, 10**6), dtype="f8", chunks=(1, 1024))
    out["declared.h5"] = folder / "declared.h5"
    # a MAT element that inflates to 1.6 GB (zlib of zeros built by repeating one fully flushed block)
    n = 1600
    body = _el(6, struct.pack("<II", 9, 0)) + struct.pack("<II", 5, 8) + struct.pack("<ii", n, 1 << 20) + _el(1, b"x")
    body += struct.pack("<II", 2, n << 20)
    head = struct.pack("<II", 14, len(body) + (n << 20)) + body
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    unit = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    adler = zlib.adler32(head)
    for _ in range(n):
        adler = zlib.adler32(bytes(chunk), adler)
    stream = b"\x78\xda" + first + unit * n + c.flush() + struct.pack(">I", adler)
    put("bomb.mat", MAT_HEADER + struct.pack("<II", 15, len(stream)) + stream)
    os.mkfifo(folder / "fifo.csv")
    out["fifo.csv"] = folder / "fifo.csv"
    (folder / "folder.csv").mkdir()
    out["folder.csv"] = folder / "folder.csv"
    return out


_MEASURE = "import resource, subprocess, sys\nrc = subprocess.call(sys.argv[1:])\nprint(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"


def hostile_round(folder: Path, timeout: float) -> tuple[Tally, list[tuple[str, str, float, float]]]:
    t = Tally()
    rows = []
    for name, path in hostile_files(folder).items():
        t.tried += 1
        t0 = time.monotonic()
        try:
            res = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "bihm_app", "data", "import",
                                  str(path), "--name", "soak-hostile"], capture_output=True, text=True, timeout=timeout,
                                 env=ENV, cwd=ROOT)  # fmt: skip
        except subprocess.TimeoutExpired:
            t.hangs += 1
            rows.append((name, "HANG", timeout, float("nan")))
            continue
        rc, rss_kb = (int(v) for v in res.stdout.split()[-2:])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        tb = has_traceback(res.stderr)
        t.tracebacks += tb
        good = rc == 1 and len(lines) == 1 and lines[0].startswith("error:") and not tb
        t.survived += good
        if not good:
            t.notes.append(f"hostile {name}: exit {rc}: {lines[-2:]}")
        msg = lines[0][len("error: "):].replace(f"{path}: ", "") if lines else f"exit {rc}"
        rows.append((name, msg[:80], time.monotonic() - t0, rss_kb / 1024))
    return t, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds before a child counts as hung")
    ap.add_argument("--kinds", default="kill,enospc,concurrent")
    ap.add_argument("--no-hostile", action="store_true")
    ap.add_argument("--inject", action="store_true", help="inject ENOSPC even where a tmpfs could be mounted")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--budget-s", type=float, default=540.0, help="start no new round after this many seconds")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bihm-soak-"))
    os.environ["BIHM_HOME"] = ENV["BIHM_HOME"] = str(work / "home")
    real_fs = not args.inject and os.geteuid() == 0 and _mount_small_fs(work / "probe")
    if real_fs:
        subprocess.run(["umount", "-l", str(work / "probe")], capture_output=True)
    kinds = args.kinds.split(",")
    tallies = {k: Tally() for k in kinds}
    t_start = time.monotonic()
    done = 0
    for i in range(args.rounds):
        if time.monotonic() - t_start > args.budget_s:
            print(f"time budget of {args.budget_s:.0f} s spent after {i} rounds", file=sys.stderr)
            break
        done += 1
        kind = rng.choice(kinds)
        t = tallies[kind]
        t.tried += 1
        t0 = time.monotonic()
        n_notes = len(t.notes)
        try:
            if kind == "kill":
                round_kill(rng, work, t, args.timeout)
            elif kind == "enospc":
                round_enospc(rng, work, t, args.timeout, real_fs)
            else:
                round_concurrent(rng, work, t, args.timeout)
        except subprocess.TimeoutExpired:
            t.hangs += 1
        print(f"round {i + 1:3d}/{args.rounds} {kind:<10} {time.monotonic() - t0:5.1f} s"
              f"  survived {t.survived}/{t.tried}", file=sys.stderr, flush=True)  # fmt: skip
        for note in t.notes[n_notes:]:
            print("   note: " + note, file=sys.stderr, flush=True)
    rows: list = []
    if not args.no_hostile:
        tallies["hostile"], rows = hostile_round(work / "hostile", args.timeout)
    wall = time.monotonic() - t_start
    print(f"\nsoak: {done} rounds, seed {args.seed}, {wall:.0f} s, "
          f"disk full by {'a 3 MB tmpfs' if real_fs else 'injected ENOSPC'}")  # fmt: skip
    print(f"{'fault':<12}{'tried':>6}{'survived':>10}{'lost':>6}{'tracebacks':>12}{'hangs':>7}")
    total = Tally()
    for k, t in tallies.items():
        print(f"{k:<12}{t.tried:>6}{t.survived:>10}{t.lost:>6}{t.tracebacks:>12}{t.hangs:>7}")
        for f in ("tried", "survived", "lost", "tracebacks", "hangs"):
            setattr(total, f, getattr(total, f) + getattr(t, f))
    print(f"{'total':<12}{total.tried:>6}{total.survived:>10}{total.lost:>6}{total.tracebacks:>12}{total.hangs:>7}")
    if rows:
        print(f"\n{'hostile file':<20}{'seconds':>8}{'peak RSS':>10}  message")
        for name, msg, secs, rss in rows:
            print(f"{name:<20}{secs:>8.1f}{rss:>7.0f} MB  {msg}")
    notes = [n for t in tallies.values() for n in t.notes]
    if notes:
        print("\nnotes:")
        for n in notes[:40]:
            print("  " + n)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if total.lost == 0 and total.tracebacks == 0 and total.hangs == 0 else 1


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashing child must not dump cores
    sys.exit(main())
