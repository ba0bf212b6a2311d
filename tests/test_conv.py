"""Conv2d, pooling, GlobalAveragePool and Clip: evaluate() against explicit loops,
the graph and file checks, and Session against evaluate()."""
import numpy as np
import pytest

from edgerun import format as fmt
from edgerun.errors import FormatError, ShapeError
from edgerun.evaluate import average_pool, conv2d, evaluate, max_pool
from edgerun.graph import Graph, Node, Tensor, ValueInfo
from edgerun.runtime.session import Session


def conv_loops(x, w, b, strides, pads, dilations, group):
    """ONNX Conv by its definition, one output element at a time."""
    n, c, h, wd = x.shape
    out, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    og = out // group
    y = np.zeros((n, out, oh, ow), dtype=np.float64)
    for b_ in range(n):
        for o in range(out):
            g = o // og
            for p in range(oh):
                for q in range(ow):
                    acc = 0.0 if b is None else float(b[o])
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                acc += float(w[o, ci, i, j]) * float(
                                    xp[b_, g * cg + ci, p * strides[0] + i * dilations[0],
                                       q * strides[1] + j * dilations[1]])
                    y[b_, o, p, q] = acc
    return y


CASES = [  # (n, c, h, w, out, k, strides, pads, dilations, group)
    (1, 3, 7, 6, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (2, 4, 9, 8, 6, (3, 2), (2, 1), (0, 1, 2, 0), (1, 2), 2),
    (1, 5, 8, 8, 5, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 5),     # depthwise, stride 2
    (3, 6, 5, 5, 12, (3, 3), (1, 1), (1, 1, 1, 1), (2, 2), 6),    # depthwise multiplier 2, dilated
    (1, 8, 4, 5, 3, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),     # pointwise
    (2, 4, 7, 5, 3, (1, 1), (2, 3), (0, 0, 0, 0), (1, 1), 1),     # strided pointwise, odd sizes
]


@pytest.mark.parametrize("case", CASES)
def test_conv2d_matches_loops(case, rng):
    n, c, h, wd, out, k, strides, pads, dilations, group = case
    x = rng.normal(size=(n, c, h, wd)).astype(np.float32)
    w = rng.normal(size=(out, c // group) + k).astype(np.float32)
    b = rng.normal(size=out).astype(np.float32)
    expected = conv_loops(x, w, b, strides, pads, dilations, group)
    y = conv2d(x, w, b, strides, pads, dilations, group)
    assert y.dtype == np.float32 and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv2d(x, w, b, strides, pads, dilations, group, "relu6"),
                               np.clip(expected, 0, 6), rtol=1e-5, atol=1e-5)


def test_conv2d_refuses_wrong_channels(rng):
    with pytest.raises(ShapeError, match="input channels"):
        conv2d(np.zeros((1, 3, 4, 4), np.float32), np.zeros((2, 2, 3, 3), np.float32), group=1)


def pool_loops(x, k, strides, pads, reduce, count_include_pad=0):
    n, c, h, w = x.shape
    oh = (h + pads[0] + pads[2] - k[0]) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - k[1]) // strides[1] + 1
    y = np.zeros((n, c, oh, ow))
    for p in range(oh):
        for q in range(ow):
            r0, c0 = p * strides[0] - pads[0], q * strides[1] - pads[1]
            window = x[:, :, max(r0, 0):min(r0 + k[0], h), max(c0, 0):min(c0 + k[1], w)]
            if reduce == "max":
                y[:, :, p, q] = window.max(axis=(2, 3))
            else:
                count = k[0] * k[1] if count_include_pad else window.shape[2] * window.shape[3]
                y[:, :, p, q] = window.sum(axis=(2, 3)) / count
    return y


@pytest.mark.parametrize("k,strides,pads", [((1, 1), (2, 2), (0, 0, 0, 0)), ((1, 3), (1, 2), (0, 1, 0, 1)),
                                            ((3, 1), (2, 1), (1, 0, 1, 0)), ((3, 3), (2, 2), (1, 1, 1, 1)),
                                            ((2, 3), (3, 2), (0, 1, 1, 0))])
def test_max_pool_exact_in_either_layout(k, strides, pads, rng):
    """MaxPool folds rows, then columns: exactly the loops' maximum, NCHW or NHWC, in a
    fresh C-order array even for a 1x1 window."""
    x = rng.normal(size=(2, 3, 7, 6)).astype(np.float32)
    expected = pool_loops(x, k, strides, pads, "max").astype(np.float32)
    np.testing.assert_array_equal(max_pool(x, k, strides, pads), expected)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y = max_pool(nhwc, k, strides, pads, axes=(1, 2))
    np.testing.assert_array_equal(y, expected.transpose(0, 2, 3, 1))
    assert y.flags.c_contiguous and not np.shares_memory(y, nhwc)


@pytest.mark.parametrize("k,strides,pads", [((2, 2), (2, 2), (0, 0, 0, 0)),
                                            ((3, 3), (2, 1), (1, 1, 1, 1)),
                                            ((3, 2), (1, 2), (0, 1, 1, 0))])
def test_pools_match_loops(k, strides, pads, rng):
    x = rng.normal(size=(2, 3, 7, 6)).astype(np.float32)
    np.testing.assert_allclose(max_pool(x, k, strides, pads), pool_loops(x, k, strides, pads, "max"),
                               rtol=1e-6)
    for include in (0, 1):
        np.testing.assert_allclose(average_pool(x, k, strides, pads, include),
                                   pool_loops(x, k, strides, pads, "avg", include), rtol=1e-5, atol=1e-6)


def small_cnn(rng, weight_2d=False):
    """conv 3x3 (relu) -> depthwise 3x3 stride 2 (relu6) -> maxpool -> avgpool ->
    clip -> global average pool."""
    tensors = {}

    def const(name, array):
        tensors[name] = Tensor.dense(name, array)
        return name

    w1 = rng.normal(size=(8, 3, 3, 3)).astype(np.float32)
    attrs1 = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1,
              "activation": "relu"}
    if weight_2d:
        w1 = w1.reshape(8, 27)
        attrs1["kernel"] = [3, 3, 3]
    nodes = [
        Node("Conv2d", "conv1", ["x", const("w1", w1), const("b1", rng.normal(size=8))], ["h1"], attrs1),
        Node("Conv2d", "dw", ["h1", const("w2", rng.normal(size=(8, 1, 3, 3)))], ["h2"],
             {"strides": [2, 2], "pads": [1, 1, 1, 1], "group": 8, "activation": "relu6"}),
        Node("MaxPool", "pool1", ["h2"], ["h3"], {"kernel_shape": [2, 2], "strides": [1, 1],
                                                  "pads": [0, 0, 1, 1]}),
        Node("AveragePool", "pool2", ["h3"], ["h4"], {"kernel_shape": [2, 2], "strides": [1, 1],
                                                      "pads": [1, 1, 0, 0], "count_include_pad": 0}),
        Node("Clip", "clip", ["h4"], ["h5"], {"min": -1.0, "max": 2.5}),
        Node("GlobalAveragePool", "gap", ["h5"], ["y"], {}),
    ]
    return Graph([ValueInfo("x", (None, 3, 10, 9))], [ValueInfo("y", (None, 8, 1, 1))], nodes, tensors)


