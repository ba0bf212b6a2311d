#include <math.h>

#include "harness.h"

#define ER_TEST(op) void test_##op(void);
#include "tests.inc"
#undef ER_TEST

static uint64_t state = 0x9E3779B97F4A7C15ull;
static long passed, failed;

uint64_t h_rand(void) {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
}

int h_randint(int lo, int hi) { return lo + (int)(h_rand() % (uint64_t)(hi - lo + 1)); }

float h_randf(void) { return (float)((h_rand() >> 40) * (1.0 / (1u << 24))) * 2.0f - 1.0f; }

void h_fill_s8(int8_t *a, size_t n, int lo, int hi) {
    for (size_t i = 0; i < n; i++) a[i] = (int8_t)h_randint(lo, hi);
}

void h_fill_f32(float *a, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) a[i] = h_randf() * scale;
}

void *h_alloc(size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) {
        fprintf(stderr, "harness: out of memory\n");
        exit(2);
    }
    return p;
}

size_t h_variants(const char *op, const er_variant **out, size_t max) {
    size_t count, found = 0;
    const er_variant *table = er_variants(&count);
    for (size_t i = 0; i < count && found < max; i++)
        if (strcmp(table[i].op, op) == 0 && er_cpu_has(table[i].isa)) out[found++] = &table[i];
    return found;
}

void h_check(int ok, const char *op, const char *variant, const char *what) {
    if (ok) {
        passed++;
        return;
    }
    if (failed++ < 20) printf("FAIL %s/%s: %s\n", op, variant, what);
}

int h_same_bytes(const void *a, const void *b, size_t n) { return n == 0 || memcmp(a, b, n) == 0; }

int h_close_f32(const float *a, const float *b, size_t n, float rtol, float atol) {
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(a[i] - b[i]) <= atol + rtol * fabsf(b[i]))) return 0;
    return 1;
}

/* EDGERUN_EXPECT="gemm_s8=dotprod,codebook_s8=dotprod": CI names, per emulated
 * CPU, the variant er_select must choose, so a dispatch that silently falls
 * back to a slower variant (or picks one the CPU lacks) fails the run. */
static void check_expected_selection(void) {
    const char *spec = getenv("EDGERUN_EXPECT");
    if (!spec || !*spec) return;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *item = strtok(buf, ", "); item; item = strtok(NULL, ", ")) {
        char *eq = strchr(item, '=');
        if (!eq) {
            printf("FAIL EDGERUN_EXPECT: '%s' is not op=variant\n", item);
            failed++;
            continue;
        }
        *eq = '\0';
        const er_variant *v = er_select(item);
        if (v && strcmp(v->variant, eq + 1) == 0) {
            printf("expected selection: %s/%s\n", item, eq + 1);
            passed++;
        } else {
            printf("FAIL dispatch %s: selected %s, expected %s\n", item, v ? v->variant : "nothing",
                   eq + 1);
            failed++;
        }
    }
}

int main(void) {
    /* Line-buffered even into a pipe: a variant that dies with SIGILL under
     * qemu must not take the dispatch lines printed before it with it. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    size_t count;
    const er_variant *table = er_variants(&count);
    printf("variants this CPU runs:");
    for (size_t i = 0; i < count; i++)
        if (er_cpu_has(table[i].isa)) printf(" %s/%s", table[i].op, table[i].variant);
    printf("\nselected:");
    for (size_t i = 0; i < count; i++)
        if (strcmp(table[i].variant, "scalar") == 0) {
            const er_variant *v = er_select(table[i].op);
            printf(" %s/%s", v->op, v->variant);
        }
    printf("\n");
    check_expected_selection();
#define ER_TEST(op) test_##op();
#include "tests.inc"
#undef ER_TEST
    printf("%ld passed, %ld failed\n", passed, failed);
    return failed != 0;
}
