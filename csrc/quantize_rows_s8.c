/* Dynamic per-row int8 quantization of activations: the portable reference. */
#include <math.h>

#include "edgerun.h"
#include "quantize_rows_s8.h"

er_status er_quantize_rows_s8__scalar(const float *x, size_t m, size_t k,
                                      int8_t *q, float *scale) {
    if (!x || !q || !scale) return ER_ERR_ARGUMENT;
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * k;
        float amax = 0.0f;
        int finite = 1;
        for (size_t p = 0; p < k; p++) {
            float a = fabsf(row[p]);
            finite &= a <= 3.40282347e38f; /* false for NaN and Inf */
            amax = a > amax ? a : amax;
        }
        if (!finite) return ER_ERR_NONFINITE;
        amax = er_quantize_amax(amax);
        er_quantize_row_tail(row, q + i * k, 0, k, amax);
        scale[i] = amax / 127.0f;
    }
    return ER_OK;
}
