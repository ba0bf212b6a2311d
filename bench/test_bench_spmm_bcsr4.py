"""1x4 block-sparse x dense: edgerun against CSR, dense int8 and onnxruntime, one thread.

    python -m pytest bench/test_bench_spmm_bcsr4.py --benchmark-group-by=group \
        --benchmark-columns=min,median,ops

Each group is one layer W [n, k] at 90% sparsity (10% of the weights kept, as
k * n * 0.1 / 4 blocks of 1x4 at random aligned positions) and one batch M; side by side:
  edgerun-bcsr4-s8    spmm_bcsr4_s8 on int8 x (the kernel alone)
  edgerun-bcsr4-f32   spmm_bcsr4_f32 on float x
  edgerun-csr-s8      spmm_csr_s8 with the same number of nonzero weights, at
                      random (unstructured) positions
  edgerun-gemm-s8     gemm_s8 on the dense int8 matrix of the block layer
  ort-dynamic-int8    onnxruntime after quantize_dynamic (QInt8 weights) of the
                      dense float MatMul: what a user would otherwise ship
"""
import functools
import os
import tempfile

import numpy as np
import pytest

from edgerun import _backend

SHAPES = [(4096, 4096), (1024, 1024)]
BATCHES = [1, 8]
KEPT = 0.1

if _backend.name != "c":
    pytest.skip("the C extension is not built", allow_module_level=True)
kernels = _backend.kernels


@functools.lru_cache(maxsize=None)
def layer(n, k):
    """The block layer (u16 indices), its dense int8 and float forms, and an
    unstructured CSR with as many nonzeros."""
    rng = np.random.default_rng(n * 7 + k)
    slots_per_row = k // 4
    nblocks = int(n * k * KEPT / 4)
    slots = np.sort(rng.choice(n * slots_per_row, size=nblocks, replace=False))
    rows, starts = slots // slots_per_row, (slots % slots_per_row) * 4
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.uint32)
    indices = starts.astype(np.uint16)
    values_q = rng.integers(-127, 128, size=4 * nblocks).astype(np.int8)
    values = (values_q.astype(np.float32) / 127).astype(np.float32)
    w_scale = np.full(n, 1 / 127, np.float32)
    dense_q = np.zeros((n, k), np.int8)
    dense_q[np.repeat(rows, 4), (starts[:, None] + np.arange(4)).ravel()] = values_q
    nnz = 4 * nblocks
    flat = np.sort(rng.choice(n * k, size=nnz, replace=False))
    csr_indptr = np.concatenate([[0], np.cumsum(np.bincount(flat // k, minlength=n))])
    return dict(indptr=indptr, indices=indices, values_q=values_q, values=values,
                w_scale=w_scale, dense_q=dense_q,
                csr_indptr=csr_indptr.astype(np.uint32),
                csr_indices=(flat % k).astype(np.uint16),
                csr_values=rng.integers(-127, 128, size=nnz).astype(np.int8))


def inputs(m, k):
    rng = np.random.default_rng(m * 131 + k)
    x = rng.standard_normal((m, k), dtype=np.float32)
    x_q, x_scale = kernels.quantize_rows_s8(x)
    return x, x_q, x_scale


@functools.lru_cache(maxsize=None)
def ort_dynamic_int8(n, k):
    """The dense float MatMul of the layer through onnxruntime's quantize_dynamic."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    lay = layer(n, k)
    w_t = np.ascontiguousarray((lay["dense_q"].astype(np.float32) / 127).T)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", n])],
        [numpy_helper.from_array(w_t, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    folder = tempfile.mkdtemp(prefix="edgerun-bench-")
    src, dst = os.path.join(folder, "mm.onnx"), os.path.join(folder, "mm.int8.onnx")
    onnx.save(model, src)
    quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(dst, options, providers=["CPUExecutionProvider"])


IMPLEMENTATIONS = ["edgerun-bcsr4-s8", "edgerun-bcsr4-f32", "edgerun-csr-s8",
                   "edgerun-gemm-s8", "ort-dynamic-int8"]


def runner(impl, n, k, m):
    lay = layer(n, k)
    x, x_q, x_scale = inputs(m, k)
    out = np.empty((m, n), np.float32)
    ws = lay["w_scale"]
    if impl == "edgerun-bcsr4-s8":
        return lambda: kernels.spmm_bcsr4_s8(lay["indptr"], lay["indices"], lay["values_q"],
                                             x_q, x_scale, ws, out=out)
    if impl == "edgerun-bcsr4-f32":
        return lambda: kernels.spmm_bcsr4_f32(lay["indptr"], lay["indices"], lay["values"], x,
                                              out=out)
    if impl == "edgerun-csr-s8":
        return lambda: kernels.spmm_csr_s8(lay["csr_indptr"], lay["csr_indices"],
                                           lay["csr_values"], x_q, x_scale, ws, out=out)
    if impl == "edgerun-gemm-s8":
        return lambda: kernels.gemm_s8(x_q, lay["dense_q"], x_scale, ws, out=out)
    if impl == "ort-dynamic-int8":
        session = ort_dynamic_int8(n, k)
        return lambda: session.run(None, {"x": x})
    raise AssertionError(impl)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("m", BATCHES)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{n}x{k}" for n, k in SHAPES])
def test_spmm_bcsr4(benchmark, shape, m, impl):
    n, k = shape
    benchmark.group = f"spmm_bcsr4 {n}x{k} kept={KEPT:.0%} M={m}"
    benchmark.extra_info.update(n=n, k=k, kept=KEPT, m=m, impl=impl,
                                isa=kernels.selected().get("spmm_bcsr4_s8"))
    benchmark(runner(impl, n, k, m))


def test_block_layer_equals_its_dense_form():
    """The benchmarked block layer and dense matrix are the same layer (a guard)."""
    lay = layer(1024, 1024)
    _, x_q, x_scale = inputs(3, 1024)
    y = kernels.spmm_bcsr4_s8(lay["indptr"], lay["indices"], lay["values_q"], x_q, x_scale,
                              lay["w_scale"])
    assert np.array_equal(y, kernels.gemm_s8(x_q, lay["dense_q"], x_scale, lay["w_scale"]))
