/* 1x4 block-sparse weights times dense activations: the portable reference.
 *
 * Every output is one walk over its row's blocks, block by block and t inner
 * (see edgerun.h).  This is the math every variant must equal: bit for bit on
 * the int8 path, within tolerance where a float SIMD body reorders the sum. */
#include <stdint.h>

#include "edgerun.h"
#include "epilogue.h"
#include "spmm_bcsr4.h"

#define ER_SPMM_BCSR4_SCALAR(IDX, idx_t)                                                     \
    static inline void bcsr4_f32_##IDX(const er_csr *w, const float *x, size_t m,                   \
                                const er_epilogue *ep) {                                     \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const float *values = (const float *)w->values;                                      \
        for (size_t i = 0; i < m; i++)                                                       \
            for (size_t j = 0; j < w->rows; j++)                                             \
                er_store(ep, i, j,                                                           \
                         er_bcsr4_dot_f32_##IDX(indices, values, w->indptr[j],               \
                                                w->indptr[j + 1], x + i * w->cols, 0.0f));   \
    }                                                                                        \
    static inline void bcsr4_s8_##IDX(const er_csr *w, const int8_t *x, size_t m,                   \
                               const er_epilogue *ep) {                                      \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const int8_t *values = (const int8_t *)w->values;                                    \
        for (size_t i = 0; i < m; i++)                                                       \
            for (size_t j = 0; j < w->rows; j++)                                             \
                er_store_s32(ep, i, j,                                                       \
                             er_bcsr4_dot_s8_##IDX(indices, values, w->indptr[j],            \
                                                   w->indptr[j + 1], x + i * w->cols));      \
    }

ER_SPMM_BCSR4_SCALAR(u16, uint16_t)
ER_SPMM_BCSR4_SCALAR(u32, uint32_t)

er_status er_spmm_bcsr4_f32__scalar(const er_csr *w, const float *x, size_t m,
                                    const er_epilogue *ep, void *scratch) {
    (void)scratch;
    return er_spmm_f32(w, x, m, ep, 4, bcsr4_f32_u16, bcsr4_f32_u32);
}

er_status er_spmm_bcsr4_s8__scalar(const er_csr *w, const int8_t *x, size_t m,
                                   const er_epilogue *ep, void *scratch) {
    (void)scratch;
    return er_spmm_s8(w, x, m, ep, 4, bcsr4_s8_u16, bcsr4_s8_u32);
}
