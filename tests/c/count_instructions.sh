#!/usr/bin/env bash
# Instructions per kernel call, every variant, on aarch64, armv7 and x86-64:
# the cost model that makes a regression in a SIMD path visible without the
# hardware (qemu gives no timings, but it executes every instruction).
#
# How: tests/c/cost/insn_plugin.c is a qemu TCG plugin that counts executed
# guest instructions; tests/c/cost/driver.c calls one variant R times on a
# fixed random problem.  Per call = (count with 1 + R calls - count with 1
# call) / R, so start-up, setup and the first call's cold paths cancel.  The
# counts are exact and deterministic for a given compiler and flags (both runs
# get argv of the same length and 64-byte aligned buffers, so nothing shifts).
#
#   tests/c/count_instructions.sh                 # all targets, one row per variant
#   WIDE=1 tests/c/count_instructions.sh          # one row per kernel and shape
#   TARGETS="aarch64" tests/c/count_instructions.sh
#
# Kernels are built like setup.py builds them (-O3 -ffp-contract=off
# -fno-strict-aliasing; armv7 adds -mfpu=neon-vfpv4).  Each target runs under
# the qemu CPU model that has every ISA it has variants for: aarch64 -cpu max
# (NEON, dotprod, i8mm), armv7 qemu-arm's default CPU (NEON), x86-64 -cpu max
# (AVX2 + FMA, emulated by TCG since QEMU 7.2).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=../..
OUT=build/cost
REPS=${REPS:-10}
TARGETS=${TARGETS:-"aarch64 armv7 x86_64"}
# EXTRA_CFLAGS: e.g. -falign-functions=64, to compare two builds without
# the few-percent shifts that code placement alone causes (seen on x86 for
# byte-identical kernel code).
CFLAGS_COMMON="-std=c11 -O3 -ffp-contract=off -fno-strict-aliasing -I$ROOT/csrc ${EXTRA_CFLAGS:-}"
mkdir -p "$OUT"

# kernel  m  n  k   (quantize_rows_s8 / _u7: m rows of k, n unused; dwconv2d_*: m x m
# pixels, n channels, a k x k kernel, and im2col_f32 their rows; layer_norm_f32: m
# rows of n, k = 1 adds a residual; gelu_f32: m rows of k, n = 1 the tanh form;
# softmax_f32: m rows of k).  An odd n gives spmm uint32 indices.
# SHAPES="op m n k" (lines) measures only those.
SHAPES=${SHAPES:-"gemm_s8 1 256 256
gemm_s8 16 256 256
gemm_s8 16 256 1024
gemm_s8 1024 96 32
gemm_s8 128 256 256
codebook_s8 1 256 256
codebook_s8 16 256 256
codebook_f32 1 256 256
quantize_rows_s8 16 0 256
quantize_rows_u7 16 0 256
layer_norm_f32 16 256 0
layer_norm_f32 16 256 1
layer_norm_f32 16 768 1
spmm_csr_s8 1 256 256
spmm_csr_s8 16 256 256
spmm_csr_f32 1 256 256
spmm_csr_f32 16 256 256
spmm_csr_s8 13 255 256
spmm_csr_f32 13 255 256
spmm_bcsr4_s8 1 256 256
spmm_bcsr4_s8 16 256 256
spmm_bcsr4_f32 1 256 256
spmm_bcsr4_f32 16 256 256
spmm_bcsr4_s8 7 255 256
spmm_bcsr4_f32 7 255 256
dwconv2d_f32 16 32 3
dwconv2d_f32 15 20 3
dwconv2d_s8 16 32 3
dwconv2d_s8 15 20 3
im2col_f32 16 16 3
gelu_f32 16 0 1024
gelu_f32 16 1 1024
softmax_f32 16 0 128
softmax_f32 4 0 1000"}

cc -O2 -shared -fPIC -fvisibility=hidden -o "$OUT/insn_plugin.so" cost/insn_plugin.c
PLUGIN=$(realpath "$OUT/insn_plugin.so")

# count BINARY-AND-QEMU... ARGS: executed instructions of one run.
count() {
    "$@" 2>&1 >/dev/null | sed -n 's/^edgerun-insns: //p'
}

rows() {
for target in $TARGETS; do
    case $target in
    aarch64) cc=aarch64-linux-gnu-gcc; flags=""
             qemu=(qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu) ;;
    armv7)   cc=arm-linux-gnueabihf-gcc; flags="-mfpu=neon-vfpv4"
             qemu=(qemu-arm -L /usr/arm-linux-gnueabihf) ;;
    x86_64)  cc=cc; flags=""
             qemu=(qemu-x86_64 -cpu max) ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
    esac
    bin="$OUT/driver-$target"
    # shellcheck disable=SC2086
    $cc $CFLAGS_COMMON $flags -o "$bin" cost/driver.c $ROOT/csrc/*.c -lm
    variants=$("${qemu[@]}" "$bin" list)
    while read -r op m n k; do
        for variant in $(awk -v op="$op" '$1 == op {print $2}' <<<"$variants"); do
            # Both counts zero-padded to the same length: the stack, and so
            # the start-up code's instruction count, shifts with argv's size.
            one=$(count "${qemu[@]}" -plugin "$PLUGIN" "$bin" "$op" "$variant" "$m" "$n" "$k" \
                  "$(printf %06d 1)")
            many=$(count "${qemu[@]}" -plugin "$PLUGIN" "$bin" "$op" "$variant" "$m" "$n" "$k" \
                   "$(printf %06d $((REPS + 1)))")
            echo "$op $m $n $k $target $variant $(( (many - one) / REPS ))"
        done
    done <<<"$SHAPES"
done
}

if [ -n "${WIDE:-}" ]; then
    # Columns target/variant in order of appearance; "-" where a target has no
    # such variant.
    rows | awk '
        { key = $1 " | " $2 " x " $3 " x " $4; col = $5 "/" $6
          if (!(key in seen)) { seen[key] = 1; keys[nk++] = key }
          if (!(col in cseen)) { cseen[col] = 1; cols[nc++] = col }
          v[key, col] = $7 }
        END {
          printf "| kernel | m x n x k |"; for (c = 0; c < nc; c++) printf " %s |", cols[c]; print ""
          printf "|---|---|"; for (c = 0; c < nc; c++) printf "---:|"; print ""
          for (r = 0; r < nk; r++) {
            printf "| %s |", keys[r]
            for (c = 0; c < nc; c++) printf " %s |", ((keys[r], cols[c]) in v) ? v[keys[r], cols[c]] : "-"
            print ""
          } }'
else
    echo "| kernel | m x n x k | target | variant | instructions / call | vs scalar |"
    echo "|---|---|---|---|---:|---:|"
    rows | awk '{ if ($6 == "scalar") s = $7
                  printf "| %s | %s x %s x %s | %s | %s | %d | %.2f |\n", $1, $2, $3, $4, $5, $6, $7, $7 / s }'
fi
