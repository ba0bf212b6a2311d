"""Read and write .edgerun files: the only code that touches model bytes on disk.

The layout is specified in docs/FORMAT.md.  In short: a 20-byte preamble
(magic, version, header length), a JSON header, then 64-byte aligned
little-endian streams.  Nothing in a file is executable and nothing is trusted:
`load` validates every key, type, offset, length, CRC, Huffman stream and
encoding invariant before a kernel can see the arrays, and raises FormatError
naming the tensor and stream at fault.

    save(graph, "model.edgerun")           # atomic: temp file + os.replace
    graph = load("model.edgerun")          # mmap; plain streams are zero-copy views
    info = inspect("model.edgerun")        # header and per-stream storage, CRC status
"""
import json
import math
import mmap
import numbers
import os
import struct
import tempfile
import zlib

import numpy as np

from edgerun.errors import EdgerunError, FormatError
from edgerun.graph import ENCODINGS, OPS, Graph, Node, Tensor, ValueInfo
from edgerun.packing import row_bytes

MAGIC = b"EDGERUN\0"
MAJOR = 1
MINOR = 0
PREAMBLE = struct.Struct("<8sHHQ")  # magic, major, minor, header length: 20 bytes
ALIGN = 64
MAX_HEADER_BYTES = 16 << 20
MAX_DIM = 2**31 - 1       # every dimension fits an int32 / size_t on any board
MAX_NDIM = 8
MAX_ELEMENTS = 2**40      # per stream; real bounds come from the file size
MAX_NAME = 4096

# The only dtypes a stream may have; all little-endian, none can hold objects.
DTYPES = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "uint32": np.dtype("<u4"),
}
VALUE_DTYPES = ("float32", "float16", "int8")
CENTROID_DTYPES = ("float32", "float16", "int8")
VALUE_INFO_DTYPES = ("float32", "float16", "int8", "uint8", "int32", "int64", "float64")

# Which stream may carry which transform (docs/FORMAT.md, "Transforms").
TRANSFORMS = {("csr", "indptr"): ("delta",), ("csr", "indices"): ("delta-rows", "delta-rows-u8"),
              ("bcsr4", "indptr"): ("delta",), ("bcsr4", "indices"): ("delta-rows", "delta-rows-u8")}
# transforms whose stored elements are one byte, whatever the stream's dtype
NARROWING = {"delta-rows-u8"}
# Integer streams worth Huffman coding when Tensor.huffman is set.
HUFFMAN_CANDIDATES = {"codes", "indices", "indptr", "values"}


# ---------------------------------------------------------------------------
# small checked readers of JSON values

def _fail(where, what):
    raise FormatError(f"{where}: {what}")


def _int(value, where, lo=0, hi=None):
    if type(value) is not int:  # bool is an int subclass: refused too
        _fail(where, f"expected an integer, got {type(value).__name__}")
    if value < lo or (hi is not None and value > hi):
        _fail(where, f"{value} is outside {lo}..{hi if hi is not None else 'inf'}")
    return value


def _str(value, where):
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        _fail(where, f"expected a non-empty string of at most {MAX_NAME} characters, got {value!r:.80}")
    return value


def _list(value, where):
    if not isinstance(value, list):
        _fail(where, f"expected a list, got {type(value).__name__}")
    return value


def _dict(value, where, required=(), optional=(), strict=True):
    """value as a dict with every required key; with strict, no unknown key.
    A file of a newer minor version may add keys an older reader ignores."""
    if not isinstance(value, dict):
        _fail(where, f"expected an object, got {type(value).__name__}")
    for key in required:
        if key not in value:
            _fail(where, f"missing key {key!r}")
    if strict:
        unknown = set(value) - set(required) - set(optional)
        if unknown:
            _fail(where, f"unknown key(s) {sorted(unknown)}")
    return value


def _shape(value, where):
    """A shape: at most MAX_NDIM dims, each 0..MAX_DIM, product <= MAX_ELEMENTS
    (computed with Python ints: no wrapping np.prod)."""
    _list(value, where)
    if len(value) > MAX_NDIM:
        _fail(where, f"{len(value)} dimensions, at most {MAX_NDIM} allowed")
    count = 1
    for d in value:
        count *= _int(d, f"{where} dimension", 0, MAX_DIM)
    if count > MAX_ELEMENTS:
        _fail(where, f"{count} elements, at most {MAX_ELEMENTS} allowed")
    return tuple(value)


def _elements(shape):
    count = 1
    for d in shape:
        count *= d
    return count


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


# ---------------------------------------------------------------------------
# encodings: which streams, dtypes and shapes each one has, and its invariants

def _check_streams(where, shape, encoding, bits, declared):
    """declared {array: (dtype name, shape)} against what encoding requires
    (graph.py): every required stream present, none unknown, each dtype allowed
    and each shape exact."""
    expected = {}  # array -> (allowed dtypes, shape)

    def need(name):
        if name not in declared:
            _fail(where, f"{encoding} encoding needs a {name!r} stream")
        return declared[name][0]

    def centroids():
        if bits is None:
            _fail(where, "codes need 'bits'")
        expected["centroids"] = (CENTROID_DTYPES, (1 << bits,))
        if need("centroids") == "int8":
            expected["scale"] = (("float32",), (1,))

    if encoding == "dense":
        expected["values"] = (VALUE_DTYPES, shape)
        if need("values") == "int8":
            if not shape:
                _fail(where, "an int8 dense tensor needs a first dimension for its per-row scale")
            expected["scale"] = (("float32",), (shape[0],))
    elif len(shape) != 2:
        _fail(where, f"a {encoding} tensor must be 2-D, got shape {list(shape)}")
    elif encoding == "codebook":
        rows, cols = shape
        centroids()
        need("codes")
        expected["codes"] = (("uint8",), (rows, row_bytes(cols, bits)))
    else:  # csr, bcsr4: the same streams; bcsr4 counts blocks and stores 4 values each
        rows, cols = shape
        need("indptr")
        index_dtype = need("indices")
        index_shape = declared["indices"][1]
        if len(index_shape) != 1:
            _fail(where, f"stream 'indices' must be 1-D, got shape {list(index_shape)}")
        nnz = index_shape[0]
        expected["indptr"] = (("uint32",), (rows + 1,))
        if index_dtype == "uint16" and cols > 65536:
            _fail(where, f"stream 'indices' is uint16 but cols = {cols} > 65536 needs uint32")
        expected["indices"] = (("uint16", "uint32"), (nnz,))
        if encoding == "bcsr4":
            expected["values"] = (VALUE_DTYPES, (4 * nnz,))
            if need("values") == "int8":
                expected["scale"] = (("float32",), (rows,))
        elif "codes" in declared:
            centroids()
            expected["codes"] = (("uint8",), (nnz,))
        else:
            expected["values"] = (VALUE_DTYPES, (nnz,))
            if need("values") == "int8":
                expected["scale"] = (("float32",), (rows,))
    missing = set(expected) - set(declared)
    if missing:
        _fail(where, f"missing stream(s) {sorted(missing)} for this {encoding} encoding")
    unknown = set(declared) - set(expected)
    if unknown:
        _fail(where, f"unexpected stream(s) {sorted(unknown)} for this {encoding} encoding")
    for name, (dtypes, want) in expected.items():
        dtype, got = declared[name]
        if dtype not in dtypes:
            _fail(f"{where} stream {name!r}", f"dtype {dtype} not allowed here, expected one of {list(dtypes)}")
        if tuple(got) != tuple(want):
            _fail(f"{where} stream {name!r}", f"shape {list(got)} does not match the tensor, expected {list(want)}")


