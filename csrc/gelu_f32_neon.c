/* gelu_f32 for NEON, 8 floats per step (two quad registers, so the long
 * dependency chains of erfc overlap).  One source for aarch64 (variant "neon")
 * and armv7 built with NEON (variant "neon32", as ER_ARM32 in edgerun.h): the
 * differences are the divide (er_vdiv_neon in vexp.h) and, without VFMA, the
 * exact square below.  Signs and x >= 0 are taken with integer operations: gcc
 * runs float negation and comparison intrinsics lane by lane in VFP registers
 * on armv7 (NEON flushes subnormals there), which had doubled the loop. */
#if defined(__aarch64__) || (defined(__arm__) && defined(__ARM_NEON))
#include <arm_neon.h>

#include "edgerun.h"
#include "gelu_f32.h"
#include "vexp.h"

/* erfc(z) = t G(t) exp(-z^2), the ER_ERFCX_* form of gelu_f32.h, as
 * gelu_f32_avx2.c's gelu_erf (the reasons for the steps are there). */
static inline float32x4_t gelu_erf(float32x4_t x) {
    /* vminq_f32 returns NaN if either operand is NaN. */
    float32x4_t ax = vminq_f32(vdupq_n_f32(ER_GELU_ABS_MAX), vabsq_f32(x));
    float32x4_t t = er_vdiv_neon(vdupq_n_f32(1.0f),
                                 er_vfma_neon(vdupq_n_f32(1.0f), ax,
                                              vdupq_n_f32((float)(0.70710678118654752 / 2))));
#define G(i) vdupq_n_f32(ER_ERFCX_##i)
    float32x4_t t2 = vmulq_f32(t, t), t4 = vmulq_f32(t2, t2);
    float32x4_t g01 = er_vfma_neon(G(0), G(1), t), g23 = er_vfma_neon(G(2), G(3), t);
    float32x4_t g45 = er_vfma_neon(G(4), G(5), t), g67 = er_vfma_neon(G(6), G(7), t);
    float32x4_t g89 = er_vfma_neon(G(8), G(9), t);
#undef G
    float32x4_t g03 = er_vfma_neon(g01, g23, t2), g47 = er_vfma_neon(g45, g67, t2);
    float32x4_t g = er_vfma_neon(g03, er_vfma_neon(g47, g89, t4), t4);
    /* -x^2 / 2 = hi + lo exactly: hi = -sq / 2 and lo = err / 2 with
     * sq_err_neg = sq - ax * ax = -err (scaling by 1/2 is exact). */
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
    float32x4_t sq = vmulq_f32(ax, ax);
    /* minus the rounding error of ax * ax (vfms, not a negation: see the top) */
    float32x4_t sq_err_neg = vfmsq_f32(sq, ax, ax);
#else
    /* No FMA (-mfpu=neon): split ax into 12 high and 12 low significant bits,
     * so hi * hi and hi * lo are exact and ax^2 = hi^2 + (2 hi + lo) lo. */
    float32x4_t ax_hi = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(ax),
                                                        vdupq_n_u32(0xfffff000u)));
    float32x4_t ax_lo = vsubq_f32(ax, ax_hi);
    float32x4_t sq = vmulq_f32(ax_hi, ax_hi);
    float32x4_t sq_err_neg = vmulq_f32(vaddq_f32(vaddq_f32(ax_hi, ax_hi), ax_lo), vsubq_f32(ax_hi, ax));
#endif
    float32x4_t e = er_vexp_sum_ftz_neon(vmulq_f32(sq, vdupq_n_f32(-0.5f)),
                                         vmulq_f32(sq_err_neg, vdupq_n_f32(0.5f)));
    float32x4_t tail = vmulq_f32(vmulq_f32(t, g), e);
    /* x >= 0 from the sign bit (an integer compare; -0 takes the x < 0 side,
     * which gives the same -0). */
    uint32x4_t nonneg = vcgeq_s32(vreinterpretq_s32_f32(x), vdupq_n_s32(0));
    float32x4_t phi2 = vbslq_f32(nonneg, vsubq_f32(vdupq_n_f32(2.0f), tail), tail);
    /* Halve x, not phi2: 0.5 * phi2 may be subnormal deep in the tail (armv7
     * NEON flushes subnormals) while the result is still normal, and phi2 * x
     * first would overflow near FLT_MAX. */
    return vmulq_f32(vmulq_f32(x, vdupq_n_f32(0.5f)), phi2);
}

#if defined(__aarch64__)
/* gelu_erf with fewer registers' worth of constants (see er_vexp_a64_consts in
 * vexp.h for why): the six of GELU's own that only multiply sit in the lanes of
 * two registers, used by FMLA / FMUL by element, next to the exp's four in one.
 * 1 + z/2 is taken from |x| directly (z = |x| / sqrt 2 had no other use). */
typedef struct {
    er_vexp_a64_consts exp;
    float32x4_t lanes0, lanes1;   /* 1 / (2 sqrt 2), ERFCX_1, ERFCX_3, ERFCX_5; ERFCX_7, ERFCX_9, -0.5, 0.5 */
    float32x4_t abs_max, two, g0, g2, g4, g6, g8;
} gelu_consts;

