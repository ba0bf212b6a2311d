#!/usr/bin/env bash
# The whole Python package on arm64, without ARM hardware: Debian bookworm's own
# arm64 python3.11 + python3-numpy 1.24 (what Raspberry Pi OS 64-bit ships) are
# unpacked into a folder, edgerun._kernels is cross-compiled against that
# Python's headers, and the pytest suite runs under qemu-user as a Cortex-A72
# (Raspberry Pi 4).  Then edgerun.cpu_info() is checked on an A72 (plain NEON)
# and on qemu's `max` CPU (every extension: the best variant in the table).
#
# Needs: Debian bookworm x86-64 as root (dpkg --add-architecture), the Debian and
# PyPI package registries.  Caches (delete to refresh):
#   $EDGERUN_ARM64_ROOTFS  (default /tmp/edgerun-arm64-rootfs) the unpacked packages
#   $EDGERUN_ARM64_PYDEPS  (default /tmp/edgerun-arm64-pydeps) pure-Python pytest & co
# Builds in a copy of the tree ($EDGERUN_ARM64_SRC, default /tmp/edgerun-arm64-src),
# so the host's x86 build in the work tree is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
rootfs=${EDGERUN_ARM64_ROOTFS:-/tmp/edgerun-arm64-rootfs}
pydeps=${EDGERUN_ARM64_PYDEPS:-/tmp/edgerun-arm64-pydeps}
src=${EDGERUN_ARM64_SRC:-/tmp/edgerun-arm64-src}
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
start=$SECONDS
step() { echo "::: arm64 python: $* ($((SECONDS - start)) s)"; }
die() { echo "arm64 python: ERROR: $*" >&2; exit 1; }

# Debian bookworm arm64 packages: the interpreter, its stdlib's shared-library
# dependencies, numpy with the reference BLAS/LAPACK, and the headers.
# (libtirpc3's Kerberos chain is left out: only the unused `nis` module needs it.)
packages=(
    libc6 libgcc-s1 gcc-12-base libstdc++6
    python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
    libexpat1 zlib1g libssl3 libbz2-1.0 libcrypt1 libdb5.3 libffi8 liblzma5
    libncursesw6 libtinfo6 libreadline8 libsqlite3-0 libuuid1 libnsl2 libtirpc3
    python3-numpy libblas3 liblapack3 libgfortran5
    libpython3.11-dev
)
# Pure-Python test dependencies (py3-none-any wheels, so the x86 host's pip can
# fetch them for the arm64 interpreter).  Pinned: CI must not change under us.
# pytest-xdist runs one emulated interpreter per core: pytest itself is one
# thread, and emulation makes every test several times slower than on x86.
test_wheels=(pytest==8.3.5 pluggy==1.5.0 iniconfig==2.0.0 packaging==24.2
             pytest-xdist==3.6.1 execnet==2.1.1)
cython_req="Cython==3.0.11"

