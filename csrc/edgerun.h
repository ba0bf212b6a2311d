/* edgerun kernels: every signature and the numeric contract, written once.
 *
 * Conventions shared by every kernel
 * ----------------------------------
 * - Matrices are row-major and dense unless a layout says otherwise.
 *   x is the activation matrix [m, k]; weights are stored by output row, [n, k]
 *   (the layout of a Linear layer's weight); y is [m, n] with row stride ldy >= n.
 * - Integer paths: activations and weights are symmetric int8 in [-127, 127]
 *   (never -128), products accumulate in int32.  Every variant of an integer
 *   kernel produces the same int32 sums, so the same output bits.
 *   k is limited to ER_MAX_K_S8 so that k * 127 * 127 fits in int32.
 * - The epilogue (epilogue.h) turns an accumulator into the output, in float32,
 *   in this order and with no fused multiply-add (build with -ffp-contract=off):
 *       v = (float)acc;  v *= row_scale[i];  v *= col_scale[j];  v += bias[j];
 *       v = relu ? max(v, 0) : v;
 *   then either y_f32[i*ldy + j] = v, or, requantizing for the next int8 layer,
 *       y_s8[i*ldy + j] = clamp(round_half_even(v * out_inv_scale), -127, 127).
 *   A NULL row_scale / col_scale / bias is skipped (not multiplied by 1).
 * - Asymmetric activations (gemm_s8 and codebook_s8; the others refuse them):
 *   x holds q in [0, 127] with a zero point z per row (quantize_rows_u7), so
 *   the product wanted is sum_p (x[i][p] - z[i]) * w[j][p].  Then row_zero = z
 *   and col_sum[j] = sum_p w[j][p], and before the conversion to float
 *       acc -= row_zero[i] * col_sum[j]
 *   in wrapping 32-bit arithmetic: the intermediate terms may exceed int32,
 *   the difference never does (|x - z| <= 127, so it is bounded like any sum).
 *   Why: x86 without VNNI multiplies int8 as unsigned x signed (vpmaddubsw);
 *   a signed x costs a sign step per product vector, a non-negative x does not.
 * - Kernels never allocate and never abort.  Scratch memory, where needed, is
 *   sized by a companion *_scratch_bytes function and owned by the caller.
 *   Every entry point returns an er_status; on error the output is unspecified.
 * - Outputs may be computed for a slice of columns by offsetting the weight
 *   rows, col_scale, bias and y by the first column, keeping ldy: this is how
 *   work is split across threads.
 */
#ifndef EDGERUN_H
#define EDGERUN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ER_OK = 0,
    ER_ERR_ARGUMENT = 1,     /* NULL pointer, zero-size where forbidden, bad bits */
    ER_ERR_K_TOO_LARGE = 2,  /* k > ER_MAX_K_S8: the int32 accumulator could overflow */
    ER_ERR_NONFINITE = 3,    /* NaN or Inf in a float input that must be quantized */
    ER_ERR_CORRUPT = 4,      /* encoded data is inconsistent (e.g. a bad Huffman stream) */
    ER_ERR_UNSUPPORTED = 5   /* the variant cannot run on this CPU */
} er_status;

/* 131072 * 127 * 127 = 2 114 060 288 < 2^31 - 1 */
#define ER_MAX_K_S8 131072u

typedef struct {
    const float *row_scale;  /* [m] or NULL: per-row activation scale */
    const float *col_scale;  /* [n] or NULL: per-output-column weight scale */
    const float *bias;       /* [n] or NULL */
    int relu;                /* nonzero: clamp negatives to 0 before storing */
    float *y_f32;            /* exactly one of y_f32 / y_s8 is non-NULL */
    int8_t *y_s8;
    float out_inv_scale;     /* y_s8 only: 1 / scale of the int8 output */
    size_t ldy;              /* row stride of y in elements, >= n */
    const int32_t *row_zero; /* [m] or NULL: zero point of each row of an asymmetric x */
    const int32_t *col_sum;  /* [n], with row_zero (else NULL): sum_p w[j][p] */
} er_epilogue;

