"""spmm_csr_f32 / spmm_csr_s8: every runnable C variant against edgerun.reference.

int8 paths must match bit for bit; float paths too, except a SIMD gather at
m == 1, which may sum a row in another order (checked with a tolerance)."""
import platform

import numpy as np
import pytest

import edgerun
from edgerun import _backend, reference

from conftest import call, kernel_implementations, random_s8, runnable_variants

F32, S8 = "spmm_csr_f32", "spmm_csr_s8"
MS = [1, 2, 7, 8, 9, 33]


def random_csr(rng, n, k, density, index_dtype=np.uint32, int8=False, extreme=False,
               long_row=None, base=0):
    """(indptr, indices, values) of a random CSR [n, k] with the awkward rows:
    every 5th row empty, every 7th with one entry, optionally one row of
    `long_row` entries (columns may repeat there).  indptr starts at `base`
    (entries before it are junk that must be ignored)."""
    lengths = rng.binomial(k, density, size=n)
    lengths[3::7] = 1
    lengths[2::5] = 0
    if long_row is not None:
        lengths[n // 2] = long_row
    nnz = int(lengths.sum())
    indptr = (base + np.concatenate([[0], np.cumsum(lengths)])).astype(np.uint32)
    indices = rng.integers(0, k, size=base + nnz).astype(index_dtype)
    if int8:
        values = random_s8(rng, base + nnz, extreme=extreme)
    else:
        values = rng.standard_normal(base + nnz).astype(np.float32)
    return indptr, indices, values


def assert_f32(y, y_ref, variant, m, indptr):
    if variant == "scalar" or m > 1:
        assert np.array_equal(y.view(np.uint32), y_ref.view(np.uint32))
    else:  # a gather may reorder the row's sum
        longest = max(int(np.diff(indptr.astype(np.int64)).max(initial=0)), 1)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5 * np.sqrt(longest))


def test_reference_agrees_with_dense_matmul(rng):
    indptr, indices, values = random_csr(rng, 20, 30, 0.3)
    dense = np.zeros((20, 30), np.float64)
    rows = np.repeat(np.arange(20), np.diff(indptr.astype(np.int64)))
    np.add.at(dense, (rows, indices.astype(np.int64)), values)
    x = rng.standard_normal((4, 30)).astype(np.float32)
    np.testing.assert_allclose(reference.spmm_csr_f32(indptr, indices, values, x),
                               x @ dense.T, rtol=1e-5, atol=1e-5)
    q = random_s8(rng, (20, 30))
    xq = random_s8(rng, (4, 30))
    qi, qv = indices, q[rows, indices.astype(np.int64)]
    acc = reference.spmm_csr_s8(indptr, qi, qv, xq, None, None)
    dense_q = np.zeros((20, 30), np.int64)
    np.add.at(dense_q, (rows, qi.astype(np.int64)), qv.astype(np.int64))
    assert np.array_equal(acc, (xq.astype(np.int64) @ dense_q.T).astype(np.float32))


