"""The numpy reference of every kernel: the ground truth for tests, and the
backend when the C extension is not built.

Each function has the signature of its wrapper in edgerun/_kernels.pyx and
follows the numeric contract of csrc/edgerun.h to the bit on integer paths:
float32 throughout, epilogue v = acc * row_scale * col_scale + bias in that
order, round half to even, clamp to [-127, 127].
"""
import numpy as np

from edgerun.errors import FormatError, NonFiniteError, ShapeError

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


def quantize_rows_s8(x, out=None):
    """Symmetric per-row int8: scale = max|x| / 127, q = rint(x * (127 / max|x|))."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ShapeError(f"x must be 2-D, got shape {x.shape}")
    if x.size and not np.isfinite(x).all():
        raise NonFiniteError("quantize_rows_s8: input contains NaN or Inf")
    amax = np.abs(x).max(axis=1) if x.shape[1] else np.zeros(x.shape[0], np.float32)
    amax = amax.astype(np.float32)
    safe = np.where(amax == 0, np.float32(1), amax)
    inv = (np.float32(127) / safe).astype(np.float32)
    r = np.clip(x * inv[:, None], -127, 127)
    q = _output(out, x.shape, np.int8)
    q[...] = np.where(amax[:, None] == 0, 0, np.rint(r)).astype(np.int8)
    scale = (amax / np.float32(127)).astype(np.float32)
    return q, scale


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
