/* int8 GEMM for 32-bit ARM NEON (armv7: 32-bit Raspberry Pi OS on Pi 2/3/4,
 * built with -mfpu=neon-vfpv4).
 *
 * The arithmetic is the aarch64 baseline's: per 16 k and per (x row, w row),
 * vmull_s8 on the low 8 byte pairs, vmlal_s8 on the high 8 (two products of at
 * most 127*127 sum to 32258 < 32767, exact in int16) and vpadalq_s16 folds the
 * int16 vector into an int32x4 accumulator before a third product could
 * overflow.  What differs is armv7 NEON itself: no vmlal_high / vpaddq /
 * vaddvq (so halves are taken with vget_low/vget_high and the final sum is
 * two pairwise adds), and 16 quad registers instead of 32, so the tile is
 * 2 rows of x by 4 rows of w: 8 accumulators + 2 x + 1 w + 2 int16
 * temporaries.  Leftover rows run 1x4, leftover columns 1x1; the K tail
 * (k % 16) goes to the shared scalar er_gemm_s8_dot. */
#if defined(__arm__) && defined(__ARM_NEON) && !defined(__aarch64__)
/* gcc's induction-variable pass folds the six walking row pointers back into
 * one index plus six bases, and with Thumb-2's few registers then spends two
 * adds per load on addresses; without it the loads post-increment. */
#pragma GCC optimize("no-ivopts")
#include <arm_neon.h>

#include "edgerun.h"
#include "epilogue.h"
#include "gemm_s8.h"
#include "gemm_s8_panel_neon.h"

#define ER_INLINE static inline __attribute__((always_inline))

/* acc += products of 16 int8 pairs, as 4 int32 lanes. */
ER_INLINE int32x4_t mac16(int32x4_t acc, int8x16_t xv, int8x16_t wv) {
    int16x8_t t = vmull_s8(vget_low_s8(xv), vget_low_s8(wv));
    t = vmlal_s8(t, vget_high_s8(xv), vget_high_s8(wv));
    return vpadalq_s16(acc, t);
}

ER_INLINE int32_t sum_lanes(int32x4_t v) {
    int32x2_t s = vadd_s32(vget_low_s32(v), vget_high_s32(v));
    return vget_lane_s32(vpadd_s32(s, s), 0);
}

/* Outputs (i, j .. j+nr-1) from row sums that cover p < done. */
ER_INLINE void store_row(const er_epilogue *ep, const int8_t *xrow, const int8_t *w, size_t k,
                         size_t done, size_t i, size_t j, const int32x4_t *acc, const int nr) {
    for (int b = 0; b < nr; b++)
        er_store_s32(ep, i, j + b,
                     sum_lanes(acc[b]) + er_gemm_s8_dot(xrow, w + (j + b) * k, done, k));
}

/* Accumulators are named variables, not an array: GCC 12 for armv7 keeps an
 * array of NEON vectors in memory and stores all of it on every iteration. */
static void tile_2x4(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                     const er_epilogue *ep) {
    const int8_t *x0 = x + i * k, *x1 = x0 + k;
    const int8_t *w0 = w + j * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
    int32x4_t a00 = vdupq_n_s32(0), a01 = a00, a02 = a00, a03 = a00;
    int32x4_t a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    /* Walking pointers, not base + p: post-incrementing loads (see above). */
    const int8_t *p0 = x0, *p1 = x1, *q0 = w0, *q1 = w1, *q2 = w2, *q3 = w3;
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
        int8x16_t v0 = vld1q_s8(p0), v1 = vld1q_s8(p1), c;
        p0 += 16, p1 += 16;
        c = vld1q_s8(q0), q0 += 16, a00 = mac16(a00, v0, c), a10 = mac16(a10, v1, c);
        c = vld1q_s8(q1), q1 += 16, a01 = mac16(a01, v0, c), a11 = mac16(a11, v1, c);
        c = vld1q_s8(q2), q2 += 16, a02 = mac16(a02, v0, c), a12 = mac16(a12, v1, c);
        c = vld1q_s8(q3), q3 += 16, a03 = mac16(a03, v0, c), a13 = mac16(a13, v1, c);
    }
    const int32x4_t r0[4] = {a00, a01, a02, a03}, r1[4] = {a10, a11, a12, a13};
    store_row(ep, x0, w, k, p, i, j, r0, 4);
    store_row(ep, x1, w, k, p, i + 1, j, r1, 4);
}

static void tile_1x4(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                     const er_epilogue *ep) {
    const int8_t *x0 = x + i * k;
    const int8_t *w0 = w + j * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    const int8_t *p0 = x0, *q0 = w0, *q1 = w1, *q2 = w2, *q3 = w3;
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
        int8x16_t v = vld1q_s8(p0);
        p0 += 16;
        a0 = mac16(a0, v, vld1q_s8(q0)), q0 += 16;
        a1 = mac16(a1, v, vld1q_s8(q1)), q1 += 16;
        a2 = mac16(a2, v, vld1q_s8(q2)), q2 += 16;
        a3 = mac16(a3, v, vld1q_s8(q3)), q3 += 16;
    }
    const int32x4_t r[4] = {a0, a1, a2, a3};
    store_row(ep, x0, w, k, p, i, j, r, 4);
}

static void tile_1x1(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                     const er_epilogue *ep) {
    const int8_t *x0 = x + i * k, *w0 = w + j * k;
    int32x4_t a = vdupq_n_s32(0);
    size_t p = 0;
    for (; p + 16 <= k; p += 16) a = mac16(a, vld1q_s8(x0 + p), vld1q_s8(w0 + p));
    store_row(ep, x0, w, k, p, i, j, &a, 1);
}

er_status er_gemm_s8__neon32(const int8_t *x, const int8_t *w, size_t m, size_t n,
                             size_t k, const er_epilogue *ep) {
    er_status status = er_gemm_s8_check(x, w, n, k, ep);
    if (status != ER_OK) return status;
    const er_epilogue local = *ep;  /* see gemm_s8.c: no reloads of *ep per output */
    ep = &local;
    /* Short K: panels, as on aarch64 NEON (gemm_s8_panel_neon.h), one row at a time. */
    if (k <= 64 && er_gemm_s8_use_panels(m, k, ER_GEMM_S8_PANEL_K_PER_ROW)) {
        er_gemm_s8_panels_neon(x, w, m, n, k, ep);
        return ER_OK;
    }
    size_t full_rows = m - m % 2;
    /* Column blocks outside, row tiles inside: 4 rows of w stay in cache while
     * every row of x passes by them. */
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        for (size_t i = 0; i < full_rows; i += 2) tile_2x4(x, w, k, i, j, ep);
        if (full_rows < m) tile_1x4(x, w, k, full_rows, j, ep);
    }
    for (; j < n; j++)
        for (size_t i = 0; i < m; i++) tile_1x1(x, w, k, i, j, ep);
    return ER_OK;
}
#endif /* 32-bit ARM with NEON */
