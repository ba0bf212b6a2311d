"""Batch-1..64 speed of the 4-bit int8 codebook kernel next to dense baselines.

Run:  python -m pytest bench/test_bench_codebook.py --benchmark-only \
          --benchmark-group-by=param:shape --benchmark-columns=min,median,rounds

One thread everywhere (the environment is set before numpy loads BLAS).  Per
shape (n x k weights, batch m) the group holds:
  codebook_s8       edgerun, 4-bit indices in nibble32 (k/2 bytes per row)
  gemm_s8           edgerun dense int8 (k bytes per row), when the build has it
  dense_s8_numpy    the same int8 product in numpy (int32 matmul, exact, no BLAS)
  dense_f32_blas    numpy float32 matmul (BLAS), what a float layer costs
At m = 1 the codebook kernel should beat dense int8 by reading half the bytes.
"""
import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from edgerun import _backend, packing, reference  # noqa: E402

SHAPES = [(n, m) for n in (1024, 4096) for m in (1, 8, 64)]
IDS = [f"{n}x{n}-m{m}" for n, m in SHAPES]


def rounds_for(n, m, per_mac_ns):
    """Enough rounds for a stable minimum, about half a second per benchmark."""
    seconds = n * n * m * per_mac_ns * 1e-9
    return max(3, min(200, int(0.5 / max(seconds, 1e-6))))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    cache = {}

    def get(n, m):
        if (n, m) not in cache:
            idx = rng.integers(0, 16, size=(n, n)).astype(np.uint8)
            table = rng.integers(-127, 128, size=16).astype(np.int8)
            x = rng.integers(-127, 128, size=(m, n)).astype(np.int8)
            cache[(n, m)] = dict(nibbles=packing.pack_nibble32(idx), table=table, x=x,
                                 w=table[idx])
        return cache[(n, m)]

    return get


def _needs_c():
    if _backend.name != "c":
        pytest.skip(f"C extension not loaded ({_backend.reason})")


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_codebook_s8(benchmark, data, shape):
    _needs_c()
    n, m = shape
    d = data(n, m)
    out = np.empty((m, n), np.float32)
    y = benchmark.pedantic(_backend.kernels.codebook_s8,
                           args=(d["nibbles"], d["table"], d["x"], None, None),
                           kwargs={"out": out}, rounds=rounds_for(n, m, 0.05), warmup_rounds=1)
    benchmark.extra_info.update(weight_bytes=d["nibbles"].nbytes, variant=_backend.kernels.selected()["codebook_s8"])
    if n == 1024:  # the check costs more than the kernel at 4096
        assert np.array_equal(y, reference.codebook_s8(d["nibbles"], d["table"], d["x"], None, None))


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_gemm_s8(benchmark, data, shape):
    """The dense int8 kernel of the same shape (another op of edgerun)."""
    _needs_c()
    if not hasattr(_backend.kernels, "gemm_s8") or "gemm_s8" not in _backend.kernels.selected():
        pytest.skip("this build has no gemm_s8 kernel")
    n, m = shape
    d = data(n, m)
    benchmark.pedantic(_backend.kernels.gemm_s8, args=(d["x"], d["w"], None, None),
                       rounds=rounds_for(n, m, 0.1), warmup_rounds=1)
    benchmark.extra_info.update(weight_bytes=d["w"].nbytes)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_dense_s8_numpy(benchmark, data, shape):
    """Exact int8 x int8 -> int32 in numpy; numpy has no integer BLAS, so this is slow."""
    n, m = shape
    d = data(n, m)
    w_t = np.ascontiguousarray(d["w"].T.astype(np.int32))  # converted once, like a loaded model
    benchmark.pedantic(lambda: d["x"].astype(np.int32) @ w_t, rounds=rounds_for(n, m, 5) // 4 + 1)
    benchmark.extra_info.update(weight_bytes=d["w"].nbytes)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_dense_f32_blas(benchmark, data, shape):
    n, m = shape
    d = data(n, m)
    w_t = np.ascontiguousarray(d["w"].T.astype(np.float32))
    x = d["x"].astype(np.float32)
    benchmark.pedantic(np.matmul, args=(x, w_t), rounds=rounds_for(n, m, 0.3), warmup_rounds=1)
    benchmark.extra_info.update(weight_bytes=w_t.nbytes)
