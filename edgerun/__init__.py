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
     "selected": {op: variant}, "variants": [(op, variant, isa, runnable)], "isa_cap": ...}
    """
    import os

    info = {"backend": _backend.name, "reason": _backend.reason,
            "isa_cap": os.environ.get("EDGERUN_ISA", "auto"), "selected": {}, "variants": []}
    if _backend.name == "c":
        info["selected"] = _backend.kernels.selected()
        info["variants"] = _backend.kernels.variants()
    return info


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
