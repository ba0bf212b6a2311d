"""edgerun.compress: float Graph in, encoded Graph out, with a report.

    cm = edgerun.compress(graph, prune=0.9, quantize="int8", share_bits=4,
                          huffman=True, calibration=x_calib)
    print(cm.report()); cm.save("model.edgerun")

Order of work (ARCHITECTURE.md section 5):

1. With calibration data and pruning, ReLU neurons that never activate on the
   calibration inputs are removed when the next layer is a Linear: their rows of
   W_l and b_l and the matching columns of W_{l+1} go, which leaves every output
   on those inputs unchanged and shrinks both layers.
2. Layer by layer, in graph order, on the inputs the COMPRESSED model feeds that
   layer (error feedback, OBC/GPTQ style: each layer absorbs the error of the
   ones before it):
   - prune by |w|, or by |w|*||x|| (Wanda) with calibration.  With calibration the
     target is reached gradually (cubic schedule, PRUNE_STEPS steps), refitting the
     kept weights of each row by least squares to the layer's ORIGINAL float
     outputs after every step; when the output goes through a ReLU the last fit
     only counts the samples the ReLU does not zero on both sides.
   - share weights: k-means (linear start, weighted by input energy), then
     choose each weight's centroid GPTQ-style (its rounding error pushed onto the
     row's later weights and bias), then refit the centroids by least squares.
   - quantize (fp16, int8 per row; int8 centroids with one scale), re-centre the
     bias on the rounded weights, and encode in the cheapest form the options
     allow, counted in estimated stored bytes (Huffman-coded when asked).
     A pruned, shared layer is stored as csr (codes + indices) or as a dense
     codebook with one centroid pinned at 0, whichever is smaller: with Huffman
     coding the runs of zero codes of a dense codebook often cost less than the
     indices of csr.

Measured on a 64-300-100-10 MLP for UCI digits (3 trainings, prune=0.9,
share_bits=4, huffman=True, calibrated on the 1347 training images): the weight
and bias streams are 27-30x smaller than float32 and 0.4-1.3 accuracy points
are lost on the 450 test images (the session on the saved file agrees with
evaluate() to 1e-5).  The .edgerun file of such a tiny model is only ~20x
smaller: its JSON header (~3.7 KB of stream descriptions) outweighs half the
weights.  Each knob below was kept because it lowered the held-out output
error: gradual pruning (10 steps vs 1: half the error), error feedback (vs
fitting on float inputs), the ReLU-aware fit, the GPTQ-style assignment
(share_bits=2: -20% error; prune 0.5 + 3 bits: -40%).

prune_block=4 prunes in aligned groups of 4 consecutive input columns of one
output row (columns 4g .. 4g+3), scored by the group's L2 norm, or with
calibration by the sum of its Wanda scores |w|*||x||; a group is kept or
pruned whole, and the refits run unchanged on that mask.  Such a layer is
stored as "bcsr4" (1x4 blocks, the spmm_bcsr4 kernels: one index per 4
weights) unless dense is smaller; with share_bits it keeps the csr-with-codes
path.  A layer whose input count is not a multiple of 4 falls back to
unstructured pruning, with a note in the report.

Conv2d layers are compressed like Linear ones on their weight's matrix view
[out, in/group*kh*kw] -- stored 2-D, with the node's attrs["kernel"] =
[in/group, kh, kw] restoring the 4-D shape.  A conv IS a Linear on its im2col
rows (one row per output pixel, columns in the weight's [in, kh, kw] order), so
with calibration a group-1 conv gets the same machinery on that matrix: Wanda
scores, gradual pruning with row refits, GPTQ-style code assignment, centroid
refit, bias re-centring, and the error column of the report.  The calibration
images give N*OH*OW rows; MAX_CONV_ROWS of them (output pixels over all images,
chosen once per layer with the seed, the same ones for the float targets and the
compressed model's inputs) are plenty for a least squares over in*kh*kw <= a few
hundred unknowns per row and keep the refits as fast as a Linear's.  On the digits
CNN of `edgerun demo --model cnn` (docs/ACCURACY.md, 3 seeds) this cuts the model's
output error 2-4x against uncalibrated convs and holds prune 0.85 (global) + 4-bit
sharing + int8 + Huffman -- a 22-25x smaller file -- to 0.2-0.7 points of fp32 accuracy.
Grouped convs that are not depthwise keep the uncalibrated path (one codebook
would span groups that see different inputs), with a note; their report error (and
a depthwise conv's) is still measured, by running the float and the compressed conv
on the first calibration images.

With prune_scope="global" the Wanda scores of all layers go into one ranking, but a
conv's input norms are summed over min(N*OH*OW, MAX_CONV_ROWS) rows where a Linear's
are over N samples, which ranks conv weights about sqrt(4096 / N) higher (1.7x for
the digits).  That was kept because it measured best on the digits CNN (3 seeds,
prune 0.85 + 4-bit + int8, docs/ACCURACY.md): per-row RMS norms ("rms": every layer
on the same footing per output value) prune the convs to 95 % and lose 0.7-0.9
points; per-image norms ("image": x sqrt(OH*OW), a conv weight touches every pixel)
spare the convs and prune fc1 to 96 %, losing 0.5-1.1; "sum" loses 0.2-0.7.

Depthwise convs (in/group == 1: 9 weights per channel for 3x3) are by default only
quantized (fp16 / int8), not pruned or weight-shared by a model-wide option: each channel's
filter is its whole receptive field, so pruning a weight removes a tap the
channel cannot recover from other inputs (no refit can help), and they are a
tiny share of a model's weights (MobileNet V1/V2: 1-2 %), so skipping them costs
little size.  Global pruning leaves them out of the ranking.  A per-layer dict that
names a depthwise conv ({"dw1": 0.3}) is obeyed, uncalibrated.

quantize="int8-static" stores each Linear's and Conv2d's calibrated input scale
in the node's attrs ("input_scale" = max|x| / 127 over the layer's input
activations, padding aside) and otherwise encodes exactly like "int8"; a runtime
that does not use static scales quantizes activations per row at run time.
"""
import contextlib
import copy
import numbers

