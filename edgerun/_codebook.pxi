# Included by _kernels.pyx.
