/* Layer normalisation over the rows of a float32 matrix: the portable
 * reference, in the order of edgerun.h.  The two row sums keep 8 partial sums
 * (lane t takes elements p = t mod 8) added together at the end, as a SIMD
 * register would: a single running sum of a 1000-wide row loses ~1e-6 of the
 * output scale, 8 lanes a few 1e-7, the error of the SIMD variants and numpy's
 * pairwise sum.  Independent lanes also let the compiler keep 8 adds in
 * flight (or vectorise them: lane order is fixed, so no reassociation). */
#include "edgerun.h"
#include "layer_norm_f32.h"

enum { LANES = 8 };

static float lanes_total(const float *lane) {
    float total = 0.0f;
    for (int t = 0; t < LANES; t++) total += lane[t];
    return total;
}

/* Pass 1: d = v - shift stored to y; returns the sum of d. */
static float shifted_sum(const float *x, const float *r, float *y, float shift, size_t n) {
    float lane[LANES] = {0};
    size_t p = 0;
    if (r) {
        for (; p + LANES <= n; p += LANES)
            for (int t = 0; t < LANES; t++) {
                float d = (x[p + t] + r[p + t]) - shift;
                y[p + t] = d;
                lane[t] += d;
            }
    } else {
        for (; p + LANES <= n; p += LANES)
            for (int t = 0; t < LANES; t++) {
                float d = x[p + t] - shift;
                y[p + t] = d;
                lane[t] += d;
            }
    }
    return lanes_total(lane) + er_layer_norm_shift_tail(x, r, y, shift, p, n);
}

/* Pass 2: the sum of squared deviations c = d - dmean. */
static float squares(const float *d, float dmean, size_t n) {
    float lane[LANES] = {0};
    size_t p = 0;
    for (; p + LANES <= n; p += LANES)
        for (int t = 0; t < LANES; t++) {
            float c = d[p + t] - dmean;
            lane[t] += c * c;
        }
    return lanes_total(lane) + er_layer_norm_squares_tail(d, dmean, p, n);
}

/* Pass 3, over d in y. */
static void output(float *y, float dmean, float inv, const float *scale, const float *bias,
                   size_t n) {
    er_layer_norm_output_tail(y, dmean, inv, scale, bias, y, 0, n);
}

er_status er_layer_norm_f32__scalar(const float *x, const float *residual, const float *scale,
                                    const float *bias, float *y, size_t rows, size_t n,
                                    float epsilon) {
    return er_layer_norm_rows(x, residual, scale, bias, y, rows, n, epsilon, shifted_sum, squares,
                              output);
}
