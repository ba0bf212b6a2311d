"""edgerun.import_onnx: the imported Graph computes what onnxruntime computes on the ONNX model.

The Graph is run by a small numpy executor below (not edgerun's runtime, so these tests pin
the importer alone) and compared with onnxruntime on random inputs at batch 1 and 7.
onnx and onnxruntime come with the `test` extra; without them these tests fail, not skip.
"""
import hashlib

import numpy as np
import pytest

import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import edgerun
from edgerun import EdgerunError, UnsupportedOpError

import onnx_models as models  # pytest puts tests/ on sys.path (it has no __init__.py)


# ------------------------------------------------------------------ a reference executor

def run_graph(graph, feeds):
    """Evaluate an edgerun Graph with numpy, op by op, as documented in edgerun/graph.py."""
    values = {name: np.asarray(array, dtype=np.float32) for name, array in feeds.items()}
    values.update({name: tensor.to_dense() for name, tensor in graph.tensors.items()})
    for node in graph.nodes:
        args = [values[name] for name in node.inputs]
        x = args[0]
        if node.op == "Linear":
            y = x @ args[1].T
            if len(args) > 2:
                y = y + args[2]
            if node.attrs.get("activation") == "relu":
                y = np.maximum(y, 0)
        elif node.op == "Relu":
            y = np.maximum(x, 0)
        elif node.op == "Sigmoid":
            y = 1 / (1 + np.exp(-x))
        elif node.op == "Tanh":
            y = np.tanh(x)
        elif node.op == "Softmax":
            shifted = np.exp(x - x.max(axis=node.attrs["axis"], keepdims=True))
            y = shifted / shifted.sum(axis=node.attrs["axis"], keepdims=True)
        elif node.op == "Add":
            y = x + args[1]
        elif node.op == "Mul":
            y = x * args[1]
        elif node.op == "Flatten":
            axis = node.attrs["axis"]
            y = x.reshape(int(np.prod(x.shape[:axis])), -1)
        elif node.op == "Reshape":
            shape = [x.shape[i] if d == 0 else d for i, d in enumerate(node.attrs["shape"])]
            y = x.reshape(shape)
        else:
            raise AssertionError(f"the importer emitted an op outside the Graph vocabulary: {node.op}")
        values[node.outputs[0]] = y.astype(np.float32)
    return [values[v.name] for v in graph.outputs]


