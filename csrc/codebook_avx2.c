/* codebook_f32 and codebook_s8 for x86-64 AVX2.
 *
 * codebook_s8 turns 16 bytes of nibbles into 32 int8 weights with one
 * vpshufb against the 16-entry table (held in both 128-bit lanes), then runs
 * the int8 dot product of an int8 GEMM.  4-bit indices are half the bytes of
 * int8 weights, which is what batch 1 pays for once the weights no longer
 * fit in cache; the lookup costs vector ops, so batch 1 has its own loop
 * (two blocks per load, x rearranged once, software prefetch) and in cache a
 * dense int8 GEMV is faster.
 *
 * codebook_f32 decodes 8 indices at a time in registers (see f32_decode8):
 * straight into the dot product at batch 1, into scratch rows otherwise. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <string.h>

#include "codebook.h"
#include "edgerun.h"
#include "epilogue.h"

/* The tile bodies take their shape as constant arguments and are inlined into
 * each call site, so the compiler unrolls the small loops and keeps the
 * accumulator arrays in registers. */
#define ER_INLINE static inline __attribute__((always_inline))

/* Sums of four int32 vectors, one per output lane. */
ER_INLINE __m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
}

ER_INLINE __m128 hsum4_ps(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* ---- codebook_f32 ----------------------------------------------------------- */

/* acc[i][j] = x row i . decoded row j, for mr x rows and nr decoded rows. */
ER_INLINE void f32_tile(const float *x, const float *w, size_t k, const int mr,
                        const int nr, float out[2][ER_CODEBOOK_F32_ROWS]) {
    __m256 acc[2][ER_CODEBOOK_F32_ROWS];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < ER_CODEBOOK_F32_ROWS; j++) acc[i][j] = _mm256_setzero_ps();
    size_t p = 0;
    for (; p + 8 <= k; p += 8) {
        __m256 xv[2];
        for (int i = 0; i < mr; i++) xv[i] = _mm256_loadu_ps(x + i * k + p);
        for (int j = 0; j < nr; j++) {
            __m256 wv = _mm256_loadu_ps(w + j * k + p);
            for (int i = 0; i < mr; i++) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
        }
    }
    for (int i = 0; i < mr; i++) {
        float lanes[4];
        _mm_storeu_ps(lanes, hsum4_ps(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
        for (int j = 0; j < nr; j++)
            out[i][j] = lanes[j] + er_codebook_dot_f32(x + i * k + p, w + j * k + p, k - p);
    }
}

/* Rows [j0, j0 + nr) of the output, already decoded in w. */
ER_INLINE void f32_columns(const float *x, const float *w, size_t m, size_t k, size_t j0,
                           const int nr, const er_epilogue *ep) {
    float out[2][ER_CODEBOOK_F32_ROWS];
    size_t i = 0;
    for (; i + 2 <= m; i += 2) {
        f32_tile(x + i * k, w, k, 2, nr, out);
        for (int a = 0; a < 2; a++)
            for (int j = 0; j < nr; j++) er_store(ep, i + a, j0 + j, out[a][j]);
    }
    if (i < m) {
        f32_tile(x + i * k, w, k, 1, nr, out);
        for (int j = 0; j < nr; j++) er_store(ep, i, j0 + j, out[0][j]);
    }
}

/* Vector decode: 8 consecutive indices of a row -> 8 float weights.
 *
 * For bits < 8 the 8 indices occupy exactly `bits` bytes starting at byte
 * p * bits / 8 (p a multiple of 8).  Those 8 bytes are broadcast, a constant
 * vpshufb moves the two bytes that hold index t into 32-bit lane t, a variable
 * shift and a mask finish the extraction.  The lookup stays in registers:
 * one vpermps per 8 centroids, then a tree of blends on index bits 3, 4, ...
 * Wider indices use vgatherdps (eight-bit ones are whole bytes). */
/* Decoder kinds 0, 1, 2: blend-tree levels (bits <= 3, 4, 5); then the gather. */
enum { ER_DEC_GATHER = 3 };
/* From this width on, vgatherdps beats the blend tree (Zen 3, 4096 x 4096,
 * batch 1: at 5 bits the tree is ~10 ms against ~17 ms for the gather, at 6
 * they tie, at 7 the tree of 16 permutes and 15 blends is 2.5x slower). */
#define ER_DEC_GATHER_BITS 6

typedef struct {
    __m256i pattern, shift, mask;
    __m256 c[4];       /* centroids in groups of 8 (blend-tree widths) */
    const float *centroids;
    unsigned bits;
    size_t groups;     /* groups of 8 decodable without reading past the row */
} f32_decoder;

static int f32_decoder_init(f32_decoder *d, unsigned bits, const float *centroids, size_t k) {
    uint8_t pattern[32];
    int32_t shift[8];
    for (unsigned t = 0; t < 8; t++) {
        unsigned bit = t * bits, lane = (t / 4) * 16 + (t % 4) * 4;
        pattern[lane] = (uint8_t)(bit >> 3);
        pattern[lane + 1] = (uint8_t)((bit >> 3) + 1);
        pattern[lane + 2] = pattern[lane + 3] = 0x80; /* zero */
        shift[t] = (int32_t)(bit & 7);
    }
    d->pattern = _mm256_loadu_si256((const __m256i *)pattern);
    d->shift = _mm256_loadu_si256((const __m256i *)shift);
    d->mask = _mm256_set1_epi32((1 << bits) - 1);
    d->centroids = centroids;
    d->bits = bits;
    size_t row_bytes = er_codebook_row_bytes(k, bits);
    size_t fit = bits == 8 ? k / 8 : (row_bytes >= 8 ? (row_bytes - 8) / bits + 1 : 0);
    d->groups = fit < k / 8 ? fit : k / 8;
    if (bits >= ER_DEC_GATHER_BITS) return ER_DEC_GATHER;
    float c[8];
    unsigned count = 1u << bits;
    for (unsigned g = 0; g < (count + 7) / 8; g++) {
        for (unsigned i = 0; i < 8; i++) c[i] = i < count ? centroids[8 * g + i] : 0.0f;
        d->c[g] = _mm256_loadu_ps(c);
    }
    return bits <= 3 ? 0 : (int)bits - 3;
}

ER_INLINE __m256 f32_decode8(const f32_decoder *d, const int kind, const uint8_t *row, size_t p) {
    __m256i idx;
    if (kind == ER_DEC_GATHER && d->bits == 8) {
        idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(row + p)));
    } else {
        long long bytes;
        memcpy(&bytes, row + p / 8 * d->bits, 8);
        idx = _mm256_shuffle_epi8(_mm256_set1_epi64x(bytes), d->pattern);
        idx = _mm256_and_si256(_mm256_srlv_epi32(idx, d->shift), d->mask);
    }
    if (kind == ER_DEC_GATHER) return _mm256_i32gather_ps(d->centroids, idx, 4);
    __m256 v[4];
    for (int g = 0; g < (1 << kind); g++) v[g] = _mm256_permutevar8x32_ps(d->c[g], idx);
    for (int level = 0; level < kind; level++) {
        /* index bit 3 + level moved to the sign bit selects the upper group */
        __m256 upper = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28 - level));
        for (int g = 0; g < (1 << (kind - level - 1)); g++)
            v[g] = _mm256_blendv_ps(v[2 * g], v[2 * g + 1], upper);
    }
    return v[0];
}

