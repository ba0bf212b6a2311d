"""What the runtime works out once per input shape (Conv2dStep's Im2colF32, evaluate.Pool's
geometry, Session's bindings) must give the bits of the per-call code it replaces, follow
a change of input shape, and still refuse bad inputs with ShapeError."""
import numpy as np
import pytest

from conftest import assert_same_bits, kernel_implementations
from edgerun import _backend, reference
from edgerun.errors import ShapeError
from edgerun.evaluate import Pool, evaluate, flatten, global_average_pool, pad_spatial, windows
from edgerun.graph import Graph, Node, Tensor, ValueInfo
from edgerun.runtime.layout import NHWC_SPATIAL, windows_nhwc
from edgerun.runtime.ops import Conv2dStep
from edgerun.runtime.session import Session

GEOMETRIES = [  # (kh, kw, strides, pads, dilations)
    (1, 3, (1, 1), (0, 1, 0, 1), (1, 1)),       # kws1d: a Conv1d as a 1-high conv
    (3, 3, (2, 2), (1, 1, 1, 1), (1, 1)),
    (3, 2, (2, 1), (0, 1, 2, 0), (1, 2)),
    (2, 2, (1, 1), (0, 0, 0, 0), (1, 1)),       # no padding: a view of x itself
    (1, 1, (1, 1), (1, 0, 0, 1), (1, 1)),       # 1x1 but padded: not the pointwise path
]


IM2COLS = [pytest.param(("c", v, "hwc"), id=f"c-{v}") for v in
           [p.values[0] for p in kernel_implementations("im2col_f32")]]
IM2COLS += [pytest.param(("numpy", None, order), id=f"numpy-{order}") for order in ("hwc", "chw")]


def make_im2col(impl, shape, pads, kh, kw, strides=(1, 1), dilations=(1, 1)):
    backend, variant, order = impl
    if backend == "c":
        return _backend.kernels.Im2colF32(shape, pads, kh, kw, strides, dilations, variant=variant)
    return reference.Im2colF32(shape, pads, kh, kw, strides, dilations, order=order)


@pytest.mark.parametrize("kh,kw,strides,pads,dilations", GEOMETRIES)
@pytest.mark.parametrize("impl", IM2COLS)
@pytest.mark.parametrize("n", [0, 1, 3])
def test_im2col_copies_the_window_view(kh, kw, strides, pads, dilations, impl, n, rng):
    order = impl[2]
    x = rng.normal(size=(n, 6, 7, 5)).astype(np.float32)
    im2col = make_im2col(impl, x.shape, pads, kh, kw, strides, dilations)
    view = windows_nhwc(x, pads, kh, kw, strides, dilations, order)
    expected = np.ascontiguousarray(view).reshape(-1, kh * kw * 5)
    for source in (x, x[:, ::-1][:, ::-1]):        # contiguous and not
        rows = im2col(source)
        assert rows.flags.c_contiguous and (im2col.oh, im2col.ow) == view.shape[1:3]
        assert_same_bits(rows, expected)
    assert not np.shares_memory(rows, x)


@pytest.mark.parametrize("impl", IM2COLS)
def test_im2col_fills_padding_with_zeros_and_copies_nan_and_inf(impl, rng):
    """Windows wholly in the padding, -0.0, NaN and Inf: a copy moves every bit."""
    x = rng.normal(size=(2, 2, 3, 4)).astype(np.float32)
    x[0, 0, 0] = [np.nan, np.inf, -np.inf, -0.0]
    im2col = make_im2col(impl, x.shape, (4, 3, 4, 5), 3, 3)
    view = windows_nhwc(x, (4, 3, 4, 5), 3, 3, (1, 1), (1, 1), impl[2])
    assert_same_bits(im2col(x), np.ascontiguousarray(view).reshape(-1, 36))


@pytest.mark.parametrize("impl", IM2COLS)
def test_im2col_refuses_bad_geometry_and_inputs_by_name(impl):
    with pytest.raises(ShapeError, match="kernel height 4 exceeds the padded input height 3"):
        make_im2col(impl, (1, 2, 3, 4), (0, 1, 1, 0), 4, 2)
    with pytest.raises(ShapeError, match="4-D NHWC"):
        make_im2col(impl, (2, 3, 4), (0, 0, 0, 0), 1, 1)
    with pytest.raises(ShapeError, match="stride"):
        make_im2col(impl, (1, 3, 3, 2), (0, 0, 0, 0), 1, 1, strides=(0, 1))
    with pytest.raises(ShapeError, match="4-D NHWC"):
        make_im2col(impl, (-1, 3, 3, 2), (0, 0, 0, 0), 1, 1)
    im2col = make_im2col(impl, (1, 3, 3, 2), (1, 1, 1, 1), 3, 3)
    for bad in (np.zeros((1, 3, 4, 2), np.float32), np.zeros((1, 3, 3, 2), np.float64),
                np.zeros((3, 3, 2), np.float32),
                np.zeros((1, 3, 3, 2), np.dtype(np.float32).newbyteorder())):
        with pytest.raises(ShapeError, match=r"im2col expects float32 \[1, 3, 3, 2\]"):
            im2col(bad)


