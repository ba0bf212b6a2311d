/* The packed-panel path of gemm_s8 (gemm_s8.h) for NEON: the float epilogue
 * on four outputs per vector op, and the panel kernels of the baseline NEON
 * variants (aarch64 and armv7) and -- where the including file enables SDOT --
 * of the dotprod and i8mm variants.  On aarch64 also the finish that the NEON
 * and SDOT row tiles share (er_row_finish4).
 *
 * Panels are 16 columns packed in groups of 4 k, so a 16-byte vector of a
 * panel holds 4 columns x 4 k.  SDOT by lane multiplies such a vector with one
 * 4-byte group of x and adds each column's dot product into its own int32
 * lane: the sums land in column order, with no horizontal reduction.  Without
 * SDOT, vmull_s8 against the group repeated gives int16 products, one more
 * group is added by vmlal_s8 (two products of at most 127 * 127 fit int16) and
 * vpadalq_s16 folds pairs into int32: two lanes per column, added once at the
 * end of the tile. */
#ifndef EDGERUN_GEMM_S8_PANEL_NEON_H
#define EDGERUN_GEMM_S8_PANEL_NEON_H
#if defined(__ARM_NEON)
#include <arm_neon.h>
#include <string.h>

#include "gemm_s8.h"

#define ER_PANEL_INLINE static inline __attribute__((always_inline))

#if defined(__aarch64__)
/* Outputs j .. j+3 of row i: er_store's float operations lane by lane (SCVTF
 * rounds to nearest like the scalar conversion), so the same bits. */
ER_PANEL_INLINE void er_panel_store4(const er_epilogue *ep, size_t i, size_t j, int32x4_t acc) {
    if (ep->row_zero)   /* MLS wraps like er_zero_shift's uint32 */
        acc = vmlsq_n_s32(acc, vld1q_s32(ep->col_sum + j), ep->row_zero[i]);
    float32x4_t v = vcvtq_f32_s32(acc);
    if (ep->row_scale) v = vmulq_n_f32(v, ep->row_scale[i]);
    if (ep->col_scale) v = vmulq_f32(v, vld1q_f32(ep->col_scale + j));
    if (ep->bias) v = vaddq_f32(v, vld1q_f32(ep->bias + j));
    if (ep->relu) {     /* keep v > 0 and NaN, as er_store; -0 and negatives become +0 */
        uint32x4_t keep = vorrq_u32(vcgtq_f32(v, vdupq_n_f32(0.0f)), vmvnq_u32(vceqq_f32(v, v)));
        v = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), keep));
    }
    vst1q_f32(ep->y_f32 + i * ep->ldy + j, v);
}

/* ---- the row tiles' finish (gemm_s8_neon.c, gemm_s8_dotprod.c) ---------------
 * A row tile keeps one int32x4 of partial sums per (x row, w row); four of them
 * fold into the four outputs of one row, the K tail past the last 16-byte step
 * is added, and the vector epilogue stores them. */

/* Four int32x4 -> their four sums, in order. */
ER_PANEL_INLINE int32x4_t er_sum4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    return vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
}

/* sums (columns j .. j+3 of row xrow) plus the K tail from p.  A tail of 8 or
 * more (K = 24 of a 1x1 conv over 24 channels) takes one 8-byte step first:
 * scalar, it cost more than the 16-byte loop at conv sizes.  Out of line: inlined
 * into the tiles, this cold path cost the hot loop registers (NEON 128 x 256 x 256
 * 2.33M -> 2.40M instructions). */
static __attribute__((noinline, unused)) int32x4_t er_row_add_tail4(
        const int8_t *xrow, const int8_t *w, size_t k, size_t p, size_t j, int32x4_t sums) {
    if (p + 8 <= k) {
        const int8_t *w0 = w + j * k;
        int8x8_t xv = vld1_s8(xrow + p);
        sums = vaddq_s32(sums, er_sum4(vpaddlq_s16(vmull_s8(xv, vld1_s8(w0 + p))),
                                       vpaddlq_s16(vmull_s8(xv, vld1_s8(w0 + k + p))),
                                       vpaddlq_s16(vmull_s8(xv, vld1_s8(w0 + 2 * k + p))),
                                       vpaddlq_s16(vmull_s8(xv, vld1_s8(w0 + 3 * k + p)))));
        p += 8;
    }
    int32_t s[4];
    vst1q_s32(s, sums);
    for (int c = 0; c < 4 && p < k; c++) s[c] += er_gemm_s8_dot(xrow, w + (j + c) * k, p, k);
    return vld1q_s32(s);
}

