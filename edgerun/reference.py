"""The numpy reference of every kernel: the ground truth for tests, and the
backend when the C extension is not built.

Each function has the signature of its wrapper in edgerun/_kernels.pyx and
follows the numeric contract of csrc/edgerun.h to the bit on integer paths:
float32 throughout, epilogue v = acc * row_scale * col_scale + bias in that
order, round half to even, clamp to [-127, 127].
"""
import numpy as np

from edgerun.errors import FormatError, NonFiniteError, OptionError, ShapeError

MAX_K_S8 = 131072  # k * 127 * 127 must fit in int32


def _output(out, shape, dtype):
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != shape or out.dtype != dtype:
        raise ShapeError(f"out must be {np.dtype(dtype).name} {shape}, got {out.dtype} {out.shape}")
    return out


def epilogue(acc, x_scale=None, w_scale=None, bias=None, relu=False, out_scale=None, out=None):
    """acc (int32 or float32) [m, n] -> float32, or int8 when out_scale is given."""
    v = acc.astype(np.float32)
    if x_scale is not None:
        v *= np.asarray(x_scale, dtype=np.float32)[:, None]
    if w_scale is not None:
        v *= np.asarray(w_scale, dtype=np.float32)[None, :]
    if bias is not None:
        v += np.asarray(bias, dtype=np.float32)[None, :]
    if relu:
        v = np.where(v > 0, v, np.where(np.isnan(v), v, np.float32(0)))
    if out_scale is None:
        result = v
        dtype = np.float32
    else:
        r = v * (np.float32(1) / np.float32(out_scale))
        r = np.where(np.isnan(r), np.float32(0), np.clip(r, -127, 127))
        result = np.rint(r).astype(np.int8)
        dtype = np.int8
    y = _output(out, acc.shape, dtype)
    y[...] = result
    return y


def _too_small_for_127_over(extent):
    """Rows whose max |x| (s8) or range (u7) leaves 127 / extent no float32: 0, or
    below ~3.7e-37.  They quantize to all 0 with scale 0 (edgerun.h)."""
    with np.errstate(divide="ignore", over="ignore"):
        return ~(np.float32(127) / extent <= np.finfo(np.float32).max)


def quantize_rows_s8(x, out=None):
    """Symmetric per-row int8: scale = max|x| / 127, q = rint(x * (127 / max|x|))."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ShapeError(f"x must be 2-D, got shape {x.shape}")
    if x.size and not np.isfinite(x).all():
        raise NonFiniteError("quantize_rows_s8: input contains NaN or Inf")
    amax = np.abs(x).max(axis=1) if x.shape[1] else np.zeros(x.shape[0], np.float32)
    amax = amax.astype(np.float32)
    amax = np.where(_too_small_for_127_over(amax), np.float32(0), amax).astype(np.float32)
    safe = np.where(amax == 0, np.float32(1), amax)
    inv = (np.float32(127) / safe).astype(np.float32)
    r = np.clip(x * inv[:, None], -127, 127)
    q = _output(out, x.shape, np.int8)
    q[...] = np.where(amax[:, None] == 0, 0, np.rint(r)).astype(np.int8)
    scale = (amax / np.float32(127)).astype(np.float32)
    return q, scale


def quantize_rows_u7(x, out=None):
    """Asymmetric per-row 7-bit: over [lo, hi] = [min(x, 0), max(x, 0)],
    inv = 127 / (hi - lo), zero = rint(-lo * inv), q = clip(rint(x * inv) + zero, 0, 127),
    scale = (hi - lo) / 127, so x ~ scale * (q - zero) (edgerun.h has the details).
    A row without negatives gets quantize_rows_s8's q and scale, zero 0."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ShapeError(f"x must be 2-D, got shape {x.shape}")
    if x.size and not np.isfinite(x).all():
        raise NonFiniteError("quantize_rows_u7: input contains NaN or Inf")
    m, k = x.shape
    zero_f = np.float32(0)
    lo = np.minimum(x.min(axis=1), zero_f) if k else np.zeros(m, np.float32)
    hi = np.maximum(x.max(axis=1), zero_f) if k else np.zeros(m, np.float32)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        width = (hi - lo).astype(np.float32)
        empty = _too_small_for_127_over(width)
        half = (np.float32(0.5) * hi - np.float32(0.5) * lo).astype(np.float32)
        finite = width <= np.finfo(np.float32).max
        inv = np.where(finite, np.float32(127) / width, np.float32(63.5) / half).astype(np.float32)
        scale = np.where(finite, width / np.float32(127), half / np.float32(63.5)).astype(np.float32)
        zero = np.minimum(np.rint(-lo * inv), 127)
        zero = np.where(empty, 0, zero).astype(np.int32)
        r = np.rint(x * np.where(empty, 0, inv).astype(np.float32)[:, None])
    q = _output(out, x.shape, np.int8)
    q[...] = np.clip(r.astype(np.int32) + zero[:, None], 0, 127).astype(np.int8)
    return q, np.where(empty, np.float32(0), scale).astype(np.float32), zero


