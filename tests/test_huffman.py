"""Huffman coding: the numpy encoder, the numpy reference decoder and every C
variant of huffman_decode agree, and corrupt streams are refused."""
import numpy as np
import pytest

import edgerun
from edgerun import reference
from edgerun.compress import huffman

from conftest import call, kernel_implementations

OP = "huffman_decode"


def fibonacci_bytes(symbols=30):
    """Counts 1, 1, 2, 3, 5, ...: the optimal code for these is 29 bits deep."""
    counts = [1, 1]
    while len(counts) < symbols:
        counts.append(counts[-1] + counts[-2])
    return np.repeat(np.arange(symbols, dtype=np.uint8), counts)


def streams(rng):
    return {
        "geometric": rng.geometric(0.3, size=5000).clip(0, 255).astype(np.uint8),
        "uniform": rng.integers(0, 256, size=4097).astype(np.uint8),
        "two-symbols": rng.choice(np.array([3, 200], np.uint8), size=777, p=[0.9, 0.1]),
        "one-symbol": np.full(100, 9, np.uint8),
        "one-byte": np.array([255], np.uint8),
        "fibonacci": fibonacci_bytes(),
    }


def kraft_sum(lengths):
    used = lengths[lengths > 0].astype(np.int64)
    return np.sum(2.0 ** -used)


def test_code_lengths_are_limited_and_prefix_free(rng):
    for name, data in streams(rng).items():
        lengths = huffman.code_lengths(data)
        assert lengths.dtype == np.uint8 and lengths.shape == (256,)
        assert lengths.max() <= 16, name
        assert kraft_sum(lengths) <= 1.0, name
        # every symbol present gets a code, absent ones none
        assert np.array_equal(lengths > 0, np.bincount(data, minlength=256) > 0), name


def test_single_symbol_gets_length_one():
    lengths = huffman.code_lengths(np.full(10, 42, np.uint8))
    assert lengths[42] == 1 and lengths.sum() == 1
    lengths, payload = huffman.encode(np.full(10, 42, np.uint8))
    assert payload.tolist() == [0, 0]  # ten zero bits, padded to two bytes


def test_empty_data():
    lengths, payload = huffman.encode(np.zeros(0, np.uint8))
    assert not lengths.any() and payload.size == 0
    assert huffman.encoded_bits(np.zeros(0, np.uint8)) == 0
    assert reference.huffman_decode(lengths, payload, 0).size == 0


def test_fibonacci_counts_are_flattened_to_16_bits():
    data = fibonacci_bytes()
    lengths = huffman.code_lengths(data)
    assert 11 < lengths.max() <= 16  # limited, yet still deep where the counts are skewed
    assert kraft_sum(lengths) <= 1.0


def test_skewed_data_compresses():
    data = np.zeros(10000, np.uint8)
    data[::10] = 1
    assert huffman.encoded_bits(data) == 10000  # two symbols: one bit each
    _, payload = huffman.encode(data)
    assert payload.size == 1250


def test_canonical_codes_follow_length_then_symbol():
    lengths = np.zeros(256, np.uint8)
    lengths[[65, 66, 67, 68]] = [1, 3, 2, 3]  # A:0 C:10 B:110 D:111
    codes = reference.huffman_codes(lengths)
    assert [codes[65], codes[67], codes[66], codes[68]] == [0b0, 0b10, 0b110, 0b111]
    # MSB-first: A C B D = 0 10 110 111 -> 0101 1011 1(000 0000)
    payload = np.array([0b01011011, 0b10000000], np.uint8)
    assert reference.huffman_decode(lengths, payload, 4).tolist() == [65, 67, 66, 68]


def test_reference_round_trip(rng):
    for name, data in streams(rng).items():
        lengths, payload = huffman.encode(data)
        assert payload.size == (huffman.encoded_bits(data) + 7) // 8, name
        assert np.array_equal(reference.huffman_decode(lengths, payload, data.size), data), name


