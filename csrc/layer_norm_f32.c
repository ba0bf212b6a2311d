/* Layer normalisation over the rows of a float32 matrix: the portable
 * reference, one element at a time in the order of edgerun.h. */
#include "edgerun.h"
#include "layer_norm_f32.h"

er_status er_layer_norm_f32__scalar(const float *x, const float *residual, const float *scale,
                                    const float *bias, float *y, size_t rows, size_t n,
                                    float epsilon) {
    er_status status = er_layer_norm_args(x, scale, y, epsilon);
    if (status != ER_OK || n == 0) return status;
    for (size_t i = 0; i < rows; i++) {
        const float *xrow = x + i * n, *v = xrow;
        float *yrow = y + i * n;
        float shift, sum;
        if (residual) {
            const float *rrow = residual + i * n;
            shift = xrow[0] + rrow[0];
            sum = er_layer_norm_add_tail(xrow, rrow, yrow, shift, 0, n);
            v = yrow;
        } else {
            shift = xrow[0];
            sum = er_layer_norm_sum_tail(xrow, shift, 0, n);
        }
        float dmean = sum / (float)n;
        float inv = er_layer_norm_inv_std(er_layer_norm_squares_tail(v, shift, dmean, 0, n), n,
                                          epsilon);
        er_layer_norm_output_tail(v, shift, dmean, inv, scale, bias, yrow, 0, n);
    }
    return ER_OK;
}
