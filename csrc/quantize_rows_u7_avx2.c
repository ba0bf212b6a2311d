/* quantize_rows_u7 for x86-64 AVX2: 8 floats per step. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "edgerun.h"
#include "quantize_rows_u7.h"

/* min(row, 0), max(row, 0); *finite = no NaN or Inf. */
static void row_range(const float *row, size_t k, float *lo, float *hi, int *finite) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 big = _mm256_set1_ps(ER_FLOAT_MAX);
    __m256 vmin = _mm256_setzero_ps(), vmax = vmin;
    __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    size_t p = 0;
    for (; p + 8 <= k; p += 8) {
        __m256 v = _mm256_loadu_ps(row + p);
        ok = _mm256_and_ps(ok, _mm256_cmp_ps(_mm256_and_ps(v, abs_mask), big, _CMP_LE_OQ));
        vmin = _mm256_min_ps(vmin, v);
        vmax = _mm256_max_ps(vmax, v);
    }
    float mins[8], maxs[8];
    _mm256_storeu_ps(mins, vmin);
    _mm256_storeu_ps(maxs, vmax);
    int all_ok = _mm256_movemask_ps(ok) == 0xff;
    float a = 0.0f, b = 0.0f;
    for (int l = 0; l < 8; l++) {
        a = mins[l] < a ? mins[l] : a;
        b = maxs[l] > b ? maxs[l] : b;
    }
    for (; p < k; p++) {
        all_ok &= (row[p] < 0 ? -row[p] : row[p]) <= ER_FLOAT_MAX;
        a = row[p] < a ? row[p] : a;
        b = row[p] > b ? row[p] : b;
    }
    *lo = a, *hi = b, *finite = all_ok;
}

/* round_half_even(x * inv) + zero for 8 floats at p (cvtps rounds to nearest even,
 * the MXCSR default). */
static inline __m256i scaled8(const float *row, size_t p, __m256 vinv, __m256i vzero) {
    return _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(row + p), vinv)), vzero);
}

/* 32 values per step, clamped to [0, 127]: the signed packs saturate 128 to 127
 * (and keep -1), the max lifts -1 to 0.  Packing 32 at a time stores one vector
 * where 8 at a time needed an extract, two packs and a max per 8 bytes. */
static size_t body(const float *row, int8_t *q, size_t k, float inv, int32_t zero) {
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i vzero = _mm256_set1_epi32(zero);
    /* packs work within 128-bit lanes: this puts the 8-byte groups back in order */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t p = 0;
    for (; p + 32 <= k; p += 32) {
        __m256i a = scaled8(row, p, vinv, vzero), b = scaled8(row, p + 8, vinv, vzero);
        __m256i c = scaled8(row, p + 16, vinv, vzero), d = scaled8(row, p + 24, vinv, vzero);
        __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        bytes = _mm256_max_epi8(_mm256_permutevar8x32_epi32(bytes, order), _mm256_setzero_si256());
        _mm256_storeu_si256((__m256i *)(q + p), bytes);
    }
    for (; p + 8 <= k; p += 8) {
        __m256i n = scaled8(row, p, vinv, vzero);
        __m128i n16 = _mm_packs_epi32(_mm256_castsi256_si128(n), _mm256_extracti128_si256(n, 1));
        __m128i n8 = _mm_max_epi8(_mm_packs_epi16(n16, n16), _mm_setzero_si128());
        _mm_storel_epi64((__m128i *)(q + p), n8);
    }
    return p;
}

er_status er_quantize_rows_u7__avx2(const float *x, size_t m, size_t k, int8_t *q, float *scale,
                                    int32_t *zero) {
    if (!x || !q || !scale || !zero) return ER_ERR_ARGUMENT;
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * k;
        float lo, hi;
        int finite;
        row_range(row, k, &lo, &hi, &finite);
        if (!finite) return ER_ERR_NONFINITE;
        er_quantize_row_u7(row, q + i * k, k, lo, hi, scale + i, zero + i, body);
    }
    return ER_OK;
}
#endif /* __x86_64__ */