def test_reference_round_trip_across_chunks(rng):
    # longer than the reference's 2**18-bit chunks, so symbols straddle chunk edges
    data = rng.geometric(0.05, size=120000).clip(0, 255).astype(np.uint8)
    lengths, payload = huffman.encode(data)
    assert payload.size * 8 > 2 * 2**18
    assert np.array_equal(reference.huffman_decode(lengths, payload, data.size), data)


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_c_matches_encoder_and_reference(variant, rng):
    for name, data in streams(rng).items():
        lengths, payload = huffman.encode(data)
        out = call(OP, variant, lengths, payload, data.size)
        assert out.dtype == np.uint8 and np.array_equal(out, data), name
        # decoding a prefix stops after exactly n_out symbols
        assert np.array_equal(call(OP, variant, lengths, payload, data.size // 2), data[:data.size // 2])


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_c_long_codes(variant):
    # fibonacci counts force 12..16-bit codes: the decoder's slow path
    data = fibonacci_bytes()[::-1].copy()
    lengths, payload = huffman.encode(data)
    assert lengths.max() > 11
    assert np.array_equal(call(OP, variant, lengths, payload, data.size), data)


def decoders():
    """Every decoder: the numpy reference and each C variant."""
    found = [pytest.param(reference.huffman_decode, id="reference")]
    for param in kernel_implementations(OP):
        variant = param.values[0]
        found.append(pytest.param(lambda *a, v=variant: call(OP, v, *a), id=variant))
    return found


@pytest.mark.parametrize("decode", decoders())
def test_corrupt_streams_are_refused(decode, rng):
    data = rng.geometric(0.3, size=300).clip(0, 255).astype(np.uint8)
    lengths, payload = huffman.encode(data)
    with pytest.raises(edgerun.FormatError):  # early end
        decode(lengths, payload[:-1], data.size)
    with pytest.raises(edgerun.FormatError):  # more symbols than bits
        decode(lengths, payload, data.size + 8 * payload.size + 1)
    over = lengths.copy()
    over[over == 0] = 1  # adds codes the space has no room for
    with pytest.raises(edgerun.FormatError):
        decode(over, payload, 1)
    too_long = np.zeros(256, np.uint8)
    too_long[0] = 17
    with pytest.raises(edgerun.FormatError):
        decode(too_long, payload, 1)
    single = np.zeros(256, np.uint8)
    single[7] = 1  # only code "0": a 1 bit matches nothing
    with pytest.raises(edgerun.FormatError):
        decode(single, np.array([0x7F], np.uint8), 2)
    assert decode(single, np.array([0x7F], np.uint8), 1).tolist() == [7]


@pytest.mark.parametrize("variant", kernel_implementations(OP))
def test_c_and_reference_agree_on_garbage(variant, rng):
    """Random streams under random incomplete codes: same symbols or both refuse."""
    for _ in range(200):
        data = rng.geometric(0.4, size=int(rng.integers(1, 60))).clip(0, 255).astype(np.uint8)
        lengths = huffman.code_lengths(data)
        lengths[int(rng.choice(np.flatnonzero(lengths)))] = 0  # punch a hole in the code
        garbage = rng.integers(0, 256, size=int(rng.integers(0, 12))).astype(np.uint8)
        n = int(rng.integers(0, 40))
        outcome = []
        for decode in (reference.huffman_decode, lambda *a: call(OP, variant, *a)):
            try:
                outcome.append(decode(lengths, garbage, n).tolist())
            except edgerun.FormatError:
                outcome.append("corrupt")
        assert outcome[0] == outcome[1]


def test_wrapper_checks_arguments():
    from edgerun import _backend

    if _backend.name != "c":
        pytest.skip("the C extension is not built")
    with pytest.raises(edgerun.ShapeError):
        _backend.kernels.huffman_decode(np.zeros(255, np.uint8), np.zeros(1, np.uint8), 1)
    with pytest.raises(edgerun.ShapeError):
        _backend.kernels.huffman_decode(np.zeros(256, np.int8), np.zeros(1, np.uint8), 1)
    with pytest.raises(edgerun.ShapeError):
        _backend.kernels.huffman_decode(np.zeros(256, np.uint8), np.zeros(1, np.uint8), -1)


def test_encoder_refuses_wider_dtypes():
    with pytest.raises(edgerun.EdgerunError):
        huffman.encode(np.zeros(4, np.uint16))