import numpy as np

from edgerun.errors import OptionError
from edgerun.evaluate import conv2d, evaluate, im2col
from edgerun.graph import Tensor, conv_weight_shape
from edgerun.compress import prune as pruning
from edgerun.compress import quantize as quant
from edgerun.compress import refit as refitting
from edgerun.compress.report import Report, stored_bytes
from edgerun.compress.share import kmeans_1d
from edgerun.packing import pack_bits

QUANTIZE_MODES = (None, "fp16", "int8", "int8-static")
LAYER_OPS = ("Linear", "Conv2d")  # the layers with a weight matrix the options apply to
PRUNE_BLOCKS = (1, 4)   # 1: unstructured; 4: 1x4 blocks along the input columns
# Knobs of the method (module constants so that experiments can switch them; see above).
ERROR_FEEDBACK = True   # fit each layer on the compressed model's inputs, not the float ones
PRUNE_STEPS = 10        # gradual pruning steps when refitting
RELU_STEPS = 1          # the last steps use the ReLU-aware fit (it costs a Gram matrix per row)
FEEDBACK_ASSIGN = True  # GPTQ-style centroid choice instead of nearest centroid
RELU_ASSIGN = True      # ... with each row's Hessian on its ReLU-active samples
MAX_CALIBRATION_SAMPLES = 4096  # enough for least squares on layers of a few thousand inputs
MAX_CONV_ROWS = 4096    # im2col rows (output pixels) a conv is calibrated on, see above
CALIBRATE_CONVS = True  # False: convs take the uncalibrated path (the ablation in docs/ACCURACY.md)
GLOBAL_SCORE = "sum"    # global Wanda norms: "sum" over the calibration rows, "rms", "image"


class CompressedModel:
    """The encoded graph and the report of how it was made."""

    def __init__(self, graph, report):
        self.graph = graph
        self._report = report

    def report(self):
        return self._report

    def save(self, path):
        from edgerun import format as edgerun_format

        edgerun_format.save(self.graph, path)

    def __repr__(self):
        return f"<CompressedModel {len(self._report.rows)} layers, {self._report.ratio:.2f}x smaller>"


# -- options -----------------------------------------------------------------------------------

