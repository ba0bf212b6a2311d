/* spmm_bcsr4_f32 and spmm_bcsr4_s8: every variant against the scalar C.
 * int8 outputs must match bit for bit; float outputs within a tolerance (SIMD
 * bodies reorder a row's sum over their lanes). */
#include "spmm_common.h"

/* A random 1x4 block-sparse matrix with the awkward rows: every 5th empty, every
 * 7th one block, every 3rd ending with a block at the last possible column
 * (cols - 4), and (when full_row) one row of every block that fits.  Blocks of
 * a row do not overlap; density_pct is roughly the share of blocks kept. */
static spmm_case make_bcsr(size_t rows, size_t cols, int density_pct, int full_row, int extreme) {
    spmm_case c = {rows, cols, 0, NULL, NULL, NULL, NULL, NULL};
    size_t cap = cols / 4 + 1, base = 3; /* indptr need not start at 0 */
    c.indptr = h_alloc((rows + 1) * sizeof *c.indptr);
    c.idx16 = h_alloc((rows * cap + base) * sizeof *c.idx16);
    c.idx32 = h_alloc((rows * cap + base) * sizeof *c.idx32);
    c.vf = h_alloc((rows * cap + base) * 4 * sizeof *c.vf);
    c.vs = h_alloc((rows * cap + base) * 4);
    c.indptr[0] = (uint32_t)base;
    size_t b = base;
    for (size_t j = 0; j < rows; j++) {
        int full = full_row && j == rows / 2;
        size_t last_end = 0, count = 0;
        if (j % 5 != 2) {
            for (size_t p = (size_t)h_randint(0, 3); p + 4 <= cols; p++) {
                if (!full && h_randint(0, 99) >= density_pct) continue;
                if (j % 7 == 3 && count == 1) break;
                c.idx32[b] = (uint32_t)p, b++, count++;
                last_end = p + 4;
                p += 3; /* the next block starts at p + 4 or later */
            }
            if (j % 3 == 0 && j % 7 != 3 && cols >= 4 && last_end <= cols - 4)
                c.idx32[b] = (uint32_t)(cols - 4), b++, count++;
            if (j % 7 == 3 && count == 0 && cols >= 4) c.idx32[b] = 0, b++, count++;
        }
        c.indptr[j + 1] = (uint32_t)b;
    }
    c.count = b - base;
    for (size_t e = 0; e < b; e++) {
        c.idx16[e] = (uint16_t)c.idx32[e];
        for (int t = 0; t < 4; t++) {
            c.vf[4 * e + t] = h_randf();
            c.vs[4 * e + t] = extreme ? (h_rand() & 1 ? 127 : -127) : (int8_t)h_randint(-127, 127);
        }
    }
    return c;
}

/* Float SIMD bodies reorder a row's sum over their lanes at any batch size. */
static const spmm_family bcsr4 = {"spmm_bcsr4_f32", "spmm_bcsr4_s8", 0, 0};

static void one_case(size_t m, size_t rows, size_t cols, int density, int full_row, int extreme) {
    spmm_case c = make_bcsr(rows, cols, density, full_row, extreme);
    spmm_sweep(&bcsr4, &c, m, density, extreme);
    spmm_case_free(&c);
}

/* The scalar C against sums written out here, so the harness does not only
 * compare variants with each other: one block per row at known columns. */
