"""Import an ONNX model of a fully-connected or convolutional network as an edgerun Graph.

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

Shapes are tracked through the graph with symbolic dims (the batch "N"), so the
Shape -> Gather -> Unsqueeze -> Concat -> Reshape pattern folds to Reshape [0, -1].
Everything else raises edgerun.UnsupportedOpError naming the op, the node and the opset.

Every float is imported as float32 (float16 / double / bfloat16 initializers are converted,
and FLOAT16 / DOUBLE graph inputs become float32 inputs); integer initializers are accepted
only where a shape or an index is expected.  Dropout is dropped whatever its training_mode.

Names: nodes keep their ONNX names (an unnamed one becomes "<Op>_<index>"); a weight keeps its
initializer's name, also when transposed or scaled, unless that name already holds other
values (tied weights used the same way stay one tensor).  Folding a constant scale into a
weight rounds once more than ONNX does (x*(W*s) vs (x*W)*s): within float32 tolerance, not
bit-exact.  Graph.metadata records producer, opset, IR version and the sha256 of the model bytes.
"""
import hashlib
import os

import numpy as np

from edgerun.errors import EdgerunError, ShapeError, UnsupportedOpError
from edgerun.graph import Graph, Node, Tensor, ValueInfo

SUPPORTED = ("Gemm", "MatMul", "Conv", "Relu", "Sigmoid", "Tanh", "Softmax", "Add", "Mul", "Sub", "Div",
             "MaxPool", "AveragePool", "GlobalAveragePool", "Clip", "Flatten", "Reshape", "BatchNormalization", "Identity", "Dropout", "Cast", "Constant",
             "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Transpose", "ConstantOfShape")
SUPPORTED += ("HardSigmoid", "HardSwish", "Pad", "Resize")      # edge CNN ops

# TensorProto element types we treat as float: FLOAT, FLOAT16, DOUBLE, BFLOAT16.
_FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}
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
        if elem not in _FLOAT_TYPES:
            type_name = self.onnx.TensorProto.DataType.Name(elem) if elem else "undefined"
            raise EdgerunError(f"input {value.name!r} has element type {type_name}; edgerun imports "
                               "float models only (expected FLOAT, or FLOAT16/DOUBLE to run as float32)")
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
        self.graph.inputs.append(ValueInfo(value.name, _public_shape(dims)))

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
            f"cannot import yet (it imports fully-connected and convolutional networks: "
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

    def _emit(self, op, inputs, output, shape, attrs=None, name=None):
        self.graph.nodes.append(Node(op, name or self.node_name, list(inputs), [output], dict(attrs or {})))
        self.shapes[output] = tuple(shape)
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
            if self._is_const(a):
                raise self._unsupported(" with a constant first operand and a run-time second operand")
            raise self._unsupported(f" between two activations ({a!r} and {b!r})")
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

    def _op_Relu(self, node):
        self._unary(node, "Relu")

    def _op_Sigmoid(self, node):
        self._unary(node, "Sigmoid")

    def _op_Tanh(self, node):
        self._unary(node, "Tanh")

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
        if self._is_const(a):
            # c - x = (-x) + c
            minus_b = self._negate(b)
            value = self._float(a, "operand")
            self._emit("Add", [minus_b, self._add_tensor(a, value)], node.output[0],
                       _broadcast(self.shapes[b], value.shape, self._fresh_symbol))
            return
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
            raise self._unsupported(" dividing by a run-time value")
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

    def _op_MaxPool(self, node):
        self._pool(node, "MaxPool")

    def _op_AveragePool(self, node):
        self._pool(node, "AveragePool")

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
        if attr_shape.count(-1) > 1:
            raise self._unsupported(f" to {target_values}: more than one dim is only known at run time")
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
        if to not in _FLOAT_TYPES:
            raise self._unsupported(f" of activation {x!r} to {self.onnx.TensorProto.DataType.Name(to)}")
        self.alias[node.output[0]] = x      # edgerun computes in float32 throughout

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

    _op_Gather = _op_Concat = _op_Slice = _shape_op
    _op_Transpose = _op_ConstantOfShape = _shape_op

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
        target = self._reshape_target(self.shapes[x], shape)
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
            raise importer._unsupported(" of run-time dims")
        return function(a, b)
    return fold


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
