"""The `edgerun` command: demo, compress, inspect, run, bench."""
import argparse
import os
import sys
import time

import numpy as np

import edgerun


def _layer_dict(text, cast):
    """'0.9' -> 0.9;  'fc1=0.5,fc2=0.9' -> {'fc1': 0.5, 'fc2': 0.9}."""
    if text is None:
        return None
    if "=" not in text:
        return cast(text)
    pairs = (item.split("=", 1) for item in text.split(","))
    return {name.strip(): cast(value) for name, value in pairs}


def _bits(text):
    return int(text)


def cmd_demo(args):
    from edgerun import demo

    demo.run(epochs=args.epochs, model=args.model, seed=args.seed)


def cmd_compress(args):
    graph = edgerun.import_onnx(args.input)
    calibration = None
    if args.calib:
        calibration = np.load(args.calib, allow_pickle=False).astype(np.float32)
    model = edgerun.compress(graph, prune=_layer_dict(args.prune, float), quantize=args.quantize,
                             share_bits=_layer_dict(args.share_bits, _bits), huffman=args.huffman,
                             calibration=calibration, prune_block=_layer_dict(args.prune_block, _bits))
    model.save(args.output)
    print(model.report())
    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes)")


def cmd_inspect(args):
    from edgerun import format as fmt

    info = fmt.inspect(args.file)  # structure checked like load; CRCs reported, not raised
    print(fmt.describe(info))
    if not info["crc_ok"]:
        return 1  # load would refuse this file: say so in the exit status, plan nothing
    with edgerun.load(args.file) as session:
        print("\nkernels:", ", ".join(f"{name}={kind}" for name, kind in session.layers))
    return 0


def cmd_run(args):
    session = edgerun.load(args.file, num_threads=args.threads)
    x = np.load(args.input, allow_pickle=False)
    if x.dtype != np.float32 and np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    y = session.run(x)
    if args.output:
        np.save(args.output, y)
        print(f"wrote {args.output}: {y.dtype} {list(y.shape)}")
    else:
        np.set_printoptions(precision=5, suppress=True)
        print(y)


def cmd_bench(args):
    session = edgerun.load(args.file, num_threads=args.threads)
    (spec,) = session.inputs
    shape = [args.batch if d is None else d for d in spec.shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(args.warmup):
        session.run(x)
    times = []
    deadline = time.perf_counter() + args.seconds
    while len(times) < args.min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        session.run(x)
        times.append(time.perf_counter() - start)
    t = np.array(times) * 1e6
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    print(f"{args.file}: batch {args.batch}, {args.threads} thread(s), {len(t)} runs")
    print(f"latency us: min {t.min():.1f}  p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  "
          f"max {t.max():.1f}")
    print(f"throughput: {args.batch * 1e6 / p50:.1f} samples/s at p50")
    print("kernels:", ", ".join(f"{name}={kind}" for name, kind in session.layers))


def parser():
    p = argparse.ArgumentParser(prog="edgerun", description=__doc__)
    p.add_argument("--version", action="version", version=f"edgerun {edgerun.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train, compress and run an MLP or a CNN on real handwritten digits")
    demo.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                      help="mlp: 64-300-100-10; cnn: three 3x3 convs, two max-pools, two fc")
    demo.add_argument("--epochs", type=int, default=None, help="default: 60 (mlp), 12 (cnn)")
    demo.add_argument("--seed", type=int, default=0, help="training seed")
    demo.set_defaults(func=cmd_demo)

    comp = sub.add_parser("compress", help="compress an ONNX model into a .edgerun file")
    comp.add_argument("input", help="model.onnx")
    comp.add_argument("-o", "--output", required=True, help="output .edgerun file")
    comp.add_argument("--prune", help="target sparsity, e.g. 0.9, or per layer: fc1=0.5,fc2=0.9")
    comp.add_argument("--prune-block", help="1 (unstructured) or 4 (1x4 blocks, stored as bcsr4), "
                                            "or per layer: fc1=4,fc2=1")
    comp.add_argument("--quantize", choices=["fp16", "int8", "int8-static"])
    comp.add_argument("--share-bits", help="weight-sharing bits 1..8, or per layer: fc1=4,fc2=5")
    comp.add_argument("--huffman", action="store_true", help="Huffman-code index streams")
    comp.add_argument("--calib", help="calibration inputs (.npy, float) for refitting and pruning")
    comp.set_defaults(func=cmd_compress)

    insp = sub.add_parser("inspect", help="per-layer table, size breakdown, CRC check")
    insp.add_argument("file")
    insp.set_defaults(func=cmd_inspect)

    run = sub.add_parser("run", help="run a model on an input .npy")
    run.add_argument("file")
    run.add_argument("input")
    run.add_argument("-o", "--output")
    run.add_argument("--threads", type=int, default=1)
    run.set_defaults(func=cmd_run)

    bench = sub.add_parser("bench", help="latency percentiles on random input")
    bench.add_argument("file")
    bench.add_argument("--batch", type=int, default=1)
    bench.add_argument("--threads", type=int, default=1)
    bench.add_argument("--seconds", type=float, default=2.0)
    bench.add_argument("--min-runs", type=int, default=20)
    bench.add_argument("--warmup", type=int, default=5)
    bench.set_defaults(func=cmd_bench)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        status = args.func(args)
    except edgerun.EdgerunError as error:
        print(f"edgerun: error: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"edgerun: error: {error}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
