"""What torch can train on here, for the new-run form's device list."""

from __future__ import annotations

import os


def list_devices() -> list[tuple[str, str]]:
    """``(label, --device value)`` pairs: auto, every CUDA GPU (name, memory), Apple MPS, the CPU."""
    import torch

    out: list[tuple[str, str]] = []
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append((f"cuda:{i}  {p.name}, {p.total_memory / 2**30:.0f} GiB", f"cuda:{i}"))
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    best = "cuda:0" if gpus else ("mps" if has_mps else "cpu")
    out.append((f"auto  ({best})", "auto"))
    out += gpus
    if has_mps:
        out.append(("mps  Apple GPU", "mps"))
    out.append((f"cpu  {os.cpu_count() or 1} cores", "cpu"))  # (a run picks its own threads: --threads auto)
    return out
