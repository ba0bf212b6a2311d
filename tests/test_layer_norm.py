"""layer_norm_f32: every C variant against the numpy reference and float64 math."""
import numpy as np
import pytest

import edgerun
from edgerun import evaluate, reference

from conftest import call, kernel_implementations

OP = "layer_norm_f32"
NS = [1, 2, 7, 8, 9, 31, 32, 33, 256, 768, 1000]
ROWS = [0, 1, 3, 128]


def problem(rng, rows, n, offset=0.0, spread=3.0):
    x = (rng.standard_normal((rows, n)) * spread + offset).astype(np.float32)
    residual = rng.standard_normal((rows, n)).astype(np.float32)
    scale = (1 + 0.5 * rng.standard_normal(n)).astype(np.float32)
    bias = (0.5 * rng.standard_normal(n)).astype(np.float32)
    return x, residual, scale, bias


def assert_close(y, y_ref, scale, bias):
    """Float32 LayerNorm's rounding is relative to the output scale (max |scale| +
    max |bias|), not to each output: the sums are exact up to O(eps * sqrt(n)) of
    the row's spread, so a near-zero output carries the same absolute error as
    the others.  Measured: every variant within 5e-7 of that scale of float64
    math and of each other (n <= 1000, rows at 0 and at 1e4); the tolerance gives
    4x room, and is still 1000x tighter than the 6e-3 error of a plain float32
    mean on rows at 1e4 (evaluate.layer_norm), which test_offset_rows relies on."""
    out_scale = float(np.abs(scale).max()) + (0.0 if bias is None else float(np.abs(bias).max()))
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=2e-6 * out_scale)


def float64_layer_norm(x, scale, bias, epsilon, residual=None):
    """The exact math on the same float32 inputs (v = x + residual rounded to
    float32 first, as the contract says)."""
    v = (x if residual is None else x + residual).astype(np.float64)
    c = v - v.mean(axis=-1, keepdims=True)
    y = c / np.sqrt((c * c).mean(axis=-1, keepdims=True) + float(np.float32(epsilon))) * scale
    return y if bias is None else y + bias


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("with_bias,with_residual", [(False, False), (True, False),
                                                     (False, True), (True, True)])
def test_matches_reference(variant, rows, n, with_bias, with_residual, rng):
    x, residual, scale, bias = problem(rng, rows, n)
    bias = bias if with_bias else None
    residual = residual if with_residual else None
    y = call(OP, variant, x, scale, bias, residual=residual)
    y_ref = reference.layer_norm_f32(x, scale, bias, residual=residual)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert_close(y, y_ref, scale, bias)
    if rows and n > 1:
        assert_close(y, float64_layer_norm(x, scale, bias, 1e-5, residual), scale, bias)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("n", [8, 33, 256, 1000])
@pytest.mark.parametrize("offset", [1e4, -1e4])
def test_offset_rows(variant, n, offset, rng):
    """Mean 1e4, spread 1: float32 spacing at 1e4 is 1e-3, so E[v^2] - E[v]^2 (or
    even a plain float32 mean) would be wrong in the third digit."""
    x, residual, scale, bias = problem(rng, 16, n, offset=offset, spread=1.0)
    for r in (None, residual):
        y = call(OP, variant, x, scale, bias, residual=r)
        assert_close(y, float64_layer_norm(x, scale, bias, 1e-5, r), scale, bias)
        assert_close(y, reference.layer_norm_f32(x, scale, bias, residual=r), scale, bias)


def test_reference_against_float64(rng):
    """The numpy twin itself: float64 math on ordinary and offset rows, and the
    formula of evaluate.layer_norm (the graph evaluator's) on ordinary rows."""
    for offset in (0.0, 1e4):
        x, residual, scale, bias = problem(rng, 64, 256, offset=offset, spread=1.0)
        y = reference.layer_norm_f32(x, scale, bias, residual=residual)
        assert_close(y, float64_layer_norm(x, scale, bias, 1e-5, residual), scale, bias)
    # The offset rows are hostile enough: a plain float32 mean fails them.
    with pytest.raises(AssertionError):
        assert_close(evaluate.layer_norm(x + residual, scale, bias),
                     float64_layer_norm(x, scale, bias, 1e-5, residual), scale, bias)
    x, residual, scale, bias = problem(rng, 64, 768)
    assert_close(reference.layer_norm_f32(x, scale, bias, residual=residual),
                 evaluate.layer_norm(x + residual, scale, bias), scale, bias)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("n", [1, 9, 256])
def test_constant_rows_give_the_bias(variant, n, rng):
    _, _, scale, bias = problem(rng, 1, n)
    x = np.repeat(np.array([[12345.678], [-3.0], [0.0]], np.float32), n, axis=1)
    assert np.array_equal(call(OP, variant, x, scale, bias), np.broadcast_to(bias, x.shape))
    assert np.array_equal(call(OP, variant, x, scale), np.zeros_like(x))
    # epsilon 0: 0 / sqrt(0) is NaN, as in numpy, ONNX and the reference.
    assert np.isnan(call(OP, variant, x, scale, bias, epsilon=0.0)).all()
    assert np.isnan(reference.layer_norm_f32(x, scale, bias, epsilon=0.0)).all()


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("epsilon", [0.0, 1e-12, 1e-5, 0.5])
def test_epsilon(variant, epsilon, rng):
    x, residual, scale, bias = problem(rng, 5, 40, spread=1e-3)  # var 1e-6: epsilon matters
    y = call(OP, variant, x, scale, bias, epsilon=epsilon, residual=residual * 1e-3)
    assert_close(y, float64_layer_norm(x, scale, bias, epsilon, residual * 1e-3), scale, bias)
    assert_close(y, reference.layer_norm_f32(x, scale, bias, epsilon, residual * 1e-3),
                 scale, bias)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("n", [7, 256])
