"""Op -> kernel choice: turn a Linear or Conv2d layer's weight encoding into a prepared step.

Everything that can be done once is done here, at load: centroid decoding,
repacking 4-bit indices into the nibble32 layout, widening f16 to f32,
transposing float weights for BLAS.  A step is then one or two kernel calls.

    weight encoding                      kernel
    dense f32 / f16                      numpy matmul (BLAS), f16 widened at load
    dense i8 + scale                     quantize_rows_u7 -> gemm_s8 (asymmetric x)
    csr f32 / f16 values                 spmm_csr_f32
    csr i8 values + scale                quantize_rows_s8 -> spmm_csr_s8
    csr codes + f32/f16 centroids        spmm_csr_f32 (values decoded at load)
    csr codes + i8 centroids + scale     quantize_rows_s8 -> spmm_csr_s8
    bcsr4 f32 / f16 values               spmm_bcsr4_f32 (f16 widened at load)
    bcsr4 i8 values + scale              quantize_rows_s8 -> spmm_bcsr4_s8
    codebook f32/f16 centroids           codebook_f32
    codebook i8 centroids, bits <= 4     quantize_rows_u7 -> codebook_s8 (nibble32 table lookup)
    codebook i8 centroids, bits > 4      quantize_rows_u7 -> gemm_s8 (indices decoded at load)

Int8 dense Linear layers that read the same value (attention's Q, K and V projections)
run as one SiblingLinears step: one quantization of the shared input, one gemm_s8 over the
concatenated weights, the layers' outputs as column views of the result -- same bits.

gemm_s8 and codebook_s8 take their input asymmetric, 7 bits over each row's [min, max]
with a zero point (quantize_rows_u7; a row without negatives quantizes exactly as the
symmetric quantize_rows_s8 does).  On x86 without VNNI the int8 product is unsigned x signed
(vpmaddubsw), and a signed x cost a sign step per product vector: BERT-style
128x256x1024 took 830 us from signed input and 517 us from u7 (Zen 3).  The
precision is the same where it matters: a 4-layer encoder's int8 error against
fp32 went from 0.00417 to 0.00423 (relative L2), the weights' rounding dominates.

Conv2d (Conv2dStep) runs on NHWC activations: depthwise on dwconv2d_f32, or
dwconv2d_s8 for int8 weights; every other group-1 conv as rows of the activation
(1x1: the activation itself; k x k: im2col from NHWC) times the weight matrix,
through BLAS or any of the Linear kernels above.
"""
import numpy as np

from edgerun import _backend, reference
from edgerun.errors import EdgerunError, NonFiniteError, ShapeError
from edgerun.evaluate import activate
from edgerun.graph import Node, Tensor, conv_weight_shape
from edgerun.packing import pack_bits, pack_nibble32, unpack_bits
from edgerun.reference import MAX_K_S8
from edgerun.runtime.layout import windows_nhwc


GEMM_K_STEP = 8    # the narrowest SIMD step of gemm_s8's K tails (AVX2 and NEON)


def _f32(array):
    return np.ascontiguousarray(array, dtype=np.float32)