/* ---- quantize_rows_s8 -------------------------------------------------------
 * x [m, k] float32 -> q [m, k] int8, scale [m] float32, per row:
 *     amax = max |x[i, :]|;   if 127.0f / amax is Inf: scale = 0, q = 0
 *       (amax == 0, or amax < 127 / FLT_MAX ~ 3.7e-37: inv would overflow)
 *     inv = 127.0f / amax;    q = clamp(round_half_even(x * inv), -127, 127)
 *     scale = amax / 127.0f
 * Returns ER_ERR_NONFINITE if any element is NaN or Inf.  Cost: 2 passes over x. */
typedef er_status er_quantize_rows_s8_fn(const float *x, size_t m, size_t k,
                                          int8_t *q, float *scale);

/* ---- quantize_rows_u7 -------------------------------------------------------
 * x [m, k] float32 -> q [m, k] int8 in [0, 127], scale [m] float32, zero [m]
 * int32, per row, asymmetric over the row's range including 0:
 *     lo = min(min x[i, :], 0);   hi = max(max x[i, :], 0)
 *     range = hi - lo;   if 127.0f / range is Inf: scale = 0, zero = 0, q = 0
 *       (hi == lo, or range < 127 / FLT_MAX ~ 3.7e-37: inv would overflow)
 *     inv = 127.0f / range;   scale = range / 127.0f
 *       (if range overflows to Inf: r = 0.5f * hi - 0.5f * lo,
 *        inv = 63.5f / r, scale = r / 63.5f)
 *     zero = min(round_half_even(-lo * inv), 127)
 *     q = clamp(round_half_even(x * inv) + zero, 0, 127)
 * so x ~ scale * (q - zero).  On a row without negatives this is exactly
 * quantize_rows_s8 with zero = 0.  Returns ER_ERR_NONFINITE for NaN or Inf.
 * Cost: 2 passes over x. */
typedef er_status er_quantize_rows_u7_fn(const float *x, size_t m, size_t k,
                                          int8_t *q, float *scale, int32_t *zero);

/* ---- layer_norm_f32 ---------------------------------------------------------
 * Per row of x [rows, n] float32 (row-major, contiguous), with an optional
 * residual [rows, n] added first (BERT's x = LayerNorm(x + sublayer(x))):
 *     v = x + residual (or x);   K = v[0]  (any element would do: a shift)
 *     d = mean(v - K);           c = (v - K) - d        (= v - mean(v))
 *     var = mean(c * c);         inv = 1 / sqrt(var + epsilon)
 *     y = c * inv * scale[j] + bias[j]
 * all in float32.  The shift by the row's own first element keeps the mean
 * accurate to the row's spread, not to its magnitude: a row at 1e4 +- 1 loses
 * nothing to the 1e-3 float32 spacing at 1e4 (a plain float32 mean would), and
 * the variance is the mean of squared deviations (two passes), never
 * E[v^2] - E[v]^2.  Sums may be reordered by SIMD variants (within tolerance).
 * scale [n] float32; bias [n] or NULL (skipped); residual NULL = none.
 * y [rows, n] caller-allocated; y may BE x or residual (in place), no other
 * overlap.  Pass 1 stores v - K to y, which passes 2 and 3 read back.
 * A constant row gives c = 0, so y = bias (NaN if epsilon == 0: 0 * inf).
 * NaN/Inf in x propagate to their row; no error.  rows == 0 or n == 0: nothing.
 * Returns ER_ERR_ARGUMENT for a NULL x / scale / y, or an epsilon that is
 * negative, NaN or infinite.  Cost per element: 3 reads (4 with residual), 2 writes. */
