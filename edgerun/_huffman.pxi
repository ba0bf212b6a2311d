# Included by _kernels.pyx: canonical Huffman decoding of byte streams.

def huffman_decode(code_lengths, data, Py_ssize_t n_out, variant=None):
    """code_lengths uint8 [256], data uint8 [n_bytes] -> uint8 [n_out]; see reference.py.

    Raises FormatError when the lengths over-subscribe the code space, the
    stream ends early or a bit pattern matches no code."""
    lengths = np.ascontiguousarray(code_lengths)
    if lengths.dtype != np.uint8 or lengths.shape != (256,):
        raise ShapeError(f"code_lengths must be uint8 (256,), got {lengths.dtype} {lengths.shape}")
    payload = np.ascontiguousarray(data)
    if payload.dtype != np.uint8 or payload.ndim != 1:
        raise ShapeError(f"data must be 1-D uint8, got {payload.dtype} {payload.shape}")
    if n_out < 0:
        raise ShapeError(f"n_out must be >= 0, got {n_out}")
    out = np.empty(n_out, dtype=np.uint8)
    cdef er_huffman_decode_fn *fn = <er_huffman_decode_fn *>_kernel("huffman_decode", variant)
    cdef const uint8_t[::1] lv = lengths
    cdef const uint8_t[::1] dv = payload
    cdef uint8_t[::1] ov = out
    cdef const uint8_t *dp = &dv[0] if dv.shape[0] else NULL
    cdef uint8_t *op = &ov[0] if n_out else NULL
    cdef size_t n_bytes = dv.shape[0]
    cdef er_status status
    with nogil:
        status = fn(&lv[0], dp, n_bytes, op, <size_t>n_out)
    _check(status, "huffman_decode")
    return out
