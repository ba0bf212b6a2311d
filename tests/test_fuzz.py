"""The loader fuzz run CI can afford: deterministic, bounded, every encoding.

Each seed model of fuzz/make_corpus.py (every encoding, with and without
Huffman) gets a fixed number of mutated copies from fuzz/mutations.py, with
fixed seeds: bit flips, truncations, lying offsets/lengths/shapes/graphs,
out-of-range CSR and codebook indices, Huffman lies, oversized headers, wrong
versions, CRC mismatches, JSON type confusion.  Each one must end in a
FormatError from load, or load cleanly and then plan and run (where planning or
running may refuse with another EdgerunError, e.g. a ShapeError).  Any other
exception fails the test; a crash in C kills the run.  The long, coverage-guided
run is `python fuzz/fuzz_load.py` (docs/SECURITY.md).

Every file the fuzzers ever found lives in tests/regressions/ and is loaded by
test_regression_files.
"""
import os
import random
import sys
import zlib

import numpy as np
import pytest

import edgerun
from edgerun import format as fmt
from edgerun.runtime.session import Session

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "fuzz"))
import make_corpus  # noqa: E402
import mutations  # noqa: E402

PER_MUTATION = 5  # files per (seed model, mutation kind): 46 models x 14 kinds x 5 = 3220
REGRESSIONS = os.path.join(ROOT, "tests", "regressions")


def outcome(path):
    """inspect + describe must succeed or raise FormatError; then
    'refused' (FormatError at load), 'planned-refused' (another
    EdgerunError from Session or run) or 'ran'; anything else propagates."""
    try:
        assert isinstance(fmt.describe(fmt.inspect(path)), str)  # `edgerun inspect` reads it too
    except edgerun.FormatError:
        pass
    try:
        graph = fmt.load(path)
    except edgerun.FormatError:
        return "refused"
    try:
        with Session(graph) as session:
            feeds = {}
            for spec in session.inputs:
                shape = [2 if d is None else d for d in spec.shape]
                if spec.dtype != "float32" or int(np.prod(shape, dtype=np.int64)) > 1 << 16:
                    return "ran"  # nothing sensible to feed: load and plan were the test
                feeds[spec.name] = np.linspace(-2, 2, int(np.prod(shape)), dtype=np.float32).reshape(shape)
            with np.errstate(all="ignore"):  # mutated float weights may be NaN/Inf: allowed
                out = session.run(feeds)
            assert all(isinstance(v, np.ndarray) for v in out.values())
    except edgerun.EdgerunError:
        return "planned-refused"
    return "ran"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    directory = tmp_path_factory.mktemp("seeds")
    return {os.path.basename(p): open(p, "rb").read() for p in make_corpus.write(str(directory))}


def test_seed_corpus_covers_every_encoding(seeds, tmp_path):
    """The corpus is what the issue asks for, and every seed loads and runs."""
    kinds = set()
    huffman_streams = set()
    for name, data in seeds.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert outcome(path) == "ran", name
        w = fmt.load(path).tensors["w"]
        a = w.arrays
        kind = (w.encoding, a["values"].dtype.name if "values" in a else None,
                a["indices"].dtype.name if "indices" in a else None, w.bits)
        kinds.add(kind)
        info = fmt.inspect(path)["tensors"]["w"]["streams"]
        huffman_streams |= {(w.encoding, s) for s, v in info.items() if v["huffman"]}
    for dtype in ("float32", "float16", "int8"):
        assert ("dense", dtype, None, None) in kinds
        for index in ("uint16", "uint32"):
            assert ("csr", dtype, index, None) in kinds
    assert ("csr", None, "uint16", 3) in kinds and ("csr", None, "uint32", 3) in kinds
    assert {k[3] for k in kinds if k[0] == "codebook"} == set(range(1, 9))
    for dtype, index in (("float32", "uint16"), ("float16", "uint32"), ("int8", "uint16"), ("int8", "uint32")):
        assert ("bcsr4", dtype, index, None) in kinds
    assert {("dense", "values"), ("csr", "indices"), ("csr", "codes"),
            ("codebook", "codes"), ("bcsr4", "indices"), ("bcsr4", "values")} <= huffman_streams


@pytest.mark.parametrize("mutation", sorted(mutations.MUTATIONS))
def test_mutated_files_are_refused_or_run(mutation, seeds, tmp_path):
    mutate = mutations.MUTATIONS[mutation]
    counts = {"refused": 0, "planned-refused": 0, "ran": 0}
    path = tmp_path / "mutant.edgerun"
    for name, data in sorted(seeds.items()):
        for i in range(PER_MUTATION):
            rng = random.Random(zlib.crc32(f"{mutation}/{name}/{i}".encode()))
            mutant = mutate(data, rng)
            path.write_bytes(mutant)
            try:
                counts[outcome(path)] += 1
            except Exception as error:  # a finding: keep the file for tests/regressions/
                keep = tmp_path / f"finding-{mutation}-{name}-{i}.edgerun"
                keep.write_bytes(mutant)
                raise AssertionError(f"{mutation} of {name} (#{i}) raised {type(error).__name__}: "
                                     f"{error}; the file is {keep}") from error
    # every mutation kind breaks some files for real (none is a no-op)
    assert counts["refused"] > 0, counts
    assert sum(counts.values()) == len(seeds) * PER_MUTATION


def test_huge_integer_input_scale_loads():
    assert fmt.load(os.path.join(REGRESSIONS, "linear-input-scale-huge-int.edgerun")).nodes[0].attrs[
        "input_scale"] == 2**70


def test_mutations_are_deterministic(seeds):
    data = seeds["csr-codes-uint16-float32-huff.edgerun"]
    for name, mutate in mutations.MUTATIONS.items():
        assert mutate(data, random.Random(7)) == mutate(data, random.Random(7)), name


def regression_files():
    if not os.path.isdir(REGRESSIONS):
        return []
    return sorted(f for f in os.listdir(REGRESSIONS) if f.endswith(".edgerun"))


@pytest.mark.parametrize("name", regression_files())
def test_regression_files(name):
    """Files the fuzzers found (tests/regressions/README.md says what each was):
    each is refused cleanly or runs -- never another exception."""
    assert outcome(os.path.join(REGRESSIONS, name)) in ("refused", "planned-refused", "ran")


@pytest.mark.parametrize("name, match", [
    ("graph-add-three-inputs.edgerun", "Add takes 2 inputs, got 3"),
    ("stream-dtype-is-an-object.edgerun", "dtype \\{'a': 1\\} not allowed"),
    ("graph-output-is-a-constant.edgerun", "graph output 'b' is a constant tensor"),
])
def test_known_findings_are_format_errors(name, match):
    with pytest.raises(edgerun.FormatError, match=match):
        fmt.load(os.path.join(REGRESSIONS, name))
