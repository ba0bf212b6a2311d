# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Thin wrappers over csrc/: check dtype, shape and contiguity once, release the
GIL, call the chosen C variant.  Every function has the signature of its numpy
twin in edgerun/reference.py plus `variant=` (None: the dispatched one), which
the tests use to walk every variant this CPU can run."""

from libc.stdint cimport int8_t, uint8_t, uint16_t, uint32_t, int32_t

import numpy as np

from edgerun.errors import EdgerunError, FormatError, NonFiniteError, ShapeError

cdef extern from "edgerun.h" nogil:
    ctypedef enum er_status:
        ER_OK
        ER_ERR_ARGUMENT
        ER_ERR_K_TOO_LARGE
        ER_ERR_NONFINITE
        ER_ERR_CORRUPT
        ER_ERR_UNSUPPORTED

    ctypedef enum er_isa:
        pass

    ctypedef struct er_epilogue:
        const float *row_scale
        const float *col_scale
        const float *bias
        int relu
        float *y_f32
        int8_t *y_s8
        float out_inv_scale
        size_t ldy
        const int32_t *row_zero
        const int32_t *col_sum

    ctypedef struct er_csr:
        size_t rows
        size_t cols
        const uint32_t *indptr
        const void *indices
        int index_bytes
        const void *values

    ctypedef struct er_conv2d_params:
        size_t batch, in_h, in_w, channels
        size_t kernel_h, kernel_w
        size_t stride_h, stride_w
        size_t dilation_h, dilation_w
        size_t pad_top, pad_left, pad_bottom, pad_right
        size_t out_h, out_w
        int activation

    ctypedef struct er_conv_quant:
        float x_scale
        const float *w_scale
        const float *bias
        float *y_f32
        int8_t *y_s8
        float out_inv_scale

    ctypedef struct er_variant:
        const char *op
        const char *variant
        er_isa isa
        void *fn

    ctypedef er_status er_quantize_rows_s8_fn(const float *x, size_t m, size_t k,
                                              int8_t *q, float *scale)
    ctypedef er_status er_quantize_rows_u7_fn(const float *x, size_t m, size_t k,
                                              int8_t *q, float *scale, int32_t *zero)
    ctypedef er_status er_layer_norm_f32_fn(const float *x, const float *residual,
                                            const float *scale, const float *bias, float *y,
                                            size_t rows, size_t n, float epsilon)
    ctypedef er_status er_gemm_s8_fn(const int8_t *x, const int8_t *w, size_t m,
                                     size_t n, size_t k, const er_epilogue *ep)
    ctypedef er_status er_spmm_csr_f32_fn(const er_csr *w, const float *x, size_t m,
                                          const er_epilogue *ep, void *scratch)
    ctypedef er_status er_spmm_csr_s8_fn(const er_csr *w, const int8_t *x, size_t m,
                                         const er_epilogue *ep, void *scratch)
    ctypedef er_status er_codebook_f32_fn(const uint8_t *packed, unsigned bits,
                                          const float *centroids, const float *x,
                                          size_t m, size_t n, size_t k,
                                          const er_epilogue *ep, void *scratch)
    ctypedef er_status er_codebook_s8_fn(const uint8_t *nibbles, const int8_t *table,
                                         const int8_t *x, size_t m, size_t n, size_t k,
                                         const er_epilogue *ep)
    ctypedef er_status er_huffman_decode_fn(const uint8_t *code_lengths,
                                            const uint8_t *data, size_t n_bytes,
                                            uint8_t *out, size_t n_out)
    ctypedef er_status er_dwconv2d_f32_fn(const er_conv2d_params *p, const float *x,
                                          const float *w, const float *bias, float *y)
    ctypedef er_status er_dwconv2d_s8_fn(const er_conv2d_params *p, const int8_t *x,
                                         const int8_t *w, const er_conv_quant *q)

    size_t er_spmm_csr_scratch_bytes(size_t m, size_t k)
    size_t er_codebook_f32_scratch_bytes(size_t k)
    unsigned ER_MAX_K_S8
    const er_variant *er_variants(size_t *count)
    int er_cpu_has(er_isa isa)
    const char *er_isa_name(er_isa isa)
    const er_variant *er_select(const char *op)


MAX_K_S8 = ER_MAX_K_S8


def variants():
    """Every compiled variant: a list of (op, variant, isa, runnable_here)."""
    cdef size_t count = 0
    cdef const er_variant *table = er_variants(&count)
    return [(table[i].op.decode(), table[i].variant.decode(),
             er_isa_name(table[i].isa).decode(), bool(er_cpu_has(table[i].isa)))
            for i in range(count)]


def selected():
    """{op: variant} as dispatch chose them (honouring EDGERUN_ISA)."""
    return {op: _selected(op).variant.decode() for op, _, _, _ in variants()}


# op -> its dispatched variant (an er_variant address), chosen on first use, when
# EDGERUN_ISA is read: er_select scans the environment and the variant table, which
# cost more than a small kernel when every call did it.
cdef dict _dispatched = {}


cdef const er_variant *_selected(str op) except NULL:
    address = _dispatched.get(op)
    if address is not None:
        return <const er_variant *><size_t>address
    cdef const er_variant *v = er_select(op.encode())
    if v == NULL:
        raise EdgerunError(f"no kernel for {op!r}")
    _dispatched[op] = <size_t>v
    return v


cdef void *_kernel(str op, variant) except NULL:
    """The function pointer of op: the dispatched variant, or the named one."""
    cdef size_t count = 0
    cdef const er_variant *table
    if variant is None:
        return _selected(op).fn
    table = er_variants(&count)
    for i in range(count):
        if table[i].op.decode() == op and table[i].variant.decode() == variant:
            if not er_cpu_has(table[i].isa):
                raise EdgerunError(f"variant {variant!r} of {op} cannot run on this CPU")
            return table[i].fn
    raise EdgerunError(f"no variant {variant!r} of {op}")


cdef int _check(er_status status, str op) except -1:
    if status == ER_OK:
        return 0
    if status == ER_ERR_NONFINITE:
        raise NonFiniteError(f"{op}: input contains NaN or Inf")
    if status == ER_ERR_K_TOO_LARGE:
        raise ShapeError(f"{op}: inner dimension exceeds {ER_MAX_K_S8}, the int32 accumulator limit")
    if status == ER_ERR_CORRUPT:
        raise FormatError(f"{op}: encoded data is corrupt")
    raise EdgerunError(f"{op}: invalid arguments (status {<int>status})")


def _matrix(x, dtype, str what):
    """x as a C-contiguous 2-D array of dtype, or a ShapeError naming it."""
    x = np.asarray(x)
    if x.dtype != dtype:
        raise ShapeError(f"{what} must be {np.dtype(dtype).name}, got {x.dtype}")
    if x.ndim != 2:
        raise ShapeError(f"{what} must be 2-D, got shape {x.shape}")
    return np.ascontiguousarray(x)


def _vector(v, Py_ssize_t length, dtype, str what):
    """v as a contiguous 1-D array of dtype with `length` items, or None."""
    if v is None:
        return None
    v = np.ascontiguousarray(v, dtype=dtype)
    if v.ndim != 1 or v.shape[0] != length:
        raise ShapeError(f"{what} must have shape ({length},), got {v.shape}")
    return v


def _output(out, Py_ssize_t m, Py_ssize_t n, dtype):
    """A new [m, n] output, or `out` checked: dtype, shape, writeable, and rows of
    contiguous elements (any row stride, so a thread can own a slice of columns)."""
    if out is None:
        return np.empty((m, n), dtype=dtype)
    if not isinstance(out, np.ndarray) or out.dtype != dtype or out.shape != (m, n):
        raise ShapeError(f"out must be a {np.dtype(dtype).name} array of shape ({m}, {n})")
    if not out.flags.writeable:
        raise ShapeError("out must be writeable")
    if n > 1 and out.strides[1] != out.itemsize or m > 1 and out.strides[0] < n * out.itemsize:
        raise ShapeError("out must have contiguous rows (a column slice of a C-contiguous array is fine)")
    return out


cdef const float *_f32_ptr(v):
    """Pointer into a contiguous float32 array (or NULL for None); the caller keeps v alive.
    Read-only arrays (views of a memory-mapped model file) are fine."""
    cdef const float[::1] view
    if v is None:
        return NULL
    view = v
    return &view[0] if view.shape[0] else NULL


cdef int _epilogue(er_epilogue *ep, x_scale, w_scale, bias, bint relu, out, out_scale) except -1:
    """Fill ep; out (from _output) is float32 [m, n], or int8 [m, n] when out_scale is given."""
    cdef float[:, :] yf
    cdef int8_t[:, :] yq
    ep.row_scale = _f32_ptr(x_scale)
    ep.col_scale = _f32_ptr(w_scale)
    ep.bias = _f32_ptr(bias)
    ep.relu = relu
    ep.row_zero = NULL
    ep.col_sum = NULL
    ep.y_f32 = NULL
    ep.y_s8 = NULL
    ep.ldy = out.shape[1]
    if out.shape[0] > 1:
        ep.ldy = out.strides[0] // out.itemsize
    ep.out_inv_scale = 0
    if out.size == 0:
        return 0
    if out_scale is None:
        yf = out
        ep.y_f32 = &yf[0, 0]
    else:
        if not (out_scale > 0 and np.isfinite(out_scale)):
            raise ShapeError(f"out_scale must be a positive finite number, got {out_scale}")
        yq = out
        ep.y_s8 = &yq[0, 0]
        ep.out_inv_scale = np.float32(1) / np.float32(out_scale)
    return 0


cdef int _check_zero_points(const int32_t[::1] x_zero, const int32_t[::1] w_sums,
                            Py_ssize_t k) except -1:
    """What gemm_s8 can afford to check of the asymmetric arguments (O(m + n), typed
    loops: numpy calls would cost more than a small GEMM): zero points of
    quantize_rows_u7, and sums a row of k int8 weights can have.  Wrong but in-range
    sums give wrong outputs, never an unsafe access."""
    cdef Py_ssize_t i
    cdef long long bound = 127 * <long long>k
    for i in range(x_zero.shape[0]):
        if not 0 <= x_zero[i] <= 127:
            raise ShapeError(f"x_zero[{i}] = {x_zero[i]}: zero points lie in [0, 127] "
                             f"(quantize_rows_u7)")
    for i in range(w_sums.shape[0]):
        if not -bound <= w_sums[i] <= bound:
            raise ShapeError(f"w_sums[{i}] = {w_sums[i]} cannot be the sum of a row of {k} "
                             f"int8 weights (|sum| <= 127 * {k})")
    return 0


def _zero_points(x_zero, w_sums, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k):
    """(x_zero int32 [m], w_sums int32 [n]) checked, or (None, None): the asymmetric
    input of gemm_s8 and codebook_s8 (edgerun.h)."""
    if (x_zero is None) != (w_sums is None):
        raise ShapeError("x_zero and w_sums go together: give both or neither")
    if x_zero is None:
        return None, None
    x_zero = _vector(x_zero, m, np.int32, "x_zero")
    w_sums = _vector(w_sums, n, np.int32, "w_sums")
    _check_zero_points(x_zero, w_sums, k)
    return x_zero, w_sums


cdef int _epilogue_zero_points(er_epilogue *ep, x_zero, w_sums) except -1:
    """Point ep at the zero points (from _zero_points; the caller keeps them alive)."""
    cdef const int32_t[::1] zv, sv
    if x_zero is not None and x_zero.shape[0] and w_sums.shape[0]:
        zv, sv = x_zero, w_sums
        ep.row_zero, ep.col_sum = &zv[0], &sv[0]
    return 0


include "_arrays.pxi"
include "_quantize.pxi"
include "_layer_norm.pxi"
include "_gemm.pxi"
include "_spmm.pxi"
include "_codebook.pxi"
include "_huffman.pxi"
include "_spmm_bcsr4.pxi"
include "_dwconv2d.pxi"
include "_im2col.pxi"
include "_gelu.pxi"
include "_softmax.pxi"
include "_workspace.pxi"
