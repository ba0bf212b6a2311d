"""The compressor (pure Python + numpy).  `edgerun.compress(graph, ...)` is the API.

Importing any submodule (edgerun.compress.pipeline, ...) makes Python bind the
attribute `edgerun.compress` to this package, shadowing the function that
edgerun.__getattr__ would return.  So the package itself is made callable and
forwards to pipeline.compress: `edgerun.compress(graph, ...)` works either way.
"""
import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from edgerun.compress.pipeline import compress
        return compress(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage


def __getattr__(name):
    if name in ("compress", "CompressedModel"):
        from edgerun.compress import pipeline
        return getattr(pipeline, name)
    raise AttributeError(f"module 'edgerun.compress' has no attribute {name!r}")
