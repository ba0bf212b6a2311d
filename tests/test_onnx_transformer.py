"""Transformer encoders from ONNX: each new op on a tiny hand-built model against
onnxruntime (Session, evaluate, and after a save/load round trip), the decomposed
GELU / LayerNorm patterns fused at import, bad attrs refused on load, and a
BERT-style encoder (tests/torch_bert.py) through both torch exporters at two batch
sizes and sequence lengths with padding, plain and compressed."""
import functools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgerun
from edgerun import format as fmt
from edgerun.errors import FormatError, ShapeError, UnsupportedOpError
from edgerun.evaluate import evaluate
from edgerun.graph import Tensor
from edgerun.runtime.embedding import EmbeddingStep
from edgerun.runtime.session import Session

import onnx_models as models
from test_format import rewrite

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def value(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def model_of(nodes, inputs, outputs, inits=(), opset=17):
    """inputs / outputs: [(name, elem type, dims)]; dims may name symbols ("N", "S")."""
    return models.make_model(nodes, [value(*v) for v in inputs],
                             [value(n, e, None) for n, e, _ in outputs], inits, opset=opset)


def ort(model, feeds):
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def check(model, feeds, tmp_path, rtol=1e-5):
    """Import model; Session, evaluate and the reloaded file all match onnxruntime."""
    graph = edgerun.import_onnx(model)
    expected = ort(model, feeds)
    path = tmp_path / "model.edgerun"
    fmt.save(graph, path)
    loaded = fmt.load(path)
    for name, got in [("session", Session(graph).run(dict(feeds))), ("evaluate", evaluate(graph, feeds)),
                      ("reloaded", Session(loaded).run(dict(feeds)))]:
        for key, want in expected.items():
            assert got[key].shape == want.shape, (name, key)
            if want.dtype.kind == "f":
                scale = max(float(np.abs(want).max()), 1e-30)
                np.testing.assert_allclose(got[key], want, rtol=rtol, atol=rtol * scale, err_msg=name)
            else:
                np.testing.assert_array_equal(got[key], want, err_msg=name)
    return graph


def ops(graph):
    return [n.op for n in graph.nodes]


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------------------ elementwise

@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_opset20(approximate, tmp_path):
    node = helper.make_node("Gelu", ["x"], ["y"], name="gelu", approximate=approximate)
    model = model_of([node], [("x", F, ["N", 5])], [("y", F, None)], opset=20)
    x = randn(3, 5) * 4
    graph = check(model, {"x": x}, tmp_path)
    assert ops(graph) == ["Gelu"] and graph.nodes[0].attrs["approximate"] == approximate


def test_unfused_erf_stays_erf(tmp_path):
    nodes = [helper.make_node("Erf", ["x"], ["e"], name="erf"),
             helper.make_node("Mul", ["e", "x"], ["y"], name="mul")]
    model = model_of(nodes, [("x", F, ["N", 7])], [("y", F, None)])
    graph = check(model, {"x": randn(4, 7) * 3}, tmp_path)
    assert ops(graph) == ["Erf", "Mul"]


def gelu_nodes(variant):
    """x*0.5*(1+erf(x/sqrt2)) in the orders exporters write it."""
    first = (helper.make_node("Div", ["x", "sqrt2"], ["s"], name="div") if variant != "mul_inv"
             else helper.make_node("Mul", ["x", "inv_sqrt2"], ["s"], name="div"))
    nodes = [first, helper.make_node("Erf", ["s"], ["e"], name="erf"),
             helper.make_node("Add", ["e", "one"], ["p"], name="add")]
    if variant in ("torchscript", "mul_inv"):       # (x * p) * 0.5
        nodes += [helper.make_node("Mul", ["x", "p"], ["m"], name="mul"),
                  helper.make_node("Mul", ["m", "half"], ["y"], name="mul_half")]
    elif variant == "dynamo":                       # x * (0.5 * p)
        nodes += [helper.make_node("Mul", ["half", "p"], ["m"], name="mul_half"),
                  helper.make_node("Mul", ["x", "m"], ["y"], name="mul")]
    else:                                           # (x * 0.5) * p  (Hugging Face)
        nodes += [helper.make_node("Mul", ["x", "half"], ["h"], name="mul_half"),
                  helper.make_node("Mul", ["h", "p"], ["y"], name="mul")]
    inits = [("sqrt2", np.float32(np.sqrt(2))), ("inv_sqrt2", np.float32(np.sqrt(0.5))),
             ("one", np.float32(1)), ("half", np.float32(0.5))]
    return nodes, inits


@pytest.mark.parametrize("variant", ["torchscript", "dynamo", "hf", "mul_inv"])
def test_erf_gelu_decomposition_fuses_into_gelu(variant, tmp_path):
    nodes, inits = gelu_nodes(variant)
    model = model_of(nodes, [("x", F, ["N", 6])], [("y", F, None)], inits)
    graph = check(model, {"x": randn(3, 6) * 3}, tmp_path)
    assert ops(graph) == ["Gelu"]


def test_gelu_pattern_with_a_shared_inner_value_is_not_fused(tmp_path):
    nodes, inits = gelu_nodes("torchscript")
    nodes.append(helper.make_node("Add", ["y", "e"], ["z"], name="uses_erf"))  # erf output used twice
    model = model_of(nodes, [("x", F, ["N", 6])], [("z", F, None)], inits)
    graph = check(model, {"x": randn(3, 6)}, tmp_path)
    assert "Gelu" not in ops(graph) and "Erf" in ops(graph)


@pytest.mark.parametrize("op", ["Sub", "Div", "Pow"])
def test_binary_between_activations_broadcasting(op, tmp_path):
    node = helper.make_node(op, ["a", "b"], ["y"], name=op.lower())
    model = model_of([node], [("a", F, ["N", 3, 4]), ("b", F, ["N", 1, 4])], [("y", F, None)])
    a, b = randn(2, 3, 4), randn(2, 1, 4, seed=1)
    if op == "Pow":
        a = np.abs(a) + 0.1
    if op == "Div":
        b = np.abs(b) + 0.5
    graph = check(model, {"a": a, "b": b}, tmp_path)
    assert ops(graph) == [op]


def test_div_and_pow_with_a_constant(tmp_path):
    nodes = [helper.make_node("Div", ["c", "x"], ["d"], name="c_over_x"),
             helper.make_node("Pow", ["d", "two"], ["p"], name="square"),
             helper.make_node("Sqrt", ["p"], ["y"], name="sqrt")]
    model = model_of(nodes, [("x", F, ["N", 4])], [("y", F, None)],
                     [("c", np.float32(3.0)), ("two", np.float32(2.0))])
    graph = check(model, {"x": np.abs(randn(3, 4)) + 0.5}, tmp_path)
    assert ops(graph) == ["Div", "Pow", "Sqrt"]


# ------------------------------------------------------------------------------ LayerNorm

@pytest.mark.parametrize("axis", [-1, -2])
def test_layer_normalization(axis, tmp_path):
    shape = (4,) if axis == -1 else (3, 4)
    rng = np.random.default_rng(3)
    node = helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], name="ln", axis=axis, epsilon=1e-3)
    model = model_of([node], [("x", F, ["N", 3, 4])], [("y", F, None)],
                     [("g", rng.standard_normal(shape).astype(np.float32)),
                      ("b", rng.standard_normal(shape).astype(np.float32))])
    graph = check(model, {"x": randn(2, 3, 4) * 5 + 1}, tmp_path)
    assert ops(graph) == ["LayerNorm"] and graph.nodes[0].attrs["axis"] == axis