def gemm_s8(x, w, x_scale, w_scale, bias=None, relu=False, out_scale=None, out=None,
            x_zero=None, w_sums=None):
    """int8 x [m, k] times int8 w [n, k] (stored by output row), int32 accumulation,
    then the epilogue: float32 [m, n], or int8 [m, n] when out_scale is given.
    With x_zero [m] and w_sums [n] (asymmetric x from quantize_rows_u7) the sums
    are acc - x_zero * w_sums, wrapped to int32 as the kernels do."""
    x = np.asarray(x)
    w = np.asarray(w)
    if x.dtype != np.int8 or x.ndim != 2:
        raise ShapeError(f"x must be int8 [m, k], got {x.dtype} {list(x.shape)}")
    k = x.shape[1]
    if w.dtype != np.int8 or w.ndim != 2 or w.shape[1] != k:
        raise ShapeError(f"w must be int8 [n, {k}] to match x [m, {k}], got {w.dtype} {list(w.shape)}")
    if k > MAX_K_S8:
        raise ShapeError(f"gemm_s8: inner dimension exceeds {MAX_K_S8}, the int32 accumulator limit")
    acc = x.astype(np.int32) @ w.T.astype(np.int32)
    return epilogue(_zero_shift(acc, x_zero, w_sums), x_scale, w_scale, bias, relu, out_scale, out)


class LinearS8:
    """A Linear layer on gemm_s8 with its weights checked once (the twin of the C
    extension's LinearS8): calling it quantizes float32 x [m, features] per row
    (quantize_rows_u7, zero-padded to the weights' k) and runs gemm_s8 with the
    zero points -> float32 [m, n].  quantize() and columns() split the two for
    threads that share the quantized input and own a range of output columns."""

    def __init__(self, values, scale, bias, relu, features, name="linear"):
        values = np.ascontiguousarray(values)
        if values.dtype != np.int8 or values.ndim != 2:
            raise ShapeError(f"values must be int8 [n, k], got {values.dtype} {list(values.shape)}")
        self.n, self.k = values.shape
        if not 0 <= features <= self.k:
            raise ShapeError(f"{name}: features must be in [0, {self.k}], got {features}")
        if self.k > MAX_K_S8:
            raise ShapeError(f"{name}: inner dimension exceeds {MAX_K_S8}, the int32 accumulator limit")
        if self.k > features and values[:, features:].any():
            raise ShapeError(f"{name}: the padding columns past {features} must be zero")
        self.values, self.features, self.name, self.relu = values, features, name, bool(relu)
        self.scale = np.ascontiguousarray(scale, dtype=np.float32)
        self.bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        if self.scale.shape != (self.n,) or self.bias is not None and self.bias.shape != (self.n,):
            raise ShapeError(f"{name}: scale and bias must have shape ({self.n},)")
        self.w_sums = values.sum(axis=1, dtype=np.int32)

    def quantize(self, x):
        x = np.asarray(x)
        if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != self.features:
            raise ShapeError(f"layer {self.name!r} expects float32 [m, {self.features}] inputs, "
                             f"got {x.dtype} {list(x.shape)}")
        try:
            q, scale, zero = quantize_rows_u7(x)
        except NonFiniteError:
            raise NonFiniteError(
                f"layer {self.name!r} (gemm_s8): its input contains NaN or Inf; int8 layers "
                f"quantize their input per row and need finite values") from None
        padded = np.zeros((x.shape[0], self.k), dtype=np.int8)
        padded[:, :self.features] = q
        return padded, scale, zero

    def columns(self, q, scale, zero, out, begin, end):
        bias = None if self.bias is None else self.bias[begin:end]
        gemm_s8(q, self.values[begin:end], scale, self.scale[begin:end], bias, self.relu,
                out=out[:, begin:end], x_zero=zero, w_sums=self.w_sums[begin:end])
        return out

    def __call__(self, x):
        q, scale, zero = self.quantize(x)
        return self.columns(q, scale, zero, np.empty((q.shape[0], self.n), np.float32), 0, self.n)


def _zero_shift(acc, x_zero, w_sums):
    """acc - x_zero[i] * w_sums[j] for an asymmetric x, wrapped to int32 as the
    kernels compute it (edgerun.h); acc itself without zero points."""
    if (x_zero is None) != (w_sums is None):
        raise ShapeError("x_zero and w_sums go together: give both or neither")
    if x_zero is None:
        return acc
    shift = np.asarray(x_zero, np.int64)[:, None] * np.asarray(w_sums, np.int64)[None, :]
    return (acc.astype(np.int64) - shift).astype(np.uint32).astype(np.int32)


