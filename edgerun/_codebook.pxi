# Included by _kernels.pyx: weight-shared (codebook) layers.

def _codebook_rows(packed, Py_ssize_t row_bytes, str what, str layout):
    """packed as C-contiguous uint8 [n, row_bytes], or a ShapeError saying why."""
    packed = _matrix(packed, np.uint8, what)
    if packed.shape[1] != row_bytes:
        raise ShapeError(f"{what} must be uint8 [n, {row_bytes}] ({layout}), "
                         f"got shape {packed.shape}")
    return packed


def codebook_f32(packed, bits, centroids, x, bias=None, relu=False, out=None, variant=None):
    """y = x @ w.T (+ bias, relu) with w[j, p] = centroids[index(j, p)]: indices of
    `bits` bits packed LSB-first by packing.pack_bits; x float32 [m, k] -> y [m, n]."""
    x = _matrix(x, np.float32, "x")
    if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise EdgerunError(f"codebook_f32: bits must be an integer in 1..8, got {bits!r}")
    cdef unsigned b = bits
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1]
    packed = _codebook_rows(packed, (k * b + 7) // 8, "packed",
                            f"ceil(k * bits / 8) bytes per row for k={k}, bits={b}")
    cdef Py_ssize_t n = packed.shape[0]
    centroids = np.asarray(centroids)
    if centroids.dtype != np.float32 or centroids.shape != (1 << b,):
        raise ShapeError(f"centroids must be float32 [{1 << b}] for {b}-bit indices, "
                         f"got {centroids.dtype} {centroids.shape}")
    centroids = np.ascontiguousarray(centroids)
    bias = _vector(bias, n, np.float32, "bias")
    y = _output(out, m, n, np.float32)
    if m == 0 or n == 0:
        return y
    if k == 0:  # empty dot products: the C kernels still need valid pointers
        packed = np.zeros((n, 1), np.uint8)
        x = np.zeros((m, 1), np.float32)
    cdef er_codebook_f32_fn *fn = <er_codebook_f32_fn *>_kernel("codebook_f32", variant)
    scratch = np.empty(max(er_codebook_f32_scratch_bytes(k), 1), dtype=np.uint8)
    cdef const uint8_t[:, ::1] pv = packed
    cdef const float[::1] cv = centroids
    cdef const float[:, ::1] xv = x
    cdef uint8_t[::1] sv = scratch
    cdef er_epilogue ep
    _epilogue(&ep, None, None, bias, relu, y, None)
    cdef er_status status
    with nogil:
        status = fn(&pv[0, 0], b, &cv[0], &xv[0, 0], m, n, k, &ep, &sv[0])
    _check(status, "codebook_f32")
    return y


def codebook_s8(nibbles, table, x, x_scale, w_scale, bias=None, relu=False, out_scale=None,
                out=None, x_zero=None, w_sums=None, variant=None):
    """The int8 codebook path: w[j, p] = table[index(j, p)] with 4-bit indices in the
    nibble32 layout (packing.pack_nibble32); int32 sums of x * w, then the epilogue:
    y = acc * x_scale[i] * w_scale[j] + bias[j] (relu), float32, or int8 when
    out_scale is given.  x int8 [m, k] in [-127, 127]; table int8 [16].  x_zero and
    w_sums (the decoded rows' sums) take an asymmetric x, as in gemm_s8."""
    x = _matrix(x, np.int8, "x")
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1]
    nibbles = _codebook_rows(nibbles, (k + 31) // 32 * 16, "nibbles",
                             f"nibble32: ceil(k / 32) * 16 bytes per row for k={k}")
    cdef Py_ssize_t n = nibbles.shape[0]
    table = np.asarray(table)
    if table.dtype != np.int8 or table.shape != (16,):
        raise ShapeError(f"table must be int8 [16], got {table.dtype} {table.shape}")
    if (table == -128).any():
        raise EdgerunError("codebook_s8: table entries must be in [-127, 127], found -128")
    table = np.ascontiguousarray(table)
    x_scale = _vector(x_scale, m, np.float32, "x_scale")
    w_scale = _vector(w_scale, n, np.float32, "w_scale")
    bias = _vector(bias, n, np.float32, "bias")
    x_zero, w_sums = _zero_points(x_zero, w_sums, m, n, k)
    y = _output(out, m, n, np.float32 if out_scale is None else np.int8)
    if m == 0 or n == 0:
        return y
    if k == 0:  # empty dot products: the C kernels still need valid pointers
        nibbles = np.zeros((n, 1), np.uint8)
        x = np.zeros((m, 1), np.int8)
    cdef er_codebook_s8_fn *fn = <er_codebook_s8_fn *>_kernel("codebook_s8", variant)
    cdef const uint8_t[:, ::1] nv = nibbles
    cdef const int8_t[::1] tv = table
    cdef const int8_t[:, ::1] xv = x
    cdef er_epilogue ep
    _epilogue(&ep, x_scale, w_scale, bias, relu, y, out_scale)
    _epilogue_zero_points(&ep, x_zero, w_sums)
    cdef er_status status
    with nogil:
        status = fn(&nv[0, 0], &tv[0], &xv[0, 0], m, n, k, &ep)
    _check(status, "codebook_s8")
    return y
