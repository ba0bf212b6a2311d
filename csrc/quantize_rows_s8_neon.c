/* quantize_rows_s8 for aarch64 NEON: 8 floats per step. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "edgerun.h"
#include "quantize_rows_s8.h"

er_status er_quantize_rows_s8__neon(const float *x, size_t m, size_t k,
                                    int8_t *q, float *scale) {
    if (!x || !q || !scale) return ER_ERR_ARGUMENT;
    const float32x4_t big = vdupq_n_f32(3.40282347e38f);
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * k;
        int8_t *qrow = q + i * k;
        float32x4_t vmax = vdupq_n_f32(0.0f);
        uint32x4_t ok = vdupq_n_u32(~0u);
        size_t p = 0;
        for (; p + 4 <= k; p += 4) {
            float32x4_t a = vabsq_f32(vld1q_f32(row + p));
            ok = vandq_u32(ok, vcleq_f32(a, big));
            vmax = vmaxq_f32(vmax, a);
        }
        int finite = vminvq_u32(ok) != 0;
        float amax = vmaxvq_f32(vmax);
        for (size_t t = p; t < k; t++) {
            float a = row[t] < 0 ? -row[t] : row[t];
            finite &= a <= 3.40282347e38f;
            amax = a > amax ? a : amax;
        }
        /* vmaxq_f32 propagates NaN, and the compare above catches it too. */
        if (!finite || amax != amax) return ER_ERR_NONFINITE;
        amax = er_quantize_amax(amax);
        p = 0;
        if (amax != 0.0f) {
            const float32x4_t inv = vdupq_n_f32(127.0f / amax);
            const float32x4_t hi = vdupq_n_f32(127.0f), lo = vdupq_n_f32(-127.0f);
            for (; p + 8 <= k; p += 8) {
                float32x4_t r0 = vmulq_f32(vld1q_f32(row + p), inv);
                float32x4_t r1 = vmulq_f32(vld1q_f32(row + p + 4), inv);
                r0 = vmaxq_f32(vminq_f32(r0, hi), lo);
                r1 = vmaxq_f32(vminq_f32(r1, hi), lo);
                int32x4_t n0 = vcvtnq_s32_f32(r0), n1 = vcvtnq_s32_f32(r1); /* to nearest even */
                int16x8_t n16 = vcombine_s16(vmovn_s32(n0), vmovn_s32(n1));
                vst1_s8(qrow + p, vmovn_s16(n16));
            }
        }
        er_quantize_row_tail(row, qrow, p, k, amax);
        scale[i] = amax / 127.0f;
    }
    return ER_OK;
}
#endif /* __aarch64__ */
