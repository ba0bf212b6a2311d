/* codebook_s8 for 32-bit ARM NEON (armv7, built with -mfpu=neon-vfpv4).
 *
 * armv7 has no 16-byte table lookup (vqtbl1q_s8 is aarch64 only), but vtbl2_s8
 * looks 8 indices up in a 16-entry table held in two d registers, so a
 * nibble32 block of 16 bytes becomes its 32 weights in k order with an and, a
 * shift and four vtbl2_s8.  The dot product is the gemm_s8 neon32 one: vmull_s8
 * + vmlal_s8 (two products fit int16 exactly) folded into int32 by vpadalq_s16.
 * Tiles are one x row by 4 weight rows (4 accumulators, 2 x vectors, the table
 * and the mask: well within 16 q registers), leftover weight rows 1x1; the
 * tail past the last full block of 32 goes to the shared scalar
 * er_codebook_s8_dot.  One x row per tile keeps the code small and is exactly
 * the batch-1 case of a board; a batch repeats the lookups per row. */
#if defined(__arm__) && defined(__ARM_NEON) && !defined(__aarch64__)
/* As in gemm_s8_neon32.c: without the induction-variable pass gcc keeps the
 * walking row addresses in registers instead of recomputing them per load. */
#pragma GCC optimize("no-ivopts")
#include <arm_neon.h>

#include "codebook.h"
#include "edgerun.h"
#include "epilogue.h"

#define ER_INLINE static inline __attribute__((always_inline))

ER_INLINE int32x4_t mac16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    int16x8_t t = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    t = vmlal_s8(t, vget_high_s8(a), vget_high_s8(b));
    return vpadalq_s16(acc, t);
}

ER_INLINE int32_t sum_lanes(int32x4_t v) {
    int32x2_t s = vadd_s32(vget_low_s32(v), vget_high_s32(v));
    return vget_lane_s32(vpadd_s32(s, s), 0);
}

/* acc += the 32 weights of one block (16 nibble bytes at nib) times x0, x1. */
ER_INLINE int32x4_t block(int32x4_t acc, const uint8_t *nib, int8x8x2_t table,
                          int8x16_t x0, int8x16_t x1) {
    uint8x16_t v = vld1q_u8(nib);
    int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F)));
    int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
    int8x16_t w0 = vcombine_s8(vtbl2_s8(table, vget_low_s8(lo)), vtbl2_s8(table, vget_high_s8(lo)));
    int8x16_t w1 = vcombine_s8(vtbl2_s8(table, vget_low_s8(hi)), vtbl2_s8(table, vget_high_s8(hi)));
    return mac16(mac16(acc, w0, x0), w1, x1);
}

ER_INLINE void store(const er_epilogue *ep, const uint8_t *row, const int8_t *table8,
                     const int8_t *xrow, size_t done, size_t k, size_t i, size_t j,
                     int32x4_t acc) {
    er_store_s32(ep, i, j, sum_lanes(acc) + er_codebook_s8_dot(row, table8, xrow, done, k));
}

/* Named accumulators, not an array: GCC 12 for armv7 keeps an array of NEON
 * vectors in memory and stores it on every iteration. */
static void tile_1x4(const uint8_t *nib, size_t ldn, const int8_t *table8, int8x8x2_t table,
                     const int8_t *xrow, size_t k, size_t i, size_t j, const er_epilogue *ep) {
    const size_t blocks = k / 32, done = blocks * 32;
    const uint8_t *n0 = nib, *n1 = n0 + ldn, *n2 = n1 + ldn, *n3 = n2 + ldn;
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    for (size_t b = 0; b < blocks; b++) {
        int8x16_t x0 = vld1q_s8(xrow + 32 * b), x1 = vld1q_s8(xrow + 32 * b + 16);
        a0 = block(a0, n0 + 16 * b, table, x0, x1);
        a1 = block(a1, n1 + 16 * b, table, x0, x1);
        a2 = block(a2, n2 + 16 * b, table, x0, x1);
        a3 = block(a3, n3 + 16 * b, table, x0, x1);
    }
    store(ep, n0, table8, xrow, done, k, i, j, a0);
    store(ep, n1, table8, xrow, done, k, i, j + 1, a1);
    store(ep, n2, table8, xrow, done, k, i, j + 2, a2);
    store(ep, n3, table8, xrow, done, k, i, j + 3, a3);
}

static void tile_1x1(const uint8_t *nib, const int8_t *table8, int8x8x2_t table,
                     const int8_t *xrow, size_t k, size_t i, size_t j, const er_epilogue *ep) {
    const size_t blocks = k / 32, done = blocks * 32;
    int32x4_t a = vdupq_n_s32(0);
    for (size_t b = 0; b < blocks; b++)
        a = block(a, nib + 16 * b, table, vld1q_s8(xrow + 32 * b), vld1q_s8(xrow + 32 * b + 16));
    store(ep, nib, table8, xrow, done, k, i, j, a);
}

er_gemm_s8_fn er_gemm_s8__neon32;   /* csrc/gemm_s8_neon32.c: the many-rows path */

er_status er_codebook_s8__neon32(const uint8_t *nibbles, const int8_t *table,
                                 const int8_t *x, size_t m, size_t n, size_t k,
                                 const er_epilogue *ep) {
    if (!nibbles || !table || !x || !er_epilogue_zero_ok(ep, n)) return ER_ERR_ARGUMENT;
    if (k > ER_MAX_K_S8) return ER_ERR_K_TOO_LARGE;
    if (er_codebook_s8_decode_first(m, k))
        return er_codebook_s8_by_gemm(nibbles, table, x, m, n, k, ep, er_codebook_s8_decode_row,
                                      er_gemm_s8__neon32);
    const size_t ldn = er_nibble32_row_bytes(k);
    int8x8x2_t tab;
    tab.val[0] = vld1_s8(table);
    tab.val[1] = vld1_s8(table + 8);
    /* Weight rows outside: 4 nibble rows (a few KB) stay in cache while every
     * row of x passes by them. */
    size_t j = 0;
    for (; j + 4 <= n; j += 4)
        for (size_t i = 0; i < m; i++)
            tile_1x4(nibbles + j * ldn, ldn, table, tab, x + i * k, k, i, j, ep);
    for (; j < n; j++)
        for (size_t i = 0; i < m; i++) tile_1x1(nibbles + j * ldn, table, tab, x + i * k, k, i, j, ep);
    return ER_OK;
}
#endif /* 32-bit ARM with NEON */
