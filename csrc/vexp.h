/* Vectorised float32 exp, shared by the float kernels that need one (gelu_f32,
 * softmax_f32): 8 lanes on x86-64 AVX2+FMA, 4 lanes on NEON (aarch64, and
 * armv7 built with -mfpu=neon-vfpv4, which has VFMA).
 *
 * Method (the textbook one, coefficients fitted for edgerun):
 *     n = round(x / ln 2),   r = x - n ln 2   (|r| <= ln 2 / 2),
 *     exp(x) = 2^n * p(r),   p(r) = 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4)
 * - r is computed in two FMA steps with ln 2 = LN2_HI + LN2_LO (Cody-Waite):
 *   LN2_HI has 9 significant bits, so n * LN2_HI is exact for |n| <= 2^15 and
 *   x - n * LN2_HI is exact too; only the LN2_LO step rounds.
 * - c2..c6 minimise the relative error of p on |r| <= 0.3486 (a Lawson-weighted
 *   least-squares fit in float64): 3.2e-9, far below float32's 6e-8 ulp, so the
 *   rounding of the Horner steps dominates.  Measured against float64 exp over
 *   a dense sweep of [-104, 89] (2^20 points): max 0.97 ulp on AVX2, aarch64
 *   and armv7 NEON alike, 1.13 ulp for er_vexp_sum_ftz down to FLT_MIN
 *   (tests/c/test_softmax_f32.c asserts <= 2 and <= 2.5 ulp on every ISA it
 *   runs, NEON under qemu).
 * - 2^n is applied as two factors 2^(n>>1) * 2^(n - (n>>1)), each a normal
 *   float for n in [-150, 129]: results in the subnormal range come out by
 *   gradual underflow instead of a wrong exponent, exp(x) for x <= -104 is
 *   exactly +0 (attention masks add -1e9 or -inf), and x >= 88.73 gives +inf.
 * - x is clamped to [-104, 89] first (the clamp keeps n small; past it the
 *   result is 0 or inf anyway) with the NaN-propagating operand order, so NaN
 *   in gives NaN out.
 *
 * er_vexp_sum_ftz_*(hi, lo) returns exp(hi + lo) without rounding hi + lo first:
 * the reduction subtracts n ln 2 from hi alone and adds lo afterwards.  GELU's
 * erfc needs it: exp(-x^2/2) with x^2/2 near 50 would lose 2e-6 of relative
 * precision if -x^2/2 were rounded to float.  The _ftz forms (GELU, the AVX2
 * softmax) apply 2^n as one factor and give 0 below FLT_MIN.
 *
 * Everything is static inline: each including file compiles it for its own ISA. */
#ifndef EDGERUN_VEXP_H
#define EDGERUN_VEXP_H

