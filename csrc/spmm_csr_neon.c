/* spmm_csr_f32 / spmm_csr_s8 for aarch64 NEON.
 *
 * m == 1: NEON has no gather, so the row walk stays scalar; the float path
 *   walks four rows in lockstep (four independent add chains instead of one,
 *   each still in entry order, so the result equals the scalar C bit for bit).
 * m > 1: x is transposed once into scratch ([k, m]); a nonzero scales a
 *   contiguous vector of the batch: 16 then 4 float lanes (vmulq then vaddq, no
 *   fused multiply-add), or 16 then 8 int16 lanes widened into int32 with
 *   vmlal(_high)_n_s16 (|x * v| <= 128 * 128 fits the int32 lanes exactly).
 *   Leftover batch lanes go to the scalar helper of spmm_csr.h. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "edgerun.h"
#include "epilogue.h"
#include "spmm_csr.h"

static inline void store4_f32(const er_epilogue *ep, size_t i, size_t j, float32x4_t acc) {
    float lanes[4];
    vst1q_f32(lanes, acc);
    for (int l = 0; l < 4; l++) er_store(ep, i + l, j, lanes[l]);
}

static inline void store8_s32(const er_epilogue *ep, size_t i, size_t j, int32x4_t lo,
                              int32x4_t hi) {
    int32_t lanes[8];
    vst1q_s32(lanes, lo);
    vst1q_s32(lanes + 4, hi);
    for (int l = 0; l < 8; l++) er_store_s32(ep, i + l, j, lanes[l]);
}

#define ER_SPMM_CSR_NEON(IDX, idx_t)                                                         \
    /* ---- float, m == 1: four rows in lockstep, each in entry order. */                    \
    static inline void f32_gather_##IDX(const er_csr *w, const float *x, size_t i,           \
                                        const er_epilogue *ep) {                             \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const float *values = (const float *)w->values;                                      \
        size_t j = 0;                                                                        \
        for (; j + 4 <= w->rows; j += 4) {                                                   \
            const uint32_t *ptr = w->indptr + j;                                             \
            size_t b0 = ptr[0], b1 = ptr[1], b2 = ptr[2], b3 = ptr[3];                       \
            size_t n0 = ptr[1] - b0, n1 = ptr[2] - b1, n2 = ptr[3] - b2, n3 = ptr[4] - b3;   \
            size_t common = n0 < n1 ? n0 : n1;                                               \
            common = common < n2 ? common : n2;                                              \
            common = common < n3 ? common : n3;                                              \
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;                                \
            for (size_t t = 0; t < common; t++) {                                            \
                a0 += values[b0 + t] * x[indices[b0 + t]];                                   \
                a1 += values[b1 + t] * x[indices[b1 + t]];                                   \
                a2 += values[b2 + t] * x[indices[b2 + t]];                                   \
                a3 += values[b3 + t] * x[indices[b3 + t]];                                   \
            }                                                                                \
            /* Continuing each sum where the lockstep part stopped keeps entry order. */    \
            for (size_t t = common; t < n0; t++) a0 += values[b0 + t] * x[indices[b0 + t]];  \
            for (size_t t = common; t < n1; t++) a1 += values[b1 + t] * x[indices[b1 + t]];  \
            for (size_t t = common; t < n2; t++) a2 += values[b2 + t] * x[indices[b2 + t]];  \
            for (size_t t = common; t < n3; t++) a3 += values[b3 + t] * x[indices[b3 + t]];  \
            er_store(ep, i, j, a0);                                                          \
            er_store(ep, i, j + 1, a1);                                                      \
            er_store(ep, i, j + 2, a2);                                                      \
            er_store(ep, i, j + 3, a3);                                                      \
        }                                                                                    \
        for (; j < w->rows; j++)                                                             \
            er_store(ep, i, j,                                                               \
                     er_spmm_dot_f32_##IDX(indices, values, w->indptr[j], w->indptr[j + 1], x)); \
    }                                                                                        \
    /* ---- float, m > 1: 16 then 4 batch lanes of one row. */                               \
    static inline void f32_chunk16_##IDX(const er_csr *w, size_t j, const float *xt,         \
                                         size_t m, size_t i, const er_epilogue *ep) {        \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const float *values = (const float *)w->values;                                      \
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;                       \
        for (size_t e = w->indptr[j]; e < w->indptr[j + 1]; e++) {                           \
            const float *col = xt + (size_t)indices[e] * m + i;                              \
            float v = values[e];                                                             \
            a0 = vaddq_f32(a0, vmulq_n_f32(vld1q_f32(col), v));                              \
            a1 = vaddq_f32(a1, vmulq_n_f32(vld1q_f32(col + 4), v));                          \
            a2 = vaddq_f32(a2, vmulq_n_f32(vld1q_f32(col + 8), v));                          \
            a3 = vaddq_f32(a3, vmulq_n_f32(vld1q_f32(col + 12), v));                         \
        }                                                                                    \
        store4_f32(ep, i, j, a0);                                                            \
        store4_f32(ep, i + 4, j, a1);                                                        \
        store4_f32(ep, i + 8, j, a2);                                                        \
        store4_f32(ep, i + 12, j, a3);                                                       \
    }                                                                                        \
    static inline void f32_chunk4_##IDX(const er_csr *w, size_t j, const float *xt,          \
                                        size_t m, size_t i, const er_epilogue *ep) {         \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const float *values = (const float *)w->values;                                      \
        float32x4_t a0 = vdupq_n_f32(0.0f);                                                  \
        for (size_t e = w->indptr[j]; e < w->indptr[j + 1]; e++)                             \
            a0 = vaddq_f32(a0, vmulq_n_f32(vld1q_f32(xt + (size_t)indices[e] * m + i),       \
                                           values[e]));                                      \
        store4_f32(ep, i, j, a0);                                                            \
    }                                                                                        \
    static const er_spmm_csr_f32_tiles f32_##IDX = {                                         \
        f32_gather_##IDX, 16, f32_chunk16_##IDX,                                             \
        4, NULL, f32_chunk4_##IDX, er_spmm_batch_tail_f32_##IDX};                            \
    /* ---- int8, m == 1. */                                                                 \
    static inline void s8_gather_##IDX(const er_csr *w, const int8_t *x, size_t i,           \
                                       const er_epilogue *ep) {                              \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const int8_t *values = (const int8_t *)w->values;                                    \
        for (size_t j = 0; j < w->rows; j++)                                                 \
            er_store_s32(ep, i, j,                                                           \
                         er_spmm_dot_s8_##IDX(indices, values, w->indptr[j], w->indptr[j + 1], x)); \
    }                                                                                        \
    /* ---- int8, m > 1: 16 then 8 batch lanes of one row. */                                \
    static inline void s8_chunk16_##IDX(const er_csr *w, size_t j, const int16_t *xt,        \
                                        size_t m, size_t i, const er_epilogue *ep) {         \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const int8_t *values = (const int8_t *)w->values;                                    \
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;                            \
        for (size_t e = w->indptr[j]; e < w->indptr[j + 1]; e++) {                           \
            const int16_t *col = xt + (size_t)indices[e] * m + i;                            \
            int16x8_t c0 = vld1q_s16(col), c1 = vld1q_s16(col + 8);                          \
            int16_t v = values[e];                                                           \
            a0 = vmlal_n_s16(a0, vget_low_s16(c0), v);                                       \
            a1 = vmlal_high_n_s16(a1, c0, v);                                                \
            a2 = vmlal_n_s16(a2, vget_low_s16(c1), v);                                       \
            a3 = vmlal_high_n_s16(a3, c1, v);                                                \
        }                                                                                    \
        store8_s32(ep, i, j, a0, a1);                                                        \
        store8_s32(ep, i + 8, j, a2, a3);                                                    \
    }                                                                                        \
    static inline void s8_chunk8_##IDX(const er_csr *w, size_t j, const int16_t *xt,         \
                                       size_t m, size_t i, const er_epilogue *ep) {          \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const int8_t *values = (const int8_t *)w->values;                                    \
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0;                                              \
        for (size_t e = w->indptr[j]; e < w->indptr[j + 1]; e++) {                           \
            int16x8_t c0 = vld1q_s16(xt + (size_t)indices[e] * m + i);                       \
            int16_t v = values[e];                                                           \
            a0 = vmlal_n_s16(a0, vget_low_s16(c0), v);                                       \
            a1 = vmlal_high_n_s16(a1, c0, v);                                                \
        }                                                                                    \
        store8_s32(ep, i, j, a0, a1);                                                        \
    }                                                                                        \
    static const er_spmm_csr_s8_tiles s8_##IDX = {                                           \
        s8_gather_##IDX, 16, s8_chunk16_##IDX,                                               \
        8, NULL, s8_chunk8_##IDX, er_spmm_batch_tail_s8_##IDX};

ER_SPMM_CSR_NEON(u16, uint16_t)
ER_SPMM_CSR_NEON(u32, uint32_t)

er_status er_spmm_csr_f32__neon(const er_csr *w, const float *x, size_t m,
                                const er_epilogue *ep, void *scratch) {
    return er_spmm_csr_f32(w, x, m, ep, scratch, &f32_u16, &f32_u32);
}

er_status er_spmm_csr_s8__neon(const er_csr *w, const int8_t *x, size_t m,
                               const er_epilogue *ep, void *scratch) {
    return er_spmm_csr_s8(w, x, m, ep, scratch, &s8_u16, &s8_u32);
}
#endif /* __aarch64__ */