def decomposed_layer_norm(affine=True, opset=14):
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("ReduceMean", ["x"], ["mean"], name="ln/mean", axes=[-1]),
             helper.make_node("Sub", ["x", "mean"], ["c"], name="ln/sub"),
             helper.make_node("Pow", ["c", "two"], ["sq"], name="ln/pow"),
             helper.make_node("ReduceMean", ["sq"], ["var"], name="ln/var", axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["ve"], name="ln/add_eps"),
             helper.make_node("Sqrt", ["ve"], ["sd"], name="ln/sqrt"),
             helper.make_node("Div", ["c", "sd"], ["n" if affine else "y"], name="ln/div")]
    inits = [("two", np.float32(2)), ("eps", np.float32(1e-5))]
    if affine:
        nodes += [helper.make_node("Mul", ["n", "gamma"], ["s"], name="ln/mul"),
                  helper.make_node("Add", ["s", "beta"], ["y"], name="ln/add")]
        inits += [("gamma", rng.standard_normal(8).astype(np.float32)),
                  ("beta", rng.standard_normal(8).astype(np.float32))]
    return model_of(nodes, [("x", F, ["N", "S", 8])], [("y", F, None)], inits, opset=opset)


def test_decomposed_layer_norm_fuses(tmp_path):
    graph = check(decomposed_layer_norm(), {"x": randn(2, 3, 8) * 3 + 2}, tmp_path)
    assert ops(graph) == ["LayerNorm"]
    assert graph.nodes[0].attrs == {"axis": -1, "epsilon": pytest.approx(1e-5)}


def test_decomposed_layer_norm_without_gamma_runs_op_by_op(tmp_path):
    graph = check(decomposed_layer_norm(affine=False), {"x": randn(2, 3, 8) * 3 + 2}, tmp_path)
    assert ops(graph) == ["ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt", "Div"]


# ------------------------------------------------------------------------------ attention

@pytest.mark.parametrize("b_shape", [["N", 2, 4, 5], [1, 2, 4, 5], ["N", 1, 4, 5]])
def test_matmul_between_activations_broadcasts(b_shape, tmp_path):
    node = helper.make_node("MatMul", ["a", "b"], ["y"], name="scores")
    model = model_of([node], [("a", F, ["N", 2, 3, 4]), ("b", F, b_shape)], [("y", F, None)])
    b = randn(*[3 if d == "N" else d for d in b_shape], seed=2)
    graph = check(model, {"a": randn(3, 2, 3, 4), "b": b}, tmp_path)
    assert ops(graph) == ["MatMul"]


def test_transpose_concat_split(tmp_path):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="t", perm=[0, 2, 1]),
             helper.make_node("Concat", ["t", "c"], ["cat"], name="cat", axis=1),
             helper.make_node("Split", ["cat", "sizes"], ["a", "b", "c2"], name="split", axis=1),
             helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    model = model_of(nodes, [("x", F, ["N", "S", 3])], [("y", F, None), ("c2", F, None)],
                     [("c", randn(1, 2, 1, seed=5).repeat(1, axis=0)), ("sizes", np.array([2, 2, 1]))])
    # Concat's constant must broadcast-free match: give it the batch of the feed below
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(randn(2, 2, 4, seed=5), "c"))
    graph = check(model, {"x": randn(2, 4, 3)}, tmp_path)
    assert ops(graph) == ["Transpose", "Concat", "Split", "Add"]


