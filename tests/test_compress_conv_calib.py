"""Calibration for Conv2d layers: a conv is a Linear on its im2col rows, so Wanda
scores, the least-squares refits, GPTQ-style code assignment and int8-static's
input scale all run on that matrix (a subsample of its rows)."""
import numpy as np
import pytest

import edgerun
from edgerun import format as fmt
from edgerun.compress import pipeline
from edgerun.errors import FormatError
from edgerun.evaluate import conv2d, evaluate
from edgerun.runtime.session import Session

import onnx_models as models


def relative_error(y, reference):
    return float(np.linalg.norm(y - reference) / np.linalg.norm(reference))


def inputs(shape, n, seed):
    return np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)


@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 1, 1, 1]},
                                   {"strides": [2, 1], "pads": [1, 0, 2, 1], "dilations": [1, 2]}])
def test_conv_rows_are_the_conv_as_a_matrix(attrs, monkeypatch):
    """The picked rows times the weight matrix are the conv's output at those pixels."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 9, 7)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    node = edgerun.graph.Node("Conv2d", "c", ["x", "w"], ["y"], dict(attrs))
    tensor = edgerun.graph.Tensor.dense("w", weight)
    y = conv2d(x, weight, strides=attrs.get("strides", (1, 1)), pads=attrs.get("pads", (0, 0, 0, 0)),
               dilations=attrs.get("dilations", (1, 1)))
    per_image = y.shape[2] * y.shape[3]
    flat = y.transpose(0, 2, 3, 1).reshape(-1, 4)        # [N*OH*OW, out], pixel-major
    monkeypatch.setattr(pipeline, "MAX_CONV_ROWS", 17)
    pick = pipeline._conv_pick(node, tensor, x, seed=3)
    assert pick.size == 17 and np.all(np.diff(pick) > 0) and pick[-1] < 5 * per_image
    np.testing.assert_array_equal(pick, pipeline._conv_pick(node, tensor, x, seed=3))
    rows = pipeline._conv_rows(node, tensor, x, pick)
    np.testing.assert_allclose(rows @ weight.reshape(4, -1).T, flat[pick], rtol=1e-5, atol=1e-5)
    # chunked: one image at a time gives the same rows
    monkeypatch.setattr(pipeline, "MAX_CONV_ROWS", 10 ** 6)
    everything = pipeline._conv_pick(node, tensor, x, seed=3)
    assert everything.size == 5 * per_image
    np.testing.assert_allclose(pipeline._conv_rows(node, tensor, x, everything) @ weight.reshape(4, -1).T,
                               flat, rtol=1e-5, atol=1e-5)


CNNS = {"resnet": (models.resnet_block_cnn, (3, 12, 12)),
        "mobilenet_v2": (models.mobilenet_v2_cnn, (8, 11, 11))}


@pytest.mark.parametrize("name", sorted(CNNS))
@pytest.mark.parametrize("options", [{"prune": 0.5}, {"share_bits": 3},
                                     {"prune": 0.7, "share_bits": 4, "quantize": "int8",
                                      "huffman": True}])
def test_calibration_cuts_the_error_of_compressed_convs(name, options, tmp_path):
    """On held-out inputs the calibrated model is several times closer to the float one;
    each group-1 conv gets an error in the report, depthwise ones stay quantize-only."""
    build, shape = CNNS[name]
    graph = edgerun.import_onnx(build())
    held_out = inputs(shape, 64, 1)
    reference = Session(graph).run(held_out)
    plain = edgerun.compress(graph, **options)
    calibrated = edgerun.compress(graph, calibration=inputs(shape, 64, 0), **options)
    calibrated.save(tmp_path / "cnn.edgerun")
    y = edgerun.load(tmp_path / "cnn.edgerun").run(held_out)
    plain_error = relative_error(Session(plain.graph).run(held_out), reference)
    assert relative_error(y, reference) < plain_error / 3
    for node in graph.nodes:
        if node.op != "Conv2d":
            continue
        row = next(r for r in calibrated.report().rows if r["layer"] == node.name)
        if node.attrs.get("group", 1) == 1:
            assert row["error"] is not None and row["note"] is None
        else:
            assert "depthwise" in row["note"] and row["sparsity"] < 0.05
            assert 0 < row["error"] < 1     # measured on the conv's input, not fitted


def test_wanda_scores_use_the_im2col_norms(monkeypatch):
    """With calibration, a conv's pruning ranks |w| * ||im2col column||: weights on an
    input channel that is always zero go first whatever their size."""
    graph = edgerun.import_onnx(models.resnet_block_cnn())
    x = inputs((3, 12, 12), 8, 0)
    x[:, 2] = 0                                   # channel 2 is dead in the calibration data
    cm = edgerun.compress(graph, prune={"conv1": 1 / 3}, calibration=x, refit=False)
    stem = next(n for n in cm.graph.nodes if n.name == "conv1")
    weight = cm.graph.tensors[stem.inputs[1]].to_dense().reshape(8, 3, 3, 3)
    assert np.all(weight[:, 2] == 0) and np.all(weight[:, :2] != 0)


def test_int8_static_records_conv_input_scales(tmp_path):
    graph = edgerun.import_onnx(models.kws_cnn())
    x = inputs((1, 20, 16), 16, 1)
    cm = edgerun.compress(graph, quantize="int8-static", calibration=x)
    seen = evaluate(cm.graph, x, capture={n.name for n in cm.graph.nodes if n.op == "Conv2d"})
    convs = [n for n in cm.graph.nodes if n.op == "Conv2d"]
    assert len(convs) == 2
    for node in convs:
        assert node.attrs["input_scale"] == pytest.approx(np.abs(seen[node.name]).max() / 127, rel=1e-6)
    cm.save(tmp_path / "static.edgerun")
    loaded = fmt.load(tmp_path / "static.edgerun")
    assert [n.attrs["input_scale"] for n in loaded.nodes if n.op == "Conv2d"] == \
           [n.attrs["input_scale"] for n in convs]
    y = edgerun.load(tmp_path / "static.edgerun").run(x)
    assert relative_error(y, Session(graph).run(x)) < 0.05


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), "0.1", [0.1]])
def test_format_refuses_a_bad_conv_input_scale(bad, tmp_path):
    graph = edgerun.import_onnx(models.kws_cnn())
    cm = edgerun.compress(graph, quantize="int8")
    next(n for n in cm.graph.nodes if n.op == "Conv2d").attrs["input_scale"] = bad
    with pytest.raises(FormatError, match="input_scale"):
        fmt.save(cm.graph, tmp_path / "bad.edgerun")
        fmt.load(tmp_path / "bad.edgerun")


def test_global_pruning_skips_depthwise_convs():
    graph = edgerun.import_onnx(models.mobilenet_v2_cnn())
    x = inputs((8, 11, 11), 32, 0)
    cm = edgerun.compress(graph, prune=0.6, prune_scope="global", calibration=x)
    rows = {r["layer"]: r for r in cm.report().rows}
    depthwise = [n.name for n in cm.graph.nodes if n.op == "Conv2d" and n.attrs["group"] > 1]
    assert depthwise and all(rows[n]["sparsity"] == 0 for n in depthwise)
    others = [r for n, r in rows.items() if n not in depthwise]
    total = sum(np.prod(r["original_shape"]) for r in others)
    pruned = sum(r["sparsity"] * np.prod(r["original_shape"]) for r in others)
    assert pruned / total == pytest.approx(0.6, abs=0.02)


def test_report_names_each_conv_kind():
    graph = edgerun.import_onnx(models.mobilenet_v2_cnn())
    cm = edgerun.compress(graph, prune=0.5, quantize="int8", calibration=inputs((8, 11, 11), 8, 0))
    kinds = {r["layer"]: r["kind"] for r in cm.report().rows}
    assert sorted(set(kinds.values())) == ["conv 1x1", "dwconv 3x3", "dwconv 3x3 /2", "linear"]
    text = str(cm.report())
    assert "dwconv 3x3 /2  24x1x3x3" in text and "note: conv4: depthwise conv: not pruned or weight-shared" in text
    assert "without calibration" not in text      # the 1x1 convs are calibrated
    row = next(r for r in cm.report().rows if r["kind"] == "conv 1x1")
    assert row["shape"] == row["original_shape"] and len(row["shape"]) == 4
    assert "int8" in row["encoding"] and 0.45 < row["sparsity"] < 0.6 and row["bits_per_weight"] > 0


def test_grouped_convs_keep_the_uncalibrated_path():
    graph = edgerun.import_onnx(models.resnet_block_cnn())
    node = next(n for n in graph.nodes if n.op == "Conv2d" and n.name != "conv1")
    weight = graph.tensors[node.inputs[1]].to_dense()          # [8, 8, 3, 3] -> 2 groups of 4
    graph.tensors[node.inputs[1]] = edgerun.graph.Tensor.dense(node.inputs[1], weight[:, :4].copy())
    node.attrs["group"] = 2
    x = inputs((3, 12, 12), 8, 0)
    cm = edgerun.compress(graph, prune=0.5, share_bits=4, calibration=x)
    row = next(r for r in cm.report().rows if r["layer"] == node.name)
    assert row["kind"] == "conv 3x3 g2" and "grouped conv: compressed without calibration" in row["note"]
    # its report error is measured all the same: the float conv on the float model's input
    # against the compressed conv on the compressed model's input, after the ReLU
    seen = evaluate(cm.graph, x, capture={node.name})[node.name]
    want = evaluate(graph, x, capture={node.name})[node.name]
    options = dict(pads=node.attrs["pads"], group=2, activation=node.attrs.get("activation"))
    ref = conv2d(want, graph.tensors[node.inputs[1]].to_dense(),
                 graph.tensors[node.inputs[2]].to_dense() if len(node.inputs) > 2 else None, **options)
    compressed = cm.graph.tensors[node.inputs[1]].to_dense().reshape(8, 4, 3, 3)
    bias = cm.graph.tensors[node.inputs[2]].to_dense() if len(node.inputs) > 2 else None
    out = conv2d(seen, compressed, bias, **options)
    assert row["error"] == pytest.approx(relative_error(out, ref), rel=1e-4)
    y = Session(cm.graph).run(x)
    np.testing.assert_allclose(y, evaluate(cm.graph, x)["logits"], rtol=1e-4, atol=1e-5)


def test_a_depthwise_conv_named_in_a_dict_is_pruned_and_shared():
    graph = edgerun.import_onnx(models.mobilenet_v2_cnn())
    x = inputs((8, 11, 11), 16, 0)
    names = [n.name for n in graph.nodes if n.op == "Conv2d" and n.attrs.get("group", 1) > 1]
    first, second = names
    cm = edgerun.compress(graph, prune={first: 0.4, "conv1": 0.5}, share_bits={first: 3},
                          calibration=x)
    rows = {r["layer"]: r for r in cm.report().rows}
    assert rows[first]["sparsity"] == pytest.approx(0.4, abs=0.02)
    assert rows[first]["encoding"].startswith(("csr 3b", "codebook 3b")) and rows[first]["note"] is None
    assert rows[second]["sparsity"] < 0.05 and rows[second]["note"] is None    # nothing asked
    y = Session(cm.graph).run(x)
    np.testing.assert_allclose(y, evaluate(cm.graph, x)["logits"], rtol=1e-4, atol=1e-5)
