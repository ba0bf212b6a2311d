/* spmm_bcsr4_f32 / spmm_bcsr4_s8 for aarch64 NEON.
 *
 * int8: 4 blocks (16 weights) per 16-byte vector, 8 blocks per step.  The x
 *   quads are four 32-bit lane loads; vmull_s8 + vmlal_high_s8 add two products
 *   in int16 (at most 2 * 127 * 127 = 32258: no overflow, x and w are in
 *   [-127, 127]), vpadalq_s16 widens the pairs into the int32 accumulator.
 * float: one block per 128-bit vector, FMA, 4 blocks per step in four
 *   accumulators (the sum is reordered: within tolerance of the scalar C).
 * m > 1: rows of x one at a time (the weights stay in cache between rows).
 * A row's last 0..3 blocks go to the scalar walker of spmm_bcsr4.h. */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#include "edgerun.h"
#include "epilogue.h"
#include "spmm_bcsr4.h"

static inline int32x4_t dot16(int32x4_t acc, int8x16_t xq, int8x16_t v) {
    int16x8_t p = vmull_s8(vget_low_s8(xq), vget_low_s8(v));
    p = vmlal_high_s8(p, xq, v);
    return vpadalq_s16(acc, p);
}

#define ER_SPMM_BCSR4_NEON(IDX, idx_t)                                                        \
    static inline void s8_rows_##IDX(const er_csr *w, const int8_t *x, size_t i,              \
                                     const er_epilogue *ep) {                                 \
        const idx_t *indices = (const idx_t *)w->indices;                                     \
        const int8_t *values = (const int8_t *)w->values;                                     \
        for (size_t j = 0; j < w->rows; j++) {                                                \
            size_t b = w->indptr[j], end = w->indptr[j + 1];                                  \
            int32x4_t a0 = vdupq_n_s32(0), a1 = a0;                                           \
            for (; b + 8 <= end; b += 8) {                                                    \
                a0 = dot16(a0, ER_QUADS4(x, indices + b), vld1q_s8(values + 4 * b));          \
                a1 = dot16(a1, ER_QUADS4(x, indices + b + 4), vld1q_s8(values + 4 * b + 16)); \
            }                                                                                 \
            if (b + 4 <= end) {                                                               \
                a0 = dot16(a0, ER_QUADS4(x, indices + b), vld1q_s8(values + 4 * b));          \
                b += 4;                                                                       \
            }                                                                                 \
            int32_t acc = vaddvq_s32(vaddq_s32(a0, a1));                                      \
            acc += er_bcsr4_dot_s8_##IDX(indices, values, b, end, x);                         \
            er_store_s32(ep, i, j, acc);                                                      \
        }                                                                                     \
    }                                                                                         \
    static inline void f32_rows_##IDX(const er_csr *w, const float *x, size_t i,              \
                                      const er_epilogue *ep) {                                \
        const idx_t *indices = (const idx_t *)w->indices;                                     \
        const float *values = (const float *)w->values;                                       \
        for (size_t j = 0; j < w->rows; j++) {                                                \
            size_t b = w->indptr[j], end = w->indptr[j + 1];                                  \
            float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;                    \
            for (; b + 4 <= end; b += 4) {                                                    \
                const float *v = values + 4 * b;                                              \
                a0 = vfmaq_f32(a0, vld1q_f32(v), vld1q_f32(x + indices[b]));                  \
                a1 = vfmaq_f32(a1, vld1q_f32(v + 4), vld1q_f32(x + indices[b + 1]));          \
                a2 = vfmaq_f32(a2, vld1q_f32(v + 8), vld1q_f32(x + indices[b + 2]));          \
                a3 = vfmaq_f32(a3, vld1q_f32(v + 12), vld1q_f32(x + indices[b + 3]));         \
            }                                                                                 \
            float acc = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));          \
            er_store(ep, i, j, er_bcsr4_dot_f32_##IDX(indices, values, b, end, x, acc));      \
        }                                                                                     \
    }

ER_SPMM_BCSR4_NEON(u16, uint16_t)
ER_SPMM_BCSR4_NEON(u32, uint32_t)

er_status er_spmm_bcsr4_f32__neon(const er_csr *w, const float *x, size_t m,
                                  const er_epilogue *ep, void *scratch) {
    (void)scratch;
    return er_spmm_f32_by_row(w, x, m, ep, 4, f32_rows_u16, f32_rows_u32);
}

er_status er_spmm_bcsr4_s8__neon(const er_csr *w, const int8_t *x, size_t m,
                                 const er_epilogue *ep, void *scratch) {
    (void)scratch;
    return er_spmm_s8_by_row(w, x, m, ep, 4, s8_rows_u16, s8_rows_u32);
}
#endif /* __aarch64__ */
