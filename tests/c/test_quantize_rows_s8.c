#include "harness.h"

static void one_case(const er_variant *const *v, size_t nv, size_t m, size_t k, float range) {
    float *x = h_alloc(m * k * sizeof *x);
    h_fill_f32(x, m * k, range);
    if (m > 1) memset(x, 0, k * sizeof *x); /* an all-zero row */
    int8_t *q_ref = h_alloc(m * k), *q = h_alloc(m * k);
    float *s_ref = h_alloc(m * sizeof(float)), *s = h_alloc(m * sizeof(float));
    ((er_quantize_rows_s8_fn *)v[0]->fn)(x, m, k, q_ref, s_ref);
    for (size_t i = 1; i < nv; i++) {
        er_status st = ((er_quantize_rows_s8_fn *)v[i]->fn)(x, m, k, q, s);
        char what[96];
        snprintf(what, sizeof what, "m=%zu k=%zu", m, k);
        h_check(st == ER_OK && h_same_bytes(q, q_ref, m * k) &&
                    h_same_bytes(s, s_ref, m * sizeof(float)),
                "quantize_rows_s8", v[i]->variant, what);
    }
    /* Every variant refuses non-finite input. */
    x[m * k - 1] = 1.0f / 0.0f;
    for (size_t i = 0; i < nv; i++)
        h_check(((er_quantize_rows_s8_fn *)v[i]->fn)(x, m, k, q, s) == ER_ERR_NONFINITE,
                "quantize_rows_s8", v[i]->variant, "Inf must be refused");
    free(x), free(q_ref), free(q), free(s_ref), free(s);
}

void test_quantize_rows_s8(void) {
    const er_variant *v[8];
    size_t nv = h_variants("quantize_rows_s8", v, 8);
    static const size_t ks[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 1024};
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
        for (size_t m = 1; m <= 4; m++) one_case(v, nv, m, ks[a], m == 3 ? 1e-30f : 10.0f);
    /* Rows too small for 127 / amax (below ~3.7e-37, subnormals included) quantize
     * to 0 with scale 0 in every variant; one just above is still quantized. */
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
        size_t k = ks[a];
        float *x = h_alloc(2 * k * sizeof *x);
        int8_t *q = h_alloc(2 * k);
        float s[2];
        for (size_t p = 0; p < k; p++) {
            x[p] = (p % 2 ? -3e-37f : 1e-45f * (float)(p % 5));
            x[k + p] = (p % 3 ? 4e-37f : -2e-37f);
        }
        for (size_t i = 0; i < nv; i++) {
            memset(q, 55, 2 * k);
            er_status st = ((er_quantize_rows_s8_fn *)v[i]->fn)(x, 2, k, q, s);
            int zeros = 1, big = 0;
            for (size_t p = 0; p < k; p++) zeros &= q[p] == 0, big |= q[k + p] == 127;
            h_check(st == ER_OK && zeros && s[0] == 0.0f && (k < 2 || (big && s[1] > 0.0f)),
                    "quantize_rows_s8", v[i]->variant, "rows below 127 / FLT_MAX quantize to 0");
        }
        free(x), free(q);
    }
}