/* Outputs j .. j+3 of row i (x row xrow) from their sums up to p: the float
 * epilogue four lanes at a time (er_panel_store4, the same bits), inline -- per
 * output row of a 4x4 tile the scalar er_store4_s32 had been ~300 of the ~1100
 * instructions of a tile at K = 256 (NEON 128 x 256 x 256: 2.55M instructions) --
 * and int8 outputs through the scalar epilogue. */
ER_PANEL_INLINE void er_row_finish4(const er_epilogue *ep, const int8_t *xrow, const int8_t *w,
                                    size_t k, size_t p, size_t i, size_t j, int32x4_t sums) {
    if (p < k) sums = er_row_add_tail4(xrow, w, k, p, j, sums);
    if (ep->y_f32) {
        er_panel_store4(ep, i, j, sums);
        return;
    }
    int32_t s[4];
    vst1q_s32(s, sums);
    er_store4_s32(ep, i, j, s);
}
#endif

/* Row i's sums of columns j .. j+cols-1, four per vector in c[].  armv7 NEON
 * flushes subnormal floats to zero where the scalar VFP epilogue keeps them, so
 * there the float epilogue stays scalar (the sums are integers either way). */
ER_PANEL_INLINE void er_panel_store_row(const er_epilogue *shared, size_t i, size_t j, size_t cols,
                                        const int32x4_t c[4]) {
    /* A local copy: with -fno-strict-aliasing every float store into y could
     * change *shared, so GCC would reload each field for every 4 outputs. */
    const er_epilogue copy = *shared, *ep = &copy;
    size_t done = 0;
#if defined(__aarch64__)
    if (ep->y_f32)
        for (; done + 4 <= cols; done += 4) er_panel_store4(ep, i, j + done, c[done / 4]);
#else
    for (; done + 4 <= cols; done += 4) {
        int32_t four[4];
        vst1q_s32(four, c[done / 4]);
        er_store4_s32(ep, i, j + done, four);
    }
#endif
    if (done == cols) return;
    int32_t sums[ER_GEMM_S8_PANEL];
    for (int v = 0; v < 4; v++) vst1q_s32(sums + 4 * v, c[v]);
    for (; done < cols; done++) er_store_s32(ep, i, j + done, sums[done]);
}

ER_PANEL_INLINE int32_t er_panel_word(const int8_t *xrow, size_t k, size_t q) {
    int32_t word;
    if (4 * q + 4 <= k) {
        memcpy(&word, xrow + 4 * q, 4);
        return word;
    }
    return er_gemm_s8_group(xrow, k, q);
}

/* ---- baseline NEON: 2 rows x 16 columns, 16 accumulators -------------------- */

/* Column vector v (columns 4v .. 4v+3) of two groups against x0, x1 of one row:
 * lo/hi accumulate columns 4v, 4v+1 / 4v+2, 4v+3, two lanes each. */
#if defined(__aarch64__)
#define ER_PANEL_MUL_HIGH(p0, p1, x0, x1) vmlal_high_s8(vmull_high_s8(p0, x0), p1, x1)
#define ER_PANEL_PAIRS(a, b) vpaddq_s32(a, b)
#else   /* armv7: no _high forms, no vpaddq */
#define ER_PANEL_MUL_HIGH(p0, p1, x0, x1)                                             \
    vmlal_s8(vmull_s8(vget_high_s8(p0), vget_high_s8(x0)), vget_high_s8(p1), vget_high_s8(x1))
#define ER_PANEL_PAIRS(a, b)                                                          \
    vcombine_s32(vpadd_s32(vget_low_s32(a), vget_high_s32(a)),                          \
                 vpadd_s32(vget_low_s32(b), vget_high_s32(b)))
#endif
#define ER_PANEL_NEON_MAC(lo, hi, p0, p1, x0, x1)                                     \
    do {                                                                              \
        lo = vpadalq_s16(lo, vmlal_s8(vmull_s8(vget_low_s8(p0), vget_low_s8(x0)),       \
                                      vget_low_s8(p1), vget_low_s8(x1)));              \
        hi = vpadalq_s16(hi, ER_PANEL_MUL_HIGH(p0, p1, x0, x1));                        \
    } while (0)

#define ER_PANEL_NEON_COLUMNS(v, a_lo, a_hi, b_lo, b_hi)                              \
    do {                                                                              \
        int8x16_t p0_ = vld1q_s8(g0 + 16 * (v)), p1_ = vld1q_s8(g1 + 16 * (v));       \
        ER_PANEL_NEON_MAC(a_lo, a_hi, p0_, p1_, xa0, xa1);                            \
        if (rows > 1) ER_PANEL_NEON_MAC(b_lo, b_hi, p0_, p1_, xb0, xb1);              \
    } while (0)

