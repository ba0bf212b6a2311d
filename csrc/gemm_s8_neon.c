/* int8 GEMM for aarch64 NEON (baseline Armv8.0, no SDOT): tiles of 4 rows of x
 * by 4 rows of w, 16 int32x4 accumulators out of the 32 vector registers.
 *
 * Per 16 k and per (x row, w row): vmull_s8 multiplies the low 8 byte pairs
 * into int16, vmlal_high_s8 adds the high 8 products on top -- two products of
 * at most 127*127 sum to 32258 < 32767, exact (a third could overflow, so the
 * int16 vector is folded into int32 right away) -- and vpadalq_s16 adds
 * adjacent int16 pairs into the int32 accumulator.
 * Leftover rows run 1x4 tiles, leftover columns 1x1; the K tail (k % 16) goes to
 * the shared scalar er_gemm_s8_dot. */
#if defined(__aarch64__)
/* GCC's scheduler hoists all 16 multiplies of a 4x4 step ahead of their
 * accumulations and then spills accumulators; the source order (COLUMN4)
 * is already interleaved for the pipeline, so keep it. */
#pragma GCC optimize("no-schedule-insns")
#include <arm_neon.h>

#include "edgerun.h"
#include "epilogue.h"
#include "gemm_s8.h"
#include "gemm_s8_panel_neon.h"

/* acc += products of 16 int8 pairs, as 4 int32 lanes. */
#define MAC16(acc, xv, wv) \
    acc = vpadalq_s16(acc, vmlal_high_s8(vmull_s8(vget_low_s8(xv), vget_low_s8(wv)), xv, wv))

/* One w vector against the four x rows of a 4x4 tile, the three steps of
 * MAC16 issued for all four rows at once so that an in-order core (Cortex-A53)
 * does not wait on each multiply.  One w vector live at a time keeps the 16
 * accumulators + 4 x + 1 w + 4 temporaries within the 32 registers. */
#define COLUMN4(acc0, acc1, acc2, acc3, wexpr)                                          \
    do {                                                                              \
        int8x16_t c_ = (wexpr);                                                       \
        int16x8_t t0_ = vmull_s8(vget_low_s8(v0), vget_low_s8(c_));                   \
        int16x8_t t1_ = vmull_s8(vget_low_s8(v1), vget_low_s8(c_));                   \
        int16x8_t t2_ = vmull_s8(vget_low_s8(v2), vget_low_s8(c_));                   \
        int16x8_t t3_ = vmull_s8(vget_low_s8(v3), vget_low_s8(c_));                   \
        t0_ = vmlal_high_s8(t0_, v0, c_);                                             \
        t1_ = vmlal_high_s8(t1_, v1, c_);                                             \
        t2_ = vmlal_high_s8(t2_, v2, c_);                                             \
        t3_ = vmlal_high_s8(t3_, v3, c_);                                             \
        acc0 = vpadalq_s16(acc0, t0_);                                                \
        acc1 = vpadalq_s16(acc1, t1_);                                                \
        acc2 = vpadalq_s16(acc2, t2_);                                                \
        acc3 = vpadalq_s16(acc3, t3_);                                                \
    } while (0)

static void tile_4x4(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                     const er_epilogue *ep) {
    const int8_t *x0 = x + i * k, *x1 = x0 + k, *x2 = x1 + k, *x3 = x2 + k;
    const int8_t *w0 = w + j * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
    int32x4_t a00 = vdupq_n_s32(0), a01 = a00, a02 = a00, a03 = a00;
    int32x4_t a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    int32x4_t a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    int32x4_t a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    size_t p = 0;
    /* Two 16-k steps per loop iteration: the loop's own instructions and GCC's
     * register rotation at its end are then paid once per 32 k (128 x 256 x 256:
     * 2.36M -> 2.33M instructions). */
#define STEP16()                                                                      \
    do {                                                                              \
        int8x16_t v0 = vld1q_s8(x0 + p), v1 = vld1q_s8(x1 + p);                       \
        int8x16_t v2 = vld1q_s8(x2 + p), v3 = vld1q_s8(x3 + p);                       \
        COLUMN4(a00, a10, a20, a30, vld1q_s8(w0 + p));                                \
        COLUMN4(a01, a11, a21, a31, vld1q_s8(w1 + p));                                \
        COLUMN4(a02, a12, a22, a32, vld1q_s8(w2 + p));                                \
        COLUMN4(a03, a13, a23, a33, vld1q_s8(w3 + p));                                \
        p += 16;                                                                      \
    } while (0)
    for (; p + 32 <= k;) {
        STEP16();
        STEP16();
    }
    if (p + 16 <= k) STEP16();
#undef STEP16
    /* A local copy: with -fno-strict-aliasing a float store into y could change
     * *ep, so each field would be reloaded for every four outputs. */
    const er_epilogue e = *ep;
    er_row_finish4(&e, x0, w, k, p, i, j, er_sum4(a00, a01, a02, a03));
    er_row_finish4(&e, x1, w, k, p, i + 1, j, er_sum4(a10, a11, a12, a13));
    er_row_finish4(&e, x2, w, k, p, i + 2, j, er_sum4(a20, a21, a22, a23));
    er_row_finish4(&e, x3, w, k, p, i + 3, j, er_sum4(a30, a31, a32, a33));
}

