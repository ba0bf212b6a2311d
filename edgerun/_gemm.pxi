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
    # into values, scale, bias (NULL for None) and w_sums, which this object keeps alive
    cdef const int8_t *w_data
    cdef const float *scale_data
    cdef const float *bias_data
    cdef const int32_t *sums_data

    def __init__(self, values, scale, bias, bint relu, Py_ssize_t features, str name="linear",
                 variant=None):
        # everything checked into locals first: the raw pointers below must never
        # outlive the arrays they point into, even if a second __init__ fails halfway
        values = _matrix(values, np.int8, "values")
        cdef Py_ssize_t n = values.shape[0], k = values.shape[1]
        if not 0 <= features <= k:
            raise ShapeError(f"{name}: features must be in [0, {k}], got {features}")
        if k > ER_MAX_K_S8:
            raise ShapeError(f"{name}: inner dimension exceeds {ER_MAX_K_S8}, the int32 "
                             f"accumulator limit")
        if k > features and values[:, features:].any():
            raise ShapeError(f"{name}: the padding columns past {features} must be zero")
        scale = _vector(scale, n, np.float32, "scale")
        if scale is None:
            raise ShapeError(f"{name}: scale is required")
        bias = _vector(bias, n, np.float32, "bias")
        gemm = <er_gemm_s8_fn *>_kernel("gemm_s8", variant)
        quantize_rows = <er_quantize_rows_u7_fn *>_kernel("quantize_rows_u7", variant)
        self.values, self.scale, self.bias = values, scale, bias
        self.w_sums = values.sum(axis=1, dtype=np.int32)
        self.n, self.k, self.features = n, k, features
        self.relu = relu
        self.name = name
        self.gemm, self.quantize_rows = gemm, quantize_rows
        self.w_data = <const int8_t *>PyArray_DATA(<PyArrayObject *>self.values)
        self.scale_data = <const float *>PyArray_DATA(<PyArrayObject *>self.scale)
        self.bias_data = NULL
        if self.bias is not None:
            self.bias_data = <const float *>PyArray_DATA(<PyArrayObject *>self.bias)
        self.sums_data = <const int32_t *>PyArray_DATA(<PyArrayObject *>self.w_sums)

    cdef er_status _quantize(self, const float *x, Py_ssize_t m, int8_t *q, float *scale,
                             int32_t *zero) noexcept nogil:
        """Rows of `features` floats -> rows of k int8 (zero-padded past features)."""
        cdef Py_ssize_t i, features = self.features, k = self.k
        cdef er_status status = ER_OK
        if features == 0:       # no inputs: every row is all zero, as quantize_rows_u7 gives
            memset(q, 0, m * k)
            memset(scale, 0, m * sizeof(float))
            memset(zero, 0, m * sizeof(int32_t))
            return ER_OK
        if features == k:
            return self.quantize_rows(x, m, k, q, scale, zero) if k else ER_OK
        for i in range(m):
            memset(q + i * k, 0, k)
            if status == ER_OK:
                status = self.quantize_rows(x + i * features, 1, features, q + i * k,
                                            scale + i, zero + i)
        return status

    cdef er_status _gemm(self, const int8_t *q, const float *scale, const int32_t *zero,
                         Py_ssize_t m, float *y, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
        """Columns [begin, end) of y (float32 rows of n) from _quantize's operands."""
        cdef er_epilogue ep
        cdef int8_t empty = 0
        ep.row_scale = scale
        ep.col_scale = self.scale_data + begin
        ep.bias = self.bias_data + begin if self.bias_data != NULL else NULL
        ep.relu = self.relu
        ep.y_f32 = y + begin
        ep.y_s8 = NULL
        ep.out_inv_scale = 0
        ep.ldy = self.n
        ep.row_zero = zero
        ep.col_sum = self.sums_data + begin
        # k == 0 has no element to point at; the kernel reads nothing then
        return self.gemm(q if self.k else &empty, self.w_data + begin * self.k if self.k else &empty,
                         m, end - begin, self.k, &ep)

    cdef int _raise(self, er_status status, str op) except -1:
        if status == ER_ERR_NONFINITE:
            raise NonFiniteError(
                f"layer {self.name!r} (gemm_s8): its input contains NaN or Inf; int8 layers "
                f"quantize their input per row and need finite values")
        return _check(status, op)

    def quantize(self, x):
        """float32 x [m, features] -> (q int8 [m, k] zero-padded, scale float32 [m],
        zero int32 [m]): the operands columns() takes."""
        x = np.asarray(x)
        if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != self.features:
            raise ShapeError(f"layer {self.name!r} expects float32 [m, {self.features}] inputs, "
                             f"got {x.dtype} {list(x.shape)}")
        x = np.ascontiguousarray(x)
        cdef Py_ssize_t m = x.shape[0]
        q = np.empty((m, self.k), dtype=np.int8)
        scale = np.zeros(m, dtype=np.float32)
        zero = np.zeros(m, dtype=np.int32)
        if m == 0:
            return q, scale, zero
        cdef er_status status
        cdef const float *xp = <const float *>PyArray_DATA(<PyArrayObject *>x)
        cdef int8_t *qp = <int8_t *>PyArray_DATA(<PyArrayObject *>q)
        cdef float *sp = <float *>PyArray_DATA(<PyArrayObject *>scale)
        cdef int32_t *zp = <int32_t *>PyArray_DATA(<PyArrayObject *>zero)
        with nogil:
            status = self._quantize(xp, m, qp, sp, zp)
        self._raise(status, "quantize_rows_u7")
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
        cdef er_status status
        with nogil:
            status = self._gemm(&qv[0, 0] if self.k else NULL, &sv[0], &zv[0], m, &yv[0, 0],
                                begin, end)
        _check(status, "gemm_s8")
        return out

    def __call__(self, x):
        """float32 x [m, features] -> float32 [m, n]."""
        cdef PyArrayObject *a = _c_array(x, NPY_FLOAT32, 2)
        if a == NULL or PyArray_DIMS(a)[1] != self.features or PyArray_DIMS(a)[0] == 0:
            operands = self.quantize(x)         # converts, or names what is wrong
            y = np.empty((operands[0].shape[0], self.n), dtype=np.float32)
            return self.columns(*operands, y, 0, self.n)
        # One scratch array per call for the operands, [scale | zero | q]: from the
        # workspace during a run, so a large one costs no page faults
        cdef Py_ssize_t m = PyArray_DIMS(a)[0], k = self.k
        operands = _empty_2d(m, 8 + k, NPY_INT8)
        y = _empty_2d(m, self.n, NPY_FLOAT32)
        cdef int8_t *base = <int8_t *>PyArray_DATA(<PyArrayObject *>operands)
        cdef float *scale_p = <float *>base
        cdef int32_t *zero_p = <int32_t *>(base + 4 * m)
        cdef int8_t *q_p = base + 8 * m
        cdef const float *xp = <const float *>PyArray_DATA(a)
        cdef float *yp = <float *>PyArray_DATA(<PyArrayObject *>y)
        cdef er_status status, gemm_status = ER_OK
        with nogil:
            status = self._quantize(xp, m, q_p, scale_p, zero_p)
            if status == ER_OK:
                gemm_status = self._gemm(q_p, scale_p, zero_p, m, yp, 0, self.n)
        self._raise(status, "quantize_rows_u7")
        _check(gemm_status, "gemm_s8")
        return y
