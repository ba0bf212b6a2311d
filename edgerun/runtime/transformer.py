"""The float ops of transformer encoders on C kernels: GELU, softmax and LayerNorm
over the last axis, with the residual Add in front of a LayerNorm fused into it.

Their numpy forms (edgerun/evaluate.py) make a pass over the activations per
arithmetic step and allocate a temporary for each; in a BERT-style encoder that
was ~40% of an int8 run (GELU alone ~8 of 26 ms at 4 x 256 hidden, seq 128).
The kernels make one or two passes.  An op over another axis, or a residual that
broadcasts, keeps the numpy function.

Self-attention's glue (AttentionPlan, below): Transposes feeding MatMuls are views,
MatMul -> scale -> mask -> Softmax is one step working in place, and P.V's MatMul
writes its result with the heads already moved back among the tokens.
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


# ---------------------------------------------------------------- attention glue
# Self-attention around its two MatMuls is a chain of small ops on [batch, heads,
# seq, seq] scores: Transposes of Q, K and V (a copy each in numpy), the
# 1/sqrt(d) scale, the padding mask and the softmax, each allocating a fresh
# array (a 256 KB one at seq 128 costs its page faults again on every call).
# At 4 x 256 hidden, seq 128, that glue was ~3 ms of a ~15 ms int8 run.
#
# - A Transpose read only by MatMuls returns a view: np.matmul takes the strided
#   operands as they are (BLAS strides), as fast as contiguous copies.
# - MatMul -> [Mul | Div by a scale] -> [Where(mask, fill, x) | Add(x, mask bias)]
#   -> Softmax runs as one step that writes the scale, the mask and the softmax in
#   place into the MatMul's fresh output, with the same numpy ops and the same
#   softmax kernel as the op-by-op path: the results are bit-identical.  Any
#   operand that would broadcast the scores to a larger shape or change their
#   dtype takes the op-by-op function inside the step instead.

def _readers(graph):
    readers = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers.setdefault(name, []).append(node)
    return readers


class AttentionPlan:
    """What the Session runs differently on a graph's attention glue:
    `views` (names of the Transposes that return views), `chains` ({Softmax node
    name: [MatMul, scale or None, mask or None, Softmax]}) and `merges` ({Transpose
    node name: MatMul}: a 4-D MatMul read only by a Transpose(0, 2, 1, 3), run as one
    step that writes the MatMul's result in the transposed layout, where the
    Transpose would have copied it); `fused` names the nodes whose work moved into
    another's step.  fusable(name) says whether a node may take part (the Session
    excludes nodes it runs in another layout)."""

    def __init__(self, graph, fusable=lambda name: True):
        readers = _readers(graph)
        producer = {out: node for node in graph.nodes for out in node.outputs}
        outputs = {v.name for v in graph.outputs}

        def private(name):
            """The node producing value `name` if it is an activation that one reader
            alone reads and not a graph output (so its buffer may be reused)."""
            node = producer.get(name)
            if (node is None or name in outputs or len(readers.get(name, ())) != 1
                    or len(node.outputs) != 1 or not fusable(node.name)):
                return None
            return node

        self.views = {
            node.name for node in graph.nodes
            if node.op == "Transpose" and fusable(node.name) and node.outputs[0] not in outputs
            and readers.get(node.outputs[0]) and all(r.op == "MatMul" for r in readers[node.outputs[0]])}
        self.chains = {}
        for node in graph.nodes:
            if node.op == "Softmax" and fusable(node.name):
                chain = _score_chain(node, private)
                if chain:
                    self.chains[node.name] = chain
        self.fused = {n.name for chain in self.chains.values() for n in chain[:-1] if n is not None}
        self.merges = {}
        for node in graph.nodes:
            if (node.op == "Transpose" and list(node.attrs.get("perm", ())) == [0, 2, 1, 3]
                    and fusable(node.name) and node.name not in self.views
                    and node.outputs[0] not in outputs):
                matmul = private(node.inputs[0])
                if (matmul is not None and matmul.op == "MatMul" and len(matmul.inputs) == 2
                        and matmul.name not in self.fused):
                    self.merges[node.name] = matmul
        self.fused |= {matmul.name for matmul in self.merges.values()}

    def __contains__(self, name):
        return name in self.views or name in self.chains or name in self.merges

    def step(self, node, kernels):
        """(node, function) for a node `in` the plan: a Transpose view, a merged
        MatMul + Transpose (a MatMul node named after the Transpose, with the MatMul's
        inputs), or the fused chain ending at this Softmax as one node reading the
        chain's outer inputs."""
        if node.name in self.views:
            perm = node.attrs["perm"]
            return node, lambda x: np.transpose(x, perm)
        if node.name in self.merges:
            matmul = self.merges[node.name]
            fused = Node("MatMul", node.name, list(matmul.inputs), list(node.outputs), {})
            return fused, _matmul_heads_to_tokens()
        matmul, scale, mask, softmax = self.chains[node.name]
        inputs, ops = list(matmul.inputs), []
        for op_node, value in ((scale, matmul), (mask, scale or matmul)):
            if op_node is not None:
                side = op_node.inputs.index(value.outputs[0])
                others = [name for i, name in enumerate(op_node.inputs) if i != side]
                inputs += others
                ops.append((op_node, side, len(others)))
        fused = Node(softmax.op, softmax.name, inputs, list(softmax.outputs), dict(softmax.attrs))
        return fused, _scores(ops, softmax.attrs.get("axis", -1), kernels)


