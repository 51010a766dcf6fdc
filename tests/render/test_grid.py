"""Grid geometry: padding, columns, sizes, input layouts."""

import numpy as np
import pytest

from bihm_app.errors import DataError
from bihm_app.render.grid import as_numpy, make_grid, rows_to_images, side_by_side, to_unit_float


class FakeTensor:
    """Duck-typed stand-in for a torch tensor (detach().cpu() then __array__)."""

    def __init__(self, a):
        self.a = np.asarray(a)
        self.calls = []

    def detach(self):
        self.calls.append("detach")
        return self

    def cpu(self):
        self.calls.append("cpu")
        return self

    def __array__(self, dtype=None, copy=None):
        return self.a if dtype is None else self.a.astype(dtype)


def _images(n, h, w):
    """Distinct images: image i has value (i+1)/(n+1) plus a pixel pattern."""
    rng = np.random.default_rng(0)
    return rng.random((n, h, w))


def test_grid_places_each_image_and_pads_between_and_around():
    imgs = _images(5, 3, 4)
    g = make_grid(imgs, ncol=3, pad=1, pad_value=0.25)
    assert g.shape == (2 * (3 + 1) + 1, 3 * (4 + 1) + 1)
    for i in range(5):
        r, c = divmod(i, 3)
        y, x = 1 + r * 4, 1 + c * 5
        np.testing.assert_array_equal(g[y : y + 3, x : x + 4], imgs[i])
    # padding rows/columns and the unused last cell hold pad_value
    assert np.all(g[[0, 4, 8], :] == 0.25)
    assert np.all(g[:, [0, 5, 10, 15]] == 0.25)
    assert np.all(g[5:8, 11:15] == 0.25)


def test_grid_default_columns_is_ceil_sqrt():
    g = make_grid(_images(10, 2, 2), pad=0)
    assert g.shape == (3 * 2, 4 * 2)  # 10 images -> 4 columns, 3 rows


def test_grid_without_padding_is_plain_tiling():
    imgs = _images(4, 2, 3)
    g = make_grid(imgs, ncol=2, pad=0)
    np.testing.assert_array_equal(g, np.block([[imgs[0], imgs[1]], [imgs[2], imgs[3]]]))


def test_grid_ncol_larger_than_n_is_clamped():
    assert make_grid(_images(2, 2, 2), ncol=10, pad=1).shape == (4, 7)


def test_flat_square_rows_are_reshaped():
    rows = np.zeros((3, 784), dtype=np.uint8)
    rows[0, 28 * 5 + 7] = 1
    g = make_grid(rows, ncol=3, pad=2)
    assert g.shape == (28 + 4, 3 * 30 + 2)
    assert g[2 + 5, 2 + 7] == 1.0
    assert g[2:30, 2:30].sum() == 1.0


def test_flat_rows_with_explicit_image_shape():
    rows = np.arange(24).reshape(2, 12) / 23.0
    g = make_grid(rows, ncol=2, pad=0, image_shape=(3, 4))
    np.testing.assert_allclose(g[:, :4], rows[0].reshape(3, 4))
    np.testing.assert_allclose(g[:, 4:], rows[1].reshape(3, 4))


def test_channel_dimension_is_dropped():
    imgs = _images(2, 3, 3)[:, None]
    assert make_grid(imgs, pad=0).shape == (3, 6)


def test_rows_to_images_pads_non_square_rows():
    rows = np.ones((2, 10))
    imgs = rows_to_images(rows)
    assert imgs.shape == (2, 3, 4)  # width ceil(sqrt(10)) = 4, height ceil(10/4) = 3
    flat = imgs.reshape(2, -1)
    assert np.all(flat[:, :10] == 1.0) and np.all(flat[:, 10:] == 0.5)


def test_rows_to_images_rejects_too_small_shape():
    with pytest.raises(DataError, match="do not fit"):
        rows_to_images(np.zeros((1, 10)), image_shape=(3, 3))


def test_non_square_rows_grid_automatically():
    g = make_grid(np.zeros((4, 10)), ncol=2, pad=1)
    assert g.shape == (2 * 4 + 1, 2 * 5 + 1)


def test_empty_and_bad_inputs_raise_data_error():
    with pytest.raises(DataError):
        make_grid(np.zeros((0, 4, 4)))
    with pytest.raises(DataError):
        make_grid(np.zeros((2, 2, 2, 2, 2)))
    with pytest.raises(DataError):
        make_grid(np.zeros((2, 4, 4)), ncol=0)


def test_value_conversion_uint8_bool_and_float():
    np.testing.assert_array_equal(to_unit_float(np.array([0, 1], np.uint8)), [0.0, 1.0])
    np.testing.assert_allclose(to_unit_float(np.array([0, 255, 51], np.uint8)), [0.0, 1.0, 0.2])
    np.testing.assert_array_equal(to_unit_float(np.array([True, False])), [1.0, 0.0])
    np.testing.assert_array_equal(to_unit_float(np.array([-1.0, 2.0, np.nan])), [0.0, 1.0, 0.0])


def test_tensor_like_inputs_are_detached_and_moved_to_cpu():
    t = FakeTensor(np.ones((2, 2, 2)))
    g = make_grid(t, pad=0)
    assert g.shape == (2, 4) and t.calls == ["detach", "cpu"]
    assert isinstance(as_numpy([1, 2]), np.ndarray)


def test_real_torch_tensor_if_available():
    torch = pytest.importorskip("torch")
    t = torch.zeros(4, 784, requires_grad=True) + 1.0  # needs detach()
    assert make_grid(t, ncol=2, pad=1).shape == (2 * 29 + 1, 2 * 29 + 1)


def test_side_by_side_gap_heights_and_colour_promotion():
    a, b = np.zeros((4, 3)), np.ones((2, 5))
    s = side_by_side([a, b], gap=2, pad_value=0.5)
    assert s.shape == (4, 3 + 2 + 5)
    assert np.all(s[:, 3:5] == 0.5)  # the gap
    assert np.all(s[2:, 5:] == 0.5)  # shorter picture padded at the bottom
    np.testing.assert_array_equal(s[:2, 5:], b)
    c = side_by_side([a, np.zeros((4, 3, 3))], gap=1)
    assert c.shape == (4, 7, 3)
    with pytest.raises(DataError):
        side_by_side([])
