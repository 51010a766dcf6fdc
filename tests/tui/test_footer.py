"""The footer at 80 columns: whole labels, the most important keys first, ``? more`` for the rest."""

from __future__ import annotations

import re

from textual.widgets._footer import FooterKey

from bihm_app.tui.app import make_app
from bihm_app.tui.widgets.key_footer import PINNED, KeyFooter
from tests.tui.semisup_fixture import make_semi_run
from tests.tui.test_layout import footer_line
from tests.tui.test_screens import runs_loaded, wait_for

NARROW = (80, 24)


def _check_footer(app, name: str) -> None:
    """Every key shown lies whole inside the footer (its label too); keys left out are announced."""
    screen = next(s for s in reversed(app.screen_stack) if not s.is_modal)  # help: the footer below it
    footer = screen.query_one(KeyFooter)
    line = footer_line(app)
    box = footer.query_one(".footer-keys").region
    shown = [k for k in footer.query(FooterKey) if k.display]  # app.tcss hides ^p palette below 100 columns
    for key in shown:
        label = f"{key.key_display} {key.description}".strip()
        if key.parent is not None and "footer-keys" in key.parent.classes:
            assert key.region.right <= box.right, f"{name}: {label!r} is cut at the edge: {line!r}"
        assert label in line, f"{name}: {label!r} not whole in {line!r}"
    pinned = {k for slot in PINNED for k in slot} | {app.COMMAND_PALETTE_BINDING}
    wanted = {b.key for _, b, _, _ in screen.active_bindings.values() if b.show and b.key not in pinned}
    missing = wanted - {k.key for k in shown}
    if missing:
        assert re.search(r"(\?|f1) more\b", line), f"{name}: keys {sorted(missing)} left out silently: {line!r}"


async def test_every_footer_at_80_columns_shows_whole_labels_and_says_when_keys_are_left_out(runs_root):
    """Catches a footer that cuts its last label ("x Sto", "s Samp", "[ Image −", "g Regene" at 80
    columns), and one that drops keys (the runs list's r, y, f5) without saying ``? more``."""
    make_semi_run(runs_root)
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=NARROW) as pilot:
        await runs_loaded(pilot)
        openers = {
            "runs": None,
            "run": lambda: app.open_run("beta"),
            "samples": lambda: app.open_samples("alpha"),
            "inpaint": lambda: app.open_inpaint("alpha"),
            "layers": lambda: app.open_layers("alpha"),
            "compare": lambda: app.open_compare(["alpha", "beta"]),
            "classify": lambda: app.open_classify("semi"),
            "new run": app.action_new_run,
            "help": app.action_help,
        }
        for name, open_screen in openers.items():
            if open_screen is not None:
                open_screen()
            whole = lambda: re.search(r"\b(Help|more)\b.*\bQuit\s*$", footer_line(app))  # noqa: E731
            await wait_for(pilot, whole)
            await pilot.pause(0.3)  # a model loading or the focus moving recomposes the footer once more
            await wait_for(pilot, whole)
            _check_footer(app, name)
            if open_screen is not None:
                app.pop_screen()
                await pilot.pause(0.1)


def test_fit_keys_prefers_long_labels_then_short_ones_then_the_first_keys():
    """Catches a footer that shortens labels although the long ones fit, or drops keys from the
    front (the most important) instead of the end."""
    from bihm_app.tui.widgets.key_footer import fit_keys

    keys = [("g", "Regenerate"), ("b", "Braille/blocks")]
    assert fit_keys(keys, 100, compact=True) == (["Regenerate", "Braille/blocks"], 0)
    assert fit_keys(keys, 20, compact=True) == (["Redraw", "Pixels"], 0)
    assert fit_keys(keys, 10, compact=True) == (["Redraw"], 1)
