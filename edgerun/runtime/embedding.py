"""Embedding lookups: Gather rows of a constant table [vocab, hidden] by run-time token ids,
reading only the selected rows of the stored encoding (a compressed table is never
decoded whole, so a 30k-token vocabulary costs its compressed bytes in memory).

    table encoding                       a lookup of ids
    dense f32 / f16                      values[ids] (f16 rows widened after the gather)
    dense i8 + scale (per row)           values[ids] * scale[ids]
    codebook (b-bit codes per row)       unpack the ids' rows of codes -> centroids[codes]
    anything else (csr, bcsr4)           decoded once at load, then table[ids]
"""
import numpy as np

from edgerun.errors import ShapeError
from edgerun.packing import unpack_bits


class EmbeddingStep:
    """Gather(table, ids) along axis 0 for one constant table."""

    kind = "embedding"

    def __init__(self, node, table):
        self.name = node.name
        self.rows, self.cols = int(table.shape[0]), int(np.prod(table.shape[1:], dtype=np.int64))
        self.row_shape = tuple(int(d) for d in table.shape[1:])
        self.encoding = table.encoding
        a = table.arrays
        self.scale = None
        if table.encoding == "dense":
            self.values = a["values"]
            if "scale" in a:
                self.scale = np.asarray(a["scale"], dtype=np.float32)
        elif table.encoding == "codebook":
            self.codes, self.bits = a["codes"], table.bits
            self.centroids = table._centroids()
        else:
            self.encoding = "decoded"
            self.values = table.to_dense()

    def rows_of(self, ids):
        """The float32 rows [len(ids), *row_shape] for a 1-D array of ids in 0..rows-1."""
        if self.encoding == "codebook":
            codes = unpack_bits(self.codes[ids], self.bits, self.cols)
            return self.centroids[codes].reshape((ids.size,) + self.row_shape)
        rows = self.values[ids].astype(np.float32)
        if self.scale is not None:
            rows *= self.scale[ids].reshape((-1,) + (1,) * len(self.row_shape))
        return rows

    def __call__(self, _table, ids):
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise ShapeError(f"node {self.name!r}: embedding ids must be integers, got {ids.dtype}")
        flat = ids.reshape(-1).astype(np.int64)
        if flat.size and (flat.min() < -self.rows or flat.max() >= self.rows):
            raise ShapeError(f"node {self.name!r}: token id out of range [{-self.rows}, {self.rows}) "
                             f"(got {int(flat.min())}..{int(flat.max())})")
        flat = np.where(flat < 0, flat + self.rows, flat)      # ONNX Gather: negative ids count back
        return self.rows_of(flat).reshape(ids.shape + self.row_shape)
