#include <math.h>

#include "harness.h"

/* SIMD against the scalar C: the exps differ by <= 2 ulp (vexp.h against libm
 * expf), the sums by their order, so rtol 2e-6; atol 1e-37 for subnormal
 * outputs (armv7 NEON flushes them).  NaN where the scalar has NaN. */
static int close_softmax(const float *y, const float *ref, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (isnan(ref[i]) || isnan(y[i])) {
            if (!(isnan(ref[i]) && isnan(y[i]))) return 0;
        } else if (!(fabsf(y[i] - ref[i]) <= 2e-6f * fabsf(ref[i]) + 1e-37f)) {
            printf("  y=%.9g ref=%.9g\n", y[i], ref[i]);
            return 0;
        }
    }
    return 1;
}

static void one_case(const er_variant *const *v, size_t nv, const float *x, size_t rows,
                     size_t n, const char *label) {
    size_t total = rows * n;
    float *ref = h_alloc(total * sizeof *ref), *y = h_alloc(total * sizeof *y);
    float *inplace = h_alloc(total * sizeof *inplace);
    h_check(((er_softmax_f32_fn *)v[0]->fn)(x, ref, rows, n) == ER_OK, "softmax_f32", "scalar",
            label);
    for (size_t i = 1; i < nv; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s rows=%zu n=%zu", label, rows, n);
        er_status st = ((er_softmax_f32_fn *)v[i]->fn)(x, y, rows, n);
        h_check(st == ER_OK && close_softmax(y, ref, total), "softmax_f32", v[i]->variant, what);
        if (total) memcpy(inplace, x, total * sizeof *x);
        st = ((er_softmax_f32_fn *)v[i]->fn)(inplace, inplace, rows, n);
        snprintf(what, sizeof what, "%s rows=%zu n=%zu in place", label, rows, n);
        h_check(st == ER_OK && h_same_bytes(inplace, y, total * sizeof *y), "softmax_f32",
                v[i]->variant, what);
    }
    /* The scalar C's edge semantics (numpy's; pytest checks them against numpy
     * too): masked entries are exactly 0, non-finite rows all NaN. */
    if (strcmp(label, "masks") == 0) {
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + r * n, *yr = ref + r * n;
            int nan_row = 0, all_neg_inf = 1;
            float max = -INFINITY;
            for (size_t j = 0; j < n; j++) {
                nan_row |= isnan(xr[j]) || xr[j] == INFINITY;
                all_neg_inf &= xr[j] == -INFINITY;
                max = xr[j] > max ? xr[j] : max;
            }
            for (size_t j = 0; j < n; j++) {
                int ok = (nan_row || all_neg_inf)        ? isnan(yr[j])
                         : (xr[j] <= -1e9f && max > -5.0f) ? yr[j] == 0.0f
                                                           : yr[j] > 0.0f;
                h_check(ok, "softmax_f32", "scalar", "mask / non-finite row semantics");
            }
        }
    }
    free(ref), free(y), free(inplace);
}

