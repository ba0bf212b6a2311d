# Included by _kernels.pyx: dynamic per-row int8 quantization.

def quantize_rows_s8(x, out=None, variant=None):
    """x float32 [m, k] -> (q int8 [m, k], scale float32 [m]); see reference.py."""
    x = _matrix(x, np.float32, "x")
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1]
    q = _output(out, m, k, np.int8)
    scale = np.zeros(m, dtype=np.float32)
    if m == 0:
        return q, scale
    if k == 0:
        return q, scale
    cdef er_quantize_rows_s8_fn *fn = <er_quantize_rows_s8_fn *>_kernel("quantize_rows_s8", variant)
    cdef const float[:, ::1] xv = x
    cdef int8_t[:, ::1] qv = q
    cdef float[::1] sv = scale
    cdef er_status status
    with nogil:
        status = fn(&xv[0, 0], m, k, &qv[0, 0], &sv[0])
    _check(status, "quantize_rows_s8")
    return q, scale


def quantize_rows_u7(x, out=None, variant=None):
    """x float32 [m, k] -> (q int8 [m, k] in [0, 127], scale float32 [m], zero int32 [m]),
    x ~ scale * (q - zero) per row; see reference.py."""
    x = _matrix(x, np.float32, "x")
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1]
    q = _output(out, m, k, np.int8)
    scale = np.zeros(m, dtype=np.float32)
    zero = np.zeros(m, dtype=np.int32)
    if m == 0 or k == 0:
        return q, scale, zero
    cdef er_quantize_rows_u7_fn *fn = <er_quantize_rows_u7_fn *>_kernel("quantize_rows_u7", variant)
    cdef const float[:, ::1] xv = x
    cdef int8_t[:, ::1] qv = q
    cdef float[::1] sv = scale
    cdef int32_t[::1] zv = zero
    cdef er_status status
    with nogil:
        status = fn(&xv[0, 0], m, k, &qv[0, 0], &sv[0], &zv[0])
    _check(status, "quantize_rows_u7")
    return q, scale, zero
