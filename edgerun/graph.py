"""The model in memory: a Graph of Nodes over named values, and its constant Tensors.

One Graph type serves every stage.  The importer fills it with float32 dense
tensors; the compressor replaces tensors by encoded ones (same names, same
logical shape); format.py writes and reads it; the runtime plans from it.

Ops (the runtime's vocabulary, not ONNX's):

    Linear   inputs [x, weight, bias?]   y = x @ weight.T + bias; weight is [out, in]
             attrs {"activation": None | "relu"}
    Relu, Sigmoid, Tanh                  elementwise
    Softmax  attrs {"axis": int}
    Add, Mul inputs [a, b]               numpy broadcasting; b may be a constant tensor
    Flatten  attrs {"axis": int}         to 2-D, like ONNX Flatten
    Reshape  attrs {"shape": [int]}      0 copies the input dim, -1 is inferred
    Conv2d   inputs [x, weight, bias?]   x NCHW (like ONNX); weight [out, in/group, kh, kw]
             attrs {"strides": [sh, sw], "pads": [top, left, bottom, right],
             "dilations": [dh, dw], "group": int, "activation": None | "relu" | "relu6",
             "kernel": [in/group, kh, kw] (only when the weight is stored as the 2-D
             matrix [out, in/group*kh*kw], as the compressor stores it)}
    MaxPool, AveragePool                 NCHW; attrs {"kernel_shape": [kh, kw], "strides",
             "pads" (as Conv2d), "count_include_pad": 0 | 1 (AveragePool)}
    GlobalAveragePool                    NCHW -> [N, C, 1, 1]
    Clip     attrs {"min": float | None, "max": float | None}

  Edge CNN ops (MobileNetV3, padding, upsampling):
    HardSigmoid  attrs {"alpha": float, "beta": float}   max(0, min(1, alpha*x + beta))
    HardSwish                            x * HardSigmoid(x) with alpha 1/6, beta 1/2
    Pad      attrs {"pads": [begin per axis..., end per axis...] (>= 0), "mode": "constant" |
             "reflect" | "edge", "value": float (constant mode)}; any rank
    Resize   4-D NCHW, spatial axes only; attrs {"mode": "nearest" | "linear",
             "coordinate_transformation_mode": "half_pixel" | "pytorch_half_pixel" |
             "align_corners" | "asymmetric" | "tf_half_pixel_for_nn", "nearest_mode":
             "round_prefer_floor" | "round_prefer_ceil" | "floor" | "ceil", and exactly one
             of "scales": [sh, sw] (floats > 0; output floor(size * scale)) or "sizes": [oh, ow]}
  Conv1d / pooling over [N, C, L] import as these 2-D ops on [N, C, 1, L] (Reshape around them).
  All ops are defined on the logical NCHW layout; the runtime may keep activations NHWC
  internally (edgerun/runtime/layout.py) without changing any result.

Transformer ops (BERT-style encoders; every input may also be a constant tensor
unless said otherwise; integer constants are stored as float32 tensors):

    Gelu     attrs {"approximate": "none" | "tanh"}      like ONNX Gelu (opset 20)
    Erf                                  elementwise
    LayerNorm inputs [x, scale, bias?]   attrs {"axis": int, "epsilon": float}; normalises
             over the dims from axis on (ONNX LayerNormalization)
    MatMul   inputs [a, b]               np.matmul of two activations (batched, broadcasting)
    Transpose attrs {"perm": [int]}
    Concat   inputs [x, ...]             attrs {"axis": int}
    Split    outputs [y, ...]            attrs {"axis": int, "split": [int]} (one size per output)
    Slice    inputs [x, like?]           attrs {"starts", "ends", "axes", "steps": [int]} and,
             with `like`, "ends_from": [int | None]: an int makes that end like.shape[int]
             (a run-time length, e.g. the first S rows of a position table)
    Gather   inputs [data, indices]      attrs {"axis": int}: run-time integer indices (an
             embedding lookup when data is a constant table [vocab, hidden], axis 0); or
             inputs [x] with attrs {"axis": int, "indices": int | [int]} (e.g. x[:, 0])
    Cast     attrs {"to": "float32" | "int64" | "int32" | "bool"}
    Where    inputs [cond, a, b]         numpy broadcasting
    Equal    inputs [a, b]               -> bool
    ReduceMean, ReduceSum                attrs {"axes": [int] | None (all), "keepdims": 0 | 1}
    Sub, Div, Pow inputs [a, b]          numpy broadcasting (between activations too)
    Sqrt                                 elementwise
    Expand   attrs {"shape": [int]}      numpy broadcasting of x to shape (ONNX Expand)
    DynamicReshape inputs [x, source...] attrs {"shape": [int | [input, axis]]}: reshape x
             to a shape read partly at run time: [i, k] is dim k of input i (0 is x itself),
             -1 (at most one) is inferred, other ints are literal sizes; for the attention
             reshapes whose run-time dims move ([N*heads, S, d] -> [N, heads, S, d])
    Greater, GreaterOrEqual, Less, LessOrEqual, And, Or inputs [a, b] -> bool; Not, IsNaN
    Dims     inputs [source...]          attrs {"values": [int | [input, axis]], "shape": [int]}:
             an int64 array of sizes read at run time (the batch or sequence length as a
             value, for index arithmetic such as batch_index * S + position)
    Range    inputs [limit]              attrs {"start": int, "delta": int}: int64
             arange(start, limit, delta) with limit a run-time int64 scalar
    (Expand's "shape" entries may also be [input, axis], read from extra inputs at run time)
    Max, Min inputs [x, ...]             elementwise over all inputs, numpy broadcasting
    GatherND inputs [data, indices]      ONNX GatherND with batch_dims 0: indices [..., k]
             pick data[i0, ..., ik-1] (run-time integer indices, checked against data)
    CumSum   attrs {"axis": int, "exclusive": 0 | 1, "reverse": 0 | 1}   (ONNX CumSum)
    GatherElements inputs [data, indices] attrs {"axis": int}: np.take_along_axis

Tensor encodings (the arrays each one holds, all numpy, little-endian):

    dense     values [shape] f32 | f16 | i8;  i8 adds scale f32 [shape[0]]
              (symmetric per output row: w = values * scale[:, None])
    csr       2-D [rows, cols] by output row: indptr u32 [rows+1],
              indices u16 (cols <= 65536) | u32 [nnz], and either
              values f32 | f16 | i8 [nnz] (i8 adds scale f32 [rows]), or, when the
              nonzeros are weight-shared, codes u8 [nnz] < 2**bits with
              centroids f32 | f16 [2**bits] (or i8 centroids with scale f32 [1])
    bcsr4     2-D [rows, cols] in 1x4 blocks (4 consecutive columns of one output
              row): indptr u32 [rows+1] counting BLOCKS, indices u16 (cols <= 65536)
              | u32 [nblocks] = first column of each block (index + 4 <= cols;
              a row's blocks sorted and not overlapping), values f32 | f16 | i8
              [nblocks*4], 4 per block contiguous (i8 adds scale f32 [rows])
    codebook  2-D [rows, cols]: codes u8 [rows, ceil(cols*bits/8)] packed b-bit
              indices (edgerun.packing.pack_bits), centroids f32 | f16 [2**bits],
              or i8 [2**bits] with scale f32 [1]

`Tensor.huffman` asks format.py to Huffman-code the integer streams on write.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from edgerun.errors import EdgerunError, ShapeError

ENCODINGS = ("dense", "csr", "bcsr4", "codebook")
OPS = ("Linear", "Relu", "Sigmoid", "Tanh", "Softmax", "Add", "Mul", "Flatten", "Reshape",
       "Conv2d", "MaxPool", "AveragePool", "GlobalAveragePool", "Clip")
OPS += ("HardSigmoid", "HardSwish", "Pad", "Resize")   # edge CNN ops

# transformer encoders (BERT-style)
OPS += ("Gelu", "Erf", "LayerNorm", "MatMul", "Transpose", "Concat", "Split", "Slice", "Gather",
        "Cast", "Where", "Equal", "ReduceMean", "ReduceSum", "Sub", "Div", "Pow", "Sqrt", "Expand",
        "DynamicReshape",
        "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Not", "Dims", "Range",
        "Max", "Min", "GatherND", "IsNaN", "CumSum", "GatherElements")


def conv_weight_shape(node, weight):
    """The 4-D [out, in/group, kh, kw] a Conv2d weight stands for: its own shape,
    or, for a weight stored as the 2-D matrix [out, in/group*kh*kw], the rows
    times attrs["kernel"].  ShapeError when neither fits."""
    shape = tuple(int(d) for d in weight.shape)
    kernel = node.attrs.get("kernel")
    if kernel is None:
        if len(shape) != 4:
            raise ShapeError(f"node {node.name!r}: conv weight must be 4-D [out, in/group, kh, kw], "
                             f"got shape {shape} (a 2-D weight needs attrs 'kernel')")
        return shape
    kernel = tuple(int(d) for d in kernel)
    if len(shape) != 2 or len(kernel) != 3 or shape[1] != kernel[0] * kernel[1] * kernel[2]:
        raise ShapeError(f"node {node.name!r}: a conv weight of shape {shape} does not match "
                         f"kernel {list(kernel)}; expected [out, {'*'.join(map(str, kernel))}]")
    return (shape[0],) + kernel


@dataclass
class ValueInfo:
    """A graph input or output: name, dtype name, shape (None for a symbolic dim)."""

    name: str
    shape: Tuple[Optional[int], ...]
    dtype: str = "float32"

    def describe(self) -> str:
        dims = ", ".join("N" if d is None else str(d) for d in self.shape)
        return f"{self.dtype} [{dims}]"


@dataclass
class Node:
    op: str
    name: str
    inputs: List[str]
    outputs: List[str]
    attrs: Dict = field(default_factory=dict)


@dataclass
class Tensor:
    """A constant: its logical shape, its encoding and the arrays of that encoding."""

    name: str
    shape: Tuple[int, ...]
    encoding: str = "dense"
    arrays: Dict[str, np.ndarray] = field(default_factory=dict)
    bits: Optional[int] = None
    huffman: bool = False

    @classmethod
    def dense(cls, name, array, dtype=np.float32):
        array = np.ascontiguousarray(array, dtype=dtype)
        return cls(name, tuple(array.shape), "dense", {"values": array})

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays as held in memory (before Huffman coding)."""
        return sum(int(a.nbytes) for a in self.arrays.values())

    @property
    def size(self) -> int:
        count = 1
        for d in self.shape:
            count *= int(d)
        return count

    def to_dense(self) -> np.ndarray:
        """The float32 weights this tensor stands for (scale and centroids applied)."""
        from edgerun.packing import unpack_bits

        a = self.arrays
        if self.encoding == "dense":
            values = a["values"].astype(np.float32)
            if "scale" in a:
                values = values * a["scale"].reshape((-1,) + (1,) * (values.ndim - 1))
            return values
        rows, cols = self.shape
        if self.encoding == "codebook":
            codes = unpack_bits(a["codes"], self.bits, cols)
            return self._centroids()[codes]
        if self.encoding == "csr":
            dense = np.zeros((rows, cols), dtype=np.float32)
            counts = np.diff(a["indptr"].astype(np.int64))
            row_of = np.repeat(np.arange(rows), counts)
            if "codes" in a:
                values = self._centroids()[a["codes"]]
            else:
                values = a["values"].astype(np.float32)
                if "scale" in a:
                    values = values * a["scale"][row_of]
            dense[row_of, a["indices"].astype(np.int64)] = values
            return dense
        if self.encoding == "bcsr4":
            dense = np.zeros((rows, cols), dtype=np.float32)
            counts = np.diff(a["indptr"].astype(np.int64))
            row_of = np.repeat(np.arange(rows), counts)
            values = a["values"].astype(np.float32).reshape(-1, 4)
            if "scale" in a:
                values = values * a["scale"][row_of][:, None]
            columns = a["indices"].astype(np.int64)[:, None] + np.arange(4)
            dense[row_of[:, None], columns] = values
            return dense
        raise EdgerunError(f"tensor {self.name!r}: unknown encoding {self.encoding!r}")

    def _centroids(self) -> np.ndarray:
        centroids = self.arrays["centroids"].astype(np.float32)
        if "scale" in self.arrays:
            centroids = centroids * self.arrays["scale"].astype(np.float32)[0]
        return centroids