def _check_indptr(where, indptr, nnz):
    if indptr[0] != 0:
        _fail(f"{where} stream 'indptr'", f"must start at 0, starts at {int(indptr[0])}")
    if indptr.size > 1 and (np.diff(indptr.astype(np.int64)) < 0).any():
        _fail(f"{where} stream 'indptr'", "must be non-decreasing")
    if int(indptr[-1]) != nnz:
        _fail(f"{where} stream 'indptr'", f"ends at {int(indptr[-1])}, expected nnz = {nnz}")


def _check_blocks_disjoint(where, indices, indptr):
    """Within a row, each block starts at least 4 columns after the previous one:
    sorted, no two blocks share a weight (to_dense and the kernels agree)."""
    if indices.size < 2:
        return
    step = np.diff(indices.astype(np.int64))
    same_row = np.ones(indices.size - 1, dtype=bool)
    counts = np.diff(indptr.astype(np.int64))
    starts = indptr[:-1][counts > 0].astype(np.int64)
    same_row[starts[starts > 0] - 1] = False  # step into the first block of a row
    bad = same_row & (step < 4)
    if bad.any():
        b = int(np.flatnonzero(bad)[0]) + 1
        _fail(f"{where} stream 'indices'", f"block {b} starts at column {int(indices[b])}, less than 4 "
                                           f"after the previous block of its row ({int(indices[b - 1])}); "
                                           "a row's blocks must be sorted and must not overlap")


def _check_no_minus_128(where, name, array):
    if array.size and int(array.min()) == -128:
        _fail(f"{where} stream {name!r}", "int8 values must be in [-127, 127], found -128")


def _check_finite(where, name, array):
    if not np.isfinite(array).all():
        _fail(f"{where} stream {name!r}", "scale contains NaN or Inf")


def _check_content(where, shape, encoding, bits, a):
    """The invariants the kernels trust (csrc/edgerun.h), on arrays whose
    dtypes and shapes _check_streams accepted."""
    if encoding == "csr":
        rows, cols = shape
        _check_indptr(where, a["indptr"], a["indices"].shape[0])
        if a["indices"].size and int(a["indices"].max()) >= cols:
            _fail(f"{where} stream 'indices'", f"index {int(a['indices'].max())} >= cols = {cols}")
        if "codes" in a and a["codes"].size and int(a["codes"].max()) >= 1 << bits:
            _fail(f"{where} stream 'codes'", f"code {int(a['codes'].max())} >= 2**bits = {1 << bits}")
    if encoding == "bcsr4":
        rows, cols = shape
        _check_indptr(where, a["indptr"], a["indices"].shape[0])
        if a["indices"].size and int(a["indices"].max()) + 4 > cols:
            _fail(f"{where} stream 'indices'", f"block at column {int(a['indices'].max())} runs past "
                                               f"cols = {cols} (a block covers index .. index + 3)")
        _check_blocks_disjoint(where, a["indices"], a["indptr"])
    if encoding == "codebook":
        rows, cols = shape
        width = row_bytes(cols, bits)
        used = cols * bits - 8 * (width - 1)  # bits of the last byte of a row in use
        if width and used < 8 and (a["codes"][:, -1] >> used).any():
            _fail(f"{where} stream 'codes'", "padding bits after the last code of a row must be zero")
    for name in ("values", "centroids"):
        if name in a and a[name].dtype == np.int8:
            _check_no_minus_128(where, name, a[name])
    if "scale" in a:
        _check_finite(where, "scale", a["scale"])


# ---------------------------------------------------------------------------
# transforms that make integer streams Huffman-friendly

def _delta(indptr):
    """indptr -> first differences (row lengths), modulo 2**32."""
    return np.diff(indptr.astype(np.int64), prepend=0).astype(np.uint32)


def _undo_delta(stored):
    return (np.cumsum(stored.astype(np.uint64)) & 0xFFFFFFFF).astype(np.uint32)


def _delta_rows(indices, indptr):
    """Each row's indices as differences from the previous index of the row;
    the first of a row kept as is.  Modulo 2**width, so exact for any order."""
    d = indices.astype(np.int64)
    d[1:] -= indices[:-1].astype(np.int64)
    counts = np.diff(indptr.astype(np.int64))
    starts = indptr[:-1][counts > 0].astype(np.int64)
    d[starts] = indices[starts]
    return (d & (1 << 8 * indices.itemsize) - 1).astype(indices.dtype)


def _undo_delta_rows(stored, indptr, dtype=None):
    """Inverse of _delta_rows; `dtype` widens a narrowed (delta-rows-u8) stream."""
    dtype = np.dtype(dtype or stored.dtype)
    total = np.cumsum(stored.astype(np.uint64))  # < nnz * 2**32: no wrap
    before = np.concatenate([np.zeros(1, np.uint64), total])[indptr[:-1].astype(np.int64)]
    counts = np.diff(indptr.astype(np.int64))
    mask = np.uint64((1 << 8 * dtype.itemsize) - 1)
    return ((total - np.repeat(before, counts)) & mask).astype(dtype)


# ---------------------------------------------------------------------------
# writing

def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _little_endian(array, where):
    array = np.asarray(array)
    name = array.dtype.name
    if name not in DTYPES:
        _fail(where, f"dtype {array.dtype} cannot be stored, allowed: {list(DTYPES)}")
    return np.ascontiguousarray(array, dtype=DTYPES[name])


def _stored_form(name, encoding, arrays, huffman):
    """(payload uint8, stream extras) for one array: plain, or Huffman-coded
    (after a transform) when that is smaller by more than the code table."""
    from edgerun.compress import huffman as hf  # only the writer needs the encoder

    array = arrays[name]
    plain = array.reshape(-1).view(np.uint8)
    if not huffman or name not in HUFFMAN_CANDIDATES or array.dtype.kind not in "iu" or array.size == 0:
        return plain, {}
    candidates = [(None, array)]
    allowed = TRANSFORMS.get((encoding, name), ())
    if "delta" in allowed:
        candidates = [("delta", _delta(array))]
    elif "delta-rows" in allowed:
        deltas = _delta_rows(array, arrays["indptr"])
        candidates.append(("delta-rows", deltas))
        # Huffman spends at least one bit per byte: a 16-bit delta whose high byte
        # is always 0 wastes a bit per index, so store small deltas as bytes.
        if array.itemsize > 1 and int(deltas.max()) < 256:
            candidates.append(("delta-rows-u8", deltas.astype(np.uint8)))
    best_bytes, best = plain.nbytes, (plain, {})
    for transform, stored in candidates:
        raw = stored.reshape(-1).view(np.uint8)
        lengths = hf.code_lengths(raw)
        table = _code_lengths_hex(lengths)
        # the table is stored in the JSON header as hex: it costs len(table) bytes
        cost = (hf.encoded_bits(raw) + 7) // 8 + len(table)
        if cost < best_bytes:
            lengths, payload = hf.encode(raw)
            extras = {"huffman": {"code_lengths": table, "decoded_length": raw.nbytes}}
            if transform:
                extras["transform"] = transform
            best_bytes, best = cost, (payload, extras)
    return best


