"""`edgerun demo --model cnn`: a small CNN trained in numpy on the bundled digits,
compressed with calibrated pruning + 4-bit sharing + int8 + Huffman: the whole
.edgerun file (header included) >= 20x smaller than its fp32 parameters (4 bytes
each, weights and biases, as demo.py measures the MLP) within 1 point of the fp32
accuracy on the 449 held-out digits.  Training is seeded, so this is deterministic."""
import numpy as np
import pytest

from edgerun import demo
from edgerun.cli import main
from edgerun.errors import OptionError
from edgerun.evaluate import evaluate


def test_cnn_demo_meets_the_compression_target(tmp_path):
    lines = []
    configs = [c for c in demo.CNN_CONFIGS if c[0] in ("fp32", demo.CNN_HEADLINE)]
    rows = demo.run(workdir=str(tmp_path), out=lines.append, model="cnn", configs=configs)
    text = "\n".join(lines)
    assert "CNN conv3x3 1-16-32-64" in text and "per layer, " + demo.CNN_HEADLINE in text
    fp32, deep = rows
    assert fp32["fp32_accuracy"] >= 0.97            # the float CNN itself is good
    assert fp32["delta"] == 0
    assert deep["ratio"] >= 20
    assert deep["delta"] >= -0.01
    report = deep["report"]
    convs = [r for r in report.rows if r["layer"].startswith("conv")]
    assert len(convs) == 3 and all(r["error"] is not None and r["note"] is None for r in convs)
    assert all("4b int8 +huff" in r["encoding"] for r in report.rows)
    assert {"csr"} <= {r["encoding"].split()[0] for r in report.rows}
    assert any(kind.startswith("spmm_csr_s8") or kind.startswith("codebook_s8") for kind in deep["kernels"])
    assert "conv2" in str(report) and "32x16x3x3" in str(report)


def test_cnn_training_is_deterministic_and_the_graph_matches_numpy():
    x_train, y_train, x_test, _ = demo.load_digits()
    x_train = x_train[:256].reshape(-1, 1, 8, 8)
    first = demo.train_cnn(x_train, y_train[:256], epochs=1, seed=3)
    second = demo.train_cnn(x_train, y_train[:256], epochs=1, seed=3)
    for (w1, b1), (w2, b2) in zip(first, second):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
    assert [w.shape for w, _ in first] == [(16, 1, 3, 3), (32, 16, 3, 3), (64, 32, 3, 3), (128, 256), (10, 128)]
    graph = demo.build_cnn_graph(first)
    x = x_test[:20].reshape(-1, 1, 8, 8)
    logits = demo.cnn_forward(first, x)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(evaluate(graph, x)["probabilities"], e / e.sum(axis=1, keepdims=True),
                               rtol=1e-4, atol=1e-6)


def test_cnn_backward_matches_finite_differences():
    """The hand-written conv backward is the gradient of the forward: the loss
    sum(conv(x, w, b) * upstream) is linear in each argument, so a central
    difference with a unit step is exact (up to float32 rounding)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    upstream = rng.standard_normal((2, 5, 4, 5)).astype(np.float32)

    def loss(x, w, b):
        return float((demo._conv_forward(x, w, b)[0].astype(np.float64) * upstream).sum())

    _, cols = demo._conv_forward(x, w, b)
    dx, dw, db = demo._conv_backward(upstream, cols, w, x.shape)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    for value, analytic in ((x, dx), (w, dw), (b, db)):
        for idx in np.ndindex(value.shape):
            up, down = value.copy(), value.copy()
            up[idx] += 1
            down[idx] -= 1
            plus = loss(*[up if value is v else v for v in (x, w, b)])
            minus = loss(*[down if value is v else v for v in (x, w, b)])
            assert analytic[idx] == pytest.approx((plus - minus) / 2, rel=1e-4, abs=1e-4), idx


def test_max_pool_backward_routes_to_the_window_maximum():
    x = np.random.default_rng(1).permutation(32).astype(np.float32).reshape(1, 2, 4, 4)
    pooled = demo._pool_forward(x)
    upstream = np.arange(1, 9, dtype=np.float32).reshape(1, 2, 2, 2)
    grad = demo._pool_backward(upstream, x, pooled)
    expected = np.zeros_like(x)
    for c, i, j in np.ndindex(2, 2, 2):
        window = x[0, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
        di, dj = np.unravel_index(np.argmax(window), (2, 2))
        assert pooled[0, c, i, j] == window.max()
        expected[0, c, 2 * i + di, 2 * j + dj] = upstream[0, c, i, j]
    np.testing.assert_array_equal(grad, expected)


def test_demo_refuses_an_unknown_model():
    with pytest.raises(OptionError, match="mlp"):
        demo.run(model="transformer")


def test_cli_demo_takes_the_model(monkeypatch):
    seen = {}
    monkeypatch.setattr(demo, "run", lambda **kwargs: seen.update(kwargs))
    main(["demo", "--model", "cnn", "--epochs", "3", "--seed", "2"])
    assert seen == {"epochs": 3, "model": "cnn", "seed": 2}