typedef er_status er_layer_norm_f32_fn(const float *x, const float *residual,
                                       const float *scale, const float *bias, float *y,
                                       size_t rows, size_t n, float epsilon);

/* ---- gemm_s8 ----------------------------------------------------------------
 * x [m, k] int8, w [n, k] int8 -> acc[i, j] = sum_p x[i, p] * w[j, p] -> epilogue.
 * k <= ER_MAX_K_S8.  m, n, k may be any size >= 1.  Cost: m*n*k multiply-adds. */
typedef er_status er_gemm_s8_fn(const int8_t *x, const int8_t *w, size_t m,
                                size_t n, size_t k, const er_epilogue *ep);

/* ---- CSR weights --------------------------------------------------------------
 * A sparse [rows, cols] weight matrix stored by output row (rows = n, cols = k).
 * indptr [rows + 1] is absolute: row j owns entries indptr[j] .. indptr[j+1]-1,
 * indptr[0] may be > 0 when the struct describes a slice of rows.  Indices are
 * uint16 (index_bytes = 2) or uint32 (4), each < cols.  The loader validates all
 * of this before a kernel sees it; kernels trust it. */
typedef struct {
    size_t rows, cols;
    const uint32_t *indptr;
    const void *indices;
    int index_bytes;
    const void *values;      /* float32 [nnz] or int8 [nnz], by kernel */
} er_csr;

/* ---- spmm_csr_f32 -----------------------------------------------------------
 * acc[i, j] = sum_{e in row j} values[e] * x[i, indices[e]], summed in entry
 * order per output; x [m, cols] float32.  For m > 1 the kernel transposes x into
 * scratch (er_spmm_csr_scratch_bytes) so that a nonzero scales a contiguous
 * vector of the batch.  Cost: m * nnz multiply-adds. */
typedef er_status er_spmm_csr_f32_fn(const er_csr *w, const float *x, size_t m,
                                     const er_epilogue *ep, void *scratch);

/* ---- spmm_csr_s8: the same over int8 values and int8 x, int32 accumulation. */
typedef er_status er_spmm_csr_s8_fn(const er_csr *w, const int8_t *x, size_t m,
                                    const er_epilogue *ep, void *scratch);

/* Bytes of scratch that spmm_csr_* needs for m rows of k inputs (any variant). */
size_t er_spmm_csr_scratch_bytes(size_t m, size_t k);

/* ---- spmm_bcsr4_f32 / spmm_bcsr4_s8: 1x4 block-sparse weights -----------------
 * The er_csr struct over blocks of 4 consecutive weights of one row: w->rows = n,
 * w->cols = k; indptr [rows + 1] counts BLOCKS (absolute, like CSR; indptr[0]
 * may be > 0 for a slice of rows); indices[b] is the first column of block b,
 * with indices[b] + 4 <= cols (the loader guarantees it; the blocks of one row
 * do not overlap); values holds 4 weights per block, contiguous: values[4b + t]
 * is the weight at column indices[b] + t (float32 or int8, by kernel).
 *     acc[i, j] = sum over blocks b of row j, t = 0..3, of
 *                 values[4b + t] * x[i, indices[b] + t]
 * int8: int32, exact in any order (a row holds at most ER_MAX_K_S8 / 4 blocks).
 * float32: summed block by block, t inner, by the scalar C; a SIMD variant may
 * reorder the sum (within tolerance).  One index and one 4-byte (int8) x load
 * serve four weights, against one each per weight in CSR.  The signatures are
 * those of spmm_csr; scratch is not used (may be NULL).  Cost: m * 4 * blocks. */
typedef er_spmm_csr_f32_fn er_spmm_bcsr4_f32_fn;
typedef er_spmm_csr_s8_fn er_spmm_bcsr4_s8_fn;