def run_onnxruntime(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def random_feeds(model, batch, seed=0):
    """Random float32 inputs; a dim named "N" or with neither value nor name is the batch."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.input:
        dims = [d.dim_value if d.dim_value else batch for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def assert_matches_onnxruntime(model, batches=(1, 7)):
    graph = edgerun.import_onnx(model)
    for batch in batches:
        feeds = random_feeds(model, batch, seed=batch)
        expected = run_onnxruntime(model, feeds)
        got = run_graph(graph, feeds)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    return graph


def ops(graph):
    return [node.op for node in graph.nodes]


# ------------------------------------------------------------------ numerics against onnxruntime

MODELS = {
    "gemm_relu_softmax": lambda: models.gemm_mlp(),
    "gemm_transB0": lambda: models.gemm_mlp(trans_b=0),
    "gemm_alpha_beta": lambda: models.gemm_mlp(trans_b=1, alpha=0.5, beta=2.0),
    "gemm_transB0_alpha_beta": lambda: models.gemm_mlp(trans_b=0, alpha=-1.5, beta=0.25),
    "gemm_beta0": lambda: models.gemm_mlp(beta=0.0),
    "gemm_row_bias": lambda: models.gemm_mlp(bias_shape="row", activation="Tanh"),
    "gemm_scalar_bias": lambda: models.gemm_mlp(bias_shape="scalar", activation="Sigmoid", softmax=False),
    "matmul_add": lambda: models.matmul_mlp(),
    "matmul_add_row_bias": lambda: models.matmul_mlp(bias_rank=2, activations=("Relu",)),
    "pytorch_flatten_gemm": models.pytorch_style_cnn_head,
    "view_flatten_constants": lambda: models.view_flatten(use_constant_nodes=True),
    "view_flatten_initializers": lambda: models.view_flatten(use_constant_nodes=False),
    "view_flatten_opset11": lambda: models.view_flatten(opset=11),
    "view_flatten_cast": lambda: models.view_flatten(cast=True),
    "elementwise_mix": models.elementwise_mix,
    "batchnorm": models.batchnorm_mlp,
    "sklearn_regressor": models.sklearn_style_regressor,
    "softmax_axis1_opset13": lambda: models.softmax_3d(axis=1, opset=13),
    "softmax_axis1_opset11": lambda: models.softmax_3d(axis=1, opset=11),
    "softmax_axis2_opset11": lambda: models.softmax_3d(axis=2, opset=11),
    "softmax_axis0_opset11": lambda: models.softmax_3d(axis=0, opset=11),
    "softmax_negative_axis_opset13": lambda: models.softmax_3d(axis=-2, opset=13),
}


@pytest.mark.parametrize("build", MODELS.values(), ids=MODELS.keys())
def test_imported_graph_matches_onnxruntime(build):
    model = build()
    onnx.checker.check_model(model)
    assert_matches_onnxruntime(model)


# ------------------------------------------------------------------ what the Graph looks like

@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_weight_is_stored_out_by_in_with_alpha_and_beta_folded(trans_b):
    model = models.gemm_mlp(sizes=(6, 4, 3), trans_b=trans_b, alpha=0.5, beta=3.0)
    graph = edgerun.import_onnx(model)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    linear = graph.nodes[0]
    weight = graph.tensors[linear.inputs[1]]
    torch_layout = inits["fc0.weight"] if trans_b else inits["fc0.weight"].T
    assert weight.shape == (4, 6)
    assert weight.arrays["values"].dtype == np.float32
    np.testing.assert_allclose(weight.to_dense(), 0.5 * torch_layout, rtol=1e-7)
    np.testing.assert_allclose(graph.tensors[linear.inputs[2]].to_dense(), 3.0 * inits["fc0.bias"], rtol=1e-7)


def test_gemm_with_beta_zero_has_no_bias():
    graph = edgerun.import_onnx(models.gemm_mlp(beta=0.0))
    assert all(len(node.inputs) == 2 for node in graph.nodes if node.op == "Linear")


def test_relu_after_linear_is_fused():
    graph = edgerun.import_onnx(models.gemm_mlp(sizes=(12, 20, 20, 7)))
    assert ops(graph) == ["Linear", "Linear", "Linear", "Softmax"]
    assert [n.attrs["activation"] for n in graph.nodes[:3]] == ["relu", "relu", None]
    graph.validate()


def test_relu_is_kept_when_the_linear_output_has_another_consumer():
    graph = edgerun.import_onnx(models.elementwise_mix())
    relu = [n for n in graph.nodes if n.op == "Relu"]
    assert len(relu) == 1 and relu[0].name == "relu1"
    assert graph.nodes[0].op == "Linear" and graph.nodes[0].attrs["activation"] is None


def test_relu_is_kept_when_the_linear_output_is_a_graph_output():
    rng = np.random.default_rng(11)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
             helper.make_node("Relu", ["h"], ["y"], name="relu")]
    model = models.make_model(nodes, [models.float_input("x", 3)],
                              [models.float_output("h", 2), models.float_output("y", 2)],
                              [("w", models.weights(rng, 2, 3))])
    graph = assert_matches_onnxruntime(model)
    assert ops(graph) == ["Linear", "Relu"]
    assert [v.name for v in graph.outputs] == ["h", "y"]


def test_matmul_add_becomes_one_linear_with_bias():
    model = models.matmul_mlp(sizes=(10, 16, 5), activations=("Relu",))
    graph = edgerun.import_onnx(model)
    assert ops(graph) == ["Linear", "Linear"]                      # no Add, no Relu left
    assert [n.attrs["activation"] for n in graph.nodes] == ["relu", "relu"]
    assert all(len(n.inputs) == 3 for n in graph.nodes)
    assert graph.outputs[0].name == "y"                           # the Identity's name survives
    first = graph.nodes[0]
    kernel = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "dense0/kernel"))
    np.testing.assert_array_equal(graph.tensors[first.inputs[1]].to_dense(), kernel.T)


def test_symbolic_batch_dimension_becomes_none():
    graph = edgerun.import_onnx(models.pytorch_style_cnn_head())
    assert graph.inputs[0].shape == (None, 2, 3, 4)
    assert graph.outputs[0].shape == (None, 5)
    assert graph.inputs[0].dtype == "float32"


def test_pytorch_export_pattern_imports_as_flatten_and_two_linears():
    graph = edgerun.import_onnx(models.pytorch_style_cnn_head())
    assert ops(graph) == ["Flatten", "Linear", "Linear"]
    assert graph.nodes[0].attrs == {"axis": 1}
    assert graph.nodes[1].attrs["activation"] == "relu"          # Dropout between was dropped
    assert [n.name for n in graph.nodes[1:]] == ["/fc1/Gemm", "/fc2/Gemm"]
    assert set(graph.tensors) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert [node.name for node, _ in graph.weights()] == ["/fc1/Gemm", "/fc2/Gemm"]


@pytest.mark.parametrize("use_constant_nodes", [True, False])
def test_shape_gather_unsqueeze_concat_folds_into_reshape_copying_the_batch(use_constant_nodes):
    graph = edgerun.import_onnx(models.view_flatten(use_constant_nodes=use_constant_nodes))
    assert ops(graph) == ["Reshape", "Linear", "Reshape"]
    assert graph.nodes[0].attrs["shape"] == [0, -1]
    assert graph.nodes[2].attrs["shape"] == [-1, 2, 3]
    assert set(graph.tensors) == {"w", "b"}                        # shape constants are folded away


def test_view_with_batch_and_static_dims_keeps_every_entry():
    """x.view(x.size(0), 4, -1): the batch entry is symbolic, the others plain integers."""
    rng = np.random.default_rng(16)
    nodes = [helper.make_node("Shape", ["x"], ["shape"], name="shape"),
             helper.make_node("Gather", ["shape", "zero"], ["batch"], name="gather", axis=0),
             helper.make_node("Unsqueeze", ["batch", "axes"], ["batch_1d"], name="unsqueeze"),
             helper.make_node("Concat", ["batch_1d", "rest"], ["target"], name="concat", axis=0),
             helper.make_node("Reshape", ["x", "target"], ["v"], name="view"),
             helper.make_node("MatMul", ["v", "w"], ["y"], name="fc")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 3, 2])]
    model = models.make_model(nodes, inputs, [models.float_output("y", 4, 5)],
                              [("zero", np.array(0, np.int64)), ("axes", np.array([0], np.int64)),
                               ("rest", np.array([4, -1], np.int64)), ("w", models.weights(rng, 6, 5))])
    graph = assert_matches_onnxruntime(model)
    assert graph.nodes[0].attrs["shape"] == [0, 4, -1]
    assert graph.outputs[0].shape == (None, 4, 5)


def test_batchnorm_after_linear_folds_into_it():
    graph = edgerun.import_onnx(models.batchnorm_mlp())
    # BatchNorm2d on the input has no Linear before it: it stays a per-channel Mul + Add.
    assert ops(graph) == ["Mul", "Add", "Flatten", "Linear", "Linear"]
    assert graph.tensors[graph.nodes[0].inputs[1]].shape == (2, 1, 1)
    assert graph.nodes[3].attrs["activation"] == "relu"
    assert "fc1.weight" not in graph.tensors        # replaced by the BatchNorm-scaled copy
    assert set(graph.tensors) >= {"fc2.weight", "fc2.bias"}


def test_linear_followed_by_scale_and_shift_folds_into_weight_and_bias():
    rng = np.random.default_rng(15)
    w, b = models.weights(rng, 3, 4), np.array([0.1, -0.2, 0.3], np.float32)
    scale = np.array([2.0, -1.0, 0.5], np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
             helper.make_node("Mul", ["h", "scale"], ["s"], name="scale"),
             helper.make_node("Add", ["s", "shift"], ["t"], name="shift"),
             helper.make_node("Relu", ["t"], ["y"], name="relu")]
    model = models.make_model(nodes, [models.float_input("x", 4)], [models.float_output("y", 3)],
                              [("w", w), ("b", b), ("scale", scale.reshape(1, 3)),
                               ("shift", np.array(0.5, np.float32))])
    graph = assert_matches_onnxruntime(model)
    assert ops(graph) == ["Linear"] and graph.nodes[0].attrs["activation"] == "relu"
    linear = graph.nodes[0]
    np.testing.assert_allclose(graph.tensors[linear.inputs[1]].to_dense(), w * scale[:, None])
    np.testing.assert_allclose(graph.tensors[linear.inputs[2]].to_dense(), b * scale + 0.5)


@pytest.mark.parametrize("axis", [-4, -3, -1, 0, 2, 4])
def test_flatten_axis_follows_onnx_including_negative_axes(axis):
    nodes = [helper.make_node("Flatten", ["x"], ["y"], name="flatten", axis=axis)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 4])]
    model = models.make_model(nodes, inputs, [models.float_output("y", None)])
    graph = assert_matches_onnxruntime(model)
    assert graph.nodes[0].attrs["axis"] == (axis + 4 if axis < 0 else axis)


@pytest.mark.parametrize("opset", [11, 17])
def test_squeeze_and_unsqueeze_of_activations_become_reshapes(opset):
    rng = np.random.default_rng(17)
    if opset >= 13:
        nodes = [helper.make_node("Unsqueeze", ["x", "axis1"], ["u"], name="unsqueeze"),
                 helper.make_node("MatMul", ["u", "w"], ["h"], name="fc"),
                 helper.make_node("Squeeze", ["h", "axis_minus2"], ["y"], name="squeeze")]
    else:
        nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], name="unsqueeze", axes=[1]),
                 helper.make_node("MatMul", ["u", "w"], ["h"], name="fc"),
                 helper.make_node("Squeeze", ["h"], ["y"], name="squeeze", axes=[-2])]
    model = models.make_model(nodes, [models.float_input("x", 6)], [models.float_output("y", 4)],
                              [("w", models.weights(rng, 6, 4)), ("axis1", np.array([1], np.int64)),
                               ("axis_minus2", np.array([-2], np.int64))], opset=opset)
    graph = assert_matches_onnxruntime(model)
    assert ops(graph) == ["Reshape", "Linear", "Reshape"]
    assert graph.nodes[0].attrs["shape"] == [0, 1, 6] and graph.nodes[2].attrs["shape"] == [0, 4]
    assert graph.outputs[0].shape == (None, 4)


def test_squeezing_a_dim_that_is_not_one_raises_shape_error():
    nodes = [helper.make_node("Squeeze", ["x", "axes"], ["y"], name="squeeze")]
    model = models.make_model(nodes, [models.float_input("x", 6)], [models.float_output("y", None)],
                              [("axes", np.array([1], np.int64))])
    with pytest.raises(edgerun.ShapeError, match="'squeeze'.*must be 1"):
        edgerun.import_onnx(model)


def test_weights_from_constant_nodes_become_tensors():
    rng = np.random.default_rng(18)
    w = models.weights(rng, 3, 5)
    nodes = [helper.make_node("Constant", [], ["w"], name="weight", value=numpy_helper.from_array(w)),
             helper.make_node("Constant", [], ["b"], name="bias", value_floats=[0.5, -0.5, 1.0]),
             helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)]
    model = models.make_model(nodes, [models.float_input("x", 5)], [models.float_output("y", 3)])
    graph = assert_matches_onnxruntime(model)
    assert ops(graph) == ["Linear"] and set(graph.tensors) == {"w", "b"}


def test_legacy_softmax_is_imported_with_flattening_semantics():
    graph = edgerun.import_onnx(models.softmax_3d(axis=1, opset=11))
    assert ops(graph) == ["Linear", "Flatten", "Softmax", "Reshape"]
    assert graph.nodes[-1].attrs["shape"] == [0, 3, 4]
    assert edgerun.import_onnx(models.softmax_3d(axis=1, opset=13)).nodes[-1].attrs == {"axis": 1}


def test_float16_initializer_behind_a_cast_is_converted_to_float32():
    rng = np.random.default_rng(12)
    w16 = models.weights(rng, 4, 3).astype(np.float16)
    nodes = [helper.make_node("Cast", ["w16"], ["w"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)]
    model = models.make_model(nodes, [models.float_input("x", 3)], [models.float_output("y", 4)],
                              [("w16", w16)])
    graph = assert_matches_onnxruntime(model)
    weight = graph.tensors[graph.nodes[0].inputs[1]]
    assert weight.arrays["values"].dtype == np.float32
    np.testing.assert_array_equal(weight.to_dense(), w16.astype(np.float32))


def test_unnamed_batch_dim_and_double_input_import_as_float32_with_none():
    model = models.sklearn_style_regressor(input_type=TensorProto.DOUBLE)
    graph = edgerun.import_onnx(model)
    assert graph.inputs[0].shape == (None, 6) and graph.inputs[0].dtype == "float32"
    assert ops(graph) == ["Linear", "Linear", "Reshape"]               # Cast dropped, Relu fused
    x = np.random.default_rng(3).standard_normal((7, 6))
    expected = run_onnxruntime(model, {"X": x})[0]
    np.testing.assert_allclose(run_graph(graph, {"X": x.astype(np.float32)})[0], expected, rtol=1e-5, atol=1e-6)


def test_tied_weights_stay_one_tensor():
    rng = np.random.default_rng(13)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc1", transB=1),
             helper.make_node("Gemm", ["h", "w"], ["y"], name="fc2", transB=1)]
    model = models.make_model(nodes, [models.float_input("x", 4)], [models.float_output("y", 4)],
                              [("w", models.weights(rng, 4, 4))])
    graph = assert_matches_onnxruntime(model)
    assert list(graph.tensors) == ["w"]
    assert graph.nodes[0].inputs[1] == graph.nodes[1].inputs[1] == "w"


def test_identity_outputs_keep_their_names():
    rng = np.random.default_rng(14)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
             helper.make_node("Identity", ["h"], ["y1"], name="id1"),
             helper.make_node("Identity", ["h"], ["y2"], name="id2"),
             helper.make_node("Identity", ["x"], ["x_copy"], name="id3")]
    model = models.make_model(nodes, [models.float_input("x", 3)],
                              [models.float_output("y1", 2), models.float_output("y2", 2),
                               models.float_output("x_copy", 3)],
                              [("w", models.weights(rng, 2, 3))])
    graph = assert_matches_onnxruntime(model)
    assert [v.name for v in graph.outputs] == ["y1", "y2", "x_copy"]


def classifier_with_label_output():
    """Probabilities and an ArgMax label, as scikit-learn / skl2onnx classifiers export."""
    rng = np.random.default_rng(19)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["logits"], name="fc", transB=1),
             helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
             helper.make_node("ArgMax", ["probabilities"], ["label"], name="argmax", axis=1)]
    outputs = [helper.make_tensor_value_info("label", TensorProto.INT64, ["N", 1]),
               models.float_output("probabilities", 3)]
    inputs = [models.float_input("x", 4), models.float_input("unused_side_input", 2)]
    return models.make_model(nodes, inputs, outputs,
                             [("w", models.weights(rng, 3, 4)), ("b", np.zeros(3, np.float32))])


def test_choosing_outputs_imports_only_what_they_depend_on():
    model = classifier_with_label_output()
    with pytest.raises(UnsupportedOpError, match="'argmax' uses ArgMax"):
        edgerun.import_onnx(model)
    graph = edgerun.import_onnx(model, outputs=["probabilities"])
    assert ops(graph) == ["Linear", "Softmax"]
    assert [v.name for v in graph.inputs] == ["x"]
    assert [v.name for v in graph.outputs] == ["probabilities"]
    x = np.random.default_rng(1).standard_normal((7, 4)).astype(np.float32)
    expected = run_onnxruntime(model, {"x": x, "unused_side_input": np.zeros((7, 2), np.float32)})[1]
    np.testing.assert_allclose(run_graph(graph, {"x": x})[0], expected, rtol=1e-5, atol=1e-6)
    # An intermediate value can be an output too.
    assert [v.name for v in edgerun.import_onnx(model, outputs="logits").outputs] == ["logits"]
    with pytest.raises(EdgerunError, match=r"no value 'probs'.*'label', 'probabilities'"):
        edgerun.import_onnx(model, outputs=["probs"])


def test_metadata_records_producer_opset_and_source_hash(tmp_path):
    model = models.gemm_mlp()
    path = tmp_path / "mlp.onnx"
    onnx.save_model(model, str(path))
    graph = edgerun.import_onnx(str(path))
    assert graph.metadata["producer_name"] == "edgerun-tests"
    assert graph.metadata["producer_version"] == "1.0"
    assert graph.metadata["opset"] == 17
    assert graph.metadata["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    from_bytes = edgerun.import_onnx(path.read_bytes())
    from_proto = edgerun.import_onnx(model)
    assert from_bytes.metadata["source_sha256"] == graph.metadata["source_sha256"]
    assert ops(from_proto) == ops(graph) == ops(from_bytes)
    assert from_proto.metadata["source_sha256"] == hashlib.sha256(model.SerializeToString()).hexdigest()


# ------------------------------------------------------------------ what it refuses, and how

def test_conv_transpose_is_unsupported_and_named():
    expected = r"node 'conv1' uses ConvTranspose \(opset 17\), which edgerun cannot import"
    with pytest.raises(UnsupportedOpError, match=expected):
        edgerun.import_onnx(models.conv_transpose_model())


def test_every_unsupported_op_is_listed_at_once():
    model = models.conv_transpose_model()
    model.graph.node.extend([helper.make_node("Einsum", ["y"], ["p"], name="sum", equation="ij->i"),
                             helper.make_node("LSTM", ["p", "k", "k"], ["q"], name="rnn")])
    model.graph.output[0].name = "q"
    with pytest.raises(UnsupportedOpError, match=r"'conv1' uses ConvTranspose .*also uses Einsum, LSTM"):
        edgerun.import_onnx(model)


def test_nodes_no_output_depends_on_are_ignored():
    model = models.gemm_mlp()
    model.graph.node.extend([helper.make_node("Conv", ["x", "fc0.weight"], ["unused"], name="dead_conv")])
    assert ops(edgerun.import_onnx(model)) == ["Linear", "Linear", "Softmax"]


def test_lstm_is_unsupported_and_named():
    with pytest.raises(UnsupportedOpError, match=r"'lstm_0' uses LSTM"):
        edgerun.import_onnx(models.lstm_model())


def test_unnamed_node_gets_a_name_in_the_message():
    model = models.conv_transpose_model()
    model.graph.node[0].name = ""
    with pytest.raises(UnsupportedOpError, match=r"'ConvTranspose_0' uses ConvTranspose"):
        edgerun.import_onnx(model)


def test_matmul_between_two_activations_imports_as_graph_matmul():
    # (was unsupported before the transformer ops; tests/test_onnx_transformer.py covers it fully)
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"], name="attention_scores")]
    model = models.make_model(nodes, [models.float_input("a", 4), helper.make_tensor_value_info(
        "b", TensorProto.FLOAT, [4, 3])], [models.float_output("y", 3)])
    graph = edgerun.import_onnx(model)
    assert [n.op for n in graph.nodes] == ["MatMul"]


def test_reshape_to_a_runtime_shape_is_unsupported():
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="dynamic_reshape")]
    inputs = [models.float_input("x", 4), helper.make_tensor_value_info("s", TensorProto.FLOAT, [2])]
    model = models.make_model(nodes, inputs, [models.float_output("y", None)])
    with pytest.raises(EdgerunError, match="'s'"):
        edgerun.import_onnx(model)


def test_custom_domain_op_is_unsupported():
    model = models.gemm_mlp()
    model.graph.node[1].domain = "com.microsoft"
    with pytest.raises(UnsupportedOpError, match="com.microsoft"):
        edgerun.import_onnx(model)


@pytest.mark.parametrize("data", [b"", b"this is not an ONNX model at all", bytes(range(256)) * 4],
                         ids=["empty", "text", "binary"])
def test_bytes_that_are_not_onnx_raise_edgerun_error(data):
    with pytest.raises(EdgerunError, match="not an ONNX model"):
        edgerun.import_onnx(data)


def test_bad_paths_raise_edgerun_error(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("definitely not protobuf\n" * 10)
    with pytest.raises(EdgerunError, match="not an ONNX model"):
        edgerun.import_onnx(text)
    with pytest.raises(EdgerunError, match="cannot read"):
        edgerun.import_onnx(tmp_path / "missing.onnx")
    with pytest.raises(EdgerunError, match="expects a path"):
        edgerun.import_onnx(12345)


def test_truncated_model_raises_edgerun_error():
    data = models.gemm_mlp().SerializeToString()
    with pytest.raises(EdgerunError):
        edgerun.import_onnx(data[: len(data) // 2])


def test_initializer_whose_data_does_not_match_its_dims_raises_edgerun_error():
    model = models.gemm_mlp()
    model.graph.initializer[0].dims[0] = 1000
    with pytest.raises(EdgerunError, match=r"tensor 'fc0.weight'.*cannot be read"):
        edgerun.import_onnx(model)


def test_huge_constant_of_shape_is_refused_not_allocated():
    nodes = [helper.make_node("ConstantOfShape", ["dims"], ["big"], name="fill"),
             helper.make_node("Add", ["x", "big"], ["y"], name="add")]
    model = models.make_model(nodes, [models.float_input("x", 3)], [models.float_output("y", 3)],
                              [("dims", np.array([1 << 20, 1 << 20, 3], np.int64))])
    with pytest.raises(EdgerunError, match="'fill'.*too large"):
        edgerun.import_onnx(model)


def test_integer_input_raises_edgerun_error():
    # INT32 / INT64 inputs are token ids and masks now; other integer types are refused
    model = models.gemm_mlp()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    with pytest.raises(EdgerunError, match=r"input 'x' has element type UINT8"):
        edgerun.import_onnx(model)


def test_external_data_raises_edgerun_error(tmp_path):
    path = tmp_path / "external.onnx"
    onnx.save_model(models.gemm_mlp(), str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    with pytest.raises(EdgerunError, match=r"external file 'weights.bin'"):
        edgerun.import_onnx(path)
    # Loaded by onnx (which resolves the external file) the same model imports fine.
    graph = edgerun.import_onnx(onnx.load(str(path)))
    assert ops(graph) == ["Linear", "Linear", "Softmax"]


def test_integer_initializer_used_as_a_weight_raises_edgerun_error():
    nodes = [helper.make_node("Add", ["x", "offset"], ["y"], name="add_int")]
    model = models.make_model(nodes, [models.float_input("x", 3)], [models.float_output("y", 3)],
                              [("offset", np.arange(3, dtype=np.int64))])
    with pytest.raises(EdgerunError, match=r"'add_int'.*'offset' has dtype int64"):
        edgerun.import_onnx(model)


def test_mismatched_weight_shape_raises_shape_error():
    model = models.gemm_mlp(sizes=(12, 20, 7))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 13
    with pytest.raises(edgerun.ShapeError, match=r"'/fc0/Gemm'.*13 features.*expects 12"):
        edgerun.import_onnx(model)
