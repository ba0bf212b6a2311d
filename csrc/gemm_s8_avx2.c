/* int8 GEMM for x86-64 AVX2: register tiles of MR rows of x by NR rows of w.
 *
 * The product of 32 int8 pairs: vpmaddubsw multiplies unsigned by signed bytes
 * and adds adjacent pairs into int16 with saturation.  Fed the raw int8 x as
 * "unsigned", -1 would read as 255 and 255*127*2 overflows int16.  So the sign
 * of x moves onto w (vpsignb) and |x| <= 127 goes in as the unsigned operand:
 * each pair sum is at most 2*127*127 = 32258 < 32767, exact, no saturation.
 * vpmaddwd by ones then widens pairs of those to int32 lanes.
 *
 * The vpsignb is the price of exactness: measured on Zen 3, the same loop
 * without it runs ~1.5x faster (that is what a u8 x s8 kernel such as
 * onnxruntime's MatMulInteger u8s8 path does, and it saturates on full-range
 * int8 weights).  Sign-extending to int16 and vpmaddwd instead measured
 * slower (47 vs 53 GMAC/s, even on pre-packed int16 operands), and a packed
 * broadcast layout gave no gain over these row tiles: the multiply/sign ops,
 * not the loads, bound the loop.
 *
 * Tiles: each step of 32 k loads MR chunks of x and NR chunks of w and keeps
 * MR*NR int32 accumulators in registers; the horizontal sums happen once per
 * tile.  The x rows of a tile are re-read from cache across the tiles of w,
 * the w tile (NR rows) stays in L1 while all of x passes by it.
 * Leftover rows and columns use smaller tiles (a scalar loop over them would
 * make M = 1 slow); the K tail (k % 32) goes to the shared scalar
 * er_gemm_s8_dot. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <string.h>

#include "edgerun.h"
#include "epilogue.h"
#include "gemm_s8.h"

/* 3x4: 12 accumulators + 3 x + w + temporaries fit the 16 ymm registers;
 * measured on Zen 3 against 2x4, 4x2, 4x3, 2x6 at M = 64 (3x4 ahead by 5-10%,
 * on a noisy shared machine).
 * M = 1, 2 run 1x8 tiles: more w streams per x load,
 * which is what matters when w is read once from memory. */
#define TILE_MR 3
#define TILE_NR 4
#define ROW_NR 8

#define ER_INLINE static inline __attribute__((always_inline))
/* acc += the products of 32 int8 pairs, as 8 int32 lanes; xa = |xv|.  When
 * every x is >= 0 (`nonneg`, a compile-time constant in each instance) x is
 * its own magnitude and the vpsignb is skipped. */
#define MAC32(acc, xa, xv, wv)                                                        \
    acc = _mm256_add_epi32(                                                          \
        acc, _mm256_madd_epi16(                                                      \
                 _mm256_maddubs_epi16(xa, nonneg ? (wv) : _mm256_sign_epi8(wv, xv)), ones))

/* |v|, or v itself when x is known non-negative. */
#define MAGNITUDE(v) (nonneg ? (v) : _mm256_abs_epi8(v))

#define LOAD(ptr) _mm256_loadu_si256((const __m256i *)(ptr))

/* Four vectors of 8 int32 -> their four sums, in order. */
ER_INLINE __m128i sum4(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

/* acc += the products of the 16 (or, with loadl, 8) int8 pairs in xv, wv. */
#define MAC16(acc, xv, wv)                                                           \
    acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_maddubs_epi16(_mm_abs_epi8(xv),        \
                                                              _mm_sign_epi8(wv, xv)), \
                                            _mm_set1_epi16(1)))

/* Store four outputs of row i, columns j .. j+3, adding the K tail from p.
 * A tail of 8 or more (K = 27 of a 3x3x3 conv, 24 of a 1x1 over 24 channels)
 * takes 16- and 8-byte steps first: scalar, it cost more than the 32-byte
 * loop at conv sizes. */
