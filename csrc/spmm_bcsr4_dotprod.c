/* spmm_bcsr4_s8 for aarch64 with the dotprod extension (Armv8.2 SDOT:
 * Cortex-A76 / Raspberry Pi 5 and later).  A 1x4 block is exactly one SDOT
 * lane: the x quads of 4 blocks are four 32-bit lane loads (as in the NEON
 * variant) and one vdotq_s32 adds each block's 4 products into its own int32
 * lane, where plain NEON needs vmull + vmlal + vpadal.  SDOT is exact: no
 * saturation to guard.  A row's last 0..3 blocks go to the scalar walker. */
#if defined(__aarch64__)
/* Per file, before <arm_neon.h>: Debian's gcc 12 fails to inline the intrinsics
 * under a function-level target("+dotprod") attribute. */
#pragma GCC target("arch=armv8.2-a+dotprod")
#include <arm_neon.h>
#include <string.h>

#include "edgerun.h"
#include "epilogue.h"
#include "spmm_bcsr4.h"

#define ER_SPMM_BCSR4_DOTPROD(IDX, idx_t)                                                     \
    static inline void s8_rows_##IDX(const er_csr *w, const int8_t *x, size_t i,              \
                                     const er_epilogue *ep) {                                 \
        const idx_t *indices = (const idx_t *)w->indices;                                     \
        const int8_t *values = (const int8_t *)w->values;                                     \
        for (size_t j = 0; j < w->rows; j++) {                                                \
            size_t b = w->indptr[j], end = w->indptr[j + 1];                                  \
            int32x4_t a0 = vdupq_n_s32(0), a1 = a0;                                           \
            for (; b + 8 <= end; b += 8) {                                                    \
                a0 = vdotq_s32(a0, ER_QUADS4(x, indices + b), vld1q_s8(values + 4 * b));      \
                a1 = vdotq_s32(a1, ER_QUADS4(x, indices + b + 4),                             \
                               vld1q_s8(values + 4 * b + 16));                                \
            }                                                                                 \
            if (b + 4 <= end) {                                                               \
                a0 = vdotq_s32(a0, ER_QUADS4(x, indices + b), vld1q_s8(values + 4 * b));      \
                b += 4;                                                                       \
            }                                                                                 \
            int32_t acc = vaddvq_s32(vaddq_s32(a0, a1));                                      \
            acc += er_bcsr4_dot_s8_##IDX(indices, values, b, end, x);                         \
            er_store_s32(ep, i, j, acc);                                                      \
        }                                                                                     \
    }

ER_SPMM_BCSR4_DOTPROD(u16, uint16_t)
ER_SPMM_BCSR4_DOTPROD(u32, uint32_t)

er_status er_spmm_bcsr4_s8__dotprod(const er_csr *w, const int8_t *x, size_t m,
                                    const er_epilogue *ep, void *scratch) {
    (void)scratch;
    return er_spmm_s8_by_row(w, x, m, ep, 4, s8_rows_u16, s8_rows_u32);
}
#endif /* __aarch64__ */
