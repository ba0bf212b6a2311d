/* spmm_csr_f32 / spmm_csr_s8 for x86-64 AVX2.
 *
 * m == 1: a gather per row, 16 entries per step, built from scalar loads
 *   inserted into vectors: on Zen 3 that measured faster than vpgatherdd /
 *   vpgatherdps (int8: 0.25-0.29 against 0.48 ns per entry; float: 0.45
 *   against 0.53).  The float sum is reordered over 8 lanes (within tolerance of the
 *   scalar C); the int32 sum is exact in any order.
 * m > 1: x is transposed once into scratch ([k, m]), so a nonzero scales a
 *   contiguous vector of the batch and each output is still summed in entry order
 *   (float: mul then add, never FMA), which keeps the batch path bit-exact with
 *   the scalar C.  Leftover batch lanes go to the scalar helper of spmm_csr.h. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <string.h>

#include "edgerun.h"
#include "epilogue.h"
#include "spmm_csr.h"

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* Store 8 float accumulators of row j, batch lanes i .. i+7. */
static inline void store8_f32(const er_epilogue *ep, size_t i, size_t j, __m256 acc) {
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    for (int l = 0; l < 8; l++) er_store(ep, i + l, j, lanes[l]);
}

/* The products of the int8 path, in 16-bit lanes: a pair of entries (p0, v0),
 * (p1, v1) is interleaved so that one vpmaddwd gives x[p0]*v0 + x[p1]*v1 per
 * batch lane, exactly (|x|, |v| <= 128: no int16 overflow, no saturation).
 * vpunpck{l,h}wd work within 128-bit halves, so accumulator `lo` holds batch
 * lanes {0-3, 8-11} and `hi` holds {4-7, 12-15}; store16 puts them back. */
static inline void store16_s32(const er_epilogue *ep, size_t i, size_t j, __m256i lo,
                               __m256i hi) {
    int32_t lanes[16];
    _mm256_storeu_si256((__m256i *)lanes, _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256((__m256i *)(lanes + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
    for (int l = 0; l < 16; l++) er_store_s32(ep, i + l, j, lanes[l]);
}

static inline void store8_s32(const er_epilogue *ep, size_t i, size_t j, __m128i lo,
                              __m128i hi) {
    int32_t lanes[8];
    _mm_storeu_si128((__m128i *)lanes, lo);
    _mm_storeu_si128((__m128i *)(lanes + 4), hi);
    for (int l = 0; l < 8; l++) er_store_s32(ep, i + l, j, lanes[l]);
}

/* Broadcast of a pair of int8 weights as the int16 pair (v0, v1) of every lane. */
static inline int32_t pair16(int8_t v0, int8_t v1) {
    return (int32_t)((uint32_t)(uint16_t)(int16_t)v0 | ((uint32_t)(uint16_t)(int16_t)v1 << 16));
}

/* The same from two adjacent weights in memory: broadcast their 2 bytes, then
 * sign-extend every byte (2 instructions instead of building the pair in GPRs). */
static inline __m256i pair16_256(const int8_t *v) {
    int16_t two;
    memcpy(&two, v, 2);
    return _mm256_cvtepi8_epi16(_mm_set1_epi16(two));
}

/* Two pairs (v0, v1) and (v2, v3) of four adjacent weights: int16 pairs of
 * (v0, v1) in the low 128-bit half, of (v2, v3) in the high half. */
static inline __m256i two_pairs16(const int8_t *v) {
    int32_t four;
    memcpy(&four, v, 4);
    const __m128i spread = _mm_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3);
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(_mm_cvtsi32_si128(four), spread));
}

/* 8 int16 batch lanes of two xt rows, one per 128-bit half. */
static inline __m256i load_two_rows8(const int16_t *r0, const int16_t *r1) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)r0)),
                                   _mm_loadu_si128((const __m128i *)r1), 1);
}

