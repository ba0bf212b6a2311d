#include "harness.h"

/* Every variant against scalar on x [m, k], w [n, k] (zero and sums: an
 * asymmetric x, or NULL), with a float epilogue (scales, bias, relu, ldy > n)
 * and with an int8 requantized output; both must match byte for byte.  With
 * `shifted` (x - zero, symmetric) the scalar asymmetric result must also equal
 * the scalar symmetric one on it: the same products summed. */
static void compare_variants(const er_variant *const *v, size_t nv, const int8_t *x,
                             const int8_t *w, size_t m, size_t n, size_t k, const int32_t *zero,
                             const int32_t *sums, const int8_t *shifted, const char *what) {
    float *sx = h_alloc(m * sizeof(float)), *sw = h_alloc(n * sizeof(float));
    float *bias = h_alloc(n * sizeof(float));
    h_fill_f32(sx, m, 0.01f);
    h_fill_f32(sw, n, 0.01f);
    h_fill_f32(bias, n, 5.0f);
    size_t ldy = n + 3;
    float *y_ref = h_alloc(m * ldy * sizeof(float)), *y = h_alloc(m * ldy * sizeof(float));
    int8_t *q_ref = h_alloc(m * ldy), *q = h_alloc(m * ldy);
    er_epilogue ef = {sx, sw, bias, (int)((m + k) & 1), y_ref, NULL, 0.0f, ldy, zero, sums};
    er_epilogue eq = {sx, sw, bias, 0, NULL, q_ref, 1.0f / (float)(k + 1), ldy, zero, sums};
    er_gemm_s8_fn *ref = (er_gemm_s8_fn *)v[0]->fn;
    h_check(ref(x, w, m, n, k, &ef) == ER_OK && ref(x, w, m, n, k, &eq) == ER_OK, "gemm_s8",
            "scalar", what);
    if (shifted) {
        er_epilogue symmetric = ef;
        symmetric.y_f32 = y, symmetric.row_zero = NULL, symmetric.col_sum = NULL;
        h_check(ref(shifted, w, m, n, k, &symmetric) == ER_OK &&
                    h_same_bytes(y, y_ref, m * ldy * sizeof(float)),
                "gemm_s8", "scalar", what);
    }
    ef.y_f32 = y;
    eq.y_s8 = q;
    for (size_t i = 1; i < nv; i++) {
        er_gemm_s8_fn *fn = (er_gemm_s8_fn *)v[i]->fn;
        memset(y, 0, m * ldy * sizeof(float));
        memset(q, 0, m * ldy);
        h_check(fn(x, w, m, n, k, &ef) == ER_OK && fn(x, w, m, n, k, &eq) == ER_OK &&
                    h_same_bytes(y, y_ref, m * ldy * sizeof(float)) &&
                    h_same_bytes(q, q_ref, m * ldy),
                "gemm_s8", v[i]->variant, what);
    }
    free(sx), free(sw), free(bias), free(y_ref), free(y), free(q_ref), free(q);
}

/* A symmetric x: random, only +-127 (`extreme`: the vpmaddubsw saturation trap
 * and int16 overflow), or after a ReLU (`nonneg`: the AVX2 path without vpsignb). */
static void one_case(const er_variant *const *v, size_t nv, size_t m, size_t n, size_t k,
                     int extreme, int nonneg) {
    int8_t *x = h_alloc(m * k), *w = h_alloc(n * k);
    if (extreme) {
        for (size_t p = 0; p < m * k; p++) x[p] = h_rand() & 1 ? 127 : -127;
        for (size_t p = 0; p < n * k; p++) w[p] = h_rand() & 1 ? 127 : -127;
    } else {
        h_fill_s8(x, m * k, -127, 127);
        h_fill_s8(w, n * k, -127, 127);
    }
    if (nonneg)
        for (size_t p = 0; p < m * k; p++) x[p] = (int8_t)(x[p] < 0 ? -x[p] : x[p]);
    if (m > 1) memset(x + k, 0, k); /* an all-zero row of x */
    char what[96];
    snprintf(what, sizeof what, "m=%zu n=%zu k=%zu extreme=%d nonneg=%d", m, n, k, extreme, nonneg);
    compare_variants(v, nv, x, w, m, n, k, NULL, NULL, NULL, what);
    free(x), free(w);
}

/* x all +127, w all -127: every output is exactly -k * 16129, which at large k
 * overflows any int16 intermediate that is not handled with care. */
