"""Tables as strings, shared by ``bihm repro`` and ``bihm report``: the CLI draws them with Rich,
:func:`to_markdown` writes them as GitHub markdown."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Table:
    """A table as strings, with notes printed below it.

    For a narrow terminal (``bihm``'s tables fit 80 columns): ``short`` headers by column, ``drop``
    the order in which optional columns go (1 first; unlisted columns stay), the first ``key``
    columns name a row (repeated when the table is split) and ``group`` columns belong together.
    """

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    short: dict[str, str] = field(default_factory=dict)
    drop: dict[str, int] = field(default_factory=dict)
    key: int = 1
    group: int = 1


def pm(mean: float | None, se: float | None, digits: int = 2) -> str:
    """'−13.72 ± 0.03'; '—' for a missing or non-finite mean; the mean alone without an SE."""
    if mean is None or not math.isfinite(mean):
        return "—"
    if se is None or not math.isfinite(se):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def to_markdown(tables: list[Table], heading: str = "", preamble: list[str] | None = None, level: int = 2) -> str:
    """The tables as GitHub markdown, each under a heading of ``level``, notes as a list below it
    (text escaped: ``*`` and ``_`` are literal)."""
    out = [f"# {heading}", ""] if heading else []
    out += [*(preamble or []), ""] if preamble else []
    cell = lambda c: md_escape(c).replace("|", "\\|")  # noqa: E731
    for t in tables:
        out += [f"{'#' * level} {md_escape(t.title)}", ""] if t.title else []
        out += ["| " + " | ".join(cell(c) for c in t.columns) + " |", "|" + "---|" * len(t.columns)]
        out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
        out += [""] + [f"- {md_escape(n)}" for n in t.notes] + ([""] if t.notes else [])
    return "\n".join(out)


def duration(seconds: float) -> str:
    """'42 s', '17 min', '2.4 h'."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def md_escape(text: str) -> str:
    """Markdown-safe text (``*`` and ``_`` of p̃*(x) would start emphasis)."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_")
