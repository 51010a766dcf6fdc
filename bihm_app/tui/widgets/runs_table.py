"""The runs table: a row per run, columns fitted to the width, Home/End to the first/last run.

The screen says which columns there are (label, key, width; ``None`` = the run-name column, as
wide as the names) and which may be left out when the table is narrow, least useful first; the
table keeps every row's cells and shows the columns that fit, so at 80 columns the whole row —
age included — is on screen without scrolling sideways.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.binding import Binding
from textual.widgets import DataTable

Column = tuple[str, str, "int | None"]  # (label, key, width; None: fit the names)

MIN_NAME = 12  # the run-name column is cut to no less than this before columns are dropped
MAX_NAME = 32  # nor made wider than this (the detail line shows names whole)


class RunsTable(DataTable):
    """A row-cursor table of runs whose columns follow the available width."""

    BINDINGS = [
        Binding("home", "first_row", "First run", show=False),
        Binding("end", "last_row", "Last run", show=False),
    ]

    def __init__(self, columns: Sequence[Column], optional: Sequence[str] = (), grow: dict[str, int] | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        kwargs.setdefault("cursor_type", "row")
        super().__init__(**kwargs)
        self.all_columns = list(columns)
        self.optional = list(optional)  # keys that may be left out, the first one first
        self.grow = dict(grow or {})  # key -> widest: columns that take free width for longer values
        self.widths: dict[str, int] = {}  # the width each shown column was built with
        self.shown: list[Column] = []
        self._rows: dict[str, list] = {}
        self._order: list[str] = []
        self._layout: tuple | None = None  # (column widths, name width) the columns were built for

    # -- columns ---------------------------------------------------------------------------------
    def fit(self, width: int, names: Sequence[str]) -> tuple[list[Column], int]:
        """The columns that fit ``width`` cells and the width of the name column."""
        pad = 2 * self.cell_padding
        natural = min(MAX_NAME, max([3] + [len(n) for n in names]))
        shown = list(self.all_columns)
        droppable = [k for k in self.optional if any(c[1] == k for c in shown)]

        def fixed(cols: list[Column]) -> int:
            return sum((w or 0) + pad for _, _, w in cols)

        while width > 0 and fixed(shown) + min(natural, MIN_NAME) > width and droppable:
            key = droppable.pop(0)
            shown = [c for c in shown if c[1] != key]
        name_width = natural if width <= 0 else max(min(natural, MIN_NAME), min(natural, width - fixed(shown)))
        return shown, name_width

    def grown(self, width: int, shown: list[Column], name_width: int) -> dict[str, int]:
        """Each shown column's width: its own (the names' for the name column), and the free width
        of the table given to the :attr:`grow` columns whose values are longer, up to their widest."""
        widths = {key: name_width if w is None else w for _, key, w in shown}
        free = width - sum(w + 2 * self.cell_padding for w in widths.values())
        keys = [c[1] for c in self.all_columns]
        for key, widest in self.grow.items():
            if key not in widths or free <= 0:
                continue
            longest = max([len(str(cells[keys.index(key)])) for cells in self._rows.values()] + [0])
            extra = max(0, min(longest, widest) - widths[key])
            widths[key] += min(extra, free)
            free -= min(extra, free)
        return widths

    def _relayout(self, force: bool = False) -> bool:
        """Rebuild the columns if the width or the names call for other ones; True if rebuilt."""
        width = self.scrollable_content_region.width
        shown, name_width = self.fit(width, self._order)
        widths = self.grown(width, shown, name_width)
        layout = (tuple(widths.items()), name_width)
        if not force and layout == self._layout:
            return False
        self._layout = layout
        self.widths = widths
        selected = self.selected_key()
        self.shown = shown
        self.clear(columns=True)
        for label, key, _ in shown:
            self.add_column(label, key=key, width=widths[key])
        for key in self._order:
            self.add_row(*self._visible(self._rows[key]), key=key)
        if selected in self._order:
            self.move_cursor(row=self._order.index(selected))
        return True

    def _visible(self, cells: list) -> list:
        keep = {c[1] for c in self.shown}
        return [_clip(cell, self.widths.get(key)) for (_, key, _), cell in zip(self.all_columns, cells) if key in keep]

    def on_resize(self) -> None:
        self._relayout()

    # -- rows ------------------------------------------------------------------------------------
    def show_rows(self, rows: Sequence[tuple[str, list]]) -> None:
        """Show these (key, cells) rows, cells in the order of all the columns; the cursor stays
        on the same run. Cells of unchanged rows are updated in place (no flicker)."""
        order = [k for k, _ in rows]
        self._rows = {k: list(cells) for k, cells in rows}
        if order != self._order:
            self._order = order
            self._relayout(force=True)
            return
        if self._relayout():  # a new width, new names, or longer values for a growing column
            return
        for key, cells in rows:
            for (_, col, _), cell in zip(self.shown, self._visible(cells)):
                self.update_cell(key, col, cell)

    def set_cell(self, row: str, column: str, value: Any) -> None:
        """Change one cell (kept for later rebuilds; drawn if its column is shown)."""
        index = [c[1] for c in self.all_columns].index(column)
        if row in self._rows:
            self._rows[row][index] = value
        if any(c[1] == column for c in self.shown) and row in self._rows:
            self.update_cell(row, column, _clip(value, self.widths.get(column)))

    def selected_key(self) -> str | None:
        """The key of the run under the cursor (None in an empty table)."""
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - a table being rebuilt
            return None
        return None if key is None else str(key.value)

    # -- keys ------------------------------------------------------------------------------------
    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


def _clip(cell: Any, width: int | None) -> Any:
    """A text cell longer than its column ends in '…': a value cut silently reads as another value
    ("282/2000" as "282/200", "mushrooms" as "mushroom")."""
    if isinstance(cell, str) and width and len(cell) > width:
        return cell[: max(0, width - 1)] + "…"
    return cell
