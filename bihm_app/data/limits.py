"""How much a data file may make bihm read, decompress and allocate.

A file's own header decides how big its arrays are (an ``.npy`` header can declare 10⁶ × 10⁶
values in 16 bytes; 1 MB of gzip can expand to gigabytes). Readers check every declared size
against the bytes the file really holds and against :class:`ReadLimits` *before* allocating, and
stop decompressing at the limit. ``--max-bytes`` (or ``BIHM_MAX_BYTES``) raises it for real big data.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from bihm_app.errors import DataError

#: Default for the largest file read whole, and for the total bytes of the arrays a file declares
#: (after decompression). MNIST as float64 in a .mat file is 0.44 GB.
DEFAULT_MAX_BYTES = 1 << 29  # 512 MiB
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str, what: str = "--max-bytes") -> int:
    """``"2G"`` -> 2_000_000_000, ``"512MiB"`` -> 536870912, ``"1e9"`` -> 10⁹; DataError otherwise."""
    m = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kmgt]i?)?b?\s*", str(text).lower())
    if not m:
        raise DataError(f"{what} {text!r} is not a size (e.g. 2G, 512MiB, 1e9)")
    try:
        value = float(m.group(1)) * _UNITS[m.group(2) or ""]
    except (ValueError, KeyError):
        raise DataError(f"{what} {text!r} is not a size (e.g. 2G, 512MiB, 1e9)") from None
    if not math.isfinite(value) or value < 1:
        raise DataError(f"{what} must be at least 1 byte, got {text!r}")
    return int(value)


def available_memory() -> int | None:
    """Bytes of RAM free for a new allocation (MemAvailable, else free pages; None if unknown)."""
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh.read(1 << 16).decode("ascii", errors="replace").splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def _gb(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


@dataclass(frozen=True)
class ReadLimits:
    """Caps for reading one data file. ``max_bytes`` bounds whole-file reads and the decompressed
    size of the arrays a file declares; arrays must also fit in a quarter of the free memory
    (their validation, splitting and packing make a few copies)."""

    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def default(cls, max_bytes: int | None = None) -> "ReadLimits":
        if max_bytes is None:
            env = os.environ.get("BIHM_MAX_BYTES")
            max_bytes = parse_size(env, "BIHM_MAX_BYTES") if env else DEFAULT_MAX_BYTES
        if max_bytes < 1:
            raise DataError(f"--max-bytes must be at least 1, got {max_bytes}")
        return cls(int(max_bytes))

    def check_file_size(self, size: int, what: str) -> None:
        """Refuse to read a file of ``size`` bytes whole."""
        if size > self.max_bytes:
            raise DataError(
                f"{what}: the file is {_gb(size)}, more than the {_gb(self.max_bytes)} read at most "
                "(pass --max-bytes to raise the limit)"
            )

    def check_alloc(self, nbytes: int, what: str, detail: str = "") -> None:
        """Refuse to allocate ``nbytes`` for arrays a file declares (``detail`` says which)."""
        detail = f" ({detail})" if detail else ""
        if nbytes > self.max_bytes:
            raise DataError(
                f"{what}: declares {_gb(nbytes)} of data{detail}, more than the {_gb(self.max_bytes)} allowed "
                "(pass --max-bytes to raise the limit)"
            )
        free = available_memory()
        if free is not None and nbytes * 4 > free:
            raise DataError(f"{what}: declares {_gb(nbytes)} of data{detail}; that does not fit in the {_gb(free)} of free memory")
