"""edgerun.compress on small random MLPs: each technique, each encoding, each error."""
import copy
import warnings

import numpy as np
import pytest

import edgerun
from edgerun import OptionError
from edgerun.compress.report import stored_bytes
from edgerun.compress.share import kmeans_1d
from edgerun.evaluate import evaluate
from edgerun.graph import GraphBuilder
from edgerun.packing import row_bytes, unpack_bits

SIZES = (24, 48, 40, 10)
NAMES = ["linear_1", "linear_2", "linear_3"]


def make_mlp(rng, sizes=SIZES, scales=None, softmax=True):
    b = GraphBuilder("x", features=sizes[0])
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        scale = (scales[i] if scales else 1.0) / np.sqrt(n_in)
        w = (rng.normal(size=(n_out, n_in)) * scale).astype(np.float32)
        bias = (rng.normal(size=n_out) * 0.1).astype(np.float32)
        b.linear(w, bias, activation="relu" if i < len(sizes) - 2 else None)
    if softmax:
        b.softmax()
    return b.build()


@pytest.fixture
def mlp(rng):
    return make_mlp(rng)


@pytest.fixture
def calib(rng):
    return rng.normal(size=(400, SIZES[0])).astype(np.float32)


def weight(graph, layer):
    return graph.tensors[f"{layer}.weight"]


def output(graph, x):
    return evaluate(graph, {"x": x})[graph.outputs[0].name]


def logits_graph(graph):
    """The same graph without its final Softmax, to compare raw outputs."""
    g = copy.deepcopy(graph)
    g.nodes = g.nodes[:-1]
    g.outputs[0].name = g.nodes[-1].outputs[0]
    return g


# -- pruning -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.73, 0.95])
def test_each_layer_reaches_its_sparsity(mlp, sparsity):
    cm = edgerun.compress(mlp, prune=sparsity)
    for layer in NAMES:
        w = weight(cm.graph, layer).to_dense()
        assert int((w == 0).sum()) == round(sparsity * w.size)


def test_pruning_keeps_the_largest_magnitudes_unchanged(mlp):
    cm = edgerun.compress(mlp, prune=0.6)
    for layer in NAMES:
        before = weight(mlp, layer).to_dense()
        after = weight(cm.graph, layer).to_dense()
        kept = after != 0
        np.testing.assert_array_equal(after[kept], before[kept])
        assert np.abs(before[kept]).min() >= np.abs(before[~kept]).max()


def test_global_pruning_reaches_the_model_sparsity_with_per_layer_shares(rng):
    # the first layer's weights are 4x larger, so one ranking prunes it less
    graph = make_mlp(rng, scales=[4.0, 1.0, 1.0])
    cm = edgerun.compress(graph, prune=0.7, prune_scope="global")
    dense = [weight(cm.graph, layer).to_dense() for layer in NAMES]
    total = sum(w.size for w in dense)
    assert sum(int((w == 0).sum()) for w in dense) == round(0.7 * total)
    first, second = [(w == 0).mean() for w in dense[:2]]
    assert first < 0.5 < second


def test_threshold_pruning_for_all_layers_and_per_layer(mlp):
    cm = edgerun.compress(mlp, prune={"threshold": 0.1})
    for layer in NAMES:
        before = weight(mlp, layer).to_dense()
        np.testing.assert_array_equal(weight(cm.graph, layer).to_dense(),
                                      np.where(np.abs(before) > 0.1, before, 0))
    cm = edgerun.compress(mlp, prune={"linear_2": {"threshold": 0.2}, "linear_3": 0.5})
    np.testing.assert_array_equal(weight(cm.graph, "linear_1").to_dense(),
                                  weight(mlp, "linear_1").to_dense())
    w2 = weight(mlp, "linear_2").to_dense()
    np.testing.assert_array_equal(weight(cm.graph, "linear_2").to_dense(),
                                  np.where(np.abs(w2) > 0.2, w2, 0))
    assert (weight(cm.graph, "linear_3").to_dense() == 0).sum() == 200


def test_calibration_scores_prune_weights_on_silent_inputs_first(mlp, calib):
    # input column 0 is always zero: |w| * ||x|| is 0 there, whatever |w| is
    calib = calib.copy()
    calib[:, 0] = 0
    cm = edgerun.compress(mlp, prune=0.1, calibration=calib, refit=False)
    w = weight(cm.graph, "linear_1").to_dense()
    assert (w[:, 0] == 0).all()