/* int8 m == 1: the 16 x bytes of 16 entries, gathered with scalar loads into
 * two 8-byte vectors (vpinsrb with a memory operand: one load each).  On Zen 3
 * this measured 0.29 ns per entry against 0.48 for vpgatherdd on x widened to
 * 32 bits and 0.58 for plain scalar code.  With u16 indices, reading them four
 * at a time in a 64-bit register and shifting takes one load per index off the
 * load ports that bound this loop (0.25 ns per entry); x86 is little-endian,
 * so index t of a load is bits 16t .. 16t+15. */
static inline __m128i gather16_s8_u16(const int8_t *x, const uint16_t *ix) {
    uint64_t i0, i1, i2, i3;
    memcpy(&i0, ix, 8), memcpy(&i1, ix + 4, 8), memcpy(&i2, ix + 8, 8), memcpy(&i3, ix + 12, 8);
    __m128i a = _mm_cvtsi32_si128((uint8_t)x[(uint16_t)i0]);
    __m128i b = _mm_cvtsi32_si128((uint8_t)x[(uint16_t)i2]);
    a = _mm_insert_epi8(a, x[(uint16_t)(i0 >> 16)], 1), b = _mm_insert_epi8(b, x[(uint16_t)(i2 >> 16)], 1);
    a = _mm_insert_epi8(a, x[(uint16_t)(i0 >> 32)], 2), b = _mm_insert_epi8(b, x[(uint16_t)(i2 >> 32)], 2);
    a = _mm_insert_epi8(a, x[i0 >> 48], 3), b = _mm_insert_epi8(b, x[i2 >> 48], 3);
    a = _mm_insert_epi8(a, x[(uint16_t)i1], 4), b = _mm_insert_epi8(b, x[(uint16_t)i3], 4);
    a = _mm_insert_epi8(a, x[(uint16_t)(i1 >> 16)], 5), b = _mm_insert_epi8(b, x[(uint16_t)(i3 >> 16)], 5);
    a = _mm_insert_epi8(a, x[(uint16_t)(i1 >> 32)], 6), b = _mm_insert_epi8(b, x[(uint16_t)(i3 >> 32)], 6);
    a = _mm_insert_epi8(a, x[i1 >> 48], 7), b = _mm_insert_epi8(b, x[i3 >> 48], 7);
    return _mm_unpacklo_epi64(a, b);
}

static inline __m128i gather16_s8_u32(const int8_t *x, const uint32_t *ix) {
    __m128i a = _mm_cvtsi32_si128((uint8_t)x[ix[0]]);
    __m128i b = _mm_cvtsi32_si128((uint8_t)x[ix[8]]);
    a = _mm_insert_epi8(a, x[ix[1]], 1), b = _mm_insert_epi8(b, x[ix[9]], 1);
    a = _mm_insert_epi8(a, x[ix[2]], 2), b = _mm_insert_epi8(b, x[ix[10]], 2);
    a = _mm_insert_epi8(a, x[ix[3]], 3), b = _mm_insert_epi8(b, x[ix[11]], 3);
    a = _mm_insert_epi8(a, x[ix[4]], 4), b = _mm_insert_epi8(b, x[ix[12]], 4);
    a = _mm_insert_epi8(a, x[ix[5]], 5), b = _mm_insert_epi8(b, x[ix[13]], 5);
    a = _mm_insert_epi8(a, x[ix[6]], 6), b = _mm_insert_epi8(b, x[ix[14]], 6);
    a = _mm_insert_epi8(a, x[ix[7]], 7), b = _mm_insert_epi8(b, x[ix[15]], 7);
    return _mm_unpacklo_epi64(a, b);
}

static inline __m256 gather8_f32_u16(const float *x, const uint16_t *ix) {
    uint64_t i0, i1; /* four indices per load, as for int8 */
    memcpy(&i0, ix, 8), memcpy(&i1, ix + 4, 8);
    return _mm256_setr_ps(x[(uint16_t)i0], x[(uint16_t)(i0 >> 16)], x[(uint16_t)(i0 >> 32)],
                          x[i0 >> 48], x[(uint16_t)i1], x[(uint16_t)(i1 >> 16)],
                          x[(uint16_t)(i1 >> 32)], x[i1 >> 48]);
}

