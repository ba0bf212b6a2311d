"""End-to-end: batch-1 latency and file size of real models, edgerun against onnxruntime.

    python bench/models.py                  # print the table
    python bench/models.py --quick          # the small test sizes, for a smoke run
    python bench/models.py --interleaved bert   # 12 alternating rounds, the ratio's median
    python bench/models.py --layers         # the memory-bound layers alone: int8, sparse, codebook
    python bench/models.py --ops bert       # where the time goes, op by op, beside onnxruntime

The models are the PyTorch definitions the importer tests verify
(tests/torch_cnn.py, tests/torch_bert.py) at their "bench" sizes, exported with
torch's TorchScript exporter (opset 17).  For each one, in this process, one
thread, timed round-robin (five rounds through every column, so that the VM's
drift between minutes falls on all of them alike):

    ort fp32       onnxruntime on the exported model
    ort dyn-int8   onnxruntime.quantization.quantize_dynamic (int8 weights, activations
                   quantized per call), the usual way to shrink an ONNX model
    er fp32        edgerun on the imported graph
    er int8        compress(quantize="int8")
    er sparse      compress(prune=0.9, prune_block=4, quantize="int8")   (1x4 blocks)
    er codebook    compress(share_bits=4, quantize="int8")
    er deep        compress(prune=0.9, share_bits=4, quantize="int8", huffman=True)

The weights are the untrained seeded ones of the test zoo and the compressor
runs without calibration data: latency does not depend on either, and the
calibrated refits take minutes on these models.  The error columns are a
sanity check only; accuracy is measured in docs/ACCURACY.md and the tests.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import edgerun  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare import cpu_description, timeit, write_section  # noqa: E402

VARIANTS = {
    "int8": dict(quantize="int8"),
    "sparse": dict(prune=0.9, prune_block=4, quantize="int8"),
    "codebook": dict(share_bits=4, quantize="int8"),
    "deep": dict(prune=0.9, share_bits=4, quantize="int8", huffman=True),
}


def model_zoo(size):
    """{name: (factory, example)}: example is a tensor, or {input name: tensor}."""
    zoo = {}
    for module in ("torch_cnn", "torch_bert"):
        try:
            zoo.update(__import__(module).models(size))
        except ImportError as error:
            print(f"  ({module} not available: {error})", file=sys.stderr)
    return zoo


def export(factory, example, path):
    from torch_export import export as torch_export

    from torch_export import seeded

    module = seeded(factory)
    if isinstance(example, dict):
        example = {k: v[:1] for k, v in example.items()}     # batch 1
        names, values = tuple(example), tuple(example.values())
        model = torch_export(module, values, input_names=names)
        feeds = {k: v.numpy() for k, v in example.items()}
    else:
        model = torch_export(module, example)
        feeds = {"x": example.numpy()}
    import onnx

    onnx.save(model, path)
    return feeds


class Ort:
    def __init__(self):
        import onnxruntime as ort

        self.ort = ort
        self.options = ort.SessionOptions()
        self.options.intra_op_num_threads = 1
        self.options.inter_op_num_threads = 1

    def session(self, path):
        s = self.ort.InferenceSession(path, self.options, providers=["CPUExecutionProvider"])
        return lambda feeds: s.run(None, feeds)[0]

    def dynamic_int8(self, src, dst):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        return self.session(dst)


def relative_error(y, reference):
    return float(np.linalg.norm(y - reference) / max(np.linalg.norm(reference), 1e-30))


def measure(name, factory, example, tmp, ort, budget, rounds=5):
    """One model's row: every runtime and variant made first, then timed round-robin,
    `rounds` times each for budget / rounds seconds, so that the VM's drift (up to 1.7x
    between minutes) falls on all columns alike; each column is the median of its
    rounds' medians."""
    src = os.path.join(tmp, f"{name}.onnx")
    feeds = export(factory, example, src)
    row = {"model": name, "onnx_bytes": os.path.getsize(src)}
    ort_fp32 = ort.session(src)
    reference = ort_fp32(feeds)
    dst = os.path.join(tmp, f"{name}.int8.onnx")
    ort_int8 = ort.dynamic_int8(src, dst)
    row["ort_int8_bytes"] = os.path.getsize(dst)
    row["ort_int8_error"] = relative_error(ort_int8(feeds), reference)
    calls = {"ort_fp32": lambda: ort_fp32(feeds), "ort_int8": lambda: ort_int8(feeds)}

    graph = edgerun.import_onnx(src)
    row["params"] = sum(t.size for t in graph.tensors.values())

    def first_output(session):
        """A one-input model takes its array, a multi-input one the dict (-> dict out)."""
        if len(feeds) == 1:
            x = next(iter(feeds.values()))
            return lambda: session.run(x)
        first = graph.outputs[0].name
        return lambda: session.run(feeds)[first]

    sessions = [edgerun.Session(graph)]
    calls["er_fp32"] = first_output(sessions[0])
    row["er_fp32_error"] = relative_error(calls["er_fp32"](), reference)
    for variant, options in VARIANTS.items():
        path = os.path.join(tmp, f"{name}.{variant}.edgerun")
        try:
            edgerun.compress(graph, **options).save(path)
        except edgerun.EdgerunError as error:
            row[f"er_{variant}"] = None
            print(f"  {name} {variant}: {error}", file=sys.stderr)
            continue
        row[f"er_{variant}_bytes"] = os.path.getsize(path)
        sessions.append(edgerun.load(path))
        calls[f"er_{variant}"] = first_output(sessions[-1])
        row[f"er_{variant}_error"] = relative_error(calls[f"er_{variant}"](), reference)
        row[f"er_{variant}_kernels"] = sorted({kind for _, kind in sessions[-1].layers})
    medians = {key: [] for key in calls}
    try:
        for _ in range(rounds):
            for key, call in calls.items():
                medians[key].append(timeit(call, budget / rounds, min_runs=3))
    finally:
        for session in sessions:
            session.close()
    row.update({key: float(np.median(values)) for key, values in medians.items()})
    return row


