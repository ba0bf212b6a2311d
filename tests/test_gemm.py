"""gemm_s8: every C variant this CPU runs equals reference.gemm_s8 bit for bit."""
import numpy as np
import pytest

import edgerun
from edgerun import reference

from conftest import assert_same_bits, call, kernel_implementations, random_s8

OP = "gemm_s8"
VARIANTS = kernel_implementations(OP)


def operands(rng, m, n, k, extreme=False, nonneg=False):
    x = random_s8(rng, (m, k), extreme)
    if nonneg:  # activations after a ReLU: AVX2 skips its sign step for these
        x = np.abs(x)
    w = random_s8(rng, (n, k), extreme)
    x_scale = (rng.random(m) * 0.01).astype(np.float32)
    w_scale = (rng.random(n) * 0.01).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    return x, w, x_scale, w_scale, bias


# K below/at/above the SIMD steps (16 NEON, 32 AVX2), N and M across the tiles
# (3x4 and 1x8 AVX2, 4x4 and 1x8 NEON), M = 1 and N = 1.
SHAPES = [(1, 1, 1), (1, 1, 32), (1, 8, 32), (1, 9, 33), (1, 1, 5000), (2, 3, 15),
          (3, 4, 16), (3, 4, 17), (4, 5, 31), (5, 9, 64), (7, 17, 100), (8, 1, 96),
          (13, 11, 257), (64, 33, 1000)]
# The packed-panel path (small K, enough rows: gemm_s8.h er_gemm_s8_use_panels):
# K not a multiple of the 4-byte groups, N across the 16-column panels (partial
# last panel), M across its 4-row tiles, and the longest K it takes (1024, with
# 8 * M >= K).
PANEL_SHAPES = [(4, 1, 1), (4, 16, 4), (5, 17, 3), (6, 15, 37), (7, 33, 32), (16, 31, 128),
                (9, 48, 66), (32, 40, 256), (130, 20, 24), (128, 17, 1024), (130, 20, 999)]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("m,n,k", SHAPES + PANEL_SHAPES)
@pytest.mark.parametrize("extreme", [False, True], ids=["random", "pm127"])
@pytest.mark.parametrize("nonneg", [False, True], ids=["signed", "nonneg"])
def test_float_output_matches_reference(variant, m, n, k, extreme, nonneg, rng):
    x, w, x_scale, w_scale, bias = operands(rng, m, n, k, extreme, nonneg)
    y = call(OP, variant, x, w, x_scale, w_scale, bias)
    assert_same_bits(y, reference.gemm_s8(x, w, x_scale, w_scale, bias))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (1, 9, 33), (3, 4, 17), (7, 17, 100), (64, 33, 1000),
                                   (6, 15, 37), (32, 40, 256)])
def test_relu_and_int8_output_match_reference(variant, m, n, k, rng):
    x, w, x_scale, w_scale, bias = operands(rng, m, n, k)
    y = call(OP, variant, x, w, x_scale, w_scale, bias, relu=True)
    assert_same_bits(y, reference.gemm_s8(x, w, x_scale, w_scale, bias, relu=True))
    assert np.array_equal(y, np.maximum(reference.gemm_s8(x, w, x_scale, w_scale, bias), 0))
    out_scale = np.float32(np.abs(reference.gemm_s8(x, w, x_scale, w_scale, bias)).max() / 100)
    for relu in (False, True):
        q = call(OP, variant, x, w, x_scale, w_scale, bias, relu=relu, out_scale=out_scale)
        assert_same_bits(q, reference.gemm_s8(x, w, x_scale, w_scale, bias, relu=relu,
                                              out_scale=out_scale))
        assert q.min() >= -127


