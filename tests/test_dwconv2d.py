"""dwconv2d_f32 / dwconv2d_s8: every C variant this CPU runs equals the numpy
reference bit for bit (float too: the taps are summed in (kh, kw) order with a
separate multiply and add), and dwconv2d_f32 agrees with onnxruntime's Conv
with group = C (NCHW) after a transpose."""
import numpy as np
import pytest

from edgerun import reference
from edgerun.errors import EdgerunError, ShapeError

from conftest import assert_same_bits, call, kernel_implementations, random_s8

F32 = kernel_implementations("dwconv2d_f32")
S8 = kernel_implementations("dwconv2d_s8")

# (batch, h, w, kernel, stride, dilation, padding (top, left, bottom, right))
GEOMETRIES = [
    (1, 7, 9, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    (2, 8, 8, (3, 3), (2, 2), (1, 1), (0, 0, 1, 1)),      # TF "SAME" stride 2
    (1, 9, 11, (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
    (1, 10, 7, (5, 5), (2, 2), (1, 1), (1, 2, 3, 0)),     # asymmetric
    (1, 9, 6, (3, 3), (1, 1), (2, 2), (2, 3, 1, 2)),      # dilation 2
    (2, 1, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),      # 1x1 input: only the centre tap
    (1, 2, 3, (5, 5), (1, 2), (1, 1), (3, 4, 3, 4)),      # outputs entirely in padding
    (1, 5, 5, (3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),      # no padding
    (1, 13, 3, (3, 5), (2, 1), (2, 1), (0, 2, 1, 2)),     # non-square kernel
    (1, 4, 7, (1, 1), (3, 2), (1, 1), (0, 0, 0, 0)),      # 1x1 kernel, stride > kernel
    (1, 12, 12, (3, 3), (3, 3), (3, 3), (4, 4, 4, 4)),    # stride 3, dilation 3
]
CHANNELS = [1, 3, 8, 17, 32, 96]


def geometry_id(g):
    n, h, w, k, s, d, p = g
    return f"n{n}-{h}x{w}-k{k[0]}x{k[1]}-s{s[0]}{s[1]}-d{d[0]}{d[1]}-p{''.join(map(str, p))}"


def float_operands(rng, n, h, w, k, c):
    x = rng.standard_normal((n, h, w, c), dtype=np.float32) * 3
    weight = rng.standard_normal((k[0], k[1], c), dtype=np.float32)
    bias = rng.standard_normal(c, dtype=np.float32)
    return x, weight, bias


def int8_operands(rng, n, h, w, k, c, extreme=False):
    x = random_s8(rng, (n, h, w, c), extreme)
    weight = random_s8(rng, (k[0], k[1], c), extreme)
    w_scale = (rng.random(c) * 0.01 + 1e-4).astype(np.float32)
    bias = rng.standard_normal(c, dtype=np.float32)
    return x, weight, np.float32(0.02), w_scale, bias


def conv_kwargs(s, d, p, activation=None):
    return dict(stride=s, padding=p, dilation=d, activation=activation)


@pytest.mark.parametrize("variant", F32)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
@pytest.mark.parametrize("channels", CHANNELS)
def test_f32_matches_reference(variant, geometry, channels, rng):
    n, h, w, k, s, d, p = geometry
    x, weight, bias = float_operands(rng, n, h, w, k, channels)
    for b, act in [(bias, None), (None, "relu"), (bias, "relu6")]:
        y = call("dwconv2d_f32", variant, x, weight, b, **conv_kwargs(s, d, p, act))
        assert_same_bits(y, reference.dwconv2d_f32(x, weight, b, **conv_kwargs(s, d, p, act)))


@pytest.mark.parametrize("variant", S8)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("extreme", [False, True], ids=["random", "pm127"])
def test_s8_matches_reference(variant, geometry, channels, extreme, rng):
    n, h, w, k, s, d, p = geometry
    x, weight, x_scale, w_scale, bias = int8_operands(rng, n, h, w, k, channels, extreme)
    for b, act in [(bias, None), (None, "relu"), (bias, "relu6")]:
        kw = conv_kwargs(s, d, p, act)
        y = call("dwconv2d_s8", variant, x, weight, x_scale, w_scale, b, **kw)
        y_ref = reference.dwconv2d_s8(x, weight, x_scale, w_scale, b, **kw)
        assert_same_bits(y, y_ref)
        # int8 output: a scale that maps the largest |v| to 150, so some saturate at +-127
        out_scale = np.float32(max(np.abs(y_ref).max(), 1e-3) / 150)
        q = call("dwconv2d_s8", variant, x, weight, x_scale, w_scale, b, out_scale=out_scale, **kw)
        assert_same_bits(q, reference.dwconv2d_s8(x, weight, x_scale, w_scale, b,
                                                  out_scale=out_scale, **kw))
        if np.abs(y_ref).max() > 1e-3:
            assert np.abs(q).max() == 127


def direct_depthwise(x, weight, bias, stride, padding, dilation):
    """Independent float64 loop over outputs: the definition, not the tap-order trick."""
    n, h, w, c = x.shape
    kh, kw, _ = weight.shape
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = stride, padding, dilation
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, oh, ow, c))
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * sh - pt + ky * dh, ox * sw - pl + kx * dw
                    if 0 <= iy < h and 0 <= ix < w:
                        y[:, oy, ox, :] += x[:, iy, ix, :].astype(np.float64) * weight[ky, kx]
    return y + (0 if bias is None else bias)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_reference_is_the_definition(geometry, rng):
    n, h, w, k, s, d, p = geometry
    x, weight, bias = float_operands(rng, n, h, w, k, 5)
    expected = direct_depthwise(x, weight, bias, s, p, d)
    y = reference.dwconv2d_f32(x, weight, bias, **conv_kwargs(s, d, p))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    xq, wq, x_scale, w_scale, _ = int8_operands(rng, n, h, w, k, 5)
    acc = direct_depthwise(xq, wq, None, s, p, d)
    yq = reference.dwconv2d_s8(xq, wq, x_scale, w_scale, **conv_kwargs(s, d, p))
    np.testing.assert_allclose(yq, acc * x_scale * w_scale, rtol=1e-6)


@pytest.mark.parametrize("variant", F32)
def test_activations_clamp(variant, rng):
    x, weight, bias = float_operands(rng, 1, 6, 6, (3, 3), 17)
    x *= 10
    y = call("dwconv2d_f32", variant, x, weight, bias, padding=(1, 1, 1, 1))
    y6 = call("dwconv2d_f32", variant, x, weight, bias, padding=(1, 1, 1, 1), activation="relu6")
    assert y.min() < 0 and y.max() > 6
    assert np.array_equal(y6, np.clip(y, 0, 6))
    assert not np.signbit(y6).any()  # relu gives +0, never -0


def onnx_depthwise(x_nhwc, weight_hwc, bias, stride, padding, dilation):
    """onnxruntime Conv, group = C, NCHW, one thread; returned as NHWC."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    c = x_nhwc.shape[3]
    kh, kw = weight_hwc.shape[:2]
    w_oihw = np.ascontiguousarray(weight_hwc.transpose(2, 0, 1)[:, None, :, :])
    pt, pl, pb, pr = padding
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=c, kernel_shape=[kh, kw],
                            strides=list(stride), dilations=list(dilation),
                            pads=[pt, pl, pb, pr])
    graph = helper.make_graph(
        [node], "depthwise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w_oihw, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))})
    return y.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
@pytest.mark.parametrize("channels", [3, 32])
def test_f32_matches_onnxruntime_conv(geometry, channels, rng):
    from edgerun import _backend

    n, h, w, k, s, d, p = geometry
    x, weight, bias = float_operands(rng, n, h, w, k, channels)
    expected = onnx_depthwise(x, weight, bias, s, p, d)
    y = _backend.kernels.dwconv2d_f32(x, weight, bias, **conv_kwargs(s, d, p))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_shape_errors(rng):
    from edgerun import _backend

    k = _backend.kernels
    x, weight, bias = float_operands(rng, 1, 5, 5, (3, 3), 4)
    with pytest.raises(ShapeError, match="4-D NHWC"):
        k.dwconv2d_f32(x[0], weight)
    with pytest.raises(ShapeError, match=r"weight must be \[kernel_h, kernel_w, 4\]"):
        k.dwconv2d_f32(x, weight[:, :, :3])
    with pytest.raises(ShapeError, match="padding"):
        k.dwconv2d_f32(x, weight, padding=(1, 1))
    with pytest.raises(ShapeError, match="stride"):
        k.dwconv2d_f32(x, weight, stride=(0, 1))
    with pytest.raises(ShapeError, match="exceeds the padded input"):
        k.dwconv2d_f32(x, weight, dilation=(3, 1))
    with pytest.raises(ShapeError, match="activation"):
        k.dwconv2d_f32(x, weight, activation="gelu")
    with pytest.raises(ShapeError, match="bias"):
        k.dwconv2d_f32(x, weight, bias[:3])
    with pytest.raises(ShapeError, match="float32"):
        k.dwconv2d_f32(x.astype(np.float64), weight)
    with pytest.raises(ShapeError, match="out must be"):
        k.dwconv2d_f32(x, weight, out=np.empty((1, 3, 3, 5), np.float32))
    xq, wq, x_scale, w_scale, _ = int8_operands(rng, 1, 5, 5, (3, 3), 4)
    with pytest.raises(ShapeError, match="w_scale"):
        k.dwconv2d_s8(xq, wq, x_scale, w_scale[:2])
    with pytest.raises(ShapeError, match="int8"):
        k.dwconv2d_s8(x, wq, x_scale, w_scale)
    with pytest.raises(ShapeError, match="out_scale"):
        k.dwconv2d_s8(xq, wq, x_scale, w_scale, out_scale=0.0)


def test_out_is_filled_in_place(rng):
    from edgerun import _backend

    x, weight, bias = float_operands(rng, 1, 6, 5, (3, 3), 9)
    out = np.empty((1, 6, 5, 9), np.float32)
    y = _backend.kernels.dwconv2d_f32(x, weight, bias, padding=(1, 1, 1, 1), out=out)
    assert y is out
    assert_same_bits(out, reference.dwconv2d_f32(x, weight, bias, padding=(1, 1, 1, 1)))


def test_unknown_variant_is_refused():
    from edgerun import _backend

    if _backend.name != "c":
        pytest.skip("the C extension is not built")
    x = np.zeros((1, 3, 3, 2), np.float32)
    with pytest.raises(EdgerunError, match="no variant"):
        _backend.kernels.dwconv2d_f32(x, np.zeros((3, 3, 2), np.float32), variant="nope")


@pytest.mark.parametrize("variant", F32)
def test_empty_and_strided_inputs(variant, rng):
    x, weight, bias = float_operands(rng, 2, 6, 5, (3, 3), 9)
    y = call("dwconv2d_f32", variant, x[:0], weight, bias, padding=(1, 1, 1, 1))
    assert y.shape == (0, 6, 5, 9)
    # A non-contiguous NHWC view (e.g. transposed from NCHW) is copied, not misread.
    x_view = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    assert not x_view.flags.c_contiguous
    y = call("dwconv2d_f32", variant, x_view, weight, bias, padding=(1, 1, 1, 1))
    assert_same_bits(y, reference.dwconv2d_f32(x, weight, bias, padding=(1, 1, 1, 1)))


@pytest.mark.parametrize("variant", S8)
def test_s8_all_taps_in_padding_give_bias(variant, rng):
    """A 1x1 input with padding 3 and a 3x3 kernel at stride 1: the corner outputs
    see no input at all, so they are exactly the activated bias."""
    x, weight, x_scale, w_scale, bias = int8_operands(rng, 1, 1, 1, (3, 3), 20)
    y = call("dwconv2d_s8", variant, x, weight, x_scale, w_scale, bias, padding=(3, 3, 3, 3),
             activation="relu")
    assert y.shape == (1, 5, 5, 20)
    assert_same_bits(y[0, 0, 0], np.maximum(bias, 0).astype(np.float32))
    assert_same_bits(y, reference.dwconv2d_s8(x, weight, x_scale, w_scale, bias,
                                              padding=(3, 3, 3, 3), activation="relu"))