def codebook_f32(packed, bits, centroids, x, bias=None, relu=False, out=None):
    """Weight-shared layer: w[j, p] = centroids[index(j, p)] with b-bit indices
    packed by packing.pack_bits; y = x @ w.T (+ bias, relu), float32."""
    from edgerun import packing

    x = np.asarray(x, dtype=np.float32)
    centroids = np.asarray(centroids, dtype=np.float32)
    w = centroids[packing.unpack_bits(packed, bits, x.shape[1]).astype(np.intp)]
    acc = (x @ w.T).astype(np.float32)
    return epilogue(acc, None, None, bias, relu, None, out)


def codebook_s8(nibbles, table, x, x_scale, w_scale, bias=None, relu=False, out_scale=None, out=None,
                x_zero=None, w_sums=None):
    """The int8 codebook path: w[j, p] = table[index(j, p)] with 4-bit indices in
    the nibble32 layout; int32 sums of x * w (less x_zero * w_sums for an
    asymmetric x, as gemm_s8), then the epilogue."""
    from edgerun import packing

    x = np.asarray(x, dtype=np.int8)
    table = np.asarray(table, dtype=np.int8)
    w = table[packing.unpack_nibble32(nibbles, x.shape[1]).astype(np.intp)]
    # int64 products summed exactly, then int32 as every kernel holds them
    acc = (x.astype(np.int64) @ w.astype(np.int64).T).astype(np.int32)
    return epilogue(_zero_shift(acc, x_zero, w_sums), x_scale, w_scale, bias, relu, out_scale, out)


def _csr_rows(indptr):
    """(first entry, entry count) of each row of an absolute indptr, as int64."""
    indptr = np.asarray(indptr, dtype=np.int64)
    if indptr.ndim != 1 or indptr.shape[0] < 1:
        raise ShapeError(f"indptr must be 1-D with rows + 1 items, got shape {indptr.shape}")
    return indptr[:-1], indptr[1:] - indptr[:-1]


def spmm_csr_f32(indptr, indices, values, x, bias=None, relu=False, out=None):
    """y [m, n] = x [m, k] @ W.T for a CSR W [n, k], then the epilogue.

    Each output sums values[e] * x[i, indices[e]] over its row's entries in entry
    order, in float32 (product rounded, then added), as the C kernels do.  The
    loop runs over entry position t and handles every row that has a t-th entry
    at once, so its length is the longest row, not the number of entries."""
    x = np.asarray(x, dtype=np.float32)
    start, length = _csr_rows(indptr)
    indices = np.asarray(indices).astype(np.int64)
    values = np.asarray(values, dtype=np.float32)
    acc = np.zeros((x.shape[0], start.shape[0]), dtype=np.float32)
    for t in range(int(length.max()) if length.size else 0):
        rows = np.nonzero(length > t)[0]
        e = start[rows] + t
        acc[:, rows] += values[e][None, :] * x[:, indices[e]]
    return epilogue(acc, bias=bias, relu=relu, out=out)


def spmm_csr_s8(indptr, indices, values, x, x_scale, w_scale, bias=None, relu=False,
                out_scale=None, out=None):
    """int8 CSR W [n, k] times int8 x [m, k]: int32 sums (exact, in int64 here),
    then the epilogue with x_scale [m] and w_scale [n]."""
    x = np.asarray(x)
    start, length = _csr_rows(indptr)
    n, k = start.shape[0], x.shape[1]
    indices = np.asarray(indices).astype(np.int64)
    values = np.asarray(values).astype(np.int64)
    row_of_entry = np.repeat(np.arange(n), length)
    entries = np.arange(start[0], start[0] + length.sum()) if n else np.zeros(0, np.int64)
    dense = np.zeros((n, k), dtype=np.int64)
    np.add.at(dense, (row_of_entry, indices[entries]), values[entries])  # repeats add up
    acc = (x.astype(np.int64) @ dense.T).astype(np.int32)
    return epilogue(acc, x_scale, w_scale, bias, relu, out_scale, out)

HUFFMAN_MAX_BITS = 16


