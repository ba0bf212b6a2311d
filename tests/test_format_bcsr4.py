"""The "bcsr4" encoding (1x4 blocks) in .edgerun files: exact round trips with and
without Huffman and both index widths, to_dense, and hostile files (a block
running past cols, overlapping blocks, a bad indptr, the wrong values length,
-128) that must raise FormatError."""
import numpy as np
import pytest

import edgerun
from edgerun import format as fmt
from edgerun.graph import Tensor

from tests.test_format import linear_graph, refused, round_trip, write_raw


def bcsr4_arrays(rng, rows, cols, keep=0.25, index=np.uint16, values="float32", empty_rows=(1,)):
    """Random blocks at random (not only aligned) sorted, disjoint positions."""
    indptr, indices = [0], []
    for r in range(rows):
        starts, column = [], 0
        while column + 4 <= cols:
            if r not in empty_rows and rng.random() < keep:
                starts.append(column)
                column += 4 + int(rng.integers(0, 3))  # gaps of 0..2 columns, unaligned
            else:
                column += 1 + int(rng.integers(0, 4))
        indices += starts
        indptr.append(indptr[-1] + len(starts))
    nblocks = len(indices)
    arrays = {"indptr": np.array(indptr, np.uint32), "indices": np.array(indices, index)}
    if values == "int8":
        arrays["values"] = rng.integers(-127, 128, 4 * nblocks).astype(np.int8)
        arrays["scale"] = rng.random(rows).astype(np.float32)
    else:
        arrays["values"] = rng.standard_normal(4 * nblocks).astype(values)
    return arrays


def bcsr4_tensor(rng, rows=12, cols=40, huffman=False, **kwargs):
    return Tensor("w", (rows, cols), "bcsr4", bcsr4_arrays(rng, rows, cols, **kwargs), huffman=huffman)


def expected_dense(t):
    a = t.arrays
    dense = np.zeros(t.shape, np.float32)
    values = a["values"].astype(np.float32)
    for r in range(t.shape[0]):
        for b in range(int(a["indptr"][r]), int(a["indptr"][r + 1])):
            w = values[4 * b:4 * b + 4]
            if "scale" in a:
                w = w * a["scale"][r]
            dense[r, int(a["indices"][b]):int(a["indices"][b]) + 4] = w
    return dense


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("index", [np.uint16, np.uint32])
@pytest.mark.parametrize("values", ["float32", "float16", "int8"])
def test_bcsr4_round_trip(values, index, huffman, rng, tmp_path):
    t = bcsr4_tensor(rng, index=index, values=values, huffman=huffman)
    assert np.array_equal(t.to_dense(), expected_dense(t))
    round_trip(linear_graph(t), tmp_path)


def test_bcsr4_large_with_huffman_uses_transforms(rng, tmp_path):
    t = bcsr4_tensor(rng, rows=300, cols=2000, keep=0.1, values="int8", huffman=True)
    path, loaded = round_trip(linear_graph(t), tmp_path)
    streams = fmt.inspect(path)["tensors"]["w"]["streams"]
    assert streams["indices"]["huffman"]
    assert streams["indices"]["transform"] in ("delta-rows", "delta-rows-u8")
    assert streams["indptr"]["transform"] == "delta"
    assert np.array_equal(loaded.tensors["w"].to_dense(), expected_dense(t))


def test_bcsr4_edges_round_trip(rng, tmp_path):
    """The last block may end exactly at cols; no blocks at all is fine; u16 at cols = 65536."""
    t = Tensor("w", (2, 65536), "bcsr4",
               {"indptr": np.array([0, 2, 3], np.uint32),
                "indices": np.array([0, 65532, 65532], np.uint16),
                "values": np.arange(12, dtype=np.float32)}, huffman=True)
    round_trip(linear_graph(t, bias=False), tmp_path)
    empty = Tensor("w", (3, 5), "bcsr4", {"indptr": np.zeros(4, np.uint32),
                                          "indices": np.zeros(0, np.uint16),
                                          "values": np.zeros(0, np.int8),
                                          "scale": np.ones(3, np.float32)})
    round_trip(linear_graph(empty), tmp_path)


def set_index(a, value):
    a["indices"][-1] = value  # the last block of the last non-empty row


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("corrupt, match", [
    (lambda a: set_index(a, 40 - 3), "runs past cols = 40"),
    (lambda a: set_index(a, 65535), "runs past cols"),
    (lambda a: a["indices"].__setitem__(1, a["indices"][0] + 3), "must not overlap"),
    (lambda a: a["indices"].__setitem__(1, a["indices"][0]), "must not overlap"),
    (lambda a: a["indptr"].__setitem__(2, a["indptr"][3] + 1), "non-decreasing"),
    (lambda a: a["indptr"].__setitem__(0, 1), "start at 0"),
    (lambda a: a["indptr"].__setitem__(-1, a["indptr"][-1] - 1), "nnz"),
    (lambda a: a["values"].__setitem__(5, -128), "-128"),
    (lambda a: a["scale"].__setitem__(0, np.inf), "NaN or Inf"),
])
def test_bad_bcsr4_content_is_refused(corrupt, match, huffman, rng, tmp_path, monkeypatch):
    arrays = bcsr4_arrays(rng, 6, 40, keep=0.5, values="int8", empty_rows=())
    assert arrays["indptr"][1] >= 2  # row 0 holds two blocks: the overlap cases use them
    t = Tensor("w", (6, 40), "bcsr4", {k: v.copy() for k, v in arrays.items()}, huffman=huffman)
    corrupt(t.arrays)
    path = tmp_path / "bad.edgerun"
    write_raw(linear_graph(t), path, monkeypatch)
    refused(path, match)
    with pytest.raises(edgerun.FormatError, match=match):
        fmt.save(linear_graph(t), tmp_path / "never.edgerun")  # the writer refuses it too


@pytest.mark.parametrize("bad, match", [
    (lambda a: a.__setitem__("values", a["values"][:-1]), "values"),
    (lambda a: a.__setitem__("values", np.concatenate([a["values"], a["values"][:4]])), "values"),
    (lambda a: a.pop("scale"), "scale"),
    (lambda a: a.__setitem__("codes", np.zeros(a["indices"].size, np.uint8)), "codes"),
])
def test_bad_bcsr4_streams_are_refused(bad, match, rng, tmp_path, monkeypatch):
    arrays = bcsr4_arrays(rng, 6, 40, values="int8")
    bad(arrays)
    t = Tensor("w", (6, 40), "bcsr4", arrays)
    with pytest.raises(edgerun.FormatError, match=match):
        fmt.save(linear_graph(t), tmp_path / "never.edgerun")
    path = tmp_path / "bad.edgerun"
    with monkeypatch.context() as m:
        m.setattr(fmt, "_check_streams", lambda *args: None)
        m.setattr(fmt, "_check_content", lambda *args: None)
        fmt.save(linear_graph(t), path)
    refused(path, match)


def test_bcsr4_u16_indices_need_cols_up_to_65536(rng, tmp_path):
    t = Tensor("w", (1, 65537), "bcsr4", {"indptr": np.array([0, 1], np.uint32),
                                          "indices": np.array([8], np.uint16),
                                          "values": np.ones(4, np.float32)})
    with pytest.raises(edgerun.FormatError, match="needs uint32"):
        fmt.save(linear_graph(t, bias=False), tmp_path / "m.edgerun")
