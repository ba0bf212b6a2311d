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

/* ---- The entry-point skeleton of every spmm_csr / spmm_bcsr4 variant --------
 * A variant writes only its bodies and tiles, once per index width, and hands
 * them to these drivers, which own the argument checks, the choice of index
 * width (once per call, so no inner loop tests it), the batch-1 / batch split
 * and the chunk-outer batch loop.  The drivers are always_inline and get the
 * tiles as constant function pointers (directly or in a static const table),
 * so once a driver is inlined every call is direct and the static inline tiles
 * inline into the entry point as they did when each file spelled the skeleton
 * out (count_instructions.sh: same counts, give or take register allocation). */
#define ER_INLINE static inline __attribute__((always_inline))

/* T: f32 or s8; x_t: the element of x; xt_t: of x transposed into scratch;
 * S8: whether the int8 row-length check applies (weights per entry: 1 for CSR,
 * 4 for 1x4 blocks).  Each driver spells out its three check lines: a helper
 * that said "nothing to do" through a pointer cost the int8 batch-1 path 2%
 * more instructions on x86 (count_instructions.sh). */
#define ER_SPMM_DRIVERS(T, x_t, xt_t, S8)                                                    \
    /* Bodies: all m batch rows of x in place / output row i from its row of x. */         \
    typedef void er_spmm_##T##_rows(const er_csr *w, const x_t *x, size_t m,                \
                                    const er_epilogue *ep);                                 \
    typedef void er_spmm_##T##_row(const er_csr *w, const x_t *x_row, size_t i,             \
                                   const er_epilogue *ep);                                  \
    /* A tile: batch lanes [i, i + its width) of output row j (or rows j..j+3), from xt. */ \
    typedef void er_spmm_##T##_tile(const er_csr *w, size_t j, const xt_t *xt, size_t m,    \
                                    size_t i, const er_epilogue *ep);                       \
    /* A variant that reads x in place: the checks, then the body of the index width. */   \
    ER_INLINE er_status er_spmm_##T(const er_csr *w, const x_t *x, size_t m,                \
                                    const er_epilogue *ep, size_t weights_per_entry,        \
                                    er_spmm_##T##_rows *u16, er_spmm_##T##_rows *u32) {     \
        er_status st = er_spmm_csr_check(w, x, m, ep, NULL, 0);                             \
        if (st != ER_OK || m == 0 || w->rows == 0) return st;                               \
        if (S8 && (st = er_spmm_check_s8_row_lengths(w, weights_per_entry)) != ER_OK) return st; \
        if (w->index_bytes == 2)                                                            \
            u16(w, x, m, ep);                                                               \
        else                                                                                \
            u32(w, x, m, ep);                                                               \
        return ER_OK;                                                                       \
    }                                                                                       \
    /* The same, one batch row at a time (the weights stay in cache between rows). */      \
    ER_INLINE er_status er_spmm_##T##_by_row(const er_csr *w, const x_t *x, size_t m,       \
                                             const er_epilogue *ep, size_t weights_per_entry, \
                                             er_spmm_##T##_row *u16, er_spmm_##T##_row *u32) { \
        er_status st = er_spmm_csr_check(w, x, m, ep, NULL, 0);                             \
        if (st != ER_OK || m == 0 || w->rows == 0) return st;                               \
        if (S8 && (st = er_spmm_check_s8_row_lengths(w, weights_per_entry)) != ER_OK) return st; \
        for (size_t i = 0; i < m; i++) {                                                    \
            if (w->index_bytes == 2)                                                        \
                u16(w, x + i * w->cols, i, ep);                                             \
            else                                                                            \
                u32(w, x + i * w->cols, i, ep);                                             \
        }                                                                                   \
        return ER_OK;                                                                       \
    }                                                                                       \
    /* What a SIMD spmm_csr variant supplies per index width: the batch-1 gather, */       \
    /* and the batch tiles: `wide` lanes of one row, then `narrow` lanes of four */        \
    /* rows (NULL if it has no such tile) or one; the last m % narrow lanes go to */       \
    /* the scalar tail, er_spmm_batch_tail_*. */                                           \
    typedef struct {                                                                        \
        er_spmm_##T##_row *gather;                                                          \
        size_t wide;                                                                        \
        er_spmm_##T##_tile *wide_row;                                                       \
        size_t narrow;                                                                      \
        er_spmm_##T##_tile *narrow_rows4, *narrow_row, *tail;                               \
    } er_spmm_csr_##T##_tiles;                                                              \
    /* Chunk-outer: one chunk of xt (k x wide lanes) stays in cache while every */         \
    /* row walks it; the CSR arrays stream once per chunk instead. */                      \
    ER_INLINE void er_spmm_csr_batch_##T(const er_csr *w, const xt_t *xt, size_t m,         \
                                         const er_epilogue *ep,                             \
                                         const er_spmm_csr_##T##_tiles *t) {                \
        size_t m_wide = m / t->wide * t->wide, m_narrow = m / t->narrow * t->narrow;        \
        for (size_t i = 0; i < m_wide; i += t->wide)                                        \
            for (size_t j = 0; j < w->rows; j++) t->wide_row(w, j, xt, m, i, ep);           \
        for (size_t i = m_wide; i < m_narrow; i += t->narrow) {                             \
            size_t j = 0;                                                                   \
            if (t->narrow_rows4)                                                            \
                for (; j + 4 <= w->rows; j += 4) t->narrow_rows4(w, j, xt, m, i, ep);       \
            for (; j < w->rows; j++) t->narrow_row(w, j, xt, m, i, ep);                     \
        }                                                                                   \
        if (m_narrow < m)                                                                   \
            for (size_t j = 0; j < w->rows; j++) t->tail(w, j, xt, m, m_narrow, ep);        \
    }                                                                                       \
    /* A SIMD spmm_csr variant: batch 1 gathers from x in place; a batch is */             \
    /* transposed into scratch once, so that a nonzero scales contiguous lanes. */         \
    ER_INLINE er_status er_spmm_csr_##T(const er_csr *w, const x_t *x, size_t m,            \
                                        const er_epilogue *ep, void *scratch,               \
                                        const er_spmm_csr_##T##_tiles *u16,                 \
                                        const er_spmm_csr_##T##_tiles *u32) {               \
        er_status st = er_spmm_csr_check(w, x, m, ep, scratch, m > 1);                      \
        if (st != ER_OK || m == 0 || w->rows == 0) return st;                               \
        if (S8 && (st = er_spmm_check_s8_row_lengths(w, 1)) != ER_OK) return st;            \
        if (m == 1) {                                                                       \
            if (w->index_bytes == 2)                                                        \
                u16->gather(w, x, 0, ep);                                                   \
            else                                                                            \
                u32->gather(w, x, 0, ep);                                                   \
            return ER_OK;                                                                   \
        }                                                                                   \
        xt_t *xt = (xt_t *)scratch;                                                         \
        er_spmm_transpose_##T(x, m, w->cols, xt);                                           \
        if (w->index_bytes == 2)                                                            \
            er_spmm_csr_batch_##T(w, xt, m, ep, u16);                                       \
        else                                                                                \
            er_spmm_csr_batch_##T(w, xt, m, ep, u32);                                       \
        return ER_OK;                                                                       \
    }

ER_SPMM_DRIVERS(f32, float, float, 0)
ER_SPMM_DRIVERS(s8, int8_t, int16_t, 1)
#undef ER_SPMM_DRIVERS

#endif