/* Rows i, i+1 (rows = 1 or 2, a compile-time constant per instance) against a
 * panel of `groups` (even) groups; the 16 accumulators written out so that GCC
 * keeps them in registers (an indexed array of them went to the stack). */
ER_PANEL_INLINE void er_panel_rows_neon(const int8_t *x, size_t k, const int8_t *panel,
                                        size_t groups, size_t i, size_t j, size_t cols,
                                        const er_epilogue *ep, const int rows) {
    const int8_t *xa = x + i * k, *xb = xa + k;
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    int32x4_t b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
    for (size_t q = 0; q < groups; q += 2) {
        /* each group repeated across the vector: both halves of a panel vector
         * (columns 4v, 4v+1 and 4v+2, 4v+3) meet the same 4 bytes of x */
        const int8x16_t xa0 = vreinterpretq_s8_s32(vdupq_n_s32(er_panel_word(xa, k, q)));
        const int8x16_t xa1 = vreinterpretq_s8_s32(vdupq_n_s32(er_panel_word(xa, k, q + 1)));
        int8x16_t xb0 = xa0, xb1 = xa1;
        if (rows > 1) {
            xb0 = vreinterpretq_s8_s32(vdupq_n_s32(er_panel_word(xb, k, q)));
            xb1 = vreinterpretq_s8_s32(vdupq_n_s32(er_panel_word(xb, k, q + 1)));
        }
        const int8_t *g0 = panel + q * ER_GEMM_S8_PANEL * 4, *g1 = g0 + ER_GEMM_S8_PANEL * 4;
        ER_PANEL_NEON_COLUMNS(0, a0, a1, b0, b1);
        ER_PANEL_NEON_COLUMNS(1, a2, a3, b2, b3);
        ER_PANEL_NEON_COLUMNS(2, a4, a5, b4, b5);
        ER_PANEL_NEON_COLUMNS(3, a6, a7, b6, b7);
    }
    const int32x4_t ca[4] = {ER_PANEL_PAIRS(a0, a1), ER_PANEL_PAIRS(a2, a3), ER_PANEL_PAIRS(a4, a5),
                             ER_PANEL_PAIRS(a6, a7)};
    er_panel_store_row(ep, i, j, cols, ca);
    if (rows > 1) {
        const int32x4_t cb[4] = {ER_PANEL_PAIRS(b0, b1), ER_PANEL_PAIRS(b2, b3), ER_PANEL_PAIRS(b4, b5),
                                 ER_PANEL_PAIRS(b6, b7)};
        er_panel_store_row(ep, i + 1, j, cols, cb);
    }
}

/* aarch64's 32 vector registers hold two rows' 16 accumulators, armv7's 16 one row's 8. */
#if defined(__aarch64__)
#define ER_PANEL_NEON_TILE_ROWS 2
#else
#define ER_PANEL_NEON_TILE_ROWS 1
#endif

static inline void er_gemm_s8_panels_neon(const int8_t *x, const int8_t *w, size_t m, size_t n,
                                          size_t k, const er_epilogue *ep) {
    er_gemm_s8_by_panels(x, w, m, n, k, ep, 2, ER_PANEL_NEON_TILE_ROWS, er_panel_rows_neon);
}

/* ---- SDOT: 4 rows x 16 columns, 16 accumulators ----------------------------- */
#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)

/* 16 bytes of x from 4s*4 (zero past k). */
ER_PANEL_INLINE int8x16_t er_panel_x16(const int8_t *xrow, size_t k, size_t s) {
    const size_t p = 16 * s;
    if (p + 16 <= k) return vld1q_s8(xrow + p);
    /* the runtime pads K to whole 8-byte steps: 8 left is the usual tail (a conv
     * over 40 channels x 3 taps, K = 120), one load instead of a stack copy */
    if (p + 8 == k) return vcombine_s8(vld1_s8(xrow + p), vdup_n_s8(0));
    int8_t bytes[16] = {0};
    if (p < k) memcpy(bytes, xrow + p, k - p);
    return vld1q_s8(bytes);
}

/* One row's four accumulators (16 columns) += the panel group's four vectors
 * times byte group g of that row's x vector. */
#define ER_PANEL_SDOT_ROW(c0, c1, c2, c3, xv, g)                                       \
    do {                                                                               \
        c0 = vdotq_laneq_s32(c0, p0_, xv, g);                                          \
        c1 = vdotq_laneq_s32(c1, p1_, xv, g);                                          \
        c2 = vdotq_laneq_s32(c2, p2_, xv, g);                                          \
        c3 = vdotq_laneq_s32(c3, p3_, xv, g);                                          \
    } while (0)