def _split(n, parts):
    """Column ranges for `parts` threads, in multiples of 16 where possible."""
    parts = max(1, min(parts, (n + 15) // 16))
    step = -(-n // parts)
    step = -(-step // 16) * 16
    return [(a, min(a + step, n)) for a in range(0, n, step)]


def _codebook_as_dense(weight):
    """The dense tensor a codebook weight stands for: int8 values with the one scale on
    every row for int8 centroids, float32 for float ones."""
    a = weight.arrays
    if a["centroids"].dtype != np.int8:
        return Tensor.dense(weight.name, weight.to_dense())
    rows, cols = weight.shape
    values = a["centroids"][unpack_bits(a["codes"], weight.bits, cols)]
    scale = np.full(rows, a["scale"][0], dtype=np.float32)
    return Tensor(weight.name, weight.shape, "dense", {"values": values, "scale": scale})


class LinearStep:
    """y = act(x @ W.T + b) with the kernel the encoding calls for.

    `kind` names the path ("blas", "gemm_s8", "spmm_csr_f32", "spmm_csr_s8",
    "spmm_bcsr4_f32", "spmm_bcsr4_s8", "codebook_f32", "codebook_s8") for `edgerun inspect` and the tests."""

    def __init__(self, node, weight, bias, kernels=None):
        self.name = node.name
        self.kernels = kernels or _backend.kernels
        self.relu = node.attrs.get("activation") == "relu"
        self.out_features, self.in_features = weight.shape
        self.bias = None if bias is None else _f32(bias.to_dense())
        a = weight.arrays
        if weight.encoding == "dense":
            if "scale" in a:
                self._int8_dense(a["values"], a["scale"])
            else:
                self.kind = "blas"
                self.weight_t = _f32(a["values"].T)
        elif weight.encoding == "csr":
            self._csr(weight)
        elif weight.encoding == "bcsr4":
            self._csr(weight, "spmm_bcsr4")
        elif weight.encoding == "codebook":
            self._codebook(weight)
        else:
            raise EdgerunError(f"layer {self.name!r}: unknown weight encoding {weight.encoding!r}")
        self._check_accumulator()
        if self.kind == "gemm_s8":
            # quantize_rows_u7 -> gemm_s8 with the weights checked once (LinearS8): from
            # Python, the two kernel calls re-checked every weight argument on every call
            self.prepared = self.kernels.LinearS8(self.values, self.scale, self.bias, self.relu,
                                                  self.in_features, self.name)

    def _check_accumulator(self):
        """Refuse at plan time what the int8 kernels would refuse on every call:
        more than MAX_K_S8 products per int32 sum (127 * 127 * K must stay below
        2**31).  For CSR the sum runs over a row's stored entries, for bcsr4
        over 4 per stored block."""
        if not self.kind.endswith("s8"):
            return
        if self.kind == "spmm_csr_s8":
            counts = np.diff(self.indptr.astype(np.int64))
            k = int(counts.max()) if counts.size else 0
        elif self.kind == "spmm_bcsr4_s8":
            counts = np.diff(self.indptr.astype(np.int64))
            k = 4 * int(counts.max()) if counts.size else 0
        else:
            k = self.in_features
        if k > MAX_K_S8:
            raise ShapeError(f"layer {self.name!r}: the {self.kind} path sums {k} int8 products per "
                             f"output in int32, at most {MAX_K_S8} are exact (127*127*K < 2**31); "
                             f"store this layer with float weights or split it into smaller layers")

    # -- preparation -------------------------------------------------------------------
    def _int8_dense(self, values, scale):
        self.kind = "gemm_s8"
        self.values = np.ascontiguousarray(values, dtype=np.int8)
        self.scale = _f32(scale)
        # K padded with zero columns to whole 8-byte SIMD steps (the quantized input
        # gets the same zeros per call; zero products leave every sum unchanged): a
        # scalar K tail costs more than the vector loop at conv sizes (callgrind,
        # 4096 rows x 16 outputs: K=27 5.72M instructions, padded to 32 1.91M).  Not
        # to 32: the short-K panel path (csrc/gemm_s8.h) multiplies padding too, K=8
        # padded to 32 took 7.28M instructions at 4096 x 48 against 3.64M unpadded.
        rows, k = self.values.shape
        padded = -(-k // GEMM_K_STEP) * GEMM_K_STEP
        if padded != k and padded <= MAX_K_S8:
            self.values = np.zeros((rows, padded), dtype=np.int8)
            self.values[:, :k] = values

    def _csr(self, weight, op="spmm_csr"):
        """CSR, or 1x4 block-sparse with op="spmm_bcsr4" (same arrays, no codes)."""
        a = weight.arrays
        self.indptr = np.ascontiguousarray(a["indptr"], dtype=np.uint32)
        self.indices = np.ascontiguousarray(a["indices"])
        if "codes" in a:
            centroids = a["centroids"]
            if centroids.dtype == np.int8:
                self.kind = "spmm_csr_s8"
                self.values = np.ascontiguousarray(centroids[a["codes"]])
                self.scale = np.full(self.out_features, a["scale"][0], dtype=np.float32)
            else:
                self.kind = "spmm_csr_f32"
                self.values = _f32(centroids)[a["codes"]]
        elif a["values"].dtype == np.int8:
            self.kind = f"{op}_s8"
            self.values = np.ascontiguousarray(a["values"])
            self.scale = _f32(a["scale"])
        else:
            self.kind = f"{op}_f32"
            self.values = _f32(a["values"])

    def _codebook(self, weight):
        a = weight.arrays
        centroids = a["centroids"]
        if centroids.dtype != np.int8:
            self.kind = "codebook_f32"
            self.bits = weight.bits
            self.packed = np.ascontiguousarray(a["codes"])
            self.centroids = _f32(centroids)
            return
        if weight.bits > 4:         # no 16-entry table: the int8 values it stands for
            dense = _codebook_as_dense(weight).arrays
            self._int8_dense(dense["values"], dense["scale"])
            return
        self.kind = "codebook_s8"
        codes = unpack_bits(a["codes"], weight.bits, self.in_features)
        self.nibbles = pack_nibble32(codes)
        self.table = np.zeros(16, dtype=np.int8)
        self.table[: len(centroids)] = centroids
        self.w_sums = self.table[codes].sum(axis=1, dtype=np.int32)
        self.scale = np.full(self.out_features, a["scale"][0], dtype=np.float32)

    # -- execution -----------------------------------------------------------------------
    def __call__(self, x, pool=None):
        """x float32 [m, in] -> float32 [m, out]; `pool` splits columns across threads."""
        m = x.shape[0]
        if self.kind == "blas":
            y = x @ self.weight_t
            if self.bias is not None:
                y += self.bias
            if self.relu:
                np.maximum(y, 0, out=y)
            return y
        if self.kind == "gemm_s8" and pool is None:
            return self.prepared(x)         # quantize and gemm_s8 in one call
        y = np.empty((m, self.out_features), dtype=np.float32)
        if m == 0:
            return y
        operands = (x,)
        if self.kind == "gemm_s8":
            operands = self.prepared.quantize(x)
        elif self.kind.endswith("s8"):
            quantize = self.kernels.quantize_rows_u7 if self.kind == "codebook_s8" else \
                self.kernels.quantize_rows_s8
            try:
                operands = quantize(x)
            except NonFiniteError:
                raise NonFiniteError(
                    f"layer {self.name!r} ({self.kind}): its input contains NaN or Inf; int8 layers "
                    f"quantize their input per row and need finite values") from None
        if pool is None:
            self._columns(operands, y, 0, self.out_features)
        else:
            ranges = _split(self.out_features, pool._max_workers)
            list(pool.map(lambda r: self._columns(operands, y, *r), ranges))
        return y

    def _columns(self, operands, y, begin, end):
        """Compute output columns [begin, end) into y[:, begin:end]."""
        k = self.kernels
        bias = None if self.bias is None else self.bias[begin:end]
        out = y[:, begin:end]
        if self.kind == "gemm_s8":
            self.prepared.columns(*operands, y, begin, end)
        elif self.kind in ("spmm_csr_f32", "spmm_bcsr4_f32"):
            getattr(k, self.kind)(self.indptr[begin:end + 1], self.indices, self.values,
                                  operands[0], bias, self.relu, out=out)
        elif self.kind in ("spmm_csr_s8", "spmm_bcsr4_s8"):
            xq, sx = operands
            getattr(k, self.kind)(self.indptr[begin:end + 1], self.indices, self.values, xq, sx,
                                  self.scale[begin:end], bias, self.relu, out=out)
        elif self.kind == "codebook_f32":
            k.codebook_f32(self.packed[begin:end], self.bits, self.centroids, operands[0],
                           bias, self.relu, out=out)
        elif self.kind == "codebook_s8":
            xq, sx, zero = operands
            k.codebook_s8(self.nibbles[begin:end], self.table, xq, sx, self.scale[begin:end],
                          bias, self.relu, out=out, x_zero=zero, w_sums=self.w_sums[begin:end])


def _columns_hwc(matrix, channels, kh, kw):
    """A conv weight matrix [out, C*kh*kw] (columns in (C, kh, kw) order) with its
    columns permuted to (kh, kw, C) order, in the same encoding: dense values, CSR
    indices (re-sorted within each row) or codebook codes (unpacked and repacked)."""
    rows, cols = matrix.shape
    source = np.arange(cols).reshape(channels, kh, kw).transpose(1, 2, 0).reshape(-1)
    target = np.empty(cols, dtype=np.int64)
    target[source] = np.arange(cols)            # old column -> new column
    a = dict(matrix.arrays)
    if matrix.encoding == "dense":
        a["values"] = np.ascontiguousarray(a["values"][:, source])
    elif matrix.encoding == "csr":
        counts = np.diff(a["indptr"].astype(np.int64))
        row_of = np.repeat(np.arange(rows), counts)
        indices = target[a["indices"].astype(np.int64)]
        order = np.lexsort((indices, row_of))
        a["indices"] = indices[order].astype(a["indices"].dtype)
        for key in ("values", "codes"):
            if key in a:
                a[key] = np.ascontiguousarray(a[key][order])
    elif matrix.encoding == "codebook":
        codes = unpack_bits(a["codes"], matrix.bits, cols)
        a["codes"] = pack_bits(np.ascontiguousarray(codes[:, source]), matrix.bits)
    else:
        raise EdgerunError(f"tensor {matrix.name!r}: cannot permute the columns of a {matrix.encoding} weight")
    return Tensor(matrix.name, matrix.shape, matrix.encoding, a, matrix.bits, matrix.huffman)


class Conv2dStep:
    """Conv2d on NHWC activations (edgerun/runtime/layout.py keeps them NHWC between
    convs), with the kernel the weight calls for.  x [N, H, W, C] -> y [N, OH, OW, out].

    `kind`:
      "dwconv2d_f32"  depthwise (group == in == out channels), float weights: the C kernel
      "dwconv2d_s8"   depthwise with int8 weights (dense i8 + per-channel scale): each image
                      quantized to int8 with one scale (quantize_rows_s8 over its H*W*C
                      values), then the int8 C kernel (int32 sums, float epilogue)
      "blas"          float weights, group 1: rows times the weight matrix; a 1x1 unpadded
                      conv's rows are the activation itself ([N*H*W, C], strided convs
                      subsample first), a k x k one im2cols straight from NHWC in (kh, kw, C)
                      column order (the weight is permuted to match once, at load; the
                      im2col geometry once per input shape: the kernels' Im2colF32)
      LinearStep's    any other encoding, group 1 ("gemm_s8", "spmm_csr_s8", "codebook_s8",
      kinds           ...): the same rows; the weight's columns permuted to (kh, kw, C) at
                      load (dense, CSR, codebook), except 1x4-block weights, whose blocks
                      must stay 4 consecutive columns: those im2col in (C, kh, kw) order
      "blas_grouped"  grouped convs that are not depthwise (any encoding, decoded to float at
                      load): im2col from NHWC, one batched matmul over the groups
    A codebook (weight-shared) conv weight is decoded at load: int8 centroids to int8
    values ("gemm_s8"), float ones to float ("blas").  The table-lookup kernels win when
    each weight is read once per call (a Linear at batch 1); a conv reuses every weight
    at each of its H*W output pixels, where dense int8 tiles are ~2.5x faster (measured
    on MobileNetV2 at 128x128), and conv weights are small enough to hold decoded."""

    def __init__(self, node, weight, bias, kernels=None):
        self.name = node.name
        self.kernels = kernels or _backend.kernels
        attrs = node.attrs
        self.out_channels, self.in_per_group, self.kh, self.kw = conv_weight_shape(node, weight)
        self.group = int(attrs.get("group", 1))
        self.in_channels = self.in_per_group * self.group
        self.strides = tuple(attrs.get("strides", (1, 1)))
        self.pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
        self.dilations = tuple(attrs.get("dilations", (1, 1)))
        self.activation = attrs.get("activation")
        self.bias = None if bias is None else _f32(bias.to_dense())
        self.pointwise = self.kh == self.kw == 1 and not any(self.pads)
        self.order = "hwc"      # im2col column order; "chw" for 1x4-block weights (below)
        self._im2col = {}       # input shape -> Im2col, filled by the first call of each shape
        if weight.encoding == "codebook":
            weight = _codebook_as_dense(weight)
        a = weight.arrays
        if self.in_per_group == 1 and self.group == self.out_channels:
            c = self.out_channels
            if (weight.encoding == "dense" and a["values"].dtype == np.int8 and "scale" in a
                    and self.kh * self.kw <= MAX_K_S8):
                self.kind = "dwconv2d_s8"
                values = np.asarray(a["values"]).reshape(c, self.kh, self.kw)
                self.weight_hwc = np.ascontiguousarray(values.transpose(1, 2, 0))   # [kh, kw, C]
                self.w_scale = _f32(a["scale"])
            else:
                self.kind = "dwconv2d_f32"
                dense = weight.to_dense().reshape(c, self.kh, self.kw)
                self.weight_hwc = _f32(dense.transpose(1, 2, 0))     # [kh, kw, C], once at load
        elif self.group != 1:
            self.kind = "blas_grouped"
            g, og, cg = self.group, self.out_channels // self.group, self.in_per_group
            w = weight.to_dense().reshape(g, og, cg, self.kh, self.kw)
            # [G, kh*kw*cg, og]: each group's matrix, rows in the (kh, kw, c) order of its im2col
            self.weight_g = _f32(w.transpose(0, 3, 4, 2, 1).reshape(g, self.kh * self.kw * cg, og))
        elif weight.encoding == "dense" and "scale" not in a:
            self.kind = "blas"
            w4 = weight.to_dense().reshape(self.out_channels, self.in_channels, self.kh, self.kw)
            self.weight_t = _f32(w4.transpose(0, 2, 3, 1).reshape(self.out_channels, -1).T)
        else:
            columns = self.in_per_group * self.kh * self.kw
            arrays = dict(a)
            if weight.encoding == "dense":
                arrays["values"] = arrays["values"].reshape(self.out_channels, columns)
            matrix = Tensor(weight.name, (self.out_channels, columns), weight.encoding, arrays,
                            weight.bits, weight.huffman)
            # im2col from NHWC is ~10x cheaper in (kh, kw, C) column order than in the weight's
            # (C, kh, kw): permute the columns once here (1x4 blocks would not survive it)
            self.order = "chw"
            if self.kh * self.kw > 1 and weight.encoding != "bcsr4":
                matrix = _columns_hwc(matrix, self.in_channels, self.kh, self.kw)
                self.order = "hwc"
            # relu6 = min(relu(v), 6): the kernel's fused relu, then the clip here
            fused = "relu" if self.activation in ("relu", "relu6") else None
            self.linear = LinearStep(Node("Linear", node.name, [], [], {"activation": fused}),
                                     matrix, bias, self.kernels)
            self.kind = self.linear.kind

    def __call__(self, x, pool=None):
        """x float32 [N, H, W, C] (NHWC) -> float32 [N, OH, OW, out] (NHWC)."""
        if self.kind == "dwconv2d_f32":
            return self.kernels.dwconv2d_f32(x, self.weight_hwc, self.bias, self.strides, self.pads,
                                             self.dilations, self.activation)
        if self.kind == "dwconv2d_s8":
            return self._dwconv2d_s8(x)
        if self.kind == "blas_grouped":
            return self._grouped(x)
        n = x.shape[0]
        if self.pointwise:
            sh, sw = self.strides
            xs = x if (sh, sw) == (1, 1) else x[:, ::sh, ::sw, :]
            oh, ow = xs.shape[1:3]
            rows = np.ascontiguousarray(xs).reshape(n * oh * ow, self.in_channels)
        else:
            im2col = self._im2col.get(x.shape) or self._prepare_im2col(x.shape)
            rows, oh, ow = im2col(x), im2col.oh, im2col.ow
        if self.kind == "blas":
            y = rows @ self.weight_t
            if self.bias is not None:
                y += self.bias
            activate(y, self.activation)
        else:
            y = self.linear(rows, pool)
            if self.activation == "relu6":
                np.minimum(y, 6, out=y)
        return y.reshape(n, oh, ow, self.out_channels)

    def _prepare_im2col(self, shape):
        """The Im2col of input shape `shape`, kept for the next call with that shape (a
        few shapes at most: a session sees one per batch size)."""
        if len(shape) != 4 or shape[3] != self.in_channels:
            raise ShapeError(f"conv {self.name!r} expects NHWC inputs with {self.in_channels} "
                             f"channels, got shape {list(shape)}")
        geometry = (shape, self.pads, self.kh, self.kw, self.strides, self.dilations)
        if self.order == "hwc":
            im2col = self.kernels.Im2colF32(*geometry)
        else:   # only the numpy one has the (C, kh, kw) column order of 1x4-block weights
            im2col = reference.Im2colF32(*geometry, order="chw")
        if len(self._im2col) >= 8:
            self._im2col.clear()
        self._im2col[shape] = im2col
        return im2col

    def _grouped(self, x):
        """Grouped (not depthwise) conv: im2col from NHWC, split by group, one batched matmul."""
        n, g = x.shape[0], self.group
        windows = windows_nhwc(x, self.pads, self.kh, self.kw, self.strides, self.dilations)
        _, oh, ow = windows.shape[:3]
        m = n * oh * ow
        cols = windows.reshape(m, self.kh, self.kw, g, self.in_per_group).transpose(3, 0, 1, 2, 4)
        cols = np.ascontiguousarray(cols).reshape(g, m, -1)
        y = np.matmul(cols, self.weight_g)                        # [G, M, og]
        y = np.ascontiguousarray(y.transpose(1, 0, 2)).reshape(n, oh, ow, self.out_channels)
        if self.bias is not None:
            y += self.bias
        return activate(y, self.activation)

    def _dwconv2d_s8(self, x):
        """One int8 scale per image (rows independent, as everywhere in edgerun), so a
        batch gives the bits of its images run one by one."""
        n, h, w, c = x.shape
        try:
            q, scales = self.kernels.quantize_rows_s8(np.ascontiguousarray(x).reshape(n, h * w * c))
        except NonFiniteError:
            raise NonFiniteError(
                f"layer {self.name!r} ({self.kind}): its input contains NaN or Inf; int8 layers "
                f"quantize their input and need finite values") from None
        q = q.reshape(n, h, w, c)
        first = self.kernels.dwconv2d_s8(q[:1], self.weight_hwc, scales[0], self.w_scale, self.bias,
                                         self.strides, self.pads, self.dilations, self.activation)
        if n == 1:
            return first
        y = np.empty((n,) + first.shape[1:], dtype=np.float32)
        y[:1] = first
        for i in range(1, n):
            self.kernels.dwconv2d_s8(q[i:i + 1], self.weight_hwc, scales[i], self.w_scale, self.bias,
                                     self.strides, self.pads, self.dilations, self.activation,
                                     out=y[i:i + 1])
        return y


class SiblingLinears(LinearStep):
    """Int8 Linear layers that read the same input (a transformer's Q, K and V
    projections) as one gemm_s8 over their concatenated weights: the input is
    quantized once instead of once per layer, and one call replaces several.  The
    outputs are column slices of the one result (views, split()).  Per output the
    int32 sums and the epilogue are those of the layer alone, so the bits are too.
    `members`: [(layer name, out_features)] in weight order."""

    def __init__(self, node, steps, kernels=None):
        self.members = [(step.name, step.out_features) for step in steps]
        values = np.concatenate([step.values for step in steps])
        scale = np.concatenate([step.scale for step in steps])
        arrays = {"values": values, "scale": scale}
        bias = None
        if steps[0].bias is not None:
            bias = Tensor.dense(node.name + ".bias", np.concatenate([step.bias for step in steps]))
        # the members' values are padded to whole 8-byte K steps already
        weight = Tensor(node.name, (values.shape[0], steps[0].in_features), "dense", arrays)
        super().__init__(node, weight, bias, kernels)

    def split(self, y, lead_shape):
        """The members' outputs from the joint result y [m, sum of out_features]."""
        parts, begin = [], 0
        for _, width in self.members:
            parts.append(y[:, begin:begin + width].reshape(lead_shape + (width,)))
            begin += width
        return parts


def fuse_sibling_linears(steps):
    """steps [(node, step, extra)] with every group of two or more gemm_s8 Linear
    steps that read the same value (same width, activation and bias presence) replaced,
    at the place of the group's first step, by one SiblingLinears step.  The group's
    input exists there already, and its weights are constants, so the order holds."""
    groups = {}
    for index, (node, step, _) in enumerate(steps):
        if type(step) is LinearStep and step.kind == "gemm_s8":
            key = (node.inputs[0], step.values.shape[1], step.relu, step.bias is None)
            groups.setdefault(key, []).append(index)
    replaced, dropped = {}, set()
    for indices in groups.values():
        if len(indices) < 2:
            continue
        members = [steps[i] for i in indices]
        first = members[0][0]
        node = Node("Linear", first.name, [first.inputs[0]],
                    [out for member, _, _ in members for out in member.outputs], dict(first.attrs))
        fused = SiblingLinears(node, [step for _, step, _ in members], members[0][1].kernels)
        replaced[indices[0]] = (node, fused, members[0][2])
        dropped.update(indices[1:])
    return [replaced.get(i, s) for i, s in enumerate(steps) if i not in dropped]
