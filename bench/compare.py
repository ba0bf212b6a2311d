"""Side-by-side kernel timings against numpy, scipy.sparse and onnxruntime, one run, one thread.

    python bench/compare.py                 # print the table
    python bench/compare.py --write docs/PERFORMANCE.md
    python bench/compare.py --quick         # fewer shapes, for a smoke run
    python bench/compare.py --models        # also the end-to-end section (bench/models.py)

Every row is measured in this process, one after the other, single-threaded
(BLAS and onnxruntime pinned to one thread), so the ratios are comparable even
when absolute times drift.  A "cold" row cycles through enough copies of the
weights to exceed the last-level cache, so each call streams them from DRAM.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import edgerun  # noqa: E402
from edgerun import _backend, reference  # noqa: E402
from edgerun.packing import pack_nibble32  # noqa: E402

K = _backend.kernels
SHAPES = [(1024, 1024), (4096, 1024), (4096, 4096)]  # (K, N)
BATCHES = [1, 8, 64]


def timeit(function, budget=0.25, min_runs=5, before=None):
    """Median seconds per call over at least min_runs calls and `budget` seconds;
    before(), when given, runs ahead of each call, untimed."""
    function()
    times = []
    end = time.perf_counter() + budget
    while len(times) < min_runs or time.perf_counter() < end:
        if before is not None:
            before()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def last_level_cache_bytes():
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = os.listdir(base)
    except OSError:
        entries = []
    for entry in entries:       # index0, index1, ...; "uevent" and others have no size
        try:
            with open(os.path.join(base, entry, "size")) as f:
                text = f.read().strip()
        except OSError:
            continue
        scale = {"K": 1024, "M": 1024 ** 2}.get(text[-1], 1)
        best = max(best, int(text.rstrip("KM")) * scale)
    return best or 32 * 1024 ** 2


def cpu_description():
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")) and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                if line.startswith(("flags", "Features")) and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    interesting = [f for f in flags if f in {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni",
                                             "asimd", "asimddp", "i8mm", "neon", "sve"}]
    return model, interesting


class OnnxRuntime:
    """One-node onnxruntime models: MatMulInteger, and MatMul quantized dynamically."""

    def __init__(self, tmpdir):
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        self.onnx, self.ort, self.helper, self.numpy_helper = onnx, ort, helper, numpy_helper
        self.TensorProto, self.tmpdir = TensorProto, tmpdir
        self.options = ort.SessionOptions()
        self.options.intra_op_num_threads = 1
        self.options.inter_op_num_threads = 1
        self.version = ort.__version__

    def _session(self, model):
        return self.ort.InferenceSession(model.SerializeToString(), self.options,
                                         providers=["CPUExecutionProvider"])

    def matmul_integer(self, w_t_int8):
        """x int8 [M, K] @ w int8 [K, N] -> int32, weights as an initializer."""
        h, T = self.helper, self.TensorProto
        k, n = w_t_int8.shape
        graph = h.make_graph(
            [h.make_node("MatMulInteger", ["x", "w"], ["y"])], "mmi",
            [h.make_tensor_value_info("x", T.INT8, ["M", k])],
            [h.make_tensor_value_info("y", T.INT32, ["M", n])],
            [self.numpy_helper.from_array(w_t_int8, "w")])
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
        session = self._session(model)
        return lambda x: session.run(None, {"x": x})[0]

    def dynamic_int8(self, w_t_f32):
        """The fp32 MatMul model after onnxruntime.quantization.quantize_dynamic."""
        from onnxruntime.quantization import QuantType, quantize_dynamic

        h, T = self.helper, self.TensorProto
        k, n = w_t_f32.shape
        graph = h.make_graph(
            [h.make_node("MatMul", ["x", "w"], ["y"])], "mm",
            [h.make_tensor_value_info("x", T.FLOAT, ["M", k])],
            [h.make_tensor_value_info("y", T.FLOAT, ["M", n])],
            [self.numpy_helper.from_array(w_t_f32, "w")])
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
        src = os.path.join(self.tmpdir, f"mm_{k}_{n}.onnx")
        dst = os.path.join(self.tmpdir, f"mm_{k}_{n}.int8.onnx")
        self.onnx.save(model, src)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        session = self.ort.InferenceSession(dst, self.options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"x": x})[0]


def int8_linear(x, w_s8, w_scale, w_sums):
    """What a Session does per int8 layer: quantize the activations asymmetric
    (quantize_rows_u7), then gemm_s8 with the zero points and the weights' row sums."""
    xq, sx, zero = K.quantize_rows_u7(x)
    return K.gemm_s8(xq, w_s8, sx, w_scale, x_zero=zero, w_sums=w_sums)


