"""The `edgerun` command on a real ONNX file: compress, inspect, run, bench, errors."""
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")  # the [test] extra installs it; CI always has it
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgerun.cli import main  # noqa: E402


@pytest.fixture
def mlp_onnx(tmp_path, rng):
    """A 32-64-10 Gemm/Relu MLP as torch.onnx.export writes it (transB=1)."""
    w1 = (rng.standard_normal((64, 32)) / 6).astype(np.float32)
    w2 = (rng.standard_normal((10, 64)) / 8).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(w1, "w1"), (np.zeros(64, np.float32) + 0.1, "b1"), (w2, "w2"),
              (np.zeros(10, np.float32), "b2")]]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    path = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    x = rng.standard_normal((5, 32)).astype(np.float32)
    expected = np.maximum(x @ w1.T + 0.1, 0) @ w2.T
    return path, x, expected


def test_compress_inspect_run_bench(mlp_onnx, tmp_path, capsys):
    path, x, expected = mlp_onnx
    out = tmp_path / "mlp.edgerun"
    np.save(tmp_path / "calib.npy", x)
    assert main(["compress", str(path), "-o", str(out), "--quantize", "int8", "--prune",
                 "fc1=0.3,fc2=0.2", "--huffman", "--calib", str(tmp_path / "calib.npy")]) == 0
    assert "fc1" in capsys.readouterr().out
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fc1" in text and "fc2" in text and "kernels:" in text
    np.save(tmp_path / "x.npy", x.astype(np.float64))  # run converts float64 for the user
    assert main(["run", str(out), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (5, 10)
    assert np.abs(y - expected).max() < 0.1 * np.abs(expected).max()
    assert main(["bench", str(out), "--seconds", "0.05", "--min-runs", "3", "--batch", "4"]) == 0
    assert "p50" in capsys.readouterr().out


def test_bad_file_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.edgerun"
    bad.write_bytes(b"not a model at all")
    assert main(["inspect", str(bad)]) == 2
    assert "edgerun: error:" in capsys.readouterr().err


def test_bad_option_is_a_clean_error(mlp_onnx, tmp_path, capsys):
    path, _, _ = mlp_onnx
    assert main(["compress", str(path), "-o", str(tmp_path / "o.edgerun"), "--prune", "1.5"]) == 2
    assert "prune" in capsys.readouterr().err


def test_module_entry_point_reports_its_version():
    result = subprocess.run([sys.executable, "-m", "edgerun.cli", "--version"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("edgerun ")


def test_compress_with_block_pruning(mlp_onnx, tmp_path, capsys):
    path, x, expected = mlp_onnx
    out = tmp_path / "blocks.edgerun"
    assert main(["compress", str(path), "-o", str(out), "--quantize", "int8", "--prune", "0.5",
                 "--prune-block", "4"]) == 0
    assert "bcsr4 int8" in capsys.readouterr().out
    assert main(["inspect", str(out)]) == 0
    assert "spmm_bcsr4_s8" in capsys.readouterr().out
    assert main(["compress", str(path), "-o", str(out), "--prune", "0.5", "--prune-block", "3"]) == 2
    assert "prune_block" in capsys.readouterr().err
