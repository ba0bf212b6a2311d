"""Where activations are NHWC: the layout plan of a Session.

The graph's ops are defined on NCHW (ONNX's layout), but the conv kernels want the
channels innermost: dwconv2d reads the C weights of one tap contiguously, and a
1x1 conv on NHWC is a plain matrix product over [N*H*W, C] rows (no im2col at
all).  So a Session keeps every 4-D activation that a conv produces in NHWC and
passes it on in NHWC through the ops that do not care about the order of axes --

    Conv2d                                       always runs NHWC (in and out)
    Relu Sigmoid Tanh Clip HardSigmoid HardSwish elementwise: the input's layout
    MaxPool AveragePool GlobalAveragePool Pad Resize   the input's layout; NHWC forms here
    Add Mul                                      NHWC when an operand is NHWC and every
                                                 operand is 4-D (constants of rank <= 4 are
                                                 broadcast-aligned to 4-D and transposed once,
                                                 at plan time, so a per-channel [C, 1, 1]
                                                 becomes [1, 1, 1, C])

-- and converts only where a consumer needs the logical layout: every other op
(Flatten, Reshape, Softmax, Linear, Concat, ...) and the graph's outputs read
NCHW.  A converted value is converted once however many consumers read it.  A
conversion of an NHWC value with H*W == 1 (a global pool's output) or C == 1 is a
free reshape: the two layouts hold the same bytes then.  Graph inputs are NCHW,
so the first conv transposes the input image once.

plan(graph) -> Layout: .nhwc (the values held NHWC), .conversions ([(value,
target layout)], the transposes a run makes), .node_layout ({node name: layout}).
"""
from dataclasses import dataclass, field
from typing import Dict, List, Set, Tuple

import numpy as np

from edgerun import evaluate
from edgerun.errors import ShapeError