@pytest.mark.parametrize("opset, how", [(11, "attr"), (18, "num_outputs"), (13, "equal")])
def test_split_sizes_from_attrs(opset, how, tmp_path):
    kwargs = {"attr": {"split": [1, 3]}, "num_outputs": {"num_outputs": 2}, "equal": {}}[how]
    node = helper.make_node("Split", ["x"], ["a", "b"], name="split", axis=-1, **kwargs)
    model = model_of([node], [("x", F, ["N", 4])], [("a", F, None), ("b", F, None)], opset=opset)
    check(model, {"x": randn(3, 4)}, tmp_path)


def test_slice_on_activations(tmp_path):
    node = helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"], name="slice")
    model = model_of([node], [("x", F, ["N", "S", 6])], [("y", F, None)],
                     [("starts", np.array([1, -1])), ("ends", np.array([9999, -7])),
                      ("axes", np.array([1, 2])), ("steps", np.array([1, -2]))])
    graph = check(model, {"x": randn(2, 5, 6)}, tmp_path)
    assert ops(graph) == ["Slice"]


def test_gather_table_by_ids_and_activation_by_constant(tmp_path):
    table = randn(11, 4, seed=6)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"], name="embed"),
             helper.make_node("Gather", ["emb", "zero"], ["cls"], name="cls", axis=1),
             helper.make_node("Gather", ["emb", "picks"], ["picked"], name="pick", axis=2)]
    model = model_of(nodes, [("ids", I64, ["N", "S"])], [("cls", F, None), ("picked", F, None)],
                     [("table", table), ("zero", np.array(0)), ("picks", np.array([3, 0, -1]))])
    ids = np.array([[1, 10, 0], [5, -2, 7]], dtype=np.int64)
    graph = check(model, {"ids": ids}, tmp_path)
    assert ops(graph) == ["Gather"] * 3
    assert graph.inputs[0].dtype == "int64"
    with pytest.raises(ShapeError, match="out of range"):
        Session(graph).run({"ids": np.array([[11]], dtype=np.int64)})
    with pytest.raises(ShapeError, match="int64"):
        Session(graph).run({"ids": ids.astype(np.float32)})


def test_masks_cast_equal_where_expand(tmp_path):
    nodes = [helper.make_node("Unsqueeze", ["mask", "axes"], ["m4"], name="unsq"),
             helper.make_node("Equal", ["m4", "zero"], ["pad"], name="eq"),
             helper.make_node("Expand", ["pad", "shape"], ["pad_x"], name="expand"),
             helper.make_node("Where", ["pad_x", "neg", "scores"], ["masked"], name="where"),
             helper.make_node("Cast", ["mask"], ["maskf"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["maskf", "one"], ["count"], name="count", keepdims=0),
             helper.make_node("Cast", ["count"], ["y2"], name="cast_back", to=TensorProto.INT64)]
    model = model_of(nodes, [("scores", F, ["N", 2, "S", "S"]), ("mask", I64, ["N", "S"])],
                     [("masked", F, None), ("y2", I64, None)],
                     [("axes", np.array([1, 2])), ("zero", np.array(0)), ("neg", np.float32(-1e9)),
                      ("shape", np.array([1, 2, 1, 1])), ("one", np.array([1]))])
    mask = np.array([[1, 1, 1], [1, 0, 0]], dtype=np.int64)
    graph = check(model, {"scores": randn(2, 2, 3, 3), "mask": mask}, tmp_path)
    assert {"Equal", "Expand", "Where", "Cast", "ReduceSum"} <= set(ops(graph))


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean(opset, keepdims, tmp_path):
    if opset >= 18:
        node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean", keepdims=keepdims)
        inits = [("axes", np.array([1, -1]))]
    else:
        node = helper.make_node("ReduceMean", ["x"], ["y"], name="mean", axes=[1, -1], keepdims=keepdims)
        inits = []
    model = model_of([node], [("x", F, ["N", 3, 4])], [("y", F, None)], inits, opset=opset)
    graph = check(model, {"x": randn(2, 3, 4)}, tmp_path)
    assert ops(graph) == ["ReduceMean"]


def test_gather_of_an_activation_by_run_time_indices(tmp_path):
    """Index arithmetic on a mask (how Hugging Face builds its attention masks): flat
    indices batch * S + position computed from Range and the run-time S, then gathered."""
    nodes = [helper.make_node("Shape", ["mask"], ["shape"], name="shape"),
             helper.make_node("Gather", ["shape", "i0"], ["n"], name="n"),
             helper.make_node("Gather", ["shape", "i1"], ["s"], name="s"),
             helper.make_node("Range", ["zero", "n", "one"], ["batch"], name="batch_range"),
             helper.make_node("Range", ["zero", "s", "one"], ["pos"], name="pos_range"),
             helper.make_node("Unsqueeze", ["batch", "ax1"], ["b2"], name="b2"),
             helper.make_node("Mul", ["b2", "s"], ["base"], name="base"),
             helper.make_node("Add", ["base", "pos"], ["flat_index"], name="flat_index"),
             helper.make_node("Flatten", ["mask"], ["flat"], name="flatten", axis=0),
             helper.make_node("Reshape", ["flat", "minus_one"], ["flat1"], name="flat1"),
             helper.make_node("Gather", ["flat1", "flat_index"], ["picked"], name="dynamic_pick"),
             helper.make_node("GreaterOrEqual", ["pos", "zero"], ["valid"], name="ge"),
             helper.make_node("Cast", ["picked"], ["keep"], name="to_bool", to=TensorProto.BOOL),
             helper.make_node("And", ["keep", "valid"], ["both"], name="and"),
             helper.make_node("Not", ["both"], ["pad"], name="not"),
             helper.make_node("Expand", ["pad", "target"], ["pad4"], name="expand"),
             helper.make_node("Where", ["pad4", "neg", "x"], ["y"], name="where")]
    model = model_of(nodes, [("x", F, ["N", 2, "S", "S"]), ("mask", I64, ["N", "S"])], [("y", F, None)],
                     [("i0", np.array(0)), ("i1", np.array(1)), ("zero", np.array(0)), ("one", np.array(1)),
                      ("ax1", np.array([1])), ("minus_one", np.array([-1])), ("neg", np.float32(-1e9)),
                      ("target", np.array([1, 2, 1, 1]))])
    # the Expand target [1, 2, 1, 1] against [N, 1?, ...]: make the mask [N, 1, 1, S] first
    model.graph.node[-2].input[0] = "pad_4d"
    model.graph.node.insert(len(model.graph.node) - 2, helper.make_node(
        "Unsqueeze", ["pad", "ax12"], ["pad_4d"], name="pad_4d"))
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, 2]), "ax12"))
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=np.int64)
    graph = check(model, {"x": randn(3, 2, 4, 4), "mask": mask}, tmp_path)
    assert {"Range", "Dims", "Gather", "GreaterOrEqual", "And", "Not", "Expand"} <= set(ops(graph))


