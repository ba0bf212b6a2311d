"""Bad inputs at the API: each has a defined behaviour (docs/SECURITY.md).

    wrong dtype / rank / feature size    ShapeError naming the expected dtype and shape
    non-contiguous, read-only arrays     accepted (copied when needed; never written)
    NaN / Inf                            int8 layers: NonFiniteError naming the layer;
                                         float layers: propagate like numpy
    empty batch                          an empty output of the right shape
    huge batch                           runs in chunks of max_batch_rows rows: bounded
                                         intermediates, same results
    K > 131072 on an int8 path           ShapeError at plan time naming the layer
    compressor options out of range      OptionError before any work
"""
import os

import numpy as np
import pytest

import edgerun
from edgerun import _backend, format as fmt, reference
from edgerun.graph import Graph, GraphBuilder, Node, Tensor, ValueInfo
from edgerun.runtime import ops
from edgerun.runtime.session import Session
from tests.test_session import encoded_graph, mlp

INT8 = ["dense-i8", "csr-i8", "csr-codes-s8", "codebook-4-s8", "codebook-6-s8"]
FLOAT = ["dense-f32", "dense-f16", "csr-f32", "csr-codes-f32", "codebook-3-f32"]


@pytest.fixture(params=INT8 + FLOAT)
def how(request):
    return request.param


def x_for(rng, rows=5, features=37):
    return rng.standard_normal((rows, features)).astype(np.float32)


# ---------------------------------------------------------------------------
# dtype, rank, size

@pytest.mark.parametrize("bad, got", [
    (np.zeros((3, 37), np.float64), "float64 [3, 37]"),
    (np.zeros((3, 37), np.int8), "int8 [3, 37]"),
    (np.zeros((3, 37), np.float16), "float16 [3, 37]"),
    (np.zeros((3, 37), bool), "bool [3, 37]"),
    (np.zeros((3, 1, 37), np.float32), "float32 [3, 1, 37]"),
    (np.zeros((37,), np.float32), "float32 [37]"),
    (np.float32(1.0), "float32 []"),
    (np.zeros((3, 38), np.float32), "float32 [3, 38]"),
    (np.zeros((3, 0), np.float32), "float32 [3, 0]"),
])
def test_wrong_dtype_rank_and_size_name_what_is_expected(bad, got, how, rng):
    session = Session(encoded_graph(how, rng))
    with pytest.raises(edgerun.ShapeError) as error:
        session.run(bad)
    assert "'x' expects float32 [N, 37]" in str(error.value) and got in str(error.value)


def test_objects_and_strings_are_shape_errors(rng):
    session = Session(mlp(rng))
    for bad in (["a", "b"], np.array([object()]), {"x": "text"}):
        with pytest.raises(edgerun.ShapeError, match="expects float32"):
            session.run(bad)


def test_a_python_list_of_float32_rows_is_refused_as_float64(rng):
    """np.asarray of Python floats is float64: refused, not silently cast."""
    with pytest.raises(edgerun.ShapeError, match="got float64"):
        Session(mlp(rng)).run([[0.0] * 37])


# ---------------------------------------------------------------------------
# memory layout

def test_non_contiguous_and_read_only_inputs_work(how, rng):
    session = Session(encoded_graph(how, rng))
    base = x_for(rng, rows=12, features=74)
    expected = session.run(np.ascontiguousarray(base[::2, ::2]))
    strided = base[::2, ::2]  # both axes strided
    assert not strided.flags.c_contiguous
    assert np.array_equal(session.run(strided), expected)
    fortran = np.asfortranarray(base[::2, ::2])
    assert np.array_equal(session.run(fortran), expected)
    frozen = np.ascontiguousarray(base[::2, ::2])
    frozen.flags.writeable = False
    assert np.array_equal(session.run(frozen), expected)
    before = base.copy()
    session.run(strided)
    assert np.array_equal(base, before)  # inputs are never written


