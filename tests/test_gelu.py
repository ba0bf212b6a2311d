import math
import re
from pathlib import Path

import numpy as np
import pytest

import edgerun
from edgerun import reference

from conftest import call, kernel_implementations

OP = "gelu_f32"
SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 1000, 1027]
FORMS = ["none", "tanh"]
# Relative error per unit of the exponent (x^2/2, or 2|u|) that float32 rounding
# of that exponent causes: x*x is one rounding (2 half-ulps of 1 as margin, 1.2e-7);
# u = sqrt(2/pi) (x + 0.044715 x^3) takes three (2e-7).
PER_UNIT = {"none": 1.2e-7, "tanh": 2e-7}


def exact_gelu(x, approximate):
    """float64 GELU from math.erf / math.exp (the ground truth of accuracy)."""
    out = []
    for v in np.asarray(x, dtype=np.float64).ravel():
        if approximate == "tanh":
            u = math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)
            out.append(v / (1 + math.exp(min(-2 * u, 700.0))))
        else:
            out.append(0.5 * v * math.erfc(-v / math.sqrt(2)))
    return np.array(out).reshape(np.shape(x))


def assert_close_to_reference(y, y_ref, x, approximate):
    """The variants are within 5e-7 relative of exact GELU (test_accuracy below);
    the float32 numpy reference is not, in the negative tail: its x*x (and, in the
    tanh form, its u) is rounded to float32 before exp, which turns one rounding
    of a number of size x^2/2 (or 2|u|) into that much relative error in the
    result.  So the tolerance is 2e-6 plus PER_UNIT[approximate] per unit of that
    exponent: 2e-6 for |x| < 1, 8e-6 at x = -10 in the erf form."""
    x64 = np.asarray(x, dtype=np.float64)
    if approximate == "tanh":
        exponent = np.abs(2 * math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3))
    else:
        exponent = x64 * x64 / 2
    rtol = 2e-6 + PER_UNIT[approximate] * np.minimum(exponent, 200)
    y64, r64 = y.astype(np.float64), y_ref.astype(np.float64)
    # atol 1e-37: in float32 the tanh form's exp(-2u) overflows (2u > 88.7) while
    # the true x / (1 + exp(-2u)) is still subnormal or barely normal: below 1e-37
    # the reference may say 0.
    ok = (np.abs(y64 - r64) <= rtol * np.abs(r64) + 1e-37) | (np.isnan(y64) & np.isnan(r64))
    assert ok.all(), (x[~ok][:5], y[~ok][:5], y_ref[~ok][:5])


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("approximate", FORMS)
@pytest.mark.parametrize("size", SIZES)
def test_matches_reference(variant, approximate, size, rng):
    x = (rng.standard_normal(size) * 3).astype(np.float32)
    y = call(OP, variant, x, approximate=approximate)
    assert y.shape == x.shape and y.dtype == np.float32
    assert_close_to_reference(y, reference.gelu_f32(x, approximate), x, approximate)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("approximate", FORMS)
@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 33), (128, 1024), (1, 1, 1)])
def test_any_shape_and_magnitude(variant, approximate, shape, rng):
    x = (rng.standard_normal(shape) * rng.choice([0.01, 1, 6, 30], size=shape)).astype(np.float32)
    y = call(OP, variant, x, approximate=approximate)
    assert y.shape == shape
    assert_close_to_reference(y, reference.gelu_f32(x, approximate), x, approximate)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("approximate", FORMS)
def test_special_values(variant, approximate):
    # 24 values: three full AVX2 vectors / six NEON vectors, then each again as a
    # scalar leftover (the array is 24 + 7 long).
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e9, -1e9, 3.4e38, -3.4e38,
                         1e-40, -1e-40, 1e-20, -1e-20, 20.0, -20.0, 25.0, -25.0, 5.5, -5.5,
                         10.0, -10.0, 88.0, -88.0, 1.0], dtype=np.float32)
    x = np.concatenate([specials, specials[:7]])
    with np.errstate(all="ignore"):
        y = call(OP, variant, x, approximate=approximate)
        y_ref = reference.gelu_f32(x, approximate)
    assert np.array_equal(np.isnan(y), np.isnan(y_ref))
    assert np.isnan(y[3]) and np.isnan(y[4])  # -inf (as numpy's -inf * 0) and NaN
    assert y[2] == np.inf and y[5] == 1e9 and y[7] == np.float32(3.4e38)
    assert y[6] == 0 and y[8] == 0  # the tail underflows to (-)0, never NaN
    assert y[0] == 0 and y[1] == 0
    finite = np.isfinite(x)
    assert_close_to_reference(y[finite], y_ref[finite], x[finite], approximate)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("approximate", FORMS)
