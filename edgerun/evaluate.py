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
from edgerun.graph import conv_weight_shape


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


def _windows(x, kh, kw, strides, dilations):
    """View of x [N, C, H, W] as [N, C, kh, kw, OH, OW]: element (i, j, p, q) is
    x[..., p*sh + i*dh, q*sw + j*dw].  No copy (stride tricks)."""
    n, c, h, w = x.shape
    (sh, sw), (dh, dw) = strides, dilations
    oh = (h - dh * (kh - 1) - 1) // sh + 1
    ow = (w - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ShapeError(f"a {kh}x{kw} window (dilations {list(dilations)}) does not fit the "
                         f"padded input of {h}x{w}")
    s = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, c, kh, kw, oh, ow), (s[0], s[1], s[2] * dh, s[3] * dw, s[2] * sh, s[3] * sw),
        writeable=False)


def _pad(x, pads, value=0.0):
    """x [N, C, H, W] padded by pads (top, left, bottom, right) with value.
    (np.pad costs ~50x more per call on the small images of edge CNNs.)"""
    top, left, bottom, right = pads
    if not any(pads):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def _check_nchw(x, what):
    if x.ndim != 4:
        raise ShapeError(f"{what} expects a 4-D NCHW input, got shape {list(x.shape)}")


def activate(y, activation):
    """The fused activation of Conv2d/Linear: None, "relu" or "relu6", in place."""
    if activation in ("relu", "relu6"):
        np.maximum(y, 0, out=y)
    if activation == "relu6":
        np.minimum(y, 6, out=y)
    return y


def im2col(x, kh, kw, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1)):
    """x [N, C, H, W] -> (cols [N, OH*OW, C*kh*kw], OH, OW): each row one window,
    columns in the order of a conv weight's [C, kh, kw] (so cols @ W2d.T is a conv)."""
    windows = _windows(_pad(np.asarray(x, dtype=np.float32), pads), kh, kw, strides, dilations)
    n, c, _, _, oh, ow = windows.shape
    cols = windows.transpose(0, 4, 5, 1, 2, 3).reshape(n, oh * ow, c * kh * kw)
    return cols, oh, ow


def conv2d(x, weight, bias=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1,
           activation=None):
    """ONNX Conv on NCHW x with weight [out, in/group, kh, kw]: im2col + one
    batched matmul over the groups; then bias and the fused activation."""
    x = np.asarray(x, dtype=np.float32)
    _check_nchw(x, "Conv2d")
    out, cg, kh, kw = weight.shape
    n, c = x.shape[:2]
    if c != cg * group:
        raise ShapeError(f"Conv2d expects {cg * group} input channels ({group} groups of {cg}), "
                         f"got {c}")
    windows = _windows(_pad(x, pads), kh, kw, strides, dilations)
    oh, ow = windows.shape[4:]
    og = out // group
    # [N, G, OH*OW, cg*kh*kw] @ [G, cg*kh*kw, og] -> [N, G, OH*OW, og]
    cols = windows.reshape(n, group, cg, kh, kw, oh, ow).transpose(0, 1, 5, 6, 2, 3, 4)
    cols = cols.reshape(n, group, oh * ow, cg * kh * kw)
    w = weight.reshape(group, og, cg * kh * kw).transpose(0, 2, 1)
    y = np.matmul(cols, w).transpose(0, 1, 3, 2).reshape(n, out, oh, ow)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if bias is not None:
        y += np.asarray(bias, dtype=np.float32).reshape(1, out, 1, 1)
    return activate(y, activation)


def max_pool(x, kernel_shape, strides=None, pads=(0, 0, 0, 0)):
    x = np.asarray(x, dtype=np.float32)
    _check_nchw(x, "MaxPool")
    kh, kw = kernel_shape
    windows = _windows(_pad(x, pads, -np.inf), kh, kw, strides or (1, 1), (1, 1))
    return np.ascontiguousarray(windows.max(axis=(2, 3)), dtype=np.float32)