def test_removing_dead_neurons_keeps_outputs_and_shrinks_layers(rng):
    graph = make_mlp(rng, softmax=False)
    x = np.abs(rng.normal(size=(200, SIZES[0]))).astype(np.float32)  # inputs >= 0
    w1 = weight(graph, "linear_1").arrays["values"]
    dead = [3, 17, 40]
    w1[dead] = -np.abs(w1[dead])              # negative weights on positive inputs ...
    graph.tensors["linear_1.bias"].arrays["values"][dead] = -1.0   # ... never exceed 0
    original = output(graph, x)
    cm = edgerun.compress(graph, prune=0.0, calibration=x)
    assert weight(cm.graph, "linear_1").shape == (SIZES[1] - 3, SIZES[0])
    assert cm.graph.tensors["linear_1.bias"].shape == (SIZES[1] - 3,)
    assert weight(cm.graph, "linear_2").shape[1] == SIZES[1] - 3
    assert cm.report().rows[0]["removed_neurons"] == 3
    np.testing.assert_allclose(output(cm.graph, x), original, rtol=1e-5, atol=1e-5)
    # the input graph is left as it was
    assert weight(graph, "linear_1").shape == (SIZES[1], SIZES[0])


def test_dead_neurons_behind_a_separate_relu_node_are_removed(rng):
    b = GraphBuilder("x", features=8)
    w1 = rng.normal(size=(6, 8)).astype(np.float32)
    w1[2] = -np.abs(w1[2])
    b.linear(w1, np.full(6, 0.1, np.float32))
    b.graph.tensors["linear_1.bias"].arrays["values"][2] = -1
    b.relu()
    b.linear(rng.normal(size=(3, 6)).astype(np.float32))
    graph = b.build()
    x = np.abs(rng.normal(size=(50, 8))).astype(np.float32)
    cm = edgerun.compress(graph, prune=0.0, calibration=x)
    assert weight(cm.graph, "linear_1").shape == (5, 8)
    assert weight(cm.graph, "linear_3").shape == (3, 5)
    np.testing.assert_allclose(output(cm.graph, x), output(graph, x), rtol=1e-5, atol=1e-5)


# -- weight sharing ----------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
def test_codebook_size_is_respected(mlp, bits):
    cm = edgerun.compress(mlp, share_bits=bits)
    for layer in NAMES:
        t = weight(cm.graph, layer)
        assert t.encoding == "codebook" and t.bits == bits
        assert t.arrays["centroids"].shape == (2 ** bits,)
        rows, cols = t.shape
        assert t.arrays["codes"].shape == (rows, row_bytes(cols, bits))
        assert int(unpack_bits(t.arrays["codes"], bits, cols).max()) < 2 ** bits
        assert len(np.unique(t.to_dense())) <= 2 ** bits


def test_shared_and_pruned_codes_stay_below_the_codebook_size(mlp, calib):
    # 5-bit codes: csr (1 + 2 bytes per nonzero) beats a dense codebook at 90% sparsity
    cm = edgerun.compress(mlp, prune=0.9, share_bits=5, calibration=calib)
    for layer in NAMES[:2]:
        t = weight(cm.graph, layer)
        assert t.encoding == "csr" and t.bits == 5
        assert t.arrays["codes"].dtype == np.uint8 and int(t.arrays["codes"].max()) < 32
        assert t.arrays["centroids"].shape == (32,)
        w = t.to_dense()
        assert len(np.unique(w[w != 0])) <= 32


def test_kmeans_starts_linear_and_respects_a_pinned_zero():
    values = np.concatenate([np.full(50, -1.0), np.full(30, 0.5), np.full(5, 3.0)])
    centroids, codes = kmeans_1d(values, 3)
    np.testing.assert_allclose(centroids, [-1.0, 0.5, 3.0])
    np.testing.assert_array_equal(centroids[codes], values)
    centroids, codes = kmeans_1d(values, 4, fixed_zero=True)
    assert 0.0 in centroids and np.all(np.diff(centroids) > 0)
    assert codes.max() < 4


