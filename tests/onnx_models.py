"""Small ONNX models built in code (onnx.helper) with fixed seeds, for the importer tests.

Every builder returns an onnx.ModelProto whose first input is float32 [N, ...] with the
batch as the symbolic dim "N", so one model runs at any batch size.
"""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8      # what onnxruntime accepts for every opset used here


def weights(rng, *shape):
    return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)


def make_model(nodes, inputs, outputs, initializers=(), opset=17, name="test"):
    graph = helper.make_graph(nodes, name, inputs, outputs,
                              initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="edgerun-tests", producer_version="1.0")
    model.ir_version = IR_VERSION
    return model


def float_input(name, *dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *dims])


def float_output(name, *dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, None if dims == (None,) else ["N", *dims])


def gemm_mlp(sizes=(12, 20, 7), trans_b=1, alpha=1.0, beta=1.0, activation="Relu",
             softmax=True, seed=0, bias_shape="vector"):
    """x -> (Gemm -> activation)* -> Gemm [-> Softmax]: the shape of a torch nn.Sequential export."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "x"
    layers = len(sizes) - 1
    for i in range(layers):
        w = weights(rng, sizes[i + 1], sizes[i])            # [out, in], like torch
        b = (rng.standard_normal(sizes[i + 1]) * 0.1).astype(np.float32)
        if bias_shape == "row":
            b = b.reshape(1, -1)
        elif bias_shape == "scalar":
            b = b[:1].reshape(())
        inits += [(f"fc{i}.weight", w if trans_b else w.T.copy()), (f"fc{i}.bias", b)]
        out = f"fc{i}"
        nodes.append(helper.make_node("Gemm", [current, f"fc{i}.weight", f"fc{i}.bias"], [out],
                                      name=f"/fc{i}/Gemm", transB=trans_b, alpha=alpha, beta=beta))
        current = out
        if i < layers - 1 and activation:
            nodes.append(helper.make_node(activation, [current], [f"act{i}"], name=f"/act{i}/{activation}"))
            current = f"act{i}"
    if softmax:
        nodes.append(helper.make_node("Softmax", [current], ["y"], name="/softmax/Softmax", axis=-1))
    else:
        nodes.append(helper.make_node("Identity", [current], ["y"], name="/out/Identity"))
    return make_model(nodes, [float_input("x", sizes[0])], [float_output("y", sizes[-1])], inits)


def matmul_mlp(sizes=(10, 16, 16, 5), activations=("Relu", "Tanh", "Sigmoid"), seed=1, bias_rank=1):
    """x -> MatMul + Add(bias) -> activation ... (how TensorFlow / Keras exports a Dense layer)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "x"
    for i in range(len(sizes) - 1):
        inits.append((f"dense{i}/kernel", weights(rng, sizes[i], sizes[i + 1])))   # [in, out]
        bias = (rng.standard_normal(sizes[i + 1]) * 0.1).astype(np.float32)
        inits.append((f"dense{i}/bias", bias.reshape((1,) * (bias_rank - 1) + (-1,))))
        nodes.append(helper.make_node("MatMul", [current, f"dense{i}/kernel"], [f"mm{i}"],
                                      name=f"dense{i}/MatMul"))
        # The bias first, as some exporters write it: the importer must still see x + b.
        nodes.append(helper.make_node("Add", [f"dense{i}/bias", f"mm{i}"], [f"pre{i}"], name=f"dense{i}/BiasAdd"))
        current = f"pre{i}"
        act = activations[i % len(activations)] if activations else None
        if act:
            nodes.append(helper.make_node(act, [current], [f"act{i}"], name=f"dense{i}/{act}"))
            current = f"act{i}"
    nodes.append(helper.make_node("Identity", [current], ["y"], name="output"))
    return make_model(nodes, [float_input("x", sizes[0])], [float_output("y", sizes[-1])], inits)


