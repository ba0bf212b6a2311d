"""Scalar quantization: fp16, and symmetric int8 (zero point 0, values in [-127, 127]).

int8 weights are per output row (scale = max|w_row| / 127), as the int8 kernels
(csrc/edgerun.h) rescale by a per-column weight scale; -128 is never produced so
that the AVX2 sign trick stays exact.
"""
import numpy as np

from edgerun.errors import OptionError
from edgerun.reference import quantize_rows_s8

FP16_MAX = 65504.0


def to_fp16(values, what):
    values = np.asarray(values, dtype=np.float32)
    if values.size and np.abs(values).max() > FP16_MAX:
        raise OptionError(f"{what}: |value| {float(np.abs(values).max()):g} exceeds the "
                          f"fp16 range ({FP16_MAX:g}); use quantize='int8' instead")
    return values.astype(np.float16)


def int8_rows(weight):
    """float [rows, cols] -> (int8 values, float32 scale [rows]); w ~= values * scale."""
    weight = np.asarray(weight, dtype=np.float32)
    if weight.shape[1] == 0:
        return np.zeros(weight.shape, np.int8), np.zeros(weight.shape[0], np.float32)
    return quantize_rows_s8(weight)


def int8_vector(values):
    """float [n] -> (int8 [n], float32 scale [1]) with one scale for the whole vector."""
    values = np.asarray(values, dtype=np.float32)
    q, scale = quantize_rows_s8(values.reshape(1, -1))
    return q[0], scale.astype(np.float32)


def activation_scale(inputs):
    """Static int8 activation scale of a layer input: max|x| / 127 over calibration
    (1 / 127 for an input that is all zeros there: a scale must be > 0)."""
    inputs = np.asarray(inputs, dtype=np.float32)
    amax = float(np.abs(inputs).max()) if inputs.size else 0.0
    return (amax if amax > 0 else 1.0) / 127.0
