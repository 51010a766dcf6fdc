"""`bihm ckpt show` / `compare` write numbers in the units the rest of bihm uses."""

from bihm_app.cli.ckpt_cmd import _progress_text
from bihm_app.cli.ckpt_common import fmt_value


def test_ess_in_percent_and_training_time_as_a_duration():
    """Catches the ESS printed as a fraction (0.20) where eval, the report and the dashboard say
    20.1 %, and the training time as a bare number of seconds ("elapsed 84.8177")."""
    assert fmt_value(0.2013, 0.004, key="ess") == "20.1 % ± 0.4" and fmt_value(0.2013, key="ess") == "20.1 %"
    assert fmt_value(-117.601, 0.64) == "-117.60 ± 0.64"  # other metrics unchanged
    text = _progress_text({"progress": {"epoch": 8, "batch": 0, "elapsed": 84.8177}, "config": {"train": {"epochs": 8}}})
    assert "elapsed 1m 25s of training" in text and "84.8" not in text
