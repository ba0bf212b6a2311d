"""codebook_f32 and codebook_s8: every runnable C variant against the numpy reference
(bit for bit on the int8 path, within float tolerance on the float path), and the
reference against a direct computation from the unpacked index matrix."""
import numpy as np
import pytest

import edgerun
from edgerun import packing, reference

from conftest import assert_same_bits, call, kernel_implementations, random_s8

KS = [1, 15, 16, 17, 31, 32, 33, 64, 100, 1000]
MS = [1, 2, 5, 8]   # 8: rows enough to decode the weights once and run gemm_s8 (codebook.h)
NS = [1, 3, 17]


class Variant:
    """kernels.<op>(...) calls the named C variant of op."""

    def __init__(self, op, variant):
        setattr(self, op, lambda *args, **kwargs: call(op, variant, *args, **kwargs))


def nibble_case(rng, m, n, k, extreme=False):
    idx = rng.integers(0, 16, size=(n, k)).astype(np.uint8)
    nibbles = packing.pack_nibble32(idx)
    # Garbage in the nibbles past k: every variant must ignore it.
    tail = k % 32
    if tail:
        last = nibbles[:, -16:]
        pad = rng.integers(0, 256, size=last.shape).astype(np.uint8)
        if tail < 16:
            keep_lo = np.arange(16) < tail
            last[...] = np.where(keep_lo, (last & 0x0F) | (pad & 0xF0), pad)
        else:
            keep_hi = np.arange(16) < tail - 16
            last[...] = np.where(keep_hi, last, (last & 0x0F) | (pad & 0xF0))
    table = random_s8(rng, 16, extreme)
    x = random_s8(rng, (m, k), extreme)
    return idx, nibbles, table, x


# ---- codebook_s8 ---------------------------------------------------------------

@pytest.mark.parametrize("variant", kernel_implementations("codebook_s8"))
@pytest.mark.parametrize("k", KS)
def test_s8_matches_reference_bit_for_bit(variant, k, rng):
    for m in MS:
        for n in NS:
            idx, nibbles, table, x = nibble_case(rng, m, n, k)
            x_scale = rng.uniform(0.001, 0.1, m).astype(np.float32)
            w_scale = np.full(n, 0.02, np.float32)  # a per-layer scale, broadcast
            bias = rng.standard_normal(n).astype(np.float32)
            y = call("codebook_s8", variant, nibbles, table, x, x_scale, w_scale, bias)
            assert_same_bits(y, reference.codebook_s8(nibbles, table, x, x_scale, w_scale, bias))
            # Without scales the output is the int32 sum itself.
            acc = call("codebook_s8", variant, nibbles, table, x, None, None)
            direct = x.astype(np.int64) @ table[idx].astype(np.int64).T
            assert np.array_equal(acc, direct.astype(np.float32))


@pytest.mark.parametrize("variant", kernel_implementations("codebook_s8"))
@pytest.mark.parametrize("m", [1, 5, 8])
@pytest.mark.parametrize("k", [32, 33, 1000, 4096, 4096 + 32 + 7, 3 * 4096 + 64])
def test_s8_extremes_do_not_saturate(variant, m, k, rng):
    """+-127 tables with +-127 x: the vpmaddubsw pair sum must stay exact.  The long
    rows cross the 4096-value chunks of the batch-1 path, with an odd last block."""
    n = 17
    idx, nibbles, table, x = nibble_case(rng, m, n, k, extreme=True)
    table[:8], table[8:] = 127, -127
    x[0] = 127
    idx[0] = 0  # row 0 of w all +127, row 1 all -127
    idx[1] = 15
    nibbles = packing.pack_nibble32(idx)
    y = call("codebook_s8", variant, nibbles, table, x, None, None)
    # the float32 of the exact sum (127*127*4135 has no exact float32; numpy 1.24
    # would compare in float64)
    assert y[0, 0] == np.float32(127 * 127 * k) and y[0, 1] == np.float32(-127 * 127 * k)
    assert_same_bits(y, reference.codebook_s8(nibbles, table, x, None, None))


@pytest.mark.parametrize("variant", kernel_implementations("codebook_s8"))
@pytest.mark.parametrize("m,n,k", [(1, 17, 100), (8, 3, 1000), (5, 1, 33), (9, 40, 1000),
                                   (12, 600, 32)])   # several blocks of decoded rows