#define ER_EXP_LO (-104.0f)        /* exp(-104) = 6.8e-46 < half the smallest subnormal */
#define ER_EXP_HI 89.0f            /* exp(88.73) > FLT_MAX */
#define ER_EXP_LOG2E 1.44269504f
#define ER_EXP_LN2_HI 0.693359375f /* 355 / 512 */
#define ER_EXP_LN2_LO (-2.12194440e-4f)
#define ER_EXP_MAGIC 12582912.0f   /* 1.5 * 2^23: adding it rounds to an integer */
#define ER_EXP_C2 4.9999994e-01f
#define ER_EXP_C3 1.6666517e-01f
#define ER_EXP_C4 4.1668426e-02f
#define ER_EXP_C5 8.369124e-03f
#define ER_EXP_C6 1.381379e-03f

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* p(r) * 2^n for the integer n held in the low mantissa bits of z = t + MAGIC. */
static inline __m256 er_vexp_finish_avx2(__m256 r, __m256 z) {
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(ER_EXP_C6), r, _mm256_set1_ps(ER_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ER_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ER_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ER_EXP_C2));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    /* z's bits minus MAGIC's bits are n (|n| < 2^22 keeps it in the mantissa). */
    __m256i n = _mm256_sub_epi32(_mm256_castps_si256(z),
                                 _mm256_castps_si256(_mm256_set1_ps(ER_EXP_MAGIC)));
    __m256i n1 = _mm256_srai_epi32(n, 1);
    __m256i n2 = _mm256_sub_epi32(n, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* p(r) * 2^n as er_vexp_finish_avx2, for callers to whom a result below
 * FLT_MIN = 2^-126 is as good as 0 (GELU's erfc: its output there is below
 * 1e-37, which the tests accept as 0): 2^n is one factor, and n < -126 makes it
 * +0 (the biased exponent n + 127 taken at least 0) instead of a gradual
 * underflow; results p * 2^-126 with p < 1 round as subnormals.  The polynomial
 * is Estrin's (3 dependent steps, not 5).  Five fewer operations than the two-factor
 * finish, in loops bound by the FP ports.  Needs |n| < 2^22 (MAGIC's range). */
static inline __m256 er_vexp_finish_ftz_avx2(__m256 r, __m256 z) {
    __m256 r2 = _mm256_mul_ps(r, r);
    __m256 p23 = _mm256_fmadd_ps(_mm256_set1_ps(ER_EXP_C3), r, _mm256_set1_ps(ER_EXP_C2));
    __m256 p45 = _mm256_fmadd_ps(_mm256_set1_ps(ER_EXP_C5), r, _mm256_set1_ps(ER_EXP_C4));
    __m256 p46 = _mm256_fmadd_ps(_mm256_set1_ps(ER_EXP_C6), r2, p45);
    __m256 p = _mm256_fmadd_ps(_mm256_fmadd_ps(p46, r2, p23), r2, r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    /* n + 127 = z's bits - (MAGIC's bits - 127) */
    __m256i biased = _mm256_sub_epi32(_mm256_castps_si256(z),
                                      _mm256_sub_epi32(_mm256_castps_si256(_mm256_set1_ps(ER_EXP_MAGIC)),
                                                       _mm256_set1_epi32(127)));
    biased = _mm256_max_epi32(biased, _mm256_setzero_si256());
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(biased, 23)));
}

/* The Cody-Waite step from t (the clamped argument, which gives n) and h (what
 * n ln 2 is taken from: t itself, or the clamped hi of an exp(hi + lo)): returns
 * r = h - n ln 2 and sets *z, whose low mantissa bits hold n. */
static inline __m256 er_vexp_reduce_avx2(__m256 t, __m256 h, __m256 *z) {
    *z = _mm256_fmadd_ps(t, _mm256_set1_ps(ER_EXP_LOG2E), _mm256_set1_ps(ER_EXP_MAGIC));
    __m256 n = _mm256_sub_ps(*z, _mm256_set1_ps(ER_EXP_MAGIC));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(ER_EXP_LN2_HI), h);
    return _mm256_fnmadd_ps(n, _mm256_set1_ps(ER_EXP_LN2_LO), r);
}

/* min(ER_EXP_HI, max(ER_EXP_LO, x)); MAXPS/MINPS return the second operand when
 * either is NaN: NaN survives. */
static inline __m256 er_vexp_clamp_avx2(__m256 x) {
    return _mm256_min_ps(_mm256_set1_ps(ER_EXP_HI), _mm256_max_ps(_mm256_set1_ps(ER_EXP_LO), x));
}

/* exp(hi + lo) with er_vexp_finish_ftz_avx2, for GELU's -x^2/2 as hi + lo:
 * hi finite and above -2^22 ln 2 (MAGIC's range; no clamp), hi + lo <= ~0,
 * |lo| within an ulp or so of hi.  n comes from hi alone, so the reduction does
 * not wait for lo; r = hi - n ln 2 + lo stays within ln 2 / 2 and a hair. */
static inline __m256 er_vexp_sum_ftz_avx2(__m256 hi, __m256 lo) {
    __m256 z, r = er_vexp_reduce_avx2(hi, hi, &z);
    return er_vexp_finish_ftz_avx2(_mm256_add_ps(r, lo), z);
}

/* exp(x) for x <= 0 or NaN with er_vexp_finish_ftz_avx2: 0 below FLT_MIN (for
 * softmax, whose outputs are these over a sum >= 1: below FLT_MIN either way).
 * The floor keeps n >= -151, so -inf and -1e9 masks still give exactly +0. */
