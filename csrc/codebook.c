/* Weight-shared (codebook) layers: the portable reference of codebook_f32 and
 * codebook_s8 (contract in edgerun.h). */
#include "codebook.h"
#include "edgerun.h"
#include "epilogue.h"

size_t er_codebook_f32_scratch_bytes(size_t k) {
    return (size_t)ER_CODEBOOK_F32_ROWS * k * sizeof(float);
}

er_status er_codebook_f32__scalar(const uint8_t *packed, unsigned bits,
                                  const float *centroids, const float *x, size_t m,
                                  size_t n, size_t k, const er_epilogue *ep,
                                  void *scratch) {
    if (!packed || !centroids || !x || !er_epilogue_ok(ep, n) || (k && !scratch))
        return ER_ERR_ARGUMENT;
    if (bits < 1 || bits > 8) return ER_ERR_ARGUMENT;
    const size_t stride = er_codebook_row_bytes(k, bits);
    float *w = scratch;
    for (size_t j = 0; j < n; j++) {
        /* Decoding a row once and reusing it for all m rows of x keeps the
         * decode cost at n*k, not m*n*k. */
        er_codebook_decode_row(packed + j * stride, bits, centroids, k, w);
        for (size_t i = 0; i < m; i++) er_store(ep, i, j, er_codebook_dot_f32(x + i * k, w, k));
    }
    return ER_OK;
}

er_status er_codebook_s8__scalar(const uint8_t *nibbles, const int8_t *table,
                                 const int8_t *x, size_t m, size_t n, size_t k,
                                 const er_epilogue *ep) {
    if (!nibbles || !table || !x || !er_epilogue_zero_ok(ep, n)) return ER_ERR_ARGUMENT;
    if (k > ER_MAX_K_S8) return ER_ERR_K_TOO_LARGE;
    const size_t stride = er_nibble32_row_bytes(k);
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < m; i++)
            er_store_s32(ep, i, j, er_codebook_s8_dot(nibbles + j * stride, table, x + i * k, 0, k));
    return ER_OK;
}