@dataclass
class Graph:
    inputs: List[ValueInfo] = field(default_factory=list)
    outputs: List[ValueInfo] = field(default_factory=list)
    nodes: List[Node] = field(default_factory=list)
    tensors: Dict[str, Tensor] = field(default_factory=dict)
    metadata: Dict = field(default_factory=dict)

    def weights(self):
        """(node, weight tensor) for every layer with a weight matrix, in order."""
        for node in self.nodes:
            if node.op == "Linear":
                yield node, self.tensors[node.inputs[1]]

    def validate(self) -> None:
        """Check names and shapes are consistent; raise EdgerunError naming the problem."""
        known = {v.name for v in self.inputs} | set(self.tensors)
        for node in self.nodes:
            if node.op not in OPS:
                raise EdgerunError(f"node {node.name!r}: unknown op {node.op!r}")
            for name in node.inputs:
                if name not in known:
                    raise EdgerunError(f"node {node.name!r} reads {name!r}, which nothing produces")
            if node.op == "Linear":
                weight = self.tensors.get(node.inputs[1])
                if weight is None or len(weight.shape) != 2:
                    raise ShapeError(f"node {node.name!r}: weight must be a 2-D constant")
                if len(node.inputs) > 2 and self.tensors[node.inputs[2]].shape != (weight.shape[0],):
                    raise ShapeError(f"node {node.name!r}: bias must have shape ({weight.shape[0]},)")
            if node.op == "Conv2d":
                weight = self.tensors.get(node.inputs[1]) if len(node.inputs) > 1 else None
                if weight is None:
                    raise ShapeError(f"node {node.name!r}: conv weight must be a constant")
                out = conv_weight_shape(node, weight)[0]
                group = node.attrs.get("group", 1)
                if out % group:
                    raise ShapeError(f"node {node.name!r}: {out} output channels do not split "
                                     f"into {group} groups")
                if len(node.inputs) > 2 and self.tensors[node.inputs[2]].shape != (out,):
                    raise ShapeError(f"node {node.name!r}: bias must have shape ({out},)")
            known.update(node.outputs)
        for out in self.outputs:
            if out.name not in known:
                raise EdgerunError(f"graph output {out.name!r} is never produced")