ER_INLINE void f32_decode_row(const f32_decoder *d, const int kind, const uint8_t *row,
                              size_t k, float *w) {
    size_t p = 0;
    for (; p < 8 * d->groups; p += 8) _mm256_storeu_ps(w + p, f32_decode8(d, kind, row, p));
    for (; p < k; p++) w[p] = d->centroids[er_codebook_index(row, d->bits, p)];
}

/* Batch 1: decoding straight into the dot product, never through memory,
 * because at m = 1 the decode is half of all the work. */
ER_INLINE void f32_m1_columns(const f32_decoder *d, const int kind, const uint8_t *rows,
                              size_t stride, const float *x, size_t k, size_t j0, const int nr,
                              const er_epilogue *ep) {
    __m256 acc[4];
    for (int r = 0; r < 4; r++) acc[r] = _mm256_setzero_ps();
    size_t p = 0;
    for (; p < 8 * d->groups; p += 8) {
        __m256 xv = _mm256_loadu_ps(x + p);
        for (int r = 0; r < nr; r++)
            acc[r] = _mm256_fmadd_ps(f32_decode8(d, kind, rows + r * stride, p), xv, acc[r]);
    }
    float sums[4];
    _mm_storeu_ps(sums, hsum4_ps(acc[0], acc[1], acc[2], acc[3]));
    for (int r = 0; r < nr; r++) {
        float tail = 0.0f;
        for (size_t t = p; t < k; t++)
            tail += x[t] * d->centroids[er_codebook_index(rows + r * stride, d->bits, t)];
        er_store(ep, 0, j0 + r, sums[r] + tail);
    }
}

