/* Shared by the variants of dwconv2d_f32 / dwconv2d_s8 (the geometry is in
 * conv2d_geometry.h): the scalar per-pixel loops and per-element epilogues that
 * every SIMD body hands its channel tail to, so all variants produce the same
 * bits (contract in edgerun.h).
 *
 * Why skipping padded taps is exact: the float sum starts at +0.0f, and under
 * round-to-nearest x + y == +0 whenever x == -y, so the sum is never -0; adding
 * a padded product (+-0 for finite weights) to it changes no bit.  One code
 * path therefore serves the interior and the borders: a pixel near the border
 * simply runs fewer taps. */
#ifndef EDGERUN_DWCONV2D_H
#define EDGERUN_DWCONV2D_H

#include <stdint.h>

#include "conv2d_geometry.h"
#include "edgerun.h"
#include "epilogue.h"

/* The activation of edgerun.h; NaN passes through unchanged. */
static inline float er_activate(float v, int activation) {
    if (activation != ER_ACT_NONE && !(v > 0.0f)) v = (v != v) ? v : 0.0f;
    if (activation == ER_ACT_RELU6 && v > 6.0f) v = 6.0f;
    return v;
}

/* Channels [c0, c1) of one float output pixel, y pointing at its channel 0.
 * Taps outside, channels inside: y itself holds the running sums (each
 * channel still adds its taps in (ky, kx) order) and x, w are read
 * contiguously. */
static inline void er_dwconv2d_f32_pixel(const er_conv2d_params *p, const er_conv_window *win,
                                         const float *x_image, const float *w,
                                         const float *bias, float *y, size_t c0, size_t c1) {
    size_t C = p->channels;
    for (size_t c = c0; c < c1; c++) y[c] = 0.0f;
    for (size_t ky = win->ky0; ky < win->ky1; ky++)
        for (size_t kx = win->kx0; kx < win->kx1; kx++) {
            const float *xp = x_image + er_conv_x_offset(p, win, ky, kx);
            const float *wp = w + (ky * p->kernel_w + kx) * C;
            for (size_t c = c0; c < c1; c++) {
                float prod = xp[c] * wp[c];
                y[c] = y[c] + prod;
            }
        }
    for (size_t c = c0; c < c1; c++) {
        float v = y[c];
        if (bias) v = v + bias[c];
        y[c] = er_activate(v, p->activation);
    }
}

/* The int8 epilogue of one output: element `at` of y, channel c. */
static inline void er_dwconv2d_s8_store(const er_conv_quant *q, int activation, size_t at,
                                        size_t c, int32_t acc) {
    float v = (float)acc;
    v *= q->x_scale;
    v *= q->w_scale[c];
    if (q->bias) v += q->bias[c];
    v = er_activate(v, activation);
    if (q->y_f32)
        q->y_f32[at] = v;
    else
        q->y_s8[at] = er_requantize(v, q->out_inv_scale);
}

/* Channels [c0, c1) of one int8 output pixel; `at` is the element index of
 * its channel 0.  Sums of up to 64 channels at a time live on the stack. */
static inline void er_dwconv2d_s8_pixel(const er_conv2d_params *p, const er_conv_window *win,
                                        const int8_t *x_image, const int8_t *w,
                                        const er_conv_quant *q, size_t at, size_t c0,
                                        size_t c1) {
    size_t C = p->channels;
    int32_t acc[64];
    for (size_t b0 = c0; b0 < c1; b0 += 64) {
        size_t b1 = c1 - b0 < 64 ? c1 : b0 + 64;
        for (size_t c = b0; c < b1; c++) acc[c - b0] = 0;
        for (size_t ky = win->ky0; ky < win->ky1; ky++)
            for (size_t kx = win->kx0; kx < win->kx1; kx++) {
                const int8_t *xp = x_image + er_conv_x_offset(p, win, ky, kx);
                const int8_t *wp = w + (ky * p->kernel_w + kx) * C;
                for (size_t c = b0; c < b1; c++) acc[c - b0] += (int32_t)xp[c] * (int32_t)wp[c];
            }
        for (size_t c = b0; c < b1; c++)
            er_dwconv2d_s8_store(q, p->activation, at + c, c, acc[c - b0]);
    }
}

