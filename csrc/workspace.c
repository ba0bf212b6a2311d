/* The workspace cache (workspace.h). */
#include "workspace.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ALIGNMENT 64        /* pooled data: a cache line, and any SIMD load */
#define HEADER 16           /* bytes before the data, on every platform */
#define PAGE 4096
#define SLOTS 256           /* a model has tens of distinct activation sizes */

typedef struct {
    uint64_t capacity;      /* pooled: usable bytes; plain: the bytes asked for */
    uint64_t pooled;
} header;

typedef struct {
    void *data;             /* a free pooled block */
    uint64_t run;           /* the run during (or after) which it was freed */
} cached_block;

struct er_workspace {
    pthread_mutex_t lock;
    unsigned flags;
    cached_block cache[SLOTS];  /* oldest first */
    size_t count;
    uint64_t run;           /* the current run: er_workspace_end_run counts them */
    er_workspace_stats stats;
};

static header *header_of(void *p) { return (header *)((char *)p - HEADER); }

static void release_pooled(void *p) { free((char *)p - ALIGNMENT); }

er_workspace *er_workspace_new(unsigned flags) {
    er_workspace *ws = calloc(1, sizeof *ws);
    if (ws && pthread_mutex_init(&ws->lock, NULL) != 0) {
        free(ws);
        return NULL;
    }
    if (ws) ws->flags = flags;
    return ws;
}

/* Removes cache[i]; the caller holds the lock. */
static void *take(er_workspace *ws, size_t i) {
    void *p = ws->cache[i].data;
    memmove(ws->cache + i, ws->cache + i + 1, (ws->count - i - 1) * sizeof ws->cache[0]);
    ws->count--;
    ws->stats.cached -= (size_t)header_of(p)->capacity;
    ws->stats.cached_blocks = ws->count;
    return p;
}

static void *alloc_plain(size_t bytes, int zero) {
    if (bytes > SIZE_MAX - HEADER) return NULL;
    char *raw = zero ? calloc(1, HEADER + bytes) : malloc(HEADER + bytes);
    if (!raw) return NULL;
    header *h = (header *)raw;
    h->capacity = bytes;
    h->pooled = 0;
    return raw + HEADER;
}

static void *alloc_pooled(er_workspace *ws, size_t bytes) {
    if (bytes > SIZE_MAX - ALIGNMENT - PAGE) return NULL;
    const size_t capacity = (bytes + PAGE - 1) / PAGE * PAGE;
    void *p = NULL;
    pthread_mutex_lock(&ws->lock);
    for (size_t i = ws->count; i-- > 0;)
        if (header_of(ws->cache[i].data)->capacity == capacity) {
            p = take(ws, i);
            break;
        }
    if (p) ws->stats.hits++;
    else ws->stats.misses++;
    ws->stats.in_use += capacity;
    if (ws->stats.in_use > ws->stats.peak) ws->stats.peak = ws->stats.in_use;
    pthread_mutex_unlock(&ws->lock);
    if (p) return p;

    char *raw = aligned_alloc(ALIGNMENT, ALIGNMENT + capacity);
    if (!raw) {
        pthread_mutex_lock(&ws->lock);
        ws->stats.in_use -= capacity;
        pthread_mutex_unlock(&ws->lock);
        return NULL;
    }
    header *h = (header *)(raw + ALIGNMENT - HEADER);
    h->capacity = capacity;
    h->pooled = 1;
    return raw + ALIGNMENT;
}

void *er_workspace_alloc(er_workspace *ws, size_t bytes) {
    void *p = bytes < ER_WORKSPACE_MIN_BYTES ? alloc_plain(bytes, 0) : alloc_pooled(ws, bytes);
    /* the whole capacity: realloc copies a pooled block's capacity, not the bytes asked */
    if (p && (ws->flags & ER_WORKSPACE_POISON)) memset(p, 0xFF, (size_t)header_of(p)->capacity);
    return p;
}

void *er_workspace_calloc(er_workspace *ws, size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    const size_t bytes = count * size;
    if (bytes < ER_WORKSPACE_MIN_BYTES) return alloc_plain(bytes, 1);
    void *p = alloc_pooled(ws, bytes);
    if (p) memset(p, 0, bytes);     /* a cached block holds its last contents */
    return p;
}

void er_workspace_free(er_workspace *ws, void *p) {
    if (!p) return;
    header *h = header_of(p);
    if (!h->pooled) {
        free(h);
        return;
    }
    void *evicted = NULL;
    pthread_mutex_lock(&ws->lock);
    ws->stats.in_use -= (size_t)h->capacity;
    if (ws->count == SLOTS) evicted = take(ws, 0);
    ws->cache[ws->count].data = p;
    ws->cache[ws->count++].run = ws->run;
    ws->stats.cached += (size_t)h->capacity;
    ws->stats.cached_blocks = ws->count;
    pthread_mutex_unlock(&ws->lock);
    if (evicted) release_pooled(evicted);
}

void *er_workspace_realloc(er_workspace *ws, void *p, size_t bytes) {
    if (!p) return er_workspace_alloc(ws, bytes);
    const header *h = header_of(p);
    const size_t old = (size_t)h->capacity;
    /* A pooled block that still fits, and is not far too big, stays. */
    if (h->pooled && bytes <= old && bytes >= ER_WORKSPACE_MIN_BYTES && bytes > old / 2) return p;
    void *q = er_workspace_alloc(ws, bytes);
    if (!q) return NULL;
    memcpy(q, p, bytes < old ? bytes : old);
    er_workspace_free(ws, p);
    return q;
}

void er_workspace_end_run(er_workspace *ws) {
    void *evicted[SLOTS];
    size_t n_evicted = 0;
    pthread_mutex_lock(&ws->lock);
    for (size_t i = ws->count; i-- > 0;)
        if (ws->cache[i].run < ws->run) evicted[n_evicted++] = take(ws, i);
    ws->run++;
    pthread_mutex_unlock(&ws->lock);
    for (size_t i = 0; i < n_evicted; i++) release_pooled(evicted[i]);
}

void er_workspace_trim(er_workspace *ws) {
    for (;;) {
        pthread_mutex_lock(&ws->lock);
        void *p = ws->count ? take(ws, ws->count - 1) : NULL;
        pthread_mutex_unlock(&ws->lock);
        if (!p) return;
        release_pooled(p);
    }
}

void er_workspace_get_stats(er_workspace *ws, er_workspace_stats *out) {
    pthread_mutex_lock(&ws->lock);
    *out = ws->stats;
    pthread_mutex_unlock(&ws->lock);
}

void er_workspace_delete(er_workspace *ws) {
    if (!ws) return;
    er_workspace_trim(ws);
    pthread_mutex_destroy(&ws->lock);
    free(ws);
}
