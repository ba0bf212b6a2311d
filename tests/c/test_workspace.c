/* The workspace cache: blocks are reused, aligned, zeroed when asked, bounded by
 * the blocks of the last run, and safe to use from two threads.  Every block is
 * written end to end, so SANITIZE=1 catches a block shorter than asked. */
#include <pthread.h>

#include "harness.h"
#include "workspace.h"

#define OP "workspace"

static er_workspace_stats stats_of(er_workspace *ws) {
    er_workspace_stats s;
    er_workspace_get_stats(ws, &s);
    return s;
}

static void fill(void *p, size_t bytes, int seed) {
    for (size_t i = 0; i < bytes; i++) ((unsigned char *)p)[i] = (unsigned char)(i * 31 + (size_t)seed);
}

static int filled(const void *p, size_t bytes, int seed) {
    for (size_t i = 0; i < bytes; i++)
        if (((const unsigned char *)p)[i] != (unsigned char)(i * 31 + (size_t)seed)) return 0;
    return 1;
}

static void test_reuse_and_alignment(void) {
    er_workspace *ws = er_workspace_new(0);
    h_check(ws != NULL, OP, "new", "workspace created");
    void *a = er_workspace_alloc(ws, 100000);
    h_check(a && (uintptr_t)a % 64 == 0, OP, "alloc", "a pooled block is 64-byte aligned");
    fill(a, 100000, 1);
    er_workspace_free(ws, a);
    er_workspace_stats s = stats_of(ws);
    h_check(s.in_use == 0 && s.cached == 102400 && s.cached_blocks == 1 && s.peak == 102400,
            OP, "free", "a freed block is cached with its page-rounded capacity");
    void *b = er_workspace_alloc(ws, 99000);    /* the same 25 pages */
    s = stats_of(ws);
    h_check(b == a && s.hits == 1 && s.misses == 1 && s.cached == 0, OP, "alloc",
            "the same capacity is served from the cache");
    void *c = er_workspace_calloc(ws, 1000, 100);
    h_check(c != NULL && c != b, OP, "calloc", "a block in use is not handed out twice");
    int zero = 1;
    for (size_t i = 0; c && i < 100000; i++) zero &= ((unsigned char *)c)[i] == 0;
    h_check(zero, OP, "calloc", "calloc zeroes a fresh block");
    fill(c, 100000, 2);
    er_workspace_free(ws, c);
    c = er_workspace_calloc(ws, 100000, 1);
    zero = 1;
    for (size_t i = 0; c && i < 100000; i++) zero &= ((unsigned char *)c)[i] == 0;
    h_check(zero, OP, "calloc", "calloc zeroes a reused (dirty) block");

    void *small = er_workspace_alloc(ws, 100);
    h_check(small && (uintptr_t)small % sizeof(void *) == 0, OP, "alloc",
            "a small block comes from malloc, with its alignment");
    fill(small, 100, 3);
    void *empty = er_workspace_alloc(ws, 0);
    h_check(empty != NULL, OP, "alloc", "zero bytes gives a block to free");
    s = stats_of(ws);
    h_check(s.in_use == 2 * 102400, OP, "alloc", "small blocks are not counted as pooled");
    er_workspace_free(ws, small);
    er_workspace_free(ws, empty);
    er_workspace_free(ws, NULL);
    er_workspace_free(ws, b);
    er_workspace_free(ws, c);
    er_workspace_trim(ws);
    s = stats_of(ws);
    h_check(s.cached == 0 && s.cached_blocks == 0 && s.in_use == 0, OP, "trim",
            "trim frees the cache");
    er_workspace_delete(ws);
}

static void test_realloc(void) {
    er_workspace *ws = er_workspace_new(0);
    void *p = er_workspace_realloc(ws, NULL, 1000);
    fill(p, 1000, 4);
    p = er_workspace_realloc(ws, p, 50000);      /* plain -> pooled */
    h_check(p && filled(p, 1000, 4), OP, "realloc", "growing keeps the contents");
    fill(p, 50000, 5);
    void *q = er_workspace_realloc(ws, p, 49000);
    h_check(q == p, OP, "realloc", "a shrink within the capacity keeps the block");
    q = er_workspace_realloc(ws, q, 300);        /* pooled -> plain */
    h_check(q && q != p && filled(q, 300, 5), OP, "realloc", "a large shrink moves to a small block");
    er_workspace_free(ws, q);
    h_check(er_workspace_alloc(ws, SIZE_MAX) == NULL, OP, "alloc", "SIZE_MAX bytes is refused");
    h_check(er_workspace_alloc(ws, SIZE_MAX - 100) == NULL, OP, "alloc", "a size near SIZE_MAX is refused");
    h_check(er_workspace_calloc(ws, SIZE_MAX / 2, 3) == NULL, OP, "calloc",
            "an overflowing count * size is refused");
    er_workspace_stats s = stats_of(ws);
    h_check(s.in_use == 0, OP, "alloc", "refused requests leave nothing in use");
    er_workspace_delete(ws);
}

static size_t capacity_of(size_t bytes) { return (bytes + 4095) / 4096 * 4096; }