/* ---- codebook_f32 -------------------------------------------------------------
 * Weight-shared layer: w[j, p] = centroids[index(j, p)], index b bits wide
 * (1 <= bits <= 8), packed LSB-first, each row starting on a byte boundary:
 * row stride ceil(k * bits / 8) bytes; bit (p * bits + t) of row j is bit t of
 * index(j, p).  centroids [2^bits] float32, x [m, k] float32.
 * scratch: er_codebook_f32_scratch_bytes(k) (one decoded row). */
typedef er_status er_codebook_f32_fn(const uint8_t *packed, unsigned bits,
                                     const float *centroids, const float *x,
                                     size_t m, size_t n, size_t k,
                                     const er_epilogue *ep, void *scratch);
size_t er_codebook_f32_scratch_bytes(size_t k);

/* ---- codebook_s8 --------------------------------------------------------------
 * The int8 fast path for bits <= 4: table [16] int8 centroids in [-127, 127],
 * indices as 4-bit nibbles in the "nibble32" layout: row stride
 * ceil(k / 32) * 16 bytes; block b covers p = 32b .. 32b+31 and byte t of the
 * block holds index(32b + t) in its low nibble and index(32b + 16 + t) in its
 * high nibble (so a 16-entry in-register table lookup yields 32 weights in
 * order).  Nibbles past k are ignored.  x [m, k] int8.  Cost: m*n*k. */
typedef er_status er_codebook_s8_fn(const uint8_t *nibbles, const int8_t *table,
                                    const int8_t *x, size_t m, size_t n, size_t k,
                                    const er_epilogue *ep);

/* ---- huffman_decode ---------------------------------------------------------
 * Canonical Huffman code over byte symbols.  code_lengths[256]: 0 = unused,
 * else 1..ER_HUFFMAN_MAX_BITS.  Codes are assigned in order of (length, symbol);
 * the bit stream is read MSB-first within each byte.  Decodes exactly n_out
 * symbols.  Returns ER_ERR_CORRUPT if the lengths over-subscribe the code space,
 * the stream ends early, or a bit pattern matches no code. */
#define ER_HUFFMAN_MAX_BITS 16
typedef er_status er_huffman_decode_fn(const uint8_t *code_lengths,
                                       const uint8_t *data, size_t n_bytes,
                                       uint8_t *out, size_t n_out);

/* ---- convolution geometry ------------------------------------------------------
 * Activations are NHWC: x [batch, in_h, in_w, channels], channels innermost, so
 * the channel vector of one pixel is contiguous (the layout SIMD wants for
 * depthwise convolution, and the runtime's internal layout for CNNs).
 * Output position (oy, ox) reads input rows oy*stride_h - pad_top + ky*dilation_h
 * (ky in [0, kernel_h)) and columns likewise; positions outside the input are
 * zero padding.  out_h / out_w are given by the caller and must equal
 *     out_h = (in_h + pad_top + pad_bottom - dilation_h*(kernel_h-1) - 1) / stride_h + 1
 * (integer division, the dividend >= 0), and out_w likewise; otherwise the kernel
 * returns ER_ERR_ARGUMENT.  Every size, stride and dilation is >= 1; pads may be
 * any size (an output whose taps all fall in padding is bias + activation). */
typedef enum {
    ER_ACT_NONE = 0,
    ER_ACT_RELU = 1,   /* v > 0 ? v : 0 (NaN stays NaN) */
    ER_ACT_RELU6 = 2   /* relu, then v > 6 ? 6 : v */
} er_activation;

typedef struct {
    size_t batch, in_h, in_w, channels;
    size_t kernel_h, kernel_w;
    size_t stride_h, stride_w;
    size_t dilation_h, dilation_w;
    size_t pad_top, pad_left, pad_bottom, pad_right;
    size_t out_h, out_w;
    int activation;          /* er_activation, applied after the bias */
} er_conv2d_params;

