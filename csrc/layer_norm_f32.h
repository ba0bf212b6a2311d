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

/* sum of (v[p] - shift) for p in [begin, end). */
static inline float er_layer_norm_sum_tail(const float *v, float shift, size_t begin,
                                           size_t end) {
    float sum = 0.0f;
    for (size_t p = begin; p < end; p++) sum += v[p] - shift;
    return sum;
}

/* y[p] = x[p] + r[p], and the sum of (y[p] - shift): the residual Add fused
 * into the first pass, so v is read back from y (in cache) by the others. */
static inline float er_layer_norm_add_tail(const float *x, const float *r, float *y, float shift,
                                           size_t begin, size_t end) {
    float sum = 0.0f;
    for (size_t p = begin; p < end; p++) {
        float v = x[p] + r[p];
        y[p] = v;
        sum += v - shift;
    }
    return sum;
}

/* sum of c * c, c = (v[p] - shift) - dmean: the centred value, computed in two
 * steps so that the large common part (shift) cancels exactly first. */
static inline float er_layer_norm_squares_tail(const float *v, float shift, float dmean,
                                               size_t begin, size_t end) {
    float sum = 0.0f;
    for (size_t p = begin; p < end; p++) {
        float c = (v[p] - shift) - dmean;
        sum += c * c;
    }
    return sum;
}

/* y[p] = c * inv * scale[p] + bias[p] (bias NULL: skipped). */
static inline void er_layer_norm_output_tail(const float *v, float shift, float dmean, float inv,
                                             const float *scale, const float *bias, float *y,
                                             size_t begin, size_t end) {
    for (size_t p = begin; p < end; p++) {
        float c = (v[p] - shift) - dmean;
        float out = c * inv * scale[p];
        y[p] = bias ? out + bias[p] : out;
    }
}

/* 1 / sqrt(var + epsilon) from the row's sum of squared deviations. */
static inline float er_layer_norm_inv_std(float squares, size_t n, float epsilon) {
    return 1.0f / sqrtf(squares / (float)n + epsilon);
}

#endif
