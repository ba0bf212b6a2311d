# Included by _kernels.pyx: 1x4 block-sparse weights times dense activations.

def spmm_bcsr4_f32(indptr, indices, values, x, bias=None, relu=False, out=None, variant=None):
    """1x4 block-sparse W [n, k] float32 times x [m, k] float32 -> y [m, n];
    values flat, 4 per block; see reference.py."""
    indptr, indices, values, x = _csr_arrays(indptr, indices, values, x, np.float32, np.float32, block=4)
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
    indptr, indices, values, x = _csr_arrays(indptr, indices, values, x, np.int8, np.int8, block=4)
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