static void test_bounded_by_last_run(void) {
    er_workspace *ws = er_workspace_new(0);
    /* Runs of six blocks of one batch size, the batch changing every other run:
     * after each run the cache holds exactly the blocks that run used, and a
     * run like the one before it takes all of its blocks from the cache. */
    int bounded = 1, reused = 1;
    for (int run = 0; run < 40; run++) {
        void *blocks[6];
        size_t bytes = (size_t)(1 + run / 2 % 7) << 20, used = 0;
        er_workspace_stats before = stats_of(ws);
        for (int i = 0; i < 6; i++) {
            size_t n = bytes / (size_t)(i + 1);
            blocks[i] = er_workspace_alloc(ws, n);
            bounded &= blocks[i] != NULL;
            if (blocks[i]) ((char *)blocks[i])[n - 1] = 1;
            used += capacity_of(n);
        }
        for (int i = 0; i < 6; i++) er_workspace_free(ws, blocks[i]);
        er_workspace_end_run(ws);
        er_workspace_stats s = stats_of(ws);
        bounded &= s.cached == used && s.cached_blocks == 6 && s.in_use == 0;
        if (run % 2) reused &= s.misses == before.misses;
    }
    h_check(bounded, OP, "end_run", "after a run the cache holds exactly the blocks it used");
    h_check(reused, OP, "alloc", "a run like the last one takes every block from the cache");
    /* Within a run a freed block serves the next request of its size, newest first. */
    void *a = er_workspace_alloc(ws, 200000), *b = er_workspace_alloc(ws, 200000);
    er_workspace_free(ws, a);
    er_workspace_free(ws, b);
    void *c = er_workspace_alloc(ws, 200000);
    h_check(c == b, OP, "alloc", "the newest cached block of the size comes first");
    er_workspace_free(ws, c);
    /* A block freed between runs (an output the caller let go) lives through the
     * next run and goes at the end of the one after, unused. */
    er_workspace_end_run(ws);
    void *out = er_workspace_alloc(ws, 300000);
    er_workspace_end_run(ws);
    er_workspace_free(ws, out);
    er_workspace_end_run(ws);
    er_workspace_stats s = stats_of(ws);
    int kept = s.cached == capacity_of(300000) && s.cached_blocks == 1;
    er_workspace_end_run(ws);
    s = stats_of(ws);
    h_check(kept && s.cached == 0 && s.cached_blocks == 0, OP, "end_run",
            "a block freed between runs is kept for one run, then freed unused");
    /* Many distinct small-pooled sizes: at most 256 blocks are kept. */
    void *many[300];
    for (int i = 0; i < 300; i++) many[i] = er_workspace_alloc(ws, 4096u * (size_t)(i + 1));
    for (int i = 0; i < 300; i++) er_workspace_free(ws, many[i]);
    s = stats_of(ws);
    h_check(s.cached_blocks == 256, OP, "free", "the slot table is bounded");
    er_workspace_delete(ws);
}

typedef struct {
    er_workspace *ws;
    int seed, ok;
} worker_args;

static void *worker(void *arg) {
    worker_args *a = arg;
    uint64_t state = (uint64_t)a->seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < 2000; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        size_t bytes = 2000 + (size_t)(state % 6) * 9000;
        void *p = er_workspace_alloc(a->ws, bytes);
        if (!p) {
            a->ok = 0;
            continue;
        }
        fill(p, bytes, a->seed + i);
        if (!filled(p, bytes, a->seed + i)) a->ok = 0;   /* nobody else wrote into it */
        er_workspace_free(a->ws, p);
    }
    return NULL;
}

static void test_threads(void) {
    er_workspace *ws = er_workspace_new(0);
    pthread_t threads[2];
    worker_args args[2] = {{ws, 1, 1}, {ws, 2, 1}};
    for (int t = 0; t < 2; t++) pthread_create(&threads[t], NULL, worker, &args[t]);
    for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
    er_workspace_stats s = stats_of(ws);
    h_check(args[0].ok && args[1].ok && s.in_use == 0, OP, "threads",
            "two threads share a workspace without handing a block out twice");
    er_workspace_delete(ws);
}

static void test_poison(void) {
    er_workspace *ws = er_workspace_new(ER_WORKSPACE_POISON);
    int ok = 1;
    for (int round = 0; round < 2; round++) {      /* fresh, then reused */
        size_t sizes[3] = {100, 5000, 70000};
        for (int i = 0; i < 3; i++) {
            unsigned char *p = er_workspace_alloc(ws, sizes[i]);
            for (size_t b = 0; p && b < sizes[i]; b++) ok &= p[b] == 0xFF;
            if (p) memset(p, 0, sizes[i]);
            p = er_workspace_realloc(ws, p, 2 * sizes[i]);
            for (size_t b = 0; p && b < sizes[i]; b++) ok &= p[b] == 0;
            for (size_t b = sizes[i]; p && b < 2 * sizes[i]; b++) ok &= p[b] == 0xFF;
            er_workspace_free(ws, p);
            unsigned char *z = er_workspace_calloc(ws, sizes[i], 2);
            for (size_t b = 0; z && b < 2 * sizes[i]; b++) ok &= z[b] == 0;
            er_workspace_free(ws, z);
        }
    }
    h_check(ok, OP, "poison", "alloc poisons, realloc keeps the old bytes, calloc zeroes");
    er_workspace_delete(ws);
}

void test_workspace(void) {
    test_poison();
    test_reuse_and_alignment();
    test_realloc();
    test_bounded_by_last_run();
    test_threads();
}
