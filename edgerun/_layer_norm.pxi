# Included by _kernels.pyx: layer normalisation over the last axis, float32.

from edgerun.reference import layer_norm_arguments


def layer_norm_f32(x, scale, bias=None, epsilon=1e-5, residual=None, out=None, variant=None):
    """LayerNorm over the last axis of float32 x (any shape), residual (x's shape) added
    first; scale / bias [x.shape[-1]]; out may be x or residual (in place).
    See reference.layer_norm_f32 and csrc/edgerun.h."""
    x, scale, bias, eps, residual, out = layer_norm_arguments(x, scale, bias, epsilon,
                                                              residual, out)
    if x.size == 0:
        return out
    cdef Py_ssize_t n = x.shape[x.ndim - 1]
    cdef Py_ssize_t rows = x.size // n
    cdef er_layer_norm_f32_fn *fn = <er_layer_norm_f32_fn *>_kernel("layer_norm_f32", variant)
    cdef const float[::1] xv = x.reshape(-1)
    cdef float[::1] yv = out.reshape(-1)
    cdef const float *r = _f32_ptr(None if residual is None else residual.reshape(-1))
    cdef const float *s = _f32_ptr(scale)
    cdef const float *b = _f32_ptr(bias)
    cdef float e = eps
    cdef er_status status
    with nogil:
        status = fn(&xv[0], r, s, b, &yv[0], rows, n, e)
    _check(status, "layer_norm_f32")
    return out
