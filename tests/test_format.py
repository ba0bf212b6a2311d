"""The .edgerun format (docs/FORMAT.md): exact round trips of every encoding,
zero-copy loading, atomic saves, and hostile files that must all raise
FormatError -- never another exception, never a crash."""
import json
import zlib
import mmap
import os
import struct

import numpy as np
import pytest

import edgerun
from edgerun import _backend, format as fmt, reference
from edgerun.graph import Graph, GraphBuilder, Node, Tensor, ValueInfo
from edgerun.packing import pack_bits


# ---------------------------------------------------------------------------
# building graphs by hand

def linear_graph(weight: Tensor, bias=True, extra=()):
    """x -> Linear(weight [, bias]) -> y, with optional unused extra tensors."""
    rows, cols = weight.shape
    inputs = ["x", weight.name]
    tensors = {weight.name: weight}
    if bias:
        tensors["b"] = Tensor.dense("b", np.linspace(-1, 1, rows))
        inputs.append("b")
    for t in extra:
        tensors[t.name] = t
    return Graph(inputs=[ValueInfo("x", (None, cols))], outputs=[ValueInfo("y", (None, rows))],
                 nodes=[Node("Linear", "fc", inputs, ["y"], {"activation": "relu"})],
                 tensors=tensors, metadata={"producer": "test", "ratio": 3.5, "layers": [1, 2]})


def sparse(rng, rows, cols, density=0.3, empty_rows=(1,)):
    dense = rng.standard_normal((rows, cols)).astype(np.float32)
    dense *= rng.random((rows, cols)) < density
    for r in empty_rows:
        if r < rows:
            dense[r] = 0
    counts = (dense != 0).sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32)
    _, indices = np.nonzero(dense)
    return dense, indptr, indices


def csr_tensor(rng, rows=12, cols=40, index=np.uint16, values="float32", codes_bits=None,
               huffman=False, centroid_dtype="float32"):
    dense, indptr, indices = sparse(rng, rows, cols)
    nnz = indices.size
    arrays = {"indptr": indptr, "indices": indices.astype(index)}
    if codes_bits:
        arrays["codes"] = rng.integers(0, 1 << codes_bits, nnz).astype(np.uint8)
        arrays.update(centroids(rng, codes_bits, centroid_dtype))
    elif values == "int8":
        arrays["values"] = rng.integers(-127, 128, nnz).astype(np.int8)
        arrays["scale"] = rng.random(rows).astype(np.float32)
    else:
        arrays["values"] = dense[dense != 0].astype(values)
    return Tensor("w", (rows, cols), "csr", arrays, bits=codes_bits, huffman=huffman)


def centroids(rng, bits, dtype):
    k = 1 << bits
    if dtype == "int8":
        return {"centroids": np.linspace(-127, 127, k).astype(np.int8),
                "scale": np.array([0.01], np.float32)}
    return {"centroids": np.sort(rng.standard_normal(k)).astype(dtype)}


def codebook_tensor(rng, bits, rows=7, cols=13, huffman=False, centroid_dtype="float32", skew=False):
    if skew:  # mostly index 0: Huffman pays off
        codes = np.where(rng.random((rows, cols)) < 0.9, 0, rng.integers(0, 1 << bits, (rows, cols)))
    else:
        codes = rng.integers(0, 1 << bits, (rows, cols))
    arrays = {"codes": pack_bits(codes.astype(np.uint8), bits)}
    arrays.update(centroids(rng, bits, centroid_dtype))
    return Tensor("w", (rows, cols), "codebook", arrays, bits=bits, huffman=huffman)


def dense_tensor(rng, dtype, rows=9, cols=17, huffman=False):
    if dtype == "int8":
        values = rng.integers(-127, 128, (rows, cols)).astype(np.int8)
        values[0, 0], values[0, 1] = 127, -127
        return Tensor("w", (rows, cols), "dense",
                      {"values": values, "scale": rng.random(rows).astype(np.float32)}, huffman=huffman)
    return Tensor("w", (rows, cols), "dense",
                  {"values": rng.standard_normal((rows, cols)).astype(dtype)}, huffman=huffman)