def test_unaligned_input_works(rng):
    """A float32 view starting 1 byte into a buffer (unaligned for SIMD loads)."""
    session = Session(encoded_graph("dense-i8", rng))
    x = x_for(rng, rows=3)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    raw[1:] = x.view(np.uint8).ravel()
    unaligned = raw[1:].view(np.float32).reshape(3, 37)
    assert np.array_equal(session.run(unaligned), session.run(x))


# ---------------------------------------------------------------------------
# NaN and Inf

@pytest.mark.parametrize("how", INT8)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_on_int8_layers_names_the_layer(how, bad, rng):
    session = Session(encoded_graph(how, rng))
    x = x_for(rng)
    x[2, 5] = bad
    with pytest.raises(edgerun.NonFiniteError, match=r"layer 'fc1' \((gemm|spmm_csr|codebook)_s8\).*NaN or Inf"):
        session.run(x)


def stored(tensor):
    """Which weights a layer stores (and so multiplies): CSR skips the rest."""
    if tensor.encoding != "csr":
        return np.ones(tensor.shape, bool)
    mask = np.zeros(tensor.shape, bool)
    counts = np.diff(tensor.arrays["indptr"].astype(np.int64))
    mask[np.repeat(np.arange(tensor.shape[0]), counts), tensor.arrays["indices"].astype(np.int64)] = True
    return mask


@pytest.mark.parametrize("how", FLOAT)
def test_nan_on_float_layers_propagates_like_numpy(how, rng):
    """A NaN reaches every output that multiplies it by a stored weight (like
    numpy's x @ W.T; sparse layers do not multiply the weights they do not
    store); other rows are exactly what they are without it."""
    graph = encoded_graph(how, rng)
    session = Session(graph)
    x = x_for(rng)
    clean = session.run(x)
    x[2, :] = np.nan
    y = session.run(x)
    reach = np.ones(37, bool)
    for _, weight in graph.weights():
        reach = (stored(weight) & reach).any(axis=1)
    assert np.array_equal(np.isnan(y[2]), reach)
    assert reach.sum() > 10
    keep = [0, 1, 3, 4]
    assert np.array_equal(y[keep], clean[keep])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_inf_on_dense_float_layers_is_nan_or_inf_like_numpy(rng):
    graph = encoded_graph("dense-f32", rng)
    x = x_for(rng)
    x[1, 0] = np.inf
    y = Session(graph).run(x)
    assert not np.isfinite(y[1]).all()
    assert np.isfinite(np.delete(y, 1, axis=0)).all()


# ---------------------------------------------------------------------------
# batch sizes

def test_empty_batch_gives_an_empty_output(how, rng):
    y = Session(encoded_graph(how, rng)).run(np.zeros((0, 37), np.float32))
    assert y.shape == (0, 19) and y.dtype == np.float32


def test_huge_batch_runs_in_bounded_chunks(how, rng, monkeypatch):
    graph = encoded_graph(how, rng)
    x = x_for(rng, rows=1000)
    whole = Session(graph, max_batch_rows=4096).run(x)
    seen = []
    call = ops.LinearStep.__call__

    def spy(self, xs, pool=None):
        seen.append(xs.shape[0])
        return call(self, xs, pool)

    monkeypatch.setattr(ops.LinearStep, "__call__", spy)
    chunked = Session(graph, max_batch_rows=64).run(x)
    assert max(seen) == 64 and sum(seen) == 1000 * 2  # two layers, 16 chunks of <= 64 rows
    assert chunked.shape == whole.shape
    if how in INT8 or (_backend.name == "c" and how.startswith(("csr", "codebook"))):
        assert np.array_equal(chunked, whole)  # our kernels: rows are independent, bit for bit
    else:
        np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)  # BLAS may block differently


def test_chunking_keeps_dict_outputs_and_softmax(rng):
    graph = mlp(rng, softmax=True)
    x = x_for(rng, rows=300)
    whole = Session(graph).run({"x": x})
    chunked = Session(graph, max_batch_rows=7).run({"x": x})
    assert set(chunked) == {"y"}
    np.testing.assert_allclose(chunked["y"], whole["y"], rtol=1e-5, atol=1e-7)


