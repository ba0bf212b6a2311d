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
import functools
import math

import numpy as np

from edgerun import reference
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
    # math.prod on Python ints: exact, and ~10x cheaper per call than np.prod (a
    # visible share of a small CNN's run); a view whenever x is contiguous
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


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


def window_positions(h, w, kh, kw, strides, dilations):
    """(OH, OW): where a kh x kw window (strides, dilations) fits in an h x w (padded) image."""
    (sh, sw), (dh, dw) = strides, dilations
    oh = (h - dh * (kh - 1) - 1) // sh + 1
    ow = (w - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ShapeError(f"a {kh}x{kw} window (dilations {list(dilations)}) does not fit the "
                         f"padded input of {h}x{w}")
    return oh, ow


def windows(x, kh, kw, strides, dilations, axes=(2, 3)):
    """View of x with its spatial axes (H, W at `axes`: 2, 3 for NCHW, 1, 2 for NHWC)
    replaced by the output positions (OH, OW) and the window (kh, kw) appended --
    [N, C, OH, OW, kh, kw] for NCHW, [N, OH, OW, C, kh, kw] for NHWC.  Element
    (.., p, .., q, .., i, j) is x at H = p*sh + i*dh, W = q*sw + j*dw.  No copy (stride tricks)."""
    ah, aw = axes
    (sh, sw), (dh, dw) = strides, dilations
    oh, ow = window_positions(x.shape[ah], x.shape[aw], kh, kw, strides, dilations)
    shape, steps = list(x.shape), list(x.strides)
    shape[ah], shape[aw] = oh, ow
    steps[ah], steps[aw] = x.strides[ah] * sh, x.strides[aw] * sw
    shape += [kh, kw]
    steps += [x.strides[ah] * dh, x.strides[aw] * dw]
    if x.flags.c_contiguous:
        # an ndarray over x's buffer (which numpy bounds-checks) costs ~8x less than
        # as_strided, whose array-interface detour dominated small convs and pools
        view = np.ndarray(shape, x.dtype, x, 0, steps)
        view.flags.writeable = False
        return view
    return np.lib.stride_tricks.as_strided(x, shape, steps, writeable=False)


def pad_spatial(x, pads, value=0.0, axes=(2, 3)):
    """x padded on its spatial axes (as in windows()) by pads (top, left, bottom, right)
    with value.  (np.pad costs ~50x more per call on the small images of edge CNNs.)"""
    top, left, bottom, right = pads
    if not any(pads):
        return x
    ah, aw = axes
    shape = list(x.shape)
    shape[ah] += top + bottom
    shape[aw] += left + right
    if value == 0 and math.copysign(1.0, value) > 0:
        out = np.zeros(shape, dtype=x.dtype)     # calloc'ed: cheaper than np.full
    else:
        out = np.full(shape, value, dtype=x.dtype)
    inside = [slice(None)] * x.ndim
    inside[ah] = slice(top, top + x.shape[ah])
    inside[aw] = slice(left, left + x.shape[aw])
    out[tuple(inside)] = x
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
    view = windows(pad_spatial(np.asarray(x, dtype=np.float32), pads), kh, kw, strides, dilations)
    n, c, oh, ow = view.shape[:4]
    cols = view.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh * ow, c * kh * kw)
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
    view = windows(pad_spatial(x, pads), kh, kw, strides, dilations)
    oh, ow = view.shape[2:4]
    og = out // group
    # [N, G, OH*OW, cg*kh*kw] @ [G, cg*kh*kw, og] -> [N, G, OH*OW, og]
    cols = view.reshape(n, group, cg, oh, ow, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6)
    cols = cols.reshape(n, group, oh * ow, cg * kh * kw)
    w = weight.reshape(group, og, cg * kh * kw).transpose(0, 2, 1)
    y = np.matmul(cols, w).transpose(0, 1, 3, 2).reshape(n, out, oh, ow)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if bias is not None:
        y += np.asarray(bias, dtype=np.float32).reshape(1, out, 1, 1)
    return activate(y, activation)


def max_pool(x, kernel_shape, strides=None, pads=(0, 0, 0, 0), axes=(2, 3)):
    """ONNX MaxPool over the spatial axes (2, 3 for NCHW; the runtime passes 1, 2 for NHWC)."""
    return Pool("MaxPool", kernel_shape, strides, pads, axes=axes)(x)


