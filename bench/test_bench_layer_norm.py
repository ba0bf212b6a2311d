"""LayerNorm over the hidden axis of a BERT-style encoder, single-threaded.

    python -m pytest bench/test_bench_layer_norm.py --benchmark-group-by=group \
        --benchmark-columns=min,median,ops

Each group is one activation shape [batch*seq, hidden], without and with the
residual Add that precedes every LayerNorm in BERT (x = LayerNorm(x + sublayer(x)));
within it:
  edgerun-<variant>   layer_norm_f32, each variant this CPU runs, into a preallocated out
                      (with the residual fused into the kernel's first pass)
  numpy-evaluate      evaluate.layer_norm, the graph evaluator's numpy (plus a separate
                      numpy add for the residual, as the unfused graph runs it)
"""
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_name] = "1"

import functools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from edgerun import _backend, evaluate  # noqa: E402

# [batch*seq, hidden]: BERT-mini/small (hidden 256) and BERT-base (768), 128 tokens.
SHAPES = [(128, 256), (128, 768)]

if _backend.name != "c":
    pytest.skip("the C extension is not built", allow_module_level=True)
kernels = _backend.kernels
VARIANTS = [v for op, v, _, ok in kernels.variants() if op == "layer_norm_f32" and ok]


@functools.lru_cache(maxsize=None)
def activations(rows, n):
    rng = np.random.default_rng(rows * 1000 + n)
    return dict(x=rng.standard_normal((rows, n), dtype=np.float32),
                residual=rng.standard_normal((rows, n), dtype=np.float32),
                scale=(1 + 0.1 * rng.standard_normal(n)).astype(np.float32),
                bias=(0.1 * rng.standard_normal(n)).astype(np.float32))


def runner(impl, rows, n, with_residual):
    a = activations(rows, n)
    residual = a["residual"] if with_residual else None
    if impl == "numpy-evaluate":
        if with_residual:
            return lambda: evaluate.layer_norm(a["x"] + residual, a["scale"], a["bias"])
        return lambda: evaluate.layer_norm(a["x"], a["scale"], a["bias"])
    variant = impl[len("edgerun-"):]
    out = np.empty_like(a["x"])
    return lambda: kernels.layer_norm_f32(a["x"], a["scale"], a["bias"], residual=residual,
                                          out=out, variant=variant)


@pytest.mark.parametrize("impl", [f"edgerun-{v}" for v in VARIANTS] + ["numpy-evaluate"])
@pytest.mark.parametrize("with_residual", [False, True], ids=["layernorm", "add+layernorm"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{r}x{n}" for r, n in SHAPES])
def test_layer_norm(benchmark, shape, with_residual, impl):
    rows, n = shape
    benchmark.group = f"layer_norm {rows}x{n}{' + residual' if with_residual else ''}"
    benchmark.extra_info.update(rows=rows, n=n, residual=with_residual, impl=impl)
    benchmark(runner(impl, rows, n, with_residual))


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{r}x{n}" for r, n in SHAPES])
def test_benchmarked_calls_agree(shape):
    """The benchmarked calls compute the same thing (a guard, not a timing)."""
    for with_residual in (False, True):
        expected = runner("numpy-evaluate", *shape, with_residual)()
        for variant in VARIANTS:
            y = runner(f"edgerun-{variant}", *shape, with_residual)()
            np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
