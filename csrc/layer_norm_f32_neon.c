/* layer_norm_f32 for ARM NEON: 4 floats per vector, two accumulators per
 * reduction (8 floats per step) to hide the add latency.  The same source
 * builds for aarch64 (variant "neon") and for armv7 with -mfpu=neon-vfpv4
 * (variant "neon32"): it uses only intrinsics both have (no vaddvq_f32, no
 * vdivq_f32 -- the one division and the square root per row are scalar).
 * The squares and the output use fused multiply-add where the target has it
 * (aarch64; armv7 with VFPv4): one rounding instead of two, within the float
 * tolerance of the scalar C, and fewer instructions.  armv7 NEON
 * flushes subnormals to zero; that moves results by less than the tolerance
 * of a float path (outputs are O(scale), subnormals are < 1.2e-38). */
#if defined(__aarch64__) || (defined(__arm__) && defined(__ARM_NEON))
#include <arm_neon.h>

#include "edgerun.h"
#include "layer_norm_f32.h"

/* acc + a * b, fused where the FPU can. */
static inline float32x4_t mul_add(float32x4_t acc, float32x4_t a, float32x4_t b) {
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
    return vfmaq_f32(acc, a, b);
#else
    return vaddq_f32(acc, vmulq_f32(a, b));
#endif
}

static inline float hsum(float32x4_t a) {
#if defined(__aarch64__)
    return vaddvq_f32(a);
#else
    float32x2_t s = vpadd_f32(vget_low_f32(a), vget_high_f32(a));
    return vget_lane_f32(vpadd_f32(s, s), 0);
#endif
}

/* Pass 1: d = v - shift stored to y (v = x, or x + r); returns the sum of d. */
static float shifted_sum(const float *x, const float *r, float *y, float shift, size_t n) {
    const float32x4_t k = vdupq_n_f32(shift);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    size_t p = 0;
    if (r) {
        for (; p + 8 <= n; p += 8) {
            float32x4_t d0 = vsubq_f32(vaddq_f32(vld1q_f32(x + p), vld1q_f32(r + p)), k);
            float32x4_t d1 = vsubq_f32(vaddq_f32(vld1q_f32(x + p + 4), vld1q_f32(r + p + 4)), k);
            vst1q_f32(y + p, d0);
            vst1q_f32(y + p + 4, d1);
            acc0 = vaddq_f32(acc0, d0);
            acc1 = vaddq_f32(acc1, d1);
        }
    } else {
        for (; p + 8 <= n; p += 8) {
            float32x4_t d0 = vsubq_f32(vld1q_f32(x + p), k);
            float32x4_t d1 = vsubq_f32(vld1q_f32(x + p + 4), k);
            vst1q_f32(y + p, d0);
            vst1q_f32(y + p + 4, d1);
            acc0 = vaddq_f32(acc0, d0);
            acc1 = vaddq_f32(acc1, d1);
        }
    }
    return hsum(vaddq_f32(acc0, acc1)) + er_layer_norm_shift_tail(x, r, y, shift, p, n);
}

/* Pass 2: the sum of squared deviations c = d - dmean. */
static float squares(const float *d, float dmean, size_t n) {
    const float32x4_t dm = vdupq_n_f32(dmean);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    size_t p = 0;
    for (; p + 8 <= n; p += 8) {
        float32x4_t c0 = vsubq_f32(vld1q_f32(d + p), dm);
        float32x4_t c1 = vsubq_f32(vld1q_f32(d + p + 4), dm);
        acc0 = mul_add(acc0, c0, c0);
        acc1 = mul_add(acc1, c1, c1);
    }
    return hsum(vaddq_f32(acc0, acc1)) + er_layer_norm_squares_tail(d, dmean, p, n);
}

/* Pass 3, over d in y: y = c * inv * scale + bias, 8 per step (loop overhead is
 * a quarter of this pass at 4). */
static void output(float *yrow, float dmean, float inv, const float *scale, const float *bias,
                   size_t n) {
    const float32x4_t dm = vdupq_n_f32(dmean);
    size_t p = 0;
    if (bias) {
        for (; p + 8 <= n; p += 8) {
            float32x4_t c0 = vsubq_f32(vld1q_f32(yrow + p), dm);
            float32x4_t c1 = vsubq_f32(vld1q_f32(yrow + p + 4), dm);
            vst1q_f32(yrow + p, mul_add(vld1q_f32(bias + p), vmulq_n_f32(c0, inv),
                                        vld1q_f32(scale + p)));
            vst1q_f32(yrow + p + 4, mul_add(vld1q_f32(bias + p + 4), vmulq_n_f32(c1, inv),
                                            vld1q_f32(scale + p + 4)));
        }
    } else {
        for (; p + 8 <= n; p += 8) {
            float32x4_t c0 = vsubq_f32(vld1q_f32(yrow + p), dm);
            float32x4_t c1 = vsubq_f32(vld1q_f32(yrow + p + 4), dm);
            vst1q_f32(yrow + p, vmulq_f32(vmulq_n_f32(c0, inv), vld1q_f32(scale + p)));
            vst1q_f32(yrow + p + 4, vmulq_f32(vmulq_n_f32(c1, inv), vld1q_f32(scale + p + 4)));
        }
    }
    er_layer_norm_output_tail(yrow, dmean, inv, scale, bias, yrow, p, n);
}

static er_status layer_norm(const float *x, const float *residual, const float *scale,
                            const float *bias, float *y, size_t rows, size_t n, float epsilon) {
    return er_layer_norm_rows(x, residual, scale, bias, y, rows, n, epsilon, shifted_sum, squares,
                              output);
}

#if defined(__aarch64__)
er_status er_layer_norm_f32__neon(const float *x, const float *residual, const float *scale,
                                  const float *bias, float *y, size_t rows, size_t n,
                                  float epsilon) {
    return layer_norm(x, residual, scale, bias, y, rows, n, epsilon);
}
#else
er_status er_layer_norm_f32__neon32(const float *x, const float *residual, const float *scale,
                                    const float *bias, float *y, size_t rows, size_t n,
                                    float epsilon) {
    return layer_norm(x, residual, scale, bias, y, rows, n, epsilon);
}
#endif
#endif /* aarch64, or armv7 with NEON */
