"""spmm_bcsr4_f32 / spmm_bcsr4_s8: every runnable C variant against edgerun.reference.

int8 paths must match bit for bit; float paths within a tolerance for the SIMD
variants (they sum a row over their lanes), bit for bit for the scalar C."""
import numpy as np
import pytest

from edgerun import reference
from edgerun.errors import ShapeError

from conftest import call, kernel_implementations, random_s8, runnable_variants

F32, S8 = "spmm_bcsr4_f32", "spmm_bcsr4_s8"
MS = [1, 2, 7, 8, 9]


def random_bcsr4(rng, n, k, density, index_dtype=np.uint32, int8=False, extreme=False,
                 full_row=False, base=0):
    """(indptr, indices, values) of a random 1x4 block-sparse [n, k]: blocks of a
    row do not overlap; every 5th row empty, every 7th with one block, every 3rd
    ending with a block at the last possible column k - 4, optionally one row
    with every block that fits.  indptr starts at `base` (blocks before it are
    junk that must be ignored).  values is flat, 4 per block."""
    rows = []
    for j in range(n):
        starts = []
        if j % 5 != 2:
            p = int(rng.integers(0, 4))
            while p + 4 <= k:
                if (full_row and j == n // 2) or rng.random() < density:
                    starts.append(p)
                    p += 4
                else:
                    p += 1
            if j % 7 == 3:
                starts = starts[:1] or [0]
            elif j % 3 == 0 and (not starts or starts[-1] + 4 <= k - 4):
                starts.append(k - 4)
        rows.append(starts)
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    indptr = (base + np.concatenate([[0], np.cumsum(lengths)])).astype(np.uint32)
    junk = list(rng.integers(0, k - 3, size=base))
    indices = np.array(junk + [p for r in rows for p in r], dtype=index_dtype)
    nblocks = indices.shape[0]
    if int8:
        values = random_s8(rng, 4 * nblocks, extreme=extreme)
    else:
        values = rng.standard_normal(4 * nblocks).astype(np.float32)
    return indptr, indices, values


def dense_of(indptr, indices, values, n, k):
    """The dense W [n, k] (float64) that a block-sparse triple describes."""
    dense = np.zeros((n, k), np.float64)
    for j in range(n):
        for b in range(int(indptr[j]), int(indptr[j + 1])):
            dense[j, int(indices[b]):int(indices[b]) + 4] += values[4 * b:4 * b + 4]
    return dense


def assert_f32(y, y_ref, variant, indptr):
    if variant == "scalar":
        assert np.array_equal(y.view(np.uint32), y_ref.view(np.uint32))
    else:
        longest = max(4 * int(np.diff(indptr.astype(np.int64)).max(initial=0)), 1)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5 * np.sqrt(longest))


def test_every_variant_is_listed():
    # the scalar C always exists when the extension is built
    if runnable_variants("spmm_csr_s8"):
        assert "scalar" in runnable_variants(S8) and "scalar" in runnable_variants(F32)


def test_reference_agrees_with_dense_matmul(rng):
    n, k = 20, 31
    indptr, indices, values = random_bcsr4(rng, n, k, 0.3, base=2)
    dense = dense_of(indptr, indices, values, n, k)
    x = rng.standard_normal((4, k)).astype(np.float32)
    np.testing.assert_allclose(reference.spmm_bcsr4_f32(indptr, indices, values, x),
                               x @ dense.T, rtol=1e-5, atol=1e-5)
    indptr, indices, values = random_bcsr4(rng, n, k, 0.3, int8=True, base=2)
    dense = dense_of(indptr, indices, values.astype(np.int64), n, k).astype(np.int64)
    xq = random_s8(rng, (4, k))
    acc = reference.spmm_bcsr4_s8(indptr, indices, values, xq, None, None)
    assert np.array_equal(acc, (xq.astype(np.int64) @ dense.T).astype(np.float32))


