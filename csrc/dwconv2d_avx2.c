/* Depthwise 2-D convolution for x86-64 AVX2, NHWC.
 *
 * Channels are innermost, so one tap of one output pixel is a contiguous
 * vector of channels in x and in w: the kernel vectorises over channels and
 * keeps the scalar's order over taps, which is what makes the float path
 * bit-exact (a separate multiply and add per tap, never an FMA, exactly as the
 * scalar sum runs).
 *
 * float32: two neighbouring output pixels with the same window share each
 * weight load, and 32 channels per step give 8 independent add chains -- a
 * single pixel's 4 chains leave the adder waiting on its own latency.
 * int8: 16 channels of two pixels per step, sign-extended to int16; the int16
 * values of two taps are interleaved so that vpmaddwd multiplies and adds
 * both into int32 at once (measured ~5% ahead of multiplying in int16 and
 * widening the sums).
 * Both epilogues are the scalar one of dwconv2d.h lane by lane (same float ops
 * in the same order, NaN handled the same way), so the bits match; the channel
 * tail (C % 8 or C % 16) goes to the scalar helpers.
 * Border pixels run the same code over fewer taps (see dwconv2d.h); the walk
 * over pixels and the pairing are the drivers' of dwconv2d.h. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "dwconv2d.h"

/* act(v) of dwconv2d.h, lane by lane: relu keeps NaN and turns -0 into +0
 * (the NLE_UQ mask is true for v > 0 and for NaN), relu6 then caps at 6. */
ER_INLINE __m256 activate8(__m256 v, int activation) {
    if (activation == ER_ACT_NONE) return v;
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NLE_UQ));
    if (activation == ER_ACT_RELU6) {
        const __m256 six = _mm256_set1_ps(6.0f);
        v = _mm256_blendv_ps(v, six, _mm256_cmp_ps(v, six, _CMP_GT_OQ));
    }
    return v;
}

/* ---- float32 ---------------------------------------------------------------- */

/* NPIX pixels (1 or 2, stride_w apart in x, consecutive in y) by NV*8 channels
 * from c.  NPIX and NV are constants in each instance, so the accumulator
 * arrays live in registers. */
