/* codebook_s8 for aarch64 with the Armv8.2 dot-product extension (SDOT).
 *
 * As in the baseline NEON variant, 16 bytes of a nibble32 block are split
 * into low and high nibbles and each half is looked up in the 16-entry int8
 * table with one vqtbl1q_s8: 32 weights in k order (low nibbles are p = 32b ..
 * 32b+15, high nibbles p = 32b+16 .. 32b+31).  The multiply-add is then two
 * SDOTs straight into int32 instead of vmull + vmlal + vpadal per half.
 * With the dot product this cheap, the lookup (and, shift, 2 tbl per weight
 * row and block) dominates, so a tile reuses each looked-up block across up to
 * 4 rows of x: tiles of 4 x rows by 4 weight rows (16 accumulators), then 2-
 * and 1-row tiles, and single weight rows for n % 4.  The tail past the last
 * full block of 32 goes to the shared scalar er_codebook_s8_dot.
 *
 * Exactness: int32 lanes sum at most k/4 products of values in [-127, 127],
 * far inside int32 for k <= ER_MAX_K_S8. */
#if defined(__aarch64__)
/* Per-file target before <arm_neon.h>: GCC 12 does not inline vdotq_s32 under
 * the function attribute.  Only dispatch (HWCAP_ASIMDDP) lets this code run. */
#pragma GCC target("arch=armv8.2-a+dotprod")
#include <arm_neon.h>

#include "codebook.h"
#include "edgerun.h"
#include "epilogue.h"

#define ER_INLINE static inline __attribute__((always_inline))

/* mr rows of x (stride k) by nr nibble32 rows (stride ldn) starting at output
 * (i, j): full blocks with SDOT, the tail in scalar, then the epilogue. */
ER_INLINE void tile(const uint8_t *nib, size_t ldn, const int8_t *table8, int8x16_t table,
                    const int8_t *x, size_t k, size_t i, size_t j, const int mr,
                    const int nr, const er_epilogue *ep) {
    const uint8x16_t low4 = vdupq_n_u8(0x0F);
    const size_t blocks = k / 32, done = blocks * 32;
    int32x4_t acc[4][4];
    for (int a = 0; a < mr; a++)
        for (int b = 0; b < nr; b++) acc[a][b] = vdupq_n_s32(0);
    for (size_t blk = 0; blk < blocks; blk++) {
        int8x16_t x0[4], x1[4];
        for (int a = 0; a < mr; a++) {
            x0[a] = vld1q_s8(x + a * k + 32 * blk);
            x1[a] = vld1q_s8(x + a * k + 32 * blk + 16);
        }
        for (int b = 0; b < nr; b++) {
            uint8x16_t v = vld1q_u8(nib + b * ldn + 16 * blk);
            int8x16_t w0 = vqtbl1q_s8(table, vandq_u8(v, low4));
            int8x16_t w1 = vqtbl1q_s8(table, vshrq_n_u8(v, 4));
            for (int a = 0; a < mr; a++) {
                acc[a][b] = vdotq_s32(acc[a][b], w0, x0[a]);
                acc[a][b] = vdotq_s32(acc[a][b], w1, x1[a]);
            }
        }
    }
    for (int a = 0; a < mr; a++)
        for (int b = 0; b < nr; b++)
            er_store_s32(ep, i + a, j + b,
                         vaddvq_s32(acc[a][b]) +
                             er_codebook_s8_dot(nib + b * ldn, table8, x + a * k, done, k));
}

ER_INLINE void columns(const uint8_t *nib, size_t ldn, const int8_t *table8,
                       int8x16_t table, const int8_t *x, size_t m, size_t k, size_t j,
                       const int nr, const er_epilogue *ep) {
    size_t i = 0;
    for (; i + 4 <= m; i += 4) tile(nib, ldn, table8, table, x + i * k, k, i, j, 4, nr, ep);
    if (m - i >= 2) {
        tile(nib, ldn, table8, table, x + i * k, k, i, j, 2, nr, ep);
        i += 2;
    }
    if (i < m) tile(nib, ldn, table8, table, x + i * k, k, i, j, 1, nr, ep);
}

er_status er_codebook_s8__dotprod(const uint8_t *nibbles, const int8_t *table,
                                  const int8_t *x, size_t m, size_t n, size_t k,
                                  const er_epilogue *ep) {
    if (!nibbles || !table || !x || !er_epilogue_ok(ep, n)) return ER_ERR_ARGUMENT;
    if (k > ER_MAX_K_S8) return ER_ERR_K_TOO_LARGE;
    const size_t ldn = er_nibble32_row_bytes(k);
    const int8x16_t tab = vld1q_s8(table);
    size_t j = 0;
    for (; j + 4 <= n; j += 4) columns(nibbles + j * ldn, ldn, table, tab, x, m, k, j, 4, ep);
    for (; j < n; j++) columns(nibbles + j * ldn, ldn, table, tab, x, m, k, j, 1, ep);
    return ER_OK;
}
#endif /* __aarch64__ */