/* ---- dwconv2d_f32 ---------------------------------------------------------------
 * Depthwise 2-D convolution, channel multiplier 1:
 *     y[n, oy, ox, c] = act(sum_{ky, kx} x[n, iy, ix, c] * w[ky, kx, c] + bias[c])
 * x float32 [batch, in_h, in_w, C] NHWC; w float32 [kernel_h, kernel_w, C] (HWC:
 * the C weights of one tap are contiguous); bias float32 [C] or NULL (skipped);
 * y float32 [batch, out_h, out_w, C], caller-allocated, not aliasing x.
 * The sum starts at +0.0f and adds the products of the taps in (ky, kx) order,
 * each a float32 multiply then a float32 add (no FMA), so every variant gives
 * the same bits, and the bits of numpy adding shifted slices in that order.
 * Taps in the padding are skipped: with finite weights their product is +-0,
 * and adding +-0 to a sum that started at +0 never changes its bits.
 * Cost: batch*out_h*out_w*C*kernel_h*kernel_w multiply-adds. */
typedef er_status er_dwconv2d_f32_fn(const er_conv2d_params *p, const float *x,
                                     const float *w, const float *bias, float *y);

/* Quantization parameters and output of an int8 convolution. */
typedef struct {
    float x_scale;           /* the one scale of the int8 input tensor */
    const float *w_scale;    /* [C] per-channel weight scale, never NULL */
    const float *bias;       /* [C] or NULL */
    float *y_f32;            /* exactly one of y_f32 / y_s8 is non-NULL */
    int8_t *y_s8;
    float out_inv_scale;     /* y_s8 only: 1 / scale of the int8 output */
} er_conv_quant;

/* ---- dwconv2d_s8 ----------------------------------------------------------------
 * The same geometry over int8 x and w in [-127, 127]; acc = sum of the taps'
 * products in int32 (kernel_h*kernel_w <= ER_MAX_K_S8, else ER_ERR_K_TOO_LARGE),
 * then per output, in float32, in this order (the rules of epilogue.h):
 *     v = (float)acc;  v *= x_scale;  v *= w_scale[c];  v += bias[c];  v = act(v)
 * and y_f32 = v, or y_s8 = clamp(round_half_even(v * out_inv_scale), -127, 127)
 * (NaN -> 0).  y is [batch, out_h, out_w, C] NHWC.  Bit-exact across variants.
 * Cost: batch*out_h*out_w*C*kernel_h*kernel_w multiply-adds. */
typedef er_status er_dwconv2d_s8_fn(const er_conv2d_params *p, const int8_t *x,
                                    const int8_t *w, const er_conv_quant *q);

/* ---- im2col_f32 -----------------------------------------------------------------
 * The rows a standard (group 1) convolution multiplies by its weight matrix: one
 * row per output position (n, oy, ox), in that order, of kernel_h*kernel_w*C
 * floats, the window's taps in (ky, kx, c) order, +0.0f where a tap falls in the
 * padding:
 *     rows[(n*out_h + oy)*out_w + ox][(ky*kernel_w + kx)*C + c] = x[n, iy, ix, c]
 * with iy, ix as in the geometry above.  x float32 [batch, in_h, in_w, C] NHWC;
 * p->activation must be ER_ACT_NONE; rows caller-allocated, not overlapping x.
 * A copy, so one variant: the C library's memcpy is the SIMD.  ER_ERR_ARGUMENT
 * also when the rows' size overflows size_t.
 * Cost: batch*out_h*out_w*kernel_h*kernel_w*C floats moved, one memcpy per
 * window row (dilation_w == 1) or per tap. */
typedef er_status er_im2col_f32_fn(const er_conv2d_params *p, const float *x, float *rows);