def _per_layer(option, value, names):
    """{layer: value} for every layer: a dict names some layers, anything else names all."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise OptionError(f"{option}: unknown layer name(s) {unknown}; "
                              f"the layers are {list(names)}")
        return {n: value.get(n) for n in names}
    return {n: value for n in names}


def _check_sparsity(option, value):
    if isinstance(value, dict):
        if set(value) != {"threshold"}:
            raise OptionError(f"{option}: a dict value must be {{'threshold': t}}, got {value!r}")
        t = value["threshold"]
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not t >= 0 or not np.isfinite(t):
            raise OptionError(f"{option}: threshold must be a finite number >= 0, got {t!r}")
        return {"threshold": float(t)}
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise OptionError(f"{option}: sparsity must be a number with 0 <= s < 1, got {value!r}")
    return float(value)


def _prune_plan(prune, names):
    """{layer: None | sparsity | {"threshold": t}}; {"threshold": t} alone applies to all."""
    if prune is None:
        return {n: None for n in names}
    if isinstance(prune, dict) and set(prune) == {"threshold"} and "threshold" not in names:
        return {n: _check_sparsity("prune", prune) for n in names}
    plan = _per_layer("prune", prune, names)
    where = (lambda n: f"prune[{n!r}]") if isinstance(prune, dict) else (lambda n: "prune")
    return {n: None if v is None else _check_sparsity(where(n), v) for n, v in plan.items()}


def _quantize_plan(quantize, names):
    plan = _per_layer("quantize", quantize, names)
    for n, mode in plan.items():
        if mode not in QUANTIZE_MODES:
            raise OptionError(f"quantize for layer {n!r} must be one of {QUANTIZE_MODES}, got {mode!r}")
    return plan


def _bits_plan(share_bits, names):
    plan = _per_layer("share_bits", share_bits, names)
    for n, bits in plan.items():
        if bits is None:
            continue
        if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 1 <= bits <= 8:
            raise OptionError(f"share_bits for layer {n!r} must be an integer in 1..8, got {bits!r}")
        plan[n] = int(bits)
    return plan


def _block_plan(prune_block, names):
    """{layer: 1 | 4}; None means 1 (unstructured)."""
    plan = _per_layer("prune_block", prune_block, names)
    for n, block in plan.items():
        if block is None:
            plan[n] = 1
            continue
        if isinstance(block, bool) or not isinstance(block, numbers.Integral) or block not in PRUNE_BLOCKS:
            raise OptionError(f"prune_block for layer {n!r} must be one of {PRUNE_BLOCKS} "
                              f"(or None), got {block!r}")
        plan[n] = int(block)
    return plan


def _calibration_feeds(graph, calibration):
    if calibration is None:
        return None
    if not isinstance(calibration, dict):
        if len(graph.inputs) != 1:
            raise OptionError(f"calibration: the graph has {len(graph.inputs)} inputs; "
                              "pass a dict {input name: array}")
        calibration = {graph.inputs[0].name: calibration}
    feeds = {}
    for info in graph.inputs:
        if info.name not in calibration:
            raise OptionError(f"calibration: missing input {info.name!r} ({info.describe()})")
        x = np.asarray(calibration[info.name], dtype=np.float32)
        if x.ndim != len(info.shape) or any(d is not None and d != s for d, s in zip(info.shape, x.shape)):
            raise OptionError(f"calibration for input {info.name!r} must be {info.describe()}, "
                              f"got shape {x.shape}")
        if x.shape[0] == 0 or not np.isfinite(x).all():
            raise OptionError(f"calibration for input {info.name!r} must be non-empty and finite")
        feeds[info.name] = x
    extra = set(calibration) - set(feeds)
    if extra:
        raise OptionError(f"calibration names unknown inputs {sorted(extra)}")
    return feeds


def _subsample(feeds, seed):
    n = next(iter(feeds.values())).shape[0]
    if n <= MAX_CALIBRATION_SAMPLES:
        return feeds
    pick = np.sort(np.random.default_rng(seed).choice(n, MAX_CALIBRATION_SAMPLES, replace=False))
    return {k: v[pick] for k, v in feeds.items()}


# -- graph surgery -----------------------------------------------------------------------------

def _is_depthwise(graph, node):
    out, per_group = conv_weight_shape(node, graph.tensors[node.inputs[1]])[:2]
    return per_group == 1 and node.attrs.get("group", 1) == out


def _matrix(graph, node):
    """A layer's weight as float32 [out, in] (a conv's as [out, in/group*kh*kw])."""
    weight = graph.tensors[node.inputs[1]].to_dense()
    return weight.reshape(weight.shape[0], -1)


def _conv_geometry(node, weight):
    attrs = node.attrs
    kh, kw = conv_weight_shape(node, weight)[2:]
    return kh, kw, dict(strides=tuple(attrs.get("strides", (1, 1))),
                        pads=tuple(attrs.get("pads", (0, 0, 0, 0))),
                        dilations=tuple(attrs.get("dilations", (1, 1))))


def _conv_pixels(node, weight, x):
    """OH*OW: the output pixels (im2col rows) of one image."""
    kh, kw, geometry = _conv_geometry(node, weight)
    _, oh, ow = im2col(x[:1], kh, kw, **geometry)
    return oh * ow


def _conv_pick(node, weight, x, seed):
    """Flat indices into the N*OH*OW im2col rows of x that calibrate this conv:
    all of them, or MAX_CONV_ROWS drawn without replacement (sorted)."""
    total = x.shape[0] * _conv_pixels(node, weight, x)
    if total <= MAX_CONV_ROWS:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, MAX_CONV_ROWS, replace=False))


def _conv_rows(node, weight, x, pick):
    """The calibration matrix of a group-1 conv: the picked im2col rows of its input
    x [N, C, H, W], as float32 [len(pick), C*kh*kw].  im2col runs on a few images at
    a time, so the whole N*OH*OW matrix is never held."""
    kh, kw, geometry = _conv_geometry(node, weight)
    per_image = _conv_pixels(node, weight, x)
    columns = int(np.prod(conv_weight_shape(node, weight)[1:]))
    chunk = max(1, (1 << 20) // max(per_image * columns, 1))  # ~4 MB of rows at a time
    parts = []
    for start in range(0, x.shape[0], chunk):
        lo, hi = np.searchsorted(pick, [start * per_image, (start + chunk) * per_image])
        if hi > lo:
            cols = im2col(x[start:start + chunk], kh, kw, **geometry)[0]
            parts.append(cols.reshape(-1, cols.shape[2])[pick[lo:hi] - start * per_image])
    return np.concatenate(parts).astype(np.float32, copy=False)


def _named(option, name):
    """True when a per-layer option dict names this layer (it then overrides defaults)."""
    return isinstance(option, dict) and name in option


def _float_copy(graph):
    """A deep copy whose tensors are all dense float32."""
    work = copy.deepcopy(graph)
    for name, tensor in work.tensors.items():
        work.tensors[name] = Tensor.dense(name, tensor.to_dense())
    return work


def _relu_successor(graph, node):
    """The Linear that reads node's output through a ReLU, when it is its only reader."""
    outputs = {o.name for o in graph.outputs}

    def only_reader(value):
        readers = [n for n in graph.nodes if value in n.inputs]
        return readers[0] if len(readers) == 1 and value not in outputs else None

    value = node.outputs[0]
    if node.attrs.get("activation") != "relu":
        relu = only_reader(value)
        if relu is None or relu.op != "Relu":
            return None
        value = relu.outputs[0]
    successor = only_reader(value)
    if successor is None or successor.op != "Linear" or successor.inputs[0] != value:
        return None
    return successor


