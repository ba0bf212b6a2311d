# Included by _kernels.pyx: GELU, elementwise over float32.

from edgerun.errors import OptionError

cdef extern from "edgerun.h" nogil:
    ctypedef er_status er_gelu_f32_fn(const float *x, float *y, size_t count,
                                      int approximate_tanh)


def _same_shape_output(x, out, str what):
    """A new array like x (from _float32_array), or `out` checked: float32, x's shape,
    C-contiguous, writeable (out may be x itself: the kernels run in place)."""
    if out is None:
        return _empty_like(<PyArrayObject *>x)
    cdef PyArrayObject *o = _c_array(out, NPY_FLOAT32, -1)
    if o != NULL and _writeable(o) and PyArray_SAMESHAPE(o, <PyArrayObject *>x):
        return out
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != x.shape:
        raise ShapeError(f"{what}: out must be a float32 array of shape {x.shape}, got "
                         f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ShapeError(f"{what}: out must be C-contiguous and writeable")
    return out


def _float32_array(x, str what):
    """x as a C-contiguous float32 array of its own shape (no copy if it already is
    one; np.ascontiguousarray would turn a 0-d array into 1-d)."""
    if _c_array(x, NPY_FLOAT32, -1) != NULL:
        return x
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise ShapeError(f"{what}: x must be float32, got {x.dtype}")
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def gelu_f32(x, approximate="none", out=None, variant=None):
    """ONNX Gelu over float32 x of any shape: approximate "none" (the erf form) or
    "tanh" -> float32, x's shape; out=x runs in place.  See reference.gelu_f32."""
    if approximate not in ("none", "tanh"):
        raise OptionError(f"gelu_f32: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = _float32_array(x, "gelu_f32")
    y = _same_shape_output(x, out, "gelu_f32")
    if x.size == 0:
        return y
    cdef er_gelu_f32_fn *fn = <er_gelu_f32_fn *>_kernel("gelu_f32", variant)
    # both C-contiguous float32 ndarrays (the helpers above)
    cdef const float *xp = <const float *>PyArray_DATA(<PyArrayObject *>x)
    cdef float *yp = <float *>PyArray_DATA(<PyArrayObject *>y)
    cdef size_t count = x.size
    cdef int tanh_form = approximate == "tanh"
    cdef er_status status
    with nogil:
        status = fn(xp, yp, count, tanh_form)
    _check(status, "gelu_f32")
    return y
