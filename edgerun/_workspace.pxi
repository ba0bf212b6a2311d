# Included by _kernels.pyx: the Session's workspace (csrc/workspace.h) as numpy's data
# allocator (NEP 49) for the length of a run, so the large arrays of one run are reused
# by the next with their pages resident instead of faulted in again.

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New
from libc.stdint cimport uint64_t
from libc.stdlib cimport free as c_free
from libc.stdlib cimport malloc as c_malloc
from libc.string cimport strncpy

cdef extern from "workspace.h" nogil:
    ctypedef struct er_workspace:
        pass
    ctypedef struct er_workspace_stats:
        size_t in_use
        size_t peak
        size_t cached
        size_t cached_blocks
        uint64_t hits
        uint64_t misses
    unsigned ER_WORKSPACE_POISON
    er_workspace *er_workspace_new(unsigned flags)
    void er_workspace_delete(er_workspace *ws)
    void *er_workspace_alloc(er_workspace *ws, size_t nbytes)
    void *er_workspace_calloc(er_workspace *ws, size_t count, size_t size)
    void *er_workspace_realloc(er_workspace *ws, void *p, size_t nbytes)
    void er_workspace_free(er_workspace *ws, void *p)
    void er_workspace_end_run(er_workspace *ws)
    void er_workspace_trim(er_workspace *ws)
    void er_workspace_get_stats(er_workspace *ws, er_workspace_stats *out)

cdef extern from *:
    ctypedef void *(*er_np_malloc)(void *ctx, size_t size) noexcept nogil
    ctypedef void *(*er_np_calloc)(void *ctx, size_t nelem, size_t elsize) noexcept nogil
    ctypedef void *(*er_np_realloc)(void *ctx, void *ptr, size_t new_size) noexcept nogil
    ctypedef void (*er_np_free)(void *ctx, void *ptr, size_t size) noexcept nogil
    ctypedef struct PyDataMemAllocator:
        void *ctx
        er_np_malloc malloc
        er_np_calloc calloc
        er_np_realloc realloc
        er_np_free free
    ctypedef struct PyDataMem_Handler:
        char name[127]
        uint8_t version
        PyDataMemAllocator allocator
    object PyDataMem_SetHandler(object handler)

cdef void *_workspace_malloc(void *ctx, size_t size) noexcept nogil:
    return er_workspace_alloc(<er_workspace *>ctx, size)


cdef void *_workspace_calloc(void *ctx, size_t nelem, size_t elsize) noexcept nogil:
    return er_workspace_calloc(<er_workspace *>ctx, nelem, elsize)


cdef void *_workspace_realloc(void *ctx, void *ptr, size_t new_size) noexcept nogil:
    return er_workspace_realloc(<er_workspace *>ctx, ptr, new_size)


cdef void _workspace_free(void *ctx, void *ptr, size_t size) noexcept nogil:
    # numpy passes the size it believes it allocated; the block's header knows for sure
    er_workspace_free(<er_workspace *>ctx, ptr)


cdef void _delete_handler(object capsule) noexcept:
    """The capsule's destructor: every array allocated through the handler holds a
    reference to the capsule, so this runs only when the last of them is gone."""
    cdef PyDataMem_Handler *handler = <PyDataMem_Handler *>PyCapsule_GetPointer(capsule, "mem_handler")
    if handler != NULL:
        er_workspace_delete(<er_workspace *>handler.allocator.ctx)
        c_free(handler)


cdef class Workspace:
    """Memory for the arrays of a Session's runs: `run(fn, *args)` calls fn with this
    workspace as numpy's data allocator (in the calling thread's context only), so
    arrays of 4 KiB or more come from a cache of blocks freed by earlier runs.  Arrays
    that outlive the run (the outputs) stay valid; their memory returns to the cache
    when they are freed.  See csrc/workspace.h for the policy and its bound.
    poison=True (tests) fills every block handed out with 0xFF bytes, NaN as float32,
    so a reader of memory it never wrote shows in its results."""

    cdef object _capsule
    cdef er_workspace *_ws      # owned by the capsule

    def __cinit__(self, poison=False):
        cdef PyDataMem_Handler *handler = <PyDataMem_Handler *>c_malloc(sizeof(PyDataMem_Handler))
        if handler == NULL:
            raise MemoryError("edgerun workspace")
        self._ws = er_workspace_new(ER_WORKSPACE_POISON if poison else 0)
        if self._ws == NULL:
            c_free(handler)
            raise MemoryError("edgerun workspace")
        strncpy(handler.name, b"edgerun_workspace", 127)
        handler.version = 1
        handler.allocator.ctx = self._ws
        handler.allocator.malloc = _workspace_malloc
        handler.allocator.calloc = _workspace_calloc
        handler.allocator.realloc = _workspace_realloc
        handler.allocator.free = _workspace_free
        self._capsule = PyCapsule_New(handler, "mem_handler", _delete_handler)

    def run(self, fn, *args):
        """fn(*args) with this workspace allocating numpy's array data; afterwards the
        cached blocks this run did not use are freed (csrc/workspace.h)."""
        previous = PyDataMem_SetHandler(self._capsule)
        try:
            return fn(*args)
        finally:
            PyDataMem_SetHandler(previous)
            er_workspace_end_run(self._ws)

    def trim(self):
        """Free the cached blocks now; arrays in use are untouched."""
        er_workspace_trim(self._ws)

    def stats(self):
        """{"in_use", "peak", "cached", "cached_blocks", "hits", "misses"}: bytes and
        counts of pooled blocks (csrc/workspace.h)."""
        cdef er_workspace_stats s
        er_workspace_get_stats(self._ws, &s)
        return {"in_use": s.in_use, "peak": s.peak, "cached": s.cached,
                "cached_blocks": s.cached_blocks, "hits": s.hits, "misses": s.misses}