def assert_same_graph(a: Graph, b: Graph):
    assert a.inputs == b.inputs and a.outputs == b.outputs
    assert a.nodes == b.nodes
    assert a.metadata == b.metadata
    assert set(a.tensors) == set(b.tensors)
    for name, t in a.tensors.items():
        u = b.tensors[name]
        assert (t.name, tuple(t.shape), t.encoding, t.bits, t.huffman) == \
               (u.name, tuple(u.shape), u.encoding, u.bits, u.huffman), name
        assert set(t.arrays) == set(u.arrays), name
        for key, array in t.arrays.items():
            loaded = u.arrays[key]
            assert loaded.dtype == array.dtype and loaded.shape == array.shape, (name, key)
            assert np.array_equal(loaded, array), (name, key)


def round_trip(graph, tmp_path):
    path = tmp_path / "model.edgerun"
    fmt.save(graph, path)
    loaded = fmt.load(path)
    assert_same_graph(graph, loaded)
    assert np.array_equal(graph.tensors["w"].to_dense(), loaded.tensors["w"].to_dense())
    return path, loaded


def from_mmap(array):
    """Whether array is a view of a memory-mapped file (numpy may put a
    memoryview between the array and the mmap)."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, mmap.mmap)


# ---------------------------------------------------------------------------
# round trips

@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_dense_round_trip(dtype, huffman, rng, tmp_path):
    round_trip(linear_graph(dense_tensor(rng, dtype, huffman=huffman)), tmp_path)


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("index", [np.uint16, np.uint32])
@pytest.mark.parametrize("values", ["float32", "float16", "int8"])
def test_csr_round_trip(values, index, huffman, rng, tmp_path):
    round_trip(linear_graph(csr_tensor(rng, index=index, values=values, huffman=huffman)), tmp_path)


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("centroid_dtype", ["float32", "float16", "int8"])
@pytest.mark.parametrize("bits", [2, 5])
def test_csr_codes_round_trip(bits, centroid_dtype, huffman, rng, tmp_path):
    t = csr_tensor(rng, codes_bits=bits, huffman=huffman, centroid_dtype=centroid_dtype)
    round_trip(linear_graph(t), tmp_path)


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("bits", range(1, 9))
def test_codebook_round_trip(bits, huffman, rng, tmp_path):
    round_trip(linear_graph(codebook_tensor(rng, bits, huffman=huffman, skew=True)), tmp_path)


@pytest.mark.parametrize("centroid_dtype", ["float16", "int8"])
def test_codebook_centroid_dtypes(centroid_dtype, rng, tmp_path):
    round_trip(linear_graph(codebook_tensor(rng, 4, centroid_dtype=centroid_dtype)), tmp_path)


def test_large_csr_with_huffman_uses_transforms(rng, tmp_path):
    """Big enough that Huffman pays: indices are stored as per-row deltas."""
    t = csr_tensor(rng, rows=300, cols=2000, index=np.uint16, codes_bits=4, huffman=True)
    t.arrays["codes"] = np.where(rng.random(t.arrays["codes"].size) < 0.8, 3,
                                 t.arrays["codes"]).astype(np.uint8)
    path, loaded = round_trip(linear_graph(t), tmp_path)
    streams = fmt.inspect(path)["tensors"]["w"]["streams"]
    assert streams["indices"]["huffman"]
    assert streams["indices"]["transform"] in ("delta-rows", "delta-rows-u8")
    assert streams["codes"]["huffman"] and streams["codes"]["length"] < t.arrays["codes"].nbytes
    assert not streams["centroids"]["huffman"]  # floats are never Huffman-coded
    assert streams["indptr"]["decoded_length"] == t.arrays["indptr"].nbytes


def test_huffman_is_skipped_when_it_does_not_pay(rng, tmp_path):
    t = codebook_tensor(rng, 8, rows=3, cols=5, huffman=True)  # 15 random bytes
    path, _ = round_trip(linear_graph(t), tmp_path)
    assert not fmt.inspect(path)["tensors"]["w"]["streams"]["codes"]["huffman"]


def test_csr_unsorted_and_empty(rng, tmp_path):
    """Delta-rows is modular: unsorted indices within a row survive; nnz = 0 too."""
    indices = np.array([5, 1, 1, 65535, 0, 7] * 400, np.uint16)
    indptr = np.array([0, 1200, 1200, 2400], np.uint32)
    t = Tensor("w", (3, 65536), "csr", {"indptr": indptr, "indices": indices,
                                       "values": np.ones(2400, np.float32)}, huffman=True)
    path, _ = round_trip(linear_graph(t, bias=False), tmp_path)
    assert fmt.inspect(path)["tensors"]["w"]["streams"]["indices"]["huffman"]
    empty = Tensor("w", (4, 6), "csr", {"indptr": np.zeros(5, np.uint32),
                                       "indices": np.zeros(0, np.uint32),
                                       "values": np.zeros(0, np.float32)}, huffman=True)
    round_trip(linear_graph(empty), tmp_path)


def test_graph_builder_round_trip(rng, tmp_path):
    b = GraphBuilder("x", features=8)
    b.linear(rng.standard_normal((16, 8)), rng.standard_normal(16), activation="relu")
    b.sigmoid()
    b.linear(rng.standard_normal((4, 16)))
    b.softmax()
    graph = b.build("probabilities")
    path = tmp_path / "m.edgerun"
    fmt.save(graph, path)
    assert_same_graph(graph, fmt.load(path))


def test_numpy_reference_backend_loads_huffman(rng, tmp_path, monkeypatch):
    t = codebook_tensor(rng, 2, rows=64, cols=256, huffman=True, skew=True)
    path = tmp_path / "m.edgerun"
    fmt.save(linear_graph(t), path)
    assert fmt.inspect(path)["tensors"]["w"]["streams"]["codes"]["huffman"]
    monkeypatch.setattr(_backend, "kernels", reference)
    assert_same_graph(linear_graph(t), fmt.load(path))


# ---------------------------------------------------------------------------
# zero copy, atomic save, inspect

def test_plain_streams_are_zero_copy_views(rng, tmp_path):
    path, loaded = round_trip(linear_graph(csr_tensor(rng, values="int8")), tmp_path)
    for name, array in loaded.tensors["w"].arrays.items():
        assert from_mmap(array), name
        assert not array.flags.writeable
        assert array.ctypes.data % 64 == 0, name  # sections are 64-byte aligned
    # two loads of the same stream read the same mapped bytes, not copies
    values = loaded.tensors["w"].arrays["values"]
    whole = np.frombuffer(values.base.base if isinstance(values.base, np.ndarray) else values.base, np.uint8)
    assert np.shares_memory(values, whole)


def test_huffman_streams_are_decoded_copies(rng, tmp_path):
    t = codebook_tensor(rng, 3, rows=64, cols=256, huffman=True, skew=True)
    path, loaded = round_trip(linear_graph(t), tmp_path)
    assert not from_mmap(loaded.tensors["w"].arrays["codes"])
    assert from_mmap(loaded.tensors["w"].arrays["centroids"])


def test_save_is_atomic(rng, tmp_path, monkeypatch):
    path = tmp_path / "model.edgerun"
    first = linear_graph(dense_tensor(rng, "float32"))
    fmt.save(first, path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        fmt.save(linear_graph(dense_tensor(rng, "float16")), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.edgerun"]  # no temp file left
    fmt.save(linear_graph(dense_tensor(rng, "int8")), path)
    assert fmt.load(path).tensors["w"].arrays["values"].dtype == np.int8


def test_save_refuses_invalid_graphs(rng, tmp_path):
    path = tmp_path / "m.edgerun"
    bad = dense_tensor(rng, "int8")
    bad.arrays["values"][2, 3] = -128
    with pytest.raises(edgerun.FormatError, match="-128"):
        fmt.save(linear_graph(bad), path)
    wide = Tensor("w", (2, 3), "dense", {"values": np.zeros((2, 3), np.float64)})
    with pytest.raises(edgerun.FormatError, match="float64"):
        fmt.save(linear_graph(wide), path)
    with pytest.raises(edgerun.FormatError, match="not JSON"):
        g = linear_graph(dense_tensor(rng, "float32"))
        g.metadata["object"] = object()
        fmt.save(g, path)
    assert not path.exists()


def test_inspect_reports_storage(rng, tmp_path):
    path, _ = round_trip(linear_graph(csr_tensor(rng, codes_bits=4, huffman=True)), tmp_path)
    info = fmt.inspect(path)
    assert info["version"] == "1.0" and info["file_bytes"] == path.stat().st_size
    assert info["data_offset"] % 64 == 0 and info["crc_ok"]
    w = info["tensors"]["w"]
    assert w["encoding"] == "csr" and w["bits"] == 4 and w["huffman"]
    assert set(w["streams"]) == {"indptr", "indices", "codes", "centroids"}
    assert info["nodes"] == [{"op": "Linear", "name": "fc"}]
    # a corrupted byte shows as a CRC failure, without raising
    data = bytearray(path.read_bytes())
    data[info["data_offset"] + w["streams"]["indptr"]["offset"]] ^= 1
    path.write_bytes(bytes(data))
    info = fmt.inspect(path)
    assert not info["crc_ok"] and not info["tensors"]["w"]["streams"]["indptr"]["crc_ok"]


# ---------------------------------------------------------------------------
# hostile files

def small_file(rng, tmp_path, name="small.edgerun"):
    """A small file with a Huffman CSR tensor (delta-rows), dense bias and int8."""
    t = csr_tensor(rng, rows=6, cols=300, index=np.uint16, codes_bits=2, huffman=True)
    t.arrays["indices"] = np.sort(t.arrays["indices"])  # keep it valid: sorted per row is fine
    _, indptr, indices = sparse(rng, 6, 300, density=0.5)
    t.arrays.update(indptr=indptr, indices=indices.astype(np.uint16),
                    codes=np.zeros(indices.size, np.uint8))
    extra = [Tensor("q", (3, 4), "dense", {"values": np.arange(12, dtype=np.int8).reshape(3, 4),
                                          "scale": np.ones(3, np.float32)})]
    path = tmp_path / name
    fmt.save(linear_graph(t, extra=extra), path)
    info = fmt.inspect(path)
    assert info["tensors"]["w"]["streams"]["indices"]["transform"] == "delta-rows-u8"  # the narrowing path meets every attack
    return path


def split(data: bytes):
    """(major, minor, header dict, data region bytes) of a file."""
    _, major, minor, length = struct.unpack_from("<8sHHQ", data)
    header = json.loads(fmt._inflate_header(data[20:20 + length]))
    start = (20 + length + 63) // 64 * 64
    return major, minor, header, data[start:]


def join(major, minor, header, region, raw_header=None):
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    preamble = struct.pack("<8sHHQ", b"EDGERUN\0", major, minor, len(text))
    pad = b"\0" * (-(20 + len(text)) % 64)
    return preamble + text + pad + region


def rewrite(path, mutate):
    """Apply mutate(header) to the JSON header, keep the data region as is."""
    major, minor, header, region = split(path.read_bytes())
    mutate(header)
    path.write_bytes(join(major, minor, header, region))


def refused(path, match=None, **kwargs):
    with pytest.raises(edgerun.FormatError, match=match):
        fmt.load(path, **kwargs)


def test_every_truncation_is_refused(rng, tmp_path):
    path = small_file(rng, tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.edgerun"
    for n in range(len(data)):
        cut.write_bytes(data[:n])
        with pytest.raises(edgerun.FormatError):
            fmt.load(cut)
        with pytest.raises(edgerun.FormatError):
            fmt.inspect(cut)


def test_appended_bytes_are_refused(rng, tmp_path):
    path = small_file(rng, tmp_path)
    path.write_bytes(path.read_bytes() + b"\0")
    refused(path, "data region")


def test_every_offset_and_length_off_by_one(rng, tmp_path):
    path = small_file(rng, tmp_path)
    original = path.read_bytes()
    _, _, header, _ = split(original)
    cases = [(t, s, key, delta) for t, tensor in header["tensors"].items()
             for s, stream in tensor["streams"].items()
             for key in ("offset", "length") for delta in (-1, 1, -64, 64)
             if stream[key] + delta >= 0]
    assert len(cases) > 20
    for t, s, key, delta in cases:
        path.write_bytes(original)

        def shift(h):
            h["tensors"][t]["streams"][s][key] += delta

        rewrite(path, shift)
        with pytest.raises(edgerun.FormatError):
            fmt.load(path)


@pytest.mark.parametrize("mutate, match", [
    (lambda h: h["tensors"]["w"].update(shape=[6, 10]), ">= cols = 10"),
    (lambda h: h["tensors"]["w"].update(shape=[7, 300]), "indptr"),
    (lambda h: h["tensors"]["b"].update(shape=[5]), "shape"),
    (lambda h: h["tensors"]["b"]["streams"]["values"].update(shape=[7]), "length|shape"),
    (lambda h: h["tensors"]["q"]["streams"]["values"].update(shape=[4, 3]), "shape"),
    (lambda h: h["tensors"]["q"]["streams"]["scale"].update(shape=[4]), "length|shape"),
    (lambda h: h["tensors"]["b"].update(shape=[2**62]), "outside|dimension"),
    (lambda h: h["tensors"]["b"]["streams"]["values"].update(shape=[2**62]), "outside|dimension"),
    (lambda h: h["tensors"]["b"].update(shape=[2**31 - 1] * 3), "elements"),
    (lambda h: h["tensors"]["b"].update(shape=[-6]), "outside"),
    (lambda h: h["tensors"]["b"].update(shape=[6.0]), "integer"),
    (lambda h: h["tensors"]["b"].update(shape=[True] * 6), "integer"),
    (lambda h: h["tensors"]["b"].update(shape=[1] * 9), "dimensions"),
    (lambda h: h["tensors"]["w"]["streams"]["indices"]["huffman"].update(decoded_length=10**12), "decoded"),
    (lambda h: h["tensors"]["w"]["streams"]["indices"]["huffman"].update(code_lengths="01" * 256), "over"),
    (lambda h: h["tensors"]["w"]["streams"]["indices"]["huffman"].update(code_lengths="zz" * 256), "hex"),
    (lambda h: h["tensors"]["w"]["streams"]["indices"]["huffman"].update(code_lengths="11" * 256), "0..16"),
    (lambda h: h["tensors"]["w"]["streams"]["indices"].update(transform="delta"), "transform"),
    (lambda h: h["tensors"]["w"]["streams"]["indices"].update(transform="rot13"), "transform"),
    (lambda h: h["tensors"]["w"]["streams"]["centroids"].update(dtype="float64"), "dtype"),
    (lambda h: h["tensors"]["w"]["streams"]["centroids"].update(dtype="object"), "dtype"),
    (lambda h: h["tensors"]["w"]["streams"]["centroids"].update(dtype="uint32"), "dtype"),
    (lambda h: h["tensors"]["w"]["streams"]["indptr"].update(dtype="int32"), "dtype"),
    (lambda h: h["tensors"]["w"].update(bits=0), "bits"),
    (lambda h: h["tensors"]["w"].update(bits=9), "bits"),
    (lambda h: h["tensors"]["w"].update(bits=3), "centroids"),
    (lambda h: h["tensors"]["w"].pop("bits"), "bits"),
    (lambda h: h["tensors"]["w"].update(encoding="coo"), "encoding"),
    (lambda h: h["tensors"]["w"].update(encoding="codebook"), "codes|shape|stream"),
    (lambda h: h["tensors"]["w"].update(huffman="yes"), "huffman"),
    (lambda h: h["tensors"]["q"]["streams"].pop("scale"), "scale|stream"),
    (lambda h: h["tensors"]["b"]["streams"].update(scale=h["tensors"]["q"]["streams"]["scale"]), "stream"),
    (lambda h: h["tensors"]["b"]["streams"]["values"].update(crc32=-1), "crc32"),
    (lambda h: h["tensors"]["b"]["streams"]["values"].update(crc32=h["tensors"]["b"]["streams"]
                                                               ["values"]["crc32"] ^ 1), "CRC"),
    (lambda h: h["tensors"]["b"]["streams"]["values"].update(
        offset=h["tensors"]["w"]["streams"]["centroids"]["offset"]), "breaks the layout"),
    (lambda h: h["tensors"].update({"": h["tensors"]["b"]}), "name"),
    (lambda h: h["graph"]["nodes"][0].update(op="Conv"), "op"),
    (lambda h: h["graph"]["nodes"][0].update(inputs=["x", "nothing", "b"]), "nothing"),
    (lambda h: h["graph"]["nodes"][0].update(inputs=["x", "w", "x"]), "constant"),
    (lambda h: h["graph"]["nodes"][0].update(inputs=["x"]), "Linear"),
    (lambda h: h["graph"]["nodes"][0].update(inputs=["x", "b"]), "2-D"),
    (lambda h: h["graph"]["nodes"][0].update(inputs=["x", "w", "q"]), "bias"),
    (lambda h: h["graph"]["nodes"][0].update(inputs="x"), "list"),
    (lambda h: h["graph"]["nodes"][0].update(attrs=[]), "object"),
    (lambda h: h["graph"]["outputs"][0].update(name="z"), "never produced"),
    (lambda h: h["graph"]["inputs"][0].update(dtype="object"), "dtype"),
    (lambda h: h["graph"]["inputs"][0].update(shape=[None, -1]), "outside"),
    (lambda h: h["graph"].update(nodes={}), "list"),
    (lambda h: h.update(metadata=[]), "object"),
    (lambda h: h.update(extra=1), "unknown key"),
    (lambda h: h["tensors"]["b"]["streams"]["values"].update(extra=1), "unknown key"),
])
def test_lying_headers_are_refused(mutate, match, rng, tmp_path):
    path = small_file(rng, tmp_path)
    rewrite(path, mutate)
    refused(path, match)


@pytest.mark.parametrize("key", [
    ("graph",), ("tensors",), ("metadata",), ("graph", "inputs"), ("graph", "outputs"),
    ("graph", "nodes"), ("tensors", "w", "shape"), ("tensors", "w", "encoding"),
    ("tensors", "w", "streams"), ("tensors", "w", "streams", "indptr"),
    ("tensors", "w", "streams", "codes"), ("tensors", "w", "streams", "indices", "huffman"),
    ("tensors", "b", "streams", "values", "dtype"), ("tensors", "b", "streams", "values", "shape"),
    ("tensors", "b", "streams", "values", "offset"), ("tensors", "b", "streams", "values", "length"),
    ("tensors", "b", "streams", "values", "crc32"), ("tensors", "b"),
])
def test_missing_keys_are_refused(key, rng, tmp_path):
    path = small_file(rng, tmp_path)

    def drop(h):
        for k in key[:-1]:
            h = h[k]
        del h[key[-1]]

    rewrite(path, drop)
    refused(path)


def test_missing_node_keys_are_refused(rng, tmp_path):
    path = small_file(rng, tmp_path)
    original = path.read_bytes()
    for key in ("op", "name", "inputs", "outputs", "attrs"):
        path.write_bytes(original)
        rewrite(path, lambda h: h["graph"]["nodes"][0].pop(key))
        refused(path, repr(key))


def write_raw(graph, path, monkeypatch):
    """Save without the writer's content checks, to forge a bad but CRC-valid file."""
    with monkeypatch.context() as m:
        m.setattr(fmt, "_check_content", lambda *args: None)
        fmt.save(graph, path)


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("corrupt, match", [
    (lambda a: a["indices"].__setitem__(-1, 300), "index 300 >= cols = 300"),
    (lambda a: a["indices"].__setitem__(0, 65535), ">= cols"),
    (lambda a: a["codes"].__setitem__(3, 4), "2\\*\\*bits"),
    (lambda a: a["indptr"].__setitem__(2, a["indptr"][1] - 1 if a["indptr"][1] else 5), "indptr"),
    (lambda a: a["indptr"].__setitem__(0, 1), "start at 0"),
    (lambda a: a["indptr"].__setitem__(-1, a["indptr"][-1] - 1), "nnz"),
    (lambda a: a["centroids"].__setitem__(0, -128), "-128"),
    (lambda a: a["scale"].__setitem__(0, np.nan), "NaN"),
])
def test_bad_csr_content_is_refused(corrupt, match, huffman, rng, tmp_path, monkeypatch):
    t = csr_tensor(rng, rows=6, cols=300, codes_bits=2, centroid_dtype="int8", huffman=huffman)
    t.arrays = {k: v.copy() for k, v in t.arrays.items()}
    corrupt(t.arrays)
    path = tmp_path / "bad.edgerun"
    write_raw(linear_graph(t), path, monkeypatch)
    refused(path, match)


