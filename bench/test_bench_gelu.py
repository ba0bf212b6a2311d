"""GELU and softmax, the elementwise ops of a BERT encoder: edgerun's kernels
against the numpy implementations in edgerun.evaluate and onnxruntime, one thread.

    python -m pytest bench/test_bench_gelu.py --benchmark-group-by=group \
        --benchmark-columns=min,median,ops

Groups: GELU (erf form, and tanh form) on a BERT-base FFN activation [128, 1024]
(batch 1, sequence 128; 4 layers of BERT-mini call it 4 times per inference);
softmax on attention scores [4 heads x 128, 128] (the last axis).  Within each:
  edgerun-<variant>   every C variant this CPU runs (the dispatched one is the last)
  numpy-evaluate      edgerun.evaluate.gelu / softmax, the numpy fallback
  ort                 onnxruntime's Gelu (opset 20) / Softmax, one thread
"""
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import functools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from edgerun import _backend, evaluate  # noqa: E402

if _backend.name != "c":
    pytest.skip("the C extension is not built", allow_module_level=True)
kernels = _backend.kernels

GELU_SHAPE = (128, 1024)
SOFTMAX_SHAPE = (4 * 128, 128)


def variants(op):
    return [v for name, v, _, ok in kernels.variants() if name == op and ok]


@functools.lru_cache(maxsize=None)
def data(shape, scale):
    return (np.random.default_rng(7).standard_normal(shape) * scale).astype(np.float32)


@functools.lru_cache(maxsize=None)
def ort_session(op, shape, approximate="none"):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    attrs = {"approximate": approximate} if op == "Gelu" else {"axis": -1}
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], **attrs)], op.lower(),
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])
    except Exception as error:  # an onnxruntime without opset 20 Gelu
        pytest.skip(f"onnxruntime cannot run {op}: {error}")


GELU_IMPLS = [f"edgerun-{v}" for v in variants("gelu_f32")] + ["numpy-evaluate", "ort"]
SOFTMAX_IMPLS = [f"edgerun-{v}" for v in variants("softmax_f32")] + ["numpy-evaluate", "ort"]


@pytest.mark.parametrize("impl", GELU_IMPLS)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(benchmark, impl, approximate):
    benchmark.group = f"gelu approximate={approximate} {GELU_SHAPE[0]}x{GELU_SHAPE[1]}"
    benchmark.extra_info.update(impl=impl, isa=kernels.selected().get("gelu_f32"))
    x = data(GELU_SHAPE, 2.0)
    if impl.startswith("edgerun-"):
        out = np.empty_like(x)
        variant = impl[len("edgerun-"):]
        benchmark(lambda: kernels.gelu_f32(x, approximate, out=out, variant=variant))
    elif impl == "numpy-evaluate":
        benchmark(lambda: evaluate.gelu(x, approximate))
    else:
        session = ort_session("Gelu", GELU_SHAPE, approximate)
        benchmark(lambda: session.run(None, {"x": x}))


@pytest.mark.parametrize("impl", SOFTMAX_IMPLS)
def test_softmax(benchmark, impl):
    benchmark.group = f"softmax {SOFTMAX_SHAPE[0]}x{SOFTMAX_SHAPE[1]}"
    benchmark.extra_info.update(impl=impl, isa=kernels.selected().get("softmax_f32"))
    x = data(SOFTMAX_SHAPE, 4.0)
    if impl.startswith("edgerun-"):
        out = np.empty_like(x)
        variant = impl[len("edgerun-"):]
        benchmark(lambda: kernels.softmax_f32(x, out=out, variant=variant))
    elif impl == "numpy-evaluate":
        benchmark(lambda: evaluate.softmax(x))
    else:
        session = ort_session("Softmax", SOFTMAX_SHAPE)
        benchmark(lambda: session.run(None, {"x": x}))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_benchmarked_calls_agree(approximate):
    """The benchmarked calls compute the same thing (a guard, not a timing)."""
    x = data(GELU_SHAPE, 2.0)
    y = kernels.gelu_f32(x, approximate)
    np.testing.assert_allclose(y, evaluate.gelu(x, approximate), rtol=1e-5, atol=1e-6)
    (y_ort,) = ort_session("Gelu", GELU_SHAPE, approximate).run(None, {"x": x})
    np.testing.assert_allclose(y, y_ort, rtol=1e-5, atol=1e-6)
    s = data(SOFTMAX_SHAPE, 4.0)
    np.testing.assert_allclose(kernels.softmax_f32(s), evaluate.softmax(s), rtol=2e-6, atol=1e-12)
    (s_ort,) = ort_session("Softmax", SOFTMAX_SHAPE).run(None, {"x": s})
    np.testing.assert_allclose(kernels.softmax_f32(s), s_ort, rtol=1e-5, atol=1e-9)