def average_pool(x, kernel_shape, strides=None, pads=(0, 0, 0, 0), count_include_pad=0, axes=(2, 3)):
    """ONNX AveragePool (axes as max_pool): padded cells count in the divisor only with
    count_include_pad."""
    return Pool("AveragePool", kernel_shape, strides, pads, count_include_pad, axes)(x)


class Pool:
    """ONNX MaxPool or AveragePool over the spatial axes of 4-D x (2, 3 for NCHW; 1, 2
    for NHWC): a callable x -> contiguous float32 y that works out each input shape's
    geometry (padding, window positions, divisors) once and keeps it, because on the
    small activations of an edge CNN that arithmetic costs more than the pooling.

    MaxPool takes the maximum of strided slices: over the window's kh rows first, each
    slice whole padded rows (W and C together in NHWC, long inner loops), then over
    its kw columns of that result -- kh + kw - 2 np.maximum calls where tap by tap
    took kh * kw - 1 (a 3x3 stride-2 pool on 32x32x32: 54 -> 38 us, and fewer than a
    quarter of numpy's inner loops, which is what an ARM core pays for).  The maximum
    is the same value in any order; only the sign of a zero maximum can depend on it
    (np.maximum keeps its second operand on ties, and a window holding both -0 and
    +0 gives either).  A reduction over a window view was 2-3x slower still.
    AveragePool sums over the window view with numpy's own reduction, so its rounding
    (the order of the sum) is numpy's whatever the layout."""

    def __init__(self, op, kernel_shape, strides=None, pads=(0, 0, 0, 0), count_include_pad=0,
                 axes=(2, 3)):
        self.op = op
        self.kh, self.kw = kernel_shape
        self.strides = tuple(strides or (1, 1))
        self.pads = tuple(pads)
        self.count_include_pad = count_include_pad
        self.axes = tuple(axes)
        self._shapes = {}       # input shape -> _PoolGeometry

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float32)
        _check_nchw(x, self.op)
        geometry = self._shapes.get(x.shape)
        if geometry is None:
            geometry = _PoolGeometry(self, x.shape)
            if len(self._shapes) >= 8:        # a few shapes at most: one per batch size
                self._shapes.clear()
            self._shapes[x.shape] = geometry
        padded = x
        if geometry.padded_shape is not None:
            if self.op == "MaxPool":
                padded = np.full(geometry.padded_shape, -np.inf, dtype=np.float32)
            else:
                padded = np.zeros(geometry.padded_shape, dtype=np.float32)
            padded[geometry.inside] = x
        if self.op == "MaxPool":
            rows = _fold_maximum(padded, geometry.row_taps)
            # a new C-order array whatever x's strides, never a view of x
            return _fold_maximum(rows, geometry.column_taps, out=np.empty(geometry.out_shape, np.float32))
        if padded.flags.c_contiguous:
            view = np.ndarray(geometry.view_shape, np.float32, padded, 0, geometry.view_strides)
        else:   # the view over x's own strides: numpy then sums in the same order as ever
            view = windows(padded, self.kh, self.kw, self.strides, (1, 1), self.axes)
        sums = np.add.reduce(view, axis=(-2, -1), dtype=np.float32)
        return np.divide(sums, geometry.divisor, out=sums)


def _fold_maximum(x, taps, out=None):
    """The elementwise maximum of x[tap] over taps, into out when given (a single tap
    is then copied there, and otherwise returned as the view x[tap])."""
    if len(taps) == 1:
        if out is None:
            return x[taps[0]]
        np.copyto(out, x[taps[0]])
        return out
    y = np.maximum(x[taps[0]], x[taps[1]], out=out)
    for tap in taps[2:]:
        np.maximum(y, x[tap], out=y)
    return y


