import numpy as np
import pytest

import edgerun
from edgerun import evaluate, reference

from conftest import call, kernel_implementations

OP = "softmax_f32"
WIDTHS = [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 128, 1000, 1027]
# Each output is exp(x - max) / sum.  Against numpy the variants differ by their
# exp (vexp.h: <= 2 ulp; the scalar C's expf: < 1 ulp), the order of the sum
# (4 x 8 or 4 x 4 partial sums against numpy's pairwise sum: ~1e-7 relative at
# these widths) and a multiply by 1 / sum instead of a divide (1 ulp): measured
# at most 8.5e-7 for n <= 4096, so rtol 2e-6.  atol 1e-37: outputs in the
# subnormal range (where relative error means nothing) may differ by rounding.
RTOL, ATOL = 2e-6, 1e-37


def assert_softmax_close(y, y_ref):
    assert y.shape == y_ref.shape and y.dtype == np.float32
    assert np.array_equal(np.isnan(y), np.isnan(y_ref))
    np.testing.assert_allclose(y, y_ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("n", WIDTHS)
@pytest.mark.parametrize("rows", [1, 3])
def test_matches_reference(variant, rows, n, rng):
    x = (rng.standard_normal((rows, n)) * 4).astype(np.float32)
    assert_softmax_close(call(OP, variant, x), reference.softmax_f32(x))


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("shape", [(2, 4, 16, 16), (4 * 128, 128), (3, 5, 33), (4096,), (0, 8),
                                   (5, 0)])
def test_any_shape_over_the_last_axis(variant, shape, rng):
    x = (rng.standard_normal(shape) * rng.choice([0.1, 3, 30], size=shape)).astype(np.float32)
    y = call(OP, variant, x)
    assert_softmax_close(y, reference.softmax_f32(x))
    if y.size:
        np.testing.assert_allclose(y.sum(axis=-1), 1, rtol=1e-5)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("n", [2, 7, 8, 9, 33])
def test_large_logits_and_masks(variant, n, rng):
    """Large magnitudes stay finite (max-subtracted), masked entries (-1e9, -inf,
    -3.4e38, the additive attention masks) give exactly 0."""
    x = (rng.standard_normal((6, n)) * 3).astype(np.float32)
    x[0] += 1e4
    x[1] -= 1e4
    x[2, ::2] = -1e9
    x[3, ::3] = -np.inf
    x[4, 1::2] = -3.4e38
    x[5] = 80.0  # exp(80) alone would be 5.5e34: uniform 1/n after the max subtraction
    y = call(OP, variant, x)
    assert np.isfinite(y).all()
    assert (y[2, ::2] == 0).all() and (y[3, ::3] == 0).all() and (y[4, 1::2] == 0).all()
    assert_softmax_close(y, reference.softmax_f32(x))
    np.testing.assert_allclose(y[5], 1 / n, rtol=RTOL)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("n", [1, 5, 8, 9, 40])
def test_non_finite_rows_follow_numpy(variant, n):
    """numpy's answers: a NaN or a +inf anywhere, or a row of only -inf, make the
    whole row NaN (NaN max, inf - inf, 0 / 0); the other rows are untouched.
    The bad entry sits in the vector part and in the scalar leftovers."""
    x = np.zeros((7, n), dtype=np.float32)
    x[1, n - 1] = np.nan
    x[2, 0] = np.nan
    x[3, n // 2] = np.inf
    x[4, :] = -np.inf
    x[5, n - 1] = -np.inf
    x[6, n - 1] = np.inf
    with np.errstate(invalid="ignore"):
        expected = evaluate.softmax(x)
    y = call(OP, variant, x)
    assert np.array_equal(np.isnan(y), np.isnan(expected))
    assert np.isnan(y[1:5]).all() and np.isnan(y[6]).all()
    np.testing.assert_allclose(y[0], 1 / n, rtol=RTOL)
    if n > 1:
        assert y[5, n - 1] == 0
        np.testing.assert_allclose(y[5, : n - 1], 1 / (n - 1), rtol=RTOL)
    assert_softmax_close(y, reference.softmax_f32(x))


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_accuracy_against_float64(variant, rng):
    """Against float64 on the same float32 inputs: the float32 subtraction x - max
    (numpy's too) rounds an argument of size up to ~40 here, 2e-6 of relative
    error in exp; everything else adds < 1e-6."""
    x = (rng.standard_normal((64, 257)) * 6).astype(np.float32)
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=-1, keepdims=True))
    exact = e / e.sum(axis=-1, keepdims=True)
    y = call(OP, variant, x).astype(np.float64)
    big = exact > 1e-30
    diff = np.abs(y - exact)
    assert (diff[big] / exact[big]).max() < 4e-6
    assert diff.max() < 1e-6


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_in_place(variant, rng):
    x = (rng.standard_normal((5, 45)) * 3).astype(np.float32)
    expected = call(OP, variant, x)
    y = call(OP, variant, x, out=x)
    assert y is x
    assert np.array_equal(x, expected)


def test_reference_is_evaluate_softmax(rng):
    x = (rng.standard_normal((3, 4, 19)) * 5).astype(np.float32)
    assert np.array_equal(reference.softmax_f32(x), evaluate.softmax(x))


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_errors(variant):
    with pytest.raises(edgerun.ShapeError, match="float32"):
        call(OP, variant, np.zeros((2, 4), np.float64))
    with pytest.raises(edgerun.ShapeError, match="dimension"):
        call(OP, variant, np.float32(1.0))
    with pytest.raises(edgerun.ShapeError, match="shape"):
        call(OP, variant, np.zeros((2, 4), np.float32), out=np.zeros((4, 2), np.float32))
    with pytest.raises(edgerun.ShapeError, match="contiguous"):
        call(OP, variant, np.zeros((2, 4), np.float32), out=np.zeros((2, 8), np.float32)[:, ::2])
    frozen = np.zeros((2, 4), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(edgerun.ShapeError, match="writeable"):
        call(OP, variant, frozen, out=frozen)
    with pytest.raises(edgerun.ShapeError, match="float32"):
        call(OP, variant, np.zeros((2, 4), np.dtype(np.float32).newbyteorder()))
    with pytest.raises(edgerun.ShapeError):
        reference.softmax_f32(np.zeros(3, np.float16))
