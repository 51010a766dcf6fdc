"""Read the tables back out of a command's text output, to check that every value is whole.

A table's header line is the line above its rule (``┡━━`` boxed, ``───`` compact); its rows follow
until the bottom border, a blank line or text that is not a row. Cells are split at box lines or
at two or more spaces (values never hold two spaces in a row).
"""

from __future__ import annotations

import re

from rich.cells import cell_len

_SPLIT = re.compile(r"\s*[┃│]\s*|\s{2,}")
_RULE = re.compile(r"^\s*[┡╇━─┼╪]+[━─┡╇┩┼]*\s*$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in _SPLIT.split(line.strip()) if c.strip()]


def tables_in(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every (headers, rows) of the tables in ``text``."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if i == 0 or not _RULE.match(line) or not lines[i - 1].strip():
            continue
        headers, rows = _cells(lines[i - 1]), []
        for j in range(i + 1, len(lines)):
            row, ahead = lines[j], lines[j + 1 : j + 3]
            if not row.strip() or row.lstrip().startswith(("└", "not shown", "#1 = ", "(continued)")) or any(_RULE.match(a) for a in ahead):
                break  # the end, a caption, or the title or header of the next table
            rows.append(_cells(row))
        found.append((headers, rows))
    return found


def assert_whole(text: str, width: int, columns, rows: list[list[str]], always: tuple[str, ...] = ()) -> list[str]:
    """Check that ``text`` (at most ``width`` columns) shows ``rows`` whole: every shown header is a
    full header or its short form (``columns``: {header: short} or [(header, short)] when headers
    repeat), every shown value equals the expected one, nothing is cut (no ``…`` but in expected
    values), ``always`` columns are shown. Returns the shown headers."""
    columns = list(columns.items()) if isinstance(columns, dict) else list(columns)
    assert all(cell_len(line) <= width for line in text.splitlines()), text
    rest = text
    for cell in {c for row in rows for c in row if "…" in c}:  # an abbreviation the command chose
        rest = rest.replace(cell, "")
    assert "…" not in rest, text
    names = [n for n, _ in columns]
    shorts = [sh for _, sh in columns]
    shown_all: list[str] = []
    for headers, got in tables_in(text):
        idx: list[int] = []
        for h in headers:  # the next column with this header (headers may repeat: Δ/SE per evaluation)
            match = [i for i, n in enumerate(names) if h in (n, shorts[i]) and (not idx or i > idx[-1])]
            assert match, f"header {h!r} is not a whole header of {names} (or out of order)\n{text}"
            idx.append(match[0])
        shown_all += [names[i] for i in idx]
        want = [[row[i] for i in idx if row[i] != ""] for row in rows]  # an empty cell cannot be read back
        assert got == want, f"\n{text}\nexpected rows {want}\ngot {got}"
    assert shown_all, f"no table found in\n{text}"
    for name in always:
        assert name in shown_all, f"column {name!r} is missing at {width} columns\n{text}"
    return shown_all
