/* The variant sweep of test_spmm_csr.c and test_spmm_bcsr4.c (spmm_common.h). */
#include <math.h>

#include "spmm_common.h"

void spmm_case_free(spmm_case *c) {
    free(c->indptr), free(c->idx16), free(c->idx32), free(c->vf), free(c->vs);
}

er_csr spmm_case_view(const spmm_case *c, int index_bytes, int s8, size_t first, size_t rows) {
    er_csr w = {rows, c->cols, c->indptr + first,
                index_bytes == 2 ? (const void *)c->idx16 : (const void *)c->idx32, index_bytes,
                s8 ? (const void *)c->vs : (const void *)c->vf};
    return w;
}

void spmm_sweep(const spmm_family *fam, const spmm_case *c, size_t m, int density, int extreme) {
    const er_variant *vf[8], *vs[8];
    size_t nf = h_variants(fam->f32_op, vf, 8), ns = h_variants(fam->s8_op, vs, 8);
    size_t rows = c->rows, cols = c->cols;
    float *xf = h_alloc(m * cols * sizeof *xf);
    int8_t *xs = h_alloc(m * cols);
    h_fill_f32(xf, m * cols, 1.0f);
    if (extreme)
        for (size_t p = 0; p < m * cols; p++) xs[p] = h_rand() & 1 ? 127 : -127;
    else
        h_fill_s8(xs, m * cols, -127, 127);
    if (m > 1) { /* an all-zero row of x */
        memset(xf + cols, 0, cols * sizeof *xf);
        memset(xs + cols, 0, cols);
    }
    float *row_scale = h_alloc(m * sizeof(float)), *col_scale = h_alloc(rows * sizeof(float));
    float *bias = h_alloc(rows * sizeof(float));
    for (size_t i = 0; i < m; i++) row_scale[i] = 0.01f + 0.001f * (float)i;
    for (size_t j = 0; j < rows; j++) col_scale[j] = 0.02f + 0.0001f * (float)j, bias[j] = h_randf();
    void *scratch = fam->scratch ? h_alloc(er_spmm_csr_scratch_bytes(m, cols)) : NULL;
    float *yf_ref = h_alloc(m * rows * sizeof(float)), *yf = h_alloc(m * rows * sizeof(float));
    int8_t *ys_ref = h_alloc(m * rows), *ys = h_alloc(m * rows);
    char what[128];

    for (int ib = 2; ib <= 4; ib += 2) {
        if (ib == 2 && cols > 65536) continue;
        for (int relu = 0; relu < 2; relu++) {
            snprintf(what, sizeof what, "m=%zu rows=%zu cols=%zu d=%d%% idx=%d relu=%d%s", m, rows,
                     cols, density, ib, relu, extreme ? " extreme" : "");
            /* float op, float output with bias */
            er_csr w = spmm_case_view(c, ib, 0, 0, rows);
            er_epilogue ep = {NULL, NULL, bias, relu, yf_ref, NULL, 0.0f, rows, NULL, NULL};
            h_check(((er_spmm_csr_f32_fn *)vf[0]->fn)(&w, xf, m, &ep, scratch) == ER_OK,
                    fam->f32_op, "scalar", what);
            ep.y_f32 = yf;
            for (size_t v = 1; v < nf; v++) {
                memset(yf, 0xff, m * rows * sizeof(float));
                er_status st = ((er_spmm_csr_f32_fn *)vf[v]->fn)(&w, xf, m, &ep, scratch);
                int ok = m > 1 && fam->f32_batch_exact
                             ? h_same_bytes(yf, yf_ref, m * rows * sizeof(float))
                             : h_close_f32(yf, yf_ref, m * rows, 1e-4f, 2e-4f * sqrtf((float)cols));
                h_check(st == ER_OK && ok, fam->f32_op, vf[v]->variant, what);
            }
            /* int8 op: float output with scales, then int8 requantized output */
            w = spmm_case_view(c, ib, 1, 0, rows);
            for (int s8out = 0; s8out < 2; s8out++) {
                er_epilogue es = {row_scale, col_scale, bias, relu, s8out ? NULL : yf_ref,
                                  s8out ? ys_ref : NULL, 0.5f, rows, NULL, NULL};
                h_check(((er_spmm_csr_s8_fn *)vs[0]->fn)(&w, xs, m, &es, scratch) == ER_OK,
                        fam->s8_op, "scalar", what);
                es.y_f32 = s8out ? NULL : yf;
                es.y_s8 = s8out ? ys : NULL;
                for (size_t v = 1; v < ns; v++) {
                    memset(yf, 0xff, m * rows * sizeof(float));
                    memset(ys, 0x55, m * rows);
                    er_status st = ((er_spmm_csr_s8_fn *)vs[v]->fn)(&w, xs, m, &es, scratch);
                    int ok = s8out ? h_same_bytes(ys, ys_ref, m * rows)
                                   : h_same_bytes(yf, yf_ref, m * rows * sizeof(float));
                    h_check(st == ER_OK && ok, fam->s8_op, vs[v]->variant, what);
                }
            }
            /* A slice of rows (indptr[0] > base) equals those rows of the whole. */
            if (rows >= 4) {
                size_t first = rows / 3, count = rows - first - 1;
                er_csr part = spmm_case_view(c, ib, 1, first, count);
                er_epilogue es = {row_scale, col_scale, bias, relu, yf_ref, NULL, 0.0f, rows, NULL, NULL};
                ((er_spmm_csr_s8_fn *)vs[0]->fn)(&w, xs, m, &es, scratch);
                es.col_scale = col_scale + first;
                es.bias = bias + first;
                for (size_t v = 0; v < ns; v++) {
                    memset(yf, 0, m * rows * sizeof(float));
                    es.y_f32 = yf + first;
                    er_status st = ((er_spmm_csr_s8_fn *)vs[v]->fn)(&part, xs, m, &es, scratch);
                    int ok = st == ER_OK;
                    for (size_t i = 0; i < m && ok; i++)
                        ok = h_same_bytes(yf + i * rows + first, yf_ref + i * rows + first,
                                          count * sizeof(float));
                    h_check(ok, fam->s8_op, vs[v]->variant, "row slice");
                }
            }
        }
    }
    free(xf), free(xs), free(row_scale), free(col_scale), free(bias), free(scratch);
    free(yf_ref), free(yf), free(ys_ref), free(ys);
}
