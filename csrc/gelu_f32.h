/* Shared by the variants of gelu_f32: the scalar step that the portable variant
 * runs everywhere and every SIMD body hands its leftovers to. */
#ifndef EDGERUN_GELU_F32_H
#define EDGERUN_GELU_F32_H

#include <math.h>
#include <stddef.h>

/* sqrt(2 / pi) and ONNX's cubic coefficient of the tanh form. */
#define ER_GELU_TANH_K 0.7978845608028654
#define ER_GELU_TANH_CUBIC 0.044715

/* erfcx(z) = erfc(z) exp(z^2) = t (ER_ERFCX_0 + t (ER_ERFCX_1 + ... + t ER_ERFCX_9)),
 * t = 1 / (1 + z/2), 0 <= z <= 20 / sqrt 2: fitted for edgerun (least squares
 * weighted to minimise the relative error, Lawson's reweighting, each
 * coefficient rounded to float from the highest down and the rest refitted):
 * 5.1e-8 in exact arithmetic, 1.6e-7 evaluated in float32.  The SIMD variants
 * take erfc(z) = t G(t) exp(-z^2) in this form: exp's argument is -z^2 alone,
 * known as soon as x is, so the exp runs beside the divide and the polynomial
 * instead of after them, as it must in Numerical Recipes' erfc = t exp(-z^2 +
 * P(t)) (edgerun.reference.gelu_f32's form; the SIMD variants' until this fit).
 * tests/test_gelu.py re-derives the fit's error bound. */
#define ER_ERFCX_0 0.282081515f
#define ER_ERFCX_1 0.282480448f
#define ER_ERFCX_2 0.242149338f
#define ER_ERFCX_3 0.207508251f
#define ER_ERFCX_4 (-0.041589167f)
#define ER_ERFCX_5 0.307726979f
#define ER_ERFCX_6 (-0.524853706f)
#define ER_ERFCX_7 0.314186573f
#define ER_ERFCX_8 (-0.0721976981f)
#define ER_ERFCX_9 0.00250742282f
/* Past |x| = 20, erfc(|x| / sqrt 2) < 1e-88 is 0 in float32: the SIMD bodies
 * clamp |x| there so that x * x cannot overflow into inf - inf. */
#define ER_GELU_ABS_MAX 20.0f

/* y[i] = gelu(x[i]) for i in [begin, end), in double: the C library's erfc of
 * the exact -x / sqrt 2 keeps the negative tail to float32 rounding (a float
 * erfcf would start from a rounded argument: 6e-6 relative error at x = -10).
 * The tanh form is x * sigmoid(2u) = x / (1 + exp(-2u)), algebraically
 * 0.5 x (1 + tanh u) but without the cancellation of 1 + tanh u for negative u
 * (exp(-2u) cannot overflow in double for float x).  x = -inf gives NaN, as
 * numpy's 0.5 * x * (...) does. */
static inline void er_gelu_f32_tail(const float *x, float *y, size_t begin, size_t end,
                                    int approximate_tanh) {
    for (size_t i = begin; i < end; i++) {
        double v = x[i];
        if (approximate_tanh) {
            double u = ER_GELU_TANH_K * (v + ER_GELU_TANH_CUBIC * v * v * v);
            y[i] = (float)(v / (1.0 + exp(-2.0 * u)));
        } else {
            y[i] = (float)(0.5 * v * erfc(-v * 0.70710678118654752440));
        }
    }
}

#endif