/* ---- the vector exp of vexp.h, on each ISA this CPU runs ---------------------- */
typedef void vexp_array_fn(const float *x, const float *lo, float *y, size_t n);

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "vexp.h"
/* The general exp (GELU's tanh form). */
static void vexp_array_avx2(const float *x, const float *lo, float *y, size_t n) {
    (void)lo;
    for (size_t i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, er_vexp_avx2(_mm256_loadu_ps(x + i)));
}
/* GELU's exp, with the one-factor finish. */
static void vexp_ftz_sum_avx2(const float *hi, const float *lo, float *y, size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, er_vexp_sum_ftz_avx2(_mm256_loadu_ps(hi + i), _mm256_loadu_ps(lo + i)));
}
/* softmax's: exp(x) for x <= 0 with the one-factor finish. */
static void vexp_nonpos_ftz_avx2(const float *x, const float *lo, float *y, size_t n) {
    (void)lo;
    for (size_t i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, er_vexp_nonpos_ftz_avx2(_mm256_loadu_ps(x + i)));
}
#pragma GCC pop_options
#define VEXP_FTZ_SUM_FN vexp_ftz_sum_avx2
#define VEXP_NONPOS_FTZ_FN vexp_nonpos_ftz_avx2
#define VEXP_ISA ER_ISA_AVX2
#define VEXP_FN vexp_array_avx2
#elif defined(__ARM_NEON)
#include "vexp.h"
/* The general exp (GELU's tanh form, the generic NEON softmax). */
static void vexp_array_neon(const float *x, const float *lo, float *y, size_t n) {
    (void)lo;
    for (size_t i = 0; i + 4 <= n; i += 4) vst1q_f32(y + i, er_vexp_neon(vld1q_f32(x + i)));
}
#define VEXP_ISA ER_ISA_NEON
#define VEXP_FN vexp_array_neon
/* GELU's exp, with the one-factor finish. */
static void vexp_ftz_sum_neon(const float *hi, const float *lo, float *y, size_t n) {
    for (size_t i = 0; i + 4 <= n; i += 4)
        vst1q_f32(y + i, er_vexp_sum_ftz_neon(vld1q_f32(hi + i), vld1q_f32(lo + i)));
}
#define VEXP_FTZ_SUM_FN vexp_ftz_sum_neon
#if defined(__aarch64__)
/* The aarch64 GELU loop's form of it, fed -lo. */
static void vexp_ftz_diff_a64(const float *hi, const float *lo, float *y, size_t n) {
    const er_vexp_a64_consts k = er_vexp_a64_load();
    for (size_t i = 0; i + 4 <= n; i += 4)
        vst1q_f32(y + i, er_vexp_diff_ftz_a64(vld1q_f32(hi + i), vnegq_f32(vld1q_f32(lo + i)), k));
}
#define VEXP_FTZ_SUM_A64_FN vexp_ftz_diff_a64
/* The non-positive-argument exp of the aarch64 softmax loop. */
#define VEXP_NONPOS_FN vexp_array_nonpos_a64
static void vexp_array_nonpos_a64(const float *x, const float *lo, float *y, size_t n) {
    (void)lo;
    const er_vexp_a64_consts k = er_vexp_a64_load();
    for (size_t i = 0; i + 4 <= n; i += 4) vst1q_f32(y + i, er_vexp_nonpos_a64(vld1q_f32(x + i), k));
}
#endif
#endif

#ifdef VEXP_FN
/* Error of y against exp(x + lo) in double, in ulps of the float result (for
 * normal results; subnormal ones in units of the smallest subnormal). */
static double ulp_error(float y, double exact) {
    double ulp = exact < 1.1754943508222875e-38 ? 1.4012984643248171e-45
                                                : ldexp(1.0, ilogb(exact) - 23);
    return fabs((double)y - exact) / ulp;
}

/* fn over a dense sweep of [-104, x_max] (results from 0 through the subnormals
 * up to overflow when x_max is 89), then the values masks and overflow give;
 * x_max 0 is an exp for non-positive arguments only.  (The exp(hi + lo) forms are
 * GELU's one-factor ones: test_vexp_ftz_sum.) */
static void test_vexp(vexp_array_fn *fn, const char *name, float x_max) {
    if (!er_cpu_has(VEXP_ISA)) return;
    size_t n = 1u << 20;
    float *x = h_alloc(n * sizeof *x), *y = h_alloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) x[i] = -104.0f + (x_max + 104.0f) * (float)((double)i / (double)n);
    fn(x, NULL, y, n);
    double worst = 0, worst_x = 0;
#if defined(__arm__)
    const double min_exact = 1.1754943508222875e-38; /* armv7 NEON flushes subnormals */
#else
    const double min_exact = 0.0;
