#include <math.h>
#include "harness.h"

/* Every variant against scalar, byte for byte; rows of mixed sign, without
 * negatives (must equal quantize_rows_s8 with zero 0), without positives, all
 * zero, and one whose range overflows float32. */
static void one_case(const er_variant *const *v, size_t nv, size_t m, size_t k, float range) {
    float *x = h_alloc(m * k * sizeof *x);
    h_fill_f32(x, m * k, range);
    if (m > 1) memset(x, 0, k * sizeof *x);                         /* all zero */
    if (m > 2) for (size_t p = 0; p < k; p++) x[2 * k + p] = x[2 * k + p] < 0 ? -x[2 * k + p] : x[2 * k + p];
    if (m > 3) for (size_t p = 0; p < k; p++) x[3 * k + p] = x[3 * k + p] > 0 ? -x[3 * k + p] : x[3 * k + p];
    if (m > 4) x[4 * k] = 3e38f, x[4 * k + k - 1] = -3e38f;          /* range overflows */
    int8_t *q_ref = h_alloc(m * k), *q = h_alloc(m * k), *q8 = h_alloc(m * k);
    float *s_ref = h_alloc(m * sizeof(float)), *s = h_alloc(m * sizeof(float));
    float *s8 = h_alloc(m * sizeof(float));
    int32_t *z_ref = h_alloc(m * sizeof(int32_t)), *z = h_alloc(m * sizeof(int32_t));
    char what[96];
    snprintf(what, sizeof what, "m=%zu k=%zu", m, k);
    h_check(((er_quantize_rows_u7_fn *)v[0]->fn)(x, m, k, q_ref, s_ref, z_ref) == ER_OK,
            "quantize_rows_u7", "scalar", what);
    int in_range = 1;
    for (size_t p = 0; p < m * k; p++) in_range &= q_ref[p] >= 0;
    for (size_t i = 0; i < m; i++) in_range &= z_ref[i] >= 0 && z_ref[i] <= 127;
    h_check(in_range, "quantize_rows_u7", "scalar", "q and zero in [0, 127]");
    if (m > 2) {    /* the row without negatives, as quantize_rows_s8 has it */
        const er_variant *s8_scalar;
        h_variants("quantize_rows_s8", &s8_scalar, 1);
        ((er_quantize_rows_s8_fn *)s8_scalar->fn)(x + 2 * k, 1, k, q8, s8);
        h_check(z_ref[2] == 0 && h_same_bytes(q8, q_ref + 2 * k, k) && s8[0] == s_ref[2],
                "quantize_rows_u7", "scalar", "non-negative row equals quantize_rows_s8");
    }
    for (size_t i = 1; i < nv; i++) {
        er_status st = ((er_quantize_rows_u7_fn *)v[i]->fn)(x, m, k, q, s, z);
        h_check(st == ER_OK && h_same_bytes(q, q_ref, m * k) &&
                    h_same_bytes(s, s_ref, m * sizeof(float)) &&
                    h_same_bytes(z, z_ref, m * sizeof(int32_t)),
                "quantize_rows_u7", v[i]->variant, what);
    }
    /* NaN and both infinities, in the SIMD part of a row (first element) and in
     * the scalar tail (last) */
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++)
        for (int at = 0; at < 2; at++) {
            size_t where = at ? m * k - 1 : (m - 1) * k;
            float kept = x[where];
            x[where] = bad[b];
            for (size_t i = 0; i < nv; i++)
                h_check(((er_quantize_rows_u7_fn *)v[i]->fn)(x, m, k, q, s, z) == ER_ERR_NONFINITE,
                        "quantize_rows_u7", v[i]->variant, "NaN and infinities must be refused");
            x[where] = kept;
        }
    free(x), free(q_ref), free(q), free(q8), free(s_ref), free(s), free(s8), free(z_ref), free(z);
}

void test_quantize_rows_u7(void) {
    const er_variant *v[8];
    size_t nv = h_variants("quantize_rows_u7", v, 8);
    static const size_t ks[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 1024};
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
        for (size_t m = 1; m <= 6; m++) one_case(v, nv, m, ks[a], m == 6 ? 1e-30f : 10.0f);
    /* Rows whose range is too small for 127 / range (below ~3.7e-37, subnormals
     * included; one all >= 0) quantize to 0 with scale 0 and zero 0 in every
     * variant, where inv = Inf had given zero points of INT32_MIN. */
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
        size_t k = ks[a];
        float *x = h_alloc(2 * k * sizeof *x);
        int8_t *q = h_alloc(2 * k);
        float s[2];
        int32_t z[2];
        for (size_t p = 0; p < k; p++) {
            x[p] = (p % 2 ? -1e-37f : 5e-38f);
            x[k + p] = 1e-45f * (float)(p % 7);
        }
        for (size_t i = 0; i < nv; i++) {
            memset(q, 55, 2 * k);
            er_status st = ((er_quantize_rows_u7_fn *)v[i]->fn)(x, 2, k, q, s, z);
            int zeros = 1;
            for (size_t p = 0; p < 2 * k; p++) zeros &= q[p] == 0;
            h_check(st == ER_OK && zeros && s[0] == 0.0f && s[1] == 0.0f && z[0] == 0 && z[1] == 0,
                    "quantize_rows_u7", v[i]->variant, "ranges below 127 / FLT_MAX quantize to 0");
        }
        free(x), free(q);
    }
}