/* Row i against rows j .. j+7 of w: the M = 1 shape (w streamed once). */
static void tile_1x8(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                     const er_epilogue *ep) {
    const int8_t *x0 = x + i * k, *w0 = w + j * k;
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
        int8x16_t v = vld1q_s8(x0 + p);
        MAC16(a0, v, vld1q_s8(w0 + p));
        MAC16(a1, v, vld1q_s8(w0 + k + p));
        MAC16(a2, v, vld1q_s8(w0 + 2 * k + p));
        MAC16(a3, v, vld1q_s8(w0 + 3 * k + p));
        MAC16(a4, v, vld1q_s8(w0 + 4 * k + p));
        MAC16(a5, v, vld1q_s8(w0 + 5 * k + p));
        MAC16(a6, v, vld1q_s8(w0 + 6 * k + p));
        MAC16(a7, v, vld1q_s8(w0 + 7 * k + p));
    }
    er_row_finish4(ep, x0, w, k, p, i, j, er_sum4(a0, a1, a2, a3));
    er_row_finish4(ep, x0, w, k, p, i, j + 4, er_sum4(a4, a5, a6, a7));
}

static void tile_1x1(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                     const er_epilogue *ep) {
    const int8_t *x0 = x + i * k, *w0 = w + j * k;
    int32x4_t a = vdupq_n_s32(0);
    size_t p = 0;
    for (; p + 16 <= k; p += 16) MAC16(a, vld1q_s8(x0 + p), vld1q_s8(w0 + p));
    er_store_s32(ep, i, j, vaddvq_s32(a) + er_gemm_s8_dot(x0, w0, p, k));
}

er_status er_gemm_s8__neon(const int8_t *x, const int8_t *w, size_t m, size_t n, size_t k,
                           const er_epilogue *ep) {
    er_status status = er_gemm_s8_check(x, w, n, k, ep);
    if (status != ER_OK) return status;
    const er_epilogue local = *ep;  /* see gemm_s8.c: no reloads of *ep per output */
    ep = &local;
    /* Without SDOT a panel step does ~3 products per instruction, a 4x4 row
     * tile ~5 (qemu instruction counts, docs/ARM.md): panels pay only while
     * the row tiles' per-output reductions dominate, K <= 64. */
    if (k <= 64 && er_gemm_s8_use_panels(m, k, ER_GEMM_S8_PANEL_K_PER_ROW)) {
        er_gemm_s8_panels_neon(x, w, m, n, k, ep);
        return ER_OK;
    }
    size_t full_rows = m - m % 4;
    /* Column blocks outside, row tiles inside: 4 rows of w stay in cache while
     * every row of x passes by them. */
    size_t j = 0;
    for (; j + 4 <= n; j += 4)
        for (size_t i = 0; i < full_rows; i += 4) tile_4x4(x, w, k, i, j, ep);
    for (; j < n; j++)
        for (size_t i = 0; i < full_rows; i++) tile_1x1(x, w, k, i, j, ep);
    for (size_t i = full_rows; i < m; i++) {
        j = 0;
        for (; j + 8 <= n; j += 8) tile_1x8(x, w, k, i, j, ep);
        for (; j < n; j++) tile_1x1(x, w, k, i, j, ep);
    }
    return ER_OK;
}
#endif /* __aarch64__ */
