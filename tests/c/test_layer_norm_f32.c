#include <math.h>

#include "harness.h"

#define OP "layer_norm_f32"

/* The float64 value of y[i, j] from the same float32 inputs, v = x + r rounded
 * to float32 as the contract says (at 1e4 that rounding alone moves v by up to
 * 5e-4): the truth that every variant (and the scalar one first) must approach. */
static double v_at(const float *x, const float *r, size_t p) {
    return r ? (double)(x[p] + r[p]) : (double)x[p];
}

static double exact(const float *x, const float *r, const float *scale, const float *bias,
                    size_t i, size_t j, size_t n, float epsilon) {
    double mean = 0, var = 0;
    for (size_t p = 0; p < n; p++) mean += v_at(x, r, i * n + p);
    mean /= (double)n;
    for (size_t p = 0; p < n; p++) {
        double c = v_at(x, r, i * n + p) - mean;
        var += c * c;
    }
    var /= (double)n;
    double v = v_at(x, r, i * n + j);
    return (v - mean) / sqrt(var + epsilon) * scale[j] + (bias ? bias[j] : 0);
}

/* |a - b| <= 1e-5 * |b| + 1e-5 * out_scale, out_scale = max |scale| + max |bias|:
 * the errors of the sums are relative to the row's spread, i.e. to the output
 * scale, not to each (possibly near-zero) output. */
static int close_to(const float *a, const float *b, size_t count, float out_scale) {
    return h_close_f32(a, b, count, 1e-5f, 1e-5f * out_scale);
}

static void one_case(const er_variant *const *v, size_t nv, size_t rows, size_t n, int with_bias,
                     int with_residual, float offset, float epsilon) {
    size_t count = rows * n;
    float *x = h_alloc(count * sizeof *x), *r = h_alloc(count * sizeof *r);
    float *scale = h_alloc(n * sizeof *scale), *bias = h_alloc(n * sizeof *bias);
    float *y_ref = h_alloc(count * sizeof *y_ref), *y = h_alloc(count * sizeof *y);
    float *y_in = h_alloc(count * sizeof *y_in);
    h_fill_f32(x, count, 3.0f);
    for (size_t p = 0; p < count; p++) x[p] += offset;
    h_fill_f32(r, count, 1.0f);
    h_fill_f32(scale, n, 0.5f);
    h_fill_f32(bias, n, 0.5f);
    for (size_t j = 0; j < n; j++) scale[j] += 1.0f;
    const float *res = with_residual ? r : NULL, *b = with_bias ? bias : NULL;
    float out_scale = 1.5f + (with_bias ? 0.5f : 0.0f);
    char what[128];
    snprintf(what, sizeof what, "rows=%zu n=%zu bias=%d residual=%d offset=%g eps=%g", rows, n,
             with_bias, with_residual, offset, epsilon);

    er_status st = ((er_layer_norm_f32_fn *)v[0]->fn)(x, res, scale, b, y_ref, rows, n, epsilon);
    int ok = st == ER_OK;
    for (size_t i = 0; i < rows && ok; i++)
        for (size_t j = 0; j < n && ok; j++) {
            double e = exact(x, res, scale, b, i, j, n, epsilon);
            ok = fabs(y_ref[i * n + j] - e) <= 1e-5 * fabs(e) + 1e-5 * out_scale;
        }
    h_check(ok, OP, "scalar", what);

    for (size_t k = 0; k < nv; k++) {
        er_layer_norm_f32_fn *fn = (er_layer_norm_f32_fn *)v[k]->fn;
        st = fn(x, res, scale, b, y, rows, n, epsilon);
        h_check(st == ER_OK && close_to(y, y_ref, count, out_scale), OP, v[k]->variant, what);
        /* In place over x, and (with a residual) over the residual: the same bits. */
        memcpy(y_in, x, count * sizeof *x);
        st = fn(y_in, res, scale, b, y_in, rows, n, epsilon);
        h_check(st == ER_OK && h_same_bytes(y_in, y, count * sizeof *y), OP, v[k]->variant,
                "in place over x");
        if (with_residual) {
            memcpy(y_in, r, count * sizeof *r);
            st = fn(x, y_in, scale, b, y_in, rows, n, epsilon);
            h_check(st == ER_OK && h_same_bytes(y_in, y, count * sizeof *y), OP, v[k]->variant,
                    "in place over the residual");
        }
    }
    free(x), free(r), free(scale), free(bias), free(y_ref), free(y), free(y_in);
}

