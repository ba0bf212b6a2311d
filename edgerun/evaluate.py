"""A numpy executor of a Graph, in float32: the accuracy yardstick of the compressor.

Every op of edgerun/graph.py runs here with plain numpy on the dense float32
weights each tensor stands for (Tensor.to_dense()), so an encoded graph and its
float original can be compared on the same inputs.  It is slow and simple on
purpose: it never calls the C kernels (the compressor must not need them).

    outputs = evaluate(graph, {"input": x})                 # {output name: array}
    seen = evaluate(graph, {"input": x}, capture={"linear_2"})
    seen["linear_2"]                                        # the INPUT of node linear_2

The elementwise functions are exported for the runtime to reuse.
"""
import numpy as np

from edgerun.errors import EdgerunError, ShapeError, UnsupportedOpError


def relu(x):
    return np.maximum(x, np.float32(0)).astype(np.float32, copy=False)


def sigmoid(x):
    # Split by sign so exp never overflows: for x < 0 use e^x / (1 + e^x).
    x = np.asarray(x, dtype=np.float32)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.float32)


def tanh(x):
    return np.tanh(np.asarray(x, dtype=np.float32))


def softmax(x, axis=-1):
    # Subtract the max so exp stays finite for large logits.
    x = np.asarray(x, dtype=np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def flatten(x, axis=1):
    """ONNX Flatten: dims before axis form the rows, the rest the columns."""
    x = np.asarray(x)
    if axis < 0:
        axis += x.ndim
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    cols = int(np.prod(x.shape[axis:], dtype=np.int64))
    return x.reshape(rows, cols)


def reshape(x, shape):
    """ONNX Reshape: 0 copies the input's dim at that position, -1 is inferred."""
    x = np.asarray(x)
    target = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(shape)]
    return x.reshape(target)


def linear(x, weight, bias=None, activation=None):
    """y = x @ weight.T + bias, then the fused activation (None or "relu")."""
    y = np.asarray(x, dtype=np.float32) @ weight.T
    if bias is not None:
        y = y + bias
    if activation == "relu":
        y = relu(y)
    return y.astype(np.float32, copy=False)


def op_function(node):
    """The numpy function computing node's output from its input arrays, in order.

    The runtime binds every op but Linear (which has kernels of its own) to these."""
    op, attrs = node.op, node.attrs
    if op == "Linear":
        return lambda x, weight, bias=None: linear(x, weight, bias, attrs.get("activation"))
    if op in ("Relu", "Sigmoid", "Tanh"):
        return {"Relu": relu, "Sigmoid": sigmoid, "Tanh": tanh}[op]
    if op == "Softmax":
        return lambda x: softmax(x, attrs.get("axis", -1))
    if op == "Add":
        return lambda a, b: (a + b).astype(np.float32, copy=False)
    if op == "Mul":
        return lambda a, b: (a * b).astype(np.float32, copy=False)
    if op == "Flatten":
        return lambda x: flatten(x, attrs.get("axis", 1))
    if op == "Reshape":
        return lambda x: reshape(x, attrs["shape"])
    raise UnsupportedOpError(f"node {node.name!r}: op {op!r} is not a graph op")


def _dense(graph, name, cache):
    if name not in cache:
        cache[name] = graph.tensors[name].to_dense().astype(np.float32, copy=False)
    return cache[name]


def evaluate(graph, feeds, capture=None):
    """Run graph on feeds ({input name: array}, or one array for a one-input graph).

    Returns {output name: float32 array}; with capture (a set of node names) the
    first input activation of each of those nodes is added under the node's name.
    """
    if not isinstance(feeds, dict):
        if len(graph.inputs) != 1:
            raise ShapeError(f"graph has {len(graph.inputs)} inputs; pass a dict of them")
        feeds = {graph.inputs[0].name: feeds}
    values = {}
    for info in graph.inputs:
        if info.name not in feeds:
            raise ShapeError(f"missing input {info.name!r} ({info.describe()})")
        values[info.name] = np.asarray(feeds[info.name], dtype=np.float32)
    capture = set(capture or ())
    unknown = capture - {node.name for node in graph.nodes}
    if unknown:
        raise EdgerunError(f"capture names unknown nodes {sorted(unknown)}")
    cache = {}
    captured = {}

    def read(name):
        if name in values:
            return values[name]
        if name in graph.tensors:
            return _dense(graph, name, cache)
        raise EdgerunError(f"value {name!r} is used before it is produced")

    for node in graph.nodes:
        args = [read(name) for name in node.inputs]
        if node.name in capture:
            captured[node.name] = args[0]
        values[node.outputs[0]] = op_function(node)(*args)
    result = {out.name: values[out.name] for out in graph.outputs}
    result.update(captured)
    return result
