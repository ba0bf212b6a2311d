/* Dynamic per-row asymmetric 7-bit quantization of activations: the portable
 * reference (contract in edgerun.h). */
#include "edgerun.h"
#include "quantize_rows_u7.h"

er_status er_quantize_rows_u7__scalar(const float *x, size_t m, size_t k, int8_t *q,
                                      float *scale, int32_t *zero) {
    if (!x || !q || !scale || !zero) return ER_ERR_ARGUMENT;
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * k;
        float lo = 0.0f, hi = 0.0f;
        int finite = 1;
        for (size_t p = 0; p < k; p++) {
            finite &= fabsf(row[p]) <= ER_FLOAT_MAX; /* false for NaN and Inf */
            lo = row[p] < lo ? row[p] : lo;
            hi = row[p] > hi ? row[p] : hi;
        }
        if (!finite) return ER_ERR_NONFINITE;
        er_quantize_row_u7(row, q + i * k, k, lo, hi, scale + i, zero + i, NULL);
    }
    return ER_OK;
}
