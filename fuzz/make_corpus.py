"""Seed corpus for the loader fuzzer: one small valid model per encoding.

    python fuzz/make_corpus.py [out_dir]      # default: fuzz/corpus

Every encoding the format knows (docs/FORMAT.md section 3) is here, with and
without Huffman: dense f32/f16/i8, CSR f32/f16/i8 values with u16 and u32
indices, CSR with codes (float and int8 centroids), bcsr4 (1x4 blocks) f32/f16/i8
values with u16 and u32 indices, codebook 1..8 bits.  The
models are tiny (a few hundred bytes) so that a mutation engine spends its time
on the header and on stream boundaries, not on bulk weights.  The same builders
serve tests/test_fuzz.py, so CI mutates exactly what the fuzzer starts from.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from edgerun import format as fmt  # noqa: E402
from edgerun.graph import Graph, Node, Tensor, ValueInfo  # noqa: E402
from edgerun.packing import pack_bits  # noqa: E402

ROWS, COLS = 6, 11  # not multiples of any SIMD width; one empty CSR row


def _graph(weight, seed):
    """x [N, cols] -> Linear(weight, bias, relu) -> y [N, rows]."""
    rng = np.random.default_rng(seed + 1000)
    rows, cols = weight.shape
    bias = Tensor.dense("b", rng.standard_normal(rows).astype(np.float32))
    return Graph(inputs=[ValueInfo("x", (None, cols))], outputs=[ValueInfo("y", (None, rows))],
                 nodes=[Node("Linear", "fc", ["x", "w", "b"], ["y"], {"activation": "relu"})],
                 tensors={"w": weight, "b": bias}, metadata={"corpus": "seed"})


def _csr_structure(rng, rows, cols, skew):
    mask = rng.random((rows, cols)) < 0.5
    mask[1] = False  # an empty row: indptr repeats
    if skew:  # long rows of neighbouring columns: delta-rows + Huffman pays off
        mask[:, : cols // 2] = True
        mask[1] = False
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.uint32)
    return indptr, np.nonzero(mask)[1], int(mask.sum())


def _bcsr4_structure(rng, rows, cols, skew):
    """Sorted, disjoint 1x4 blocks per row, not all aligned, one block ending at
    cols; an empty row.  skew: most blocks 4 apart (delta-rows pays off)."""
    indptr, indices = [0], []
    for r in range(rows):
        column, starts = 0, []
        while r != 1 and column + 4 <= cols:
            if skew or rng.random() < 0.5:
                starts.append(column)
                column += 4 if skew and rng.random() < 0.8 else 4 + int(rng.integers(0, 3))
            else:
                column += 1
        if r == 0 and cols >= 4:
            starts = [c for c in starts if c + 4 <= cols - 4] + [cols - 4]  # the last column
        indices += starts
        indptr.append(indptr[-1] + len(starts))
    return np.array(indptr, np.uint32), np.array(indices, np.int64), len(indices)


def _centroids(rng, bits, dtype):
    k = 1 << bits
    if dtype == "int8":
        return {"centroids": np.linspace(-127, 127, k).round().astype(np.int8),
                "scale": np.array([0.01], np.float32)}
    return {"centroids": np.sort(rng.standard_normal(k)).astype(dtype)}


def weight(kind, huffman, seed=0):
    """The weight Tensor "w" for one encoding name (see ENCODINGS).  With
    huffman, sizes and value skew are chosen so that Huffman coding is used."""
    rng = np.random.default_rng(seed)
    parts = kind.split("-")
    coded = huffman and kind not in ("dense-float32", "dense-float16")  # float streams stay plain
    rows, cols = (16, 160) if coded else (ROWS, COLS)
    if parts[0] == "dense":
        dtype = parts[1]
        if dtype == "int8":
            values = rng.integers(-127, 128, (rows, cols)).astype(np.int8)
            if huffman:
                values[rng.random((rows, cols)) < 0.8] = 0
            arrays = {"values": values, "scale": (rng.random(rows) * 0.02 + 0.001).astype(np.float32)}
        else:
            arrays = {"values": rng.standard_normal((rows, cols)).astype(dtype)}
        return Tensor("w", (rows, cols), "dense", arrays, huffman=huffman)
    if parts[0] == "csr":
        indptr, indices, nnz = _csr_structure(rng, rows, cols, huffman)
        arrays = {"indptr": indptr, "indices": indices.astype(parts[2])}
        bits = None
        if parts[1] == "codes":
            bits = 3
            codes = rng.integers(0, 1 << bits, nnz)
            if huffman:
                codes[rng.random(nnz) < 0.8] = 0
            arrays["codes"] = codes.astype(np.uint8)
            arrays.update(_centroids(rng, bits, parts[3]))
        elif parts[1] == "int8":
            arrays["values"] = rng.integers(-127, 128, nnz).astype(np.int8)
            arrays["scale"] = (rng.random(rows) * 0.02 + 0.001).astype(np.float32)
        else:
            arrays["values"] = rng.standard_normal(nnz).astype(parts[1])
        return Tensor("w", (rows, cols), "csr", arrays, bits=bits, huffman=huffman)
    if parts[0] == "bcsr4":
        indptr, indices, nblocks = _bcsr4_structure(rng, rows, cols, huffman)
        arrays = {"indptr": indptr, "indices": indices.astype(parts[2])}
        if parts[1] == "int8":
            values = rng.integers(-127, 128, 4 * nblocks)
            if huffman:
                values[rng.random(4 * nblocks) < 0.8] = 0
            arrays["values"] = values.astype(np.int8)
            arrays["scale"] = (rng.random(rows) * 0.02 + 0.001).astype(np.float32)
        else:
            arrays["values"] = rng.standard_normal(4 * nblocks).astype(parts[1])
        return Tensor("w", (rows, cols), "bcsr4", arrays, huffman=huffman)
    bits = int(parts[1])
    codes = rng.integers(0, 1 << bits, (rows, cols))
    if huffman:
        codes[rng.random((rows, cols)) < 0.98] = 0
    arrays = {"codes": pack_bits(codes.astype(np.uint8), bits)}
    arrays.update(_centroids(rng, bits, parts[2]))
    return Tensor("w", (rows, cols), "codebook", arrays, bits=bits, huffman=huffman)


ENCODINGS = (["dense-float32", "dense-float16", "dense-int8"]
             + [f"csr-{v}-{i}" for v in ("float32", "float16", "int8") for i in ("uint16", "uint32")]
             + ["csr-codes-uint16-float32", "csr-codes-uint32-int8"]
             + [f"codebook-{b}-float32" for b in range(1, 9)]
             + [f"codebook-{b}-int8" for b in (2, 4, 6, 8)]
             + ["bcsr4-float32-uint16", "bcsr4-float16-uint32", "bcsr4-int8-uint16",
                "bcsr4-int8-uint32"])


def models():
    """[(file name, Graph)] for every encoding, plain and Huffman-coded."""
    out = []
    for i, kind in enumerate(ENCODINGS):
        for huffman in (False, True):
            name = f"{kind}{'-huff' if huffman else ''}.edgerun"
            out.append((name, _graph(weight(kind, huffman, seed=i), i)))
    return out


def write(directory):
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, graph in models():
        path = os.path.join(directory, name)
        fmt.save(graph, path)
        paths.append(path)
    return paths


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    directory = argv[0] if argv else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    paths = write(directory)
    huffman = sum(1 for p in paths if any(s["huffman"] for t in fmt.inspect(p)["tensors"].values()
                                          for s in t["streams"].values()))
    print(f"wrote {len(paths)} seed models to {directory} ({huffman} with Huffman-coded streams)")


if __name__ == "__main__":
    main()