static inline er_status er_dwconv2d_s8_check(const er_conv2d_params *p, const int8_t *x,
                                             const int8_t *w, const er_conv_quant *q) {
    er_status st = er_conv2d_check(p);
    if (st != ER_OK) return st;
    if (!x || !w || !q || !q->w_scale || ((q->y_f32 != NULL) == (q->y_s8 != NULL)))
        return ER_ERR_ARGUMENT;
    if (p->kernel_h > ER_MAX_K_S8 / p->kernel_w) return ER_ERR_K_TOO_LARGE;
    return ER_OK;
}


/* ---- The entry-point skeleton of every dwconv2d variant -------------------
 * A variant writes only its channel-block tiles and hands them to the drivers
 * below, which own the argument checks, the local copies of *p and *q (an
 * output store may alias them under -fno-strict-aliasing, and the reloads after
 * every store cost ~20% of the int8 kernel), the walk over images, rows and
 * pixels, the pairing of neighbouring pixels, and the scalar channel tail.
 * Drivers are always_inline and get the tiles as constant function pointers
 * from a static const table, so once inlined every call is direct and the
 * always_inline tiles still inline into the entry point. */
#define ER_INLINE static inline __attribute__((always_inline))

static inline int er_conv_same_taps(const er_conv_window *a, const er_conv_window *b) {
    return a->ky0 == b->ky0 && a->ky1 == b->ky1 && a->kx0 == b->kx0 && a->kx1 == b->kx1;
}

/* A run of 1 or 2 output pixels (npix) that share the window win, the second
 * stride_w to the right; x_at / y_at: element offsets of their image in x and
 * of the first pixel's channel 0 in y. */
typedef void er_dwconv2d_group_fn(const void *job, const er_conv_window *win, size_t x_at,
                                  size_t y_at, const int npix);

/* Every output pixel of every image, left to right.  With pairs, a pixel and
 * its right neighbour go together when their windows have the same taps (not
 * at a border), so a tile can share each weight load between the two. */
ER_INLINE void er_dwconv2d_walk(const er_conv2d_params *p, const int pairs,
                                er_dwconv2d_group_fn *group, const void *job) {
    const size_t C = p->channels;
    const er_conv_plan plan = er_conv_plan_of(p);
    for (size_t n = 0; n < p->batch; n++) {
        const size_t x_at = n * p->in_h * p->in_w * C;
        for (size_t oy = 0; oy < p->out_h; oy++) {
            const size_t row = (n * p->out_h + oy) * p->out_w * C;
            size_t ox = 0;
            while (ox < p->out_w) {
                er_conv_window win = er_conv_window_at(p, &plan, oy, ox);
                if (pairs && ox + 1 < p->out_w) {
                    er_conv_window second = er_conv_window_at(p, &plan, oy, ox + 1);
                    if (er_conv_same_taps(&win, &second)) {
                        group(job, &win, x_at, row + ox * C, 2);
                        ox += 2;
                        continue;
                    }
                }
                group(job, &win, x_at, row + ox * C, 1);
                ox += 1;
            }
        }
    }
}

/* The window of the second pixel of a pair. */
static inline er_conv_window er_conv_window_right(const er_conv2d_params *p,
                                                  const er_conv_window *win) {
    er_conv_window second = *win;
    second.ix += (ptrdiff_t)p->stride_w;
    return second;
}

/* ---- float32: a tile does npix pixels by nv vectors of `lanes` channels from
 * c (nv is 4, then 1 for what is left); NULL for none (the scalar variant). */
typedef void er_dwconv2d_f32_block(const er_conv2d_params *p, const er_conv_window *win,
                                   const float *x_image, const float *w, const float *bias,
                                   float *y, size_t c, const int npix, const int nv);
typedef struct {
    size_t lanes;
    er_dwconv2d_f32_block *block;
    int pairs; /* whether block takes npix = 2 */
} er_dwconv2d_f32_tiles;

typedef struct {
    const er_conv2d_params *p;
    const float *x, *w, *bias;
    float *y;
    const er_dwconv2d_f32_tiles *tiles;
} er_dwconv2d_f32_job;