@pytest.mark.parametrize("variant", kernel_implementations(F32))
@pytest.mark.parametrize("index_dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("relu", [False, True])
def test_f32_matches_reference(variant, index_dtype, m, relu, rng):
    n, k = 23, 203  # k not a multiple of 4; rows long enough for every SIMD step
    indptr, indices, values = random_bcsr4(rng, n, k, 0.3, index_dtype, full_row=True, base=3)
    x = rng.standard_normal((m, k)).astype(np.float32)
    if m > 1:
        x[1] = 0  # an all-zero row of x
    bias = rng.standard_normal(n).astype(np.float32)
    y = call(F32, variant, indptr, indices, values, x, bias=bias, relu=relu)
    y_ref = reference.spmm_bcsr4_f32(indptr, indices, values, x, bias=bias, relu=relu)
    assert_f32(y, y_ref, variant, indptr)
    if relu:
        assert (y >= 0).all()
    # empty rows give the bias alone
    expect = np.maximum(bias[2::5], 0) if relu else bias[2::5]
    assert np.array_equal(y[:, 2::5], np.broadcast_to(expect, (m, expect.shape[0])))


@pytest.mark.parametrize("variant", kernel_implementations(S8))
@pytest.mark.parametrize("index_dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("extreme", [False, True])
@pytest.mark.parametrize("requantize", [False, True])
def test_s8_matches_reference_bit_for_bit(variant, index_dtype, m, extreme, requantize, rng):
    n, k = 21, 150
    indptr, indices, values = random_bcsr4(rng, n, k, 0.4, index_dtype, int8=True,
                                           extreme=extreme, full_row=True, base=5)
    x = random_s8(rng, (m, k), extreme=extreme)
    if m > 1:
        x[1] = 0
    x_scale = rng.uniform(0.001, 0.02, m).astype(np.float32)
    w_scale = rng.uniform(0.001, 0.02, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    out_scale = 0.05 if requantize else None
    args = (indptr, indices, values, x, x_scale, w_scale)
    y = call(S8, variant, *args, bias=bias, relu=True, out_scale=out_scale)
    y_ref = reference.spmm_bcsr4_s8(*args, bias=bias, relu=True, out_scale=out_scale)
    assert y.dtype == (np.int8 if requantize else np.float32)
    assert np.array_equal(y.view(np.uint8), y_ref.view(np.uint8))
    if requantize:
        assert y.min() >= 0 and y.max() <= 127


@pytest.mark.parametrize("variant", kernel_implementations(S8))
@pytest.mark.parametrize("m", [1, 5])
def test_s8_long_row_at_the_extremes(variant, m, rng):
    # 2500 blocks of 127 * 127: sums far beyond int16 (and beyond one int16
    # pair of vpmaddubsw), exact in int32.
    k = 10003
    indptr, indices, values = random_bcsr4(rng, 9, k, 0.2, np.uint16, int8=True, full_row=True)
    values[:] = 127
    x = np.full((m, k), 127, np.int8)
    y = call(S8, variant, indptr, indices, values, x, None, None)
    assert np.array_equal(y, reference.spmm_bcsr4_s8(indptr, indices, values, x, None, None))
    assert y[0, 9 // 2] == 2500 * 4 * 127 * 127
    x[:] = -127
    y = call(S8, variant, indptr, indices, values, x, None, None)
    assert y[0, 9 // 2] == -2500 * 4 * 127 * 127


@pytest.mark.parametrize("variant", kernel_implementations(S8))
def test_s8_block_at_the_last_column(variant):
    # one row, one block at columns k-4 .. k-1, k not a multiple of 4
    k = 11
    indptr = np.array([0, 1], np.uint32)
    indices = np.array([k - 4], np.uint16)
    values = np.array([1, -2, 127, -127], np.int8)
    x = np.arange(k, dtype=np.int8)[None, :]
    y = call(S8, variant, indptr, indices, values, x, None, None)
    assert y[0, 0] == 7 * 1 - 8 * 2 + 9 * 127 - 10 * 127


@pytest.mark.parametrize("variant", kernel_implementations(S8))
def test_row_slice_equals_those_rows(variant, rng):
    n, k = 30, 64
    indptr, indices, values = random_bcsr4(rng, n, k, 0.5, np.uint16, int8=True)
    x = random_s8(rng, (3, k))
    whole = call(S8, variant, indptr, indices, values, x, None, None)
    part = call(S8, variant, indptr[10:21], indices, values, x, None, None)
    assert int(indptr[10]) > 0
    assert np.array_equal(part, whole[:, 10:20])


@pytest.mark.parametrize("variant", kernel_implementations(F32))
def test_f32_no_blocks_and_m_zero(variant):
    indptr = np.zeros(4, np.uint32)
    empty_i = np.zeros(0, np.uint16)
    y = call(F32, variant, indptr, empty_i, np.zeros(0, np.float32), np.ones((2, 3), np.float32),
             bias=np.array([1, 2, 3], np.float32))
    assert np.array_equal(y, [[1, 2, 3], [1, 2, 3]])
    y = call(F32, variant, indptr, empty_i, np.zeros(0, np.float32), np.ones((0, 8), np.float32))
    assert y.shape == (0, 3)


@pytest.mark.parametrize("variant", kernel_implementations(S8))
def test_bad_arguments_name_what_is_wrong(variant):
    indptr = np.array([0, 2], np.uint32)
    indices = np.array([0, 4], np.uint16)
    x = np.zeros((1, 8), np.int8)
    with pytest.raises(ShapeError, match="4 weights per block"):
        call(S8, variant, indptr, indices, np.zeros(7, np.int8), x, None, None)
    with pytest.raises(ShapeError, match="values must be a flat"):
        call(S8, variant, indptr, indices, np.zeros((2, 4), np.int8), x, None, None)
    with pytest.raises(ShapeError, match="indptr must"):
        call(S8, variant, np.array([0, 3], np.uint32), indices, np.zeros(8, np.int8), x, None, None)
    with pytest.raises(ShapeError, match="at least 4 inputs"):
        call(S8, variant, np.array([0, 1], np.uint32), indices[:1], np.zeros(4, np.int8),
             np.zeros((1, 3), np.int8), None, None)
    with pytest.raises(ShapeError, match="uint16"):
        call(S8, variant, indptr, indices, np.zeros(8, np.int8), np.zeros((1, 70000), np.int8),
             None, None)
