"""`edgerun demo`: train a LeNet-300-100-shaped MLP (or, with `--model cnn`, a small
CNN) on real handwritten digits, compress it several ways, and compare file size,
accuracy and latency.

The data (UCI optical digits, 8x8 pixels, see data/DIGITS.txt) ships inside the
package and the training is a few seconds of numpy, so the demo needs nothing
but numpy and fetches nothing.
"""
import os
import tempfile
import time
from importlib import resources

import numpy as np

HIDDEN = (300, 100)


def load_digits(test_fraction=0.25, seed=0):
    """(x_train, y_train, x_test, y_test): float32 pixels scaled to [0, 1], int labels."""
    with resources.files("edgerun").joinpath("data/digits.npz").open("rb") as f:
        data = np.load(f, allow_pickle=False)
        images, labels = data["images"], data["labels"]
    order = np.random.default_rng(seed).permutation(len(labels))
    images = images[order].astype(np.float32) / 16.0
    labels = labels[order].astype(np.int64)
    n_test = int(len(labels) * test_fraction)
    return images[n_test:], labels[n_test:], images[:n_test], labels[:n_test]


def _progress(iterable, description):
    try:
        from tqdm import tqdm
    except ImportError:
        print(f"{description} ...", flush=True)
        return iterable
    return tqdm(iterable, desc=description, leave=False)


class _Adam:
    """Adam (betas 0.9 / 0.999) over [[weight, bias], ...] layers, updated in place."""

    def __init__(self, params, lr):
        self.params, self.lr, self.step = params, lr, 0
        self.moments = [[np.zeros_like(p) for p in layer] for layer in params]
        self.velocity = [[np.zeros_like(p) for p in layer] for layer in params]

    def update(self, grads):
        """grads: [[d weight, d bias], ...] in the layout of params."""
        self.step += 1
        for i, layer_grads in enumerate(grads):
            for j, g in enumerate(layer_grads):
                m, v = self.moments[i][j], self.velocity[i][j]
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                update = self.lr * (m / (1 - 0.9 ** self.step)) / (np.sqrt(v / (1 - 0.999 ** self.step)) + 1e-8)
                self.params[i][j] -= update.astype(np.float32)


def train_mlp(x, y, hidden=HIDDEN, epochs=60, batch=64, lr=2e-3, seed=0):
    """Plain numpy Adam on softmax cross-entropy; returns [(W [out, in], b)] per layer."""
    rng = np.random.default_rng(seed)
    sizes = (x.shape[1],) + tuple(hidden) + (int(y.max()) + 1,)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append([rng.normal(0, np.sqrt(2.0 / fan_in), (fan_out, fan_in)).astype(np.float32),
                       np.zeros(fan_out, np.float32)])
    adam = _Adam(params, lr)
    for _ in _progress(range(epochs), "training the fp32 MLP"):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            idx = order[start:start + batch]
            activations = [x[idx]]
            for i, (w, b) in enumerate(params):
                z = activations[-1] @ w.T + b
                activations.append(np.maximum(z, 0) if i < len(params) - 1 else z)
            logits = activations[-1]
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1
            grad = p / len(idx)
            grads = [None] * len(params)
            for i in reversed(range(len(params))):
                w, b = params[i]
                grads[i] = [grad.T @ activations[i] + 1e-4 * w, grad.sum(axis=0)]
                if i:
                    grad = (grad @ w) * (activations[i] > 0)
            adam.update(grads)
    return [(w, b) for w, b in params]


# -- the CNN variant (`edgerun demo --model cnn`) ---------------------------------------------
# conv3x3(1->16) relu, conv3x3(16->32) relu, maxpool 2, conv3x3(32->64) relu, maxpool 2,
# flatten 256, fc 128 relu, fc 10: 57.5k parameters, all 3x3 convs padded to keep the size.
CNN_CHANNELS = (16, 32, 64)
CNN_POOL_AFTER = (False, True, True)
CNN_HIDDEN = 128


def _conv_forward(x, w, b):
    """3x3, stride 1, pad 1 conv as im2col @ W.T: (y NCHW, the im2col rows for backward)."""
    from edgerun.evaluate import im2col

    n, _, h, wd = x.shape
    cols, _, _ = im2col(x, 3, 3, pads=(1, 1, 1, 1))
    cols = cols.reshape(n * h * wd, -1)
    y = cols @ w.reshape(w.shape[0], -1).T + b
    return np.ascontiguousarray(y.reshape(n, h, wd, -1).transpose(0, 3, 1, 2)), cols