#endif
    for (size_t i = 0; i < n; i++) {
        double exact = exp((double)x[i]);
        if (exact < min_exact || exact > 3.4028234663852886e38) continue;
        double e = ulp_error(y[i], exact);
        if (e > worst) worst = e, worst_x = x[i];
    }
    printf("%s: max error %.3f ulp (at x = %.7g) over [-104, %g]\n", name, worst, worst_x, x_max);
    h_check(worst <= 2.0, name, er_isa_name(VEXP_ISA), "max error <= 2 ulp");
    /* Masks and overflow: exactly 0 / inf; NaN stays NaN; exp(0) = 1. */
    const float special[8] = {-1e9f, -3.4e38f, -INFINITY, -104.5f, NAN, 0.0f, -0.0f, 0.0f};
    float out[8];
    fn(special, NULL, out, 8);
    int ok = isnan(out[4]) && out[5] == 1.0f && out[6] == 1.0f;
    for (int i = 0; i < 4; i++) ok &= out[i] == 0.0f && !signbit(out[i]);
    if (x_max > 88.73f) {
        const float overflow[8] = {INFINITY, 89.0f, 1e9f, 88.8f, 3.4e38f, 100.0f, 88.75f, 1e30f};
        fn(overflow, NULL, out, 8);     /* 8: a whole AVX2 vector */
        for (int i = 0; i < 8; i++) ok &= out[i] == INFINITY;
    }
    h_check(ok, name, er_isa_name(VEXP_ISA), "0 below -104, exp(0) = 1, NaN kept, inf past 88.73");
    free(x), free(y);
}
#endif

#ifdef VEXP_FTZ_SUM_FN
/* The one-factor exps (er_vexp_finish_ftz_*): <= 2.5 ulp down to FLT_MIN, then
 * 0 or a subnormal below FLT_MIN, never more (armv7 NEON flushes those to 0). */
static int below_flt_min(float y) { return y >= 0.0f && y < 1.1754943508222875e-38f; }

/* fn(x, lo) against exp(x + lo) over the sweep in x (and lo) */
static void check_ftz_sweep(vexp_array_fn *fn, const char *name, const float *x, const float *lo,
                            float *y, size_t n) {
    fn(x, lo, y, n);
    double worst = 0, worst_x = 0;
    int tiny_ok = 1;
    for (size_t i = 0; i < n; i++) {
        double exact = exp((double)x[i] + (lo ? (double)lo[i] : 0.0));
        if (exact < 1.1754943508222875e-38) {
            tiny_ok &= below_flt_min(y[i]);
            continue;
        }
        double e = ulp_error(y[i], exact);
        if (e > worst) worst = e, worst_x = (double)x[i] + (lo ? lo[i] : 0.0f);
    }
    printf("%s: max error %.3f ulp (at %.7g)\n", name, worst, worst_x);
    h_check(worst <= 2.5, name, er_isa_name(VEXP_ISA), "max error <= 2.5 ulp down to FLT_MIN");
    h_check(tiny_ok, name, er_isa_name(VEXP_ISA), "below FLT_MIN: 0 or a subnormal");
}

/* GELU's exp(hi + lo): hi = -x^2/2 for |x| <= 20, lo its rounding error. */
static void test_vexp_ftz_sum(vexp_array_fn *fn, const char *name) {
    if (!er_cpu_has(VEXP_ISA)) return;
    size_t n = 1u << 20;
    float *hi = h_alloc(n * sizeof *hi), *lo = h_alloc(n * sizeof *lo), *y = h_alloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) {
        float a = 20.0f * (float)((double)i / (double)n);
        hi[i] = -0.5f * (a * a);
        lo[i] = (float)(-0.5 * ((double)a * a - (double)(a * a)));
    }
    check_ftz_sweep(fn, name, hi, lo, y, n);
    float hi8[8] = {0.0f, -200.0f, NAN, -87.0f, -88.5f, -0.0f, -1e-30f, 0.0f};
    float lo8[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.2e-7f}, out[8];
    fn(hi8, lo8, out, 8);
    int ok = out[0] == 1.0f && out[1] == 0.0f && !signbit(out[1]) && isnan(out[2]) &&
             ulp_error(out[3], exp(-87.0)) <= 2.5 && below_flt_min(out[4]) && out[5] == 1.0f &&
             out[6] == 1.0f && ulp_error(out[7], exp(1.2e-7)) <= 2.5;
    h_check(ok, name, er_isa_name(VEXP_ISA), "exp(0) = 1, 0 at -200, NaN kept, normal at -87");
    free(hi), free(lo), free(y);
}
#endif

