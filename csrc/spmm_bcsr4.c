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
    static void bcsr4_f32_##IDX(const er_csr *w, const float *x, size_t m,                   \
                                const er_epilogue *ep) {                                     \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const float *values = (const float *)w->values;                                      \
        for (size_t i = 0; i < m; i++)                                                       \
            for (size_t j = 0; j < w->rows; j++)                                             \
                er_store(ep, i, j,                                                           \
                         er_bcsr4_dot_f32_##IDX(indices, values, w->indptr[j],               \
                                                w->indptr[j + 1], x + i * w->cols, 0.0f));   \
    }                                                                                        \
    static void bcsr4_s8_##IDX(const er_csr *w, const int8_t *x, size_t m,                   \
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
    er_status st = er_spmm_bcsr4_check(w, x, m, ep);
    if (st != ER_OK || m == 0 || w->rows == 0) return st;
    if (w->index_bytes == 2)
        bcsr4_f32_u16(w, x, m, ep);
    else
        bcsr4_f32_u32(w, x, m, ep);
    return ER_OK;
}

er_status er_spmm_bcsr4_s8__scalar(const er_csr *w, const int8_t *x, size_t m,
                                   const er_epilogue *ep, void *scratch) {
    (void)scratch;
    er_status st = er_spmm_bcsr4_check(w, x, m, ep);
    if (st != ER_OK || m == 0 || w->rows == 0) return st;
    if ((st = er_spmm_bcsr4_check_s8_rows(w)) != ER_OK) return st;
    if (w->index_bytes == 2)
        bcsr4_s8_u16(w, x, m, ep);
    else
        bcsr4_s8_u32(w, x, m, ep);
    return ER_OK;
}