static void finish4(const er_epilogue *ep, const int8_t *xrow, const int8_t *w, size_t k,
                    size_t p, size_t i, size_t j, __m128i sums) {
    const int8_t *w0 = w + j * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
    if (p + 8 <= k) {
        __m128i t0 = _mm_setzero_si128(), t1 = t0, t2 = t0, t3 = t0;
        if (p + 16 <= k) {
#define LOAD16(ptr) _mm_loadu_si128((const __m128i *)(ptr))
            __m128i xv = LOAD16(xrow + p);
            MAC16(t0, xv, LOAD16(w0 + p)); MAC16(t1, xv, LOAD16(w1 + p));
            MAC16(t2, xv, LOAD16(w2 + p)); MAC16(t3, xv, LOAD16(w3 + p));
            p += 16;
        }
        if (p + 8 <= k) {
#define LOAD8(ptr) _mm_loadl_epi64((const __m128i *)(ptr))
            __m128i xv = LOAD8(xrow + p);
            MAC16(t0, xv, LOAD8(w0 + p)); MAC16(t1, xv, LOAD8(w1 + p));
            MAC16(t2, xv, LOAD8(w2 + p)); MAC16(t3, xv, LOAD8(w3 + p));
            p += 8;
        }
        sums = _mm_add_epi32(sums, _mm_hadd_epi32(_mm_hadd_epi32(t0, t1), _mm_hadd_epi32(t2, t3)));
    }
    int32_t s[4];
    _mm_storeu_si128((__m128i *)s, sums);
    if (p < k)
        for (int c = 0; c < 4; c++) s[c] += er_gemm_s8_dot(xrow, w + (j + c) * k, p, k);
    er_store4_s32(ep, i, j, s);
}

/* Rows i .. i+2 of x against rows j .. j+3 of w.  Written out by hand: the
 * 12 accumulators must stay in registers (GCC spills an array of them). */
ER_INLINE void tile_3x4(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                     const int8_t *next, const er_epilogue *ep, const int nonneg) {
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *x0 = x + i * k, *x1 = x0 + k, *x2 = x1 + k;
    const int8_t *w0 = w + j * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
    __m256i a00 = _mm256_setzero_si256(), a01 = a00, a02 = a00, a03 = a00;
    __m256i a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    __m256i a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    size_t p = 0;
    for (; p + 32 <= k; p += 32) {
        if (next) {
            _mm_prefetch((const char *)(next + p), _MM_HINT_T0);
            _mm_prefetch((const char *)(next + k + p), _MM_HINT_T0);
            _mm_prefetch((const char *)(next + 2 * k + p), _MM_HINT_T0);
            _mm_prefetch((const char *)(next + 3 * k + p), _MM_HINT_T0);
        }
        __m256i v0 = LOAD(x0 + p), v1 = LOAD(x1 + p), v2 = LOAD(x2 + p);
        __m256i s0 = MAGNITUDE(v0), s1 = MAGNITUDE(v1), s2 = MAGNITUDE(v2);
        __m256i wv = LOAD(w0 + p);
        MAC32(a00, s0, v0, wv); MAC32(a10, s1, v1, wv); MAC32(a20, s2, v2, wv);
        wv = LOAD(w1 + p);
        MAC32(a01, s0, v0, wv); MAC32(a11, s1, v1, wv); MAC32(a21, s2, v2, wv);
        wv = LOAD(w2 + p);
        MAC32(a02, s0, v0, wv); MAC32(a12, s1, v1, wv); MAC32(a22, s2, v2, wv);
        wv = LOAD(w3 + p);
        MAC32(a03, s0, v0, wv); MAC32(a13, s1, v1, wv); MAC32(a23, s2, v2, wv);
    }
    finish4(ep, x0, w, k, p, i, j, sum4(a00, a01, a02, a03));
    finish4(ep, x1, w, k, p, i + 1, j, sum4(a10, a11, a12, a13));
    finish4(ep, x2, w, k, p, i + 2, j, sum4(a20, a21, a22, a23));
}

/* Row i of x against rows j .. j+7 of w: the shape for M = 1, where w is read
 * once from memory and eight w streams keep more loads in flight. */