def _remove_dead_neurons(work, feeds, layers, prune_plan, block_plan=None):
    """Drop ReLU neurons that never activate on the calibration inputs: {layer: removed}.
    When the next layer prunes in 1x4 blocks, as many are dropped as leave it a
    multiple of 4 inputs (the others stay: their output is 0 on the calibration data)."""
    candidates = {}
    for node in layers:
        successor = _relu_successor(work, node)
        if prune_plan[node.name] is not None and successor is not None:
            candidates[node.name] = (node, successor)
    if not candidates:
        return {}
    seen = evaluate(work, feeds, capture=set(candidates))
    removed = {}
    kept_inputs = {}  # a successor already shrunk: which of its captured input columns remain
    for name, (node, successor) in candidates.items():
        weight = work.tensors[node.inputs[1]].to_dense()
        bias = work.tensors[node.inputs[2]].to_dense() if len(node.inputs) > 2 else 0
        x = seen[name][:, kept_inputs[name]] if name in kept_inputs else seen[name]
        pre = x @ weight.T + bias
        dead = pruning.dead_neurons(pre)
        if dead.all():
            dead[int(np.argmax(pre.max(axis=0)))] = False  # keep a layer of width >= 1
        if block_plan and block_plan.get(successor.name) == 4:
            surplus = (dead.size - int(dead.sum())) % 4  # kept neurons past a multiple of 4
            if surplus and int(dead.sum()) >= 4 - surplus:
                revive = 4 - surplus  # keep the dead neurons closest to activating
                dead[np.flatnonzero(dead)[np.argsort(-pre.max(axis=0)[dead], kind="stable")[:revive]]] = False
        if not dead.any():
            continue
        keep = ~dead
        work.tensors[node.inputs[1]] = Tensor.dense(node.inputs[1], weight[keep])
        if len(node.inputs) > 2:
            work.tensors[node.inputs[2]] = Tensor.dense(node.inputs[2], bias[keep])
        following = work.tensors[successor.inputs[1]].to_dense()
        work.tensors[successor.inputs[1]] = Tensor.dense(successor.inputs[1], following[:, keep])
        kept_inputs[successor.name] = keep
        removed[name] = int(dead.sum())
    return removed


# -- encodings ---------------------------------------------------------------------------------

def _index_dtype(cols):
    return np.uint16 if cols <= 65536 else np.uint32


def _indptr(mask):
    return np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.uint32)


