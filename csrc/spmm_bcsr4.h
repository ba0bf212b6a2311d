/* Shared by the variants of spmm_bcsr4_f32 / spmm_bcsr4_s8: argument checks and
 * the scalar block walkers every SIMD body hands its leftover blocks to.
 *
 * Index width is a run-time field of er_csr (2 or 4 bytes); the walkers come in
 * a _u16 and a _u32 flavour generated from one body, so inner loops never
 * branch on it. */
#ifndef EDGERUN_SPMM_BCSR4_H
#define EDGERUN_SPMM_BCSR4_H

#include <stdint.h>

#include "edgerun.h"
#include "epilogue.h"
#include "spmm_csr.h"

/* The CSR argument checks apply as they are (indptr counts blocks instead of
 * entries); the loader has validated indices[b] + 4 <= cols.  Scratch is unused. */
static inline er_status er_spmm_bcsr4_check(const er_csr *w, const void *x, size_t m,
                                            const er_epilogue *ep) {
    return er_spmm_csr_check(w, x, m, ep, NULL, 0);
}

static inline er_status er_spmm_bcsr4_check_s8_rows(const er_csr *w) {
    return er_spmm_check_s8_row_lengths(w, 4);
}

#define ER_SPMM_BCSR4_SCALAR_HELPERS(IDX, idx_t)                                             \
    /* Blocks [begin, end) of one row against x, block by block, t inner: the */            \
    /* contract's order.  acc is the running sum (SIMD bodies pass theirs in). */            \
    static inline float er_bcsr4_dot_f32_##IDX(const idx_t *indices, const float *values,   \
                                               size_t begin, size_t end, const float *x,    \
                                               float acc) {                                  \
        for (size_t b = begin; b < end; b++) {                                               \
            const float *xb = x + indices[b], *vb = values + 4 * b;                          \
            acc += vb[0] * xb[0];                                                            \
            acc += vb[1] * xb[1];                                                            \
            acc += vb[2] * xb[2];                                                            \
            acc += vb[3] * xb[3];                                                            \
        }                                                                                    \
        return acc;                                                                          \
    }                                                                                        \
    /* int32: exact in any order; the 4 products of a block are independent. */             \
    static inline int32_t er_bcsr4_dot_s8_##IDX(const idx_t *indices, const int8_t *values, \
                                                size_t begin, size_t end, const int8_t *x) { \
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;                                              \
        for (size_t b = begin; b < end; b++) {                                               \
            const int8_t *xb = x + indices[b], *vb = values + 4 * b;                         \
            a0 += vb[0] * xb[0];                                                             \
            a1 += vb[1] * xb[1];                                                             \
            a2 += vb[2] * xb[2];                                                             \
            a3 += vb[3] * xb[3];                                                             \
        }                                                                                    \
        return (a0 + a1) + (a2 + a3);                                                        \
    }

ER_SPMM_BCSR4_SCALAR_HELPERS(u16, uint16_t)
ER_SPMM_BCSR4_SCALAR_HELPERS(u32, uint32_t)
#undef ER_SPMM_BCSR4_SCALAR_HELPERS

#endif