class GraphBuilder:
    """Build a Graph in code from numpy weights.

        b = GraphBuilder("x", features=64)
        h = b.linear(w1, b1, activation="relu")     # w1: [out, in], like torch Linear
        y = b.linear(w2, b2)
        b.softmax(y)
        graph = b.build()
    """

    def __init__(self, input_name="input", features=None, shape=None):
        shape = tuple(shape) if shape is not None else (None, features)
        self.graph = Graph(inputs=[ValueInfo(input_name, shape)])
        self.current = input_name
        self._features = shape[-1]
        self._count = 0

    def _name(self, op):
        self._count += 1
        return f"{op.lower()}_{self._count}"

    def _add(self, op, inputs, attrs=None, name=None):
        name = name or self._name(op)
        output = f"{name}:0"
        self.graph.nodes.append(Node(op, name, inputs, [output], dict(attrs or {})))
        self.current = output
        return output

    def linear(self, weight, bias=None, activation=None, name=None):
        weight = np.asarray(weight, dtype=np.float32)
        if weight.ndim != 2:
            raise ShapeError(f"linear weight must be 2-D [out, in], got shape {weight.shape}")
        if self._features is not None and weight.shape[1] != self._features:
            raise ShapeError(f"linear weight expects {weight.shape[1]} inputs, "
                             f"the previous layer gives {self._features}")
        if activation not in (None, "relu"):
            raise EdgerunError(f"linear activation must be None or 'relu', got {activation!r}")
        name = name or self._name("Linear")
        inputs = [self.current, f"{name}.weight"]
        self.graph.tensors[inputs[1]] = Tensor.dense(inputs[1], weight)
        if bias is not None:
            bias = np.asarray(bias, dtype=np.float32)
            if bias.shape != (weight.shape[0],):
                raise ShapeError(f"linear bias must have shape ({weight.shape[0]},), got {bias.shape}")
            inputs.append(f"{name}.bias")
            self.graph.tensors[inputs[2]] = Tensor.dense(inputs[2], bias)
        self._features = weight.shape[0]
        return self._add("Linear", inputs, {"activation": activation}, name)

    def relu(self):
        return self._add("Relu", [self.current])

    def sigmoid(self):
        return self._add("Sigmoid", [self.current])

    def tanh(self):
        return self._add("Tanh", [self.current])

    def softmax(self, axis=-1):
        return self._add("Softmax", [self.current], {"axis": axis})

    def build(self, output_name=None) -> Graph:
        out = self.current
        if output_name:
            self.graph.nodes[-1].outputs = [output_name]
            out = output_name
        self.graph.outputs = [ValueInfo(out, (None, self._features))]
        self.graph.validate()
        return self.graph