def _matmul_heads_to_tokens():
    """Transpose(a @ b, (0, 2, 1, 3)) as a C-contiguous array: [N, H, M, K] @ [N, H, K, D]
    computed into the [N, M, H, D] array's transposed view (BLAS writes each head's
    M x D block with the row stride H * D), which saves the copy a Transpose makes.
    Operands of other ranks, dtypes or broadcasting shapes take the op-by-op pair."""
    matmul = evaluate.transformer_function(Node("MatMul", "", [], []))

    def matmul_heads_to_tokens(a, b):
        if (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.ndim == 4
                and b.ndim == 4 and a.dtype == np.float32 and b.dtype == np.float32
                and a.shape[:2] == b.shape[:2] and a.shape[3] == b.shape[2]):
            n, heads, m, _ = a.shape
            y = np.empty((n, m, heads, b.shape[3]), dtype=np.float32)
            np.matmul(a, b, out=y.transpose(0, 2, 1, 3))
            return y
        return np.ascontiguousarray(np.transpose(matmul(a, b), (0, 2, 1, 3)))
    return matmul_heads_to_tokens


def _score_chain(softmax, private):
    """[MatMul, scale, mask, softmax] ending at softmax (scale and mask may be None),
    or None when the softmax's input does not come from a private MatMul."""
    if not softmax.inputs:
        return None
    found = _scaled_matmul(softmax.inputs[0], private)
    if found:
        return [*found, None, softmax]
    mask = private(softmax.inputs[0])
    if mask is None or (mask.op, len(mask.inputs)) not in (("Where", 3), ("Add", 2)):
        return None
    for name in mask.inputs[1:] if mask.op == "Where" else mask.inputs:
        found = _scaled_matmul(name, private) if mask.inputs.count(name) == 1 else None
        if found:
            return [*found, mask, softmax]
    return None


def _scaled_matmul(name, private):
    """(MatMul, scale or None) when value `name` is a private MatMul's result, maybe
    multiplied (either side) or divided (as the numerator) by something."""
    node = private(name)
    if node is not None and node.op == "MatMul" and len(node.inputs) == 2:
        return node, None
    if node is None or node.op not in ("Mul", "Div") or len(node.inputs) != 2:
        return None
    for inner_name in node.inputs if node.op == "Mul" else node.inputs[:1]:
        inner = private(inner_name)
        if (inner is not None and inner.op == "MatMul" and len(inner.inputs) == 2
                and node.inputs.count(inner_name) == 1):
            return inner, node
    return None


def _in_place(s, *operands):
    """Whether an elementwise op of float32 s with operands (float32 values, bool
    conditions) may write into s: the result has s's shape and dtype, as the op-by-op
    path's would.  (np.broadcast_shapes and np.result_type cost ~8 us a call.)"""
    for x in operands:
        if x.dtype not in (np.float32, np.bool_) or x.ndim > s.ndim:
            return False
        if not all(d == 1 or d == t for d, t in zip(x.shape[::-1], s.shape[::-1])):
            return False
    return True


def _scores(ops, axis, kernels):
    """Softmax(mask(scale(a @ b))) as one function of (a, b, each op's other inputs)."""
    matmul = evaluate.transformer_function(Node("MatMul", "", [], []))
    per_op = [(node, side, count, evaluate.op_function(node)) for node, side, count in ops]

    def scores(a, b, *rest):
        s = matmul(a, b)
        if not (s.flags.writeable and s.flags.owndata and s.flags.c_contiguous):
            s = np.array(s, dtype=np.float32)
        for node, side, count, function in per_op:
            others, rest = rest[:count], rest[count:]
            if node.op == "Where":
                cond, fill = np.asarray(others[0], dtype=bool), np.asarray(others[1])
                if fill.dtype == np.float32 and _in_place(s, cond, fill):
                    # Where(c, s, fill) keeps s where c; Where(c, fill, s) replaces it there.
                    # A mask without padding replaces nothing: skip the pass over s.
                    replace = ~cond if side == 1 else cond
                    if replace.any():
                        np.copyto(s, fill, where=replace)
                    continue
            else:
                x = np.asarray(others[0])
                if x.dtype == np.float32 and _in_place(s, x):
                    if node.op == "Add" and not x.any():
                        continue        # a bias of zeros (no padding) leaves s as it is
                    ufunc = {"Mul": np.multiply, "Div": np.divide, "Add": np.add}[node.op]
                    ufunc(*((s, x) if side == 0 else (x, s)), out=s)
                    continue
            args = list(others)
            args.insert(side, s)
            s = function(*args)         # the op-by-op function: a fresh array
            if not (s.flags.writeable and s.flags.owndata and s.flags.c_contiguous):
                s = np.array(s, dtype=np.float32)
        if not _last_axis(axis, s):
            return evaluate.softmax(s, axis)
        if s.dtype == np.float32:
            return kernels.softmax_f32(s, out=s)
        return kernels.softmax_f32(_float32(s))  # integer scores, as op by op
    return scores