static void known_sums(void) {
    const er_variant *vs[8];
    size_t ns = h_variants("spmm_bcsr4_s8", vs, 8);
    uint32_t indptr[3] = {0, 1, 3};
    uint16_t idx[3] = {0, 1, 6};  /* row 1: blocks at 1..4 and 6..9 (last column) */
    int8_t values[12] = {1, 2, 3, 4, 127, -127, 127, -127, -1, -1, -1, -1};
    int8_t x[10] = {1, 1, 1, 1, 127, 0, 2, 3, 4, 5};
    er_csr w = {2, 10, indptr, idx, 2, values};
    for (size_t v = 0; v < ns; v++) {
        float y[2] = {-1.0f, -1.0f};
        er_epilogue ep = {NULL, NULL, NULL, 0, y, NULL, 0.0f, 2, NULL, NULL};
        er_status st = ((er_spmm_bcsr4_s8_fn *)vs[v]->fn)(&w, x, 1, &ep, NULL);
        /* row 0: 1+2+3+4; row 1: 127-127+127-127*127 - (2+3+4+5) */
        h_check(st == ER_OK && y[0] == 10.0f && y[1] == (float)(127 - 16129 - 14),
                "spmm_bcsr4_s8", vs[v]->variant, "known sums");
    }
}

static void argument_checks(void) {
    const er_variant *vf[8], *vs[8];
    size_t nf = h_variants("spmm_bcsr4_f32", vf, 8), ns = h_variants("spmm_bcsr4_s8", vs, 8);
    spmm_case c = make_bcsr(5, 12, 50, 0, 0);
    float x[24] = {0}, y[10];
    int8_t xs[24] = {0}; /* m = 2 rows */
    er_epilogue ep = {NULL, NULL, NULL, 0, y, NULL, 0.0f, 5, NULL, NULL};
    er_csr bad = spmm_case_view(&c, 3, 0, 0, 5);
    for (size_t v = 0; v < nf; v++) {
        er_spmm_bcsr4_f32_fn *f = (er_spmm_bcsr4_f32_fn *)vf[v]->fn;
        h_check(f(&bad, x, 1, &ep, NULL) == ER_ERR_ARGUMENT, "spmm_bcsr4_f32", vf[v]->variant,
                "index_bytes 3 refused");
        er_csr w = spmm_case_view(&c, 2, 0, 0, 5);
        h_check(f(&w, x, 0, &ep, NULL) == ER_OK, "spmm_bcsr4_f32", vf[v]->variant, "m = 0 is a no-op");
        h_check(f(&w, x, 1, NULL, NULL) == ER_ERR_ARGUMENT, "spmm_bcsr4_f32", vf[v]->variant,
                "NULL epilogue refused");
    }
    for (size_t v = 0; v < ns; v++) {
        er_spmm_bcsr4_s8_fn *f = (er_spmm_bcsr4_s8_fn *)vs[v]->fn;
        er_csr w = spmm_case_view(&c, 4, 1, 0, 5);
        h_check(f(&w, xs, 2, &ep, NULL) == ER_OK, "spmm_bcsr4_s8", vs[v]->variant,
                "no scratch needed for m > 1");
        /* a row claiming more than ER_MAX_K_S8 / 4 blocks (never read) */
        uint32_t long_ptr[2] = {0, ER_MAX_K_S8 / 4 + 1};
        er_csr lw = {1, 12, long_ptr, c.idx32, 4, c.vs};
        h_check(f(&lw, xs, 1, &ep, NULL) == ER_ERR_K_TOO_LARGE, "spmm_bcsr4_s8", vs[v]->variant,
                "too many blocks in a row refused");
    }
    spmm_case_free(&c);
}

void test_spmm_bcsr4(void) {
    static const size_t ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 17};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++) {
        one_case(ms[a], 13, 150, 30, 0, 0);  /* cols a multiple of 4 */
        one_case(ms[a], 11, 203, 40, 1, 1);  /* not a multiple of 4, a full row, +-127 */
        one_case(ms[a], 6, 7, 100, 0, 0);    /* at most one block per row */
    }
    one_case(1, 40, 1001, 10, 1, 0);
    one_case(5, 5, 20003, 0, 1, 1);  /* 5000 blocks of +-127 * +-127 in one row */
    one_case(2, 9, 70001, 1, 1, 0);  /* cols > 65535: u32 indices only */
    known_sums();
    argument_checks();
}
