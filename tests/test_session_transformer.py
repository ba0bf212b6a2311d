"""The Session runs GELU, softmax and LayerNorm on their C kernels (runtime/transformer.py),
fusing a residual Add into the LayerNorm after it; results match the numpy graph
evaluator, and every path the fusion must not take (a broadcasting residual, an Add
read twice or a graph output, another axis) still gives numpy's answer."""
import numpy as np
import pytest

import edgerun
from edgerun import evaluate, reference
from edgerun.graph import Graph, Node, Tensor, ValueInfo
from edgerun.runtime import transformer

RTOL, ATOL = 2e-5, 2e-6     # float kernels against numpy: a few float32 ulps of the output


def _graph(nodes, inputs, outputs, tensors=()):
    graph = Graph(inputs=[ValueInfo(name, shape) for name, shape in inputs],
                  outputs=[ValueInfo(name, ()) for name in outputs], nodes=nodes,
                  tensors={t.name: t for t in tensors})
    graph.validate()
    return graph


def _norm_tensors(n, rng, bias=True):
    tensors = [Tensor.dense("scale", rng.standard_normal(n).astype(np.float32))]
    if bias:
        tensors.append(Tensor.dense("bias", rng.standard_normal(n).astype(np.float32)))
    return tensors


def _residual_norm(n, r_shape=None, bias=True, epsilon=1e-12, add_is_output=False):
    rng = np.random.default_rng(n)
    norm_inputs = ["sum", "scale"] + (["bias"] if bias else [])
    nodes = [Node("Add", "add", ["x", "r"], ["sum"]),
             Node("LayerNorm", "norm", norm_inputs, ["y"], {"axis": -1, "epsilon": epsilon})]
    outputs = ["y", "sum"] if add_is_output else ["y"]
    return _graph(nodes, [("x", (None, None, n)), ("r", r_shape or (None, None, n))], outputs,
                  _norm_tensors(n, rng, bias))


def _numpy(graph, feeds):
    """The graph on the numpy evaluator alone: the numbers the kernels must reproduce."""
    values = dict(feeds)
    for node in graph.nodes:
        args = [graph.tensors[name].to_dense() if name in graph.tensors else values[name]
                for name in node.inputs]
        values[node.outputs[0]] = evaluate.op_function(node)(*args)
    return values


@pytest.mark.parametrize("n", [1, 7, 32, 33, 256])
@pytest.mark.parametrize("bias", [True, False])
def test_residual_layer_norm_is_fused_and_matches_numpy(n, bias):
    graph = _residual_norm(n, bias=bias)
    session = edgerun.Session(graph)
    assert [node.op for node, _, _ in session._steps] == ["LayerNorm"]
    rng = np.random.default_rng(1)
    feeds = {name: rng.standard_normal((2, 5, n)).astype(np.float32) * 3 + 1 for name in "xr"}
    y = session.run(feeds)["y"]
    np.testing.assert_allclose(y, _numpy(graph, feeds)["y"], rtol=RTOL, atol=ATOL)


def test_residual_layer_norm_with_the_reference_kernels_is_the_same_computation():
    graph = _residual_norm(64)
    rng = np.random.default_rng(2)
    feeds = {name: rng.standard_normal((3, 64)).astype(np.float32).reshape(1, 3, 64) for name in "xr"}
    c = edgerun.Session(graph).run(feeds)["y"]
    numpy_twin = edgerun.Session(graph, kernels=edgerun.reference).run(feeds)["y"]
    np.testing.assert_allclose(c, numpy_twin, rtol=RTOL, atol=ATOL)


def test_broadcasting_residual_falls_back_to_numpy_add():
    graph = _residual_norm(16, r_shape=(16,))
    rng = np.random.default_rng(3)
    feeds = {"x": rng.standard_normal((2, 4, 16)).astype(np.float32),
             "r": rng.standard_normal(16).astype(np.float32)}
    y = edgerun.Session(graph).run(feeds)["y"]
    np.testing.assert_allclose(y, _numpy(graph, feeds)["y"], rtol=RTOL, atol=ATOL)


def test_add_read_elsewhere_is_not_fused():
    graph = _residual_norm(16, add_is_output=True)
    session = edgerun.Session(graph)
    assert [node.op for node, _, _ in session._steps] == ["Add", "LayerNorm"]
    rng = np.random.default_rng(4)
    feeds = {name: rng.standard_normal((1, 3, 16)).astype(np.float32) for name in "xr"}
    out = session.run(feeds)
    expected = _numpy(graph, feeds)
    np.testing.assert_array_equal(out["sum"], expected["sum"])
    np.testing.assert_allclose(out["y"], expected["y"], rtol=RTOL, atol=ATOL)


