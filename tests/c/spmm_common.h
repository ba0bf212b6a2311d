/* What test_spmm_csr.c and test_spmm_bcsr4.c share: both ops of a family take
 * the same er_csr (entries or 1x4 blocks) and the same epilogues, so one sweep
 * checks every variant of either against the scalar C; only the matrices, the
 * float tolerance and the scratch differ. */
#ifndef EDGERUN_TEST_SPMM_COMMON_H
#define EDGERUN_TEST_SPMM_COMMON_H

#include "harness.h"

/* A sparse matrix in both index widths and both value types; count is the
 * number of entries (CSR) or blocks (1x4), after indptr[0] (which need not be 0). */
typedef struct {
    size_t rows, cols, count;
    uint32_t *indptr;
    uint16_t *idx16;
    uint32_t *idx32;
    float *vf;
    int8_t *vs;
} spmm_case;

void spmm_case_free(spmm_case *c);
/* Rows [first, first + rows) with 2- or 4-byte indices, int8 or float values. */
er_csr spmm_case_view(const spmm_case *c, int index_bytes, int s8, size_t first, size_t rows);

typedef struct {
    const char *f32_op, *s8_op;  /* kernel names, e.g. "spmm_csr_f32" */
    int f32_batch_exact;         /* float outputs at m > 1 must be bit-exact */
    int scratch;                 /* hand the kernels er_spmm_csr_scratch_bytes(m, cols) */
} spmm_family;

/* One shape through both ops: both index widths (2 only while cols fits),
 * relu off and on, float and int8 outputs, and a slice of rows, every variant
 * against the scalar C.  x is random (+-127 only when extreme) with an
 * all-zero second row; density only labels the failures. */
void spmm_sweep(const spmm_family *fam, const spmm_case *c, size_t m, int density, int extreme);

#endif