static inline __m256 er_vexp_nonpos_ftz_avx2(__m256 x) {
    __m256 t = _mm256_max_ps(_mm256_set1_ps(ER_EXP_LO), x), z;
    __m256 r = er_vexp_reduce_avx2(t, t, &z);
    return er_vexp_finish_ftz_avx2(r, z);
}

static inline __m256 er_vexp_avx2(__m256 x) {
    __m256 t = er_vexp_clamp_avx2(x), z;
    __m256 r = er_vexp_reduce_avx2(t, t, &z);
    return er_vexp_finish_avx2(r, z);
}
#endif /* AVX2 */

#if defined(__ARM_NEON)
#include <arm_neon.h>

/* a + b c and a - b c, fused where the core has VFMA (aarch64; armv7 with
 * -mfpu=neon-vfpv4, what setup.py builds).  A plain -mfpu=neon build gets the
 * unfused pair: the Cody-Waite step stays exact (n * LN2_HI is exact), the rest
 * rounds once more. */
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
#define er_vfma_neon(a, b, c) vfmaq_f32(a, b, c)
#define er_vfms_neon(a, b, c) vfmsq_f32(a, b, c)
#else
#define er_vfma_neon(a, b, c) vmlaq_f32(a, b, c)
#define er_vfms_neon(a, b, c) vmlsq_f32(a, b, c)
#endif

static inline float32x4_t er_vexp_finish_neon(float32x4_t r, float32x4_t z) {
    float32x4_t p = er_vfma_neon(vdupq_n_f32(ER_EXP_C5), vdupq_n_f32(ER_EXP_C6), r);
    p = er_vfma_neon(vdupq_n_f32(ER_EXP_C4), p, r);
    p = er_vfma_neon(vdupq_n_f32(ER_EXP_C3), p, r);
    p = er_vfma_neon(vdupq_n_f32(ER_EXP_C2), p, r);
    p = er_vfma_neon(r, p, vmulq_f32(r, r));
    p = vaddq_f32(p, vdupq_n_f32(1.0f));
    int32x4_t n = vsubq_s32(vreinterpretq_s32_f32(z),
                            vreinterpretq_s32_f32(vdupq_n_f32(ER_EXP_MAGIC)));
    int32x4_t n1 = vshrq_n_s32(n, 1);
    int32x4_t n2 = vsubq_s32(n, n1);
    const int32x4_t bias = vdupq_n_s32(127);
    float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}

/* p(r) 2^n as er_vexp_finish_avx2's one-factor twin (er_vexp_finish_ftz_avx2):
 * Estrin's polynomial, 2^n as one factor, +0 for n < -126. */
static inline float32x4_t er_vexp_finish_ftz_neon(float32x4_t r, float32x4_t z) {
    float32x4_t r2 = vmulq_f32(r, r);
    float32x4_t p23 = er_vfma_neon(vdupq_n_f32(ER_EXP_C2), vdupq_n_f32(ER_EXP_C3), r);
    float32x4_t p45 = er_vfma_neon(vdupq_n_f32(ER_EXP_C4), vdupq_n_f32(ER_EXP_C5), r);
    float32x4_t p46 = er_vfma_neon(p45, vdupq_n_f32(ER_EXP_C6), r2);
    float32x4_t p = er_vfma_neon(r, er_vfma_neon(p23, p46, r2), r2);
    p = vaddq_f32(p, vdupq_n_f32(1.0f));
    /* n + 127 = z's bits - (MAGIC's bits - 127) */
    int32x4_t biased = vsubq_s32(vreinterpretq_s32_f32(z),
                                 vsubq_s32(vreinterpretq_s32_f32(vdupq_n_f32(ER_EXP_MAGIC)),
                                           vdupq_n_s32(127)));
    biased = vmaxq_s32(biased, vdupq_n_s32(0));
    return vmulq_f32(p, vreinterpretq_f32_s32(vshlq_n_s32(biased, 23)));
}

