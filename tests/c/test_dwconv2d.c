#include "harness.h"

static size_t out_size(size_t in, size_t k, size_t s, size_t d, size_t p0, size_t p1) {
    size_t span = d * (k - 1) + 1;
    return (in + p0 + p1 - span) / s + 1;
}

/* Every variant against the scalar one, bit for bit, on one geometry. */
static void one_case(size_t batch, size_t h, size_t w_in, size_t C, size_t k, size_t s,
                     size_t d, size_t pt, size_t pl, size_t pb, size_t pr, int act, int extreme) {
    er_conv2d_params p = {batch, h, w_in, C, k, k, s, s, d, d, pt, pl, pb, pr,
                          out_size(h, k, s, d, pt, pb), out_size(w_in, k, s, d, pl, pr), act};
    size_t nx = batch * h * w_in * C, nw = k * k * C, ny = batch * p.out_h * p.out_w * C;
    float *xf = h_alloc(nx * 4), *wf = h_alloc(nw * 4), *bias = h_alloc(C * 4);
    float *wscale = h_alloc(C * 4), *yf_ref = h_alloc(ny * 4), *yf = h_alloc(ny * 4);
    int8_t *xq = h_alloc(nx), *wq = h_alloc(nw), *yq_ref = h_alloc(ny), *yq = h_alloc(ny);
    h_fill_f32(xf, nx, 4.0f);
    h_fill_f32(wf, nw, 1.0f);
    h_fill_f32(bias, C, 2.0f);
    h_fill_f32(wscale, C, 0.01f);
    if (extreme) {
        for (size_t i = 0; i < nx; i++) xq[i] = (h_rand() & 1) ? 127 : -127;
        for (size_t i = 0; i < nw; i++) wq[i] = (h_rand() & 1) ? 127 : -127;
    } else {
        h_fill_s8(xq, nx, -127, 127);
        h_fill_s8(wq, nw, -127, 127);
    }
    const er_variant *fv[8], *sv[8];
    size_t nfv = h_variants("dwconv2d_f32", fv, 8), nsv = h_variants("dwconv2d_s8", sv, 8);
    char what[160];
    snprintf(what, sizeof what, "n=%zu %zux%zux%zu k=%zu s=%zu d=%zu pad=%zu,%zu,%zu,%zu act=%d",
             batch, h, w_in, C, k, s, d, pt, pl, pb, pr, act);
    const float *biases[2] = {bias, NULL};
    for (int b = 0; b < 2; b++) {
        ((er_dwconv2d_f32_fn *)fv[0]->fn)(&p, xf, wf, biases[b], yf_ref);
        for (size_t i = 0; i < nfv; i++) {
            memset(yf, 0x7f, ny * 4);
            er_status st = ((er_dwconv2d_f32_fn *)fv[i]->fn)(&p, xf, wf, biases[b], yf);
            h_check(st == ER_OK && h_same_bytes(yf, yf_ref, ny * 4), "dwconv2d_f32",
                    fv[i]->variant, what);
        }
        er_conv_quant qf = {0.05f, wscale, biases[b], yf_ref, NULL, 0.0f};
        er_conv_quant qq = {0.05f, wscale, biases[b], NULL, yq_ref, 1.0f / 0.5f};
        ((er_dwconv2d_s8_fn *)sv[0]->fn)(&p, xq, wq, &qf);
        ((er_dwconv2d_s8_fn *)sv[0]->fn)(&p, xq, wq, &qq);
        for (size_t i = 0; i < nsv; i++) {
            er_conv_quant q = qf;
            q.y_f32 = yf;
            memset(yf, 0x7f, ny * 4);
            er_status st = ((er_dwconv2d_s8_fn *)sv[i]->fn)(&p, xq, wq, &q);
            h_check(st == ER_OK && h_same_bytes(yf, yf_ref, ny * 4), "dwconv2d_s8 f32 out",
                    sv[i]->variant, what);
            q = qq;
            q.y_s8 = yq;
            memset(yq, 0x55, ny);
            st = ((er_dwconv2d_s8_fn *)sv[i]->fn)(&p, xq, wq, &q);
            h_check(st == ER_OK && h_same_bytes(yq, yq_ref, ny), "dwconv2d_s8 s8 out",
                    sv[i]->variant, what);
        }
    }
    /* A wrong output size is refused by every variant. */
    p.out_w += 1;
    er_conv_quant qq = {0.05f, wscale, bias, NULL, yq, 1.0f};
    for (size_t i = 0; i < nfv; i++)
        h_check(((er_dwconv2d_f32_fn *)fv[i]->fn)(&p, xf, wf, bias, yf) == ER_ERR_ARGUMENT,
                "dwconv2d_f32", fv[i]->variant, "out_w off by one must be refused");
    for (size_t i = 0; i < nsv; i++)
        h_check(((er_dwconv2d_s8_fn *)sv[i]->fn)(&p, xq, wq, &qq) == ER_ERR_ARGUMENT,
                "dwconv2d_s8", sv[i]->variant, "out_w off by one must be refused");
    free(xf), free(wf), free(bias), free(wscale), free(yf_ref), free(yf);
    free(xq), free(wq), free(yq_ref), free(yq);
}