def average_pool(x, kernel_shape, strides=None, pads=(0, 0, 0, 0), count_include_pad=0):
    """ONNX AveragePool: padded cells count in the divisor only with count_include_pad."""
    x = np.asarray(x, dtype=np.float32)
    _check_nchw(x, "AveragePool")
    kh, kw = kernel_shape
    strides = strides or (1, 1)
    sums = _windows(_pad(x, pads), kh, kw, strides, (1, 1)).sum(axis=(2, 3), dtype=np.float32)
    if count_include_pad or not any(pads):
        return (sums / np.float32(kh * kw)).astype(np.float32)
    ones = np.ones((1, 1) + x.shape[2:], dtype=np.float32)
    counts = _windows(_pad(ones, pads), kh, kw, strides, (1, 1)).sum(axis=(2, 3))
    return (sums / counts).astype(np.float32)


def global_average_pool(x):
    x = np.asarray(x, dtype=np.float32)
    _check_nchw(x, "GlobalAveragePool")
    return x.mean(axis=(2, 3), keepdims=True, dtype=np.float32)


def clip(x, lo=None, hi=None):
    y = np.asarray(x, dtype=np.float32)
    if lo is not None:
        y = np.maximum(y, np.float32(lo))
    if hi is not None:
        y = np.minimum(y, np.float32(hi))
    return y.astype(np.float32, copy=False)


def conv_weight4d(node, weight):
    """A Conv2d weight as the 4-D array [out, in/group, kh, kw] (a compressed
    weight is stored as its 2-D matrix view with attrs "kernel")."""
    return weight.reshape(conv_weight_shape(node, weight))


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
    if op == "Conv2d":
        options = dict(strides=attrs.get("strides", (1, 1)), pads=attrs.get("pads", (0, 0, 0, 0)),
                       dilations=attrs.get("dilations", (1, 1)), group=attrs.get("group", 1),
                       activation=attrs.get("activation"))
        return lambda x, weight, bias=None: conv2d(x, conv_weight4d(node, weight), bias, **options)
    if op in ("MaxPool", "AveragePool"):
        options = dict(kernel_shape=attrs["kernel_shape"], strides=attrs.get("strides"),
                       pads=attrs.get("pads", (0, 0, 0, 0)))
        if op == "MaxPool":
            return lambda x: max_pool(x, **options)
        return lambda x: average_pool(x, count_include_pad=attrs.get("count_include_pad", 0), **options)
    if op == "GlobalAveragePool":
        return global_average_pool
    if op == "Clip":
        return lambda x: clip(x, attrs.get("min"), attrs.get("max"))
    function = cnn_op_function(node)
    if function is not None:
        return function
    raise UnsupportedOpError(f"node {node.name!r}: op {op!r} is not a graph op")


# ---------------------------------------------------------------- edge CNN ops
# HardSigmoid / HardSwish (MobileNetV3), Pad, Resize.  Each takes the axes it works
# on where a layout matters, so the runtime runs the same code on NHWC activations.

def hard_sigmoid(x, alpha=0.2, beta=0.5):
    """ONNX HardSigmoid: max(0, min(1, alpha * x + beta))."""
    y = np.asarray(x, dtype=np.float32) * np.float32(alpha) + np.float32(beta)
    return np.clip(y, 0, 1).astype(np.float32, copy=False)


def hard_swish(x):
    """ONNX HardSwish: x * max(0, min(1, x / 6 + 1/2))."""
    x = np.asarray(x, dtype=np.float32)
    return (x * hard_sigmoid(x, 1 / 6, 0.5)).astype(np.float32, copy=False)


PAD_MODES = ("constant", "reflect", "edge")


def pad(x, pads, mode="constant", value=0.0):
    """ONNX Pad: pads = [begin of each axis..., end of each axis...], all >= 0."""
    x = np.asarray(x, dtype=np.float32)
    rank = x.ndim
    if len(pads) != 2 * rank:
        raise ShapeError(f"Pad has {len(pads)} pads for a {rank}-D input; expected {2 * rank}")
    width = [(int(pads[i]), int(pads[i + rank])) for i in range(rank)]
    if mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=np.float32(value))
    for axis, (begin, end) in enumerate(width):
        size = x.shape[axis]
        if mode == "reflect" and max(begin, end) > size - 1:
            raise ShapeError(f"Pad reflect of {max(begin, end)} on axis {axis} of size {size}: "
                             f"reflection needs pads below the size")
        if mode == "edge" and (begin or end) and size == 0:
            raise ShapeError(f"Pad edge on the empty axis {axis}")
    return np.pad(x, width, mode=mode)