def prune_rows(w, sparsity, rng):
    """Keep the largest |w| per row: CSR arrays (indptr u32, indices u16/u32, values)."""
    n, k = w.shape
    keep = max(1, int(round(k * (1 - sparsity))))
    cols = np.sort(np.argsort(-np.abs(w), axis=1)[:, :keep], axis=1)
    values = np.take_along_axis(w, cols, axis=1)
    indptr = (np.arange(n + 1) * keep).astype(np.uint32)
    indices = cols.reshape(-1).astype(np.uint16 if k <= 65536 else np.uint32)
    return indptr, indices, values.reshape(-1)


def random_blocks(n, k, sparsity, rng):
    """An aligned 1x4 block matrix with (1 - sparsity) of the weights kept, the
    blocks at random aligned positions per row: bcsr4 arrays (indptr u32, u16/u32
    block columns, int8 values 4 per block)."""
    groups = k // 4
    keep = max(1, int(round(groups * (1 - sparsity))))
    starts = np.sort(np.stack([rng.choice(groups, keep, replace=False) for _ in range(n)]), axis=1)
    indptr = (np.arange(n + 1) * keep).astype(np.uint32)
    indices = (4 * starts).reshape(-1).astype(np.uint16 if k <= 65536 else np.uint32)
    values = rng.integers(-127, 128, 4 * n * keep).astype(np.int8)
    return indptr, indices, values


def run(quick=False, out=print):
    rng = np.random.default_rng(0)
    shapes = SHAPES[:2] if quick else SHAPES
    batches = [1, 64] if quick else BATCHES
    budget = 0.1 if quick else 0.25
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ort = OnnxRuntime(tmp)
        except ImportError:
            ort = None
        for k, n in shapes:
            w = (rng.standard_normal((n, k)) * 0.05).astype(np.float32)
            w_t = np.ascontiguousarray(w.T)
            w_s8 = rng.integers(-127, 128, (n, k)).astype(np.int8)
            w_scale = np.full(n, 0.01, np.float32)
            w_sums = w_s8.sum(axis=1, dtype=np.int32)
            w_t_s8 = np.ascontiguousarray(w_s8.T)
            ort_mmi = ort.matmul_integer(w_t_s8) if ort else None
            ort_dyn = ort.dynamic_int8(w_t) if ort else None
            codes = rng.integers(0, 16, (n, k)).astype(np.uint8)
            nibbles = pack_nibble32(codes)
            table = np.linspace(-127, 127, 16).round().astype(np.int8)
            csr = prune_rows(w, 0.9, rng)
            csr_s8 = (csr[0], csr[1], np.clip(np.rint(csr[2] / 0.002), -127, 127).astype(np.int8))
            bcsr4_s8 = random_blocks(n, k, 0.9, rng)
            try:
                import scipy.sparse as sp

                w_sp = sp.csr_matrix((csr[2], csr[1].astype(np.int32), csr[0].astype(np.int64)),
                                     shape=(n, k))
            except ImportError:
                w_sp = None
            for m in batches:
                x = rng.standard_normal((m, k)).astype(np.float32)
                xq, sx = K.quantize_rows_s8(x)            # what the sparse kernels take
                xu, su, zero = K.quantize_rows_u7(x)      # what gemm_s8 / codebook_s8 take
                codebook_sums = table.astype(np.int32)[codes].sum(axis=1, dtype=np.int32)
                row = {"shape": f"{m}x{k}x{n}", "m": m, "k": k, "n": n}
                row["numpy_fp32"] = timeit(lambda: x @ w_t, budget)
                row["er_int8"] = timeit(lambda: int8_linear(x, w_s8, w_scale, w_sums), budget)
                row["er_gemm_s8"] = timeit(lambda: K.gemm_s8(xu, w_s8, su, w_scale, x_zero=zero,
                                                             w_sums=w_sums), budget)
                row["er_codebook4"] = timeit(
                    lambda: K.codebook_s8(nibbles, table, xu, su, w_scale, x_zero=zero,
                                          w_sums=codebook_sums), budget)
                row["er_csr90_s8"] = timeit(
                    lambda: K.spmm_csr_s8(*csr_s8, xq, sx, w_scale), budget)
                row["er_csr90_f32"] = timeit(lambda: K.spmm_csr_f32(*csr, x), budget)
                row["er_bcsr4_90_s8"] = timeit(
                    lambda: K.spmm_bcsr4_s8(*bcsr4_s8, xq, sx, w_scale), budget)
                if w_sp is not None:
                    x_t = np.ascontiguousarray(x.T)
                    row["scipy_csr90"] = timeit(lambda: w_sp @ x_t, budget)
                if ort:
                    row["ort_matmulinteger"] = timeit(lambda: ort_mmi(xq), budget)
                    row["ort_dynamic_int8"] = timeit(lambda: ort_dyn(x), budget)
                rows.append(row)
                out(f"  measured {row['shape']}")
        cold = cold_rows(rng, budget) if not quick else []
    return rows, cold, (ort.version if ort else None)