ER_INLINE void tile_1x8(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                     const er_epilogue *ep, const int nonneg) {
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *x0 = x + i * k, *w0 = w + j * k;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    __m256i a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    size_t p = 0;
    for (; p + 32 <= k; p += 32) {
        __m256i v = LOAD(x0 + p), s = MAGNITUDE(v);
        MAC32(a0, s, v, LOAD(w0 + p));
        MAC32(a1, s, v, LOAD(w0 + k + p));
        MAC32(a2, s, v, LOAD(w0 + 2 * k + p));
        MAC32(a3, s, v, LOAD(w0 + 3 * k + p));
        MAC32(a4, s, v, LOAD(w0 + 4 * k + p));
        MAC32(a5, s, v, LOAD(w0 + 5 * k + p));
        MAC32(a6, s, v, LOAD(w0 + 6 * k + p));
        MAC32(a7, s, v, LOAD(w0 + 7 * k + p));
    }
    finish4(ep, x0, w, k, p, i, j, sum4(a0, a1, a2, a3));
    finish4(ep, x0, w, k, p, i, j + 4, sum4(a4, a5, a6, a7));
}

/* Row i of x against rows j .. j+3 of w: rows left over below a 3x4 tile,
 * run while those 4 rows of w are still in cache. */
ER_INLINE void tile_1x4(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                     const er_epilogue *ep, const int nonneg) {
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *x0 = x + i * k, *w0 = w + j * k;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t p = 0;
    for (; p + 32 <= k; p += 32) {
        __m256i v = LOAD(x0 + p), s = MAGNITUDE(v);
        MAC32(a0, s, v, LOAD(w0 + p));
        MAC32(a1, s, v, LOAD(w0 + k + p));
        MAC32(a2, s, v, LOAD(w0 + 2 * k + p));
        MAC32(a3, s, v, LOAD(w0 + 3 * k + p));
    }
    finish4(ep, x0, w, k, p, i, j, sum4(a0, a1, a2, a3));
}

/* One output (leftover columns and rows). */
ER_INLINE void tile_1x1(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                     const er_epilogue *ep, const int nonneg) {
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *x0 = x + i * k, *w0 = w + j * k;
    __m256i a = _mm256_setzero_si256();
    size_t p = 0;
    for (; p + 32 <= k; p += 32) {
        __m256i v = LOAD(x0 + p), s = MAGNITUDE(v);
        MAC32(a, s, v, LOAD(w0 + p));
    }
    __m256i z = _mm256_setzero_si256();
    int32_t sums[4];
    _mm_storeu_si128((__m128i *)sums, sum4(a, z, z, z));
    er_store_s32(ep, i, j, sums[0] + er_gemm_s8_dot(x0, w0, p, k));
}

/* ---- small K: packed panels of 16 columns (gemm_s8.h) ---------------------- */

/* Eight outputs of row i from columns j .. j+7: er_store's float operations
 * lane by lane (int32 -> float rounds to nearest in both), so the same bits. */
ER_INLINE void store8(const er_epilogue *ep, size_t i, size_t j, __m256i acc) {
    if (ep->row_zero)   /* vpmulld/vpsubd wrap like er_zero_shift's uint32 */
        acc = _mm256_sub_epi32(acc, _mm256_mullo_epi32(_mm256_set1_epi32(ep->row_zero[i]),
                                                       LOAD(ep->col_sum + j)));
    __m256 v = _mm256_cvtepi32_ps(acc);
    if (ep->row_scale) v = _mm256_mul_ps(v, _mm256_set1_ps(ep->row_scale[i]));
    if (ep->col_scale) v = _mm256_mul_ps(v, _mm256_loadu_ps(ep->col_scale + j));
    if (ep->bias) v = _mm256_add_ps(v, _mm256_loadu_ps(ep->bias + j));
    if (ep->relu) {     /* keep v > 0 and NaN, as er_store; -0 and negatives become +0 */
        __m256 keep = _mm256_or_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ),
                                   _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        v = _mm256_and_ps(v, keep);
    }
    _mm256_storeu_ps(ep->y_f32 + i * ep->ldy + j, v);
}