class _PoolGeometry:
    """What Pool needs for one input shape: the padded shape (None without padding) and
    where x sits in it, the row and column tap slices (MaxPool), the window view's shape and
    strides over the contiguous padded array and the divisor (AveragePool)."""

    def __init__(self, pool, shape):
        kh, kw, (sh, sw), pads, (ah, aw) = pool.kh, pool.kw, pool.strides, pool.pads, pool.axes
        top, left, bottom, right = pads
        padded = list(shape)
        padded[ah] += top + bottom
        padded[aw] += left + right
        self.padded_shape = tuple(padded) if any(pads) else None
        inside = [slice(None)] * len(shape)
        inside[ah] = slice(top, top + shape[ah])
        inside[aw] = slice(left, left + shape[aw])
        self.inside = tuple(inside)
        oh, ow = window_positions(padded[ah], padded[aw], kh, kw, pool.strides, (1, 1))
        # MaxPool: the rows of each window (every padded column), then its columns
        self.row_taps, self.column_taps = [], []
        for i in range(kh):
            tap = [slice(None)] * len(shape)
            tap[ah] = slice(i, i + (oh - 1) * sh + 1, sh)
            self.row_taps.append(tuple(tap))
        for j in range(kw):
            tap = [slice(None)] * len(shape)
            tap[aw] = slice(j, j + (ow - 1) * sw + 1, sw)
            self.column_taps.append(tuple(tap))
        item = np.dtype(np.float32).itemsize
        strides = [item * math.prod(padded[a + 1:]) for a in range(len(padded))]
        view_shape, view_strides = list(padded), list(strides)
        view_shape[ah], view_shape[aw] = oh, ow
        view_strides[ah], view_strides[aw] = strides[ah] * sh, strides[aw] * sw
        self.out_shape = tuple(view_shape)
        self.view_shape = self.out_shape + (kh, kw)
        self.view_strides = tuple(view_strides) + (strides[ah], strides[aw])
        self.divisor = np.float32(kh * kw)
        if any(pads) and not pool.count_include_pad:
            image = [1] * len(shape)
            image[ah], image[aw] = shape[ah], shape[aw]
            ones = pad_spatial(np.ones(image, dtype=np.float32), pads, axes=pool.axes)
            self.divisor = windows(ones, kh, kw, pool.strides, (1, 1), pool.axes).sum(axis=(-2, -1))


def global_average_pool(x, axes=(2, 3)):
    """ONNX GlobalAveragePool (axes 1, 2 for NHWC): x.mean over them, keepdims, in
    float32 -- the bits of numpy's mean at a third of its cost on a small map: the
    same sum, then a float32 division where mean divides in float64 and rounds.  The
    two agree: a float32 quotient computed in float64 (53 >= 2 * 24 + 2 bits) and
    rounded is the correctly rounded float32 quotient, and counts below 2**24 are
    exact in float32."""
    x = np.asarray(x, dtype=np.float32)
    _check_nchw(x, "GlobalAveragePool")
    sums = np.add.reduce(x, axis=axes, dtype=np.float32, keepdims=True)
    count = x.shape[axes[0]] * x.shape[axes[1]]
    if count < 2 ** 24:
        return np.divide(sums, np.float32(count), out=sums)
    return np.true_divide(sums, np.intp(count), out=sums, casting="unsafe")


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
        return _arith(np.add)
    if op == "Mul":
        return _arith(np.multiply)
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
        return Pool(op, attrs["kernel_shape"], attrs.get("strides"), attrs.get("pads", (0, 0, 0, 0)),
                    attrs.get("count_include_pad", 0))
    if op == "GlobalAveragePool":
        return global_average_pool
    if op == "Clip":
        return lambda x: clip(x, attrs.get("min"), attrs.get("max"))
    function = cnn_op_function(node) or transformer_function(node)
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

# -- transformer ops (BERT-style encoders) ---------------------------------------------------

def erf(x):
    """ONNX Erf in float32 (numpy has none), from the erfc fit GELU uses
    (reference.erfc_abs_over_sqrt2): within 5e-7 of the exact value."""
    x = np.asarray(x, dtype=np.float32)
    scaled = np.abs(x).reshape(-1) * np.float32(np.sqrt(2.0))    # 1-D: the fit works in place
    tail = reference.erfc_abs_over_sqrt2(scaled).reshape(x.shape)
    return np.where(x >= 0, np.float32(1) - tail, tail - np.float32(1))


