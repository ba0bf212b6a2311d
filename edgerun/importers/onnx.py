"""Import an ONNX model of a fully-connected, convolutional or transformer-encoder network
as an edgerun Graph.

    graph = edgerun.import_onnx("mlp.onnx")      # a path, the model's bytes, or an onnx.ModelProto

What it understands (ONNX op -> edgerun op, see edgerun/graph.py):

    Gemm                      -> Linear; weight stored [out, in] (B transposed when transB=0),
                                 alpha folded into the weight, beta into the bias
    MatMul (+ Add of a bias)  -> Linear when the second operand is a constant 2-D initializer
    Relu                      -> fused into the Linear before it (attrs["activation"] = "relu")
                                 when that Linear's output feeds nothing else; Relu otherwise
    Sigmoid, Tanh, Softmax    -> the same op (Softmax before opset 13 works on the input flattened
                                 to 2-D at `axis`: imported as Flatten -> Softmax -> Reshape)
    Add, Mul, Sub, Div        -> Add / Mul (x - c becomes x + (-c), x / c becomes x * (1/c));
                                 a per-feature constant Mul / Add right after a Linear is folded
                                 into its weight rows / bias
    BatchNormalization        -> (inference) Mul + Add per channel, so after a Linear or a Conv
                                 it folds into the weight and bias
    Conv (2-D, NCHW)          -> Conv2d: groups (depthwise too), strides, dilations, pads,
                                 auto_pad NOTSET / VALID / SAME_UPPER / SAME_LOWER (SAME_* needs
                                 the image size known at import); a following Relu or Clip(0, 6)
                                 is fused into attrs["activation"] ("relu" / "relu6")
    MaxPool, AveragePool      -> the same op (ceil_mode=0, no dilations); GlobalAveragePool too
    Clip                      -> Clip with constant min / max (attributes before opset 11)
    HardSigmoid, HardSwish    -> the same op; HardSigmoid(alpha 1/6, beta 1/2) times its own
                                 input (the opset < 14 form of torch's Hardswish) -> HardSwish
    Pad                       -> Pad (constant / reflect / edge; pads, value and axes constant,
                                 attributes before opset 11; negative pads are refused); a zero
                                 pad of H, W read only by a Conv becomes the conv's pads
    Resize                    -> Resize over H and W (nearest with any nearest_mode, or linear =
                                 bilinear; half_pixel, pytorch_half_pixel, align_corners,
                                 asymmetric, tf_half_pixel_for_nn; constant scales or sizes)
    Conv, MaxPool, AveragePool, GlobalAveragePool on [N, C, L] (Conv1d, BatchNorm1d, pools)
                              -> the 2-D op on [N, C, 1, L] between two Reshapes; BatchNorm,
                                 Relu and Clip after it move inside so they fold into the conv,
                                 and back-to-back Reshapes between 1-D layers cancel (also around
                                 a residual Add of two 1-D layers)
    Flatten, Reshape          -> the same op; Reshape needs a shape known at import time
    Identity, Dropout, Cast   -> dropped (inference; casts between float types only)
    Squeeze, Unsqueeze        -> Reshape on an activation (they only drop / add 1-sized dims)
    Constant, Shape, Gather, Unsqueeze, Squeeze, Concat, Slice, Transpose, ConstantOfShape
                              -> folded away when they only depend on initializers and on static
                                 (or symbolic) shapes, as exporters emit for `x.view(x.size(0), -1)`

Transformer encoders (BERT / MiniLM-style, torch's TorchScript exporter at opset 14-17 and
its dynamo exporter at opset 18 verified against onnxruntime):

    Gather                    -> Gather: a float constant table by run-time integer ids (an
                                 embedding lookup, axis 0), or an activation by constant
                                 indices (a scalar or a list, e.g. CLS pooling x[:, 0])
    MatMul of two activations -> MatMul (attention scores and context; batched, broadcasting)
    LayerNormalization        -> LayerNorm (opset 17; scale, optional bias, any trailing axis)
    Gelu                      -> Gelu (opset 20; approximate "none" / "tanh")
    ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul gamma [, Add beta]
                              -> one LayerNorm (what the TorchScript exporter writes before
                                 opset 17), when the inner values feed nothing else
    Div(x, sqrt 2) | Mul(x, 1/sqrt 2), Erf, Add 1, Mul x, Mul 0.5 (any order of the last two)
                              -> one Gelu; a lone Erf stays Erf
    Transpose, Concat, Split, Slice, Expand on activations
                              -> the same op (constant perm / axis / sizes / starts, ends,
                                 axes, steps / shape); Slice of a constant to a graph input's
                                 run-time length (position_ids[:, :S]) reads that length
                                 from the input at run time (attrs ends_from)
    Cast                      -> Cast between float32, int64, int32 and bool (a cast to the
                                 type a value already has is dropped)
    Where, Equal, Sub, Div, Pow, Sqrt, Erf, ReduceMean, ReduceSum
                              -> the same op, between activations and constants (integer
                                 constants such as a mask's 0 are stored as float32)
    Reshape, Unsqueeze, Squeeze -> DynamicReshape when more than one run-time dim moves
    Mod                       -> folded (on constants only)
    Range, Greater(OrEqual), Less(OrEqual), And, Or, Not, Max, Min, GatherND (batch_dims 0),
    Gather of an activation by run-time integer indices, Add / Sub / Mul on integers
                              -> the same ops: the index arithmetic current Hugging Face BERT
                                 uses to build its attention mask (arange over the run-time
                                 batch / sequence length, batch * S + position, a gather);
                                 a run-time length used as a value becomes a Dims node, an
                                 Expand to run-time dims reads them from the graph input
    INT64 / INT32 graph inputs (input_ids, attention_mask) keep their type.
    torch's nn.TransformerEncoderLayer (batch_first) imports too (dynamo: any batch and
    sequence length; TorchScript: the tracer bakes in the example's sequence length), and so
    do Hugging Face transformers 5's BERT (eager and sdpa attention), DistilBERT, RoBERTa,
    ELECTRA and ALBERT with their attention masks (checked by hand with tiny random configs:
    TorchScript opset 17 and dynamo opset 18 match onnxruntime with padding, at two batch
    sizes and sequence lengths).
    CumSum, GatherElements    -> the same ops (RoBERTa's position ids from the padding mask;
                                 ELECTRA / ALBERT's token types from an expanded buffer)

Shapes are tracked through the graph with symbolic dims (the batch "N"), so the
Shape -> Gather -> Unsqueeze -> Concat -> Reshape pattern folds to Reshape [0, -1].
Everything else raises edgerun.UnsupportedOpError naming the op, the node and the opset.

Every float is imported as float32 (float16 / double / bfloat16 initializers are converted,
and FLOAT16 / DOUBLE graph inputs become float32 inputs); integer initializers are accepted
where a shape or an index is expected, and as small constants of elementwise ops.
Symbolic dims of a graph input stand for run-time lengths (batch and sequence).  Products
of them (N * heads) are tracked as symbols too ("4*N"); a Reshape / Unsqueeze / Squeeze
whose run-time dims change position (torch's attention: [S, N*heads, d] -> [N, heads, S, d])
becomes a DynamicReshape that reads those dims at run time from the input or from the
graph input they came from.  Other arithmetic on run-time dims is not supported.  Dropout is dropped whatever its training_mode.

Names: nodes keep their ONNX names (an unnamed one becomes "<Op>_<index>"); a weight keeps its
initializer's name, also when transposed or scaled, unless that name already holds other
values (tied weights used the same way stay one tensor).  Folding a constant scale into a
weight rounds once more than ONNX does (x*(W*s) vs (x*W)*s): within float32 tolerance, not
bit-exact.  Graph.metadata records producer, opset, IR version and the sha256 of the model bytes.
"""
import functools
import hashlib
import math
import os

import numpy as np

from edgerun.errors import EdgerunError, ShapeError, UnsupportedOpError
from edgerun.graph import Graph, Node, Tensor, ValueInfo

SUPPORTED = ("Gemm", "MatMul", "Conv", "Relu", "Sigmoid", "Tanh", "Softmax", "Add", "Mul", "Sub", "Div",
             "MaxPool", "AveragePool", "GlobalAveragePool", "Clip", "Flatten", "Reshape", "BatchNormalization", "Identity", "Dropout", "Cast", "Constant",
             "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Transpose", "ConstantOfShape")
SUPPORTED += ("HardSigmoid", "HardSwish", "Pad", "Resize")      # edge CNN ops

# transformer encoders (BERT-style)
SUPPORTED += ("Gelu", "Erf", "LayerNormalization", "Split", "Where", "Equal", "ReduceMean",
              "ReduceSum", "Pow", "Sqrt", "Expand", "Greater", "GreaterOrEqual", "Less", "LessOrEqual",
              "And", "Or", "Not", "Range", "Mod", "Max", "Min", "GatherND", "IsNaN",
              "CumSum", "GatherElements")

# TensorProto element types we treat as float: FLOAT, FLOAT16, DOUBLE, BFLOAT16.
_FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}
# Integer graph inputs (token ids, attention masks) keep their type: INT32, INT64.
_INT_TYPES = {6: "int32", 7: "int64"}
_EXTERNAL = 1  # TensorProto.EXTERNAL
# A hostile model can ask ConstantOfShape for terabytes; no real MLP needs a constant this big.
_MAX_FOLDED_ELEMENTS = 1 << 28


def import_onnx(model, outputs=None) -> Graph:
    """Read an ONNX model (path, bytes or onnx.ModelProto) into a float32 edgerun Graph.

    outputs: names of the values to keep as graph outputs (default: the model's own outputs).
    Only the nodes they depend on are imported, e.g. outputs=["probabilities"] for a
    classifier whose label output goes through ArgMax.
    """
    try:
        import onnx
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise EdgerunError("import_onnx needs the 'onnx' package: pip install 'edgerun[onnx]'") from error
    proto, where, data = _read_model(onnx, model)
    return _Importer(onnx, proto, where, hashlib.sha256(data).hexdigest()).run(outputs)


def _read_model(onnx, model):
    """(ModelProto, description for messages, the serialized bytes that were hashed)."""
    if isinstance(model, onnx.ModelProto):
        return model, "the ONNX model", model.SerializeToString()
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, where = bytes(model), "the given bytes"
    elif isinstance(model, (str, os.PathLike)):
        where = f"file {os.fspath(model)!r}"
        try:
            with open(model, "rb") as f:
                data = f.read()
        except OSError as error:
            raise EdgerunError(f"cannot read ONNX {where}: {error.strerror or error}") from error
    else:
        raise EdgerunError(f"import_onnx expects a path, bytes or an onnx.ModelProto, "
                           f"got {type(model).__name__}")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as error:  # protobuf's DecodeError, whose module path varies by version
        raise EdgerunError(f"{where}: not an ONNX model, or a truncated one "
                           f"(protobuf could not parse it: {error})") from error
    # Protobuf parses many byte strings "successfully" into an empty message: demand a graph.
    if proto.ir_version <= 0 or not proto.HasField("graph") or not proto.opset_import:
        raise EdgerunError(f"{where}: not an ONNX model (no ir_version, graph or opset_import)")
    return proto, where, data