def pytorch_style_cnn_head(seed=2):
    """What torch.onnx.export writes for Flatten -> Linear -> ReLU -> Dropout -> Linear on an
    image-shaped input [N, 2, 3, 4]: Flatten, Gemm(transB=1), Relu, Dropout, Gemm."""
    rng = np.random.default_rng(seed)
    w1, b1 = weights(rng, 16, 24), (rng.standard_normal(16) * 0.1).astype(np.float32)
    w2, b2 = weights(rng, 5, 16), (rng.standard_normal(5) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["input"], ["/flatten/Flatten_output_0"], name="/flatten/Flatten", axis=1),
        helper.make_node("Gemm", ["/flatten/Flatten_output_0", "fc1.weight", "fc1.bias"], ["/fc1/Gemm_output_0"],
                         name="/fc1/Gemm", alpha=1.0, beta=1.0, transB=1),
        helper.make_node("Relu", ["/fc1/Gemm_output_0"], ["/relu/Relu_output_0"], name="/relu/Relu"),
        helper.make_node("Dropout", ["/relu/Relu_output_0"], ["/drop/Dropout_output_0"], name="/drop/Dropout"),
        helper.make_node("Gemm", ["/drop/Dropout_output_0", "fc2.weight", "fc2.bias"], ["output"],
                         name="/fc2/Gemm", alpha=1.0, beta=1.0, transB=1),
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, 3, 4])]
    return make_model(nodes, inputs, [float_output("output", 5)],
                      [("fc1.weight", w1), ("fc1.bias", b1), ("fc2.weight", w2), ("fc2.bias", b2)])


def view_flatten(seed=3, use_constant_nodes=True, opset=17, cast=False):
    """x.view(x.size(0), -1) as exporters write it: Shape -> Gather(0) -> Unsqueeze -> Concat(-1)
    -> Reshape, then a Linear; plus a Reshape to a constant shape initializer."""
    rng = np.random.default_rng(seed)
    w = weights(rng, 24, 6)
    nodes = [helper.make_node("Shape", ["x"], ["shape"], name="/Shape")]
    inits = [("w", w), ("b", (rng.standard_normal(6) * 0.1).astype(np.float32)),
             ("split_shape", np.array([-1, 2, 3], dtype=np.int64))]
    if use_constant_nodes:
        nodes += [
            helper.make_node("Constant", [], ["zero"], name="/Constant",
                             value=numpy_helper.from_array(np.array(0, dtype=np.int64))),
            helper.make_node("Constant", [], ["minus_one"], name="/Constant_1",
                             value=numpy_helper.from_array(np.array([-1], dtype=np.int64))),
            helper.make_node("Constant", [], ["axes"], name="/Constant_2",
                             value=numpy_helper.from_array(np.array([0], dtype=np.int64))),
        ]
    else:
        inits += [("zero", np.array(0, dtype=np.int64)), ("minus_one", np.array([-1], dtype=np.int64)),
                  ("axes", np.array([0], dtype=np.int64))]
    nodes += [
        helper.make_node("Gather", ["shape", "zero"], ["batch_gathered" if cast else "batch"],
                         name="/Gather", axis=0),
        *([helper.make_node("Cast", ["batch_gathered"], ["batch"], name="/Cast", to=TensorProto.INT64)]
          if cast else []),
        # Unsqueeze took its axes as an attribute before opset 13.
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch_1d"], name="/Unsqueeze") if opset >= 13
        else helper.make_node("Unsqueeze", ["batch"], ["batch_1d"], name="/Unsqueeze", axes=[0]),
        helper.make_node("Concat", ["batch_1d", "minus_one"], ["target"], name="/Concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="/Reshape"),
        helper.make_node("MatMul", ["flat", "w"], ["mm"], name="/fc/MatMul"),
        helper.make_node("Add", ["mm", "b"], ["fc"], name="/fc/Add"),
        helper.make_node("Reshape", ["fc", "split_shape"], ["y"], name="/Reshape_1"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 3, 2])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", 2, 3])]
    return make_model(nodes, inputs, outputs, inits, opset=opset)


def elementwise_mix(seed=4):
    """Add / Mul with constant and activation operands, Sub and Div by constants, Sigmoid gating
    (x * sigmoid(x), as SiLU exports), a Relu that must not fuse (its Linear also feeds an Add)."""
    rng = np.random.default_rng(seed)
    inits = [("w1", weights(rng, 8, 8)), ("b1", (rng.standard_normal(8) * 0.1).astype(np.float32)),
             ("w2", weights(rng, 8, 8)),
             ("scale", (rng.random(8) + 0.5).astype(np.float32)), ("shift", np.array(0.25, dtype=np.float32)),
             ("two", np.array(2.0, dtype=np.float32))]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu1"),
        helper.make_node("Add", ["r", "h"], ["res"], name="residual"),          # h has two consumers
        helper.make_node("Sigmoid", ["res"], ["gate"], name="gate"),
        helper.make_node("Mul", ["res", "gate"], ["silu"], name="silu"),
        helper.make_node("Mul", ["scale", "silu"], ["scaled"], name="scale"),   # constant first
        helper.make_node("Sub", ["scaled", "shift"], ["shifted"], name="shift"),
        helper.make_node("Div", ["shifted", "two"], ["halved"], name="halve"),
        helper.make_node("Sub", ["two", "halved"], ["flipped"], name="flip"),   # constant - activation
        helper.make_node("MatMul", ["flipped", "w2"], ["z"], name="fc2"),
        helper.make_node("Tanh", ["z"], ["y"], name="tanh"),
    ]
    return make_model(nodes, [float_input("x", 8)], [float_output("y", 8)], inits)