def asymmetric(rng, m, k, extreme=False):
    """x as quantize_rows_u7 leaves it: q in [0, 127] and a zero point per row; with
    extreme, q and zero at the ends of the range (0 against 127 and back)."""
    if extreme:
        q = np.where(rng.random((m, k)) < 0.5, 0, 127).astype(np.int8)
        zero = np.where(rng.random(m) < 0.5, 0, 127).astype(np.int32)
    else:
        q = rng.integers(0, 128, (m, k)).astype(np.int8)
        zero = rng.integers(0, 128, m).astype(np.int32)
    return q, zero


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("m,n,k", SHAPES + PANEL_SHAPES)
@pytest.mark.parametrize("extreme", [False, True], ids=["random", "ends"])
def test_zero_points_match_reference(variant, m, n, k, extreme, rng):
    _, w, x_scale, w_scale, bias = operands(rng, m, n, k, extreme)
    q, zero = asymmetric(rng, m, k, extreme)
    sums = w.sum(axis=1, dtype=np.int32)
    y = call(OP, variant, q, w, x_scale, w_scale, bias, x_zero=zero, w_sums=sums)
    assert_same_bits(y, reference.gemm_s8(q, w, x_scale, w_scale, bias, x_zero=zero, w_sums=sums))
    # the sums are exactly those of (q - zero) * w: the symmetric path on shifted x
    # (|q - zero| <= 127) gives the same bits
    shifted = (q.astype(np.int32) - zero[:, None]).astype(np.int8)
    assert_same_bits(y, reference.gemm_s8(shifted, w, x_scale, w_scale, bias))
    out_scale = np.float32(np.abs(y).max() / 100 + 1e-3)
    yq = call(OP, variant, q, w, x_scale, w_scale, bias, relu=True, out_scale=out_scale,
              x_zero=zero, w_sums=sums)
    assert_same_bits(yq, reference.gemm_s8(shifted, w, x_scale, w_scale, bias, relu=True,
                                           out_scale=out_scale))


@pytest.mark.parametrize("variant", VARIANTS)
def test_zero_points_on_a_column_slice(variant, rng):
    m, n, k = 12, 40, 64
    _, w, x_scale, w_scale, bias = operands(rng, m, n, k)
    q, zero = asymmetric(rng, m, k)
    sums = w.sum(axis=1, dtype=np.int32)
    full = call(OP, variant, q, w, x_scale, w_scale, bias, x_zero=zero, w_sums=sums)
    y = np.zeros((m, n), np.float32)
    for a, b in ((0, 9), (9, 40)):
        call(OP, variant, q, w[a:b], x_scale, w_scale[a:b], bias[a:b], out=y[:, a:b],
             x_zero=zero, w_sums=sums[a:b])
    assert_same_bits(y, full)


@pytest.mark.parametrize("variant", VARIANTS)
def test_zero_point_arguments_are_checked(variant, rng):
    x, w, x_scale, w_scale, _ = operands(rng, 3, 4, 8)
    q, zero = asymmetric(rng, 3, 8)
    sums = w.sum(axis=1, dtype=np.int32)
    with pytest.raises(edgerun.ShapeError, match="x_zero and w_sums go together"):
        call(OP, variant, q, w, x_scale, w_scale, x_zero=zero)
    with pytest.raises(edgerun.ShapeError, match=r"x_zero\[1\] = 128"):
        call(OP, variant, q, w, x_scale, w_scale, x_zero=np.array([0, 128, 5]), w_sums=sums)
    with pytest.raises(edgerun.ShapeError, match=r"w_sums\[2\] = 1017 cannot be the sum"):
        call(OP, variant, q, w, x_scale, w_scale, x_zero=zero, w_sums=np.array([0, 0, 1017, 0]))
    with pytest.raises(edgerun.ShapeError, match=r"x_zero must have shape \(3,\)"):
        call(OP, variant, q, w, x_scale, w_scale, x_zero=zero[:2], w_sums=sums)


