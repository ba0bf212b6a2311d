"""One Session shared by many threads (docs/SECURITY.md, "Threads").

A Session keeps no per-call state: each run allocates its own activations,
quantized inputs and outputs, the prepared weights are read-only, and the
kernels release the GIL while they run.  So 8 threads x hundreds of calls on
one Session must give results bit-identical to serial runs -- with the kernels
on one thread, with num_threads > 1 (the Session's pool split by columns, shared
by all callers), with batches big enough to run in chunks, and while other
Sessions of the same file run beside it.
"""
import os
import threading

import numpy as np
import pytest

from edgerun import _backend, format as fmt
from edgerun.runtime.session import Session
from tests.test_session import encoded_graph

ENCODINGS = ["dense-i8", "csr-i8", "csr-f32", "codebook-4-s8", "codebook-3-f32", "codebook-6-s8"]
THREADS = 8
CALLS = 200


def hammer(session, inputs, expected, calls=CALLS, threads=THREADS):
    """threads x calls runs of session.run, each on inputs[i % len]; returns the
    mismatches (thread, call) and the errors raised."""
    start = threading.Barrier(threads)
    bad, errors = [], []

    def worker(t):
        try:
            start.wait()  # all threads in the kernels at once
            for c in range(calls):
                i = (t + c) % len(inputs)
                y = session.run(inputs[i])
                if not np.array_equal(y.view(np.uint32), expected[i].view(np.uint32)):
                    bad.append((t, c))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(repr(error))

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return bad, errors


def inputs_for(rng, batches=(1, 3, 8, 17)):
    return [rng.standard_normal((b, 37)).astype(np.float32) for b in batches]


@pytest.mark.parametrize("how", ENCODINGS)
@pytest.mark.parametrize("num_threads", [1, 3])
def test_threads_share_one_session_bit_identically(how, num_threads, rng):
    graph = encoded_graph(how, rng)
    inputs = inputs_for(rng)
    with Session(graph) as serial:
        expected = [serial.run(x) for x in inputs]
    with Session(graph, num_threads=num_threads) as shared:
        # the pool splits columns; our kernels' results do not depend on the split
        # (numpy's BLAS, the fallback backend's float path, may round differently)
        if _backend.name == "c" or "s8" in how or "i8" in how:
            assert all(np.array_equal(shared.run(x), e) for x, e in zip(inputs, expected))
        expected = [shared.run(x) for x in inputs]
        bad, errors = hammer(shared, inputs, expected)
    assert errors == [] and bad == []


@pytest.mark.parametrize("how", ["dense-i8", "csr-i8", "codebook-4-s8"])
def test_threads_with_chunked_batches(how, rng):
    """Big batches run in chunks of max_batch_rows while other threads run small ones."""
    graph = encoded_graph(how, rng)
    inputs = inputs_for(rng, batches=(1, 150, 5, 300))
    with Session(graph) as serial:
        expected = [serial.run(x) for x in inputs]
    with Session(graph, num_threads=2, max_batch_rows=32) as shared:
        bad, errors = hammer(shared, inputs, expected, calls=40)
    assert errors == [] and bad == []


def test_sessions_of_one_mapped_file_run_side_by_side(rng, tmp_path):
    """Several Sessions over the same memory-mapped file, each used by its own
    threads, plus threads sharing one of them."""
    path = tmp_path / "m.edgerun"
    fmt.save(encoded_graph("csr-codes-s8", rng), path)
    inputs = inputs_for(rng)
    with Session(fmt.load(path)) as serial:
        expected = [serial.run(x) for x in inputs]
    sessions = [Session(fmt.load(path), num_threads=n) for n in (1, 2, 1, 2)]
    results = []

    def own(session):
        results.append(hammer(session, inputs, expected, calls=50, threads=2))

    runners = [threading.Thread(target=own, args=(s,)) for s in sessions]
    for r in runners:
        r.start()
    for r in runners:
        r.join()
    for s in sessions:
        s.close()
    assert results == [([], [])] * len(sessions)


def test_errors_in_one_thread_do_not_disturb_the_others(rng):
    """A thread feeding NaN to an int8 layer gets its NonFiniteError; the others
    keep getting exact results (no state is left behind by the failed call)."""
    graph = encoded_graph("dense-i8", rng)
    inputs = inputs_for(rng)
    with Session(graph, num_threads=2) as session:
        expected = [session.run(x) for x in inputs]
        poisoned = inputs[2].copy()
        poisoned[0, 0] = np.nan
        failures = []

        def poison():
            for _ in range(100):
                try:
                    session.run(poisoned)
                except ValueError as error:
                    failures.append(type(error).__name__)

        bad_thread = threading.Thread(target=poison)
        bad_thread.start()
        bad, errors = hammer(session, inputs, expected, calls=100, threads=4)
        bad_thread.join()
    assert errors == [] and bad == []
    assert failures == ["NonFiniteError"] * 100


def test_backend_is_the_c_extension():
    """Concurrency of the C kernels (GIL released) is what these tests are for."""
    if os.environ.get("EDGERUN_BACKEND") != "numpy":  # numpy only when asked for by name
        assert _backend.name == "c", _backend.reason
