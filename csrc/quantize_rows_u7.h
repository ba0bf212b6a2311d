/* Shared by the variants of quantize_rows_u7: the per-row parameters and the
 * scalar step every SIMD body hands its leftovers to, so all variants round
 * identically (contract in edgerun.h). */
#ifndef EDGERUN_QUANTIZE_ROWS_U7_H
#define EDGERUN_QUANTIZE_ROWS_U7_H

#include <math.h>
#include "edgerun.h"
#include "quantize_rows_s8.h"   /* ER_FLOAT_MAX, er_quantize_amax */

/* inv, scale and zero point of a row spanning [lo, hi], lo <= 0 <= hi, lo < hi. */
static inline void er_u7_row_params(float lo, float hi, float *inv, float *scale, int32_t *zero) {
    float range = hi - lo;
    if (range <= ER_FLOAT_MAX) {
        *inv = 127.0f / range;
        *scale = range / 127.0f;
    } else {        /* only when |x| reaches 1.7e38: halve before subtracting */
        float half = 0.5f * hi - 0.5f * lo;
        *inv = 63.5f / half;
        *scale = half / 63.5f;
    }
    float z = nearbyintf(-lo * *inv);
    *zero = z > 127.0f ? 127 : (int32_t)z;
}

/* q[p] for p in [begin, end) of a row with parameters inv, zero. */
static inline void er_quantize_row_u7_tail(const float *row, int8_t *q, size_t begin, size_t end,
                                           float inv, int32_t zero) {
    for (size_t p = begin; p < end; p++) {
        int32_t v = (int32_t)nearbyintf(row[p] * inv) + zero;
        q[p] = (int8_t)(v < 0 ? 0 : (v > 127 ? 127 : v));
    }
}

/* A SIMD body: quantizes a prefix of the row, returns where the tail starts. */
typedef size_t er_u7_body_fn(const float *row, int8_t *q, size_t k, float inv, int32_t zero);

/* One row spanning [lo, hi] (lo <= 0 <= hi): its parameters, then `body` (NULL:
 * none), then the scalar tail.  A row whose range is 0, or so small that
 * 127 / range overflows (below ~3.7e-37: inv = Inf would make x * inv Inf or NaN
 * and the conversion to int undefined), gets q = 0, scale 0, zero 0.
 * Always inlined, so a constant body is a direct call. */
static inline __attribute__((always_inline)) void er_quantize_row_u7(
        const float *row, int8_t *q, size_t k, float lo, float hi, float *scale, int32_t *zero,
        er_u7_body_fn *body) {
    float inv = 0.0f;
    *scale = 0.0f;
    *zero = 0;
    if (er_quantize_amax(hi - lo) == 0.0f) {     /* an Inf hi - lo is kept: 127 / Inf = 0 */
        for (size_t p = 0; p < k; p++) q[p] = 0;
        return;
    }
    er_u7_row_params(lo, hi, &inv, scale, zero);
    size_t p = body ? body(row, q, k, inv, *zero) : 0;
    er_quantize_row_u7_tail(row, q, p, k, inv, *zero);
}

#endif
