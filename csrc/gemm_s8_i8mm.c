/* int8 GEMM for aarch64 with the int8 matrix-multiply extension (SMMLA):
 * Armv8.6 and Armv9 cores (Cortex-A510/A710/X2 and later, Neoverse V1/N2).
 *
 * SMMLA treats its first operand as a 2x8 int8 matrix (two rows of 8 bytes),
 * the second as another 2x8 and adds the 2x2 int32 product A * B^T to the
 * accumulator: 32 multiply-adds per instruction, twice SDOT.  So a 2x2 block of
 * outputs (x rows i, i+1 by w rows j, j+1) is one accumulator, and 16 bytes of
 * k feed it through two SMMLAs after interleaving the two rows' 8-byte halves
 * (vzip1q_s64 / vzip2q_s64) -- no packing of w needed.
 * Tiles: 4 rows of x by 8 rows of w (8 accumulators, 4 x + 8 w vectors live),
 * then 2x2 blocks; an odd last column is paired with itself and the duplicate
 * result dropped.  An odd last row (always, at M = 1) would waste half of
 * every SMMLA the same way, so it runs on SDOT instead, 1x8 tiles: every core
 * with i8mm has dotprod too (dispatch requires both).  k % 16 >= 8 runs one
 * more 8-byte SMMLA step; the last k % 8 (k % 16 for SDOT) go to the shared
 * scalar er_gemm_s8_dot.
 *
 * Exactness: every lane is a sum of int8 products of at most k terms, inside
 * int32 for k <= ER_MAX_K_S8, so the sums equal the scalar ones. */
#if defined(__aarch64__)
/* Per-file target before <arm_neon.h> (GCC 12 does not inline vmmlaq_s32 or
 * vdotq_s32 under a function attribute).  Only dispatch (HWCAP2_I8MM and
 * HWCAP_ASIMDDP) lets this code run. */
#pragma GCC target("arch=armv8.2-a+dotprod+i8mm")
#include <arm_neon.h>

#include "edgerun.h"
#include "epilogue.h"
#include "gemm_s8.h"
#include "gemm_s8_panel_neon.h"

#define ER_INLINE static inline __attribute__((always_inline))

/* Rows r0 and r1 as the two 8-byte rows of SMMLA operands: lo covers
 * p .. p+7 of both, hi covers p+8 .. p+15. */
ER_INLINE void pair16(const int8_t *r0, const int8_t *r1, size_t p, int8x16_t *lo,
                      int8x16_t *hi) {
    int64x2_t a = vreinterpretq_s64_s8(vld1q_s8(r0 + p));
    int64x2_t b = vreinterpretq_s64_s8(vld1q_s8(r1 + p));
    *lo = vreinterpretq_s8_s64(vzip1q_s64(a, b));
    *hi = vreinterpretq_s8_s64(vzip2q_s64(a, b));
}

/* Outputs of x rows xr[0 .. 2*mp-1] by w rows wr[0 .. 2*np-1] (w pointers may
 * repeat to pad an odd last column), stored where row < rows and column < cols. */
ER_INLINE void tile(const int8_t *const *xr, const int8_t *const *wr, size_t k, size_t i,
                    size_t j, const int mp, const int np, int rows, int cols,
                    const er_epilogue *ep) {
    int32x4_t acc[2][4];
    for (int a = 0; a < mp; a++)
        for (int b = 0; b < np; b++) acc[a][b] = vdupq_n_s32(0);
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
        int8x16_t xl[2], xh[2], wl[4], wh[4];
        for (int a = 0; a < mp; a++) pair16(xr[2 * a], xr[2 * a + 1], p, &xl[a], &xh[a]);
        for (int b = 0; b < np; b++) pair16(wr[2 * b], wr[2 * b + 1], p, &wl[b], &wh[b]);
        for (int b = 0; b < np; b++)
            for (int a = 0; a < mp; a++) {
                acc[a][b] = vmmlaq_s32(acc[a][b], xl[a], wl[b]);
                acc[a][b] = vmmlaq_s32(acc[a][b], xh[a], wh[b]);
            }
    }
    if (p + 8 <= k) {
        int8x16_t xv[2], wv[4];
        for (int a = 0; a < mp; a++)
            xv[a] = vcombine_s8(vld1_s8(xr[2 * a] + p), vld1_s8(xr[2 * a + 1] + p));
        for (int b = 0; b < np; b++)
            wv[b] = vcombine_s8(vld1_s8(wr[2 * b] + p), vld1_s8(wr[2 * b + 1] + p));
        for (int b = 0; b < np; b++)
            for (int a = 0; a < mp; a++) acc[a][b] = vmmlaq_s32(acc[a][b], xv[a], wv[b]);
        p += 8;
    }
    /* Lanes of a 2x2 block: (r0,c0), (r0,c1), (r1,c0), (r1,c1). */
    for (int a = 0; a < mp; a++)
        for (int b = 0; b < np; b++) {
            int32_t s[4];
            vst1q_s32(s, acc[a][b]);
            for (int l = 0; l < 4; l++) {
                int r = 2 * a + (l >> 1), c = 2 * b + (l & 1);
                if (r < rows && c < cols)
                    er_store_s32(ep, i + (size_t)r, j + (size_t)c,
                                 s[l] + er_gemm_s8_dot(xr[r], wr[c], p, k));
            }
        }
}

