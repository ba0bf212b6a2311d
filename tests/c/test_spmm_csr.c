/* spmm_csr_f32 and spmm_csr_s8: every variant against the scalar C.
 * int8 outputs and every float batch output (m > 1) must match bit for bit;
 * float m == 1 may be summed in another order by a SIMD gather. */
#include "spmm_common.h"

/* A random CSR with the awkward rows: empty ones, a one-entry row, and (when
 * long_row) a row of 5000 entries, which columns may repeat (the kernels must
 * just sum them). Values +-127 only when extreme. */
static spmm_case make_csr(size_t rows, size_t cols, int density_pct, int long_row, int extreme) {
    spmm_case c = {rows, cols, 0, NULL, NULL, NULL, NULL, NULL};
    size_t *len = h_alloc(rows * sizeof *len);
    for (size_t j = 0; j < rows; j++) {
        size_t n = 0;
        for (size_t p = 0; p < cols; p++) n += h_randint(0, 99) < density_pct;
        if (j % 5 == 2) n = 0;
        if (j % 7 == 3) n = 1;
        if (long_row && j == rows / 2) n = 5000;
        len[j] = n;
        c.count += n;
    }
    const uint32_t base = 3; /* indptr need not start at 0 */
    c.indptr = h_alloc((rows + 1) * sizeof *c.indptr);
    c.idx16 = h_alloc((c.count + base) * sizeof *c.idx16);
    c.idx32 = h_alloc((c.count + base) * sizeof *c.idx32);
    c.vf = h_alloc((c.count + base) * sizeof *c.vf);
    c.vs = h_alloc(c.count + base);
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

static const spmm_family csr = {"spmm_csr_f32", "spmm_csr_s8", 1, 1};

static void one_case(size_t m, size_t rows, size_t cols, int density, int long_row, int extreme) {
    spmm_case c = make_csr(rows, cols, density, long_row, extreme);
    spmm_sweep(&csr, &c, m, density, extreme);
    spmm_case_free(&c);
}

static void argument_checks(void) {
    const er_variant *vf[8], *vs[8];
    size_t nf = h_variants("spmm_csr_f32", vf, 8), ns = h_variants("spmm_csr_s8", vs, 8);
    spmm_case c = make_csr(5, 9, 50, 0, 0);
    float x[9] = {0}, y[5];
    int8_t xs[9] = {0};
    er_epilogue ep = {NULL, NULL, NULL, 0, y, NULL, 0.0f, 5, NULL, NULL};
    er_csr bad = spmm_case_view(&c, 3, 0, 0, 5);
    for (size_t v = 0; v < nf; v++) {
        er_spmm_csr_f32_fn *f = (er_spmm_csr_f32_fn *)vf[v]->fn;
        h_check(f(&bad, x, 1, &ep, y) == ER_ERR_ARGUMENT, "spmm_csr_f32", vf[v]->variant,
                "index_bytes 3 refused");
        er_csr w = spmm_case_view(&c, 2, 0, 0, 5);
        h_check(f(&w, x, 0, &ep, NULL) == ER_OK, "spmm_csr_f32", vf[v]->variant, "m = 0 is a no-op");
        h_check(f(&w, x, 1, NULL, NULL) == ER_ERR_ARGUMENT, "spmm_csr_f32", vf[v]->variant,
                "NULL epilogue refused");
    }
    for (size_t v = 1; v < ns; v++) { /* the scalar C needs no scratch */
        er_spmm_csr_s8_fn *f = (er_spmm_csr_s8_fn *)vs[v]->fn;
        er_csr w = spmm_case_view(&c, 4, 1, 0, 5);
        h_check(f(&w, xs, 2, &ep, NULL) == ER_ERR_ARGUMENT, "spmm_csr_s8", vs[v]->variant,
                "NULL scratch refused for m > 1");
    }
    spmm_case_free(&c);
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
