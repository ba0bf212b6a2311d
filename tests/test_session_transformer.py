"""The Session runs GELU, softmax and LayerNorm on their C kernels (runtime/transformer.py),
fusing a residual Add into the LayerNorm after it; results match the numpy graph
evaluator, and every path the fusion must not take (a broadcasting residual, an Add
read twice or a graph output, another axis) still gives numpy's answer."""
import numpy as np
import pytest

import edgerun
from edgerun import evaluate
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
