/* Shared by the variants of codebook_f32 and codebook_s8: the scalar pieces
 * every SIMD body hands its leftovers to, so all variants decode the index
 * layouts (edgerun/packing.py) in exactly one way. */
#ifndef EDGERUN_CODEBOOK_H
#define EDGERUN_CODEBOOK_H

#include <stddef.h>
#include <stdint.h>

#include "edgerun.h"

/* codebook_f32 decodes this many weight rows into scratch at a time, so a SIMD
 * tile can reuse each x load across several output columns. */
#define ER_CODEBOOK_F32_ROWS 4

/* Bytes of one packed row: ceil(k * bits / 8). */
static inline size_t er_codebook_row_bytes(size_t k, unsigned bits) {
    return (k * bits + 7) / 8;
}

/* Index p of a row packed LSB-first at `bits` bits (the generic path). */
static inline unsigned er_codebook_index(const uint8_t *row, unsigned bits, size_t p) {
    size_t bit = p * bits;
    unsigned shift = (unsigned)(bit & 7);
    unsigned v = row[bit >> 3];
    /* Only read the next byte when the index straddles it: the last index of
     * a row may end exactly on the row's last byte. */
    if (shift + bits > 8) v |= (unsigned)row[(bit >> 3) + 1] << 8;
    return (v >> shift) & ((1u << bits) - 1u);
}

/* w[p] = centroids[index(p)] for p in [0, k).  The widths that divide a byte
 * evenly (1, 2, 4, 8) take whole bytes at a time; the others take 8 indices
 * (= `bits` bytes) at a time; the last few go one by one. */
static inline void er_codebook_decode_row(const uint8_t *row, unsigned bits,
                                          const float *centroids, size_t k, float *w) {
    size_t p = 0;
    switch (bits) {
    case 8:
        for (; p < k; p++) w[p] = centroids[row[p]];
        return;
    case 4:
        for (; p + 2 <= k; p += 2) {
            unsigned b = row[p >> 1];
            w[p] = centroids[b & 15u];
            w[p + 1] = centroids[b >> 4];
        }
        break;
    case 2:
        for (; p + 4 <= k; p += 4) {
            unsigned b = row[p >> 2];
            w[p] = centroids[b & 3u];
            w[p + 1] = centroids[(b >> 2) & 3u];
            w[p + 2] = centroids[(b >> 4) & 3u];
            w[p + 3] = centroids[b >> 6];
        }
        break;
    case 1:
        for (; p + 8 <= k; p += 8) {
            unsigned b = row[p >> 3];
            for (unsigned t = 0; t < 8; t++) w[p + t] = centroids[(b >> t) & 1u];
        }
        break;
    default:
        /* 3, 5, 6, 7 bits: 8 indices fill exactly `bits` whole bytes. */
        for (; p + 8 <= k; p += 8) {
            const uint8_t *bytes = row + (p >> 3) * bits;
            uint64_t v = 0;
            for (unsigned t = 0; t < bits; t++) v |= (uint64_t)bytes[t] << (8 * t);
            for (unsigned t = 0; t < 8; t++)
                w[p + t] = centroids[(v >> (t * bits)) & ((1u << bits) - 1u)];
        }
        break;
    }
    for (; p < k; p++) w[p] = centroids[er_codebook_index(row, bits, p)];
}

/* Sequential float dot product: the scalar order the SIMD variants approximate. */
static inline float er_codebook_dot_f32(const float *x, const float *w, size_t k) {
    float acc = 0.0f;
    for (size_t p = 0; p < k; p++) acc += x[p] * w[p];
    return acc;
}

/* Bytes of one nibble32 row: ceil(k / 32) blocks of 16 bytes. */
static inline size_t er_nibble32_row_bytes(size_t k) { return (k + 31) / 32 * 16; }

/* Index p of a nibble32 row: block p/32, byte p%16, low nibble for the first
 * 16 indices of the block and high nibble for the next 16. */
static inline unsigned er_nibble32_index(const uint8_t *row, size_t p) {
    unsigned b = row[(p >> 5) * 16 + (p & 15)];
    return (p & 16) ? b >> 4 : b & 15u;
}

/* sum_{p in [begin, end)} table[index(p)] * x[p] for one nibble32 row: the
 * whole scalar kernel, and the tail block of every SIMD variant. */
