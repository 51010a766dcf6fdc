"""Opening files that may be hostile: only regular files, never blocking, every read bounded.

A FIFO, a device or a socket put where a checkpoint, a metrics file, a status file or a data file
is expected would make a plain ``open()`` (or HDF5, or numpy) block forever or read without end.
Here a file is inspected with ``lstat`` first, opened with ``O_NONBLOCK`` (so opening a FIFO
returns at once) and checked again with ``fstat`` on the descriptor that is then used; HDF5 opens
that very file through ``/proc/self/fd/N``, so no one can swap it between the check and the open.
Links inside HDF5 files (soft, external, user-defined), datasets whose bytes live in other files
(external storage, virtual datasets) are refused before any object is touched.

Used by ``store`` and ``data`` (which do not import each other); every problem is a
:class:`FileProblem` whose text reads after the file's name ("is a named pipe (FIFO), …").
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

#: Links (to groups, datasets, anything) walked in one HDF5 file before it is refused as
#: unreasonable: bihm's checkpoints hold ~150 (paper12 with Adam's moments), its data files a
#: handful; every object a reader keeps open costs ~14 KB (100,000 took 2 GB and 24 s to verify).
MAX_HDF5_OBJECTS = 10_000
#: Characters of an HDF5 name shown in a message (a hostile name can be any length).
MAX_NAME_SHOWN = 120
#: Groups nested deeper than this are refused (bihm's files nest two deep; paths of a deep chain
#: grow with its depth, and HDF5's recursive walks overflow the C stack at ~20,000).
MAX_HDF5_DEPTH = 32


class FileProblem(Exception):
    """Why a file cannot be used; ``str()`` is a phrase to put after the file's name."""


