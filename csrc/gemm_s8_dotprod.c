/* int8 GEMM for aarch64 with the Armv8.2 dot-product extension (SDOT):
 * Cortex-A55/A76 and later (Raspberry Pi 5).
 *
 * One SDOT adds, in each of its 4 int32 lanes, the dot product of 4 int8
 * pairs: 16 multiply-adds per instruction straight into int32, where the
 * baseline NEON variant needs vmull + vmlal + vpadal for the same work.  So the
 * accumulator layout is the baseline's: one int32x4 per (x row, w row), lane l
 * holding the sum over p = l*4 .. l*4+3 (mod 16), reduced at the end.
 * Tiles: 4 rows of x by 4 rows of w (16 accumulators, 4 x + 1 w vector live),
 * leftover rows 1x8 (the M = 1 shape streams w once), leftover columns 1x1;
 * the K tail (k % 16) goes to the shared scalar er_gemm_s8_dot.
 *
 * Exactness: each lane sums at most k/4 products of values in [-127, 127],
 * far inside int32 for k <= ER_MAX_K_S8, so the sums equal the scalar ones. */
#if defined(__aarch64__)
/* Per-file target: the function attribute target("+dotprod") does not let
 * GCC 12 inline vdotq_s32 from <arm_neon.h>, a pragma before the include does.
 * Only dispatch (HWCAP_ASIMDDP) lets this code run. */
#pragma GCC target("arch=armv8.2-a+dotprod")
#include <arm_neon.h>

#include "edgerun.h"
#include "epilogue.h"
#include "gemm_s8.h"
#include "gemm_s8_panel_neon.h"

/* The tile body takes its shape as constant arguments and is inlined into each
 * call site, so the loops over rows and columns unroll and the accumulators
 * stay in registers. */
#define ER_INLINE static inline __attribute__((always_inline))

ER_INLINE void tile(const int8_t *x, const int8_t *w, size_t k, size_t i, size_t j,
                    const int mr, const int nr, const er_epilogue *ep) {
    const int8_t *xr = x + i * k, *wr = w + j * k;
    int32x4_t acc[4][8];
    for (int a = 0; a < mr; a++)
        for (int b = 0; b < nr; b++) acc[a][b] = vdupq_n_s32(0);
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
        int8x16_t xv[4];
        for (int a = 0; a < mr; a++) xv[a] = vld1q_s8(xr + a * k + p);
        /* One w vector at a time against every x row: few registers live. */
        for (int b = 0; b < nr; b++) {
            int8x16_t wv = vld1q_s8(wr + b * k + p);
            for (int a = 0; a < mr; a++) acc[a][b] = vdotq_s32(acc[a][b], xv[a], wv);
        }
    }
    /* A local copy: with -fno-strict-aliasing a float store into y could change
     * *ep, so each field would be reloaded for every four outputs. */
    const er_epilogue e = *ep;
    for (int a = 0; a < mr; a++) {
        int b = 0;
        for (; b + 4 <= nr; b += 4)
            er_row_finish4(&e, xr + a * k, w, k, p, i + a, j + b,
                           er_sum4(acc[a][b], acc[a][b + 1], acc[a][b + 2], acc[a][b + 3]));
        for (; b < nr; b++)
            er_store_s32(&e, i + a, j + b,
                         vaddvq_s32(acc[a][b]) + er_gemm_s8_dot(xr + a * k, wr + b * k, p, k));
    }
}

er_status er_gemm_s8__dotprod(const int8_t *x, const int8_t *w, size_t m, size_t n,
                              size_t k, const er_epilogue *ep) {
    er_status status = er_gemm_s8_check(x, w, n, k, ep);
    if (status != ER_OK) return status;
    if (er_gemm_s8_use_panels(m, k, ER_GEMM_S8_PANEL_K_PER_ROW_SDOT)) {
        er_gemm_s8_panels_sdot(x, w, m, n, k, ep);
        return ER_OK;
    }
    size_t full_rows = m - m % 4;
    /* Column blocks outside, row tiles inside: 4 rows of w stay in cache while
     * every row of x passes by them. */
    size_t j = 0;
    for (; j + 4 <= n; j += 4)
        for (size_t i = 0; i < full_rows; i += 4) tile(x, w, k, i, j, 4, 4, ep);
    for (; j < n; j++)
        for (size_t i = 0; i < full_rows; i += 4) tile(x, w, k, i, j, 4, 1, ep);
    for (size_t i = full_rows; i < m; i++) {
        j = 0;
        for (; j + 8 <= n; j += 8) tile(x, w, k, i, j, 1, 8, ep);
        for (; j < n; j++) tile(x, w, k, i, j, 1, 1, ep);
    }
    return ER_OK;
}
#endif /* __aarch64__ */
