/* quantize_rows_s8 for x86-64 AVX2: 8 floats per step. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "edgerun.h"
#include "quantize_rows_s8.h"

static float row_amax(const float *row, size_t k, int *finite) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 big = _mm256_set1_ps(3.40282347e38f);
    __m256 vmax = _mm256_setzero_ps();
    __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    size_t p = 0;
    for (; p + 8 <= k; p += 8) {
        __m256 a = _mm256_and_ps(_mm256_loadu_ps(row + p), abs_mask);
        ok = _mm256_and_ps(ok, _mm256_cmp_ps(a, big, _CMP_LE_OQ));
        vmax = _mm256_max_ps(vmax, a);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, vmax);
    int all_ok = _mm256_movemask_ps(ok) == 0xff;
    float amax = 0.0f;
    for (int i = 0; i < 8; i++) amax = lanes[i] > amax ? lanes[i] : amax;
    for (; p < k; p++) {
        float a = row[p] < 0 ? -row[p] : row[p];
        all_ok &= a <= 3.40282347e38f;
        amax = a > amax ? a : amax;
    }
    *finite = all_ok;
    return amax;
}

er_status er_quantize_rows_s8__avx2(const float *x, size_t m, size_t k,
                                    int8_t *q, float *scale) {
    if (!x || !q || !scale) return ER_ERR_ARGUMENT;
    const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * k;
        int8_t *qrow = q + i * k;
        int finite;
        float amax = row_amax(row, k, &finite);
        if (!finite) return ER_ERR_NONFINITE;
        amax = er_quantize_amax(amax);
        size_t p = 0;
        if (amax != 0.0f) {
            const __m256 inv = _mm256_set1_ps(127.0f / amax);
            for (; p + 8 <= k; p += 8) {
                __m256 r = _mm256_mul_ps(_mm256_loadu_ps(row + p), inv);
                r = _mm256_max_ps(_mm256_min_ps(r, hi), lo);
                __m256i n = _mm256_cvtps_epi32(r); /* round half to even (MXCSR default) */
                __m128i n16 = _mm_packs_epi32(_mm256_castsi256_si128(n),
                                              _mm256_extracti128_si256(n, 1));
                _mm_storel_epi64((__m128i *)(qrow + p), _mm_packs_epi16(n16, n16));
            }
        }
        er_quantize_row_tail(row, qrow, p, k, amax);
        scale[i] = amax / 127.0f;
    }
    return ER_OK;
}
#endif /* __x86_64__ */
