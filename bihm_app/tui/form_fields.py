"""The fields of the new-run form and how typed text becomes numbers: what each field is called,
its hint, and the one-line reason a value is refused (never a silent change)."""

from __future__ import annotations

import math
import re

from bihm_app.errors import BihmError

#: (field, label, hint) in form order; widget ids come from :func:`fid`.
FIELDS = (
    ("name", "run name", "empty: made from data and layers"),
    ("data", "data set", ""),
    ("layers", "layers", "bottom-up: 200,200 or paper12"),
    ("K", "K (samples)", "importance samples per point"),
    ("batch", "batch size", "data points per update"),
    ("lr", "learning rate", "Adam step: 0.001 or 1e-3"),
    ("epochs", "epochs", "at most (early stopping)"),
    ("device", "device", ""),
    ("precision", "precision", "bf16: faster on AMX CPUs, GPUs"),
    ("labels", "labelled points", "0: unsupervised; N: ch. 4"),
    ("gamma", "γ (eq. 4.7)", "weight of log Ã, in [-1, 1]"),
    ("label_at", "label at", "where y joins the net"),
    ("label_proposal", "label proposal", "how y is proposed"),
)


def fid(field: str) -> str:
    """The id of a field's widget ('label_at' -> 'f-label-at'); its message is 'm-…'."""
    return "f-" + field.replace("_", "-")


NUMBERS = {"K": int, "batch": int, "epochs": int, "labels": int, "lr": float, "gamma": float}
TEXTS = ("name", "layers")
SELECTS = ("data", "device", "precision", "label_at", "label_proposal")
WIDE = ("data", "device")  # selects whose choices are long (a fetch hint, a GPU's name)


def data_choices() -> list[tuple[str, str]]:
    """(label, name) for every data set; a set that is listed but not on this machine says what it needs."""
    from bihm_app.data.registry import fetch_hint, known_names, missing_reason

    try:
        names = list(known_names())
    except BihmError:
        return [("bmnist", "bmnist")]
    out = []
    for n in names:
        try:
            missing = missing_reason(n)
        except BihmError as exc:
            missing = str(exc)
        if missing is None:
            out.append((n, n))
            continue
        need = fetch_hint(n) if "data fetch" in missing else ("needs `bihm data import`" if "data import" in missing else "unavailable")
        out.append((f"{n}  — {need}", n))
    return out


def parse_number(text: str, kind: type) -> tuple[int | float | None, str | None]:
    """``text`` as a whole number (``kind=int``) or a finite number (``float``): (value, None), or
    (None, why not) — never a silent change such as '2.5' -> 25 or 'abc' -> ''."""
    t = text.strip().replace("_", "")
    if not t:
        return None, "is empty: type a number"
    try:
        x = float(t)
    except ValueError:
        return None, f"{text.strip()!r} is not a number"
    if not math.isfinite(x):
        return None, f"{text.strip()!r} is not a finite number"
    if kind is int:
        if not re.fullmatch(r"[+-]?\d+", t):
            if x == int(x) and re.fullmatch(r"[+-]?\d+(\.0*)?|[+-]?\d+(\.\d*)?[eE]\+?\d+", t):
                return int(x), None  # 1e3, 10.0: whole numbers written otherwise
            return None, f"{text.strip()!r} is not a whole number"
        return int(t), None
    return x, None
