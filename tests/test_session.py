"""The runtime end to end: every weight encoding runs through its kernel, matches
the float model within the encoding's error, and matches the numpy backend bit
for bit on integer paths; inputs are checked; threads give identical results."""
import threading

import numpy as np
import pytest

import edgerun
from edgerun import reference
from edgerun.graph import GraphBuilder, Tensor
from edgerun.packing import pack_bits
from edgerun.runtime.session import Session


def mlp(rng, sizes=(37, 70, 19), softmax=False):
    builder = GraphBuilder("x", features=sizes[0])
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.standard_normal((fan_out, fan_in)).astype(np.float32) / np.sqrt(fan_in)
        b = rng.standard_normal(fan_out).astype(np.float32) * 0.1
        builder.linear(w, b, activation="relu" if i < len(sizes) - 2 else None, name=f"fc{i + 1}")
    if softmax:
        builder.softmax()
    return builder.build("y")


def float_forward(graph, x):
    for node in graph.nodes:
        if node.op == "Linear":
            w = graph.tensors[node.inputs[1]].to_dense()
            x = x @ w.T + graph.tensors[node.inputs[2]].to_dense()
            if node.attrs.get("activation") == "relu":
                x = np.maximum(x, 0)
        elif node.op == "Softmax":
            e = np.exp(x - x.max(axis=1, keepdims=True))
            x = e / e.sum(axis=1, keepdims=True)
    return x


def int8_rows(w):
    scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    return np.rint(w / scale[:, None]).clip(-127, 127).astype(np.int8), scale


def to_csr(w, rng, keep=0.3, index_dtype=np.uint16):
    mask = rng.random(w.shape) < keep
    mask[0] = False  # an empty row
    rows, cols = np.nonzero(mask)
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.uint32)
    return indptr, cols.astype(index_dtype), w[rows, cols]