# --- host tools ---------------------------------------------------------------
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v readelf >/dev/null || need+=(binutils)
if [ ${#need[@]} -gt 0 ]; then
    step "installing ${need[*]}"
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -m pip --version >/dev/null 2>&1 || die "the host's python3 has no pip (apt-get install python3-pip)"

# --- (a) the arm64 root file system --------------------------------------------
stamp="$rootfs/.edgerun-packages"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${packages[*]}" ]; then
    step "reusing $rootfs"
else
    step "downloading Debian bookworm arm64 packages into $rootfs"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        [ "$(id -u)" = 0 ] || die "run as root: needs 'dpkg --add-architecture arm64'"
        dpkg --add-architecture arm64
    fi
    apt-get update -qq
    debs=$(mktemp -d /tmp/edgerun-arm64-debs.XXXXXX)
    # apt's download sandbox user must be able to write there.
    chmod 755 "$debs"
    chown _apt "$debs" 2>/dev/null || true
    (cd "$debs" && apt-get download -qq "${packages[@]/%/:arm64}") \
        || die "apt-get download of arm64 packages failed (is bookworm in the apt sources?)"
    rm -rf "$rootfs"
    mkdir -p "$rootfs"
    for deb in "$debs"/*.deb; do
        dpkg -x "$deb" "$rootfs"
    done
    rm -rf "$debs"
    # Debian points libblas.so.3 / liblapack.so.3 at the chosen implementation with
    # update-alternatives in postinst, which dpkg -x does not run.
    multiarch=$rootfs/usr/lib/aarch64-linux-gnu
    ln -sf blas/libblas.so.3 "$multiarch/libblas.so.3"
    ln -sf lapack/liblapack.so.3 "$multiarch/liblapack.so.3"
    # qemu's -L falls back to the host's file when the rootfs lacks a path: these
    # site directories on Debian's sys.path must exist in the rootfs, or a host
    # /usr/local/lib/python3.11/dist-packages (x86 numpy!) would be imported.
    mkdir -p "$rootfs/usr/local/lib/python3.11/dist-packages" "$rootfs/usr/lib/python3.11/dist-packages"
    echo "${packages[*]}" >"$stamp"
fi
py=$rootfs/usr/bin/python3.11
[ -x "$py" ] || die "$py is missing: delete $rootfs and rerun"

# Every library the interpreter and numpy load must be in the rootfs: otherwise
# qemu's -L falls back to the host's path and fails with a confusing message.
missing=$(
    { echo "$py"
      find "$rootfs/usr/lib/python3/dist-packages/numpy" "$rootfs/usr/lib/python3.11/lib-dynload" \
           -name '*.so*' -type f; } |
    { xargs readelf -d 2>/dev/null || true; } | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort -u |
    while read -r lib; do
        found=0
        for dir in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu lib usr/lib; do
            [ -e "$rootfs/$dir/$lib" ] && found=1 && break
        done
        [ $found = 1 ] || echo "$lib"
    done
)
for lib in $missing; do
    case $lib in
        libgssapi_krb5.so.2) ;;  # libtirpc3's Kerberos: only the `nis` module
        *) die "arm64 rootfs lacks $lib (add its Debian package to the list in $0)" ;;
    esac
done

# --- pure-Python test dependencies --------------------------------------------
stamp="$pydeps/.edgerun-wheels"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${test_wheels[*]}" ]; then
    step "reusing $pydeps"
else
    step "fetching ${test_wheels[*]} into $pydeps"
    rm -rf "$pydeps"
    # --platform/--python-version: only wheels an arm64 CPython 3.11 can load, so
    # a compiled x86 wheel can never slip in.
    python3 -m pip install -q --target "$pydeps" --no-deps --only-binary=:all: \
        --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp \
        "${test_wheels[@]}"
    echo "${test_wheels[*]}" >"$stamp"
fi

# --- (b) cross-build edgerun._kernels for aarch64 -----------------------------
step "copying the source tree to $src"
rm -rf "$src"
mkdir -p "$src"
tar -C "$repo" --exclude=./.git --exclude='*.so' --exclude=./build --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude=edgerun/_kernels.c -cf - . |
    tar -C "$src" -xf -

# Cython runs on the host: its C output is the same for every platform.
if ! python3 -c 'import Cython' 2>/dev/null; then
    cython_dir=/tmp/edgerun-arm64-cython
    if ! PYTHONPATH=$cython_dir python3 -c 'import Cython' 2>/dev/null; then
        step "installing $cython_req into $cython_dir"
        python3 -m pip install -q --target "$cython_dir" "$cython_req"
    fi
    export PYTHONPATH=$cython_dir${PYTHONPATH:+:$PYTHONPATH}
fi
step "cythonizing edgerun/_kernels.pyx"
(cd "$src" && python3 -m cython -3 -X boundscheck=False -X wraparound=False \
    -I csrc edgerun/_kernels.pyx -o edgerun/_kernels.c)

# The flags of setup.py (-O3 -std=c11 -ffp-contract=off -fno-strict-aliasing, numpy's
# headers: Debian's, the numpy 1.24 the extension will run with) plus
# those Python's sysconfig adds for every extension (-DNDEBUG -fwrapv).
# pyconfig.h in include/python3.11 includes <aarch64-linux-gnu/python3.11/pyconfig.h>,
# hence -idirafter usr/include (after the cross compiler's own libc headers).
so=edgerun/_kernels.cpython-311-aarch64-linux-gnu.so
step "cross-compiling $so"
(cd "$src" && aarch64-linux-gnu-gcc -shared -fPIC -O3 -std=c11 -ffp-contract=off \
    -fno-strict-aliasing -DNDEBUG -fwrapv \
    -I csrc -I "$rootfs/usr/include/python3.11" -idirafter "$rootfs/usr/include" \
    -I "$rootfs/usr/lib/python3/dist-packages/numpy/core/include" \
    edgerun/_kernels.c csrc/*.c -lm -o "$so")
readelf -h "$src/$so" | grep -q AArch64 || die "$so is not an aarch64 shared object"

# --- (c) run under qemu-user ------------------------------------------------
# qemu-user cannot exec an arm64 binary from inside the emulation (no binfmt_misc
# in a container), so sys.executable -- which the tests use for subprocesses -- is
# this small host script that starts the emulated interpreter again.  qemu's -0
# sets argv[0], from which Python takes sys.executable; PYTHONHOME keeps the
# arm64 stdlib (-L maps /usr to the rootfs).
cpu=cortex-a72
launcher=$src/.python3.11-arm64
cat >"$launcher" <<EOF
#!/bin/sh
exec qemu-aarch64 -cpu "\${EDGERUN_QEMU_CPU:-$cpu}" -L "$rootfs" -0 "$launcher" "$py" "\$@"
EOF
chmod +x "$launcher"
export PYTHONHOME=/usr PYTHONPATH=$pydeps PYTHONNOUSERSITE=1
# Debian's postinst byte-compiles the stdlib and numpy; dpkg -x does not, so let the
# first run write the .pyc files into the cached rootfs: later starts take seconds.
unset PYTHONDONTWRITEBYTECODE PYTHONSTARTUP
# The checks below are about automatic dispatch: no caps from the caller's shell.
unset EDGERUN_ISA EDGERUN_BACKEND

step "sanity: interpreter, numpy and the extension"
(cd "$src" && "$launcher" -c '
import sys, platform, numpy, edgerun._kernels as k
assert platform.machine() == "aarch64", platform.machine()
assert numpy.__version__.startswith("1.24"), numpy.__version__
assert numpy.__file__.startswith("/usr/lib/python3/dist-packages/"), numpy.__file__
print(f"python {platform.python_version()} {platform.machine()}, numpy {numpy.__version__}, "
      f"sys.executable {sys.executable}")
print("sys.path", sys.path)
')

# cpu_info(): the C backend, and dispatch picks the last runnable variant of each op
# (the table lists each op's variants slowest first).  On the A72 gemm_s8 must be
# plain NEON (no dotprod); on `max` the best in the table, whatever is compiled in.
check_cpu_info='
import sys, edgerun
info = edgerun.cpu_info()
cpu = sys.argv[1]
assert info["backend"] == "c", info
for op, variant in sorted(info["selected"].items()):
    runnable = [v for o, v, _, ok in info["variants"] if o == op and ok]
    assert variant == runnable[-1], (cpu, op, variant, runnable)
if cpu == "cortex-a72":
    assert info["selected"]["gemm_s8"] == "neon", info["selected"]
if cpu == "max":  # qemu -cpu max has every aarch64 extension: all must run
    assert all(ok for _, _, _, ok in info["variants"]), info["variants"]
print(cpu, info["selected"])
'
for check_cpu in cortex-a72 max; do
    step "cpu_info() under qemu -cpu $check_cpu"
    (cd "$src" && EDGERUN_QEMU_CPU=$check_cpu "$launcher" -c "$check_cpu_info" "$check_cpu")
done

# The pytest run.  Excluded, with why:
#   test_demo.py, test_demo_cnn.py, test_compress.py, test_compress_block.py, test_fuzz.py
#       pure Python + numpy (training, least-squares refits, 3000+ mutated files):
#       minutes under emulation, and nothing in them is architecture-specific
#       beyond what the kernel, format, session and concurrency tests run here.
#   every module importing onnx, onnxruntime or torch at its top (found by grep below:
#       test_onnx_*.py, test_cli.py, test_compress_conv.py, ...): none of them has a
#       wheel nor a Debian package for this arm64 python3.11 + numpy 1.24 (test_cli
#       builds its model with onnx.helper).  scipy / scikit-learn: no test needs them.
#   test_runnable_matches_the_cpu_flags  reads /proc/cpuinfo, which qemu-user (7.2)
#       passes through from the x86 host; the cpu_info() checks above cover dispatch.
#   test_every_truncation_is_refused     slow (~40 s emulated) and pure Python: one
#       file parse per byte of the file; the x86 run covers it bit for bit.
pytest_args=(
    -q -p no:cacheprovider -n "$(nproc)"
    --ignore=tests/test_demo.py --ignore=tests/test_demo_cnn.py --ignore=tests/test_compress.py
    --ignore=tests/test_compress_block.py --ignore=tests/test_fuzz.py
    --deselect tests/test_dispatch.py::test_runnable_matches_the_cpu_flags
    --deselect tests/test_format.py::test_every_truncation_is_refused
)
needs_x86_wheels=$(cd "$src" && grep -lE \
    '^(import|from) (onnx|onnxruntime|torch|onnx_models|torch_export|torch_cnn|torch_bert)([ .]|$)' tests/test_*.py)
for module in $needs_x86_wheels; do pytest_args+=(--ignore="$module"); done
step "pytest under qemu-aarch64 -cpu $cpu (not run here: $(echo $needs_x86_wheels | tr '\n' ' '))"
(cd "$src" && "$launcher" -m pytest "${pytest_args[@]}" tests)
step "done in $((SECONDS - start)) s"