def _graph_json(graph):
    def infos(values):
        return [{"name": v.name, "shape": [None if d is None else int(d) for d in v.shape],
                 "dtype": v.dtype} for v in values]

    return {"inputs": infos(graph.inputs), "outputs": infos(graph.outputs),
            "nodes": [{"op": n.op, "name": n.name, "inputs": list(n.inputs),
                       "outputs": list(n.outputs), "attrs": dict(n.attrs)} for n in graph.nodes]}


def _metadata(graph):
    """graph.metadata, given a "producer" (the edgerun version writing the
    file) unless the graph already names one: a loaded file keeps the producer
    that made it.  The key is set on graph.metadata itself, so the graph in
    memory describes the file it was saved to and round trips compare equal.
    The compressor adds its settings under "compression"."""
    from edgerun import __version__

    if not isinstance(graph.metadata, dict):
        raise FormatError(f"graph metadata must be a dict, got {type(graph.metadata).__name__}")
    graph.metadata.setdefault("producer", f"edgerun {__version__}")
    return graph.metadata


def save(graph, path) -> None:
    """Write graph to path as .edgerun, atomically (a temp file in the same
    directory, fsync'd, then os.replace): readers see the old file or the new
    one, never half of one.  Raises FormatError if the graph cannot be stored."""
    if not isinstance(graph, Graph):
        raise FormatError(f"save expects an edgerun Graph, got {type(graph).__name__}")
    _check_graph(graph)
    tensors, blobs, end = {}, [], 0
    for key, tensor in graph.tensors.items():
        where = f"tensor {key!r}"
        if tensor.name != key:
            _fail(where, f"is stored under the name {tensor.name!r}")
        if tensor.encoding not in ENCODINGS:
            _fail(where, f"unknown encoding {tensor.encoding!r}, expected one of {list(ENCODINGS)}")
        if not all(isinstance(d, numbers.Integral) for d in tensor.shape):
            _fail(where, f"shape {tensor.shape} must hold integers")
        shape = _shape([int(d) for d in tensor.shape], f"{where} shape")
        bits = tensor.bits if tensor.bits is None else _int(int(tensor.bits), f"{where} bits", 1, 8)
        arrays = {name: _little_endian(a, f"{where} stream {name!r}") for name, a in tensor.arrays.items()}
        _check_streams(where, shape, tensor.encoding, bits,
                       {name: (a.dtype.name, a.shape) for name, a in arrays.items()})
        _check_content(where, shape, tensor.encoding, bits, arrays)
        streams = {}
        for name, array in arrays.items():
            payload, extras = _stored_form(name, tensor.encoding, arrays, tensor.huffman)
            length = int(payload.nbytes)
            # Plain streams are aligned so load can hand out zero-copy views; a
            # Huffman stream is decoded into new memory anyway, so it packs tight.
            offset = (end if "huffman" in extras else _align(end)) if length else 0
            if length:
                blobs.append((offset, payload))
                end = offset + length
            streams[name] = {"dtype": array.dtype.name, "shape": list(array.shape), "offset": offset,
                             "length": length, "crc32": zlib.crc32(payload), **extras}
        entry = {"shape": list(shape), "encoding": tensor.encoding, "huffman": bool(tensor.huffman),
                 "streams": streams}
        if bits is not None:
            entry["bits"] = bits
        tensors[key] = entry
    header = {"graph": _graph_json(graph), "tensors": tensors, "metadata": _metadata(graph)}
    try:
        text = json.dumps(header, separators=(",", ":"), allow_nan=False, ensure_ascii=False,
                          default=_json_default).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise FormatError(f"graph or metadata cannot be stored as JSON: {error}") from None
    if len(text) > MAX_HEADER_BYTES:
        raise FormatError(f"JSON header is {len(text)} bytes, more than the {MAX_HEADER_BYTES} allowed")
    _check_header(json.loads(text), True, end)  # never write what load would refuse
    text = _deflate_header(text)
    data_start = _align(PREAMBLE.size + len(text))

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".edgerun-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(PREAMBLE.pack(MAGIC, MAJOR, MINOR, len(text)))
            f.write(text)
            f.write(b"\0" * (data_start - PREAMBLE.size - len(text)))
            position = 0
            for offset, payload in blobs:
                f.write(b"\0" * (offset - position))
                f.write(memoryview(payload))
                position = offset + payload.nbytes
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------
# reading

