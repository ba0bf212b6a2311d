"""Shared test helpers: which kernel variants this machine runs, random data."""
import numpy as np
import pytest

from edgerun import _backend


def runnable_variants(op):
    """Names of the C variants of op this CPU can run (empty on the numpy backend)."""
    if _backend.name != "c":
        return []
    return [variant for name, variant, _, ok in _backend.kernels.variants() if name == op and ok]


def kernel_implementations(op):
    """pytest params: every runnable C variant of op, as (module, variant)."""
    return [pytest.param(variant, id=variant) for variant in runnable_variants(op)]


def call(op, variant, *args, **kwargs):
    """Call op's C variant by name."""
    return getattr(_backend.kernels, op)(*args, variant=variant, **kwargs)


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


def random_s8(rng, shape, extreme=False):
    """Symmetric int8 in [-127, 127]; extreme=True uses only +-127 (the saturation trap)."""
    if extreme:
        return (rng.integers(0, 2, size=shape) * 254 - 127).astype(np.int8)
    return rng.integers(-127, 128, size=shape).astype(np.int8)


def assert_same_bits(y, y_ref):
    """Equal dtype, shape and bits (float32 compared as its uint32 patterns)."""
    assert y.dtype == y_ref.dtype and y.shape == y_ref.shape
    if y.dtype == np.float32:
        assert np.array_equal(y.view(np.uint32), y_ref.view(np.uint32))
    else:
        assert np.array_equal(y, y_ref)
