"""`bihm repro`: the protocol, adoption of existing runs, budgets, interrupt + resume, the table's
arithmetic. Training runs on a tiny imported data set (6 binary dimensions, 200 training rows)."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.errors import ConfigError, RunError
from bihm_app.runner import repro
from bihm_app.runner.evaluation import read_cache
from bihm_app.runner.train_loop import Reporter
from bihm_app.store.checkpoint import load_checkpoint, read_meta
from bihm_app.store.runs import RunFolder

cli = CliRunner()
TINY_LAYERS = {"tiny": (4, 3)}
FAST = repro.EvalSettings(points=[(5, 0), (20, 30)], z_samples=500)


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def tiny(tmp_path) -> str:
    """Data set 'tiny' (train 200 / valid 40 / test 60 rows of 6 correlated bits) in BIHM_HOME."""
    from bihm_app.data.importer import import_file

    rng = np.random.default_rng(0)
    z = rng.random((300, 1)) < 0.5
    x = np.where(z, rng.random((300, 6)) < 0.8, rng.random((300, 6)) < 0.2).astype(np.uint8)
    f = tmp_path / "tiny.npz"
    np.savez(f, train=x[:200], valid=x[200:240], test=x[240:])
    import_file(f, "tiny")
    return "tiny"


def root() -> Path:
    return Path(os.environ["BIHM_HOME"]) / "runs"


def bihm(*args):
    return cli.invoke(app, [str(a) for a in args])


def queue_flags(n_train: int, lr: str, data: str, layers: str, name: str, epochs: int | None = None) -> list[str]:
    """The flags /work/logs/uci_queue.sh passes to `bihm train` (shell arithmetic re-done here)."""
    upe = (n_train + 99) // 100
    pat = max(10, (1000 + upe - 1) // upe)
    ze = max(1, (500 + upe - 1) // upe)
    ep = (100000 + upe - 1) // upe if epochs is None else epochs
    return ["train", "--data", data, "--layers", layers, "--lr", lr, "-K", "10", "--batch", "100", "--l1", "1e-3",
            "--patience", pat, "--z-every", ze, "--z-samples", "1e5", "--epochs", ep, "--seed", "0", "--name", name, "-q"]  # fmt: skip


# -- the protocol ----------------------------------------------------------------------------------
def test_protocol_matches_the_thesis_schedule_and_the_run_names():
    """Catches a schedule that differs from the one the lead's queue trains (runs would not be adopted)."""
    adult = repro.uci_train_config(5000, 1e-2, 0)
    assert (adult.patience, adult.z_every, adult.epochs) == (20, 10, 2000)
    c4 = repro.uci_train_config(16000, 1e-3, 1)
    assert (c4.patience, c4.z_every, c4.epochs, c4.seed, c4.lr) == (10, 4, 625, 1, 1e-3)
    dna = repro.uci_train_config(1400, 1e-2, 0)
    assert (dna.patience, dna.z_every, dna.epochs) == (72, 36, 7143)
    assert (adult.K, adult.batch_size, adult.l1, adult.l1_per, adult.z_samples) == (10, 100, 1e-3, "batch", 100_000)
    assert repro.uci_run_name("adult", 1e-2, 0) == "uci-adult-lr1e-2-s0"
    assert repro.uci_run_name("nips", 1e-3, 2) == "uci-nips-lr1e-3-s2"
    assert [repro.lr_label(v) for v in (3e-4, 2.5e-3, 0.1)] == ["3e-4", "2.5e-3", "1e-1"]
    plans = repro.uci_plans(["dna"], [1e-2, 1e-3], 1)["dna"]
    assert [p.layers for p in plans] == [(200, 150, 130, 100, 70, 50, 30, 20, 10)] * 2
    with pytest.raises(ConfigError):
        repro.uci_plans(["ocr"], [1e-2], 1)


def test_mnist_protocols_phases_and_names():
    t12 = repro.mnist_plans("thesis12", 1)
    assert [p.name for p in t12] == ["mnist-thesis12-s0", "mnist-thesis12-ft-s0"]
    assert (t12[0].train.K, t12[0].train.lr, t12[1].train.K, t12[1].train.lr) == (10, 1e-3, 100, 3e-4)
    assert t12[1].parent == "mnist-thesis12-s0" and len(t12[0].layers) == 12
    rws = repro.mnist_plans("rws7", 1)
    assert rws[0].layers == (400, 300, 200, 100, 50, 25, 10) and rws[0].train.K == 5 and rws[1].train.epochs == 500
    assert [p.name for p in repro.mnist_plans("small", 2)] == ["mnist-small-s0", "mnist-small-s1"]
    with pytest.raises(ConfigError):
        repro.mnist_plans("huge", 1)


