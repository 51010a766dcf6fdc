"""runner/classify: the one classification function of `bihm classify` and the dashboard, the
order in which mistakes are shown, and the label check the dashboard asks before opening a view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bihm_app.engine.semisup import SemiEvaluation
from bihm_app.engine.estimators import Estimate
from bihm_app.errors import ConfigError
from bihm_app.runner.classify import Classification, check_labelled, classify_run, classify_split, ranked
from bihm_app.runner.models import load_model
from tests.tui.runs_fixture import make_run
from tests.tui.semisup_fixture import make_semi_run


def _classification(y, predicted, confidence) -> Classification:
    y, predicted = torch.tensor(y), torch.tensor(predicted)
    log_py = torch.full((len(y), 3), -5.0)
    log_py[torch.arange(len(y)), predicted] = torch.tensor(confidence).log()
    ev = SemiEvaluation(Estimate(0.0, 0.0), Estimate(0.0, 0.0), Estimate(0.0, 0.0), len(y), 1, y, predicted, log_py, 3)
    empty = np.zeros(0)
    return Classification(ev, "toy", "test", None, empty, empty, np.zeros((0, 1)), np.zeros((len(y), 1), np.uint8),
                          np.asarray(confidence, np.float32))  # fmt: skip


def test_ranked_puts_the_surest_mistakes_first_then_the_least_sure_correct_points():
    """Catches a gallery that shows correct points first, sorts mistakes by increasing
    confidence, or filters a confusion cell by the wrong axis (predicted for true)."""
    #            0    1    2    3    4    5    6
    y = [0, 1, 2, 0, 1, 2, 0]
    pred = [0, 2, 2, 1, 1, 0, 1]
    conf = [0.9, 0.6, 0.5, 0.95, 0.7, 0.6, 0.8]
    res = _classification(y, pred, conf)
    assert ranked(res).tolist() == [3, 6, 1, 5, 2, 4, 0]  # mistakes 0.95, 0.8, 0.6 (tie: index), 0.6; then 0.5, 0.7, 0.9
    assert ranked(res, true=0).tolist() == [3, 6, 0]
    assert ranked(res, true=0, predicted=1).tolist() == [3, 6]
    assert ranked(res, predicted=2).tolist() == [1, 2]
    assert ranked(res, true=2, predicted=1).tolist() == []


def test_classify_run_is_classify_split_of_the_loaded_model_and_checks_labels(tmp_path):
    """classify_run (bihm classify and the dashboard) gives exactly what classify_split gives for
    the run's best model with the same seed and K; confidences are probabilities (≤ 1 despite
    float32 rounding); check_labelled reads the label section, and refuses an unsupervised run
    with one line naming it. Catches a front-end path that seeds or loads differently."""
    torch.set_num_threads(1)
    make_semi_run(tmp_path, "semi")
    make_run(tmp_path, "plain")
    res = classify_run("semi", tmp_path, "valid", 2, seed=3, n=500, device="cpu")
    lm = load_model("semi", tmp_path, "cpu", labels_ok=True)
    ref = classify_split(lm.model, "bmnist", "valid", 2, seed=3, n=500)
    assert res.evaluation.error == ref.evaluation.error and torch.equal(res.evaluation.confusion, ref.evaluation.confusion)
    assert np.array_equal(res.confidence, ref.confidence) and np.array_equal(res.wrong_index, ref.wrong_index)
    assert res.placement == "bottom" and res.checkpoint.endswith("best.h5") and res.points.shape == (500, 784)
    assert 0 < res.confidence.min() and res.confidence.max() <= 1.0
    wrong = res.evaluation.predicted != res.evaluation.y
    assert np.array_equal(res.wrong_index, ranked(res)[: int(wrong.sum())][:32])
    assert check_labelled("semi", tmp_path)["placement"] == "bottom"
    with pytest.raises(ConfigError, match="run plain has no label layer"):
        check_labelled("plain", tmp_path)
    with pytest.raises(ConfigError, match="no label layer"):
        classify_run("plain", tmp_path, "test", 1, device="cpu")
