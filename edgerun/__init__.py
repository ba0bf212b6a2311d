"""edgerun: make trained neural networks small and fast on edge devices.

    g  = edgerun.import_onnx("model.onnx")
    cm = edgerun.compress(g, prune=0.9, quantize="int8", share_bits=4, huffman=True)
    cm.save("model.edgerun")
    y  = edgerun.load("model.edgerun").run(x)
"""
from edgerun.errors import (EdgerunError, FormatError, NonFiniteError, OptionError,
                            ShapeError, UnsupportedOpError)
from edgerun import _backend

__version__ = "0.1.0"


def cpu_info():
    """Which backend and which kernel variant per op are active, and what this CPU can run.

    {"backend": "c" | "numpy", "reason": why numpy (or None),
     "selected": {op: variant}, "variants": [(op, variant, isa, runnable)], "isa_cap": ...,
     "blas": the BLAS library numpy runs float matmuls on (a path; None where unknown)}

    "blas" matters on Debian-based boards: Debian's numpy runs on whatever provides
    libblas.so.3, by default the unoptimised reference BLAS (.../blas/libblas.so.3),
    which made a BERT-style encoder's float attention matmuls ~12x costlier than
    OpenBLAS (qemu instruction counts, docs/ARM.md).  `apt install libopenblas0`
    switches it."""
    import os

    info = {"backend": _backend.name, "reason": _backend.reason,
            "isa_cap": os.environ.get("EDGERUN_ISA", "auto"), "selected": {}, "variants": [],
            "blas": _blas_library()}
    if _backend.name == "c":
        info["selected"] = _backend.kernels.selected()
        info["variants"] = _backend.kernels.variants()
    return info


def _blas_library():
    """The path of the BLAS library loaded into this process (numpy's), from
    /proc/self/maps; None where that cannot be read or none is loaded."""
    import os

    try:
        with open("/proc/self/maps") as maps:
            fields = [line.split(maxsplit=5) for line in maps]
        paths = [f[5].strip() for f in fields if len(f) == 6]
    except OSError:
        return None
    tags = ("openblas", "libblas", "blis", "mkl_rt", "flexiblas", "atlas")
    for path in paths:      # in load order: numpy's own comes first
        if path.startswith("/") and any(tag in os.path.basename(path).lower() for tag in tags):
            return path
    return None


def __getattr__(name):
    # The heavy parts load on first use, so `import edgerun` stays fast on a board.
    if name in ("Graph", "Node", "Tensor", "ValueInfo", "GraphBuilder"):
        from edgerun import graph
        return getattr(graph, name)
    if name == "import_onnx":
        from edgerun.importers.onnx import import_onnx
        return import_onnx
    if name in ("compress", "CompressedModel"):
        from edgerun.compress import pipeline
        return getattr(pipeline, name)
    if name in ("load", "Session"):
        from edgerun.runtime import session
        return getattr(session, name)
    raise AttributeError(f"module 'edgerun' has no attribute {name!r}")


__all__ = ["EdgerunError", "FormatError", "ShapeError", "UnsupportedOpError",
           "NonFiniteError", "OptionError", "cpu_info", "import_onnx", "compress",
           "CompressedModel", "load", "Session", "Graph", "Node", "Tensor", "ValueInfo",
           "GraphBuilder"]
