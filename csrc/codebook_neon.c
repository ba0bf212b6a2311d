/* codebook_f32 and codebook_s8 for aarch64 NEON.
 *
 * codebook_s8 splits 16 bytes of nibbles into low and high halves and looks
 * each up in the 16-entry table with one vqtbl1q_s8: 32 int8 weights in k
 * order, then the int8 dot product (vmull_s8 / vmlal_high_s8 / vpadalq_s16). */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "codebook.h"
#include "edgerun.h"
#include "epilogue.h"

/* Tile bodies take their shape as constant arguments and are inlined into each
 * call site, so the small loops unroll and the accumulators stay in registers. */
#define ER_INLINE static inline __attribute__((always_inline))

/* ---- codebook_f32 ----------------------------------------------------------- */

ER_INLINE void f32_tile(const float *x, const float *w, size_t k, const int mr,
                        const int nr, float out[2][ER_CODEBOOK_F32_ROWS]) {
    float32x4_t acc[2][ER_CODEBOOK_F32_ROWS];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) acc[i][j] = vdupq_n_f32(0.0f);
    size_t p = 0;
    for (; p + 4 <= k; p += 4) {
        float32x4_t xv[2];
        for (int i = 0; i < mr; i++) xv[i] = vld1q_f32(x + i * k + p);
        for (int j = 0; j < nr; j++) {
            float32x4_t wv = vld1q_f32(w + j * k + p);
            for (int i = 0; i < mr; i++) acc[i][j] = vfmaq_f32(acc[i][j], xv[i], wv);
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++)
            out[i][j] = vaddvq_f32(acc[i][j]) +
                        er_codebook_dot_f32(x + i * k + p, w + j * k + p, k - p);
}

ER_INLINE void f32_columns(const float *x, const float *w, size_t m, size_t k, size_t j0,
                           const int nr, const er_epilogue *ep) {
    float out[2][ER_CODEBOOK_F32_ROWS];
    size_t i = 0;
    for (; i + 2 <= m; i += 2) {
        f32_tile(x + i * k, w, k, 2, nr, out);
        for (int a = 0; a < 2; a++)
            for (int j = 0; j < nr; j++) er_store(ep, i + a, j0 + j, out[a][j]);
    }
    if (i < m) {
        f32_tile(x + i * k, w, k, 1, nr, out);
        for (int j = 0; j < nr; j++) er_store(ep, i, j0 + j, out[0][j]);
    }
}

er_status er_codebook_f32__neon(const uint8_t *packed, unsigned bits,
                                const float *centroids, const float *x, size_t m,
                                size_t n, size_t k, const er_epilogue *ep,
                                void *scratch) {
    if (!packed || !centroids || !x || !er_epilogue_ok(ep, n) || (k && !scratch))
        return ER_ERR_ARGUMENT;
    if (bits < 1 || bits > 8) return ER_ERR_ARGUMENT;
    const size_t stride = er_codebook_row_bytes(k, bits);
    float *w = scratch;
    size_t j = 0;
    for (; j + ER_CODEBOOK_F32_ROWS <= n; j += ER_CODEBOOK_F32_ROWS) {
        for (int r = 0; r < ER_CODEBOOK_F32_ROWS; r++)
            er_codebook_decode_row(packed + (j + r) * stride, bits, centroids, k, w + r * k);
        f32_columns(x, w, m, k, j, ER_CODEBOOK_F32_ROWS, ep);
    }
    for (; j < n; j++) {
        er_codebook_decode_row(packed + j * stride, bits, centroids, k, w);
        f32_columns(x, w, m, k, j, 1, ep);
    }
    return ER_OK;
}

/* ---- codebook_s8 ------------------------------------------------------------ */

/* Int32 dot products of mr x rows with nr nibble32 rows over full blocks.
 * Two int8 products (each <= 127*127) fit an int16 lane exactly, so each
 * vmull/vmlal pair is widened into int32 by vpadalq before adding more. */
