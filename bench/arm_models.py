"""Whole models on ARM without ARM hardware: instructions per batch-1 run under qemu-user,
edgerun against onnxruntime, counted by the TCG plugin of tests/c/cost.

    bash .ci/arm64-python.sh                  # once: the arm64 Python, numpy, edgerun build
    python bench/arm_models.py                # every model, Cortex-A72 and Cortex-A76
    python bench/arm_models.py --models bert --cpus cortex-a76 --write docs/ARM.md

What runs: Debian bookworm's arm64 python3.11 and numpy 1.24 (the rootfs that
.ci/arm64-python.sh unpacks, with its cross-built edgerun), PyPI's aarch64 wheel of
onnxruntime, and Debian's arm64 OpenBLAS for numpy's float matmuls (what
`apt install libopenblas0` gives a board; Debian's default reference BLAS would
dominate the float attention matmuls).  The models are bench/models.py's, exported
and compressed on the host: onnxruntime fp32, onnxruntime quantize_dynamic int8,
edgerun fp32 and edgerun int8.  Each count is the instructions of (load, 1 + R
runs) minus those of (load, 1 run), over R, for the whole emulated process, one
thread: interpreter, glue and kernels.

qemu -cpu cortex-a72 is a Raspberry Pi 4 (NEON), cortex-a76 a Raspberry Pi 5
(NEON + SDOT); each runtime picks its kernels from the emulated CPU's features.
onnxruntime reads /proc/cpuinfo (its cpuinfo library), which under qemu-user is
the x86 host's and crashes it, so each run sees an ARM cpuinfo bind-mounted in a
private mount namespace (`unshare -m`: run as root).

Instructions are not time: an out-of-order core overlaps them, memory stalls are
not in them.  But both runtimes run the same ISA on the same emulated CPU, their
kernels are SIMD loops of the same instruction kinds, and the counts are exact and
repeatable -- the ARM counterpart of bench/models.py's milliseconds.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ROOTFS = os.environ.get("EDGERUN_ARM64_ROOTFS", "/tmp/edgerun-arm64-rootfs")
SRC = os.environ.get("EDGERUN_ARM64_SRC", "/tmp/edgerun-arm64-src")
CACHE = os.environ.get("EDGERUN_ARM64_BENCH", "/tmp/edgerun-arm64-bench")
OPENBLAS = "/usr/lib/aarch64-linux-gnu/openblas-pthread"     # a path inside the rootfs
CPUS = ("cortex-a72", "cortex-a76")
# /proc/cpuinfo as the board's kernel writes it (one core is enough for cpuinfo).
CPUINFO = {
    "cortex-a72": ("fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid", "0x0", "0xd08"),
    "cortex-a76": ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
                   "asimdrdm lrcpc dcpop asimddp", "0x4", "0xd0b"),
}
RUNTIMES = ("ort fp32", "ort int8", "er fp32", "er int8")


def guest(runtime, path, feeds_path, reps):
    """Inside qemu: load, run once, then reps more times."""
    import numpy as np

    feeds = dict(np.load(feeds_path))
    if runtime == "ort":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        run = lambda: session.run(None, feeds)  # noqa: E731
    else:
        import edgerun

        if edgerun.cpu_info()["backend"] != "c":     # the numpy fallback would be counted
            raise SystemExit(f"edgerun's C extension did not load: {edgerun.cpu_info()['reason']}")
        session = edgerun.load(path)
        argument = feeds if len(feeds) > 1 else next(iter(feeds.values()))
        run = lambda: session.run(argument)  # noqa: E731
    for _ in range(1 + reps):
        run()


def prepare_tools():
    """The plugin, onnxruntime's aarch64 wheel and OpenBLAS in CACHE; returns the plugin."""
    if not os.path.exists(os.path.join(SRC, "edgerun")) or not os.path.isdir(ROOTFS):
        sys.exit(f"no arm64 rootfs at {ROOTFS} or build at {SRC}: run bash .ci/arm64-python.sh first")
    os.makedirs(CACHE, exist_ok=True)
    plugin = os.path.join(CACHE, "insn_plugin.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-o", plugin,
                    os.path.join(ROOT, "tests", "c", "cost", "insn_plugin.c")], check=True)
    site = os.path.join(CACHE, "site")
    if not os.path.exists(os.path.join(site, "onnxruntime")):
        wheels = os.path.join(CACHE, "wheels")
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
                        "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux2014_aarch64",
                        "--python-version", "3.11", "--no-deps", "-d", wheels, "onnxruntime",
                        "protobuf", "flatbuffers", "packaging"], check=True)
        for wheel in glob.glob(os.path.join(wheels, "*.whl")):
            subprocess.run([sys.executable, "-m", "zipfile", "-e", wheel, site], check=True)
    if not os.path.exists(ROOTFS + OPENBLAS):
        debs = os.path.join(CACHE, "debs")
        os.makedirs(debs, exist_ok=True)
        subprocess.run(["apt-get", "download", "libopenblas0-pthread:arm64"], cwd=debs, check=True)
        subprocess.run(["dpkg", "-x", glob.glob(os.path.join(debs, "*.deb"))[0], ROOTFS], check=True)
    for cpu, (features, variant, part) in CPUINFO.items():
        with open(os.path.join(CACHE, f"cpuinfo-{cpu}"), "w") as f:
            f.write(f"processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: {features}\n"
                    f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {variant}\n"
                    f"CPU part\t: {part}\nCPU revision\t: 1\n\n")
    return plugin