@pytest.mark.parametrize("encoding", ["dense", "csr"])
def test_minus_128_values_are_refused(encoding, rng, tmp_path, monkeypatch):
    t = dense_tensor(rng, "int8") if encoding == "dense" else csr_tensor(rng, values="int8")
    t.arrays["values"].reshape(-1)[-1] = -128
    path = tmp_path / "bad.edgerun"
    write_raw(linear_graph(t), path, monkeypatch)
    refused(path, "-128")


@pytest.mark.parametrize("bits", [1, 3, 5, 7])
def test_codebook_padding_bits_must_be_zero(bits, rng, tmp_path, monkeypatch):
    t = codebook_tensor(rng, bits, rows=4, cols=13)  # 13 * bits is never a multiple of 8 here
    assert 13 * bits % 8
    t.arrays["codes"][2, -1] |= 0x80
    path = tmp_path / "bad.edgerun"
    write_raw(linear_graph(t), path, monkeypatch)
    refused(path, "padding")


def test_crc_mismatch(rng, tmp_path):
    path = small_file(rng, tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x10  # the top byte of q's last float32 scale: 1.0 becomes 2**-32
    path.write_bytes(bytes(data))
    refused(path, "CRC")
    scale = fmt.load(path, verify_crc=False).tensors["q"].arrays["scale"]
    assert scale[-1] == np.float32(2.0**-32) and scale[0] == 1


def test_versions(rng, tmp_path):
    path = small_file(rng, tmp_path)
    major, minor, header, region = split(path.read_bytes())
    path.write_bytes(join(2, 0, header, region))
    refused(path, "version 2.0")
    path.write_bytes(join(0, 9, header, region))
    refused(path, "version 0.9")
    # a newer minor version is read, and the keys it added are ignored
    header["future"] = {"anything": 1}
    header["tensors"]["b"]["streams"]["values"]["future"] = True
    path.write_bytes(join(1, 7, header, region))
    loaded = fmt.load(path)
    assert fmt.inspect(path)["version"] == "1.7"
    assert "b" in loaded.tensors
    path.write_bytes(join(1, 0, header, region))
    refused(path, "unknown key")


@pytest.mark.parametrize("length", [2**64 - 1, 2**63, 16 * 2**20 + 1, 10**9])
def test_oversized_header_length(length, rng, tmp_path):
    path = small_file(rng, tmp_path)
    data = bytearray(path.read_bytes())
    data[12:20] = struct.pack("<Q", length)
    path.write_bytes(bytes(data))
    refused(path, "header length")


def test_header_length_inside_the_file_but_wrong(rng, tmp_path):
    path = small_file(rng, tmp_path)
    data = bytearray(path.read_bytes())
    real = struct.unpack_from("<Q", data, 12)[0]
    for wrong in (0, 1, real - 1, real + 1, real + 64):
        data[12:20] = struct.pack("<Q", wrong)
        path.write_bytes(bytes(data))
        refused(path)


@pytest.mark.parametrize("raw", [
    b"", b"{", b"[]", b"null", b"\xff\xfe{}", b'{"graph": NaN}', b'{"a": 1, "a": 2}',
    b"[" * 100000 + b"]" * 100000, b'{"graph": Infinity}', b"\x00" * 40, b"1" * 5000,
])
def test_bad_json(raw, rng, tmp_path):
    path = small_file(rng, tmp_path)
    major, minor, header, region = split(path.read_bytes())
    path.write_bytes(join(major, minor, header, region, raw_header=raw))
    refused(path)


def test_bad_magic_and_tiny_files(rng, tmp_path):
    path = small_file(rng, tmp_path)
    data = path.read_bytes()
    path.write_bytes(b"GGUF\0\0\0\0" + data[8:])
    refused(path, "magic")
    path.write_bytes(b"")
    refused(path, "shorter")
    with pytest.raises(FileNotFoundError):
        fmt.load(tmp_path / "missing.edgerun")


def test_random_byte_flips_never_crash(rng, tmp_path):
    """Whatever byte changes, load either succeeds or raises FormatError."""
    path = small_file(rng, tmp_path)
    original = path.read_bytes()
    for _ in range(300):
        data = bytearray(original)
        for position in rng.integers(0, len(data), size=int(rng.integers(1, 4))):
            data[position] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data))
        try:
            fmt.load(path, verify_crc=bool(rng.integers(0, 2)))
        except edgerun.FormatError:
            pass


