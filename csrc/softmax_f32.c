/* Row softmax of float32: the portable reference. */
#include "edgerun.h"
#include "softmax_f32.h"

er_status er_softmax_f32__scalar(const float *x, float *y, size_t rows, size_t n) {
    if (rows && n && (!x || !y)) return ER_ERR_ARGUMENT;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        if (n == 0) continue;
        float max = er_softmax_max_tail(xr, 1, n, xr[0]);
        if (er_softmax_nan_row(yr, n, max)) continue;
        /* The sum is >= 1 (the max contributes exp(0)), so 1 / sum is finite;
         * one multiply per element instead of a divide costs at most 1 ulp. */
        double sum = er_softmax_exp_tail(xr, yr, 0, n, max);
        er_softmax_scale_tail(yr, 0, n, (float)(1.0 / sum));
    }
    return ER_OK;
}
