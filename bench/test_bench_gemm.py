"""int8 GEMM (edgerun gemm_s8) against numpy float32 matmul (BLAS) and, when
installed, onnxruntime MatMulInteger, one thread, side by side per shape:

    python -m pytest bench/test_bench_gemm.py --benchmark-group-by=param:shape

Shapes: M in {1, 8, 64} rows of activations times Linear layers (K, N) of
1024x1024, 4096x1024 and 4096x4096; then the short-K shapes the packed panels are
for (csrc/gemm_s8.h): 1x1 convs over an image's pixels (MobileNetV2-style, M = H*W)
and a BERT-style projection over 128 tokens.  edgerun's time includes its float
epilogue (per-row and per-column scales, bias); MatMulInteger stops at int32."""
import numpy as np
import pytest

from edgerun import _backend

SHAPES = [(m, k, n) for m in (1, 8, 64) for k, n in ((1024, 1024), (4096, 1024), (4096, 4096))]
SHAPES += [(4096, 16, 48), (1024, 32, 96), (256, 96, 16), (128, 256, 1024)]
IDS = [f"M{m}-K{k}-N{n}" for m, k, n in SHAPES]


def operands(m, k, n):
    rng = np.random.default_rng(0)
    x = rng.integers(-127, 128, size=(m, k), dtype=np.int8)
    w = rng.integers(-127, 128, size=(n, k), dtype=np.int8)
    return x, w, rng.random(m, dtype=np.float32), rng.random(n, dtype=np.float32), \
        rng.standard_normal(n).astype(np.float32)


@pytest.mark.parametrize("activations", ["signed", "relu", "u7"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_edgerun_gemm_s8(benchmark, shape, activations):
    """relu: x >= 0, as after a ReLU, where the AVX2 kernel skips its sign step;
    u7: what the runtime passes (quantize_rows_u7: x in [0, 127] with zero points)."""
    if _backend.name != "c":
        pytest.skip(f"C extension not built ({_backend.reason})")
    x, w, x_scale, w_scale, bias = operands(*shape)
    zero_points = {}
    if activations == "relu":
        x = np.abs(x)
    elif activations == "u7":
        x = (x.astype(np.int16) + 127) // 2
        x = x.astype(np.int8)
        zero_points = {"x_zero": np.full(shape[0], 64, np.int32),
                       "w_sums": w.sum(axis=1, dtype=np.int32)}
    out = np.empty((shape[0], shape[2]), np.float32)
    benchmark.extra_info["variant"] = _backend.kernels.selected()["gemm_s8"]
    benchmark(_backend.kernels.gemm_s8, x, w, x_scale, w_scale, bias, out=out, **zero_points)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_numpy_f32_matmul(benchmark, shape):
    m, k, n = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k), dtype=np.float32)
    wt = np.ascontiguousarray(rng.standard_normal((n, k), dtype=np.float32).T)
    out = np.empty((m, n), np.float32)
    benchmark(np.matmul, x, wt, out=out)


@pytest.mark.parametrize("activations", ["s8", "u8"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_onnxruntime_matmulinteger(benchmark, shape, activations):
    """s8: int8 x int8, exact like edgerun.  u8: x + 128 as uint8 with zero point
    128, onnxruntime's fast x86 path -- which saturates in vpmaddubsw on
    full-range int8 weights, so its results differ (timed, not asserted)."""
    ort = pytest.importorskip("onnxruntime")
    helper = pytest.importorskip("onnx.helper")
    from onnx import TensorProto

    m, k, n = shape
    x, w, _, _, _ = operands(m, k, n)
    wt = np.ascontiguousarray(w.T)  # MatMulInteger takes B as [K, N]
    initializer = [helper.make_tensor("w", TensorProto.INT8, [k, n], wt.tobytes(), raw=True)]
    inputs = ["x", "w"]
    x_type = TensorProto.INT8
    if activations == "u8":
        x = (x.astype(np.int16) + 128).astype(np.uint8)
        x_type = TensorProto.UINT8
        initializer.append(helper.make_tensor("x_zero", TensorProto.UINT8, [], [128]))
        inputs.append("x_zero")
    node = helper.make_node("MatMulInteger", inputs, ["y"])
    graph = helper.make_graph(
        [node], "gemm_s8", [helper.make_tensor_value_info("x", x_type, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])], initializer=initializer)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": x})[0]
    if activations == "s8":
        assert np.array_equal(y, x.astype(np.int32) @ wt.astype(np.int32))
    benchmark(session.run, None, {"x": x})
