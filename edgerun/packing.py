"""Bit layouts of index streams, shared by the compressor, the format and the runtime.

pack_bits: b-bit indices (1 <= b <= 8) packed LSB-first, each row of a 2-D array
starting on a byte boundary: bit p*b + t of a row is bit t of index p.

nibble32: the layout of the codebook_s8 kernel (csrc/edgerun.h): blocks of 32
indices in 16 bytes, byte t holding index t (low nibble) and index 16+t (high
nibble), so one in-register table lookup yields 32 weights in order.
"""
import numpy as np

from edgerun.errors import EdgerunError


def row_bytes(cols: int, bits: int) -> int:
    return (cols * bits + 7) // 8


def pack_bits(indices: np.ndarray, bits: int) -> np.ndarray:
    """uint8 [rows, cols] of values < 2**bits -> uint8 [rows, row_bytes(cols, bits)]."""
    if not 1 <= bits <= 8:
        raise EdgerunError(f"bits must be in 1..8, got {bits}")
    indices = np.asarray(indices)
    if indices.ndim == 1:
        return pack_bits(indices[None, :], bits)[0]
    if indices.size and int(indices.max()) >= (1 << bits):
        raise EdgerunError(f"index {int(indices.max())} does not fit in {bits} bits")
    rows, cols = indices.shape
    # bit t of index p lands at position p*bits + t of the row
    as_bits = ((indices[:, :, None].astype(np.uint8) >> np.arange(bits, dtype=np.uint8)) & 1)
    flat = as_bits.reshape(rows, cols * bits)
    padded = np.zeros((rows, row_bytes(cols, bits) * 8), dtype=np.uint8)
    padded[:, : cols * bits] = flat
    return np.packbits(padded, axis=1, bitorder="little")


def unpack_bits(packed: np.ndarray, bits: int, cols: int) -> np.ndarray:
    """Inverse of pack_bits: uint8 [rows, row_bytes] -> uint8 [rows, cols]."""
    packed = np.asarray(packed, dtype=np.uint8)
    if packed.ndim == 1:
        return unpack_bits(packed[None, :], bits, cols)[0]
    rows = packed.shape[0]
    flat = np.unpackbits(packed, axis=1, bitorder="little")[:, : cols * bits]
    as_bits = flat.reshape(rows, cols, bits)
    weights = (1 << np.arange(bits)).astype(np.uint16)
    return (as_bits * weights).sum(axis=2).astype(np.uint8)


def nibble32_row_bytes(cols: int) -> int:
    return (cols + 31) // 32 * 16


def pack_nibble32(indices: np.ndarray) -> np.ndarray:
    """uint8 [rows, cols] of values < 16 -> uint8 [rows, nibble32_row_bytes(cols)]."""
    indices = np.asarray(indices, dtype=np.uint8)
    if indices.size and int(indices.max()) >= 16:
        raise EdgerunError("nibble32 indices must be < 16")
    rows, cols = indices.shape
    blocks = (cols + 31) // 32
    padded = np.zeros((rows, blocks * 32), dtype=np.uint8)
    padded[:, :cols] = indices
    padded = padded.reshape(rows, blocks, 2, 16)
    return (padded[:, :, 0, :] | (padded[:, :, 1, :] << 4)).reshape(rows, blocks * 16)


def unpack_nibble32(nibbles: np.ndarray, cols: int) -> np.ndarray:
    nibbles = np.asarray(nibbles, dtype=np.uint8)
    rows = nibbles.shape[0]
    blocks = nibbles.reshape(rows, -1, 16)
    both = np.stack([blocks & 0x0F, blocks >> 4], axis=2)
    return both.reshape(rows, -1)[:, :cols]