def _kind(mode: int) -> str | None:
    """None for a regular file, else what the file is."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode):
        return "is a character device, not a regular file"
    if stat.S_ISBLK(mode):
        return "is a block device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def not_a_regular_file(path: Path) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a folder (following
    links): "is a character device, not a regular file", …; None otherwise. For outputs: writing
    a file there atomically would replace the FIFO or device node (as root, /dev/zero itself)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return None if stat.S_ISDIR(mode) else _kind(mode)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def check_regular(path: Path, within: Path | None = None) -> os.stat_result:
    """The ``stat`` of a regular file at ``path``; :class:`FileProblem` for anything else.

    With ``within``, a symbolic link is followed only if it resolves inside that folder (the
    files of a run folder must not lead out of it).
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise FileProblem("no such file") from None
    except OSError as exc:
        raise FileProblem(f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISLNK(st.st_mode):
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise FileProblem("is a broken symbolic link") from None
        if within is not None and not _inside(target, Path(within).resolve()):
            raise FileProblem(f"is a symbolic link to {target}, outside {within}; refusing to follow it")
        st = os.stat(target)
    kind = _kind(st.st_mode)
    if kind is not None:
        raise FileProblem(kind)
    return st


def open_regular(path: Path, within: Path | None = None) -> int:
    """A read-only descriptor of the regular file at ``path`` (never blocks; caller closes it)."""
    check_regular(path, within)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileProblem("no such file") from None
    except IsADirectoryError:
        raise FileProblem("is a folder, not a file") from None
    except OSError as exc:
        raise FileProblem(f"cannot be read ({exc.strerror or exc})") from None
    try:
        kind = _kind(os.fstat(fd).st_mode)  # it may have been swapped since the lstat
        if kind is not None:
            raise FileProblem(kind)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # regular files never block; later reads are plain reads
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular_file(path: Path, within: Path | None = None):
    """:func:`open_regular` as a binary Python file object."""
    return os.fdopen(open_regular(path, within), "rb")


def fd_path(fd: int, fallback: Path) -> str:
    """A name that opens exactly the file behind ``fd`` (``/proc/self/fd/N`` on Linux)."""
    p = f"/proc/self/fd/{fd}"
    return p if os.path.exists(p) else str(fallback)


def read_capped(path: Path, max_bytes: int, within: Path | None = None) -> bytes:
    """All bytes of a regular file, or :class:`FileProblem` when it holds more than ``max_bytes``."""
    fd = open_regular(path, within)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise FileProblem(f"is {size:,} bytes, more than the {max_bytes:,} bytes allowed")
        chunks, n = [], 0
        while True:
            block = os.read(fd, min(1 << 20, max_bytes + 1 - n))
            if not block:
                break
            chunks.append(block)
            n += len(block)
            if n > max_bytes:
                raise FileProblem(f"grew past the {max_bytes:,} bytes allowed while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_hdf5(path: Path, within: Path | None = None, swmr: bool = False, **kwargs):
    """``h5py.File`` of the regular file at ``path``, opened read-only without blocking.

    Raises :class:`FileProblem` for a file that is not regular; h5py's own errors (``OSError``)
    pass through. HDF5 opens the checked descriptor's file (``/proc/self/fd/N``), so the file it
    reads is the one that was checked. ``swmr``: a SWMR reader (the latest file format) whose
    retries of damaged metadata are bounded (:mod:`bihm_app.swmr_reads`); ``kwargs`` go to h5py
    otherwise.
    """
    import h5py

    fd = open_regular(path, within)
    try:
        if swmr:
            from bihm_app.swmr_reads import open_swmr_read

            return open_swmr_read(fd_path(fd, path))
        return h5py.File(fd_path(fd, path), "r", **kwargs)
    finally:
        os.close(fd)  # HDF5 holds its own descriptor of the same file


def hdf5_link_problem(f, max_objects: int = MAX_HDF5_OBJECTS, datasets: bool = True) -> str | None:
    """Why an open HDF5 file is unsafe to read, or None: soft, external or user-defined links,
    datasets stored in external files or virtual datasets, names that are not UTF-8, groups nested
    more than :data:`MAX_HDF5_DEPTH` deep (a cycle of hard links too), or more than ``max_objects``
    links. Names in the messages are cut and their control characters shown as "�".
    ``datasets=False`` leaves the datasets' storage to the caller, which then checks each dataset
    it reads with :func:`dataset_storage_problem` (the dataset is open then anyway).

    Walks group by group with an explicit stack (HDF5's own recursive walk, ``H5Lvisit``, overflows
    the C stack on a file of 20,000 nested groups: a segmentation fault), one ``H5Literate`` per
    group for its links and their kinds, so no link is ever followed. Few calls into h5py matter
    beyond speed: h5py lets other threads run around some of its calls (closing a dataset among
    them), so in a worker thread beside a busy interface thread each such call waits up to the
    interpreter's switch interval (5 ms): the former walk, ~5 high-level calls per object, took
    0.57 s instead of 8 ms for a paper12 checkpoint beside the dashboard's drawing.
    """
    from h5py import h5d, h5g, h5l, h5o

    def shown(name: str) -> str:  # control characters as "�", cut: the name may be hostile
        name = "".join("\ufffd" if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in name[: MAX_NAME_SHOWN + 1])
        return name if len(name) <= MAX_NAME_SHOWN else name[: MAX_NAME_SHOWN - 1] + "…"

    seen = 0
    todo = [(f.id, "", 0)]  # (open group, its path, its depth)
    while todo:
        gid, path, depth = todo.pop()
        entries: list[tuple[bytes, int]] = []

        def on_link(name: bytes, info) -> bool | None:
            entries.append((name, info.type))
            return True if seen + len(entries) > max_objects else None  # anything but None stops

        gid.links.iterate(on_link, info=True)
        seen += len(entries)
        if seen > max_objects:
            return f"holds more than {max_objects:,} links (or a cycle of hard links)"
        for name, kind in entries:
            full = f"{path}/{name.decode('utf-8', 'replace')}" if path else name.decode("utf-8", "replace")
            try:
                name.decode("utf-8")
            except UnicodeDecodeError:
                return f"'{shown(full)}' is a name that is not UTF-8 text"
            if kind == h5l.TYPE_SOFT:
                target = gid.links.get_val(name).decode("utf-8", "replace")
                return f"'{shown(full)}' is a soft link (to '{shown(target)}'); links are not allowed"
            if kind == h5l.TYPE_EXTERNAL:
                file, where = (shown(v.decode("utf-8", "replace")) for v in gid.links.get_val(name))
                return f"'{shown(full)}' is an external link (to {file}:{where}); links are not allowed"
            if kind != h5l.TYPE_HARD:
                return f"'{shown(full)}' is a user-defined link (type {kind}); links are not allowed"
            kind = h5o.get_info(gid, name).type
            if kind == h5o.TYPE_GROUP:
                if depth >= MAX_HDF5_DEPTH:
                    return f"'{shown(full)}' nests groups more than {MAX_HDF5_DEPTH} deep"
                todo.append((h5g.open(gid, name), full, depth + 1))
            elif kind == h5o.TYPE_DATASET and datasets:
                problem = _storage_problem(h5d.open(gid, name).get_create_plist())
                if problem is not None:
                    return f"'{shown(full)}' {problem}"
    return None


def dataset_storage_problem(d) -> str | None:
    """Why an h5py object found where a dataset is read cannot be read as one, as a phrase to put
    after its name ("is not a dataset", "is a virtual dataset …", "keeps its data in an external
    file"), or None."""
    from h5py import h5d

    if not isinstance(getattr(d, "id", None), h5d.DatasetID):
        return "is not a dataset"
    return _storage_problem(d.id.get_create_plist())


def _storage_problem(dcpl) -> str | None:
    from h5py import h5d

    if dcpl.get_layout() == h5d.VIRTUAL:
        return "is a virtual dataset (its data lives in other files)"
    if dcpl.get_external_count() > 0:
        return "keeps its data in an external file"
    return None


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error (OSError, or HDF5's RuntimeError/OSError text) means the disk is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return True
    text = str(exc)
    return "errno = 28" in text or "No space left on device" in text or "Disk quota exceeded" in text