/* er_vexp_sum_ftz_avx2 for NEON (the same conditions on hi and lo). */
static inline float32x4_t er_vexp_sum_ftz_neon(float32x4_t hi, float32x4_t lo) {
    float32x4_t z = er_vfma_neon(vdupq_n_f32(ER_EXP_MAGIC), hi, vdupq_n_f32(ER_EXP_LOG2E));
    float32x4_t n = vsubq_f32(z, vdupq_n_f32(ER_EXP_MAGIC));
    float32x4_t r = er_vfms_neon(hi, n, vdupq_n_f32(ER_EXP_LN2_HI));
    r = er_vfms_neon(r, n, vdupq_n_f32(ER_EXP_LN2_LO));
    return er_vexp_finish_ftz_neon(vaddq_f32(r, lo), z);
}

/* vmaxq_f32 / vminq_f32 return NaN when either operand is NaN (both ISAs). */
static inline float32x4_t er_vexp_clamp_neon(float32x4_t x) {
    return vminq_f32(vdupq_n_f32(ER_EXP_HI), vmaxq_f32(vdupq_n_f32(ER_EXP_LO), x));
}

static inline float32x4_t er_vexp_neon(float32x4_t x) {
    float32x4_t t = er_vexp_clamp_neon(x);
    float32x4_t z = er_vfma_neon(vdupq_n_f32(ER_EXP_MAGIC), t, vdupq_n_f32(ER_EXP_LOG2E));
    float32x4_t n = vsubq_f32(z, vdupq_n_f32(ER_EXP_MAGIC));
    float32x4_t r = er_vfms_neon(t, n, vdupq_n_f32(ER_EXP_LN2_HI));
    r = er_vfms_neon(r, n, vdupq_n_f32(ER_EXP_LN2_LO));
    return er_vexp_finish_neon(r, z);
}

/* a / b: one instruction on aarch64; armv7 NEON has no divide, so a reciprocal
 * estimate and two Newton steps (about 1 ulp from the true quotient). */
static inline float32x4_t er_vdiv_neon(float32x4_t a, float32x4_t b) {
#if defined(__aarch64__)
    return vdivq_f32(a, b);
#else
    float32x4_t inv = vrecpeq_f32(b);
    inv = vmulq_f32(inv, vrecpsq_f32(b, inv));
    inv = vmulq_f32(inv, vrecpsq_f32(b, inv));
    return vmulq_f32(a, inv);
#endif
}
#if defined(__aarch64__)
/* exp for aarch64 loops short of registers for their constants (softmax's
 * x - max, GELU's -x^2/2).  With each constant a register of its own (the
 * generic NEON forms and the code around them), GCC ran out of
 * the 32 and reloaded about ten of them from memory on every step: 31 of the 88
 * instructions of a GELU step.  Here the four that only ever multiply sit in the
 * lanes of one register (FMLA by element); the upper clamp is gone, as the
 * argument cannot overflow; n comes from FRINTN / FCVTZS instead of the MAGIC
 * addend; and the exponent bias is 1.0f's bits, a register the caller has anyway.
 * The results are the generic forms' to within their accuracy (the tests hold
 * both to the same bounds), not bit for bit: n is rounded from a rounded product. */
typedef struct {
    float32x4_t lanes;              /* LOG2E, LN2_HI, LN2_LO, C6 */
    float32x4_t c5, c4, c3, c2, one, lo;
} er_vexp_a64_consts;

/* v, with its value hidden from the compiler: GCC sees through vld1q_f32 of a
 * constant table, turns each FMLA by element back into a full-vector constant,
 * and is back to one register (or one reload) per constant. */
static inline float32x4_t er_opaque_a64(float32x4_t v) {
    __asm__("" : "+w"(v));
    return v;
}

static inline er_vexp_a64_consts er_vexp_a64_load(void) {
    static const float lanes[4] = {ER_EXP_LOG2E, ER_EXP_LN2_HI, ER_EXP_LN2_LO, ER_EXP_C6};
    er_vexp_a64_consts k = {er_opaque_a64(vld1q_f32(lanes)), vdupq_n_f32(ER_EXP_C5), vdupq_n_f32(ER_EXP_C4),
                            vdupq_n_f32(ER_EXP_C3), vdupq_n_f32(ER_EXP_C2), vdupq_n_f32(1.0f),
                            vdupq_n_f32(ER_EXP_LO)};
    return k;
}