def test_small_cnn_evaluates_like_its_parts(rng):
    graph = small_cnn(rng)
    graph.validate()
    x = rng.normal(size=(2, 3, 10, 9)).astype(np.float32)
    t = {k: v.to_dense() for k, v in graph.tensors.items()}
    h = np.maximum(conv_loops(x, t["w1"], t["b1"], (1, 1), (1, 1, 1, 1), (1, 1), 1), 0)
    h = np.clip(conv_loops(h.astype(np.float32), t["w2"], None, (2, 2), (1, 1, 1, 1), (1, 1), 8), 0, 6)
    h = pool_loops(h, (2, 2), (1, 1), (0, 0, 1, 1), "max")
    h = pool_loops(h, (2, 2), (1, 1), (1, 1, 0, 0), "avg")
    expected = np.clip(h, -1, 2.5).mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(evaluate(graph, x)["y"], expected, rtol=1e-5, atol=1e-5)
    # a weight stored as its 2-D matrix view plus attrs "kernel" means the same conv
    flat = small_cnn(np.random.default_rng(0), weight_2d=True)
    again = small_cnn(np.random.default_rng(0))
    np.testing.assert_allclose(evaluate(flat, x)["y"], evaluate(again, x)["y"], rtol=1e-6)


def test_small_cnn_round_trips_and_runs(rng, tmp_path):
    graph = small_cnn(rng, weight_2d=True)
    path = tmp_path / "cnn.edgerun"
    fmt.save(graph, path)
    loaded = fmt.load(path)
    assert [n.attrs for n in loaded.nodes] == [n.attrs for n in graph.nodes]
    x = rng.normal(size=(3, 3, 10, 9)).astype(np.float32)
    np.testing.assert_allclose(Session(loaded).run(x), evaluate(graph, x)["y"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("node_index,attrs,match", [
    (0, {"strides": [0, 1]}, "strides"),
    (0, {"pads": [1, 1, 1]}, "pads"),
    (0, {"activation": "gelu"}, "activation"),
    (0, {"kernel": [3, 3, 2]}, "kernel"),
    (2, {"kernel_shape": None}, "kernel_shape"),
    (3, {"count_include_pad": 2}, "count_include_pad"),
    (4, {"min": "zero"}, "Clip min"),
    (0, {"pads": [3, 0, 0, 0]}, "smaller than the dilated kernel"),
    (1, {"pads": [0, 0, 0, 3], "dilations": [1, 1]}, "smaller than the dilated kernel"),
    (2, {"pads": [0, 2, 0, 0]}, "smaller than the window"),
])
def test_bad_attrs_are_refused(node_index, attrs, match, rng, tmp_path):
    graph = small_cnn(rng, weight_2d=True)
    graph.nodes[node_index].attrs.update(attrs)
    with pytest.raises(FormatError, match=match):
        fmt.save(graph, tmp_path / "bad.edgerun")


def test_conv_weight_must_be_4d_without_kernel(rng):
    graph = small_cnn(rng, weight_2d=True)
    del graph.nodes[0].attrs["kernel"]
    with pytest.raises(ShapeError, match="4-D"):
        graph.validate()


# ------------------------------------------------------------------ runtime: Conv2dStep

def conv_graph(weight, bias, attrs, in_shape):
    tensors = {"w": weight}
    inputs = ["x", "w"]
    if bias is not None:
        tensors["b"] = Tensor.dense("b", bias)
        inputs.append("b")
    node = Node("Conv2d", "conv", inputs, ["y"], attrs)
    return Graph([ValueInfo("x", (None,) + in_shape)], [ValueInfo("y", (None, None, None, None))],
                 [node], tensors)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_session_conv_matches_evaluate(case, activation, rng):
    n, c, h, wd, out, k, strides, pads, dilations, group = case
    w = (3 * rng.normal(size=(out, c // group) + k)).astype(np.float32)
    attrs = {"strides": list(strides), "pads": list(pads), "dilations": list(dilations),
             "group": group, "activation": activation}
    graph = conv_graph(Tensor.dense("w", w), rng.normal(size=out), attrs, (c, h, wd))
    x = rng.normal(size=(n, c, h, wd)).astype(np.float32)
    session = Session(graph)
    expected = "dwconv2d_f32" if c == out == group else "blas_grouped" if group > 1 else "blas"
    assert session.layers == [("conv", expected)]
    np.testing.assert_allclose(session.run(x), evaluate(graph, x)["y"], rtol=1e-5, atol=1e-5)


def test_int8_conv_weight_runs_on_gemm_s8(rng):
    w = rng.normal(size=(6, 4, 3, 3)).astype(np.float32)
    scale = (np.abs(w).reshape(6, -1).max(axis=1) / 127).astype(np.float32)
    q = np.round(w / scale[:, None, None, None]).astype(np.int8)
    weight = Tensor("w", (6, 4, 3, 3), "dense", {"values": q, "scale": scale})
    attrs = {"strides": [2, 1], "pads": [1, 1, 1, 1], "group": 1, "activation": "relu6"}
    graph = conv_graph(weight, rng.normal(size=6), attrs, (4, 7, 6))
    x = rng.normal(size=(2, 4, 7, 6)).astype(np.float32)
    session = Session(graph)
    assert session.layers == [("conv", "gemm_s8")]
    expected = evaluate(graph, x)["y"]
    y = session.run(x)
    assert y.max() <= 6 and y.min() >= 0
    # int8 activations: error of the order of one input quantization step
    assert np.linalg.norm(y - expected) / np.linalg.norm(expected) < 0.02


def test_session_small_cnn_with_reference_kernels(rng):
    from edgerun import reference

    graph = small_cnn(rng)
    x = rng.normal(size=(2, 3, 10, 9)).astype(np.float32)
    y = Session(graph, kernels=reference).run(x)
    np.testing.assert_allclose(y, evaluate(graph, x)["y"], rtol=1e-5, atol=1e-6)
    assert Session(graph).layers == [("conv1", "blas"), ("dw", "dwconv2d_f32")]


def test_session_refuses_wrong_channels(rng):
    graph = small_cnn(rng)
    graph.inputs[0] = ValueInfo("x", (None, 4, 10, 9))
    with pytest.raises(ShapeError, match="3 channels"):
        Session(graph).run(np.zeros((1, 4, 10, 9), np.float32))