RESIZE_COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                      "tf_half_pixel_for_nn")
RESIZE_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _resize_source(out_size, in_size, scale, transform):
    """The input coordinate (float32, like onnxruntime) of every output index."""
    o = np.arange(out_size, dtype=np.float32)
    scale = np.float32(scale)
    if transform == "half_pixel":
        return (o + np.float32(0.5)) / scale - np.float32(0.5)
    if transform == "pytorch_half_pixel":
        return (o + np.float32(0.5)) / scale - np.float32(0.5) if out_size > 1 else np.zeros_like(o)
    if transform == "align_corners":
        if out_size == 1:
            return np.zeros_like(o)
        return o * np.float32(in_size - 1) / np.float32(out_size - 1)
    if transform == "asymmetric":
        return o / scale
    if transform == "tf_half_pixel_for_nn":
        return (o + np.float32(0.5)) / scale
    raise EdgerunError(f"Resize: unknown coordinate_transformation_mode {transform!r}")


def resize(x, mode="nearest", scales=None, sizes=None, coordinate_transformation_mode="half_pixel",
           nearest_mode="round_prefer_floor", axes=(2, 3)):
    """ONNX Resize (nearest or linear) over two spatial axes of x (2, 3 for NCHW):
    output sizes `sizes`, or floor(size * scale) with `scales`.  Separable: one
    axis at a time, so bilinear is linear along H then along W."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ShapeError(f"Resize expects a 4-D input, got shape {list(x.shape)}")
    for k, axis in enumerate(axes):
        in_size = x.shape[axis]
        if sizes is not None:
            out_size = int(sizes[k])
            scale = out_size / in_size if in_size else 1.0
        else:
            scale = float(scales[k])
            out_size = int(np.floor(in_size * scale))
        if out_size < 1 or in_size < 1:
            raise ShapeError(f"Resize of axis {axis} from {in_size} to {out_size} elements")
        source = _resize_source(out_size, in_size, scale, coordinate_transformation_mode)
        if mode == "nearest":
            if nearest_mode == "floor":
                index = np.floor(source)
            elif nearest_mode == "ceil":
                index = np.ceil(source)
            else:
                frac = source - np.floor(source)
                up = frac > 0.5 if nearest_mode == "round_prefer_floor" else frac >= 0.5
                index = np.floor(source) + up
            index = np.clip(index, 0, in_size - 1).astype(np.int64)
            x = np.take(x, index, axis=axis)
            continue
        source = np.clip(source, 0, in_size - 1)
        low = np.floor(source).astype(np.int64)
        high = np.minimum(low + 1, in_size - 1)
        shape = [1] * 4
        shape[axis] = out_size
        weight = (source - low).astype(np.float32).reshape(shape)
        a, b = np.take(x, low, axis=axis), np.take(x, high, axis=axis)
        x = a + (b - a) * weight
    return np.ascontiguousarray(x, dtype=np.float32)


def cnn_op_function(node):
    """op_function for the edge CNN ops (HardSigmoid, HardSwish, Pad, Resize); None otherwise."""
    op, attrs = node.op, node.attrs
    if op == "HardSigmoid":
        return lambda x: hard_sigmoid(x, attrs.get("alpha", 0.2), attrs.get("beta", 0.5))
    if op == "HardSwish":
        return hard_swish
    if op == "Pad":
        return lambda x: pad(x, attrs["pads"], attrs.get("mode", "constant"), attrs.get("value", 0.0))
    if op == "Resize":
        return lambda x: resize(x, attrs.get("mode", "nearest"), attrs.get("scales"), attrs.get("sizes"),
                                attrs.get("coordinate_transformation_mode", "half_pixel"),
                                attrs.get("nearest_mode", "round_prefer_floor"))
    return None


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
