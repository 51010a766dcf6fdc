"""Long work without a terminal (nohup, a batch job) reports progress as plain lines now and then."""

from __future__ import annotations

import io

from rich.console import Console

from bihm_app.cli.log_progress import LogProgress


def _progress(monkeypatch, every: str | None = None):
    if every is None:
        monkeypatch.delenv("BIHM_PROGRESS_EVERY", raising=False)
    else:
        monkeypatch.setenv("BIHM_PROGRESS_EVERY", every)
    now = [0.0]
    buf = io.StringIO()
    prog = LogProgress(Console(file=buf, width=200), clock=lambda: now[0])
    return prog, now, buf


def test_lines_come_after_30_s_then_every_5_min_with_the_time_left(monkeypatch):
    """Catches silence (Rich's bar draws nothing without a terminal: a 2 log Z of hours said
    nothing), a line per advance (a log flooded by thousands of chunks), and a wrong time left."""
    prog, now, buf = _progress(monkeypatch)
    t = prog.add_task("2 log Z", total=1_000_000)
    for s in range(1, 1000):  # one chunk of 1,000 samples a second
        now[0] = float(s)
        prog.advance(t, 1000)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "2 log Z: 30,000/1,000,000 (3 %), 30s elapsed, about 16m 10s left"
    assert len(lines) == 1 + (999 - 30) // 300  # at 30 s, then 330, 630, 930 s
    assert lines[1] == "2 log Z: 330,000/1,000,000 (33 %), 5m 30s elapsed, about 11m 10s left"
    now[0] = 2000.0
    prog.advance(t, 1000)  # finished: no line (the command prints its result)
    assert len(buf.getvalue().splitlines()) == len(lines)


def test_unknown_totals_and_the_environment_override(monkeypatch):
    prog, now, buf = _progress(monkeypatch, every="2")
    t = prog.add_task("classify K = 10")
    now[0] = 3.0
    prog.advance(t, 50)
    prog.update(t, total=200)
    now[0] = 6.0
    prog.advance(t, 50)
    assert buf.getvalue().splitlines() == ["classify K = 10: 50 done, 3s elapsed",
                                           "classify K = 10: 100/200 (50 %), 6s elapsed, about 6s left"]  # fmt: skip
    prog, now, buf = _progress(monkeypatch, every="soon")  # unreadable: the defaults
    assert (prog.first, prog.every) == (30.0, 300.0)


def test_a_command_without_a_terminal_logs_its_progress(monkeypatch, tmp_path):
    """End to end: `bihm logz` with stderr captured (not a terminal) writes progress lines to stderr
    and keeps stdout for the result."""
    from typer.testing import CliRunner

    from bihm_app.cli.app import app

    monkeypatch.setenv("BIHM_PROGRESS_EVERY", "0.000001")
    cli = CliRunner()
    res = cli.invoke(app, ["train", "--data", "dna", "--layers", "8,4", "--epochs", "1", "--valid-max", "50",
                           "--z-samples", "0", "--quiet", "--name", "r"])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["logz", "r", "--samples", "1000000", "--json"])
    assert res.exit_code == 0, res.output
    assert "2 log Z: " in res.stderr and "elapsed" in res.stderr and "2 log Z: " not in res.stdout
