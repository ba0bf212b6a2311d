"""Small CNNs built with onnx.helper: import_onnx, then edgerun.evaluate and Session
against onnxruntime (batch 1 and 3), and what the importer folds and fuses."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper

import edgerun
from edgerun.evaluate import evaluate
from edgerun.runtime.session import Session

import onnx_models as models

CNNS = {"resnet": (models.resnet_block_cnn, (3, 12, 12)),
        "mobilenet_v2": (models.mobilenet_v2_cnn, (8, 11, 11)),
        "kws": (models.kws_cnn, (1, 20, 16))}


def onnxruntime_run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("name", sorted(CNNS))
@pytest.mark.parametrize("batch", [1, 3])
def test_cnn_matches_onnxruntime(name, batch):
    build, shape = CNNS[name]
    model = build()
    graph = edgerun.import_onnx(model)
    x = np.random.default_rng(batch).standard_normal((batch,) + shape).astype(np.float32)
    expected = onnxruntime_run(model, x)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(evaluate(graph, x)["logits"], expected, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(Session(graph).run(x), expected, rtol=1e-5, atol=1e-5 * scale)


def ops(graph):
    return [n.op for n in graph.nodes]


def test_batchnorm_and_relu_fold_into_the_convs():
    graph = edgerun.import_onnx(models.resnet_block_cnn())
    # the residual Add reads the stem's output and the block's: both stay, nothing else
    assert ops(graph) == ["Conv2d", "Conv2d", "Conv2d", "Add", "Relu", "GlobalAveragePool",
                          "Flatten", "Linear"]
    assert [n.attrs["activation"] for n in graph.nodes[:3]] == ["relu", "relu", None]
    assert all(len(n.inputs) == 3 for n in graph.nodes[:3])  # BN's shift became the bias


def test_relu6_clip_fuses_and_depthwise_keeps_its_groups():
    graph = edgerun.import_onnx(models.mobilenet_v2_cnn())
    convs = [n for n in graph.nodes if n.op == "Conv2d"]
    assert len(convs) == 6 and "Clip" not in ops(graph) and "Mul" not in ops(graph)
    assert [c.attrs["activation"] for c in convs] == ["relu6", "relu6", None] * 2
    assert [c.attrs["group"] for c in convs] == [1, 24, 1, 1, 48, 1]
    assert convs[1].attrs["strides"] == [2, 2] and convs[4].attrs["pads"] == [1, 1, 1, 1]


def test_kws_pools_keep_their_geometry():
    graph = edgerun.import_onnx(models.kws_cnn())
    pools = {n.op: n.attrs for n in graph.nodes if n.op.endswith("Pool")}
    assert pools["MaxPool"] == {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0]}
    assert pools["AveragePool"]["pads"] == [1, 0, 1, 0] and pools["AveragePool"]["count_include_pad"] == 0
    assert [n.attrs["dilations"] for n in graph.nodes if n.op == "Conv2d"] == [[1, 1], [1, 2]]


def test_same_lower_and_asymmetric_same_upper_pads():
    rng = np.random.default_rng(5)
    for auto_pad, expected in (("SAME_UPPER", [0, 0, 1, 1]), ("SAME_LOWER", [1, 1, 0, 0])):
        node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", auto_pad=auto_pad, strides=[2, 2])
        model = models.make_model([node], [helper.make_tensor_value_info("x", 1, ["N", 2, 8, 8])],
                                  [models.float_output("y", 3, 4, 4)],
                                  [("w", rng.standard_normal((3, 2, 3, 3)).astype(np.float32))])
        graph = edgerun.import_onnx(model)
        assert graph.nodes[0].attrs["pads"] == expected
        x = rng.standard_normal((2, 2, 8, 8)).astype(np.float32)
        np.testing.assert_allclose(evaluate(graph, x)["y"], onnxruntime_run(model, x), rtol=1e-5, atol=1e-5)


def test_conv1d_runs_as_conv2d_and_ceil_mode_is_refused_by_name():
    rng = np.random.default_rng(4)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1d", strides=[2], pads=[1, 2],
                            dilations=[2])
    model = models.make_model([node], [helper.make_tensor_value_info("x", 1, ["N", 2, 9])],
                              [models.float_output("y", 3, 5)],
                              [("w", rng.standard_normal((3, 2, 3)).astype(np.float32))])
    graph = edgerun.import_onnx(model)
    assert ops(graph) == ["Reshape", "Conv2d", "Reshape"]
    assert graph.nodes[1].attrs["pads"] == [0, 1, 0, 2] and graph.nodes[1].attrs["dilations"] == [1, 2]
    x = rng.standard_normal((2, 2, 9)).astype(np.float32)
    np.testing.assert_allclose(Session(graph).run(x), onnxruntime_run(model, x), rtol=1e-5, atol=1e-5)
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], ceil_mode=1)
    model = models.make_model([node], [helper.make_tensor_value_info("x", 1, ["N", 2, 5, 5])],
                              [models.float_output("y", 2, 3, 3)])
    with pytest.raises(edgerun.UnsupportedOpError, match=r"'pool' uses MaxPool .*ceil_mode=1"):
        edgerun.import_onnx(model)


@pytest.mark.parametrize("opset", [10, 13])
def test_clip_before_and_after_opset_11(opset):
    """Clip(0, 6) after a Conv fuses into relu6 (attributes before opset 11, inputs after);
    a Clip on the graph input stays a Clip."""
    rng = np.random.default_rng(9)
    inits = [("w", rng.standard_normal((4, 2, 3, 3)).astype(np.float32))]
    if opset < 11:
        first = helper.make_node("Clip", ["x"], ["c"], name="clip_in", min=-1.5, max=1.0)
        relu6 = helper.make_node("Clip", ["h"], ["y"], name="relu6", min=0.0, max=6.0)
    else:
        inits += [("lo", np.array(-1.5, np.float32)), ("hi", np.array(1.0, np.float32)),
                  ("zero", np.array(0, np.float32)), ("six", np.array(6, np.float32))]
        first = helper.make_node("Clip", ["x", "lo", "hi"], ["c"], name="clip_in")
        relu6 = helper.make_node("Clip", ["h", "zero", "six"], ["y"], name="relu6")
    conv = helper.make_node("Conv", ["c", "w"], ["h"], name="conv", pads=[1, 1, 1, 1])
    model = models.make_model([first, conv, relu6], [helper.make_tensor_value_info("x", 1, ["N", 2, 6, 6])],
                              [models.float_output("y", 4, 6, 6)], inits, opset=opset)
    graph = edgerun.import_onnx(model)
    assert ops(graph) == ["Clip", "Conv2d"] and graph.nodes[1].attrs["activation"] == "relu6"
    assert graph.nodes[0].attrs == {"min": -1.5, "max": 1.0}
    x = (3 * rng.standard_normal((2, 2, 6, 6))).astype(np.float32)
    expected = onnxruntime_run(model, x)
    assert (expected == 6).any() and (expected == 0).any()     # both bounds matter on this input
    np.testing.assert_allclose(Session(graph).run(x), expected, rtol=1e-5, atol=1e-5)