def huffman_codes(code_lengths):
    """Canonical codes of code_lengths (uint8 [256], 0 = unused): codes are
    assigned in (length, symbol) order, each one more than the previous and
    shifted left when the length grows.  Returns uint32 [256] (0 where unused).
    Raises FormatError if a length exceeds 16 or the lengths over-subscribe the
    code space (sum of 2**-length > 1)."""
    lengths = np.asarray(code_lengths)
    if lengths.shape != (256,) or lengths.dtype.kind not in "ui":
        raise FormatError(f"huffman code lengths must be 256 integers, got {lengths.dtype} {lengths.shape}")
    lengths = lengths.astype(np.int64)
    if lengths.min() < 0 or lengths.max() > HUFFMAN_MAX_BITS:
        raise FormatError(f"huffman code lengths must be in 0..{HUFFMAN_MAX_BITS}")
    used = lengths > 0
    kraft = int(np.sum(np.left_shift(1, HUFFMAN_MAX_BITS - lengths[used])))
    if kraft > 1 << HUFFMAN_MAX_BITS:
        raise FormatError("huffman code lengths over-subscribe the code space")
    codes = np.zeros(256, dtype=np.uint32)
    code, previous = 0, 0
    for symbol in np.lexsort((np.arange(256), lengths)):
        length = int(lengths[symbol])
        if length == 0:
            continue
        code <<= length - previous
        codes[symbol] = code
        code += 1
        previous = length
    return codes


