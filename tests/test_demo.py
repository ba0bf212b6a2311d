"""`edgerun demo` end to end on the bundled digits: the table it prints, and the
issue's compression target for the Deep-Compression configuration: >= 25x smaller
than the fp32 weights (whole file, header included) within 1 point of fp32
accuracy on held-out digits.  Training is seeded, so this is deterministic."""
import numpy as np

from edgerun import demo


def test_demo_meets_the_deep_compression_target(tmp_path):
    lines = []
    rows = demo.run(workdir=str(tmp_path), out=lines.append)
    text = "\n".join(lines)
    assert "numpy fp32" in text and "pruned 90%, 5-bit shared, Huffman" in text
    by_name = {r["model"]: r for r in rows}
    assert by_name["fp32"]["delta"] == 0 and by_name["fp16"]["delta"] == 0
    assert abs(by_name["int8"]["delta"]) <= 0.01
    deep = by_name["pruned 90%, 5-bit shared, Huffman"]
    assert deep["ratio"] >= 25
    assert deep["delta"] >= -0.01
    assert by_name["int8, 4-bit shared"]["kernels"] == ["codebook_s8"]
    assert by_name["pruned 90%, int8"]["kernels"] == ["spmm_csr_s8"]
    assert by_name["pruned 80% in 1x4 blocks, int8"]["kernels"] == ["spmm_bcsr4_s8"]
    assert all(np.isfinite(r["latency_us"]) and r["latency_us"] > 0 for r in rows)


def test_bundled_digits_are_real_and_split_without_overlap():
    x_train, y_train, x_test, y_test = demo.load_digits()
    assert x_train.shape[1] == 64 and len(x_train) + len(x_test) == 1797
    assert set(np.unique(y_train)) == set(range(10))
    assert 0 <= x_train.min() and x_train.max() <= 1
    train_rows = {row.tobytes() for row in x_train}
    assert sum(row.tobytes() in train_rows for row in x_test) < 0.05 * len(x_test)