def softmax_3d(axis, opset):
    """Linear over the last axis of an [N, 3, 5] input, then Softmax(axis) at the given opset
    (before 13 Softmax works on the input flattened to 2-D at axis)."""
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
             helper.make_node("Softmax", ["h"], ["y"], name="softmax", axis=axis)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 5])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4])]
    return make_model(nodes, inputs, outputs, [("w", weights(rng, 5, 4))], opset=opset)


def conv_transpose_model():
    """An op edgerun does not import (a transposed convolution), for the refusal tests."""
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("ConvTranspose", ["x", "k"], ["y"], name="conv1", kernel_shape=[3, 3])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 10, 10])]
    return make_model(nodes, inputs, outputs, [("k", rng.standard_normal((1, 2, 3, 3)).astype(np.float32))])


def lstm_model():
    """A recurrent layer on a [sequence, N, features] input."""
    rng = np.random.default_rng(7)
    hidden, features = 4, 3
    nodes = [helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="lstm_0", hidden_size=hidden)]
    inits = [("W", rng.standard_normal((1, 4 * hidden, features)).astype(np.float32)),
             ("R", rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32))]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, "N", features])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 1, "N", hidden])]
    return make_model(nodes, inputs, outputs, inits)


def batchnorm_mlp(seed=8):
    """torch nn.Sequential(Linear, BatchNorm1d, ReLU, Linear) in eval mode, and a BatchNorm2d on
    the image-shaped input before Flatten (which cannot fold into a Linear: it stays Mul + Add)."""
    rng = np.random.default_rng(seed)

    def bn_params(prefix, channels):
        return [(f"{prefix}.weight", (rng.random(channels) + 0.5).astype(np.float32)),
                (f"{prefix}.bias", (rng.standard_normal(channels) * 0.1).astype(np.float32)),
                (f"{prefix}.running_mean", (rng.standard_normal(channels) * 0.3).astype(np.float32)),
                (f"{prefix}.running_var", (rng.random(channels) + 0.2).astype(np.float32))]

    def bn_node(prefix, x, y):
        return helper.make_node("BatchNormalization", [x] + [f"{prefix}.{p}" for p in
                                ("weight", "bias", "running_mean", "running_var")], [y],
                                name=f"/{prefix}/BatchNormalization", epsilon=1e-5)

    inits = bn_params("bn0", 2) + bn_params("bn1", 16) + [
        ("fc1.weight", weights(rng, 16, 24)), ("fc1.bias", (rng.standard_normal(16) * 0.1).astype(np.float32)),
        ("fc2.weight", weights(rng, 5, 16)), ("fc2.bias", (rng.standard_normal(5) * 0.1).astype(np.float32))]
    nodes = [
        bn_node("bn0", "input", "normed"),
        helper.make_node("Flatten", ["normed"], ["flat"], name="/flatten/Flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["h"], name="/fc1/Gemm", transB=1),
        bn_node("bn1", "h", "hn"),
        helper.make_node("Relu", ["hn"], ["r"], name="/relu/Relu"),
        helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["output"], name="/fc2/Gemm", transB=1),
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, 3, 4])]
    return make_model(nodes, inputs, [float_output("output", 5)], inits, opset=15)


