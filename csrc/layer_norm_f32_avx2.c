/* layer_norm_f32 for x86-64 AVX2 + FMA: 8 floats per vector.  The two
 * reductions keep two accumulators (16 floats per step) so consecutive adds do
 * not wait on each other's latency; a row of 256 is 16 steps per pass.  The
 * squares and the output use FMA (one rounding instead of two: within the
 * float tolerance of the scalar C, and 10% fewer instructions per row); the
 * centring stays two subtractions, (v - shift) - dmean, for its precision:
 * the first in pass 1, whose result d waits in y for the other two passes. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "edgerun.h"
#include "layer_norm_f32.h"

static inline float hsum(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Pass 1: d = v - shift stored to y (v = x, or x + r); returns the sum of d. */
static float shifted_sum(const float *x, const float *r, float *y, float shift, size_t n) {
    const __m256 k = _mm256_set1_ps(shift);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t p = 0;
    if (r) {
        for (; p + 16 <= n; p += 16) {
            __m256 d0 = _mm256_sub_ps(
                _mm256_add_ps(_mm256_loadu_ps(x + p), _mm256_loadu_ps(r + p)), k);
            __m256 d1 = _mm256_sub_ps(
                _mm256_add_ps(_mm256_loadu_ps(x + p + 8), _mm256_loadu_ps(r + p + 8)), k);
            _mm256_storeu_ps(y + p, d0);
            _mm256_storeu_ps(y + p + 8, d1);
            acc0 = _mm256_add_ps(acc0, d0);
            acc1 = _mm256_add_ps(acc1, d1);
        }
        for (; p + 8 <= n; p += 8) {
            __m256 d0 = _mm256_sub_ps(
                _mm256_add_ps(_mm256_loadu_ps(x + p), _mm256_loadu_ps(r + p)), k);
            _mm256_storeu_ps(y + p, d0);
            acc0 = _mm256_add_ps(acc0, d0);
        }
    } else {
        for (; p + 16 <= n; p += 16) {
            __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + p), k);
            __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + p + 8), k);
            _mm256_storeu_ps(y + p, d0);
            _mm256_storeu_ps(y + p + 8, d1);
            acc0 = _mm256_add_ps(acc0, d0);
            acc1 = _mm256_add_ps(acc1, d1);
        }
        for (; p + 8 <= n; p += 8) {
            __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + p), k);
            _mm256_storeu_ps(y + p, d0);
            acc0 = _mm256_add_ps(acc0, d0);
        }
    }
    return hsum(_mm256_add_ps(acc0, acc1)) + er_layer_norm_shift_tail(x, r, y, shift, p, n);
}

/* Pass 2: the sum of squared deviations c = d - dmean. */
static float squares(const float *d, float dmean, size_t n) {
    const __m256 dm = _mm256_set1_ps(dmean);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t p = 0;
    for (; p + 16 <= n; p += 16) {
        __m256 c0 = _mm256_sub_ps(_mm256_loadu_ps(d + p), dm);
        __m256 c1 = _mm256_sub_ps(_mm256_loadu_ps(d + p + 8), dm);
        acc0 = _mm256_fmadd_ps(c0, c0, acc0);
        acc1 = _mm256_fmadd_ps(c1, c1, acc1);
    }
    for (; p + 8 <= n; p += 8) {
        __m256 c0 = _mm256_sub_ps(_mm256_loadu_ps(d + p), dm);
        acc0 = _mm256_fmadd_ps(c0, c0, acc0);
    }
    return hsum(_mm256_add_ps(acc0, acc1)) + er_layer_norm_squares_tail(d, dmean, p, n);
}

/* Pass 3, over d in y: y = c * inv * scale + bias, 16 per step (loop overhead
 * is a fifth of this pass at 8). */
static void output(float *yrow, float dmean, float inv, const float *scale, const float *bias,
                   size_t n) {
    const __m256 dm = _mm256_set1_ps(dmean), vinv = _mm256_set1_ps(inv);
    size_t p = 0;
    if (bias) {
        for (; p + 16 <= n; p += 16) {
            __m256 c0 = _mm256_sub_ps(_mm256_loadu_ps(yrow + p), dm);
            __m256 c1 = _mm256_sub_ps(_mm256_loadu_ps(yrow + p + 8), dm);
            _mm256_storeu_ps(yrow + p, _mm256_fmadd_ps(_mm256_mul_ps(c0, vinv),
                                                       _mm256_loadu_ps(scale + p),
                                                       _mm256_loadu_ps(bias + p)));
            _mm256_storeu_ps(yrow + p + 8, _mm256_fmadd_ps(_mm256_mul_ps(c1, vinv),
                                                           _mm256_loadu_ps(scale + p + 8),
                                                           _mm256_loadu_ps(bias + p + 8)));
        }
        for (; p + 8 <= n; p += 8) {
            __m256 c0 = _mm256_sub_ps(_mm256_loadu_ps(yrow + p), dm);
            _mm256_storeu_ps(yrow + p, _mm256_fmadd_ps(_mm256_mul_ps(c0, vinv),
                                                       _mm256_loadu_ps(scale + p),
                                                       _mm256_loadu_ps(bias + p)));
        }
    } else {
        for (; p + 8 <= n; p += 8) {
            __m256 c0 = _mm256_sub_ps(_mm256_loadu_ps(yrow + p), dm);
            __m256 out = _mm256_mul_ps(_mm256_mul_ps(c0, vinv), _mm256_loadu_ps(scale + p));
            _mm256_storeu_ps(yrow + p, out);
        }
    }
    er_layer_norm_output_tail(yrow, dmean, inv, scale, bias, yrow, p, n);
}

er_status er_layer_norm_f32__avx2(const float *x, const float *residual, const float *scale,
                                  const float *bias, float *y, size_t rows, size_t n,
                                  float epsilon) {
    return er_layer_norm_rows(x, residual, scale, bias, y, rows, n, epsilon, shifted_sum, squares,
                              output);
}
#endif /* __x86_64__ */
