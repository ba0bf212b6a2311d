/* codebook_s8 for aarch64 with the dotprod extension (Armv8.2 SDOT:
 * Cortex-A76 / Raspberry Pi 5 and later).  The table lookup is the NEON one
 * (vqtbl1q_s8); SDOT then sums four int8 products into each int32 lane in one
 * instruction, where plain NEON needs vmull + vmlal + vpadal per 16 products.
 * SDOT's products and sums are exact, so there is no saturation to guard. */
#if defined(__aarch64__)
/* Per file, before <arm_neon.h>: Debian's gcc 12 fails to inline the intrinsics
 * under a function-level target("+dotprod") attribute. */
#pragma GCC target("arch=armv8.2-a+dotprod")
#include <arm_neon.h>

#include "codebook.h"
#include "edgerun.h"
#include "epilogue.h"

#define ER_INLINE static inline __attribute__((always_inline))

/* Int32 dot products of mr x rows with nr nibble32 rows over full blocks. */
ER_INLINE void s8_tile(const uint8_t *nib, size_t ldn, const int8_t *x, size_t ldx,
                       size_t blocks, int8x16_t table, const int mr, const int nr,
                       int32_t out[4][4]) {
    const uint8x16_t low4 = vdupq_n_u8(0x0F);
    int32x4_t acc[4][4];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) acc[i][j] = vdupq_n_s32(0);
    for (size_t b = 0; b < blocks; b++) {
        int8x16_t x0[4], x1[4];
        for (int i = 0; i < mr; i++) {
            x0[i] = vld1q_s8(x + i * ldx + 32 * b);
            x1[i] = vld1q_s8(x + i * ldx + 32 * b + 16);
        }
        for (int j = 0; j < nr; j++) {
            uint8x16_t v = vld1q_u8(nib + j * ldn + 16 * b);
            int8x16_t w0 = vqtbl1q_s8(table, vandq_u8(v, low4));  /* p = 32b .. 32b+15 */
            int8x16_t w1 = vqtbl1q_s8(table, vshrq_n_u8(v, 4));   /* p = 32b+16 .. 32b+31 */
            for (int i = 0; i < mr; i++)
                acc[i][j] = vdotq_s32(vdotq_s32(acc[i][j], w0, x0[i]), w1, x1[i]);
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) out[i][j] = vaddvq_s32(acc[i][j]);
}

/* Output columns [j0, j0 + nr) for every row of x, four x rows at a time
 * (32 vector registers hold 16 accumulators, 8 x vectors and the weights). */
ER_INLINE void s8_columns(const uint8_t *nib, size_t ldn, const int8_t *table8,
                          int8x16_t table, const int8_t *x, size_t m, size_t k, size_t j0,
                          const int nr, const er_epilogue *ep) {
    const size_t blocks = k / 32, done = blocks * 32;
    int32_t out[4][4];
    size_t i = 0;
    for (; i + 4 <= m; i += 4) {
        s8_tile(nib, ldn, x + i * k, k, blocks, table, 4, nr, out);
        for (int a = 0; a < 4; a++)
            for (int j = 0; j < nr; j++)
                er_store_s32(ep, i + a, j0 + j,
                             out[a][j] + er_codebook_s8_dot(nib + j * ldn, table8,
                                                            x + (i + a) * k, done, k));
    }
    for (; i < m; i++) {
        s8_tile(nib, ldn, x + i * k, k, blocks, table, 1, nr, out);
        for (int j = 0; j < nr; j++)
            er_store_s32(ep, i, j0 + j,
                         out[0][j] + er_codebook_s8_dot(nib + j * ldn, table8, x + i * k, done, k));
    }
}

er_gemm_s8_fn er_gemm_s8__dotprod;   /* csrc/gemm_s8_dotprod.c: the many-rows path */

er_status er_codebook_s8__dotprod(const uint8_t *nibbles, const int8_t *table,
                                  const int8_t *x, size_t m, size_t n, size_t k,
                                  const er_epilogue *ep) {
    if (!nibbles || !table || !x || !er_epilogue_zero_ok(ep, n)) return ER_ERR_ARGUMENT;
    if (k > ER_MAX_K_S8) return ER_ERR_K_TOO_LARGE;
    if (er_codebook_s8_decode_first(m, k))
        return er_codebook_s8_by_gemm(nibbles, table, x, m, n, k, ep, er_codebook_s8_decode_row_neon,
                                      er_gemm_s8__dotprod);
    const size_t ldn = er_nibble32_row_bytes(k);
    const int8x16_t tab = vld1q_s8(table);
    size_t j = 0;
    for (; j + 4 <= n; j += 4) s8_columns(nibbles + j * ldn, ldn, table, tab, x, m, k, j, 4, ep);
    for (; j < n; j++) s8_columns(nibbles + j * ldn, ldn, table, tab, x, m, k, j, 1, ep);
    return ER_OK;
}
#endif /* __aarch64__ */
