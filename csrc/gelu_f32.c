/* GELU over a float32 buffer: the portable reference (double-precision libm). */
#include "edgerun.h"
#include "gelu_f32.h"

er_status er_gelu_f32__scalar(const float *x, float *y, size_t count, int approximate_tanh) {
    if (count && (!x || !y)) return ER_ERR_ARGUMENT;
    er_gelu_f32_tail(x, y, 0, count, approximate_tanh);
    return ER_OK;
}
