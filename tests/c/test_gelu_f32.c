#include <math.h>

#include "harness.h"

/* SIMD against the scalar C, which computes in double (float32-rounded results).
 * erf form: the SIMD erfc fit is within 5e-7 relative everywhere (pytest checks
 * that against float64 math), so 1e-6.  tanh form: float32 rounding of
 * u = sqrt(2/pi)(x + 0.044715 x^3) costs up to ~2e-7 relative per unit of 2|u|
 * in exp(-2u), so 1e-6 + 2e-7 * 2|u|.  atol 1e-36: subnormal outputs, and
 * armv7 NEON, which flushes subnormals to zero: in the tail exp(-2|u|) or
 * erfc goes subnormal (-> 0) while x times it is still just normal. */
static int close_gelu(const float *x, const float *y, const float *ref, size_t n, int tanh_form) {
    for (size_t i = 0; i < n; i++) {
        if (isnan(ref[i]) || isnan(y[i])) {
            if (!(isnan(ref[i]) && isnan(y[i]))) return 0;
            continue;
        }
        if (isinf(ref[i]) || isinf(y[i])) {
            if (y[i] != ref[i]) return 0;
            continue;
        }
        double v = x[i], rtol = 1e-6;
        if (tanh_form) {
            double two_u = fabs(2 * 0.7978845608028654 * (v + 0.044715 * v * v * v));
            rtol += 2e-7 * (two_u < 200 ? two_u : 200);
        }
        if (!(fabs((double)y[i] - ref[i]) <= rtol * fabs(ref[i]) + 1e-36)) {
            printf("  x=%.9g y=%.9g ref=%.9g\n", x[i], y[i], ref[i]);
            return 0;
        }
    }
    return 1;
}

static void one_case(const er_variant *const *v, size_t nv, const float *x, size_t n,
                     int tanh_form, const char *label) {
    float *ref = h_alloc(n * sizeof *ref), *y = h_alloc(n * sizeof *y);
    float *inplace = h_alloc(n * sizeof *inplace);
    h_check(((er_gelu_f32_fn *)v[0]->fn)(x, ref, n, tanh_form) == ER_OK, "gelu_f32", "scalar",
            label);
    for (size_t i = 1; i < nv; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s n=%zu %s", label, n, tanh_form ? "tanh" : "erf");
        er_status st = ((er_gelu_f32_fn *)v[i]->fn)(x, y, n, tanh_form);
        h_check(st == ER_OK && close_gelu(x, y, ref, n, tanh_form), "gelu_f32", v[i]->variant,
                what);
        /* In place gives the same bits as out of place. */
        if (n) memcpy(inplace, x, n * sizeof *x);
        st = ((er_gelu_f32_fn *)v[i]->fn)(inplace, inplace, n, tanh_form);
        snprintf(what, sizeof what, "%s n=%zu %s in place", label, n, tanh_form ? "tanh" : "erf");
        h_check(st == ER_OK && h_same_bytes(inplace, y, n * sizeof *y), "gelu_f32", v[i]->variant,
                what);
    }
    free(ref), free(y), free(inplace);
}

/* The erf form's contract, on every ISA this harness runs (pytest checks it too,
 * but not on armv7): within 5e-7 relative of float64 GELU over a dense sweep of
 * [-10, 10], wherever the result is a normal float. */
static void erf_contract(const er_variant *const *v, size_t nv) {
    size_t n = 40001;
    float *x = h_alloc(n * sizeof *x), *y = h_alloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) x[i] = (float)(-10.0 + 20.0 * (double)i / (double)(n - 1));
    for (size_t i = 1; i < nv; i++) {
        h_check(((er_gelu_f32_fn *)v[i]->fn)(x, y, n, 0) == ER_OK, "gelu_f32", v[i]->variant,
                "erf sweep");
        double worst = 0;
        for (size_t j = 0; j < n; j++) {
            double exact = 0.5 * x[j] * erfc(-x[j] * 0.70710678118654752440);
            if (fabs(exact) > 1.1754943508222875e-38) {
                double e = fabs(y[j] - exact) / fabs(exact);
                worst = e > worst ? e : worst;
            }
        }
        printf("gelu_f32 %s: erf form within %.3g of float64 over [-10, 10]\n", v[i]->variant,
               worst);
        h_check(worst < 5e-7, "gelu_f32", v[i]->variant, "erf form within 5e-7 of float64");
    }
    free(x), free(y);
}

void test_gelu_f32(void) {
    const er_variant *v[8];
    size_t nv = h_variants("gelu_f32", v, 8);
    static const size_t sizes[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 1000, 1027};
    static const float ranges[] = {1.0f, 4.0f, 12.0f, 40.0f, 1e-3f};
    erf_contract(v, nv);
    for (int tanh_form = 0; tanh_form <= 1; tanh_form++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
                float *x = h_alloc((sizes[s] + 1) * sizeof *x);
                h_fill_f32(x, sizes[s], ranges[r]);
                one_case(v, nv, x, sizes[s], tanh_form, "random");
                free(x);
            }
        /* Special values, each in a vector lane and again among the leftovers. */
        const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e9f, -1e9f,
                                  3.4e38f, -3.4e38f, 1e-40f, -1e-40f, 20.0f, -20.0f, 25.0f,
                                  -25.0f, -5.5f, -10.0f, 88.0f, -88.0f, 1e-20f, -1e-20f,
                                  2e19f, -2e19f, 1.0f};
        float x[24 + 7];
        memcpy(x, specials, sizeof specials);
        memcpy(x + 24, specials, 7 * sizeof *x);
        one_case(v, nv, x, 24 + 7, tanh_form, "specials");
        /* A dense sweep of [-12, 12]. */
        size_t n = 48001;
        float *sweep = h_alloc(n * sizeof *sweep);
        for (size_t i = 0; i < n; i++) sweep[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
        one_case(v, nv, sweep, n, tanh_form, "sweep");
        free(sweep);
    }
}
