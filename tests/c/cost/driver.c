/* Calls one kernel variant `reps` times on a fixed random problem, for
 * count_instructions.sh: the instructions of a run with 1 + R calls minus a
 * run with 1 call, divided by R, are the instructions of one call (setup,
 * libc start-up and the first call's cold paths cancel exactly, since the
 * emulated program is deterministic).
 *
 *   driver list                        runnable variants, "op variant" a line
 *   driver OP VARIANT M N K REPS       run it (N ignored by quantize_rows_s8 / _u7)
 *
 * codebook_f32 uses 4-bit indices; spmm_csr_* use 10% density, spmm_bcsr4_* 25%
 * of the aligned 1x4 blocks, both uint16 indices (uint32 when N is odd, so the
 * other index width is measured too).  dwconv2d_*: M x M pixels, N channels,
 * a K x K kernel, stride 1, padding K / 2, batch 1; the int8 one requantizes.
 * im2col_f32: the same geometry's rows.
 * layer_norm_f32: M rows of N, with bias; K = 1 adds a residual, K = 0 not.
 * gelu_f32 / softmax_f32: M rows of K in place (gelu: N = 1 the tanh form). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgerun.h"

static uint64_t state = 0x2545F4914F6CDD1Dull;
static uint64_t next(void) {
    state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
}
/* 64-byte aligned: where the heap starts depends on the binary's size, and
 * the auto-vectorised scalar loops peel by alignment, so unaligned buffers
 * would shift counts between builds of unchanged kernels. */
static void *zalloc(size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) exit(3);
    return memset(p, 0, bytes ? bytes : 64);
}
static int8_t *rand_s8(size_t count) {
    int8_t *a = zalloc(count);
    for (size_t i = 0; i < count; i++) a[i] = (int8_t)((int)(next() % 255) - 127);
    return a;
}
static float *rand_f32(size_t count) {
    float *a = zalloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) a[i] = (float)(next() >> 40) / (float)(1 << 24) - 0.5f;
    return a;
}