ER_INLINE void f32_all(const f32_decoder *d, const int kind, const uint8_t *packed,
                       const float *x, size_t m, size_t n, size_t k, const er_epilogue *ep,
                       float *w) {
    const size_t stride = er_codebook_row_bytes(k, d->bits);
    size_t j = 0;
    if (m == 1) {
        for (; j + 4 <= n; j += 4) f32_m1_columns(d, kind, packed + j * stride, stride, x, k, j, 4, ep);
        for (; j < n; j++) f32_m1_columns(d, kind, packed + j * stride, stride, x, k, j, 1, ep);
        return;
    }
    /* m > 1: decode each row once into scratch, reuse it for every row of x. */
    for (; j + ER_CODEBOOK_F32_ROWS <= n; j += ER_CODEBOOK_F32_ROWS) {
        for (int r = 0; r < ER_CODEBOOK_F32_ROWS; r++)
            f32_decode_row(d, kind, packed + (j + r) * stride, k, w + r * k);
        f32_columns(x, w, m, k, j, ER_CODEBOOK_F32_ROWS, ep);
    }
    for (; j < n; j++) {
        f32_decode_row(d, kind, packed + j * stride, k, w);
        f32_columns(x, w, m, k, j, 1, ep);
    }
}

er_status er_codebook_f32__avx2(const uint8_t *packed, unsigned bits,
                                const float *centroids, const float *x, size_t m,
                                size_t n, size_t k, const er_epilogue *ep,
                                void *scratch) {
    if (!packed || !centroids || !x || !er_epilogue_ok(ep, n) || (k && !scratch))
        return ER_ERR_ARGUMENT;
    if (bits < 1 || bits > 8) return ER_ERR_ARGUMENT;
    f32_decoder d;
    switch (f32_decoder_init(&d, bits, centroids, k)) {
    case 0: f32_all(&d, 0, packed, x, m, n, k, ep, scratch); break;
    case 1: f32_all(&d, 1, packed, x, m, n, k, ep, scratch); break;
    case 2: f32_all(&d, 2, packed, x, m, n, k, ep, scratch); break;
    default: f32_all(&d, ER_DEC_GATHER, packed, x, m, n, k, ep, scratch); break;
    }
    return ER_OK;
}

/* ---- codebook_s8 ------------------------------------------------------------ */

/* 32 int8 weights of one nibble32 block in k order: the 16 bytes go to both
 * lanes, the high lane is shifted right by 4 so that it holds the high nibbles,
 * and one table lookup per byte does the rest (vpshufb reads the low 4 bits;
 * the mask clears bit 7, which would otherwise select zero). */
ER_INLINE __m256i s8_weights(const uint8_t *block, __m256i table, __m256i lane_shift,
                             __m256i low4) {
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)block));
    v = _mm256_and_si256(_mm256_srlv_epi64(v, lane_shift), low4);
    return _mm256_shuffle_epi8(table, v);
}

/* Int32 dot products of mr rows of x with nr nibble32 rows over `blocks` full
 * blocks of 32.  vpmaddubsw multiplies unsigned by signed bytes and adds pairs
 * into saturating int16: with |x| as the unsigned operand and x's sign moved
 * onto w (vpsignb), both are within 127 and a pair stays <= 2*127*127 = 32258,
 * so nothing saturates and the sums are exact. */