def test_kmeans_weights_pull_a_centroid():
    values = np.array([0.0, 1.0])
    plain, _ = kmeans_1d(values, 1)
    weighted, _ = kmeans_1d(values, 1, weights=np.array([1.0, 3.0]))
    assert plain[0] == pytest.approx(0.5) and weighted[0] == pytest.approx(0.75)


# -- quantization ------------------------------------------------------------------------------

def test_int8_is_symmetric_per_row_within_127(mlp):
    cm = edgerun.compress(mlp, quantize="int8")
    for layer in NAMES:
        t = weight(cm.graph, layer)
        values, scale = t.arrays["values"], t.arrays["scale"]
        assert t.encoding == "dense" and values.dtype == np.int8
        assert scale.dtype == np.float32 and scale.shape == (t.shape[0],)
        assert values.min() >= -127 and values.max() <= 127
        assert (np.abs(values).max(axis=1) == 127).all()
        w = weight(mlp, layer).to_dense()
        assert np.all(np.abs(values * scale[:, None] - w) <= scale[:, None] * 0.5001)
        assert cm.graph.tensors[f"{layer}.bias"].arrays["values"].dtype == np.float32


def test_fp16_round_trips_weights_and_biases(mlp):
    cm = edgerun.compress(mlp, quantize="fp16")
    for layer in NAMES:
        w = weight(mlp, layer).to_dense()
        t = weight(cm.graph, layer)
        assert t.arrays["values"].dtype == np.float16
        np.testing.assert_array_equal(t.to_dense(), w.astype(np.float16).astype(np.float32))
        assert cm.graph.tensors[f"{layer}.bias"].arrays["values"].dtype == np.float16


def test_fp16_out_of_range_is_an_option_error(rng):
    graph = make_mlp(rng, scales=[1e6, 1, 1])
    with pytest.raises(OptionError, match="fp16"):
        edgerun.compress(graph, quantize="fp16")


def test_int8_static_stores_calibrated_input_scales(mlp, calib):
    cm = edgerun.compress(mlp, quantize="int8-static", calibration=calib)
    seen = evaluate(cm.graph, {"x": calib}, capture=set(NAMES))
    for node in cm.graph.nodes:
        if node.op == "Linear":
            assert node.attrs["input_scale"] == pytest.approx(np.abs(seen[node.name]).max() / 127,
                                                              rel=1e-5)
            assert weight(cm.graph, node.name).arrays["values"].dtype == np.int8
    assert "input_scale" not in mlp.nodes[0].attrs


def test_per_layer_dicts(mlp):
    cm = edgerun.compress(mlp, quantize={"linear_1": "int8", "linear_3": "fp16"},
                          share_bits={"linear_2": 2}, prune={"linear_3": 0.5})
    assert weight(cm.graph, "linear_1").arrays["values"].dtype == np.int8
    assert weight(cm.graph, "linear_2").encoding == "codebook"
    assert weight(cm.graph, "linear_2").bits == 2
    assert weight(cm.graph, "linear_2").arrays["centroids"].dtype == np.float32
    w3 = weight(cm.graph, "linear_3")
    assert (w3.to_dense() == 0).sum() == 200
    assert w3.to_dense().dtype == np.float32 and w3.arrays["values"].dtype == np.float16


# -- options -----------------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    (dict(prune=1.0), "0 <= s < 1"),
    (dict(prune=-0.1), "0 <= s < 1"),
    (dict(prune=True), "0 <= s < 1"),
    (dict(prune={"threshold": -1}), "threshold"),
    (dict(prune={"linear_9": 0.5}), "linear_9"),
    (dict(share_bits=0), "1..8"),
    (dict(share_bits=9), "1..8"),
    (dict(share_bits=2.5), "1..8"),
    (dict(share_bits={"linear_1": 4, "nope": 3}), "nope"),
    (dict(quantize="int4"), "int4"),
    (dict(quantize={"linear_0": "int8"}), "linear_0"),
    (dict(quantize="int8-static"), "calibration"),
    (dict(prune_scope="row"), "prune_scope"),
    (dict(prune={"linear_1": 0.5}, prune_scope="global"), "global"),
    (dict(huffman="yes"), "huffman"),
    (dict(calibration=np.zeros((4, 5), np.float32)), "calibration"),
])
def test_bad_options_raise_option_error(mlp, options, message):
    with pytest.raises(OptionError, match=message):
        edgerun.compress(mlp, **options)
    assert issubclass(OptionError, edgerun.EdgerunError)