def test_add_of_a_constant_is_not_fused():
    rng = np.random.default_rng(5)
    tensors = _norm_tensors(8, rng) + [Tensor.dense("c", rng.standard_normal(8).astype(np.float32))]
    nodes = [Node("Add", "add", ["x", "c"], ["sum"]),
             Node("LayerNorm", "norm", ["sum", "scale", "bias"], ["y"], {"axis": -1})]
    graph = _graph(nodes, [("x", (None, 8))], ["y"], tensors)
    assert transformer.residual_layer_norms(graph) == {}


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_runs_on_the_kernel(approximate):
    graph = _graph([Node("Gelu", "gelu", ["x"], ["y"], {"approximate": approximate})],
                   [("x", (None, 37))], ["y"])
    x = np.linspace(-9, 9, 4 * 37, dtype=np.float32).reshape(4, 37)
    y = edgerun.Session(graph).run(x)
    expected = evaluate.gelu(x, approximate)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("axis", [-1, 2, 1])
def test_softmax_over_the_last_axis_runs_on_the_kernel_other_axes_on_numpy(axis):
    graph = _graph([Node("Softmax", "softmax", ["x"], ["y"], {"axis": axis})],
                   [("x", (None, 4, 9))], ["y"])
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4, 9)).astype(np.float32) * 5
    x[0, 1, :4] = -1e9                      # a masked attention row
    y = edgerun.Session(graph).run(x)
    np.testing.assert_allclose(y, evaluate.softmax(x, axis), rtol=RTOL, atol=ATOL)
    if axis != 1:
        assert np.all(y[0, 1, :4] == 0)


