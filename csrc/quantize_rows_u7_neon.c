/* quantize_rows_u7 for aarch64 NEON: 8 floats per step. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "edgerun.h"
#include "quantize_rows_u7.h"

/* round_half_even(x * inv) + zero (FCVTNS rounds to nearest even), then the
 * saturating narrows and a max with 0 clamp to [0, 127].  16 floats a step add
 * the zero point in int16, 8 lanes an op: |x * inv| <= 127.5, so the int32 ->
 * int16 narrow cannot saturate before the addition and the result is the same. */
static size_t body(const float *row, int8_t *q, size_t k, float inv, int32_t zero) {
    const int32x4_t vzero = vdupq_n_s32(zero);
    const int16x8_t vzero16 = vdupq_n_s16((int16_t)zero);
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
        int32x4_t n0 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(row + p), inv));
        int32x4_t n1 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(row + p + 4), inv));
        int32x4_t n2 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(row + p + 8), inv));
        int32x4_t n3 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(row + p + 12), inv));
        int16x8_t lo = vaddq_s16(vqmovn_high_s32(vqmovn_s32(n0), n1), vzero16);
        int16x8_t hi = vaddq_s16(vqmovn_high_s32(vqmovn_s32(n2), n3), vzero16);
        vst1q_s8(q + p, vmaxq_s8(vqmovn_high_s16(vqmovn_s16(lo), hi), vdupq_n_s8(0)));
    }
    for (; p + 8 <= k; p += 8) {
        int32x4_t n0 = vaddq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(row + p), inv)), vzero);
        int32x4_t n1 = vaddq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(row + p + 4), inv)), vzero);
        int8x8_t n8 = vqmovn_s16(vcombine_s16(vqmovn_s32(n0), vqmovn_s32(n1)));
        vst1_s8(q + p, vmax_s8(n8, vdup_n_s8(0)));
    }
    return p;
}

er_status er_quantize_rows_u7__neon(const float *x, size_t m, size_t k, int8_t *q, float *scale,
                                    int32_t *zero) {
    if (!x || !q || !scale || !zero) return ER_ERR_ARGUMENT;
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * k;
        /* FMIN / FMAX / FMINV / FMAXV return NaN when an operand is NaN, and an
         * infinity ends up in lo or hi: the range alone says whether the row is
         * finite, so the scan needs no test of its own (it had been half of it). */
        float32x4_t min0 = vdupq_n_f32(0.0f), max0 = min0, min1 = min0, max1 = min0;
        size_t p = 0;
        for (; p + 8 <= k; p += 8) {
            float32x4_t v0 = vld1q_f32(row + p), v1 = vld1q_f32(row + p + 4);
            min0 = vminq_f32(min0, v0), max0 = vmaxq_f32(max0, v0);
            min1 = vminq_f32(min1, v1), max1 = vmaxq_f32(max1, v1);
        }
        float lo = vminvq_f32(vminq_f32(min0, min1)), hi = vmaxvq_f32(vmaxq_f32(max0, max1));
        int finite = lo >= -ER_FLOAT_MAX && hi <= ER_FLOAT_MAX;   /* false for NaN */
        for (; p < k; p++) {
            finite &= (row[p] < 0 ? -row[p] : row[p]) <= ER_FLOAT_MAX;
            lo = row[p] < lo ? row[p] : lo;
            hi = row[p] > hi ? row[p] : hi;
        }
        if (!finite) return ER_ERR_NONFINITE;
        er_quantize_row_u7(row, q + i * k, k, lo, hi, scale + i, zero + i, body);
    }
    return ER_OK;
}
#endif /* __aarch64__ */
