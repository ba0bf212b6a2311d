/* Shared by the variants of softmax_f32: the scalar steps of the three passes
 * over a row, which the portable variant runs whole and every SIMD body runs on
 * its leftovers (the elements past the last full vector). */
#ifndef EDGERUN_SOFTMAX_F32_H
#define EDGERUN_SOFTMAX_F32_H

#include <math.h>
#include <stddef.h>

/* max(m, x[begin..end)), NaN as soon as one element is NaN (np.max's rule). */
static inline float er_softmax_max_tail(const float *x, size_t begin, size_t end, float m) {
    for (size_t i = begin; i < end; i++) {
        float v = x[i];
        m = (v > m || v != v) ? v : m; /* once m is NaN, neither test replaces it */
    }
    return m;
}

/* y[i] = exp(x[i] - max) for i in [begin, end); returns their sum, added in
 * double: the scalar variant sums whole rows, and a float sum of 4096 terms one
 * by one drifts 1e-5 from numpy's pairwise sum. */
static inline double er_softmax_exp_tail(const float *x, float *y, size_t begin, size_t end,
                                         float max) {
    double sum = 0.0;
    for (size_t i = begin; i < end; i++) {
        float e = expf(x[i] - max);
        y[i] = e;
        sum += e;
    }
    return sum;
}

static inline void er_softmax_scale_tail(float *y, size_t begin, size_t end, float inv) {
    for (size_t i = begin; i < end; i++) y[i] *= inv;
}

/* numpy's answer for a row whose max is NaN (a NaN in the row), +inf (inf - inf
 * is NaN, and it spreads through the sum) or -inf (all -inf: 0 / 0): all NaN.
 * Returns 1 if the row was such a row and is now filled. */
static inline int er_softmax_nan_row(float *y, size_t n, float max) {
    if (fabsf(max) <= 3.40282347e38f) return 0;
    for (size_t i = 0; i < n; i++) y[i] = NAN;
    return 1;
}

#endif
