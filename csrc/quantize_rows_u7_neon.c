/* quantize_rows_u7 for aarch64 NEON: 8 floats per step. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "edgerun.h"
#include "quantize_rows_u7.h"

/* round_half_even(x * inv) + zero (FCVTNS rounds to nearest even), then the
 * saturating narrows and a max with 0 clamp to [0, 127]. */
static size_t body(const float *row, int8_t *q, size_t k, float inv, int32_t zero) {
    const int32x4_t vzero = vdupq_n_s32(zero);
    size_t p = 0;
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
    const float32x4_t big = vdupq_n_f32(ER_FLOAT_MAX);
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * k;
        float32x4_t vmin = vdupq_n_f32(0.0f), vmax = vmin;
        uint32x4_t ok = vdupq_n_u32(~0u);
        size_t p = 0;
        for (; p + 4 <= k; p += 4) {
            float32x4_t v = vld1q_f32(row + p);
            ok = vandq_u32(ok, vcleq_f32(vabsq_f32(v), big));
            vmin = vminq_f32(vmin, v);
            vmax = vmaxq_f32(vmax, v);
        }
        int finite = vminvq_u32(ok) != 0;
        float lo = vminvq_f32(vmin), hi = vmaxvq_f32(vmax);
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
