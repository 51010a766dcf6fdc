"""Helper for the torchrun test (not a test module): ``torchrun … -m tests.cli._bihm_commands CMD1 --then
CMD2 …`` runs several `bihm` commands one after the other in the same ranks — the same ``main()``
as ``python -m bihm_app`` each time — so one launch (three interpreters, a rendezvous) serves them
all. Before each command rank 0 writes ``@@ command N`` to stdout, flushed, so the test can split
the merged output; the exit status is that of the first command that failed (its number on stderr).
"""

from __future__ import annotations

import os
import sys

from bihm_app.cli.app import app


def main(argv: list[str]) -> int:
    commands, current = [], []
    for a in argv:
        if a == "--then":
            commands.append(current)
            current = []
        else:
            current.append(a)
    commands.append(current)
    for i, args in enumerate(commands):
        if os.environ.get("RANK", "0") == "0":
            print(f"@@ command {i}", flush=True)
        try:
            app(args, prog_name="bihm")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        sys.stdout.flush()
        if code != 0:
            print(f"command {i} ({' '.join(args)}) exited with {code}", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