/* Rows i .. i+2*mp-1 against the whole of w. */
ER_INLINE void row_block(const int8_t *x, const int8_t *w, size_t n, size_t k, size_t i,
                         const int mp, const er_epilogue *ep) {
    const int rows = 2 * mp;
    const int8_t *xr[4];
    for (int a = 0; a < rows; a++) xr[a] = x + (i + (size_t)a) * k;
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const int8_t *wr[8];
        for (int b = 0; b < 8; b++) wr[b] = w + (j + (size_t)b) * k;
        tile(xr, wr, k, i, j, mp, 4, rows, 8, ep);
    }
    for (; j < n; j += 2) {
        int cols = n - j >= 2 ? 2 : 1;
        const int8_t *wr[2] = {w + j * k, w + (j + (size_t)cols - 1) * k};
        tile(xr, wr, k, i, j, mp, 1, rows, cols, ep);
    }
}

/* One row of x against w[j .. j+nr-1] with SDOT (the odd-row path). */
ER_INLINE void dot_tile(const int8_t *xrow, const int8_t *w, size_t k, size_t i, size_t j,
                        const int nr, const er_epilogue *ep) {
    const int8_t *wr = w + j * k;
    int32x4_t acc[8];
    for (int b = 0; b < nr; b++) acc[b] = vdupq_n_s32(0);
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
        int8x16_t xv = vld1q_s8(xrow + p);
        for (int b = 0; b < nr; b++) acc[b] = vdotq_s32(acc[b], xv, vld1q_s8(wr + b * k + p));
    }
    for (int b = 0; b < nr; b++)
        er_store_s32(ep, i, j + b, vaddvq_s32(acc[b]) + er_gemm_s8_dot(xrow, wr + b * k, p, k));
}

static void dot_row(const int8_t *x, const int8_t *w, size_t n, size_t k, size_t i,
                    const er_epilogue *ep) {
    size_t j = 0;
    for (; j + 8 <= n; j += 8) dot_tile(x + i * k, w, k, i, j, 8, ep);
    for (; j < n; j++) dot_tile(x + i * k, w, k, i, j, 1, ep);
}

er_status er_gemm_s8__i8mm(const int8_t *x, const int8_t *w, size_t m, size_t n, size_t k,
                           const er_epilogue *ep) {
    er_status status = er_gemm_s8_check(x, w, n, k, ep);
    if (status != ER_OK) return status;
    const er_epilogue local = *ep;  /* see gemm_s8.c: no reloads of *ep per output */
    ep = &local;
    /* SDOT panels: SMMLA would need row pairs interleaved */
    if (er_gemm_s8_use_panels(m, k, ER_GEMM_S8_PANEL_K_PER_ROW_SDOT)) {
        er_gemm_s8_panels_sdot(x, w, m, n, k, ep);
        return ER_OK;
    }
    /* Row blocks outside: a 4x8 tile streams 8 rows of w past 4 rows of x,
     * and the 4 rows of x stay in L1 while w goes by. */
    size_t i = 0;
    for (; i + 4 <= m; i += 4) row_block(x, w, n, k, i, 2, ep);
    if (m - i >= 2) {
        row_block(x, w, n, k, i, 1, ep);
        i += 2;
    }
    if (i < m) dot_row(x, w, n, k, i, ep);
    return ER_OK;
}
#endif /* __aarch64__ */