def gelu(x, approximate="none"):
    """ONNX Gelu (opset 20): x * Phi(x), or the tanh approximation -- the numpy twin of
    the gelu_f32 kernel (reference.gelu_f32), which keeps the negative tail's precision."""
    return reference.gelu_f32(np.asarray(x, dtype=np.float32), approximate)


def layer_norm(x, scale, bias=None, axis=-1, epsilon=1e-5):
    """ONNX LayerNormalization: normalise over the dims from `axis` on, then scale and shift."""
    x = np.asarray(x, dtype=np.float32)
    axis = axis + x.ndim if axis < 0 else axis
    dims = tuple(range(axis, x.ndim))
    mean = x.mean(axis=dims, keepdims=True, dtype=np.float32)
    centred = x - mean
    var = (centred * centred).mean(axis=dims, keepdims=True, dtype=np.float32)
    y = centred / np.sqrt(var + np.float32(epsilon)) * scale
    if bias is not None:
        y = y + bias
    return y.astype(np.float32, copy=False)


def slice_(x, starts, ends, axes, steps, like=None, ends_from=None):
    """ONNX Slice with constant starts/ends/axes/steps; with `like`, an entry i of
    ends_from that is not None makes the end like.shape[ends_from[i]] (a run-time length)."""
    x = np.asarray(x)
    index = [slice(None)] * x.ndim
    for i, (start, end, axis, step) in enumerate(zip(starts, ends, axes, steps)):
        if ends_from is not None and ends_from[i] is not None:
            end = np.shape(like)[ends_from[i]]
        index[axis] = slice(start, end, step)
    return x[tuple(index)]


def gather(data, indices, axis=0):
    """ONNX Gather with run-time integer indices (an embedding lookup when data is a table)."""
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise ShapeError(f"Gather indices must be integers, got {indices.dtype}")
    data = np.asarray(data)
    size = data.shape[axis]
    if indices.size and (indices.min() < -size or indices.max() >= size):
        raise ShapeError(f"Gather index out of range [{-size}, {size}) "
                         f"(got {int(indices.min())}..{int(indices.max())})")
    return np.take(data, indices.astype(np.int64), axis=axis)


def split(x, axis, sizes):
    """ONNX Split into pieces of the given sizes along axis (a tuple of arrays)."""
    x = np.asarray(x)
    if sum(sizes) != x.shape[axis]:
        raise ShapeError(f"Split sizes {list(sizes)} do not add up to dim {axis} of shape {list(x.shape)}")
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def dynamic_shape(inputs, shape):
    """shape with each entry [i, k] replaced by dim k of inputs[i] (read at run time)."""
    return [np.shape(inputs[d[0]])[d[1]] if isinstance(d, list) else d for d in shape]


def dynamic_reshape(inputs, shape):
    """inputs[0] reshaped to shape, where an entry [i, k] is dim k of inputs[i]."""
    return np.reshape(inputs[0], dynamic_shape(inputs, shape))


def gather_nd(data, indices):
    """ONNX GatherND, batch_dims 0: indices [..., k] index the first k dims of data."""
    data, indices = np.asarray(data), np.asarray(indices)
    if indices.dtype.kind not in "iu" or indices.ndim < 1 or indices.shape[-1] > data.ndim:
        raise ShapeError(f"GatherND indices must be integers [..., k] with k <= {data.ndim}, "
                         f"got {indices.dtype} {list(indices.shape)}")
    index = []
    for axis in range(indices.shape[-1]):
        i = indices[..., axis].astype(np.int64)
        size = data.shape[axis]
        if i.size and (i.min() < -size or i.max() >= size):
            raise ShapeError(f"GatherND index out of range [{-size}, {size}) on axis {axis}")
        index.append(i)
    return data[tuple(index)]


# Bounds on what a file can make the run time allocate (a Range or Expand node sized by
# its own attrs rather than by the inputs): far above any transformer's masks and positions.
MAX_RANGE = 1 << 24
MAX_EXPAND = 1 << 28


