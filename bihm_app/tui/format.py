"""Small text formatters shared by the screens (numbers with errors, ages, statuses)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from rich.text import Text

from bihm_app.runner.formats import MAX_SHOWN, age, layers_text, printable  # noqa: F401  (one definition for both front-ends)

#: Status -> Rich style; bold keeps them apart in NO_COLOR and monochrome terminals.
STATUS_STYLE = {
    "running": "bold green",
    "finished": "bold",
    "stopped": "bold dark_orange",
    "crashed": "bold red",
    "diverged": "bold red",
    "corrupt": "bold red reverse",
    "damaged": "bold dark_orange reverse",  # a checkpoint is damaged; actions use the other one
    "created": "dim",
    "unknown": "dim",
    "empty": "dim",  # a run folder with nothing saved yet
}


def escape(text: object, limit: int = MAX_SHOWN) -> str:
    """Text from a file or a name, for Textual's markup: control characters shown as "�" (an escape
    sequence in a log line or a status message cleared the screen and set the terminal's title),
    cut to ``limit`` characters, and markup escaped: every "[" (Rich's escape leaves a "[" not
    followed by a tag name, which Textual's markup reads as the start of a tag, swallowing the next
    one: the help's "[" key showed as "[[/b]"). A trailing backslash gets a zero-width space after
    it, so that it does not escape the tag that follows the text ("C:\\dir\\" then "[/b]")."""
    t = printable(text, limit).replace("[", "\\[")
    return t + "\u200b" if t.endswith("\\") else t


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


def percent(fraction: float | None, digits: int = 1) -> str:
    """A fraction as '25.9 %' (the ESS as the CLI prints it: percent of K)."""
    if fraction is None or not isinstance(fraction, (int, float)) or not math.isfinite(fraction):
        return "—"
    return f"{100 * fraction:.{digits}f} %"


def short_path(path: str | os.PathLike) -> str:
    """A path for a toast, short enough not to wrap mid-word: ``$BIHM_HOME/runs/a/pictures/x.png``
    when BIHM_HOME holds the runs folder, else ``~/…`` under the home folder, else the full path."""
    p = Path(path)
    env = os.environ.get("BIHM_HOME")
    bases = [(Path(env).expanduser(), "$BIHM_HOME")] if env else []
    bases.append((Path.home(), "~"))
    for base, prefix in bases:
        for b, q in ((base, p), (base.resolve(), p.resolve())):
            try:
                return f"{prefix}/{q.relative_to(b)}"
            except ValueError:
                continue
    return str(p)


def wrap_path(path: str, width: int) -> str:
    """``path`` in lines of at most ``width`` characters, broken after a '/' (a toast wraps at
    spaces only, so a long path broke mid-word); a single longer part keeps its own line."""
    lines, line = [], ""
    for part in path.replace("/", "/\0").split("\0"):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join(lines + [line])
