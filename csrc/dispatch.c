/* CPU feature detection and the table of every compiled kernel variant.
 * The choice per op is made by the caller once (the Python layer: on the op's
 * first use) through er_select, so no kernel call pays for dispatch. */
#include <stdlib.h>
#include <string.h>

#include "edgerun.h"

#define ER_VARIANT(op, variant, isa) er_##op##_fn er_##op##__##variant;
#include "kernels.inc"
#undef ER_VARIANT

static const er_variant table[] = {
#define ER_VARIANT(op, variant, isa) {#op, #variant, isa, (void *)er_##op##__##variant},
#include "kernels.inc"
#undef ER_VARIANT
};

const er_variant *er_variants(size_t *count) {
    *count = sizeof table / sizeof table[0];
    return table;
}

#if defined(__x86_64__) || defined(_M_X64)
static int detect(er_isa isa) {
    switch (isa) {
    case ER_ISA_SCALAR: return 1;
    case ER_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return 0;
    }
}
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
static int detect(er_isa isa) {
    switch (isa) {
    case ER_ISA_SCALAR: return 1;
    case ER_ISA_NEON: return 1; /* Advanced SIMD is mandatory on aarch64 */
    case ER_ISA_DOTPROD: return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
    /* i8mm variants may use SDOT too (the odd-row path of gemm_s8); every
     * core with i8mm has dotprod, and the cap order i8mm > dotprod says so. */
    case ER_ISA_I8MM:
        return (getauxval(AT_HWCAP2) & HWCAP2_I8MM) != 0 &&
               (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
    default: return 0;
    }
}
#elif defined(__arm__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_NEON
#define HWCAP_NEON (1 << 12)
#endif
/* armv7: NEON is optional (a Cortex-A9 without it exists), so ask the kernel;
 * the NEON variants are only compiled when the build enables NEON
 * (ER_ARM32 in edgerun.h), otherwise only scalar is in the table. */
static int detect(er_isa isa) {
    switch (isa) {
    case ER_ISA_SCALAR: return 1;
    case ER_ISA_NEON: return (getauxval(AT_HWCAP) & HWCAP_NEON) != 0;
    default: return 0;
    }
}
#elif defined(__aarch64__)
static int detect(er_isa isa) { return isa == ER_ISA_SCALAR || isa == ER_ISA_NEON; }
#else
static int detect(er_isa isa) { return isa == ER_ISA_SCALAR; }
#endif

int er_cpu_has(er_isa isa) { return detect(isa); }

static const char *const isa_names[] = {"scalar", "avx2", "neon", "dotprod", "i8mm"};

const char *er_isa_name(er_isa isa) {
    return (unsigned)isa < sizeof isa_names / sizeof isa_names[0] ? isa_names[isa] : "?";
}

/* Each ISA's parent: what runs when the ISA is capped or missing. */
static er_isa parent(er_isa isa) {
    switch (isa) {
    case ER_ISA_I8MM: return ER_ISA_DOTPROD;
    case ER_ISA_DOTPROD: return ER_ISA_NEON;
    default: return ER_ISA_SCALAR;
    }
}

/* Whether isa is `cap` or one of its ancestors. */
static int within_cap(er_isa isa, er_isa cap) {
    for (;;) {
        if (isa == cap) return 1;
        if (cap == ER_ISA_SCALAR) return 0;
        cap = parent(cap);
    }
}

static int cap_from_env(er_isa *cap) {
    const char *name = getenv("EDGERUN_ISA");
    if (!name || !*name || strcmp(name, "auto") == 0) return 0;
    for (unsigned i = 0; i < sizeof isa_names / sizeof isa_names[0]; i++) {
        if (strcmp(name, isa_names[i]) == 0) {
            *cap = (er_isa)i;
            return 1;
        }
    }
    return 0; /* an unknown name is reported by the Python layer, not here */
}

const er_variant *er_select(const char *op) {
    er_isa cap = ER_ISA_SCALAR;
    int capped = cap_from_env(&cap);
    const er_variant *best = NULL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const er_variant *v = &table[i];
        if (strcmp(v->op, op) != 0 || !detect(v->isa)) continue;
        if (capped && !within_cap(v->isa, cap)) continue;
        best = v;
    }
    return best;
}