def arange(start, limit, delta):
    length = max(0, -(-(limit - start) // delta))
    if length > MAX_RANGE:
        raise ShapeError(f"Range({start}, {limit}, {delta}) has {length} elements, at most {MAX_RANGE}")
    return np.arange(start, limit, delta, dtype=np.int64)


def expand(x, shape):
    shape = np.broadcast_shapes(np.shape(x), tuple(shape))
    if int(np.prod(shape, dtype=np.int64)) > MAX_EXPAND:
        raise ShapeError(f"Expand to {list(shape)}: more than {MAX_EXPAND} elements")
    return np.array(np.broadcast_to(x, shape))


def cumsum(x, axis, exclusive=0, reverse=0):
    """ONNX CumSum (position ids from a padding mask); keeps the input's type."""
    x = np.asarray(x)
    if reverse:
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis, dtype=x.dtype)
    if exclusive:
        y = y - x
    return np.ascontiguousarray(np.flip(y, axis) if reverse else y)


def gather_elements(data, indices, axis=0):
    """ONNX GatherElements: np.take_along_axis with negative indices counted back."""
    data, indices = np.asarray(data), np.asarray(indices)
    if indices.dtype.kind not in "iu" or indices.ndim != data.ndim:
        raise ShapeError(f"GatherElements indices must be integers of rank {data.ndim}, "
                         f"got {indices.dtype} {list(indices.shape)}")
    size = data.shape[axis]
    if indices.size and (indices.min() < -size or indices.max() >= size):
        raise ShapeError(f"GatherElements index out of range [{-size}, {size})")
    indices = np.where(indices < 0, indices + size, indices).astype(np.int64)
    return np.take_along_axis(data, indices, axis=axis)


COMPARE = {"Greater": np.greater, "GreaterOrEqual": np.greater_equal, "Less": np.less,
           "LessOrEqual": np.less_equal, "And": np.logical_and, "Or": np.logical_or}


def _same_kind(a, b):
    """Comparison operands: an integer activation against a float32-stored integer constant
    compares as integers (as in the ONNX model)."""
    a, b = np.asarray(a), np.asarray(b)
    if (a.dtype.kind in "iu") != (b.dtype.kind in "iu") and "b" not in (a.dtype.kind, b.dtype.kind):
        dtype = a.dtype if a.dtype.kind in "iu" else b.dtype
        return a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    return a, b


CAST_DTYPES = {"float32": np.float32, "int64": np.int64, "int32": np.int32, "bool": np.bool_}


def _float32(array):
    """Float results as float32 (numpy promotes float32 with int64 to float64); ints unchanged."""
    return array.astype(np.float32, copy=False) if array.dtype.kind == "f" else array


def _arith(function):
    """A binary op: float32 results, except between integers.  Integer constants are
    stored as float32 tensors, so with an integer activation (index arithmetic on ids
    and positions) the constant is converted back to the activation's type."""
    def run(a, b):
        a, b = np.asarray(a), np.asarray(b)
        kinds = (a.dtype.kind in "iu", b.dtype.kind in "iu")
        if kinds[0] != kinds[1]:
            dtype = a.dtype if kinds[0] else b.dtype
            a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        return _float32(function(a, b))
    return run


def _f32(function):
    """A float op whose result is float32 whatever numpy promoted it to."""
    return lambda *args: np.asarray(function(*args)).astype(np.float32, copy=False)


def _reduce(function, attrs):
    axes = attrs.get("axes")
    axes = None if axes is None else tuple(axes)
    keepdims = bool(attrs.get("keepdims", 1))
    return lambda x: function(np.asarray(x, dtype=np.float32), axis=axes, keepdims=keepdims,
                              dtype=np.float32)


def transformer_function(node):
    """op_function for the transformer ops; None for any other op."""
    op, attrs = node.op, node.attrs
    if op == "Gelu":
        return lambda x: gelu(x, attrs.get("approximate", "none"))
    if op == "Erf":
        return erf
    if op == "LayerNorm":
        return lambda x, scale, bias=None: layer_norm(x, scale, bias, attrs.get("axis", -1),
                                                      attrs.get("epsilon", 1e-5))
    if op == "MatMul":
        return _f32(np.matmul)
    if op == "Transpose":
        return lambda x: np.ascontiguousarray(np.transpose(x, attrs["perm"]))
    if op == "Concat":
        return lambda *xs: _float32(np.concatenate(xs, axis=attrs["axis"]))
    if op == "Split":
        return lambda x: split(x, attrs["axis"], attrs["split"])
    if op == "Slice":
        n = len(attrs["starts"])
        options = (attrs["starts"], attrs["ends"], attrs.get("axes", list(range(n))),
                   attrs.get("steps", [1] * n))
        return lambda x, like=None: slice_(x, *options, like, attrs.get("ends_from"))
    if op == "Gather":
        axis = attrs.get("axis", 0)
        if "indices" in attrs:              # constant indices on an activation, e.g. x[:, 0]
            indices = np.asarray(attrs["indices"], dtype=np.int64)
            return lambda x: gather(x, indices, axis)
        return lambda data, indices: gather(data, indices, axis)
    if op == "Cast":
        dtype = CAST_DTYPES[attrs["to"]]
        return lambda x: np.asarray(x).astype(dtype)
    if op == "Where":
        return lambda cond, a, b: _float32(np.where(np.asarray(cond, dtype=bool), a, b))
    if op == "Equal":
        return lambda a, b: np.equal(a, b)
    if op == "ReduceMean":
        return _reduce(np.mean, attrs)
    if op == "ReduceSum":
        return _reduce(np.sum, attrs)
    if op == "Sub":
        return _arith(np.subtract)
    if op == "Div":
        return _f32(np.divide)
    if op == "Pow":
        return _f32(lambda a, b: np.power(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)))
    if op == "Sqrt":
        return _f32(np.sqrt)
    if op == "DynamicReshape":
        return lambda *xs: dynamic_reshape(xs, attrs["shape"])
    if op in COMPARE:
        return lambda a, b: COMPARE[op](*_same_kind(a, b))
    if op == "Not":
        return np.logical_not
    if op == "IsNaN":
        return np.isnan
    if op == "CumSum":
        return lambda x: cumsum(x, attrs["axis"], attrs.get("exclusive", 0), attrs.get("reverse", 0))
    if op == "GatherElements":
        return lambda data, indices: gather_elements(data, indices, attrs.get("axis", 0))
    if op in ("Max", "Min"):
        function = np.maximum if op == "Max" else np.minimum
        return lambda *xs: _float32(functools.reduce(lambda a, b: function(*_same_kind(a, b)), xs))
    if op == "GatherND":
        return gather_nd
    if op == "Dims":
        return lambda *xs: np.asarray(dynamic_shape(xs, attrs["values"]), dtype=np.int64).reshape(
            attrs.get("shape", [-1]))
    if op == "Range":
        return lambda limit: arange(attrs["start"], int(np.asarray(limit).reshape(-1)[0]), attrs["delta"])
    if op == "Expand":
        return lambda *xs: expand(xs[0], dynamic_shape(xs, attrs["shape"]))
    return None


