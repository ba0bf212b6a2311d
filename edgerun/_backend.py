"""Chooses the kernel backend once: the C extension, or the numpy reference.

EDGERUN_BACKEND=numpy forces the reference (for bug reports and tests);
EDGERUN_ISA=scalar keeps the C extension but forces its portable variants.
"""
import os
import warnings

from edgerun import reference

kernels = reference
name = "numpy"
reason = None

if os.environ.get("EDGERUN_BACKEND", "c") == "numpy":
    reason = "EDGERUN_BACKEND=numpy"
else:
    try:
        from edgerun import _kernels as kernels  # noqa: F811

        name = "c"
    except ImportError as error:  # pragma: no cover - depends on the build
        reason = f"C extension not importable ({error})"
        warnings.warn(f"edgerun: {reason}; using the slow numpy reference kernels",
                      RuntimeWarning, stacklevel=2)

ISA_NAMES = ("auto", "scalar", "avx2", "neon", "dotprod", "i8mm")
if os.environ.get("EDGERUN_ISA", "auto") not in ISA_NAMES + ("",):
    warnings.warn(f"edgerun: EDGERUN_ISA={os.environ['EDGERUN_ISA']!r} is not one of "
                  f"{', '.join(ISA_NAMES)}; ignoring it", RuntimeWarning, stacklevel=2)
