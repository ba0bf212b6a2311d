"""Dispatch: the C backend is active, every op has a portable variant, and the
best variant this CPU can run is the one chosen -- a silent fall back to the
scalar path on a machine with the ISA fails here."""
import os
import subprocess
import sys

import pytest

import edgerun
from edgerun import _backend

# /proc/cpuinfo names: aarch64 says "asimd", 32-bit ARM says "neon"; the i8mm
# variant also uses SDOT for odd rows, so dispatch requires both.
ISA_FLAGS = {"avx2": [{"avx2", "fma"}], "neon": [{"asimd"}, {"neon"}], "dotprod": [{"asimddp"}],
             "i8mm": [{"i8mm", "asimddp"}]}


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    return set()


def variants():
    return edgerun.cpu_info()["variants"]


def test_c_backend_is_active():
    if os.environ.get("EDGERUN_BACKEND") == "numpy":
        pytest.fail("this run asked for the numpy backend; the C tests need the extension")
    assert _backend.name == "c", _backend.reason


def test_every_op_has_a_scalar_variant():
    ops = {op for op, _, _, _ in variants()}
    scalar = {op for op, variant, _, _ in variants() if variant == "scalar"}
    assert ops == scalar
    assert {"quantize_rows_s8", "gemm_s8", "spmm_csr_f32", "spmm_csr_s8", "codebook_f32",
            "codebook_s8", "huffman_decode"} <= ops


def test_best_runnable_variant_is_selected():
    selected = edgerun.cpu_info()["selected"]
    for op in selected:
        runnable = [variant for name, variant, _, ok in variants() if name == op and ok]
        assert selected[op] == runnable[-1], op


def test_runnable_matches_the_cpu_flags():
    flags = cpu_flags()
    for op, variant, isa, ok in variants():
        if isa in ISA_FLAGS:
            assert ok == any(needed <= flags for needed in ISA_FLAGS[isa]), (op, variant)


def _cpu_info_in_subprocess(**env):
    code = "import edgerun, json; print(json.dumps(edgerun.cpu_info()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, **env}, check=True)
    import json

    return json.loads(result.stdout), result.stderr


def test_environment_forces_the_scalar_path():
    info, _ = _cpu_info_in_subprocess(EDGERUN_ISA="scalar")
    assert set(info["selected"].values()) == {"scalar"}


def test_environment_forces_the_numpy_backend():
    info, _ = _cpu_info_in_subprocess(EDGERUN_BACKEND="numpy")
    assert info["backend"] == "numpy" and info["reason"] == "EDGERUN_BACKEND=numpy"


def test_unknown_isa_name_is_reported():
    info, stderr = _cpu_info_in_subprocess(EDGERUN_ISA="avx9000")
    assert "EDGERUN_ISA='avx9000'" in stderr
    assert info["selected"] == edgerun.cpu_info()["selected"]


def test_cpu_info_names_the_blas_library_numpy_runs_on():
    """The path a user reads to tell OpenBLAS from Debian's reference BLAS."""
    import numpy as np

    np.ones((64, 64)) @ np.ones((64, 64))       # numpy's BLAS is loaded by now
    path = edgerun.cpu_info()["blas"]
    if not os.path.exists("/proc/self/maps"):
        assert path is None
        return
    assert path is not None and os.path.exists(path), path
    assert any(tag in os.path.basename(path).lower() for tag in ("blas", "blis", "mkl", "atlas"))