/* Refusals that happen before any memory is read. */
static void refusals(void) {
    const er_variant *fv[8], *sv[8];
    size_t nfv = h_variants("dwconv2d_f32", fv, 8), nsv = h_variants("dwconv2d_s8", sv, 8);
    float f = 0.0f, scale = 1.0f;
    int8_t b = 0;
    /* 363 * 363 = 131769 taps > ER_MAX_K_S8: int32 sums could overflow. */
    er_conv2d_params big = {1, 400, 400, 1, 363, 363, 1, 1, 1, 1, 0, 0, 0, 0, 38, 38, 0};
    er_conv2d_params ok = {1, 3, 3, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0};
    er_conv2d_params bad_act = ok, zero_stride = ok, too_big_kernel = ok;
    bad_act.activation = 3;
    zero_stride.stride_w = 0;
    too_big_kernel.kernel_h = 4; /* 4 > 3 rows of input, no padding */
    er_conv_quant q = {1.0f, &scale, NULL, &f, NULL, 1.0f};
    er_conv_quant no_scale = q, two_outputs = q;
    no_scale.w_scale = NULL;
    two_outputs.y_s8 = &b;
    for (size_t i = 0; i < nsv; i++) {
        er_dwconv2d_s8_fn *fn = (er_dwconv2d_s8_fn *)sv[i]->fn;
        h_check(fn(&big, &b, &b, &q) == ER_ERR_K_TOO_LARGE, "dwconv2d_s8", sv[i]->variant,
                "kernel_h * kernel_w > ER_MAX_K_S8");
        h_check(fn(&ok, &b, &b, &no_scale) == ER_ERR_ARGUMENT, "dwconv2d_s8", sv[i]->variant,
                "NULL w_scale");
        h_check(fn(&ok, &b, &b, &two_outputs) == ER_ERR_ARGUMENT, "dwconv2d_s8",
                sv[i]->variant, "both outputs set");
        h_check(fn(&ok, NULL, &b, &q) == ER_ERR_ARGUMENT, "dwconv2d_s8", sv[i]->variant,
                "NULL x");
    }
    const er_conv2d_params *bad[] = {&bad_act, &zero_stride, &too_big_kernel, NULL};
    for (size_t i = 0; i < nfv; i++) {
        er_dwconv2d_f32_fn *fn = (er_dwconv2d_f32_fn *)fv[i]->fn;
        for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++)
            h_check(fn(bad[j], &f, &f, NULL, &f) == ER_ERR_ARGUMENT, "dwconv2d_f32",
                    fv[i]->variant, "bad geometry");
        h_check(fn(&ok, &f, &f, NULL, NULL) == ER_ERR_ARGUMENT, "dwconv2d_f32",
                fv[i]->variant, "NULL y");
    }
}

void test_dwconv2d(void) {
    refusals();
    static const size_t channels[] = {1, 3, 4, 8, 16, 17, 32, 33, 48, 96};
    for (size_t a = 0; a < sizeof channels / sizeof channels[0]; a++) {
        size_t C = channels[a];
        one_case(1, 7, 9, C, 3, 1, 1, 1, 1, 1, 1, ER_ACT_NONE, 0);
        one_case(2, 8, 8, C, 3, 2, 1, 0, 0, 1, 1, ER_ACT_RELU, 0);
        one_case(1, 9, 6, C, 5, 1, 2, 4, 3, 2, 5, ER_ACT_RELU6, 0);
        one_case(1, 1, 1, C, 3, 1, 1, 1, 1, 1, 1, ER_ACT_RELU, 0);
        one_case(1, 11, 13, C, 5, 2, 1, 2, 2, 2, 2, ER_ACT_NONE, 1);
    }
}
