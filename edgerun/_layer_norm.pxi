# Included by _kernels.pyx: layer normalisation over the last axis, float32.

from edgerun.reference import layer_norm_arguments


cdef bint _layer_norm_direct(x, scale, bias, epsilon, residual, out):
    """Whether the arguments need no conversion and pass layer_norm_arguments' checks
    as they are (the runtime's calls): C-contiguous float32 ndarrays of the right
    shapes, out None, x or residual and writeable, epsilon a float in [0, FLT_MAX].
    Those checks in Python took ~4 us a call; anything else still goes through them."""
    cdef PyArrayObject *xa = _c_array(x, NPY_FLOAT32, -1)
    if xa == NULL or PyArray_NDIM(xa) == 0:
        return False
    cdef npy_intp n = PyArray_DIMS(xa)[PyArray_NDIM(xa) - 1]
    cdef PyArrayObject *sa = _c_array(scale, NPY_FLOAT32, 1)
    if sa == NULL or PyArray_DIMS(sa)[0] != n:
        return False
    cdef PyArrayObject *ba
    if bias is not None:
        ba = _c_array(bias, NPY_FLOAT32, 1)
        if ba == NULL or PyArray_DIMS(ba)[0] != n:
            return False
    cdef PyArrayObject *ra
    cdef char *x0
    cdef char *r0
    if residual is not None:
        ra = _c_array(residual, NPY_FLOAT32, -1)
        if ra == NULL or not PyArray_SAMESHAPE(ra, xa):
            return False
    if out is not None and (not (out is x or out is residual)
                            or not _writeable(<PyArrayObject *>out)):
        return False
    if out is not None and residual is not None:
        # in place over one input while the other partly overlaps it: the checked
        # path names the error (both C-contiguous: each is [data, data + nbytes))
        x0, r0 = <char *>PyArray_DATA(xa), <char *>PyArray_DATA(ra)
        if x0 != r0 and x0 < r0 + PyArray_NBYTES(ra) and r0 < x0 + PyArray_NBYTES(xa):
            return False
    return type(epsilon) is float and 0 <= <double>epsilon <= 3.4028234663852886e38


def layer_norm_f32(x, scale, bias=None, epsilon=1e-5, residual=None, out=None, variant=None):
    """LayerNorm over the last axis of float32 x (any shape), residual (x's shape) added
    first; scale / bias [x.shape[-1]]; out may be x or residual (in place).
    See reference.layer_norm_f32 and csrc/edgerun.h."""
    if not _layer_norm_direct(x, scale, bias, epsilon, residual, out):
        x, scale, bias, epsilon, residual, out = layer_norm_arguments(x, scale, bias, epsilon,
                                                                      residual, out)
    elif out is None:
        out = _empty_like(<PyArrayObject *>x)
    if x.size == 0:
        return out
    cdef Py_ssize_t n = x.shape[x.ndim - 1]
    cdef Py_ssize_t rows = x.size // n
    cdef er_layer_norm_f32_fn *fn = <er_layer_norm_f32_fn *>_kernel("layer_norm_f32", variant)
    # every array a C-contiguous float32 ndarray by now (checked or converted above)
    cdef const float *xp = <const float *>PyArray_DATA(<PyArrayObject *>x)
    cdef float *yp = <float *>PyArray_DATA(<PyArrayObject *>out)
    cdef const float *s = <const float *>PyArray_DATA(<PyArrayObject *>scale)
    cdef const float *r = NULL
    cdef const float *b = NULL
    if residual is not None:
        r = <const float *>PyArray_DATA(<PyArrayObject *>residual)
    if bias is not None:
        b = <const float *>PyArray_DATA(<PyArrayObject *>bias)
    cdef float e = epsilon
    cdef er_status status
    with nogil:
        status = fn(xp, r, s, b, yp, rows, n, e)
    _check(status, "layer_norm_f32")
    return out
