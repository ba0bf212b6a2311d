/* CSR sparse weights times dense activations: the portable reference.
 *
 * Every output is one gather-dot over the row's entries, in entry order.  This
 * is the math every variant must equal (bit for bit on the int8 path and on the
 * float batch path); it needs no scratch. */
#include <stdint.h>

#include "edgerun.h"
#include "epilogue.h"
#include "spmm_csr.h"

size_t er_spmm_csr_scratch_bytes(size_t m, size_t k) {
    /* m > 1: x transposed to [k, m] (float32, or int8 widened to int16).
     * m == 1: nothing (the gathers read x in place).
     * The float32 transpose is the larger of the two, so one size fits both ops.
     * Saturates instead of wrapping; the caller cannot allocate SIZE_MAX. */
    if (m <= 1) return 0;
    if (k != 0 && m > SIZE_MAX / 4 / k) return SIZE_MAX;
    return m * k * 4;
}

#define ER_SPMM_CSR_SCALAR(IDX, idx_t)                                                       \
    static void spmm_f32_##IDX(const er_csr *w, const float *x, size_t m,                    \
                               const er_epilogue *ep) {                                      \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const float *values = (const float *)w->values;                                      \
        for (size_t i = 0; i < m; i++)                                                       \
            for (size_t j = 0; j < w->rows; j++)                                             \
                er_store(ep, i, j,                                                           \
                         er_spmm_dot_f32_##IDX(indices, values, w->indptr[j],                \
                                               w->indptr[j + 1], x + i * w->cols));          \
    }                                                                                        \
    static void spmm_s8_##IDX(const er_csr *w, const int8_t *x, size_t m,                    \
                              const er_epilogue *ep) {                                       \
        const idx_t *indices = (const idx_t *)w->indices;                                    \
        const int8_t *values = (const int8_t *)w->values;                                    \
        for (size_t i = 0; i < m; i++)                                                       \
            for (size_t j = 0; j < w->rows; j++)                                             \
                er_store_s32(ep, i, j,                                                       \
                             er_spmm_dot_s8_##IDX(indices, values, w->indptr[j],             \
                                                  w->indptr[j + 1], x + i * w->cols));       \
    }

ER_SPMM_CSR_SCALAR(u16, uint16_t)
ER_SPMM_CSR_SCALAR(u32, uint32_t)

er_status er_spmm_csr_f32__scalar(const er_csr *w, const float *x, size_t m,
                                  const er_epilogue *ep, void *scratch) {
    (void)scratch;
    return er_spmm_f32(w, x, m, ep, 1, spmm_f32_u16, spmm_f32_u32);
}

er_status er_spmm_csr_s8__scalar(const er_csr *w, const int8_t *x, size_t m,
                                 const er_epilogue *ep, void *scratch) {
    (void)scratch;
    return er_spmm_s8(w, x, m, ep, 1, spmm_s8_u16, spmm_s8_u32);
}
