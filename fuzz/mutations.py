"""Structure-aware mutations of .edgerun files, shared by the CI fuzz test
(tests/test_fuzz.py) and the atheris target's custom mutator (fuzz_load.py).

A byte-level fuzzer mostly breaks the JSON header or trips the CRC; these
mutations instead keep the file well-formed except for one lie, so the checks
behind the parser (layout, CRC, Huffman decoding, CSR and codebook invariants)
are reached.  Every mutation is a pure function of (file bytes, random.Random):
with a fixed seed it is reproducible.  Where a mutation changes data bytes it
can fix the CRCs up afterwards, as an attacker would.
"""
import json
import struct
import zlib

PREAMBLE = struct.Struct("<8sHHQ")
ALIGN = 64


class Model:
    """A parsed file: preamble fields, JSON header (a dict) and the data region."""

    def __init__(self, data: bytes):
        magic, self.major, self.minor, length = PREAMBLE.unpack_from(data, 0)
        self.magic = magic
        stored = data[PREAMBLE.size:PREAMBLE.size + length]
        if stored.startswith(b"\0"):  # a deflated header (docs/FORMAT.md); rewritten plain
            stored = zlib.decompress(stored[1:])
        self.header = json.loads(stored.decode("utf-8"))
        start = -(-(PREAMBLE.size + length) // ALIGN) * ALIGN
        self.data = bytearray(data[start:])

    def streams(self):
        """[(tensor name, stream name, stream dict)] in file order."""
        return [(t, s, d) for t, tensor in self.header["tensors"].items()
                for s, d in tensor["streams"].items()]

    def stream_bytes(self, s):
        return self.data[s["offset"]:s["offset"] + s["length"]]

    def fix_crcs(self):
        for _, _, s in self.streams():
            s["crc32"] = zlib.crc32(bytes(self.stream_bytes(s)))

    def to_bytes(self, header_length=None):
        text = json.dumps(self.header, separators=(",", ":")).encode("utf-8")
        length = len(text) if header_length is None else header_length
        pad = -(PREAMBLE.size + len(text)) % ALIGN
        return PREAMBLE.pack(self.magic, self.major, self.minor, length) + text + b"\0" * pad + bytes(self.data)


# ---------------------------------------------------------------------------
# the mutations: each (data, rng) -> bytes

def bit_flips(data, rng):
    """1..8 random bit flips anywhere (CRC left as is)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def data_bit_flips(data, rng):
    """Bit flips in the data region with the CRCs recomputed: reaches the
    Huffman decoder and the content checks instead of the CRC check."""
    m = Model(data)
    if not m.data:
        return bit_flips(data, rng)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(m.data))
        m.data[i] ^= 1 << rng.randrange(8)
    m.fix_crcs()
    return m.to_bytes()


def truncate(data, rng):
    return data[:rng.randrange(len(data))]


def extend(data, rng):
    return data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 80)))


def _lie(value, rng):
    """A plausible wrong integer near or far from value."""
    return rng.choice([value + 1, value - 1, value + 64, value - 64, value * 2 + 1, 0, -1,
                       2**31, 2**32 - 1, 2**32, 2**63, 2**64 + 5, -2**63,
                       rng.randrange(1 << 20)])


def lying_offset_or_length(data, rng):
    m = Model(data)
    _, _, s = rng.choice(m.streams())
    key = rng.choice(["offset", "length"])
    s[key] = _lie(s[key], rng)
    return m.to_bytes()


def lying_shape(data, rng):
    """A tensor's logical shape or one stream's shape changes by a dimension
    (or gains/loses one); with luck the lengths still agree."""
    m = Model(data)
    if rng.random() < 0.5:
        target = rng.choice(list(m.header["tensors"].values()))
    else:
        _, _, target = rng.choice(m.streams())
    shape = target["shape"]
    r = rng.random()
    if r < 0.15 or not shape:
        shape.append(rng.choice([1, 2, 0]))
    elif r < 0.3:
        shape.pop()
    elif r < 0.4:
        shape.reverse()
    else:
        i = rng.randrange(len(shape))
        shape[i] = _lie(shape[i], rng)
    return m.to_bytes()


def lying_graph(data, rng):
    """The graph's input/output shapes, dtypes or node wiring lie."""
    m = Model(data)
    g = m.header["graph"]
    r = rng.random()
    if r < 0.3:
        info = rng.choice(g["inputs"] + g["outputs"])
        if info["shape"]:
            i = rng.randrange(len(info["shape"]))
            info["shape"][i] = rng.choice([None, 0, 1, 3, 10**6, -1, "7"])
    elif r < 0.45:
        rng.choice(g["inputs"] + g["outputs"])["dtype"] = rng.choice(["float64", "int8", "object", "<f4"])
    elif r < 0.6 and g["nodes"]:
        node = rng.choice(g["nodes"])
        node["op"] = rng.choice(["Relu", "Softmax", "Reshape", "Add", "Mul", "Flatten", "Conv", "Tanh"])
    elif r < 0.65 and g["nodes"]:
        node = rng.choice(g["nodes"])
        node["attrs"] = rng.choice([{"activation": "gelu"}, {"axis": 7}, {"axis": "x"}, {"shape": [5, -1]},
                                    {"shape": [0, 0, 0]}, {"shape": "no"}, {"activation": None},
                                    {"input_scale": 2**70}, {"input_scale": -1.0}, {"input_scale": []}])
    elif r < 0.75:
        # a graph input or output takes the name of a constant tensor or of another value
        info = rng.choice(g["inputs"] + g["outputs"])
        info["name"] = rng.choice(sorted(m.header["tensors"]) + [n["outputs"][0] for n in g["nodes"]
                                                                   if n["outputs"]])
    elif g["nodes"]:
        node = rng.choice(g["nodes"])
        names = node["inputs"]
        rng.shuffle(names)
        if rng.random() < 0.5:
            names.append(rng.choice(["x", "w", "b", "y", "missing"]))
    return m.to_bytes()


def _plain(m, rng, tensor_filter, stream_name):
    """A plain (not Huffman-coded) stream called stream_name of a tensor that
    tensor_filter accepts: (tensor dict, stream dict) or None."""
    found = [(m.header["tensors"][t], s) for t, n, s in m.streams()
             if n == stream_name and "huffman" not in s and tensor_filter(m.header["tensors"][t])]
    return rng.choice(found) if found else None


def _set_element(m, s, index, value, fmt):
    struct.pack_into("<" + fmt, m.data, s["offset"] + index * struct.calcsize(fmt), value)


def csr_index_out_of_range(data, rng):
    """A CSR column index >= cols, a bcsr4 block running past cols (or an indptr
    that is not monotone or does not end at nnz), CRC fixed: only the invariant
    checks stand in the way."""
    m = Model(data)
    is_csr = lambda t: t["encoding"] in ("csr", "bcsr4")  # noqa: E731
    choice = rng.random()
    if choice < 0.5 and (hit := _plain(m, rng, is_csr, "indices")) and hit[1]["shape"][0]:
        t, s = hit
        cols = t["shape"][1]
        fmt = "H" if s["dtype"] == "uint16" else "I"
        top = 0xFFFF if fmt == "H" else 0xFFFFFFFF
        value = rng.choice([cols, cols + 1, top])
        if t["encoding"] == "bcsr4":  # a block must end by cols: index + 4 <= cols
            value = rng.choice([cols - 3, cols - 1, cols, top])
        if value <= top:
            _set_element(m, s, rng.randrange(s["shape"][0]), value, fmt)
    elif (hit := _plain(m, rng, is_csr, "indptr")):
        _, s = hit
        n = s["shape"][0]
        _set_element(m, s, rng.randrange(n), rng.choice([0, 1, 2**31, 2**32 - 1, n * 1000]), "I")
    else:
        return data_bit_flips(data, rng)
    m.fix_crcs()
    return m.to_bytes()


def codebook_index_out_of_range(data, rng):
    """A code >= 2**bits: CSR codes set high, packed codebook padding bits set,
    or the tensor claims fewer bits than its codes use."""
    m = Model(data)
    shared = [t for t in m.header["tensors"].values() if t.get("bits")]
    if not shared:
        return data_bit_flips(data, rng)
    t = rng.choice(shared)
    if rng.random() < 0.3:
        t["bits"] = rng.choice([t["bits"] - 1, t["bits"] + 1, 0, 9, 16])
        return m.to_bytes()
    s = t["streams"]["codes"]
    if "huffman" in s or not s["length"]:
        t["bits"] = max(1, t["bits"] - 1)
        return m.to_bytes()
    i = rng.randrange(s["length"])
    m.data[s["offset"] + i] = rng.choice([255, 1 << min(t["bits"], 7), 0x80])
    m.fix_crcs()
    return m.to_bytes()


def huffman_lies(data, rng):
    """Code-length table or decoded length of a Huffman stream lies."""
    m = Model(data)
    coded = [s for _, _, s in m.streams() if "huffman" in s]
    if not coded:
        return data_bit_flips(data, rng)
    h = rng.choice(coded)["huffman"]
    r = rng.random()
    if r < 0.4:
        h["decoded_length"] = _lie(h["decoded_length"], rng)
    elif r < 0.8:
        digits = list(h["code_lengths"]) or ["0", "0"]
        i = rng.randrange(len(digits))
        digits[i] = rng.choice("0123456789abcdefg")
        h["code_lengths"] = "".join(digits)
    else:
        h["code_lengths"] = rng.choice(["", "01", "0101", "ff" * 256, "01" * 257, "1" * 3])
    return m.to_bytes()


def oversized_header(data, rng):
    """The header-length field lies (huge or off by a little), or the header is padded."""
    m = Model(data)
    text_length = len(json.dumps(m.header, separators=(",", ":")).encode("utf-8"))
    if rng.random() < 0.5:
        return m.to_bytes(rng.choice([(16 << 20) + 1, 2**63, 2**64 - 1, text_length + 1,
                                      text_length - 1, len(data) + 1]))
    m.header["metadata"]["padding"] = "x" * rng.choice([1000, 70000])
    return m.to_bytes()


def wrong_version(data, rng):
    """Major versions other than 1 are refused; a newer minor is read (its
    unknown keys are ignored)."""
    m = Model(data)
    if rng.random() < 0.6:
        m.major = rng.choice([0, 2, 255, 0xFFFF])
    else:
        m.minor = rng.choice([1, 99, 0xFFFF])
        if rng.random() < 0.5:
            m.header["future_key"] = {"x": 1}
    if rng.random() < 0.2:
        m.magic = rng.choice([b"EDGERUN\x01", b"GGUF\0\0\0\0", b"\0" * 8])
    return m.to_bytes()


def crc_mismatch(data, rng):
    m = Model(data)
    _, _, s = rng.choice(m.streams())
    s["crc32"] = rng.choice([(s["crc32"] + 1) % 2**32, s["crc32"] ^ 0x80000000, -1, 2**32, "0"])
    return m.to_bytes()


def json_type_confusion(data, rng):
    """A random key of the header gets a value of the wrong type, or vanishes."""
    m = Model(data)
    containers = []

    def walk(value, depth):
        if isinstance(value, dict):
            containers.append(value)
            for v in value.values():
                walk(v, depth + 1)
        elif isinstance(value, list):
            for v in value:
                walk(v, depth + 1)

    walk(m.header, 0)
    target = rng.choice([c for c in containers if c])
    key = rng.choice(sorted(target))
    if rng.random() < 0.25:
        del target[key]
    else:
        target[key] = rng.choice([None, True, 1.5, -3, "", "x" * 5000, [], {}, [1, 2], {"a": 1},
                                  1e308, 2**70])
    return m.to_bytes()


MUTATIONS = {f.__name__: f for f in (
    bit_flips, data_bit_flips, truncate, extend, lying_offset_or_length, lying_shape, lying_graph,
    csr_index_out_of_range, codebook_index_out_of_range, huffman_lies, oversized_header,
    wrong_version, crc_mismatch, json_type_confusion)}


def mutate(data, rng):
    """One random mutation of a valid file; a byte-level one if data does not parse."""
    name = rng.choice(sorted(MUTATIONS))
    try:
        return MUTATIONS[name](data, rng)
    except (ValueError, KeyError, IndexError, TypeError, struct.error, AttributeError):
        return bit_flips(data, rng) if data else b"EDGERUN\0"
