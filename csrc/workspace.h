/* A Session's workspace: a cache of large memory blocks that have already been
 * touched, for the intermediate arrays of one run to be reused by the next.
 *
 * Why: a run of a model allocates the same large arrays every time (layer
 * outputs, im2col rows, attention scores).  glibc hands big blocks back to the
 * kernel on free (munmap, or trimming the top of the heap), so every run
 * faulted its activations in again, page by page, and zeroed them: ~2200 page
 * faults per run of a 4-layer BERT-style encoder, 35-40 % of its time on a
 * KVM guest, and ~500 per MobileNetV2 run.  Kept here, a block is reused with
 * its pages resident.
 *
 * Not a kernel: kernels never allocate.  This is the allocator the Python layer
 * installs (as numpy's data allocator) for the duration of Session.run.
 *
 * Blocks of ER_WORKSPACE_MIN_BYTES or more are "pooled": their capacity is the
 * request rounded up to 4 KiB, their data 64-byte aligned, and on free they go
 * to the cache, newest last.  A request takes the newest cached block of the
 * same capacity (the one most likely still in the CPU's caches: a Session lets
 * go of each value after its last reader, so a step's output often lands in
 * the block an earlier step of the same run has just freed).
 *
 * The bound: er_workspace_end_run, called after each run, frees every cached
 * block that was not freed during that run (or after the run before it): a
 * block the last run did not use.  So the cache holds what one run needs, no
 * more, and blocks of shapes no longer used (another batch size) age out after
 * one run.  (It had been "no more than the most bytes ever handed out at once",
 * which evicted, run after run, the blocks of a run's first layers once the
 * Session released its values early: 43 misses per MobileNetV2 run.)  At most
 * 256 blocks are cached; past that the oldest goes.  Smaller requests go to
 * malloc/free directly, with malloc's alignment.
 *
 * Every block carries a 16-byte header just before its data (capacity, pooled
 * or not), so free and realloc need no size from the caller.
 * All functions are thread-safe (one mutex per workspace); NULL means out of
 * memory (or a size that overflows), as malloc's. */
#ifndef EDGERUN_WORKSPACE_H
#define EDGERUN_WORKSPACE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ER_WORKSPACE_MIN_BYTES 4096u
/* er_workspace_new flag, for tests: every block alloc or realloc hands out is
 * filled with 0xFF bytes (a float32 NaN) first, pooled or not, fresh or reused,
 * so code that reads memory it never wrote shows in its results. */
#define ER_WORKSPACE_POISON 1u

typedef struct er_workspace er_workspace;

typedef struct {
    size_t in_use;          /* bytes of pooled blocks handed out and not freed */
    size_t peak;            /* the most in_use has ever been */
    size_t cached;          /* bytes of free pooled blocks kept for reuse */
    size_t cached_blocks;
    uint64_t hits;          /* pooled requests served from the cache */
    uint64_t misses;        /* pooled requests that went to the system allocator */
} er_workspace_stats;

er_workspace *er_workspace_new(unsigned flags);
/* Frees the cached blocks and ws itself.  Blocks still handed out must not be
 * freed through ws afterwards (the Python layer guarantees it: every array
 * holds a reference to its allocator). */
void er_workspace_delete(er_workspace *ws);

void *er_workspace_alloc(er_workspace *ws, size_t bytes);
void *er_workspace_calloc(er_workspace *ws, size_t count, size_t size);   /* zeroed */
/* Contents kept up to the smaller size; on NULL, p is untouched. p == NULL: alloc. */
void *er_workspace_realloc(er_workspace *ws, void *p, size_t bytes);
void er_workspace_free(er_workspace *ws, void *p);                        /* p may be NULL */

/* The end of a run: frees the cached blocks not freed since the previous call
 * (the blocks this run did not use), then starts the next run. */
void er_workspace_end_run(er_workspace *ws);
/* Frees every cached block now (Session.close); blocks in use are untouched. */
void er_workspace_trim(er_workspace *ws);
void er_workspace_get_stats(er_workspace *ws, er_workspace_stats *out);

#ifdef __cplusplus
}
#endif

#endif
