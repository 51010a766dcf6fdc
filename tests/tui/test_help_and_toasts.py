"""Cosmetics a new user notices: the help screen's wrapped lines, the runs list's layers column,
paths in toasts."""

from __future__ import annotations

from bihm_app.tui.app import make_app
from bihm_app.tui.screens.help import HelpScreen
from bihm_app.tui.screens.run import RunScreen
from tests.tui.runs_fixture import make_run
from tests.tui.test_layout import screen_lines
from tests.tui.test_screens import runs_loaded, wait_for


def _help_box(lines: list[str]) -> list[str]:
    """The text inside the help box's border, a line per row."""
    top = next(r for r, line in enumerate(lines) if "╭" in line)
    left, right = lines[top].index("╭"), lines[top].index("╮")
    bottom = next(r for r, line in enumerate(lines) if r > top and "╰" in line)
    return [line[left + 2 : right - 1] for line in lines[top + 1 : bottom]]


async def _open_help(app, pilot, open_screen, screen_type) -> list[str]:
    """Open a screen (``open_screen()``), press ``?`` and return the help box's lines."""
    await runs_loaded(pilot)
    open_screen()
    await wait_for(pilot, lambda: isinstance(app.screen, screen_type))
    await pilot.press("question_mark")
    await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
    await pilot.pause(0.2)
    return _help_box(screen_lines(app))


async def test_wrapped_help_lines_keep_their_indent_at_80_columns(runs_root):
    """Catches a long key description (the run view's `v`, ctrl+q) whose wrapped continuation
    starts at the box's left edge, under the keys, instead of under the description."""
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=(80, 60)) as pilot:  # tall: the whole help text on screen
        box = await _open_help(app, pilot, lambda: app.open_run("beta"), RunScreen)
        under = app.screen.under
    keys = {app.get_key_display(b) for b in [*under.BINDINGS, *app.BINDINGS]}
    first = next(i for i, line in enumerate(box) if line.strip() == "run beta")
    rows = [line for line in box[first + 1 :] if line.strip() and line.strip() != "everywhere"]
    assert any(line[:14].strip() == "" for line in rows), box  # some description did wrap
    for line in rows:
        assert line[:14].strip() in keys | {""}, f"a wrapped line lost its indent: {line!r}"


def test_a_path_in_a_toast_breaks_after_a_slash_not_inside_a_name():
    """Catches toast paths that wrap mid-word: every line is at most the width and ends with '/'
    (or is the last), and the parts joined give the path back."""
    from bihm_app.tui.format import wrap_path

    path = "$BIHM_HOME/runs/alpha/pictures/samples-gibbs-seed0.png"
    for width in (20, 36, 57):
        lines = wrap_path(path, width).split("\n")
        assert "".join(lines) == path
        assert all(len(line) <= width and line.endswith("/") for line in lines[:-1]), lines


async def test_the_runs_list_shows_a_deep_nets_layers_whole_where_there_is_room(tmp_path):
    """Catches the layers column cut to 10 characters ("300,200,1…") even at 200 columns, where
    the table has room for the whole list."""
    root = tmp_path / "runs"
    make_run(root, "deep", layers=(300, 200, 100, 50, 20, 10), epochs=2, per_epoch=2)
    app = make_app(root, cursor_blink=False)
    async with app.run_test(size=(200, 30)) as pilot:
        await runs_loaded(pilot)
        await pilot.pause(0.2)
        text = "\n".join(screen_lines(app))
    assert "300,200,100,50,20,10" in text, text


async def test_the_inpaint_help_shows_the_bracket_key_without_markup(runs_root, monkeypatch):
    """Catches the inpaint screen's help row for `[` (previous test image) reading
    "[[/b]  Previous test image": a lone "[" left unescaped swallowed the closing [/b] tag."""
    from bihm_app.tui.screens.inpaint import InpaintScreen

    monkeypatch.setattr("bihm_app.tui.screens.inpaint.FRAME_S", 0.0)
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=(100, 60)) as pilot:
        box = await _open_help(app, pilot, lambda: app.open_inpaint("alpha"), InpaintScreen)
    rows = {line.strip() for line in box}
    assert "[  Previous test image" in rows, box
    assert "]  Next test image" in rows, box
    assert not any("[/b]" in line for line in box), box


def test_escaped_text_with_a_lone_bracket_keeps_the_markup_after_it():
    """Catches format.escape leaving a "[" not followed by a tag name as it is: Textual's markup
    then reads it as the start of a tag and shows the next real tag ("[/b]") as text."""
    from textual.markup import to_content

    from bihm_app.tui.format import escape

    for text in ("[", "a [ b", "x[1", "[Errno 2] no such file", "[b]", "a\\[b", "back\\slash"):
        assert to_content(f"[b]{escape(text)}[/b] tail").plain == f"{text} tail"
    # a trailing backslash (a Windows-style folder name) escaped the next tag: a markup error
    folder = "C:\\runs\\"
    assert to_content("[b]" + escape(folder) + "[/b] tail").plain.replace("\u200b", "") == folder + " tail"
