/* spmm_csr_f32 and spmm_csr_s8: every variant against the scalar C.
 * int8 outputs and every float batch output (m > 1) must match bit for bit;
 * float m == 1 may be summed in another order by a SIMD gather. */
#include <math.h>

#include "harness.h"

typedef struct {
    size_t rows, cols, nnz;
    uint32_t *indptr;
    uint16_t *idx16;
    uint32_t *idx32;
    float *vf;
    int8_t *vs;
} csr_case;

/* A random CSR with the awkward rows: empty ones, a one-entry row, and (when
 * long_row) a row of 5000 entries, which columns may repeat (the kernels must
 * just sum them). Values +-127 only when extreme. */
static csr_case make_csr(size_t rows, size_t cols, int density_pct, int long_row, int extreme) {
    csr_case c = {rows, cols, 0, NULL, NULL, NULL, NULL, NULL};
    size_t *len = h_alloc(rows * sizeof *len);
    for (size_t j = 0; j < rows; j++) {
        size_t n = 0;
        for (size_t p = 0; p < cols; p++) n += h_randint(0, 99) < density_pct;
        if (j % 5 == 2) n = 0;
        if (j % 7 == 3) n = 1;
        if (long_row && j == rows / 2) n = 5000;
        len[j] = n;
        c.nnz += n;
    }
    const uint32_t base = 3; /* indptr need not start at 0 */
    c.indptr = h_alloc((rows + 1) * sizeof *c.indptr);
    c.idx16 = h_alloc((c.nnz + base) * sizeof *c.idx16);
    c.idx32 = h_alloc((c.nnz + base) * sizeof *c.idx32);
    c.vf = h_alloc((c.nnz + base) * sizeof *c.vf);
    c.vs = h_alloc(c.nnz + base);
    c.indptr[0] = base;
    for (size_t j = 0; j < rows; j++) {
        c.indptr[j + 1] = c.indptr[j] + (uint32_t)len[j];
        for (uint32_t e = c.indptr[j]; e < c.indptr[j + 1]; e++) {
            uint32_t p = (uint32_t)(h_rand() % cols);
            c.idx16[e] = (uint16_t)p;
            c.idx32[e] = p;
            c.vf[e] = h_randf();
            c.vs[e] = extreme ? (h_rand() & 1 ? 127 : -127) : (int8_t)h_randint(-127, 127);
        }
    }
    free(len);
    return c;
}

static void free_csr(csr_case *c) {
    free(c->indptr), free(c->idx16), free(c->idx32), free(c->vf), free(c->vs);
}

static er_csr view(const csr_case *c, int index_bytes, int s8, size_t first, size_t rows) {
    er_csr w = {rows, c->cols, c->indptr + first,
                index_bytes == 2 ? (const void *)c->idx16 : (const void *)c->idx32, index_bytes,
                s8 ? (const void *)c->vs : (const void *)c->vf};
    return w;
}