def test_corrupt_huffman_payload_without_crc(rng, tmp_path):
    """With the CRC check off, a damaged Huffman stream is still caught by the
    decoder or the CSR invariants -- never read out of bounds."""
    path = small_file(rng, tmp_path)
    original = path.read_bytes()
    info = fmt.inspect(path)
    s = info["tensors"]["w"]["streams"]["indices"]
    start = info["data_offset"] + s["offset"]
    outcomes = set()
    for i in range(s["length"]):
        data = bytearray(original)
        data[start + i] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            fmt.load(path, verify_crc=False)
            outcomes.add("loaded")
        except edgerun.FormatError:
            outcomes.add("refused")
    assert "refused" in outcomes


def test_save_refuses_what_load_would_refuse(rng, tmp_path):
    path = tmp_path / "m.edgerun"
    g = linear_graph(dense_tensor(rng, "float32"))
    g.inputs[0].dtype = "complex128"
    with pytest.raises(edgerun.FormatError, match="dtype"):
        fmt.save(g, path)
    g = linear_graph(dense_tensor(rng, "float32"))
    g.metadata = ["not", "an", "object"]
    with pytest.raises(edgerun.FormatError, match="metadata"):
        fmt.save(g, path)
    assert not path.exists()


@pytest.mark.parametrize("cols, transform", [(300, "delta-rows-u8"), (65536, "delta-rows")])
def test_small_index_deltas_are_stored_as_bytes(cols, transform, rng, tmp_path):
    """A u16 delta always < 256 is stored in one byte (Huffman cannot go below one
    bit per stored byte); one delta >= 256 keeps the full width."""
    rows, per_row = 200, 20
    indices = np.sort(np.stack([rng.choice(cols, per_row, replace=False) for _ in range(rows)]), axis=1)
    if transform == "delta-rows":
        indices[:, -1] = cols - 1  # a jump of at least 256 somewhere
        indices[:, 0] = 0
    t = Tensor("w", (rows, cols), "csr",
               {"indptr": (np.arange(rows + 1) * per_row).astype(np.uint32),
                "indices": indices.reshape(-1).astype(np.uint16),
                "values": rng.standard_normal(rows * per_row).astype(np.float32)}, huffman=True)
    path, loaded = round_trip(linear_graph(t, bias=False), tmp_path)
    stream = fmt.inspect(path)["tensors"]["w"]["streams"]["indices"]
    assert stream["transform"] == transform
    assert stream["decoded_length"] == rows * per_row * (1 if transform.endswith("u8") else 2)
    assert loaded.tensors["w"].arrays["indices"].dtype == np.uint16