NCHW, NHWC = "NCHW", "NHWC"
ELEMENTWISE = ("Relu", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish")
SPATIAL = ("MaxPool", "AveragePool", "GlobalAveragePool", "Pad", "Resize")
BINARY = ("Add", "Mul")
_RANK4 = ("Conv2d", "MaxPool", "AveragePool", "GlobalAveragePool", "Resize")
_SAME_RANK = ELEMENTWISE + ("Pad", "Softmax", "Linear")


@dataclass
class Layout:
    nhwc: Set[str] = field(default_factory=set)
    node_layout: Dict[str, str] = field(default_factory=dict)
    conversions: List[Tuple[str, str]] = field(default_factory=list)

    def of(self, value):
        return NHWC if value in self.nhwc else NCHW


def ranks(graph):
    """{value name: rank or None (unknown)} for every activation, from the inputs' ranks."""
    rank = {v.name: len(v.shape) for v in graph.inputs}
    for name, tensor in graph.tensors.items():
        rank[name] = len(tensor.shape)
    for node in graph.nodes:
        first = rank.get(node.inputs[0]) if node.inputs else None
        if node.op in _RANK4:
            r = 4
        elif node.op in _SAME_RANK:
            r = first
        elif node.op in BINARY:
            known = [rank.get(v) for v in node.inputs]
            r = None if None in known else max(known)
        elif node.op == "Flatten":
            r = 2
        elif node.op == "Reshape" and isinstance(node.attrs.get("shape"), list):
            r = len(node.attrs["shape"])
        else:
            r = None                # an op this planner does not know: its rank is unknown
        for out in node.outputs:
            rank[out] = r
    return rank


def plan(graph):
    """The Layout of graph: which values stay NHWC, where conversions happen."""
    layout = Layout()
    rank = ranks(graph)
    needed = set()
    for node in graph.nodes:
        activations = [v for v in node.inputs if v not in graph.tensors]
        constants = [v for v in node.inputs if v in graph.tensors]
        if node.op == "Conv2d":
            mode = NHWC
        elif node.op in ELEMENTWISE + SPATIAL:
            mode = layout.of(activations[0]) if activations else NCHW
        elif node.op in BINARY:
            nhwc = (any(v in layout.nhwc for v in activations)
                    and all(rank.get(v) == 4 for v in activations)
                    and all(len(graph.tensors[c].shape) <= 4 for c in constants))
            mode = NHWC if nhwc else NCHW
        else:
            mode = NCHW
        layout.node_layout[node.name] = mode
        for v in activations:
            if layout.of(v) != mode:
                needed.add((v, mode))
        if mode == NHWC:
            layout.nhwc.update(node.outputs)
    for out in graph.outputs:
        if out.name in layout.nhwc:
            needed.add((out.name, NCHW))
    order = {name: i for i, name in enumerate(v for n in graph.nodes for v in n.outputs)}
    layout.conversions = sorted(needed, key=lambda c: (order.get(c[0], -1), c[1]))
    return layout


# ---------------------------------------------------------------- conversions

def to_nhwc(x):
    """[N, C, H, W] -> contiguous [N, H, W, C] (a reshape when H*W == 1 or C == 1)."""
    if x.ndim != 4:
        raise ShapeError(f"expected a 4-D NCHW activation, got shape {list(x.shape)}")
    n, c, h, w = x.shape
    if (h * w == 1 or c == 1) and x.flags.c_contiguous:
        return x.reshape(n, h, w, c)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def to_nchw(x):
    """[N, H, W, C] -> contiguous [N, C, H, W] (a reshape when H*W == 1 or C == 1)."""
    n, h, w, c = x.shape
    if (h * w == 1 or c == 1) and x.flags.c_contiguous:
        return x.reshape(n, c, h, w)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def convert(x, target):
    return to_nhwc(x) if target == NHWC else to_nchw(x)


def nhwc_constant(array):
    """A constant broadcast against an NCHW activation, made to broadcast the same way
    against the NHWC one: aligned to 4-D (leading 1s, as numpy does), then transposed."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 0:
        return array
    array = array.reshape((1,) * (4 - array.ndim) + array.shape)
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1))


# ---------------------------------------------------------------- NHWC forms of the spatial ops

NHWC_SPATIAL = (1, 2)   # where H and W sit in an NHWC array (evaluate's spatial helpers take them)


def windows_nhwc(x, pads, kh, kw, strides, dilations, order="hwc"):
    """x [N, H, W, C] zero-padded by pads (top, left, bottom, right), viewed as
    [N, OH, OW, kh, kw, C] (order "hwc") or [N, OH, OW, C, kh, kw] (order "chw", the
    column order of a conv weight [out, C, kh, kw]).  No copy beyond the padding."""
    padded = evaluate.pad_spatial(x, pads, axes=NHWC_SPATIAL)
    view = evaluate.windows(padded, kh, kw, strides, dilations, NHWC_SPATIAL)
    return view if order == "chw" else view.transpose(0, 1, 2, 4, 5, 3)


def nhwc_function(node, constants):
    """(function, constants) running node on NHWC activations; constants as given
    ({name: array}) rewritten for NHWC where they broadcast against one."""
    op, attrs = node.op, node.attrs
    if op in BINARY:
        return evaluate.op_function(node), {k: nhwc_constant(v) for k, v in constants.items()}
    if op in ELEMENTWISE:
        return evaluate.op_function(node), constants
    if op in ("MaxPool", "AveragePool"):
        pool = evaluate.Pool(op, attrs["kernel_shape"], attrs.get("strides"),
                             attrs.get("pads", (0, 0, 0, 0)), attrs.get("count_include_pad", 0),
                             axes=NHWC_SPATIAL)
        return (lambda x: pool(_rank4(x, op))), constants
    if op == "GlobalAveragePool":
        return (lambda x: evaluate.global_average_pool(_rank4(x, op), axes=NHWC_SPATIAL)), constants
    if op == "Pad":
        pads = list(attrs["pads"])
        if len(pads) == 8:      # (N, C, H, W) begins and ends -> (N, H, W, C)
            pads = [pads[i] for i in (0, 2, 3, 1, 4, 6, 7, 5)]
        mode, value = attrs.get("mode", "constant"), attrs.get("value", 0.0)
        return (lambda x: evaluate.pad(x, pads, mode, value)), constants
    if op == "Resize":
        options = dict(mode=attrs.get("mode", "nearest"), scales=attrs.get("scales"),
                       sizes=attrs.get("sizes"),
                       coordinate_transformation_mode=attrs.get("coordinate_transformation_mode",
                                                                "half_pixel"),
                       nearest_mode=attrs.get("nearest_mode", "round_prefer_floor"))
        return (lambda x: evaluate.resize(x, axes=NHWC_SPATIAL, **options)), constants
    raise ShapeError(f"node {node.name!r}: {op} has no NHWC form")


def _rank4(x, op):
    if x.ndim != 4:
        raise ShapeError(f"{op} expects a 4-D input, got shape {list(x.shape)}")
    return x
