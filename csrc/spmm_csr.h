/* Shared by the variants of spmm_csr_f32 / spmm_csr_s8: argument checks, the
 * transposes into scratch, and the scalar steps every SIMD body hands its
 * leftovers to.
 *
 * Each output is summed in entry order (float products rounded, then added, no
 * FMA), so the batch paths of every variant give the same bits as this scalar
 * code and as numpy; only a SIMD gather at m == 1 may reorder a float sum.
 *
 * Index width is a run-time field of er_csr (2 or 4 bytes); the helpers that
 * walk a row come in a _u16 and a _u32 flavour generated from one body, so the
 * inner loops never branch on it. */
#ifndef EDGERUN_SPMM_CSR_H
#define EDGERUN_SPMM_CSR_H

#include <stdint.h>

#include "edgerun.h"
#include "epilogue.h"

/* Cheap checks shared by every variant.  The loader has validated indices and
 * indptr; here only what a kernel cannot run without.  needs_scratch: whether
 * this call will touch scratch. */
static inline er_status er_spmm_csr_check(const er_csr *w, const void *x, size_t m,
                                          const er_epilogue *ep, const void *scratch,
                                          int needs_scratch) {
    if (!w || !ep || !er_epilogue_ok(ep, w->rows)) return ER_ERR_ARGUMENT;
    if (m == 0 || w->rows == 0) return ER_OK;
    if (!x || !w->indptr || (w->index_bytes != 2 && w->index_bytes != 4)) return ER_ERR_ARGUMENT;
    if (w->indptr[w->rows] != w->indptr[0] && (!w->indices || !w->values)) return ER_ERR_ARGUMENT;
    if (needs_scratch && !scratch) return ER_ERR_ARGUMENT;
    return ER_OK;
}

/* int32 accumulation is exact only while a row holds at most ER_MAX_K_S8
 * weights; a row of `entries` entries holds entries * weights_per_entry of them
 * (1 for CSR, 4 for 1x4 blocks).  The loader guarantees fewer than cols, but a
 * row is cheap to check. */
static inline er_status er_spmm_check_s8_row_lengths(const er_csr *w, size_t weights_per_entry) {
    for (size_t j = 0; j < w->rows; j++)
        if (w->indptr[j + 1] - w->indptr[j] > ER_MAX_K_S8 / weights_per_entry)
            return ER_ERR_K_TOO_LARGE;
    return ER_OK;
}

static inline er_status er_spmm_csr_check_s8_rows(const er_csr *w) {
    return er_spmm_check_s8_row_lengths(w, 1);
}

/* x [m, k] -> xt [k, m]: after this a nonzero's column of x is contiguous. */
static inline void er_spmm_transpose_f32(const float *x, size_t m, size_t k, float *xt) {
    /* Blocks of 8 rows keep both sides within a few cache lines per step. */
    for (size_t i0 = 0; i0 < m; i0 += 8) {
        size_t i1 = i0 + 8 < m ? i0 + 8 : m;
        for (size_t p = 0; p < k; p++)
            for (size_t i = i0; i < i1; i++) xt[p * m + i] = x[i * k + p];
    }
}

/* int8 x [m, k] -> int16 xt [k, m]: widened once so that the SIMD bodies
 * multiply 16-bit lanes (127 * 127 fits int16) without widening per nonzero. */
static inline void er_spmm_transpose_s8(const int8_t *x, size_t m, size_t k, int16_t *xt) {
    for (size_t i0 = 0; i0 < m; i0 += 8) {
        size_t i1 = i0 + 8 < m ? i0 + 8 : m;
        for (size_t p = 0; p < k; p++)
            for (size_t i = i0; i < i1; i++) xt[p * m + i] = x[i * k + p];
    }
}

/* The row walkers, one body per index type. */
#define ER_SPMM_CSR_SCALAR_HELPERS(IDX, idx_t)                                              \
    /* sum over e in [begin, end) of values[e] * x[indices[e]], in entry order. */          \
    static inline float er_spmm_dot_f32_##IDX(const idx_t *indices, const float *values,   \
                                               size_t begin, size_t end, const float *x) {  \
        float acc = 0.0f;                                                                   \
        for (size_t e = begin; e < end; e++) acc += values[e] * x[indices[e]];              \
        return acc;                                                                         \
    }                                                                                       \
    /* int32 sum; order is free, so four partial sums let the loads overlap. */            \
    static inline int32_t er_spmm_dot_s8_##IDX(const idx_t *indices, const int8_t *values, \
                                               size_t begin, size_t end, const int8_t *x) { \
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;                                             \
        size_t e = begin;                                                                   \
        for (; e + 4 <= end; e += 4) {                                                      \
            a0 += values[e] * x[indices[e]];                                                \
            a1 += values[e + 1] * x[indices[e + 1]];                                        \
            a2 += values[e + 2] * x[indices[e + 2]];                                        \
            a3 += values[e + 3] * x[indices[e + 3]];                                        \
        }                                                                                   \
        for (; e < end; e++) a0 += values[e] * x[indices[e]];                               \
        return (a0 + a1) + (a2 + a3);                                                       \
    }                                                                                       \
    /* Batch lanes [i0, m) of output row j from the transposed xt [k, m]. */                \
    static inline void er_spmm_batch_tail_f32_##IDX(const er_csr *w, size_t j,              \
                                                    const float *xt, size_t m, size_t i0,   \
                                                    const er_epilogue *ep) {                \
        const idx_t *indices = (const idx_t *)w->indices;                                   \
        const float *values = (const float *)w->values;                                     \
        for (size_t i = i0; i < m; i++) {                                                   \
            float acc = 0.0f;                                                               \
            for (size_t e = w->indptr[j]; e < w->indptr[j + 1]; e++)                        \
                acc += values[e] * xt[(size_t)indices[e] * m + i];                          \
            er_store(ep, i, j, acc);                                                        \
        }                                                                                   \
    }                                                                                       \
    static inline void er_spmm_batch_tail_s8_##IDX(const er_csr *w, size_t j,               \
                                                   const int16_t *xt, size_t m, size_t i0,  \
                                                   const er_epilogue *ep) {                 \
        const idx_t *indices = (const idx_t *)w->indices;                                   \
        const int8_t *values = (const int8_t *)w->values;                                   \
        for (size_t i = i0; i < m; i++) {                                                   \
            int32_t acc = 0;                                                                \
            for (size_t e = w->indptr[j]; e < w->indptr[j + 1]; e++)                        \
                acc += values[e] * xt[(size_t)indices[e] * m + i];                          \
            er_store_s32(ep, i, j, acc);                                                    \
        }                                                                                   \
    }

ER_SPMM_CSR_SCALAR_HELPERS(u16, uint16_t)
ER_SPMM_CSR_SCALAR_HELPERS(u32, uint32_t)
#undef ER_SPMM_CSR_SCALAR_HELPERS

#endif