def test_layer_norm_over_two_axes_falls_back_to_numpy():
    rng = np.random.default_rng(7)
    tensors = [Tensor.dense("scale", rng.standard_normal((3, 8)).astype(np.float32))]
    graph = _graph([Node("LayerNorm", "norm", ["x", "scale"], ["y"], {"axis": -2, "epsilon": 1e-5})],
                   [("x", (None, 3, 8))], ["y"], tensors)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    y = edgerun.Session(graph).run(x)
    np.testing.assert_allclose(y, evaluate.layer_norm(x, tensors[0].to_dense(), None, -2, 1e-5),
                               rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------ attention glue

B, S, H, D = 2, 6, 3, 4


def _attention(mask="where", scale="Mul", softmax_axis=-1, outputs=("y",), mask_batch=B,
               fill=-1e9, keep_side=False, bias_first=False, extra_reader=None):
    """q_in, k_in [B, S, H, D] -> Transposes -> MatMul -> scale -> mask -> Softmax, as
    torch.onnx exports BERT's self-attention.  mask "where": Where(mask == 0, fill, x)
    (or Where(mask == 1, x, fill) with keep_side); "add": x + (1 - mask) * finfo.min;
    None: no mask.  extra_reader names a value that a Relu reads too (output "r")."""
    tensors = [Tensor.dense("scale", np.array([1 / np.sqrt(D) if scale == "Mul" else np.sqrt(D)],
                                              np.float32)),
               Tensor.dense("zero", np.array([0], np.float32)), Tensor.dense("one", np.array([1], np.float32)),
               Tensor.dense("fill", np.array([fill], np.float32)),
               Tensor.dense("min", np.array([np.finfo(np.float32).min], np.float32))]
    nodes = [Node("Transpose", "tq", ["q_in"], ["q"], {"perm": [0, 2, 1, 3]}),
             Node("Transpose", "tk", ["k_in"], ["kt"], {"perm": [0, 2, 3, 1]}),
             Node("MatMul", "qk", ["q", "kt"], ["scores"])]
    x = "scores"
    if scale:
        nodes.append(Node(scale, "scale", [x, "scale"], ["scaled"]))
        x = "scaled"
    nodes.append(Node("Reshape", "m4", ["mask"], ["m4"], {"shape": [0, 1, 1, -1]}))
    if mask == "where":
        cond = Node("Equal", "cond", ["m4", "one" if keep_side else "zero"], ["cond"])
        where = [x, "fill"] if keep_side else ["fill", x]
        nodes += [cond, Node("Where", "where", ["cond"] + where, ["masked"])]
        x = "masked"
    elif mask == "add":
        nodes += [Node("Sub", "inv", ["one", "m4"], ["inv"]), Node("Mul", "bias", ["inv", "min"], ["bias"]),
                  Node("Add", "add", ["bias", x] if bias_first else [x, "bias"], ["masked"])]
        x = "masked"
    nodes.append(Node("Softmax", "softmax", [x], ["y"], {"axis": softmax_axis}))
    if extra_reader:
        nodes.append(Node("Relu", "relu", [extra_reader], ["r"]))
        outputs = tuple(outputs) + ("r",)
    graph = _graph(nodes, [("q_in", (None, S, H, D)), ("k_in", (None, S, H, D)), ("mask", (None, S))],
                   list(outputs), tensors)
    rng = np.random.default_rng(3)
    feeds = {"q_in": rng.standard_normal((B, S, H, D)).astype(np.float32) * 2,
             "k_in": rng.standard_normal((B, S, H, D)).astype(np.float32) * 2,
             "mask": np.ones((mask_batch, S), np.float32)}
    feeds["mask"][0, 4:] = 0                # padding at the end of the first sequence
    feeds["mask"][-1, :] = 0                # and a sequence all padding: every key masked
    return graph, feeds


def _fused_ops(session):
    return [node.op for node, _, _ in session._steps]


def _unfused(graph):
    """The same graph with the raw scores as a graph output too: nothing is fused."""
    unfused = Graph(inputs=graph.inputs, outputs=graph.outputs + [ValueInfo("scores", ())],
                    nodes=graph.nodes, tensors=graph.tensors)
    session = edgerun.Session(unfused)
    assert not session._attention.chains
    return session


@pytest.mark.parametrize("mask, keep_side, bias_first", [
    ("where", False, False), ("where", True, False), ("add", False, False), ("add", False, True),
    (None, False, False)])
@pytest.mark.parametrize("scale", ["Mul", "Div", None])
def test_score_chain_is_one_step_bit_identical_to_op_by_op(mask, keep_side, bias_first, scale):
    graph, feeds = _attention(mask, scale, keep_side=keep_side, bias_first=bias_first)
    session = edgerun.Session(graph)
    assert session._attention.views == {"tq", "tk"}
    ops = _fused_ops(session)
    assert "MatMul" not in ops and "Where" not in ops and ops.count("Softmax") == 1
    assert ops.count("Add") == 0 and ops.count("Div") == 0 and ops.count("Mul") == (mask == "add")
    y = session.run(dict(feeds))["y"]
    np.testing.assert_array_equal(y, _unfused(graph).run(dict(feeds))["y"])
    np.testing.assert_allclose(y, _numpy(graph, feeds)["y"], rtol=RTOL, atol=ATOL)
    if mask:
        assert np.all(y[0, :, :, 4:] == 0)              # padded keys get exactly 0
        assert np.all(y[0, :, :, :4] > 0)
        if mask == "where":                             # all keys masked: all scores the fill
            np.testing.assert_allclose(y[-1], 1 / S, rtol=1e-6)


def test_score_chain_with_the_reference_kernels_is_the_same_computation():
    graph, feeds = _attention()
    y = edgerun.Session(graph, kernels=reference).run(dict(feeds))["y"]
    np.testing.assert_allclose(y, edgerun.Session(graph).run(dict(feeds))["y"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("mask", ["where", "add"])
def test_a_mask_without_padding_skips_the_mask_pass(mask):
    graph, feeds = _attention(mask)
    feeds["mask"][:] = 1
    y = edgerun.Session(graph).run(dict(feeds))["y"]
    np.testing.assert_array_equal(y, _unfused(graph).run(dict(feeds))["y"])
    assert np.all(y > 0)


@pytest.mark.parametrize("mask", ["where", "add"])
def test_a_mask_that_broadcasts_the_scores_bigger_runs_op_by_op_inside_the_step(mask):
    graph, feeds = _attention(mask, mask_batch=3)
    feeds = {name: x[:1] if name != "mask" else x for name, x in feeds.items()}   # scores batch 1
    y = edgerun.Session(graph).run(dict(feeds))["y"]
    assert y.shape == (3, H, S, S)
    np.testing.assert_array_equal(y, _unfused(graph).run(dict(feeds))["y"])
    np.testing.assert_allclose(y, _numpy(graph, feeds)["y"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("axis", [1, 2])
def test_a_softmax_over_another_axis_is_fused_and_runs_numpy(axis):
    graph, feeds = _attention(softmax_axis=axis)
    session = edgerun.Session(graph)
    assert session._attention.chains
    y = session.run(dict(feeds))["y"]
    np.testing.assert_array_equal(y, _unfused(graph).run(dict(feeds))["y"])
    np.testing.assert_allclose(y, _numpy(graph, feeds)["y"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shared", ["scores", "scaled", "masked"])
def test_a_chain_value_read_elsewhere_is_not_fused(shared):
    graph, feeds = _attention(extra_reader=shared)
    session = edgerun.Session(graph)
    assert not session._attention.chains and "Where" in _fused_ops(session)
    out = session.run(dict(feeds))
    expected = _numpy(graph, feeds)
    np.testing.assert_allclose(out["y"], expected["y"], rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(out["r"], expected["r"])


def test_a_chain_value_that_is_a_graph_output_is_not_fused():
    graph, feeds = _attention(outputs=("y", "masked"))
    session = edgerun.Session(graph)
    assert not session._attention.chains
    out = session.run(dict(feeds))
    np.testing.assert_array_equal(out["masked"], _numpy(graph, feeds)["masked"])


def test_a_transpose_that_is_a_graph_output_copies_the_others_are_views():
    graph, feeds = _attention(outputs=("y", "q"))
    session = edgerun.Session(graph)
    assert session._attention.views == {"tk"}
    out = session.run(dict(feeds))
    q = out["q"]
    assert q.flags.c_contiguous and not np.shares_memory(q, feeds["q_in"])
    np.testing.assert_array_equal(q, feeds["q_in"].transpose(0, 2, 1, 3))
    np.testing.assert_allclose(out["y"], _numpy(graph, feeds)["y"], rtol=RTOL, atol=ATOL)


def test_a_transpose_read_by_another_op_copies():
    nodes = [Node("Transpose", "t", ["x"], ["xt"], {"perm": [1, 0]}),
             Node("MatMul", "mm", ["xt", "x"], ["p"]), Node("Relu", "relu", ["xt"], ["r"])]
    graph = _graph(nodes, [("x", (3, 5))], ["p", "r"])
    session = edgerun.Session(graph)
    assert not session._attention.views
    x = np.arange(15, dtype=np.float32).reshape(3, 5) - 7
    out = session.run({"x": x})
    np.testing.assert_array_equal(out["r"], np.maximum(x.T, 0))
    np.testing.assert_allclose(out["p"], x.T @ x, rtol=1e-6)


def _heads_to_tokens(a_shape, b_shape, outputs=("y",), perm=(0, 2, 1, 3), reader="Reshape"):
    """P @ V -> Transpose(perm) -> a reader (Reshape to tokens x features, or Relu)."""
    nodes = [Node("MatMul", "pv", ["p", "v"], ["ctx"]),
             Node("Transpose", "merge", ["ctx"], ["ctx_t"], {"perm": list(perm)})]
    if reader == "Reshape":
        nodes.append(Node("Reshape", "flat", ["ctx_t"], ["y"], {"shape": [0, 0, -1]}))
    else:
        nodes.append(Node("Relu", "relu", ["ctx_t"], ["y"]))
    graph = _graph(nodes, [("p", (None,) * len(a_shape)), ("v", (None,) * len(b_shape))],
                   list(outputs))
    rng = np.random.default_rng(len(a_shape) * 10 + a_shape[-1])
    feeds = {"p": rng.random(a_shape, dtype=np.float32),
             "v": rng.standard_normal(b_shape, dtype=np.float32)}
    return graph, feeds


def _v_view(feeds):
    """v as the Session sees it after a Q/K/V projection: a transposed view of tokens."""
    v = feeds["v"]
    return np.ascontiguousarray(v.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)


@pytest.mark.parametrize("shape", [(1, 4, 9, 9, 8), (3, 2, 5, 7, 3), (2, 1, 1, 1, 1)])
@pytest.mark.parametrize("strided_v", [False, True])
def test_p_v_writes_its_heads_among_the_tokens_with_the_same_bits(shape, strided_v):
    n, heads, m, k, d = shape
    graph, feeds = _heads_to_tokens((n, heads, m, k), (n, heads, k, d))
    if strided_v:
        feeds["v"] = _v_view(feeds)
    session = edgerun.Session(graph)
    assert set(session._attention.merges) == {"merge"} and "pv" in session._attention.fused
    assert _fused_ops(session) == ["MatMul", "Reshape"]
    y = session.run(dict(feeds))["y"]
    # the unmerged pair: the MatMul's result a graph output, so the Transpose copies it
    unmerged = _graph(graph.nodes, [(v.name, v.shape) for v in graph.inputs], ["y", "ctx"])
    plain = edgerun.Session(unmerged)
    assert not plain._attention.merges
    np.testing.assert_array_equal(y, plain.run(dict(feeds))["y"])
    np.testing.assert_allclose(y, (feeds["p"] @ feeds["v"]).transpose(0, 2, 1, 3)
                               .reshape(n, m, heads * d), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((2, 3, 4, 5), (1, 3, 5, 2)),       # batch broadcast: the op-by-op pair inside the step
    ((3, 4, 5), (3, 5, 2)),             # rank 3: the Transpose's perm does not apply
])
def test_p_v_of_other_shapes_runs_the_op_by_op_pair(a_shape, b_shape):
    graph, feeds = _heads_to_tokens(a_shape, b_shape, reader="Relu")
    if len(a_shape) == 3:
        with pytest.raises(edgerun.ShapeError, match="merge"):
            edgerun.Session(graph).run(dict(feeds))
        return
    session = edgerun.Session(graph)
    assert set(session._attention.merges) == {"merge"}
    y = session.run(dict(feeds))["y"]
    assert y.flags.c_contiguous
    np.testing.assert_array_equal(y, _numpy(graph, feeds)["y"])


@pytest.mark.parametrize("case", ["ctx read twice", "ctx an output", "other perm"])
def test_p_v_is_merged_only_into_a_private_transpose_0213(case):
    if case == "ctx read twice":
        graph, feeds = _heads_to_tokens((1, 2, 3, 4), (1, 2, 4, 5))
        nodes = graph.nodes + [Node("Relu", "r2", ["ctx"], ["z"])]
        graph = _graph(nodes, [("p", (None,) * 4), ("v", (None,) * 4)], ["y", "z"])
    elif case == "ctx an output":
        graph, feeds = _heads_to_tokens((1, 2, 3, 4), (1, 2, 4, 5), outputs=("y", "ctx"))
    else:
        graph, feeds = _heads_to_tokens((1, 2, 3, 4), (1, 2, 4, 5), perm=(0, 1, 3, 2), reader="Relu")
    session = edgerun.Session(graph)
    assert not session._attention.merges
    out = session.run(dict(feeds))
    want = _numpy(graph, feeds)
    for name, value in out.items():
        np.testing.assert_array_equal(value, want[name])


@pytest.mark.parametrize("bias_dtype", ["int64", "float32"])
def test_a_mask_bias_of_another_dtype_runs_op_by_op_inside_the_step(bias_dtype):
    nodes = [Node("MatMul", "mm", ["a", "b"], ["scores"]),
             Node("Cast", "cast", ["m"], ["bias"], {"to": bias_dtype}),
             Node("Add", "add", ["scores", "bias"], ["masked"]),
             Node("Softmax", "softmax", ["masked"], ["y"], {"axis": -1})]
    graph = _graph(nodes, [("a", (None, 3, 4)), ("b", (None, 4, 5)), ("m", (None, 1, 5))], ["y"])
    rng = np.random.default_rng(9)
    feeds = {"a": rng.standard_normal((2, 3, 4)).astype(np.float32) * 3,
             "b": rng.standard_normal((2, 4, 5)).astype(np.float32),
             "m": np.array([[[0, -2, 0, 5, 1]], [[0, 0, 0, 0, 0]]], np.float32)}
    session = edgerun.Session(graph)
    assert _fused_ops(session) == ["Cast", "Softmax"]
    y = session.run(dict(feeds))["y"]
    np.testing.assert_array_equal(y, _unfused(graph).run(dict(feeds))["y"])
    np.testing.assert_allclose(y, _numpy(graph, feeds)["y"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("mask_style, mask_op", [("fill", "Where"), ("additive", "Add"),
                                                 ("indexed", "Where")])
def test_torch_exported_bert_fuses_every_layer_and_matches_the_unfused_run(mask_style, mask_op):
    pytest.importorskip("torch")
    from test_onnx_transformer import bert_export, bert_feeds

    graph = edgerun.import_onnx(bert_export(False, 17, mask_style=mask_style))
    session = edgerun.Session(graph)
    chains = list(session._attention.chains.values())
    assert len(chains) == 2                                 # the test BERT's two layers
    assert all([node.op if node else None for node in chain] == ["MatMul", "Mul", mask_op, "Softmax"]
               for chain in chains)
    assert len(session._attention.views) == 6               # Q, K^T and V of each layer
    assert len(session._attention.merges) == 2              # P.V of each layer
    feeds = bert_feeds(3, 9, seed=4)
    assert (feeds["attention_mask"] == 0).any()
    unfused_values = [c[0].outputs[0] for c in chains] + [
        m.outputs[0] for m in session._attention.merges.values()]
    unfused = Graph(inputs=graph.inputs,
                    outputs=graph.outputs + [ValueInfo(name, ()) for name in unfused_values],
                    nodes=graph.nodes, tensors=graph.tensors)
    plain = edgerun.Session(unfused)
    assert not plain._attention.chains and not plain._attention.merges
    want = plain.run(dict(feeds))["y"]
    np.testing.assert_array_equal(session.run(dict(feeds))["y"], want)


# ---------------------------------------------------------------- sibling Linears

def _siblings(rng, widths=(8, 8, 12), k=13, bias=(True, True, True), relu=(False, False, False),
              int8=(True, True, True), outputs=None):
    """Linear layers of one input x [N, S, k] (a transformer's Q, K, V projections)."""
    nodes, tensors = [], []
    for i, (n, has_bias, act, quantized) in enumerate(zip(widths, bias, relu, int8)):
        w = rng.standard_normal((n, k)).astype(np.float32)
        if quantized:
            scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
            weight = Tensor(f"w{i}", (n, k), "dense",
                            {"values": np.round(w / scale[:, None]).astype(np.int8), "scale": scale})
        else:
            weight = Tensor.dense(f"w{i}", w)
        tensors.append(weight)
        inputs = ["x", f"w{i}"]
        if has_bias:
            tensors.append(Tensor.dense(f"b{i}", rng.standard_normal(n).astype(np.float32)))
            inputs.append(f"b{i}")
        nodes.append(Node("Linear", f"fc{i}", inputs, [f"y{i}"], {"activation": "relu"} if act else {}))
    return _graph(nodes, [("x", (None, None, k))], outputs or [f"y{i}" for i in range(len(widths))],
                  tensors)


def _one_by_one(graph, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(edgerun.Session, "_fuse_siblings", False)
        return edgerun.Session(graph)


@pytest.mark.parametrize("batch, seq", [(1, 1), (2, 9), (3, 40)])
def test_int8_linears_of_one_input_run_as_one_gemm_with_the_same_bits(batch, seq, monkeypatch):
    rng = np.random.default_rng(seq)
    graph = _siblings(rng)
    session = edgerun.Session(graph)
    assert [node.op for node, _, _ in session._steps] == ["Linear"]
    assert session.layers == [("fc0", "gemm_s8"), ("fc1", "gemm_s8"), ("fc2", "gemm_s8")]
    x = {"x": rng.standard_normal((batch, seq, 13)).astype(np.float32)}
    got = session.run(dict(x))
    want = _one_by_one(graph, monkeypatch).run(dict(x))
    for name in ("y0", "y1", "y2"):
        assert got[name].shape == (batch, seq, graph.tensors[f"w{name[1]}"].shape[0])
        np.testing.assert_array_equal(got[name].view(np.uint32), want[name].view(np.uint32))


def test_sibling_linears_split_columns_across_threads_with_the_same_bits(monkeypatch):
    rng = np.random.default_rng(1)
    graph = _siblings(rng, widths=(40, 24, 56), k=64)
    x = {"x": rng.standard_normal((2, 17, 64)).astype(np.float32)}
    want = _one_by_one(graph, monkeypatch).run(dict(x))
    with edgerun.Session(graph, num_threads=3) as threaded:
        got = threaded.run(dict(x))
    for name in want:
        np.testing.assert_array_equal(got[name].view(np.uint32), want[name].view(np.uint32))


@pytest.mark.parametrize("case", ["bias", "relu", "float"])
def test_linears_that_differ_are_not_joined(case):
    rng = np.random.default_rng(2)
    options = {"bias": dict(bias=(True, False, True)), "relu": dict(relu=(False, True, False)),
               "float": dict(int8=(True, False, True))}[case]
    session = edgerun.Session(_siblings(rng, **options))
    steps = [len(node.outputs) for node, _, _ in session._steps]
    assert sorted(steps) == [1, 2]          # the two alike joined, the odd one alone
