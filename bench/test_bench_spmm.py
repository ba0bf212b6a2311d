"""CSR sparse x dense: edgerun against its peers, single-threaded, one table per shape.

    python -m pytest bench/test_bench_spmm.py --benchmark-group-by=group \
        --benchmark-columns=min,median,ops

Each group is one layer shape W [n, k] at one sparsity and one batch M; within
it, side by side:
  edgerun-f32         spmm_csr_f32 (float CSR, float x)
  edgerun-s8          spmm_csr_s8 on int8 x (the kernel alone)
  edgerun-s8-dynamic  quantize_rows_s8(x) then spmm_csr_s8 -> float y: what the
                      runtime does for a dynamic-int8 pruned layer
  scipy-csr-f32       scipy.sparse.csr_matrix @ x.T
  numpy-dense-f32     x @ W.T (BLAS sgemm/sgemv on the dense matrix)
  ort-dynamic-int8    onnxruntime DynamicQuantizeLinear + MatMulInteger + rescale
                      on the dense int8 matrix (what onnxruntime's quantize_dynamic emits)
  ort-matmulinteger   onnxruntime MatMulInteger alone, uint8 x dense int8 W
"""
import os

# One thread everywhere, before numpy (and its BLAS) is imported.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_name] = "1"

import functools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from edgerun import _backend  # noqa: E402

SHAPES = [(4096, 4096), (1024, 1024)]
SPARSITIES = [0.9, 0.7]
BATCHES = [1, 8, 64]

if _backend.name != "c":
    pytest.skip("the C extension is not built", allow_module_level=True)
kernels = _backend.kernels


@functools.lru_cache(maxsize=None)
def layer(n, k, sparsity):
    """A pruned layer: float W [n, k] with `sparsity` zeros, its CSR (u16 indices
    where k allows), and int8 values with per-row scales."""
    import scipy.sparse

    rng = np.random.default_rng(n * 7 + k + int(sparsity * 100))
    w = rng.standard_normal((n, k), dtype=np.float32)
    w[rng.random((n, k)) < sparsity] = 0
    csr = scipy.sparse.csr_matrix(w)
    indptr = csr.indptr.astype(np.uint32)
    indices = csr.indices.astype(np.uint16 if k <= 65536 else np.uint32)
    values = csr.data.astype(np.float32)
    w_scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    w_q = np.clip(np.rint(w / w_scale[:, None]), -127, 127).astype(np.int8)
    row_of = np.repeat(np.arange(n), np.diff(csr.indptr))
    values_q = w_q[row_of, csr.indices]
    return dict(w=w, csr=csr, indptr=indptr, indices=indices, values=values,
                w_q=w_q, w_scale=w_scale, values_q=values_q)


def inputs(m, k):
    rng = np.random.default_rng(m * 131 + k)
    x = rng.standard_normal((m, k), dtype=np.float32)
    x_q, x_scale = kernels.quantize_rows_s8(x)
    return x, x_q, x_scale


def ort_session(graph_nodes, inputs_info, output_info, initializers):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import helper

    graph = helper.make_graph(graph_nodes, "layer", inputs_info, [output_info], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnx, ort.InferenceSession(model.SerializeToString(), options,
                                      providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=None)
def ort_dynamic_int8(n, k, sparsity):
    """float x -> DynamicQuantizeLinear -> MatMulInteger(dense int8 W) -> float y."""
    from onnx import TensorProto, helper, numpy_helper

    lay = layer(n, k, sparsity)
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["x_q", "x_scale", "x_zero"]),
        helper.make_node("MatMulInteger", ["x_q", "w_t", "x_zero"], ["acc"]),
        helper.make_node("Cast", ["acc"], ["acc_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x_scale", "w_scale"], ["scale"]),
        helper.make_node("Mul", ["acc_f", "scale"], ["y"]),
    ]
    _, session = ort_session(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n]),
        [numpy_helper.from_array(np.ascontiguousarray(lay["w_q"].T), "w_t"),
         numpy_helper.from_array(lay["w_scale"], "w_scale")])
    return session


@functools.lru_cache(maxsize=None)
def ort_matmul_integer(n, k, sparsity):
    """uint8 x [m, k] @ dense int8 W.T -> int32 (onnxruntime's fast u8s8 path)."""
    from onnx import TensorProto, helper, numpy_helper

    lay = layer(n, k, sparsity)
    _, session = ort_session(
        [helper.make_node("MatMulInteger", ["x", "w_t"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [None, k])],
        helper.make_tensor_value_info("y", TensorProto.INT32, [None, n]),
        [numpy_helper.from_array(np.ascontiguousarray(lay["w_q"].T), "w_t")])
    return session


IMPLEMENTATIONS = ["edgerun-f32", "edgerun-s8", "edgerun-s8-dynamic", "scipy-csr-f32",
                   "numpy-dense-f32", "ort-dynamic-int8", "ort-matmulinteger"]


def runner(impl, n, k, sparsity, m):
    lay = layer(n, k, sparsity)
    x, x_q, x_scale = inputs(m, k)
    ip, ix = lay["indptr"], lay["indices"]
    if impl == "edgerun-f32":
        out = np.empty((m, n), np.float32)
        return lambda: kernels.spmm_csr_f32(ip, ix, lay["values"], x, out=out)
    if impl == "edgerun-s8":
        out = np.empty((m, n), np.float32)
        vq, ws = lay["values_q"], lay["w_scale"]
        return lambda: kernels.spmm_csr_s8(ip, ix, vq, x_q, x_scale, ws, out=out)
    if impl == "edgerun-s8-dynamic":
        vq, ws = lay["values_q"], lay["w_scale"]

        def dynamic():
            q, scale = kernels.quantize_rows_s8(x)
            return kernels.spmm_csr_s8(ip, ix, vq, q, scale, ws)
        return dynamic
    if impl == "scipy-csr-f32":
        csr = lay["csr"]
        return lambda: csr @ x.T
    if impl == "numpy-dense-f32":
        w_t = np.ascontiguousarray(lay["w"].T)
        return lambda: x @ w_t
    if impl == "ort-dynamic-int8":
        session = ort_dynamic_int8(n, k, sparsity)
        return lambda: session.run(None, {"x": x})
    if impl == "ort-matmulinteger":
        session = ort_matmul_integer(n, k, sparsity)
        x_u8 = (x_q.astype(np.int16) + 128).astype(np.uint8)
        return lambda: session.run(None, {"x": x_u8})
    raise AssertionError(impl)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("m", BATCHES)
@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{n}x{k}" for n, k in SHAPES])
def test_spmm(benchmark, shape, sparsity, m, impl):
    n, k = shape
    benchmark.group = f"spmm {n}x{k} sparsity={sparsity:.0%} M={m}"
    benchmark.extra_info.update(n=n, k=k, sparsity=sparsity, m=m, impl=impl,
                                isa=kernels.selected().get("spmm_csr_s8"))
    fn = runner(impl, n, k, sparsity, m)
    benchmark(fn)


def test_edgerun_agrees_with_scipy():
    """The benchmarked calls compute the same layer (a guard, not a timing)."""
    lay = layer(1024, 1024, 0.9)
    x, _, _ = inputs(8, 1024)
    y = kernels.spmm_csr_f32(lay["indptr"], lay["indices"], lay["values"], x)
    np.testing.assert_allclose(y, (lay["csr"] @ x.T).T, rtol=1e-4, atol=1e-4)