#ifdef VEXP_NONPOS_FTZ_FN
/* softmax's exp(x) over [-104, 0], masks and NaN included. */
static void test_vexp_nonpos_ftz(vexp_array_fn *fn, const char *name) {
    if (!er_cpu_has(VEXP_ISA)) return;
    size_t n = 1u << 20;
    float *x = h_alloc(n * sizeof *x), *y = h_alloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) x[i] = -104.0f * (float)((double)i / (double)n);
    check_ftz_sweep(fn, name, x, NULL, y, n);
    const float masks[8] = {-1e9f, -3.4e38f, -INFINITY, -104.5f, NAN, 0.0f, -0.0f, -87.0f};
    float out[8];
    fn(masks, NULL, out, 8);
    int ok = isnan(out[4]) && out[5] == 1.0f && out[6] == 1.0f && ulp_error(out[7], exp(-87.0)) <= 2.5;
    for (int i = 0; i < 4; i++) ok &= out[i] == 0.0f && !signbit(out[i]);
    h_check(ok, name, er_isa_name(VEXP_ISA), "masks give +0, NaN kept, exp(0) = 1");
    free(x), free(y);
}
#endif

void test_softmax_f32(void) {
#ifdef VEXP_FTZ_SUM_FN
    test_vexp_ftz_sum(VEXP_FTZ_SUM_FN, "vexp_sum_ftz");
#endif
#ifdef VEXP_FTZ_SUM_A64_FN
    test_vexp_ftz_sum(VEXP_FTZ_SUM_A64_FN, "vexp_diff_ftz_a64");
#endif
#ifdef VEXP_NONPOS_FTZ_FN
    test_vexp_nonpos_ftz(VEXP_NONPOS_FTZ_FN, "vexp_nonpos_ftz");
#endif
#ifdef VEXP_FN
    test_vexp(VEXP_FN, "vexp", 89.0f);
#endif
#ifdef VEXP_NONPOS_FN
    test_vexp(VEXP_NONPOS_FN, "vexp_nonpos", 0.0f);
#endif
    const er_variant *v[8];
    size_t nv = h_variants("softmax_f32", v, 8);
    static const size_t widths[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65,
                                    128, 1000, 1027};
    static const float ranges[] = {1.0f, 8.0f, 100.0f, 1e4f};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
        for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
            for (size_t rows = 0; rows <= 3; rows++) {
                size_t n = widths[w];
                float *x = h_alloc((rows * n + 1) * sizeof *x);
                h_fill_f32(x, rows * n, ranges[r]);
                one_case(v, nv, x, rows, n, "random");
                free(x);
            }
    /* Masks and non-finite rows, the bad entry in the vector part and among the
     * leftovers: row 0 masked every 3rd entry (-1e9), row 1 -inf every 2nd,
     * row 2 -3.4e38 once, row 3 a NaN, row 4 a +inf, row 5 all -inf. */
    for (size_t w = 1; w < sizeof widths / sizeof widths[0]; w++) {
        size_t n = widths[w], rows = 6;
        float *x = h_alloc(rows * n * sizeof *x);
        h_fill_f32(x, rows * n, 5.0f);
        for (size_t j = 0; j < n; j++) {
            if (j % 3 == 1) x[j] = -1e9f;
            if (j % 2 == 1) x[n + j] = -INFINITY;
            x[5 * n + j] = -INFINITY;
        }
        x[2 * n + n / 2] = -3.4e38f;
        x[3 * n + n - 1] = NAN;
        x[4 * n + (n > 8 ? 3 : 0)] = INFINITY;
        one_case(v, nv, x, rows, n, "masks");
        free(x);
    }
}