#define ER_PANEL_SDOT_GROUP(g)                                                         \
    do {                                                                               \
        /* the group's 64 bytes in one LD1 of four registers */                     \
        const int8x16x4_t p_ = vld1q_s8_x4(panel + (4 * s + (g)) * ER_GEMM_S8_PANEL * 4); \
        const int8x16_t p0_ = p_.val[0], p1_ = p_.val[1], p2_ = p_.val[2], p3_ = p_.val[3]; \
        ER_PANEL_SDOT_ROW(a0, a1, a2, a3, xa, g);                                      \
        if (rows > 1) ER_PANEL_SDOT_ROW(b0, b1, b2, b3, xb, g);                        \
        if (rows > 2) ER_PANEL_SDOT_ROW(c0, c1, c2, c3, xc, g);                        \
        if (rows > 3) ER_PANEL_SDOT_ROW(d0, d1, d2, d3, xd, g);                        \
    } while (0)

/* One step of 16 k (four byte groups) for every row, x read by load(row). */
#define ER_PANEL_SDOT_STEP(load)                                                       \
    do {                                                                               \
        const int8x16_t xa = load(x0);                                                 \
        const int8x16_t xb = rows > 1 ? load(x1) : xa, xc = rows > 2 ? load(x2) : xa;  \
        const int8x16_t xd = rows > 3 ? load(x3) : xa;                                 \
        ER_PANEL_SDOT_GROUP(0);                                                        \
        ER_PANEL_SDOT_GROUP(1);                                                        \
        ER_PANEL_SDOT_GROUP(2);                                                        \
        ER_PANEL_SDOT_GROUP(3);                                                        \
    } while (0)

/* Rows i .. i+rows-1 (rows <= 4, a compile-time constant per instance) against a
 * panel of `groups` (a multiple of 4) groups.  The 16 accumulators are written
 * out, and the steps wholly inside x run in a loop with no branch on k: an
 * array of accumulators, indexed in loops over rows, was kept on the stack and
 * stored back every step (1.18M instructions at 128 x 256 x 256). */
ER_PANEL_INLINE void er_panel_rows_sdot(const int8_t *x, size_t k, const int8_t *panel,
                                        size_t groups, size_t i, size_t j, size_t cols,
                                        const er_epilogue *ep, const int rows) {
    const int8_t *x0 = x + i * k, *x1 = x0 + k, *x2 = x1 + k, *x3 = x2 + k;
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int32x4_t c0 = a0, c1 = a0, c2 = a0, c3 = a0, d0 = a0, d1 = a0, d2 = a0, d3 = a0;
    const size_t steps = groups / 4, whole = k / 16 < steps ? k / 16 : steps;
    size_t s = 0;
#define ER_WHOLE(xrow) vld1q_s8((xrow) + 16 * s)
#define ER_PARTIAL(xrow) er_panel_x16(xrow, k, s)
    for (; s < whole; s++) ER_PANEL_SDOT_STEP(ER_WHOLE);
    for (; s < steps; s++) ER_PANEL_SDOT_STEP(ER_PARTIAL);
#undef ER_WHOLE
#undef ER_PARTIAL
    /* Row by row, each from its own four registers: a [4][4] array of them here went
     * through the stack (1024 x 96 x 32: 0.99M -> 1.04M instructions). */
    const int32x4_t ca[4] = {a0, a1, a2, a3};
    er_panel_store_row(ep, i, j, cols, ca);
    if (rows > 1) {
        const int32x4_t cb[4] = {b0, b1, b2, b3};
        er_panel_store_row(ep, i + 1, j, cols, cb);
    }
    if (rows > 2) {
        const int32x4_t cc[4] = {c0, c1, c2, c3};
        er_panel_store_row(ep, i + 2, j, cols, cc);
    }
    if (rows > 3) {
        const int32x4_t cd[4] = {d0, d1, d2, d3};
        er_panel_store_row(ep, i + 3, j, cols, cd);
    }
}

static inline void er_gemm_s8_panels_sdot(const int8_t *x, const int8_t *w, size_t m, size_t n,
                                          size_t k, const er_epilogue *ep) {
    er_gemm_s8_by_panels(x, w, m, n, k, ep, 4, 4, er_panel_rows_sdot);
}
#endif /* __ARM_FEATURE_DOTPROD */
#endif /* __ARM_NEON */
#endif
