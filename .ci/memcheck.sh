#!/usr/bin/env bash
# The Python extension under valgrind memcheck: repeated load / plan / run /
# close cycles over every encoding (tests/memcheck_loop.py), plus hostile files
# through the C Huffman decoder.  Fails on any invalid read or write, any use
# of uninitialised memory, and any definite leak -- except the CPython / numpy /
# ld.so noise listed (with reasons) in .ci/valgrind-python.supp, which matches
# on the top frames only, so nothing starting in edgerun/_kernels*.so is hidden.
# Takes about a minute (under 3) on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if ! command -v valgrind >/dev/null; then
    echo "::: installing valgrind"
    apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
python -c "from edgerun import _kernels" 2>/dev/null || python setup.py -q build_ext --inplace
# valgrind must run the interpreter itself, not a wrapper script (pyenv shims, venv links are fine)
PY=$(python -c "import sys; print(sys.executable)")
log=$(mktemp /tmp/edgerun-memcheck.XXXXXX)
echo "::: valgrind memcheck: load/run/close cycles (log: $log)"
# PYTHONMALLOC=malloc: every Python allocation goes through malloc, which memcheck tracks
if PYTHONMALLOC=malloc EDGERUN_BACKEND=c valgrind --tool=memcheck --error-exitcode=1 \
        --errors-for-leak-kinds=definite --leak-check=full --num-callers=40 \
        --suppressions=.ci/valgrind-python.supp \
        "$PY" tests/memcheck_loop.py "${MEMCHECK_CYCLES:-3}" >"$log" 2>&1; then
    grep -E "memcheck_loop:|ERROR SUMMARY|definitely lost" "$log"
    rm -f "$log"
else
    status=$?
    # the reports, without the banner: what was read or written or leaked, and where
    grep -vE "^==[0-9]+== (Memcheck|Copyright|Using Valgrind|Command|$)" "$log" | head -200
    echo "::: memcheck FAILED (exit $status); full log: $log"
    exit "$status"
fi
