"""Rich tables that fit the terminal's width without squeezing anything.

Rich fits a wide table by shrinking columns, which cuts values to ``stopp…`` or collapses a column
to nothing. :func:`fit_table` never lets a column be narrower than its longest value. Instead it
tries, in order, until the table fits:

1. the full table, boxed;
2. the columns' short headers (``best p̃*`` for ``best valid log p̃*``);
3. a compact style (no box, two spaces between columns);
4. without the optional columns, the least valuable first (``Column.drop`` 1, 2, …), named in a
   caption so that nothing disappears silently;
5. the columns after the first ``key`` ones split over several tables, in groups of ``group``
   (a column per run, per class …, which cannot be dropped), the key columns repeated;
6. only then, values wrapped onto more lines (still whole, never cut).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rich import box
from rich.console import Console
from rich.table import Table

__all__ = ["Column", "fit_table"]


@dataclass(frozen=True)
class Column:
    """A column: ``drop`` 0 is always shown, 1 is dropped first, then 2 …; ``short`` is the header
    used when the full one does not fit."""

    header: str
    justify: str = "left"
    drop: int = 0
    short: str | None = None
    style: str | None = None


_MEASURE = Console(width=1_000_000, file=io.StringIO(), color_system=None, force_terminal=False)


def _table(columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str, compact: bool,
           caption: str | None = None, fold: bool = False, **kwargs) -> Table:  # fmt: skip
    style = dict(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True) if compact else {}
    t = Table(title=title or None, title_justify="left", caption=caption, caption_justify="left", **style, **kwargs)
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
              key: int = 1, group: int = 1, **kwargs) -> list[Table]:  # fmt: skip
    """Tables showing ``rows`` (cells as Rich markup) within ``width`` cells: usually one, several
    when step 5 of the module docstring splits the columns. ``kwargs`` go to every ``Table``."""
    shorts = [replace(c, header=c.short) if c.short else c for c in columns]
    for cols, compact in ((columns, False), (shorts, False), (shorts, True)):
        if _width(cols, rows, compact, **kwargs) <= width:
            return [_table(cols, rows, title, compact, **kwargs)]
    keep = list(range(len(columns)))
    caption = None
    for level in sorted({c.drop for c in columns if c.drop > 0}):
        keep = [i for i in keep if columns[i].drop == 0 or columns[i].drop > level]
        hidden = ", ".join(c.header for i, c in enumerate(columns) if i not in keep)
        caption = f"not shown at {width} columns: {hidden} (a wider terminal shows them)"
        cols, cells = _pick(shorts, rows, keep)
        if _width(cols, cells, True, **kwargs) <= width:
            return [_table(cols, cells, title, True, caption=caption, **kwargs)]
    return _split(shorts, rows, keep, width, title, key, group, caption, **kwargs)


def _split(shorts, rows, keep: list[int], width: int, title: str, key: int, group: int, caption: str | None,
           **kwargs) -> list[Table]:  # fmt: skip
    """Step 5 and 6: the kept columns after the ``key`` ones in groups, as many groups per table as fit."""
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
        name = title if n == 0 or not title else f"{title} (continued)"
        last = n == len(tables) - 1
        out.append(_table(cols, cells, name, True, caption=caption if last else None, fold=fold, **kwargs))
    return out