/* ---- gelu_f32 -------------------------------------------------------------------
 * y[i] = gelu(x[i]) for i < count, x and y float32 [count]; y may equal x (in
 * place) but must not otherwise overlap it.  ONNX Gelu (opset 20):
 *     approximate_tanh == 0:  0.5 x (1 + erf(x / sqrt 2))
 *     approximate_tanh != 0:  0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * Float, not bit-exact: the scalar C computes in double with the C library
 * (float32-rounded results); SIMD variants use the erfc Chebyshev fit of
 * gelu_f32.h and the vector exp of vexp.h: erf form within 6e-7 relative of
 * the exact value everywhere, the negative tail included (1 + erf is taken as
 * erfc, never as 1 minus a number near 1); tanh form computed as x sigmoid(2u)
 * with exp(-2|u|), within 2e-6 for x > -5.5, beyond that limited by the float32
 * rounding of u (about 2e-7 per unit of 2|u|).  +inf -> +inf, -inf -> NaN and
 * NaN -> NaN, as numpy's formula gives.  Cost: count elements. */
typedef er_status er_gelu_f32_fn(const float *x, float *y, size_t count, int approximate_tanh);

/* ---- softmax_f32 ----------------------------------------------------------------
 * Per row of x float32 [rows, n] (row-major, contiguous) into y [rows, n]:
 *     m = max_j x[r, j];   y[r, j] = exp(x[r, j] - m) / sum_j exp(x[r, j] - m)
 * (the division may be a multiply by 1 / sum).  y may equal x (in place).
 * A row whose max is not finite -- a NaN in it, a +inf in it, or all -inf -- is
 * all NaN, numpy's answer; entries of -inf or -1e9 (masks) give exactly 0.
 * rows or n may be 0.  Float, within a few ulp of numpy across variants.
 * Cost: 3 passes over each row, one exp per element. */
typedef er_status er_softmax_f32_fn(const float *x, float *y, size_t rows, size_t n);

/* ---- dispatch (dispatch.c) ----------------------------------------------------
 * Every compiled variant of every kernel, from csrc/kernels.inc.  A variant runs
 * only if the CPU has its ISA; er_select picks, per op, the last runnable
 * variant of the table (the table lists variants from slowest to fastest), unless
 * the environment variable EDGERUN_ISA names a cap ("scalar" forces the
 * portable C everywhere). */
typedef enum {
    ER_ISA_SCALAR = 0,
    ER_ISA_AVX2 = 1,     /* x86-64 AVX2 + FMA */
    ER_ISA_NEON = 2,     /* Advanced SIMD: aarch64, or armv7 with NEON (HWCAP_NEON) */
    ER_ISA_DOTPROD = 3,  /* aarch64 SDOT (Armv8.2 dotprod) */
    ER_ISA_I8MM = 4      /* aarch64 SMMLA (Armv8.6 i8mm) */
} er_isa;

typedef struct {
    const char *op;        /* e.g. "gemm_s8" */
    const char *variant;   /* e.g. "avx2" */
    er_isa isa;
    void *fn;              /* cast to er_<op>_fn * */
} er_variant;

/* Wrap a kernels.inc line that exists only on one architecture. */
#if defined(__x86_64__) || defined(_M_X64)
#define ER_X86_64(line) line
#else
#define ER_X86_64(line)
#endif
#if defined(__aarch64__)
#define ER_AARCH64(line) line
#else
#define ER_AARCH64(line)
#endif
/* 32-bit ARM (armv7, e.g. 32-bit Raspberry Pi OS) built with NEON enabled
 * (-mfpu=neon-vfpv4); without it these variants are not compiled at all. */
#if defined(__arm__) && defined(__ARM_NEON) && !defined(__aarch64__)
#define ER_ARM32(line) line
#else
#define ER_ARM32(line)
#endif

const er_variant *er_variants(size_t *count);
int er_cpu_has(er_isa isa);               /* 1 if this CPU can run the ISA */
const char *er_isa_name(er_isa isa);
/* The chosen variant of op, honouring EDGERUN_ISA; NULL if op is unknown. */
const er_variant *er_select(const char *op);

#ifdef __cplusplus
}
#endif
#endif