def test_in_place(variant, n, rng):
    x, residual, scale, bias = problem(rng, 9, n)
    expected = call(OP, variant, x, scale, bias, residual=residual)
    y = x.copy()
    assert call(OP, variant, y, scale, bias, residual=residual, out=y) is y
    assert np.array_equal(y.view(np.uint32), expected.view(np.uint32))
    r = residual.copy()
    call(OP, variant, x, scale, bias, residual=r, out=r)
    assert np.array_equal(r.view(np.uint32), expected.view(np.uint32))
    y = x.copy()
    reference.layer_norm_f32(y, scale, bias, residual=residual, out=y)
    assert_close(y, expected, scale, bias)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_byte_swapped_scale_and_bias_are_converted_a_residual_refused(variant, rng):
    x, residual, scale, bias = problem(rng, 5, 24)
    expected = call(OP, variant, x, scale, bias, residual=residual)

    def swapped(a):
        return a.astype(a.dtype.newbyteorder())

    y = call(OP, variant, x, swapped(scale), swapped(bias), residual=residual)
    assert np.array_equal(y.view(np.uint32), expected.view(np.uint32))
    with pytest.raises(edgerun.ShapeError, match="residual must be float32"):
        call(OP, variant, x, scale, bias, residual=swapped(residual))


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_any_shape_normalises_the_last_axis(variant, rng):
    x, residual, scale, bias = problem(rng, 2 * 5 * 3, 33)
    y = call(OP, variant, x, scale, bias, residual=residual)
    y3 = call(OP, variant, x.reshape(2, 5, 3, 33), scale, bias,
              residual=residual.reshape(2, 5, 3, 33))
    assert y3.shape == (2, 5, 3, 33)
    assert np.array_equal(y3.reshape(y.shape), y)
    # A non-contiguous x is copied, not misread.
    xt = np.ascontiguousarray(x.reshape(30, 33).T).T
    assert np.array_equal(call(OP, variant, xt, scale, bias), call(OP, variant, x, scale, bias))
    y1 = call(OP, variant, x[0], scale, bias)
    assert y1.shape == (33,) and np.array_equal(y1, call(OP, variant, x[:1], scale, bias)[0])
    assert call(OP, variant, np.zeros((4, 0), np.float32), np.zeros(0, np.float32)).shape == (4, 0)


@pytest.mark.parametrize("impl", ["reference"] + [p.values[0] for p in kernel_implementations(OP)])
def test_bad_arguments_are_named(impl):
    def run(*args, **kwargs):
        if impl == "reference":
            return reference.layer_norm_f32(*args, **kwargs)
        return call(OP, impl, *args, **kwargs)

    x = np.ones((3, 8), np.float32)
    scale = np.ones(8, np.float32)
    with pytest.raises(edgerun.ShapeError, match="scale must have shape \\(8,\\)"):
        run(x, np.ones(7, np.float32))
    with pytest.raises(edgerun.ShapeError, match="scale is required"):
        run(x, None)
    with pytest.raises(edgerun.ShapeError, match="bias must have shape"):
        run(x, scale, np.ones((1, 8), np.float32))
    with pytest.raises(edgerun.ShapeError, match="residual must be float32"):
        run(x, scale, residual=np.ones((3, 7), np.float32))
    with pytest.raises(edgerun.ShapeError, match="residual must be float32"):
        run(x, scale, residual=np.ones((3, 8), np.float64))
    with pytest.raises(edgerun.ShapeError, match="x must be a float32"):
        run(x.astype(np.float64), scale)
    with pytest.raises(edgerun.ShapeError, match="x must be a float32"):
        run(np.float32(1), scale)
    with pytest.raises(edgerun.ShapeError, match="out must be"):
        run(x, scale, out=np.empty((3, 8), np.float64))
    big = np.ones((4, 8), np.float32)
    with pytest.raises(edgerun.ShapeError, match="must not partly overlap"):
        run(big[1:], scale, out=big[:3])
    shifted = np.arange(65 * 8, dtype=np.float32).reshape(65, 8)
    x_in_place = shifted[1:]
    with pytest.raises(edgerun.ShapeError, match="must not partly overlap"):
        run(x_in_place, scale, residual=shifted[:-1], out=x_in_place)
    swapped = np.ones((3, 8), np.dtype(np.float32).newbyteorder())
    with pytest.raises(edgerun.ShapeError, match="x must be a float32"):
        run(swapped, scale)
    for epsilon in (-1e-5, float("nan"), float("inf"), 1e39, "small", None):
        with pytest.raises(edgerun.OptionError, match="epsilon"):
            run(x, scale, epsilon=epsilon)
    frozen = np.ones((3, 8), np.float32)
    frozen.flags.writeable = False      # e.g. a view of a memory-mapped model file
    with pytest.raises(edgerun.ShapeError, match="out must be"):
        run(frozen, scale, out=frozen)
    with pytest.raises(edgerun.ShapeError, match="out must be"):
        run(x, scale, residual=frozen, out=frozen)
