"""The guard of every output option (``--save``, ``--out``, ``--gif``, ``--plot``): never write over
a file the tool manages.

A run folder's checkpoints, status, metrics, evaluation caches, lock and log, a data set's files,
and any sealed bihm checkpoint wherever it lies hold work that cannot be made again by rerunning
the command; ``bihm sample RUN --save RUN/checkpoint.h5`` used to replace the checkpoint with a
samples file. Ordinary earlier outputs (a ``grid.png`` written by a previous ``bihm sample``) may
still be overwritten. The path is checked as given and with its symbolic links resolved.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bihm_app.data.paths import data_home
from bihm_app.errors import ConfigError
from bihm_app.safe_files import not_a_regular_file
from bihm_app.store.metrics import ARCHIVE_NAME
from bihm_app.store.runlock import LOCK_NAME
from bihm_app.store.runs import RunFolder
from bihm_app.store.seal import SEAL_MAGIC

#: Files of a run folder that hold its work (names from store/runs.py, store/metrics.py,
#: store/runlock.py and runner/evaluation.py).
RUN_FILES = ("checkpoint.h5", "best.h5", "status.json", "train.log", LOCK_NAME, ARCHIVE_NAME)
#: Run-folder files named by pattern: metrics of each attempt, evaluation caches, temporary files.
RUN_PATTERNS = (re.compile(r"^metrics-\d+\.h5$"), re.compile(r"^eval-.+\.json$"), re.compile(r"^\..+\.tmp$"))


def _managed_in_run(path: Path) -> bool:
    name = path.name
    if name not in RUN_FILES and not any(p.match(name) for p in RUN_PATTERNS):
        return False
    return RunFolder(path.parent).looks_like_run()


def _is_checkpoint(path: Path) -> bool:
    """A sealed bihm checkpoint (its first bytes are the seal), wherever it lies."""
    try:
        if not path.is_file():
            return False
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NONBLOCK)) as fh:
            return fh.read(len(SEAL_MAGIC)) == SEAL_MAGIC
    except OSError:
        return False


def _candidates(path: Path) -> list[Path]:
    given = Path(os.path.abspath(path.expanduser()))
    try:
        resolved = given.resolve()
    except (OSError, RuntimeError):
        resolved = given
    return [given] if resolved == given else [given, resolved]


def _data_home() -> Path | None:
    try:
        return data_home().expanduser().resolve()
    except (OSError, RuntimeError):
        return None


def _why_managed(p: Path) -> str | None:
    if _managed_in_run(p):
        return f"is {p.name} of run folder {p.parent}"
    home = _data_home()
    if home is not None and p.is_relative_to(home) and os.path.lexists(p):
        return f"is a file of the data home {home}"
    if _is_checkpoint(p):
        return "is a bihm checkpoint"
    return None


def check_output(path: Path | None, option: str) -> Path | None:
    """``path`` unchanged if ``option`` may write a file there (None stays None); a ConfigError
    (one line naming the option and the file) when it would write over a file the tool manages
    or over a folder."""
    if path is None:
        return None
    path = Path(path)
    for p in _candidates(path):
        why = _why_managed(p) or not_a_regular_file(p)
        if why is not None:
            raise ConfigError(f"{option} {path}: {why}; refusing to write over it (choose another file)")
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name")
    parent = Path(os.path.abspath(path.expanduser())).parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is a file, not a folder")
    return path


def wrong_png(path: Path) -> Path:
    """The picture of the mistakes written next to ``bihm classify --out PATH``."""
    return path.with_name(path.stem + "-wrong" + (path.suffix or ".png"))


def check_output_dir(path: Path | None, option: str) -> Path | None:
    """``path`` unchanged if ``option`` may write a report folder there; a ConfigError when the
    folder is a run folder, holds run folders (a runs folder), lies inside a run folder or the data
    home, or is a file."""
    if path is None:
        return None
    path = Path(path)
    home = _data_home()
    for p in _candidates(path):
        if home is not None and p.is_relative_to(home):
            raise ConfigError(f"{option} {path}: is inside the data home {home}; refusing to write there")
        for folder in (p, *p.parents):
            if RunFolder(folder).looks_like_run():
                raise ConfigError(f"{option} {path}: is inside run folder {folder}; refusing to write there")
        if p.is_dir():
            try:
                children = [c for c in p.iterdir() if c.is_dir()][:10_000]
            except OSError:
                children = []
            run = next((c for c in children if RunFolder(c).looks_like_run()), None)
            if run is not None:
                raise ConfigError(f"{option} {path}: holds run folders ({run.name}, …); refusing to write there")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: is a file, not a folder")
    return path
