"""Conv layers compress like Linear ones: the small ONNX CNNs, int8 and 50 % pruned,
run on the int8 / sparse kernels and stay close to the float model."""
import numpy as np
import pytest

import edgerun
from edgerun import format as fmt
from edgerun.errors import OptionError
from edgerun.evaluate import evaluate
from edgerun.runtime.session import Session

import onnx_models as models

CNNS = {"resnet": (models.resnet_block_cnn, (3, 12, 12)),
        "mobilenet_v2": (models.mobilenet_v2_cnn, (8, 11, 11)),
        "kws": (models.kws_cnn, (1, 20, 16))}


def relative_error(y, reference):
    return float(np.linalg.norm(y - reference) / np.linalg.norm(reference))


# (options, limit on the error vs the float model, kind of the non-depthwise convs,
#  tolerance of the session against evaluate() of the compressed graph)
# Pruning 50 % of these untrained Gaussian weights by magnitude drops ~8 % of each layer's
# weight energy, ~0.3 relative error per layer; without a calibrated refit (not yet done
# for convs) 3-4 such layers compound to 0.33-0.41, so the bound there is 0.5, not 0.2.
# With prune + int8 a tiny conv (e.g. 8 x 9 weights) stays dense int8 when its CSR index
# overhead would cost more: at least one conv of each model must take the sparse path.
OPTIONS = [({"quantize": "int8"}, 0.05, {"gemm_s8"}, 0.05),
           ({"prune": 0.5}, 0.5, {"spmm_csr_f32"}, 1e-5),
           ({"prune": 0.8, "quantize": "int8"}, None, {"spmm_csr_s8", "gemm_s8"}, 0.05)]


@pytest.mark.parametrize("name", sorted(CNNS))
@pytest.mark.parametrize("options,limit,conv_kind,tolerance", OPTIONS)
def test_compressed_cnn_runs_on_the_compressed_kernels(name, options, limit, conv_kind, tolerance,
                                                       tmp_path):
    build, shape = CNNS[name]
    graph = edgerun.import_onnx(build())
    x = np.random.default_rng(0).standard_normal((3,) + shape).astype(np.float32)
    reference = Session(graph).run(x)
    cm = edgerun.compress(graph, **options)
    cm.save(tmp_path / "cnn.edgerun")
    session = edgerun.load(tmp_path / "cnn.edgerun")
    y = session.run(x)
    if limit is not None:
        assert relative_error(y, reference) < limit
    # evaluate() runs the same weights with float activations: the int8 paths differ by
    # their activation rounding only, the float paths agree to float rounding
    expected = evaluate(cm.graph, x)["logits"]
    if tolerance < 1e-3:
        np.testing.assert_allclose(y, expected, rtol=tolerance, atol=tolerance * np.abs(expected).max())
    else:
        assert relative_error(y, expected) < tolerance
    kinds = dict(session.layers)
    used = set()
    for node in cm.graph.nodes:
        if node.op != "Conv2d":
            continue
        depthwise = node.attrs["group"] > 1
        used.add(kinds[node.name])
        weight = cm.graph.tensors[node.inputs[1]]
        int8 = weight.arrays.get("values", np.zeros(0)).dtype == np.int8
        # int8 depthwise weights run on the int8 depthwise kernel
        depthwise_kind = {"dwconv2d_s8" if int8 else "dwconv2d_f32"}
        assert kinds[node.name] in (depthwise_kind if depthwise else conv_kind), node.name
        assert len(weight.shape) == 2 and weight.shape[1] == np.prod(node.attrs["kernel"])
    assert sorted(conv_kind)[-1] in used     # gemm_s8 / spmm_csr_f32 / spmm_csr_s8
    rows = {r["layer"]: r for r in cm.report().rows}
    assert set(rows) == {n.name for n in graph.nodes if n.op in ("Conv2d", "Linear")}
    if "prune" in options:
        convs = [r for r in rows.values() if "depthwise" not in (r["note"] or "")]
        assert all(abs(r["sparsity"] - options["prune"]) < 0.05 for r in convs)


def test_depthwise_weights_are_quantized_only():
    graph = edgerun.import_onnx(models.mobilenet_v2_cnn())
    cm = edgerun.compress(graph, prune=0.5, share_bits=4, quantize="int8")
    for node in cm.graph.nodes:
        if node.op == "Conv2d" and node.attrs["group"] > 1:
            weight = cm.graph.tensors[node.inputs[1]]
            assert weight.encoding == "dense" and weight.arrays["values"].dtype == np.int8
            row = next(r for r in cm.report().rows if r["layer"] == node.name)
            assert "depthwise" in row["note"]


@pytest.mark.parametrize("share_bits,quantize,kind", [(4, None, "blas"), (4, "int8", "gemm_s8")])
def test_weight_shared_convs_run_decoded_on_the_dense_kernels(share_bits, quantize, kind):
    """A conv reuses each weight at every output pixel: its codebook is decoded at load
    (int8 centroids to the int8 GEMM), the file keeps the codes."""
    graph = edgerun.import_onnx(models.resnet_block_cnn())
    x = np.random.default_rng(2).standard_normal((2, 3, 12, 12)).astype(np.float32)
    cm = edgerun.compress(graph, share_bits=share_bits, quantize=quantize)
    session = Session(cm.graph)
    assert {k for name, k in session.layers if name.startswith("conv")} == {kind}
    y = session.run(x)
    assert relative_error(y, evaluate(cm.graph, x)["logits"]) < (1e-5 if quantize is None else 0.05)
    assert relative_error(y, Session(graph).run(x)) < 0.2     # 16 levels per layer


def test_fp16_convs_and_threads_and_chunks():
    graph = edgerun.import_onnx(models.mobilenet_v2_cnn())
    x = np.random.default_rng(3).standard_normal((5, 8, 11, 11)).astype(np.float32)
    cm = edgerun.compress(graph, quantize="fp16")
    assert all(cm.graph.tensors[n.inputs[1]].arrays["values"].dtype == np.float16
               for n in cm.graph.nodes if n.op == "Conv2d")
    single = Session(cm.graph).run(x)
    assert relative_error(single, Session(graph).run(x)) < 1e-2
    with Session(cm.graph, num_threads=2, max_batch_rows=2) as threaded:
        np.testing.assert_allclose(threaded.run(x), single, rtol=1e-5, atol=1e-6)