# -- encodings ---------------------------------------------------------------------------------

def test_sparse_float_weights_go_to_csr_and_dense_ones_stay_dense(mlp):
    t = weight(edgerun.compress(mlp, prune=0.9).graph, "linear_2")
    assert t.encoding == "csr"
    assert t.arrays["indptr"].dtype == np.uint32 and t.arrays["indptr"].shape == (41,)
    assert t.arrays["indices"].dtype == np.uint16
    assert t.arrays["values"].dtype == np.float32
    # 30% sparse: 0.7 * (4 + 2) bytes per weight in CSR is more than 4 dense
    assert weight(edgerun.compress(mlp, prune=0.3).graph, "linear_2").encoding == "dense"


def test_sparse_int8_csr_has_row_scales(mlp):
    t = weight(edgerun.compress(mlp, prune=0.9, quantize="int8").graph, "linear_2")
    assert t.encoding == "csr" and t.arrays["values"].dtype == np.int8
    assert t.arrays["scale"].shape == (40,)
    assert np.abs(t.arrays["values"].astype(int)).max() == 127


def test_shared_int8_centroids_have_one_scale(mlp):
    t = weight(edgerun.compress(mlp, share_bits=4, quantize="int8").graph, "linear_1")
    assert t.encoding == "codebook"
    assert t.arrays["centroids"].dtype == np.int8 and t.arrays["centroids"].min() >= -127
    assert t.arrays["scale"].shape == (1,) and t.arrays["scale"].dtype == np.float32
    t = weight(edgerun.compress(mlp, share_bits=4, quantize="fp16").graph, "linear_1")
    assert t.arrays["centroids"].dtype == np.float16


def test_mildly_pruned_shared_weights_use_a_codebook_with_a_zero_centroid(mlp):
    cm = edgerun.compress(mlp, prune=0.3, share_bits=4)
    t = weight(cm.graph, "linear_2")
    assert t.encoding == "codebook"
    assert 0.0 in t.arrays["centroids"]
    assert (t.to_dense() == 0).sum() >= round(0.3 * t.size)


def test_wide_layers_use_u32_indices(rng):
    b = GraphBuilder("x", features=70000)
    b.linear(rng.normal(size=(2, 70000)).astype(np.float32))
    cm = edgerun.compress(b.build(), prune=0.9)
    t = weight(cm.graph, "linear_1")
    assert t.encoding == "csr" and t.arrays["indices"].dtype == np.uint32


def test_huffman_marks_weight_tensors_only(mlp):
    cm = edgerun.compress(mlp, prune=0.8, share_bits=4, huffman=True)
    for layer in NAMES:
        assert weight(cm.graph, layer).huffman
        assert not cm.graph.tensors[f"{layer}.bias"].huffman
    assert not weight(edgerun.compress(mlp, prune=0.8).graph, "linear_1").huffman


def test_compressed_graph_is_valid_and_the_input_is_untouched(mlp):
    before = {name: t.to_dense().copy() for name, t in mlp.tensors.items()}
    cm = edgerun.compress(mlp, prune=0.5, share_bits=3, quantize="int8")
    cm.graph.validate()
    for name, values in before.items():
        assert mlp.tensors[name].encoding == "dense"
        np.testing.assert_array_equal(mlp.tensors[name].to_dense(), values)
    assert cm.graph.metadata["compression"]["share_bits"] == 3


# -- accuracy ----------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [dict(prune=0.8), dict(share_bits=3),
                                     dict(prune=0.8, share_bits=4, quantize="int8")])
def test_refit_reduces_the_output_error(mlp, calib, options):
    with_refit = edgerun.compress(mlp, calibration=calib, **options).report()
    without = edgerun.compress(mlp, calibration=calib, refit=False, **options).report()
    assert with_refit.error < without.error
    assert with_refit.rows[-1]["error"] < without.rows[-1]["error"]


