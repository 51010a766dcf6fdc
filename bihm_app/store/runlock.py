"""The run lock: one training process per run folder.

A training process holds an exclusive ``flock`` on ``<run>/.lock`` from before it writes anything
until it exits; the file holds its pid and host for messages. The kernel drops the lock when the
process ends in any way (kill -9 included), so a lock is never stale: a run whose status says
``created`` or ``running`` but whose lock is free has lost its owner.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from bihm_app.errors import RunError
from bihm_app.safe_files import FileProblem, check_regular

LOCK_NAME = ".lock"


def _open_lock(path: Path, create: bool) -> int | None:
    """A descriptor of the lock file (None when it does not exist and ``create`` is False)."""
    flags = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_RDWR | os.O_CREAT if create else os.O_RDONLY  # a probe needs no write permission
    try:
        if os.path.lexists(path):
            check_regular(path)
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        return None
    except FileProblem as exc:
        raise RunError(f"run lock {path} {exc}") from None
    except OSError as exc:
        raise RunError(f"run lock {path}: cannot open ({exc.strerror or exc})") from None


def _holder_text(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


class RunLock:
    """An exclusive lock on a run folder, held by this process until :meth:`release` or exit."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self, wait_s: float = 1.0) -> "RunLock":
        """Take the lock, or raise RunError naming the process that holds it.

        Retries for ``wait_s``: a reader probing the lock (:func:`lock_holder`) holds it for
        microseconds, and a second trainer that just won has not yet written its pid.
        """
        fd = _open_lock(self.path, create=True)
        assert fd is not None
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder_text(fd) or "another process"
                    os.close(fd)
                    raise RunError(
                        f"run {self.path.parent.name} is already being trained by {holder} (it holds {self.path}); "
                        "wait for it to end or stop it first"
                    ) from None
                time.sleep(0.05)
            except OSError as exc:
                os.close(fd)
                raise RunError(f"run lock {self.path}: cannot lock ({exc.strerror or exc})") from None
        text = f"process {os.getpid()} on {socket.gethostname()}".encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, text, 0)
        except OSError:
            pass  # the lock holds without the text (a full disk); messages then say "another process"
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_holder(run_dir: Path) -> tuple[bool, str]:
    """(whether a live process holds the run's lock, its "process N on HOST" text).

    ``(False, "")`` when there is no lock file. The probe takes a shared lock for an instant.
    """
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = _open_lock(path, create=False)
    except RunError:
        return False, ""
    if fd is None:
        return False, ""
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, _holder_text(fd)
        except OSError:
            return False, ""
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, _holder_text(fd)
    finally:
        os.close(fd)


def has_lock_file(run_dir: Path) -> bool:
    return os.path.lexists(Path(run_dir) / LOCK_NAME)
