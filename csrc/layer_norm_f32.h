/* Shared by the variants of layer_norm_f32: argument checks and the scalar
 * steps every SIMD body hands its leftovers to, so an element past the last
 * full vector is computed by the same expression in every variant. */
#ifndef EDGERUN_LAYER_NORM_F32_H
#define EDGERUN_LAYER_NORM_F32_H

#include <math.h>
#include "edgerun.h"

static inline er_status er_layer_norm_args(const float *x, const float *scale, const float *y,
                                           float epsilon) {
    if (!x || !scale || !y) return ER_ERR_ARGUMENT;
    /* Negated so that NaN fails too; an infinite epsilon would silently zero
     * every output, which is a caller's bug, not a normalisation. */
    if (!(epsilon >= 0.0f && epsilon <= 3.40282347e38f)) return ER_ERR_ARGUMENT;
    return ER_OK;
}

/* Pass 1 over p in [begin, end): d = v - shift is stored to y (v = x, or
 * x + r rounded to float32 first), and the sum of d returned.  Passes 2 and 3
 * read d back from y (in cache), so the shift is subtracted once per element,
 * and in place (y == x or y == r) needs nothing else. */
static inline float er_layer_norm_shift_tail(const float *x, const float *r, float *y,
                                             float shift, size_t begin, size_t end) {
    float sum = 0.0f;
    for (size_t p = begin; p < end; p++) {
        float v = r ? x[p] + r[p] : x[p];
        float d = v - shift;
        y[p] = d;
        sum += d;
    }
    return sum;
}

/* Pass 2: the sum of c * c, c = d - dmean = v - mean(v). */
static inline float er_layer_norm_squares_tail(const float *d, float dmean, size_t begin,
                                               size_t end) {
    float sum = 0.0f;
    for (size_t p = begin; p < end; p++) {
        float c = d[p] - dmean;
        sum += c * c;
    }
    return sum;
}

/* Pass 3: y[p] = c * inv * scale[p] + bias[p] (bias NULL: skipped); y may be d. */
static inline void er_layer_norm_output_tail(const float *d, float dmean, float inv,
                                             const float *scale, const float *bias, float *y,
                                             size_t begin, size_t end) {
    for (size_t p = begin; p < end; p++) {
        float out = (d[p] - dmean) * inv * scale[p];
        y[p] = bias ? out + bias[p] : out;
    }
}

/* 1 / sqrt(var + epsilon) from the row's sum of squared deviations. */
static inline float er_layer_norm_inv_std(float squares, size_t n, float epsilon) {
    return 1.0f / sqrtf(squares / (float)n + epsilon);
}

/* An ISA's three passes over one row of n: pass 1 stores d = v - shift to y and
 * returns its sum, pass 2 returns the sum of (d - dmean)^2, pass 3 writes
 * (d - dmean) * inv * scale + bias over d in y (bias may be NULL). */
typedef float er_layer_norm_shift_fn(const float *x, const float *r, float *y, float shift,
                                     size_t n);
typedef float er_layer_norm_squares_fn(const float *d, float dmean, size_t n);
typedef void er_layer_norm_output_fn(float *y, float dmean, float inv, const float *scale,
                                     const float *bias, size_t n);

/* The whole kernel around an ISA's passes: checks, then row by row the shift
 * (the row's first value, so a mean of 1e4 +- 1 keeps its digits), the mean, the
 * inverse standard deviation and the output.  Always inlined with constant
 * pass functions, so every call is direct. */
static inline __attribute__((always_inline)) er_status er_layer_norm_rows(
        const float *x, const float *residual, const float *scale, const float *bias, float *y,
        size_t rows, size_t n, float epsilon, er_layer_norm_shift_fn *shifted_sum,
        er_layer_norm_squares_fn *squares, er_layer_norm_output_fn *output) {
    er_status status = er_layer_norm_args(x, scale, y, epsilon);
    if (status != ER_OK || n == 0) return status;
    for (size_t i = 0; i < rows; i++) {
        const float *xrow = x + i * n, *rrow = residual ? residual + i * n : NULL;
        float *yrow = y + i * n;
        float shift = rrow ? xrow[0] + rrow[0] : xrow[0];
        float dmean = shifted_sum(xrow, rrow, yrow, shift, n) / (float)n;
        float inv = er_layer_norm_inv_std(squares(yrow, dmean, n), n, epsilon);
        output(yrow, dmean, inv, scale, bias, n);
    }
    return ER_OK;
}

#endif
