/* Shared by the variants of quantize_rows_s8: the scalar step every SIMD body
 * hands its leftovers to, so all variants round identically. */
#ifndef EDGERUN_QUANTIZE_ROWS_S8_H
#define EDGERUN_QUANTIZE_ROWS_S8_H

#include <math.h>
#include "edgerun.h"

#define ER_FLOAT_MAX 3.40282347e38f

/* The amax a row is quantized with: 0 (all q = 0, scale 0) where 127 / amax
 * overflows -- amax == 0, or below 127 / FLT_MAX ~ 3.7e-37, where inv = Inf would
 * make x * inv Inf or NaN (0 * Inf) and the conversion to int undefined. */
static inline float er_quantize_amax(float amax) {
    return 127.0f / amax <= ER_FLOAT_MAX ? amax : 0.0f;
}

/* q[p] for p in [begin, end) of a row whose max |x| is amax (finite, and 0 or
 * large enough for 127 / amax: er_quantize_amax). */
static inline void er_quantize_row_tail(const float *row, int8_t *q, size_t begin,
                                        size_t end, float amax) {
    if (amax == 0.0f) {
        for (size_t p = begin; p < end; p++) q[p] = 0;
        return;
    }
    float inv = 127.0f / amax;
    for (size_t p = begin; p < end; p++) {
        float r = row[p] * inv;
        /* |r| <= 127 up to rounding of inv; the clamp keeps -128 out. */
        r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
        q[p] = (int8_t)nearbyintf(r);
    }
}

#endif
