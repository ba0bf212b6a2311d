"""Builds the one C extension, edgerun._kernels: the Cython wrapper plus csrc/*.c.

SIMD variants choose their instruction set per file (#pragma GCC target), so one
build runs on any CPU of its architecture and dispatch.c picks at run time.
"""
import glob
import os
import platform
import struct

import numpy
from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # building from an sdist that ships the generated C
    cythonize = None

# -ffp-contract=off: GCC fuses a*b+c into FMA by default on aarch64, and the
# float epilogue must give numpy's bits on every platform.
compile_args = ["-std=c11", "-O3", "-ffp-contract=off", "-fno-strict-aliasing"]
machine = platform.machine().lower()
# 32-bit Raspberry Pi OS on a 64-bit kernel reports "aarch64": the pointer size
# tells the userland apart.  NEON code is compiled only where the target enables
# it (armv7 in ARM mode); dispatch still checks HWCAP_NEON at run time.
arm32 = machine.startswith("arm") or (machine.startswith("aarch64") and struct.calcsize("P") == 4)
if arm32:
    compile_args += ["-mfpu=neon-vfpv4"]
compile_args += os.environ.get("EDGERUN_CFLAGS", "").split()

sources = sorted(glob.glob("csrc/*.c"))
pyx = "edgerun/_kernels.pyx"
if cythonize is None:
    pyx = pyx[:-4] + ".c"

extension = Extension(
    "edgerun._kernels",
    sources=[pyx] + sources,
    # numpy's headers for one thing: installing the Session's workspace as numpy's
    # data allocator (PyDataMem_SetHandler, numpy >= 1.22; edgerun/_workspace.pxi)
    include_dirs=["csrc", numpy.get_include()],
    depends=glob.glob("csrc/*.h") + glob.glob("csrc/*.inc") + glob.glob("edgerun/*.pxi"),
    extra_compile_args=compile_args,
    libraries=["m"],
    # A board without a compiler still gets a working package: edgerun falls
    # back to the numpy reference backend and says so.
    optional=True,
)

extensions = [extension]
if cythonize is not None:
    extensions = cythonize(extensions, language_level=3,
                           compiler_directives={"boundscheck": False, "wraparound": False})

setup(ext_modules=extensions)