def test_graphs_that_mix_rows_are_not_chunked(rng):
    """A Reshape that folds the batch dimension must see the whole batch."""
    builder = GraphBuilder("x", features=4)
    builder.linear(np.eye(4, dtype=np.float32))
    graph = builder.build("h")
    graph.nodes.append(Node("Reshape", "fold", ["h"], ["y"], {"shape": [-1]}))
    graph.outputs = [ValueInfo("y", (None,))]
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    y = Session(graph, max_batch_rows=3).run(x)
    assert np.array_equal(y, x.ravel())


def test_softmax_over_a_rank_1_batch_is_not_chunked():
    """For a rank-1 input the last axis IS the batch: it must see all of it."""
    graph = GraphBuilder("x", shape=(None,))
    graph.softmax()
    graph = graph.build("y")
    x = np.linspace(-1, 1, 10, dtype=np.float32)
    y = Session(graph, max_batch_rows=3).run(x)
    assert y.shape == (10,) and y.sum() == pytest.approx(1, rel=1e-6)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "64"])
def test_bad_max_batch_rows(bad, rng):
    with pytest.raises(edgerun.EdgerunError, match="max_batch_rows"):
        Session(mlp(rng), max_batch_rows=bad)


def test_op_errors_inside_the_graph_are_shape_errors(rng):
    """A Reshape the input cannot take: ShapeError naming the node, not numpy's ValueError."""
    builder = GraphBuilder("x", features=4)
    builder.linear(np.eye(4, dtype=np.float32))
    graph = builder.build("h")
    graph.nodes.append(Node("Reshape", "bad_reshape", ["h"], ["y"], {"shape": [0, 3]}))
    graph.outputs = [ValueInfo("y", (None, 3))]
    with pytest.raises(edgerun.ShapeError, match="node 'bad_reshape' \\(Reshape\\)"):
        Session(graph).run(np.zeros((2, 4), np.float32))


# ---------------------------------------------------------------------------
# int32 accumulator overflow

K_BIG = reference.MAX_K_S8 + 1


def one_layer(weight):
    rows, cols = weight.shape
    return Graph(inputs=[ValueInfo("x", (None, cols))], outputs=[ValueInfo("y", (None, rows))],
                 nodes=[Node("Linear", "wide", ["x", "w"], ["y"], {})], tensors={"w": weight})


@pytest.mark.parametrize("k, ok", [(reference.MAX_K_S8, True), (K_BIG, False)])
def test_int8_dense_layer_wider_than_the_accumulator_is_refused_at_plan_time(k, ok):
    values = np.full((1, k), 127, np.int8)
    weight = Tensor("w", (1, k), "dense", {"values": values, "scale": np.ones(1, np.float32)})
    if ok:
        session = Session(one_layer(weight))
        y = session.run(np.ones((1, k), np.float32))  # x quantizes to 127: the worst case sum
        assert y[0, 0] == pytest.approx(127.0 * k, rel=1e-6)  # (127 * 127 * k) * (1/127) * 1
    else:
        with pytest.raises(edgerun.ShapeError, match=rf"layer 'wide'.*{k}.*{reference.MAX_K_S8}"):
            Session(one_layer(weight))


def test_int8_csr_row_longer_than_the_accumulator_is_refused(tmp_path):
    """For CSR the sum runs over a row's entries: a full row of K_BIG is
    refused, the same K with short rows is fine -- also when it comes from a file."""
    def csr(row_nnz):
        indptr = np.array([0, row_nnz], np.uint32)
        arrays = {"indptr": indptr, "indices": np.arange(row_nnz, dtype=np.uint32),
                  "values": np.ones(row_nnz, np.int8), "scale": np.ones(1, np.float32)}
        return Tensor("w", (1, K_BIG), "csr", arrays)

    assert Session(one_layer(csr(1000))).layers == [("wide", "spmm_csr_s8")]
    path = tmp_path / "wide.edgerun"
    fmt.save(one_layer(csr(K_BIG)), path)
    with pytest.raises(edgerun.ShapeError, match="layer 'wide'.*spmm_csr_s8"):
        edgerun.load(path)