static inline gelu_consts gelu_consts_load(void) {
    static const float lanes[8] = {(float)(0.70710678118654752 / 2), ER_ERFCX_1, ER_ERFCX_3,
                                   ER_ERFCX_5, ER_ERFCX_7, ER_ERFCX_9, -0.5f, 0.5f};
    gelu_consts k = {er_vexp_a64_load(), er_opaque_a64(vld1q_f32(lanes)),
                     er_opaque_a64(vld1q_f32(lanes + 4)),
                     vdupq_n_f32(ER_GELU_ABS_MAX), vdupq_n_f32(2.0f), vdupq_n_f32(ER_ERFCX_0),
                     vdupq_n_f32(ER_ERFCX_2), vdupq_n_f32(ER_ERFCX_4), vdupq_n_f32(ER_ERFCX_6),
                     vdupq_n_f32(ER_ERFCX_8)};
    return k;
}

static inline float32x4_t gelu_erf_a64(float32x4_t x, const gelu_consts k) {
    const float32x4_t one = k.exp.one;
    float32x4_t ax = vminq_f32(k.abs_max, vabsq_f32(x));
    float32x4_t t = vdivq_f32(one, vfmaq_laneq_f32(one, ax, k.lanes0, 0));
    float32x4_t t2 = vmulq_f32(t, t), t4 = vmulq_f32(t2, t2);
    float32x4_t g01 = vfmaq_laneq_f32(k.g0, t, k.lanes0, 1);
    float32x4_t g23 = vfmaq_laneq_f32(k.g2, t, k.lanes0, 2);
    float32x4_t g45 = vfmaq_laneq_f32(k.g4, t, k.lanes0, 3);
    float32x4_t g67 = vfmaq_laneq_f32(k.g6, t, k.lanes1, 0);
    float32x4_t g89 = vfmaq_laneq_f32(k.g8, t, k.lanes1, 1);
    float32x4_t g03 = vfmaq_f32(g01, g23, t2), g47 = vfmaq_f32(g45, g67, t2);
    float32x4_t g = vfmaq_f32(g03, vfmaq_f32(g47, g89, t4), t4);
    /* hi = -ax^2 / 2 as (-ax / 2) * ax, lo_neg = hi - (-ax / 2) * ax = -lo exactly */
    float32x4_t minus_half_ax = vmulq_laneq_f32(ax, k.lanes1, 2);
    float32x4_t hi = vmulq_f32(minus_half_ax, ax);
    float32x4_t lo_neg = vfmsq_f32(hi, minus_half_ax, ax);
    float32x4_t tail = vmulq_f32(vmulq_f32(t, g), er_vexp_diff_ftz_a64(hi, lo_neg, k.exp));
    uint32x4_t nonneg = vcgezq_s32(vreinterpretq_s32_f32(x));
    float32x4_t phi2 = vbslq_f32(nonneg, vsubq_f32(k.two, tail), tail);
    return vmulq_f32(vmulq_laneq_f32(x, k.lanes1, 3), phi2);
}
#endif

/* x * sigmoid(2u) with e = exp(-2|u|), as gelu_f32_avx2.c's gelu_tanh. */
static inline float32x4_t gelu_tanh(float32x4_t x) {
    const float32x4_t a = vdupq_n_f32((float)(-2.0 * ER_GELU_TANH_K));
    const float32x4_t b = vdupq_n_f32((float)(-2.0 * ER_GELU_TANH_K * ER_GELU_TANH_CUBIC));
    float32x4_t minus_2u = vmulq_f32(x, er_vfma_neon(a, vmulq_f32(x, x), b));
    /* -|2u| and u < 0 from the sign bit, in integer operations (see gelu_erf). */
    uint32x4_t bits = vreinterpretq_u32_f32(minus_2u);
    float32x4_t e = er_vexp_neon(vreinterpretq_f32_u32(vorrq_u32(bits, vdupq_n_u32(0x80000000u))));
    uint32x4_t negative_u = vcgtq_s32(vreinterpretq_s32_u32(bits), vdupq_n_s32(0));
    float32x4_t num = vbslq_f32(negative_u, vmulq_f32(x, e), x);
    return er_vdiv_neon(num, vaddq_f32(vdupq_n_f32(1.0f), e));
}

#if defined(__aarch64__)
er_status er_gelu_f32__neon(const float *x, float *y, size_t count, int approximate_tanh) {
#else
er_status er_gelu_f32__neon32(const float *x, float *y, size_t count, int approximate_tanh) {
#endif
    if (count && (!x || !y)) return ER_ERR_ARGUMENT;
    size_t i = 0;
    /* Two vectors per step: two independent chains for in-order cores (Cortex-A53)
     * to interleave. */
    if (approximate_tanh) {
        for (; i + 8 <= count; i += 8) {
            float32x4_t a = gelu_tanh(vld1q_f32(x + i)), b = gelu_tanh(vld1q_f32(x + i + 4));
            vst1q_f32(y + i, a), vst1q_f32(y + i + 4, b);
        }
    } else {
#if defined(__aarch64__)
        const gelu_consts k = gelu_consts_load();
        for (; i + 8 <= count; i += 8) {
            float32x4_t a = gelu_erf_a64(vld1q_f32(x + i), k), b = gelu_erf_a64(vld1q_f32(x + i + 4), k);
            vst1q_f32(y + i, a), vst1q_f32(y + i + 4, b);
        }
#else
        for (; i + 8 <= count; i += 8) {
            float32x4_t a = gelu_erf(vld1q_f32(x + i)), b = gelu_erf(vld1q_f32(x + i + 4));
            vst1q_f32(y + i, a), vst1q_f32(y + i + 4, b);
        }
#endif
    }
    er_gelu_f32_tail(x, y, i, count, approximate_tanh);
    return ER_OK;
}
#endif /* NEON */