def test_gather_nd_max_min(tmp_path):
    nodes = [helper.make_node("GatherND", ["x", "i"], ["g"], name="nd_pick"),
             helper.make_node("Max", ["g", "c", "g2"], ["mx"], name="max"),
             helper.make_node("Min", ["g", "c"], ["y"], name="min"),
             helper.make_node("Identity", ["x"], ["x2"], name="id"),
             helper.make_node("GatherND", ["x2", "i"], ["g2"], name="nd_pick2")]
    nodes = nodes[3:] + nodes[:3]
    model = model_of(nodes, [("x", F, ["N", 5, 3]), ("i", I64, ["N", 4, 2])],
                     [("mx", F, None), ("y", F, None)], [("c", np.float32(0.1))])
    rng = np.random.default_rng(0)
    index = np.stack([rng.integers(0, 2, (2, 4)), rng.integers(-5, 5, (2, 4))], axis=-1)
    graph = check(model, {"x": randn(2, 5, 3), "i": index}, tmp_path)
    assert {"GatherND", "Max", "Min"} <= set(ops(graph))
    with pytest.raises(ShapeError, match="out of range"):
        Session(graph).run({"x": randn(2, 5, 3), "i": index + 7})


def test_unsupported_ops_name_op_node_and_opset():
    node = helper.make_node("GatherND", ["x", "i"], ["y"], name="nd_pick", batch_dims=1)
    model = model_of([node], [("x", F, ["N", 5]), ("i", I64, ["N", 1])], [("y", F, None)])
    with pytest.raises(UnsupportedOpError, match=r"'nd_pick' uses GatherND \(opset 17\) with batch_dims=1"):
        edgerun.import_onnx(model)
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], name="top")
    model = model_of([node], [("x", F, ["N", 5])], [("v", F, None)], [("k", np.array([2]))])
    with pytest.raises(UnsupportedOpError, match=r"'top' uses TopK \(opset 17\)"):
        edgerun.import_onnx(model)


# ------------------------------------------------------------------------------ bad files

def saved_with(tmp_path, nodes, inputs, outputs, inits=(), opset=17):
    graph = edgerun.import_onnx(model_of(nodes, inputs, outputs, inits, opset))
    path = tmp_path / "ok.edgerun"
    fmt.save(graph, path)
    fmt.load(path)
    return path


def set_attr(index, **changes):
    def mutate(header):
        attrs = header["graph"]["nodes"][index]["attrs"]
        for key, val in changes.items():
            if val is ...:
                attrs.pop(key, None)
            else:
                attrs[key] = val
    return mutate


UNARY = [("x", F, ["N", 3, 4])]
BAD_ATTRS = [
    ("Gelu", {"approximate": "fast"}, "approximate"),
    ("LayerNorm", {"epsilon": "big"}, "epsilon"),
    ("LayerNorm", {"axis": 99}, "axis"),
    ("Transpose", {"perm": [0, 0, 1]}, "permutation"),
    ("Transpose", {"perm": ...}, "perm"),
    ("Split", {"split": [1, 1, 1]}, "one size per output"),
    ("Split", {"split": [-1, 5]}, "split"),
    ("Slice", {"steps": [0]}, "steps"),
    ("Slice", {"ends": ["a"]}, "ends"),
    ("Gather", {"indices": [[0]]}, "indices"),
    ("Gather", {"indices": ...}, "indices"),
    ("Cast", {"to": "complex64"}, "to must be"),
    ("ReduceMean", {"keepdims": 2}, "keepdims"),
    ("ReduceMean", {"axes": [1, 1]}, "repeat"),
    ("Expand", {"shape": [2**30, 2**30]}, "elements"),
    ("Concat", {"axis": "0"}, "axis"),
    ("DynamicReshape", {"shape": [[3, 0], [0, 1], 4]}, "input"),
    ("DynamicReshape", {"shape": [-1, -1, 4]}, "at most one -1"),
    ("DynamicReshape", {"shape": [[0], 1]}, "input, axis"),
    ("Range", {"delta": 0}, "delta"),
    ("Range", {"start": 1.5}, "start"),
    ("Dims", {"values": [[2, 0]]}, "input"),
    ("Dims", {"shape": [3]}, "shape"),
    ("CumSum", {"reverse": 2}, "reverse"),
    ("CumSum", {"axis": ...}, "axis"),
]