ER_INLINE void block_f32(const er_conv2d_params *p, const er_conv_window *win,
                         const float *x_image, const float *w, const float *bias, float *y,
                         size_t c, const int npix, const int nv) {
    const size_t C = p->channels, next = p->stride_w * C;
    __m256 acc[2][4];
    for (int i = 0; i < npix; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = _mm256_setzero_ps();
    for (size_t ky = win->ky0; ky < win->ky1; ky++)
        for (size_t kx = win->kx0; kx < win->kx1; kx++) {
            const float *xp = x_image + er_conv_x_offset(p, win, ky, kx) + c;
            const float *wp = w + (ky * p->kernel_w + kx) * C + c;
            for (int v = 0; v < nv; v++) {
                __m256 wv = _mm256_loadu_ps(wp + 8 * v);
                for (int i = 0; i < npix; i++)
                    acc[i][v] = _mm256_add_ps(
                        acc[i][v], _mm256_mul_ps(_mm256_loadu_ps(xp + i * next + 8 * v), wv));
            }
        }
    for (int v = 0; v < nv; v++) {
        __m256 b = bias ? _mm256_loadu_ps(bias + c + 8 * v) : _mm256_setzero_ps();
        for (int i = 0; i < npix; i++) {
            __m256 r = bias ? _mm256_add_ps(acc[i][v], b) : acc[i][v];
            _mm256_storeu_ps(y + i * C + c + 8 * v, activate8(r, p->activation));
        }
    }
}

static const er_dwconv2d_f32_tiles f32_tiles = {8, block_f32, 1};

er_status er_dwconv2d_f32__avx2(const er_conv2d_params *p, const float *x, const float *w,
                                const float *bias, float *y) {
    return er_dwconv2d_f32(p, x, w, bias, y, &f32_tiles);
}

/* ---- int8 ------------------------------------------------------------------- */

#define LOAD16_S8_AS_S16(ptr) _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(ptr)))

/* The epilogue of dwconv2d.h for 8 channels from c, acc as int32 lanes;
 * returns v, or the int8 codes as int32 lanes when requantizing. */
ER_INLINE __m256 epilogue8_s8(const er_conv_quant *q, int activation, size_t c, __m256i acc) {
    __m256 v = _mm256_cvtepi32_ps(acc); /* exact rounding, as (float)acc */
    v = _mm256_mul_ps(v, _mm256_set1_ps(q->x_scale));
    v = _mm256_mul_ps(v, _mm256_loadu_ps(q->w_scale + c));
    if (q->bias) v = _mm256_add_ps(v, _mm256_loadu_ps(q->bias + c));
    return activate8(v, activation);
}

/* er_requantize lane by lane: NaN -> 0, clamp to [-127, 127], round half to
 * even (cvtps rounds by MXCSR, nearest-even, like nearbyintf). */
ER_INLINE __m256i requantize8(__m256 v, float inv_scale) {
    __m256 r = _mm256_mul_ps(v, _mm256_set1_ps(inv_scale));
    __m256 low = _mm256_and_ps(_mm256_cmp_ps(r, r, _CMP_ORD_Q), _mm256_set1_ps(-127.0f));
    r = _mm256_blendv_ps(low, r, _mm256_cmp_ps(r, _mm256_set1_ps(-127.0f), _CMP_GT_OQ));
    r = _mm256_min_ps(r, _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(r);
}

/* The epilogue of 16 channels from c of one pixel whose element index is at. */
ER_INLINE void store16_s8(const er_conv_quant *q, int activation, size_t at, size_t c,
                          __m256i acc0, __m256i acc1) {
    __m256 v0 = epilogue8_s8(q, activation, c, acc0);
    __m256 v1 = epilogue8_s8(q, activation, c + 8, acc1);
    if (q->y_f32) {
        _mm256_storeu_ps(q->y_f32 + at + c, v0);
        _mm256_storeu_ps(q->y_f32 + at + c + 8, v1);
        return;
    }
    __m256i r0 = requantize8(v0, q->out_inv_scale), r1 = requantize8(v1, q->out_inv_scale);
    /* In-range int32 -> int8 in order: the saturating packs never saturate here. */
    __m128i s0 = _mm_packs_epi32(_mm256_castsi256_si128(r0), _mm256_extracti128_si256(r0, 1));
    __m128i s1 = _mm_packs_epi32(_mm256_castsi256_si128(r1), _mm256_extracti128_si256(r1, 1));
    _mm_storeu_si128((__m128i *)(q->y_s8 + at + c), _mm_packs_epi16(s0, s1));
}

/* 16 channels from c of NPIX pixels (1 or 2, stride_w apart, consecutive in
 * y; a constant per instance): the second pixel reuses each widened weight.
 * Two taps at a time: their int16 x and w are interleaved (unpack) so that one
 * vpmaddwd yields x_a*w_a + x_b*w_b per channel in int32 (|sum| <= 32258). */
ER_INLINE void block16_s8(const er_conv2d_params *p, const er_conv_window *win,
                          const int8_t *x_image, const int8_t *w, const er_conv_quant *q,
                          size_t at, size_t c, const int npix) {
    const size_t C = p->channels, next = p->stride_w * C;
    __m256i acc[2][2], px[2];
    __m256i pw = _mm256_setzero_si256();
    for (int i = 0; i < npix; i++)
        acc[i][0] = acc[i][1] = px[i] = _mm256_setzero_si256();
    int have_pending = 0;
    for (size_t ky = win->ky0; ky < win->ky1; ky++)
        for (size_t kx = win->kx0; kx < win->kx1; kx++) {
            const int8_t *xp = x_image + er_conv_x_offset(p, win, ky, kx) + c;
            __m256i wv = LOAD16_S8_AS_S16(w + (ky * p->kernel_w + kx) * C + c);
            if (!have_pending) {
                for (int i = 0; i < npix; i++) px[i] = LOAD16_S8_AS_S16(xp + i * next);
                pw = wv;
                have_pending = 1;
                continue;
            }
            __m256i wlo = _mm256_unpacklo_epi16(pw, wv), whi = _mm256_unpackhi_epi16(pw, wv);
            for (int i = 0; i < npix; i++) {
                __m256i xv = LOAD16_S8_AS_S16(xp + i * next);
                acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(_mm256_unpacklo_epi16(px[i], xv), wlo));
                acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(_mm256_unpackhi_epi16(px[i], xv), whi));
            }
            have_pending = 0;
        }
    const __m256i zero = _mm256_setzero_si256(); /* an odd last tap pairs with 0 */
    for (int i = 0; i < npix; i++) {
        if (have_pending) {
            acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(_mm256_unpacklo_epi16(px[i], zero), _mm256_unpacklo_epi16(pw, zero)));
            acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(_mm256_unpackhi_epi16(px[i], zero), _mm256_unpackhi_epi16(pw, zero)));
        }
        /* unpack works within 128-bit lanes: acc0 = c0-3 | c8-11, acc1 = c4-7 | c12-15 */
        __m256i a0 = _mm256_permute2x128_si256(acc[i][0], acc[i][1], 0x20);
        __m256i a1 = _mm256_permute2x128_si256(acc[i][0], acc[i][1], 0x31);
        store16_s8(q, p->activation, at + i * C, c, a0, a1);
    }
}

static const er_dwconv2d_s8_tiles s8_tiles = {block16_s8, 1};

er_status er_dwconv2d_s8__avx2(const er_conv2d_params *p, const int8_t *x, const int8_t *w,
                               const er_conv_quant *q) {
    return er_dwconv2d_s8(p, x, w, q, &s8_tiles);
}

#endif
