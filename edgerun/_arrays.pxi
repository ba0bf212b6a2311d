# Included first by _kernels.pyx: numpy's C API, for the few wrappers called once per
# layer per run.  There a typed memoryview costs more than the kernel at small sizes:
# each one acquired parses a buffer format (~0.3 us on Zen 3; a LinearS8 call took
# ten, ~40k instructions per conv of a 1-D keyword-spotting net on a Cortex-A76), so
# those wrappers read dtype, shape and data pointer from the array struct instead.

cdef extern from *:
    """
    /* PyDataMem_SetHandler (the workspace) is numpy 1.22 API: ask numpy 2's headers for
       it (their default target may be older); numpy 1.x headers define it anyway. */
    #define NPY_TARGET_VERSION NPY_1_22_API_VERSION
    #define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
    #include <numpy/arrayobject.h>
    """
    ctypedef Py_ssize_t npy_intp
    ctypedef struct PyArrayObject:
        pass
    enum:
        NPY_INT8
        NPY_INT32
        NPY_FLOAT32
        NPY_ARRAY_WRITEABLE
    bint PyArray_CheckExact(object op)
    int PyArray_TYPE(PyArrayObject *arr)
    int PyArray_NDIM(PyArrayObject *arr)
    npy_intp *PyArray_DIMS(PyArrayObject *arr)
    void *PyArray_DATA(PyArrayObject *arr)
    bint PyArray_IS_C_CONTIGUOUS(PyArrayObject *arr)
    bint PyArray_ISNOTSWAPPED(PyArrayObject *arr)
    bint PyArray_ISALIGNED(PyArrayObject *arr)
    bint PyArray_CHKFLAGS(PyArrayObject *arr, int flags)
    npy_intp PyArray_SIZE(PyArrayObject *arr)
    npy_intp PyArray_NBYTES(PyArrayObject *arr)
    bint PyArray_SAMESHAPE(PyArrayObject *a, PyArrayObject *b)
    object PyArray_EMPTY(int nd, npy_intp *dims, int typenum, int fortran)
    object PyArray_ZEROS(int nd, npy_intp *dims, int typenum, int fortran)
    int _import_array() except -1

_import_array()


cdef inline PyArrayObject *_c_array(object x, int typenum, int ndim) noexcept:
    """x's array struct if x is exactly an ndarray of typenum and ndim (any ndim for
    -1), C-contiguous, aligned and in native byte order (">f4" has float32's type
    number too); else NULL (the caller takes its general path, which converts or
    raises)."""
    if not PyArray_CheckExact(x):
        return NULL
    cdef PyArrayObject *a = <PyArrayObject *>x
    if (PyArray_TYPE(a) != typenum or (ndim >= 0 and PyArray_NDIM(a) != ndim)
            or not PyArray_IS_C_CONTIGUOUS(a) or not PyArray_ISNOTSWAPPED(a)
            or not PyArray_ISALIGNED(a)):
        return NULL
    return a


cdef inline bint _writeable(PyArrayObject *a) noexcept:
    return PyArray_CHKFLAGS(a, NPY_ARRAY_WRITEABLE)


cdef inline object _empty_like(PyArrayObject *a):
    """np.empty(a.shape, a.dtype), C order, without the Python call."""
    return PyArray_EMPTY(PyArray_NDIM(a), PyArray_DIMS(a), PyArray_TYPE(a), 0)


cdef inline object _empty_2d(npy_intp rows, npy_intp cols, int typenum):
    """np.empty((rows, cols), dtype) without the Python call (the data comes from
    numpy's current allocator: the Session's workspace during a run)."""
    cdef npy_intp dims[2]
    dims[0], dims[1] = rows, cols
    return PyArray_EMPTY(2, dims, typenum, 0)


cdef inline object _zeros_1d(npy_intp n, int typenum):
    """np.zeros(n, dtype) without the Python call."""
    cdef npy_intp dims[1]
    dims[0] = n
    return PyArray_ZEROS(1, dims, typenum, 0)
