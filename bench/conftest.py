"""Benchmarks run on one thread: BLAS reads these variables when numpy loads,
so they are set here, before any benchmark module imports numpy."""
import os
import sys

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

if "numpy" in sys.modules:  # pragma: no cover - depends on the plugins loaded
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        import warnings

        warnings.warn("numpy was imported before bench/conftest.py: BLAS may use several threads")