def sklearn_style_regressor(seed=9, input_type=TensorProto.FLOAT):
    """The layout skl2onnx writes for an MLPRegressor: a batch dim with neither value nor name,
    a Cast of the input to float, MatMul + Add per layer, and a final Reshape to [-1, 1]."""
    rng = np.random.default_rng(seed)
    inits = [("coefficient", weights(rng, 6, 8)),
             ("intercepts", (rng.standard_normal((1, 8)) * 0.1).astype(np.float32)),
             ("coefficient1", weights(rng, 8, 1)), ("intercepts1", np.array([[0.3]], np.float32)),
             ("shape_tensor", np.array([-1, 1], np.int64))]
    nodes = [helper.make_node("Cast", ["X"], ["cast_input"], name="Cast", to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["cast_input", "coefficient"], ["mul_result"], name="MatMul"),
             helper.make_node("Add", ["mul_result", "intercepts"], ["add_result"], name="Add"),
             helper.make_node("Relu", ["add_result"], ["next_activations"], name="Relu"),
             helper.make_node("MatMul", ["next_activations", "coefficient1"], ["mul_result1"], name="MatMul1"),
             helper.make_node("Add", ["mul_result1", "intercepts1"], ["add_result1"], name="Add1"),
             helper.make_node("Reshape", ["add_result1", "shape_tensor"], ["variable"], name="Reshape")]
    inputs = [helper.make_tensor_value_info("X", input_type, [None, 6])]
    outputs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])]
    return make_model(nodes, inputs, outputs, inits)


# ------------------------------------------------------------------ small CNNs (issue 5)

