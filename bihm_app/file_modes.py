"""The permission bits of files and folders the tool creates: what ``open()`` / ``mkdir()`` would give.

``tempfile.mkstemp`` creates files with mode 0600 and ``mkdtemp`` folders with 0700 whatever the
umask, so everything written atomically (a temporary file, then ``os.replace``) would stay private
to its owner unless it is given the ordinary mode: 0666 (files) or 0777 (folders) minus the
process umask. The umask is read from ``/proc/self/status`` where it can be (reading it with
``os.umask`` means setting it for a moment, which races with other threads).

Used by every atomic writer (``store.atomic``, ``data.integrity``, ``render.png``); it imports
nothing of the package, so every layer may use it.
"""

from __future__ import annotations

import os

__all__ = ["current_umask", "default_file_mode", "default_dir_mode"]


def current_umask() -> int:
    """The process umask."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8) & 0o777
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - not Linux
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def default_file_mode() -> int:
    """``0o666`` minus the process umask: what ``open()`` would give a new file (mkstemp gives 0o600)."""
    return 0o666 & ~current_umask()


def default_dir_mode() -> int:
    """``0o777`` minus the process umask: what ``mkdir()`` would give a new folder (mkdtemp gives 0o700)."""
    return 0o777 & ~current_umask()
