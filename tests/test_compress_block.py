"""edgerun.compress with prune_block=4: 1x4 block pruning stored as "bcsr4", from
the compressor through the file to the spmm_bcsr4 kernels."""
import numpy as np
import pytest

import edgerun
from edgerun import OptionError
from edgerun.evaluate import evaluate
from edgerun.graph import GraphBuilder
from edgerun.runtime.session import Session

from tests.test_compress import NAMES, SIZES, make_mlp, weight


@pytest.fixture
def mlp(rng):
    return make_mlp(rng)


@pytest.fixture
def calib(rng):
    return rng.normal(size=(400, SIZES[0])).astype(np.float32)


def groups(dense):
    """[rows, cols // 4, 4]: the aligned groups of 4 input columns of each row."""
    rows, cols = dense.shape
    return dense.reshape(rows, cols // 4, 4)


def assert_whole_groups(dense):
    nonzero = groups(dense) != 0
    kept = nonzero.any(axis=2)
    # a kept group may hold an exact zero after rounding, but never a pruned one with
    # a nonzero: every nonzero lies in a kept group, and most kept groups are full
    assert (nonzero.sum(axis=2)[kept] >= 1).all()
    assert nonzero.all(axis=2)[kept].mean() > 0.95


@pytest.mark.parametrize("calibrated", [False, True])
@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_groups_of_4_are_kept_or_pruned_whole_and_reach_the_sparsity(mlp, calib, calibrated, sparsity):
    cm = edgerun.compress(mlp, prune=sparsity, prune_block=4,
                          calibration=calib if calibrated else None)
    for name in NAMES:
        t = weight(cm.graph, name)
        assert t.encoding == "bcsr4"
        assert t.arrays["values"].dtype == np.float32
        assert (t.arrays["indices"] % 4 == 0).all()  # aligned groups
        dense = t.to_dense()
        assert_whole_groups(dense)
        kept_groups = np.diff(t.arrays["indptr"].astype(np.int64)).sum()
        total = dense.size // 4
        assert abs((total - kept_groups) / total - sparsity) <= 1.0 / total + 1e-9
    for row in cm.report().rows:
        assert row["encoding"] == "bcsr4 float32"
        assert abs(row["sparsity"] - sparsity) < 0.02


def test_block_scores_keep_the_groups_with_the_largest_norms(rng):
    """Without calibration the score is the group's L2 norm: a group of four
    medium weights beats a group with one larger weight and three zeros."""
    w = np.zeros((1, 8), np.float32)
    w[0, :4] = 1.0        # norm 2
    w[0, 4] = 1.5         # norm 1.5: larger than any single weight of group 0, smaller group norm
    b = GraphBuilder("x", features=8)
    b.linear(w)
    cm = edgerun.compress(b.build(), prune=0.5, prune_block=4)
    t = cm.graph.tensors["linear_1.weight"]
    assert t.encoding == "bcsr4" and t.arrays["indices"].tolist() == [0]
    assert t.to_dense()[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]


@pytest.mark.parametrize("quantize, values", [("fp16", np.float16), ("int8", np.int8)])
def test_quantized_block_values(mlp, quantize, values):
    cm = edgerun.compress(mlp, prune=0.9, prune_block=4, quantize=quantize)
    for name in NAMES:
        t = weight(cm.graph, name)
        assert t.encoding == "bcsr4" and t.arrays["values"].dtype == values
        assert t.arrays["values"].size == 4 * t.arrays["indices"].size
        assert ("scale" in t.arrays) == (quantize == "int8")
        if quantize == "int8":
            assert t.arrays["scale"].shape == (t.shape[0],)
            assert np.abs(t.arrays["values"].astype(int)).max() <= 127


def test_per_layer_dict_and_block_1(mlp):
    cm = edgerun.compress(mlp, prune=0.9, prune_block={"linear_1": 4, "linear_2": 1})
    assert weight(cm.graph, "linear_1").encoding == "bcsr4"
    assert weight(cm.graph, "linear_2").encoding == "csr"
    assert weight(cm.graph, "linear_3").encoding == "csr"  # not named: unstructured
    assert cm.graph.metadata["compression"]["prune_block"] == {"linear_1": 4, "linear_2": 1}


@pytest.mark.parametrize("prune_block, message", [
    (3, "prune_block .* must be one of \\(1, 4\\)"),
    (2, "prune_block"),
    (True, "prune_block"),
    (4.0, "prune_block"),
    ({"nope": 4}, "unknown layer"),
    ({"linear_1": 8}, "prune_block for layer 'linear_1'"),
])
def test_bad_prune_block_is_an_option_error(mlp, prune_block, message):
    with pytest.raises(OptionError, match=message):
        edgerun.compress(mlp, prune=0.9, prune_block=prune_block)


def test_layers_whose_inputs_are_not_a_multiple_of_4_fall_back_with_a_note(rng):
    mlp = make_mlp(rng, sizes=(22, 48, 10))  # linear_1 has 22 inputs
    cm = edgerun.compress(mlp, prune=0.8, prune_block=4, quantize="int8")
    assert weight(cm.graph, "linear_1").encoding == "csr"
    assert weight(cm.graph, "linear_2").encoding == "bcsr4"
    notes = {r["layer"]: r["note"] for r in cm.report().rows}
    assert "22" in notes["linear_1"] and "unstructured" in notes["linear_1"]
    assert notes["linear_2"] is None
    assert "note: linear_1: prune_block=4" in str(cm.report())


def test_threshold_pruning_in_blocks(mlp):
    cm = edgerun.compress(mlp, prune={"threshold": 0.3}, prune_block=4)
    for name in NAMES:
        original = weight(mlp, name).to_dense()
        t = weight(cm.graph, name)
        assert t.encoding == "bcsr4"
        passes = groups(np.abs(original) > 0.3).any(axis=2)
        kept = groups(t.to_dense() != 0).any(axis=2)
        assert np.array_equal(kept, passes)


def test_share_bits_keeps_the_csr_codes_path(mlp):
    cm = edgerun.compress(mlp, prune=0.9, prune_block=4, share_bits=4)
    for name in NAMES:
        t = weight(cm.graph, name)
        assert "codes" in t.arrays
        assert_whole_groups(t.to_dense())


def test_refit_on_block_mask_reduces_the_error(mlp, calib):
    errors = [edgerun.compress(mlp, prune=0.8, prune_block=4, calibration=calib, refit=refit)
              .report().error for refit in (False, True)]
    assert errors[1] < errors[0]


def test_huffman_bcsr4_estimate_matches_the_file(mlp, tmp_path):
    from edgerun.compress.report import stored_bytes

    cm = edgerun.compress(make_mlp(np.random.default_rng(3), sizes=(256, 200, 10)),
                          prune=0.9, prune_block=4, quantize="int8", huffman=True)
    path = tmp_path / "m.edgerun"
    cm.save(path)
    info = edgerun.format.inspect(path)
    for name, t in cm.graph.tensors.items():
        if t.encoding == "bcsr4":
            assert info["tensors"][name]["stored_bytes"] <= stored_bytes(t) + 8
    streams = info["tensors"]["linear_1.weight"]["streams"]  # 200 x 256: coding pays
    assert streams["indices"]["huffman"] and streams["indptr"]["transform"] == "delta"


@pytest.mark.parametrize("calibrated", [False, True])
def test_end_to_end_compress_save_load_run(calibrated, rng, tmp_path):
    mlp = make_mlp(rng, sizes=(64, 128, 96, 10), softmax=False)
    x = rng.normal(size=(300, 64)).astype(np.float32)
    cm = edgerun.compress(mlp, prune=0.9, prune_block=4, quantize="int8",
                          calibration=x if calibrated else None)
    path = tmp_path / "block.edgerun"
    cm.save(path)
    session = Session(edgerun.format.load(path))
    assert [kind for _, kind in session.layers] == ["spmm_bcsr4_s8"] * 3
    batch = x[:17]
    y = session.run(batch)
    expected = evaluate(cm.graph, {"x": batch})[cm.graph.outputs[0].name]
    # int8 activations quantized per row at run time: close, not equal
    assert np.abs(y - expected).max() <= 0.03 * (1 + np.abs(expected).max())
    with Session(edgerun.format.load(path), num_threads=2) as threaded:
        assert np.array_equal(threaded.run(batch), y)


def test_dead_neuron_removal_leaves_a_block_layer_a_multiple_of_4_inputs(rng):
    graph = make_mlp(rng, softmax=False)
    x = np.abs(rng.normal(size=(200, SIZES[0]))).astype(np.float32)  # inputs >= 0
    w1 = weight(graph, "linear_1").arrays["values"]
    dead = [3, 17, 20, 33, 40]
    w1[dead] = -np.abs(w1[dead])              # negative weights on positive inputs ...
    graph.tensors["linear_1.bias"].arrays["values"][dead] = -1.0   # ... never exceed 0
    cm = edgerun.compress(graph, prune=0.5, prune_block=4, calibration=x)
    assert cm.report().rows[0]["removed_neurons"] == 4  # 48 - 4 = 44 inputs for linear_2
    assert weight(cm.graph, "linear_2").shape[1] == SIZES[1] - 4
    assert weight(cm.graph, "linear_2").encoding == "bcsr4"
    # unstructured successor: all five go
    cm = edgerun.compress(graph, prune=0.5, prune_block={"linear_1": 4}, calibration=x)
    assert cm.report().rows[0]["removed_neurons"] == 5