static void extreme_sum(const er_variant *const *v, size_t nv, size_t m, size_t n, size_t k) {
    int8_t *x = h_alloc(m * k), *w = h_alloc(n * k);
    memset(x, 127, m * k);
    memset(w, -127, n * k);
    float *y = h_alloc(m * n * sizeof(float));
    er_epilogue ep = {NULL, NULL, NULL, 0, y, NULL, 0.0f, n, NULL, NULL};
    for (size_t i = 0; i < nv; i++) {
        int ok = ((er_gemm_s8_fn *)v[i]->fn)(x, w, m, n, k, &ep) == ER_OK;
        for (size_t e = 0; e < m * n; e++) ok &= y[e] == (float)(-(int32_t)k * 16129);
        h_check(ok, "gemm_s8", v[i]->variant, "all +127 x all -127 sums exactly");
    }
    free(x), free(w), free(y);
}

/* The contract's thread split: columns [0, n1) and [n1, n) computed by
 * offsetting w, col_scale, bias and y, keeping ldy, give the full result. */
static void column_slices(const er_variant *const *v, size_t nv, size_t m, size_t n, size_t k,
                          size_t n1) {
    int8_t *x = h_alloc(m * k), *w = h_alloc(n * k);
    h_fill_s8(x, m * k, -127, 127);
    h_fill_s8(w, n * k, -127, 127);
    float *sw = h_alloc(n * sizeof(float)), *bias = h_alloc(n * sizeof(float));
    h_fill_f32(sw, n, 0.01f);
    h_fill_f32(bias, n, 1.0f);
    float *y_full = h_alloc(m * n * sizeof(float)), *y = h_alloc(m * n * sizeof(float));
    for (size_t i = 0; i < nv; i++) {
        er_gemm_s8_fn *fn = (er_gemm_s8_fn *)v[i]->fn;
        er_epilogue full = {NULL, sw, bias, 1, y_full, NULL, 0.0f, n, NULL, NULL};
        er_epilogue left = {NULL, sw, bias, 1, y, NULL, 0.0f, n, NULL, NULL};
        er_epilogue right = {NULL, sw + n1, bias + n1, 1, y + n1, NULL, 0.0f, n, NULL, NULL};
        int ok = fn(x, w, m, n, k, &full) == ER_OK && fn(x, w, m, n1, k, &left) == ER_OK &&
                 fn(x, w + n1 * k, m, n - n1, k, &right) == ER_OK;
        h_check(ok && h_same_bytes(y, y_full, m * n * sizeof(float)), "gemm_s8", v[i]->variant,
                "column slices equal the whole");
    }
    free(x), free(w), free(sw), free(bias), free(y_full), free(y);
}

/* An asymmetric x (quantize_rows_u7: q in [0, 127], a zero point per row, the
 * column sums of w).  extreme: q and zero only 0 and 127, so |x - zero| reaches
 * 127 and zero * col_sum far exceeds int32 at K = 5000 (the wrap must cancel). */
static void zero_points(const er_variant *const *v, size_t nv, size_t m, size_t n, size_t k,
                        int extreme) {
    int8_t *x = h_alloc(m * k), *shifted = h_alloc(m * k), *w = h_alloc(n * k);
    int32_t *zero = h_alloc(m * sizeof(int32_t)), *sums = h_alloc(n * sizeof(int32_t));
    if (extreme) {
        for (size_t p = 0; p < m * k; p++) x[p] = h_rand() & 1 ? 127 : 0;
        for (size_t p = 0; p < n * k; p++) w[p] = h_rand() & 1 ? 127 : -127;
        for (size_t i = 0; i < m; i++) zero[i] = h_rand() & 1 ? 127 : 0;
    } else {
        h_fill_s8(x, m * k, 0, 127);
        h_fill_s8(w, n * k, -127, 127);
        for (size_t i = 0; i < m; i++) zero[i] = h_randint(0, 127);
    }
    for (size_t j = 0; j < n; j++)
        for (size_t p = 0; p < k; p++) sums[j] += w[j * k + p];
    for (size_t i = 0; i < m; i++)
        for (size_t p = 0; p < k; p++) shifted[i * k + p] = (int8_t)(x[i * k + p] - zero[i]);
    char what[96];
    snprintf(what, sizeof what, "zero points m=%zu n=%zu k=%zu extreme=%d", m, n, k, extreme);
    compare_variants(v, nv, x, w, m, n, k, zero, sums, shifted, what);
    free(x), free(shifted), free(w), free(zero), free(sums);
}

