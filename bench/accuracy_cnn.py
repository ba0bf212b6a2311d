"""Regenerate the tables of docs/ACCURACY.md (a few minutes on one core):

    OPENBLAS_NUM_THREADS=1 python bench/accuracy_cnn.py [--seeds 0 1 2]

For each training seed it runs `edgerun demo --model cnn` (demo.run: train the numpy
CNN, compress it each way with the training digits as calibration, load each .edgerun
file and score the 449 held-out digits), then prints markdown: the size/accuracy table
over the seeds, the per-layer encodings of the headline configuration, and the
ablation of conv calibration (compress.pipeline.CALIBRATE_CONVS = False)."""
import argparse

import numpy as np

from edgerun import demo
from edgerun.compress import pipeline


def _run(seed, configs):
    return demo.run(model="cnn", seed=seed, configs=configs, out=lambda *_: None)


def _span(values, fmt):
    values = list(values)
    return " / ".join(fmt.format(v) for v in values)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    by_seed = {seed: _run(seed, demo.CNN_CONFIGS) for seed in args.seeds}
    seeds = " / ".join(map(str, args.seeds))
    first = by_seed[args.seeds[0]]
    print(f"fp32 accuracy (seeds {seeds}): "
          + _span((rows[0]["fp32_accuracy"] * 100 for rows in by_seed.values()), "{:.2f}%"))
    print(f"fp32 bytes (4 per parameter): {first[0]['file_bytes'] * first[0]['ratio']:.0f}\n")
    print(f"| configuration | file bytes (seeds {seeds}) | smaller than fp32 | accuracy | vs fp32 (points) |")
    print("|---|---|---|---|---|")
    for i, (label, _) in enumerate(demo.CNN_CONFIGS):
        rows = [by_seed[s][i] for s in args.seeds]
        print(f"| {label} | {_span((r['file_bytes'] for r in rows), '{}')} | "
              f"{_span((r['ratio'] for r in rows), '{:.1f}x')} | "
              f"{_span((r['accuracy'] * 100 for r in rows), '{:.2f}%')} | "
              f"{_span((r['delta'] * 100 for r in rows), '{:+.2f}')} |")
    print()
    for seed in args.seeds:
        report = by_seed[seed][-1]["report"]
        print(f"Per layer, {demo.CNN_HEADLINE}, seed {seed} (model output error "
              f"{report.error:.4f} on the calibration digits):\n")
        print("| layer | op | shape | encoding | sparsity | bits/weight | bytes fp32 | bytes stored | output error |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in report.rows:
            shape = "x".join(map(str, r["shape"]))
            if tuple(r["shape"]) != tuple(r["original_shape"]):
                shape += " (was " + "x".join(map(str, r["original_shape"])) + ")"
            print(f"| {r['layer']} | {r['kind']} | {shape} | {r['encoding']} | {r['sparsity']:.3f} | "
                  f"{r['bits_per_weight']:.2f} | {r['bytes_before']} | {r['bytes_after']} | "
                  f"{r['error']:.4f} |")
        print()
    ablation = [(demo.CNN_HEADLINE, dict(demo.CNN_CONFIGS)[demo.CNN_HEADLINE]),
                ("same, per-layer pruning", {"prune": 0.85, "share_bits": 4, "quantize": "int8",
                                             "huffman": True}),
                ("pruned 50%, int8", {"prune": 0.5, "quantize": "int8"})]
    results = {}
    for flag in (True, False):
        pipeline.CALIBRATE_CONVS = flag
        results[flag] = {s: _run(s, ablation) for s in args.seeds}
    pipeline.CALIBRATE_CONVS = True
    print(f"| configuration | convs calibrated: vs fp32 (points) | model error | "
          f"convs uncalibrated: vs fp32 (points) | model error |")
    print("|---|---|---|---|---|")
    for i, (label, _) in enumerate(ablation):
        cells = []
        for flag in (True, False):
            rows = [results[flag][s][i] for s in args.seeds]
            cells += [_span((r["delta"] * 100 for r in rows), "{:+.2f}"),
                      _span((r["report"].error for r in rows), "{:.3f}")]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