int main(int argc, char **argv) {
    size_t count;
    const er_variant *table = er_variants(&count);
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        for (size_t i = 0; i < count; i++)
            if (er_cpu_has(table[i].isa)) printf("%s %s\n", table[i].op, table[i].variant);
        return 0;
    }
    if (argc != 7) {
        fprintf(stderr, "usage: driver list | driver OP VARIANT M N K REPS\n");
        return 2;
    }
    const er_variant *v = NULL;
    for (size_t i = 0; i < count; i++)
        if (strcmp(table[i].op, argv[1]) == 0 && strcmp(table[i].variant, argv[2]) == 0) v = &table[i];
    if (!v || !er_cpu_has(v->isa)) {
        fprintf(stderr, "driver: %s/%s is not runnable here\n", argv[1], argv[2]);
        return 2;
    }
    size_t m = strtoul(argv[3], NULL, 10), n = strtoul(argv[4], NULL, 10);
    size_t k = strtoul(argv[5], NULL, 10), reps = strtoul(argv[6], NULL, 10);

    float *y = zalloc(m * n * sizeof(float));
    float *col_scale = rand_f32(n), *bias = rand_f32(n), *row_scale = rand_f32(m);
    er_epilogue ep = {row_scale, col_scale, bias, 1, y, NULL, 0.0f, n, NULL, NULL};
    er_status status = ER_OK;
    const char *op = v->op;
    if (strcmp(op, "gemm_s8") == 0) {
        int8_t *x = rand_s8(m * k), *w = rand_s8(n * k);
        for (size_t r = 0; r < reps; r++) status |= ((er_gemm_s8_fn *)v->fn)(x, w, m, n, k, &ep);
    } else if (strcmp(op, "codebook_s8") == 0) {
        size_t ldn = (k + 31) / 32 * 16;
        uint8_t *nib = (uint8_t *)rand_s8(n * ldn);
        int8_t *tab = rand_s8(16), *x = rand_s8(m * k);
        for (size_t r = 0; r < reps; r++)
            status |= ((er_codebook_s8_fn *)v->fn)(nib, tab, x, m, n, k, &ep);
    } else if (strcmp(op, "codebook_f32") == 0) {
        uint8_t *packed = (uint8_t *)rand_s8(n * ((k * 4 + 7) / 8));
        float *centroids = rand_f32(16), *x = rand_f32(m * k);
        void *scratch = zalloc(er_codebook_f32_scratch_bytes(k));
        for (size_t r = 0; r < reps; r++)
            status |= ((er_codebook_f32_fn *)v->fn)(packed, 4, centroids, x, m, n, k, &ep, scratch);
    } else if (strcmp(op, "quantize_rows_s8") == 0) {
        float *x = rand_f32(m * k), *scale = zalloc(m * sizeof(float));
        int8_t *q = zalloc(m * k);
        for (size_t r = 0; r < reps; r++)
            status |= ((er_quantize_rows_s8_fn *)v->fn)(x, m, k, q, scale);
    } else if (strcmp(op, "quantize_rows_u7") == 0) {
        float *x = rand_f32(m * k), *scale = zalloc(m * sizeof(float));
        int32_t *zero = zalloc(m * sizeof(int32_t));
        int8_t *q = zalloc(m * k);
        for (size_t r = 0; r < reps; r++)
            status |= ((er_quantize_rows_u7_fn *)v->fn)(x, m, k, q, scale, zero);
    } else if (strcmp(op, "spmm_csr_s8") == 0 || strcmp(op, "spmm_csr_f32") == 0) {
        int u32 = n % 2 == 1;
        uint32_t *indptr = zalloc((n + 1) * sizeof(uint32_t));
        void *indices = zalloc(n * k * (u32 ? 4 : 2));
        size_t nnz = 0;
        for (size_t j = 0; j < n; j++) {
            for (size_t p = 0; p < k; p++)
                if (next() % 10 == 0) {
                    if (u32) ((uint32_t *)indices)[nnz++] = (uint32_t)p;
                    else ((uint16_t *)indices)[nnz++] = (uint16_t)p;
                }
            indptr[j + 1] = (uint32_t)nnz;
        }
        void *scratch = zalloc(er_spmm_csr_scratch_bytes(m, k));
        if (op[9] == 's') {
            er_csr w = {n, k, indptr, indices, u32 ? 4 : 2, rand_s8(nnz)};
            int8_t *x = rand_s8(m * k);
            for (size_t r = 0; r < reps; r++)
                status |= ((er_spmm_csr_s8_fn *)v->fn)(&w, x, m, &ep, scratch);
        } else {
            er_csr w = {n, k, indptr, indices, u32 ? 4 : 2, rand_f32(nnz)};
            float *x = rand_f32(m * k);
            for (size_t r = 0; r < reps; r++)
                status |= ((er_spmm_csr_f32_fn *)v->fn)(&w, x, m, &ep, scratch);
        }
    } else if (strcmp(op, "spmm_bcsr4_s8") == 0 || strcmp(op, "spmm_bcsr4_f32") == 0) {
        int u32 = n % 2 == 1;
        uint32_t *indptr = zalloc((n + 1) * sizeof(uint32_t));
        void *indices = zalloc(n * (k / 4 + 1) * (u32 ? 4 : 2));
        size_t blocks = 0;
        for (size_t j = 0; j < n; j++) {
            for (size_t p = 0; p + 4 <= k; p += 4)
                if (next() % 4 == 0) {
                    if (u32) ((uint32_t *)indices)[blocks++] = (uint32_t)p;
                    else ((uint16_t *)indices)[blocks++] = (uint16_t)p;
                }
            indptr[j + 1] = (uint32_t)blocks;
        }
        if (op[11] == 's') {
            er_csr w = {n, k, indptr, indices, u32 ? 4 : 2, rand_s8(4 * blocks)};
            int8_t *x = rand_s8(m * k);
            for (size_t r = 0; r < reps; r++)
                status |= ((er_spmm_bcsr4_s8_fn *)v->fn)(&w, x, m, &ep, NULL);
        } else {
            er_csr w = {n, k, indptr, indices, u32 ? 4 : 2, rand_f32(4 * blocks)};
            float *x = rand_f32(m * k);
            for (size_t r = 0; r < reps; r++)
                status |= ((er_spmm_bcsr4_f32_fn *)v->fn)(&w, x, m, &ep, NULL);
        }
    } else if (strcmp(op, "dwconv2d_s8") == 0 || strcmp(op, "dwconv2d_f32") == 0) {
        er_conv2d_params p = {1, m, m, n, k, k, 1, 1, 1, 1, k / 2, k / 2, k / 2, k / 2,
                              m + 2 * (k / 2) - k + 1, m + 2 * (k / 2) - k + 1, ER_ACT_RELU};
        size_t outputs = p.out_h * p.out_w * n;
        if (op[9] == 's') {
            int8_t *x = rand_s8(m * m * n), *w = rand_s8(k * k * n);
            er_conv_quant q = {0.02f, rand_f32(n), bias, NULL, zalloc(outputs), 3.0f};
            for (size_t r = 0; r < reps; r++)
                status |= ((er_dwconv2d_s8_fn *)v->fn)(&p, x, w, &q);
        } else {
            float *x = rand_f32(m * m * n), *w = rand_f32(k * k * n);
            float *out = zalloc(outputs * sizeof(float));
            for (size_t r = 0; r < reps; r++)
                status |= ((er_dwconv2d_f32_fn *)v->fn)(&p, x, w, bias, out);
        }
    } else if (strcmp(op, "im2col_f32") == 0) {
        er_conv2d_params p = {1, m, m, n, k, k, 1, 1, 1, 1, k / 2, k / 2, k / 2, k / 2,
                              m + 2 * (k / 2) - k + 1, m + 2 * (k / 2) - k + 1, ER_ACT_NONE};
        float *x = rand_f32(m * m * n), *rows = zalloc(p.out_h * p.out_w * k * k * n * 4);
        for (size_t r = 0; r < reps; r++) status |= ((er_im2col_f32_fn *)v->fn)(&p, x, rows);
    } else if (strcmp(op, "layer_norm_f32") == 0) {
        float *x = rand_f32(m * n), *res = k ? rand_f32(m * n) : NULL;
        for (size_t r = 0; r < reps; r++)
            status |= ((er_layer_norm_f32_fn *)v->fn)(x, res, col_scale, bias, y, m, n, 1e-5f);
    } else if (strcmp(op, "gelu_f32") == 0 || strcmp(op, "softmax_f32") == 0) {
        /* m rows of k, in place; gelu: n = 0 the erf form, n = 1 the tanh form;
         * inputs in [-4, 4) (libm's scalar erfc branches by range). */
        float *x = rand_f32(m * k);
        for (size_t i = 0; i < m * k; i++) x[i] *= 8.0f;
        for (size_t r = 0; r < reps; r++)
            status |= op[0] == 'g' ? ((er_gelu_f32_fn *)v->fn)(x, x, m * k, n != 0)
                                   : ((er_softmax_f32_fn *)v->fn)(x, x, m, k);
    } else {
        fprintf(stderr, "driver: no problem defined for %s\n", op);
        return 2;
    }
    if (status != ER_OK) {
        fprintf(stderr, "driver: %s/%s returned an error\n", op, v->variant);
        return 1;
    }
    return 0;
}
