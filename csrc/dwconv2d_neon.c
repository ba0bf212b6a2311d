/* Depthwise 2-D convolution for aarch64 NEON, NHWC.
 *
 * The same plan as the AVX2 variant: vectorise over the contiguous channels of
 * one tap, keep the scalar's tap order, multiply and add separately (vmulq +
 * vaddq, never vfmaq / vmlaq, so the float bits equal the scalar's).
 * float32: two neighbouring pixels by 16 channels (4 vectors) per step, then
 * by 4, sharing the weight loads; int8: 16 channels per
 * step, vmull_s8 to int16 products (|p| <= 16129, exact) widened into four
 * int32x4 accumulators with vaddw.  Epilogues mirror dwconv2d.h lane by lane;
 * the channel tail goes to the scalar helpers, borders run fewer taps; the
 * walk over pixels and the pairing are the drivers' of dwconv2d.h. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "dwconv2d.h"

/* act(v): relu clears lanes that are <= 0 (NaN compares false and is kept;
 * -0 becomes +0), relu6 then caps at 6. */
ER_INLINE float32x4_t activate4(float32x4_t v, int activation) {
    if (activation == ER_ACT_NONE) return v;
    uint32x4_t nonpositive = vcleq_f32(v, vdupq_n_f32(0.0f));
    v = vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(v), nonpositive));
    if (activation == ER_ACT_RELU6) {
        const float32x4_t six = vdupq_n_f32(6.0f);
        v = vbslq_f32(vcgtq_f32(v, six), six, v);
    }
    return v;
}

/* NPIX pixels (1 or 2, stride_w apart, consecutive in y) by NV*4 channels
 * from c; constants per instance, so the accumulators live in registers
 * (2 x 4 of them, well within NEON's 32).  The second pixel reuses each
 * weight load. */
ER_INLINE void block_f32(const er_conv2d_params *p, const er_conv_window *win,
                         const float *x_image, const float *w, const float *bias, float *y,
                         size_t c, const int npix, const int nv) {
    const size_t C = p->channels, next = p->stride_w * C;
    float32x4_t acc[2][4];
    for (int i = 0; i < npix; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = vdupq_n_f32(0.0f);
    for (size_t ky = win->ky0; ky < win->ky1; ky++)
        for (size_t kx = win->kx0; kx < win->kx1; kx++) {
            const float *xp = x_image + er_conv_x_offset(p, win, ky, kx) + c;
            const float *wp = w + (ky * p->kernel_w + kx) * C + c;
            for (int v = 0; v < nv; v++) {
                float32x4_t wv = vld1q_f32(wp + 4 * v);
                for (int i = 0; i < npix; i++)
                    acc[i][v] = vaddq_f32(acc[i][v], vmulq_f32(vld1q_f32(xp + i * next + 4 * v), wv));
            }
        }
    for (int v = 0; v < nv; v++) {
        float32x4_t b = bias ? vld1q_f32(bias + c + 4 * v) : vdupq_n_f32(0.0f);
        for (int i = 0; i < npix; i++) {
            float32x4_t r = bias ? vaddq_f32(acc[i][v], b) : acc[i][v];
            vst1q_f32(y + i * C + c + 4 * v, activate4(r, p->activation));
        }
    }
}

static const er_dwconv2d_f32_tiles f32_tiles = {4, block_f32, 1};

er_status er_dwconv2d_f32__neon(const er_conv2d_params *p, const float *x, const float *w,
                                const float *bias, float *y) {
    return er_dwconv2d_f32(p, x, w, bias, y, &f32_tiles);
}

/* The int8 epilogue of dwconv2d.h for 4 channels from c. */
ER_INLINE float32x4_t epilogue4_s8(const er_conv_quant *q, int activation, size_t c,
                                   int32x4_t acc) {
    float32x4_t v = vcvtq_f32_s32(acc); /* round to nearest, as (float)acc */
    v = vmulq_f32(v, vdupq_n_f32(q->x_scale));
    v = vmulq_f32(v, vld1q_f32(q->w_scale + c));
    if (q->bias) v = vaddq_f32(v, vld1q_f32(q->bias + c));
    return activate4(v, activation);
}

/* er_requantize lane by lane: NaN -> 0, clamp, round half to even (vcvtnq). */
ER_INLINE int32x4_t requantize4(float32x4_t v, float inv_scale) {
    float32x4_t r = vmulq_f32(v, vdupq_n_f32(inv_scale));
    const float32x4_t lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
    uint32x4_t is_number = vceqq_f32(r, r);
    float32x4_t low = vreinterpretq_f32_u32(vandq_u32(is_number, vreinterpretq_u32_f32(lo)));
    r = vbslq_f32(vcgtq_f32(r, lo), r, low);
    r = vbslq_f32(vcgtq_f32(r, hi), hi, r);
    return vcvtnq_s32_f32(r);
}

/* 16 channels from c of one pixel (npix is always 1: no pairs for int8 here). */
ER_INLINE void block16_s8(const er_conv2d_params *p, const er_conv_window *win,
                          const int8_t *x_image, const int8_t *w, const er_conv_quant *q,
                          size_t at, size_t c, const int npix) {
    (void)npix;
    const size_t C = p->channels;
    int32x4_t acc0 = vdupq_n_s32(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    for (size_t ky = win->ky0; ky < win->ky1; ky++)
        for (size_t kx = win->kx0; kx < win->kx1; kx++) {
            int8x16_t xv = vld1q_s8(x_image + er_conv_x_offset(p, win, ky, kx) + c);
            int8x16_t wv = vld1q_s8(w + (ky * p->kernel_w + kx) * C + c);
            int16x8_t lo = vmull_s8(vget_low_s8(xv), vget_low_s8(wv));
            int16x8_t hi = vmull_high_s8(xv, wv);
            acc0 = vaddw_s16(acc0, vget_low_s16(lo));
            acc1 = vaddw_high_s16(acc1, lo);
            acc2 = vaddw_s16(acc2, vget_low_s16(hi));
            acc3 = vaddw_high_s16(acc3, hi);
        }
    int act = p->activation;
    float32x4_t v0 = epilogue4_s8(q, act, c, acc0), v1 = epilogue4_s8(q, act, c + 4, acc1);
    float32x4_t v2 = epilogue4_s8(q, act, c + 8, acc2), v3 = epilogue4_s8(q, act, c + 12, acc3);
    if (q->y_f32) {
        float *y = q->y_f32 + at + c;
        vst1q_f32(y, v0), vst1q_f32(y + 4, v1), vst1q_f32(y + 8, v2), vst1q_f32(y + 12, v3);
        return;
    }
    float s = q->out_inv_scale;
    int16x8_t h0 = vcombine_s16(vmovn_s32(requantize4(v0, s)), vmovn_s32(requantize4(v1, s)));
    int16x8_t h1 = vcombine_s16(vmovn_s32(requantize4(v2, s)), vmovn_s32(requantize4(v3, s)));
    vst1q_s8(q->y_s8 + at + c, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
}

static const er_dwconv2d_s8_tiles s8_tiles = {block16_s8, 0};

er_status er_dwconv2d_s8__neon(const er_conv2d_params *p, const int8_t *x, const int8_t *w,
                               const er_conv_quant *q) {
    return er_dwconv2d_s8(p, x, w, q, &s8_tiles);
}

#endif
