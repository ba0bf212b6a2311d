#include "harness.h"

static size_t out_size(size_t in, size_t k, size_t s, size_t d, size_t p0, size_t p1) {
    return (in + p0 + p1 - (d * (k - 1) + 1)) / s + 1;
}

/* rows against the contract's formula, element by element, and the floats just
 * past the rows untouched. */
static void one_case(size_t batch, size_t h, size_t w, size_t C, size_t kh, size_t kw,
                     size_t sh, size_t sw, size_t dh, size_t dw, size_t pt, size_t pl, size_t pb,
                     size_t pr) {
    er_conv2d_params p = {batch, h, w, C, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr,
                          out_size(h, kh, sh, dh, pt, pb), out_size(w, kw, sw, dw, pl, pr), 0};
    const size_t nx = batch * h * w * C, row_len = kh * kw * C;
    const size_t nrows = batch * p.out_h * p.out_w, ny = nrows * row_len;
    float *x = h_alloc(nx * 4), *rows = h_alloc((ny + 4) * 4);
    h_fill_f32(x, nx, 3.0f);
    memset(rows, 0x7f, (ny + 4) * 4);
    const er_variant *v[4];
    size_t nv = h_variants("im2col_f32", v, 4);
    char what[160];
    snprintf(what, sizeof what, "n=%zu %zux%zux%zu k=%zux%zu s=%zu,%zu d=%zu,%zu pad=%zu,%zu,%zu,%zu",
             batch, h, w, C, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr);
    for (size_t i = 0; i < nv; i++) {
        er_status st = ((er_im2col_f32_fn *)v[i]->fn)(&p, x, rows);
        int ok = st == ER_OK;
        for (size_t n = 0; ok && n < batch; n++)
            for (size_t oy = 0; oy < p.out_h; oy++)
                for (size_t ox = 0; ox < p.out_w; ox++)
                    for (size_t ky = 0; ky < kh; ky++)
                        for (size_t kx = 0; kx < kw; kx++)
                            for (size_t c = 0; c < C; c++) {
                                long iy = (long)(oy * sh + ky * dh) - (long)pt;
                                long ix = (long)(ox * sw + kx * dw) - (long)pl;
                                float want = 0.0f;
                                if (iy >= 0 && iy < (long)h && ix >= 0 && ix < (long)w)
                                    want = x[((n * h + (size_t)iy) * w + (size_t)ix) * C + c];
                                float got = rows[((n * p.out_h + oy) * p.out_w + ox) * row_len +
                                                 (ky * kw + kx) * C + c];
                                if (memcmp(&got, &want, 4) != 0) ok = 0;
                            }
        float past[4];
        memset(past, 0x7f, sizeof past);
        ok = ok && memcmp(rows + ny, past, sizeof past) == 0;
        h_check(ok, "im2col_f32", v[i]->variant, what);
    }
    free(x), free(rows);
}

static void refusals(void) {
    const er_variant *v[4];
    size_t nv = h_variants("im2col_f32", v, 4);
    float f[9] = {0};           /* a 3x3 image, and its one 3x3 window */
    er_conv2d_params ok = {1, 3, 3, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0};
    er_conv2d_params activation = ok, wrong_out = ok, huge = ok;
    activation.activation = ER_ACT_RELU;       /* an im2col applies none */
    wrong_out.out_w = 2;
    /* every dimension within the geometry check's bounds, their product not */
    huge.channels = SIZE_MAX / 4;
    huge.kernel_h = huge.in_h = 3;
    for (size_t i = 0; i < nv; i++) {
        er_im2col_f32_fn *fn = (er_im2col_f32_fn *)v[i]->fn;
        h_check(fn(&ok, f, f) == ER_OK, "im2col_f32", v[i]->variant, "1x1 output");
        h_check(fn(&activation, f, f) == ER_ERR_ARGUMENT, "im2col_f32", v[i]->variant,
                "an activation");
        h_check(fn(&wrong_out, f, f) == ER_ERR_ARGUMENT, "im2col_f32", v[i]->variant,
                "out_w off by one");
        h_check(fn(&huge, f, f) == ER_ERR_ARGUMENT, "im2col_f32", v[i]->variant,
                "rows too large for size_t");
        h_check(fn(&ok, NULL, f) == ER_ERR_ARGUMENT, "im2col_f32", v[i]->variant, "NULL x");
        h_check(fn(&ok, f, NULL) == ER_ERR_ARGUMENT, "im2col_f32", v[i]->variant, "NULL rows");
        h_check(fn(NULL, f, f) == ER_ERR_ARGUMENT, "im2col_f32", v[i]->variant, "NULL params");
    }
}

void test_im2col_f32(void) {
    refusals();
    static const size_t channels[] = {1, 3, 16, 40};
    for (size_t a = 0; a < sizeof channels / sizeof channels[0]; a++) {
        size_t C = channels[a];
        one_case(1, 1, 49, C, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1);   /* a Conv1d as a 1-high conv */
        one_case(2, 7, 9, C, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
        one_case(1, 8, 8, C, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1);
        one_case(1, 9, 6, C, 3, 2, 1, 2, 2, 3, 4, 3, 2, 5);    /* dilated, wide padding */
        one_case(1, 2, 2, C, 5, 5, 1, 1, 1, 1, 4, 4, 4, 4);    /* windows all padding */
        one_case(1, 5, 5, C, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0);
    }
}
