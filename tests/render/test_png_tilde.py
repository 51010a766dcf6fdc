"""p̃ in PNG legends, titles and axis labels: a p with a tilde over it, never "p~" nor a missing-glyph
box, whichever spelling the caller used (render/png_text.py)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bihm_app.render import chart
from bihm_app.render.chart import save_chart_png

SERIES = ([1, 2, 3], [-100.0, -99.0, -98.5])


def _png(tmp_path: Path, name: str, **labels) -> np.ndarray:
    path = save_chart_png({labels.pop("legend"): SERIES}, tmp_path / f"{name}.png", **labels)
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.int16)


@pytest.mark.parametrize("where", ["legend", "title", "y_label", "x_label"])
def test_p_tilde_is_a_p_with_a_tilde_over_it(tmp_path, where):
    """Catches p̃ drawn as "p" plus a missing-glyph box (Pillow's default font has no U+0303: the
    rest of the label moved right) and labels spelling it "p~": the picture of "log p̃*(x)" may differ
    from that of "log p*(x)" only by a small mark over the p, and "log p~*(x)" must look the same as
    "log p̃*(x)"."""
    base = {"legend": "series", "title": "t", "y_label": "nats", "x_label": "epoch"}
    plain = _png(tmp_path, "plain", **dict(base, **{where: "log p*(x) here"}))
    tilde = _png(tmp_path, "tilde", **dict(base, **{where: "log p\u0303*(x) here"}))
    ascii_ = _png(tmp_path, "ascii", **dict(base, **{where: "log p~*(x) here"}))
    diff = np.argwhere(np.abs(plain - tilde) > 40)
    assert len(diff), "no tilde drawn"
    (r0, c0), (r1, c1) = diff.min(0), diff.max(0)
    along, across = (c1 - c0, r1 - r0) if where != "y_label" else (r1 - r0, c1 - c0)  # the y label is rotated
    assert along <= 10 and across <= 6, f"the text after the p moved or a box was drawn: {along}x{across} px changed"
    assert np.array_equal(ascii_, tilde), '"p~" is not drawn as p̃'


def test_k_sweep_and_report_charts_label_p_tilde_properly(tmp_path, monkeypatch):
    """Catches the review's PNG legends reading "log p~*(x)": the labels the K-sweep chart passes
    to the PNG renderer spell p̃ with the combining tilde."""
    from bihm_app.runner.evaluation import save_k_sweep_png

    seen: list[str] = []

    def spy(series, path, title="", bands=None, **kw):
        seen.extend([*series, title, kw.get("y_label", ""), kw.get("x_label", "")])
        return Path(path)

    monkeypatch.setattr(chart, "save_chart_png", spy)
    entries = [{"K": k, "log_ptilde": -10.0, "log_ptilde_se": 0.1, "log_p": -10.5, "log_p_se": 0.1} for k in (1, 10)]
    save_k_sweep_png({"a": entries, "b": entries}, tmp_path / "k.png", "sweep")
    assert any("log p\u0303*(x)" in s for s in seen), seen
    assert not any("~" in s for s in seen), seen