def test_accuracy_against_float64(variant, approximate):
    """A dense sweep of [-10, 10] against float64 math: 5e-7 relative everywhere
    the result is a normal float, the negative tail included (the erf form takes
    1 + erf as erfc; the tanh form's tail is bounded by the rounding of u itself,
    so it gets 5e-7 plus PER_UNIT per unit of 2|u|)."""
    x = np.linspace(-10, 10, 40001, dtype=np.float32)
    y = call(OP, variant, x, approximate=approximate).astype(np.float64)
    exact = exact_gelu(x, approximate)
    normal = np.abs(exact) > 1.2e-38
    rel = np.abs(y - exact)[normal] / np.abs(exact)[normal]
    if approximate == "none":
        assert rel.max() < 5e-7
    else:
        x64 = x.astype(np.float64)[normal]
        two_u = np.abs(2 * math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3))
        assert (rel < 5e-7 + PER_UNIT["tanh"] * two_u).all()
    assert np.abs(y - exact).max() < 1e-6  # 1 ulp of the largest output, 10


@pytest.mark.parametrize("variant", kernel_implementations(OP))
@pytest.mark.parametrize("approximate", FORMS)
def test_in_place(variant, approximate, rng):
    x = (rng.standard_normal((4, 37)) * 4).astype(np.float32)
    expected = call(OP, variant, x, approximate=approximate)
    y = call(OP, variant, x, approximate=approximate, out=x)
    assert y is x
    assert np.array_equal(x, expected)


def test_reference_erf_form_accuracy():
    """The numpy twin is accurate where it counts (it is the fallback backend)."""
    x = np.linspace(-5, 10, 30001, dtype=np.float32)
    exact = exact_gelu(x, "none")
    nonzero = x != 0
    rel = np.abs(reference.gelu_f32(x) - exact)[nonzero] / np.abs(exact[nonzero])
    assert rel.max() < 2e-6


def test_erfcx_fit():
    """The SIMD variants' erfc(z) = t G(t) exp(-z^2): the coefficients of G in
    csrc/gelu_f32.h, rounded to float32 as C has them, fit erfcx(z) = t G(t) to
    6e-8 relative in float64 over the whole range the kernel feeds it (|x| <= 20);
    float32 evaluation is test_accuracy_against_float64's business."""
    header = (Path(__file__).resolve().parents[1] / "csrc" / "gelu_f32.h").read_text()
    found = dict(re.findall(r"#define ER_ERFCX_(\d) \(?(-?[0-9.e-]+)f\)?", header))
    assert sorted(found) == [str(k) for k in range(10)]
    g = np.float32([found[str(k)] for k in range(10)]).astype(np.float64)
    t = np.linspace(1 / (1 + 20 / math.sqrt(2) / 2), 1, 20001)
    z = 2 * (1 / t - 1)
    erfcx = np.array([math.erfc(v) * math.exp(v * v) for v in z])
    rel = np.abs(t * np.polynomial.polynomial.polyval(t, g) / erfcx - 1)
    assert rel.max() < 6e-8


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_errors(variant):
    with pytest.raises(edgerun.ShapeError, match="float32"):
        call(OP, variant, np.zeros(4, np.float64))
    with pytest.raises(edgerun.OptionError, match="approximate"):
        call(OP, variant, np.zeros(4, np.float32), approximate="erf")
    with pytest.raises(edgerun.ShapeError, match="shape"):
        call(OP, variant, np.zeros(4, np.float32), out=np.zeros(5, np.float32))
    with pytest.raises(edgerun.ShapeError, match="contiguous"):
        call(OP, variant, np.zeros(4, np.float32), out=np.zeros(8, np.float32)[::2])
    frozen = np.zeros(4, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(edgerun.ShapeError, match="writeable"):
        call(OP, variant, frozen, out=frozen)
    swapped = np.zeros(4, np.dtype(np.float32).newbyteorder())
    with pytest.raises(edgerun.ShapeError, match="float32"):
        call(OP, variant, swapped)
    with pytest.raises(edgerun.ShapeError, match="float32"):
        call(OP, variant, np.zeros(4, np.float32), out=swapped)
    with pytest.raises(edgerun.OptionError):
        reference.gelu_f32(np.zeros(4, np.float32), approximate="fast")
    with pytest.raises(edgerun.ShapeError):
        reference.gelu_f32(np.zeros(4, np.int32))


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_non_contiguous_input_is_copied(variant, rng):
    x = (rng.standard_normal((6, 10)) * 2).astype(np.float32)
    y = call(OP, variant, x[:, ::2])
    assert np.array_equal(y, call(OP, variant, np.ascontiguousarray(x[:, ::2])))


def test_every_isa_variant_is_tested():
    """On x86-64 with AVX2 the list holds avx2; on aarch64, neon (no silent fallback)."""
    import platform
    names = [p.values[0] for p in kernel_implementations(OP)]
    assert "scalar" in names
    if platform.machine() in ("x86_64", "AMD64") and edgerun._backend.name == "c":
        from edgerun._kernels import variants
        if any(op == OP and v == "avx2" and ok for op, v, _, ok in variants()):
            assert "avx2" in names


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_zero_dimensional(variant):
    y = call(OP, variant, np.float32(-1.5))
    assert y.shape == () and abs(float(y) - exact_gelu(-1.5, "none")) < 1e-7