def test_mild_settings_stay_close_to_the_original(mlp, calib, rng):
    x = rng.normal(size=(100, SIZES[0])).astype(np.float32)
    reference = output(logits_graph(mlp), x)

    def error(**options):
        y = output(logits_graph(edgerun.compress(mlp, **options).graph), x)
        return np.linalg.norm(y - reference) / np.linalg.norm(reference)

    for options in (dict(quantize="fp16"), dict(quantize="int8"), dict(share_bits=8),
                    dict(share_bits=8, quantize="int8", calibration=calib)):
        assert error(**options) < 0.03, options
    # random Gaussian weights have few small ones: 20% pruning costs ~10% without data;
    # the calibrated refit must do better on inputs it has not seen
    plain = error(prune=0.2, quantize="int8")
    assert error(prune=0.2, quantize="int8", calibration=calib) < plain < 0.15


# -- report ------------------------------------------------------------------------------------

def test_report_ratio_matches_its_byte_sums(mlp, calib):
    cm = edgerun.compress(mlp, prune=0.8, share_bits=4, huffman=True, calibration=calib)
    report = cm.report()
    assert [r["layer"] for r in report.rows] == NAMES
    for row, (n_in, n_out) in zip(report.rows, zip(SIZES[:-1], SIZES[1:])):
        assert row["bytes_before"] == 4 * (n_out * n_in + n_out)
        t = weight(cm.graph, row["layer"])
        assert row["bytes_after"] == stored_bytes(t) + stored_bytes(cm.graph.tensors[f"{row['layer']}.bias"])
        assert row["error"] is not None and row["sparsity"] >= 0.8
    before = sum(r["bytes_before"] for r in report.rows)
    after = sum(r["bytes_after"] for r in report.rows)
    assert report.ratio == pytest.approx(before / after)
    text = str(report)
    assert all(name in text for name in NAMES) and "ratio" in text


def test_report_without_calibration_has_no_errors(mlp):
    report = edgerun.compress(mlp, quantize="int8").report()
    assert report.error is None and all(r["error"] is None for r in report.rows)
    assert report.ratio == pytest.approx(sum(4 * (o * i + o) for i, o in zip(SIZES[:-1], SIZES[1:]))
                                         / sum(o * i + 4 * o + 4 * o for i, o in zip(SIZES[:-1], SIZES[1:])))
    assert "-" in str(report)


def test_huffman_estimate_never_exceeds_the_raw_size(mlp):
    cm = edgerun.compress(mlp, prune=0.95, share_bits=2, huffman=True)
    for layer in NAMES:
        t = weight(cm.graph, layer)
        assert stored_bytes(t) <= stored_bytes(t, huffman=False) == t.nbytes


def test_compress_is_callable_after_importing_the_package(mlp):
    import edgerun.compress.pipeline  # binds edgerun.compress to the package

    assert isinstance(edgerun.compress(mlp, quantize="fp16"), edgerun.compress.CompressedModel)


def test_layers_without_bias_flatten_inputs_and_dict_calibration(rng):
    b = GraphBuilder("image", shape=(None, 4, 6))
    b.graph.nodes.append(edgerun.Node("Flatten", "flatten_0", ["image"], ["flat"], {"axis": 1}))
    b.current, b._features = "flat", 24
    b.linear(rng.normal(size=(16, 24)).astype(np.float32) / 5, activation="relu")
    b.linear(rng.normal(size=(5, 16)).astype(np.float32) / 4)
    graph = b.build()
    x = rng.normal(size=(300, 4, 6)).astype(np.float32)
    with_refit = edgerun.compress(graph, prune=0.7, share_bits=4, calibration={"image": x})
    without = edgerun.compress(graph, prune=0.7, share_bits=4, calibration={"image": x}, refit=False)
    assert "linear_2.bias" not in with_refit.graph.tensors
    assert with_refit.report().error < without.report().error
    assert with_refit.report().rows[0]["bytes_before"] == 4 * 16 * 24
    with pytest.raises(OptionError, match="image"):
        edgerun.compress(graph, prune=0.5, calibration={"input": x})


def test_degenerate_layers_compress(rng):
    # an all-zero layer, a codebook larger than the layer, a threshold that empties rows
    b = GraphBuilder("x", features=3)
    b.linear(np.zeros((4, 3), np.float32), np.zeros(4, np.float32), activation="relu")
    b.linear(rng.normal(size=(2, 4)).astype(np.float32))
    graph = b.build()
    x = rng.normal(size=(20, 3)).astype(np.float32)
    for options in (dict(share_bits=8, quantize="int8"), dict(prune={"threshold": 10.0}),
                    dict(prune=0.5, share_bits=8, calibration=x)):
        cm = edgerun.compress(graph, **options)
        cm.graph.validate()
        assert np.isfinite(output(cm.graph, x)).all()
    assert (weight(cm.graph, "linear_1").to_dense() == 0).all()