ER_INLINE void s8_tile(const uint8_t *nib, size_t ldn, const int8_t *x, size_t ldx,
                       size_t blocks, __m256i table, const int mr, const int nr,
                       const uint8_t *next, int32_t out[2][4]) {
    const __m256i lane_shift = _mm256_set_epi64x(4, 4, 0, 0);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[2][4];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_si256();
    for (size_t b = 0; b < blocks; b++) {
        /* The 4 rows of a tile are 64 * blocks contiguous bytes, and so is
         * the next tile: fetching one of its lines per block keeps the
         * stream ahead of the lookups, which the hardware prefetcher alone
         * does not (measured at batch 1, 4096 x 4096). */
        if (next) _mm_prefetch((const char *)(next + 64 * b), _MM_HINT_T0);
        __m256i xs[2], xa[2];
        for (int i = 0; i < mr; i++) {
            xs[i] = _mm256_loadu_si256((const __m256i *)(x + i * ldx + 32 * b));
            xa[i] = _mm256_abs_epi8(xs[i]);
        }
        for (int j = 0; j < nr; j++) {
            __m256i w = s8_weights(nib + j * ldn + 16 * b, table, lane_shift, low4);
            for (int i = 0; i < mr; i++) {
                __m256i pairs = _mm256_maddubs_epi16(xa[i], _mm256_sign_epi8(w, xs[i]));
                acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(pairs, ones));
            }
        }
    }
    for (int i = 0; i < mr; i++)
        _mm_storeu_si128((__m128i *)out[i], hsum4_epi32(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
}

/* Output columns [j0, j0 + nr) for every row of x. */
ER_INLINE void s8_columns(const uint8_t *nib, size_t ldn, const int8_t *table8,
                          __m256i table, const int8_t *x, size_t m, size_t k, size_t j0,
                          const int nr, const uint8_t *next, const er_epilogue *ep) {
    const size_t blocks = k / 32, done = blocks * 32;
    int32_t out[2][4];
    size_t i = 0;
    /* Two x rows share each decoded weight vector; the nr weight rows (a few
     * KB) stay in L1 while every x row passes over them. */
    for (; i + 2 <= m; i += 2) {
        s8_tile(nib, ldn, x + i * k, k, blocks, table, 2, nr, i == 0 ? next : NULL, out);
        for (int a = 0; a < 2; a++)
            for (int j = 0; j < nr; j++)
                er_store_s32(ep, i + a, j0 + j,
                             out[a][j] + er_codebook_s8_dot(nib + j * ldn, table8,
                                                            x + (i + a) * k, done, k));
    }
    if (i < m) {
        s8_tile(nib, ldn, x + i * k, k, blocks, table, 1, nr, i == 0 ? next : NULL, out);
        for (int j = 0; j < nr; j++)
            er_store_s32(ep, i, j0 + j,
                         out[0][j] + er_codebook_s8_dot(nib + j * ldn, table8, x + i * k, done, k));
    }
}

/* ---- codebook_s8 at batch 1 --------------------------------------------------
 * m = 1 is the case that matters (a layer applied to one input), and there
 * every vector op counts: the kernel runs from cache at about 3 ops a cycle.
 * So it takes two blocks per step: one 32-byte load holds blocks b and b+1,
 * its low nibbles are p = 0..15 of both and its high nibbles p = 16..31 of
 * both, and x is rearranged once per call into that order (with |x| beside
 * it).  That is 6.5 vector ops per weight row and block instead of 7.25. */

/* x values per stack chunk: 4096 (8 KB of rearranged x). */
#define ER_CB_M1_PAIRS 64

/* For each pair q of blocks: x in lookup order (low-nibble half, high-nibble
 * half of both blocks), then the absolute values of both: 128 bytes. */
static void m1_prepare_x(const int8_t *x, size_t pairs, int8_t *buf) {
    for (size_t q = 0; q < pairs; q++) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(x + 64 * q));
        __m256i b = _mm256_loadu_si256((const __m256i *)(x + 64 * q + 32));
        __m256i lo = _mm256_permute2x128_si256(a, b, 0x20);
        __m256i hi = _mm256_permute2x128_si256(a, b, 0x31);
        __m256i *dst = (__m256i *)(buf + 128 * q);
        _mm256_store_si256(dst, lo);
        _mm256_store_si256(dst + 1, hi);
        _mm256_store_si256(dst + 2, _mm256_abs_epi8(lo));
        _mm256_store_si256(dst + 3, _mm256_abs_epi8(hi));
    }
}

/* acc[j] += x . row j over `pairs` block pairs (the same exact vpmaddubsw
 * step as s8_tile). */
ER_INLINE void m1_tile(const uint8_t *nib, size_t ldn, const int8_t *buf, size_t pairs,
                       __m256i table, const int nr, const uint8_t *next, __m256i acc[4]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t q = 0; q < pairs; q++) {
        if (next) { /* 128 bytes of the next tile per 128 bytes of this one */
            _mm_prefetch((const char *)(next + 128 * q), _MM_HINT_T0);
            _mm_prefetch((const char *)(next + 128 * q + 64), _MM_HINT_T0);
        }
        const __m256i *xq = (const __m256i *)(buf + 128 * q);
        const __m256i xl = _mm256_load_si256(xq), xh = _mm256_load_si256(xq + 1);
        const __m256i al = _mm256_load_si256(xq + 2), ah = _mm256_load_si256(xq + 3);
        for (int j = 0; j < nr; j++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(nib + j * ldn + 32 * q));
            __m256i wl = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low4));
            __m256i wh = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
            acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(_mm256_maddubs_epi16(al, _mm256_sign_epi8(wl, xl)), ones));
            acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(_mm256_maddubs_epi16(ah, _mm256_sign_epi8(wh, xh)), ones));
        }
    }
}

