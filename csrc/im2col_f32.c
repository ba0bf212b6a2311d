/* im2col_f32 (contract in edgerun.h): the rows of a standard convolution.
 *
 * Why in C: from numpy an im2col is a zero-filled padded copy, a strided view
 * and a second copy, five calls that cost more than the copying itself at the
 * sizes of a small CNN (~28k instructions per conv of a 1-D keyword-spotting
 * net on a Cortex-A76, whose rows are 49 x 120 floats).  Here the window rows
 * go straight from x to their place, the padding is written as zeros. */
#include <string.h>

#include "conv2d_geometry.h"
#include "edgerun.h"

/* The kw taps of one window row: taps [kx0, kx1) from x (at tap kx0), zero
 * around them.  With dilation_w == 1 the taps inside are contiguous in x. */
static void window_row(const er_conv2d_params *p, const float *x, size_t kx0, size_t kx1,
                       float *out) {
    const size_t c = p->channels;
    /* (no zero-length calls: at the 3 channels of an image stem a window row is 36
     * bytes, and the calls around it cost more than its copy) */
    if (kx0 > 0) memset(out, 0, kx0 * c * sizeof(float));
    if (p->dilation_w == 1) {
        memcpy(out + kx0 * c, x, (kx1 - kx0) * c * sizeof(float));
    } else {
        for (size_t kx = kx0; kx < kx1; kx++)
            memcpy(out + kx * c, x + (kx - kx0) * p->dilation_w * c, c * sizeof(float));
    }
    if (kx1 < p->kernel_w) memset(out + kx1 * c, 0, (p->kernel_w - kx1) * c * sizeof(float));
}

er_status er_im2col_f32__scalar(const er_conv2d_params *p, const float *x, float *rows) {
    if (!x || !rows) return ER_ERR_ARGUMENT;
    er_status status = er_conv2d_check(p);
    if (status != ER_OK) return status;
    if (p->activation != ER_ACT_NONE) return ER_ERR_ARGUMENT;
    size_t taps, row_len, positions, total;
    if (__builtin_mul_overflow(p->kernel_h, p->kernel_w, &taps) ||
        __builtin_mul_overflow(taps, p->channels, &row_len) ||
        __builtin_mul_overflow(p->out_h, p->out_w, &positions) ||
        __builtin_mul_overflow(positions, p->batch, &positions) ||
        __builtin_mul_overflow(positions, row_len, &total) ||
        __builtin_mul_overflow(total, sizeof(float), &total))
        return ER_ERR_ARGUMENT;
    const size_t image = p->in_h * p->in_w * p->channels, window_row_len = p->kernel_w * p->channels;
    const er_conv_plan plan = er_conv_plan_of(p);
    float *out = rows;
    for (size_t n = 0; n < p->batch; n++) {
        const float *xn = x + n * image;
        for (size_t oy = 0; oy < p->out_h; oy++)
            for (size_t ox = 0; ox < p->out_w; ox++, out += row_len) {
                const er_conv_window win = er_conv_window_at(p, &plan, oy, ox);
                for (size_t ky = 0; ky < p->kernel_h; ky++) {
                    float *dst = out + ky * window_row_len;
                    if (ky < win.ky0 || ky >= win.ky1 || win.kx0 == win.kx1)
                        memset(dst, 0, window_row_len * sizeof(float));
                    else
                        window_row(p, xn + er_conv_x_offset(p, &win, ky, win.kx0), win.kx0,
                                   win.kx1, dst);
                }
            }
    }
    return ER_OK;
}