static void bad_arguments(const er_variant *const *v, size_t nv) {
    int8_t a[4] = {1, 2, 3, 4};
    float y[4];
    er_epilogue ep = {NULL, NULL, NULL, 0, y, NULL, 0.0f, 2, NULL, NULL};
    er_epilogue none = {NULL, NULL, NULL, 0, NULL, NULL, 0.0f, 2, NULL, NULL};
    er_epilogue narrow = {NULL, NULL, NULL, 0, y, NULL, 0.0f, 1, NULL, NULL};
    int32_t zero[1] = {0}, sums[2] = {0, 0};
    er_epilogue no_sums = {NULL, NULL, NULL, 0, y, NULL, 0.0f, 2, zero, NULL};
    er_epilogue no_zero = {NULL, NULL, NULL, 0, y, NULL, 0.0f, 2, NULL, sums};
    for (size_t i = 0; i < nv; i++) {
        er_gemm_s8_fn *fn = (er_gemm_s8_fn *)v[i]->fn;
        /* k is checked before any element is read, so tiny buffers are fine. */
        h_check(fn(a, a, 1, 1, (size_t)ER_MAX_K_S8 + 1, &ep) == ER_ERR_K_TOO_LARGE, "gemm_s8",
                v[i]->variant, "k > ER_MAX_K_S8 is refused");
        h_check(fn(NULL, a, 1, 2, 2, &ep) == ER_ERR_ARGUMENT && fn(a, a, 1, 2, 2, &none) ==
                    ER_ERR_ARGUMENT && fn(a, a, 1, 2, 2, &narrow) == ER_ERR_ARGUMENT &&
                    fn(a, a, 1, 2, 2, NULL) == ER_ERR_ARGUMENT &&
                    fn(a, a, 1, 2, 2, &no_sums) == ER_ERR_ARGUMENT &&
                    fn(a, a, 1, 2, 2, &no_zero) == ER_ERR_ARGUMENT,
                "gemm_s8", v[i]->variant, "bad arguments are refused");
    }
}

void test_gemm_s8(void) {
    const er_variant *v[8];
    size_t nv = h_variants("gemm_s8", v, 8);
    /* Below, at and above the SIMD steps (16 NEON, 32 AVX2) and the tiles
     * (3x4 and 1x8 AVX2, 4x4 and 1x8 NEON); rows >= 4 with short K take the
     * 16-column panels (gemm_s8.h), N = 16, 17, 33 their partial last panel. */
    static const size_t ms[] = {1, 2, 3, 4, 5, 7, 9};
    static const size_t ns[] = {1, 3, 4, 5, 8, 9, 16, 17, 33};
    /* K tails of every kind the AVX2 finish takes: 8 and 16 byte steps (24, 27 of
     * small convs, 56 = 32 + 24), and each alone (8, 16 + scalar rest). */
    static const size_t ks[] = {1, 8, 15, 16, 17, 24, 27, 31, 32, 33, 56, 64, 100};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++)
                one_case(v, nv, ms[a], ns[b], ks[c], (a + b + c) % 3 == 0, (a + b + c) % 2);
    one_case(v, nv, 7, 13, 5000, 1, 0);
    one_case(v, nv, 7, 13, 5000, 1, 1);
    one_case(v, nv, 16, 16, 1027, 0, 0);
    one_case(v, nv, 32, 40, 256, 0, 1);
    one_case(v, nv, 128, 17, 1024, 1, 1);     /* the longest K on panels */
    one_case(v, nv, 130, 20, 999, 0, 0);
    one_case(v, nv, 130, 20, 24, 1, 0);
    /* SDOT takes panels up to K = 64 m (gemm_s8.h): these are its 4x4 row tiles
     * at panel-sized K, with K tails of 12, 13 and 8 past the 16-byte steps */
    one_case(v, nv, 4, 17, 300, 1, 1);
    one_case(v, nv, 5, 9, 333, 0, 0);
    one_case(v, nv, 9, 33, 600, 0, 1);
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b += 2)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c += 2)
                zero_points(v, nv, ms[a], ns[b], ks[c], (a + b + c) % 3 == 0);
    zero_points(v, nv, 7, 13, 5000, 1);
    zero_points(v, nv, 32, 40, 256, 1);
    zero_points(v, nv, 129, 18, 1022, 1);
    zero_points(v, nv, 130, 20, 24, 0);
    zero_points(v, nv, 4, 17, 300, 1);
    column_slices(v, nv, 7, 37, 70, 13);
    column_slices(v, nv, 1, 20, 64, 9);
    extreme_sum(v, nv, 5, 9, 5000);
    extreme_sum(v, nv, 1, 1, 131072);
    bad_arguments(v, nv);
}
