/* Depthwise 2-D convolution, NHWC: the portable reference of both types. */
#include "dwconv2d.h"

/* No tiles: every pixel is the scalar per-pixel loop of dwconv2d.h. */
static const er_dwconv2d_f32_tiles f32_tiles = {0, NULL, 0};
static const er_dwconv2d_s8_tiles s8_tiles = {NULL, 0};

er_status er_dwconv2d_f32__scalar(const er_conv2d_params *p, const float *x, const float *w,
                                  const float *bias, float *y) {
    return er_dwconv2d_f32(p, x, w, bias, y, &f32_tiles);
}

er_status er_dwconv2d_s8__scalar(const er_conv2d_params *p, const int8_t *x, const int8_t *w,
                                 const er_conv_quant *q) {
    return er_dwconv2d_s8(p, x, w, q, &s8_tiles);
}
