"""Text both front-ends show the same way: ages, nested configs as flat keys, layer lists.

One definition each, so that ``bihm runs list`` and the dashboard cannot drift apart (they once
did: 90 s was "1m" in one and "2m" in the other).
"""

from __future__ import annotations

import math
import re
import signal
import time
from datetime import datetime

__all__ = ["age", "ended", "flatten", "layers_text", "printable"]


def age(seconds: float | None, now: float | None = None) -> str:
    """'42s', '5m', '3h', '2d' — whole units, rounded down (90 s is '1m'); the date for anything
    older than 30 days; '—' when unknown."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "—"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    if s < 30 * 86400:
        return f"{s // 86400}d"
    t = (now if now is not None else time.time()) - seconds
    try:
        return datetime.fromtimestamp(t).strftime("%Y-%m-%d")
    except (ValueError, OverflowError, OSError):  # a forged time stamp: before year 1, beyond 9999
        return "—"


def flatten(d: dict, prefix: str = "", as_text: bool = False) -> dict[str, object]:
    """{'train': {'K': 10}} -> {'train.K': 10}: nested dicts become dotted keys. Values are kept as
    they are, or with ``as_text`` turned into strings (lists joined by commas)."""
    flat: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten(v, key + ".", as_text))
        elif as_text:
            flat[key] = ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)
        else:
            flat[key] = v
    return flat


def layers_text(layers, limit: int | None = None) -> str:
    """'200,200' ('—' for none); longer than ``limit`` characters: the start, '…' and the layer count."""
    if not layers:
        return "—"
    text = ",".join(str(n) for n in layers)
    if limit is not None and len(text) > limit:
        return f"{text[:limit - 4]}… (L={len(layers)})"
    return text


#: Characters that drive a terminal instead of showing: C0 and C1 controls (ESC starts escape
#: sequences that clear the screen or set the window title) and the bidirectional overrides that
#: reorder what is shown. Newlines and tabs stay.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: Longest text taken from a file (a log line, a status message) before it is cut.
MAX_SHOWN = 2000


def printable(text: object, limit: int = MAX_SHOWN) -> str:
    """``str(text)`` safe to show in a terminal: every control character (see ``_CONTROLS``) as
    "�", cut to ``limit`` characters with "…" — for any text that comes from a file or a name."""
    t = _CONTROLS.sub("\ufffd", str(text))
    return t if len(t) <= limit else t[: limit - 1] + "…"


def ended(rc: int) -> str:
    """How a process with return code ``rc`` ended, in words: a negative code is the signal that
    killed it (``kill -9``, the OOM killer, SIGINT before Python set its handler), named."""
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"
