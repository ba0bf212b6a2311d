/* The one epilogue every kernel uses (contract in edgerun.h).
 *
 * It is scalar on purpose: it costs O(m*n) against the O(m*n*k) of the dot
 * products, and one shared definition makes every SIMD variant produce the same
 * bits as the portable C and as numpy (edgerun/reference.py).  Rounding uses
 * nearbyintf under the default round-to-nearest-even mode, like numpy.rint. */
#ifndef EDGERUN_EPILOGUE_H
#define EDGERUN_EPILOGUE_H

#include <math.h>
#include "edgerun.h"

static inline int8_t er_requantize(float v, float inv_scale) {
    float r = v * inv_scale;
    /* Comparisons are false for NaN, so NaN becomes 0 instead of an undefined
     * float-to-int conversion. */
    if (!(r > -127.0f)) r = (r != r) ? 0.0f : -127.0f;
    if (r > 127.0f) r = 127.0f;
    return (int8_t)nearbyintf(r);
}

static inline void er_store(const er_epilogue *ep, size_t i, size_t j, float v) {
    if (ep->row_scale) v *= ep->row_scale[i];
    if (ep->col_scale) v *= ep->col_scale[j];
    if (ep->bias) v += ep->bias[j];
    if (ep->relu && !(v > 0.0f)) v = (v != v) ? v : 0.0f;
    if (ep->y_f32)
        ep->y_f32[i * ep->ldy + j] = v;
    else
        ep->y_s8[i * ep->ldy + j] = er_requantize(v, ep->out_inv_scale);
}

static inline void er_store_s32(const er_epilogue *ep, size_t i, size_t j, int32_t acc) {
    er_store(ep, i, j, (float)acc);
}

static inline int er_epilogue_ok(const er_epilogue *ep, size_t n) {
    return ep && ((ep->y_f32 != NULL) != (ep->y_s8 != NULL)) && ep->ldy >= n;
}

#endif