def count(plugin, cpu, runtime, path, feeds, reps):
    """Instructions of the emulated process: load and 1 + reps runs."""
    env = {"PATH": os.environ["PATH"], "PYTHONHOME": "/usr", "PYTHONNOUSERSITE": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
           # string hashes, and with them dict and set layouts, change with the seed:
           # without a fixed one edgerun's count moved by up to 0.2M between processes
           "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1",
           "LD_LIBRARY_PATH": OPENBLAS,
           "PYTHONPATH": f"{CACHE}/site:{SRC}:{HERE}"}
    command = (f"mount --bind {CACHE}/cpuinfo-{cpu} /proc/cpuinfo && exec qemu-aarch64 -cpu {cpu} "
               f"-L {ROOTFS} -plugin {plugin} {ROOTFS}/usr/bin/python3.11 -c "
               f"'import arm_models; arm_models.guest(\"{runtime}\", \"{path}\", \"{feeds}\", {reps})'")
    # cwd: not the checkout, whose x86 edgerun would shadow the arm64 build
    result = subprocess.run(["unshare", "-m", "sh", "-c", command], env=env, capture_output=True,
                            text=True, cwd=CACHE)
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgerun-insns: ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{runtime} {os.path.basename(path)} on {cpu} failed:\n{result.stderr[-2000:]}")
    return int(lines[-1].split()[1])


def per_run(plugin, cpu, runtime, path, feeds, reps, processes=1):
    """Instructions per run: (1 + reps runs) minus (1 run), each the least of
    `processes` processes.  onnxruntime now and then does some tens of millions of
    instructions of extra work in one process and not the next (a 1-run count of
    KWS 1-D: 1539M, then 1569M), which divided by reps moved its per-run figure by
    several millions; extra work only adds, so the least of a few is the steady one."""
    def least(r):
        return min(count(plugin, cpu, runtime, path, feeds, r) for _ in range(processes))

    return (least(reps) - least(0)) / reps


def export_models(names, workdir):
    """{name: {runtime label: model path, "feeds": npz path}}, made on the host."""
    import numpy as np

    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import edgerun
    from models import export, model_zoo
    from onnxruntime.quantization import QuantType, quantize_dynamic

    files = {}
    for name, (factory, example) in model_zoo("bench").items():
        if names and name not in names:
            continue
        src = os.path.join(workdir, f"{name}.onnx")
        feeds = export(factory, example, src)
        np.savez(os.path.join(workdir, f"{name}.npz"), **feeds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(src, os.path.join(workdir, f"{name}.int8.onnx"), weight_type=QuantType.QInt8)
        graph = edgerun.import_onnx(src)
        edgerun.compress(graph).save(os.path.join(workdir, f"{name}.fp32.edgerun"))
        edgerun.compress(graph, quantize="int8").save(os.path.join(workdir, f"{name}.int8.edgerun"))
        files[name] = {"ort fp32": src, "ort int8": os.path.join(workdir, f"{name}.int8.onnx"),
                       "er fp32": os.path.join(workdir, f"{name}.fp32.edgerun"),
                       "er int8": os.path.join(workdir, f"{name}.int8.edgerun"),
                       "feeds": os.path.join(workdir, f"{name}.npz")}
    return files


def table(results):
    lines = ["Instructions per batch-1 run (millions), the whole process under qemu-aarch64, "
             "one thread; \"int8 vs ort\" > 1 means edgerun int8 executes fewer instructions "
             "than onnxruntime's dynamic int8.", "",
             "| model | cpu | ort fp32 | ort dyn-int8 | er fp32 | er int8 | int8 vs ort dyn-int8 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (name, cpu), row in results.items():
        cells = " | ".join(f"{row[r] / 1e6:.1f}" for r in RUNTIMES)
        lines.append(f"| {name} | {cpu} | {cells} | {row['ort int8'] / row['er int8']:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[], help="default: every bench model")
    parser.add_argument("--cpus", nargs="*", default=list(CPUS), choices=CPUS)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--ort-processes", type=int, default=3,
                        help="onnxruntime counts: the least of this many processes (edgerun's "
                             "repeat exactly, one is enough)")
    parser.add_argument("--write", help="also put the table into this Markdown file, under "
                                        "'## Whole models against onnxruntime'")
    args = parser.parse_args()
    plugin = prepare_tools()
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name, paths in export_models(args.models, workdir).items():
            for cpu in args.cpus:
                row = {runtime: per_run(plugin, cpu, runtime.split()[0], paths[runtime],
                                        paths["feeds"], args.reps,
                                        args.ort_processes if runtime.startswith("ort") else 1)
                       for runtime in RUNTIMES}
                results[name, cpu] = row
                print(f"  {name} on {cpu}: " + ", ".join(f"{r} {v / 1e6:.1f}M" for r, v in row.items()),
                      flush=True)
    text = table(results)
    print(text)
    if args.write:
        from compare import write_section

        write_section(args.write, "## Whole models against onnxruntime", text,
                      f"python bench/arm_models.py --write {args.write}")


if __name__ == "__main__":
    main()