def bad_attr_model(op):
    init = []
    if op == "Gelu":
        return [helper.make_node("Gelu", ["x"], ["y"], name="n")], UNARY, init, 20
    if op == "LayerNorm":
        return [helper.make_node("LayerNormalization", ["x", "g"], ["y"], name="n")], UNARY, \
            [("g", np.ones(4, np.float32))], 17
    if op == "Transpose":
        return [helper.make_node("Transpose", ["x"], ["y"], name="n", perm=[0, 2, 1])], UNARY, init, 17
    if op == "Split":
        return [helper.make_node("Split", ["x"], ["y", "z"], name="n", axis=2, split=[2, 2])], UNARY, init, 11
    if op == "Slice":
        return [helper.make_node("Slice", ["x", "s", "e"], ["y"], name="n")], UNARY, \
            [("s", np.array([0])), ("e", np.array([1]))], 17
    if op == "Gather":
        return [helper.make_node("Gather", ["x", "i"], ["y"], name="n", axis=1)], UNARY, [("i", np.array(0))], 17
    if op == "Cast":
        return [helper.make_node("Cast", ["x"], ["y"], name="n", to=TensorProto.INT64)], UNARY, init, 17
    if op == "ReduceMean":
        return [helper.make_node("ReduceMean", ["x"], ["y"], name="n", axes=[1])], UNARY, init, 17
    if op == "Expand":
        return [helper.make_node("Expand", ["x", "s"], ["y"], name="n")], UNARY, [("s", np.array([2, 1, 1, 1]))], 17
    if op == "DynamicReshape":
        return [helper.make_node("Unsqueeze", ["x", "a"], ["y"], name="n")], [("x", F, ["N", "S", 4])], \
            [("a", np.array([0]))], 17
    if op == "CumSum":
        return [helper.make_node("CumSum", ["x", "a"], ["y"], name="n")], UNARY, [("a", np.array(1))], 17
    if op in ("Range", "Dims"):     # Range(0, N, 1) of a run-time length N: nodes [Dims, Range]
        return [helper.make_node("Shape", ["x"], ["s"], name="shape"),
                helper.make_node("Gather", ["s", "i0"], ["n"], name="n_of"),
                helper.make_node("Range", ["zero", "n", "one"], ["y"], name="n")], UNARY, \
            [("i0", np.array(0)), ("zero", np.array(0)), ("one", np.array(1))], 17
    return [helper.make_node("Concat", ["x", "x"], ["y"], name="n", axis=1)], UNARY, init, 17


@pytest.mark.parametrize("op, attrs, match", BAD_ATTRS, ids=[f"{o}-{next(iter(a))}" for o, a, _ in BAD_ATTRS])
def test_bad_attrs_in_a_file_are_refused(op, attrs, match, tmp_path):
    nodes, inputs, inits, opset = bad_attr_model(op)
    outputs = [(o, I64 if op in ("Range", "Dims") else F, None) for o in nodes[-1].output]
    path = saved_with(tmp_path, nodes, inputs, outputs, inits, opset)
    rewrite(path, set_attr({"Range": 1}.get(op, 0), **attrs))
    with pytest.raises(FormatError, match=match):
        fmt.load(path)


def test_split_output_count_and_slice_ends_from_are_checked(tmp_path):
    nodes, inputs, inits, opset = bad_attr_model("Split")
    path = saved_with(tmp_path, nodes, inputs, [("y", F, None), ("z", F, None)], inits, opset)

    def drop_output(header):
        header["graph"]["nodes"][0]["outputs"].pop()
        header["graph"]["outputs"].pop()
    rewrite(path, drop_output)
    with pytest.raises(FormatError, match="one size per output"):
        fmt.load(path)
    nodes, inputs, inits, opset = bad_attr_model("Slice")
    path = saved_with(tmp_path, nodes, inputs, [("y", F, None)], inits, opset)
    rewrite(path, set_attr(0, ends_from=[0]))
    with pytest.raises(FormatError, match="ends_from needs a second input"):
        fmt.load(path)


# ------------------------------------------------------------------------------ embeddings

@pytest.mark.parametrize("encoding", ["f32", "f16", "int8", "codebook4", "codebook3-int8"])
def test_embedding_step_gathers_rows_of_the_stored_table(encoding):
    from edgerun.compress.pipeline import _centroid_arrays, _dense_tensor, _shared_tensor
    from edgerun.compress.share import kmeans_1d

    table = randn(37, 10, seed=7)
    if encoding.startswith("codebook"):
        bits = int(encoding[8])
        centroids, codes = kmeans_1d(table.reshape(-1), 1 << bits)
        mode = "int8" if encoding.endswith("int8") else None
        tensor = _shared_tensor("t", table.shape, codes.reshape(table.shape),
                                _centroid_arrays(centroids, mode, "t"), bits, "codebook")
    else:
        tensor = _dense_tensor("t", table, {"f32": None, "f16": "fp16", "int8": "int8"}[encoding])
    node = edgerun.graph.Node("Gather", "embed", ["t", "ids"], ["y"], {"axis": 0})
    step = EmbeddingStep(node, tensor)
    ids = np.array([[0, 36, 5], [-1, 5, 2]], dtype=np.int64)
    np.testing.assert_array_equal(step(None, ids), tensor.to_dense()[ids])
    assert step(None, np.zeros((0, 3), np.int64)).shape == (0, 3, 10)
    with pytest.raises(ShapeError, match="out of range"):
        step(None, np.array([37]))


