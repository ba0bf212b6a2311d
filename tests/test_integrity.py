"""Atomic, honest writes: a failed save leaves the old file (or nothing) and
no temp litter; the file records its producer and the compression settings;
`edgerun inspect` checks every CRC and says which stream is bad."""
import os

import pytest

import edgerun
from edgerun import format as fmt
from edgerun.cli import main
from tests.test_session import encoded_graph, mlp


class Boom(Exception):
    pass


def failing_fdopen(after_bytes, error=Boom):
    """os.fdopen whose file raises `error` once more than after_bytes were written."""
    real = os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = real(fd, *args, **kwargs)
        written = [0]
        write = f.write

        def limited(data):
            written[0] += len(memoryview(data).cast("B"))
            if written[0] > after_bytes:
                raise error("simulated failure mid-write")
            return write(data)

        f.write = limited
        return f

    return fdopen


@pytest.mark.parametrize("after_bytes", [0, 20, 500, 2000])
@pytest.mark.parametrize("error", [Boom, OSError, KeyboardInterrupt])
def test_failure_mid_write_leaves_nothing_under_the_final_name(after_bytes, error, rng, tmp_path, monkeypatch):
    path = tmp_path / "model.edgerun"
    monkeypatch.setattr(os, "fdopen", failing_fdopen(after_bytes, error))
    with pytest.raises(error):
        fmt.save(encoded_graph("csr-i8", rng), path)
    assert os.listdir(tmp_path) == []  # no model, no .edgerun-*.tmp


def test_failure_mid_write_keeps_the_old_file(rng, tmp_path, monkeypatch):
    path = tmp_path / "model.edgerun"
    fmt.save(encoded_graph("dense-i8", rng), path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fdopen", failing_fdopen(1000))
    with pytest.raises(Boom):
        fmt.save(encoded_graph("codebook-4-s8", rng), path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.edgerun"]
    assert edgerun.load(path).layers == [("fc1", "gemm_s8"), ("fc2", "gemm_s8")]


def test_fsync_failure_leaves_nothing(rng, tmp_path, monkeypatch):
    def no_fsync(fd):
        raise OSError("EIO")

    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(OSError, match="EIO"):
        fmt.save(mlp(rng), tmp_path / "m.edgerun")
    assert os.listdir(tmp_path) == []


def test_save_into_a_missing_directory_is_a_clean_oserror(rng, tmp_path):
    with pytest.raises(FileNotFoundError):
        fmt.save(mlp(rng), tmp_path / "no" / "such" / "m.edgerun")


def test_saved_file_is_complete_before_it_appears(rng, tmp_path, monkeypatch):
    """At the moment of os.replace the temp file already holds the whole model
    and sits in the same directory (so the rename is atomic, not a copy)."""
    seen = {}
    real = os.replace

    def spy(src, dst):
        seen["same_dir"] = os.path.dirname(os.path.abspath(src)) == os.path.dirname(os.path.abspath(dst))
        seen["loads"] = fmt.load(src).tensors.keys() == mlp(rng).tensors.keys()
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    fmt.save(mlp(rng), tmp_path / "m.edgerun")
    assert seen == {"same_dir": True, "loads": True}


# ---------------------------------------------------------------------------
# what the file records

def test_file_records_producer_and_compression_settings(rng, tmp_path):
    cm = edgerun.compress(mlp(rng), prune={"fc1": 0.5}, quantize="int8", share_bits={"fc2": 4},
                          huffman=True)
    path = tmp_path / "m.edgerun"
    cm.save(path)
    meta = fmt.load(path).metadata
    assert meta["producer"] == f"edgerun {edgerun.__version__}"
    assert meta["compression"]["prune"] == {"fc1": 0.5}
    assert meta["compression"]["quantize"] == "int8"
    assert meta["compression"]["share_bits"] == {"fc2": 4}
    assert meta["compression"]["huffman"] is True
    assert fmt.inspect(path)["metadata"] == meta


def test_a_loaded_file_keeps_its_producer_when_saved_again(rng, tmp_path):
    graph = mlp(rng)
    graph.metadata["producer"] = "edgerun 0.0.9"
    fmt.save(graph, tmp_path / "a.edgerun")
    fmt.save(fmt.load(tmp_path / "a.edgerun"), tmp_path / "b.edgerun")
    assert fmt.load(tmp_path / "b.edgerun").metadata["producer"] == "edgerun 0.0.9"


# ---------------------------------------------------------------------------
# edgerun inspect

def test_inspect_prints_a_table_with_crc_status(rng, tmp_path, capsys):
    path = tmp_path / "m.edgerun"
    graph = encoded_graph("csr-codes-s8", rng)
    for _, weight in graph.weights():
        weight.huffman = True
    fmt.save(graph, path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("layer"))
    assert header.split() == ["layer", "tensor", "encoding", "shape", "stored", "B", "decoded", "B", "CRC"]
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("fc")}
    assert set(rows) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert rows["fc1.weight"].startswith("fc1 ") and rows["fc1.weight"].rstrip().endswith("ok")
    assert "csr 4b int8" in rows["fc1.weight"] and "70x37" in rows["fc1.weight"]
    assert f"producer: edgerun {edgerun.__version__}" in out
    assert "all CRCs ok" in out and "kernels: fc1=spmm_csr_s8, fc2=spmm_csr_s8" in out
    assert "fc1.weight.indices" in out and "crc32" in out


def test_inspect_names_the_corrupted_stream_and_fails(rng, tmp_path, capsys):
    path = tmp_path / "m.edgerun"
    fmt.save(encoded_graph("dense-i8", rng), path)
    info = fmt.inspect(path)
    stream = info["tensors"]["fc2.weight"]["streams"]["values"]
    data = bytearray(path.read_bytes())
    data[info["data_offset"] + stream["offset"] + 3] ^= 0x10
    path.write_bytes(bytes(data))
    assert main(["inspect", str(path)]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("fc2") and "fc2.weight" in line)
    assert row.rstrip().endswith("BAD")
    assert "CRC MISMATCH in 1 stream(s): fc2.weight.values" in out
    assert "total" in out and "1 BAD" in out
    assert "kernels:" not in out  # a corrupted file is not planned
    with pytest.raises(edgerun.FormatError, match="fc2.weight.*CRC32 mismatch"):
        edgerun.load(path)


def test_describe_is_plain_text_for_every_encoding(rng, tmp_path):
    for how in ["dense-f32", "dense-f16", "dense-i8", "csr-f32-u32", "codebook-3-f32", "codebook-6-s8"]:
        path = tmp_path / f"{how}.edgerun"
        fmt.save(encoded_graph(how, rng), path)
        text = fmt.describe(fmt.inspect(path))
        assert isinstance(text, str) and "all CRCs ok" in text and "{" not in text


def test_inspect_of_a_non_model_is_a_clean_error(tmp_path, capsys):
    """A file that is not a model: exit status 2 and the reason on stderr."""
    bad = tmp_path / "bad.edgerun"
    bad.write_bytes(b"EDGERUN\0" + bytes(30))
    assert main(["inspect", str(bad)]) == 2
    captured = capsys.readouterr()
    assert "edgerun: error:" in captured.err and captured.out == ""
