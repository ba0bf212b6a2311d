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
 * temporaries.  Leftover rows run 1x4, leftover columns 2x1 / 1x1; the K tail
 * (k % 16) goes to the shared scalar er_gemm_s8_dot. */
#if defined(__arm__) && defined(__ARM_NEON) && !defined(__aarch64__)
#include <arm_neon.h>

#include "edgerun.h"
#include "epilogue.h"
#include "gemm_s8.h"

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

ER_INLINE void tile(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                    const int mr, const int nr, const er_epilogue *ep) {
    const int8_t *xr = x + i * k, *wr = w + j * k;
    int32x4_t acc[2][4];
    for (int a = 0; a < mr; a++)
        for (int b = 0; b < nr; b++) acc[a][b] = vdupq_n_s32(0);
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
        int8x16_t xv[2];
        for (int a = 0; a < mr; a++) xv[a] = vld1q_s8(xr + a * k + p);
        for (int b = 0; b < nr; b++) {
            int8x16_t wv = vld1q_s8(wr + b * k + p);
            for (int a = 0; a < mr; a++) acc[a][b] = mac16(acc[a][b], xv[a], wv);
        }
    }
    for (int a = 0; a < mr; a++)
        for (int b = 0; b < nr; b++)
            er_store_s32(ep, i + a, j + b,
                         sum_lanes(acc[a][b]) + er_gemm_s8_dot(xr + a * k, wr + b * k, p, k));
}

er_status er_gemm_s8__neon32(const int8_t *x, const int8_t *w, size_t m, size_t n,
                             size_t k, const er_epilogue *ep) {
    er_status status = er_gemm_s8_check(x, w, n, k, ep);
    if (status != ER_OK) return status;
    size_t full_rows = m - m % 2;
    /* Column blocks outside, row tiles inside: 4 rows of w stay in cache while
     * every row of x passes by them. */
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        for (size_t i = 0; i < full_rows; i += 2) tile(x, w, k, i, j, 2, 4, ep);
        if (full_rows < m) tile(x, w, k, full_rows, j, 1, 4, ep);
    }
    for (; j < n; j++) {
        for (size_t i = 0; i < full_rows; i += 2) tile(x, w, k, i, j, 2, 1, ep);
        if (full_rows < m) tile(x, w, k, full_rows, j, 1, 1, ep);
    }
    return ER_OK;
}
#endif /* 32-bit ARM with NEON */
