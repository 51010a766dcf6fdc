"""The line `bihm train` prints after each epoch wraps between fields, never inside one: a label
stays with its number ("2 log Z -1.45 ± 0.01") at 80 and 110 columns."""

import io
import re
from types import SimpleNamespace

import pytest
from rich.cells import cell_len
from rich.console import Console

from bihm_app.cli.train_report import RichReporter

#: The row of the review's run (layers 20,10, epoch 1).
ROW = {"epoch": 1, "train_objective": -224.53, "valid_log_ptilde": -195.02, "valid_log_ptilde_se": 2.88,
       "valid_log_p": -194.47, "valid_log_p_se": 2.88, "log_z2": -1.45, "log_z2_se": 0.01, "ess": 0.608}  # fmt: skip
SEMI = dict(ROW, valid_error=0.1234, valid_error_se=0.0051, valid_log_py=-0.41, valid_log_py_se=0.02)
FIELDS = {
    "plain": ["epoch    1", "train  -224.53", "valid log p̃* -195.02 ± 2.88", "log p -194.47 ± 2.88",
              "2 log Z -1.45 ± 0.01", "ESS 60.8%", "★ best"],
    "semi": ["epoch    1", "train  -224.53", "valid error 12.34 ± 0.51 %", "log p̃*(y|x) -0.41 ± 0.02",
             "log p̃*(x) -195.02 ± 2.88", "2 log Z -1.45 ± 0.01", "★ best"],
}  # fmt: skip


def _printed(row: dict, width: int) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    rep = RichReporter(console)
    rep.start(SimpleNamespace(name="t", path="/tmp/t"), 2, 0, 10, False)
    rep.epoch(row, True)
    rep.finish("epoch limit")
    return buf.getvalue()


@pytest.mark.parametrize("width", [80, 110, 60])
@pytest.mark.parametrize("kind", ["plain", "semi"])
def test_each_label_stays_with_its_number(kind, width):
    """Catches the bug of the review: at 80 and 110 columns Rich broke the line inside a field
    ("... 2\\nlog Z -3.98"), so a label and its number ended on different lines."""
    text = _printed(SEMI if kind == "semi" else ROW, width)
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("training run", "epoch 2"))]
    lines = [ln for ln in lines if not re.match(r"^epoch \d+ ", ln) or "train" in ln]  # the progress bar's lines
    joined = "\n".join(lines)
    for field in FIELDS[kind]:
        assert any(field in ln for ln in lines), f"{field!r} broken across lines at width {width}:\n{joined}"
    assert all(cell_len(ln) <= width for ln in lines), joined
    first = next(i for i, ln in enumerate(lines) if ln.startswith("epoch    1"))
    rest = lines[first + 1 :]
    assert all(ln.startswith(" " * 12) for ln in rest), joined  # continuation lines start under "train"
