/* The C-level test harness: runs every kernel variant this CPU can run against
 * the portable scalar variant (itself checked against numpy by pytest), on
 * random and edge shapes.  Built natively, with sanitizers, and with cross
 * compilers under qemu-user (tests/c/Makefile). */
#ifndef EDGERUN_HARNESS_H
#define EDGERUN_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgerun.h"

/* xorshift64*: deterministic across platforms, unlike rand(). */
uint64_t h_rand(void);
int h_randint(int lo, int hi);          /* uniform in [lo, hi] */
float h_randf(void);                    /* uniform in [-1, 1) */
void h_fill_s8(int8_t *a, size_t n, int lo, int hi);
void h_fill_f32(float *a, size_t n, float scale);
void *h_alloc(size_t bytes);            /* zeroed, never NULL (aborts the harness) */

/* The variants of op this CPU runs, scalar first; returns the count. */
size_t h_variants(const char *op, const er_variant **out, size_t max);

/* Record one case; prints the first failures with context. */
void h_check(int ok, const char *op, const char *variant, const char *what);
/* Exact comparison of n bytes / max relative error of n floats. */
int h_same_bytes(const void *a, const void *b, size_t n);
int h_close_f32(const float *a, const float *b, size_t n, float rtol, float atol);

#endif
