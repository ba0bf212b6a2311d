/* spmm_bcsr4_f32 / spmm_bcsr4_s8 for x86-64 AVX2.
 *
 * int8: 8 blocks (32 weights) per step.  The 8 x quads are 32-bit loads at the
 *   block columns, the 32 weight bytes one load; then vpsignb moves the sign of
 *   x onto the weights so that vpmaddubsw multiplies |x| (unsigned) by
 *   sign(x) * w (signed): each product is at most 127 * 127 and a pair at most
 *   32258, so the int16 step never saturates (x and w are in [-127, 127]);
 *   vpmaddwd by ones widens the pairs into the int32 accumulator.
 *   m == 1 walks two output rows at once over their common full steps
 *   (s8_rows2): 4096 x 4096 at 10% density went from 0.108 to 0.090 ns per
 *   weight (best of 300 calls), against 0.29 for spmm_csr_s8 at equal nnz.
 * float: 2 blocks per 256-bit vector (two 128-bit x loads), FMA, 4 blocks per
 *   step in two accumulators; the row's sum is reordered over the lanes
 *   (within tolerance of the scalar C).
 * m > 1: up to 4 rows of x at a time share each index and weight load; no
 *   transpose, no scratch.
 * Leftovers: int8 ends a row with one masked 8-block step (tail_mask); float
 *   hands a row's last 0..1 blocks (after a 2-block step) to the scalar walker
 *   of spmm_bcsr4.h. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <string.h>

#include "edgerun.h"
#include "epilogue.h"
#include "spmm_bcsr4.h"

/* Build the x-quad vectors with scalar 32-bit loads + inserts (1) or with one
 * vpgatherdd (0).  On Zen 3, 4096 x 4096 at 10% density, m = 1, best of 300
 * calls: 0.115 ns per weight with scalar loads, 0.180 with vpgatherdd. */
#ifndef ER_BCSR4_SCALAR_GATHER
#define ER_BCSR4_SCALAR_GATHER 1
#endif

static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t ld32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The 8 (or 4) block columns of a step as 32-bit lanes. */
static inline __m256i idx8_u16(const uint16_t *ix) {
    return _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)ix));
}
static inline __m256i idx8_u32(const uint32_t *ix) {
    return _mm256_loadu_si256((const __m256i *)ix);
}

/* 8 x quads at the columns of 8 blocks. */
#if ER_BCSR4_SCALAR_GATHER
#define ER_GATHER8(IDX, x, ix, vix) gather8_##IDX(x, ix)
#else
#define ER_GATHER8(IDX, x, ix, vix) _mm256_i32gather_epi32((const int *)(x), vix, 1)
#endif
static inline __m256i gather8_u16(const int8_t *x, const uint16_t *ix) {
    /* four indices per 64-bit load (little-endian: index t is bits 16t..16t+15) */
    uint64_t i0, i1;
    memcpy(&i0, ix, 8), memcpy(&i1, ix + 4, 8);
    return _mm256_setr_epi32(ld32(x + (uint16_t)i0), ld32(x + (uint16_t)(i0 >> 16)),
                             ld32(x + (uint16_t)(i0 >> 32)), ld32(x + (i0 >> 48)),
                             ld32(x + (uint16_t)i1), ld32(x + (uint16_t)(i1 >> 16)),
                             ld32(x + (uint16_t)(i1 >> 32)), ld32(x + (i1 >> 48)));
}
static inline __m256i gather8_u32(const int8_t *x, const uint32_t *ix) {
    return _mm256_setr_epi32(ld32(x + ix[0]), ld32(x + ix[1]), ld32(x + ix[2]), ld32(x + ix[3]),
                             ld32(x + ix[4]), ld32(x + ix[5]), ld32(x + ix[6]), ld32(x + ix[7]));
}

/* acc += the 32 products of quads xq and weights v, as 8 int32 lanes. */
static inline __m256i dot32(__m256i acc, __m256i xq, __m256i v) {
    __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(xq), _mm256_sign_epi8(v, xq));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* The last rem (1..7) blocks of a row as one 8-block step: vpmaskmovd reads
 * only the weights of lanes t < rem (it does not fault past the end of the
 * array, so no padding is needed), the other lanes get weight 0 and re-read the
 * x quad of the step's first block (any valid address will do).  On Zen 3 this
 * took the 4096 x 4096, 10%-dense layer from 0.115 to 0.108 ns per weight
 * (best of 300 calls) against a 4-block step plus the scalar walker: rows are
 * ~100 blocks, so a row's tail is a visible share of its work. */
