/* The geometry of a convolution over NHWC activations (edgerun.h): the check of
 * er_conv2d_params, the taps of an output position that fall inside the input,
 * and the outputs whose taps all do.  Shared by dwconv2d and im2col. */
#ifndef EDGERUN_CONV2D_GEOMETRY_H
#define EDGERUN_CONV2D_GEOMETRY_H

#include <stddef.h>
#include <stdint.h>

#include "edgerun.h"

/* out == (in + pad0 + pad1 - dilation*(kernel-1) - 1) / stride + 1, without overflow. */
static inline int er_conv_size_ok(size_t in, size_t kernel, size_t stride, size_t dilation,
                                  size_t pad0, size_t pad1, size_t out) {
    if (in == 0 || kernel == 0 || stride == 0 || dilation == 0) return 0;
    if (kernel - 1 > (SIZE_MAX / 4) / dilation) return 0;
    size_t span = dilation * (kernel - 1) + 1;
    if (pad0 > SIZE_MAX / 4 || pad1 > SIZE_MAX / 4 || in > SIZE_MAX / 4) return 0;
    size_t padded = in + pad0 + pad1;
    if (padded < span) return 0;
    return out == (padded - span) / stride + 1;
}

static inline er_status er_conv2d_check(const er_conv2d_params *p) {
    if (!p || p->batch == 0 || p->channels == 0) return ER_ERR_ARGUMENT;
    if (p->activation < ER_ACT_NONE || p->activation > ER_ACT_RELU6) return ER_ERR_ARGUMENT;
    if (!er_conv_size_ok(p->in_h, p->kernel_h, p->stride_h, p->dilation_h, p->pad_top,
                         p->pad_bottom, p->out_h) ||
        !er_conv_size_ok(p->in_w, p->kernel_w, p->stride_w, p->dilation_w, p->pad_left,
                         p->pad_right, p->out_w))
        return ER_ERR_ARGUMENT;
    /* Offsets below are computed as ptrdiff_t. */
    if (p->in_h > PTRDIFF_MAX / 4 || p->in_w > PTRDIFF_MAX / 4 || p->out_h > PTRDIFF_MAX / 4 ||
        p->out_w > PTRDIFF_MAX / 4)
        return ER_ERR_ARGUMENT;
    return ER_OK;
}

/* The taps t in [*t0, *t1) of output coordinate o whose input coordinate
 * o*stride - pad + t*dilation lies in [0, n). */
static inline void er_conv_taps(size_t o, size_t stride, size_t dilation, size_t pad, size_t n,
                                size_t kernel, size_t *t0, size_t *t1) {
    ptrdiff_t base = (ptrdiff_t)(o * stride) - (ptrdiff_t)pad, d = (ptrdiff_t)dilation;
    ptrdiff_t lo = base < 0 ? (-base + d - 1) / d : 0;
    ptrdiff_t hi = base > (ptrdiff_t)n - 1 ? 0 : ((ptrdiff_t)n - 1 - base) / d + 1;
    if (hi > (ptrdiff_t)kernel) hi = (ptrdiff_t)kernel;
    if (lo > hi) lo = hi;
    *t0 = (size_t)lo;
    *t1 = (size_t)hi;
}

/* The outputs [lo, hi) of one axis whose taps all fall inside the input:
 * computed once per call, so interior pixels skip er_conv_taps (and its
 * divisions) entirely. */
typedef struct {
    size_t oy_lo, oy_hi, ox_lo, ox_hi;
} er_conv_plan;

static inline void er_conv_interior(size_t out, size_t stride, size_t dilation, size_t pad,
                                    size_t n, size_t kernel, size_t *lo, size_t *hi) {
    size_t first = (pad + stride - 1) / stride; /* o * stride >= pad */
    size_t reach = (kernel - 1) * dilation;     /* last tap offset */
    size_t last_end = 0;                        /* o*stride - pad + reach <= n - 1 */
    if (n - 1 + pad >= reach) last_end = (n - 1 + pad - reach) / stride + 1;
    if (last_end > out) last_end = out;
    if (first > last_end) first = last_end;
    *lo = first;
    *hi = last_end;
}

static inline er_conv_plan er_conv_plan_of(const er_conv2d_params *p) {
    er_conv_plan plan;
    er_conv_interior(p->out_h, p->stride_h, p->dilation_h, p->pad_top, p->in_h, p->kernel_h,
                     &plan.oy_lo, &plan.oy_hi);
    er_conv_interior(p->out_w, p->stride_w, p->dilation_w, p->pad_left, p->in_w, p->kernel_w,
                     &plan.ox_lo, &plan.ox_hi);
    return plan;
}

/* One output pixel's window: its valid taps and where tap (0, 0) would read. */
typedef struct {
    size_t ky0, ky1, kx0, kx1;
    ptrdiff_t iy, ix;  /* input coordinates of tap (0, 0), possibly negative */
} er_conv_window;

static inline er_conv_window er_conv_window_at(const er_conv2d_params *p,
                                               const er_conv_plan *plan, size_t oy, size_t ox) {
    er_conv_window win;
    if (oy >= plan->oy_lo && oy < plan->oy_hi)
        win.ky0 = 0, win.ky1 = p->kernel_h;
    else
        er_conv_taps(oy, p->stride_h, p->dilation_h, p->pad_top, p->in_h, p->kernel_h,
                     &win.ky0, &win.ky1);
    if (ox >= plan->ox_lo && ox < plan->ox_hi)
        win.kx0 = 0, win.kx1 = p->kernel_w;
    else
        er_conv_taps(ox, p->stride_w, p->dilation_w, p->pad_left, p->in_w, p->kernel_w,
                     &win.kx0, &win.kx1);
    win.iy = (ptrdiff_t)(oy * p->stride_h) - (ptrdiff_t)p->pad_top;
    win.ix = (ptrdiff_t)(ox * p->stride_w) - (ptrdiff_t)p->pad_left;
    return win;
}

/* Offset, in elements, of channel 0 of input pixel (tap ky, kx) of the window
 * within one image. */
static inline size_t er_conv_x_offset(const er_conv2d_params *p, const er_conv_window *win,
                                      size_t ky, size_t kx) {
    size_t iy = (size_t)(win->iy + (ptrdiff_t)(ky * p->dilation_h));
    size_t ix = (size_t)(win->ix + (ptrdiff_t)(kx * p->dilation_w));
    return (iy * p->in_w + ix) * p->channels;
}

#endif