def _conv_backward(grad, cols, w, x_shape):
    """grad of a _conv_forward output -> (dx, dw, db); dx scatters the rows back (col2im)."""
    n, c, h, wd = x_shape
    g = grad.transpose(0, 2, 3, 1).reshape(n * h * wd, -1)
    dw = (g.T @ cols).reshape(w.shape)
    dcols = (g @ w.reshape(w.shape[0], -1)).reshape(n, h, wd, c, 3, 3)
    padded = np.zeros((n, c, h + 2, wd + 2), np.float32)
    for i in range(3):
        for j in range(3):
            padded[:, :, i:i + h, j:j + wd] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return padded[:, :, 1:-1, 1:-1], dw, g.sum(axis=0)


def _pool_forward(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _pool_backward(grad, x, y):
    """The gradient goes to the window's maximum (after a ReLU, tied windows are all
    zeros, whose gradient the ReLU drops anyway)."""
    up = lambda a: a.repeat(2, axis=2).repeat(2, axis=3)
    return up(grad) * (x == up(y))


def cnn_forward(params, x, keep=False):
    """params: [(w, b)] for the convs then the two fc layers; x [N, 1, 8, 8] -> logits."""
    tape = []
    h = x
    for (w, b), pool in zip(params[:len(CNN_CHANNELS)], CNN_POOL_AFTER):
        z, cols = _conv_forward(h, w, b)
        a = np.maximum(z, 0)
        p = _pool_forward(a) if pool else a
        tape.append((h.shape, cols, a, p))
        h = p
    flat = h.reshape(h.shape[0], -1)
    (w1, b1), (w2, b2) = params[len(CNN_CHANNELS):]
    hidden = np.maximum(flat @ w1.T + b1, 0)
    logits = hidden @ w2.T + b2
    return (logits, tape, flat, hidden) if keep else logits


def train_cnn(x, y, epochs=12, batch=32, lr=2e-3, seed=0):
    """Plain numpy Adam on softmax cross-entropy (the MLP's recipe on a CNN);
    x [N, 1, 8, 8].  Returns [(w, b)]: conv weights [out, in, 3, 3], fc [out, in]."""
    rng = np.random.default_rng(seed)
    params = []
    channels = (x.shape[1],) + CNN_CHANNELS
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        params.append([rng.normal(0, np.sqrt(2.0 / (9 * c_in)), (c_out, c_in, 3, 3)).astype(np.float32),
                       np.zeros(c_out, np.float32)])
    side = x.shape[2] // 2 ** sum(CNN_POOL_AFTER)
    flat = CNN_CHANNELS[-1] * side * side
    for fan_in, fan_out in ((flat, CNN_HIDDEN), (CNN_HIDDEN, int(y.max()) + 1)):
        params.append([rng.normal(0, np.sqrt(2.0 / fan_in), (fan_out, fan_in)).astype(np.float32),
                       np.zeros(fan_out, np.float32)])
    adam = _Adam(params, lr)
    for _ in _progress(range(epochs), "training the fp32 CNN"):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            idx = order[start:start + batch]
            logits, tape, flat_in, hidden = cnn_forward(params, x[idx], keep=True)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1
            grad = (p / len(idx)).astype(np.float32)
            (w1, _), (w2, _) = params[-2:]
            grads = [None] * len(params)
            grads[-1] = [grad.T @ hidden, grad.sum(axis=0)]
            grad = (grad @ w2) * (hidden > 0)
            grads[-2] = [grad.T @ flat_in, grad.sum(axis=0)]
            grad = (grad @ w1).reshape(tape[-1][3].shape)
            for i in reversed(range(len(CNN_CHANNELS))):
                x_shape, cols, a, pooled = tape[i]
                if CNN_POOL_AFTER[i]:
                    grad = _pool_backward(grad, a, pooled)
                grad = grad * (a > 0)
                grad, dw, db = _conv_backward(grad, cols, params[i][0], x_shape)
                grads[i] = [dw, db]
            for i, layer_grads in enumerate(grads):
                layer_grads[0] = layer_grads[0] + 1e-4 * params[i][0]
            adam.update(grads)
    return [(w, b) for w, b in params]


def build_cnn_graph(params, image_shape=(1, 8, 8)):
    """The edgerun Graph of train_cnn's network: Conv2d(+relu) / MaxPool / Flatten /
    Linear / Softmax nodes over dense float32 tensors."""
    from edgerun.graph import Graph, Node, Tensor, ValueInfo

    graph = Graph(inputs=[ValueInfo("pixels", (None,) + tuple(image_shape))])
    current = "pixels"

    def add(op, name, inputs, attrs):
        nonlocal current
        graph.nodes.append(Node(op, name, [current] + inputs, [f"{name}:0"], attrs))
        current = f"{name}:0"

    def constants(name, w, b):
        graph.tensors[f"{name}.weight"] = Tensor.dense(f"{name}.weight", w)
        graph.tensors[f"{name}.bias"] = Tensor.dense(f"{name}.bias", b)
        return [f"{name}.weight", f"{name}.bias"]

    for i, ((w, b), pool) in enumerate(zip(params[:len(CNN_CHANNELS)], CNN_POOL_AFTER)):
        add("Conv2d", f"conv{i + 1}", constants(f"conv{i + 1}", w, b),
            {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1,
             "activation": "relu"})
        if pool:
            add("MaxPool", f"pool{i + 1}", [], {"kernel_shape": [2, 2], "strides": [2, 2],
                                                "pads": [0, 0, 0, 0]})
    add("Flatten", "flatten", [], {"axis": 1})
    fcs = params[len(CNN_CHANNELS):]
    for i, (w, b) in enumerate(fcs):
        add("Linear", f"fc{i + 1}", constants(f"fc{i + 1}", w, b),
            {"activation": "relu" if i < len(fcs) - 1 else None})
    add("Softmax", "softmax", [], {"axis": -1})
    graph.nodes[-1].outputs = ["probabilities"]
    graph.outputs = [ValueInfo("probabilities", (None, fcs[-1][0].shape[0]))]
    graph.validate()
    return graph


def build_graph(layers):
    from edgerun.graph import GraphBuilder

    builder = GraphBuilder("pixels", features=layers[0][0].shape[1])
    for i, (w, b) in enumerate(layers):
        last = i == len(layers) - 1
        builder.linear(w, b, activation=None if last else "relu", name=f"fc{i + 1}")
    builder.softmax()
    return builder.build("probabilities")


CONFIGS = [
    ("fp32", {}),
    ("fp16", {"quantize": "fp16"}),
    ("int8", {"quantize": "int8"}),
    ("int8, 4-bit shared", {"quantize": "int8", "share_bits": 4}),
    ("pruned 90%, int8", {"prune": 0.9, "quantize": "int8"}),
    # 1x4 blocks run ~3x faster than unstructured CSR at batch 1, but a layer as
    # small as 10x100 keeps too few blocks at 90 %: 80 % holds the accuracy here.
    ("pruned 80% in 1x4 blocks, int8", {"prune": 0.8, "prune_block": 4, "quantize": "int8"}),
    # Deep Compression: prune (90 % of all weights, where they matter least
    # globally), share the survivors' values through a 5-bit codebook, Huffman-code
    # the streams; calibration refits keep the accuracy.
    ("pruned 90%, 5-bit shared, Huffman", {"prune": 0.9, "prune_scope": "global", "share_bits": 5,
                                           "huffman": True}),
]


# The CNN's convs are calibrated on their im2col rows like the Linear layers
# (compress/pipeline.py), so the same recipe holds the accuracy.  Global pruning
# spares conv1 (9 weights a channel) and prunes the 256x128 fc1 hardest; 85 % rather
# than the MLP's 90 %: a CNN's 3x3 filters carry more per weight (docs/ACCURACY.md).
CNN_HEADLINE = "pruned 85%, 4-bit shared, int8, Huffman"
CNN_CONFIGS = [
    ("fp32", {}),
    ("int8", {"quantize": "int8"}),
    ("pruned 50%, int8", {"prune": 0.5, "quantize": "int8"}),
    ("int8, 4-bit shared", {"quantize": "int8", "share_bits": 4}),
    (CNN_HEADLINE, {"prune": 0.85, "prune_scope": "global", "share_bits": 4, "quantize": "int8",
                    "huffman": True}),
]
MODELS = ("mlp", "cnn")


def _latency_us(function, x, repeats=300):
    function(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def run(workdir=None, epochs=None, configs=None, out=print, model="mlp", seed=0):
    """Train (model "mlp" or "cnn", seeded), compress each way, measure; returns the
    table rows (also printed).  epochs and configs default to the model's own."""
    import edgerun
    from edgerun.errors import OptionError

    if model not in MODELS:
        raise OptionError(f"demo model must be one of {MODELS}, got {model!r}")
    x_train, y_train, x_test, y_test = load_digits()
    if model == "cnn":
        x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
        layers = train_cnn(x_train, y_train, epochs=epochs or 12, seed=seed)
        graph = build_cnn_graph(layers)
        configs = CNN_CONFIGS if configs is None else configs

        def numpy_forward(x):
            return cnn_forward(layers, x)

        shape = (f"CNN conv3x3 1-{'-'.join(map(str, CNN_CHANNELS))} (2 max-pools), "
                 f"fc {CNN_HIDDEN}-10")
    else:
        layers = train_mlp(x_train, y_train, epochs=epochs or 60, seed=seed)
        graph = build_graph(layers)
        configs = CONFIGS if configs is None else configs

        def numpy_forward(x):
            for i, (w, b) in enumerate(layers):
                x = x @ w.T + b
                if i < len(layers) - 1:
                    x = np.maximum(x, 0)
            return x

        shape = f"MLP 64-{'-'.join(map(str, HIDDEN))}-10"
    # the baseline: 4 bytes per parameter (weights and biases), as an fp32 ONNX file holds them
    fp32_bytes = sum(w.nbytes + b.nbytes for w, b in layers)
    reference_accuracy = float((numpy_forward(x_test).argmax(1) == y_test).mean())
    numpy_us = _latency_us(numpy_forward, x_test[:1])
    info = edgerun.cpu_info()
    out(f"edgerun demo: {len(y_train)} training / {len(y_test)} held-out digits, "
        f"{shape}, {fp32_bytes / 1024:.1f} KiB of fp32 weights")
    out(f"backend: {info['backend']}, kernels: "
        + ", ".join(f"{op}={v}" for op, v in sorted(info["selected"].items())))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = workdir or tmp
        for label, options in _progress(configs, "compressing"):
            compressed = edgerun.compress(graph, calibration=x_train, **options)
            path = os.path.join(workdir, label.replace(" ", "_").replace(",", "").replace("%", "")
                                + ".edgerun")
            compressed.save(path)
            session = edgerun.load(path)
            accuracy = float((session.run(x_test).argmax(1) == y_test).mean())
            latency = _latency_us(session.run, x_test[:1])
            size = os.path.getsize(path)
            rows.append({"model": label, "file_bytes": size, "ratio": fp32_bytes / size,
                         "accuracy": accuracy, "delta": accuracy - reference_accuracy,
                         "latency_us": latency, "speedup": numpy_us / latency,
                         "kernels": sorted({kind for _, kind in session.layers}),
                         "report": compressed.report(), "fp32_accuracy": reference_accuracy})
    out("")
    width = max([36] + [len(r["model"]) for r in rows])
    out(f"{'model':{width}} {'file':>9} {'smaller':>8} {'accuracy':>9} {'vs fp32':>8} "
        f"{'batch-1 latency':>16}  kernels")
    out(f"{'numpy fp32 (weights only)':{width}} {fp32_bytes:>8}B {1:>7.1f}x {reference_accuracy:>9.2%} "
        f"{'':>8} {numpy_us:>13.1f} us  numpy matmul")
    for r in rows:
        out(f"{r['model']:{width}} {r['file_bytes']:>8}B {r['ratio']:>7.1f}x {r['accuracy']:>9.2%} "
            f"{r['delta'] * 100:>+7.2f}p {r['latency_us']:>13.1f} us  {', '.join(r['kernels'])}")
    out("")
    out("'smaller' is fp32 weight bytes / whole file bytes (header and biases included); "
        "latency is the median of 300 single-image runs, one thread.")
    if model == "cnn" and rows:
        out("")
        out(f"per layer, {rows[-1]['model']}:")
        out(str(rows[-1]["report"]))
    return rows
