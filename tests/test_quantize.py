import numpy as np
import pytest

import edgerun
from edgerun import reference

from conftest import call, kernel_implementations, runnable_variants

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


@pytest.mark.parametrize("op,variant", [pytest.param(op, v, id=f"{op}-{v}")
                                        for op in (OP, "quantize_rows_u7")
                                        for v in runnable_variants(op)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_is_refused(op, variant, bad):
    x = np.ones((2, 17), dtype=np.float32)
    x[1, 16] = bad
    with pytest.raises(edgerun.NonFiniteError):
        call(op, variant, x)
    with pytest.raises(edgerun.NonFiniteError):
        getattr(reference, op)(x)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_values_stay_symmetric(variant, rng):
    x = rng.standard_normal((16, 40)).astype(np.float32)
    q, scale = call(OP, variant, x)
    assert q.min() >= -127
    assert np.all(np.abs(q).max(axis=1) == 127)
    assert np.allclose(q * scale[:, None], x, atol=float(scale.max()) / 2 + 1e-7)


U7 = "quantize_rows_u7"


def rows_of_every_kind(rng, m, k):
    """Signed rows at mixed magnitudes, plus one without negatives and one without
    positives when there is room for them."""
    x = (rng.standard_normal((m, k)) * rng.choice([1e-3, 1.0, 1e3], size=(m, 1))).astype(np.float32)
    if m > 1:
        x[1] = np.abs(x[1])
    if m > 2:
        x[2] = -np.abs(x[2])
    return x


@pytest.mark.parametrize("variant", kernel_implementations(U7))
@pytest.mark.parametrize("m,k", [(1, 1), (1, 7), (3, 8), (2, 9), (5, 31), (4, 64), (3, 1000)])
def test_u7_matches_reference_bit_for_bit(variant, m, k, rng):
    x = rows_of_every_kind(rng, m, k)
    q, scale, zero = call(U7, variant, x)
    q_ref, scale_ref, zero_ref = reference.quantize_rows_u7(x)
    assert np.array_equal(q, q_ref) and np.array_equal(zero, zero_ref)
    assert np.array_equal(scale.view(np.uint32), scale_ref.view(np.uint32))


@pytest.mark.parametrize("variant", kernel_implementations(U7))
def test_u7_is_a_zero_point_quantization_within_half_a_step(variant, rng):
    x = rows_of_every_kind(rng, 16, 40)
    q, scale, zero = call(U7, variant, x)
    assert q.min() >= 0 and q.max() <= 127 and zero.min() >= 0 and zero.max() <= 127
    step = scale[:, None]
    assert np.all(np.abs(step * (q.astype(np.float32) - zero[:, None]) - x) <= step * 0.5001)
    # the row's ends land on the ends of the range (each end rounds on its own)
    assert np.all(q.max(axis=1)[x.max(axis=1) > 0] >= 126)
    assert np.all(q.min(axis=1)[x.min(axis=1) < 0] <= 1)
    assert zero[2] == 127 and zero[1] == 0


@pytest.mark.parametrize("variant", kernel_implementations(U7))
def test_u7_without_negatives_is_the_symmetric_quantization(variant, rng):
    x = np.abs(rng.standard_normal((6, 45))).astype(np.float32) * np.float32(3.7)
    x[3] = 0
    q, scale, zero = call(U7, variant, x)
    q8, scale8 = reference.quantize_rows_s8(x)
    assert np.array_equal(q, q8) and not zero.any()
    assert np.array_equal(scale.view(np.uint32), scale8.view(np.uint32))


def tiny_rows():
    """Rows whose range is too small for 127 / range in float32 (below ~3.7e-37,
    subnormals too), then one just above."""
    x = np.zeros((3, 37), dtype=np.float32)
    x[0, ::2] = -1e-37
    x[0, 1::2] = 5e-38
    x[1, :5] = np.float32(1e-45) * np.arange(5)
    x[2, :2] = [4e-37, -2e-37]
    return x


@pytest.mark.parametrize("op", [OP, U7])
def test_reference_quantizes_rows_too_small_for_127_over_their_range_to_zero(op):
    """The overflowed inv had made x * inv Inf or NaN (and a u7 zero point INT32_MIN)."""
    q, scale, *zero = getattr(reference, op)(tiny_rows())
    assert not q[:2].any() and not scale[:2].any() and not np.asarray(zero)[..., :2].any()
    assert q[2].any() and scale[2] > 0


@pytest.mark.parametrize("op,variant", [pytest.param(op, v, id=f"{op}-{v}") for op in (OP, U7)
                                        for v in runnable_variants(op)])
def test_rows_too_small_for_127_over_their_range_match_the_reference(op, variant):
    x = tiny_rows()
    for got, want in zip(call(op, variant, x), getattr(reference, op)(x)):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("variant", kernel_implementations(U7))
def test_u7_zero_rows_ties_and_huge_ranges(variant):
    x = np.zeros((4, 20), dtype=np.float32)
    x[1, :4] = [-63.5, 63.5, 0.5, 1.5]          # inv = 1, zero = 64: halves round to even
    x[2, :3] = [3e38, -3e38, 1.0]              # the range overflows float32: halved
    x[3, :2] = [-1e-30, 2e-30]
    q, scale, zero = call(U7, variant, x)
    assert not q[0].any() and scale[0] == 0 and zero[0] == 0
    assert zero[1] == 64 and list(q[1, :5]) == [0, 127, 64, 66, 64]
    assert zero[2] == 64 and q[2, 0] == 127 and q[2, 1] == 0 and np.isfinite(scale[2])
    for got, want in zip((q, scale, zero), reference.quantize_rows_u7(x)):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("op,variant", [pytest.param(op, v, id=f"{op}-{v}") for op in (OP, U7)
                                        for v in runnable_variants(op)])
def test_out_receives_the_bytes_and_bad_outputs_are_named(op, variant, rng):
    """The direct path (C-contiguous float32, no out) and the checked one (an out,
    a non-contiguous x) give the same bytes; an out of the wrong kind is refused."""
    x = (rng.standard_normal((5, 40)) * 2).astype(np.float32)
    direct = call(op, variant, x)
    out = np.full((5, 40), 99, np.int8)
    given = call(op, variant, np.asfortranarray(x), out=out)
    assert given[0] is out
    for a, b in zip(direct, given):
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8))
    for bad in (np.zeros((5, 41), np.int8), np.zeros((5, 40), np.uint8)):
        with pytest.raises(edgerun.ShapeError, match="out must be"):
            call(op, variant, x, out=bad)
    frozen = np.zeros((5, 40), np.int8)
    frozen.flags.writeable = False
    with pytest.raises(edgerun.ShapeError, match="writeable"):
        call(op, variant, x, out=frozen)
    with pytest.raises(edgerun.ShapeError, match="C-contiguous"):
        call(op, variant, x, out=np.zeros((5, 80), np.int8)[:, :40])
    with pytest.raises(edgerun.ShapeError, match="float32"):
        call(op, variant, x.astype(x.dtype.newbyteorder()))
