# Included by _kernels.pyx: dynamic per-row int8 quantization.

cdef object _rows_f32(x):
    """x as a C-contiguous float32 [m, k] ndarray (as is when it already is one)."""
    return x if _c_array(x, NPY_FLOAT32, 2) != NULL else _matrix(x, np.float32, "x")


cdef int8_t *_q_data(q, out) except NULL:
    """Where q's data starts: q is new (a C-contiguous ndarray) or `out` as _output
    checked it, which must also be C-contiguous as a whole (the kernels take one row
    stride, k)."""
    cdef int8_t[:, ::1] view
    if out is None:
        return <int8_t *>PyArray_DATA(<PyArrayObject *>q)
    if not q.flags.c_contiguous:
        raise ShapeError("out must be C-contiguous (one row stride)")
    view = q
    return &view[0, 0]


def quantize_rows_s8(x, out=None, variant=None):
    """x float32 [m, k] -> (q int8 [m, k], scale float32 [m]); see reference.py."""
    x = _rows_f32(x)
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1]
    q = _empty_2d(m, k, NPY_INT8) if out is None else _output(out, m, k, np.int8)
    scale = _zeros_1d(m, NPY_FLOAT32)
    if m == 0 or k == 0:
        return q, scale
    cdef er_quantize_rows_s8_fn *fn = <er_quantize_rows_s8_fn *>_kernel("quantize_rows_s8", variant)
    cdef const float *xp = <const float *>PyArray_DATA(<PyArrayObject *>x)
    cdef int8_t *qp = _q_data(q, out)
    cdef float *sp = <float *>PyArray_DATA(<PyArrayObject *>scale)
    cdef er_status status
    with nogil:
        status = fn(xp, m, k, qp, sp)
    _check(status, "quantize_rows_s8")
    return q, scale


def quantize_rows_u7(x, out=None, variant=None):
    """x float32 [m, k] -> (q int8 [m, k] in [0, 127], scale float32 [m], zero int32 [m]),
    x ~ scale * (q - zero) per row; see reference.py."""
    x = _rows_f32(x)
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1]
    q = _empty_2d(m, k, NPY_INT8) if out is None else _output(out, m, k, np.int8)
    scale = _zeros_1d(m, NPY_FLOAT32)
    zero = _zeros_1d(m, NPY_INT32)
    if m == 0 or k == 0:
        return q, scale, zero
    cdef er_quantize_rows_u7_fn *fn = <er_quantize_rows_u7_fn *>_kernel("quantize_rows_u7", variant)
    cdef const float *xp = <const float *>PyArray_DATA(<PyArrayObject *>x)
    cdef int8_t *qp = _q_data(q, out)
    cdef float *sp = <float *>PyArray_DATA(<PyArrayObject *>scale)
    cdef int32_t *zp = <int32_t *>PyArray_DATA(<PyArrayObject *>zero)
    cdef er_status status
    with nogil:
        status = fn(xp, m, k, qp, sp, zp)
    _check(status, "quantize_rows_u7")
    return q, scale, zero