def test_parse_duration():
    assert repro.parse_duration("30m") == 1800 and repro.parse_duration("1h30m") == 5400
    assert repro.parse_duration("90") == 90 and repro.parse_duration("2.5s") == 2.5 and repro.parse_duration(None) is None
    with pytest.raises(ConfigError):
        repro.parse_duration("soon")
    for zero in ("0", "0s", "0m0s"):  # read as "no limit" and trained on to early stopping
        with pytest.raises(ConfigError, match="positive duration.*--eval-only"):
            repro.parse_duration(zero)


def test_cli_checks_the_evaluation_and_learning_rates_before_training(tmp_path, monkeypatch):
    """--test-k 0, --big-k -1, --k10k-points -1 and --z-samples 1 were found only after the whole
    training budget was spent ("K must be at least 1 ..." naming no option), and `repro mnist
    --big-k -1` trained without end; "--lrs 1e-2,0.01" trained one run twice on half the budget
    each. Catches each: one line naming the option before any training (the trainer is replaced by
    one that fails the test), and the learning rates handed over once."""
    calls = []
    monkeypatch.setattr(repro, "run_uci", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError("trained")))
    monkeypatch.setattr(repro, "run_mnist", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    for args, option in ((["uci", "--test-k", "0"], "--test-k"), (["uci", "--big-k", "-1"], "--big-k"),
                         (["uci", "--k10k-points", "-1"], "--k10k-points"), (["uci", "--z-samples", "1"], "--z-samples"),
                         (["mnist", "--big-k", "-1"], "--big-k"), (["mnist", "--ks", "0"], "--ks"),
                         (["uci", "--budget", "0"], "--budget")):  # fmt: skip
        res = bihm("repro", *args, "--runs-dir", tmp_path / "runs")
        assert res.exit_code == 1 and option in res.output and "Traceback" not in res.output, (args, res.output)
    assert calls == []
    from bihm_app.cli.repro_cmd import _lrs

    assert _lrs("1e-2,0.01,1e-3") == [0.01, 0.001]


# -- arithmetic ------------------------------------------------------------------------------------
def test_table_arithmetic_against_hand_computed_values():
    """Catches a wrong sign convention, SEs that do not add in quadrature, or a percentage of the
    wrong base. Hand values: log p̃* = −13.70 ± 0.03, log p = −13.60 ± 0.04, 2 log Z = −0.25 ± 0.04."""
    est = {"log_ptilde": -13.70, "log_ptilde_se": 0.03, "log_p": -13.60, "log_p_se": 0.04}
    z = {"mean": -0.25, "se": 0.04}
    q = repro.uci_quantities(est, z)
    assert q["nll_ptilde"] == pytest.approx((13.70, 0.03))
    assert q["nll_p"] == pytest.approx((13.60, 0.04))
    assert q["neg_log_z2"] == pytest.approx((0.25, 0.04))
    assert q["nll_pstar"] == pytest.approx((13.45, 0.05))  # 13.70 + (−0.25); √(0.03² + 0.04²) = 0.05
    c = repro.Comparison(*q["nll_pstar"], thesis=13.82)
    assert c.diff == pytest.approx(-0.37) and c.diff_in_se == pytest.approx(-7.4)
    assert c.percent == pytest.approx(-100 * 0.37 / 13.82)  # −2.677 %
    m = repro.Comparison(-85.0, 0.3, thesis=-84.8, thesis_se=0.4)  # SEs 0.3 and 0.4 → 0.5
    assert m.diff == pytest.approx(-0.2) and m.diff_in_se == pytest.approx(-0.4)
    assert m.percent == pytest.approx(-100 * 0.2 / 84.8)
    mq = repro.mnist_quantities(est, z)
    assert mq["log_pstar"] == pytest.approx((-13.45, 0.05))
    assert repro.Comparison(1.0, None, None).diff_in_se is None


def test_comparison_table_rows_and_two_percent_summary():
    """Catches rows that show the wrong thesis value or a pass/fail count that ignores the sign."""
    g_ok = repro.GroupResult("adult", [], split_size=100)
    g_ok.comparisons["K=1000"] = {"nll_pstar": repro.Comparison(14.0, 0.03, 13.82)}  # +1.3 %: within 2 %
    g_bad = repro.GroupResult("dna", [], split_size=100)
    g_bad.comparisons["K=1000"] = {"nll_pstar": repro.Comparison(89.0, 0.2, 86.92)}  # +2.4 %
    g_better = repro.GroupResult("nips", [], split_size=100)
    g_better.comparisons["K=1000"] = {"nll_pstar": repro.Comparison(260.0, 1.0, 272.71)}  # better by 4.7 %
    res = repro.ReproResult("uci", [g_ok, g_bad, g_better], FAST, None)
    assert repro.within_two_percent(res) == "−log p*(x) within 2 % of the thesis or better on 2 of 3 sets (adult, nips)."
    t = repro.comparison_table(res)
    row = next(r for r in t.rows if r[0] == "adult")
    assert row[1:] == ["−log p*(x)", "13.82", "14.00 ± 0.03", "+6.0", "+1.30"]
    md = repro.to_markdown([t], "title")
    assert "| adult | −log p\\*(x) | 13.82 | 14.00 ± 0.03 | +6.0 | +1.30 |" in md


# -- adoption, budget, interrupt -------------------------------------------------------------------
def test_adopts_a_finished_run_trained_with_the_queue_scripts_flags(tiny):
    """Catches a protocol config that differs from what `bihm train` + the queue's flags store (the
    lead's runs would be refused), and retraining of a finished run."""
    name = "uci-tiny-lr1e-2-s0"
    res = bihm(*queue_flags(200, "1e-2", "tiny", "4,3", name, epochs=2))
    assert res.exit_code == 0, res.output
    before = (root() / name / "checkpoint.h5").read_bytes()
    result = repro.run_uci(root(), ["tiny"], [1e-2], 1, settings=FAST, layers=TINY_LAYERS, overrides={"epochs": 2})
    (g,) = result.groups
    assert g.selected == name and g.runs[0].state == "finished" and not g.runs[0].trained_now
    assert (root() / name / "checkpoint.h5").read_bytes() == before
    assert len(RunFolder(root() / name).metrics_paths()) == 1
    cache = read_cache(root() / name)
    assert cache is not None and {(e["K"], e["n"]) for e in cache.estimates} == {(5, 60), (20, 30)}
    assert set(g.comparisons) == {"K=5", "K=20 (30 random)"}
    assert g.comparisons["K=5"]["nll_pstar"].ours == pytest.approx(-g.estimates[0]["log_ptilde"] + g.z["mean"])


def test_a_same_named_run_with_another_config_is_refused(tiny):
    """Catches silently adopting (or overwriting) a run trained with other settings."""
    name = "uci-tiny-lr1e-2-s0"
    flags = queue_flags(200, "1e-2", "tiny", "4,2", name, epochs=2)
    assert bihm(*flags).exit_code == 0
    with pytest.raises(RunError, match=r"different configuration \(layers 4,2 ≠ 4,3\)"):
        repro.run_uci(root(), ["tiny"], [1e-2], 1, settings=FAST, layers=TINY_LAYERS, overrides={"epochs": 2})


def test_a_run_given_more_patience_is_adopted_and_said_so_but_less_is_refused(tiny):
    """Catches refusing a run that `bihm train --resume RUN --patience 40` let train longer (the
    lead's connect4 run), adopting one that was stopped *earlier* than the protocol, and hiding
    the extension from the table."""
    name = "uci-tiny-lr1e-2-s0"
    flags = queue_flags(200, "1e-2", "tiny", "4,3", name, epochs=2)
    flags[flags.index("--patience") + 1] = 600  # the protocol: 500 for 200 points
    assert bihm(*flags).exit_code == 0
    result = repro.run_uci(root(), ["tiny"], [1e-2], 1, settings=FAST, layers=TINY_LAYERS, overrides={"epochs": 2})
    (g,) = result.groups
    assert g.selected == name and g.runs[0].note == "trained with patience 600 (protocol 500)"
    assert f"{name}: trained with patience 600 (protocol 500)" in repro.training_table(result).notes
    flags[flags.index("--patience") + 1] = 3
    flags[flags.index("--name") + 1] = name = "uci-tiny-lr1e-3-s0"
    flags[flags.index("--lr") + 1] = "1e-3"
    assert bihm(*flags).exit_code == 0
    with pytest.raises(RunError, match=r"different configuration \(patience 3 ≠ 500\)"):
        repro.run_uci(root(), ["tiny"], [1e-3], 1, settings=FAST, layers=TINY_LAYERS, overrides={"epochs": 2})


def test_cli_refuses_a_same_named_run_with_one_line(tmp_path):
    res = bihm("train", "--data", "dna", "--layers", "12,6", "--epochs", "1", "--valid-max", "50", "--z-samples", "0",
               "--name", "uci-dna-lr1e-2-s0", "-q")  # fmt: skip
    assert res.exit_code == 0, res.output
    res = bihm("repro", "uci", "--sets", "dna", "--lrs", "1e-2", "--out", tmp_path / "o")
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert "Traceback" not in res.output and any("different configuration" in ln for ln in lines)
    assert "layers 12,6 ≠ 200,150,130,100,70,50,30,20,10" in " ".join(res.output.split())


class _InterruptAt(Reporter):
    """Sends this process ``sig`` after ``at`` updates (SIGINT: as Ctrl-C would)."""

    sig = signal.SIGINT

    def __init__(self, at: int) -> None:
        self.at, self.n = at, 0

    def update(self, step, batch_in_epoch, objective) -> None:
        self.n += 1
        if self.n == self.at:
            os.kill(os.getpid(), self.sig)


def test_interrupted_repro_resumes_where_it_stopped_and_ends_like_an_uninterrupted_one(tiny, tmp_path):
    """Catches a repro that restarts runs from scratch, skips the rest of an epoch, or loses the
    second learning rate after an interruption: the final parameters must be bit-identical."""
    kw = dict(settings=FAST, layers=TINY_LAYERS, overrides={"epochs": 4, "patience": 0})
    ref_root, cut_root = tmp_path / "ref", tmp_path / "cut"
    ref = repro.run_uci(ref_root, ["tiny"], [1e-2, 1e-3], 1, **kw)
    assert all(r.state == "finished" for r in ref.groups[0].runs)

    with pytest.raises(repro.Interrupted, match="uci-tiny-lr1e-2-s0: signal SIGINT"):
        repro.run_uci(cut_root, ["tiny"], [1e-2, 1e-3], 1, reporter=lambda plan: _InterruptAt(3), **kw)
    cut = RunFolder(cut_root / "uci-tiny-lr1e-2-s0")
    assert cut.read_status()["state"] == "stopped"
    assert read_meta(cut.checkpoint_path)["progress"]["step"] == 3
    assert not (cut_root / "uci-tiny-lr1e-3-s0").exists()

    again = repro.run_uci(cut_root, ["tiny"], [1e-2, 1e-3], 1, **kw)
    assert [r.state for r in again.groups[0].runs] == ["finished", "finished"]
    assert len(cut.metrics_paths()) == 2  # resumed (a second attempt), not restarted
    for r in ref.groups[0].runs:
        a = load_checkpoint(ref_root / r.name / "checkpoint.h5").arrays
        b = load_checkpoint(cut_root / r.name / "checkpoint.h5").arrays
        assert all(np.array_equal(a[k], b[k]) for k in a), r.name
    assert again.groups[0].selected == ref.groups[0].selected
    strip = lambda ests: [{k: v for k, v in e.items() if k != "seconds"} for e in ests]  # noqa: E731
    assert strip(again.groups[0].estimates) == strip(ref.groups[0].estimates)


def test_budget_stops_runs_cleanly_and_a_rerun_does_not_exceed_it(tiny):
    """Catches a budget that kills instead of saving, that restarts from zero on every call, or that
    is not shared by the set's runs."""
    kw = dict(settings=FAST, layers=TINY_LAYERS)
    res = repro.run_uci(root(), ["tiny"], [1e-2, 1e-3], 1, budget_s=1.0, **kw)
    runs = res.groups[0].runs
    assert [r.state for r in runs] == ["budget", "budget"]
    for r in runs:
        folder = RunFolder(root() / r.name)
        assert folder.read_status()["state"] == "stopped"
        assert r.budget_s == 0.5 and 0.5 <= r.train_seconds < 30
        assert read_meta(folder.checkpoint_path)["progress"]["elapsed"] == pytest.approx(r.train_seconds)
    assert res.groups[0].selected is not None and res.groups[0].estimates  # best.h5 evaluated
    steps = {r.name: read_meta(root() / r.name / "checkpoint.h5")["progress"]["step"] for r in runs}

    again = repro.run_uci(root(), ["tiny"], [1e-2, 1e-3], 1, budget_s=1.0, **kw)
    for r in again.groups[0].runs:
        assert r.state == "budget" and not r.trained_now
        assert read_meta(root() / r.name / "checkpoint.h5")["progress"]["step"] == steps[r.name]
        assert len(RunFolder(root() / r.name).metrics_paths()) == 1

    more = repro.run_uci(root(), ["tiny"], [1e-2], 1, budget_s=1.2, **kw)
    r = more.groups[0].runs[0]
    assert r.trained_now and r.train_seconds >= 1.2 and len(RunFolder(root() / r.name).metrics_paths()) == 2
    assert read_meta(root() / r.name / "checkpoint.h5")["progress"]["step"] > steps[r.name]


def test_a_run_trained_elsewhere_is_left_alone_and_not_evaluated_until_done(tiny):
    """Catches a repro that resumes (races) a run another process is training."""
    name = "uci-tiny-lr1e-2-s0"
    assert bihm(*queue_flags(200, "1e-2", "tiny", "4,3", name, epochs=2)).exit_code == 0
    # "another process": this one, alive, holding the run lock as a trainer does
    lock = RunFolder(root() / name).lock()
    RunFolder(root() / name).write_status("running", pid=os.getpid())
    res = repro.run_uci(root(), ["tiny"], [1e-2], 1, settings=FAST, layers=TINY_LAYERS, overrides={"epochs": 2})
    (g,) = res.groups
    assert g.runs[0].state == "running" and not g.estimates and "not evaluated yet" in g.note
    res = bihm("train", "--resume", name, "-q")  # nor does `bihm train --resume`
    assert res.exit_code == 1 and f"being trained by process {os.getpid()}" in res.output
    assert read_cache(root() / name) is None
    res = repro.run_uci(root(), ["tiny"], [1e-2], 1, settings=FAST, layers=TINY_LAYERS, overrides={"epochs": 2}, eval_only=True)
    assert res.groups[0].provisional and res.groups[0].estimates
    lock.release()


def test_mnist_protocol_fine_tunes_from_the_first_phase(tiny):
    """Catches a fine-tuning phase that starts from a fresh initialisation, or evaluating phase 1
    instead of the fine-tuned run."""
    res = repro.run_mnist(root(), "thesis12", settings=FAST, overrides={"epochs": 2, "z_samples": 0}, data="tiny", layers=(4, 3))
    (g,) = res.groups
    assert [r.name for r in g.runs] == ["mnist-thesis12-s0", "mnist-thesis12-ft-s0"]
    assert [r.state for r in g.runs] == ["finished", "finished"]
    assert g.selected == "mnist-thesis12-ft-s0"
    ft = load_checkpoint(root() / "mnist-thesis12-ft-s0" / "best.h5")
    assert ft.meta["config"]["init_from"]["run"] == "mnist-thesis12-s0" and ft.meta["config"]["train"]["K"] == 100
    # a fine-tuning run starts from exactly phase 1's best parameters
    from bihm_app.runner.train_loop import RunSpec, TrainingRun

    spec = RunSpec("tiny", (4, 3), repro.mnist_plans("thesis12", 1)[1].train, "cpu", "x",
                   init_from=ft.meta["config"]["init_from"])  # fmt: skip
    start = TrainingRun(RunFolder(root() / "scratch"), spec).model
    p1 = load_checkpoint(root() / "mnist-thesis12-s0" / "best.h5").params()
    assert all(np.array_equal(p.detach().numpy(), p1[k]) for k, p in start.named_parameters())
    assert set(g.comparisons["K=5"]) == {"log_p", "log_ptilde", "log_pstar"}
    assert g.comparisons["K=5"]["log_p"].thesis == -84.5


def test_cli_end_to_end_on_dna_with_a_tiny_budget_then_only_prints(tmp_path):
    """The command as a user runs it; the second call must train and compute nothing."""
    out_dir = tmp_path / "out"
    args = ["repro", "uci", "--sets", "dna", "--lrs", "1e-2", "--budget", "4s", "--test-k", "5", "--big-k", "20",
            "--k10k-points", "50", "--z-samples", "2000", "-q", "--out", out_dir]  # fmt: skip
    res = bihm(*args)
    assert res.exit_code == 0, res.output
    data = json.loads((out_dir / "uci.json").read_text())
    (g,) = data["groups"]
    assert g["selected"] == "uci-dna-lr1e-2-s0" and g["runs"][0]["state"] == "budget"
    assert set(g["comparisons"]) == {"K=5", "K=20 (50 random)"}
    assert g["comparisons"]["K=5"]["nll_pstar"]["thesis"] == 86.92
    md = (out_dir / "uci.md").read_text()
    assert "| dna | −log p\\*(x) | 86.92 |" in md and "uci-dna-lr1e-2-s0" in md
    cache = root() / "uci-dna-lr1e-2-s0" / "eval-test.json"
    stamp = (cache.stat().st_mtime_ns, (root() / "uci-dna-lr1e-2-s0" / "checkpoint.h5").stat().st_mtime_ns)
    res = bihm(*args, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["groups"][0]["estimates"] == g["estimates"]
    assert (cache.stat().st_mtime_ns, (root() / "uci-dna-lr1e-2-s0" / "checkpoint.h5").stat().st_mtime_ns) == stamp
    assert "86.92" in bihm(*args).stdout and math.isfinite(g["log_z2"]["mean"])


def test_cli_mnist_eval_only_without_runs_gives_its_reason_once(tmp_path):
    """Catches a repro that evaluated nothing saying why three times (a log line, the table's
    note, the last line) and adding "compared with the thesis' 12-layer net" though nothing was
    compared: the reason in the table's note and the last line only, no comparison note."""
    res = bihm("repro", "mnist", "--protocol", "small", "--eval-only", "--out", tmp_path)
    assert res.exit_code == 1, res.output
    said = " ".join(res.output.split())
    assert said.count("no run with a checkpoint yet") == 2, said
    assert said.endswith("nothing evaluated (mnist-small: no run with a checkpoint yet: nothing to evaluate)"), said
    assert "12-layer" not in said and "12-layer" not in (tmp_path / "mnist-small.md").read_text()


def test_cli_mnist_eval_only_without_runs_and_a_bad_protocol(tmp_path):
    """Also catches a repro that evaluated nothing exiting 0 under an empty comparison table ("Test
    points: ."): it writes the training table, says why nothing was evaluated and exits 1."""
    res = bihm("repro", "mnist", "--protocol", "small", "--eval-only", "--out", tmp_path)
    assert res.exit_code == 1, res.output
    said = " ".join(res.output.split())
    assert "nothing evaluated (mnist-small: no run with a checkpoint yet: nothing to evaluate)" in said, said
    assert "Test points" not in res.output
    md = (tmp_path / "mnist-small.md").read_text()
    assert "| mnist-small | mnist-small-s0 | 1e-3 |" in md and "nothing to evaluate" in md
    assert "against the thesis" not in md
    assert not (root() / "mnist-small-s0").exists()  # --eval-only creates no run
    res = bihm("repro", "mnist", "--protocol", "huge")
    assert res.exit_code == 1 and "unknown MNIST protocol 'huge'" in res.output and "Traceback" not in res.output
    res = bihm("repro", "uci", "--budget", "soon")
    assert res.exit_code == 1 and "budget 'soon' is not a duration" in res.output


class _TermAt(_InterruptAt):
    """SIGTERM after 3 updates (as a batch scheduler or `kill` would), built as the CLI builds its
    RichReporter."""

    sig = signal.SIGTERM

    def __init__(self, *_args, **_kw) -> None:
        super().__init__(3)


def test_cli_repro_stopped_by_sigterm_exits_143_like_train(tmp_path, monkeypatch):
    """`bihm train` exits 143 on SIGTERM (130 on Ctrl-C), and so does every other command since
    SIGTERM is handled outside training; `bihm repro` stopped by SIGTERM during training exited 130,
    the Ctrl-C code, so a scheduler could not tell a kill from a person. Catches that: the run is
    saved, the message says how to continue, and the exit code is 143."""
    monkeypatch.setattr("bihm_app.cli.train_report.RichReporter", _TermAt)
    res = bihm("repro", "uci", "--sets", "dna", "--lrs", "1e-2", "--budget", "60s", "--test-k", "5", "--big-k", "0",
               "--z-samples", "500", "-q", "--out", tmp_path / "out")  # fmt: skip
    assert res.exit_code == 143, res.output
    assert "signal SIGTERM; saved" in " ".join(res.output.split())
    assert RunFolder(root() / "uci-dna-lr1e-2-s0").read_status()["state"] == "stopped"
