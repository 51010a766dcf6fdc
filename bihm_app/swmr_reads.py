"""Reading an HDF5 file in SWMR mode with a bounded wait on bad metadata.

A SWMR reader may catch a metadata block while its writer rewrites it, so libhdf5 reads a block
whose checksum fails again, sleeping between attempts: 1 ns, then twice as long each time, up to
100 attempts (``H5F_SWMR_METADATA_READ_ATTEMPTS``). For a block that is damaged for good — a
metrics file with two flipped bytes — the sleeps add up to ~2¹⁰⁰ ns: the reader (``bihm runs
list``, ``bihm report``, the dashboard) hung for ever, at ~0 % CPU. Measured: 7 of 40 random
two-byte corruptions of a metrics file.

:func:`swmr_read_fapl` caps the attempts at :data:`READ_ATTEMPTS` (at most ~2²⁴ ns ≈ 17 ms of
sleeping per bad block; a live writer rewrites a block in microseconds) through libhdf5's
``H5Pset_metadata_read_attempts``, which h5py does not wrap: it is called with ``ctypes`` on the
very libhdf5 that h5py loaded (found among the process's mapped files or in h5py's bundled
libraries). Where that library cannot be found the file is opened as before, uncapped.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
from pathlib import Path

#: Metadata read attempts of a SWMR reader (libhdf5's default: 100, i.e. unbounded in practice).
READ_ATTEMPTS = 24

_LIBHDF5 = re.compile(r"^libhdf5(-[0-9a-f]+)?\.(so|dylib)")
_cache: dict[str, object] = {}
_lookup = threading.Lock()


def _candidates() -> list[str]:
    """Paths of libhdf5 as loaded in this process (Linux), then h5py's bundled copies."""
    found: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.rstrip("\n").split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
                if path.startswith("/") and _LIBHDF5.match(os.path.basename(path)) and path not in found:
                    found.append(path)
    except OSError:
        pass
    import h5py

    root = Path(h5py.__file__).parent
    for folder in (root.parent / "h5py.libs", root / ".dylibs"):
        if folder.is_dir():
            found += [str(p) for p in sorted(folder.iterdir()) if _LIBHDF5.match(p.name) and str(p) not in found]
    return found


def _setter():
    """``H5Pset_metadata_read_attempts`` of h5py's libhdf5, or None. Looked up once, under a lock:
    a second thread that saw the lookup started but not finished took "None" and opened a damaged
    file uncapped — the dashboard's runs list then hung for ever at start-up (two loaders at once)."""
    with _lookup:
        if "set" not in _cache:
            _cache["set"] = _find_setter()
    return _cache["set"]


def _find_setter():
    for path in _candidates():
        try:
            # PyDLL, not CDLL: its calls keep the GIL, as h5py's own calls into libhdf5 do, so no
            # other thread is inside the (not thread-safe) library meanwhile — CDLL released it,
            # and a thread reading metrics beside the runs list's loader crashed (SIGSEGV)
            lib = ctypes.PyDLL(path)  # already loaded: the same library instance as h5py's
            fn, get = lib.H5Pset_metadata_read_attempts, lib.H5Pget_metadata_read_attempts
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int64, ctypes.c_uint], ctypes.c_int
        get.argtypes, get.restype = [ctypes.c_int64, ctypes.POINTER(ctypes.c_uint)], ctypes.c_int
        if _works(fn, get):
            return fn
    return None


def _works(fn, get) -> bool:
    """The function sets the attempts of a property list h5py made (the same library, 64-bit ids)."""
    import h5py

    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    got = ctypes.c_uint(0)
    with _library_lock():
        return fn(fapl.id, 7) >= 0 and get(fapl.id, ctypes.byref(got)) >= 0 and got.value == 7


def _library_lock():
    """h5py's lock around every call into libhdf5 (reentrant)."""
    from h5py import _objects

    return _objects.phil


def swmr_read_fapl():
    """A file-access property list for SWMR reading: what ``h5py.File(..., libver="latest")`` makes
    (a second open of a file in the same process must match the first's close degree), with the
    metadata read attempts capped at :data:`READ_ATTEMPTS`; None if the cap cannot be set."""
    import h5py

    fn = _setter()
    if fn is None:
        return None
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    with _library_lock():
        if fn(fapl.id, READ_ATTEMPTS) < 0:
            return None
    return fapl


def open_swmr_read(name: str):
    """``h5py.File`` of ``name`` opened read-only in SWMR mode, with capped metadata retries when
    possible (else exactly ``h5py.File(name, "r", libver="latest", swmr=True)``)."""
    import h5py

    fapl = swmr_read_fapl()
    if fapl is None:
        return h5py.File(name, "r", libver="latest", swmr=True)
    fid = h5py.h5f.open(os.fsencode(name), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return h5py.File(fid)
