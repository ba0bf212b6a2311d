"""Depthwise 3x3 convolution, NHWC: edgerun against its peers, single-threaded,
one table per MobileNetV2 layer shape.

    python -m pytest bench/test_bench_dwconv2d.py --benchmark-group-by=group \
        --benchmark-columns=min,median,ops

Each group is one layer (input H x W x C, stride, padding 1, ReLU6, bias); within it:
  edgerun-f32          dwconv2d_f32, the dispatched variant
  edgerun-f32-scalar   dwconv2d_f32, the portable C
  edgerun-s8           dwconv2d_s8, int8 in, requantized int8 out (the int8 pipeline)
  edgerun-s8-f32out    dwconv2d_s8 with float32 output
  numpy-nhwc-f32       numpy: pad, then 9 shifted slices multiplied and added in place
  ort-f32-nchw         onnxruntime Conv, group = C, on NCHW (its native layout), one thread
"""
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_name] = "1"

import functools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from edgerun import _backend  # noqa: E402

# (H, W, C, stride): MobileNetV2's depthwise layers at 224x224 input.
SHAPES = [(112, 112, 32, 1), (56, 56, 144, 1), (28, 28, 192, 2), (7, 7, 960, 1)]
PADDING = (1, 1, 1, 1)

if _backend.name != "c":
    pytest.skip("the C extension is not built", allow_module_level=True)
kernels = _backend.kernels


@functools.lru_cache(maxsize=None)
def layer(h, w, c, stride):
    rng = np.random.default_rng(h * 1000 + c + stride)
    x = rng.standard_normal((1, h, w, c), dtype=np.float32)
    weight = rng.standard_normal((3, 3, c), dtype=np.float32) * 0.3
    bias = rng.standard_normal(c, dtype=np.float32) * 0.1
    x_q = np.clip(np.rint(x / (np.abs(x).max() / 127)), -127, 127).astype(np.int8)
    w_scale = (np.abs(weight).max(axis=(0, 1)) / 127).astype(np.float32)
    w_q = np.clip(np.rint(weight / w_scale), -127, 127).astype(np.int8)
    return dict(x=x, weight=weight, bias=bias, x_q=x_q, x_scale=np.float32(np.abs(x).max() / 127),
                w_q=w_q, w_scale=w_scale)


def numpy_nhwc(x, weight, bias, stride):
    """The fastest plain-numpy NHWC depthwise conv we know: one pad, then per tap
    an in-place multiply into a temporary and an add into the accumulator."""
    s = stride
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    oh = (xp.shape[1] - 3) // s + 1
    ow = (xp.shape[2] - 3) // s + 1
    acc = np.zeros((x.shape[0], oh, ow, x.shape[3]), np.float32)
    tmp = np.empty_like(acc)
    for ky in range(3):
        for kx in range(3):
            np.multiply(xp[:, ky: ky + (oh - 1) * s + 1: s, kx: kx + (ow - 1) * s + 1: s],
                        weight[ky, kx], out=tmp)
            acc += tmp
    acc += bias
    return np.clip(acc, 0, 6, out=acc)


@functools.lru_cache(maxsize=None)
def ort_session(h, w, c, stride):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    lay = layer(h, w, c, stride)
    w_oihw = np.ascontiguousarray(lay["weight"].transpose(2, 0, 1)[:, None])
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv"], group=c, kernel_shape=[3, 3],
                              strides=[stride, stride], pads=list(PADDING)),
             helper.make_node("Clip", ["conv", "zero", "six"], ["y"])]
    graph = helper.make_graph(
        nodes, "depthwise", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w_oihw, "w"), numpy_helper.from_array(lay["bias"], "b"),
         numpy_helper.from_array(np.float32(0).reshape(()), "zero"),
         numpy_helper.from_array(np.float32(6).reshape(()), "six")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


IMPLEMENTATIONS = ["edgerun-f32", "edgerun-f32-scalar", "edgerun-s8", "edgerun-s8-f32out",
                   "numpy-nhwc-f32", "ort-f32-nchw"]


def runner(impl, h, w, c, stride):
    lay = layer(h, w, c, stride)
    conv = dict(stride=(stride, stride), padding=PADDING, activation="relu6")
    if impl.startswith("edgerun-f32"):
        variant = "scalar" if impl.endswith("scalar") else None
        out = kernels.dwconv2d_f32(lay["x"], lay["weight"], lay["bias"], **conv)
        return lambda: kernels.dwconv2d_f32(lay["x"], lay["weight"], lay["bias"], out=out,
                                            variant=variant, **conv)
    if impl.startswith("edgerun-s8"):
        out_scale = None if impl.endswith("f32out") else np.float32(6 / 127)
        args = (lay["x_q"], lay["w_q"], lay["x_scale"], lay["w_scale"], lay["bias"])
        out = kernels.dwconv2d_s8(*args, out_scale=out_scale, **conv)
        return lambda: kernels.dwconv2d_s8(*args, out_scale=out_scale, out=out, **conv)
    if impl == "numpy-nhwc-f32":
        return lambda: numpy_nhwc(lay["x"], lay["weight"], lay["bias"], stride)
    if impl == "ort-f32-nchw":
        session = ort_session(h, w, c, stride)
        x_nchw = np.ascontiguousarray(lay["x"].transpose(0, 3, 1, 2))
        return lambda: session.run(None, {"x": x_nchw})
    raise AssertionError(impl)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{h}x{w}x{c}-s{s}" for h, w, c, s in SHAPES])
def test_dwconv2d(benchmark, shape, impl):
    h, w, c, stride = shape
    benchmark.group = f"dwconv2d 3x3 {h}x{w}x{c} stride {stride}"
    benchmark.extra_info.update(h=h, w=w, c=c, stride=stride, impl=impl,
                                isa=kernels.selected().get("dwconv2d_f32"))
    benchmark(runner(impl, h, w, c, stride))


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{h}x{w}x{c}-s{s}" for h, w, c, s in SHAPES])
def test_benchmarked_calls_agree(shape):
    """The benchmarked calls compute the same layer (a guard, not a timing)."""
    h, w, c, stride = shape
    lay = layer(h, w, c, stride)
    y = kernels.dwconv2d_f32(lay["x"], lay["weight"], lay["bias"], stride=(stride, stride),
                             padding=PADDING, activation="relu6")
    np.testing.assert_allclose(y, numpy_nhwc(lay["x"], lay["weight"], lay["bias"], stride),
                               rtol=1e-5, atol=1e-5)
    (y_ort,) = ort_session(h, w, c, stride).run(
        None, {"x": np.ascontiguousarray(lay["x"].transpose(0, 3, 1, 2))})
    np.testing.assert_allclose(y, y_ort.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