/* Output columns [j0, j0 + nr) at m = 1. */
ER_INLINE void m1_columns(const uint8_t *nib, size_t ldn, const int8_t *table8, __m256i table,
                          const int8_t *x, size_t k, int8_t *buf, int prepared, size_t j0,
                          const int nr, const uint8_t *next, const er_epilogue *ep) {
    const size_t blocks = k / 32, pairs = blocks / 2;
    __m256i acc[4];
    for (int j = 0; j < 4; j++) acc[j] = _mm256_setzero_si256();
    for (size_t c = 0; c < pairs; c += ER_CB_M1_PAIRS) {
        size_t np = pairs - c < ER_CB_M1_PAIRS ? pairs - c : ER_CB_M1_PAIRS;
        if (!prepared) m1_prepare_x(x + 64 * c, np, buf);
        m1_tile(nib + 32 * c, ldn, buf, np, table, nr, next ? next + 128 * c : NULL, acc);
    }
    int32_t out[2][4];
    size_t done = 64 * pairs;
    if (blocks & 1) { /* the odd last full block, one block at a time */
        s8_tile(nib + 16 * (blocks - 1), ldn, x + done, k, 1, table, 1, nr, NULL, out);
        done += 32;
    } else {
        memset(out, 0, sizeof out);
    }
    int32_t sums[4];
    _mm_storeu_si128((__m128i *)sums, hsum4_epi32(acc[0], acc[1], acc[2], acc[3]));
    for (int j = 0; j < nr; j++)
        er_store_s32(ep, 0, j0 + j,
                     sums[j] + out[0][j] + er_codebook_s8_dot(nib + j * ldn, table8, x, done, k));
}

static void m1_all(const uint8_t *nibbles, size_t ldn, const int8_t *table8, __m256i table,
                   const int8_t *x, size_t n, size_t k, const er_epilogue *ep) {
    _Alignas(32) int8_t buf[ER_CB_M1_PAIRS * 128];
    const size_t pairs = k / 64;
    /* One chunk: rearrange x once for all rows; more: once per tile and chunk. */
    const int prepared = pairs <= ER_CB_M1_PAIRS;
    if (prepared) m1_prepare_x(x, pairs, buf);
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const uint8_t *next = j + 8 <= n ? nibbles + (j + 4) * ldn : NULL;
        m1_columns(nibbles + j * ldn, ldn, table8, table, x, k, buf, prepared, j, 4, next, ep);
    }
    for (; j < n; j++)
        m1_columns(nibbles + j * ldn, ldn, table8, table, x, k, buf, prepared, j, 1, NULL, ep);
}

er_gemm_s8_fn er_gemm_s8__avx2;   /* csrc/gemm_s8_avx2.c: the many-rows path */

/* One nibble32 row into int8 weights, 32 per table lookup (many rows of x). */
static void s8_decode_row(const uint8_t *row, const int8_t *table8, size_t k, int8_t *w) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)table8));
    const __m256i lane_shift = _mm256_set_epi64x(4, 4, 0, 0);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    size_t p = 0;
    for (; p + 32 <= k; p += 32)
        _mm256_storeu_si256((__m256i *)(w + p), s8_weights(row + p / 2, table, lane_shift, low4));
    for (; p < k; p++) w[p] = table8[er_nibble32_index(row, p)];
}

er_status er_codebook_s8__avx2(const uint8_t *nibbles, const int8_t *table,
                               const int8_t *x, size_t m, size_t n, size_t k,
                               const er_epilogue *ep) {
    if (!nibbles || !table || !x || !er_epilogue_zero_ok(ep, n)) return ER_ERR_ARGUMENT;
    if (k > ER_MAX_K_S8) return ER_ERR_K_TOO_LARGE;
    if (er_codebook_s8_decode_first(m, k))
        return er_codebook_s8_by_gemm(nibbles, table, x, m, n, k, ep, s8_decode_row, er_gemm_s8__avx2);
    const size_t ldn = er_nibble32_row_bytes(k);
    const __m256i tab = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)table));
    if (m == 1) {
        m1_all(nibbles, ldn, table, tab, x, n, k, ep);
        return ER_OK;
    }
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const uint8_t *next = j + 8 <= n ? nibbles + (j + 4) * ldn : NULL;
        s8_columns(nibbles + j * ldn, ldn, table, tab, x, m, k, j, 4, next, ep);
    }
    for (; j < n; j++) s8_columns(nibbles + j * ldn, ldn, table, tab, x, m, k, j, 1, NULL, ep);
    return ER_OK;
}
#endif /* __x86_64__ */