static inline __m256i tail_mask(size_t rem) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Two x quads (float) of blocks at columns c0, c1: one 256-bit vector. */
static inline __m256 quads2_f32(const float *x, size_t c0, size_t c1) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(x + c0)),
                                _mm_loadu_ps(x + c1), 1);
}

/* R rows of x (R = 1..4, a constant after inlining) against output row j. */
#define ER_SPMM_BCSR4_AVX2(IDX, idx_t)                                                        \
    /* Blocks [b, end) of one output row into acc[0..R) (rows of x xr, xr + k, ..). */      \
    static inline __attribute__((always_inline)) void s8_blocks_##IDX(                        \
        const er_csr *w, const int8_t *xr, const int R, size_t b, size_t end, __m256i *acc) { \
        const idx_t *indices = (const idx_t *)w->indices;                                     \
        const int8_t *values = (const int8_t *)w->values;                                     \
        const size_t k = w->cols;                                                             \
        for (; b + 8 <= end; b += 8) {                                                        \
            __m256i v = _mm256_loadu_si256((const __m256i *)(values + 4 * b));                \
            __m256i vix = idx8_##IDX(indices + b);                                            \
            (void)vix;                                                                        \
            for (int r = 0; r < R; r++)                                                       \
                acc[r] = dot32(acc[r], ER_GATHER8(IDX, xr + r * k, indices + b, vix), v);     \
        }                                                                                     \
        if (b < end) { /* the last 1..7 blocks: one masked step (see tail_mask) */       \
            size_t rem = end - b;                                                             \
            __m256i keep = tail_mask(rem);                                                    \
            __m256i v = _mm256_maskload_epi32((const int *)(values + 4 * b), keep);           \
            const idx_t *ix = indices + b;                                                    \
            size_t c[8];                                                                      \
            /* t * (t < rem), not a ?: -- GCC turned that into a branch chain that */          \
            /* mispredicted on every row (rem is random).                          */          \
            for (size_t t = 0; t < 8; t++) c[t] = ix[t * (size_t)(t < rem)];                  \
            for (int r = 0; r < R; r++) {                                                     \
                const int8_t *xq = xr + r * k;                                                \
                __m256i q = _mm256_setr_epi32(ld32(xq + c[0]), ld32(xq + c[1]),               \
                                              ld32(xq + c[2]), ld32(xq + c[3]),               \
                                              ld32(xq + c[4]), ld32(xq + c[5]),               \
                                              ld32(xq + c[6]), ld32(xq + c[7]));              \
                acc[r] = dot32(acc[r], q, v);                                                 \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    static inline __attribute__((always_inline)) void s8_row_##IDX(                           \
        const er_csr *w, const int8_t *x, size_t i, const int R, size_t j,                    \
        const er_epilogue *ep) {                                                              \
        __m256i acc[4];                                                                       \
        for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_si256();                          \
        s8_blocks_##IDX(w, x + i * w->cols, R, w->indptr[j], w->indptr[j + 1], acc);          \
        for (int r = 0; r < R; r++) er_store_s32(ep, i + r, j, hsum_epi32(acc[r]));           \
    }                                                                                         \
    /* m == 1, two output rows at once over their common full steps: the two   */           \
    /* independent streams keep the core busy across a row's end (its loop     */           \
    /* exit mispredicts), then each row finishes alone.                         */           \
    static void s8_rows2_##IDX(const er_csr *w, const int8_t *x, size_t j,                    \
                               const er_epilogue *ep) {                                       \
        const idx_t *indices = (const idx_t *)w->indices;                                     \
        const int8_t *values = (const int8_t *)w->values;                                     \
        size_t b0 = w->indptr[j], e0 = w->indptr[j + 1], b1 = e0, e1 = w->indptr[j + 2];     \
        size_t n0 = (e0 - b0) / 8, n1 = (e1 - b1) / 8, steps = n0 < n1 ? n0 : n1;            \
        __m256i a0 = _mm256_setzero_si256(), a1 = a0;                                         \
        for (size_t s = 0; s < steps; s++, b0 += 8, b1 += 8) {                                \
            __m256i v0 = _mm256_loadu_si256((const __m256i *)(values + 4 * b0));              \
            __m256i v1 = _mm256_loadu_si256((const __m256i *)(values + 4 * b1));              \
            __m256i vix0 = idx8_##IDX(indices + b0), vix1 = idx8_##IDX(indices + b1);         \
            (void)vix0, (void)vix1;                                                           \
            a0 = dot32(a0, ER_GATHER8(IDX, x, indices + b0, vix0), v0);                       \
            a1 = dot32(a1, ER_GATHER8(IDX, x, indices + b1, vix1), v1);                       \
        }                                                                                     \
        s8_blocks_##IDX(w, x, 1, b0, e0, &a0);                                                \
        s8_blocks_##IDX(w, x, 1, b1, e1, &a1);                                                \
        er_store_s32(ep, 0, j, hsum_epi32(a0));                                               \
        er_store_s32(ep, 0, j + 1, hsum_epi32(a1));                                           \
    }                                                                                         \
    static void s8_all_##IDX(const er_csr *w, const int8_t *x, size_t m,                      \
                             const er_epilogue *ep) {                                         \
        size_t i = 0;                                                                         \
        if (m == 1) {                                                                         \
            size_t j = 0;                                                                     \
            for (; j + 2 <= w->rows; j += 2) s8_rows2_##IDX(w, x, j, ep);                     \
            for (; j < w->rows; j++) s8_row_##IDX(w, x, 0, 1, j, ep);                         \
            return;                                                                           \
        }                                                                                     \
        for (; i + 4 <= m; i += 4)                                                            \
            for (size_t j = 0; j < w->rows; j++) s8_row_##IDX(w, x, i, 4, j, ep);             \
        for (; i < m; i++)                                                                    \
            for (size_t j = 0; j < w->rows; j++) s8_row_##IDX(w, x, i, 1, j, ep);             \
    }                                                                                         \
    static inline __attribute__((always_inline)) void f32_row_##IDX(                          \
        const er_csr *w, const float *x, size_t i, const int R, size_t j,                     \
        const er_epilogue *ep) {                                                              \
        const idx_t *indices = (const idx_t *)w->indices;                                     \
        const float *values = (const float *)w->values;                                       \
        const size_t k = w->cols;                                                             \
        const float *xr = x + i * k;                                                          \
        size_t b = w->indptr[j], end = w->indptr[j + 1];                                      \
        __m256 a0[4], a1[4];                                                                  \
        for (int r = 0; r < R; r++) a0[r] = a1[r] = _mm256_setzero_ps();                      \
        for (; b + 4 <= end; b += 4) {                                                        \
            __m256 v0 = _mm256_loadu_ps(values + 4 * b);                                      \
            __m256 v1 = _mm256_loadu_ps(values + 4 * b + 8);                                  \
            size_t c0 = indices[b], c1 = indices[b + 1], c2 = indices[b + 2],                 \
                   c3 = indices[b + 3];                                                       \
            for (int r = 0; r < R; r++) {                                                     \
                a0[r] = _mm256_fmadd_ps(v0, quads2_f32(xr + r * k, c0, c1), a0[r]);           \
                a1[r] = _mm256_fmadd_ps(v1, quads2_f32(xr + r * k, c2, c3), a1[r]);           \
            }                                                                                 \
        }                                                                                     \
        if (b + 2 <= end) {                                                                   \
            __m256 v0 = _mm256_loadu_ps(values + 4 * b);                                      \
            size_t c0 = indices[b], c1 = indices[b + 1];                                      \
            for (int r = 0; r < R; r++)                                                       \
                a0[r] = _mm256_fmadd_ps(v0, quads2_f32(xr + r * k, c0, c1), a0[r]);           \
            b += 2;                                                                           \
        }                                                                                     \
        for (int r = 0; r < R; r++)                                                           \
            er_store(ep, i + r, j,                                                            \
                     er_bcsr4_dot_f32_##IDX(indices, values, b, end, xr + r * k,              \
                                            hsum_ps(_mm256_add_ps(a0[r], a1[r]))));           \
    }                                                                                         \
    static void f32_all_##IDX(const er_csr *w, const float *x, size_t m,                      \
                              const er_epilogue *ep) {                                        \
        size_t i = 0;                                                                         \
        for (; i + 4 <= m; i += 4)                                                            \
            for (size_t j = 0; j < w->rows; j++) f32_row_##IDX(w, x, i, 4, j, ep);            \
        for (; i < m; i++)                                                                    \
            for (size_t j = 0; j < w->rows; j++) f32_row_##IDX(w, x, i, 1, j, ep);            \
    }

ER_SPMM_BCSR4_AVX2(u16, uint16_t)
ER_SPMM_BCSR4_AVX2(u32, uint32_t)

er_status er_spmm_bcsr4_f32__avx2(const er_csr *w, const float *x, size_t m,
                                  const er_epilogue *ep, void *scratch) {
    (void)scratch;
    return er_spmm_f32(w, x, m, ep, 4, f32_all_u16, f32_all_u32);
}

er_status er_spmm_bcsr4_s8__avx2(const er_csr *w, const int8_t *x, size_t m,
                                 const er_epilogue *ep, void *scratch) {
    (void)scratch;
    return er_spmm_s8(w, x, m, ep, 4, s8_all_u16, s8_all_u32);
}
#endif /* __x86_64__ */
