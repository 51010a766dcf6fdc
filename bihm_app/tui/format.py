"""Small text formatters shared by the screens (numbers with errors, ages, statuses)."""

from __future__ import annotations

import math
import time
from datetime import datetime

from rich.text import Text

#: Status -> Rich style; bold keeps them apart in NO_COLOR and monochrome terminals.
STATUS_STYLE = {
    "running": "bold green",
    "finished": "bold",
    "stopped": "bold dark_orange",
    "crashed": "bold red",
    "diverged": "bold red",
    "corrupt": "bold red reverse",
    "created": "dim",
    "unknown": "dim",
}


def status_text(state: str) -> Text:
    return Text(state, style=STATUS_STYLE.get(state, ""))


def num(v: float | None, digits: int = 2) -> str:
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "—"
    return f"{v:.{digits}f}"


def pm(v: float | None, se: float | None, digits: int = 2) -> str:
    """'-95.31 ± 0.42' (the ± part left out when the error is unknown)."""
    if v is None or not math.isfinite(v):
        return "—"
    if se is None or not math.isfinite(se) or se <= 0:
        return num(v, digits)
    return f"{v:.{digits}f} ± {se:.{digits}f}"


def age(seconds: float | None, now: float | None = None) -> str:
    """'12s', '5m', '3h', '2d'; a date for anything older than 30 days (stable in snapshots)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h"
    if seconds < 30 * 86400:
        return f"{seconds / 86400:.0f}d"
    t = (now if now is not None else time.time()) - seconds
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d")


def layers_text(layers) -> str:
    return ",".join(str(n) for n in layers) if layers else "—"