def huffman_decode(code_lengths, data, n_out):
    """Decode exactly n_out byte symbols of a canonical Huffman stream, read
    MSB-first (csrc/edgerun.h).  Raises FormatError on over-subscribed lengths,
    an early end, or a bit pattern that matches no code.

    Vectorised by pointer doubling: for every bit position q the code starting
    at q gives next[q] = q + length; the symbol starts are then 0, next[0],
    next[next[0]], ..., enumerated in log2 steps by squaring the jump table.
    Works on chunks of bits so memory stays bounded."""
    lengths = np.asarray(code_lengths).astype(np.int64)
    codes = huffman_codes(code_lengths)
    data = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    n_out = int(n_out)
    if n_out < 0:
        raise ShapeError(f"n_out must be >= 0, got {n_out}")
    out = np.empty(n_out, dtype=np.uint8)
    if n_out == 0:
        return out
    # (symbol, length) of the code prefixing each 16-bit window; length 0: no code
    symbol_of = np.zeros(1 << HUFFMAN_MAX_BITS, dtype=np.uint8)
    length_of = np.zeros(1 << HUFFMAN_MAX_BITS, dtype=np.int64)
    for symbol in np.flatnonzero(lengths):
        span = 1 << (HUFFMAN_MAX_BITS - int(lengths[symbol]))
        start = int(codes[symbol]) * span
        symbol_of[start:start + span] = symbol
        length_of[start:start + span] = lengths[symbol]
    n_bits = data.size * 8
    chunk = 1 << 18
    start, done = 0, 0
    while done < n_out:
        if start >= n_bits:
            raise FormatError("huffman stream ends before all symbols are decoded")
        end = min(start + chunk, n_bits)
        size = end - start
        # the chunk's bits plus 16 bits of look-ahead (zeros past the end)
        first = start // 8
        bits = np.unpackbits(data[first:(end + HUFFMAN_MAX_BITS + 7) // 8]).astype(np.int64)
        bits = np.concatenate([bits, np.zeros(HUFFMAN_MAX_BITS + 8, np.int64)])[start - 8 * first:]
        windows = np.zeros(size, dtype=np.int64)
        for j in range(HUFFMAN_MAX_BITS):
            windows |= bits[j:size + j] << (HUFFMAN_MAX_BITS - 1 - j)
        step = length_of[windows]
        nxt = np.arange(start, end) + step
        bad = (step == 0) | (nxt > n_bits)
        # states 0..size-1 are positions in the chunk; size = left the chunk
        exit_state = size
        jump = np.where(nxt >= end, exit_state, nxt - start)
        jump = np.concatenate([jump, [exit_state]])
        chain = np.zeros(1, dtype=np.int64)
        # a valid chain moves >= 1 bit per symbol, so it has at most `size`
        # starts in the chunk; the cap also ends the self-loops of bad codes
        limit = min(n_out - done, size)
        while chain.size < limit and chain[-1] != exit_state:
            chain = np.concatenate([chain, jump[chain]])
            jump = jump[jump]
        chain = chain[:limit]
        chain = chain[chain != exit_state]
        if bad[chain].any():
            raise FormatError("huffman stream has a bit pattern that matches no code, or ends early")
        out[done:done + chain.size] = symbol_of[windows[chain]]
        done += chain.size
        start += int(chain[-1] + step[chain[-1]])
    return out


def _bcsr4_columns(indices, values, nblocks_total):
    """Per-weight columns and values of a 1x4 block-sparse matrix, as int64 [nblocks, 4]."""
    indices = np.asarray(indices).astype(np.int64)
    cols = indices[:, None] + np.arange(4)[None, :]
    return cols, np.asarray(values).reshape(nblocks_total, 4)


def spmm_bcsr4_f32(indptr, indices, values, x, bias=None, relu=False, out=None):
    """y [m, n] = x [m, k] @ W.T for a 1x4 block-sparse W [n, k], then the epilogue.

    indptr counts blocks per row; block b covers columns indices[b] .. +3 with
    weights values[4b .. 4b+3] (values is flat, 4 per block).  Each output sums
    its row block by block, t inner, in float32 (product rounded, then added),
    as the scalar C does."""
    x = np.asarray(x, dtype=np.float32)
    start, length = _csr_rows(indptr)
    values = np.asarray(values, dtype=np.float32)
    cols, vals = _bcsr4_columns(indices, values, np.asarray(indices).shape[0])
    acc = np.zeros((x.shape[0], start.shape[0]), dtype=np.float32)
    for blk in range(int(length.max()) if length.size else 0):
        rows = np.nonzero(length > blk)[0]
        b = start[rows] + blk
        for t in range(4):
            acc[:, rows] += vals[b, t][None, :] * x[:, cols[b, t]]
    return epilogue(acc, bias=bias, relu=relu, out=out)


def spmm_bcsr4_s8(indptr, indices, values, x, x_scale, w_scale, bias=None, relu=False,
                  out_scale=None, out=None):
    """int8 1x4 block-sparse W [n, k] times int8 x [m, k]: int32 sums (exact,
    in int64 here), then the epilogue with x_scale [m] and w_scale [n]."""
    x = np.asarray(x)
    start, length = _csr_rows(indptr)
    n, k = start.shape[0], x.shape[1]
    cols, vals = _bcsr4_columns(indices, values, np.asarray(indices).shape[0])
    row_of_block = np.repeat(np.arange(n), length)
    blocks = np.arange(start[0], start[0] + length.sum()) if n else np.zeros(0, np.int64)
    dense = np.zeros((n, k), dtype=np.int64)
    np.add.at(dense, (np.repeat(row_of_block, 4), cols[blocks].ravel()),
              vals[blocks].astype(np.int64).ravel())
    acc = (x.astype(np.int64) @ dense.T).astype(np.int32)
    return epilogue(acc, x_scale, w_scale, bias, relu, out_scale, out)

ACTIVATIONS = {None: 0, "relu": 1, "relu6": 2}


def _int_tuple(value, length, minimum, what):
    try:
        items = tuple(int(v) for v in value)
    except TypeError:
        items = ()
    if len(items) != length or any(v < minimum or v != u for v, u in zip(items, value)):
        raise ShapeError(f"{what} must be {length} integers >= {minimum}, got {value!r}")
    return items


def conv2d_geometry(x_shape, w_shape, stride, padding, dilation, activation):
    """Checks a depthwise NHWC convolution; returns ((out_h, out_w), stride,
    padding, dilation, activation code).  x [n, h, w, C], weight [kh, kw, C]."""
    if len(x_shape) != 4 or min(x_shape) < 0:
        raise ShapeError(f"x must be 4-D NHWC [batch, height, width, channels], got shape {tuple(x_shape)}")
    channels = x_shape[3]
    if len(w_shape) != 3 or w_shape[2] != channels:
        raise ShapeError(f"weight must be [kernel_h, kernel_w, {channels}] (HWC, one filter per "
                         f"channel of x), got shape {tuple(w_shape)}")
    stride = _int_tuple(stride, 2, 1, "stride (h, w)")
    padding = _int_tuple(padding, 4, 0, "padding (top, left, bottom, right)")
    dilation = _int_tuple(dilation, 2, 1, "dilation (h, w)")
    if activation not in ACTIVATIONS:
        raise ShapeError(f"activation must be None, 'relu' or 'relu6', got {activation!r}")
    out = []
    for axis, (size, kernel) in enumerate(zip(x_shape[1:3], w_shape[:2])):
        name = ("height", "width")[axis]
        if size < 1 or kernel < 1:
            raise ShapeError(f"x {name} and kernel {name} must be >= 1, got {size} and {kernel}")
        padded = size + padding[axis] + padding[axis + 2]
        span = dilation[axis] * (kernel - 1) + 1
        if padded < span:
            raise ShapeError(f"the dilated kernel {name} {span} exceeds the padded input {name} {padded}")
        out.append((padded - span) // stride[axis] + 1)
    return tuple(out), stride, padding, dilation, ACTIVATIONS[activation]


def _channel_vector(v, channels, what):
    if v is None:
        return None
    v = np.asarray(v, dtype=np.float32)
    if v.shape != (channels,):
        raise ShapeError(f"{what} must have shape ({channels},), got {v.shape}")
    return v


def _activate(v, code):
    if code:
        v = np.where(v > 0, v, np.where(np.isnan(v), v, np.float32(0)))
    if code == 2:
        v = np.where(v > 6, np.float32(6), v)
    return v.astype(np.float32)


def _dwconv2d_taps(x, weight, stride, padding, dilation, out_hw, acc_dtype):
    """sum over taps (kh, kw) in order of shifted, strided slices of the
    zero-padded x times that tap's channel vector, in acc_dtype."""
    (sh, sw), (pt, pl, pb, pr), (dh, dw), (oh, ow) = stride, padding, dilation, out_hw
    xp = np.pad(x.astype(acc_dtype), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    w = weight.astype(acc_dtype)
    acc = np.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=acc_dtype)
    for ky in range(weight.shape[0]):
        for kx in range(weight.shape[1]):
            window = xp[:, ky * dh: ky * dh + (oh - 1) * sh + 1: sh,
                        kx * dw: kx * dw + (ow - 1) * sw + 1: sw, :]
            acc = acc + window * w[ky, kx]
    return acc


def dwconv2d_f32(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                 activation=None, out=None):
    """Depthwise convolution, NHWC: x float32 [n, h, w, C], weight float32 [kh, kw, C],
    bias [C]; taps summed in (kh, kw) order from +0, float32 multiply then add."""
    x, weight = np.asarray(x), np.asarray(weight)
    if x.dtype != np.float32 or weight.dtype != np.float32:
        raise ShapeError(f"x and weight must be float32, got {x.dtype} and {weight.dtype}")
    out_hw, stride, padding, dilation, act = conv2d_geometry(x.shape, weight.shape, stride,
                                                             padding, dilation, activation)
    bias = _channel_vector(bias, x.shape[3], "bias")
    v = _dwconv2d_taps(x, weight, stride, padding, dilation, out_hw, np.float32)
    if bias is not None:
        v = v + bias
    y = _output(out, v.shape, np.float32)
    y[...] = _activate(v, act)
    return y


def dwconv2d_s8(x, weight, x_scale, w_scale, bias=None, stride=(1, 1), padding=(0, 0, 0, 0),
                dilation=(1, 1), activation=None, out_scale=None, out=None):
    """Depthwise convolution, NHWC, int8: x int8 [n, h, w, C] with one scale,
    weight int8 [kh, kw, C] with w_scale [C]; int32 sums, then
    v = acc * x_scale * w_scale[c] + bias[c], activation -> float32, or int8 by out_scale."""
    x, weight = np.asarray(x), np.asarray(weight)
    if x.dtype != np.int8 or weight.dtype != np.int8:
        raise ShapeError(f"x and weight must be int8, got {x.dtype} and {weight.dtype}")
    out_hw, stride, padding, dilation, act = conv2d_geometry(x.shape, weight.shape, stride,
                                                             padding, dilation, activation)
    if weight.shape[0] * weight.shape[1] > MAX_K_S8:
        raise ShapeError(f"dwconv2d_s8: kernel_h * kernel_w exceeds {MAX_K_S8}, the int32 accumulator limit")
    w_scale = _channel_vector(w_scale, x.shape[3], "w_scale")
    bias = _channel_vector(bias, x.shape[3], "bias")
    if out_scale is not None and not (out_scale > 0 and np.isfinite(out_scale)):
        raise ShapeError(f"out_scale must be a positive finite number, got {out_scale}")
    acc = _dwconv2d_taps(x, weight, stride, padding, dilation, out_hw, np.int32)
    v = acc.astype(np.float32)
    v *= np.float32(x_scale)
    v *= w_scale
    if bias is not None:
        v += bias
    v = _activate(v, act)
    if out_scale is None:
        y = _output(out, v.shape, np.float32)
        y[...] = v
        return y
    r = v * (np.float32(1) / np.float32(out_scale))
    r = np.where(np.isnan(r), np.float32(0), np.clip(r, -127, 127))
    y = _output(out, v.shape, np.int8)
    y[...] = np.rint(r).astype(np.int8)
    return y


def layer_norm_arguments(x, scale, bias=None, epsilon=1e-5, residual=None, out=None):
    """Checked arguments of layer_norm_f32 (shared with the C wrapper): x, residual and
    out float32 C-contiguous of one shape (ndim >= 1), scale / bias float32 [x.shape[-1]],
    epsilon a finite float32 >= 0.  Returns (x, scale, bias, epsilon, residual, out),
    out allocated when None."""
    x = np.asarray(x)
    if x.dtype != np.float32 or x.ndim == 0:
        raise ShapeError(f"x must be a float32 array of at least 1 dimension, got {x.dtype} "
                         f"of shape {x.shape}")
    x = np.ascontiguousarray(x)
    n = x.shape[-1]

    def vector(v, what):
        v = np.ascontiguousarray(v, dtype=np.float32)
        if v.shape != (n,):
            raise ShapeError(f"{what} must have shape ({n},) (the last axis of x), got {v.shape}")
        return v

    if scale is None:
        raise ShapeError(f"scale is required: a float32 array of shape ({n},)")
    scale = vector(scale, "scale")
    bias = None if bias is None else vector(bias, "bias")
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        eps = float("nan")
    # Checked as a Python float (numpy scalar checks cost microseconds per call,
    # and BERT calls this 2 * layers times per inference); FLT_MAX keeps float32 finite.
    if not 0 <= eps <= 3.4028234663852886e38:
        raise OptionError(f"epsilon must be a finite number >= 0 (as float32), got {epsilon!r}")
    eps = np.float32(eps)
    if residual is not None:
        residual = np.asarray(residual)
        if residual.dtype != np.float32 or residual.shape != x.shape:
            raise ShapeError(f"residual must be float32 of x's shape {x.shape}, got "
                             f"{residual.dtype} {residual.shape}")
        residual = np.ascontiguousarray(residual)
    if out is None:
        out = np.empty_like(x)
    elif (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != x.shape
          or not out.flags.c_contiguous or not out.flags.writeable):
        raise ShapeError(f"out must be a writeable C-contiguous float32 array of shape {x.shape}")
    for source, what in ((x, "x"), (residual, "residual")):
        # In place is fine (out is x or residual itself); a shifted overlap is not.
        if (source is not None and out is not source and np.may_share_memory(out, source)
                and out.__array_interface__["data"][0] != source.__array_interface__["data"][0]):
            raise ShapeError(f"out may be {what} itself but must not partly overlap it")
    return x, scale, bias, eps, residual, out


def layer_norm_f32(x, scale, bias=None, epsilon=1e-5, residual=None, out=None):
    """LayerNorm over the last axis, residual (same shape as x) added first: per row,
    v = x + residual, c = v - mean(v), y = c / sqrt(mean(c * c) + epsilon) * scale + bias.
    As csrc/edgerun.h: the mean is taken of v - v[0] (a shift by the row's first element)
    so that rows with a large common offset keep their precision; otherwise the float32
    formula of evaluate.layer_norm.  Constant rows give bias (NaN when epsilon is 0)."""
    x, scale, bias, eps, residual, out = layer_norm_arguments(x, scale, bias, epsilon,
                                                              residual, out)
    if x.size == 0:
        return out
    v = x if residual is None else x + residual
    shifted = v - v[..., :1]
    c = shifted - shifted.mean(axis=-1, keepdims=True, dtype=np.float32)
    var = (c * c).mean(axis=-1, keepdims=True, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):  # epsilon 0 and a constant row: NaN
        y = c * (np.float32(1) / np.sqrt(var + eps)) * scale
    if bias is not None:
        y += bias
    out[...] = y
    return out


# Numerical Recipes' erfc (a Chebyshev fit, "erfcc"): fractional error below 1.2e-7
# for every z >= 0, so erf and 1 + erf(x) (GELU's negative tail) both stay within
# float32 rounding.  erfc(z) = t exp(-z^2 + _ERFC[0] + t (_ERFC[1] + ...)), t = 1/(1 + z/2).
# The SIMD kernels use the same fit (csrc/gelu_f32.h).
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
         -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def erfc_abs_over_sqrt2(ax):
    """erfc(ax / sqrt 2) for float32 ax = |x| (in place on temporaries: GELU runs on
    every FFN activation).  -z^2 is taken as -ax * ax / 2, not from the rounded z:
    at x = -10 that is 3e-6 instead of 1.2e-5 of relative error in the tail."""
    t = np.float32(np.sqrt(0.5)) * ax
    t *= np.float32(0.5)
    t += np.float32(1)
    np.reciprocal(t, out=t)
    poly = np.full_like(t, np.float32(_ERFC[-1]))
    for c in reversed(_ERFC[1:-1]):
        poly *= t
        poly += np.float32(c)
    poly *= t
    poly += np.float32(_ERFC[0])
    square = ax * ax
    square *= np.float32(0.5)
    poly -= square
    np.exp(poly, out=poly)
    poly *= t
    return poly


def _float32_input(x, what):
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise ShapeError(f"{what}: x must be float32, got {x.dtype}")
    return x


class Im2colF32:
    """The rows of a standard convolution for one NHWC input shape (the numpy twin of
    the extension's Im2colF32, contract of im2col_f32 in csrc/edgerun.h): calling it
    on float32 x [n, h, w, C] of that shape gives the contiguous float32 rows
    [n*oh*ow, kh*kw*C], each an output position's window in (kh, kw, C) order, zero
    where it reaches into the padding.  order="chw" gives the columns in (C, kh, kw)
    order instead (1x4-block weights keep the weight's own column order); only this
    twin has it.  `oh`, `ow`: the output size.  Pads are (top, left, bottom, right)."""

    def __init__(self, shape, pads, kh, kw, strides=(1, 1), dilations=(1, 1), order="hwc"):
        shape = tuple(int(d) for d in shape)
        (self.oh, self.ow), strides, pads, dilations, _ = conv2d_geometry(
            shape, (kh, kw, shape[-1] if shape else 0), strides, pads, dilations, None)
        if order not in ("hwc", "chw"):
            raise ShapeError(f"order must be 'hwc' or 'chw', got {order!r}")
        n, h, w, c = self.shape = shape
        top, left, bottom, right = pads
        hp, wp = h + top + bottom, w + left + right
        (sh, sw), (dh, dw) = strides, dilations
        self.padded_shape = (n, hp, wp, c) if any(pads) else None
        self.inside = (slice(None), slice(top, top + h), slice(left, left + w))
        item = np.dtype(np.float32).itemsize
        image, row, pixel = hp * wp * c * item, wp * c * item, c * item
        oh, ow = self.oh, self.ow
        if order == "hwc":
            self.view_shape = (n, oh, ow, kh, kw, c)
            self.view_strides = (image, sh * row, sw * pixel, dh * row, dw * pixel, item)
        else:
            self.view_shape = (n, oh, ow, c, kh, kw)
            self.view_strides = (image, sh * row, sw * pixel, item, dh * row, dw * pixel)
        self.rows_shape = (n * oh * ow, kh * kw * c)

    def __call__(self, x):
        x = np.asarray(x)
        if x.dtype != np.float32 or x.shape != self.shape:
            raise ShapeError(f"im2col expects float32 {list(self.shape)}, got {x.dtype} "
                             f"{list(x.shape)}")
        if self.padded_shape is not None:
            padded = np.zeros(self.padded_shape, dtype=np.float32)
            padded[self.inside] = x
        else:
            padded = np.ascontiguousarray(x)
        # a strided view of the padded input (numpy checks it against the buffer's
        # size); copying it is the im2col
        view = np.ndarray(self.view_shape, np.float32, padded, 0, self.view_strides)
        return np.ascontiguousarray(view).reshape(self.rows_shape)


def gelu_f32(x, approximate="none", out=None):
    """ONNX Gelu (opset 20) over float32 of any shape, in float32 numpy.
    approximate="none": x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), with
    1 + erf(x / sqrt 2) = erfc(|x| / sqrt 2) for x < 0, so the negative tail keeps
    its relative precision.  approximate="tanh": 0.5 x (1 + tanh(u)),
    u = sqrt(2/pi) (x + 0.044715 x^3), computed as x * sigmoid(2u) with
    e = exp(-2|u|): x / (1 + e) for u >= 0, x e / (1 + e) for u < 0 (the same value
    without the cancellation of 1 + tanh(u) for negative u, and without overflow)."""
    if approximate not in ("none", "tanh"):
        raise OptionError(f"gelu_f32: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = _float32_input(x, "gelu_f32")
    with np.errstate(over="ignore", invalid="ignore"):
        if approximate == "tanh":
            minus_2u = x * x
            minus_2u *= np.float32(-2 * np.sqrt(2 / np.pi) * 0.044715)
            minus_2u += np.float32(-2 * np.sqrt(2 / np.pi))
            minus_2u *= x
            e = np.exp(-np.abs(minus_2u))  # exp(-2|u|) <= 1: cannot overflow
            y = np.where(minus_2u > 0, x * e, x)
            y /= np.float32(1) + e
        else:
            tail = erfc_abs_over_sqrt2(np.abs(x))
            y = np.where(x >= 0, np.float32(2) - tail, tail)
            y *= np.float32(0.5)
            y *= x
    result = _output(out, x.shape, np.float32)
    result[...] = y
    return result


def softmax_f32(x, out=None):
    """Softmax over the last axis of float32 x, max-subtracted: exp(x - max) / sum.
    Rows with a NaN, a +inf, or only -inf come out all NaN (numpy's answer)."""
    x = _float32_input(x, "softmax_f32")
    if x.ndim == 0:
        raise ShapeError("softmax_f32: x must have at least 1 dimension, got a scalar")
    result = _output(out, x.shape, np.float32)
    if x.size == 0:
        return result
    with np.errstate(invalid="ignore"):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        result[...] = e / e.sum(axis=-1, keepdims=True)
    return result
