"""Helper process for the kill -9 test (not a test module): a fork server for `bihm train`.

Imports the command line and the training code once (torch takes 1–2 s of every interpreter
start), then for each ``fork LOG ARGS…`` line on stdin (ARGS as one JSON list) forks a child that
runs ``bihm ARGS…`` — the same ``main()`` as ``python -m bihm_app`` — with stdout on /dev/null and
stderr in LOG, and prints the child's pid. ``poll PID`` prints ``running`` or the child's wait
status, ``reap PID`` waits for it and prints the status, ``quit`` (or the end of stdin) stops the
server. A child dies with the server (PR_SET_PDEATHSIG), so a failed test leaves no trainer behind.
Nothing runs a torch operation before a fork: the children start their own thread pools.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

import h5py  # noqa: F401
import torch  # noqa: F401  (imported once here, inherited by every child, as are the modules below)
import typer._adapters  # noqa: F401  (pydantic, which typer converts options with)

import bihm_app.cli.train_report  # noqa: F401
import bihm_app.runner.preflight  # noqa: F401
import bihm_app.runner.train_loop  # noqa: F401
import bihm_app.store.checkpoint  # noqa: F401
from bihm_app.cli.app import main as bihm_main

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the server exits (elsewhere: nothing)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (AttributeError, OSError):
        pass


def _child(log: str, args: list[str]) -> None:
    try:
        _die_with_parent()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        err = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(err, 2)
        sys.argv = ["bihm", *args]
        bihm_main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
    os._exit(code)


def main() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, _, rest = line.strip().partition(" ")
        if cmd == "fork":
            log, _, args = rest.partition(" ")
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(log, json.loads(args))
            print(pid, flush=True)
        elif cmd == "poll":
            pid, status = os.waitpid(int(rest), os.WNOHANG)
            print("running" if pid == 0 else status, flush=True)
        elif cmd == "reap":
            _, status = os.waitpid(int(rest), 0)
            print(status, flush=True)
        elif cmd == "quit":
            break


if __name__ == "__main__":
    main()
