"""Semi-supervised runs end to end: `bihm train --labels`, `bihm classify`, `bihm eval` on a
labelled model, the labelled-set selection and batches, checkpoints and metrics of such runs,
and one clear line for every bad input."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.data import load_dataset
from bihm_app.data.labelled import labelled_indices, num_semisup_batches, semisup_batches
from bihm_app.engine.semisup import LabelConfig
from bihm_app.store.checkpoint import load_checkpoint
from bihm_app.store.metrics import read_run_metrics
from bihm_app.store.runs import open_run

runner = CliRunner()
C = 4  # classes of the toy set


def bihm(*args):
    return runner.invoke(app, [str(a) for a in args])


def runs_dir():
    return Path(os.environ["BIHM_HOME"]) / "runs"


@pytest.fixture
def toy(tmp_path):
    """A labelled binary set 'toy4': 4 prototypes of 16 bits with 5 % noise, 600/150/150 rows."""
    rng = np.random.default_rng(0)
    protos = (rng.random((C, 16)) < 0.5).astype(np.uint8)
    arrays = {}
    for split, n in (("train", 600), ("valid", 150), ("test", 150)):
        y = rng.integers(0, C, n).astype(np.uint8)
        arrays[split] = (protos[y] ^ (rng.random((n, 16)) < 0.05)).astype(np.uint8)
        arrays[f"y_{split}"] = y
    path = tmp_path / "toy4.npz"
    np.savez(path, **arrays)
    res = bihm("data", "import", path, "--name", "toy4")
    assert res.exit_code == 0, res.output
    return "toy4"


def quick(data, *extra):
    return ["train", "--data", data, "--layers", "8,4", "--batch", "50", "--labelled-per-batch", "10", "--labels", "40",
            "--valid-k", "5", "--z-samples", "2000", "--quiet", *extra]  # fmt: skip


@pytest.mark.parametrize("placement,proposal", [("top", "mixed"), ("bottom", "q")])
def test_semisup_train_classify_and_eval(toy, placement, proposal, tmp_path):
    """A run records its label layer, labelled indices and per-epoch validation error; classify
    and eval report the error with a standard error, the confusion matrix and PNGs."""
    res = bihm(*quick(toy, "--epochs", "2", "--name", "s", "--label-at", placement, "--label-proposal", proposal, "--gamma", "0.5"))
    assert res.exit_code == 0, res.output
    assert "best valid error" in res.stdout
    run = open_run("s", runs_dir())
    ck = load_checkpoint(run.checkpoint_path)
    labels = ck.meta["config"]["model"]["labels"]
    assert labels == {"n_classes": C, "placement": placement, "proposal": proposal, "gamma": 0.5, "l2": 0.0, "l2_x": None, "inputs": "x,h1"}
    assert ck.meta["config"]["semisup"]["n_labels"] == 40
    idx = ck.arrays["labels/train_indices"]
    y_train = load_dataset(toy).labels("train")
    assert len(np.unique(idx)) == 40 and np.bincount(y_train[idx], minlength=C).tolist() == [10] * C
    assert {n for n in ck.params() if n.startswith("y_")} == (
        {"y_prior", "y_p_weights", "y_q_weights", "y_q_biases"} if placement == "top" else {"y_q_weights", "y_q_weights_x", "y_q_biases"}
    )
    hist = ck.meta["history"]
    assert len(hist["valid_error"]) == 2 and all(0 <= e <= 1 for e in hist["valid_error"])
    assert all(se > 0 for se in hist["valid_error_se"]) and all(v <= 0 for v in hist["valid_log_py"])
    m = read_run_metrics(run.path)
    assert np.isfinite(m.epochs["valid_error"]).all() and np.isfinite(m.epochs["log_z2"]).all()
    assert len(m.updates) == 2 * num_semisup_batches(600, 40, 50, 10)  # 560 unlabelled / 40 per batch

    png = tmp_path / "conf.png"
    res = bihm("classify", "s", "-K", "20", "--json", "--out", png)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n"] == 150 and 0 <= out["error"] <= 1 and out["error_se"] >= 0
    assert np.array(out["confusion"]).sum() == 150 and len(out["class_errors"]) == C
    assert Image.open(out["confusion_png"]).size[0] > 100
    if out["confidently_wrong"]:
        assert Image.open(out["wrong_png"]).size[0] > 0
        confs = [w["confidence"] for w in out["confidently_wrong"]]
        assert confs == sorted(confs, reverse=True) and all(w["true"] != w["predicted"] for w in out["confidently_wrong"])
    res = bihm("classify", "s", "-K", "20")
    assert res.exit_code == 0 and "error" in res.stdout and "±" in res.stdout and "confusion" in res.stdout

    res = bihm("eval", "s", "-K", "1,10", "--z-samples", "3000", "--json")
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert [e["K"] for e in ev["estimates"]] == [1, 10] and all(0 <= e["error"] <= 1 for e in ev["estimates"])
    assert ev["log_pstar"]["mean"] == pytest.approx(ev["estimates"][-1]["log_ptilde"] - ev["log_z2"]["mean"])
    res = bihm("eval", "s", "-K", "10", "--z-samples", "0")
    assert res.exit_code == 0 and "error" in res.stdout


def test_semisup_resume_is_bit_identical(toy):
    """1 epoch + resume to 2 equals 2 epochs straight (parameters, Adam state, RNG, indices, history).
    Catches a labelled stream that depends on more than (seed, epoch) or a label parameter missing
    from the saved state."""
    assert bihm(*quick(toy, "--epochs", "2", "--name", "full")).exit_code == 0
    assert bihm(*quick(toy, "--epochs", "1", "--name", "part")).exit_code == 0
    res = bihm("train", "--resume", "part", "--epochs", "2", "--quiet")
    assert res.exit_code == 0, res.output
    a = load_checkpoint(runs_dir() / "full" / "checkpoint.h5")
    b = load_checkpoint(runs_dir() / "part" / "checkpoint.h5")
    assert set(a.arrays) == set(b.arrays) and "optim/y_q_weights.exp_avg" in a.arrays
    for name, arr in a.arrays.items():
        assert np.array_equal(arr, b.arrays[name]), name
    assert a.meta["history"]["valid_error"] == b.meta["history"]["valid_error"]


def test_labelled_set_is_balanced_seeded_and_batches_mix_it_in(toy):
    """The labelled set has N/C points of each class, depends on the seed only; every epoch
    visits each unlabelled point once with m labelled points at the head of every batch, in an
    order fixed by (seed, epoch)."""
    ds = load_dataset(toy)
    a, b, c = labelled_indices(ds, 40, 0), labelled_indices(ds, 40, 0), labelled_indices(ds, 40, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.bincount(ds.labels("train")[a], minlength=C).tolist() == [10] * C
    x_train = ds.get("train")

    def epoch(e):
        return list(semisup_batches(ds, a, 50, 10, epoch=e, seed=3))

    batches = epoch(0)
    seen_unl = []
    for x, y, lab in batches:
        assert lab[:10].all() and not lab[10:].any()
        seen_unl.append(x[10:])
    assert len(batches) == num_semisup_batches(600, 40, 50, 10) == 14
    assert sum(len(s) for s in seen_unl) == 560
    again = epoch(0)
    assert all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(batches, again))
    assert not np.array_equal(batches[0][0], epoch(1)[0][0])
    # labelled rows come from the labelled set, unlabelled ones never do
    lab_rows = {tuple(r) for r in x_train[a]}
    assert all(tuple(r) in lab_rows for x, _, _ in batches for r in x[:10].numpy().astype(np.uint8))


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--data", "dna", "--labels", "20"], "no labels"),
        (["train", "--data", "toy4", "--labels", "42"], "balanced"),
        (["train", "--data", "toy4", "--labels", "100000"], "larger than the training split"),
        (["train", "--data", "toy4", "--labels", "40", "--gamma", "2"], "gamma"),
        (["train", "--data", "toy4", "--labels", "40", "--label-l2", "-0.1"], "label l2"),
        (["train", "--data", "toy4", "--labels", "40", "--label-l2", "nan"], "label l2"),
        (["train", "--data", "toy4", "--labels", "40", "--label-at", "bottom", "--label-input", "x"], "label input"),
        (["train", "--data", "toy4", "--labels", "40", "--label-input", "h1"], "label at the bottom"),
        (["train", "--data", "toy4", "--labels", "40", "--label-l2-x", "0.1"], "reads x"),
        (["train", "--data", "toy4", "--labels", "40", "--label-at", "side"], "placement"),
        (["train", "--data", "toy4", "--labels", "40", "--label-proposal", "p"], "proposal"),
        (["train", "--data", "toy4", "--labels", "40", "--labelled-per-batch", "100"], "labelled points per batch"),
        (["train", "--data", "toy4", "--labels", "40", "--method", "rws"], "BiHM objective"),
        # SemiTrainer has no bf16 path: the run trained in fp32 while its config and run view said bf16
        (["train", "--data", "toy4", "--labels", "40", "--precision", "bf16"], "semi-supervised training runs in fp32"),
        (["classify", "ghost"], "ghost"),
        (["train", "--data", "toy4", "--labels", "40", "--batch", "20"], "--labelled-per-batch"),
        (["classify", "ghost", "--wrong", "-1"], "--wrong must be 0 or more"),
        (["train", "--data", "toy4", "--label-at", "bottom"], "--label-at is for semi-supervised training: add --labels"),
        (["train", "--data", "toy4", "--gamma", "0.5", "--label-l2", "0.1"], "--gamma, --label-l2 are for semi"),
        (["classify", "ghost", "--out", "confusion.txt"], "ending in .png"),
    ],
)
def test_bad_semisup_input_gives_one_clear_line(toy, args, needle):
    """Each bad option gives one line naming the problem, exit code 1, and creates no run folder."""
    res = bihm(*args)
    assert res.exit_code == 1
    text = res.stderr.strip()
    assert needle in text, text
    assert "Traceback" not in res.output and len(text.splitlines()) <= 2, text
    assert not runs_dir().exists() or not any(runs_dir().iterdir())


def test_labels_of_one_class_are_refused_before_a_run_folder_is_made(tmp_path):
    """Labels that are all one class raised the engine's ValueError as a traceback, after a run
    folder was created. Catches both: one line naming --labels, exit 1, no run folder."""
    rng = np.random.default_rng(1)
    x = (rng.random((200, 12)) < 0.5).astype(np.uint8)
    np.savez(tmp_path / "one.npz", x_train=x, y_train=np.zeros(200, np.uint8))
    assert bihm("data", "import", tmp_path / "one.npz", "--name", "oneclass").exit_code == 0
    res = bihm("train", "--data", "oneclass", "--labels", "30", "--labelled-per-batch", "5", "--layers", "6,3", "--quiet")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "--labels" in res.stderr and "at least 2" in res.stderr, res.stderr
    assert not runs_dir().exists() or not any(runs_dir().iterdir())


def test_report_of_a_label_on_top_run_leaves_out_only_its_pictures(toy, tmp_path):
    """`bihm report` of a label-on-top run refused the whole report (its model has no label-free
    p(x, h) to draw pictures from). Catches that: the report is written with its curves and a note
    saying why the pictures are left out."""
    assert bihm(*quick(toy, "--epochs", "1", "--name", "top", "--z-samples", "0")).exit_code == 0
    res = bihm("report", "top", "--out", tmp_path / "rep", "--cached-only")
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "pictures left out" in md and "label on top" in md and "samples.png" not in md


def test_unsupervised_runs_are_refused_by_classify_and_top_runs_by_sample(toy):
    assert bihm("train", "--data", toy, "--layers", "8", "--epochs", "1", "--z-samples", "0", "--quiet", "--name", "u").exit_code == 0
    res = bihm("classify", "u")
    assert res.exit_code == 1 and "no label layer" in res.stderr
    assert bihm(*quick(toy, "--epochs", "1", "--name", "top", "--z-samples", "0")).exit_code == 0
    res = bihm("sample", "top", "--n", "2")
    assert res.exit_code == 1 and "label on top" in res.stderr and "Traceback" not in res.output
    # the label-at-the-bottom model's x-part is a plain BiHM: sampling works
    assert bihm(*quick(toy, "--epochs", "1", "--name", "bot", "--label-at", "bottom", "--z-samples", "0")).exit_code == 0
    res = bihm("sample", "bot", "--n", "2", "--steps", "1", "-K", "5")
    assert res.exit_code == 0, res.output


def test_label_l2_and_input_are_recorded_and_kept_on_resume_and_old_runs_resume_without_them(toy):
    """`--label-l2` and `--label-input h1` land in the checkpoint's label config, the h_1-only layer
    has no V_x, a resume keeps both (a resume that dropped them would train a different model than
    the one started, or fail to load V_x) and `classify` reads the run; a run stored before the
    options existed (no ``l2``/``inputs``) resumes as it was trained (no penalty, V_x) instead of
    failing the label check."""
    from bihm_app.runner.semisup_loop import SemiSpec

    args = ("--epochs", "1", "--name", "l2", "--label-at", "bottom", "--label-l2", "0.05", "--label-input", "h1", "--z-samples", "0")
    assert bihm(*quick(toy, *args)).exit_code == 0
    assert bihm("train", "--resume", "l2", "--epochs", "2", "--quiet").exit_code == 0
    ck = load_checkpoint(open_run("l2", runs_dir()).checkpoint_path)
    labels = ck.meta["config"]["model"]["labels"]
    assert (labels["l2"], labels["inputs"]) == (0.05, "h1") and len(ck.meta["history"]["valid_error"]) == 2
    assert {n for n in ck.params() if n.startswith("y_")} == {"y_q_weights", "y_q_biases"}
    res = bihm("classify", "l2", "-K", "5", "--json")
    assert res.exit_code == 0 and 0 <= json.loads(res.stdout)["error"] <= 1
    old = {"semisup": {"n_labels": 40, "labelled_per_batch": 10},
           "model": {"labels": {"n_classes": C, "placement": "bottom", "proposal": "q", "gamma": 0.0}}}  # fmt: skip
    spec = SemiSpec.from_meta(old)
    assert (spec.label_l2, spec.label_input) == (0.0, "x,h1") and spec.label_config(C) == LabelConfig.from_dict(old["model"]["labels"])


def test_classify_refuses_absurd_sizes_and_a_negative_n(toy):
    """`bihm classify -K 1e30` / `--batch 1e30` were overflow tracebacks and `--n -1` classified the
    whole split without a word (review, session 6)."""
    res = bihm(*quick(toy, "--epochs", "1", "--name", "s", "--z-samples", "0"))
    assert res.exit_code == 0, res.output
    for args, words in [(["-K", "1" + "0" * 30], "is too large"), (["--batch", "1" + "0" * 30], "is too large"),
                        (["--n", "-1"], "--n must be at least 0")]:  # fmt: skip
        res = bihm("classify", "s", "--n", "10", *args)
        assert res.exit_code == 1 and words in res.output and "Traceback" not in res.output, res.output



def test_ckpt_show_names_a_semisup_runs_best_valid_as_its_validation_error(toy):
    """A semi-supervised run's checkpoint keeps its criterion, −(validation error), as best_valid:
    `bihm ckpt show` printed "best_valid -0.79" beside the log p̃* rows, a number a person reads as a
    bound. Catches that: it shows the best validation error in percent, as `bihm train`'s last
    line does, and no bare best_valid."""
    assert bihm(*quick(toy, "--epochs", "1", "--name", "s1", "--z-samples", "0")).exit_code == 0
    meta = load_checkpoint(runs_dir() / "s1" / "best.h5").meta
    error = -meta["progress"]["best_valid"]
    assert 0 <= error <= 1
    shown = " ".join(bihm("ckpt", "show", "s1").stdout.split())
    assert f"best valid error {100 * error:.2f} %" in shown, shown
    assert "best_valid " not in shown, shown
