"""What a compression did, per layer and for the whole model.

Bytes "before" are the float32 bytes of the layer's original weight and bias;
bytes "after" are the estimated stored bytes of the encoded tensors: the raw
arrays, or, with huffman=True, each integer stream at its Huffman-coded size
(plus its code-length table) when that is smaller -- the same per-stream choice
format.py makes.  Without edgerun.compress.huffman the coded size is estimated
from the byte entropy.
"""
import math

import numpy as np

# A Huffman-coded stream also stores its code lengths, one byte per symbol value.
HUFFMAN_TABLE_BYTES = 256


def _entropy_bits(data):
    counts = np.bincount(data, minlength=256).astype(np.float64)
    counts = counts[counts > 0]
    if counts.size <= 1:
        return int(data.size)  # one symbol still costs one bit each in a Huffman code
    p = counts / counts.sum()
    return int(math.ceil(-(counts * np.log2(p)).sum()))


def huffman_bytes(array):
    """Estimated bytes of array's bytes Huffman-coded, table included."""
    data = np.ascontiguousarray(array).view(np.uint8).ravel()
    if data.size == 0:
        return 0
    try:
        from edgerun.compress.huffman import encoded_bits
        bits = int(encoded_bits(data))
    except ImportError:
        bits = _entropy_bits(data)
    return (bits + 7) // 8 + HUFFMAN_TABLE_BYTES


def stored_bytes(tensor, huffman=None):
    """Estimated bytes of tensor on disk.  huffman defaults to tensor.huffman."""
    huffman = tensor.huffman if huffman is None else huffman
    total = 0
    for array in tensor.arrays.values():
        size = int(array.nbytes)
        if huffman and array.dtype.kind in "iu":
            size = min(size, huffman_bytes(array))
        total += size
    return total


class Report:
    """rows: one dict per Linear layer; ratio: total bytes before / after;
    error: relative L2 error of the model outputs on the calibration data (or None)."""

    columns = ("layer", "shape", "encoding", "sparsity", "bits_per_weight",
               "bytes_before", "bytes_after", "error")

    def __init__(self, rows, error=None, settings=None):
        self.rows = rows
        self.error = error
        self.settings = settings or {}
        self.bytes_before = sum(r["bytes_before"] for r in rows)
        self.bytes_after = sum(r["bytes_after"] for r in rows)
        self.ratio = self.bytes_before / self.bytes_after if self.bytes_after else float("inf")

    def __str__(self):
        head = ["layer", "shape", "encoding", "sparsity", "bits/w", "before", "after", "out err"]
        table = [head]
        for r in self.rows:
            shape = "x".join(map(str, r["shape"]))
            if tuple(r["shape"]) != tuple(r["original_shape"]):
                shape += " (was " + "x".join(map(str, r["original_shape"])) + ")"
            error = "-" if r["error"] is None else f"{r['error']:.4f}"
            table.append([r["layer"], shape, r["encoding"], f"{r['sparsity']:.3f}",
                          f"{r['bits_per_weight']:.2f}", str(r["bytes_before"]),
                          str(r["bytes_after"]), error])
        error = "-" if self.error is None else f"{self.error:.4f}"
        table.append(["total", "", "", "", "", str(self.bytes_before), str(self.bytes_after), error])
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths))) for row in table]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        settings = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        lines.append(f"ratio {self.ratio:.2f}x smaller than float32"
                     + (f"  ({settings})" if settings else ""))
        return "\n".join(lines)

    def __repr__(self):
        return f"<Report {len(self.rows)} layers, ratio {self.ratio:.2f}x>"