def _unique_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise FormatError(f"header: duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name):
    raise FormatError(f"header: {name} is not valid JSON")


def _open(path):
    """(mmap, size) of path; FormatError for what cannot be a model file.
    A missing or unreadable path raises the usual OSError."""
    with open(os.fspath(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < PREAMBLE.size:
            raise FormatError(f"file is {size} bytes, shorter than the {PREAMBLE.size}-byte preamble")
        try:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), size
        except (OSError, ValueError) as error:
            raise FormatError(f"cannot map {os.fspath(path)!r}: {error}") from None


def _deflate_header(text):
    """The header as stored: zlib-deflated behind a 0x00 marker when that is
    smaller (it is for every real model: the stream table repeats its keys), so
    a small model's file is not mostly header."""
    packed = b"\0" + zlib.compress(text, 9)
    return packed if len(packed) < len(text) else text


def _inflate_header(stored):
    """JSON bytes of a stored header; bounded so a zip bomb cannot exhaust memory."""
    if not stored.startswith(b"\0"):
        return stored
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(stored[1:], MAX_HEADER_BYTES + 1)
    except zlib.error as error:
        raise FormatError(f"deflated header is corrupt: {error}") from None
    if len(text) > MAX_HEADER_BYTES:
        raise FormatError(f"deflated header inflates past the {MAX_HEADER_BYTES}-byte limit")
    if not inflater.eof or inflater.unused_data:
        raise FormatError("deflated header is truncated or has trailing bytes")
    return text


def _read_header(buf, size):
    """The parsed JSON header, the file's (major, minor) and where data starts."""
    magic, major, minor, length = PREAMBLE.unpack_from(buf, 0)
    if magic != MAGIC:
        raise FormatError(f"not an edgerun file: magic {magic!r}, expected {MAGIC!r}")
    if major != MAJOR:
        raise FormatError(f"format version {major}.{minor} is not supported: this reader knows {MAJOR}.x")
    if length > MAX_HEADER_BYTES:
        raise FormatError(f"header length {length} exceeds the {MAX_HEADER_BYTES}-byte limit")
    if PREAMBLE.size + length > size:
        raise FormatError(f"header length {length} runs past the end of the {size}-byte file")
    try:
        text = _inflate_header(bytes(buf[PREAMBLE.size:PREAMBLE.size + length])).decode("utf-8")
        header = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except FormatError:
        raise
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError, JSONDecodeError
        raise FormatError(f"header is not valid UTF-8 JSON: {error}") from None
    data_start = _align(PREAMBLE.size + length)
    if data_start > size:
        raise FormatError(f"file is {size} bytes, ends inside the header padding (data starts at {data_start})")
    return header, (major, minor), length, data_start


def _parse_value_infos(value, where):
    infos = []
    for i, v in enumerate(_list(value, where)):
        w = f"{where}[{i}]"
        _dict(v, w, ("name", "shape", "dtype"))
        shape = _list(v["shape"], f"{w} shape")
        if len(shape) > MAX_NDIM:
            _fail(w, f"{len(shape)} dimensions, at most {MAX_NDIM} allowed")
        dims = tuple(None if d is None else _int(d, f"{w} shape", 0, MAX_DIM) for d in shape)
        if v["dtype"] not in VALUE_INFO_DTYPES:
            _fail(w, f"dtype {v['dtype']!r:.40} not one of {list(VALUE_INFO_DTYPES)}")
        infos.append(ValueInfo(_str(v["name"], f"{w} name"), dims, v["dtype"]))
    return infos


def _parse_graph(value, strict):
    _dict(value, "header 'graph'", ("inputs", "outputs", "nodes"), strict=strict)
    nodes = []
    for i, n in enumerate(_list(value["nodes"], "graph nodes")):
        w = f"graph node [{i}]"
        _dict(n, w, ("op", "name", "inputs", "outputs", "attrs"), strict=strict)
        name = _str(n["name"], f"{w} name")
        w = f"graph node {name!r}"
        if n["op"] not in OPS:
            _fail(w, f"unknown op {n['op']!r:.40}, expected one of {list(OPS)}")
        inputs = [_str(x, f"{w} input") for x in _list(n["inputs"], f"{w} inputs")]
        outputs = [_str(x, f"{w} output") for x in _list(n["outputs"], f"{w} outputs")]
        nodes.append(Node(n["op"], name, inputs, outputs, _dict(n["attrs"], f"{w} attrs", strict=False)))
    return (_parse_value_infos(value["inputs"], "graph inputs"),
            _parse_value_infos(value["outputs"], "graph outputs"), nodes)


def _code_lengths_hex(lengths):
    """The 256 code lengths as hex, trailing zero lengths left out: index deltas
    and codebook codes use few, small byte values, so this is usually a few dozen
    digits instead of 512."""
    used = np.flatnonzero(lengths)
    end = int(used[-1]) + 1 if used.size else 0
    return lengths[:end].tobytes().hex()


def _parse_code_lengths(value, where):
    from edgerun.reference import huffman_codes

    if not isinstance(value, str) or len(value) > 512 or len(value) % 2:
        _fail(where, "huffman code_lengths must be at most 512 hex digits (256 bytes), an even count")
    try:
        lengths = np.zeros(256, dtype=np.uint8)
        given = bytes.fromhex(value)
        lengths[: len(given)] = np.frombuffer(given, dtype=np.uint8)
    except ValueError:
        _fail(where, "huffman code_lengths is not hex")
    try:
        huffman_codes(lengths)  # lengths <= 16 and not over-subscribed
    except FormatError as error:
        _fail(where, str(error))
    return lengths


def _parse_tensor(name, value, strict):
    """The checked description of one tensor: shape, encoding, bits, huffman
    flag and {stream: description}.  No data is read here."""
    where = f"tensor {name!r}"
    _str(name, "tensor name")
    _dict(value, where, ("shape", "encoding", "streams"), ("bits", "huffman"), strict)
    shape = _shape(value["shape"], f"{where} shape")
    encoding = value["encoding"]
    if encoding not in ENCODINGS:
        _fail(where, f"unknown encoding {encoding!r:.40}, expected one of {list(ENCODINGS)}")
    bits = value.get("bits")
    if bits is not None:
        _int(bits, f"{where} bits", 1, 8)
    huffman = value.get("huffman", False)
    if not isinstance(huffman, bool):
        _fail(where, "'huffman' must be true or false")
    streams = {}
    for sname, s in _dict(value["streams"], f"{where} streams", strict=False).items():
        w = f"{where} stream {sname!r}"
        _dict(s, w, ("dtype", "shape", "offset", "length", "crc32"), ("transform", "huffman"), strict)
        if not isinstance(s["dtype"], str) or s["dtype"] not in DTYPES:  # a dict is unhashable
            _fail(w, f"dtype {s['dtype']!r:.40} not allowed, expected one of {list(DTYPES)}")
        sshape = _shape(s["shape"], f"{w} shape")
        stream = {"dtype": s["dtype"], "shape": sshape, "offset": _int(s["offset"], f"{w} offset"),
                  "length": _int(s["length"], f"{w} length"), "crc32": _int(s["crc32"], f"{w} crc32", 0, 2**32 - 1),
                  "transform": s.get("transform"), "huffman": None}
        if stream["offset"] % ALIGN and "huffman" not in s:
            _fail(w, f"offset {stream['offset']} is not a multiple of {ALIGN}")
        expected = _elements(sshape) * DTYPES[s["dtype"]].itemsize
        if stream["transform"] is not None and stream["transform"] not in TRANSFORMS.get((encoding, sname), ()):
            _fail(w, f"transform {stream['transform']!r:.40} is not allowed on this stream")
        if stream["transform"] in NARROWING:
            expected = _elements(sshape)
        if "huffman" in s:
            h = _dict(s["huffman"], f"{w} huffman", ("code_lengths", "decoded_length"), strict=strict)
            decoded = _int(h["decoded_length"], f"{w} huffman decoded_length")
            if decoded != expected:
                _fail(w, f"huffman decoded_length {decoded} != {expected} bytes of {s['dtype']} {list(sshape)}")
            if decoded > 8 * stream["length"]:  # every symbol costs at least one bit
                _fail(w, f"huffman decoded_length {decoded} cannot come from {stream['length']} bytes")
            stream["huffman"] = (_parse_code_lengths(h["code_lengths"], w), decoded)
        elif stream["length"] != expected:
            _fail(w, f"length {stream['length']} != {expected} bytes of {s['dtype']} {list(sshape)}")
        if stream["transform"] is not None and stream["huffman"] is None:
            _fail(w, "a transform is only allowed on a Huffman-coded stream")
        streams[sname] = stream
    _check_streams(where, shape, encoding, bits, {n: (s["dtype"], s["shape"]) for n, s in streams.items()})
    return {"shape": shape, "encoding": encoding, "bits": bits, "huffman": huffman, "streams": streams}


def _check_header(header, strict, data_length):
    """Everything in the JSON header that can be checked without the data."""
    _dict(header, "header", ("graph", "tensors", "metadata"), strict=strict)
    inputs, outputs, nodes = _parse_graph(header["graph"], strict)
    tensors = {name: _parse_tensor(name, t, strict)
               for name, t in _dict(header["tensors"], "header 'tensors'", strict=False).items()}
    metadata = _dict(header["metadata"], "header 'metadata'", strict=False)
    _check_layout(tensors, data_length)
    return {"inputs": inputs, "outputs": outputs, "nodes": nodes, "tensors": tensors, "metadata": metadata}


def _parse(buf, size):
    """Everything that can be checked without decoding the streams."""
    header, version, header_length, data_start = _read_header(buf, size)
    strict = version[1] <= MINOR  # a newer minor may add keys we do not know
    parsed = _check_header(header, strict, size - data_start)
    parsed.update(version=version, header_length=header_length, data_start=data_start)
    return parsed


def _check_layout(tensors, data_length):
    """The data region is laid out exactly as save writes it: streams in header
    order, each starting where the previous one ended (rounded up to ALIGN for a
    plain stream), empty streams at 0, and the file ending with the last stream.
    So no stream lies outside the file or overlaps another, no bytes hide in a
    gap, and a shifted offset is always caught, even where the CRC still matches."""
    position = 0
    for tname, t in tensors.items():
        for sname, s in t["streams"].items():
            where = f"tensor {tname!r} stream {sname!r}"
            if not s["length"]:
                if s["offset"]:
                    _fail(where, f"an empty stream must have offset 0, got {s['offset']}")
                continue
            expected = position if s["huffman"] is not None else _align(position)
            if s["offset"] != expected:
                _fail(where, f"offset {s['offset']} breaks the layout: the stream must start at "
                             f"{expected}, right after the previous one")
            position = s["offset"] + s["length"]
            if position > data_length:
                _fail(where, f"bytes {s['offset']}..{position} lie outside the "
                             f"{data_length}-byte data region (file truncated?)")
    if position != data_length:
        raise FormatError(f"data region is {data_length} bytes but its streams end at {position}")


def _decode_huffman(where, lengths, payload, n_out):
    from edgerun import _backend, reference

    decode = getattr(_backend.kernels, "huffman_decode", reference.huffman_decode)
    try:
        return decode(lengths, payload, n_out)
    except EdgerunError as error:
        raise FormatError(f"{where}: {error}") from None


def _read_stream(where, buf, data_start, s, verify_crc):
    """The stream's array as stored (Huffman decoded, transform not undone).
    Plain streams are read-only views of the mapped file: no copy."""
    start = data_start + s["offset"]
    dtype = DTYPES[s["dtype"]]
    if verify_crc and zlib.crc32(memoryview(buf)[start:start + s["length"]]) != s["crc32"]:
        _fail(where, "CRC32 mismatch: the stream is corrupted")
    if s["huffman"] is not None:
        lengths, decoded_length = s["huffman"]
        payload = np.frombuffer(buf, dtype=np.uint8, count=s["length"], offset=start)
        raw = _decode_huffman(where, lengths, payload, decoded_length)
        if s["transform"] in NARROWING:
            return raw.reshape(s["shape"])  # widened to dtype when the transform is undone
        array = raw.view(dtype).reshape(s["shape"])
        array.flags.writeable = False
        return array
    if s["length"] == 0:
        array = np.zeros(s["shape"], dtype=dtype)
        array.flags.writeable = False
        return array
    return np.frombuffer(buf, dtype=dtype, count=_elements(s["shape"]), offset=start).reshape(s["shape"])


def _load_tensor(name, t, buf, data_start, verify_crc):
    where = f"tensor {name!r}"
    arrays = {sname: _read_stream(f"{where} stream {sname!r}", buf, data_start, s, verify_crc)
              for sname, s in t["streams"].items()}
    transforms = {sname: s["transform"] for sname, s in t["streams"].items() if s["transform"]}
    if transforms.get("indptr") == "delta":
        arrays["indptr"] = _undo_delta(arrays["indptr"])
    if transforms.get("indices") in ("delta-rows", "delta-rows-u8"):
        _check_indptr(where, arrays["indptr"], arrays["indices"].shape[0])  # rows bound the undo
        arrays["indices"] = _undo_delta_rows(arrays["indices"], arrays["indptr"],
                                             DTYPES[t["streams"]["indices"]["dtype"]])
    for array in arrays.values():
        array.flags.writeable = False
    _check_content(where, t["shape"], t["encoding"], t["bits"], arrays)
    return Tensor(name, t["shape"], t["encoding"], arrays, t["bits"], t["huffman"])


# How many inputs each op takes (graph.py), so the runtime never calls an op
# function with the wrong number of arguments.
ARITY = {"Linear": (2, 3), "Relu": (1,), "Sigmoid": (1,), "Tanh": (1,), "Softmax": (1,),
         "Add": (2,), "Mul": (2,), "Flatten": (1,), "Reshape": (1,), "Conv2d": (2, 3),
         "MaxPool": (1,), "AveragePool": (1,), "GlobalAveragePool": (1,), "Clip": (1,)}
ARITY.update({"HardSigmoid": (1,), "HardSwish": (1,), "Pad": (1,), "Resize": (1,)})  # edge CNN ops

# transformer ops (Concat's inputs and Split's outputs are counted in _check_transformer_attrs)
ARITY.update({"Gelu": (1,), "Erf": (1,), "LayerNorm": (2, 3), "MatMul": (2,), "Transpose": (1,),
              "Split": (1,), "Slice": (1, 2), "Gather": (1, 2), "Cast": (1,), "Where": (3,),
              "Equal": (2,), "ReduceMean": (1,), "ReduceSum": (1,), "Sub": (2,), "Div": (2,),
              "Pow": (2,), "Sqrt": (1,), "Expand": (1,)})
# DynamicReshape, Dims, Expand: 1 to MAX_PIECES inputs, counted in _check_transformer_attrs
ARITY.update({"Greater": (2,), "GreaterOrEqual": (2,), "Less": (2,), "LessOrEqual": (2,),
              "And": (2,), "Or": (2,), "Not": (1,), "Range": (1,), "GatherND": (2,),
              "IsNaN": (1,), "CumSum": (1,), "GatherElements": (2,)})
del ARITY["Expand"]
MAX_PIECES = 1 << 12     # Concat inputs / Split outputs: far beyond any real model
MAX_GATHER_INDICES = 1 << 16
INT64 = (-2**63, 2**63 - 1)
MAX_WINDOW = 1 << 16  # kernel, stride, dilation and pad sizes: far beyond any real model


def _ints(attrs, key, where, count, lo, default=None):
    """attrs[key] as a list of `count` ints in lo..MAX_WINDOW (default when absent)."""
    if key not in attrs:
        if default is None:
            _fail(where, f"needs attrs {key!r}")
        return default
    values = _list(attrs[key], f"{where} {key}")
    if len(values) != count:
        _fail(where, f"{key} must hold {count} integers, got {len(values)}")
    return [_int(v, f"{where} {key}", lo, MAX_WINDOW) for v in values]


def _check_window_attrs(node, where, attrs):
    """Conv2d / pooling geometry: strides and dilations >= 1, pads >= 0."""
    _ints(attrs, "strides", where, 2, 1, [1, 1])
    _ints(attrs, "pads", where, 4, 0, [0, 0, 0, 0])
    if node.op == "Conv2d":
        _ints(attrs, "dilations", where, 2, 1, [1, 1])
        _int(attrs.get("group", 1), f"{where} group", 1, MAX_DIM)
        if attrs.get("activation") not in (None, "relu", "relu6"):
            _fail(where, f"activation must be null, 'relu' or 'relu6', got {attrs.get('activation')!r:.40}")
        if "kernel" in attrs:
            _ints(attrs, "kernel", where, 3, 1)
    else:
        kernel = _ints(attrs, "kernel_shape", where, 2, 1)
        pads = _ints(attrs, "pads", where, 4, 0, [0, 0, 0, 0])
        if any(pads[i] >= kernel[i % 2] for i in range(4)):
            _fail(where, f"pads {pads} must be smaller than the window {kernel} (as ONNX requires)")
        if attrs.get("count_include_pad", 0) not in (0, 1) or type(attrs.get("count_include_pad", 0)) is not int:
            _fail(where, f"count_include_pad must be 0 or 1, got {attrs.get('count_include_pad')!r:.40}")


def _check_input_scale(where, attrs):
    """int8-static's calibrated activation scale of a Linear or Conv2d input."""
    scale = attrs.get("input_scale")
    finite = type(scale) is int or (type(scale) is float and math.isfinite(scale))  # no float(2**70)
    if scale is not None and (not finite or scale <= 0):
        _fail(where, f"input_scale must be a finite number > 0, got {scale!r:.40}")


def _check_attrs(node):
    """The attrs the runtime reads, with the types it assumes."""
    where, attrs = f"node {node.name!r}", node.attrs
    if node.op == "Linear":
        if attrs.get("activation") not in (None, "relu"):
            _fail(where, f"activation must be null or 'relu', got {attrs.get('activation')!r:.40}")
        _check_input_scale(where, attrs)
    elif node.op in ("Conv2d", "MaxPool", "AveragePool"):
        _check_window_attrs(node, where, attrs)
        if node.op == "Conv2d":
            _check_input_scale(where, attrs)
    elif node.op == "Clip":
        for key in ("min", "max"):
            value = attrs.get(key)
            if value is not None and not (type(value) in (int, float) and math.isfinite(value)):
                _fail(where, f"Clip {key} must be null or a finite number, got {value!r:.40}")
    elif node.op in ("Softmax", "Flatten") and "axis" in attrs:
        _int(attrs["axis"], f"{where} axis", -MAX_NDIM, MAX_NDIM)
    elif node.op == "Reshape":
        if "shape" not in attrs:
            _fail(where, "Reshape needs attrs 'shape'")
        shape = _list(attrs["shape"], f"{where} shape")
        if len(shape) > MAX_NDIM:
            _fail(where, f"Reshape to {len(shape)} dimensions, at most {MAX_NDIM} allowed")
        for d in shape:
            _int(d, f"{where} shape", -1, MAX_DIM)
        if shape.count(-1) > 1:
            _fail(where, "Reshape shape may hold at most one -1")
    if node.op in TRANSFORMER_OPS:
        _check_transformer_attrs(node, where, attrs)


TRANSFORMER_OPS = ("Gelu", "Erf", "LayerNorm", "MatMul", "Transpose", "Concat", "Split", "Slice",
                   "Gather", "Cast", "Where", "Equal", "ReduceMean", "ReduceSum", "Sub", "Div",
                   "Pow", "Sqrt", "Expand", "DynamicReshape",
                   "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Not", "Dims", "Range",
                   "Max", "Min", "GatherND", "IsNaN", "CumSum", "GatherElements")


def _axis(attrs, key, where, default=None):
    if key not in attrs and default is not None:
        return default
    if key not in attrs:
        _fail(where, f"needs attrs {key!r}")
    return _int(attrs[key], f"{where} {key}", -MAX_NDIM, MAX_NDIM - 1)


def _int_list(attrs, key, where, lo, hi, max_len=MAX_NDIM):
    values = _list(attrs.get(key), f"{where} {key}")
    if len(values) > max_len:
        _fail(where, f"{key} holds {len(values)} entries, at most {max_len} allowed")
    return [_int(v, f"{where} {key}", lo, hi) for v in values]


def _check_transformer_attrs(node, where, attrs):
    """The attrs of the transformer ops (graph.py), with the types evaluate.py assumes."""
    op = node.op
    if op == "Gelu" and attrs.get("approximate", "none") not in ("none", "tanh"):
        _fail(where, f"approximate must be 'none' or 'tanh', got {attrs.get('approximate')!r:.40}")
    elif op == "LayerNorm":
        _axis(attrs, "axis", where, -1)
        eps = attrs.get("epsilon", 1e-5)
        if not (type(eps) in (int, float) and math.isfinite(eps) and eps >= 0):
            _fail(where, f"epsilon must be a finite number >= 0, got {eps!r:.40}")
    elif op == "Transpose":
        perm = _int_list(attrs, "perm", where, 0, MAX_NDIM - 1)
        if sorted(perm) != list(range(len(perm))):
            _fail(where, f"perm {perm} is not a permutation of 0..{len(perm) - 1}")
    elif op == "Concat":
        _axis(attrs, "axis", where)
        if not 1 <= len(node.inputs) <= MAX_PIECES:
            _fail(where, f"Concat takes 1 to {MAX_PIECES} inputs, got {len(node.inputs)}")
    elif op == "Split":
        _axis(attrs, "axis", where)
        sizes = _int_list(attrs, "split", where, 0, MAX_DIM, MAX_PIECES)
        if not sizes or len(sizes) != len(node.outputs):
            _fail(where, f"split {sizes} must give one size per output ({len(node.outputs)} outputs)")
    elif op == "Slice":
        starts = _int_list(attrs, "starts", where, *INT64)
        count = len(starts)
        ends = _int_list(attrs, "ends", where, *INT64)
        axes = _int_list(attrs, "axes", where, -MAX_NDIM, MAX_NDIM - 1) if "axes" in attrs else list(range(count))
        steps = _int_list(attrs, "steps", where, *INT64) if "steps" in attrs else [1] * count
        if not len(ends) == len(axes) == len(steps) == count or 0 in steps:
            _fail(where, "starts, ends, axes and steps must have one entry per sliced axis, steps nonzero")
        if len({a % MAX_NDIM for a in axes}) != count:
            _fail(where, f"axes {axes} repeat an axis")
        if len(node.inputs) == 2:
            ends_from = _list(attrs.get("ends_from"), f"{where} ends_from")
            if len(ends_from) != count:
                _fail(where, f"ends_from must have {count} entries")
            for v in ends_from:
                if v is not None:
                    _int(v, f"{where} ends_from", -MAX_NDIM, MAX_NDIM - 1)
        elif "ends_from" in attrs:
            _fail(where, "ends_from needs a second input (the value whose dims it reads)")
    elif op == "Gather":
        _axis(attrs, "axis", where, 0)
        if len(node.inputs) == 1:
            if "indices" not in attrs:
                _fail(where, "Gather with one input needs attrs 'indices'")
            indices = attrs["indices"]
            if type(indices) is not int:
                _int_list(attrs, "indices", where, -MAX_DIM, MAX_DIM, MAX_GATHER_INDICES)
            else:
                _int(indices, f"{where} indices", -MAX_DIM, MAX_DIM)
        elif "indices" in attrs:
            _fail(where, "Gather has both an indices input and attrs 'indices'")
    elif op == "Cast" and attrs.get("to") not in ("float32", "int64", "int32", "bool"):
        _fail(where, f"to must be 'float32', 'int64', 'int32' or 'bool', got {attrs.get('to')!r:.40}")
    elif op in ("ReduceMean", "ReduceSum"):
        if attrs.get("axes") is not None:
            axes = _int_list(attrs, "axes", where, -MAX_NDIM, MAX_NDIM - 1)
            if len({a % MAX_NDIM for a in axes}) != len(axes):
                _fail(where, f"axes {axes} repeat an axis")
        if attrs.get("keepdims", 1) not in (0, 1) or type(attrs.get("keepdims", 1)) is not int:
            _fail(where, f"keepdims must be 0 or 1, got {attrs.get('keepdims')!r:.40}")
    elif op == "DynamicReshape":
        shape = _run_time_dims(node, where, attrs, "shape", -1)
        if shape.count(-1) > 1:
            _fail(where, "DynamicReshape shape may hold at most one -1")
    elif op == "Expand":
        shape = _run_time_dims(node, where, attrs, "shape", 0)
        count = 1
        for d in shape:
            count *= max(d, 1) if type(d) is int else 1
        if count > MAX_DIM:
            _fail(where, f"Expand to {shape}: more than {MAX_DIM} elements")
    elif op == "Dims":
        values = _run_time_dims(node, where, attrs, "values", 0)
        shape = _int_list(attrs, "shape", where, -1, MAX_DIM) if "shape" in attrs else [-1]
        if len(shape) > 1 or shape not in ([-1], [len(values)], []) or (shape == [] and len(values) != 1):
            _fail(where, f"shape {shape} must be [], [-1] or [{len(values)}] for {len(values)} values")
    elif op == "CumSum":
        _axis(attrs, "axis", where)
        for key in ("exclusive", "reverse"):
            if attrs.get(key, 0) not in (0, 1) or type(attrs.get(key, 0)) is not int:
                _fail(where, f"{key} must be 0 or 1, got {attrs.get(key)!r:.40}")
    elif op == "GatherElements":
        _axis(attrs, "axis", where, 0)
    elif op in ("Max", "Min") and not 1 <= len(node.inputs) <= MAX_PIECES:
        _fail(where, f"{op} takes 1 to {MAX_PIECES} inputs, got {len(node.inputs)}")
    elif op == "Range":
        for key in ("start", "delta"):
            _int(attrs.get(key), f"{where} {key}", *INT64)
        if attrs["delta"] == 0:
            _fail(where, "Range delta must not be 0")


def _run_time_dims(node, where, attrs, key, lo):
    """attrs[key]: at most MAX_NDIM entries, each an int >= lo or [input, axis] naming one
    of the node's inputs (1 to MAX_PIECES of them)."""
    if not 1 <= len(node.inputs) <= MAX_PIECES:
        _fail(where, f"{node.op} takes 1 to {MAX_PIECES} inputs, got {len(node.inputs)}")
    values = _list(attrs.get(key), f"{where} {key}")
    if len(values) > MAX_NDIM:
        _fail(where, f"{key} holds {len(values)} entries, at most {MAX_NDIM} allowed")
    for d in values:
        if isinstance(d, list):
            if len(d) != 2:
                _fail(where, f"a run-time dim must be [input, axis], got {d!r:.40}")
            _int(d[0], f"{where} {key} input", 0, len(node.inputs) - 1)
            _int(d[1], f"{where} {key} axis", -MAX_NDIM, MAX_NDIM - 1)
        else:
            _int(d, f"{where} {key}", lo, MAX_DIM)
    return values


def _finite(value, where, what, positive=False):
    """A JSON number that is finite (and > 0 with positive), as float."""
    if type(value) not in (int, float) or not math.isfinite(value) or (positive and value <= 0):
        _fail(where, f"{what} must be a finite number{' > 0' if positive else ''}, got {value!r:.40}")
    return float(value)


# Bounds on what a file may ask of activations, far above any real model: a pad,
# a Resize output side and a Resize scale factor.
MAX_PAD, MAX_RESIZE_SIZE, MAX_RESIZE_SCALE = 1 << 10, 1 << 14, 64


def _check_cnn_attrs(node):
    """The attrs of the edge CNN ops (HardSigmoid, Pad, Resize) with the types evaluate.py assumes."""
    from edgerun.evaluate import PAD_MODES, RESIZE_COORDINATES, RESIZE_NEAREST

    where, attrs = f"node {node.name!r}", node.attrs
    if node.op == "HardSigmoid":
        for key, default in (("alpha", 0.2), ("beta", 0.5)):
            _finite(attrs.get(key, default), where, f"HardSigmoid {key}")
    elif node.op == "Pad":
        pads = _list(attrs.get("pads"), f"{where} pads")
        if not pads or len(pads) % 2 or len(pads) > 2 * MAX_NDIM:
            _fail(where, f"Pad pads must hold 2 integers per axis (at most {MAX_NDIM} axes), got {len(pads)}")
        for v in pads:
            _int(v, f"{where} pads", 0, MAX_PAD)
        if attrs.get("mode", "constant") not in PAD_MODES:
            _fail(where, f"Pad mode must be one of {PAD_MODES}, got {attrs.get('mode')!r:.40}")
        _finite(attrs.get("value", 0.0), where, "Pad value")
    elif node.op == "Resize":
        if attrs.get("mode", "nearest") not in ("nearest", "linear"):
            _fail(where, f"Resize mode must be 'nearest' or 'linear', got {attrs.get('mode')!r:.40}")
        if attrs.get("coordinate_transformation_mode", "half_pixel") not in RESIZE_COORDINATES:
            _fail(where, f"Resize coordinate_transformation_mode must be one of {RESIZE_COORDINATES}, "
                         f"got {attrs.get('coordinate_transformation_mode')!r:.40}")
        if attrs.get("nearest_mode", "round_prefer_floor") not in RESIZE_NEAREST:
            _fail(where, f"Resize nearest_mode must be one of {RESIZE_NEAREST}, "
                         f"got {attrs.get('nearest_mode')!r:.40}")
        scales, sizes = attrs.get("scales"), attrs.get("sizes")
        if (scales is None) == (sizes is None):
            _fail(where, "Resize needs exactly one of attrs 'scales' and 'sizes'")
        if sizes is not None:
            for v in _list(sizes, f"{where} sizes"):
                _int(v, f"{where} sizes", 1, MAX_RESIZE_SIZE)
            if len(sizes) != 2:
                _fail(where, f"Resize sizes must hold 2 integers, got {len(sizes)}")
        else:
            values = _list(scales, f"{where} scales")
            if len(values) != 2:
                _fail(where, f"Resize scales must hold 2 numbers, got {len(values)}")
            for v in values:
                if _finite(v, where, "Resize scale", positive=True) > MAX_RESIZE_SCALE:
                    _fail(where, f"Resize scale {v} is above {MAX_RESIZE_SCALE}")


def _check_conv_pads(graph, node):
    """A pad at least the dilated kernel's extent only adds outputs that never see the
    input; no exporter writes one, and refusing it keeps a file from asking for
    activations far larger than its input (a 1x1 image padded by 65536)."""
    weight = graph.tensors.get(node.inputs[1])
    if weight is None or len(weight.shape) not in (2, 4):
        return  # Graph.validate names the problem
    kernel = node.attrs.get("kernel")
    kh, kw = (kernel[1:] if isinstance(kernel, list) and len(kernel) == 3 else weight.shape[2:4]
              if len(weight.shape) == 4 else (None, None))
    if kh is None:
        return
    dh, dw = node.attrs.get("dilations", [1, 1])
    spans = [(int(kh) - 1) * dh + 1, (int(kw) - 1) * dw + 1]
    pads = node.attrs.get("pads", [0, 0, 0, 0])
    if any(pads[i] >= spans[i % 2] for i in range(4)):
        _fail(f"node {node.name!r}", f"pads {pads} must be smaller than the dilated kernel {spans}")


def _check_graph(graph):
    """Graph.validate plus the checks it assumes: every op has the number of
    inputs and the attrs it takes, one output each; Linear has a weight and
    optional bias that are constants and an activation that is not.  Every
    failure is a FormatError."""
    for node in graph.nodes:
        if node.op in ARITY and len(node.inputs) not in ARITY[node.op]:
            raise FormatError(f"node {node.name!r}: {node.op} takes {' or '.join(map(str, ARITY[node.op]))} "
                              f"inputs, got {len(node.inputs)} {node.inputs}")
        if len(node.outputs) != 1 and node.op != "Split":   # Split: one output per size (its attrs)
            raise FormatError(f"node {node.name!r}: expected exactly one output, got {node.outputs}")
        if node.op in ("Linear", "Conv2d"):
            if node.inputs[0] in graph.tensors:
                raise FormatError(f"node {node.name!r}: the {node.op} input {node.inputs[0]!r} must not be a constant")
            for name in node.inputs[1:]:
                if name not in graph.tensors:
                    raise FormatError(f"node {node.name!r}: {name!r} must be a constant tensor")
        _check_attrs(node)
        _check_cnn_attrs(node)
        if node.op == "Conv2d":
            _check_conv_pads(graph, node)
    for value in graph.inputs:
        if value.name in graph.tensors:
            raise FormatError(f"graph input {value.name!r} has the name of a constant tensor")
    for value in graph.outputs:
        if value.name in graph.tensors and not any(value.name in n.outputs for n in graph.nodes):
            raise FormatError(f"graph output {value.name!r} is a constant tensor; outputs must be computed")
    try:
        graph.validate()
    except EdgerunError as error:
        raise FormatError(f"graph: {error}") from None


def load(path, verify_crc=True) -> Graph:
    """Read and fully validate a .edgerun file; FormatError on any defect.

    Plain streams become read-only numpy views of the memory-mapped file (a
    model loads without copying its weights); Huffman streams are decoded once
    (in C when the extension is built) and transforms undone."""
    buf, size = _open(path)
    parsed = _parse(buf, size)
    tensors = {name: _load_tensor(name, t, buf, parsed["data_start"], verify_crc)
               for name, t in parsed["tensors"].items()}
    graph = Graph(parsed["inputs"], parsed["outputs"], parsed["nodes"], tensors, parsed["metadata"])
    _check_graph(graph)
    return graph


def inspect(path) -> dict:
    """The header and each stream's storage, for `edgerun inspect`: checks the
    structure like load, reports CRC status per stream, decodes nothing."""
    buf, size = _open(path)
    parsed = _parse(buf, size)
    tensors = {}
    for name, t in parsed["tensors"].items():
        streams, stored, decoded = {}, 0, 0
        for sname, s in t["streams"].items():
            start = parsed["data_start"] + s["offset"]
            crc_ok = zlib.crc32(memoryview(buf)[start:start + s["length"]]) == s["crc32"]
            out_bytes = s["huffman"][1] if s["huffman"] else s["length"]
            streams[sname] = {"dtype": s["dtype"], "shape": list(s["shape"]), "offset": s["offset"],
                              "length": s["length"], "decoded_length": out_bytes,
                              "huffman": s["huffman"] is not None, "transform": s["transform"],
                              "crc32": s["crc32"], "crc_ok": crc_ok}
            stored += s["length"]
            decoded += out_bytes
        layer = next((n.name for n in parsed["nodes"] if name in n.inputs), None)
        tensors[name] = {"layer": layer, "shape": list(t["shape"]), "encoding": t["encoding"], "bits": t["bits"],
                         "huffman": t["huffman"], "stored_bytes": stored, "decoded_bytes": decoded,
                         "streams": streams}
    return {"path": os.fspath(path), "file_bytes": size, "version": "%d.%d" % parsed["version"],
            "header_bytes": parsed["header_length"], "data_offset": parsed["data_start"],
            "inputs": [{"name": v.name, "shape": list(v.shape), "dtype": v.dtype} for v in parsed["inputs"]],
            "outputs": [{"name": v.name, "shape": list(v.shape), "dtype": v.dtype} for v in parsed["outputs"]],
            "nodes": [{"op": n.op, "name": n.name} for n in parsed["nodes"]],
            "tensors": tensors, "metadata": parsed["metadata"],
            "crc_ok": all(s["crc_ok"] for t in tensors.values() for s in t["streams"].values())}


def _encoding_label(t):
    """'csr 3b int8 u16 +huff' from an inspect() tensor entry."""
    streams = t["streams"]
    parts = [t["encoding"]]
    if "codes" in streams:
        parts.append(f"{t['bits']}b {streams['centroids']['dtype']}")
    elif "values" in streams:
        parts.append(streams["values"]["dtype"])
    if "indices" in streams:
        parts.append({"uint16": "u16", "uint32": "u32"}[streams["indices"]["dtype"]])
    if any(s["huffman"] for s in streams.values()):
        parts.append("+huff")
    return " ".join(parts)


def describe(info) -> str:
    """inspect(path) as text: the file, its metadata, a table of tensors by
    layer with stored/decoded bytes and CRC ok/BAD, then every stream."""
    def dims(shape):
        return "x".join("N" if d is None else str(d) for d in shape) or "scalar"

    meta = info["metadata"]
    lines = [f"{info['path']}: edgerun format {info['version']}, {info['file_bytes']:,} bytes "
             f"(header {info['header_bytes']:,}, data from offset {info['data_offset']:,})",
             f"producer: {meta.get('producer', 'unknown')}"]
    if isinstance(meta.get("compression"), dict):
        lines.append("compression: " + ", ".join(f"{k}={v}" for k, v in meta["compression"].items()))
    for key in ("inputs", "outputs"):
        lines.append(f"{key}: " + ", ".join(f"{v['name']} {v['dtype']} [{dims(v['shape'])}]"
                                            for v in info[key]))
    lines.append(f"nodes: {len(info['nodes'])} (" + ", ".join(n["op"] for n in info["nodes"]) + ")")
    rows = [("layer", "tensor", "encoding", "shape", "stored B", "decoded B", "CRC")]
    for name, t in info["tensors"].items():
        ok = all(s["crc_ok"] for s in t["streams"].values())
        rows.append((t["layer"] or "-", name, _encoding_label(t), dims(t["shape"]),
                     f"{t['stored_bytes']:,}", f"{t['decoded_bytes']:,}", "ok" if ok else "BAD"))
    stored = sum(t["stored_bytes"] for t in info["tensors"].values())
    decoded = sum(t["decoded_bytes"] for t in info["tensors"].values())
    bad = [f"{n}.{s}" for n, t in info["tensors"].items() for s, v in t["streams"].items() if not v["crc_ok"]]
    rows.append(("total", "", "", "", f"{stored:,}", f"{decoded:,}", "ok" if not bad else f"{len(bad)} BAD"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {4, 5}
    lines.append("")
    for r in rows:
        lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    lines.append("")
    lines.append("streams:")
    for name, t in info["tensors"].items():
        for sname, s in t["streams"].items():
            how = "huffman" + (f"+{s['transform']}" if s["transform"] else "") if s["huffman"] else "plain"
            lines.append(f"  {name}.{sname}: {s['dtype']} [{dims(s['shape'])}] {how}, "
                         f"{s['length']:,} B at {s['offset']:,}, crc32 {s['crc32']:08x} "
                         f"{'ok' if s['crc_ok'] else 'BAD'}")
    if bad:
        lines.append(f"CRC MISMATCH in {len(bad)} stream(s): {', '.join(bad)} -- the file is corrupted")
    else:
        lines.append("all CRCs ok")
    return "\n".join(lines)
