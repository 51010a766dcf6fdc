"""Rich tables that fit the terminal's width without squeezing anything.

Rich fits a wide table by shrinking columns, which cuts values to ``stopp…`` or collapses a column
to nothing. :func:`fit_table` never lets a column be narrower than its longest value. Instead it
tries, in order, until the table fits:

1. the full table, boxed;
2. the columns' short headers (``best p̃*`` for ``best valid log p̃*``; ``#1`` for a run's name,
   explained in a note below);
3. a compact style (no box, two spaces between columns);
4. without the optional columns, the least valuable first (``Column.drop`` 1, 2, …), named in a
   note below so that nothing disappears silently;
5. the columns after the first ``key`` ones split over several tables, in groups of ``group``
   (a column per run, per class …, which cannot be dropped), the key columns repeated;
6. only then, values wrapped onto more lines (still whole, never cut).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "fit_table"]


@dataclass(frozen=True)
class Column:
    """A column: ``drop`` 0 is always shown, 1 is dropped first, then 2 …; ``short`` is the header
    used when the full one does not fit (``explain``: and a note says what it stands for)."""

    header: str
    justify: str = "left"
    drop: int = 0
    short: str | None = None
    style: str | None = None
    explain: bool = False


_MEASURE = Console(width=1_000_000, file=io.StringIO(), color_system=None, force_terminal=False)


def _table(columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str, compact: bool,
           fold: bool = False, **kwargs) -> Table:  # fmt: skip
    style = dict(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True) if compact else {}
    t = Table(title=title or None, title_justify="left", **style, **kwargs)
    for c in columns:
        t.add_column(c.header, justify=c.justify, style=c.style, no_wrap=not fold, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        t.add_row(*row)
    return t


def _width(columns, rows, compact: bool, **kwargs) -> int:
    return _MEASURE.measure(_table(columns, rows, "", compact, **kwargs)).maximum


def _pick(columns: Sequence[Column], rows: Sequence[Sequence[str]], keep: list[int]):
    return [columns[i] for i in keep], [[row[i] for i in keep] for row in rows]


def fit_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, title: str = "",
              key: int = 1, group: int = 1, **kwargs) -> list[RenderableType]:  # fmt: skip
    """What to print for ``rows`` (cells as Rich markup) within ``width`` cells: usually one table,
    several when step 5 of the module docstring splits the columns, then a note of the short
    headers and the columns left out, if any. ``kwargs`` go to every ``Table``."""
    shorts = [replace(c, header=c.short) if c.short else c for c in columns]
    if _width(columns, rows, False, **kwargs) <= width:
        return [_table(columns, rows, title, False, **kwargs)]
    notes = [f"{c.short} = {c.header}" for c in columns if c.short and c.explain]
    for compact in (False, True):
        if _width(shorts, rows, compact, **kwargs) <= width:
            return [_table(shorts, rows, title, compact, **kwargs), *_note(notes)]
    keep = list(range(len(columns)))
    for level in sorted({c.drop for c in columns if c.drop > 0}):
        keep = [i for i in keep if columns[i].drop == 0 or columns[i].drop > level]
        cols, cells = _pick(shorts, rows, keep)
        if _width(cols, cells, True, **kwargs) <= width:
            break
    hidden = [c.header for i, c in enumerate(columns) if i not in keep]
    if hidden:
        notes.append(f"not shown at {width} columns: {', '.join(hidden)} (a wider terminal shows them)")
    cols, cells = _pick(shorts, rows, keep)
    if _width(cols, cells, True, **kwargs) <= width:
        return [_table(cols, cells, title, True, **kwargs), *_note(notes)]
    return [*_split(shorts, rows, keep, width, title, key, group, **kwargs), *_note(notes)]


def _note(lines: list[str]) -> list[RenderableType]:
    return [Text("\n".join(lines), style="dim")] if lines else []


def _split(shorts, rows, keep: list[int], width: int, title: str, key: int, group: int, **kwargs) -> list[Table]:
    """Steps 5 and 6: the kept columns after the ``key`` ones in groups, as many groups per table as fit."""
    head, rest = keep[:key], keep[key:]
    groups = [rest[i : i + max(1, group)] for i in range(0, len(rest), max(1, group))]
    tables, current = [], []
    for g in groups:
        cols, cells = _pick(shorts, rows, head + current + g)
        if current and _width(cols, cells, True, **kwargs) > width:
            tables.append(current)
            current = []
        current = current + g
    if current or not tables:
        tables.append(current)
    out = []
    for n, part in enumerate(tables):
        cols, cells = _pick(shorts, rows, head + part)
        fold = _width(cols, cells, True, **kwargs) > width
        out.append(_table(cols, cells, title if n == 0 else "(continued)", True, fold=fold, **kwargs))
    return out