/* The cols column sums of row i (in two vectors) through the epilogue: whole
 * vectors of 8 float outputs at once, the rest (and int8 outputs) through the
 * scalar er_store.  (A conv with 8 output channels is one half panel.) */
ER_INLINE void store_panel_row(const er_epilogue *ep, size_t i, size_t j, size_t cols,
                               __m256i lo, __m256i hi) {
    size_t c = 0;
    if (ep->y_f32) {
        if (cols >= 8) store8(ep, i, j, lo), c = 8;
        if (cols == 16) store8(ep, i, j + 8, hi), c = 16;
    }
    if (c == cols) return;
    int32_t sums[ER_GEMM_S8_PANEL];
    _mm256_storeu_si256((__m256i *)sums, lo);
    _mm256_storeu_si256((__m256i *)(sums + 8), hi);
    for (; c < cols; c++) er_store_s32(ep, i, j + c, sums[c]);
}

/* One group of 4 k of row r against both halves of the panel group. */
#define PANEL_MAC(acc_lo, acc_hi, word)                                              \
    do {                                                                              \
        __m256i xb_ = _mm256_set1_epi32(word), xa_ = MAGNITUDE(xb_);                  \
        MAC32(acc_lo, xa_, xb_, p0);                                                  \
        MAC32(acc_hi, xa_, xb_, p1);                                                  \
    } while (0)

ER_INLINE int32_t load_word(const int8_t *p) {
    int32_t word;
    memcpy(&word, p, 4);
    return word;
}

/* Rows i .. i+rows-1 (rows <= 4, a compile-time constant per instance) against a
 * packed panel: 8 accumulators, written out so GCC keeps them in registers.  The
 * groups of 4 k wholly inside x run in a loop with no branch on k (one in the
 * loop made GCC shuffle the accumulators between registers every group); the
 * last, partial group reads x through er_gemm_s8_group. */
