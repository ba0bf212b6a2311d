"""What a compression did, per layer and for the whole model.

Bytes "before" are the float32 bytes of the layer's original weight and bias;
bytes "after" are the estimated stored bytes of the encoded tensors: the raw
arrays, or, with huffman=True, each integer stream at its Huffman-coded size
(plus its code-length table) when that is smaller -- the same per-stream choice
format.py makes.  Without edgerun.compress.huffman the coded size is estimated
with an optimal Huffman code of the same bytes.
"""
import heapq

import numpy as np



def _huffman_bits(data):
    """Bits of data under an optimal (unlimited-length) Huffman code of its bytes:
    the sum of the weights of all merged nodes."""
    counts = [int(c) for c in np.bincount(data, minlength=256) if c]
    if len(counts) == 1:
        return counts[0]  # one symbol still costs one bit each
    heapq.heapify(counts)
    bits = 0
    while len(counts) > 1:
        merged = heapq.heappop(counts) + heapq.heappop(counts)
        bits += merged
        heapq.heappush(counts, merged)
    return bits


def huffman_bytes(array):
    """Estimated bytes of array's bytes Huffman-coded, table included.

    format.py stores the code lengths in the JSON header as hex, up to the largest
    byte value used: 2 * (max + 1) bytes."""
    data = np.ascontiguousarray(array).view(np.uint8).ravel()
    if data.size == 0:
        return 0
    table = 2 * (int(data.max()) + 1)
    try:
        from edgerun.compress.huffman import encoded_bits
        bits = int(encoded_bits(data))
    except ImportError:
        bits = _huffman_bits(data)
    return (bits + 7) // 8 + table


# The streams format.py may Huffman-code, and the transforms it tries first: the
# same per-stream rule, so the estimate is what the file will hold.
HUFFMAN_STREAMS = ("codes", "indices", "indptr", "values")


def _row_deltas(indices, indptr):
    """Each row's indices as differences from the previous one in the row (modulo width)."""
    d = indices.astype(np.int64)
    d[1:] -= indices[:-1].astype(np.int64)
    counts = np.diff(indptr.astype(np.int64))
    starts = indptr[:-1][counts > 0].astype(np.int64)
    d[starts] = indices[starts]
    return (d & ((1 << 8 * indices.itemsize) - 1)).astype(indices.dtype)


def _stream_bytes(tensor, name, array, huffman):
    size = int(array.nbytes)
    if not huffman or name not in HUFFMAN_STREAMS or array.dtype.kind not in "iu" or not array.size:
        return size
    candidates = [array]
    if tensor.encoding in ("csr", "bcsr4") and name == "indptr":
        candidates = [np.diff(array.astype(np.int64), prepend=0).astype(array.dtype)]
    elif tensor.encoding in ("csr", "bcsr4") and name == "indices":
        deltas = _row_deltas(array, tensor.arrays["indptr"])
        candidates.append(deltas)
        if array.itemsize > 1 and int(deltas.max()) < 256:
            candidates.append(deltas.astype(np.uint8))  # format.py's delta-rows-u8
    return min([size] + [huffman_bytes(c) for c in candidates])


def stored_bytes(tensor, huffman=None):
    """Estimated bytes of tensor on disk.  huffman defaults to tensor.huffman."""
    huffman = tensor.huffman if huffman is None else huffman
    return sum(_stream_bytes(tensor, name, array, huffman) for name, array in tensor.arrays.items())


class Report:
    """rows: one dict per Linear or Conv2d layer (layer, kind, shape, original_shape,
    removed_neurons, encoding, sparsity, bits_per_weight, bytes_before, bytes_after,
    error, and note: None or a remark such as a prune_block fallback); ratio:
    total bytes before / after; error: relative L2 error of the model outputs on the
    calibration data (or None).

    A row's error is the relative L2 error of the layer's output (after its ReLU, if
    it has one) on the calibration data, with the compressed model's own inputs, so
    it includes what the layers before it lost; for a conv, on the im2col rows it was
    calibrated on (a subsample of its output pixels); for a conv that is not
    calibrated (grouped, depthwise), its 4-D output after its fused activation on the
    first calibration images (about 4096 output pixels' worth).  kind is "linear" or a conv's
    window ("conv 3x3", "conv 3x3 /2" for stride 2, "dwconv 3x3" for depthwise,
    "conv 3x3 g4" for 4 groups); a conv's shape is its kernel [out, in/group, kh, kw].  bits_per_weight counts the stored
    weight bits over the ORIGINAL number of weights (removed neurons cost nothing)."""

    columns = ("layer", "kind", "shape", "encoding", "sparsity", "bits_per_weight",
               "bytes_before", "bytes_after", "error")

    def __init__(self, rows, error=None, settings=None):
        self.rows = rows
        self.error = error
        self.settings = settings or {}
        self.bytes_before = sum(r["bytes_before"] for r in rows)
        self.bytes_after = sum(r["bytes_after"] for r in rows)
        self.ratio = self.bytes_before / self.bytes_after if self.bytes_after else float("inf")

    def __str__(self):
        head = ["layer", "op", "shape", "encoding", "sparsity", "bits/w", "before", "after", "out err"]
        table = [head]
        for r in self.rows:
            shape = "x".join(map(str, r["shape"]))
            if tuple(r["shape"]) != tuple(r["original_shape"]):
                shape += " (was " + "x".join(map(str, r["original_shape"])) + ")"
            error = "-" if r["error"] is None else f"{r['error']:.4f}"
            table.append([r["layer"], r.get("kind", ""), shape, r["encoding"], f"{r['sparsity']:.3f}",
                          f"{r['bits_per_weight']:.2f}", str(r["bytes_before"]),
                          str(r["bytes_after"]), error])
        error = "-" if self.error is None else f"{self.error:.4f}"
        table.append(["total", "", "", "", "", "", str(self.bytes_before), str(self.bytes_after), error])
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        lines = ["  ".join(cell.ljust(w) if i < 4 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths))) for row in table]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        settings = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        for r in self.rows:
            if r.get("note"):
                lines.append(f"note: {r['layer']}: {r['note']}")
        lines.append(f"ratio {self.ratio:.2f}x smaller than float32"
                     + (f"  ({settings})" if settings else ""))
        return "\n".join(lines)

    def __repr__(self):
        return f"<Report {len(self.rows)} layers, ratio {self.ratio:.2f}x>"