def cold_rows(rng, budget):
    """M = 1, 4096 x 4096, cycling weight copies whose total exceeds twice the LLC."""
    k = n = 4096
    copies = max(2, int(2 * last_level_cache_bytes() // (k * n)) + 1)
    w_s8 = [rng.integers(-127, 128, (n, k)).astype(np.int8) for _ in range(copies)]
    nib = [pack_nibble32(rng.integers(0, 16, (n, k)).astype(np.uint8)) for _ in range(copies)]
    w_f32 = [np.ascontiguousarray(w.T.astype(np.float32) * 0.01) for w in w_s8[:copies]]
    table = np.linspace(-127, 127, 16).round().astype(np.int8)
    scale = np.full(n, 0.01, np.float32)
    x = rng.standard_normal((1, k)).astype(np.float32)
    xq, sx = K.quantize_rows_s8(x)
    state = {"i": 0}

    def cycling(function, pool):
        def call():
            state["i"] = (state["i"] + 1) % len(pool)
            return function(pool[state["i"]])
        return call

    return {
        "copies": copies,
        "numpy_fp32": timeit(cycling(lambda w: x @ w, w_f32), budget),
        "er_gemm_s8": timeit(cycling(lambda w: K.gemm_s8(xq, w, sx, scale), w_s8), budget),
        "er_codebook4": timeit(cycling(lambda b: K.codebook_s8(b, table, xq, sx, scale), nib),
                               budget),
    }


def us(seconds):
    return f"{seconds * 1e6:9.1f}"


def table(rows, cold, ort_version):
    model, flags = cpu_description()
    lines = [
        f"CPU: {model}; flags: {', '.join(flags) or 'n/a'}; "
        f"{os.cpu_count()} logical CPUs, measured with 1 thread",
        f"edgerun {edgerun.__version__} backend {_backend.name}, kernels: "
        + ", ".join(f"{op}={v}" for op, v in sorted(edgerun.cpu_info()["selected"].items())),
        f"numpy {np.__version__}, onnxruntime {ort_version or 'not installed'}",
        "",
        "Times in microseconds per call (median). int8 = quantize activations + gemm_s8;",
        "ratios > 1 mean edgerun is faster.",
        "",
        "| M x K x N | numpy fp32 | er int8 | er gemm_s8 | ort MatMulInteger | ort dyn-int8 "
        "| int8 vs numpy | gemm_s8 vs ort MMI | int8 vs ort dyn |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mmi, dyn = r.get("ort_matmulinteger"), r.get("ort_dynamic_int8")
        lines.append(
            f"| {r['shape']} | {us(r['numpy_fp32'])} | {us(r['er_int8'])} | {us(r['er_gemm_s8'])} "
            f"| {us(mmi) if mmi else '-'} | {us(dyn) if dyn else '-'} "
            f"| {r['numpy_fp32'] / r['er_int8']:.2f}x "
            f"| {mmi / r['er_gemm_s8']:.2f}x | {dyn / r['er_int8']:.2f}x |" if mmi else
            f"| {r['shape']} | {us(r['numpy_fp32'])} | {us(r['er_int8'])} | {us(r['er_gemm_s8'])} "
            f"| - | - | {r['numpy_fp32'] / r['er_int8']:.2f}x | - | - |")
    lines += [
        "",
        "Weight sharing (4-bit codebook_s8), 90 % sparse CSR and 90 % sparse 1x4 blocks "
        "(bcsr4, random aligned blocks, u16 indices) at the same shapes:",
        "",
        "| M x K x N | codebook4 s8 | gemm_s8 | codebook4 vs gemm_s8 | csr90 s8 | csr90 f32 "
        "| scipy csr90 f32 | csr90 s8 vs ort dyn-int8 | csr90 s8 vs scipy | csr90 f32 vs scipy "
        "| bcsr4 90 s8 | bcsr4 90 s8 vs ort dyn-int8 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        sp, dyn = r.get("scipy_csr90"), r.get("ort_dynamic_int8")
        lines.append(
            f"| {r['shape']} | {us(r['er_codebook4'])} | {us(r['er_gemm_s8'])} "
            f"| {r['er_gemm_s8'] / r['er_codebook4']:.2f}x | {us(r['er_csr90_s8'])} "
            f"| {us(r['er_csr90_f32'])} | {us(sp) if sp else '-'} "
            f"| {(dyn / r['er_csr90_s8']) if dyn else float('nan'):.2f}x "
            f"| {(sp / r['er_csr90_s8']) if sp else float('nan'):.2f}x "
            f"| {(sp / r['er_csr90_f32']) if sp else float('nan'):.2f}x "
            f"| {us(r['er_bcsr4_90_s8'])} "
            f"| {(dyn / r['er_bcsr4_90_s8']) if dyn else float('nan'):.2f}x |")
    if cold:
        lines += [
            "",
            f"Cold cache, M = 1, 4096 x 4096, cycling {cold['copies']} weight copies "
            f"(> 2x the {last_level_cache_bytes() // 2 ** 20} MiB last-level cache):",
            "",
            "| numpy fp32 | gemm_s8 | codebook4 s8 | gemm_s8 vs numpy | codebook4 vs gemm_s8 |",
            "|---:|---:|---:|---:|---:|",
            f"| {us(cold['numpy_fp32'])} | {us(cold['er_gemm_s8'])} | {us(cold['er_codebook4'])} "
            f"| {cold['numpy_fp32'] / cold['er_gemm_s8']:.2f}x "
            f"| {cold['er_gemm_s8'] / cold['er_codebook4']:.2f}x |",
        ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write", help="also write the table into this Markdown file")
    parser.add_argument("--models", action="store_true",
                        help="also time whole models against onnxruntime (bench/models.py)")
    args = parser.parse_args()
    rows, cold, ort_version = run(quick=args.quick)
    text = table(rows, cold, ort_version)
    print(text)
    if args.write:
        write_section(args.write, "## Tables", text, f"python bench/compare.py --write {args.write}")
    if args.models:
        import models

        model_rows, version = models.run(quick=args.quick)
        model_text = models.table(model_rows, version)
        print("\n" + model_text)
        if args.write:
            write_section(args.write, "## End to end", model_text,
                          f"python bench/compare.py --models --write {args.write}")


def write_section(path, heading, text, command):
    """Put text under `heading` in the Markdown file at path, replacing what was under
    it up to the next "## " heading (the analysis in other sections is kept); append
    the section when it is new.  `command` is what regenerates it."""
    stamp = f"Written by `{command}` on {time.strftime('%Y-%m-%d')}."
    section = f"{heading}\n\n{stamp}\n\n{text}\n".split("\n")
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        lines = ["# Performance"]
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section
    else:
        lines += [""] + section
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
