"""The whole per-epoch history of a run, for curves: a run's best.h5 holds the history up to its best
epoch only (it was written then), so a chart of best.h5 alone leaves out every later epoch — the
epochs where the run got worse, exactly the ones a comparison should show. The run's checkpoint.h5
holds them all."""

from __future__ import annotations

from pathlib import Path

from bihm_app.errors import BihmError

__all__ = ["full_history"]


def _extends(longer: dict, shorter: dict) -> bool:
    """Whether history ``longer`` starts with every entry of ``shorter`` and has more epochs (the
    same run, further on)."""
    for key, values in shorter.items():
        more = longer.get(key)
        if not isinstance(values, list) or not isinstance(more, list) or more[: len(values)] != values:
            return False
    return len(longer.get("epoch") or []) > len(shorter.get("epoch") or [])


def full_history(path: Path, history: dict) -> tuple[dict, Path]:
    """(history, the checkpoint it comes from) for the curves of the checkpoint at ``path``.

    For a run's ``best.h5`` whose ``checkpoint.h5`` (same folder, readable) carries the same epochs
    and more, that file's history; otherwise ``history`` as given (``checkpoint.h5`` itself, a lone
    file, or a damaged or unrelated latest checkpoint)."""
    from bihm_app.store.checkpoint import read_meta

    path = Path(path)
    latest = path.with_name("checkpoint.h5")
    if path.name != "best.h5" or not latest.is_file():
        return history, path
    try:
        longer = read_meta(latest, within=path.parent).get("history") or {}
    except BihmError:
        return history, path
    return (longer, latest) if isinstance(longer, dict) and _extends(longer, history) else (history, path)