def test_header_is_deflated_and_a_deflate_bomb_is_refused(rng, tmp_path):
    path = small_file(rng, tmp_path)
    data = path.read_bytes()
    _, _, length = struct.unpack_from("<HHQ", data, 8)
    assert data[20:21] == b"\0"  # deflated: the stream table repeats its keys
    assert length < len(json.dumps(split(data)[2]))
    bomb = b"\0" + zlib.compress(b"{" + b" " * (fmt.MAX_HEADER_BYTES + 10) + b"}")
    path.write_bytes(join(1, 0, None, b"", raw_header=bomb))
    refused(path, "limit")
    for broken in (b"\0" + zlib.compress(b"{}")[:-3], b"\0not zlib", b"\0" + zlib.compress(b"{}") + b"x"):
        path.write_bytes(join(1, 0, None, b"", raw_header=broken))
        refused(path, "deflated header")


def test_huffman_streams_pack_without_alignment_padding(rng, tmp_path):
    t = csr_tensor(rng, rows=300, cols=2000, index=np.uint16, codes_bits=4, huffman=True)
    path, _ = round_trip(linear_graph(t), tmp_path)
    streams = fmt.inspect(path)["tensors"]["w"]["streams"]
    coded = [s for s in streams.values() if s["huffman"]]
    assert coded and any(s["offset"] % 64 for s in coded)
    assert all(s["offset"] % 64 == 0 for s in streams.values() if not s["huffman"])