def run(quick=False, out=print):
    zoo = model_zoo("test" if quick else "bench")
    ort = Ort()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (factory, example) in zoo.items():
            rows.append(measure(name, factory, example, tmp, ort, 0.2 if quick else 2.0))
            out(f"  measured {name}: " + ", ".join(
                f"{key} {value * 1e3:.2f} ms" for key, value in rows[-1].items()
                if key in ("ort_fp32", "ort_int8") or key.startswith("er_") and key.count("_") == 1
                and value is not None))
    return rows, ort.ort.__version__


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def kb(n):
    return "-" if n is None else f"{n / 1024:.0f}"


def table(rows, ort_version):
    model, flags = cpu_description()
    lines = [
        f"CPU: {model}; flags: {', '.join(flags) or 'n/a'}; edgerun backend "
        f"{edgerun.cpu_info()['backend']}.",
        "",
        f"End to end, batch 1, one thread; onnxruntime {ort_version}.  Milliseconds per call "
        "(median); \"vs ort dyn\" > 1 means edgerun is faster than onnxruntime's dynamic int8.",
        "",
        "| model | params | ort fp32 | ort dyn-int8 | er fp32 | er int8 | er sparse 90 | er codebook4 "
        "| er deep | int8 vs ort dyn | sparse vs ort dyn | codebook vs ort dyn |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.2f} M | {ms(r['ort_fp32'])} | {ms(r['ort_int8'])} "
            f"| {ms(r['er_fp32'])} | {ms(r.get('er_int8'))} | {ms(r.get('er_sparse'))} "
            f"| {ms(r.get('er_codebook'))} | {ms(r.get('er_deep'))} "
            f"| {ratio(r['ort_int8'], r.get('er_int8'))} | {ratio(r['ort_int8'], r.get('er_sparse'))} "
            f"| {ratio(r['ort_int8'], r.get('er_codebook'))} |")
    lines += [
        "",
        "File sizes (KiB) and relative L2 output error against onnxruntime fp32 on the same input:",
        "",
        "| model | onnx fp32 | ort dyn-int8 | er int8 | er sparse 90 | er codebook4 | er deep "
        "| err ort dyn-int8 | err er fp32 | err er int8 | err sparse | err codebook | err deep |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        def err(key):
            value = r.get(key)
            return "-" if value is None else f"{value:.1e}"
        lines.append(
            f"| {r['model']} | {kb(r['onnx_bytes'])} | {kb(r['ort_int8_bytes'])} "
            f"| {kb(r.get('er_int8_bytes'))} | {kb(r.get('er_sparse_bytes'))} "
            f"| {kb(r.get('er_codebook_bytes'))} | {kb(r.get('er_deep_bytes'))} "
            f"| {err('ort_int8_error')} | {err('er_fp32_error')} | {err('er_int8_error')} "
            f"| {err('er_sparse_error')} | {err('er_codebook_error')} | {err('er_deep_error')} |")
    lines += ["", "Kernels per variant: " + "; ".join(
        f"{r['model']} " + ", ".join(f"{v}: {'+'.join(r.get(f'er_{v}_kernels', []))}" for v in VARIANTS)
        for r in rows)]
    return "\n".join(lines)


# ---------------------------------------------------------------- memory-bound layers
# At batch 1 a classifier head after global pooling reads one row: each weight is
# used once per inference, so the layer's time is the weights' trip from wherever
# they are.  Those layers alone, in the three states a board sees them in.
LAYER_MIN_WEIGHTS = 1 << 18     # 256 Ki weights: int8 no longer fits half a 512 KiB L2


def layer_rows(budget=1.0):
    """One row per memory-bound layer of the bench CNNs: weight bytes and batch-1
    seconds of fp32 (BLAS), int8, 90 % 1x4-sparse and 4-bit codebook, each hot (called
    again and again), in the model (after a whole int8 run of its model, which
    pushes it out of L1/L2) and cold (cycling through copies of the layer, each its
    own file, that together hold twice the last-level cache: the weights come from
    DRAM, as on a board whose caches are smaller than the model, while the code and
    the interpreter stay warm)."""
    import itertools
    import shutil

    from compare import last_level_cache_bytes

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (factory, example) in model_zoo("bench").items():
            if name == "bert":      # its Linears read a row per token, not one
                continue
            src = os.path.join(tmp, f"{name}.onnx")
            feeds = export(factory, example, src)
            graph = edgerun.import_onnx(src)
            # every Linear of the CNNs follows global pooling: one row at batch 1
            layers = [(node, weight) for node, weight in graph.weights()
                      if weight.size >= LAYER_MIN_WEIGHTS]
            if not layers:
                continue
            model = edgerun.Session(edgerun.compress(graph, quantize="int8").graph)
            image = next(iter(feeds.values()))
            for node, weight in layers:
                out_features, in_features = weight.shape
                builder = edgerun.GraphBuilder("x", features=in_features)
                bias = graph.tensors[node.inputs[2]].to_dense() if len(node.inputs) > 2 else None
                builder.linear(weight.to_dense(), bias, name=node.name)
                layer = builder.build()
                x = np.random.default_rng(0).standard_normal((1, in_features)).astype(np.float32)
                row = {"model": name, "layer": node.name, "shape": (in_features, out_features)}
                for variant, options in [("fp32", {})] + [(v, VARIANTS[v]) for v in
                                                          ("int8", "sparse", "codebook")]:
                    path = os.path.join(tmp, f"layer.{variant}.edgerun")
                    edgerun.compress(layer, **options).save(path)
                    row[f"{variant}_bytes"] = os.path.getsize(path)
                    with edgerun.load(path) as session:
                        call = lambda: session.run(x)  # noqa: E731
                        row[f"{variant}_hot"] = timeit(call, budget / 3, min_runs=7)
                        row[f"{variant}_model"] = timeit(call, budget / 3, min_runs=7,
                                                         before=lambda: model.run(image))
                    copy_paths = [f"{path}.{c}" for c in
                                  range(2 * last_level_cache_bytes() // row[f"{variant}_bytes"] + 1)]
                    copies = []
                    for copy_path in copy_paths:
                        shutil.copyfile(path, copy_path)
                        copies.append(edgerun.load(copy_path))
                        copies[-1].run(x)   # page-in, bindings, workspace: not what is timed
                    cycle = itertools.cycle(copies)
                    row[f"{variant}_cold"] = timeit(lambda: next(cycle).run(x), budget / 3, min_runs=7)
                    for copy in copies:
                        copy.close()
                    del copies, cycle
                    for copy_path in copy_paths:
                        os.remove(copy_path)
                rows.append(row)
                print(f"  measured {name} {node.name}", flush=True)
            model.close()
    tiny = edgerun.GraphBuilder("x", features=8)
    tiny.linear(np.ones((8, 8), np.float32))
    with edgerun.Session(edgerun.compress(tiny.build(), quantize="int8").graph) as session:
        x = np.ones((1, 8), np.float32)
        overhead = timeit(lambda: session.run(x), 0.2, min_runs=7)
    return rows, overhead


def layer_table(rows, overhead):
    us = lambda seconds: f"{seconds * 1e6:.0f}"  # noqa: E731
    lines = ["Memory-bound layers: the batch-1 classifier Linears of the bench CNNs with at least "
             f"{LAYER_MIN_WEIGHTS // 1024} Ki weights (one row in, each weight read once per image), "
             "alone, one thread.  Microseconds per call (median): **hot** called again and again; "
             "**in model** right after a whole int8 run of its model; **cold** cycling through "
             "copies of the layer that together hold twice the last-level cache (weights from "
             "DRAM, code warm).  Every number includes Session.run's own overhead, "
             f"{overhead * 1e6:.0f} us here (an 8 x 8 int8 layer).  Weights: the layer's "
             ".edgerun file.", "",
             "| model | layer | in x out | state | fp32 | int8 | sparse 90 | codebook4 "
             "| sparse vs int8 | codebook vs int8 |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        shape = "x".join(map(str, row["shape"]))
        lines.append(f"| {row['model']} | {row['layer']} | {shape} | weights (KiB) | "
                     + " | ".join(kb(row[f"{v}_bytes"]) for v in ("fp32", "int8", "sparse", "codebook"))
                     + f" | {row['int8_bytes'] / row['sparse_bytes']:.1f}x smaller "
                       f"| {row['int8_bytes'] / row['codebook_bytes']:.1f}x smaller |")
        for state, label in (("hot", "hot"), ("model", "in model"), ("cold", "cold")):
            times = [row[f"{v}_{state}"] for v in ("fp32", "int8", "sparse", "codebook")]
            lines.append(f"| | | | {label} | " + " | ".join(us(t) for t in times)
                         + f" | {times[1] / times[2]:.2f}x | {times[1] / times[3]:.2f}x |")
    return "\n".join(lines)


def interleaved(name, rounds=12, seconds=0.5):
    """onnxruntime dynamic int8 against edgerun int8 on one model, alternating every
    `seconds` for `rounds` rounds in this process: the VM's speed drifts by up to 1.7x
    between minutes, so a ratio taken within each round is steadier than two tables'.
    Prints each round and the median of (ort ms / edgerun ms)."""
    factory, example = model_zoo("bench")[name]
    ort = Ort()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, f"{name}.onnx")
        feeds = export(factory, example, src)
        ort_int8 = ort.dynamic_int8(src, os.path.join(tmp, f"{name}.int8.onnx"))
        path = os.path.join(tmp, f"{name}.int8.edgerun")
        edgerun.compress(edgerun.import_onnx(src), quantize="int8").save(path)
        with edgerun.load(path) as session:
            argument = feeds if len(feeds) > 1 else next(iter(feeds.values()))
            ratios = []
            for r in range(rounds):
                a = timeit(lambda: ort_int8(feeds), seconds)
                b = timeit(lambda: session.run(argument), seconds)
                ratios.append(a / b)
                print(f"  round {r + 1}: ort dyn-int8 {a * 1e3:.2f} ms, edgerun int8 {b * 1e3:.2f} ms, "
                      f"ratio {a / b:.3f}", flush=True)
    ratios = sorted(ratios)
    print(f"{name}: ort dyn-int8 / edgerun int8, median of {rounds} rounds {np.median(ratios):.3f} "
          f"(range {ratios[0]:.3f} - {ratios[-1]:.3f})")


def ort_profile(path, feeds, runs):
    """onnxruntime's own per-node kernel times (its profiler), the least of `runs` runs
    per node: [(node name, op type, seconds)] in execution order."""
    import json

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(os.path.dirname(path), "ort_profile")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, feeds)
    with open(session.end_profiling()) as f:
        events = json.load(f)
    times, ops = {}, {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            name = event["name"][:-len("_kernel_time")]
            times.setdefault(name, []).append(event["dur"] * 1e-6)
            ops[name] = event["args"]["op_name"]
    return [(name, ops[name], min(seconds)) for name, seconds in times.items()]


def by_op(entries):
    """[(label, seconds)] -> [(label, count, total seconds)], largest first."""
    totals = {}
    for label, seconds in entries:
        count, total = totals.get(label, (0, 0.0))
        totals[label] = (count + 1, total + seconds)
    return sorted(((label, c, t) for label, (c, t) in totals.items()), key=lambda r: -r[2])


def ops(name, runs=60):
    """Per-op time of one model, edgerun int8 (Session.profile) beside onnxruntime
    dyn-int8 (its profiler): each step's or node's least time over `runs` runs, summed
    per op.  Sums of minima, not a latency: they show where each runtime's time goes
    (onnxruntime's include its profiler's cost per node, a microsecond or two)."""
    factory, example = model_zoo("bench")[name]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, f"{name}.onnx")
        feeds = export(factory, example, src)
        dst = os.path.join(tmp, f"{name}.int8.onnx")
        Ort().dynamic_int8(src, dst)
        path = os.path.join(tmp, f"{name}.int8.edgerun")
        edgerun.compress(edgerun.import_onnx(src), quantize="int8").save(path)
        with edgerun.load(path) as session:
            argument = feeds if len(feeds) > 1 else next(iter(feeds.values()))
            steps = session.profile(argument, runs)
        nodes = ort_profile(dst, feeds, runs)
    ours = by_op((f"{s['op']} ({s['kind']})" if s["kind"] else s["op"], s["seconds"]) for s in steps)
    theirs = by_op((op, seconds) for _, op, seconds in nodes)
    model, flags = cpu_description()
    lines = [f"{name}, one thread, least time per step or node over {runs} runs, summed per op "
             f"({model}, {' '.join(flags)}).", "",
             "| edgerun int8 op | steps | ms | onnxruntime dyn-int8 op | nodes | ms |",
             "|---|---:|---:|---|---:|---:|"]
    for i in range(max(len(ours), len(theirs))):
        left = "| {} | {} | {:.3f} ".format(*ours[i][:2], ours[i][2] * 1e3) if i < len(ours) else "| | | "
        right = "| {} | {} | {:.3f} |".format(*theirs[i][:2], theirs[i][2] * 1e3) if i < len(theirs) else "| | | |"
        lines.append(left + right)
    lines.append("| **sum** | {} | **{:.3f}** | **sum** | {} | **{:.3f}** |".format(
        len(steps), sum(r[2] for r in ours) * 1e3, len(nodes), sum(r[2] for r in theirs) * 1e3))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write", help="also put the tables into this Markdown file, "
                                        "under '## End to end'")
    parser.add_argument("--interleaved", metavar="MODEL",
                        help="only alternate onnxruntime dyn-int8 and edgerun int8 on MODEL")
    parser.add_argument("--ops", metavar="MODEL",
                        help="only where MODEL's time goes, op by op, edgerun int8 beside "
                             "onnxruntime dyn-int8 (with --write: under '## Op by op')")
    parser.add_argument("--layers", action="store_true",
                        help="only the memory-bound layers (with --write: under '## Memory-bound layers')")
    args = parser.parse_args()
    if args.interleaved:
        interleaved(args.interleaved)
        return
    if args.ops:
        text = ops(args.ops)
        print(text)
        if args.write:
            write_section(args.write, "## Op by op", text,
                          f"python bench/models.py --ops {args.ops} --write {args.write}")
        return
    if args.layers:
        text = layer_table(*layer_rows())
        print(text)
        if args.write:
            write_section(args.write, "## Memory-bound layers", text,
                          f"python bench/models.py --layers --write {args.write}")
        return
    rows, version = run(quick=args.quick)
    text = table(rows, version)
    print(text)
    if args.write:
        write_section(args.write, "## End to end", text, f"python bench/models.py --write {args.write}")


if __name__ == "__main__":
    main()
