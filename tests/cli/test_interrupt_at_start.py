"""Ctrl-C in the first second of a `bihm` command, while its commands are still being imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

#: Imports `bihm`'s entry point as the console script does, with a Ctrl-C (SIGINT to itself)
#: delivered while the command modules are being imported (`_register`: Typer, Rich, the CLI).
SCRIPT = textwrap.dedent("""
    import os, signal, sys

    class CtrlC:
        def find_spec(self, name, path=None, target=None):
            if name == "bihm_app.cli.train_cmd":
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, CtrlC())
    from bihm_app.cli.app import main
    print("imported", flush=True)
    sys.argv = ["bihm", "--version"]
    main()
""")


def test_ctrl_c_while_the_commands_are_imported_gives_one_line_and_exit_130():
    """Catches a Ctrl-C pressed right after Enter (`bihm train …`, about a second of imports before
    the command runs) printing a KeyboardInterrupt traceback of 10–30 lines and dying by the signal
    (exit -2): one line on stderr, no traceback, exit 130 as a Ctrl-C later in the command."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 130, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and "imported" not in res.stdout, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "interrupted" in res.stderr, res.stderr
    # once imported, a Ctrl-C raises KeyboardInterrupt again (training saves a checkpoint on it)
    import signal

    import bihm_app.cli.app  # noqa: F401

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
