# Included by _kernels.pyx: dense int8 GEMM, y = epilogue(x @ w^T).
from libc.string cimport memset

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


cdef class LinearS8:
    """A Linear layer on gemm_s8 with its weights checked once, at load: calling it
    quantizes float32 x per row (quantize_rows_u7) and runs gemm_s8 with the zero
    points, in one call that checks only x.  Through gemm_s8() and quantize_rows_u7()
    every call re-checked weights, scales, bias and sums: ~7 us a layer on Zen 3,
    ~230k instructions of interpreter on a Cortex-A76 model.

    values int8 [n, k] (k may be padded past `features` with zero columns, which add
    nothing), scale float32 [n], bias float32 [n] or None.  The numpy twin is
    edgerun.reference.LinearS8; the bits are those of quantize_rows_u7 + gemm_s8."""

    cdef readonly object values, scale, bias, w_sums
    cdef readonly Py_ssize_t n, k, features
    cdef readonly str name
    cdef bint relu
    cdef er_gemm_s8_fn *gemm
    cdef er_quantize_rows_u7_fn *quantize_rows

    def __init__(self, values, scale, bias, bint relu, Py_ssize_t features, str name="linear",
                 variant=None):
        values = _matrix(values, np.int8, "values")
        self.n, self.k = values.shape[0], values.shape[1]
        if not 0 <= features <= self.k:
            raise ShapeError(f"{name}: features must be in [0, {self.k}], got {features}")
        if self.k > ER_MAX_K_S8:
            raise ShapeError(f"{name}: inner dimension exceeds {ER_MAX_K_S8}, the int32 "
                             f"accumulator limit")
        if self.k > features and values[:, features:].any():
            raise ShapeError(f"{name}: the padding columns past {features} must be zero")
        self.features = features
        self.values = values
        self.scale = _vector(scale, self.n, np.float32, "scale")
        if self.scale is None:
            raise ShapeError(f"{name}: scale is required")
        self.bias = _vector(bias, self.n, np.float32, "bias")
        self.w_sums = values.sum(axis=1, dtype=np.int32)
        self.relu = relu
        self.name = name
        self.gemm = <er_gemm_s8_fn *>_kernel("gemm_s8", variant)
        self.quantize_rows = <er_quantize_rows_u7_fn *>_kernel("quantize_rows_u7", variant)

    def quantize(self, x):
        """float32 x [m, features] -> (q int8 [m, k] zero-padded, scale float32 [m],
        zero int32 [m]): the operands columns() takes."""
        x = np.asarray(x)
        if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != self.features:
            raise ShapeError(f"layer {self.name!r} expects float32 [m, {self.features}] inputs, "
                             f"got {x.dtype} {list(x.shape)}")
        x = np.ascontiguousarray(x)
        cdef Py_ssize_t m = x.shape[0], i, features = self.features, k = self.k
        q = np.empty((m, k), dtype=np.int8)
        scale = np.zeros(m, dtype=np.float32)
        zero = np.zeros(m, dtype=np.int32)
        if m == 0:
            return q, scale, zero
        cdef const float[:, ::1] xv = x
        cdef int8_t[:, ::1] qv = q
        cdef float[::1] sv = scale
        cdef int32_t[::1] zv = zero
        cdef er_status status = ER_OK
        with nogil:
            if features == k and k > 0:
                status = self.quantize_rows(&xv[0, 0], m, k, &qv[0, 0], &sv[0], &zv[0])
            else:
                for i in range(m):
                    memset(&qv[i, 0], 0, k)
                    if features > 0 and status == ER_OK:
                        status = self.quantize_rows(&xv[i, 0], 1, features, &qv[i, 0], &sv[i], &zv[i])
        if status == ER_ERR_NONFINITE:
            raise NonFiniteError(
                f"layer {self.name!r} (gemm_s8): its input contains NaN or Inf; int8 layers "
                f"quantize their input per row and need finite values")
        _check(status, "quantize_rows_u7")
        return q, scale, zero

    def columns(self, q, scale, zero, out, Py_ssize_t begin, Py_ssize_t end):
        """out[:, begin:end] = the layer's outputs of those columns from quantize()'s
        operands (threads split the columns; the operands are shared, read-only)."""
        cdef const int8_t[:, ::1] qv = q
        cdef const float[::1] sv = scale
        cdef const int32_t[::1] zv = zero
        cdef float[:, ::1] yv = out
        cdef Py_ssize_t m = qv.shape[0]
        if (qv.shape[1] != self.k or sv.shape[0] != m or zv.shape[0] != m
                or yv.shape[0] != m or yv.shape[1] != self.n or not 0 <= begin <= end <= self.n):
            raise ShapeError(f"layer {self.name!r}: operands of quantize() and a float32 "
                             f"[m, {self.n}] output, columns in [0, {self.n}]")
        if m == 0 or begin == end:
            return out
        cdef const int8_t[:, ::1] wv = self.values
        cdef const float[::1] ws = self.scale
        cdef const int32_t[::1] sums = self.w_sums
        cdef const float[::1] bv
        cdef er_epilogue ep
        ep.row_scale = &sv[0]
        ep.col_scale = &ws[begin]
        ep.bias = NULL
        if self.bias is not None:
            bv = self.bias
            ep.bias = &bv[begin]
        ep.relu = self.relu
        ep.y_f32 = &yv[0, begin]
        ep.y_s8 = NULL
        ep.out_inv_scale = 0
        ep.ldy = self.n
        ep.row_zero = &zv[0]
        ep.col_sum = &sums[begin]
        cdef int8_t empty = 0
        cdef const int8_t *xp = &qv[0, 0] if self.k else &empty
        cdef const int8_t *wp = &wv[begin, 0] if self.k else &empty
        cdef er_status status
        with nogil:
            status = self.gemm(xp, wp, m, end - begin, self.k, &ep)
        _check(status, "gemm_s8")
        return out

    def __call__(self, x):
        """float32 x [m, features] -> float32 [m, n]."""
        q, scale, zero = self.quantize(x)
        y = np.empty((q.shape[0], self.n), dtype=np.float32)
        return self.columns(q, scale, zero, y, 0, self.n)
