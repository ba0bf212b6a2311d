"""Repeated load / plan / run / close cycles for valgrind memcheck (.ci/memcheck.sh).

    python tests/memcheck_loop.py [cycles]

Every seed model of fuzz/make_corpus.py (every encoding, Huffman decoded in C)
is loaded, planned, run on a few batch sizes (with and without the kernel
thread pool, and in chunks) and closed, `cycles` times; then hostile files
(corrupt Huffman payloads with fixed CRCs, out-of-range indices) go through the
C decoder's and the loader's error paths.  Under memcheck any invalid read or
write in the kernels is an error, and memory the C code allocates and never
frees shows up as a definite leak at exit.  Without valgrind it is a quick
smoke test.  Prints one line and exits 0 when every cycle behaved.
"""
import gc
import os
import random
import sys
import tempfile

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "fuzz"))

import edgerun  # noqa: E402
from edgerun import _backend, format as fmt  # noqa: E402
from edgerun.runtime.session import Session  # noqa: E402
import make_corpus  # noqa: E402
import mutations  # noqa: E402


def run_model(path, rng, trusted=True):
    graph = fmt.load(path)
    for num_threads, max_rows in ((1, 1024), (2, 4)):
        with Session(graph, num_threads=num_threads, max_batch_rows=max_rows) as session:
            features = session.inputs[0].shape[1]
            for batch in (1, 5, 9):
                y = session.run(rng.standard_normal((batch, features)).astype(np.float32))
                assert y.shape[0] == batch and (np.isfinite(y).all() or not trusted)
    del graph


def hostile(seeds, directory):
    """Mutants that reach the C Huffman decoder and the content checks; each
    must be refused.  Returns how many were refused."""
    refused = 0
    path = os.path.join(directory, "mutant.edgerun")
    for name in seeds:
        data = open(name, "rb").read()
        for i, mutate in enumerate((mutations.data_bit_flips, mutations.huffman_lies,
                                    mutations.csr_index_out_of_range,
                                    mutations.codebook_index_out_of_range)):
            with open(path, "wb") as f:
                f.write(mutate(data, random.Random(i)))
            try:
                run_model(path, np.random.default_rng(0), trusted=False)
            except edgerun.EdgerunError:
                refused += 1
    return refused


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cycles = int(argv[0]) if argv else 3
    if _backend.name != "c":
        sys.exit(f"memcheck_loop: the C extension is not built ({_backend.reason})")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as directory:
        seeds = make_corpus.write(directory)
        for _ in range(cycles):
            for path in seeds:
                run_model(path, rng)
            gc.collect()
        huffman = [p for p in seeds if "huff" in os.path.basename(p)]
        refused = hostile(huffman, directory)
    print(f"memcheck_loop: {cycles} cycles x {len(seeds)} models, {refused} hostile files refused: ok")


if __name__ == "__main__":
    main()
