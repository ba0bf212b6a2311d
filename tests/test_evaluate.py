"""The numpy executor: every op against hand-written numpy, captures, errors."""
import warnings

import numpy as np
import pytest

from edgerun.errors import EdgerunError, ShapeError, UnsupportedOpError
from edgerun.evaluate import evaluate, flatten, linear, relu, reshape, sigmoid, softmax, tanh
from edgerun.graph import Graph, GraphBuilder, Node, Tensor, ValueInfo
from edgerun.packing import pack_bits


def mlp(rng, sizes=(12, 20, 7)):
    b = GraphBuilder("x", features=sizes[0])
    weights = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.normal(size=(n_out, n_in)).astype(np.float32)
        bias = rng.normal(size=n_out).astype(np.float32)
        weights.append((w, bias))
        b.linear(w, bias, activation="relu" if i < len(sizes) - 2 else None)
    b.softmax()
    return b.build(), weights


def test_mlp_matches_numpy(rng):
    graph, ((w1, b1), (w2, b2)) = mlp(rng)
    x = rng.normal(size=(5, 12)).astype(np.float32)
    out = evaluate(graph, {"x": x})
    assert list(out) == [graph.outputs[0].name]
    logits = np.maximum(x @ w1.T + b1, 0) @ w2.T + b2
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    y = out[graph.outputs[0].name]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_a_single_array_feeds_a_one_input_graph(rng):
    graph, _ = mlp(rng)
    x = rng.normal(size=(3, 12)).astype(np.float32)
    a = evaluate(graph, x)
    b = evaluate(graph, {"x": x})
    np.testing.assert_array_equal(a[graph.outputs[0].name], b[graph.outputs[0].name])


def test_capture_returns_the_input_of_each_named_node(rng):
    graph, ((w1, b1), _) = mlp(rng)
    x = rng.normal(size=(4, 12)).astype(np.float32)
    seen = evaluate(graph, {"x": x}, capture={"linear_1", "linear_2"})
    np.testing.assert_array_equal(seen["linear_1"], x)
    np.testing.assert_allclose(seen["linear_2"], np.maximum(x @ w1.T + b1, 0), rtol=1e-5, atol=1e-6)


def test_capture_of_an_unknown_node_is_refused(rng):
    graph, _ = mlp(rng)
    with pytest.raises(EdgerunError, match="nope"):
        evaluate(graph, {"x": np.zeros((1, 12), np.float32)}, capture={"nope"})


def test_missing_input_names_it(rng):
    graph, _ = mlp(rng)
    with pytest.raises(ShapeError, match="'x'"):
        evaluate(graph, {"y": np.zeros((1, 12), np.float32)})


def test_unknown_op_is_refused():
    graph = Graph(inputs=[ValueInfo("x", (None, 2))], outputs=[ValueInfo("y", (None, 2))],
                  nodes=[Node("Conv", "c", ["x"], ["y"])])
    with pytest.raises(UnsupportedOpError, match="Conv"):
        evaluate(graph, {"x": np.zeros((1, 2), np.float32)})


