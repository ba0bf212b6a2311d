/* softmax_f32 for NEON, 4 floats per step.  One source for aarch64 (variant
 * "neon") and armv7 built with NEON (variant "neon32"): horizontal reductions
 * go through memory, as armv7 has no across-vector max/add. */
#if defined(__aarch64__) || (defined(__arm__) && defined(__ARM_NEON))
#include <arm_neon.h>

#include "edgerun.h"
#include "softmax_f32.h"
#include "vexp.h"

static float row_max(const float *x, size_t n, size_t *done) {
    float32x4_t vmax = vdupq_n_f32(-INFINITY);
    uint32x4_t ordered = vdupq_n_u32(~0u);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        ordered = vandq_u32(ordered, vceqq_f32(v, v)); /* lane false once NaN was seen */
        vmax = vmaxq_f32(vmax, v);
    }
    float lanes[4], max = -INFINITY;
    uint32_t ok[4];
    vst1q_f32(lanes, vmax);
    vst1q_u32(ok, ordered);
    *done = i;
    for (int l = 0; l < 4; l++) {
        if (!ok[l]) return NAN; /* stays NaN through the tail: comparisons with it are false */
        max = lanes[l] > max ? lanes[l] : max;
    }
    return max;
}

#if defined(__aarch64__)
er_status er_softmax_f32__neon(const float *x, float *y, size_t rows, size_t n) {
#else
er_status er_softmax_f32__neon32(const float *x, float *y, size_t rows, size_t n) {
#endif
    if (rows && n && (!x || !y)) return ER_ERR_ARGUMENT;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        if (n == 0) continue;
        size_t i;
        float max = row_max(xr, n, &i);
        max = er_softmax_max_tail(xr, i, n, max);
        if (er_softmax_nan_row(yr, n, max)) continue;
        const float32x4_t vm = vdupq_n_f32(max);
#if defined(__aarch64__)
        /* x - max <= 0: the exp without the upper clamp, constants in registers */
        const er_vexp_a64_consts k = er_vexp_a64_load();
#define exp_of_nonpos(v) er_vexp_nonpos_a64(v, k)
#else
#define exp_of_nonpos(v) er_vexp_neon(v)
#endif
        /* Four partial sums: the exps overlap, and each lane adds n / 16 terms
         * (a long float sum drifts from numpy's pairwise one). */
        float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
        for (i = 0; i + 16 <= n; i += 16) {
            float32x4_t e0 = exp_of_nonpos(vsubq_f32(vld1q_f32(xr + i), vm));
            float32x4_t e1 = exp_of_nonpos(vsubq_f32(vld1q_f32(xr + i + 4), vm));
            float32x4_t e2 = exp_of_nonpos(vsubq_f32(vld1q_f32(xr + i + 8), vm));
            float32x4_t e3 = exp_of_nonpos(vsubq_f32(vld1q_f32(xr + i + 12), vm));
            vst1q_f32(yr + i, e0), vst1q_f32(yr + i + 4, e1);
            vst1q_f32(yr + i + 8, e2), vst1q_f32(yr + i + 12, e3);
            s0 = vaddq_f32(s0, e0), s1 = vaddq_f32(s1, e1);
            s2 = vaddq_f32(s2, e2), s3 = vaddq_f32(s3, e3);
        }
        for (; i + 4 <= n; i += 4) {
            float32x4_t e = exp_of_nonpos(vsubq_f32(vld1q_f32(xr + i), vm));
            vst1q_f32(yr + i, e);
            s0 = vaddq_f32(s0, e);
        }
#undef exp_of_nonpos
        double sum = er_softmax_exp_tail(xr, yr, i, n, max);
        float lanes[4];
        vst1q_f32(lanes, vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
        sum += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        float inv = (float)(1.0 / sum); /* sum >= 1: the max contributes exp(0) */
        const float32x4_t vinv = vdupq_n_f32(inv);
        for (i = 0; i + 4 <= n; i += 4) vst1q_f32(yr + i, vmulq_f32(vld1q_f32(yr + i), vinv));
        er_softmax_scale_tail(yr, i, n, inv);
    }
    return ER_OK;
}
#endif /* NEON */
