"""SVG snapshots of the main screens (pytest-textual-snapshot), at 100×30 and, for every screen,
at 80×24 (issue #15: nothing needed is cut off on a small terminal).

Deterministic: the runs folder is given as the relative path ``runs`` (no temp path on screen),
statuses carry a fixed old date, samples use seed 0, cursors do not blink, and the device list is
fixed. Regenerate after a deliberate UI change: ``pytest tests/tui --snapshot-update``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from bihm_app.runner.pictures import INPAINTING
from bihm_app.tui.app import make_app
from bihm_app.tui.screens.compare import CompareScreen
from bihm_app.tui.screens.inpaint import InpaintScreen
from bihm_app.tui.screens.layers import LayersScreen
from bihm_app.tui.screens.new_run import NewRunScreen
from bihm_app.tui.screens.run import RunScreen
from bihm_app.tui.screens.runs import RunsScreen
from bihm_app.tui.screens.samples import SamplesScreen

SIZE = (100, 30)
SMALL = (80, 24)


@pytest.fixture
def app(runs_root, monkeypatch):
    monkeypatch.chdir(runs_root.parent)
    monkeypatch.setattr(
        "bihm_app.tui.devices.list_devices", lambda: [("auto  (cpu)", "auto"), ("cpu  4 cores", "cpu")]
    )
    return make_app(Path("runs"), cursor_blink=False)


async def _until(pilot, cond, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "screen did not get ready"
        await pilot.pause(0.01)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)


def _runs_ready(pilot):
    return _until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen) and pilot.app.screen.refreshes >= 1)


def test_snapshot_runs(app, snap_compare):
    assert snap_compare(app, terminal_size=SIZE, run_before=_runs_ready)


def test_snapshot_runs_at_80x24(app, snap_compare):
    assert snap_compare(app, terminal_size=(80, 24), run_before=_runs_ready)


def test_snapshot_run(app, snap_compare):
    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.open_run("beta")
        await _until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.redraws >= 1)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_snapshot_samples(app, snap_compare):
    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.open_samples("alpha")
        await _until(pilot, lambda: isinstance(pilot.app.screen, SamplesScreen) and pilot.app.screen.generated >= 1)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_snapshot_compare(app, snap_compare):
    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.open_compare(["alpha", "beta"])
        await _until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen) and pilot.app.screen.facts)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_snapshot_new_run(app, snap_compare):
    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.action_new_run()
        await _until(pilot, lambda: isinstance(pilot.app.screen, NewRunScreen))

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_snapshot_help_in_light_theme(app, snap_compare):
    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.theme = "textual-light"
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


# -- every screen at 80×24 -------------------------------------------------------------------------
def test_snapshot_run_at_80x24(app, snap_compare):
    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.open_run("beta")
        await _until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.redraws >= 1)

    assert snap_compare(app, terminal_size=SMALL, run_before=before)


def test_snapshot_semisup_run_at_80x24(app, runs_root, snap_compare):
    from tests.tui.test_semisup_screens import _semi_run

    _semi_run(runs_root)

    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.open_run("semi")
        await _until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.redraws >= 1)

    assert snap_compare(app, terminal_size=SMALL, run_before=before)


def test_snapshot_new_run_at_80x24(app, snap_compare):
    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.action_new_run()
        await _until(pilot, lambda: isinstance(pilot.app.screen, NewRunScreen))

    assert snap_compare(app, terminal_size=SMALL, run_before=before)


def test_snapshot_samples_in_half_blocks_at_80x24(app, snap_compare):
    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.open_samples("alpha")
        await _until(pilot, lambda: isinstance(pilot.app.screen, SamplesScreen) and pilot.app.screen.generated >= 1)
        await pilot.press("b")  # half blocks: two digits per row at 80 columns
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SMALL, run_before=before)


def test_snapshot_layers_at_80x24(app, snap_compare):
    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.open_layers("beta")
        await _until(pilot, lambda: isinstance(pilot.app.screen, LayersScreen) and pilot.app.screen.generated >= 1)

    assert snap_compare(app, terminal_size=SMALL, run_before=before)


def test_snapshot_inpaint_at_80x24(app, snap_compare, monkeypatch):
    monkeypatch.setattr("bihm_app.tui.screens.inpaint.FRAME_S", 0.0)
    monkeypatch.setattr("bihm_app.tui.screens.inpaint.CONFIG", replace(INPAINTING, steps=3))

    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.open_inpaint("alpha")
        await _until(pilot, lambda: isinstance(pilot.app.screen, InpaintScreen) and pilot.app.screen.sweep >= 3)

    assert snap_compare(app, terminal_size=SMALL, run_before=before)


def test_snapshot_compare_at_80x24(app, snap_compare):
    async def before(pilot):
        await _runs_ready(pilot)
        pilot.app.open_compare(["alpha", "beta"])
        await _until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen) and pilot.app.screen.facts)

    assert snap_compare(app, terminal_size=SMALL, run_before=before)


def test_snapshot_help_at_80x24(app, snap_compare):
    async def before(pilot):
        await _runs_ready(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SMALL, run_before=before)