/* A constant row has c = 0 exactly, so y = bias exactly (0 without bias). */
static void constant_rows(const er_variant *const *v, size_t nv) {
    enum { N = 37 };
    float x[2 * N], scale[N], bias[N], y[2 * N];
    for (size_t p = 0; p < 2 * N; p++) x[p] = p < N ? 12345.678f : -3.0f;
    h_fill_f32(scale, N, 2.0f);
    h_fill_f32(bias, N, 2.0f);
    for (size_t k = 0; k < nv; k++) {
        er_layer_norm_f32_fn *fn = (er_layer_norm_f32_fn *)v[k]->fn;
        int ok = fn(x, NULL, scale, bias, y, 2, N, 1e-5f) == ER_OK;
        for (size_t p = 0; p < 2 * N; p++) ok &= y[p] == bias[p % N];
        ok &= fn(x, NULL, scale, NULL, y, 2, N, 1e-5f) == ER_OK;
        for (size_t p = 0; p < 2 * N; p++) ok &= y[p] == 0.0f;
        /* epsilon 0: 0 * (1 / sqrt(0)) = NaN, as in numpy and ONNX. */
        ok &= fn(x, NULL, scale, bias, y, 2, N, 0.0f) == ER_OK;
        for (size_t p = 0; p < 2 * N; p++) ok &= y[p] != y[p];
        h_check(ok, OP, v[k]->variant, "constant rows give the bias");
    }
}

static void bad_arguments(const er_variant *const *v, size_t nv) {
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, scale[4] = {1, 1, 1, 1}, y[8];
    for (size_t k = 0; k < nv; k++) {
        er_layer_norm_f32_fn *fn = (er_layer_norm_f32_fn *)v[k]->fn;
        int ok = fn(NULL, NULL, scale, NULL, y, 2, 4, 1e-5f) == ER_ERR_ARGUMENT;
        ok &= fn(x, NULL, NULL, NULL, y, 2, 4, 1e-5f) == ER_ERR_ARGUMENT;
        ok &= fn(x, NULL, scale, NULL, NULL, 2, 4, 1e-5f) == ER_ERR_ARGUMENT;
        ok &= fn(x, NULL, scale, NULL, y, 2, 4, -1e-5f) == ER_ERR_ARGUMENT;
        ok &= fn(x, NULL, scale, NULL, y, 2, 4, nanf("")) == ER_ERR_ARGUMENT;
        ok &= fn(x, NULL, scale, NULL, y, 2, 4, 1.0f / 0.0f) == ER_ERR_ARGUMENT;
        /* Empty problems are no-ops (and read nothing). */
        ok &= fn(x, NULL, scale, NULL, y, 0, 4, 1e-5f) == ER_OK;
        ok &= fn(x, NULL, scale, NULL, y, 2, 0, 1e-5f) == ER_OK;
        h_check(ok, OP, v[k]->variant, "argument checks");
    }
}

void test_layer_norm_f32(void) {
    const er_variant *v[8];
    size_t nv = h_variants(OP, v, 8);
    static const size_t ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 256, 768, 1000};
    static const size_t rows[] = {1, 3};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < 2; b++)
            for (int flags = 0; flags < 4; flags++) {
                one_case(v, nv, rows[b], ns[a], flags & 1, flags >> 1, 0.0f, 1e-5f);
                one_case(v, nv, rows[b], ns[a], flags & 1, flags >> 1, 1e4f, 1e-5f);
            }
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        if (ns[a] > 1) one_case(v, nv, 2, ns[a], 1, 1, 0.0f, 0.0f); /* n = 1: 0 / 0 */
        one_case(v, nv, 2, ns[a], 1, 0, -1e4f, 1e-12f);
    }
    constant_rows(v, nv);
    bad_arguments(v, nv);
}
