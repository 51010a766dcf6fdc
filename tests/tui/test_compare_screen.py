"""The compare screen at 80×24: one scrolling page, every metric on screen, ESS in percent, one
report at a time."""

from __future__ import annotations

import threading
from pathlib import Path

from textual.widgets import DataTable, Static

from bihm_app.tui.app import make_app
from bihm_app.tui.screens import compare as compare_screen
from bihm_app.tui.screens.compare import CompareScreen
from tests.tui.test_layout import screen_lines
from tests.tui.test_screens import runs_loaded, wait_for

NARROW = (80, 24)


async def _open_compare(app, pilot) -> CompareScreen:
    await runs_loaded(pilot)
    app.open_compare(["alpha", "beta"])
    await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.facts)
    await pilot.pause(0.2)
    return app.screen


async def test_end_scrolls_the_compare_page_to_its_last_config_key_at_80x24(runs_root, monkeypatch):
    """Catches a compare page whose PageDown/End stop at the configuration table (a table of its
    own that scrolls only once focused with Tab): End must bring the last key on screen. The runs
    get 40 config keys, as many as a real run's (the fixture's have 10)."""
    real = compare_screen.compare_runs

    def many_keys(root, names):
        facts = real(root, names)
        for f in facts:
            f.config |= {f"train.extra_{i:02d}": str(i) for i in range(30)}
        return facts

    monkeypatch.setattr(compare_screen, "compare_runs", many_keys)
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=NARROW) as pilot:
        screen = await _open_compare(app, pilot)
        await pilot.press("a")  # every key, equal ones too
        config = screen.query_one("#compare-config", DataTable)
        last = str(config.get_row_at(config.row_count - 1)[0])
        assert not any(last in line for line in screen_lines(app))  # below the fold
        await pilot.press("end")
        await wait_for(pilot, lambda: any(line.strip().startswith(last) for line in screen_lines(app)[:-1]))
        await pilot.press("home")
        await wait_for(pilot, lambda: any("metrics at each run's best epoch" in line for line in screen_lines(app)))


async def test_compare_at_80x24_shows_the_cached_test_column_and_ess_in_percent(runs_root):
    """Catches the "test (cached)" column cut off at 80 columns (it appeared only at 200), and an
    ESS shown as a bare fraction ("0.3") where `bihm train` and `bihm eval` print percent of K
    (the fixture's ESS fraction is 0.259: "25.9 %")."""
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=NARROW) as pilot:
        await _open_compare(app, pilot)
        text = "\n".join(screen_lines(app))
        assert "test (cached)" in text, text
        assert "25.9 %" in text and "0.3 " not in text, text


async def test_a_second_report_is_refused_while_one_is_being_written(runs_root, monkeypatch):
    """Catches `r` pressed twice starting two reports in two folders, and a report that gives no
    sign of work until it is written (~20 s): the screen must say it is writing, refuse the second
    press with a toast, and say where the report went (relative to BIHM_HOME, not wrapping)."""
    release, calls = threading.Event(), []

    def slow_report(root: Path, names: list[str]) -> Path:
        calls.append(names)
        release.wait(20)
        out = root.parent / "reports" / f"compare-{len(calls)}"
        out.mkdir(parents=True)
        return out / "report.md"

    monkeypatch.setattr(compare_screen, "write_compare_report", slow_report)
    monkeypatch.setenv("BIHM_HOME", str(runs_root.parent))
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=NARROW) as pilot:
        screen = await _open_compare(app, pilot)
        status = screen.query_one("#compare-status", Static)
        await pilot.press("r")
        await wait_for(pilot, lambda: len(calls) == 1)
        await pilot.pause(0.1)
        assert status.display and "writing the report" in str(status.render())
        await pilot.press("r")
        await wait_for(pilot, lambda: any("already" in str(n.message) for n in app._notifications))
        release.set()
        await wait_for(pilot, lambda: any("report written" in str(n.message) for n in app._notifications))
        await pilot.pause(0.1)
        assert not status.display
        written = next(str(n.message) for n in app._notifications if "report written" in str(n.message))
        assert "$BIHM_HOME/reports/compare-1/report.md" in written.replace("\n", ""), written
    assert len(calls) == 1 and len(list((runs_root.parent / "reports").iterdir())) == 1
