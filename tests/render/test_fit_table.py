"""render/fit_table.py: each step of fitting a table to a width, in order, and values never cut."""

from __future__ import annotations

import io

from rich.console import Console

from bihm_app.render.fit_table import Column, fit_table
from tests.cli.table_check import assert_whole, tables_in


def _text(tables, width: int) -> str:
    con = Console(width=width, file=io.StringIO(), color_system=None, record=True)
    for t in tables:
        con.print(t)
    return con.export_text()


COLS = [Column("name"), Column("status"), Column("a long header", "right", drop=2, short="short"),
        Column("layers", drop=1)]  # fmt: skip
ROWS = [["run-one", "stopped", "-12.50", "300,200,100"], ["run-two", "finished", "-3.25", "10,10"]]
SPEC = {"name": None, "status": None, "a long header": "short", "layers": None}


def test_a_table_that_fits_is_left_as_it_is():
    text = _text(fit_table(COLS, ROWS, 200, title="t"), 200)
    assert "┃ a long header ┃" in text
    assert assert_whole(text, 200, SPEC, ROWS) == list(SPEC)


def test_short_headers_then_the_compact_style_come_before_dropping_anything():
    boxed_full = len("│ run-two │ finished │ a long header │ 300,200,100 │")
    text = _text(fit_table(COLS, ROWS, boxed_full - 4, title="t"), boxed_full - 4)
    assert "a long header" not in text and "short ┃" in text and assert_whole(text, boxed_full - 4, SPEC, ROWS) == list(SPEC)
    compact = len("run-two  finished  -12.50  300,200,100")
    text = _text(fit_table(COLS, ROWS, compact), compact)
    assert "┃" not in text and assert_whole(text, compact, SPEC, ROWS) == list(SPEC)


def test_the_least_valuable_column_goes_first_and_the_caption_says_so():
    width = 30  # "run-two  finished  -12.50" is 25 wide, with the layers 38
    text = _text(fit_table(COLS, ROWS, width), width)
    assert assert_whole(text, width, SPEC, ROWS) == ["name", "status", "a long header"]
    assert "not shown at" in text and "layers" in text


def test_columns_that_cannot_be_dropped_are_split_over_tables_with_the_key_repeated():
    """A confusion matrix or one column per compared run: no column may go, so the table splits."""
    cols = [Column("metric")] + [Column(f"run {i}", "right") for i in range(6)]
    rows = [["log p(x)"] + [f"-1{i}.25 ± 0.31" for i in range(6)], ["epoch"] + [str(10 + i) for i in range(6)]]
    tables = fit_table(cols, rows, 60, title="metrics")
    assert len(tables) >= 2
    text = _text(tables, 60)
    spec = {c.header: None for c in cols}
    shown = assert_whole(text, 60, spec, rows)
    assert sorted(set(shown)) == sorted(spec) and shown.count("metric") == len(tables)
    assert "(continued)" in text


def test_groups_stay_together_when_split():
    cols = [Column("set"), *(Column(h, "right") for i in range(3) for h in (f"ours {i}", f"Δ {i}"))]
    rows = [["adult", *[f"-13.{i}0 ± 0.05" if j % 2 == 0 else f"+{i}.5" for i in range(3) for j in range(2)]]]
    tables = fit_table(cols, rows, 40, group=2)
    heads = [h for h, _ in tables_in(_text(tables, 40))]
    assert all(len(h) == 3 and h[1].startswith("ours") and h[2].startswith("Δ") for h in heads), heads


def test_when_nothing_else_helps_values_wrap_but_are_never_cut():
    cols = [Column("name"), Column("status")]
    rows = [["x" * 70, "stopped"]]
    text = _text(fit_table(cols, rows, 40), 40)
    assert "…" not in text and "stopped" in text
    assert "".join(line.split()[0] for line in text.splitlines() if line.startswith("x")) == "x" * 70