@pytest.mark.parametrize("variant", kernel_implementations(F32))
@pytest.mark.parametrize("index_dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("relu", [False, True])
def test_f32_matches_reference(variant, index_dtype, m, relu, rng):
    n, k = 23, 45
    indptr, indices, values = random_csr(rng, n, k, 0.3, index_dtype)
    x = rng.standard_normal((m, k)).astype(np.float32)
    if m > 1:
        x[1] = 0  # an all-zero row of x
    bias = rng.standard_normal(n).astype(np.float32)
    y = call(F32, variant, indptr, indices, values, x, bias=bias, relu=relu)
    y_ref = reference.spmm_csr_f32(indptr, indices, values, x, bias=bias, relu=relu)
    assert_f32(y, y_ref, variant, m, indptr)
    if relu:
        assert (y >= 0).all()
    assert np.array_equal(y[:, 2::5], np.broadcast_to(np.maximum(bias[2::5], 0) if relu
                                                      else bias[2::5], (m, len(bias[2::5]))))


@pytest.mark.parametrize("variant", kernel_implementations(S8))
@pytest.mark.parametrize("index_dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("extreme", [False, True])
@pytest.mark.parametrize("requantize", [False, True])
def test_s8_matches_reference_bit_for_bit(variant, index_dtype, m, extreme, requantize, rng):
    n, k = 21, 50
    indptr, indices, values = random_csr(rng, n, k, 0.4, index_dtype, int8=True, extreme=extreme)
    x = random_s8(rng, (m, k), extreme=extreme)
    if m > 1:
        x[1] = 0
    x_scale = rng.uniform(0.001, 0.02, m).astype(np.float32)
    w_scale = rng.uniform(0.001, 0.02, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    out_scale = 0.05 if requantize else None
    args = (indptr, indices, values, x, x_scale, w_scale)
    y = call(S8, variant, *args, bias=bias, relu=True, out_scale=out_scale)
    y_ref = reference.spmm_csr_s8(*args, bias=bias, relu=True, out_scale=out_scale)
    assert y.dtype == (np.int8 if requantize else np.float32)
    assert np.array_equal(y.view(np.uint8), y_ref.view(np.uint8))
    if requantize:
        assert y.min() >= 0 and y.max() <= 127


@pytest.mark.parametrize("variant", kernel_implementations(S8))
@pytest.mark.parametrize("m", [1, 8, 17])
def test_s8_long_rows_at_the_extremes(variant, m, rng):
    # 5000 products of +-127 * +-127: sums far beyond int16, exact in int32.
    indptr, indices, values = random_csr(rng, 9, 300, 0.5, np.uint16, int8=True,
                                         extreme=True, long_row=5000)
    values[:] = 127
    x = np.full((m, 300), 127, np.int8)
    y = call(S8, variant, indptr, indices, values, x, None, None)
    y_ref = reference.spmm_csr_s8(indptr, indices, values, x, None, None)
    assert np.array_equal(y, y_ref)
    assert y[0, 9 // 2] == 5000 * 127 * 127


@pytest.mark.parametrize("variant", kernel_implementations(F32))
@pytest.mark.parametrize("m", [1, 9])
def test_f32_long_row(variant, m, rng):
    indptr, indices, values = random_csr(rng, 9, 300, 0.2, np.uint32, long_row=5000)
    x = rng.standard_normal((m, 300)).astype(np.float32)
    y = call(F32, variant, indptr, indices, values, x)
    assert_f32(y, reference.spmm_csr_f32(indptr, indices, values, x), variant, m, indptr)


@pytest.mark.parametrize("variant", kernel_implementations(S8))
@pytest.mark.parametrize("m", [1, 8, 33])
def test_row_slice_s8(variant, m, rng):
    # indptr[a:b+1] describes rows a..b-1 with absolute offsets (indptr[0] > 0).
    indptr, indices, values = random_csr(rng, 30, 40, 0.3, np.uint16, int8=True, base=5)
    x = random_s8(rng, (m, 40))
    w_scale = rng.uniform(0.01, 0.02, 30).astype(np.float32)
    whole = call(S8, variant, indptr, indices, values, x, None, w_scale)
    a, b = 7, 26
    part = call(S8, variant, indptr[a:b + 1], indices, values, x, None, w_scale[a:b])
    assert np.array_equal(part, whole[:, a:b])
    assert np.array_equal(whole, reference.spmm_csr_s8(indptr, indices, values, x, None, w_scale))


@pytest.mark.parametrize("variant", kernel_implementations(F32))
@pytest.mark.parametrize("m", [1, 8, 33])
def test_row_slice_f32(variant, m, rng):
    indptr, indices, values = random_csr(rng, 30, 40, 0.3, np.uint32, base=3)
    x = rng.standard_normal((m, 40)).astype(np.float32)
    whole = call(F32, variant, indptr, indices, values, x)
    part = call(F32, variant, indptr[7:27], indices, values, x)
    assert np.array_equal(part, whole[:, 7:26])
    assert_f32(whole, reference.spmm_csr_f32(indptr, indices, values, x), variant, m, indptr)


@pytest.mark.parametrize("variant", kernel_implementations(S8))
def test_all_rows_empty_give_the_epilogue_of_zero(variant, rng):
    indptr = np.zeros(6, np.uint32)
    bias = np.array([-1, 2, 0, 3.5, -0.5], np.float32)
    x = random_s8(rng, (3, 10))
    y = call(S8, variant, indptr, np.zeros(0, np.uint16), np.zeros(0, np.int8), x, None, None,
             bias=bias, relu=True)
    assert np.array_equal(y, np.tile(np.maximum(bias, 0), (3, 1)))


@pytest.mark.parametrize("variant", kernel_implementations(F32))
def test_u32_indices_beyond_u16(variant, rng):
    k = 70000
    indptr, indices, values = random_csr(rng, 5, k, 0.001, np.uint32)
    indices[:] = rng.integers(65536, k, size=indices.shape[0])
    x = rng.standard_normal((2, k)).astype(np.float32)
    y = call(F32, variant, indptr, indices, values, x)
    assert np.array_equal(y, reference.spmm_csr_f32(indptr, indices, values, x))


@pytest.mark.parametrize("op,variant", [(op, v) for op in (F32, S8)
                                        for v in runnable_variants(op)])
def test_m_zero_returns_empty(op, variant):
    indptr = np.array([0, 1, 1], np.uint32)
    if op == F32:
        y = call(op, variant, indptr, np.array([2], np.uint16), np.ones(1, np.float32),
                 np.zeros((0, 4), np.float32))
    else:
        y = call(op, variant, indptr, np.array([2], np.uint16), np.ones(1, np.int8),
                 np.zeros((0, 4), np.int8), np.zeros(0, np.float32), None)
    assert y.shape == (0, 2)


def test_bad_arguments_are_shape_errors():
    kernels = _backend.kernels
    if _backend.name != "c":
        pytest.skip("argument checks belong to the C wrappers")
    indptr = np.array([0, 1, 2], np.uint32)
    idx = np.array([0, 3], np.uint16)
    val = np.ones(2, np.float32)
    x = np.ones((2, 4), np.float32)
    kernels.spmm_csr_f32(indptr, idx, val, x)  # the good call
    with pytest.raises(edgerun.ShapeError, match="indptr must be a 1-D uint32"):
        kernels.spmm_csr_f32(indptr.astype(np.int64), idx, val, x)
    with pytest.raises(edgerun.ShapeError, match="indices must be"):
        kernels.spmm_csr_f32(indptr, idx.astype(np.int32), val, x)
    with pytest.raises(edgerun.ShapeError, match="values must be a 1-D float32"):
        kernels.spmm_csr_f32(indptr, idx, val.astype(np.float64), x)
    with pytest.raises(edgerun.ShapeError, match="one item per entry"):
        kernels.spmm_csr_f32(indptr, idx, val[:1], x)
    with pytest.raises(edgerun.ShapeError, match="indptr must run"):
        kernels.spmm_csr_f32(np.array([0, 1, 3], np.uint32), idx, val, x)
    with pytest.raises(edgerun.ShapeError, match="x must be float32"):
        kernels.spmm_csr_f32(indptr, idx, val, x.astype(np.float64))
    with pytest.raises(edgerun.ShapeError, match="uint16 indices address at most 65536"):
        kernels.spmm_csr_f32(indptr, idx, val, np.ones((1, 65537), np.float32))
    with pytest.raises(edgerun.ShapeError, match="bias must have shape"):
        kernels.spmm_csr_f32(indptr, idx, val, x, bias=np.ones(3, np.float32))
    with pytest.raises(edgerun.ShapeError, match="out must be"):
        kernels.spmm_csr_f32(indptr, idx, val, x, out=np.empty((2, 3), np.float32))
    xq = np.ones((2, 4), np.int8)
    with pytest.raises(edgerun.ShapeError, match="values must be a 1-D int8"):
        kernels.spmm_csr_s8(indptr, idx, val, xq, None, None)
    with pytest.raises(edgerun.ShapeError, match="x_scale must have shape"):
        kernels.spmm_csr_s8(indptr, idx, np.ones(2, np.int8), xq, np.ones(3, np.float32), None)


@pytest.mark.parametrize("variant", kernel_implementations(S8))
def test_out_is_written_in_place(variant, rng):
    indptr, indices, values = random_csr(rng, 6, 10, 0.5, np.uint16, int8=True)
    x = random_s8(rng, (3, 10))
    out = np.zeros((3, 6), np.int8)
    y = call(S8, variant, indptr, indices, values, x, None, None, out_scale=10.0, out=out)
    assert y is out
    assert np.array_equal(out, reference.spmm_csr_s8(indptr, indices, values, x, None, None,
                                                     out_scale=10.0))


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read().split()
    except OSError:
        return []


@pytest.mark.parametrize("op", [F32, S8])
def test_simd_variant_runs_where_the_cpu_has_it(op):
    # A silent fall back to the scalar C on a machine with the ISA fails here.
    if _backend.name != "c":
        pytest.skip("numpy backend")
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64") and {"avx2", "fma"} <= set(_cpu_flags()):
        assert "avx2" in runnable_variants(op)
        assert edgerun.cpu_info()["selected"][op] in ("avx2",) or \
            edgerun.cpu_info()["isa_cap"] != "auto"
    elif machine in ("aarch64", "arm64"):
        assert "neon" in runnable_variants(op)


@pytest.mark.parametrize("variant", kernel_implementations(S8))
def test_s8_refuses_a_row_that_could_overflow_int32(variant):
    # More than MAX_K_S8 entries of +-127 * +-127 may not fit an int32 sum.
    nnz = reference.MAX_K_S8 + 1
    indptr = np.array([0, nnz], np.uint32)
    with pytest.raises(edgerun.ShapeError):
        call(S8, variant, indptr, np.zeros(nnz, np.uint16), np.ones(nnz, np.int8),
             np.ones((1, 1), np.int8), None, None)


@pytest.mark.parametrize("op,variant", [(op, v) for op in (F32, S8)
                                        for v in runnable_variants(op)])
@pytest.mark.parametrize("m", [1, 3])
def test_no_inputs_gives_the_epilogue_of_zero(op, variant, m):
    indptr = np.zeros(4, np.uint32)
    bias = np.array([1.5, -2, 0], np.float32)
    if op == F32:
        y = call(op, variant, indptr, np.zeros(0, np.uint16), np.zeros(0, np.float32),
                 np.zeros((m, 0), np.float32), bias=bias)
    else:
        y = call(op, variant, indptr, np.zeros(0, np.uint16), np.zeros(0, np.int8),
                 np.zeros((m, 0), np.int8), None, None, bias=bias)
    assert np.array_equal(y, np.tile(bias, (m, 1)))