def to_bcsr4(w, rng, keep=0.3):
    """Aligned 1x4 blocks (columns 4g .. 4g+3) kept at random; row 0 empty.
    Columns past the last whole group (cols % 4) stay zero."""
    rows, cols = w.shape
    groups = rng.random((rows, cols // 4)) < keep
    groups[0] = False
    block_rows, g = np.nonzero(groups)
    indptr = np.concatenate([[0], np.cumsum(groups.sum(axis=1))]).astype(np.uint32)
    columns = 4 * g[:, None] + np.arange(4)
    return indptr, (4 * g).astype(np.uint16), w[block_rows[:, None], columns].reshape(-1)


def encode(tensor, how, rng):
    """Re-encode a float weight tensor the way the compressor would."""
    w = tensor.to_dense()
    rows, cols = w.shape
    name = tensor.name
    if how == "dense-f16":
        return Tensor(name, w.shape, "dense", {"values": w.astype(np.float16)})
    if how == "dense-i8":
        values, scale = int8_rows(w)
        return Tensor(name, w.shape, "dense", {"values": values, "scale": scale})
    if how.startswith("csr"):
        indptr, indices, values = to_csr(w, rng, index_dtype=np.uint32 if "u32" in how else np.uint16)
        arrays = {"indptr": indptr, "indices": indices}
        if "i8" in how:
            scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
            scale[scale == 0] = 1
            row_of = np.repeat(np.arange(rows), np.diff(indptr.astype(np.int64)))
            arrays["values"] = np.rint(values / scale[row_of]).clip(-127, 127).astype(np.int8)
            arrays["scale"] = scale
        elif "codes" in how:
            arrays["codes"] = rng.integers(0, 16, len(values)).astype(np.uint8)
            if "s8" in how:
                arrays["centroids"] = np.linspace(-127, 127, 16).round().astype(np.int8)
                arrays["scale"] = np.array([0.003], np.float32)
            else:
                arrays["centroids"] = np.linspace(-0.4, 0.4, 16).astype(np.float32)
        else:
            arrays["values"] = values.astype(np.float32)
        return Tensor(name, w.shape, "csr", arrays, bits=4 if "codes" in how else None)
    if how.startswith("bcsr4"):
        indptr, indices, values = to_bcsr4(w, rng)
        arrays = {"indptr": indptr, "indices": indices}
        if "i8" in how:
            scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
            row_of = np.repeat(np.repeat(np.arange(rows), np.diff(indptr.astype(np.int64))), 4)
            arrays["values"] = np.rint(values / scale[row_of]).clip(-127, 127).astype(np.int8)
            arrays["scale"] = scale
        else:
            arrays["values"] = values.astype(np.float16 if "f16" in how else np.float32)
        return Tensor(name, w.shape, "bcsr4", arrays)
    if how.startswith("codebook"):
        bits = int(how.split("-")[1])
        codes = rng.integers(0, 1 << bits, w.shape).astype(np.uint8)
        if how.endswith("s8"):
            centroids = np.linspace(-127, 127, 1 << bits).round().astype(np.int8)
            arrays = {"centroids": centroids, "scale": np.array([0.002], np.float32)}
        else:
            arrays = {"centroids": np.linspace(-0.3, 0.3, 1 << bits).astype(np.float32)}
        arrays["codes"] = pack_bits(codes, bits)
        return Tensor(name, w.shape, "codebook", arrays, bits=bits)
    raise AssertionError(how)


ENCODINGS = {
    "dense-f32": "blas", "dense-f16": "blas", "dense-i8": "gemm_s8",
    "csr-f32": "spmm_csr_f32", "csr-f32-u32": "spmm_csr_f32", "csr-i8": "spmm_csr_s8",
    "csr-codes-f32": "spmm_csr_f32", "csr-codes-s8": "spmm_csr_s8",
    "bcsr4-f32": "spmm_bcsr4_f32", "bcsr4-f16": "spmm_bcsr4_f32", "bcsr4-i8": "spmm_bcsr4_s8",
    "codebook-3-f32": "codebook_f32", "codebook-4-s8": "codebook_s8",
    "codebook-2-s8": "codebook_s8", "codebook-6-s8": "gemm_s8",
}


def encoded_graph(how, rng):
    graph = mlp(rng)
    if how != "dense-f32":
        for node, tensor in list(graph.weights()):
            graph.tensors[tensor.name] = encode(tensor, how, rng)
    return graph


@pytest.mark.parametrize("how", sorted(ENCODINGS))
@pytest.mark.parametrize("batch", [1, 5])
def test_each_encoding_runs_its_kernel_and_matches_float(how, batch, rng):
    graph = encoded_graph(how, rng)
    session = Session(graph)
    assert {kind for _, kind in session.layers} == {ENCODINGS[how]}
    x = rng.standard_normal((batch, 37)).astype(np.float32)
    y = session.run(x)
    expected = float_forward(graph, x)
    assert y.shape == (batch, 19) and y.dtype == np.float32
    tolerance = 1e-4 if ENCODINGS[how] in ("blas", "spmm_csr_f32", "spmm_bcsr4_f32",
                                           "codebook_f32") else 0.05
    assert np.abs(y - expected).max() <= tolerance * (1 + np.abs(expected).max())


@pytest.mark.parametrize("how", [h for h, k in sorted(ENCODINGS.items()) if k.endswith("s8")])
def test_integer_paths_match_the_numpy_backend_bit_for_bit(how, rng):
    graph = encoded_graph(how, rng)
    x = rng.standard_normal((3, 37)).astype(np.float32)
    fast = Session(graph).run(x)
    twin = Session(graph, kernels=reference).run(x)
    assert np.array_equal(fast.view(np.uint32), twin.view(np.uint32))


@pytest.mark.parametrize("how", sorted(ENCODINGS))
def test_linear_on_token_sequences_runs_per_token(how, rng):
    """[batch, seq, features] (a transformer's activations) goes through the same
    kernels as the [batch*seq, features] matrix, and keeps its leading dims."""
    graph = encoded_graph(how, rng)
    tokens = rng.standard_normal((2, 3, 37)).astype(np.float32)
    flat = Session(graph).run(tokens.reshape(6, 37))
    graph.inputs[0].shape = (None, None, 37)
    y = Session(graph).run(tokens)
    assert y.shape == (2, 3, 19)
    assert np.array_equal(y.reshape(6, 19), flat)


def test_dict_in_dict_out_and_softmax(rng):
    session = Session(mlp(rng, softmax=True))
    x = rng.standard_normal((4, 37)).astype(np.float32)
    out = session.run({"x": x})
    assert set(out) == {"y"}
    assert np.allclose(out["y"].sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(out["y"], session.run(x))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 36), np.float32), "expects float32 [N, 37], got float32 [2, 36]"),
    (np.zeros((2, 37), np.float64), "expects float32 [N, 37], got float64 [2, 37]"),
    (np.zeros(37, np.float32), "expects float32 [N, 37], got float32 [37]"),
])
def test_wrong_input_names_the_expected_shape(bad, message, rng):
    with pytest.raises(edgerun.ShapeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Session(mlp(rng)).run(bad)


def test_unknown_and_missing_inputs(rng):
    session = Session(mlp(rng))
    with pytest.raises(edgerun.ShapeError, match="unknown input"):
        session.run({"z": np.zeros((1, 37), np.float32)})
    with pytest.raises(edgerun.ShapeError, match="missing input 'x'"):
        session.run({})


def test_empty_batch(rng):
    y = Session(encoded_graph("dense-i8", rng)).run(np.zeros((0, 37), np.float32))
    assert y.shape == (0, 19)


@pytest.mark.parametrize("how", ["dense-i8", "csr-i8", "bcsr4-i8", "bcsr4-f32", "codebook-4-s8",
                                 "codebook-3-f32"])
def test_threads_inside_and_across_sessions_are_bit_identical(how, rng):
    graph = mlp(rng, sizes=(64, 300, 100))
    for node, tensor in list(graph.weights()):
        graph.tensors[tensor.name] = encode(tensor, how, rng)
    x = rng.standard_normal((6, 64)).astype(np.float32)
    serial = Session(graph).run(x)
    with Session(graph, num_threads=3) as threaded:
        assert np.array_equal(threaded.run(x).view(np.uint32), serial.view(np.uint32))
        results, errors = [], []

        def worker():
            try:
                for _ in range(50):
                    results.append(threaded.run(x))
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert len(results) == 400
    assert all(np.array_equal(r.view(np.uint32), serial.view(np.uint32)) for r in results)


def test_bad_num_threads(rng):
    with pytest.raises(edgerun.EdgerunError, match="num_threads"):
        Session(mlp(rng), num_threads=0)


def test_profile_times_every_step_and_leaves_the_results_alone(rng):
    graph = encoded_graph("dense-i8", rng)
    graph_softmax = mlp(rng, softmax=True)
    for g in (graph, graph_softmax):
        session = Session(g)
        x = rng.standard_normal((3, 37)).astype(np.float32)
        before = session.run(x)
        steps = session.profile(x, runs=3)
        assert [s["node"] for s in steps] == [node.name for node in g.nodes]
        assert [s["op"] for s in steps] == [node.op for node in g.nodes]
        assert [(s["node"], s["kind"]) for s in steps if s["kind"]] == session.layers
        assert all(0 < s["seconds"] <= s["median"] for s in steps)
        assert np.array_equal(session.run(x).view(np.uint32), before.view(np.uint32))


def test_profile_of_a_transformer_names_its_fused_steps():
    """A score chain is one step under its Softmax, sibling Linears one under the first."""
    pytest.importorskip("torch")
    from test_onnx_transformer import bert_export, bert_feeds

    graph = edgerun.compress(edgerun.import_onnx(bert_export(False, 17)), quantize="int8").graph
    session = Session(graph)
    feeds = bert_feeds(2, 9, seed=1)
    before = session.run(dict(feeds))["y"]
    steps = session.profile(feeds, runs=2)
    assert [s["node"] for s in steps] == [node.name for node, _, _ in session._steps]
    ops = [s["op"] for s in steps]
    assert ops.count("Softmax") == ops.count("Gelu") == 2     # the test BERT's two layers
    assert len(steps) < len(graph.nodes)          # the glue the plan fused is in no step
    assert {s["kind"] for s in steps if s["op"] == "Linear"} == {"gemm_s8"}
    np.testing.assert_array_equal(session.run(dict(feeds))["y"], before)


@pytest.mark.parametrize("runs", [0, -1, 1.5, True])
def test_profile_refuses_a_bad_run_count(runs, rng):
    with pytest.raises(edgerun.EdgerunError, match="runs must be a positive integer"):
        Session(mlp(rng)).profile(np.zeros((1, 37), np.float32), runs=runs)


def test_profile_checks_its_input_and_batch_like_run(rng):
    session = Session(mlp(rng), max_batch_rows=4)
    with pytest.raises(edgerun.ShapeError, match="expects"):
        session.profile(np.zeros((2, 36), np.float32))
    with pytest.raises(edgerun.ShapeError, match="max_batch_rows = 4"):
        session.profile(np.zeros((5, 37), np.float32))