def test_save_hands_the_encoded_graph_to_the_format_writer(mlp, tmp_path, monkeypatch):
    import sys
    import types

    calls = []
    fake = types.ModuleType("edgerun.format")
    fake.save = lambda graph, path: calls.append((graph, path))
    monkeypatch.setitem(sys.modules, "edgerun.format", fake)
    monkeypatch.setattr(edgerun, "format", fake, raising=False)
    cm = edgerun.compress(mlp, quantize="int8")
    cm.save(tmp_path / "m.edgerun")
    assert calls == [(cm.graph, tmp_path / "m.edgerun")]


def test_digits_mlp_is_25x_smaller_and_about_as_accurate():
    # The project's yardstick: a 64-300-100-10 MLP on UCI digits, pruned 90%, 4-bit
    # shared weights, Huffman, calibrated on the training images.
    sklearn = pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    assert sklearn.__version__
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    # (a mark would name sklearn's warning class even where sklearn is absent,
    # which breaks collection on the arm64 run)
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tiny matrices: threads only cost
        clf = MLPClassifier((300, 100), max_iter=100, random_state=0).fit(x_train, y_train)
    b = GraphBuilder("x", features=64)
    for i, (w, bias) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        b.linear(w.T, bias, activation="relu" if i < 2 else None)
    graph = b.build()
    cm = edgerun.compress(graph, prune=0.9, share_bits=4, huffman=True, calibration=x_train)

    def accuracy(g):
        return float((output(g, x_test).argmax(axis=1) == y_test).mean())

    before, after, ratio = accuracy(graph), accuracy(cm.graph), cm.report().ratio
    print(f"\ndigits: fp32 {before:.4f}, compressed {after:.4f}, {ratio:.1f}x smaller")
    print(cm.report())
    assert ratio >= 25
    assert after >= before - 0.015  # the target is 1 point; the test set has 450 images


def test_global_pruning_with_calibration_and_numpy_scalars(mlp, calib):
    cm = edgerun.compress(mlp, prune=np.float64(0.8), prune_scope="global",
                          share_bits=np.int64(4), calibration=calib)
    dense = [weight(cm.graph, layer).to_dense() for layer in NAMES]
    total = sum(w.size for w in dense)
    # the refit keeps the mask; k-means may put a few kept weights on a zero centroid
    assert sum(int((w == 0).sum()) for w in dense) >= round(0.8 * total)
    assert all(weight(cm.graph, layer).bits == 4 for layer in NAMES)


def test_row_refit_recovers_weights_that_fit_the_mask_exactly(rng):
    from edgerun.compress.refit import refit_rows

    x = rng.normal(size=(300, 12))
    true = rng.normal(size=(5, 12)) * (rng.random((5, 12)) < 0.4)
    true_bias = rng.normal(size=5)
    mask = true != 0
    weight, bias = refit_rows(x, x @ true.T + true_bias, mask, np.zeros((5, 12)), np.zeros(5),
                              ridge=1e-9)
    np.testing.assert_allclose(weight, true, atol=1e-4)
    np.testing.assert_allclose(bias, true_bias, atol=1e-4)
    assert (weight[~mask] == 0).all()


def test_assignment_with_feedback_beats_nearest_centroid_on_the_output(rng):
    from edgerun.compress.refit import assign_with_feedback
    from edgerun.compress.share import assign

    x = rng.normal(size=(400, 30)) @ rng.normal(size=(30, 30))  # correlated inputs
    weight = rng.normal(size=(8, 30))
    bias = rng.normal(size=8)
    mask = np.ones_like(weight, dtype=bool)
    centroids = np.linspace(-2, 2, 4)
    codes, new_bias = assign_with_feedback(x, mask, weight, bias, centroids)
    assert codes.min() >= 0 and codes.max() < 4
    reference = x @ weight.T + bias
    feedback = x @ centroids[codes].T + new_bias
    nearest = x @ centroids[assign(weight, centroids)].T + bias
    assert np.linalg.norm(feedback - reference) < 0.8 * np.linalg.norm(nearest - reference)