ER_INLINE void er_dwconv2d_f32_group(const void *job_, const er_conv_window *win, size_t x_at,
                                     size_t y_at, const int npix) {
    const er_dwconv2d_f32_job *job = (const er_dwconv2d_f32_job *)job_;
    const er_conv2d_params *p = job->p;
    const er_dwconv2d_f32_tiles *t = job->tiles;
    const size_t C = p->channels;
    const float *x_image = job->x + x_at;
    float *y = job->y + y_at;
    size_t c = 0;
    if (t->block) {
        for (; c + 4 * t->lanes <= C; c += 4 * t->lanes)
            t->block(p, win, x_image, job->w, job->bias, y, c, npix, 4);
        for (; c + t->lanes <= C; c += t->lanes)
            t->block(p, win, x_image, job->w, job->bias, y, c, npix, 1);
    }
    if (c < C) {
        er_dwconv2d_f32_pixel(p, win, x_image, job->w, job->bias, y, c, C);
        if (npix == 2) {
            er_conv_window second = er_conv_window_right(p, win);
            er_dwconv2d_f32_pixel(p, &second, x_image, job->w, job->bias, y + C, c, C);
        }
    }
}

ER_INLINE er_status er_dwconv2d_f32(const er_conv2d_params *p, const float *x, const float *w,
                                    const float *bias, float *y,
                                    const er_dwconv2d_f32_tiles *tiles) {
    er_status st = er_conv2d_check(p);
    if (st != ER_OK) return st;
    if (!x || !w || !y) return ER_ERR_ARGUMENT;
    const er_conv2d_params params = *p;
    const er_dwconv2d_f32_job job = {&params, x, w, bias, y, tiles};
    er_dwconv2d_walk(&params, tiles->pairs, er_dwconv2d_f32_group, &job);
    return ER_OK;
}

/* ---- int8: a tile does 16 channels from c of npix pixels, epilogue included
 * (at: element index of the first pixel's channel 0); NULL for none. */
typedef void er_dwconv2d_s8_block(const er_conv2d_params *p, const er_conv_window *win,
                                  const int8_t *x_image, const int8_t *w,
                                  const er_conv_quant *q, size_t at, size_t c, const int npix);
typedef struct {
    er_dwconv2d_s8_block *block16;
    int pairs; /* whether block16 takes npix = 2 */
} er_dwconv2d_s8_tiles;

typedef struct {
    const er_conv2d_params *p;
    const int8_t *x, *w;
    const er_conv_quant *q;
    const er_dwconv2d_s8_tiles *tiles;
} er_dwconv2d_s8_job;

ER_INLINE void er_dwconv2d_s8_group(const void *job_, const er_conv_window *win, size_t x_at,
                                    size_t at, const int npix) {
    const er_dwconv2d_s8_job *job = (const er_dwconv2d_s8_job *)job_;
    const er_conv2d_params *p = job->p;
    const size_t C = p->channels;
    const int8_t *x_image = job->x + x_at;
    size_t c = 0;
    if (job->tiles->block16)
        for (; c + 16 <= C; c += 16)
            job->tiles->block16(p, win, x_image, job->w, job->q, at, c, npix);
    if (c < C) {
        er_dwconv2d_s8_pixel(p, win, x_image, job->w, job->q, at, c, C);
        if (npix == 2) {
            er_conv_window second = er_conv_window_right(p, win);
            er_dwconv2d_s8_pixel(p, &second, x_image, job->w, job->q, at + C, c, C);
        }
    }
}

ER_INLINE er_status er_dwconv2d_s8(const er_conv2d_params *p, const int8_t *x, const int8_t *w,
                                   const er_conv_quant *q, const er_dwconv2d_s8_tiles *tiles) {
    er_status st = er_dwconv2d_s8_check(p, x, w, q);
    if (st != ER_OK) return st;
    const er_conv2d_params params = *p;
    const er_conv_quant quant = *q;
    const er_dwconv2d_s8_job job = {&params, x, w, &quant, tiles};
    er_dwconv2d_walk(&params, tiles->pairs, er_dwconv2d_s8_group, &job);
    return ER_OK;
}

#endif
