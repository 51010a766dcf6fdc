"""Command-line values that are too large, malformed or point at the wrong kind of file get one
line naming the option and a non-zero exit code (hostile review, items 2–4).

Each test fails on main before these fixes: the training budget blamed the layers for a huge
-K/--batch and printed "409,600,000.0 GB"; `--layers 5,,5` silently trained 5,5; `--runs-dir FILE`
said "no runs under FILE" and exited 0.
"""

from __future__ import annotations

import re

import pytest

from tests.faults.helpers import bihm_here, one_error_line

HUGE = "1000000000000"
FRESH_DNA = ["--fresh", "--data", "dna", "--layers", "5,3", "--threads", "1"]


@pytest.mark.parametrize("option,blamed", [("-K", "-K 1,000,000,000,000"), ("--batch", "--batch 1,000,000,000,000"),
                                           ("--valid-k", "--valid-k 1,000,000,000,000")])  # fmt: skip
def test_train_budget_blames_the_option_that_is_too_large(option, blamed):
    """Catches the budget message that says "use smaller layers" for a tiny model whose samples per
    step are too many, and a size printed as hundreds of millions of GB."""
    res = bihm_here("train", "--data", "dna", "--layers", "5", "--epochs", "1", option, HUGE, "--quiet")
    assert res.exit_code == 1
    line = one_error_line(res.stderr)
    assert line.startswith(f"error: {blamed} is too large"), line
    assert "smaller layers" not in line and re.search(r"\d(\.\d)? (PB|EB)\b", line), line


@pytest.mark.parametrize("spec", ["5,,5", "5,", ",5", "5, ,5"])
@pytest.mark.parametrize("command", ["train", "sample"])
def test_layer_spec_with_an_empty_entry_is_refused(command, spec, tmp_path):
    """Catches `--layers 5,,5` read as 5,5 (a typo trains another model without a word)."""
    args = ["train", "--data", "dna", "--epochs", "1", "--quiet"] if command == "train" else ["sample", "--fresh", "--data", "dna", "--n", "1"]
    res = bihm_here(*args, "--layers", spec)
    assert res.exit_code == 1 and "empty entry" in one_error_line(res.stderr)
    assert not (tmp_path / "bihm-home" / "runs").exists() or not any((tmp_path / "bihm-home" / "runs").iterdir())


@pytest.mark.parametrize("command", [["runs", "list"], ["runs", "list", "--json"], ["ckpt", "show", "x"]])
def test_runs_dir_that_is_a_file_is_refused(command, tmp_path):
    """Catches `--runs-dir FILE` reported as an empty runs folder with exit code 0."""
    f = tmp_path / "not-a-folder"
    f.write_text("x")
    res = bihm_here(*command, "--runs-dir", f)
    assert res.exit_code == 1
    assert "is not a folder" in one_error_line(res.stderr) and str(f) in res.stderr


@pytest.mark.parametrize("command", [["train", "--data", "dna", "--layers", "5", "--epochs", "1", "--quiet"],
                                     ["sample", *FRESH_DNA, "--n", "1"], ["layers", *FRESH_DNA, "--n", "1"]])  # fmt: skip
def test_a_seed_beyond_64_bits_is_refused(command):
    """Catches "ValueError: Overflow when unpacking long long" (a traceback) for --seed 1e23."""
    res = bihm_here(*command, "--seed", "99999999999999999999999")
    assert res.exit_code == 1 and "--seed must be between 0 and" in one_error_line(res.stderr)


@pytest.mark.parametrize("args,blamed", [
    (["sample", *FRESH_DNA, "--n", HUGE], "--n 1,000,000,000,000 × -K"),
    (["sample", *FRESH_DNA, "--n", "2", "--inner-k", HUGE], "--inner-k 1,000,000,000,000"),
    (["sample", *FRESH_DNA, "--n", "2", "--steps", HUGE], "--steps 1,000,000,000,000"),
    (["inpaint", *FRESH_DNA, "--n", "2", "-K", HUGE], "-K 1,000,000,000,000"),
    (["layers", *FRESH_DNA, "--n", HUGE], "--n 1,000,000,000,000"),
    (["inpaint", *FRESH_DNA, "--index", ",".join(["0"] * 100_000), "-K", "10000"], "--index (100,000 images) × -K 10,000"),
])  # fmt: skip
def test_sampling_sizes_are_refused_before_allocating(args, blamed):
    """Catches the torch allocator's RuntimeError (asking for terabytes) or a command that never
    ends: the sizes are refused first, in one line naming the option — also when an --index list,
    not --n, sets the number of images (it was checked as the default --n 8)."""
    res = bihm_here(*args)
    assert res.exit_code == 1
    line = one_error_line(res.stderr)
    assert blamed in line and "is too large" in line, line


def test_eval_and_logz_refuse_absurd_sizes(tmp_path):
    """Catches `bihm eval -K 1e12` running forever silently and `bihm logz --inner 1e12` failing in
    the allocator: both are refused before any estimate starts (a fresh tiny run folder)."""
    res = bihm_here("train", "--data", "dna", "--layers", "3", "--epochs", "1", "--name", "t", "--quiet",
                    "--valid-max", "20", "--z-samples", "0", "--threads", "1")  # fmt: skip
    assert res.exit_code == 0, res.output
    res = bihm_here("eval", "t", "-K", HUGE, "--z-samples", "0")
    assert res.exit_code == 1 and "-K 1,000,000,000,000 on" in one_error_line(res.stderr)
    res = bihm_here("eval", "t", "-K", "1", "--z-samples", "1e15", "--z-inner", "1000")
    assert res.exit_code == 1 and "--z-samples 1,000,000,000,000,000 × --inner 1,000" in one_error_line(res.stderr)
    res = bihm_here("logz", "t", "--samples", "100", "--inner", HUGE)
    assert res.exit_code == 1 and "--inner 1,000,000,000,000 is too large" in one_error_line(res.stderr)


@pytest.mark.parametrize("threads", ["1000000", "²", "1" + "0" * 30, "0"])
def test_threads_beyond_any_machine_or_not_ascii_digits_are_refused(threads):
    """`--threads 1000000` made torch's thread pool crash the process (SIGSEGV, nothing printed),
    `--threads ²` (a digit to str.isdigit) and 10³⁰ were tracebacks (review, session 6)."""
    res = bihm_here("sample", *FRESH_DNA[:-2], "--n", "1", "--threads", threads)
    assert res.exit_code == 1 and "--threads must be auto or an integer from 1 to" in one_error_line(res.stderr)


@pytest.mark.parametrize("ks", ["inf", "1e309", "1,,10", "1.5"])
def test_a_k_list_that_is_not_integers_is_one_line(ks):
    """`bihm eval -K inf` was an OverflowError traceback; "1,,10" and "1.5" were read as 1, 10 and 1."""
    from bihm_app.errors import ConfigError
    from bihm_app.runner.evaluation import parse_k_list

    with pytest.raises(ConfigError, match="not a comma-separated list of integers"):
        parse_k_list(ks, what="-K")
    assert parse_k_list("1, 10,1e3", what="-K") == [1, 10, 1000]

