/* Shared by the variants of gemm_s8: argument checks and the scalar pieces that
 * every SIMD body hands its leftovers to (the K tail past the last full SIMD
 * step), so all variants add the same int32 products and store through the one
 * epilogue (epilogue.h).
 *
 * Why any summation order gives the same bits: every partial sum of at most
 * ER_MAX_K_S8 products of two values in [-127, 127] fits in int32, so integer
 * addition never wraps and the order of the additions does not matter. */
#ifndef EDGERUN_GEMM_S8_H
#define EDGERUN_GEMM_S8_H

#include "edgerun.h"
#include "epilogue.h"

/* ER_OK to go on; ER_ERR_ARGUMENT / ER_ERR_K_TOO_LARGE otherwise. */
static inline er_status er_gemm_s8_check(const int8_t *x, const int8_t *w, size_t n,
                                         size_t k, const er_epilogue *ep) {
    if (!x || !w || !er_epilogue_ok(ep, n)) return ER_ERR_ARGUMENT;
    if (k > ER_MAX_K_S8) return ER_ERR_K_TOO_LARGE;
    return ER_OK;
}

/* sum_{p in [begin, end)} x[p] * w[p]: the K tail of one output. */
static inline int32_t er_gemm_s8_dot(const int8_t *x, const int8_t *w, size_t begin,
                                     size_t end) {
    int32_t acc = 0;
    for (size_t p = begin; p < end; p++) acc += (int32_t)x[p] * (int32_t)w[p];
    return acc;
}

#endif