static inline __m256 gather8_f32_u32(const float *x, const uint32_t *ix) {
    return _mm256_setr_ps(x[ix[0]], x[ix[1]], x[ix[2]], x[ix[3]],
                          x[ix[4]], x[ix[5]], x[ix[6]], x[ix[7]]);
}

#define ER_SPMM_CSR_AVX2(IDX, idx_t)                                                         \
    /* ---- float, m == 1: gather x per row (vmovss + vinsertps from memory). */            \
    static inline void f32_gather_##IDX(const er_csr *w, const float *x, size_t i,           \
                                        const er_epilogue *ep) {                             \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const float *values = (const float *)w->values;                                      \
        for (size_t j = 0; j < w->rows; j++) {                                               \
            size_t e = w->indptr[j], end = w->indptr[j + 1];                                 \
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();                       \
            for (; e + 16 <= end; e += 16) {                                                 \
                __m256 g0 = gather8_f32_##IDX(x, indices + e);                               \
                __m256 g1 = gather8_f32_##IDX(x, indices + e + 8);                           \
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(values + e), g0, a0);                   \
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(values + e + 8), g1, a1);               \
            }                                                                                \
            if (e + 8 <= end) {                                                              \
                __m256 g0 = gather8_f32_##IDX(x, indices + e);                               \
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(values + e), g0, a0);                   \
                e += 8;                                                                      \
            }                                                                                \
            float acc = hsum_ps(_mm256_add_ps(a0, a1));                                      \
            acc += er_spmm_dot_f32_##IDX(indices, values, e, end, x);                        \
            er_store(ep, i, j, acc);                                                         \
        }                                                                                    \
    }                                                                                        \
    /* ---- float, m > 1: 32 batch lanes of one row per pass over its entries. */           \
    static inline void f32_row_chunk32_##IDX(const er_csr *w, size_t j, const float *xt,     \
                                             size_t m, size_t i, const er_epilogue *ep) {    \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const float *values = (const float *)w->values;                                      \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                          \
        for (size_t e = w->indptr[j]; e < w->indptr[j + 1]; e++) {                           \
            const float *col = xt + (size_t)indices[e] * m + i;                              \
            __m256 v = _mm256_set1_ps(values[e]);                                            \
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(v, _mm256_loadu_ps(col)));                  \
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(v, _mm256_loadu_ps(col + 8)));              \
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(v, _mm256_loadu_ps(col + 16)));             \
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(v, _mm256_loadu_ps(col + 24)));             \
        }                                                                                    \
        store8_f32(ep, i, j, a0);                                                            \
        store8_f32(ep, i + 8, j, a1);                                                        \
        store8_f32(ep, i + 16, j, a2);                                                       \
        store8_f32(ep, i + 24, j, a3);                                                       \
    }                                                                                        \
    /* 8 batch lanes of four rows at once: one row alone would wait on the latency   */    \
    /* of each add (its sum is a chain in entry order); four rows hide it.           */    \
    static inline void f32_rows4_chunk8_##IDX(const er_csr *w, size_t j, const float *xt,    \
                                              size_t m, size_t i, const er_epilogue *ep) {   \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const float *values = (const float *)w->values;                                      \
        const uint32_t *ptr = w->indptr + j;                                                 \
        size_t b0 = ptr[0], b1 = ptr[1], b2 = ptr[2], b3 = ptr[3];                           \
        size_t n0 = ptr[1] - b0, n1 = ptr[2] - b1, n2 = ptr[3] - b2, n3 = ptr[4] - b3;       \
        size_t common = n0 < n1 ? n0 : n1;                                                   \
        common = common < n2 ? common : n2;                                                  \
        common = common < n3 ? common : n3;                                                  \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                          \
        for (size_t t = 0; t < common; t++) {                                                \
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_set1_ps(values[b0 + t]),             \
                 _mm256_loadu_ps(xt + (size_t)indices[b0 + t] * m + i)));                    \
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_set1_ps(values[b1 + t]),             \
                 _mm256_loadu_ps(xt + (size_t)indices[b1 + t] * m + i)));                    \
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(_mm256_set1_ps(values[b2 + t]),             \
                 _mm256_loadu_ps(xt + (size_t)indices[b2 + t] * m + i)));                    \
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(_mm256_set1_ps(values[b3 + t]),             \
                 _mm256_loadu_ps(xt + (size_t)indices[b3 + t] * m + i)));                    \
        }                                                                                    \
        /* The rows' remaining entries, still in order after the common part. */            \
        for (size_t t = common; t < n0; t++)                                                 \
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_set1_ps(values[b0 + t]),             \
                 _mm256_loadu_ps(xt + (size_t)indices[b0 + t] * m + i)));                    \
        for (size_t t = common; t < n1; t++)                                                 \
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_set1_ps(values[b1 + t]),             \
                 _mm256_loadu_ps(xt + (size_t)indices[b1 + t] * m + i)));                    \
        for (size_t t = common; t < n2; t++)                                                 \
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(_mm256_set1_ps(values[b2 + t]),             \
                 _mm256_loadu_ps(xt + (size_t)indices[b2 + t] * m + i)));                    \
        for (size_t t = common; t < n3; t++)                                                 \
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(_mm256_set1_ps(values[b3 + t]),             \
                 _mm256_loadu_ps(xt + (size_t)indices[b3 + t] * m + i)));                    \
        store8_f32(ep, i, j, a0);                                                            \
        store8_f32(ep, i, j + 1, a1);                                                        \
        store8_f32(ep, i, j + 2, a2);                                                        \
        store8_f32(ep, i, j + 3, a3);                                                        \
    }                                                                                        \
    static inline void f32_row_chunk8_##IDX(const er_csr *w, size_t j, const float *xt,      \
                                            size_t m, size_t i, const er_epilogue *ep) {     \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const float *values = (const float *)w->values;                                      \
        __m256 a0 = _mm256_setzero_ps();                                                     \
        for (size_t e = w->indptr[j]; e < w->indptr[j + 1]; e++)                             \
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_set1_ps(values[e]),                  \
                 _mm256_loadu_ps(xt + (size_t)indices[e] * m + i)));                         \
        store8_f32(ep, i, j, a0);                                                            \
    }                                                                                        \
    /* float batches: 32 lanes of one row; then 8 lanes of four rows at a time. */           \
    static const er_spmm_csr_f32_tiles f32_##IDX = {                                         \
        f32_gather_##IDX, 32, f32_row_chunk32_##IDX,                                         \
        8, f32_rows4_chunk8_##IDX, f32_row_chunk8_##IDX, er_spmm_batch_tail_f32_##IDX};      \
    /* ---- int8, m == 1: 16 x bytes per step (gather16_s8_*), one vpmaddwd. */           \
    static inline void s8_gather_##IDX(const er_csr *w, const int8_t *x, size_t i,           \
                                       const er_epilogue *ep) {                              \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const int8_t *values = (const int8_t *)w->values;                                    \
        for (size_t j = 0; j < w->rows; j++) {                                               \
            size_t e = w->indptr[j], end = w->indptr[j + 1];                                 \
            __m256i a0 = _mm256_setzero_si256();                                             \
            for (; e + 16 <= end; e += 16) {                                                 \
                __m256i xs = _mm256_cvtepi8_epi16(gather16_s8_##IDX(x, indices + e));        \
                __m256i vs = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(values + e))); \
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(xs, vs));                       \
            }                                                                                \
            int32_t acc = hsum_epi32(a0);                                                    \
            acc += er_spmm_dot_s8_##IDX(indices, values, e, end, x);                         \
            er_store_s32(ep, i, j, acc);                                                     \
        }                                                                                    \
    }                                                                                        \
    /* ---- int8, m > 1: pairs of entries through vpmaddwd, 16 then 8 batch lanes. */      \
    static inline void s8_chunk16_##IDX(const er_csr *w, size_t j, const int16_t *xt,        \
                                        size_t m, size_t i, const er_epilogue *ep) {         \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const int8_t *values = (const int8_t *)w->values;                                    \
        size_t begin = w->indptr[j], end = w->indptr[j + 1];                                 \
        size_t pairs_end = begin + (end - begin) / 2 * 2;                                    \
        __m256i lo = _mm256_setzero_si256(), hi = lo;                                        \
        for (size_t e = begin; e < pairs_end; e += 2) {                                      \
            __m256i a = _mm256_loadu_si256((const __m256i *)(xt + (size_t)indices[e] * m + i)); \
            __m256i b = _mm256_loadu_si256((const __m256i *)(xt + (size_t)indices[e + 1] * m + i)); \
            __m256i v = pair16_256(values + e);                                              \
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), v));     \
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), v));     \
        }                                                                                    \
        if (pairs_end < end) { /* an odd last entry, paired with a zero weight */            \
            __m256i a = _mm256_loadu_si256((const __m256i *)(xt + (size_t)indices[pairs_end] * m + i)); \
            __m256i v = _mm256_set1_epi32(pair16(values[pairs_end], 0));                     \
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, a), v));     \
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, a), v));     \
        }                                                                                    \
        store16_s32(ep, i, j, lo, hi);                                                       \
    }                                                                                        \
    /* 8 batch lanes: two pairs of entries per step, one in each 128-bit half, */          \
    /* folded together at the end.                                              */          \
    static inline void s8_chunk8_##IDX(const er_csr *w, size_t j, const int16_t *xt,         \
                                       size_t m, size_t i, const er_epilogue *ep) {          \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const int8_t *values = (const int8_t *)w->values;                                    \
        size_t e = w->indptr[j], end = w->indptr[j + 1];                                     \
        __m256i lo = _mm256_setzero_si256(), hi = lo;                                        \
        for (; e + 4 <= end; e += 4) {                                                       \
            __m256i a = load_two_rows8(xt + (size_t)indices[e] * m + i,                      \
                                       xt + (size_t)indices[e + 2] * m + i);                 \
            __m256i b = load_two_rows8(xt + (size_t)indices[e + 1] * m + i,                  \
                                       xt + (size_t)indices[e + 3] * m + i);                 \
            __m256i v = two_pairs16(values + e);                                             \
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), v));     \
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), v));     \
        }                                                                                    \
        if (e < end) { /* 1 to 3 last entries, padded with zero weights */                  \
            int8_t v4[4] = {0, 0, 0, 0};                                                     \
            const int16_t *r[4];                                                             \
            for (size_t t = 0; t < 4; t++) {                                                 \
                size_t f = e + t < end ? e + t : e;                                          \
                r[t] = xt + (size_t)indices[f] * m + i;                                      \
                if (e + t < end) v4[t] = values[e + t];                                      \
            }                                                                                \
            __m256i a = load_two_rows8(r[0], r[2]), b = load_two_rows8(r[1], r[3]);          \
            __m256i v = two_pairs16(v4);                                                     \
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), v));     \
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), v));     \
        }                                                                                    \
        store8_s32(ep, i, j,                                                                 \
                   _mm_add_epi32(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1)), \
                   _mm_add_epi32(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1))); \
    }                                                                                        \
    static const er_spmm_csr_s8_tiles s8_##IDX = {                                           \
        s8_gather_##IDX, 16, s8_chunk16_##IDX,                                               \
        8, NULL, s8_chunk8_##IDX, er_spmm_batch_tail_s8_##IDX};

ER_SPMM_CSR_AVX2(u16, uint16_t)
ER_SPMM_CSR_AVX2(u32, uint32_t)

er_status er_spmm_csr_f32__avx2(const er_csr *w, const float *x, size_t m,
                                const er_epilogue *ep, void *scratch) {
    return er_spmm_csr_f32(w, x, m, ep, scratch, &f32_u16, &f32_u32);
}

er_status er_spmm_csr_s8__avx2(const er_csr *w, const int8_t *x, size_t m,
                               const er_epilogue *ep, void *scratch) {
    return er_spmm_csr_s8(w, x, m, ep, scratch, &s8_u16, &s8_u32);
}
#endif /* __x86_64__ */