def _bcsr4_tensor(name, weight, mask, mode):
    """mask kept or pruned in whole aligned groups of 4 columns (cols % 4 == 0)."""
    rows, cols = weight.shape
    values, scale = _values(weight, mode, name)
    blocks = mask.reshape(rows, cols // 4, 4).any(axis=2)
    block_rows, groups = np.nonzero(blocks)  # row-major: sorted, disjoint within a row
    arrays = {"indptr": _indptr(blocks), "indices": (4 * groups).astype(_index_dtype(cols)),
              "values": np.ascontiguousarray(values.reshape(rows, cols // 4, 4)[blocks].reshape(-1))}
    if scale is not None:
        arrays["scale"] = scale.astype(np.float32)
    return Tensor(name, (rows, cols), "bcsr4", arrays)


def _csr_structure(mask):
    rows, cols = np.nonzero(mask)  # row-major order, columns ascending within a row
    return _indptr(mask), cols.astype(_index_dtype(mask.shape[1]))


def _values(weight, mode, name):
    """Quantized values of a dense matrix: (values, per-row scale or None)."""
    if mode in ("int8", "int8-static"):
        return quant.int8_rows(weight)
    if mode == "fp16":
        return quant.to_fp16(weight, name), None
    return weight.astype(np.float32), None


def _dense_tensor(name, weight, mode):
    values, scale = _values(weight, mode, name)
    arrays = {"values": values}
    if scale is not None:
        arrays["scale"] = scale.astype(np.float32)
    return Tensor(name, tuple(weight.shape), "dense", arrays)


def _csr_tensor(name, weight, mask, mode):
    values, scale = _values(weight, mode, name)
    indptr, indices = _csr_structure(mask)
    arrays = {"indptr": indptr, "indices": indices, "values": np.ascontiguousarray(values[mask])}
    if scale is not None:
        arrays["scale"] = scale.astype(np.float32)
    return Tensor(name, tuple(weight.shape), "csr", arrays)


def _centroid_arrays(centroids, mode, name):
    if mode in ("int8", "int8-static"):
        q, scale = quant.int8_vector(centroids)
        return {"centroids": q, "scale": scale}
    if mode == "fp16":
        return {"centroids": quant.to_fp16(centroids, name)}
    return {"centroids": centroids.astype(np.float32)}


def _shared_tensor(name, shape, codes, centroid_arrays, bits, layout):
    """codes int [rows, cols], -1 where pruned (only for csr)."""
    if layout == "csr":
        mask = codes >= 0
        indptr, indices = _csr_structure(mask)
        arrays = {"indptr": indptr, "indices": indices,
                  "codes": codes[mask].astype(np.uint8)}
    else:
        arrays = {"codes": pack_bits(codes.astype(np.uint8), bits)}
    arrays.update(centroid_arrays)
    return Tensor(name, tuple(shape), layout, arrays, bits=bits)


# -- one layer ---------------------------------------------------------------------------------

def _refit_bias(x, target, weight, bias):
    if x is None:
        return bias
    return (np.asarray(target, np.float64) - x.astype(np.float64) @ weight.T.astype(np.float64)
            ).mean(axis=0).astype(np.float32)


def _share(name, weight, bias, mask, bits, mode, x, target, use_refit, has_bias, layout, huffman,
           relu=False):
    """k-means on the kept weights (+ centroid refit) stored as layout -> (tensor, bias).

    "codebook" for a pruned matrix pins one centroid at exactly 0 for the pruned
    weights: it costs a centroid but no indices, and with Huffman coding the long
    runs of the zero code shrink to about a bit per pair of weights.
    """
    k = 1 << bits
    energy = None if x is None else (x.astype(np.float64) ** 2).sum(axis=0)
    # weights on inputs with more energy matter more to the output: weight the means
    importance = None if energy is None else np.broadcast_to(energy[None, :], mask.shape)[mask]
    fixed_zero = layout == "codebook" and not mask.all()
    centroids, kept_codes = kmeans_1d(weight[mask], k, weights=importance, fixed_zero=fixed_zero)
    zero_at = int(np.flatnonzero(centroids == 0)[0]) if fixed_zero else None
    codes = np.full(mask.shape, -1, dtype=np.int64)
    codes[mask] = kept_codes
    if use_refit and FEEDBACK_ASSIGN:
        active = refitting.relu_active(x, target, weight, bias) if relu and RELU_ASSIGN else None
        codes, bias_fb = refitting.assign_with_feedback(x, mask, weight, bias, centroids,
                                                        fit_bias=has_bias, active=active)
        if has_bias:
            bias = bias_fb
    if use_refit:
        centroids, refit_bias = refitting.refit_centroids(x, target, codes, centroids, bias,
                                                          fixed=zero_at, rounds=2 if has_bias else 1)
        if has_bias:
            bias = refit_bias
    if fixed_zero:
        codes[~mask] = zero_at
    tensor = _shared_tensor(name, mask.shape, codes, _centroid_arrays(centroids, mode, name),
                            bits, layout)
    tensor.huffman = huffman
    return tensor, bias


def _block_scores(weight, x):
    """[rows, cols // 4]: each aligned group's L2 norm, or with calibration inputs
    the sum of its Wanda scores |w| * ||x_j||."""
    rows, cols = weight.shape
    if x is None:
        w = np.asarray(weight, dtype=np.float64).reshape(rows, cols // 4, 4)
        return np.sqrt((w ** 2).sum(axis=2))
    return pruning.scores(weight, x).reshape(rows, cols // 4, 4).sum(axis=2)


def _prune_mask(weight, x, mask, count, block):
    """The mask that prunes `count` weights (rounded to whole groups for block 4)."""
    if block == 1:
        score = np.where(mask, pruning.scores(weight, x), -1.0)  # once pruned, stays pruned
        return pruning.mask_by_count(score, count)
    groups = mask.reshape(mask.shape[0], -1, 4).any(axis=2)
    score = np.where(groups, _block_scores(weight, x), -1.0)
    kept = pruning.mask_by_count(score, int(round(count / 4)))
    return np.repeat(kept, 4, axis=1)


def _compress_layer(name, weight, bias, sparsity, bits, mode, x, target, refit, pruned_count,
                    relu=False, huffman=False, block=1):
    """-> (weight Tensor, float32 bias, effective dense weight).  block: 1 or 4 (the
    caller has checked that cols % 4 == 0 for 4)."""
    rows, cols = weight.shape
    has_bias = bias is not None
    bias = np.zeros(rows, np.float32) if bias is None else bias
    use_refit = refit and x is not None
    # 1. prune
    mask = np.ones((rows, cols), dtype=bool)
    if isinstance(sparsity, dict):
        schedule = [None]
    elif pruned_count and use_refit:
        # Gradual pruning (Zhu & Gupta 2017's cubic schedule), a refit after each step:
        # later steps rank the weights that the refit has already moved.
        schedule = [int(round(pruned_count * (1 - (1 - k / PRUNE_STEPS) ** 3)))
                    for k in range(1, PRUNE_STEPS + 1)]
    elif pruned_count:
        schedule = [pruned_count]
    else:
        schedule = []
    for step, count in enumerate(schedule):
        if count is None:
            mask = pruning.mask_by_threshold(weight, sparsity["threshold"])
            if block == 4:  # a group stays when any of its weights passes the threshold
                mask = np.repeat(mask.reshape(rows, -1, 4).any(axis=2), 4, axis=1)
        else:
            mask = _prune_mask(weight, x, mask, count, block)
        weight = np.where(mask, weight, np.float32(0))
        if use_refit and not mask.all():
            relu_fit = relu and step >= len(schedule) - RELU_STEPS
            weight, refit_bias = refitting.refit_rows(x, target, mask, weight, bias, relu=relu_fit,
                                                      fit_bias=has_bias)
            if has_bias:
                bias = refit_bias
    pruned = not mask.all()
    # 2. share, or quantize the kept values; then keep the cheapest encoding
    if bits:
        layouts = ("csr", "codebook") if pruned and bits >= 2 else ("csr",) if pruned else ("codebook",)
        options = [_share(name, weight, bias, mask, bits, mode, x, target, use_refit, has_bias,
                          layout, huffman, relu) for layout in layouts]
        tensor, bias = min(options, key=lambda option: stored_bytes(option[0]))
    else:
        candidates = [_dense_tensor(name, weight, mode)]
        if pruned and block == 4:
            candidates.append(_bcsr4_tensor(name, weight, mask, mode))
        elif pruned:
            candidates.append(_csr_tensor(name, weight, mask, mode))
        for candidate in candidates:
            candidate.huffman = huffman
        tensor = min(candidates, key=stored_bytes)
    effective = tensor.to_dense()
    if use_refit and has_bias and (bits or mode is not None):
        bias = _refit_bias(x, target, effective, bias)  # absorb the rounding's mean shift
    return tensor, (bias if has_bias else None), effective


def _feeds_relu(graph, node):
    """True when node's output only matters through a ReLU."""
    if node.attrs.get("activation") == "relu":
        return True
    readers = [n for n in graph.nodes if node.outputs[0] in n.inputs]
    outputs = {o.name for o in graph.outputs}
    return bool(readers) and all(r.op == "Relu" for r in readers) and node.outputs[0] not in outputs


# -- the pipeline ------------------------------------------------------------------------------

def compress(graph, prune=None, quantize=None, share_bits=None, huffman=False, calibration=None,
             prune_scope="layer", refit=True, seed=0, prune_block=None):
    """Compress every Linear and Conv2d layer of graph; see the module doc for the order of work.

    prune: None | 0 <= s < 1 | {"threshold": t} | {layer: s or {"threshold": t}}
    quantize: None | "fp16" | "int8" | "int8-static" (or {layer: mode})
    share_bits: None | 1..8 (or {layer: bits}); huffman: mark weight streams for Huffman coding
    calibration: float32 model inputs (or {input name: array}): Wanda scores, dead-neuron
    removal, least-squares refits (refit=True), static scales and the report's errors.
    prune_scope: "layer" (each layer reaches its sparsity) or "global" (one ranking).
    prune_block: None | 1 | 4 (or {layer: 1, 4 or None}): 4 prunes aligned groups of 4
    input columns per output row and stores the layer as bcsr4 (see the module doc).
    """
    with _one_blas_thread():
        return _compress(graph, prune, quantize, share_bits, huffman, calibration, prune_scope,
                         refit, seed, prune_block)


def _one_blas_thread():
    """The refits solve thousands of tiny systems; a multi-threaded BLAS spends more on
    waking its threads than on the work (measured 10x slower on a loaded 2-core box).
    threadpoolctl, when installed, pins BLAS to one thread for the call."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _compress(graph, prune, quantize, share_bits, huffman, calibration, prune_scope, refit, seed,
              prune_block=None):
    layers = [node for node in graph.nodes if node.op in LAYER_OPS]
    names = [node.name for node in layers]
    depthwise = {n.name for n in layers if n.op == "Conv2d" and _is_depthwise(graph, n)}
    prune_plan = _prune_plan(prune, names)
    block_plan = _block_plan(prune_block, names)
    quantize_plan = _quantize_plan(quantize, names)
    bits_plan = _bits_plan(share_bits, names)
    if prune_scope not in ("layer", "global"):
        raise OptionError(f"prune_scope must be 'layer' or 'global', got {prune_scope!r}")
    if prune_scope == "global" and not isinstance(prune, numbers.Real):
        raise OptionError(f"prune_scope='global' needs one sparsity number for prune, got {prune!r}")
    if not isinstance(huffman, bool):
        raise OptionError(f"huffman must be True or False, got {huffman!r}")
    feeds = _calibration_feeds(graph, calibration)
    static = [n for n, m in quantize_plan.items() if m == "int8-static"]
    if static and feeds is None:
        raise OptionError(f"quantize='int8-static' needs calibration data (layers {static})")
    if feeds is not None:
        feeds = _subsample(feeds, seed)

    work = _float_copy(graph)
    layers = [node for node in work.nodes if node.op in LAYER_OPS]
    linears = [node for node in layers if node.op == "Linear"]
    # group-1 convs calibrate on their im2col rows; grouped ones stay uncalibrated
    calibrated = [node.name for node in layers
                  if node.op == "Linear" or CALIBRATE_CONVS and node.attrs.get("group", 1) == 1]
    convs = {node.name: node for node in layers if node.op == "Conv2d" and node.name in calibrated}
    original_shapes = {n.name: graph.tensors[n.inputs[1]].shape for n in layers}
    original_bias = {n.name: (graph.tensors[n.inputs[2]].shape[0] if len(n.inputs) > 2 else 0)
                     for n in layers}
    removed = {}
    if feeds is not None:
        removed = _remove_dead_neurons(work, feeds, linears, prune_plan, block_plan)

    # uncalibrated (grouped) convs: only their report error, on the first images
    plain_convs = {node.name: node for node in layers
                   if node.op == "Conv2d" and node.name not in calibrated}
    reference = evaluate(work, feeds, capture=set(calibrated) | set(plain_convs)) \
        if feeds is not None else {}
    for n, node in plain_convs.items():
        if feeds is not None:
            per_image = _conv_pixels(node, work.tensors[node.inputs[1]], reference[n])
            reference[n] = reference[n][:-(-MAX_CONV_ROWS // per_image)]
    picks = {}   # conv: which im2col rows it is calibrated on (the same for every fit)
    pixels = {}  # conv: its output pixels per image
    for i, (n, node) in enumerate(convs.items()):
        if feeds is not None:
            weight = work.tensors[node.inputs[1]]
            pixels[n] = _conv_pixels(node, weight, reference[n])
            picks[n] = _conv_pick(node, weight, reference[n], seed + 1 + i)
            reference[n] = _conv_rows(node, weight, reference[n], picks[n])
    # a conv weight [out, in/group, kh, kw] is compressed as its matrix [out, in/group*kh*kw]
    weights = {n.name: _matrix(work, n) for n in layers}
    biases = {n.name: (work.tensors[n.inputs[2]].to_dense() if len(n.inputs) > 2 else None)
              for n in layers}
    targets = {n: reference[n] @ weights[n].T + (0 if biases[n] is None else biases[n])
               for n in calibrated} if feeds is not None else {}

    counts = {}
    for n in names:
        s = prune_plan[n]
        if isinstance(s, float) and (n not in depthwise or _named(prune, n)):
            counts[n] = int(round(s * weights[n].size))
    if prune_scope == "global" and prune:
        scores = {n: pruning.scores(weights[n], reference.get(n)) for n in names if n not in depthwise}
        if feeds is not None and GLOBAL_SCORE != "sum":   # the ablation, see the module doc
            for n in scores:
                if n in reference:
                    per_image = pixels.get(n, 1) if GLOBAL_SCORE == "image" else 1
                    scores[n] = scores[n] * np.sqrt(per_image / reference[n].shape[0])
        counts = pruning.global_counts(scores, float(prune))

    rows = []
    for node in layers:
        n = node.name
        mode = quantize_plan[n]
        relu = _feeds_relu(work, node)
        block, note = block_plan[n], None
        if block == 4 and weights[n].shape[1] % 4:
            block = 1
            note = (f"prune_block=4 needs a multiple of 4 inputs, this layer has "
                    f"{weights[n].shape[1]}: pruned unstructured")
        sparsity, bits = prune_plan[n], bits_plan[n]
        if n in depthwise and not _named(prune, n) and sparsity is not None:
            sparsity = None
        if n in depthwise and not _named(share_bits, n) and bits:
            bits = None
        if n in depthwise and (sparsity is None and prune_plan[n] is not None
                               or bits is None and bits_plan[n]):
            note = ("depthwise conv: not pruned or weight-shared (a pruned tap of a 1-channel "
                    "filter cannot be recovered by a refit; name the layer in a per-layer dict "
                    "to force it)")
        x = seen = None
        if feeds is not None and (n in calibrated and ERROR_FEEDBACK or mode == "int8-static"
                                  or n in plain_convs):
            seen = evaluate(work, feeds, capture={n})[n]   # the compressed model's input
        if feeds is not None and n in calibrated:
            x = seen if ERROR_FEEDBACK else reference[n]
            if n in convs and ERROR_FEEDBACK:
                x = _conv_rows(node, work.tensors[node.inputs[1]], x, picks[n])
        elif feeds is not None and n not in depthwise:   # (depthwise: no note, see above)
            why = "grouped conv" if CALIBRATE_CONVS else "conv"
            note = ((note + "; ") if note else "") + f"{why}: compressed without calibration (no refit)"
        tensor, bias, effective = _compress_layer(
            node.inputs[1], weights[n], biases[n], sparsity, bits, mode,
            x, targets.get(n), refit, counts.get(n, 0), relu=relu,
            huffman=huffman, block=block)
        tensor.huffman = huffman
        work.tensors[node.inputs[1]] = tensor
        if node.op == "Conv2d":     # the runtime and evaluate() restore the 4-D kernel from this
            node.attrs["kernel"] = [int(d) for d in original_shapes[n][1:]]
        bias_tensor = None
        if bias is not None:
            bias_values = quant.to_fp16(bias, node.inputs[2]) if mode == "fp16" else bias
            bias_tensor = Tensor.dense(node.inputs[2], bias_values, bias_values.dtype)
            work.tensors[node.inputs[2]] = bias_tensor
        if mode == "int8-static":
            node.attrs["input_scale"] = quant.activation_scale(seen)
        error = None
        if x is not None:
            # the layer's output as the next layer sees it: after the ReLU, if any
            out = x @ effective.T + (0 if bias_tensor is None else bias_tensor.to_dense())
            ref = targets[n]
            if relu:
                out, ref = np.maximum(out, 0), np.maximum(ref, 0)
            error = float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))
        elif feeds is not None and n in plain_convs:
            error = _conv_error(node, original_shapes[n], reference[n], weights[n], biases[n],
                                seen[:len(reference[n])], effective,
                                None if bias_tensor is None else bias_tensor.to_dense())
        before_shape = original_shapes[n]
        weight_count = int(np.prod(before_shape))
        before = 4 * (weight_count + original_bias[n])
        weight_bytes = stored_bytes(tensor)
        after = weight_bytes + (stored_bytes(bias_tensor) if bias_tensor is not None else 0)
        rows.append({
            "layer": n, "kind": _kind(node, before_shape),
            "shape": tuple(before_shape if node.op == "Conv2d" else tensor.shape),
            "original_shape": tuple(before_shape),
            "removed_neurons": removed.get(n, 0), "encoding": _describe(tensor),
            "sparsity": float((effective == 0).mean()) if effective.size else 0.0,
            "bits_per_weight": 8.0 * weight_bytes / max(weight_count, 1),
            "bytes_before": before, "bytes_after": after, "error": error, "note": note,
        })

    rows += _compress_embeddings(work, quantize, share_bits, huffman)

    settings = {"prune": prune, "quantize": quantize, "share_bits": share_bits,
                "huffman": huffman, "prune_scope": prune_scope,
                "calibration": feeds is not None, "refit": refit}
    if prune_block is not None:
        settings["prune_block"] = prune_block
    work.metadata = dict(work.metadata)
    work.metadata["compression"] = {k: (v if not isinstance(v, dict) else dict(v))
                                    for k, v in settings.items()}
    model_error = None
    if feeds is not None:
        original = evaluate(graph, feeds)
        compressed = evaluate(work, feeds)
        num = sum(float(np.sum((compressed[k] - original[k]) ** 2)) for k in original)
        den = sum(float(np.sum(original[k] ** 2)) for k in original)
        model_error = (num / den) ** 0.5 if den else 0.0
    work.validate()
    return CompressedModel(work, Report(rows, model_error, settings))


def _conv_error(node, shape, x_ref, weight, bias, x, effective, effective_bias):
    """Relative L2 error of an uncalibrated conv's output (after its fused activation):
    the compressed conv on the compressed model's input x against the float conv on
    the float model's input x_ref."""
    attrs = node.attrs
    options = dict(strides=attrs.get("strides", (1, 1)), pads=attrs.get("pads", (0, 0, 0, 0)),
                   dilations=attrs.get("dilations", (1, 1)), group=attrs.get("group", 1),
                   activation=attrs.get("activation"))
    ref = conv2d(x_ref, weight.reshape(shape), bias, **options)
    out = conv2d(x, effective.reshape(shape), effective_bias, **options)
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))


def _kind(node, shape):
    """"linear", or a conv's window and how it is grouped: "conv 3x3", "conv 3x3 /2"
    (stride 2), "dwconv 3x3" (depthwise), "conv 3x3 g4" (4 groups)."""
    if node.op != "Conv2d":
        return "linear"
    group = int(node.attrs.get("group", 1))
    depthwise = shape[1] == 1 and group == shape[0] and group > 1
    kind = ("dwconv" if depthwise else "conv") + f" {shape[2]}x{shape[3]}"
    strides = list(node.attrs.get("strides", (1, 1)))
    if strides != [1, 1]:
        kind += " /" + ("x".join(map(str, strides)) if strides[0] != strides[1] else str(strides[0]))
    if group > 1 and not depthwise:
        kind += f" g{group}"
    return kind

# -- embedding tables --------------------------------------------------------------------------

def _embedding_tables(graph):
    """{table name: Gather node} for each embedding lookup (a Gather of a constant 2-D
    table by run-time ids, axis 0) whose table nothing but lookups reads."""
    readers = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers.setdefault(name, []).append(node)
    tables = {}
    for node in graph.nodes:
        if node.op == "Gather" and len(node.inputs) == 2 and node.inputs[0] in graph.tensors \
                and node.inputs[1] not in graph.tensors and node.attrs.get("axis", 0) == 0 \
                and len(graph.tensors[node.inputs[0]].shape) == 2 \
                and all(r.op == "Gather" and r.inputs[0] == node.inputs[0] for r in readers[node.inputs[0]]):
            tables.setdefault(node.inputs[0], node)
    return tables


def _compress_embeddings(work, quantize, share_bits, huffman):
    """Encode each embedding table with the model-wide quantize / share_bits (a dict
    option names layers and leaves the tables float): share_bits -> codebook (k-means
    over the whole table; the runtime unpacks only the looked-up rows), else "int8" /
    "int8-static" -> dense int8 with one scale per row (per token), "fp16" -> dense fp16.
    Tables are never pruned.  Returns the report rows of the tables."""
    mode = quantize if isinstance(quantize, str) else None
    bits = share_bits if isinstance(share_bits, numbers.Integral) else None
    rows = []
    for name, node in _embedding_tables(work).items():
        if mode is None and not bits:
            continue
        table = work.tensors[name].to_dense()
        if bits:
            centroids, codes = kmeans_1d(table.reshape(-1), 1 << bits)
            tensor = _shared_tensor(name, table.shape, codes.reshape(table.shape),
                                    _centroid_arrays(centroids, mode, name), bits, "codebook")
        else:
            tensor = _dense_tensor(name, table, mode)
        tensor.huffman = huffman
        work.tensors[name] = tensor
        after = stored_bytes(tensor)
        rows.append({"layer": node.name, "shape": tuple(table.shape), "original_shape": tuple(table.shape),
                     "removed_neurons": 0, "encoding": _describe(tensor), "sparsity": 0.0,
                     "bits_per_weight": 8.0 * after / max(table.size, 1), "bytes_before": 4 * table.size,
                     "bytes_after": after, "error": None, "note": "embedding table (looked up by id)"})
    return rows


def _describe(tensor):
    arrays = tensor.arrays
    if tensor.encoding == "dense":
        kind = arrays["values"].dtype.name
    elif "codes" in arrays:
        kind = f"{tensor.bits}b {arrays['centroids'].dtype.name}"
    else:
        kind = arrays["values"].dtype.name
    return f"{tensor.encoding} {kind}" + (" +huff" if tensor.huffman else "")
