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

#include <string.h>

#include "edgerun.h"
#include "epilogue.h"

/* ER_OK to go on; ER_ERR_ARGUMENT / ER_ERR_K_TOO_LARGE otherwise. */
static inline er_status er_gemm_s8_check(const int8_t *x, const int8_t *w, size_t n,
                                         size_t k, const er_epilogue *ep) {
    if (!x || !w || !er_epilogue_zero_ok(ep, n)) return ER_ERR_ARGUMENT;
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

/* ---- packed column panels ---------------------------------------------------
 * At small K (1x1 convs over few channels) a row-by-row
 * dot product does one or two SIMD steps per output and then pays for a
 * horizontal sum and a scalar epilogue: the MobileNetV2 pointwise convs ran at
 * 5-6 GMAC/s there against 40+ at K = 1024.  The panel kernels instead pack
 * ER_GEMM_S8_PANEL columns of w so that each group of 4 k holds 4 bytes of
 * every column in turn; 4 bytes of x broadcast against a vector of that give
 * one column's partial sum per int32 lane, so the sums end up in column order
 * and the epilogue runs a vector of outputs at a time. */
#define ER_GEMM_S8_PANEL 16
#define ER_GEMM_S8_PANEL_MAX_K 1024
#define ER_GEMM_S8_PANEL_BYTES_MAX (ER_GEMM_S8_PANEL_MAX_K / 4 * ER_GEMM_S8_PANEL * 4)

/* Whether an m x k problem runs on panels.  Packing costs n*k byte moves once,
 * the products m*n*k: with few rows it does not pay back, the more so the longer
 * K.  Measured on Zen 3 (AVX2), panels against row tiles: 1024x32x96 141 vs
 * 358 us, 16x96x480 24 vs 30, 128x256x1024 709 vs 754, but 8x256x256 20 vs 16
 * and 4x256x1024 48 vs 29 (m x k x n).  With x >= 0 (the runtime's
 * quantize_rows_u7) panels also win at long K: m=128 k=1024 n=256 397 vs 509 us,
 * m=256 785 vs 928; from signed x they tie (594 vs 583).  qemu counts at m=128
 * n=256 k=1024: dotprod 4.80M -> 4.28M, i8mm 4.42M -> 4.28M.
 * With SDOT a panel step does 16 products per instruction where a 4x4 row tile
 * spends as much again on its per-output reductions, so panels pay back sooner:
 * counts at m x n x k 12x128x288 99k -> 62k, 8x256x256 126k -> 84k, 32x256x1024
 * 1.18M -> 0.84M, and only at K/m > 64 do row tiles win (4x256x1024 150k
 * against 182k).  `k_per_row`: the K/m up to which an ISA's panels win. */
#define ER_GEMM_S8_PANEL_K_PER_ROW 8
#define ER_GEMM_S8_PANEL_K_PER_ROW_SDOT 64
static inline int er_gemm_s8_use_panels(size_t m, size_t k, size_t k_per_row) {
    return k <= ER_GEMM_S8_PANEL_MAX_K && m >= 4 && k_per_row * m >= k;
}

/* Four int32 lanes (GCC vector extension): plain SSE2 or NEON, whichever the
 * including file targets, for the 4x4 transposes of the panel packing. */
typedef int32_t er_v4i32 __attribute__((vector_size(16)));

/* Columns c .. c+3 (rows of w from `rows` on, k apart), groups q .. q+3, into the
 * panel: a 4x4 transpose of 4-byte groups.  Element by element the packing was
 * ~8% of a 128x256x1024 GEMM (a load, a store and loop arithmetic per 4 bytes). */
static inline void er_gemm_s8_pack_4x4(const int8_t *rows, size_t k, size_t q, int8_t *out) {
    er_v4i32 r0, r1, r2, r3;
    memcpy(&r0, rows + 4 * q, 16);
    memcpy(&r1, rows + k + 4 * q, 16);
    memcpy(&r2, rows + 2 * k + 4 * q, 16);
    memcpy(&r3, rows + 3 * k + 4 * q, 16);
    const er_v4i32 lo = {0, 4, 1, 5}, hi = {2, 6, 3, 7}, first = {0, 1, 4, 5}, second = {2, 3, 6, 7};
    er_v4i32 a = __builtin_shuffle(r0, r1, lo), b = __builtin_shuffle(r0, r1, hi);
    er_v4i32 c = __builtin_shuffle(r2, r3, lo), d = __builtin_shuffle(r2, r3, hi);
    er_v4i32 g0 = __builtin_shuffle(a, c, first), g1 = __builtin_shuffle(a, c, second);
    er_v4i32 g2 = __builtin_shuffle(b, d, first), g3 = __builtin_shuffle(b, d, second);
    memcpy(out, &g0, 16);
    memcpy(out + ER_GEMM_S8_PANEL * 4, &g1, 16);
    memcpy(out + 2 * ER_GEMM_S8_PANEL * 4, &g2, 16);
    memcpy(out + 3 * ER_GEMM_S8_PANEL * 4, &g3, 16);
}

/* Columns j .. j+cols-1 of w (cols <= ER_GEMM_S8_PANEL) into panel: for each of
 * `groups` groups q of 4 k (groups >= (k + 3) / 4, at most
 * ER_GEMM_S8_PANEL_MAX_K / 4), for each column c, w[j+c][4q .. 4q+3]; zero past k
 * and past cols, so padding adds nothing to any sum. */
static inline void er_gemm_s8_pack_panel(const int8_t *w, size_t k, size_t j, size_t cols,
                                         size_t groups, int8_t *panel) {
    const size_t full = k / 4, blocks = full / 4 * 4;
    if (cols < ER_GEMM_S8_PANEL || full < groups) memset(panel, 0, groups * ER_GEMM_S8_PANEL * 4);
    size_t c = 0;
    for (; c + 4 <= cols; c += 4)
        for (size_t q = 0; q < blocks; q += 4)
            er_gemm_s8_pack_4x4(w + (j + c) * k, k, q, panel + q * ER_GEMM_S8_PANEL * 4 + c * 4);
    for (size_t col = 0; col < cols; col++) {   /* what the 4x4 blocks left */
        const int8_t *row = w + (j + col) * k;
        int8_t *column = panel + col * 4;
        for (size_t q = col < c ? blocks : 0; q < full; q++)
            memcpy(column + q * ER_GEMM_S8_PANEL * 4, row + 4 * q, 4);
        if (full < groups) memcpy(column + full * ER_GEMM_S8_PANEL * 4, row + 4 * full, k - 4 * full);
    }
}

/* Rows i .. i+rows-1 of x against one packed panel (columns j .. j+cols-1 of w,
 * `groups` groups of 4 k): an ISA's panel tile, rows <= its tile height. */
typedef void er_gemm_s8_panel_rows_fn(const int8_t *x, size_t k, const int8_t *panel,
                                      size_t groups, size_t i, size_t j, size_t cols,
                                      const er_epilogue *ep, int rows);

/* The whole GEMM on panels, the one driver of every ISA's panel path: pack 16
 * columns of w at a time (groups rounded up to a multiple of group_step, the
 * k an ISA's step reads at once), then run every row of x against the panel,
 * which stays in L1: tile_rows at a time, then the 1 .. tile_rows-1 left over.
 * Always inlined with constant arguments, so each rows_fn call is direct and
 * its `rows` a constant (the tiles keep their accumulators in registers). */
static inline __attribute__((always_inline)) void er_gemm_s8_by_panels(
        const int8_t *x, const int8_t *w, size_t m, size_t n, size_t k, const er_epilogue *ep,
        size_t group_step, const int tile_rows, er_gemm_s8_panel_rows_fn *rows_fn) {
    int8_t panel[ER_GEMM_S8_PANEL_BYTES_MAX] __attribute__((aligned(32)));
    const size_t groups = ((k + 3) / 4 + group_step - 1) / group_step * group_step;
    for (size_t j = 0; j < n; j += ER_GEMM_S8_PANEL) {
        const size_t cols = n - j < ER_GEMM_S8_PANEL ? n - j : ER_GEMM_S8_PANEL;
        er_gemm_s8_pack_panel(w, k, j, cols, groups, panel);
        size_t i = 0;
        for (; i + (size_t)tile_rows <= m; i += (size_t)tile_rows)
            rows_fn(x, k, panel, groups, i, j, cols, ep, tile_rows);
        switch (m - i) {    /* 0 .. tile_rows - 1 rows left; no instance above that */
        case 3: if (tile_rows > 3) rows_fn(x, k, panel, groups, i, j, cols, ep, 3); break;
        case 2: if (tile_rows > 2) rows_fn(x, k, panel, groups, i, j, cols, ep, 2); break;
        case 1: if (tile_rows > 1) rows_fn(x, k, panel, groups, i, j, cols, ep, 1); break;
        default: break;
        }
    }
}

/* x[4q .. 4q+3] as one 32-bit word (the bytes in memory order), zero past k. */
static inline int32_t er_gemm_s8_group(const int8_t *xrow, size_t k, size_t q) {
    int8_t bytes[4] = {0, 0, 0, 0};
    const size_t p = 4 * q;
    if (p < k) memcpy(bytes, xrow + p, k - p < 4 ? k - p : 4);
    int32_t word;
    memcpy(&word, bytes, 4);
    return word;
}

#endif
