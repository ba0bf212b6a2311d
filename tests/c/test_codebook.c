/* codebook_f32 / codebook_s8: every variant against the scalar one.  Packed
 * bytes are fully random, so the padding bits and nibbles past k are garbage
 * that every variant must ignore. */
#include <math.h>

#include "harness.h"

/* Fill an epilogue for an [m, n] output; style picks which parts are used. */
static void make_epilogue(er_epilogue *ep, int style, float *rs, float *cs, float *bias,
                          float *yf, int8_t *yq, size_t n) {
    memset(ep, 0, sizeof *ep);
    ep->ldy = n;
    ep->row_scale = style & 1 ? rs : NULL;
    ep->col_scale = style & 1 ? cs : NULL;
    ep->bias = style & 2 ? bias : NULL;
    ep->relu = (style & 4) != 0;
    if (style & 8) {
        ep->y_s8 = yq;
        ep->out_inv_scale = 1.0f / 40.0f;
    } else {
        ep->y_f32 = yf;
    }
}

static void s8_case(const er_variant *const *v, size_t nv, size_t m, size_t n, size_t k,
                    int extreme, int style) {
    size_t ldn = (k + 31) / 32 * 16;
    uint8_t *nib = h_alloc(n * ldn + 1);
    for (size_t i = 0; i < n * ldn; i++) nib[i] = (uint8_t)h_rand();
    int8_t table[16], *x = h_alloc(m * k + 1);
    if (extreme) {
        for (int t = 0; t < 16; t++) table[t] = (int8_t)(h_rand() & 1 ? 127 : -127);
        for (size_t i = 0; i < m * k; i++) x[i] = (int8_t)(h_rand() & 1 ? 127 : -127);
    } else {
        h_fill_s8(table, 16, -127, 127);
        h_fill_s8(x, m * k, -127, 127);
    }
    float *rs = h_alloc(m * 4), *cs = h_alloc(n * 4), *bias = h_alloc(n * 4);
    h_fill_f32(rs, m, 0.01f), h_fill_f32(cs, n, 0.1f), h_fill_f32(bias, n, 5.0f);
    float *yf_ref = h_alloc(m * n * 4), *yf = h_alloc(m * n * 4);
    int8_t *yq_ref = h_alloc(m * n), *yq = h_alloc(m * n);
    er_epilogue ep_ref, ep;
    make_epilogue(&ep_ref, style, rs, cs, bias, yf_ref, yq_ref, n);
    make_epilogue(&ep, style, rs, cs, bias, yf, yq, n);
    /* style & 16: an asymmetric x (quantize_rows_u7) with zero points and the
     * decoded rows' sums, as the runtime passes them. */
    int32_t *zero = h_alloc(m * sizeof(int32_t) + 4), *sums = h_alloc(n * sizeof(int32_t) + 4);
    if (style & 16) {
        for (size_t i = 0; i < m * k; i++) x[i] = (int8_t)(extreme ? (int)(h_rand() & 1) * 127 : h_randint(0, 127));
        for (size_t i = 0; i < m; i++) zero[i] = extreme ? (int)(h_rand() & 1) * 127 : h_randint(0, 127);
        for (size_t j = 0; j < n; j++)
            for (size_t p = 0; p < k; p++) {
                uint8_t byte = nib[j * ldn + p / 32 * 16 + p % 16];
                sums[j] += table[p % 32 < 16 ? byte & 15 : byte >> 4];
            }
        ep_ref.row_zero = ep.row_zero = zero;
        ep_ref.col_sum = ep.col_sum = sums;
    }
    er_status st0 = ((er_codebook_s8_fn *)v[0]->fn)(nib, table, x, m, n, k, &ep_ref);
    h_check(st0 == ER_OK, "codebook_s8", v[0]->variant, "status");
    /* The scalar variant against a direct sum (the layout written out again). */
    if (!(style & 25)) {
        int ok = 1;
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < m; i++) {
                int32_t acc = 0;
                for (size_t p = 0; p < k; p++) {
                    uint8_t byte = nib[j * ldn + p / 32 * 16 + p % 16];
                    acc += table[p % 32 < 16 ? byte & 15 : byte >> 4] * x[i * k + p];
                }
                float want = (float)acc + (ep_ref.bias ? bias[j] : 0.0f);
                if (ep_ref.relu && want < 0) want = 0;
                ok &= yf_ref[i * n + j] == want;
            }
        h_check(ok, "codebook_s8", v[0]->variant, "direct sum");
    }
    for (size_t a = 1; a < nv; a++) {
        memset(yf, 0x55, m * n * 4), memset(yq, 0x55, m * n);
        er_status st = ((er_codebook_s8_fn *)v[a]->fn)(nib, table, x, m, n, k, &ep);
        char what[128];
        snprintf(what, sizeof what, "m=%zu n=%zu k=%zu extreme=%d style=%d", m, n, k, extreme, style);
        int same = style & 8 ? h_same_bytes(yq, yq_ref, m * n) : h_same_bytes(yf, yf_ref, m * n * 4);
        h_check(st == ER_OK && same, "codebook_s8", v[a]->variant, what);
    }
    free(nib), free(x), free(rs), free(cs), free(bias), free(yf_ref), free(yf), free(yq_ref), free(yq);
    free(zero), free(sums);
}

