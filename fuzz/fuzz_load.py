"""Fuzz target: arbitrary bytes -> edgerun.format.load -> Session -> one run.

    python fuzz/fuzz_load.py -max_total_time=300 fuzz/corpus     # libFuzzer flags

An empty or missing corpus directory is filled with the seed models of
fuzz/make_corpus.py first (every encoding, with and without Huffman).

The paths under test are the ones a downloaded file takes: `edgerun inspect`
(inspect + describe), and the loader (JSON header, layout, Huffman decoding in
C, encoding invariants), the planner (ops.py prepares every kernel's operands)
and one run of the C kernels on a small input.  The CRC check is off in load
(an attacker can fix CRCs up), so mutations reach the decoders and invariant
checks behind it.  The contract: every input ends in a clean run or an
edgerun.EdgerunError (FormatError, ShapeError, ...).  Any other exception is a
finding (atheris reports it and writes the input as crash-<sha1>); a segfault
or hang is a finding too.  Findings go to tests/regressions/ as tiny files.

A custom mutator alternates libFuzzer's byte mutations with the
structure-aware ones of fuzz/mutations.py (valid JSON, one lie at a time).

With -atheris_runs=N / -runs=N it stops after N inputs; without a time limit
it runs until stopped.  Pass corpus directories as arguments, as with libFuzzer.
"""
import os
import random
import sys
import tempfile

import atheris

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

with atheris.instrument_imports(include=["edgerun"]):
    import edgerun
    from edgerun import _backend, format as fmt
    from edgerun.runtime.session import Session

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mutations  # noqa: E402

MAX_INPUT_ELEMENTS = 1 << 16  # the file may declare a huge input; the caller picks the batch
_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None
_FD, _PATH = tempfile.mkstemp(prefix="edgerun-fuzz-", suffix=".edgerun", dir=_DIR)
if os.path.isdir("/proc/self/fd"):
    # libFuzzer ends the process with exit(), past any Python cleanup: unlink the
    # scratch file now and reach it through its descriptor, so nothing is left behind
    os.unlink(_PATH)
    _PATH = f"/proc/self/fd/{_FD}"
else:
    os.close(_FD)


def example_input(spec, batch=2):
    """A small finite input for a graph input spec, or None when the declared
    shape is too large to be worth running."""
    shape = [batch if d is None else d for d in spec.shape]
    count = 1
    for d in shape:
        count *= d
    if count > MAX_INPUT_ELEMENTS or spec.dtype != "float32":
        return None
    return np.linspace(-2, 2, count, dtype=np.float32).reshape(shape)


def check(data: bytes) -> None:
    """The property under fuzzing; raises on a finding."""
    with open(_PATH, "wb") as f:
        f.write(data)
    try:
        fmt.describe(fmt.inspect(_PATH))  # `edgerun inspect` reads untrusted files too
    except edgerun.EdgerunError:
        pass
    try:
        # Without the CRC check: a hostile file carries correct CRCs, and with
        # it nearly every mutation of the data region would stop at the CRC.
        graph = fmt.load(_PATH, verify_crc=False)
        with Session(graph) as session:
            feeds = {}
            for spec in session.inputs:
                x = example_input(spec)
                if x is None:
                    return
                feeds[spec.name] = x
            with np.errstate(all="ignore"):  # mutated float weights may be NaN/Inf: allowed
                session.run(feeds)
    except edgerun.EdgerunError:
        pass


def custom_mutator(data, max_size, seed):
    """Half the time a structure-aware lie (fuzz/mutations.py: shapes, offsets,
    CSR and codebook indices with CRCs fixed, Huffman tables...), half the time
    libFuzzer's own byte mutations: the first reaches the checks behind the
    JSON parser, the second the parser itself."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        try:
            out = mutations.mutate(data, rng)
            if len(out) <= max_size:
                return out
        except Exception:  # mutating a file that no longer parses: fall back
            pass
    return atheris.Mutate(data, max_size)


def main(argv=None):
    argv = sys.argv if argv is None else argv
    print(f"edgerun fuzz_load: backend {_backend.name}, scratch file {_PATH}", file=sys.stderr)
    if _backend.name != "c":
        print("warning: the C extension is not built; the C decode and kernels are not fuzzed "
              "(python setup.py build_ext --inplace)", file=sys.stderr)
    for directory in argv[1:]:
        if not directory.startswith("-") and (not os.path.isdir(directory) or not os.listdir(directory)):
            import make_corpus  # an empty or missing corpus starts from the seed models

            make_corpus.write(directory)
            print(f"wrote the seed models to {directory}", file=sys.stderr)
    atheris.Setup(argv, check, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
