# Included by _kernels.pyx: CSR sparse weights times dense activations.

def _csr_arrays(indptr, indices, values, x, values_dtype, x_dtype, Py_ssize_t block=1):
    """Check a CSR W [n, k] (block = 1) or a 1x4 block-sparse one (block = 4:
    indptr counts blocks, indices are block columns, values hold 4 weights per
    block) and x [m, k]; return them as contiguous arrays.

    Only what the kernel cannot survive is checked here (dtypes, lengths,
    shapes): the full invariants (monotone indptr, every index < k, or + 4 <= k)
    are the file loader's job, done once at load instead of on every call."""
    indptr = np.asarray(indptr)
    indices = np.asarray(indices)
    values = np.asarray(values)
    entries = "entries" if block == 1 else "blocks"
    if indptr.dtype != np.uint32 or indptr.ndim != 1 or indptr.shape[0] < 1:
        raise ShapeError(f"indptr must be a 1-D uint32 array of rows + 1 items, "
                         f"got {indptr.dtype} {indptr.shape}")
    if indices.dtype not in (np.uint16, np.uint32) or indices.ndim != 1:
        raise ShapeError(f"indices must be a 1-D uint16 or uint32 array"
                         f"{'' if block == 1 else ' of block columns'}, got {indices.dtype} {indices.shape}")
    if values.dtype != values_dtype or values.ndim != 1:
        layout = "a 1-D" if block == 1 else "a flat 1-D"
        per = "" if block == 1 else f" ({block} per block)"
        raise ShapeError(f"values must be {layout} {np.dtype(values_dtype).name} array{per}, "
                         f"got {values.dtype} {values.shape}")
    if values.shape[0] != block * indices.shape[0]:
        if block == 1:
            raise ShapeError(f"indices and values must have one item per entry, "
                             f"got {indices.shape[0]} and {values.shape[0]}")
        raise ShapeError(f"values must hold {block} weights per block: {block * indices.shape[0]} "
                         f"for {indices.shape[0]} blocks, got {values.shape[0]}")
    first, last = int(indptr[0]), int(indptr[indptr.shape[0] - 1])  # (no wraparound here)
    if first > last or last > indices.shape[0]:
        raise ShapeError(f"indptr must run from indptr[0] <= indptr[-1] <= {indices.shape[0]} "
                         f"{entries}, got {first} .. {last}")
    x = _matrix(x, x_dtype, "x")
    if last > first and x.shape[1] < block:
        raise ShapeError(f"a 1x{block} block needs at least {block} inputs, but x has {x.shape[1]}")
    # a u16 index addresses columns 0..65535; a block starting there reaches block - 1 more
    if indices.dtype == np.uint16 and x.shape[1] > 65536 + block - 1:
        raise ShapeError(f"uint16 indices address at most {65536 + block - 1} inputs, but x has "
                         f"{x.shape[1]}; use uint32 indices")
    if x.shape[1] >= 2 ** 31:
        raise ShapeError(f"x has {x.shape[1]} inputs; the kernels index at most 2**31 - 1")
    return (np.ascontiguousarray(indptr), np.ascontiguousarray(indices),
            np.ascontiguousarray(values), x)


cdef er_csr _csr_struct(indptr, indices, values, Py_ssize_t k):
    """The er_csr view of checked arrays (the caller keeps them alive)."""
    cdef er_csr w
    cdef const uint32_t[::1] ptr = indptr
    cdef const uint8_t[::1] idx = indices.view(np.uint8)
    cdef const uint8_t[::1] val = values.view(np.uint8)
    w.rows = ptr.shape[0] - 1
    w.cols = k
    w.indptr = &ptr[0]
    w.index_bytes = indices.dtype.itemsize
    w.indices = &idx[0] if idx.shape[0] else NULL
    w.values = &val[0] if val.shape[0] else NULL
    return w


def _spmm_scratch(Py_ssize_t m, Py_ssize_t k):
    return np.empty(max(int(er_spmm_csr_scratch_bytes(m, k)), 1), dtype=np.uint8)


def spmm_csr_f32(indptr, indices, values, x, bias=None, relu=False, out=None, variant=None):
    """CSR W [n, k] float32 times x [m, k] float32 -> y [m, n]; see reference.py."""
    indptr, indices, values, x = _csr_arrays(indptr, indices, values, x, np.float32, np.float32)
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1], n = indptr.shape[0] - 1
    bias = _vector(bias, n, np.float32, "bias")
    y = _output(out, m, n, np.float32)
    if m == 0 or n == 0:
        return y
    cdef er_spmm_csr_f32_fn *fn = <er_spmm_csr_f32_fn *>_kernel("spmm_csr_f32", variant)
    cdef er_csr w = _csr_struct(indptr, indices, values, k)
    cdef er_epilogue ep
    _epilogue(&ep, None, None, bias, relu, y, None)
    scratch = _spmm_scratch(m, k)
    cdef uint8_t[::1] sv = scratch
    cdef const float[:, ::1] xv = x
    cdef er_status status
    with nogil:
        # k == 0 leaves no valid entry, so x is never read; any non-NULL pointer will do.
        status = fn(&w, &xv[0, 0] if k else <const float *>&sv[0], m, &ep, &sv[0])
    _check(status, "spmm_csr_f32")
    return y


def spmm_csr_s8(indptr, indices, values, x, x_scale, w_scale, bias=None, relu=False,
                out_scale=None, out=None, variant=None):
    """CSR W [n, k] int8 times x [m, k] int8, int32 sums, then the epilogue:
    float32 y [m, n], or int8 y when out_scale is given; see reference.py.
    x_scale [m] / w_scale [n] may be None (not applied)."""
    indptr, indices, values, x = _csr_arrays(indptr, indices, values, x, np.int8, np.int8)
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1], n = indptr.shape[0] - 1
    x_scale = _vector(x_scale, m, np.float32, "x_scale")
    w_scale = _vector(w_scale, n, np.float32, "w_scale")
    bias = _vector(bias, n, np.float32, "bias")
    y = _output(out, m, n, np.float32 if out_scale is None else np.int8)
    if m == 0 or n == 0:
        return y
    cdef er_spmm_csr_s8_fn *fn = <er_spmm_csr_s8_fn *>_kernel("spmm_csr_s8", variant)
    cdef er_csr w = _csr_struct(indptr, indices, values, k)
    cdef er_epilogue ep
    _epilogue(&ep, x_scale, w_scale, bias, relu, y, out_scale)
    scratch = _spmm_scratch(m, k)
    cdef uint8_t[::1] sv = scratch
    cdef const int8_t[:, ::1] xv = x
    cdef er_status status
    with nogil:
        status = fn(&w, &xv[0, 0] if k else <const int8_t *>&sv[0], m, &ep, &sv[0])
    _check(status, "spmm_csr_s8")
    return y