static void f32_case(const er_variant *const *v, size_t nv, size_t m, size_t n, size_t k,
                     unsigned bits, int style) {
    size_t stride = (k * bits + 7) / 8;
    uint8_t *packed = h_alloc(n * stride + 1);
    for (size_t i = 0; i < n * stride; i++) packed[i] = (uint8_t)h_rand();
    float centroids[256], *x = h_alloc(m * k * 4 + 4);
    h_fill_f32(centroids, 256, 2.0f);
    h_fill_f32(x, m * k, 1.0f);
    float *bias = h_alloc(n * 4);
    h_fill_f32(bias, n, 1.0f);
    float *y_ref = h_alloc(m * n * 4), *y = h_alloc(m * n * 4);
    void *scratch = h_alloc(er_codebook_f32_scratch_bytes(k));
    er_epilogue ep_ref, ep;
    style &= 6; /* codebook_f32 has bias and relu, float output */
    make_epilogue(&ep_ref, style, NULL, NULL, bias, y_ref, NULL, n);
    make_epilogue(&ep, style, NULL, NULL, bias, y, NULL, n);
    h_check(((er_codebook_f32_fn *)v[0]->fn)(packed, bits, centroids, x, m, n, k, &ep_ref,
                                              scratch) == ER_OK,
            "codebook_f32", v[0]->variant, "status");
    for (size_t a = 1; a < nv; a++) {
        er_status st = ((er_codebook_f32_fn *)v[a]->fn)(packed, bits, centroids, x, m, n, k,
                                                         &ep, scratch);
        char what[128];
        snprintf(what, sizeof what, "m=%zu n=%zu k=%zu bits=%u style=%d", m, n, k, bits, style);
        /* Summation order differs: |error| <= ~k * eps * sum |x w| <= k * 2 * eps. */
        h_check(st == ER_OK && h_close_f32(y, y_ref, m * n, 1e-5f, 1e-6f * (float)k),
                "codebook_f32", v[a]->variant, what);
    }
    free(packed), free(x), free(bias), free(y_ref), free(y), free(scratch);
}

static void errors(const er_variant *const *s8, size_t ns8, const er_variant *const *f32,
                   size_t nf32) {
    uint8_t nib[16] = {0};
    int8_t table[16] = {0}, x[32] = {0};
    float y[1], centroids[256] = {0}, scratch[32 * 4];
    er_epilogue ep = {.y_f32 = y, .ldy = 1};
    for (size_t a = 0; a < ns8; a++) {
        er_codebook_s8_fn *fn = (er_codebook_s8_fn *)s8[a]->fn;
        h_check(fn(nib, table, x, 1, 1, ER_MAX_K_S8 + 1, &ep) == ER_ERR_K_TOO_LARGE,
                "codebook_s8", s8[a]->variant, "k too large");
        h_check(fn(NULL, table, x, 1, 1, 32, &ep) == ER_ERR_ARGUMENT, "codebook_s8",
                s8[a]->variant, "NULL nibbles");
    }
    for (size_t a = 0; a < nf32; a++) {
        er_codebook_f32_fn *fn = (er_codebook_f32_fn *)f32[a]->fn;
        h_check(fn(nib, 0, centroids, (float *)scratch, 1, 1, 4, &ep, scratch) == ER_ERR_ARGUMENT,
                "codebook_f32", f32[a]->variant, "bits 0");
        h_check(fn(nib, 9, centroids, (float *)scratch, 1, 1, 4, &ep, scratch) == ER_ERR_ARGUMENT,
                "codebook_f32", f32[a]->variant, "bits 9");
    }
}

void test_codebook(void) {
    const er_variant *s8[8], *f32[8];
    size_t ns8 = h_variants("codebook_s8", s8, 8), nf32 = h_variants("codebook_f32", f32, 8);
    static const size_t ks[] = {1, 15, 16, 17, 31, 32, 33, 64, 100, 1000};
    static const size_t ns[] = {1, 3, 4, 5, 17};
    static const size_t ms[] = {1, 2, 3, 5, 8};
    int style = 0;
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t c = 0; c < sizeof ms / sizeof ms[0]; c++) {
                style = (style + 1) & 31;
                s8_case(s8, ns8, ms[c], ns[b], ks[a], (a + b + c) % 3 == 0, style);
                f32_case(f32, nf32, ms[c], ns[b], ks[a], 1 + (unsigned)((a + b + c) % 8), style & 15);
            }
    /* Batch 1 rearranges x in chunks of 4096: one chunk, several, odd blocks. */
    static const size_t long_ks[] = {4096, 4133, 8192 + 64 + 33, 3 * 4096 + 31};
    for (size_t a = 0; a < sizeof long_ks / sizeof long_ks[0]; a++)
        for (size_t m = 1; m <= 2; m++) {
            s8_case(s8, ns8, m, 9, long_ks[a], (int)a & 1, (int)(a + m) & 15);
            f32_case(f32, nf32, m, 5, long_ks[a], 4 + (unsigned)a, (int)a);
        }
    /* From 8 rows on, weights are decoded by blocks and run through gemm_s8
     * (codebook.h): one block, several (600 x 32, 40 x 1000), at the size limit. */
    s8_case(s8, ns8, 9, 40, 1000, 0, 3);
    s8_case(s8, ns8, 12, 600, 32, 1, 5);
    s8_case(s8, ns8, 16, 20, 4096, 1, 7);
    s8_case(s8, ns8, 8, 7, 4097, 0, 9);
    s8_case(s8, ns8, 12, 600, 32, 1, 16 + 5);     /* zero points through the gemm path */
    s8_case(s8, ns8, 9, 40, 1000, 0, 16 + 11);
    errors(s8, ns8, f32, nf32);
}