def _dense(graph, name, cache):
    if name not in cache:
        cache[name] = graph.tensors[name].to_dense().astype(np.float32, copy=False)
    return cache[name]


def evaluate(graph, feeds, capture=None):
    """Run graph on feeds ({input name: array}, or one array for a one-input graph).

    Returns {output name: float32 array}; with capture (a set of node names) the
    first input activation of each of those nodes is added under the node's name
    (a Linear's as the 2-D matrix of its rows, e.g. [batch * seq, features]).
    """
    if not isinstance(feeds, dict):
        if len(graph.inputs) != 1:
            raise ShapeError(f"graph has {len(graph.inputs)} inputs; pass a dict of them")
        feeds = {graph.inputs[0].name: feeds}
    values = {}
    for info in graph.inputs:
        if info.name not in feeds:
            raise ShapeError(f"missing input {info.name!r} ({info.describe()})")
        # integer inputs (token ids, masks) keep their declared dtype; everything else is float32
        dtype = info.dtype if info.dtype in ("int64", "int32") else np.float32
        values[info.name] = np.asarray(feeds[info.name], dtype=dtype)
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
            x = args[0]
            if node.op == "Linear" and x.ndim > 2:     # [batch, seq, features]: rows of tokens
                x = x.reshape(-1, x.shape[-1])
            captured[node.name] = x
        result = op_function(node)(*args)
        if len(node.outputs) > 1:          # Split: one array per output
            values.update(zip(node.outputs, result))
        else:
            values[node.outputs[0]] = result
    result = {out.name: values[out.name] for out in graph.outputs}
    result.update(captured)
    return result
