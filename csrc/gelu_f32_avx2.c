/* gelu_f32 for x86-64 AVX2 + FMA: 8 floats per step, the vector exp of vexp.h. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "edgerun.h"
#include "gelu_f32.h"
#include "vexp.h"

/* 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x phi2, phi2 = erfc(z) for x < 0 and
 * 2 - erfc(z) for x >= 0, z = |x| / sqrt 2: the negative tail is erfc itself,
 * never 1 minus something close to 1.  erfc(z) = t G(t) exp(-z^2) (gelu_f32.h):
 * the divide and G on one chain, the exp on another beside it, where the exp of
 * -z^2 + P(t) had to wait for the divide and P (128 x 1024 on Zen 3: 176 ->
 * 123 us, with the one-factor exp). */
static inline __m256 gelu_erf(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    /* MINPS returns its second operand for NaN: NaN goes on to the output. */
    __m256 ax = _mm256_min_ps(_mm256_set1_ps(ER_GELU_ABS_MAX), _mm256_andnot_ps(sign, x));
    /* t = 1 / (1 + z/2), 1 + z/2 = 1 + |x| / (2 sqrt 2) in one FMA (z has no other use) */
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f),
                             _mm256_fmadd_ps(ax, _mm256_set1_ps((float)(0.70710678118654752 / 2)),
                                             _mm256_set1_ps(1.0f)));
    /* G(t) by Estrin's scheme: 4 dependent steps after t, not Horner's 9. */
#define G(i) _mm256_set1_ps(ER_ERFCX_##i)
    __m256 t2 = _mm256_mul_ps(t, t), t4 = _mm256_mul_ps(t2, t2);
    __m256 g01 = _mm256_fmadd_ps(G(1), t, G(0)), g23 = _mm256_fmadd_ps(G(3), t, G(2));
    __m256 g45 = _mm256_fmadd_ps(G(5), t, G(4)), g67 = _mm256_fmadd_ps(G(7), t, G(6));
    __m256 g89 = _mm256_fmadd_ps(G(9), t, G(8));
#undef G
    __m256 g03 = _mm256_fmadd_ps(g23, t2, g01), g47 = _mm256_fmadd_ps(g67, t2, g45);
    __m256 g = _mm256_fmadd_ps(_mm256_fmadd_ps(g89, t4, g47), t4, g03);
    /* -z^2 = -x^2 / 2 taken from x (not from the rounded z) as hi + lo exactly
     * (FMA gives the rounding error of the product); exp(hi + lo) never rounds the
     * sum: at x = -10 that keeps 3e-6 of relative precision.  hi >= -200
     * (|x| <= 20); below hi = -87.3 the exp flushes to 0, where GELU's result is
     * below 1e-37 anyway. */
    __m256 minus_half_ax = _mm256_mul_ps(ax, _mm256_set1_ps(-0.5f));
    __m256 hi = _mm256_mul_ps(minus_half_ax, ax);
    __m256 lo = _mm256_fmsub_ps(minus_half_ax, ax, hi);
    __m256 tail = _mm256_mul_ps(_mm256_mul_ps(t, g), er_vexp_sum_ftz_avx2(hi, lo));
    __m256 nonneg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ);
    __m256 phi2 = _mm256_blendv_ps(tail, _mm256_sub_ps(_mm256_set1_ps(2.0f), tail), nonneg);
    /* Halve x, not phi2: 0.5 * phi2 may be subnormal deep in the tail (armv7
     * NEON would flush it) while the result is still normal, and phi2 * x first
     * would overflow near FLT_MAX. */
    return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), phi2);
}

/* ONNX's tanh form 0.5 x (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3), as
 * x * sigmoid(2u): with e = exp(-2|u|) <= 1, sigmoid(2u) = 1 / (1 + e) for u >= 0
 * and e / (1 + e) for u < 0.  No cancellation in 1 + tanh u for negative u, and
 * e never overflows, so the tail comes down through the subnormals to 0. */
static inline __m256 gelu_tanh(__m256 x) {
    const __m256 a = _mm256_set1_ps((float)(-2.0 * ER_GELU_TANH_K));
    const __m256 b = _mm256_set1_ps((float)(-2.0 * ER_GELU_TANH_K * ER_GELU_TANH_CUBIC));
    __m256 minus_2u = _mm256_mul_ps(x, _mm256_fmadd_ps(_mm256_mul_ps(x, x), b, a));
    /* -|2u| by setting the sign bit; NaN stays NaN. */
    __m256 e = er_vexp_avx2(_mm256_or_ps(minus_2u, _mm256_set1_ps(-0.0f)));
    __m256 negative_u = _mm256_cmp_ps(minus_2u, _mm256_setzero_ps(), _CMP_GT_OQ);
    __m256 num = _mm256_blendv_ps(x, _mm256_mul_ps(x, e), negative_u);
    return _mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

er_status er_gelu_f32__avx2(const float *x, float *y, size_t count, int approximate_tanh) {
    if (count && (!x || !y)) return ER_ERR_ARGUMENT;
    size_t i = 0;
    if (approximate_tanh) {
        for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, gelu_tanh(_mm256_loadu_ps(x + i)));
    } else {
        /* two independent vectors per step: more of the divide / polynomial / exp
         * chains in the out-of-order window (128 x 1024: 200 -> 192 us, Zen 3, with
         * the one-chain form of the time) */
        for (; i + 16 <= count; i += 16) {
            __m256 a = gelu_erf(_mm256_loadu_ps(x + i)), b = gelu_erf(_mm256_loadu_ps(x + i + 8));
            _mm256_storeu_ps(y + i, a);
            _mm256_storeu_ps(y + i + 8, b);
        }
        for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, gelu_erf(_mm256_loadu_ps(x + i)));
    }
    er_gelu_f32_tail(x, y, i, count, approximate_tanh);
    return ER_OK;
}
#endif /* __x86_64__ */
