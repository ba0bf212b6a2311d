"""A Session's workspace (csrc/workspace.h, edgerun/_workspace.pxi): the arrays of one
run reuse the memory of the last one, outputs stay valid after the Session is gone,
the cache stays bounded, and no step reads memory it did not write -- checked by
running every model kind with a workspace that fills each block with NaN bytes first."""
import gc

import numpy as np
import pytest

import edgerun
from edgerun import _backend, reference
from edgerun.errors import ShapeError
from edgerun.runtime.session import Session
from tests.test_session import encoded_graph, mlp

pytestmark = pytest.mark.skipif(_backend.name != "c", reason="the workspace is part of the C extension")


def handler_name(array):
    """The name of the numpy allocator that owns array's data (NEP 49)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    core = getattr(np, "_core", None) or np.core
    return core.multiarray.get_handler_name(array)


def wide_mlp(rng):
    """Layers wide enough that a batch of 64 has activations of 64 KiB and more."""
    return mlp(rng, sizes=(256, 512, 256, 10))


def test_the_second_run_takes_every_large_array_from_the_cache(rng):
    session = Session(wide_mlp(rng))
    x = rng.standard_normal((64, 256)).astype(np.float32)
    first = session.run(x)
    after_first = session._workspace.stats()
    del first
    second = session.run(x)
    after_second = session._workspace.stats()
    assert after_first["misses"] > 0
    assert after_second["misses"] == after_first["misses"]
    assert after_second["hits"] >= after_first["misses"]
    assert handler_name(second) == "edgerun_workspace"


def test_outputs_outlive_the_session(rng):
    graph = wide_mlp(rng)
    x = rng.standard_normal((64, 256)).astype(np.float32)
    session = Session(graph)
    y = session.run(x)
    expected = y.copy()
    session.close()
    del session
    gc.collect()
    np.testing.assert_array_equal(y, expected)
    y[:] = 0        # still writable memory of its own
    assert not y.any()


def test_close_frees_the_cache_and_the_session_still_runs(rng):
    session = Session(wide_mlp(rng))
    x = rng.standard_normal((64, 256)).astype(np.float32)
    expected = session.run(x)
    assert session._workspace.stats()["cached"] > 0
    session.close()
    assert session._workspace.stats()["cached"] == 0
    np.testing.assert_array_equal(session.run(x), expected)


def test_the_cache_holds_what_the_last_run_used_across_batch_sizes(rng):
    session = Session(wide_mlp(rng))
    for batch in [64, 1, 17, 64, 200, 3, 64, 90, 200]:
        x = rng.standard_normal((batch, 256)).astype(np.float32)
        session.run(x)
        first = session._workspace.stats()
        assert first["in_use"] == 0          # nothing of a finished run is held but its output
        session.run(x)
        again = session._workspace.stats()
        assert again["misses"] == first["misses"]       # the same run again: all from the cache
        assert again["cached"] == first["cached"]       # and nothing kept beyond it
    largest = session._workspace.stats()["cached"]      # the loop ended on batch 200
    for _ in range(2):
        session.run(rng.standard_normal((3, 256)).astype(np.float32))
    assert 0 < session._workspace.stats()["cached"] < largest / 10  # batch 200's blocks aged out


def test_a_run_lets_go_of_each_value_after_its_last_reader(rng):
    # Four 512-wide layers: holding every activation to the end of the run would
    # need four blocks of 64 x 512 floats at once; letting go after the last reader,
    # the next layer's output reuses the block of the one before.
    session = Session(mlp(rng, sizes=(256, 512, 512, 512, 512, 10)))
    x = rng.standard_normal((64, 256)).astype(np.float32)
    session.run(x)
    block = 64 * 512 * 4
    assert session._workspace.stats()["peak"] < 3 * block
    out = session._run(dict(session._feeds(x)))
    assert set(out) == {"y"}                # the feed too is let go after the first layer


def test_the_allocator_is_restored_after_a_run_and_after_an_error(rng):
    session = Session(wide_mlp(rng))
    session.run(rng.standard_normal((64, 256)).astype(np.float32))
    assert handler_name(np.empty(100000)) == "default_allocator"
    with pytest.raises(ShapeError):
        session.run(rng.standard_normal((64, 255)).astype(np.float32))
    assert handler_name(np.empty(100000)) == "default_allocator"


def test_the_numpy_backend_runs_without_a_workspace(rng):
    graph = wide_mlp(rng)
    x = rng.standard_normal((8, 256)).astype(np.float32)
    twin = Session(graph, kernels=reference)
    assert twin._workspace is None
    np.testing.assert_allclose(twin.run(x), Session(graph).run(x), rtol=1e-4, atol=1e-4)


def poisoned_and_plain(session, feeds):
    """(outputs with every block NaN-filled when handed out, twice in a row; outputs with
    numpy's own allocator) of one session."""
    session._in_workspace = _backend.kernels.Workspace(poison=True).run
    poisoned = [session.run(feeds) for _ in range(2)]
    session._in_workspace = lambda function, *args: function(*args)
    return poisoned, session.run(feeds)


def same_bits(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_bits(a[k], b[k]) for k in a)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("how", ["dense-f32", "dense-i8", "csr-i8", "csr-f32", "bcsr4-i8",
                                 "codebook-4-s8", "codebook-3-f32", "codebook-6-s8"])
def test_no_step_reads_memory_it_did_not_write_mlp(how, rng):
    session = Session(encoded_graph(how, rng))
    x = rng.standard_normal((33, 37)).astype(np.float32)
    poisoned, plain = poisoned_and_plain(session, x)
    assert all(same_bits(p, plain) for p in poisoned)


VARIANTS = {
    "fp32": None,
    "int8": dict(quantize="int8"),
    "int8-static": dict(quantize="int8-static"),
    "codebook": dict(share_bits=4, quantize="int8"),
    "blocks": dict(prune=0.5, prune_block=4, quantize="int8"),
}


@pytest.fixture(scope="module")
def zoo():
    """The torch test zoo (CNNs and a BERT-style encoder) at its test sizes, exported
    once: {name: (graph, feeds)}."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import torch_bert
    import torch_cnn
    from torch_export import export, seeded

    graphs = {}
    for name, (factory, example) in {**torch_cnn.models("test"), **torch_bert.models("test")}.items():
        if isinstance(example, dict):
            model = export(seeded(factory), tuple(example.values()), input_names=tuple(example),
                           dynamic=(0, 1))
            feeds = {k: v.numpy() for k, v in example.items()}
        else:
            model = export(seeded(factory), example)
            feeds = {"x": example.numpy()}
        graphs[name] = (edgerun.import_onnx(model), feeds)
    return graphs


def test_real_models_take_every_block_from_the_cache_after_the_first_run(zoo):
    for name, (graph, feeds) in zoo.items():
        session = Session(edgerun.compress(graph, quantize="int8").graph)
        session.run(dict(feeds))
        first = session._workspace.stats()
        for _ in range(2):
            session.run(dict(feeds))
        assert session._workspace.stats()["misses"] == first["misses"], name


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_step_reads_memory_it_did_not_write_real_models(zoo, variant, rng):
    for name, (graph, feeds) in zoo.items():
        options = VARIANTS[variant]
        if options is not None:
            if "static" in variant:
                calibration = feeds if len(feeds) > 1 else next(iter(feeds.values()))
                options = dict(options, calibration=calibration)
            graph = edgerun.compress(graph, **options).graph
        poisoned, plain = poisoned_and_plain(Session(graph), dict(feeds))
        assert all(same_bits(p, plain) for p in poisoned), name