@pytest.mark.parametrize("variant", VARIANTS)
def test_extremes_with_large_k_are_exact(variant):
    # +-127 against -127 everywhere: each output is +-k * 127 * 127, far beyond
    # int16, the case a saturating vpmaddubsw or an int16 accumulator gets wrong.
    k = 5000
    w = np.full((5, k), -127, np.int8)
    for signs in ([1, -1, 1], [1, 1, 1]):  # signed x, and x >= 0 (AVX2 skips vpsignb)
        x = np.array(signs, np.int8)[:, None] * np.ones((3, k), np.int8) * np.int8(127)
        y = call(OP, variant, x, w, None, None)
        expected = -np.array(signs, np.float32)[:, None] * np.float32(k * 127 * 127)
        assert np.array_equal(y, np.broadcast_to(expected, (3, 5)))
        assert_same_bits(y, reference.gemm_s8(x, w, None, None))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("m,n,k", [(3, 20, 40), (8, 20, 40)], ids=["rows", "panels"])
def test_relu_keeps_nan_and_zeroes_negative_zero_like_the_reference(variant, m, n, k, rng):
    # The panel path's epilogue is vectorised; it must treat NaN, +-inf and -0.0
    # exactly as the scalar er_store does.
    x, w, x_scale, w_scale, bias = operands(rng, m, n, k)
    x[1] = 0
    bias[:4] = [np.nan, np.inf, -np.inf, -0.0]
    for relu in (False, True):
        y = call(OP, variant, x, w, x_scale, w_scale, bias, relu=relu)
        assert_same_bits(y, reference.gemm_s8(x, w, x_scale, w_scale, bias, relu=relu))
    assert np.isnan(y[:, 0]).all() and (y[:, 2] == 0).all()
    assert not np.signbit(y[1, 3])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("m,n,k", [(5, 9, 33), (12, 40, 64)], ids=["rows", "panels"])
def test_column_slice_of_out_like_a_thread_writes(variant, m, n, k, rng):
    x, w, x_scale, w_scale, bias = operands(rng, m, n, k)
    full = np.full((m, n + 7), 7.0, np.float32)
    out = full[:, 3:3 + n]
    call(OP, variant, x, w, x_scale, w_scale, bias, out=out)
    assert_same_bits(out, reference.gemm_s8(x, w, x_scale, w_scale, bias))
    assert (full[:, :3] == 7).all() and (full[:, 3 + n:] == 7).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_zero_rows_scales_none_and_bias(variant, rng):
    x, w, _, w_scale, bias = operands(rng, 5, 6, 40)
    x[2] = 0
    y = call(OP, variant, x, w, None, w_scale, bias)
    assert np.array_equal(y[2], bias)
    assert_same_bits(y, reference.gemm_s8(x, w, None, w_scale, bias))
    acc = call(OP, variant, x, w, None, None)
    assert np.array_equal(acc, (x.astype(np.int64) @ w.T.astype(np.int64)).astype(np.float32))


@pytest.mark.parametrize("variant", VARIANTS)
def test_out_is_reused(variant, rng):
    x, w, x_scale, w_scale, bias = operands(rng, 4, 7, 50)
    out = np.full((4, 7), np.nan, np.float32)
    y = call(OP, variant, x, w, x_scale, w_scale, bias, out=out)
    assert y is out
    assert_same_bits(out, reference.gemm_s8(x, w, x_scale, w_scale, bias))
    out_q = np.full((4, 7), 99, np.int8)
    q = call(OP, variant, x, w, x_scale, w_scale, bias, out_scale=0.05, out=out_q)
    assert q is out_q
    assert_same_bits(out_q, reference.gemm_s8(x, w, x_scale, w_scale, bias, out_scale=0.05))
    with pytest.raises(edgerun.ShapeError, match=r"out must be .*int8"):
        call(OP, variant, x, w, x_scale, w_scale, out_scale=0.05, out=out)


