# Included by _kernels.pyx: 1x4 block-sparse weights times dense activations.

def _bcsr4_arrays(indptr, indices, values, x, values_dtype, x_dtype):
    """Check a 1x4 block-sparse W [n, k] and x [m, k]; return contiguous arrays.

    As for CSR, only what the kernel cannot survive is checked here (dtypes,
    lengths, shapes); the block invariants (monotone indptr, indices[b] + 4 <= k,
    no overlap within a row) are the file loader's job, done once at load."""
    indptr = np.asarray(indptr)
    indices = np.asarray(indices)
    values = np.asarray(values)
    if indptr.dtype != np.uint32 or indptr.ndim != 1 or indptr.shape[0] < 1:
        raise ShapeError(f"indptr must be a 1-D uint32 array of rows + 1 items, "
                         f"got {indptr.dtype} {indptr.shape}")
    if indices.dtype not in (np.uint16, np.uint32) or indices.ndim != 1:
        raise ShapeError(f"indices must be a 1-D uint16 or uint32 array of block columns, "
                         f"got {indices.dtype} {indices.shape}")
    if values.dtype != values_dtype or values.ndim != 1:
        raise ShapeError(f"values must be a flat 1-D {np.dtype(values_dtype).name} array "
                         f"(4 per block), got {values.dtype} {values.shape}")
    if values.shape[0] != 4 * indices.shape[0]:
        raise ShapeError(f"values must hold 4 weights per block: {4 * indices.shape[0]} for "
                         f"{indices.shape[0]} blocks, got {values.shape[0]}")
    first, last = int(indptr[0]), int(indptr[indptr.shape[0] - 1])  # (no wraparound here)
    if first > last or last > indices.shape[0]:
        raise ShapeError(f"indptr must run from indptr[0] <= indptr[-1] <= {indices.shape[0]} "
                         f"blocks, got {first} .. {last}")
    x = _matrix(x, x_dtype, "x")
    if last > first and x.shape[1] < 4:
        raise ShapeError(f"a 1x4 block needs at least 4 inputs, but x has {x.shape[1]}")
    if indices.dtype == np.uint16 and x.shape[1] > 65536 + 3:
        raise ShapeError(f"uint16 block columns address at most 65539 inputs, but x has "
                         f"{x.shape[1]}; use uint32 indices")
    if x.shape[1] >= 2 ** 31:
        raise ShapeError(f"x has {x.shape[1]} inputs; the kernels index at most 2**31 - 1")
    return (np.ascontiguousarray(indptr), np.ascontiguousarray(indices),
            np.ascontiguousarray(values), x)


def spmm_bcsr4_f32(indptr, indices, values, x, bias=None, relu=False, out=None, variant=None):
    """1x4 block-sparse W [n, k] float32 times x [m, k] float32 -> y [m, n];
    values flat, 4 per block; see reference.py."""
    indptr, indices, values, x = _bcsr4_arrays(indptr, indices, values, x, np.float32, np.float32)
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1], n = indptr.shape[0] - 1
    bias = _vector(bias, n, np.float32, "bias")
    y = _output(out, m, n, np.float32)
    if m == 0 or n == 0:
        return y
    cdef er_spmm_csr_f32_fn *fn = <er_spmm_csr_f32_fn *>_kernel("spmm_bcsr4_f32", variant)
    cdef er_csr w = _csr_struct(indptr, indices, values, k)
    cdef er_epilogue ep
    _epilogue(&ep, None, None, bias, relu, y, None)
    cdef float dummy = 0.0
    cdef const float[:, ::1] xv = x
    cdef er_status status
    with nogil:
        # k == 0 leaves no block, so x is never read; any non-NULL pointer will do.
        # The block kernels need no scratch.
        status = fn(&w, &xv[0, 0] if k else &dummy, m, &ep, NULL)
    _check(status, "spmm_bcsr4_f32")
    return y


def spmm_bcsr4_s8(indptr, indices, values, x, x_scale, w_scale, bias=None, relu=False,
                  out_scale=None, out=None, variant=None):
    """1x4 block-sparse W [n, k] int8 times x [m, k] int8, int32 sums, then the
    epilogue: float32 y [m, n], or int8 y when out_scale is given; see
    reference.py.  x_scale [m] / w_scale [n] may be None (not applied)."""
    indptr, indices, values, x = _bcsr4_arrays(indptr, indices, values, x, np.int8, np.int8)
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1], n = indptr.shape[0] - 1
    x_scale = _vector(x_scale, m, np.float32, "x_scale")
    w_scale = _vector(w_scale, n, np.float32, "w_scale")
    bias = _vector(bias, n, np.float32, "bias")
    y = _output(out, m, n, np.float32 if out_scale is None else np.int8)
    if m == 0 or n == 0:
        return y
    cdef er_spmm_csr_s8_fn *fn = <er_spmm_csr_s8_fn *>_kernel("spmm_bcsr4_s8", variant)
    cdef er_csr w = _csr_struct(indptr, indices, values, k)
    cdef er_epilogue ep
    _epilogue(&ep, x_scale, w_scale, bias, relu, y, out_scale)
    cdef int8_t dummy = 0
    cdef const int8_t[:, ::1] xv = x
    cdef er_status status
    with nogil:
        status = fn(&w, &xv[0, 0] if k else &dummy, m, &ep, NULL)
    _check(status, "spmm_bcsr4_s8")
    return y