class _Importer:
    def __init__(self, onnx, proto, where, sha256):
        self.onnx = onnx
        self.proto = proto
        self.where = where
        self.sha256 = sha256
        self.opset = self._default_opset()
        self.graph = Graph()
        self.consts = {}        # ONNX value name -> numpy array known at import time
        self.shapes = {}        # activation name -> tuple of int | str (a symbolic dim)
        self.alias = {}         # ONNX value name -> the value it stands for (dropped nodes)
        self.node_names = set()
        self.squeezes = set()   # names of the Reshape nodes taking a lifted 1-D layer back to 3-D
        self.taken = set()      # every value and tensor name, so generated ones stay unique
        self.symbols = 0
        self.dtypes = {}        # activation name -> dtype name when not float32 (ids, masks)
        self.symbol_source = {} # a graph input's symbolic dim -> (input name, axis)

    # ---------------------------------------------------------------- driver

    def run(self, outputs=None) -> Graph:
        g = self.proto.graph
        self.output_names = self._select_outputs(g, outputs)
        nodes = self._needed_nodes(g)
        for container in (g.input, g.output, g.initializer, g.value_info):
            self.taken.update(v.name for v in container)
        for node in g.node:
            self.taken.update(node.output)
        if len(g.sparse_initializer):
            raise EdgerunError(f"{self.where} has sparse initializers "
                               f"({g.sparse_initializer[0].values.name!r}), which edgerun cannot import")
        for init in g.initializer:
            self.consts[init.name] = self._tensor_array(init)
        nodes = self._fuse_patterns(nodes)
        self.consumers = {}
        for _, node in nodes:
            for name in node.input:
                self.consumers[name] = self.consumers.get(name, 0) + 1
        for name in self.output_names:
            self.consumers[name] = self.consumers.get(name, 0) + 1
        for value in g.input:
            # With outputs chosen, an input none of them depends on is left out.
            if value.name not in self.consts and (outputs is None or value.name in self.consumers):
                self._add_input(value)
        self._check_ops(nodes)
        for index, node in nodes:
            self._import_node(node, index)
        self._fuse_hard_swish()
        self._fold_zero_pads()
        for _ in range(2):      # a cancelled pair can free a squeeze read twice (a 1-D residual)
            self._merge_reshapes()
            self._sink_squeezes()
        self._fuse()
        self._merge_reshapes()
        self._set_outputs()
        self._prune_dead()
        self.graph.metadata = {
            "source_format": "onnx",
            "producer_name": self.proto.producer_name,
            "producer_version": self.proto.producer_version,
            "ir_version": int(self.proto.ir_version),
            "opset": self.opset,
            "graph_name": g.name,
            "source_sha256": self.sha256,
        }
        self.graph.validate()
        return self.graph

    def _default_opset(self):
        for entry in self.proto.opset_import:
            if entry.domain in ("", "ai.onnx"):
                return int(entry.version)
        raise EdgerunError(f"{self.where} imports no version of the default ONNX operator set")

    def _add_input(self, value):
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            raise EdgerunError(f"input {value.name!r} is a {kind or 'untyped value'}; "
                               "edgerun imports models whose inputs are float tensors")
        elem = value.type.tensor_type.elem_type
        if elem not in _FLOAT_TYPES and elem not in _INT_TYPES:
            type_name = self.onnx.TensorProto.DataType.Name(elem) if elem else "undefined"
            raise EdgerunError(f"input {value.name!r} has element type {type_name}; edgerun imports "
                               "float inputs (FLOAT, or FLOAT16/DOUBLE to run as float32) and "
                               "INT32 / INT64 inputs (token ids, masks)")
        if not value.type.tensor_type.HasField("shape"):
            raise EdgerunError(f"input {value.name!r} declares no shape; edgerun needs at least its rank "
                               "(export with a declared input shape, dynamic dims named e.g. 'N')")
        dims = []
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value > 0:
                dims.append(int(dim.dim_value))
            elif dim.HasField("dim_param") and dim.dim_param:
                dims.append(dim.dim_param)
            else:
                dims.append(self._fresh_symbol())
        self.shapes[value.name] = tuple(dims)
        for axis, d in enumerate(dims):
            if isinstance(d, str):
                self.symbol_source.setdefault(d, (value.name, axis))
        dtype = _INT_TYPES.get(elem, "float32")
        if dtype != "float32":
            self.dtypes[value.name] = dtype
        self.graph.inputs.append(ValueInfo(value.name, _public_shape(dims), dtype))

    def _select_outputs(self, g, outputs):
        if outputs is None:
            return [v.name for v in g.output]
        if isinstance(outputs, str):
            outputs = [outputs]
        known = {v.name for v in g.input} | {o for node in g.node for o in node.output if o}
        for name in outputs:
            if name not in known:
                declared = ", ".join(repr(v.name) for v in g.output)
                raise EdgerunError(f"{self.where} has no value {name!r} to output "
                                   f"(its declared outputs are {declared})")
        return list(outputs)

    def _needed_nodes(self, g):
        """(index, node) of the nodes the outputs depend on, in graph order."""
        needed, kept = set(self.output_names), []
        for index in range(len(g.node) - 1, -1, -1):
            node = g.node[index]
            if any(o in needed for o in node.output):
                kept.append((index, node))
                needed.update(node.input)
        return kept[::-1]

    def _check_ops(self, nodes):
        """Refuse an unsupported op before importing anything, naming every other one too,
        so one attempt tells the user the whole list of what is missing."""
        missing = [(i, node) for i, node in nodes
                   if node.domain not in ("", "ai.onnx") or not hasattr(self, "_op_" + node.op_type)]
        if not missing:
            return
        index, node = missing[0]
        self.node, self.node_name = node, node.name or f"{node.op_type}_{index}"
        others = sorted({n.op_type for _, n in missing[1:]} - {node.op_type})
        also = f"; the model also uses {', '.join(others)}" if others else ""
        if len(self.output_names) > 1:
            also += (f"; to import only some of the outputs {self.output_names}, "
                     "pass import_onnx(..., outputs=[names])")
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(f"node {self.node_name!r} uses {node.op_type} from operator domain "
                                     f"{node.domain!r}, which edgerun cannot import{also}")
        error = self._unsupported()
        raise UnsupportedOpError(str(error) + also)

    def _import_node(self, node, index):
        name = node.name or f"{node.op_type}_{index}"
        if name in self.node_names:
            name = f"{name}_{index}"
        self.node_names.add(name)
        self.node = node
        self.node_name = name
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(f"node {name!r} uses {node.op_type} from operator domain "
                                     f"{node.domain!r}, which edgerun cannot import")
        handler = getattr(self, "_op_" + node.op_type, None)
        if handler is None:
            raise self._unsupported()
        for value in node.input:
            if value and self._resolve(value) not in self.consts and self._resolve(value) not in self.shapes:
                raise EdgerunError(f"node {name!r} ({node.op_type}) reads {value!r}, which no earlier "
                                   "node, input or initializer produces (is the graph topologically sorted?)")
        handler(node)

    # ---------------------------------------------------------------- helpers

    def _unsupported(self, detail=""):
        node = self.node
        return UnsupportedOpError(
            f"node {self.node_name!r} uses {node.op_type} (opset {self.opset}){detail}, which edgerun "
            f"cannot import yet (it imports fully-connected, convolutional and transformer-encoder networks: "
            f"{', '.join(SUPPORTED[:13])}, ...)")

    def _fresh_symbol(self):
        self.symbols += 1
        return f"?{self.symbols}"

    def _unique(self, base):
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name

    def _resolve(self, name):
        for _ in range(len(self.alias) + 1):      # bounded: an alias cycle would be our bug
            if name not in self.alias:
                return name
            name = self.alias[name]
        raise EdgerunError(f"internal error: value {name!r} is an alias of itself")

    def _inputs(self, node):
        """The node's inputs resolved, with '' (an omitted optional input) as None."""
        return [self._resolve(v) if v else None for v in node.input] + [None] * 6

    def _is_const(self, name):
        return name is not None and name in self.consts

    def _attrs(self, node):
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def _tensor_array(self, proto):
        if proto.data_location == _EXTERNAL:
            location = next((e.value for e in proto.external_data if e.key == "location"), "?")
            raise EdgerunError(
                f"initializer {proto.name!r} keeps its data in the external file {location!r}; edgerun "
                "imports self-contained models: onnx.load() the model from its folder (which reads the "
                "external data) and pass the ModelProto, or re-save it with save_as_external_data=False")
        try:
            return self.onnx.numpy_helper.to_array(proto)
        except Exception as error:     # e.g. dims that do not match the stored data
            raise EdgerunError(f"tensor {proto.name!r} in {self.where} cannot be read "
                               f"(dims {list(proto.dims)}): {error}") from error

    def _float(self, name, what):
        """A constant as float32, refusing integer data (only shapes may be integers)."""
        array = self.consts[name]
        if array.dtype == object or not np.issubdtype(array.dtype, np.floating):
            raise EdgerunError(f"node {self.node_name!r}: {what} {name!r} has dtype {array.dtype}; "
                               "a float tensor was expected")
        return np.asarray(array, dtype=np.float32)

    def _add_tensor(self, preferred, array):
        """Store a float32 constant as a graph tensor, reusing an identical one; return its name."""
        array = np.ascontiguousarray(array, dtype=np.float32)
        existing = self.graph.tensors.get(preferred)
        if existing is not None:
            values = existing.arrays["values"]
            if values.shape == array.shape and np.array_equal(values, array):
                return preferred        # tied weights stay one tensor
            name = self._unique(preferred)
        elif preferred in self.consts:  # an initializer's own name: never an activation's
            name = preferred
        else:
            name = self._unique(preferred)
        self.graph.tensors[name] = Tensor.dense(name, array)
        return name

    def _emit(self, op, inputs, output, shape, attrs=None, name=None, dtype=None):
        self.graph.nodes.append(Node(op, name or self.node_name, list(inputs), [output], dict(attrs or {})))
        self.shapes[output] = tuple(shape)
        # dtype: float32 unless given, or that of the first input for ops that move data
        dtype = dtype or (self.dtypes.get(inputs[0], "float32") if op in _DTYPE_KEEPING else "float32")
        if dtype != "float32":
            self.dtypes[output] = dtype
        self.taken.add(output)
        return output

    def _rank(self, name):
        return len(self.shapes[name])

    # ---------------------------------------------------------------- dense layers

    def _op_Gemm(self, node):
        a, b, c = self._inputs(node)[:3]
        attrs = self._attrs(node)
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        if self._is_const(a):
            raise self._unsupported(" with a constant first operand A")
        if attrs.get("transA", 0):
            raise self._unsupported(" with transA=1 (the activation transposed)")
        if not self._is_const(b):
            raise self._unsupported(f" whose operand B {b!r} is computed at run time, not an initializer")
        weight = self._float(b, "operand B")
        if weight.ndim != 2:
            raise ShapeError(f"node {self.node_name!r}: Gemm operand B {b!r} must be 2-D, "
                             f"got shape {weight.shape}")
        if not attrs.get("transB", 0):
            weight = weight.T          # ONNX B is [in, out]; edgerun weights are [out, in]
        if alpha != 1.0:
            weight = weight * np.float32(alpha)
        x_shape = self.shapes[a]
        if len(x_shape) != 2:
            raise ShapeError(f"node {self.node_name!r}: Gemm input {a!r} must be 2-D, got rank {len(x_shape)}")
        out_features, in_features = weight.shape
        if isinstance(x_shape[1], int) and x_shape[1] != in_features:
            raise ShapeError(f"node {self.node_name!r}: Gemm input {a!r} has {x_shape[1]} features, "
                             f"the weight {b!r} expects {in_features}")
        inputs = [a, self._add_tensor(b, weight)]
        if c is not None and beta != 0.0:
            if not self._is_const(c):
                raise self._unsupported(f" whose operand C {c!r} is computed at run time")
            bias = self._float(c, "operand C")
            if bias.ndim > 2 or not (bias.size == 1 or (bias.size == out_features
                                                         and bias.shape[-1] == out_features)):
                raise self._unsupported(f" with a bias C of shape {bias.shape} "
                                        f"(expected a scalar or [{out_features}])")
            bias = np.broadcast_to(bias.reshape(-1), (out_features,)) * np.float32(beta)
            inputs.append(self._add_tensor(c, bias))
        self._emit("Linear", inputs, node.output[0], (x_shape[0], out_features), {"activation": None})

    def _op_MatMul(self, node):
        a, b = self._inputs(node)[:2]
        if not self._is_const(b):
            return self._matmul_activations(a, b)
        if self._is_const(a):
            return self._fold(node)
        weight = self._float(b, "operand B")
        if weight.ndim != 2:
            raise self._unsupported(f" with a {weight.ndim}-D constant operand {b!r} (only 2-D weights)")
        x_shape = self.shapes[a]
        if len(x_shape) < 2:
            raise self._unsupported(f" of a {len(x_shape)}-D activation {a!r}")
        in_features, out_features = weight.shape
        if isinstance(x_shape[-1], int) and x_shape[-1] != in_features:
            raise ShapeError(f"node {self.node_name!r}: MatMul input {a!r} has {x_shape[-1]} features, "
                             f"the weight {b!r} expects {in_features}")
        inputs = [a, self._add_tensor(b, weight.T)]
        self._emit("Linear", inputs, node.output[0], x_shape[:-1] + (out_features,), {"activation": None})

    # ---------------------------------------------------------------- elementwise

    def _unary(self, node, op):
        (x,) = self._inputs(node)[:1]
        if self._is_const(x):
            return self._fold(node)
        self._emit(op, [x], node.output[0], self.shapes[x])

    _op_Relu = functools.partialmethod(_unary, op="Relu")
    _op_Sigmoid = functools.partialmethod(_unary, op="Sigmoid")
    _op_Tanh = functools.partialmethod(_unary, op="Tanh")

    def _op_Softmax(self, node):
        (x,) = self._inputs(node)[:1]
        if self._is_const(x):
            raise self._unsupported(" of a constant")
        shape = self.shapes[x]
        rank = len(shape)
        axis = self._attrs(node).get("axis", -1 if self.opset >= 13 else 1)
        axis = self._axis(axis, rank)
        if self.opset >= 13 or axis == rank - 1:
            self._emit("Softmax", [x], node.output[0], shape, {"axis": axis})
            return
        # Before opset 13 Softmax normalises over all dims from `axis` on, as if the input were
        # flattened to 2-D there: do exactly that, then restore the shape.
        flat = self._unique(f"{node.output[0]}/flat")
        flat_shape = _flatten_shape(shape, axis, self._fresh_symbol)
        target = self._reshape_target(flat_shape, shape, f" (legacy semantics, axis={axis})")
        soft = self._unique(f"{node.output[0]}/softmax")
        self._emit("Flatten", [x], flat, flat_shape, {"axis": axis}, name=f"{self.node_name}/flatten")
        self._emit("Softmax", [flat], soft, self.shapes[flat], {"axis": 1}, name=f"{self.node_name}/softmax")
        self._emit("Reshape", [soft], node.output[0], shape, {"shape": target}, name=f"{self.node_name}/reshape")

    def _binary(self, node):
        """(activation, constant) or (activation, activation) operands, or None when folded."""
        a, b = self._inputs(node)[:2]
        if self._is_const(a) and self._is_const(b):
            self._fold(node)
            return None
        return a, b

    def _op_Add(self, node, negate_b=False):
        operands = self._binary(node)
        if operands is None:
            return
        a, b = operands
        if self._integer_operands(a, b):    # index arithmetic: stays in the integer type
            return self._elementwise("Sub" if negate_b else "Add", [a, b], dtype=self._integer_dtype(a, b))
        if self._is_const(a):               # Add and Mul commute: keep the activation first
            a, b = b, a
        if self._is_const(b):
            value = self._float(b, "operand")
            if negate_b:
                value = -value
                b = self._add_tensor(f"{b}.neg", value)
            else:
                b = self._add_tensor(b, value)
            shape = _broadcast(self.shapes[a], value.shape, self._fresh_symbol)
        else:
            if negate_b:
                b = self._negate(b)
            shape = _broadcast(self.shapes[a], self.shapes[b], self._fresh_symbol)
        self._emit("Add", [a, b], node.output[0], shape)

    def _op_Mul(self, node):
        operands = self._binary(node)
        if operands is None:
            return
        a, b = operands
        if self._integer_operands(a, b):
            return self._elementwise("Mul", [a, b], dtype=self._integer_dtype(a, b))
        if self._is_const(a):
            a, b = b, a
        if self._is_const(b):
            value = self._float(b, "operand")
            b = self._add_tensor(b, value)
            other = value.shape
        else:
            other = self.shapes[b]
        self._emit("Mul", [a, b], node.output[0], _broadcast(self.shapes[a], other, self._fresh_symbol))

    def _op_Sub(self, node):
        operands = self._binary(node)
        if operands is None:
            return
        a, b = operands
        if self._integer_operands(a, b):
            return self._elementwise("Sub", [a, b], dtype=self._integer_dtype(a, b))
        if self._is_const(a):
            # c - x = (-x) + c
            minus_b = self._negate(b)
            value = self._float(a, "operand")
            self._emit("Add", [minus_b, self._add_tensor(a, value)], node.output[0],
                       _broadcast(self.shapes[b], value.shape, self._fresh_symbol))
            return
        if not self._is_const(b):
            return self._elementwise("Sub", [a, b])
        self._op_Add(node, negate_b=True)

    def _negate(self, x):
        minus_one = self._add_tensor(f"{self.node_name}.minus_one", np.array(-1.0, dtype=np.float32))
        out = self._unique(f"{x}/neg")
        return self._emit("Mul", [x, minus_one], out, self.shapes[x], name=f"{self.node_name}/neg")

    def _op_Div(self, node):
        operands = self._binary(node)
        if operands is None:
            return
        a, b = operands
        if self._is_const(a) or not self._is_const(b):
            return self._elementwise("Div", [a, b])
        # x / c == x * (1/c) up to one rounding; edgerun has no Div.
        value = 1.0 / self._float(b, "divisor")
        self._emit("Mul", [a, self._add_tensor(f"{b}.reciprocal", value)], node.output[0],
                   _broadcast(self.shapes[a], value.shape, self._fresh_symbol))

    def _op_BatchNormalization(self, node):
        x, scale, shift, mean, var = self._inputs(node)[:5]
        attrs = self._attrs(node)
        if attrs.get("training_mode", 0) or any(self.consumers.get(o) for o in node.output[1:] if o):
            raise self._unsupported(" in training mode (running statistics as outputs)")
        if attrs.get("spatial", 1) == 0:
            raise self._unsupported(" with spatial=0 (statistics per element, not per channel)")
        if self._is_const(x) or not all(self._is_const(v) for v in (scale, shift, mean, var)):
            raise self._unsupported(" whose scale, bias, mean and variance are not all initializers")
        shape = self.shapes[x]
        if len(shape) < 2:
            raise ShapeError(f"node {self.node_name!r}: BatchNormalization input {x!r} must be at least 2-D")
        # Inference BatchNormalization is a per-channel affine map (channels on axis 1):
        # y = x * s + t with s = scale / sqrt(var + eps), t = bias - mean * s.  Computed in
        # float64 so the folded constants carry no more rounding than one float32 store.
        epsilon = float(attrs.get("epsilon", 1e-5))
        s = self.consts[scale].astype(np.float64) / np.sqrt(self.consts[var].astype(np.float64) + epsilon)
        t = self.consts[shift].astype(np.float64) - self.consts[mean].astype(np.float64) * s
        channels = s.shape[0] if s.ndim == 1 else -1
        if s.ndim != 1 or t.shape != s.shape or (isinstance(shape[1], int) and shape[1] != channels):
            raise ShapeError(f"node {self.node_name!r}: BatchNormalization of {x!r} {shape} has "
                             f"parameters of shape {s.shape} and {t.shape}; expected [{shape[1]}]")
        per_channel = (channels,) + (1,) * (len(shape) - 2)
        scaled = self._unique(f"{node.output[0]}/scaled")
        self._emit("Mul", [x, self._add_tensor(f"{self.node_name}.scale", s.reshape(per_channel))],
                   scaled, shape, name=f"{self.node_name}/scale")
        self._emit("Add", [scaled, self._add_tensor(f"{self.node_name}.shift", t.reshape(per_channel))],
                   node.output[0], shape, name=f"{self.node_name}/shift")

    # ---------------------------------------------------------------- convolutions

    def _nchw(self, x, what):
        if self._is_const(x):
            raise self._unsupported(f" of a constant {what}")
        shape = self.shapes[x]
        if len(shape) != 4:
            raise self._unsupported(f" on a {len(shape)}-D input {x!r} (only 2-D images, NCHW)")
        return shape

    def _window(self, attrs, shape, kernel, dilations):
        """(strides, pads [top, left, bottom, right], output dims) of a conv or pool
        window over NCHW `shape`, with ONNX auto_pad resolved (SAME_* needs the spatial
        size known at import time)."""
        strides = [int(v) for v in attrs.get("strides", [1, 1])]
        pads = [int(v) for v in attrs.get("pads", [0, 0, 0, 0])]
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if len(strides) != 2 or len(pads) != 4 or min(strides) < 1 or min(pads) < 0:
            raise ShapeError(f"node {self.node_name!r}: strides {strides} / pads {pads} do not "
                             "describe a 2-D window (expected 2 strides >= 1 and 4 pads >= 0)")
        spatial = shape[2:]
        if auto_pad == "VALID":
            pads = [0, 0, 0, 0]
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            if not all(isinstance(d, int) for d in spatial):
                raise self._unsupported(f" with auto_pad={auto_pad} on symbolic image size {spatial}")
            for axis in range(2):
                span = (kernel[axis] - 1) * dilations[axis] + 1
                total = max(0, (-(-spatial[axis] // strides[axis]) - 1) * strides[axis] + span - spatial[axis])
                small = total // 2
                begin = small if auto_pad == "SAME_UPPER" else total - small
                pads[axis], pads[axis + 2] = begin, total - begin
        elif auto_pad != "NOTSET":
            raise self._unsupported(f" with auto_pad={auto_pad}")
        dims = []
        for axis in range(2):
            if not isinstance(spatial[axis], int):
                dims.append(self._fresh_symbol())
                continue
            span = (kernel[axis] - 1) * dilations[axis] + 1
            size = spatial[axis] + pads[axis] + pads[axis + 2] - span
            if size < 0:
                raise ShapeError(f"node {self.node_name!r}: a {kernel[0]}x{kernel[1]} window does not fit "
                                 f"the padded {spatial} input")
            dims.append(size // strides[axis] + 1)
        return strides, pads, dims

    def _op_Conv(self, node):
        if self._is_1d(node):
            return self._lift_1d(node)
        x, w, b = self._inputs(node)[:3]
        attrs = self._attrs(node)
        shape = self._nchw(x, "image")
        if not self._is_const(w) or (b is not None and not self._is_const(b)):
            raise self._unsupported(" whose weight or bias is computed at run time, not an initializer")
        weight = self._float(w, "weight")
        group = int(attrs.get("group", 1))
        if weight.ndim != 4 or group < 1 or weight.shape[0] % group:
            raise ShapeError(f"node {self.node_name!r}: Conv weight {w!r} of shape {weight.shape} with "
                             f"group {group}: expected [out, in/group, kh, kw], out divisible by group")
        if isinstance(shape[1], int) and shape[1] != weight.shape[1] * group:
            raise ShapeError(f"node {self.node_name!r}: Conv input {x!r} has {shape[1]} channels, the "
                             f"weight {w!r} expects {weight.shape[1] * group} ({group} groups)")
        kernel = list(weight.shape[2:])
        if list(attrs.get("kernel_shape", kernel)) != kernel:
            raise ShapeError(f"node {self.node_name!r}: kernel_shape {list(attrs['kernel_shape'])} does "
                             f"not match the weight {w!r} {list(weight.shape)}")
        dilations = [int(v) for v in attrs.get("dilations", [1, 1])]
        if len(dilations) != 2 or min(dilations) < 1:
            raise ShapeError(f"node {self.node_name!r}: dilations {dilations} must be 2 integers >= 1")
        strides, pads, dims = self._window(attrs, shape, kernel, dilations)
        inputs = [x, self._add_tensor(w, weight)]
        if b is not None:
            bias = self._float(b, "bias")
            if bias.shape != (weight.shape[0],):
                raise ShapeError(f"node {self.node_name!r}: Conv bias {b!r} has shape {bias.shape}, "
                                 f"expected ({weight.shape[0]},)")
            inputs.append(self._add_tensor(b, bias))
        self._emit("Conv2d", inputs, node.output[0], (shape[0], weight.shape[0], *dims),
                   {"strides": strides, "pads": pads, "dilations": dilations, "group": group,
                    "activation": None})

    def _pool(self, node, op):
        if self._is_1d(node):
            return self._lift_1d(node)
        (x,) = self._inputs(node)[:1]
        attrs = self._attrs(node)
        shape = self._nchw(x, "image")
        if len(node.output) > 1 and node.output[1] and self.consumers.get(node.output[1]):
            raise self._unsupported(" whose indices output is used")
        if attrs.get("ceil_mode", 0):
            raise self._unsupported(" with ceil_mode=1")
        if any(int(d) != 1 for d in attrs.get("dilations", [1, 1])):
            raise self._unsupported(f" with dilations {list(attrs['dilations'])}")
        if attrs.get("storage_order", 0):
            raise self._unsupported(" with storage_order=1")
        kernel = [int(v) for v in attrs.get("kernel_shape", [])]
        if len(kernel) != 2 or min(kernel) < 1:
            raise ShapeError(f"node {self.node_name!r}: kernel_shape {kernel} must be 2 integers >= 1")
        strides, pads, dims = self._window(attrs, shape, kernel, [1, 1])
        new = {"kernel_shape": kernel, "strides": strides, "pads": pads}
        if op == "AveragePool":
            new["count_include_pad"] = int(bool(attrs.get("count_include_pad", 0)))
        self._emit(op, [x], node.output[0], (shape[0], shape[1], *dims), new)

    _op_MaxPool = functools.partialmethod(_pool, op="MaxPool")
    _op_AveragePool = functools.partialmethod(_pool, op="AveragePool")

    def _op_GlobalAveragePool(self, node):
        if self._is_1d(node):
            return self._lift_1d(node)
        (x,) = self._inputs(node)[:1]
        shape = self._nchw(x, "image")
        self._emit("GlobalAveragePool", [x], node.output[0], (shape[0], shape[1], 1, 1))

    def _op_Clip(self, node):
        x, lo, hi = self._inputs(node)[:3]
        if self._is_const(x):
            raise self._unsupported(" of a constant")
        attrs = self._attrs(node)
        bounds = {}
        if self.opset < 11:
            bounds = {"min": attrs.get("min"), "max": attrs.get("max")}
        else:
            for key, name in (("min", lo), ("max", hi)):
                if name is None:
                    bounds[key] = None
                elif not self._is_const(name):
                    raise self._unsupported(f" with {key} {name!r} computed at run time")
                else:
                    bounds[key] = self.consts[name]
        for key, value in bounds.items():
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.size != 1:
                    raise ShapeError(f"node {self.node_name!r}: Clip {key} must be a scalar, "
                                     f"got shape {value.shape}")
                bounds[key] = float(value.reshape(-1)[0])
        self._emit("Clip", [x], node.output[0], self.shapes[x], bounds)

    # ---------------------------------------------------------------- shape ops

    def _axis(self, axis, rank, extra=0):
        """axis in [-rank, rank + extra) made non-negative (Flatten allows axis == rank: extra=1)."""
        axis = int(axis)
        if not -rank <= axis < rank + extra:
            raise ShapeError(f"node {self.node_name!r}: axis {axis} is out of range for rank {rank}")
        return axis + rank if axis < 0 else axis

    def _op_Flatten(self, node):
        (x,) = self._inputs(node)[:1]
        if self._is_const(x):
            return self._fold(node)
        shape = self.shapes[x]
        axis = self._axis(self._attrs(node).get("axis", 1), len(shape), extra=1)
        self._emit("Flatten", [x], node.output[0], _flatten_shape(shape, axis, self._fresh_symbol),
                   {"axis": axis})

    def _op_Reshape(self, node):
        x, target = self._inputs(node)[:2]
        attrs = self._attrs(node)
        if self._is_const(x):
            return self._fold(node)
        if target is None and "shape" in attrs:     # opset < 5 carried the shape as an attribute
            target_values = list(attrs["shape"])
        elif self._is_const(target):
            target_values = list(self.consts[target].reshape(-1))
        else:
            raise self._unsupported(f" to a shape {target!r} computed at run time")
        in_shape = self.shapes[x]
        attr_shape, out_shape, unresolved = [], [], []
        for i, entry in enumerate(target_values):
            if isinstance(entry, str):
                if i < len(in_shape) and in_shape[i] == entry:
                    attr_shape.append(0)            # "copy dim i of the input": the batch in x.view(N, -1)
                    out_shape.append(entry)
                else:
                    unresolved.append(i)
                    attr_shape.append(-1)
                    out_shape.append(entry)
                continue
            entry = int(entry)
            if entry < -1:
                raise ShapeError(f"node {self.node_name!r}: Reshape shape {target_values} has entry {entry}")
            if entry == 0 and attrs.get("allowzero", 0):
                raise self._unsupported(" with allowzero=1 and a 0 in the shape (an empty tensor)")
            if entry == 0 and i >= len(in_shape):
                raise ShapeError(f"node {self.node_name!r}: Reshape shape {target_values} copies dim {i} "
                                 f"(a 0) of {x!r}, which has only {len(in_shape)} dims")
            attr_shape.append(entry)
            out_shape.append(in_shape[i] if entry == 0 and i < len(in_shape) else entry)
        if attr_shape.count(-1) > 1:       # run-time dims that move: read them at run time
            wanted = [entry if isinstance(entry, str) else in_shape[i] if int(entry) == 0 else int(entry)
                      for i, entry in enumerate(target_values)]
            return self._dynamic_reshape(x, wanted, node.output[0], f" to {target_values}")
        if unresolved:
            pass  # the one unknown entry became -1 and keeps its symbol as the output dim
        elif -1 in attr_shape:
            i = attr_shape.index(-1)
            out_shape[i] = _infer_dim(in_shape, [d for j, d in enumerate(out_shape) if j != i],
                                      self._fresh_symbol, self.node_name)
        elif all(isinstance(d, int) for d in in_shape + tuple(out_shape)):
            if _product(in_shape) != _product(out_shape):
                raise ShapeError(f"node {self.node_name!r}: cannot reshape {in_shape} to {target_values}")
        self._emit("Reshape", [x], node.output[0], out_shape, {"shape": attr_shape})

    # ---------------------------------------------------------------- dropped at inference

    def _op_Identity(self, node):
        self.alias[node.output[0]] = self._inputs(node)[0]

    def _op_Dropout(self, node):
        if len(node.output) > 1 and node.output[1] and self.consumers.get(node.output[1]):
            raise self._unsupported(" whose mask output is used")
        self.alias[node.output[0]] = self._inputs(node)[0]

    def _op_Cast(self, node):
        (x,) = self._inputs(node)[:1]
        if self._is_const(x):
            return self._fold(node)
        to = int(self._attrs(node)["to"])
        target = "float32" if to in _FLOAT_TYPES else _CAST_TYPES.get(to)
        if target is None:
            raise self._unsupported(f" of activation {x!r} to {self.onnx.TensorProto.DataType.Name(to)}")
        if self.dtypes.get(x, "float32") == target:
            self.alias[node.output[0]] = x  # edgerun computes in float32 throughout
            return
        self._emit("Cast", [x], node.output[0], self.shapes[x], {"to": target}, dtype=target)

    # ---------------------------------------------------------------- folded at import

    def _op_Constant(self, node):
        self._fold(node)

    def _op_Shape(self, node):
        (x,) = self._inputs(node)[:1]
        if self._is_const(x):
            return self._fold(node)
        attrs = self._attrs(node)
        dims = list(self.shapes[x])
        dims = dims[slice(attrs.get("start", 0), attrs.get("end", None))]
        array = np.empty(len(dims), dtype=object)
        array[:] = dims
        self.consts[node.output[0]] = _settle(array)

    def _shape_op(self, node):
        if not all(v is None or self._is_const(v) for v in self._inputs(node)):
            raise self._unsupported(" on a run-time activation")
        self._fold(node)

    _op_ConstantOfShape = _shape_op

    def _op_Unsqueeze(self, node):
        self._squeeze_or_unsqueeze(node, insert=True)

    def _op_Squeeze(self, node):
        self._squeeze_or_unsqueeze(node, insert=False)

    def _squeeze_or_unsqueeze(self, node, insert):
        """On an activation both only add or drop 1-sized dims: a Reshape (x.squeeze(1) in torch)."""
        x, axes_input = self._inputs(node)[:2]
        if self._is_const(x):
            return self._fold(node)
        if axes_input is not None and not self._is_const(axes_input):
            raise self._unsupported(f" with axes {axes_input!r} computed at run time")
        axes = (list(self.consts[axes_input].reshape(-1)) if axes_input is not None
                else self._attrs(node).get("axes"))
        shape = list(self.shapes[x])
        if insert and not axes:
            raise ShapeError(f"node {self.node_name!r}: Unsqueeze needs axes")
        if insert:
            rank = len(shape) + len(axes)
            for axis in sorted(self._axis(a, rank) for a in axes):
                shape.insert(axis, 1)
        else:
            if axes is None:
                if not all(isinstance(d, int) for d in shape):
                    raise self._unsupported(f" without axes of {x!r} with symbolic dims {tuple(shape)}")
                axes = [i for i, d in enumerate(shape) if d == 1]
            axes = {self._axis(a, len(shape)) for a in axes}
            if any(isinstance(shape[a], int) and shape[a] != 1 for a in axes):
                raise ShapeError(f"node {self.node_name!r}: cannot squeeze dims {sorted(axes)} "
                                 f"of {x!r} {tuple(shape)}: they must be 1")
            shape = [d for i, d in enumerate(shape) if i not in axes]
        try:
            target = self._reshape_target(self.shapes[x], shape)
        except UnsupportedOpError:          # several run-time dims move: read them at run time
            return self._dynamic_reshape(x, shape, node.output[0])
        self._emit("Reshape", [x], node.output[0], shape, {"shape": target})

    def _reshape_target(self, in_shape, out_shape, detail=""):
        """Reshape's shape attribute giving out_shape: a symbolic dim is copied (0) when it sits
        at the same position in in_shape, otherwise inferred (-1) -- which works for one only."""
        target = []
        for i, d in enumerate(out_shape):
            if isinstance(d, int):
                target.append(d)
            elif i < len(in_shape) and in_shape[i] == d:
                target.append(0)
            else:
                target.append(-1)
        if target.count(-1) > 1:
            raise self._unsupported(f"{detail} giving shape {tuple(out_shape)}: more than one dim "
                                    "is known only at run time")
        return target
    # ---------------------------------------------------------------- transformer encoders

    def _operand(self, name, what="operand"):
        """An input of an elementwise op: the activation itself, or a constant stored as a
        float32 tensor (integers too when float32 holds them exactly, e.g. a mask's 0)."""
        if not self._is_const(name):
            return name
        array = self.consts[name]
        if array.dtype == object:
            return self._run_time_value(name, array)
        if array.dtype.kind in "iub":
            if array.size and np.abs(array.astype(np.int64)).max() >= 1 << 24:
                raise self._unsupported(f" with integer {what} {name!r} beyond float32's exact range")
            return self._add_tensor(f"{name}.f32" if array.dtype.kind != "f" else name, array)
        return self._add_tensor(name, self._float(name, what))

    def _shape_of(self, name):
        return self.shapes[name] if name in self.shapes else tuple(self.consts[name].shape)

    def _elementwise(self, op, inputs, output=None, dtype=None):
        """op on broadcast operands (any may be a constant, not all)."""
        names = [self._operand(v) for v in inputs]
        shape = ()
        for v in inputs:
            shape = _broadcast(shape, self._shape_of(v), self._fresh_symbol)
        return self._emit(op, names, output or self.node.output[0], shape, dtype=dtype)

    def _matmul_activations(self, a, b):
        """MatMul where the second operand is computed at run time (attention: q @ k^T, p @ v)."""
        sa, sb = self._shape_of(a), self._shape_of(b)
        if len(sa) < 2 or len(sb) < 2:
            raise self._unsupported(f" of {len(sa)}-D and {len(sb)}-D operands (edgerun needs 2-D or more)")
        if isinstance(sa[-1], int) and isinstance(sb[-2], int) and sa[-1] != sb[-2]:
            raise ShapeError(f"node {self.node_name!r}: MatMul of {sa} and {sb}: inner dims differ")
        batch = _broadcast(sa[:-2], sb[:-2], self._fresh_symbol)
        self._emit("MatMul", [self._operand(a), self._operand(b)], self.node.output[0],
                   batch + (sa[-2], sb[-1]))

    def _op_Gelu(self, node):
        approximate = self._attrs(node).get("approximate", b"none")
        approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
        if approximate not in ("none", "tanh"):
            raise self._unsupported(f" with approximate={approximate!r}")
        (x,) = self._inputs(node)[:1]
        if self._is_const(x):
            raise self._unsupported(" of a constant")
        self._emit("Gelu", [x], node.output[0], self.shapes[x], {"approximate": approximate})

    _op_Erf = functools.partialmethod(_unary, op="Erf")
    _op_Sqrt = functools.partialmethod(_unary, op="Sqrt")

    def _op_LayerNormalization(self, node):
        x, scale, bias = self._inputs(node)[:3]
        attrs = self._attrs(node)
        if any(self.consumers.get(o) for o in node.output[1:] if o):
            raise self._unsupported(" whose mean / inverse deviation outputs are used")
        if self._is_const(x):
            raise self._unsupported(" of a constant")
        shape = self.shapes[x]
        axis = self._axis(attrs.get("axis", -1), len(shape))
        inputs = [x, self._operand(scale, "scale")]
        if bias is not None:
            inputs.append(self._operand(bias, "bias"))
        self._emit("LayerNorm", inputs, node.output[0], shape,
                   {"axis": axis - len(shape), "epsilon": float(attrs.get("epsilon", 1e-5))})

    def _op_Transpose(self, node):
        (x,) = self._inputs(node)[:1]
        if self._is_const(x):
            return self._fold(node)
        shape = self.shapes[x]
        perm = [int(p) for p in self._attrs(node).get("perm", range(len(shape) - 1, -1, -1))]
        if sorted(perm) != list(range(len(shape))):
            raise ShapeError(f"node {self.node_name!r}: perm {perm} does not permute the {len(shape)} "
                             f"dims of {x!r}")
        self._emit("Transpose", [x], node.output[0], tuple(shape[p] for p in perm), {"perm": perm})

    def _op_Concat(self, node):
        inputs = [v for v in self._inputs(node)[:len(node.input)] if v is not None]
        if all(self._is_const(v) for v in inputs):
            return self._fold(node)
        shapes = [self._shape_of(v) for v in inputs]
        axis = self._axis(self._attrs(node)["axis"], len(shapes[0]))
        sizes = [s[axis] for s in shapes]
        total = sum(sizes) if all(isinstance(d, int) for d in sizes) else self._fresh_symbol()
        shape = shapes[0][:axis] + (total,) + shapes[0][axis + 1:]
        self._emit("Concat", [self._operand(v) for v in inputs], node.output[0], shape, {"axis": axis})

    def _op_Split(self, node):
        x, sizes_input = self._inputs(node)[:2]
        attrs = self._attrs(node)
        if self._is_const(x):
            raise self._unsupported(" of a constant")
        shape = self.shapes[x]
        axis = self._axis(attrs.get("axis", 0), len(shape))
        outputs = list(node.output)
        if sizes_input is not None:
            if not self._is_const(sizes_input):
                raise self._unsupported(f" with sizes {sizes_input!r} computed at run time")
            sizes = _ints(self.consts[sizes_input])
        elif "split" in attrs:
            sizes = [int(v) for v in attrs["split"]]
        else:
            if not isinstance(shape[axis], int):
                raise self._unsupported(f" into equal parts of the symbolic dim {shape[axis]!r}")
            parts = int(attrs.get("num_outputs", len(outputs)))
            step = -(-shape[axis] // parts)
            sizes = [min(step, shape[axis] - i * step) for i in range(parts)]
        if len(sizes) != len(outputs) or min(sizes) < 0 or (
                isinstance(shape[axis], int) and sum(sizes) != shape[axis]):
            raise ShapeError(f"node {self.node_name!r}: Split sizes {sizes} do not divide dim {axis} "
                             f"of {x!r} {shape} into {len(outputs)} outputs")
        names = [o if o else self._unique(f"{self.node_name}/unused_{i}") for i, o in enumerate(outputs)]
        self.graph.nodes.append(Node("Split", self.node_name, [x], names, {"axis": axis, "split": sizes}))
        for name, size in zip(names, sizes):
            self.shapes[name] = shape[:axis] + (size,) + shape[axis + 1:]
            self.taken.add(name)
            if x in self.dtypes:
                self.dtypes[name] = self.dtypes[x]

    def _op_Slice(self, node):
        x = self._inputs(node)[0]
        params = self._inputs(node)[1:5]
        if all(v is None or self._is_const(v) for v in [x] + params):
            if not any(v is not None and self.consts[v].dtype == object for v in params):
                return self._fold(node)
        if any(v is not None and not self._is_const(v) for v in params):
            raise self._unsupported(" with starts / ends / axes / steps computed at run time")
        shape = self._shape_of(x)
        if self.opset >= 10:
            starts, ends = list(self.consts[params[0]].reshape(-1)), list(self.consts[params[1]].reshape(-1))
            axes = _ints(self.consts[params[2]]) if params[2] is not None else list(range(len(starts)))
            steps = _ints(self.consts[params[3]]) if params[3] is not None else [1] * len(starts)
        else:
            attrs = self._attrs(node)
            starts, ends = list(attrs["starts"]), list(attrs["ends"])
            axes, steps = list(attrs.get("axes", range(len(starts)))), [1] * len(starts)
        if any(isinstance(v, str) for v in starts):
            raise self._unsupported(" with a start known only at run time")
        axes = [self._axis(a, len(shape)) for a in axes]
        inputs, ends_from, out = [self._operand(x, "data")], [], list(shape)
        for i, (start, end, axis, step) in enumerate(zip(starts, ends, axes, steps)):
            if isinstance(end, str):            # the run-time length of a graph input's dim
                source = self.symbol_source.get(end)
                if source is None or int(start) != 0 or step != 1:
                    raise self._unsupported(f" to the run-time end {end!r}")
                if len(inputs) == 1:
                    inputs.append(source[0])
                elif inputs[1] != source[0]:
                    raise self._unsupported(" to ends from two different inputs")
                ends_from.append(source[1])
                ends[i] = 0
                out[axis] = end
                continue
            ends_from.append(None)
            dim = shape[axis]
            if isinstance(dim, int):
                out[axis] = len(range(*slice(int(start), int(end), step).indices(dim)))
            elif not (int(start) == 0 and step == 1 and int(end) >= 2**31 - 1):
                out[axis] = self._fresh_symbol()
        attrs = {"starts": _ints(starts), "ends": _ints(ends), "axes": axes, "steps": _ints(steps)}
        if len(inputs) == 2:
            attrs["ends_from"] = ends_from
        dtype = None
        if self._is_const(x) and self.consts[x].dtype.kind in "iub":
            dtype = "int64"                     # e.g. a slice of a position_ids buffer
        if dtype is None:
            self._emit("Slice", inputs, node.output[0], out, attrs)
            return
        sliced = self._unique(f"{node.output[0]}/float")
        self._emit("Slice", inputs, sliced, out, attrs)
        self._emit("Cast", [sliced], node.output[0], out, {"to": dtype},
                   name=f"{self.node_name}/cast", dtype=dtype)

    def _op_Gather(self, node):
        data, indices = self._inputs(node)[:2]
        axis = int(self._attrs(node).get("axis", 0))
        if self._is_const(data) and self._is_const(indices):
            return self._fold(node)
        shape = self._shape_of(data)
        axis = self._axis(axis, len(shape))
        if not self._is_const(data) and not self._is_const(indices):   # index arithmetic on a mask
            if self.dtypes.get(indices) not in ("int64", "int32"):
                raise self._unsupported(f" by the non-integer run-time indices {indices!r}")
            self._emit("Gather", [data, indices], node.output[0],
                       shape[:axis] + self.shapes[indices] + shape[axis + 1:], {"axis": axis})
            return
        if self._is_const(data):                # an embedding lookup
            if axis != 0 or self.consts[data].dtype.kind not in "f":
                raise self._unsupported(f" of the {self.consts[data].dtype} constant {data!r} "
                                        f"on axis {axis} (embedding tables: float, axis 0)")
            out = self.shapes[indices] + shape[1:]
            self._emit("Gather", [self._add_tensor(data, self._float(data, "table")), indices],
                       node.output[0], out, {"axis": 0})
            return
        index = self.consts[indices]
        if index.dtype == object or index.dtype.kind not in "iu" or index.ndim > 1:
            raise self._unsupported(f" with indices {indices!r} that are not a constant scalar or list")
        value = int(index) if index.ndim == 0 else _ints(index)
        out = shape[:axis] + index.shape + shape[axis + 1:]
        self._emit("Gather", [data], node.output[0], out, {"axis": axis, "indices": value})

    def _op_Where(self, node):
        cond, a, b = self._inputs(node)[:3]
        if all(self._is_const(v) for v in (cond, a, b)):
            return self._fold(node)
        dtypes = {self.dtypes.get(v, "float32") for v in (a, b) if not self._is_const(v)}
        self._elementwise("Where", [cond, a, b], dtype=dtypes.pop() if len(dtypes) == 1 else None)

    def _compare(self, node, op):
        a, b = self._inputs(node)[:2]
        if self._is_const(a) and self._is_const(b):
            return self._fold(node)
        self._elementwise(op, [a, b], dtype="bool")

    _op_Equal = functools.partialmethod(_compare, op="Equal")
    _op_Greater = functools.partialmethod(_compare, op="Greater")
    _op_GreaterOrEqual = functools.partialmethod(_compare, op="GreaterOrEqual")
    _op_Less = functools.partialmethod(_compare, op="Less")
    _op_LessOrEqual = functools.partialmethod(_compare, op="LessOrEqual")
    _op_And = functools.partialmethod(_compare, op="And")
    _op_Or = functools.partialmethod(_compare, op="Or")

    def _op_Not(self, node):
        (x,) = self._inputs(node)[:1]
        if self._is_const(x):
            return self._fold(node)
        self._emit("Not", [x], node.output[0], self.shapes[x], dtype="bool")

    def _variadic(self, node, op):
        inputs = [v for v in self._inputs(node)[:len(node.input)] if v is not None]
        if all(self._is_const(v) for v in inputs):
            if any(self.consts[v].dtype == object for v in inputs):
                raise self._unsupported(" of run-time dims")
            self.consts[node.output[0]] = functools.reduce(np.maximum if op == "Max" else np.minimum,
                                                           [self.consts[v] for v in inputs])
            return
        dtypes = {self.dtypes.get(v, "float32") for v in inputs if not self._is_const(v)}
        self._elementwise(op, inputs, dtype=dtypes.pop() if len(dtypes) == 1 else None)

    _op_Max = functools.partialmethod(_variadic, op="Max")
    _op_Min = functools.partialmethod(_variadic, op="Min")

    def _op_GatherND(self, node):
        data, indices = self._inputs(node)[:2]
        if int(self._attrs(node).get("batch_dims", 0)) != 0:
            raise self._unsupported(f" with batch_dims={self._attrs(node)['batch_dims']}")
        if self._is_const(data) or self._is_const(indices):
            raise self._unsupported(" of a constant")
        index_shape, shape = self.shapes[indices], self.shapes[data]
        k = index_shape[-1]
        if not isinstance(k, int) or k > len(shape):
            raise self._unsupported(f" with indices {index_shape} whose last dim is not a known k <= {len(shape)}")
        self._emit("GatherND", [data, indices], node.output[0], index_shape[:-1] + shape[k:],
                   dtype=self.dtypes.get(data, "float32"))

    def _op_CumSum(self, node):
        x, axis = self._inputs(node)[:2]
        attrs = self._attrs(node)
        if self._is_const(x) or not self._is_const(axis):
            raise self._unsupported(" of a constant or along an axis computed at run time")
        shape = self.shapes[x]
        self._emit("CumSum", [x], node.output[0], shape,
                   {"axis": self._axis(int(self.consts[axis].reshape(-1)[0]), len(shape)),
                    "exclusive": int(attrs.get("exclusive", 0)), "reverse": int(attrs.get("reverse", 0))})

    def _op_GatherElements(self, node):
        data, indices = self._inputs(node)[:2]
        if self._is_const(indices):
            if self._is_const(data):
                raise self._unsupported(" of constants")
            raise self._unsupported(" by constant indices")
        if self._is_const(data):
            data = self._constant_activation(data)
        axis = self._axis(self._attrs(node).get("axis", 0), len(self.shapes[data]))
        self._emit("GatherElements", [data, indices], node.output[0], self.shapes[indices], {"axis": axis})

    def _constant_activation(self, name):
        """A constant that a data-moving op reads as its data, as a value of its own type:
        a float32 tensor, followed by a Cast back for an integer or bool constant."""
        array = self.consts[name]
        tensor = self._operand(name, "data")
        if array.dtype.kind not in "iub":
            self.shapes.setdefault(tensor, array.shape)
            return tensor
        dtype = "bool" if array.dtype.kind == "b" else "int32" if array.dtype == np.int32 else "int64"
        return self._emit("Cast", [tensor], self._unique(f"{name}/{dtype}"), array.shape, {"to": dtype},
                          name=f"{self.node_name}/{name}", dtype=dtype)

    def _op_IsNaN(self, node):
        (x,) = self._inputs(node)[:1]
        if self._is_const(x):
            return self._fold(node)
        self._emit("IsNaN", [x], node.output[0], self.shapes[x], dtype="bool")

    def _op_Range(self, node):
        start, limit, delta = self._inputs(node)[:3]
        if all(self._is_const(v) and self.consts[v].dtype != object for v in (start, limit, delta)):
            return self._fold(node)
        if not (self._is_const(start) and self._is_const(delta) and self._is_const(limit)) or \
                self.consts[start].dtype.kind not in "iu" or self.consts[delta].dtype.kind not in "iu":
            raise self._unsupported(" with a start, limit or delta that is not a constant integer "
                                    "or a run-time length")
        first, step = int(self.consts[start].reshape(-1)[0]), int(self.consts[delta].reshape(-1)[0])
        if step == 0:
            raise ShapeError(f"node {self.node_name!r}: Range delta is 0")
        end = self.consts[limit].reshape(-1)[0]
        length = end if first == 0 and step == 1 else self._fresh_symbol()
        self._emit("Range", [self._operand(limit, "limit")], node.output[0], (length,),
                   {"start": first, "delta": step}, dtype="int64")

    def _integer_operands(self, a, b):
        """Whether a binary op computes on integers: an integer activation, or a run-time
        length (a constant holding a symbolic dim) as an operand."""
        return any((not self._is_const(v) and self.dtypes.get(v, "float32") in ("int64", "int32"))
                   or (self._is_const(v) and self.consts[v].dtype == object) for v in (a, b))

    def _integer_dtype(self, a, b):
        for v in (a, b):
            if not self._is_const(v) and self.dtypes.get(v) in ("int64", "int32"):
                return self.dtypes[v]
        return "int64"

    def _run_time_value(self, name, array):
        """A constant holding symbolic dims (a shape value such as [N, S]) as a Dims node
        that reads those sizes at run time from the graph inputs they came from."""
        if array.ndim > 1:
            raise self._unsupported(f" of the {array.ndim}-D shape value {name!r}")
        sources, values = [], []
        for d in array.reshape(-1):
            if not isinstance(d, str):
                values.append(int(d))
                continue
            if d not in self.symbol_source:
                raise self._unsupported(f" of the run-time dim {d!r} (not a dim of a graph input)")
            source, axis = self.symbol_source[d]
            if source not in sources:
                sources.append(source)
            values.append([sources.index(source), axis])
        output = self._unique(f"{name}/dims")
        return self._emit("Dims", sources, output, array.shape,
                          {"values": values, "shape": list(array.shape)},
                          name=f"{self.node_name}/dims", dtype="int64")

    def _op_Pow(self, node):
        a, b = self._inputs(node)[:2]
        if self._is_const(a) and self._is_const(b):
            return self._fold(node)
        self._elementwise("Pow", [a, b])

    def _reduce(self, node, op):
        x, axes_input = self._inputs(node)[:2]
        attrs = self._attrs(node)
        if self._is_const(x):
            raise self._unsupported(" of a constant")
        if axes_input is not None:
            if not self._is_const(axes_input):
                raise self._unsupported(f" with axes {axes_input!r} computed at run time")
            axes = _ints(self.consts[axes_input])
        else:
            axes = [int(a) for a in attrs.get("axes", [])]
        shape = self.shapes[x]
        keepdims = int(attrs.get("keepdims", 1))
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                self.alias[node.output[0]] = x
                return
            axes = list(range(len(shape)))
        axes = sorted({self._axis(a, len(shape)) for a in axes})
        out = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keepdims else \
            tuple(d for i, d in enumerate(shape) if i not in axes)
        if op == "ReduceMean" and len(shape) == 4 and axes == [2, 3]:
            # torch's dynamo exporter writes adaptive average pooling this way: as a
            # GlobalAveragePool it stays in the conv layout (no NHWC -> NCHW conversion)
            if keepdims:
                self._emit("GlobalAveragePool", [x], node.output[0], out)
                return
            pooled = self._unique(f"{node.output[0]}/pooled")
            self._emit("GlobalAveragePool", [x], pooled, shape[:2] + (1, 1),
                       name=f"{self.node_name}/pool")
            self._emit("Reshape", [pooled], node.output[0], out, {"shape": [0, 0]},
                       name=f"{self.node_name}/squeeze")
            return
        self._emit(op, [x], node.output[0], out, {"axes": axes, "keepdims": keepdims})

    _op_ReduceMean = functools.partialmethod(_reduce, op="ReduceMean")
    _op_ReduceSum = functools.partialmethod(_reduce, op="ReduceSum")

    def _op_Expand(self, node):
        x, target = self._inputs(node)[:2]
        if self._is_const(x) and self._is_const(target) and self.consts[target].dtype != object:
            return self._fold(node)
        if not self._is_const(target):
            raise self._unsupported(" to a shape computed at run time")
        if self._is_const(x):               # a buffer expanded to the run-time batch
            x = self._constant_activation(x)
        shape = self.shapes[x]
        wanted = list(self.consts[target].reshape(-1))
        rank = max(len(shape), len(wanted))
        padded = (1,) * (rank - len(shape)) + tuple(shape)
        inputs, attr, out = [x], [], []
        for i, d in enumerate((1,) * (rank - len(wanted)) + tuple(wanted)):
            if isinstance(d, str):
                if padded[i] == d:              # a symbolic dim x already has: broadcasting keeps it
                    attr.append(1)
                elif d in self.symbol_source:   # read at run time from the graph input it came from
                    source, axis = self.symbol_source[d]
                    if source not in inputs:
                        inputs.append(source)
                    attr.append([inputs.index(source), axis])
                else:
                    raise self._unsupported(f" to the run-time dim {d!r}")
                out.append(d)
            else:
                attr.append(int(d))
                out.append(padded[i] if int(d) == 1 else int(d))
        self._emit("Expand", inputs, node.output[0], out, {"shape": attr})

    def _op_Mod(self, node):
        """Only on constants (torch's attention checks sizes with it)."""
        self._shape_op(node)

    def _dynamic_reshape(self, x, wanted, output, detail=""):
        """Reshape x to `wanted` (ints, -1, or symbolic dims) as a DynamicReshape: each
        symbolic dim is read at run time from a dim of x that has it, else from the graph
        input it came from; at most one dim is left to infer."""
        in_shape = self.shapes[x]
        inputs, shape, out = [x], [], []
        for d in wanted:
            if isinstance(d, str) and d in in_shape:
                shape.append([0, in_shape.index(d)])
            elif isinstance(d, str) and d in self.symbol_source:
                source, axis = self.symbol_source[d]
                if source not in inputs:
                    inputs.append(source)
                shape.append([inputs.index(source), axis])
            elif isinstance(d, str):
                shape.append(-1)
            else:
                shape.append(int(d))
            out.append(d)
        if shape.count(-1) > 1:
            raise self._unsupported(f"{detail} giving shape {tuple(wanted)}: more than one dim is "
                                    "only known at run time")
        if -1 in shape:
            i = shape.index(-1)
            out[i] = out[i] if isinstance(out[i], str) else _infer_dim(
                in_shape, [d for j, d in enumerate(out) if j != i], self._fresh_symbol, self.node_name)
        self._emit("DynamicReshape", inputs, output, out, {"shape": shape},
                   dtype=self.dtypes.get(x, "float32"))

    # -- decomposed patterns, fused before import ----------------------------------

    def _fuse_patterns(self, nodes):
        """Replace the decompositions older exporters emit by one node each, so the rest
        of the import sees the ONNX op: x*0.5*(1+Erf(x/sqrt2)) -> Gelu, and ReduceMean,
        Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul gamma [, Add beta] (over trailing
        axes) -> LayerNormalization.  A pattern fuses only when its inner values feed
        nothing else; anything else is left as it is and imported op by op."""
        helper = self.onnx.helper
        static, alias = dict(self.consts), {}
        for _, node in nodes:
            if node.op_type == "Constant" and len(node.attribute) == 1:
                attr = node.attribute[0]
                if attr.name == "value":
                    static[node.output[0]] = self._tensor_array(attr.t)
                elif attr.name in ("value_float", "value_int"):
                    static[node.output[0]] = np.asarray(helper.get_attribute_value(attr))
            elif node.op_type == "Identity" and node.input and node.input[0] in static:
                static[node.output[0]] = static[node.input[0]]
                alias[node.output[0]] = alias.get(node.input[0], node.input[0])
        position_of, producer, readers = {}, {}, {}
        for position, (_, node) in enumerate(nodes):
            position_of[id(node)] = position
            for o in node.output:
                producer[o] = node
            for i in node.input:
                readers.setdefault(i, []).append(node)
        for name in self.output_names:
            readers.setdefault(name, []).append(None)      # a graph output is a use too
        m = _Matcher(helper, static, producer, readers)
        replaced, removed = {}, set()
        for _, node in nodes:
            if node.op_type == "Erf":
                fused = m.gelu(node)
            elif node.op_type == "Div":
                fused = m.layer_norm(node)
            else:
                continue
            if fused is None or any(id(n) in removed for n in fused[0]):
                continue
            inner, inputs, output, attrs, op = fused
            last = max(position_of[id(n)] for n in inner)
            base = nodes[last][1].name or f"{op}_{nodes[last][0]}"
            name = base.rsplit("/", 1)[0] + f"/{op}" if "/" in base else f"{base}/{op}"
            inputs = [alias.get(v, v) for v in inputs]
            replaced[last] = helper.make_node(op, inputs, [output], name=name, **attrs)
            removed.update(id(n) for n in inner)
        return [(index, replaced.get(p, node)) for p, (index, node) in enumerate(nodes)
                if p in replaced or id(node) not in removed]

    def _fold(self, node):
        """Compute a node whose inputs are all known now; the result becomes a constant."""
        values = [self.consts[v] if v else None for v in self._inputs(node)[:len(node.input)]]
        attrs = self._attrs(node)
        try:
            result = _FOLD[node.op_type](self, values, attrs)
        except UnsupportedOpError:
            raise
        except (TypeError, ValueError, IndexError, KeyError) as error:
            if any(v is not None and v.dtype == object for v in values):
                raise self._unsupported(f" on run-time dims ({error})") from error
            raise EdgerunError(f"node {self.node_name!r}: cannot evaluate {node.op_type} on its "
                               f"constant inputs: {error}") from error
        self.consts[node.output[0]] = _settle(np.asarray(result))

    # ---------------------------------------------------------------- after all nodes

    def _fuse(self):
        """Fold what follows a Linear into it while the Linear's output feeds nothing else:
        a per-feature Mul (a scale, e.g. from BatchNormalization) into the weight rows and
        bias, a per-feature Add into the bias, then a Relu into attrs["activation"]."""
        uses = {}
        for node in self.graph.nodes:
            for name in node.inputs:
                uses[name] = uses.get(name, 0) + 1
        for name in self.output_names:
            name = self._resolve(name)
            uses[name] = uses.get(name, 0) + 1
        producer, kept = {}, []
        for node in self.graph.nodes:
            linear = producer.get(node.inputs[0]) if node.inputs else None
            if (linear is not None and linear.op in ("Linear", "Conv2d") and uses.get(node.inputs[0]) == 1
                    and linear.attrs.get("activation") is None and self._absorb(linear, node)):
                linear.outputs = list(node.outputs)
                producer[node.outputs[0]] = linear
                continue
            kept.append(node)
            for name in node.outputs:
                producer[name] = node
        self.graph.nodes = kept

    def _absorb(self, linear, node):
        """Fold node (which reads linear's output) into linear; False when it cannot."""
        if node.op == "Relu":
            linear.attrs["activation"] = "relu"
            return True
        if node.op == "Clip" and linear.op == "Conv2d" and node.attrs.get("min") == 0.0 \
                and node.attrs.get("max") in (None, 6.0):
            linear.attrs["activation"] = "relu" if node.attrs.get("max") is None else "relu6"
            return True
        if node.op not in ("Add", "Mul") or node.inputs[1] not in self.graph.tensors:
            return False
        vector = self._feature_vector(self.graph.tensors[node.inputs[1]], linear, node.inputs[0])
        if vector is None:
            return False
        bias = self.graph.tensors[linear.inputs[2]].to_dense() if len(linear.inputs) > 2 else None
        if node.op == "Add":
            if bias is None and self.graph.tensors[node.inputs[1]].shape == vector.shape:
                linear.inputs.append(node.inputs[1])        # the exporter's own bias tensor
                return True
            bias = vector if bias is None else bias + vector
            linear.inputs[2:] = [self._add_tensor(f"{linear.name}.bias", bias)]
            return True
        weight = self.graph.tensors[linear.inputs[1]].to_dense()
        weight = weight * vector.reshape((-1,) + (1,) * (weight.ndim - 1))
        linear.inputs[1] = self._add_tensor(f"{linear.name}.weight", weight)
        if bias is not None:
            linear.inputs[2] = self._add_tensor(f"{linear.name}.bias", bias * vector)
        return True

    def _feature_vector(self, tensor, linear, value):
        """The constant as a float32 [out_features] vector when it acts on the last axis of
        linear's output alone (a scalar, [out] or [1, ..., out] that adds no dims); else None.
        For a Conv2d the axis is the channels of its NCHW output: [out, 1, 1] or [1, out, 1, 1]."""
        out_features = self.graph.tensors[linear.inputs[1]].shape[0]
        array = tensor.arrays["values"]
        if array.ndim > self._rank(value):
            return None
        if array.size == 1:
            return np.full(out_features, array.reshape(-1)[0], dtype=np.float32)
        if linear.op == "Conv2d":
            if array.size == out_features and array.ndim >= 3 and array.shape[-3:] == (out_features, 1, 1):
                return array.reshape(out_features).astype(np.float32)
            return None
        if array.size == out_features and array.shape[-1] == out_features:
            return array.reshape(out_features).astype(np.float32)
        return None

    def _set_outputs(self):
        produced = {o for node in self.graph.nodes for o in node.outputs}
        inputs = {v.name for v in self.graph.inputs}
        named = set()
        for name in self.output_names:
            source = self._resolve(name)
            if source in self.consts:
                raise EdgerunError(f"graph output {name!r} is a constant known at import time; "
                                   "edgerun imports outputs computed from the inputs")
            if source not in produced and source not in inputs:
                raise EdgerunError(f"graph output {name!r} is never produced")
            shape = self.shapes[source]
            if source != name:
                if source in produced and source not in named and source not in inputs \
                        and source not in self.output_names:
                    self._rename(source, name)      # an Identity/Dropout was dropped before the output
                    produced.add(name)
                else:
                    # The output is a graph input or another output unchanged: copy it exactly.
                    self.node_name = self._unique(f"{name}/copy")
                    self._emit("Reshape", [source], name, shape, {"shape": [0] * len(shape)})
                    self.shapes[name] = shape
            named.add(name)
            self.graph.outputs.append(ValueInfo(name, _public_shape(shape)))

    def _rename(self, old, new):
        for node in self.graph.nodes:
            node.inputs = [new if v == old else v for v in node.inputs]
            node.outputs = [new if v == old else v for v in node.outputs]
        self.shapes[new] = self.shapes[old]
        self.alias.pop(new, None)           # new was an alias of old; now it is the real value
        self.alias[old] = new

    def _prune_dead(self):
        """Drop nodes no output depends on (e.g. a Dropout mask's producers) and unused tensors."""
        needed = {v.name for v in self.graph.outputs}
        kept = []
        for node in reversed(self.graph.nodes):
            if any(o in needed for o in node.outputs):
                kept.append(node)
                needed.update(node.inputs)
        self.graph.nodes = kept[::-1]
        self.graph.tensors = {k: t for k, t in self.graph.tensors.items() if k in needed}

    # ---------------------------------------------------------------- edge CNN ops

    def _text(self, attrs, key, default):
        value = attrs.get(key, default)
        return value.decode() if isinstance(value, bytes) else value

    def _op_HardSigmoid(self, node):
        (x,) = self._inputs(node)[:1]
        if self._is_const(x):
            raise self._unsupported(" of a constant")
        attrs = self._attrs(node)
        self._emit("HardSigmoid", [x], node.output[0], self.shapes[x],
                   {"alpha": float(attrs.get("alpha", 0.2)), "beta": float(attrs.get("beta", 0.5))})

    def _op_HardSwish(self, node):
        (x,) = self._inputs(node)[:1]
        if self._is_const(x):
            raise self._unsupported(" of a constant")
        self._emit("HardSwish", [x], node.output[0], self.shapes[x])

    def _op_Pad(self, node):
        x, pads, value, axes = self._inputs(node)[:4]
        attrs = self._attrs(node)
        if self._is_const(x):
            raise self._unsupported(" of a constant")
        mode = self._text(attrs, "mode", "constant")
        if mode not in ("constant", "reflect", "edge"):
            raise self._unsupported(f" with mode={mode}")
        shape = self.shapes[x]
        rank = len(shape)
        if self.opset < 11:
            widths, constant = [int(v) for v in attrs.get("pads", [])], float(attrs.get("value", 0.0))
        else:
            for what, name in (("pads", pads), ("constant_value", value), ("axes", axes)):
                if name is not None and not self._is_const(name):
                    raise self._unsupported(f" with {what} {name!r} computed at run time")
            if pads is None:
                raise ShapeError(f"node {self.node_name!r}: Pad needs its pads input")
            widths = _ints(self.consts[pads])
            constant = 0.0
            if value is not None and self.consts[value].size:
                if self.consts[value].size != 1:
                    raise ShapeError(f"node {self.node_name!r}: Pad constant_value must be a scalar")
                constant = float(np.asarray(self.consts[value], dtype=np.float64).reshape(-1)[0])
            if axes is not None:
                chosen = [self._axis(a, rank) for a in _ints(self.consts[axes])]
                if len(widths) != 2 * len(chosen):
                    raise ShapeError(f"node {self.node_name!r}: Pad has {len(widths)} pads for "
                                     f"{len(chosen)} axes")
                full = [0] * (2 * rank)
                for k, axis in enumerate(chosen):
                    full[axis], full[axis + rank] = widths[k], widths[k + len(chosen)]
                widths = full
        if len(widths) != 2 * rank:
            raise ShapeError(f"node {self.node_name!r}: Pad has {len(widths)} pads for the {rank}-D "
                             f"input {x!r}; expected {2 * rank}")
        if min(widths, default=0) < 0:
            raise self._unsupported(f" with negative pads {widths} (cropping)")
        if not any(widths):
            self.alias[node.output[0]] = x
            return
        out = []
        for i, d in enumerate(shape):
            extra = widths[i] + widths[i + rank]
            out.append(d + extra if isinstance(d, int) else d if not extra else self._fresh_symbol())
        self._emit("Pad", [x], node.output[0], out, {"pads": widths, "mode": mode, "value": constant})

    def _op_Resize(self, node):
        from edgerun.evaluate import RESIZE_COORDINATES, RESIZE_NEAREST

        x, roi, scales, sizes = self._inputs(node)[:4]
        attrs = self._attrs(node)
        if self.opset < 11:
            raise self._unsupported(" before opset 11 (no coordinate_transformation_mode)")
        shape = self._nchw(x, "image")
        mode = self._text(attrs, "mode", "nearest")
        transform = self._text(attrs, "coordinate_transformation_mode", "half_pixel")
        nearest = self._text(attrs, "nearest_mode", "round_prefer_floor")
        if mode not in ("nearest", "linear"):
            raise self._unsupported(f" with mode={mode}")
        if transform not in RESIZE_COORDINATES:
            raise self._unsupported(f" with coordinate_transformation_mode={transform}")
        if nearest not in RESIZE_NEAREST:
            raise self._unsupported(f" with nearest_mode={nearest}")
        if attrs.get("antialias", 0):
            raise self._unsupported(" with antialias=1")
        if self._text(attrs, "keep_aspect_ratio_policy", "stretch") != "stretch":
            raise self._unsupported(" with keep_aspect_ratio_policy other than stretch")
        for what, name in (("scales", scales), ("sizes", sizes)):
            if name is not None and not self._is_const(name):
                raise self._unsupported(f" with {what} {name!r} computed at run time")
        if scales is not None and not self.consts[scales].size:
            scales = None                   # an empty scales tensor next to sizes
        if sizes is not None and not self.consts[sizes].size:
            sizes = None
        if (scales is None) == (sizes is None):
            raise ShapeError(f"node {self.node_name!r}: Resize needs exactly one of scales and sizes")
        axes = [self._axis(a, 4) for a in attrs.get("axes", range(4))]
        given = list((self.consts[sizes] if sizes is not None else self.consts[scales]).reshape(-1))
        if len(given) != len(axes):
            raise ShapeError(f"node {self.node_name!r}: Resize has {len(given)} entries for axes {axes}")
        full = list(shape) if sizes is not None else [1.0] * 4
        for axis, v in zip(axes, given):
            full[axis] = v
        new = {"mode": mode, "coordinate_transformation_mode": transform, "nearest_mode": nearest}
        if sizes is not None:
            if any(full[i] != shape[i] for i in (0, 1)):
                raise self._unsupported(f" of the batch or channel axis (sizes {full} of {shape})")
            if not all(isinstance(v, (int, np.integer)) for v in full[2:]):
                raise self._unsupported(f" to sizes {full[2:]} known only at run time")
            out = [int(v) for v in full[2:]]
            new["sizes"] = out
        else:
            factors = [float(v) for v in full]
            if factors[0] != 1 or factors[1] != 1 or min(factors) <= 0:
                raise self._unsupported(f" with scales {factors} (only H and W, by factors > 0)")
            new["scales"] = factors[2:]
            out = [int(np.floor(d * f)) if isinstance(d, int) else self._fresh_symbol()
                   for d, f in zip(shape[2:], factors[2:])]
        self._emit("Resize", [x], node.output[0], (shape[0], shape[1], *out), new)

    # -- 1-D convolutions and pools, as their 2-D forms on [N, C, 1, L]

    def _is_1d(self, node):
        x = self._inputs(node)[0]
        return x is not None and not self._is_const(x) and len(self.shapes.get(x, ())) == 3

    def _lift_1d(self, node):
        """A Conv / MaxPool / AveragePool / GlobalAveragePool over [N, C, L] as the same
        2-D op over [N, C, 1, L]: Reshape in, the 2-D handler, Reshape back."""
        x = self._inputs(node)[0]
        name = self.node_name
        n, c, length = self.shapes[x]
        lifted = self._unique(f"{x}/2d")
        self._emit("Reshape", [x], lifted, (n, c, 1, length),
                   {"shape": self._reshape_target(self.shapes[x], (n, c, 1, length))}, name=f"{name}/to_2d")
        attrs = {}
        for key, value in self._attrs(node).items():
            if key in ("kernel_shape", "strides", "dilations"):
                value = [1] + [int(v) for v in value]
            elif key == "pads":
                if len(value) != 2:
                    raise ShapeError(f"node {name!r}: a 1-D {node.op_type} takes 2 pads, got {list(value)}")
                value = [0, int(value[0]), 0, int(value[1])]
            attrs[key] = value
        inputs = [lifted] + list(node.input[1:])
        if node.op_type == "Conv" and len(inputs) > 1 and self._is_const(self._resolve(inputs[1])):
            weight = self.consts[self._resolve(inputs[1])]
            if weight.ndim != 3:
                raise ShapeError(f"node {name!r}: a 1-D Conv weight must be 3-D [out, in/group, k], "
                                 f"got shape {weight.shape}")
            inputs[1] = self._unique(f"{inputs[1]}/2d")
            self.consts[inputs[1]] = weight[:, :, None, :]
        output = self._unique(f"{node.output[0]}/2d")
        proxy = self.onnx.helper.make_node(node.op_type, inputs, [output] + list(node.output[1:]),
                                           name=node.name, **attrs)
        getattr(self, "_op_" + node.op_type)(proxy)
        n2, c2, _, l2 = self.shapes[output]
        self._emit("Reshape", [output], node.output[0], (n2, c2, l2),
                   {"shape": self._reshape_target(self.shapes[output], (n2, c2, l2))}, name=f"{name}/to_1d")
        self.squeezes.add(f"{name}/to_1d")

    # -- graph passes for the ops above (run before / after _fuse)

    def _uses(self):
        uses = {}
        for node in self.graph.nodes:
            for name in node.inputs:
                uses[name] = uses.get(name, 0) + 1
        for name in self.output_names:
            name = self._resolve(name)
            uses[name] = uses.get(name, 0) + 2      # an output is never folded away
        return uses

    def _fuse_hard_swish(self):
        """Mul(x, HardSigmoid(x) with alpha 1/6, beta 1/2) -> HardSwish(x): torch's
        Hardswish as exported before opset 14."""
        uses = self._uses()
        producer = {node.outputs[0]: node for node in self.graph.nodes}
        dropped = set()
        for node in self.graph.nodes:
            if node.op != "Mul" or any(v in self.graph.tensors for v in node.inputs):
                continue
            for gate_value, x in (node.inputs, node.inputs[::-1]):
                gate = producer.get(gate_value)
                if (gate is not None and gate.op == "HardSigmoid" and gate.inputs[0] == x
                        and uses.get(gate_value) == 1 and abs(gate.attrs["alpha"] - 1 / 6) < 1e-6
                        and abs(gate.attrs["beta"] - 0.5) < 1e-6):
                    node.op, node.inputs, node.attrs = "HardSwish", [x], {}
                    dropped.add(gate.name)
                    break
        self.graph.nodes = [n for n in self.graph.nodes if n.name not in dropped]

    def _fold_zero_pads(self):
        """A zero Pad of H and W read only by a Conv becomes the conv's own pads (nn.ZeroPad2d
        or a TensorFlow-style asymmetric SAME pad before a strided conv), when the sum stays
        below the dilated kernel's extent (what the file format accepts)."""
        uses = self._uses()
        consumer = {}
        for node in self.graph.nodes:
            for name in node.inputs:
                consumer[name] = node
        dropped = set()
        for pad in self.graph.nodes:
            conv = consumer.get(pad.outputs[0])
            if (pad.op != "Pad" or uses.get(pad.outputs[0]) != 1 or conv is None or conv.op != "Conv2d"
                    or conv.inputs[0] != pad.outputs[0] or pad.attrs["mode"] != "constant"
                    or pad.attrs["value"] != 0 or len(pad.attrs["pads"]) != 8):
                continue
            widths = pad.attrs["pads"]
            if widths[0] or widths[1] or widths[4] or widths[5]:
                continue                                    # batch or channel padding
            extra = [widths[2], widths[3], widths[6], widths[7]]    # top, left, bottom, right
            kh, kw = self.graph.tensors[conv.inputs[1]].shape[2:4]
            dh, dw = conv.attrs["dilations"]
            spans = [(kh - 1) * dh + 1, (kw - 1) * dw + 1]
            total = [a + b for a, b in zip(conv.attrs["pads"], extra)]
            if any(total[i] >= spans[i % 2] for i in range(4)):
                continue
            conv.attrs["pads"] = total
            conv.inputs[0] = pad.inputs[0]
            dropped.add(pad.name)
        self.graph.nodes = [n for n in self.graph.nodes if n.name not in dropped]

    _SINKABLE = ("Relu", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish", "Add", "Mul")

    def _sink_squeezes(self):
        """Move each 4-D -> 3-D Reshape after a lifted 1-D layer past the elementwise ops
        that follow it (BatchNorm1d's Mul / Add with their [C, 1] constants made
        [C, 1, 1], Relu, Clip, and an Add of two such layers: a 1-D residual), so _fuse
        folds them into the conv and the Reshape meets the next layer's Reshape, which
        _merge_reshapes cancels."""
        nodes = self.graph.nodes
        changed = True
        while changed:
            changed = False
            uses = self._uses()
            producer = {node.outputs[0]: node for node in nodes}
            for squeeze in [n for n in nodes if n.name in self.squeezes]:
                value = squeeze.outputs[0]
                users = [n for n in nodes if value in n.inputs]
                if uses.get(value) != 1 or len(users) != 1 or users[0].op not in self._SINKABLE:
                    continue
                user = users[0]
                constants = [v for v in user.inputs if v in self.graph.tensors]
                partners = [producer.get(v) for v in user.inputs if v != value and v not in self.graph.tensors]
                if any(p is None or p.name not in self.squeezes or uses.get(p.outputs[0]) != 1
                       or self.shapes[p.inputs[0]] != self.shapes[squeeze.inputs[0]] for p in partners):
                    continue
                if any(len(self.graph.tensors[v].shape) > 3 for v in constants):
                    continue
                lifted_inputs = {value: squeeze.inputs[0]}
                lifted_inputs.update({p.outputs[0]: p.inputs[0] for p in partners})
                user.inputs = [lifted_inputs[v] if v in lifted_inputs else self._lift_constant(v)
                               for v in user.inputs]
                for partner in partners:
                    nodes.remove(partner)
                    self.squeezes.discard(partner.name)
                old = user.outputs[0]
                n, c, length = self.shapes[old]
                lifted = self._unique(f"{old}/2d")
                self.shapes[lifted] = (n, c, 1, length)
                user.outputs = [lifted]
                squeeze.inputs, squeeze.outputs = [lifted], [old]
                nodes.remove(squeeze)
                nodes.insert(nodes.index(user) + 1, squeeze)
                changed = True
                break

    def _lift_constant(self, name):
        """A constant broadcast against [N, C, L] as the same against [N, C, 1, L]."""
        array = self.graph.tensors[name].arrays["values"]
        if array.ndim == 0 or array.size == 1:
            return name
        array = array.reshape((1,) * (3 - array.ndim) + array.shape)
        return self._add_tensor(f"{name}.2d", array[:, :, None, :])

    def _merge_reshapes(self):
        """A Reshape of a Reshape reads the first one's input.  When the two cancel (a 1-D
        layer's way back to 3-D, then the next one's way to 4-D) the second goes, and the
        first too once nothing else reads it; otherwise they merge into one when the first
        feeds nothing else."""
        nodes = self.graph.nodes
        outputs = {self._resolve(n) for n in self.output_names}
        changed = True
        while changed:
            changed = False
            uses = self._uses()
            producer = {node.outputs[0]: node for node in nodes}
            for second in nodes:
                first = producer.get(second.inputs[0]) if second.op == "Reshape" else None
                if first is None or first.op != "Reshape":
                    continue
                source, result = first.inputs[0], second.outputs[0]
                if self.shapes[source] == self.shapes[result] and result not in outputs:
                    for node in nodes:
                        node.inputs = [source if v == result else v for v in node.inputs]
                    nodes.remove(second)
                    if uses.get(first.outputs[0]) == 1:
                        nodes.remove(first)
                elif uses.get(first.outputs[0]) == 1:
                    try:
                        target = self._reshape_target(self.shapes[source], self.shapes[result])
                    except UnsupportedOpError:
                        continue
                    second.inputs, second.attrs = [source], {"shape": target}
                    nodes.remove(first)
                else:
                    continue
                changed = True
                break


class _Matcher:
    """Pattern matching over ONNX nodes for _Importer._fuse_patterns."""

    def __init__(self, helper, static, producer, readers):
        self.helper, self.static, self.producer, self.readers = helper, static, producer, readers

    def scalar(self, name, value, tol=1e-6):
        array = self.static.get(name)
        return array is not None and array.size == 1 and array.dtype.kind == "f" and \
            abs(float(array.reshape(-1)[0]) - value) <= tol * max(1.0, abs(value))

    def only_reader(self, name, op):
        """The single node reading name, when it is an `op`; else None."""
        readers = self.readers.get(name, [])
        if len(readers) != 1 or readers[0] is None or readers[0].op_type != op:
            return None
        return readers[0]

    def made_by(self, name, op, uses=1):
        node = self.producer.get(name)
        if node is None or node.op_type != op or len(self.readers.get(name, [])) != uses:
            return None
        return node

    @staticmethod
    def other(node, name):
        """The input of binary node that is not name (None when name is not one of them)."""
        ins = list(node.input)
        if len(ins) != 2 or name not in ins:
            return None
        return ins[1] if ins[0] == name else ins[0]

    def axes(self, node):
        if len(node.input) > 1 and node.input[1]:
            return tuple(_ints(self.static[node.input[1]])) if node.input[1] in self.static else None
        for a in node.attribute:
            if a.name == "axes":
                return tuple(int(v) for v in self.helper.get_attribute_value(a))
        return None

    def gelu(self, erf):
        """Div(x, sqrt 2) | Mul(x, 1/sqrt 2) -> Erf -> Add 1, then times x and 0.5 in any order."""
        div = self.made_by(erf.input[0], "Div") or self.made_by(erf.input[0], "Mul")
        if div is None or not (self.scalar(div.input[1], math.sqrt(2.0)) if div.op_type == "Div"
                               else self.scalar(div.input[1], math.sqrt(0.5))):
            return None
        x = div.input[0]
        add = self.only_reader(erf.output[0], "Add")
        if add is None or not self.scalar(self.other(add, erf.output[0]), 1.0):
            return None
        mul = self.only_reader(add.output[0], "Mul")
        if mul is None:
            return None
        partner = self.other(mul, add.output[0])
        if partner == x or self.scalar(partner, 0.5):  # ((1 + erf) * x) * 0.5, ((1 + erf) * 0.5) * x
            last = self.only_reader(mul.output[0], "Mul")
            rest = None if last is None else self.other(last, mul.output[0])
            if last is None or not (self.scalar(rest, 0.5) if partner == x else rest == x):
                return None
            return [div, erf, add, mul, last], [x], last.output[0], {}, "Gelu"
        half = self.made_by(partner, "Mul")             # (x * 0.5) * (1 + erf)
        if half is None or x not in half.input or not self.scalar(self.other(half, x), 0.5):
            return None
        return [div, erf, add, half, mul], [x], mul.output[0], {}, "Gelu"

    def layer_norm(self, div):
        centred, root = div.input[0], div.input[1]
        sub, sqrt = self.made_by(centred, "Sub", uses=2), self.made_by(root, "Sqrt")
        if sub is None or sqrt is None:
            return None
        x, mean = sub.input[0], sub.input[1]
        mean_node, add_eps = self.made_by(mean, "ReduceMean"), self.made_by(sqrt.input[0], "Add")
        if mean_node is None or mean_node.input[0] != x or add_eps is None:
            return None
        eps = [v for v in add_eps.input if v in self.static]
        var = [v for v in add_eps.input if v not in self.static]
        if len(eps) != 1 or len(var) != 1 or self.static[eps[0]].size != 1:
            return None
        var_node = self.made_by(var[0], "ReduceMean")
        power = self.made_by(var_node.input[0], "Pow") if var_node is not None else None
        if power is None or power.input[0] != centred or not self.scalar(power.input[1], 2.0):
            return None
        axes = self.axes(mean_node)
        if not axes or axes != self.axes(var_node) or max(axes) >= 0:
            return None     # negative (trailing) axes only: the rank is not known here
        axes = sorted(axes)
        if axes != list(range(-len(axes), 0)):
            return None
        if any(a.name == "keepdims" and self.helper.get_attribute_value(a) == 0
               for n in (mean_node, var_node) for a in n.attribute):
            return None
        scale = self.only_reader(div.output[0], "Mul")
        if scale is None or self.other(scale, div.output[0]) not in self.static:
            return None     # no gamma: left decomposed (it runs op by op)
        inner = [mean_node, sub, power, var_node, add_eps, sqrt, div, scale]
        inputs, output = [x, self.other(scale, div.output[0])], scale.output[0]
        shift = self.only_reader(output, "Add")
        if shift is not None and self.other(shift, output) in self.static:
            inner.append(shift)
            inputs.append(self.other(shift, output))
            output = shift.output[0]
        epsilon = float(self.static[eps[0]].reshape(-1)[0])
        return inner, inputs, output, {"axis": axes[0], "epsilon": epsilon}, "LayerNormalization"


# -------------------------------------------------------------------- shape arithmetic
# A dim is an int or a str naming a symbolic size (the model's own dim_param such as "N",
# or "?k" for one we made up).  Shape values folded at import are numpy arrays that may
# hold such strings (dtype object) until every entry is a plain int.

def _product(dims):
    total = 1
    for d in dims:
        total *= int(d)
    return total


def _public_shape(dims):
    return tuple(d if isinstance(d, int) else None for d in dims)


def _flatten_shape(shape, axis, fresh):
    def merge(dims):
        symbols = [d for d in dims if not isinstance(d, int)]
        if not symbols:
            return _product(dims)
        if len(symbols) == 1 and _product([d for d in dims if isinstance(d, int)]) == 1:
            return symbols[0]
        return fresh()
    return (merge(shape[:axis]), merge(shape[axis:]))


def _broadcast(a, b, fresh):
    a, b = tuple(a), tuple(b)
    rank = max(len(a), len(b))
    a = (1,) * (rank - len(a)) + a
    b = (1,) * (rank - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif isinstance(x, int) and isinstance(y, int):
            raise ShapeError(f"cannot broadcast shapes {a} and {b}")
        else:
            out.append(y if isinstance(y, int) else x if isinstance(x, int) else fresh())
    return tuple(out)


def _infer_dim(in_shape, other_dims, fresh, node_name):
    """The size a -1 in Reshape stands for: input size / the other output dims."""
    remaining = [d for d in in_shape if not isinstance(d, int)]
    known_in = _product([d for d in in_shape if isinstance(d, int)])
    known_out = 1
    for d in other_dims:
        if isinstance(d, int):
            known_out *= d
        elif d in remaining:
            remaining.remove(d)
        else:
            return fresh()
    if known_out == 0 or known_in % known_out:
        if not remaining:
            raise ShapeError(f"node {node_name!r}: cannot reshape {tuple(in_shape)} "
                             f"to {tuple(other_dims)} plus one inferred dim")
        return fresh()
    ratio = known_in // known_out
    if not remaining:
        return ratio
    if len(remaining) == 1 and ratio == 1:
        return remaining[0]
    return fresh()


def _settle(array):
    """Object arrays become int64 once no symbolic dim is left in them."""
    if array.dtype.kind == "U":     # numpy made a lone symbolic dim (e.g. Gather's scalar) a str array
        array = array.astype(object)
    if array.dtype == object and not any(isinstance(v, str) for v in array.reshape(-1)):
        return array.astype(np.int64)
    return array


def _ints(array):
    return [int(v) for v in np.asarray(array).reshape(-1)]


def _fold_constant(importer, values, attrs):
    for attribute in importer.node.attribute:
        if attribute.name == "value":
            return importer._tensor_array(attribute.t)
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise importer._unsupported(f" with attribute {next(iter(attrs), 'none')!r}")


def _fold_unsqueeze(importer, values, attrs):
    data = values[0]
    axes = _ints(values[1]) if len(values) > 1 and values[1] is not None else list(attrs.get("axes", []))
    rank = data.ndim + len(axes)
    for axis in sorted(a + rank if a < 0 else a for a in axes):
        data = np.expand_dims(data, axis)
    return data


def _fold_squeeze(importer, values, attrs):
    data = values[0]
    axes = _ints(values[1]) if len(values) > 1 and values[1] is not None else attrs.get("axes")
    return np.squeeze(data, axis=None if axes is None else tuple(int(a) for a in axes))


def _fold_concat(importer, values, attrs):
    arrays = [v for v in values if v is not None]
    if any(a.dtype == object for a in arrays):
        arrays = [a.astype(object) for a in arrays]
    return np.concatenate(arrays, axis=int(attrs["axis"]))


def _fold_slice(importer, values, attrs):
    data = values[0]
    if len(values) > 1:                           # opset >= 10: starts, ends, axes, steps inputs
        starts, ends = _ints(values[1]), _ints(values[2])
        axes = _ints(values[3]) if len(values) > 3 and values[3] is not None else range(len(starts))
        steps = _ints(values[4]) if len(values) > 4 and values[4] is not None else [1] * len(starts)
    else:
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[axis] = slice(start, end, step)
    return data[tuple(index)]


def _fold_reshape(importer, values, attrs):
    data = values[0]
    shape = _ints(values[1]) if len(values) > 1 and values[1] is not None else list(attrs["shape"])
    if not attrs.get("allowzero", 0):
        shape = [data.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return data.reshape(shape)


def _fold_flatten(importer, values, attrs):
    data = values[0]
    axis = int(attrs.get("axis", 1))
    axis = axis + data.ndim if axis < 0 else axis
    return data.reshape(_product(data.shape[:axis]), _product(data.shape[axis:]))


def _fold_cast(importer, values, attrs):
    dtype = importer.onnx.helper.tensor_dtype_to_np_dtype(int(attrs["to"]))
    if values[0].dtype == object and np.issubdtype(dtype, np.integer):
        return values[0]        # a shape with symbolic dims stays symbolic (exporters cast shapes)
    return values[0].astype(dtype)


def _fold_constant_of_shape(importer, values, attrs):
    value = np.zeros(1, dtype=np.float32)
    for attribute in importer.node.attribute:
        if attribute.name == "value":
            value = importer._tensor_array(attribute.t)
    shape = _ints(values[0])
    if _product(shape) > _MAX_FOLDED_ELEMENTS:
        raise EdgerunError(f"node {importer.node_name!r}: ConstantOfShape {shape} is too large to fold")
    return np.full(shape, value.reshape(-1)[0], dtype=value.dtype)


def _fold_arithmetic(function):
    def fold(importer, values, attrs):
        a, b = values[0], values[1]
        if a.dtype == object or b.dtype == object:
            if function is np.multiply:     # N * heads: a product of run-time dims
                return _symbolic_product(a, b)
            raise importer._unsupported(" of run-time dims")
        return function(a, b)
    return fold


def _symbolic_product(a, b):
    """Elementwise product of shape values holding symbolic dims: a symbol times an int
    (or a symbol) is the symbol "k*N" (factors sorted, so equal products compare equal)."""
    def times(x, y):
        if isinstance(x, str) or isinstance(y, str):
            factors, k = [], 1
            for part in (str(x).split("*") + str(y).split("*")):
                if part.lstrip("-").isdigit():
                    k *= int(part)
                else:
                    factors.append(part)
            if k == 0:
                return 0
            return "*".join(([str(k)] if k != 1 else []) + sorted(factors))
        return int(x) * int(y)
    a, b = np.broadcast_arrays(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
    out = np.empty(a.shape, dtype=object)
    for index in np.ndindex(a.shape):
        out[index] = times(a[index], b[index])
    return out


def _integer_aware_divide(a, b):
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        # ONNX integer division truncates toward zero, like C.
        return (np.abs(a) // np.abs(b)) * np.sign(a) * np.sign(b)
    return a / b


def _fold_gather(importer, values, attrs):
    return np.take(values[0], values[1].astype(np.int64), axis=int(attrs.get("axis", 0)))


_FOLD = {
    "Constant": _fold_constant,
    "Identity": lambda imp, v, a: v[0],
    "Cast": _fold_cast,
    "Gather": _fold_gather,
    "Unsqueeze": _fold_unsqueeze,
    "Squeeze": _fold_squeeze,
    "Concat": _fold_concat,
    "Slice": _fold_slice,
    "Transpose": lambda imp, v, a: np.transpose(v[0], a.get("perm")),
    "Reshape": _fold_reshape,
    "Flatten": _fold_flatten,
    "Shape": lambda imp, v, a: np.array(v[0].shape[slice(a.get("start", 0), a.get("end"))], dtype=np.int64),
    "ConstantOfShape": _fold_constant_of_shape,
    "Add": _fold_arithmetic(np.add),
    "Sub": _fold_arithmetic(np.subtract),
    "Mul": _fold_arithmetic(np.multiply),
    "Div": _fold_arithmetic(_integer_aware_divide),
    "MatMul": _fold_arithmetic(np.matmul),
    "Relu": lambda imp, v, a: np.maximum(v[0], 0).astype(v[0].dtype),
    "Sigmoid": lambda imp, v, a: (1.0 / (1.0 + np.exp(-v[0]))).astype(v[0].dtype),
    "Tanh": lambda imp, v, a: np.tanh(v[0]),
}


# constant folds of the transformer ops
_FOLD.update({
    "Pow": _fold_arithmetic(np.power),
    "Mod": lambda imp, v, a: (np.fmod if a.get("fmod", 0) else np.mod)(v[0], v[1]),
    "Equal": lambda imp, v, a: np.asarray(v[0] == v[1]) if v[0].dtype != object and v[1].dtype != object
        else np.vectorize(lambda x, y: x == y, otypes=[bool])(v[0], v[1]),
    "Where": lambda imp, v, a: np.where(v[0].astype(bool), v[1], v[2]),
    "Not": lambda imp, v, a: np.logical_not(v[0]),
    "IsNaN": lambda imp, v, a: np.isnan(v[0]),
    "And": lambda imp, v, a: np.logical_and(v[0], v[1]),
    "Or": lambda imp, v, a: np.logical_or(v[0], v[1]),
    "Greater": _fold_arithmetic(np.greater),
    "GreaterOrEqual": _fold_arithmetic(np.greater_equal),
    "Less": _fold_arithmetic(np.less),
    "LessOrEqual": _fold_arithmetic(np.less_equal),
    "Range": lambda imp, v, a: np.arange(v[0].reshape(-1)[0], v[1].reshape(-1)[0], v[2].reshape(-1)[0])
        if abs((int(v[1].reshape(-1)[0]) - int(v[0].reshape(-1)[0])) // max(abs(int(v[2].reshape(-1)[0])), 1))
        <= _MAX_FOLDED_ELEMENTS else _too_large(imp),
    "Sqrt": lambda imp, v, a: np.sqrt(v[0]),
    "Erf": lambda imp, v, a: _erf(v[0]),
    "Expand": lambda imp, v, a: np.array(np.broadcast_to(
        v[0], np.broadcast_shapes(v[0].shape, tuple(_ints(v[1])))))
        if _product(_ints(v[1])) <= _MAX_FOLDED_ELEMENTS else _too_large(imp),
})


def _erf(x):
    from edgerun.evaluate import erf

    return erf(x).astype(x.dtype)


def _too_large(importer):
    raise EdgerunError(f"node {importer.node_name!r}: the constant is too large to fold")


# ops whose output has the dtype of their first input (they move data, not compute it)
_DTYPE_KEEPING = ("Reshape", "Flatten", "Transpose", "Concat", "Slice", "Gather", "Expand")
# ONNX Cast targets on activations besides the float types: INT32, INT64, BOOL
_CAST_TYPES = {6: "int32", 7: "int64", 9: "bool"}