@pytest.mark.parametrize("blocks, ok", [(reference.MAX_K_S8 // 4, True), (reference.MAX_K_S8 // 4 + 1, False)])
def test_int8_bcsr4_row_longer_than_the_accumulator_is_refused(blocks, ok):
    """For bcsr4 the sum runs over 4 products per block of a row."""
    cols = 4 * blocks
    arrays = {"indptr": np.array([0, blocks], np.uint32),
              "indices": np.arange(0, cols, 4, dtype=np.uint32),
              "values": np.full(cols, 127, np.int8), "scale": np.ones(1, np.float32)}
    weight = Tensor("w", (1, cols), "bcsr4", arrays)
    if ok:
        session = Session(one_layer(weight))
        assert session.layers == [("wide", "spmm_bcsr4_s8")]
        y = session.run(np.ones((1, cols), np.float32))  # the worst case int32 sum, exact
        assert y[0, 0] == pytest.approx(127.0 * cols, rel=1e-6)
    else:
        with pytest.raises(edgerun.ShapeError, match=rf"layer 'wide'.*spmm_bcsr4_s8.*{cols}"):
            Session(one_layer(weight))


def test_float_layers_have_no_k_limit():
    weight = Tensor("w", (1, K_BIG), "dense", {"values": np.ones((1, K_BIG), np.float16)})
    y = Session(one_layer(weight)).run(np.ones((1, K_BIG), np.float32))
    assert y[0, 0] == K_BIG


# ---------------------------------------------------------------------------
# compressor options

@pytest.mark.parametrize("options, match", [
    ({"prune": 1.0}, "0 <= s < 1"),
    ({"prune": 1.5}, "0 <= s < 1"),
    ({"prune": -0.1}, "0 <= s < 1"),
    ({"prune": float("nan")}, "0 <= s < 1"),
    ({"prune": True}, "0 <= s < 1"),
    ({"prune": "0.5"}, "0 <= s < 1"),
    ({"prune": {"fc1": 1.0}}, "prune\\['fc1'\\]"),
    ({"prune": {"threshold": -1}}, "threshold"),
    ({"share_bits": 0}, "1..8"),
    ({"share_bits": 9}, "1..8"),
    ({"share_bits": 4.0}, "1..8"),
    ({"share_bits": {"fc2": 9}}, "'fc2'.*1..8"),
    ({"quantize": "int4"}, "int4"),
    ({"quantize": "INT8"}, "INT8"),
    ({"quantize": {"fc1": "bf16"}}, "'fc1'.*bf16"),
    ({"prune": {"fc9": 0.5}}, "unknown layer name.*fc9.*\\['fc1', 'fc2'\\]"),
    ({"share_bits": {"nope": 4}}, "unknown layer name.*nope"),
    ({"quantize": {"fc3": "int8"}}, "unknown layer name.*fc3"),
    ({"huffman": "yes"}, "huffman"),
    ({"prune_scope": "net"}, "prune_scope"),
])
def test_compressor_options_out_of_range_fail_early(options, match, rng, monkeypatch):
    from edgerun.compress import pipeline

    def no_work(*args, **kwargs):  # the options must be refused before any compression
        raise AssertionError("compression started before the options were checked")

    monkeypatch.setattr(pipeline, "_float_copy", no_work)
    with pytest.raises(edgerun.OptionError, match=match):
        edgerun.compress(mlp(rng), **options)


def test_good_options_reach_the_work(rng, monkeypatch):
    from edgerun.compress import pipeline

    class Started(Exception):
        pass

    def started(*args, **kwargs):
        raise Started

    monkeypatch.setattr(pipeline, "_float_copy", started)
    with pytest.raises(Started):
        edgerun.compress(mlp(rng), prune={"fc1": 0.5}, share_bits={"fc2": 8}, quantize="int8")


def test_backend_is_the_c_extension():
    """These tests mean the C path: say so when the extension is missing."""
    if os.environ.get("EDGERUN_BACKEND") != "numpy":  # numpy only when asked for by name
        assert _backend.name == "c", _backend.reason
