# Included by _kernels.pyx: dense int8 GEMM, y = epilogue(x @ w^T).

def gemm_s8(x, w, x_scale, w_scale, bias=None, relu=False, out_scale=None, out=None,
            x_zero=None, w_sums=None, variant=None):
    """int8 x [m, k] times int8 w [n, k] (stored by output row), int32 accumulation,
    then y = acc * x_scale[m] * w_scale[n] + bias[n] (relu optional) -> float32
    [m, n], or int8 [m, n] requantized by out_scale.  With x_zero (int32 [m], from
    quantize_rows_u7) and w_sums (int32 [n], w.sum(axis=1), precomputed by the caller)
    the sums are of (x - x_zero) * w.  See reference.gemm_s8."""
    x = _matrix(x, np.int8, "x")
    w = _matrix(w, np.int8, "w")
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1], n = w.shape[0]
    if w.shape[1] != k:
        raise ShapeError(f"w must be int8 [n, {k}] to match x [m, {k}], got int8 {list(w.shape)}")
    x_scale = _vector(x_scale, m, np.float32, "x_scale")
    w_scale = _vector(w_scale, n, np.float32, "w_scale")
    bias = _vector(bias, n, np.float32, "bias")
    x_zero, w_sums = _zero_points(x_zero, w_sums, m, n, k)
    y = _output(out, m, n, np.float32 if out_scale is None else np.int8)
    if m == 0 or n == 0:
        return y
    cdef er_gemm_s8_fn *fn = <er_gemm_s8_fn *>_kernel("gemm_s8", variant)
    cdef er_epilogue ep
    _epilogue(&ep, x_scale, w_scale, bias, relu, y, out_scale)
    _epilogue_zero_points(&ep, x_zero, w_sums)
    cdef const int8_t[:, ::1] xv = x
    cdef const int8_t[:, ::1] wv = w
    # k == 0 has no element to point at; the kernel reads nothing then.
    cdef int8_t empty = 0
    cdef const int8_t *xp = &xv[0, 0] if k else &empty
    cdef const int8_t *wp = &wv[0, 0] if k else &empty
    cdef er_status status
    with nogil:
        status = fn(xp, wp, m, n, k, &ep)
    _check(status, "gemm_s8")
    return y
