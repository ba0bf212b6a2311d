# Included by _kernels.pyx: the rows of a standard convolution (im2col_f32), NHWC.

cdef extern from "edgerun.h" nogil:
    ctypedef er_status er_im2col_f32_fn(const er_conv2d_params *p, const float *x, float *rows)


cdef class Im2colF32:
    """The rows of a standard convolution for one NHWC input shape, its geometry
    checked once: calling it on float32 x [n, h, w, C] of that shape gives the
    contiguous float32 rows [n*oh*ow, kh*kw*C], each an output position's window in
    (kh, kw, C) order, zero where it reaches into the padding.  `oh`, `ow`: the
    output size.  Pads are (top, left, bottom, right).  The numpy twin is
    edgerun.reference.Im2colF32; the bits are the same (a copy)."""

    cdef er_conv2d_params p
    cdef er_im2col_f32_fn *fn
    cdef readonly tuple shape, rows_shape
    cdef readonly Py_ssize_t oh, ow

    def __init__(self, shape, pads, Py_ssize_t kh, Py_ssize_t kw, strides=(1, 1),
                 dilations=(1, 1), variant=None):
        shape = tuple(int(d) for d in shape)
        channels = shape[len(shape) - 1] if shape else 0     # (no negative indices here)
        out_hw, strides, pads, dilations, _ = conv2d_geometry(
            shape, (kh, kw, channels), strides, pads, dilations, None)
        self.shape = shape
        self.oh, self.ow = out_hw
        self.rows_shape = (shape[0] * self.oh * self.ow, kh * kw * shape[3])
        _conv2d_params(&self.p, shape, (kh, kw), out_hw, strides, pads, dilations, 0)
        self.fn = <er_im2col_f32_fn *>_kernel("im2col_f32", variant)

    def __call__(self, x):
        cdef PyArrayObject *a = _c_array(x, NPY_FLOAT32, 4)
        cdef Py_ssize_t d
        if a != NULL:
            for d in range(4):
                if PyArray_DIMS(a)[d] != <Py_ssize_t>self.shape[d]:
                    a = NULL
                    break
        if a == NULL:
            x = np.asarray(x)
            if x.dtype != np.float32 or x.shape != self.shape:
                raise ShapeError(f"im2col expects float32 {list(self.shape)}, got {x.dtype} "
                                 f"{list(x.shape)}")
            x = np.ascontiguousarray(x)
            a = <PyArrayObject *>x
        rows = _empty_2d(self.rows_shape[0], self.rows_shape[1], NPY_FLOAT32)
        if self.p.batch == 0 or self.p.channels == 0:
            return rows
        cdef const float *xp = <const float *>PyArray_DATA(a)
        cdef float *rp = <float *>PyArray_DATA(<PyArrayObject *>rows)
        cdef er_status status
        with nogil:
            status = self.fn(&self.p, xp, rp)
        _check(status, "im2col_f32")
        return rows