def int8_conv_weight(rng, out, c, kh, kw):
    w = rng.normal(size=(out, c, kh, kw)).astype(np.float32)
    scale = (np.abs(w).reshape(out, -1).max(axis=1) / 127).astype(np.float32)
    q = np.round(w / scale[:, None, None, None]).astype(np.int8)
    return Tensor("w", (out, c, kh, kw), "dense", {"values": q, "scale": scale})


@pytest.mark.parametrize("encoding", ["int8", "float"])
def test_conv_step_follows_a_change_of_input_shape(encoding, rng):
    """The Im2col kept for one shape is not reused for another: each call matches the
    window view + LinearStep (int8, bit for bit) or evaluate's conv2d (float)."""
    if encoding == "int8":
        weight = int8_conv_weight(rng, 6, 4, 1, 3)
    else:
        weight = Tensor.dense("w", rng.normal(size=(6, 4, 1, 3)).astype(np.float32))
    bias = Tensor.dense("b", rng.normal(size=6).astype(np.float32))
    attrs = {"strides": [1, 2], "pads": [0, 1, 0, 1], "dilations": [1, 1], "group": 1,
             "activation": "relu"}
    node = Node("Conv2d", "conv", ["x", "w", "b"], ["y"], attrs)
    step = Conv2dStep(node, weight, bias)
    assert step.kind == ("gemm_s8" if encoding == "int8" else "blas")
    graph = Graph([ValueInfo("x", (None, 4, None, None))], [ValueInfo("y", (None, 6, None, None))],
                  [node], {"w": weight, "b": bias})
    for shape in [(1, 1, 49, 4), (3, 1, 20, 4), (1, 2, 11, 4), (1, 1, 49, 4)]:
        x = rng.normal(size=shape).astype(np.float32)
        y = step(x)
        if encoding == "int8":
            view = windows_nhwc(x, step.pads, 1, 3, step.strides, step.dilations, step.order)
            rows = np.ascontiguousarray(view).reshape(-1, 12)
            expected = step.linear(rows).reshape(view.shape[:3] + (6,))
            assert_same_bits(y, expected)
        else:
            nchw = evaluate(graph, x.transpose(0, 3, 1, 2))["y"]
            np.testing.assert_allclose(y, nchw.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    assert len(step._im2col) == 3


def test_conv_step_refuses_wrong_channels(rng):
    node = Node("Conv2d", "conv", ["x", "w"], ["y"], {"pads": [0, 1, 0, 1]})
    step = Conv2dStep(node, int8_conv_weight(rng, 6, 4, 1, 3), None)
    step(np.zeros((1, 1, 9, 4), np.float32))
    with pytest.raises(ShapeError, match=r"conv 'conv' expects NHWC inputs with 4 channels, "
                                         r"got shape \[1, 1, 9, 5\]"):
        step(np.zeros((1, 1, 9, 5), np.float32))


def kws1d_graph(rng, channels=8, length=None):
    """Conv1d-style (1-high) convs with MaxPool / AveragePool windows, a global pool and
    a classifier: kws1d's op mix at toy size, on int8 weights."""
    tensors = {"w1": int8_conv_weight(rng, channels, 5, 1, 3),
               "w2": int8_conv_weight(rng, channels, channels, 1, 3)}
    conv = {"strides": [1, 1], "pads": [0, 1, 0, 1], "dilations": [1, 1], "group": 1,
            "activation": "relu"}
    fc = rng.normal(size=(3, channels)).astype(np.float32)
    tensors["fc"] = Tensor.dense("fc", fc)
    nodes = [
        Node("Reshape", "to_2d", ["x"], ["x2"], {"shape": [0, 5, 1, -1]}),
        Node("Conv2d", "conv1", ["x2", "w1"], ["h1"], conv),
        Node("MaxPool", "max", ["h1"], ["h2"], {"kernel_shape": [1, 2], "strides": [1, 2]}),
        Node("Conv2d", "conv2", ["h2", "w2"], ["h3"], conv),
        Node("AveragePool", "avg", ["h3"], ["h4"], {"kernel_shape": [1, 3], "strides": [1, 2],
                                                    "pads": [0, 1, 0, 1], "count_include_pad": 0}),
        Node("GlobalAveragePool", "gap", ["h4"], ["h5"], {}),
        Node("Flatten", "flat", ["h5"], ["h6"], {"axis": 1}),
        Node("Linear", "fc", ["h6", "fc"], ["y"], {}),
    ]
    return Graph([ValueInfo("x", (None, 5, length))], [ValueInfo("y", (None, 3))], nodes, tensors)


def test_session_follows_a_change_of_length_and_batch(rng):
    """One session, inputs of several lengths and batch sizes in turn: each result is the
    bits of a fresh session on that input (nothing of the previous shape is reused)
    and of the numpy reference kernels."""
    graph = kws1d_graph(rng)
    session = Session(graph)
    for shape in [(1, 5, 49), (4, 5, 49), (1, 5, 23), (2, 5, 8), (1, 5, 49)]:
        x = rng.normal(size=shape).astype(np.float32)
        y = session.run(x)
        assert_same_bits(y, Session(graph).run(x))
        assert_same_bits(y, Session(graph, kernels=reference).run(x))
        np.testing.assert_allclose(y, evaluate(graph, x)["y"], rtol=0.05, atol=0.05)


def test_session_still_names_the_expected_shape(rng):
    session = Session(kws1d_graph(rng, length=49))
    session.run(np.zeros((1, 5, 49), np.float32))
    with pytest.raises(ShapeError, match=r"input 'x' expects float32 \[.*5, 49\]"):
        session.run(np.zeros((1, 5, 50), np.float32))
    with pytest.raises(ShapeError, match="expects float32"):
        session.run(np.zeros((1, 6, 49), np.float32))
    # too short for the pooling windows: refused with the window's geometry
    short = Session(kws1d_graph(rng))
    with pytest.raises(ShapeError, match="does not fit the padded input"):
        short.run(np.zeros((1, 5, 1), np.float32))


def test_session_rebinds_when_its_steps_change(rng):
    """_run's bindings belong to one list of steps: a replaced list is bound again."""
    graph = kws1d_graph(rng)
    session = Session(graph)
    x = rng.normal(size=(2, 5, 17)).astype(np.float32)
    y = session.run(x)
    calls = []

    def spy(step):
        def call(*args):
            calls.append(1)
            return step(*args)
        return call

    session._steps = [(node, spy(step), extra) if node.op == "MaxPool" else (node, step, extra)
                      for node, step, extra in session._steps]
    assert_same_bits(session.run(x), y)
    assert calls == [1]


# ------------------------------------------------------------------ pools

def pool_windows(x, op, k, strides, pads, include, axes):
    """The pool as a reduction over the window view: the code Pool replaced."""
    fill = -np.inf if op == "MaxPool" else 0.0
    view = windows(pad_spatial(x, pads, fill, axes), *k, strides, (1, 1), axes)
    if op == "MaxPool":
        return view.max(axis=(-2, -1))
    sums = view.sum(axis=(-2, -1), dtype=np.float32)
    if include or not any(pads):
        return sums / np.float32(k[0] * k[1])
    image = [1, 1, 1, 1]
    image[axes[0]], image[axes[1]] = x.shape[axes[0]], x.shape[axes[1]]
    ones = pad_spatial(np.ones(image, np.float32), pads, axes=axes)
    return sums / windows(ones, *k, strides, (1, 1), axes).sum(axis=(-2, -1))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("k,strides,pads", [((1, 2), (1, 2), (0, 0, 0, 0)),
                                            ((1, 3), (1, 2), (0, 1, 0, 1)),
                                            ((3, 3), (2, 2), (1, 1, 1, 1)),
                                            ((3, 2), (1, 2), (0, 1, 1, 0)),
                                            ((1, 1), (1, 1), (0, 0, 0, 0))])
@pytest.mark.parametrize("axes", [(2, 3), NHWC_SPATIAL])
def test_pool_keeps_the_bits_across_shapes(op, k, strides, pads, axes, rng):
    for include in (0, 1):
        pool = Pool(op, k, strides, pads, include, axes)
        for shape in [(1, 4, 7, 9), (3, 4, 7, 9), (1, 5, 8, 3), (0, 4, 7, 9), (1, 4, 7, 9)]:
            x = rng.normal(size=shape).astype(np.float32)
            if x.size:
                x.flat[1] = np.nan if op == "MaxPool" else x.flat[1]
            y = pool(x)
            assert y.flags.c_contiguous and not np.shares_memory(y, x)
            expected = pool_windows(x, op, k, strides, pads, include, axes)
            assert y.dtype == np.float32 and y.shape == expected.shape
            assert np.array_equal(y.view(np.int32), expected.view(np.int32)) or \
                np.array_equal(y, expected, equal_nan=True)
            assert_same_bits(pool(np.asfortranarray(x)), y)


def test_pool_refuses_bad_inputs():
    pool = Pool("MaxPool", (3, 3), (1, 1), (0, 0, 0, 0), axes=NHWC_SPATIAL)
    with pytest.raises(ShapeError, match="4-D"):
        pool(np.zeros((2, 5, 5), np.float32))
    with pytest.raises(ShapeError, match="does not fit the padded input of 2x5"):
        pool(np.zeros((1, 2, 5, 3), np.float32))


@pytest.mark.parametrize("axes", [(2, 3), (1, 2)])
def test_global_average_pool_is_numpy_mean(axes, rng):
    x = rng.normal(size=(2, 3, 5, 7)).astype(np.float32) * 1e3
    assert_same_bits(global_average_pool(x, axes), x.mean(axis=axes, keepdims=True, dtype=np.float32))


def test_flatten_is_a_view_of_contiguous_input(rng):
    x = rng.normal(size=(2, 3, 1, 4)).astype(np.float32)
    for axis, shape in [(0, (1, 24)), (1, (2, 12)), (-1, (6, 4)), (4, (24, 1))]:
        y = flatten(x, axis)
        assert y.shape == shape and np.shares_memory(y, x)
    assert flatten(x.transpose(0, 3, 1, 2), 1).shape == (2, 12)