/* p(r) 2^n for r = x - n ln 2 (n integral, >= -150 after the clamp): as
 * er_vexp_finish_neon, 2^n applied as two factors. */
static inline float32x4_t er_vexp_a64_finish(float32x4_t r, float32x4_t n,
                                             const er_vexp_a64_consts k) {
    float32x4_t p = vfmaq_laneq_f32(k.c5, r, k.lanes, 3);
    p = vfmaq_f32(k.c4, p, r);
    p = vfmaq_f32(k.c3, p, r);
    p = vfmaq_f32(k.c2, p, r);
    p = vaddq_f32(vfmaq_f32(r, p, vmulq_f32(r, r)), k.one);
    /* FCVTZS makes a NaN n 0; the NaN goes on through r. */
    int32x4_t n_int = vcvtq_s32_f32(n);
    int32x4_t n1 = vshrq_n_s32(n_int, 1);
    int32x4_t bias = vreinterpretq_s32_f32(k.one);
    float32x4_t s1 = vreinterpretq_f32_s32(vaddq_s32(vshlq_n_s32(n1, 23), bias));
    float32x4_t s2 = vreinterpretq_f32_s32(vaddq_s32(vshlq_n_s32(vsubq_s32(n_int, n1), 23), bias));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}

/* er_vexp_a64_finish with Estrin's polynomial and 2^n as one factor, +0 for
 * n < -126 (er_vexp_finish_ftz_avx2's rule). */
static inline float32x4_t er_vexp_a64_finish_ftz(float32x4_t r, float32x4_t n,
                                                 const er_vexp_a64_consts k) {
    float32x4_t r2 = vmulq_f32(r, r);
    float32x4_t p23 = vfmaq_f32(k.c2, k.c3, r);
    float32x4_t p46 = vfmaq_laneq_f32(vfmaq_f32(k.c4, k.c5, r), r2, k.lanes, 3);
    float32x4_t p = vaddq_f32(vfmaq_f32(r, vfmaq_f32(p23, p46, r2), r2), k.one);
    /* 2^n's bits, (n << 23) + 1.0f's bits, with no constant of its own: FCVTZS
     * with 23 fraction bits gives n << 23 (saturating at INT_MIN for n < -256),
     * and SQSHLU by 0 turns what is negative (n <= -127) into +0.  FCVTZS makes
     * a NaN n 0; the NaN goes on through r. */
    int32x4_t bits = vaddq_s32(vcvtq_n_s32_f32(n, 23), vreinterpretq_s32_f32(k.one));
    return vmulq_f32(p, vreinterpretq_f32_u32(vqshluq_n_s32(bits, 0)));
}

/* exp(hi - lo_neg), er_vexp_sum_ftz_avx2's conditions with lo = -lo_neg (FMLS
 * gives GELU the negated rounding error for free). */
static inline float32x4_t er_vexp_diff_ftz_a64(float32x4_t hi, float32x4_t lo_neg,
                                               const er_vexp_a64_consts k) {
    float32x4_t n = vrndnq_f32(vmulq_laneq_f32(hi, k.lanes, 0));
    float32x4_t r = vfmsq_laneq_f32(hi, n, k.lanes, 1);
    r = vsubq_f32(vfmsq_laneq_f32(r, n, k.lanes, 2), lo_neg);
    return er_vexp_a64_finish_ftz(r, n, k);
}

/* exp(x), x <= 0 or NaN (FMAX returns NaN when either operand is NaN). */
static inline float32x4_t er_vexp_nonpos_a64(float32x4_t x, const er_vexp_a64_consts k) {
    float32x4_t t = vmaxq_f32(k.lo, x);
    float32x4_t n = vrndnq_f32(vmulq_laneq_f32(t, k.lanes, 0));
    float32x4_t r = vfmsq_laneq_f32(t, n, k.lanes, 1);
    return er_vexp_a64_finish(vfmsq_laneq_f32(r, n, k.lanes, 2), n, k);
}

#endif /* aarch64 */
#endif /* NEON */

#endif
