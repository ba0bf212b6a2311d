/* Depthwise 2-D convolution, NHWC: the portable reference of both types. */
#include "dwconv2d.h"

er_status er_dwconv2d_f32__scalar(const er_conv2d_params *p, const float *x, const float *w,
                                  const float *bias, float *y) {
    er_status st = er_conv2d_check(p);
    if (st != ER_OK) return st;
    if (!x || !w || !y) return ER_ERR_ARGUMENT;
    /* A local copy: an output store may alias *p and force reloads. */
    const er_conv2d_params params = *p;
    p = &params;
    size_t C = p->channels;
    const er_conv_plan plan = er_conv_plan_of(p);
    for (size_t n = 0; n < p->batch; n++) {
        const float *x_image = x + n * p->in_h * p->in_w * C;
        for (size_t oy = 0; oy < p->out_h; oy++)
            for (size_t ox = 0; ox < p->out_w; ox++) {
                er_conv_window win = er_conv_window_at(p, &plan, oy, ox);
                float *y_pixel = y + ((n * p->out_h + oy) * p->out_w + ox) * C;
                er_dwconv2d_f32_pixel(p, &win, x_image, w, bias, y_pixel, 0, C);
            }
    }
    return ER_OK;
}

er_status er_dwconv2d_s8__scalar(const er_conv2d_params *p, const int8_t *x, const int8_t *w,
                                 const er_conv_quant *q) {
    er_status st = er_dwconv2d_s8_check(p, x, w, q);
    if (st != ER_OK) return st;
    /* Local copies: an output store may alias *p and *q and force reloads. */
    const er_conv2d_params params = *p;
    const er_conv_quant quant = *q;
    p = &params;
    q = &quant;
    size_t C = p->channels;
    const er_conv_plan plan = er_conv_plan_of(p);
    for (size_t n = 0; n < p->batch; n++) {
        const int8_t *x_image = x + n * p->in_h * p->in_w * C;
        for (size_t oy = 0; oy < p->out_h; oy++)
            for (size_t ox = 0; ox < p->out_w; ox++) {
                er_conv_window win = er_conv_window_at(p, &plan, oy, ox);
                size_t at = ((n * p->out_h + oy) * p->out_w + ox) * C;
                er_dwconv2d_s8_pixel(p, &win, x_image, w, q, at, 0, C);
            }
    }
    return ER_OK;
}
