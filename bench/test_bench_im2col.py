"""im2col from NHWC, the copy in front of every standard conv's GEMM: edgerun's C
op against the numpy twin it replaced, single-threaded, one table per conv shape.

    python -m pytest bench/test_bench_im2col.py --benchmark-group-by=group \
        --benchmark-columns=min,median,ops

Each group is one conv (input H x W x C, kernel, stride, padding); within it:
  edgerun     Im2colF32, the C op (one memcpy per window row, zeros for the padding)
  numpy-view  reference.Im2colF32: a zero-filled padded copy, a strided view, a copy
"""
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_name] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from edgerun import _backend, reference  # noqa: E402

# (H, W, C, kh, kw, stride, pads): KWS 1-D's first conv (40 MFCCs x 49 frames as a
# 1-high image), a ResNet stage-1 3x3, MobileNetV2's stem (3 channels, stride 2).
SHAPES = [(1, 49, 40, 1, 3, 1, (0, 1, 0, 1)), (32, 32, 16, 3, 3, 1, (1, 1, 1, 1)),
          (128, 128, 3, 3, 3, 2, (0, 0, 1, 1))]
IDS = [f"{h}x{w}x{c}-k{kh}x{kw}-s{s}" for h, w, c, kh, kw, s, _ in SHAPES]

if _backend.name != "c":
    pytest.skip("the C extension is not built", allow_module_level=True)


def make(impl, h, w, c, kh, kw, stride, pads):
    shape = (1, h, w, c)
    cls = _backend.kernels.Im2colF32 if impl == "edgerun" else reference.Im2colF32
    return cls(shape, pads, kh, kw, (stride, stride), (1, 1))


@pytest.mark.parametrize("impl", ["edgerun", "numpy-view"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_im2col(benchmark, shape, impl):
    h, w, c, kh, kw, stride, pads = shape
    benchmark.group = f"im2col {h}x{w}x{c} k{kh}x{kw} stride {stride}"
    x = np.random.default_rng(h + c).standard_normal((1, h, w, c), dtype=np.float32)
    im2col = make(impl, *shape)
    benchmark(im2col, x)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_benchmarked_calls_agree(shape):
    """Both benchmarked calls give the same rows (a guard, not a timing)."""
    h, w, c = shape[:3]
    x = np.random.default_rng(h + c).standard_normal((1, h, w, c), dtype=np.float32)
    assert np.array_equal(make("edgerun", *shape)(x), make("numpy-view", *shape)(x))