ER_INLINE void panel_rows(const int8_t *x, size_t k, const int8_t *panel, size_t groups, size_t i,
                          size_t j, size_t cols, const er_epilogue *ep, const int rows,
                          const int nonneg) {
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *x0 = x + i * k, *x1 = x0 + k, *x2 = x1 + k, *x3 = x2 + k;
    __m256i a0 = _mm256_setzero_si256(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
    const size_t full = k / 4 < groups ? k / 4 : groups;
    size_t q = 0;
#define PANEL_GROUP(word_of)                                                               \
    do {                                                                                    \
        const __m256i p0 = LOAD(panel + q * 64), p1 = LOAD(panel + q * 64 + 32);            \
        PANEL_MAC(a0, b0, word_of(x0));                                                     \
        if (rows > 1) PANEL_MAC(a1, b1, word_of(x1));                                       \
        if (rows > 2) PANEL_MAC(a2, b2, word_of(x2));                                       \
        if (rows > 3) PANEL_MAC(a3, b3, word_of(x3));                                       \
    } while (0)
#define WHOLE(xrow) load_word((xrow) + 4 * q)
#define PARTIAL(xrow) er_gemm_s8_group(xrow, k, q)
    for (; q < full; q++) PANEL_GROUP(WHOLE);
    for (; q < groups; q++) PANEL_GROUP(PARTIAL);
#undef WHOLE
#undef PARTIAL
#undef PANEL_GROUP
    /* A local copy: with -fno-strict-aliasing every float store into y could
     * change *ep, so GCC reloaded each field for every 8 outputs. */
    const er_epilogue e = *ep;
    store_panel_row(&e, i, j, cols, a0, b0);
    if (rows > 1) store_panel_row(&e, i + 1, j, cols, a1, b1);
    if (rows > 2) store_panel_row(&e, i + 2, j, cols, a2, b2);
    if (rows > 3) store_panel_row(&e, i + 3, j, cols, a3, b3);
}

/* The two instances er_gemm_s8_by_panels (gemm_s8.h) takes: with and without
 * the sign step. */
ER_INLINE void panel_rows_signed(const int8_t *x, size_t k, const int8_t *panel, size_t groups,
                                 size_t i, size_t j, size_t cols, const er_epilogue *ep, int rows) {
    panel_rows(x, k, panel, groups, i, j, cols, ep, rows, 0);
}

ER_INLINE void panel_rows_nonneg(const int8_t *x, size_t k, const int8_t *panel, size_t groups,
                                 size_t i, size_t j, size_t cols, const er_epilogue *ep, int rows) {
    panel_rows(x, k, panel, groups, i, j, cols, ep, rows, 1);
}

ER_INLINE void gemm(const int8_t *x, const int8_t *w, size_t m, size_t n, size_t k,
                    const er_epilogue *ep, const int nonneg) {
    if (m < TILE_MR) {
        /* M = 1 or 2 (token-by-token inference): w streams from memory once per
         * row, eight rows of w at a time. */
        for (size_t i = 0; i < m; i++) {
            size_t j = 0;
            for (; j + ROW_NR <= n; j += ROW_NR) tile_1x8(x, w, k, i, j, ep, nonneg);
            for (; j < n; j++) tile_1x1(x, w, k, i, j, ep, nonneg);
        }
        return;
    }
    size_t full_rows = m - m % TILE_MR;
    /* Column blocks outside, row tiles inside: the TILE_NR rows of w stay in
     * cache while every row of x passes by them, so w is read from memory once. */
    size_t j = 0;
    for (; j + TILE_NR <= n; j += TILE_NR) {
        /* The first row tile also prefetches the next block of w, which
         * otherwise arrives from memory at the pace of one tile's demand. */
        const int8_t *next = j + 2 * TILE_NR <= n ? w + (j + TILE_NR) * k : NULL;
        tile_3x4(x, w, k, 0, j, next, ep, nonneg);
        for (size_t i = TILE_MR; i < full_rows; i += TILE_MR) tile_3x4(x, w, k, i, j, NULL, ep, nonneg);
        for (size_t i = full_rows; i < m; i++) tile_1x4(x, w, k, i, j, ep, nonneg);
    }
    for (; j < n; j++)
        for (size_t i = 0; i < m; i++) tile_1x1(x, w, k, i, j, ep, nonneg);
}

/* Whether every x is >= 0: one pass over x, m*k bytes against m*n*k products. */
static int all_nonnegative(const int8_t *x, size_t count) {
    __m256i any = _mm256_setzero_si256();
    size_t p = 0;
    for (; p + 32 <= count; p += 32) any = _mm256_or_si256(any, LOAD(x + p));
    int negative = _mm256_movemask_epi8(any) != 0;
    for (; p < count; p++) negative |= x[p] < 0;
    return !negative;
}

er_status er_gemm_s8__avx2(const int8_t *x, const int8_t *w, size_t m, size_t n,
                           size_t k, const er_epilogue *ep) {
    er_status status = er_gemm_s8_check(x, w, n, k, ep);
    if (status != ER_OK) return status;
    const er_epilogue local = *ep;  /* see gemm_s8.c: no reloads of *ep per output */
    ep = &local;
    /* Activations after a ReLU are >= 0: then the sign op, a third of the
     * multiply-port work, is not needed (~1.3x faster measured, same sums). */
    const int nonneg = all_nonnegative(x, m * k);
    if (er_gemm_s8_use_panels(m, k, ER_GEMM_S8_PANEL_K_PER_ROW)) {
        if (nonneg)
            er_gemm_s8_by_panels(x, w, m, n, k, ep, 1, 4, panel_rows_nonneg);
        else
            er_gemm_s8_by_panels(x, w, m, n, k, ep, 1, 4, panel_rows_signed);
    } else if (nonneg) {
        gemm(x, w, m, n, k, ep, 1);
    } else {
        gemm(x, w, m, n, k, ep, 0);
    }
    return ER_OK;
}
#endif /* __x86_64__ */
