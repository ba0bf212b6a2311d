"""The float ops of transformer encoders on C kernels: GELU, softmax and LayerNorm
over the last axis, with the residual Add in front of a LayerNorm fused into it.

Their numpy forms (edgerun/evaluate.py) make a pass over the activations per
arithmetic step and allocate a temporary for each; in a BERT-style encoder that
was ~40% of an int8 run (GELU alone ~8 of 26 ms at 4 x 256 hidden, seq 128).
The kernels make one or two passes.  An op over another axis, or a residual that
broadcasts, keeps the numpy function.
"""
import numpy as np

from edgerun import evaluate
from edgerun.graph import Node


def _last_axis(axis, x):
    return axis in (-1, x.ndim - 1)


def _float32(x):
    return np.ascontiguousarray(x, dtype=np.float32)


def kernel_function(node, kernels):
    """The function computing `node` on the kernels, or None for ops without one."""
    attrs = node.attrs
    if node.op == "Gelu":
        approximate = attrs.get("approximate", "none")
        return lambda x: kernels.gelu_f32(_float32(x), approximate)
    if node.op == "Softmax":
        axis = attrs.get("axis", -1)

        def softmax(x):
            x = np.asarray(x)
            if not _last_axis(axis, x):
                return evaluate.softmax(x, axis)
            return kernels.softmax_f32(_float32(x))
        return softmax
    if node.op == "LayerNorm":
        return _layer_norm(attrs.get("axis", -1), attrs.get("epsilon", 1e-5), kernels)
    return None


def _layer_norm(axis, epsilon, kernels, residual=False):
    """LayerNorm(x, scale[, bias]) or, with residual, LayerNorm(x + r, scale[, bias])."""
    def layer_norm(x, *rest):
        x, r = np.asarray(x), None
        if residual:
            r, rest = np.asarray(rest[0]), rest[1:]
        scale, bias = (rest + (None,))[:2]
        if r is not None and r.shape != x.shape:        # a broadcasting residual
            x, r = _float32(np.add(x, r)), None
        if _last_axis(axis, x) and np.shape(scale) == x.shape[-1:]:
            return kernels.layer_norm_f32(_float32(x), scale, bias, epsilon,
                                          residual=None if r is None else _float32(r))
        return evaluate.layer_norm(x if r is None else _float32(np.add(x, r)), scale, bias, axis,
                                   epsilon)
    return layer_norm


def residual_layer_norms(graph):
    """{LayerNorm node name: the Add node feeding it} for every Add of two activations
    whose result only that LayerNorm reads (BERT's post-norm x = LN(x + sublayer))."""
    readers = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers.setdefault(name, []).append(node)
    producer = {out: node for node in graph.nodes for out in node.outputs}
    outputs = {v.name for v in graph.outputs}
    fused = {}
    for node in graph.nodes:
        if node.op != "LayerNorm" or not node.inputs:
            continue
        add = producer.get(node.inputs[0])
        if (add is None or add.op != "Add" or add.outputs[0] in outputs
                or len(readers.get(add.outputs[0], ())) != 1
                or any(name in graph.tensors for name in add.inputs)):
            continue
        fused[node.name] = add
    return fused


def fused_layer_norm(node, add, kernels):
    """(node, function) for LayerNorm(add's inputs summed): the node reads add's two
    inputs in place of add's output, then its own scale and bias."""
    fused = Node(node.op, node.name, list(add.inputs) + list(node.inputs[1:]), list(node.outputs),
                 dict(node.attrs))
    function = _layer_norm(node.attrs.get("axis", -1), node.attrs.get("epsilon", 1e-5), kernels,
                           residual=True)
    return fused, function
