"""Canonical Huffman coding of byte streams (Deep Compression's last stage).

The compressor codes integer streams -- codebook indices, CSR index deltas --
whose byte values are far from uniform.  Codes are canonical (assigned in
(length, symbol) order) so a stream is described by its 256 code lengths
alone, and the bits are written MSB-first: the layout csrc/huffman.c and
edgerun.reference.huffman_decode read (docs/FORMAT.md).

    lengths = code_lengths(data)           # uint8 [256], 0 = symbol unused
    lengths, payload = encode(data)        # payload: uint8 bytes
    encoded_bits(data)                     # size of the payload in bits
"""
import heapq

import numpy as np

from edgerun.errors import EdgerunError
from edgerun.reference import HUFFMAN_MAX_BITS, huffman_codes


def _as_bytes(data) -> np.ndarray:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    data = np.asarray(data)
    if data.dtype != np.uint8:
        raise EdgerunError(f"huffman coding works on uint8 data, got {data.dtype}")
    return data.reshape(-1)


def _unlimited_lengths(counts: np.ndarray) -> np.ndarray:
    """Optimal (unbounded) Huffman code lengths of the symbols with count > 0."""
    lengths = np.zeros(256, dtype=np.int64)
    # (weight, tie-break, symbols under this node): ties resolve the same way on
    # every machine, so a model compresses to the same bytes everywhere
    heap = [(int(counts[s]), int(s), [int(s)]) for s in np.flatnonzero(counts)]
    heapq.heapify(heap)
    order = 256
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (w1 + w2, order, s1 + s2))
        order += 1
    return lengths


def code_lengths(data) -> np.ndarray:
    """Huffman code lengths (uint8 [256], 0 = unused) of data, limited to 16 bits.

    When the optimal code is deeper than 16 bits the counts are flattened
    (halved, rounding up so no used symbol disappears) and the code rebuilt:
    the skew shrinks each round until the limit holds (equal counts give a
    balanced tree of depth 8).  A single distinct symbol gets length 1."""
    data = _as_bytes(data)
    counts = np.bincount(data, minlength=256).astype(np.int64)
    used = np.flatnonzero(counts)
    if used.size == 0:
        return np.zeros(256, dtype=np.uint8)
    if used.size == 1:
        lengths = np.zeros(256, dtype=np.uint8)
        lengths[used[0]] = 1
        return lengths
    while True:
        lengths = _unlimited_lengths(counts)
        if lengths.max() <= HUFFMAN_MAX_BITS:
            return lengths.astype(np.uint8)
        counts = np.where(counts > 0, (counts + 1) // 2, 0)


def encoded_bits(data) -> int:
    """Bits of the Huffman payload of data (without the 256 code lengths)."""
    data = _as_bytes(data)
    counts = np.bincount(data, minlength=256).astype(np.int64)
    return int(np.dot(counts, code_lengths(data).astype(np.int64)))


def encode(data):
    """data uint8 -> (code_lengths uint8 [256], payload uint8 [ceil(bits / 8)]).

    Bits are concatenated with numpy: each symbol's code is left-aligned in 16
    bits, unpacked, masked to its length and the kept bits packed MSB-first;
    the stream is processed in chunks, carrying the <8 bits that do not fill a
    byte into the next chunk, so memory stays bounded."""
    data = _as_bytes(data)
    lengths = code_lengths(data)
    codes = huffman_codes(lengths)
    shift = np.where(lengths > 0, HUFFMAN_MAX_BITS - lengths.astype(np.int64), 0)
    left_aligned = (codes.astype(np.int64) << shift).astype(">u2")
    columns = np.arange(HUFFMAN_MAX_BITS)
    pieces, carry = [], np.zeros(0, dtype=np.uint8)
    chunk = 1 << 20
    for begin in range(0, data.size, chunk):
        symbols = data[begin:begin + chunk]
        as_bits = np.unpackbits(left_aligned[symbols].view(np.uint8).reshape(-1, 2), axis=1)
        kept = as_bits[columns[None, :] < lengths[symbols][:, None].astype(np.int64)]
        stream = np.concatenate([carry, kept])
        whole = stream.size // 8 * 8
        pieces.append(np.packbits(stream[:whole]))
        carry = stream[whole:]
    pieces.append(np.packbits(carry))  # zero-padded last byte
    return lengths, np.concatenate(pieces).astype(np.uint8)
