"""Default run names, for ``bihm train`` and the dashboard's new-run form alike.

``<data>-<architecture>-<MMDD><letter>``, e.g. ``bmnist-paper12-1126a``, ``adult-thesis-1126b``,
``bmnist-2L200-1126a``: short enough for an 80-column table, readable, and unique within a runs
folder (the letter counts the runs of that stem: ``a``, ``b``, … ``z``, ``aa``, …). The
architecture is

* the name of a known network: ``paper12`` (section 3.6.2), ``rws7`` (the RWS-protocol
  paragraph), ``thesis`` for a UCI set trained with its own table 3.2 architecture;
* otherwise depth and width: ``<number of latent layers>L<widest layer>`` (``4L100``).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from bihm_app.engine.model import PAPER12
from bihm_app.runner.configs import layer_sizes
from bihm_app.runner.thesis import RWS7_LAYERS, UCI_LAYERS
from bihm_app.store.runs import free_run_name

__all__ = ["architecture_label", "run_name_stem", "default_run_name", "DATA_CHARS"]

#: The longest data-set name kept whole in a default name.
DATA_CHARS = 16
_NAMED = {PAPER12: "paper12", RWS7_LAYERS: "rws7"}


def architecture_label(data: str | None, layers) -> str:
    """``paper12``, ``rws7``, ``thesis`` (a UCI set's own table 3.2 network) or ``<depth>L<width>``."""
    sizes = layer_sizes(layers)
    if sizes in _NAMED:
        return _NAMED[sizes]
    if data in UCI_LAYERS and UCI_LAYERS[data] == sizes:
        return "thesis"
    return f"{len(sizes)}L{max(sizes)}"


def run_name_stem(data: str | None, layers, now: datetime | None = None) -> str:
    """``<data>-<architecture>-<MMDD>``: a default name before its letter."""
    clean = re.sub(r"[^A-Za-z0-9_.+\-]", "_", str(data or "run"))[:DATA_CHARS]
    if not clean[:1].isalnum():
        clean = "run" + clean
    return f"{clean}-{architecture_label(data, layers)}-{(now or datetime.now()).strftime('%m%d')}"


def default_run_name(data: str | None, layers, root: Path | None = None, now: datetime | None = None) -> str:
    """The stem and the first letter not taken under ``root`` (``a`` without a root)."""
    stem = run_name_stem(data, layers, now)
    return free_run_name(root, stem) if root is not None else stem + "a"