def test_softmax_is_stable_and_sums_to_one():
    x = np.array([[1000.0, 1001.0, -1000.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = softmax(x)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(y[1], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(softmax(x.T, axis=0), y.T, rtol=1e-6)


def test_sigmoid_has_no_overflow_at_the_extremes():
    x = np.array([-1000.0, -20.0, 0.0, 20.0, 1000.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = sigmoid(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [0.0, 2.0611537e-09, 0.5, 1.0, 1.0], rtol=1e-5, atol=1e-30)


def test_elementwise_functions():
    x = np.array([[-2.0, 0.0, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(relu(x), [[0, 0, 3]])
    np.testing.assert_allclose(tanh(x), np.tanh(x), rtol=1e-6)
    w = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    np.testing.assert_allclose(linear(x, w, np.array([1.0], np.float32), "relu"), [[8.0]])
    np.testing.assert_allclose(linear(-x, w), [[-7.0]])


def test_flatten_and_reshape_follow_onnx():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert flatten(x, 1).shape == (2, 12)
    assert flatten(x, 2).shape == (6, 4)
    assert flatten(x, 0).shape == (1, 24)
    assert flatten(x, -1).shape == (6, 4)
    assert flatten(np.zeros((0, 3, 4), np.float32), 1).shape == (0, 12)
    assert reshape(x, [0, -1]).shape == (2, 12)
    assert reshape(x, [4, 0, -1]).shape == (4, 3, 2)


def test_add_mul_flatten_reshape_and_activations_in_a_graph(rng):
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    shift = rng.normal(size=12).astype(np.float32)
    gain = rng.normal(size=12).astype(np.float32)
    nodes = [Node("Flatten", "f", ["x"], ["a"], {"axis": 1}),
             Node("Add", "add", ["a", "shift"], ["b"]),
             Node("Mul", "mul", ["b", "gain"], ["c"]),
             Node("Sigmoid", "s", ["c"], ["d"]),
             Node("Tanh", "t", ["d"], ["e"]),
             Node("Relu", "r", ["e"], ["f"]),
             Node("Mul", "sq", ["f", "f"], ["g"]),
             Node("Reshape", "rs", ["g"], ["y"], {"shape": [0, 3, -1]})]
    graph = Graph(inputs=[ValueInfo("x", (None, 3, 4))], outputs=[ValueInfo("y", (None, 3, 4))],
                  nodes=nodes, tensors={"shift": Tensor.dense("shift", shift),
                                        "gain": Tensor.dense("gain", gain)})
    graph.validate()
    y = evaluate(graph, {"x": x})["y"]
    v = np.tanh(1 / (1 + np.exp(-((x.reshape(2, 12) + shift) * gain))))
    np.testing.assert_allclose(y, (np.maximum(v, 0) ** 2).reshape(2, 3, 4), rtol=1e-5, atol=1e-6)


def test_encoded_weights_run_as_their_dense_floats(rng):
    w = rng.normal(size=(6, 10)).astype(np.float32)
    w[np.abs(w) < 0.8] = 0
    mask = w != 0
    csr = Tensor("w", (6, 10), "csr", {
        "indptr": np.concatenate([[0], np.cumsum(mask.sum(1))]).astype(np.uint32),
        "indices": np.nonzero(mask)[1].astype(np.uint16),
        "values": w[mask]})
    centroids = np.linspace(-1, 1, 4).astype(np.float32)
    codes = rng.integers(0, 4, size=(6, 10)).astype(np.uint8)
    book = Tensor("v", (6, 10), "codebook", {"codes": pack_bits(codes, 2), "centroids": centroids},
                  bits=2)
    nodes = [Node("Linear", "l1", ["x", "w"], ["h"], {"activation": None}),
             Node("Linear", "l2", ["x", "v"], ["k"], {"activation": None}),
             Node("Add", "sum", ["h", "k"], ["y"])]
    graph = Graph(inputs=[ValueInfo("x", (None, 10))], outputs=[ValueInfo("y", (None, 6))],
                  nodes=nodes, tensors={"w": csr, "v": book})
    x = rng.normal(size=(3, 10)).astype(np.float32)
    y = evaluate(graph, {"x": x})["y"]
    np.testing.assert_allclose(y, x @ w.T + x @ centroids[codes].T, rtol=1e-5, atol=1e-5)


def test_erf_is_within_5e_7_of_the_exact_value():
    import math

    from edgerun.evaluate import erf

    x = np.linspace(-6, 6, 20001, dtype=np.float32)
    exact = np.array([math.erf(float(v)) for v in x])
    assert np.abs(erf(x) - exact).max() < 5e-7
    assert erf(np.float32(0)) == 0 and erf(np.float32(-np.inf)) == -1
