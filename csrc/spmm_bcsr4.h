/* Shared by the variants of spmm_bcsr4_f32 / spmm_bcsr4_s8: argument checks and
 * the scalar block walkers every SIMD body hands its leftover blocks to.
 *
 * Index width is a run-time field of er_csr (2 or 4 bytes); the walkers come in
 * a _u16 and a _u32 flavour generated from one body, so inner loops never
 * branch on it. */
#ifndef EDGERUN_SPMM_BCSR4_H
#define EDGERUN_SPMM_BCSR4_H

#include <stdint.h>
#include <string.h>

#include "edgerun.h"
#include "epilogue.h"
#include "spmm_csr.h"

/* The entry points are the drivers of spmm_csr.h with 4 weights per entry: its
 * argument checks apply as they are (indptr counts blocks instead of entries;
 * the loader has validated indices[b] + 4 <= cols), and scratch is unused. */

/* For the NEON and dotprod variants (they include <arm_neon.h>): the x quads of
 * 4 blocks in one vector, block t in bytes 4t .. 4t+3, as four 32-bit lane
 * loads (x + indices[b] has no alignment). */
static inline uint32_t er_bcsr4_ld32(const int8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#define ER_QUADS4(x, ix)                                                                      \
    vreinterpretq_s8_u32(vsetq_lane_u32(                                                      \
        er_bcsr4_ld32((x) + (ix)[3]),                                                         \
        vsetq_lane_u32(er_bcsr4_ld32((x) + (ix)[2]),                                          \
                       vsetq_lane_u32(er_bcsr4_ld32((x) + (ix)[1]),                           \
                                      vdupq_n_u32(er_bcsr4_ld32((x) + (ix)[0])), 1),          \
                       2),                                                                    \
        3))

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
