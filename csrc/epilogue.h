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

/* acc less the zero-point term of an asymmetric x (edgerun.h), in uint32: the
 * product may wrap, the difference is always an int32 (and GCC converts modulo). */
static inline int32_t er_zero_shift(const er_epilogue *ep, size_t i, size_t j, int32_t acc) {
    if (!ep->row_zero) return acc;
    return (int32_t)((uint32_t)acc - (uint32_t)ep->row_zero[i] * (uint32_t)ep->col_sum[j]);
}

static inline void er_store_s32(const er_epilogue *ep, size_t i, size_t j, int32_t acc) {
    er_store(ep, i, j, (float)er_zero_shift(ep, i, j, acc));
}

/* Outputs j .. j+3 of row i: er_store's float operations in its order (so the
 * same bits), with its branches taken once per four outputs instead of once per
 * output.  When K is small (a 3x3 conv over few channels) the per-output
 * epilogue, not the dot products, is what a GEMM spends its time on; the lane
 * loops are also what compilers turn into one SIMD step. */
static inline void er_store4_s32(const er_epilogue *ep, size_t i, size_t j, const int32_t acc[4]) {
    if (!ep->y_f32) {
        for (int c = 0; c < 4; c++) er_store_s32(ep, i, j + (size_t)c, acc[c]);
        return;
    }
    int32_t shifted[4];
    if (ep->row_zero) {     /* tested once, so the conversions below stay one loop */
        for (int c = 0; c < 4; c++) shifted[c] = er_zero_shift(ep, i, j + (size_t)c, acc[c]);
        acc = shifted;
    }
    float v[4];
    for (int c = 0; c < 4; c++) v[c] = (float)acc[c];
    if (ep->row_scale) {
        const float r = ep->row_scale[i];
        for (int c = 0; c < 4; c++) v[c] *= r;
    }
    if (ep->col_scale)
        for (int c = 0; c < 4; c++) v[c] *= ep->col_scale[j + (size_t)c];
    if (ep->bias)
        for (int c = 0; c < 4; c++) v[c] += ep->bias[j + (size_t)c];
    if (ep->relu)
        for (int c = 0; c < 4; c++) v[c] = (v[c] > 0.0f || v[c] != v[c]) ? v[c] : 0.0f;
    float *y = ep->y_f32 + i * ep->ldy + j;
    for (int c = 0; c < 4; c++) y[c] = v[c];
}

/* For kernels that take a symmetric x only: zero points are refused. */
static inline int er_epilogue_ok(const er_epilogue *ep, size_t n) {
    return ep && ((ep->y_f32 != NULL) != (ep->y_s8 != NULL)) && ep->ldy >= n && !ep->row_zero &&
           !ep->col_sum;
}

/* For gemm_s8 and codebook_s8, which also take an asymmetric x: row_zero and
 * col_sum together. */
static inline int er_epilogue_zero_ok(const er_epilogue *ep, size_t n) {
    if (!ep || (ep->row_zero == NULL) != (ep->col_sum == NULL)) return 0;
    er_epilogue symmetric = *ep;
    symmetric.row_zero = NULL, symmetric.col_sum = NULL;
    return er_epilogue_ok(&symmetric, n);
}

#endif