class _CNN:
    """Collects nodes and initializers while a small CNN is written layer by layer."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def _name(self, kind):
        self.count += 1
        return f"{kind}{self.count}"

    def conv(self, x, cin, cout, k, group=1, bias=True, **attrs):
        name = self._name("conv")
        w = (self.rng.standard_normal((cout, cin // group, k, k)) / np.sqrt(cin // group * k * k))
        self.inits.append((f"{name}.weight", w.astype(np.float32)))
        inputs = [x, f"{name}.weight"]
        if bias:
            self.inits.append((f"{name}.bias", (0.1 * self.rng.standard_normal(cout)).astype(np.float32)))
            inputs.append(f"{name}.bias")
        self.nodes.append(helper.make_node("Conv", inputs, [name], name=name, group=group,
                                           kernel_shape=[k, k], **attrs))
        return name

    def bn(self, x, channels):
        name = self._name("bn")
        params = [self.rng.uniform(0.5, 1.5, channels), 0.1 * self.rng.standard_normal(channels),
                  0.1 * self.rng.standard_normal(channels), self.rng.uniform(0.5, 1.5, channels)]
        for suffix, value in zip(("scale", "bias", "mean", "var"), params):
            self.inits.append((f"{name}.{suffix}", value.astype(np.float32)))
        self.nodes.append(helper.make_node("BatchNormalization", [x] + [f"{name}.{s}" for s in
                                           ("scale", "bias", "mean", "var")], [name], name=name))
        return name

    def op(self, op_type, inputs, **attrs):
        name = self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=name, **attrs))
        return name

    def relu6(self, x):
        if not any(n == "six" for n, _ in self.inits):
            self.inits += [("zero", np.array(0, np.float32)), ("six", np.array(6, np.float32))]
        return self.op("Clip", [x, "zero", "six"])

    def head(self, x, features, classes):
        flat = self.op("Flatten", [x], axis=1)
        name = self._name("fc")
        self.inits += [(f"{name}.weight", (self.rng.standard_normal((classes, features))
                                           / np.sqrt(features)).astype(np.float32)),
                       (f"{name}.bias", (0.1 * self.rng.standard_normal(classes)).astype(np.float32))]
        self.nodes.append(helper.make_node("Gemm", [flat, f"{name}.weight", f"{name}.bias"], ["logits"],
                                           name=name, transB=1))
        return "logits"

    def model(self, input_shape, output, classes, name):
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape])]
        return make_model(self.nodes, inputs, [float_output(output, classes)], self.inits, name=name)


def resnet_block_cnn(seed=20):
    """stem conv-bn-relu, then a basic residual block: conv-bn-relu, conv-bn, + x, relu;
    global average pool, Flatten, Gemm."""
    m = _CNN(seed)
    x = m.op("Relu", [m.bn(m.conv("x", 3, 8, 3, bias=False, pads=[1, 1, 1, 1]), 8)])
    h = m.op("Relu", [m.bn(m.conv(x, 8, 8, 3, bias=False, pads=[1, 1, 1, 1]), 8)])
    h = m.bn(m.conv(h, 8, 8, 3, bias=False, pads=[1, 1, 1, 1]), 8)
    h = m.op("Relu", [m.op("Add", [h, x])])
    return m.model((3, 12, 12), m.head(m.op("GlobalAveragePool", [h]), 8, 5), 5, "resnet_block")


def mobilenet_v2_cnn(seed=21):
    """Two MobileNetV2 inverted residuals: 1x1 expand + ReLU6, 3x3 depthwise (stride 2, then
    stride 1 with auto_pad SAME_UPPER) + ReLU6, 1x1 project (+ residual on the second)."""
    m = _CNN(seed)
    h = m.relu6(m.bn(m.conv("x", 8, 24, 1, bias=False), 24))
    h = m.relu6(m.bn(m.conv(h, 24, 24, 3, group=24, bias=False, strides=[2, 2], pads=[1, 1, 1, 1]), 24))
    x = m.bn(m.conv(h, 24, 16, 1, bias=False), 16)
    h = m.relu6(m.bn(m.conv(x, 16, 48, 1, bias=False), 48))
    h = m.relu6(m.bn(m.conv(h, 48, 48, 3, group=48, bias=False, auto_pad="SAME_UPPER"), 48))
    h = m.op("Add", [x, m.bn(m.conv(h, 48, 16, 1, bias=False), 16)])
    return m.model((8, 11, 11), m.head(m.op("GlobalAveragePool", [h]), 16, 4), 4, "mobilenet_v2")


def kws_cnn(seed=22):
    """A keyword-spotting-style 2-D CNN on [N, 1, 20, 16] (frames x MFCC coefficients):
    conv-relu, MaxPool, dilated VALID conv-relu, AveragePool with pads, Flatten, Gemm."""
    m = _CNN(seed)
    h = m.op("Relu", [m.conv("x", 1, 8, 3, pads=[1, 1, 1, 1])])
    h = m.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = m.op("Relu", [m.conv(h, 8, 16, 3, dilations=[1, 2], auto_pad="VALID")])
    h = m.op("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 0, 1, 0])
    return m.model((1, 20, 16), m.head(h, 16 * 5 * 2, 6), 6, "kws")