/* One shape through both ops, both index widths, float and int8 outputs. */
static void one_case(size_t m, size_t rows, size_t cols, int density, int long_row, int extreme) {
    const er_variant *vf[8], *vs[8];
    size_t nf = h_variants("spmm_csr_f32", vf, 8), ns = h_variants("spmm_csr_s8", vs, 8);
    csr_case c = make_csr(rows, cols, density, long_row, extreme);
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
    void *scratch = h_alloc(er_spmm_csr_scratch_bytes(m, cols));
    float *yf_ref = h_alloc(m * rows * sizeof(float)), *yf = h_alloc(m * rows * sizeof(float));
    int8_t *ys_ref = h_alloc(m * rows), *ys = h_alloc(m * rows);
    char what[128];

    for (int ib = 2; ib <= 4; ib += 2) {
        if (ib == 2 && cols > 65536) continue;
        for (int relu = 0; relu < 2; relu++) {
            snprintf(what, sizeof what, "m=%zu rows=%zu cols=%zu d=%d%% idx=%d relu=%d%s", m, rows,
                     cols, density, ib, relu, extreme ? " extreme" : "");
            /* float op, float output with bias */
            er_csr w = view(&c, ib, 0, 0, rows);
            er_epilogue ep = {NULL, NULL, bias, relu, yf_ref, NULL, 0.0f, rows};
            h_check(((er_spmm_csr_f32_fn *)vf[0]->fn)(&w, xf, m, &ep, scratch) == ER_OK,
                    "spmm_csr_f32", "scalar", what);
            ep.y_f32 = yf;
            for (size_t v = 1; v < nf; v++) {
                memset(yf, 0xff, m * rows * sizeof(float));
                er_status st = ((er_spmm_csr_f32_fn *)vf[v]->fn)(&w, xf, m, &ep, scratch);
                int ok = m > 1 ? h_same_bytes(yf, yf_ref, m * rows * sizeof(float))
                               : h_close_f32(yf, yf_ref, m * rows, 1e-4f, 2e-4f * sqrtf((float)cols));
                h_check(st == ER_OK && ok, "spmm_csr_f32", vf[v]->variant, what);
            }
            /* int8 op: float output with scales, then int8 requantized output */
            w = view(&c, ib, 1, 0, rows);
            for (int s8out = 0; s8out < 2; s8out++) {
                er_epilogue es = {row_scale, col_scale, bias, relu, s8out ? NULL : yf_ref,
                                  s8out ? ys_ref : NULL, 0.5f, rows};
                h_check(((er_spmm_csr_s8_fn *)vs[0]->fn)(&w, xs, m, &es, scratch) == ER_OK,
                        "spmm_csr_s8", "scalar", what);
                es.y_f32 = s8out ? NULL : yf;
                es.y_s8 = s8out ? ys : NULL;
                for (size_t v = 1; v < ns; v++) {
                    memset(yf, 0xff, m * rows * sizeof(float));
                    memset(ys, 0x55, m * rows);
                    er_status st = ((er_spmm_csr_s8_fn *)vs[v]->fn)(&w, xs, m, &es, scratch);
                    int ok = s8out ? h_same_bytes(ys, ys_ref, m * rows)
                                   : h_same_bytes(yf, yf_ref, m * rows * sizeof(float));
                    h_check(st == ER_OK && ok, "spmm_csr_s8", vs[v]->variant, what);
                }
            }
            /* A slice of rows (indptr[0] > base) equals those rows of the whole. */
            if (rows >= 4) {
                size_t first = rows / 3, count = rows - first - 1;
                er_csr part = view(&c, ib, 1, first, count);
                er_epilogue es = {row_scale, col_scale, bias, relu, yf_ref, NULL, 0.0f, rows};
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
                    h_check(ok, "spmm_csr_s8", vs[v]->variant, "row slice");
                }
            }
        }
    }
    free_csr(&c);
    free(xf), free(xs), free(row_scale), free(col_scale), free(bias), free(scratch);
    free(yf_ref), free(yf), free(ys_ref), free(ys);
}

static void argument_checks(void) {
    const er_variant *vf[8], *vs[8];
    size_t nf = h_variants("spmm_csr_f32", vf, 8), ns = h_variants("spmm_csr_s8", vs, 8);
    csr_case c = make_csr(5, 9, 50, 0, 0);
    float x[9] = {0}, y[5];
    int8_t xs[9] = {0};
    er_epilogue ep = {NULL, NULL, NULL, 0, y, NULL, 0.0f, 5};
    er_csr bad = view(&c, 3, 0, 0, 5);
    for (size_t v = 0; v < nf; v++) {
        er_spmm_csr_f32_fn *f = (er_spmm_csr_f32_fn *)vf[v]->fn;
        h_check(f(&bad, x, 1, &ep, y) == ER_ERR_ARGUMENT, "spmm_csr_f32", vf[v]->variant,
                "index_bytes 3 refused");
        er_csr w = view(&c, 2, 0, 0, 5);
        h_check(f(&w, x, 0, &ep, NULL) == ER_OK, "spmm_csr_f32", vf[v]->variant, "m = 0 is a no-op");
        h_check(f(&w, x, 1, NULL, NULL) == ER_ERR_ARGUMENT, "spmm_csr_f32", vf[v]->variant,
                "NULL epilogue refused");
    }
    for (size_t v = 1; v < ns; v++) { /* the scalar C needs no scratch */
        er_spmm_csr_s8_fn *f = (er_spmm_csr_s8_fn *)vs[v]->fn;
        er_csr w = view(&c, 4, 1, 0, 5);
        h_check(f(&w, xs, 2, &ep, NULL) == ER_ERR_ARGUMENT, "spmm_csr_s8", vs[v]->variant,
                "NULL scratch refused for m > 1");
    }
    free_csr(&c);
}

void test_spmm_csr(void) {
    static const size_t ms[] = {1, 2, 7, 8, 9, 16, 17, 33, 64};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++) {
        one_case(ms[a], 13, 37, 30, 0, 0);
        one_case(ms[a], 6, 20, 100, 0, 1);
    }
    one_case(1, 40, 300, 10, 1, 1);
    one_case(3, 40, 300, 10, 1, 0);
    one_case(17, 9, 70000, 0, 1, 0); /* cols > 65535: u32 indices only */
    one_case(1, 9, 70000, 0, 1, 1);
    argument_checks();
}