static inline int32_t er_codebook_s8_dot(const uint8_t *row, const int8_t *table,
                                         const int8_t *x, size_t begin, size_t end) {
    int32_t acc = 0;
    for (size_t p = begin; p < end; p++)
        acc += (int32_t)table[er_nibble32_index(row, p)] * (int32_t)x[p];
    return acc;
}

/* ---- codebook_s8 with many rows of x --------------------------------------
 * The table-lookup kernels decode each weight vector once per one or two rows
 * of x: right at batch 1, where w is read once from memory, but a transformer
 * layer has a row per token, and at 128 rows the same weights were decoded 64
 * times: codebook_s8 ran 2x slower than gemm_s8 on a BERT-style encoder.  From
 * ER_CODEBOOK_S8_DECODE_M rows on, each block of weight rows is decoded once
 * into int8 scratch and the same ISA's gemm_s8 runs every row of x against it:
 * the same int32 sums and epilogue, so the same bits. */
#define ER_CODEBOOK_S8_DECODE_M 8
#define ER_CODEBOOK_S8_SCRATCH 16384    /* bytes of decoded weights, on the stack */

/* Decoding needs at least 4 weight rows of scratch (a gemm_s8 column tile). */
static inline int er_codebook_s8_decode_first(size_t m, size_t k) {
    return m >= ER_CODEBOOK_S8_DECODE_M && 4 * k <= ER_CODEBOOK_S8_SCRATCH;
}

/* w[0 .. k) = table[index(p)] of one nibble32 row. */
static inline void er_codebook_s8_decode_row(const uint8_t *row, const int8_t *table, size_t k,
                                             int8_t *w) {
    size_t p = 0;
    for (; p + 32 <= k; p += 32) {
        const uint8_t *block = row + p / 2;
        for (size_t t = 0; t < 16; t++) {
            w[p + t] = table[block[t] & 15u];
            w[p + 16 + t] = table[block[t] >> 4];
        }
    }
    for (; p < k; p++) w[p] = table[er_nibble32_index(row, p)];
}

#if defined(__aarch64__)
#include <arm_neon.h>

/* The same for aarch64 (neon and dotprod): 32 weights per two table lookups. */
static inline void er_codebook_s8_decode_row_neon(const uint8_t *row, const int8_t *table8,
                                                  size_t k, int8_t *w) {
    const int8x16_t table = vld1q_s8(table8);
    const uint8x16_t low4 = vdupq_n_u8(0x0F);
    size_t p = 0;
    for (; p + 32 <= k; p += 32) {
        uint8x16_t v = vld1q_u8(row + p / 2);
        vst1q_s8(w + p, vqtbl1q_s8(table, vandq_u8(v, low4)));
        vst1q_s8(w + p + 16, vqtbl1q_s8(table, vshrq_n_u8(v, 4)));
    }
    for (; p < k; p++) w[p] = table8[er_nibble32_index(row, p)];
}
#endif

typedef void er_codebook_s8_decoder(const uint8_t *row, const int8_t *table, size_t k, int8_t *w);

/* The whole of codebook_s8 by blocks of decoded rows and `gemm` (a variant of
 * gemm_s8 writing the block's columns through a column slice of ep). */
static inline __attribute__((always_inline)) er_status er_codebook_s8_by_gemm(
        const uint8_t *nibbles, const int8_t *table, const int8_t *x, size_t m, size_t n,
        size_t k, const er_epilogue *ep, er_codebook_s8_decoder *decode, er_gemm_s8_fn *gemm) {
    int8_t w[ER_CODEBOOK_S8_SCRATCH] __attribute__((aligned(32)));
    const size_t ldn = er_nibble32_row_bytes(k);
    size_t block = ER_CODEBOOK_S8_SCRATCH / k;
    if (block >= 16) block -= block % 16;     /* whole 16-column gemm_s8 panels */
    for (size_t j = 0; j < n; j += block) {
        const size_t rows = n - j < block ? n - j : block;
        for (size_t r = 0; r < rows; r++) decode(nibbles + (j + r) * ldn, table, k, w + r * k);
        er_epilogue slice = *ep;
        if (slice.col_scale) slice.col_scale += j;
        if (slice.bias) slice.bias += j;
        if (slice.col_sum) slice.col_sum += j;
        if (slice.y_f32) slice.y_f32 += j;
        if (slice.y_s8) slice.y_s8 += j;
        er_status status = gemm(x, w, m, rows, k, &slice);
        if (status != ER_OK) return status;
    }
    return ER_OK;
}

#endif