ER_INLINE void s8_tile(const uint8_t *nib, size_t ldn, const int8_t *x, size_t ldx,
                       size_t blocks, int8x16_t table, const int mr, const int nr,
                       int32_t out[2][4]) {
    const uint8x16_t low4 = vdupq_n_u8(0x0F);
    int32x4_t acc[2][4];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) acc[i][j] = vdupq_n_s32(0);
    for (size_t b = 0; b < blocks; b++) {
        int8x16_t x0[2], x1[2];
        for (int i = 0; i < mr; i++) {
            x0[i] = vld1q_s8(x + i * ldx + 32 * b);
            x1[i] = vld1q_s8(x + i * ldx + 32 * b + 16);
        }
        for (int j = 0; j < nr; j++) {
            uint8x16_t v = vld1q_u8(nib + j * ldn + 16 * b);
            int8x16_t w0 = vqtbl1q_s8(table, vandq_u8(v, low4));  /* p = 32b .. 32b+15 */
            int8x16_t w1 = vqtbl1q_s8(table, vshrq_n_u8(v, 4));   /* p = 32b+16 .. 32b+31 */
            for (int i = 0; i < mr; i++) {
                int16x8_t p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(x0[i]));
                p0 = vmlal_high_s8(p0, w0, x0[i]);
                int16x8_t p1 = vmull_s8(vget_low_s8(w1), vget_low_s8(x1[i]));
                p1 = vmlal_high_s8(p1, w1, x1[i]);
                acc[i][j] = vpadalq_s16(acc[i][j], p0);
                acc[i][j] = vpadalq_s16(acc[i][j], p1);
            }
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) out[i][j] = vaddvq_s32(acc[i][j]);
}

ER_INLINE void s8_columns(const uint8_t *nib, size_t ldn, const int8_t *table8,
                          int8x16_t table, const int8_t *x, size_t m, size_t k, size_t j0,
                          const int nr, const er_epilogue *ep) {
    const size_t blocks = k / 32, done = blocks * 32;
    int32_t out[2][4];
    size_t i = 0;
    for (; i + 2 <= m; i += 2) {
        s8_tile(nib, ldn, x + i * k, k, blocks, table, 2, nr, out);
        for (int a = 0; a < 2; a++)
            for (int j = 0; j < nr; j++)
                er_store_s32(ep, i + a, j0 + j,
                             out[a][j] + er_codebook_s8_dot(nib + j * ldn, table8,
                                                            x + (i + a) * k, done, k));
    }
    if (i < m) {
        s8_tile(nib, ldn, x + i * k, k, blocks, table, 1, nr, out);
        for (int j = 0; j < nr; j++)
            er_store_s32(ep, i, j0 + j,
                         out[0][j] + er_codebook_s8_dot(nib + j * ldn, table8, x + i * k, done, k));
    }
}

er_gemm_s8_fn er_gemm_s8__neon;   /* csrc/gemm_s8_neon.c: the many-rows path */

er_status er_codebook_s8__neon(const uint8_t *nibbles, const int8_t *table,
                               const int8_t *x, size_t m, size_t n, size_t k,
                               const er_epilogue *ep) {
    if (!nibbles || !table || !x || !er_epilogue_zero_ok(ep, n)) return ER_ERR_ARGUMENT;
    if (k > ER_MAX_K_S8) return ER_ERR_K_TOO_LARGE;
    if (er_codebook_s8_decode_first(m, k))
        return er_codebook_s8_by_gemm(nibbles, table, x, m, n, k, ep, er_codebook_s8_decode_row_neon,
                                      er_gemm_s8__neon);
    const size_t ldn = er_nibble32_row_bytes(k);
    const int8x16_t tab = vld1q_s8(table);
    size_t j = 0;
    for (; j + 4 <= n; j += 4) s8_columns(nibbles + j * ldn, ldn, table, tab, x, m, k, j, 4, ep);
    for (; j < n; j++) s8_columns(nibbles + j * ldn, ldn, table, tab, x, m, k, j, 1, ep);
    return ER_OK;
}
#endif /* __aarch64__ */