# ------------------------------------------------------------------------------ BERT

@functools.lru_cache(maxsize=None)
def bert_export(dynamo, opset, pooling="mean", mask_style="fill"):
    torch_export = pytest.importorskip("torch_export")
    import torch_bert

    factory, feeds = torch_bert.models("test", pooling=pooling, mask_style=mask_style)["bert"]
    return torch_export.export(factory(), tuple(feeds.values()), dynamo=dynamo, opset=opset,
                               input_names=("input_ids", "attention_mask"), output_names=("y",),
                               dynamic=(0, 1))


def bert_feeds(batch, seq, seed=0):
    import torch_bert

    return {k: v.numpy() for k, v in torch_bert.example_feeds(batch, seq, 1000, seed).items()}


EXPORTS = [(False, 17), (False, 14), (True, 18), (True, 21)]


@pytest.mark.parametrize("dynamo, opset", EXPORTS, ids=["torchscript17", "torchscript14", "dynamo18", "dynamo21"])
def test_bert_matches_onnxruntime(dynamo, opset):
    model = bert_export(dynamo, opset)
    graph = edgerun.import_onnx(model)
    names = ops(graph)
    # the decompositions of opset 14 / the erf GELU are fused: one op per LayerNorm and GELU
    assert names.count("LayerNorm") == 5 and names.count("Gelu") == 2
    assert "Erf" not in names and "Pow" not in names and "Sqrt" not in names
    assert [v.dtype for v in graph.inputs] == ["int64", "int64"]
    session = Session(graph)
    for batch, seq in [(2, 16), (3, 7)]:
        feeds = bert_feeds(batch, seq, seed=batch)
        assert (feeds["attention_mask"] == 0).any()        # padding is masked
        want = ort(model, feeds)["y"]
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(session.run(dict(feeds))["y"], want, rtol=1e-5, atol=1e-5 * scale)
        np.testing.assert_allclose(evaluate(graph, feeds)["y"], want, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("mask_style", ["additive", "indexed"])
@pytest.mark.parametrize("dynamo, opset", [(False, 17), (True, 18)], ids=["torchscript17", "dynamo18"])
def test_bert_with_hugging_face_style_masks(dynamo, opset, mask_style):
    model = bert_export(dynamo, opset, "mean", mask_style=mask_style)
    graph = edgerun.import_onnx(model)
    session = Session(graph)
    for batch, seq in [(2, 16), (3, 7)]:
        feeds = bert_feeds(batch, seq, seed=batch)
        want = ort(model, feeds)["y"]
        np.testing.assert_allclose(session.run(dict(feeds))["y"], want, rtol=1e-5,
                                   atol=1e-5 * float(np.abs(want).max()))


def test_bert_cls_pooling_and_file_round_trip(tmp_path):
    model = bert_export(False, 17, "cls")
    graph = edgerun.import_onnx(model)
    assert graph.nodes[-1].op == "Gather" and graph.nodes[-1].attrs["indices"] == 0
    path = tmp_path / "bert.edgerun"
    fmt.save(graph, path)
    session = edgerun.load(path)
    feeds = bert_feeds(3, 9)
    want = ort(model, feeds)["y"]
    np.testing.assert_allclose(session.run(dict(feeds))["y"], want, rtol=1e-5,
                               atol=1e-5 * float(np.abs(want).max()))


# (options, bound on the relative L2 output error vs float32).  The encoder's weights are
# random (untrained), the hardest case for pruning: nothing is redundant.
VARIANTS = {
    "fp16": (dict(quantize="fp16"), 1e-3),
    "int8": (dict(quantize="int8"), 0.05),
    "int8-static": (dict(quantize="int8-static", calibrate=True), 0.05),
    "prune0.5": (dict(prune=0.5, calibrate=True), 0.5),
    "prune0.9": (dict(prune=0.9, calibrate=True), 0.8),
    "share4": (dict(share_bits=4), 0.2),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_compressed_bert_imports_saves_loads_and_runs(variant, tmp_path):
    options, bound = VARIANTS[variant]
    options = dict(options)
    graph = edgerun.import_onnx(bert_export(False, 17))
    if options.pop("calibrate", False):
        options["calibration"] = bert_feeds(8, 16, seed=11)
    cm = edgerun.compress(graph, **options)
    path = tmp_path / f"{variant}.edgerun"
    cm.save(path)
    session = edgerun.load(path)
    feeds = bert_feeds(3, 12, seed=4)
    reference = Session(graph).run(dict(feeds))["y"]
    got = session.run(dict(feeds))["y"]
    error = float(np.linalg.norm(got - reference) / np.linalg.norm(reference))
    print(f"\n{variant}: relative output error vs float32 = {error:.4f}; "
          f"{cm.report().bytes_before} -> {cm.report().bytes_after} bytes")
    assert np.isfinite(got).all() and error < bound
    if "int8" not in variant:   # int8 layers also quantize activations at run time; evaluate() does not
        np.testing.assert_allclose(got, evaluate(cm.graph, feeds)["y"], rtol=1e-4,
                                   atol=1e-4 * float(np.abs(got).max()))
    word = session.graph.tensors["word.weight"]
    embeddings = [step for _, step, _ in session._steps if isinstance(step, EmbeddingStep)]
    assert len(embeddings) == 2
    if variant in ("int8", "int8-static"):
        assert word.encoding == "dense" and word.arrays["values"].dtype == np.int8 \
            and word.arrays["scale"].shape == (1000,)
    elif variant == "share4":
        assert word.encoding == "codebook" and word.bits == 4
    elif variant == "fp16":
        assert word.arrays["values"].dtype == np.float16


def test_bert_with_a_float_attention_mask():
    torch_export = pytest.importorskip("torch_export")
    import torch_bert

    factory, feeds = torch_bert.models("test")["bert"]
    feeds = {"input_ids": feeds["input_ids"], "attention_mask": feeds["attention_mask"].float()}
    model = torch_export.export(factory(), tuple(feeds.values()), input_names=tuple(feeds),
                                output_names=("y",), dynamic=(0, 1))
    graph = edgerun.import_onnx(model)
    assert [v.dtype for v in graph.inputs] == ["int64", "float32"]
    run = bert_feeds(3, 10)
    run["attention_mask"] = run["attention_mask"].astype(np.float32)
    want = ort(model, run)["y"]
    np.testing.assert_allclose(Session(graph).run(dict(run))["y"], want, rtol=1e-5,
                               atol=1e-5 * float(np.abs(want).max()))


class WrappedEncoderLayer:
    """nn.TransformerEncoderLayer(batch_first=True) behind a module of our own: called
    directly, torch 2.13's TorchScript exporter fails inside torch (is_causal as a Tensor)."""

    def __new__(cls, activation="relu", norm_first=False):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True,
                                                              activation=activation, norm_first=norm_first)

            def forward(self, x):
                return self.layer(x)

        torch.manual_seed(0)
        return Wrapped().eval()


@pytest.mark.parametrize("activation, norm_first", [("relu", False), ("gelu", True)])
def test_torch_transformer_encoder_layer_dynamo(activation, norm_first):
    """torch's multi-head attention reshapes [S, N*heads, d] <-> [N, heads, S, d]: run-time
    dims that move, imported as DynamicReshape; any batch and sequence length."""
    torch = pytest.importorskip("torch")
    torch_export = pytest.importorskip("torch_export")
    model = torch_export.export(WrappedEncoderLayer(activation, norm_first), torch.randn(2, 5, 32),
                                dynamo=True, dynamic=(0, 1))
    graph = edgerun.import_onnx(model)
    assert "DynamicReshape" in ops(graph) and "LayerNorm" in ops(graph)
    session = Session(graph)
    for batch, seq in [(2, 5), (3, 9)]:
        x = randn(batch, seq, 32, seed=batch)
        want = ort(model, {"x": x})["y"]
        np.testing.assert_allclose(session.run(x), want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def test_torch_transformer_encoder_layer_torchscript():
    """The TorchScript tracer bakes the example's sequence length into the attention
    reshapes (onnxruntime fails on any other length too): checked at two batch sizes."""
    torch = pytest.importorskip("torch")
    torch_export = pytest.importorskip("torch_export")
    model = torch_export.export(WrappedEncoderLayer(), torch.randn(2, 5, 32), dynamo=False, dynamic=(0, 1))
    graph = edgerun.import_onnx(model)
    for batch in (1, 3):
        x = randn(batch, 5, 32, seed=batch)
        want = ort(model, {"x": x})["y"]
        np.testing.assert_allclose(Session(graph).run(x), want, rtol=1e-5,
                                   atol=1e-5 * float(np.abs(want).max()))


def test_run_time_dims_that_move_become_dynamic_reshape(tmp_path):
    """[N, S, 4] -> transpose -> reshape to (N, S, 2, 2) read from Shape(x); flatten to
    [N*S, 4] and back to [N, S, 4]: neither is a Reshape of 0s and one -1."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"], name="shape"),
             helper.make_node("Gather", ["shape", "i0"], ["n"], name="n"),
             helper.make_node("Gather", ["shape", "i1"], ["s"], name="s"),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="n1"),
             helper.make_node("Unsqueeze", ["s", "axes"], ["s1"], name="s1"),
             helper.make_node("Transpose", ["x"], ["t"], name="t", perm=[1, 0, 2]),
             helper.make_node("Concat", ["n1", "s1", "two", "two"], ["nss"], name="cat", axis=0),
             helper.make_node("Reshape", ["t", "nss"], ["y"], name="moved"),
             helper.make_node("Reshape", ["x", "flat"], ["f"], name="flatten"),
             helper.make_node("Relu", ["f"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "shape"], ["back"], name="unflatten"),
             helper.make_node("Unsqueeze", ["back", "axes"], ["y2"], name="unsqueeze")]
    model = model_of(nodes, [("x", F, ["N", "S", 4])], [("y", F, None), ("y2", F, None)],
                     [("i0", np.array(0)), ("i1", np.array(1)), ("axes", np.array([0])),
                      ("two", np.array([2])), ("flat", np.array([-1, 4]))])
    graph = check(model, {"x": randn(3, 5, 4)}, tmp_path)
    assert ops(graph).count("DynamicReshape") == 3
    unflatten = next(n for n in graph.nodes if n.name == "unflatten")
    assert unflatten.inputs == ["r", "x"] and unflatten.attrs["shape"] == [[1, 0], [1, 1], 4]


def test_range_and_expand_from_a_file_cannot_ask_for_huge_arrays(tmp_path):
    nodes, inputs, inits, opset = bad_attr_model("Range")
    path = saved_with(tmp_path, nodes, inputs, [("y", I64, None)], inits, opset)
    rewrite(path, set_attr(1, start=-2**62))
    session = edgerun.load(path)
    with pytest.raises(ShapeError, match="Range"):
        session.run(randn(2, 3, 4))
    nodes, inputs, inits, opset = bad_attr_model("Expand")
    path = saved_with(tmp_path, nodes, inputs, [("y", F, None)], inits, opset)
    rewrite(path, set_attr(0, shape=[1 << 16, 1 << 14, 1, 1]))
    with pytest.raises(ShapeError, match="Expand"):
        edgerun.load(path).run(randn(2, 3, 4))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")   # softmax of a -inf row is NaN
def test_isnan_where_after_softmax(tmp_path):
    """torch's scaled_dot_product_attention export zeroes the NaN rows of a fully masked softmax."""
    nodes = [helper.make_node("Softmax", ["x"], ["p"], name="softmax", axis=-1),
             helper.make_node("IsNaN", ["p"], ["nan"], name="isnan"),
             helper.make_node("Where", ["nan", "zero", "p"], ["y"], name="where")]
    model = model_of(nodes, [("x", F, ["N", 4])], [("y", F, None)], [("zero", np.float32(0))])
    x = randn(3, 4)
    x[1] = -np.inf
    graph = check(model, {"x": x}, tmp_path)
    assert ops(graph) == ["Softmax", "IsNaN", "Where"]


@pytest.mark.parametrize("op, nodes, inputs, keep", [
    ("MatMul", [helper.make_node("MatMul", ["x", "x2"], ["y"], name="n")], 2, 3),
    ("Where", [helper.make_node("IsNaN", ["x"], ["c"], name="c"),
               helper.make_node("Where", ["c", "x", "x2"], ["y"], name="n")], 2, 2),
    ("Max", [helper.make_node("Max", ["x", "x2"], ["y"], name="n")], 2, 0),
    ("Erf", [helper.make_node("Erf", ["x"], ["y"], name="n")], 1, 2),
])
def test_ops_without_attrs_refuse_a_wrong_input_count(op, nodes, inputs, keep, tmp_path):
    """Ops with no attrs: a file giving them the wrong number of inputs is refused."""
    feeds = [("x", F, ["N", 3, 4]), ("x2", F, ["N", 4, 4] if op == "MatMul" else ["N", 3, 4])][:inputs]
    path = saved_with(tmp_path, nodes, feeds, [("y", F, None)])

    def change(header):
        node = header["graph"]["nodes"][-1]
        node["inputs"] = (node["inputs"] * 3)[:keep]
    rewrite(path, change)
    with pytest.raises(FormatError, match=f"{op} takes|inputs"):
        fmt.load(path)


def test_cumsum_position_ids_and_gather_elements_of_an_expanded_buffer(tmp_path):
    """RoBERTa's position ids (cumsum of the padding mask) and ELECTRA / ALBERT's token
    types (a constant buffer expanded to the run-time batch, then GatherElements)."""
    nodes = [helper.make_node("Equal", ["ids", "pad"], ["is_pad"], name="is_pad"),
             helper.make_node("Not", ["is_pad"], ["real"], name="real"),
             helper.make_node("Cast", ["real"], ["m"], name="m", to=TensorProto.INT64),
             helper.make_node("CumSum", ["m", "axis1"], ["c"], name="cumsum"),
             helper.make_node("Mul", ["c", "m"], ["positions"], name="positions"),
             helper.make_node("CumSum", ["m", "axis1"], ["rc"], name="reverse_exclusive", exclusive=1, reverse=1),
             helper.make_node("Shape", ["ids"], ["shape"], name="shape"),
             helper.make_node("Shape", ["ids"], ["seq"], name="seq", start=1, end=2),
             helper.make_node("Slice", ["buffer", "zero1", "seq", "axis1_1"], ["buffer_s"], name="slice"),
             helper.make_node("Expand", ["buffer_s", "shape"], ["types_all"], name="expand"),
             helper.make_node("GatherElements", ["types_all", "positions"], ["types"], name="gather", axis=1),
             helper.make_node("Expand", ["two", "shape"], ["twos"], name="expand_constant"),
             helper.make_node("GatherElements", ["table", "positions"], ["picked"], name="gather_constant",
                              axis=1)]
    model = model_of(nodes, [("ids", I64, ["N", "S"])], [("positions", I64, None), ("rc", I64, None),
                                                          ("types", I64, None), ("twos", I64, None),
                                                          ("picked", F, None)],
                     [("pad", np.array(1)), ("axis1", np.array(1)), ("zero1", np.array([0])),
                      ("axis1_1", np.array([1])), ("buffer", np.arange(8, dtype=np.int64)[None, :] % 3),
                      ("two", np.array([[2]])), ("table", randn(2, 5, seed=3))])
    ids = np.array([[5, 7, 9, 1, 1], [4, 1, 6, 2, 1]], dtype=np.int64)
    graph = check(model, {"ids": ids}, tmp_path)
    assert {"CumSum", "GatherElements", "Expand", "Cast"} <= set(ops(graph))