def test_s8_relu_and_int8_output(variant, m, n, k, rng):
    _, nibbles, table, x = nibble_case(rng, m, n, k)
    x_scale = np.full(m, 1 / 127, np.float32)
    w_scale = rng.uniform(0.001, 0.01, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    args = (nibbles, table, x, x_scale, w_scale, bias)
    y = call("codebook_s8", variant, *args, relu=True)
    y_ref = reference.codebook_s8(*args, relu=True)
    assert_same_bits(y, y_ref)
    assert (y >= 0).all()
    q = call("codebook_s8", variant, *args, relu=False, out_scale=0.05)
    q_ref = reference.codebook_s8(*args, relu=False, out_scale=0.05)
    assert q.dtype == np.int8 and q.min() >= -127
    assert_same_bits(q, q_ref)
    out = np.empty((m, n), np.int8)
    assert call("codebook_s8", variant, *args, relu=True, out_scale=0.05, out=out) is out
    assert_same_bits(out, reference.codebook_s8(*args, relu=True, out_scale=0.05))


@pytest.mark.parametrize("variant", kernel_implementations("codebook_s8"))
@pytest.mark.parametrize("m,n,k", [(1, 5, 33), (3, 17, 100), (9, 40, 1000), (12, 600, 32)],
                         ids=["m1", "rows", "decoded-one-block", "decoded-blocks"])
def test_s8_zero_points_match_reference(variant, m, n, k, rng):
    """An asymmetric x as quantize_rows_u7 leaves it, with the decoded rows' sums:
    the same bits as the reference, and as the symmetric path on x - zero."""
    idx, nibbles, table, _ = nibble_case(rng, m, n, k)
    q = rng.integers(0, 128, (m, k)).astype(np.int8)
    zero = rng.integers(0, 128, m).astype(np.int32)
    sums = table.astype(np.int32)[idx].sum(axis=1, dtype=np.int32)
    x_scale = rng.uniform(0.001, 0.1, m).astype(np.float32)
    w_scale = np.full(n, 0.02, np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    y = call("codebook_s8", variant, nibbles, table, q, x_scale, w_scale, bias, relu=True,
             x_zero=zero, w_sums=sums)
    assert_same_bits(y, reference.codebook_s8(nibbles, table, q, x_scale, w_scale, bias, relu=True,
                                              x_zero=zero, w_sums=sums))
    shifted = (q.astype(np.int32) - zero[:, None]).astype(np.int8)
    assert_same_bits(y, reference.codebook_s8(nibbles, table, shifted, x_scale, w_scale, bias,
                                              relu=True))


@pytest.mark.parametrize("variant", kernel_implementations("codebook_s8"))
def test_s8_zero_rows_and_empty_shapes(variant, rng):
    _, nibbles, table, x = nibble_case(rng, 3, 4, 40)
    x[1] = 0
    y = call("codebook_s8", variant, nibbles, table, x, None, None)
    assert (y[1] == 0).all()
    assert_same_bits(y, reference.codebook_s8(nibbles, table, x, None, None))
    empty = call("codebook_s8", variant, nibbles, table, x[:0], None, None)
    assert empty.shape == (0, 4)
    y0 = call("codebook_s8", variant, np.zeros((4, 0), np.uint8), table, x[:, :0], None, None,
              bias=np.arange(4, dtype=np.float32))
    assert np.array_equal(y0, np.tile(np.arange(4, dtype=np.float32), (3, 1)))


@pytest.mark.parametrize("variant", kernel_implementations("codebook_s8"))
def test_s8_refuses_bad_arguments(variant, rng):
    _, nibbles, table, x = nibble_case(rng, 2, 3, 40)
    kernels = Variant("codebook_s8", variant)
    with pytest.raises(edgerun.ShapeError, match="nibbles"):
        kernels.codebook_s8(nibbles[:, :16], table, x, None, None)
    with pytest.raises(edgerun.ShapeError, match="table"):
        kernels.codebook_s8(nibbles, table[:8], x, None, None)
    with pytest.raises(edgerun.ShapeError, match="x must be int8"):
        kernels.codebook_s8(nibbles, table, x.astype(np.float32), None, None)
    with pytest.raises(edgerun.ShapeError, match="w_scale"):
        kernels.codebook_s8(nibbles, table, x, None, np.ones(2, np.float32))
    with pytest.raises(edgerun.ShapeError, match="x_scale"):
        kernels.codebook_s8(nibbles, table, x, np.ones(3, np.float32), None)
    k = edgerun._backend.kernels.MAX_K_S8 + 1  # k * 127 * 127 would overflow int32
    with pytest.raises(edgerun.ShapeError, match="exceeds"):
        kernels.codebook_s8(np.zeros((1, (k + 31) // 32 * 16), np.uint8), table,
                            np.zeros((1, k), np.int8), None, None)
    bad = table.copy()
    bad[3] = -128
    with pytest.raises(edgerun.EdgerunError, match="-128"):
        kernels.codebook_s8(nibbles, bad, x, None, None)


# ---- codebook_f32 --------------------------------------------------------------

def float_case(rng, m, n, k, bits):
    idx = rng.integers(0, 1 << bits, size=(n, k)).astype(np.uint8)
    packed = packing.pack_bits(idx, bits)
    if packed.size and (k * bits) % 8:  # garbage in the padding bits of each row
        pad_bits = np.uint8((0xFF << ((k * bits) % 8)) & 0xFF)
        packed[:, -1] |= pad_bits & rng.integers(0, 256, size=n).astype(np.uint8)
    centroids = rng.standard_normal(1 << bits).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    return idx, packed, centroids, x


def assert_close_f32(y, idx, centroids, x, bias=None, relu=False):
    w = centroids[idx].astype(np.float64)
    exact = x.astype(np.float64) @ w.T + (0 if bias is None else bias.astype(np.float64))
    if relu:
        exact = np.maximum(exact, 0)
    bound = np.abs(x).astype(np.float64) @ np.abs(w).T
    # float32 summation in any order: error <= k * eps32 * sum |x w|, far above what we see
    assert np.all(np.abs(y - exact) <= 4e-6 * x.shape[1] ** 0.5 * bound + 1e-6)


@pytest.mark.parametrize("variant", kernel_implementations("codebook_f32"))
@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("k", KS)
def test_f32_matches_reference(variant, bits, k, rng):
    for m in MS:
        for n in NS:
            idx, packed, centroids, x = float_case(rng, m, n, k, bits)
            bias = rng.standard_normal(n).astype(np.float32)
            y = call("codebook_f32", variant, packed, bits, centroids, x, bias)
            y_ref = reference.codebook_f32(packed, bits, centroids, x, bias)
            assert y.dtype == np.float32 and y.shape == (m, n)
            assert np.allclose(y, y_ref, rtol=1e-4, atol=1e-5 * k)
            assert_close_f32(y, idx, centroids, x, bias)


@pytest.mark.parametrize("variant", kernel_implementations("codebook_f32"))
def test_f32_relu_out_and_exact_small_case(variant, rng):
    idx, packed, centroids, x = float_case(rng, 5, 17, 100, 4)
    out = np.empty((5, 17), np.float32)
    y = call("codebook_f32", variant, packed, 4, centroids, x, relu=True, out=out)
    assert y is out and (y >= 0).all()
    assert_close_f32(y, idx, centroids, x, relu=True)
    # Integer-valued centroids and x: every partial sum is exact in float32.
    centroids = np.arange(-8, 8, dtype=np.float32)
    x = rng.integers(-3, 4, size=(5, 100)).astype(np.float32)
    y = call("codebook_f32", variant, packed, 4, centroids, x)
    assert_same_bits(y, reference.codebook_f32(packed, 4, centroids, x))


@pytest.mark.parametrize("variant", kernel_implementations("codebook_f32"))
def test_f32_empty_shapes(variant, rng):
    _, packed, centroids, x = float_case(rng, 3, 4, 10, 3)
    assert call("codebook_f32", variant, packed, 3, centroids, x[:0]).shape == (0, 4)
    bias = np.arange(4, dtype=np.float32)
    y = call("codebook_f32", variant, np.zeros((4, 0), np.uint8), 3, centroids, x[:, :0], bias)
    assert np.array_equal(y, np.tile(bias, (3, 1)))


@pytest.mark.parametrize("variant", kernel_implementations("codebook_f32"))
def test_f32_refuses_bad_arguments(variant, rng):
    _, packed, centroids, x = float_case(rng, 2, 3, 10, 3)
    kernels = Variant("codebook_f32", variant)
    for bits in (0, 9, 2.5):
        with pytest.raises(edgerun.EdgerunError, match="bits"):
            kernels.codebook_f32(packed, bits, centroids, x)
    with pytest.raises(edgerun.ShapeError, match="packed"):
        kernels.codebook_f32(packed, 4, np.zeros(16, np.float32), x)
    with pytest.raises(edgerun.ShapeError, match="centroids"):
        kernels.codebook_f32(packed, 3, centroids[:4], x)
    with pytest.raises(edgerun.ShapeError, match="centroids"):
        kernels.codebook_f32(packed, 3, centroids.astype(np.float64), x)
    with pytest.raises(edgerun.ShapeError, match="out"):
        kernels.codebook_f32(packed, 3, centroids, x, out=np.empty((3, 2), np.float32))


def test_reference_matches_direct_computation(rng):
    idx, nibbles, table, x = nibble_case(rng, 4, 6, 70)
    assert np.array_equal(reference.codebook_s8(nibbles, table, x, None, None),
                          (x.astype(np.int64) @ table[idx].astype(np.int64).T).astype(np.float32))
    idx, packed, centroids, x = float_case(rng, 4, 6, 70, 5)
    assert_close_f32(reference.codebook_f32(packed, 5, centroids, x), idx, centroids, x)