@pytest.mark.parametrize("variant", VARIANTS)
def test_empty_shapes(variant, rng):
    w = random_s8(rng, (3, 8))
    y = call(OP, variant, np.zeros((0, 8), np.int8), w, None, None)
    assert y.shape == (0, 3) and y.dtype == np.float32
    y = call(OP, variant, random_s8(rng, (2, 8)), np.zeros((0, 8), np.int8), None, None)
    assert y.shape == (2, 0)
    bias = np.arange(3, dtype=np.float32)
    y = call(OP, variant, np.zeros((2, 0), np.int8), np.zeros((3, 0), np.int8), None, None, bias)
    assert np.array_equal(y, np.broadcast_to(bias, (2, 3)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_k_too_large_is_refused(variant):
    k = edgerun._backend.kernels.MAX_K_S8 + 1
    x = np.zeros((1, k), np.int8)
    w = np.zeros((1, k), np.int8)
    with pytest.raises(edgerun.ShapeError, match="inner dimension"):
        call(OP, variant, x, w, None, None)
    with pytest.raises(edgerun.ShapeError, match="inner dimension"):
        reference.gemm_s8(x, w, None, None)


@pytest.mark.parametrize("variant", VARIANTS)
def test_bad_shapes_name_what_was_expected(variant, rng):
    x = random_s8(rng, (2, 64))
    with pytest.raises(edgerun.ShapeError, match=r"w must be int8 \[n, 64\] to match x \[m, 64\]"):
        call(OP, variant, x, random_s8(rng, (3, 63)), None, None)
    with pytest.raises(edgerun.ShapeError, match="x must be int8"):
        call(OP, variant, x.astype(np.int16), random_s8(rng, (3, 64)), None, None)
    with pytest.raises(edgerun.ShapeError, match=r"x_scale must have shape \(2,\)"):
        call(OP, variant, x, random_s8(rng, (3, 64)), np.ones(3, np.float32), None)
    with pytest.raises(edgerun.ShapeError, match=r"w_scale must have shape \(3,\)"):
        call(OP, variant, x, random_s8(rng, (3, 64)), None, np.ones(2, np.float32))
    with pytest.raises(edgerun.ShapeError, match=r"bias must have shape \(3,\)"):
        call(OP, variant, x, random_s8(rng, (3, 64)), None, None, np.ones(4, np.float32))


def test_simd_variant_runs_where_the_cpu_has_it():
    # A silent fall back to scalar on a CPU with AVX2 (or on aarch64) fails here.
    import os
    import platform

    if edgerun._backend.name != "c":
        pytest.skip("numpy backend: no C variants")
    names = [p.values[0] for p in VARIANTS]
    assert "scalar" in names
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        assert "neon" in names
    elif machine in ("x86_64", "amd64"):
        try:
            with open("/proc/cpuinfo") as f:
                flags = f.read().split()
        except OSError:
            flags = []
        if "avx2" in flags and "fma" in flags:
            assert "avx2" in names
            if os.environ.get("EDGERUN_ISA", "auto") in ("", "auto"):
                assert edgerun.cpu_info()["selected"]["gemm_s8"] == "avx2"


# ---- LinearS8: quantize_rows_u7 + gemm_s8 with the weights checked once ----------

def linear_s8_layer(rng, n, k, features, bias=True, relu=False):
    values = np.zeros((n, k), dtype=np.int8)
    values[:, :features] = random_s8(rng, (n, features))
    scale = (rng.random(n) * 0.01).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    return values, scale, b, relu


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("m,n,k,features", [(1, 8, 8, 8), (3, 17, 40, 37), (128, 33, 256, 256),
                                            (5, 16, 1024, 1000), (0, 4, 8, 8), (2, 3, 8, 0)])
@pytest.mark.parametrize("relu", [False, True])
def test_linear_s8_matches_the_kernels_it_stands_for(variant, m, n, k, features, relu, rng):
    """The bits of quantize_rows_u7 -> zero-padded -> gemm_s8 (the reference twin), whole
    and split into column ranges the way threads run it."""
    layer = linear_s8_layer(rng, n, k, features, relu=relu)
    fast = edgerun._backend.kernels.LinearS8(*layer, features, "fc", variant=variant)
    twin = reference.LinearS8(*layer, features, "fc")
    x = (rng.standard_normal((m, features)) * 3).astype(np.float32)
    x[:, ::3] = np.abs(x[:, ::3])
    expected = twin(x)
    assert_same_bits(fast(x), expected)
    # C-contiguous float32 takes the call's direct path; anything else is converted first
    assert_same_bits(fast(np.asfortranarray(x)), expected)
    wide = np.zeros((m, 2 * features), dtype=np.float32)
    wide[:, ::2] = x
    assert_same_bits(fast(wide[:, ::2]), expected)
    q, s, z = fast.quantize(x)
    y = np.full((m, n), np.nan, dtype=np.float32)
    for begin, end in [(0, n // 3), (n // 3, n)]:
        fast.columns(q, s, z, y, begin, end)
    assert_same_bits(y, expected)
    assert np.array_equal(fast.w_sums, twin.w_sums)


@pytest.mark.parametrize("variant", VARIANTS)
def test_linear_s8_without_inputs_gives_the_bias_from_poisoned_memory(variant, rng):
    """features == 0 (k == 0 or all padding): scale and zero are written, not left as
    whatever the scratch held (a poisoned workspace hands out NaN bytes)."""
    kernels = edgerun._backend.kernels
    for k in (0, 8):
        layer = linear_s8_layer(rng, 3, k, 0)
        fast = kernels.LinearS8(*layer, 0, "fc", variant=variant)
        x = np.zeros((2048, 0), np.float32)      # scratch over 4 KiB: a pooled block
        y = kernels.Workspace(poison=True).run(fast, x)
        assert_same_bits(y, reference.LinearS8(*layer, 0, "fc")(x))


def test_linear_s8_byte_swapped_input_is_converted_not_misread(rng):
    layer = linear_s8_layer(rng, 5, 16, 16)
    fast = edgerun._backend.kernels.LinearS8(*layer, 16, "fc")
    x = rng.standard_normal((3, 16)).astype(np.float32)
    with pytest.raises(edgerun.ShapeError, match="float32"):
        fast(x.astype(x.dtype.newbyteorder()))


def test_linear_s8_failed_second_init_keeps_a_working_layer(rng):
    """Raw pointers into the weights are replaced only with the weights themselves."""
    layer = linear_s8_layer(rng, 4, 16, 16)
    fast = edgerun._backend.kernels.LinearS8(*layer, 16, "fc")
    x = rng.standard_normal((2, 16)).astype(np.float32)
    expected = fast(x)
    other = linear_s8_layer(rng, 6, 32, 32)
    with pytest.raises(edgerun.ShapeError, match="scale"):
        fast.__init__(other[0], other[1][:2], other[2], False, 32, "fc")
    assert_same_bits(fast(x), expected)


@pytest.mark.parametrize("impl", ["c", "reference"])
def test_linear_s8_refuses_bad_arguments_by_name(impl, rng):
    module = edgerun._backend.kernels if impl == "c" else reference
    values, scale, bias, relu = linear_s8_layer(rng, 4, 16, 12)
    layer = module.LinearS8(values, scale, bias, relu, 12, "encoder.fc1")
    with pytest.raises(edgerun.ShapeError, match=r"'encoder.fc1' expects float32 \[m, 12\]"):
        layer(np.zeros((2, 16), np.float32))
    with pytest.raises(edgerun.ShapeError, match="float32"):
        layer(np.zeros((2, 12), np.float64))
    x = np.zeros((2, 12), np.float32)
    x[1, 5] = np.nan
    with pytest.raises(edgerun.NonFiniteError, match="encoder.fc1"):
        layer(x)
    unpadded = module.LinearS8(values[:, :8], scale, bias, relu, 8, "encoder.fc2")
    with pytest.raises(edgerun.NonFiniteError, match="encoder.fc2"):
        unpadded(x[:, :8].copy() + np.float32(np.inf))
    padded = values.copy()
    padded[0, 13] = 1
    with pytest.raises(edgerun.ShapeError, match="padding"):
        module.LinearS8(padded, scale, bias, relu, 12, "encoder.fc1")
    with pytest.raises(edgerun.ShapeError):
        module.LinearS8(values, scale[:3], bias, relu, 12)
