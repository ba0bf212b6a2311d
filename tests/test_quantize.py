import numpy as np
import pytest

import edgerun
from edgerun import reference

from conftest import call, kernel_implementations

OP = "quantize_rows_s8"


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("m,k", [(1, 1), (1, 7), (3, 8), (2, 9), (5, 31), (4, 64), (1, 1000)])
def test_matches_reference_bit_for_bit(variant, m, k, rng):
    x = (rng.standard_normal((m, k)) * 3).astype(np.float32)
    q, scale = call(OP, variant, x)
    q_ref, scale_ref = reference.quantize_rows_s8(x)
    assert np.array_equal(q, q_ref)
    assert np.array_equal(scale.view(np.uint32), scale_ref.view(np.uint32))


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_zero_rows_and_ties(variant):
    x = np.zeros((3, 20), dtype=np.float32)
    x[1, :4] = [127.0, 0.5, 1.5, -2.5]  # inv = 1: halves round to even
    q, scale = call(OP, variant, x)
    assert np.array_equal(q[0], np.zeros(20, np.int8)) and scale[0] == 0
    assert list(q[1, :4]) == [127, 0, 2, -2]
    assert np.array_equal(q, reference.quantize_rows_s8(x)[0])


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_is_refused(variant, bad):
    x = np.ones((2, 17), dtype=np.float32)
    x[1, 16] = bad
    with pytest.raises(edgerun.NonFiniteError):
        call(OP, variant, x)
    with pytest.raises(edgerun.NonFiniteError):
        reference.quantize_rows_s8(x)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_values_stay_symmetric(variant, rng):
    x = rng.standard_normal((16, 40)).astype(np.float32)
    q, scale = call(OP, variant, x)
    assert q.min() >= -127
    assert np.all(np.abs(q).max(axis=1) == 127)
    assert np.allclose(q * scale[:, None], x, atol=float(scale.max()) / 2 + 1e-7)
