# Included by _kernels.pyx (after _gelu.pxi, whose helpers it shares): softmax
# over the last axis of float32.

cdef extern from "edgerun.h" nogil:
    ctypedef er_status er_softmax_f32_fn(const float *x, float *y, size_t rows, size_t n)

def softmax_f32(x, out=None, variant=None):
    """Softmax over the last axis of float32 x (at least 1-D), max-subtracted ->
    float32, x's shape; out=x runs in place.  See reference.softmax_f32."""
    x = _float32_array(x, "softmax_f32")
    if x.ndim == 0:
        raise ShapeError("softmax_f32: x must have at least 1 dimension (softmax runs over the last), got a scalar")
    y = _same_shape_output(x, out, "softmax_f32")
    if x.size == 0:
        return y
    cdef er_softmax_f32_fn *fn = <er_softmax_f32_fn *>_kernel("softmax_f32", variant)
    # both C-contiguous float32 ndarrays (_gelu.pxi's helpers)
    cdef const float *xp = <const float *>PyArray_DATA(<PyArrayObject *>x)
    cdef float *yp = <float *>PyArray_DATA(<PyArrayObject *>y)
    cdef size_t n = x.shape[x.ndim - 1]
    cdef size_t rows = x.size // n
    cdef er_status status
    with nogil:
        status = fn(xp, yp, rows, n)
    _check(status, "softmax_f32")
    return y
