"""``bihm eval`` on a run folder it cannot write to (read-only, chmod 555).

Before: the results were computed, then writing ``.eval-test.json.*.tmp`` ended in a
PermissionError traceback and nothing was shown. Decided: the results are printed, one warning
line on stderr names the cache file and the reason, and the exit code is 0 (the evaluation
succeeded; only the cache, an optimisation, is missing).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.store import runs as runs_mod

runner = CliRunner()
QUICK = ["--data", "dna", "--layers", "12,6", "--batch", "100", "--valid-max", "200", "--z-samples", "0", "--quiet"]


def bihm(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_eval_prints_results_when_the_cache_cannot_be_written(monkeypatch):
    """Catches a read-only run folder turning finished eval results into a traceback."""
    res = bihm("train", *QUICK, "--epochs", "1", "--name", "ro")
    assert res.exit_code == 0, res.output
    run = Path(os.environ["BIHM_HOME"]) / "runs" / "ro"
    real = runs_mod.write_json_atomic

    def read_only(path, data):  # what mkstemp in a chmod 555 folder raises (root ignores modes)
        if Path(path).name.startswith("eval-"):
            raise PermissionError(13, "Permission denied", str(Path(path).parent / f".{Path(path).name}.x.tmp"))
        return real(path, data)

    monkeypatch.setattr(runs_mod, "write_json_atomic", read_only)
    res = bihm("eval", "ro", "-K", "1", "--n", "20", "--z-samples", "100")
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit))
    assert re.search(r"log p\*\(x\) = .* = -?[\d.]+ ± [\d.]+", res.stdout), res.stdout
    lines = [ln for ln in res.output.splitlines() if "not cached" in ln]
    assert len(lines) == 1 and f"{run}/eval-test.json" in lines[0] and "Permission denied" in lines[0], res.output
    assert not (run / "eval-test.json").exists()

