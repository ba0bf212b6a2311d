# Included by _kernels.pyx: depthwise 2-D convolution, NHWC.

from edgerun.reference import conv2d_geometry


def _nhwc(x, dtype, str what):
    """x as a C-contiguous array of dtype, or a ShapeError naming it."""
    x = np.asarray(x)
    if x.dtype != dtype:
        raise ShapeError(f"{what} must be {np.dtype(dtype).name}, got {x.dtype}")
    return np.ascontiguousarray(x)


def _conv_output(out, shape, dtype):
    """A new NHWC output, or `out` checked: dtype, shape, C-contiguous, writeable."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray) or out.dtype != dtype or out.shape != shape:
        raise ShapeError(f"out must be a {np.dtype(dtype).name} array of shape {shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ShapeError("out must be C-contiguous and writeable")
    return out


cdef int _conv2d_params(er_conv2d_params *p, x_shape, kernel_hw, out_hw, stride, padding,
                        dilation, int activation) except -1:
    """p from the geometry conv2d_geometry checked: x_shape (n, h, w, C), kernel_hw
    (kh, kw) and what conv2d_geometry returned."""
    p.batch, p.in_h, p.in_w, p.channels = x_shape
    p.kernel_h, p.kernel_w = kernel_hw[0], kernel_hw[1]
    p.stride_h, p.stride_w = stride
    p.dilation_h, p.dilation_w = dilation
    p.pad_top, p.pad_left, p.pad_bottom, p.pad_right = padding
    p.out_h, p.out_w = out_hw
    p.activation = activation
    return 0


def dwconv2d_f32(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                 activation=None, out=None, variant=None):
    """Depthwise convolution, NHWC: x float32 [n, h, w, C], weight float32 [kh, kw, C],
    bias [C] or None; padding (top, left, bottom, right); activation None, "relu" or
    "relu6" -> float32 [n, out_h, out_w, C].  See reference.dwconv2d_f32."""
    x = _nhwc(x, np.float32, "x")
    weight = _nhwc(weight, np.float32, "weight")
    out_hw, stride, padding, dilation, act = conv2d_geometry(x.shape, weight.shape, stride,
                                                             padding, dilation, activation)
    cdef Py_ssize_t n = x.shape[0], C = x.shape[3]
    bias = _vector(bias, C, np.float32, "bias")
    y = _conv_output(out, (n, out_hw[0], out_hw[1], C), np.float32)
    if y.size == 0:
        return y
    cdef er_dwconv2d_f32_fn *fn = <er_dwconv2d_f32_fn *>_kernel("dwconv2d_f32", variant)
    cdef er_conv2d_params p
    _conv2d_params(&p, x.shape, weight.shape, out_hw, stride, padding, dilation, act)
    cdef const float[:, :, :, ::1] xv = x
    cdef const float[:, :, ::1] wv = weight
    cdef float[:, :, :, ::1] yv = y
    cdef const float *bp = _f32_ptr(bias)
    cdef er_status status
    with nogil:
        status = fn(&p, &xv[0, 0, 0, 0], &wv[0, 0, 0], bp, &yv[0, 0, 0, 0])
    _check(status, "dwconv2d_f32")
    return y


def dwconv2d_s8(x, weight, x_scale, w_scale, bias=None, stride=(1, 1), padding=(0, 0, 0, 0),
                dilation=(1, 1), activation=None, out_scale=None, out=None, variant=None):
    """Depthwise convolution, NHWC, int8: x int8 [n, h, w, C] (one scale x_scale),
    weight int8 [kh, kw, C] (per-channel w_scale [C]); int32 sums, then
    v = acc * x_scale * w_scale[c] + bias[c], activation -> float32 [n, oh, ow, C],
    or int8 requantized by out_scale.  See reference.dwconv2d_s8."""
    x = _nhwc(x, np.int8, "x")
    weight = _nhwc(weight, np.int8, "weight")
    out_hw, stride, padding, dilation, act = conv2d_geometry(x.shape, weight.shape, stride,
                                                             padding, dilation, activation)
    cdef Py_ssize_t n = x.shape[0], C = x.shape[3]
    if not np.isfinite(x_scale):
        raise ShapeError(f"x_scale must be a finite number, got {x_scale}")
    w_scale = _vector(w_scale, C, np.float32, "w_scale")
    bias = _vector(bias, C, np.float32, "bias")
    y = _conv_output(out, (n, out_hw[0], out_hw[1], C),
                     np.float32 if out_scale is None else np.int8)
    if out_scale is not None and not (out_scale > 0 and np.isfinite(out_scale)):
        raise ShapeError(f"out_scale must be a positive finite number, got {out_scale}")
    if y.size == 0:
        return y
    cdef er_dwconv2d_s8_fn *fn = <er_dwconv2d_s8_fn *>_kernel("dwconv2d_s8", variant)
    cdef er_conv2d_params p
    _conv2d_params(&p, x.shape, weight.shape, out_hw, stride, padding, dilation, act)
    cdef er_conv_quant q
    q.x_scale = np.float32(x_scale)
    q.w_scale = _f32_ptr(w_scale)
    q.bias = _f32_ptr(bias)
    q.y_f32 = NULL
    q.y_s8 = NULL
    q.out_inv_scale = 0
    cdef float[:, :, :, ::1] yf
    cdef int8_t[:, :, :, ::1] yq
    if out_scale is None:
        yf = y
        q.y_f32 = &yf[0, 0, 0, 0]
    else:
        yq = y
        q.y_s8 = &yq[0, 0, 0, 0]
        q.out_inv_scale = np.float32(1) / np.float32(out_scale)
    cdef const int8_t[:, :, :, ::1] xv = x
    cdef const int8_t[:, :, ::1] wv = weight
    cdef er_status status
    with nogil:
        status = fn(&p, &xv[0, 0, 0, 0], &wv[0, 0, 0], &q)
    _check(status, "dwconv2d_s8")
    return y
