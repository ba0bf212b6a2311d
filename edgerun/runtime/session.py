"""Session: plan a Graph once, then run it many times.

Planning chooses a kernel per Linear or Conv2d layer from its weight encoding (ops.py),
binds GELU, softmax and LayerNorm (with the residual Add before it) to their C kernels
(transformer.py), every other op to its numpy function, and resolves the order of values.
`run` is then a loop over prepared steps.

Layout: 4-D activations between convs are held NHWC (layout.py decides which, and
where the few NCHW <-> NHWC conversions go: before the first conv, before a
Flatten / Reshape / other layout-sensitive op, at the graph outputs).  Inputs and
outputs are NCHW, as in the graph; `Session.conversions` lists the transposes.

Thread safety: a Session holds no per-call state -- every run allocates its own
intermediates -- so any number of threads may call `run` on one Session
concurrently.  What it keeps between runs is derived from shapes only and never
changed once made (the bindings of _run, each conv's Im2col and each pool's
geometry per input shape); two threads that meet a new shape at once both make
it, and either copy serves.  With num_threads > 1 a layer's output columns are
split across a thread pool; the kernels release the GIL.  (docs/SECURITY.md,
"Threads".)

Memory for the arrays of a run comes from the Session's workspace (csrc/workspace.h):
numpy's data allocator while `run` executes, a thread-safe cache of the large blocks
earlier runs freed, so a run does not fault its activations in again (docs/DESIGN.md).

Memory: a batch of more than `max_batch_rows` rows runs in chunks of that many
rows when every op treats rows independently, so intermediates stay bounded
by max_batch_rows x the widest layer whatever the batch; only the output is
batch-sized.  Rows are independent on every path (int8 quantizes per row), so
chunked results are bit-identical to unchunked ones on the integer paths.
"""
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter

import numpy as np

from edgerun import _backend, evaluate
from edgerun.errors import EdgerunError, ShapeError
from edgerun.graph import Graph
from edgerun.runtime import layout as layouts
from edgerun.runtime import transformer
from edgerun.runtime.embedding import EmbeddingStep
from edgerun.runtime.ops import Conv2dStep, LinearStep, SiblingLinears, fuse_sibling_linears


MAX_BATCH_ROWS = 1024  # rows per chunk: 1024 x a 4096-wide layer is 16 MB of float32
_LINEAR, _CONV, _UNARY, _OTHER = "linear", "conv", "unary", "other"     # how _run calls a step


def load(path, num_threads=1, max_batch_rows=MAX_BATCH_ROWS):
    """Open a .edgerun file (memory-mapped, fully validated) and plan it."""
    from edgerun import format as fmt

    return Session(fmt.load(path), num_threads=num_threads, max_batch_rows=max_batch_rows)


def _row_wise(graph):
    """Whether every op computes each batch row from the same row alone (so a
    batch may run in chunks of rows): every input batch-sized in dim 0, and
    no op that mixes or reshapes across the batch dimension."""
    # rank >= 2 everywhere, so that axis -1 is never the batch axis
    if not graph.inputs or any(len(v.shape) < 2 or v.shape[0] is not None for v in graph.inputs):
        return False
    for node in graph.nodes:
        attrs = node.attrs
        if node.op in ("Linear", "Relu", "Sigmoid", "Tanh", "Clip", "Conv2d", "MaxPool",
                       "AveragePool", "GlobalAveragePool", "HardSigmoid", "HardSwish", "Resize"):
            continue
        if node.op == "Pad" and not any(attrs["pads"][::len(attrs["pads"]) // 2]):  # batch unpadded
            continue
        if node.op == "Softmax" and (attrs.get("axis", -1) == -1 or attrs.get("axis", -1) in range(1, 9)):
            continue  # over features (-1 is the last axis, never the batch of an input of rank >= 2)
        if node.op == "Flatten" and attrs.get("axis", 1) == 1:
            continue
        shape = attrs.get("shape")
        if node.op == "Reshape" and isinstance(shape, list) and len(shape) >= 2 and shape[0] == 0:
            continue
        if node.op in ("Add", "Mul") and all(
                len(graph.tensors[n].shape) <= 1 or graph.tensors[n].shape[0] == 1
                for n in node.inputs if n in graph.tensors):
            continue
        return False
    return True


def _call(function, *args):
    return function(*args)


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise EdgerunError(f"{name} must be a positive integer, got {value!r}")


class Session:
    # int8 Linear layers reading one input run as one GEMM (ops.SiblingLinears); tests
    # turn it off to compare the bits with the layers run one by one
    _fuse_siblings = True

    def __init__(self, graph: Graph, num_threads=1, kernels=None, max_batch_rows=MAX_BATCH_ROWS):
        """kernels: the kernel module (default: the active backend; tests pass
        edgerun.reference to compare the C path with its numpy twin).
        max_batch_rows: larger batches run in chunks of this many rows."""
        _positive_int("num_threads", num_threads)
        _positive_int("max_batch_rows", max_batch_rows)
        graph.validate()
        self.graph = graph
        self.inputs = list(graph.inputs)
        self.outputs = list(graph.outputs)
        self.num_threads = num_threads
        self.max_batch_rows = max_batch_rows
        self._kernels = kernels or _backend.kernels
        self._layout = layouts.plan(graph)
        self._residual_adds = {
            ln: add for ln, add in transformer.residual_layer_norms(graph).items()
            if self._layout.node_layout.get(ln) != layouts.NHWC}
        self._attention = transformer.AttentionPlan(
            graph, lambda name: self._layout.node_layout.get(name) != layouts.NHWC)
        fused_adds = {add.name for add in self._residual_adds.values()} | self._attention.fused
        self._steps = [self._plan(node) for node in graph.nodes if node.name not in fused_adds]
        if self._fuse_siblings:
            self._steps = fuse_sibling_linears(self._steps)
        self._bound = None          # (the _steps it was made for, _bindings()), made lazily
        self._chunkable = _row_wise(graph)
        # Memory for the runs' arrays, reused run after run (csrc/workspace.h: without
        # it every run faulted its activations in again, a third of a BERT run's time)
        workspace = getattr(self._kernels, "Workspace", None)
        self._workspace = workspace() if workspace is not None else None
        self._in_workspace = self._workspace.run if self._workspace is not None else _call
        # created last: a plan that fails leaves no pool threads behind
        self._pool = ThreadPoolExecutor(num_threads) if num_threads > 1 else None

    def _plan(self, node):
        tensors = self.graph.tensors
        if node.op == "Linear":
            bias = tensors[node.inputs[2]] if len(node.inputs) > 2 else None
            step = LinearStep(node, tensors[node.inputs[1]], bias, self._kernels)
            return node, step, [node.inputs[0]]
        if node.op == "Conv2d":
            bias = tensors[node.inputs[2]] if len(node.inputs) > 2 else None
            step = Conv2dStep(node, tensors[node.inputs[1]], bias, self._kernels)
            return node, step, [node.inputs[0]]
        if node.op == "Gather" and len(node.inputs) == 2 and node.inputs[0] in tensors \
                and node.attrs.get("axis", 0) == 0 and node.inputs[1] not in tensors:
            # an embedding lookup: gather rows of the stored (maybe compressed) table
            return node, EmbeddingStep(node, tensors[node.inputs[0]]), {node.inputs[0]: None}
        constants = {name: tensors[name].to_dense() for name in node.inputs if name in tensors}
        if self._layout.node_layout.get(node.name) == layouts.NHWC:
            function, constants = layouts.nhwc_function(node, constants)
            return node, function, constants
        if node.name in self._attention:      # a Transpose view or a fused score chain
            node, function = self._attention.step(node, self._kernels)
            return node, function, {name: tensors[name].to_dense() for name in node.inputs
                                    if name in tensors}
        if node.name in self._residual_adds:
            node, function = transformer.fused_layer_norm(node, self._residual_adds[node.name],
                                                          self._kernels)
            return node, function, constants
        function = transformer.kernel_function(node, self._kernels) or evaluate.op_function(node)
        return node, function, constants

    @property
    def conversions(self):
        """[(value name, "NCHW" | "NHWC")]: the layout conversions (transposes) a run makes,
        each once; one of an NHWC value with H*W == 1 or C == 1 is only a reshape."""
        return list(self._layout.conversions)

    @property
    def layers(self):
        """[(layer name, kernel path)] in execution order, e.g. ("fc1", "spmm_csr_s8")."""
        layers = []
        for node, step, _ in self._steps:
            if isinstance(step, SiblingLinears):
                layers += [(name, step.kind) for name, _ in step.members]
            elif isinstance(step, (LinearStep, Conv2dStep)):
                layers.append((node.name, step.kind))
        return layers

    def _feeds(self, x):
        if isinstance(x, dict):
            unknown = set(x) - {v.name for v in self.inputs}
            if unknown:
                raise ShapeError(f"unknown input(s) {sorted(unknown)}; the model takes "
                                 f"{[v.name for v in self.inputs]}")
            feeds = dict(x)
        else:
            if len(self.inputs) != 1:
                raise ShapeError(f"the model takes {len(self.inputs)} inputs "
                                 f"{[v.name for v in self.inputs]}: pass a dict")
            feeds = {self.inputs[0].name: x}
        for spec in self.inputs:
            if spec.name not in feeds:
                raise ShapeError(f"missing input {spec.name!r} ({spec.describe()})")
            feeds[spec.name] = self._check_input(spec, feeds[spec.name])
        return feeds

    @staticmethod
    def _check_input(spec, value):
        value = np.asarray(value)
        if value.dtype != spec.dtype or value.ndim != len(spec.shape) or any(
                d is not None and d != g for d, g in zip(spec.shape, value.shape)):
            got = f"{value.dtype} [{', '.join(map(str, value.shape))}]"
            raise ShapeError(f"input {spec.name!r} expects {spec.describe()}, got {got}")
        return np.ascontiguousarray(value)

    def run(self, x):
        """One array in -> the first output; a dict {input name: array} in -> dict out.

        Errors: ShapeError for a wrong dtype, rank or size (naming what is
        expected), NonFiniteError for NaN/Inf reaching an int8 layer (naming
        the layer).  NaN/Inf on float layers propagate as in numpy."""
        feeds = self._feeds(x)
        n = self._batch_rows(feeds)
        if n > self.max_batch_rows:
            values = self._in_workspace(self._run_chunks, feeds, n)
        else:
            values = self._in_workspace(self._run, feeds)
        if isinstance(x, dict):
            return {v.name: values[v.name] for v in self.outputs}
        return values[self.outputs[0].name]

    def _batch_rows(self, feeds):
        """The batch size to chunk by: every input's rows when the graph is row-wise and
        they agree, else 0 (run whole)."""
        rows = {v.shape[0] for v in feeds.values()} if self._chunkable else set()
        return rows.pop() if len(rows) == 1 else 0

    def _run_chunks(self, feeds, n):
        """_run over slices of max_batch_rows rows, written into batch-sized outputs."""
        outputs = {}
        for start in range(0, n, self.max_batch_rows):
            stop = min(start + self.max_batch_rows, n)
            part = self._run({name: array[start:stop] for name, array in feeds.items()})
            for v in self.outputs:
                y = part[v.name]
                if v.name not in outputs:
                    outputs[v.name] = np.empty((n,) + y.shape[1:], dtype=y.dtype)
                outputs[v.name][start:stop] = y
        return outputs

    def _bindings(self):
        """Per step of self._steps, what _run reads, worked out from the layout plan once
        (and again only if _steps is replaced): (kind, sources, channel axis, releases), where
        kind is _LINEAR, _CONV, _UNARY (one input, no constant, no conversion) or _OTHER
        and sources is one (name, constant, is constant, target layout or None when the
        value is already held in it) per input."""
        if self._bound is not None and self._bound[0] is self._steps:
            return self._bound[1]
        plan = self._layout
        bindings = []
        for node, step, extra in self._steps:
            mode = plan.node_layout[node.name]

            def source(name, constants=()):
                if name in constants:
                    return name, constants[name], True, None
                return name, None, False, (mode if plan.of(name) != mode else None)

            if isinstance(step, LinearStep):        # weights and bias live in the step
                bindings.append((_LINEAR, (source(node.inputs[0]),), None))
            elif isinstance(step, Conv2dStep):
                axis = 3 if plan.of(node.inputs[0]) == layouts.NHWC else 1
                bindings.append((_CONV, (source(node.inputs[0]),), axis))
            else:
                sources = tuple(source(name, extra) for name in node.inputs)
                plain = len(sources) == 1 and not sources[0][2] and sources[0][3] is None
                bindings.append((_UNARY if plain else _OTHER, sources, None))
        outputs = [(v.name, layouts.NCHW) for v in self.outputs if plan.of(v.name) != layouts.NCHW]
        # Per step, the values no later step reads (and no graph output): _run lets go of
        # them there, so the workspace hands their blocks, still in cache, to the next
        # steps' arrays instead of fresh memory for every array of the run.
        last_read = {}
        for index, (_, sources, _) in enumerate(bindings):
            for name, _, is_constant, _ in sources:
                if not is_constant:
                    last_read[name] = index
        kept = {v.name for v in self.outputs}
        releases = [[] for _ in bindings]
        for name, index in last_read.items():
            if name not in kept:
                releases[index].append(name)
        for index, (node, _, _) in enumerate(self._steps):
            releases[index] += [name for name in node.outputs
                                if name not in last_read and name not in kept]
        bindings = [binding + (tuple(names),) for binding, names in zip(bindings, releases)]
        self._bound = (self._steps, (bindings, outputs))
        return bindings, outputs

    def _run(self, values, timer=None):
        """Every step on feeds {input name: array}; returns the values still held by name:
        the graph's outputs (in NCHW; values inside may be NHWC, see layout.py), and the
        feeds no step reads (every other value is let go after its last reader).
        timer (profile): called with (step index, seconds) after each step."""
        bindings, outputs = self._bindings()
        converted = {}

        def read(name, target):
            """values[name] in the target layout (not the one it is held in), converted
            once per run."""
            x = converted.get((name, target))
            if x is None:
                x = values[name]
                if x.ndim != 4:
                    raise ShapeError(f"value {name!r} must be 4-D to change its layout, "
                                     f"got shape {list(x.shape)}")
                x = converted[name, target] = layouts.convert(x, target)
            return x

        for index, ((node, step, extra), (kind, sources, channel_axis, releases)) in enumerate(
                zip(self._steps, bindings)):
            if timer is not None:
                start = perf_counter()
            if kind is _UNARY or kind is _OTHER:
                if kind is _UNARY:      # Relu, pools, Flatten, ...: one input, held as needed
                    args = [values[sources[0][0]]]
                else:
                    args = [constant if is_constant else values[name] if target is None
                            else read(name, target) for name, constant, is_constant, target in sources]
                try:
                    result = step(*args)
                except EdgerunError:
                    raise
                except (ValueError, IndexError, TypeError) as error:  # numpy: shapes, axes
                    shapes = [list(np.shape(a)) for a in args]
                    raise ShapeError(f"node {node.name!r} ({node.op}) cannot run on inputs of "
                                     f"shape {shapes}: {error}") from None
            elif kind is _CONV:
                name, _, _, target = sources[0]
                activation = values[name]
                if activation.ndim != 4 or activation.shape[channel_axis] != step.in_channels:
                    shape = list(activation.shape)
                    if channel_axis == 3:
                        shape = [shape[0], shape[3], shape[1], shape[2]]
                    raise ShapeError(f"conv {node.name!r} expects NCHW inputs with {step.in_channels} "
                                     f"channels, got {shape}")
                result = step(activation if target is None else read(name, target), self._pool)
            else:
                name, _, _, target = sources[0]
                activation = values[name] if target is None else read(name, target)
                if activation.ndim < 2 or activation.shape[-1] != step.in_features:
                    raise ShapeError(f"layer {node.name!r} expects [..., {step.in_features}] "
                                     f"inputs, got {list(activation.shape)}")
                # [batch, seq, features] (a transformer's tokens) runs as one matrix of rows
                rows = activation.reshape(-1, step.in_features)
                result = step(np.ascontiguousarray(rows, dtype=np.float32), self._pool)
                if len(node.outputs) > 1:       # SiblingLinears: one output per layer
                    result = step.split(result, activation.shape[:-1])
                else:
                    result = result.reshape(activation.shape[:-1] + (step.out_features,))
            if len(node.outputs) > 1:      # Split: one array per output
                values.update(zip(node.outputs, result))
            else:
                values[node.outputs[0]] = result
            for name in releases:
                values.pop(name, None)
            if timer is not None:
                timer(index, perf_counter() - start)
        for name, target in outputs:
            values[name] = read(name, target)
        return values

    def profile(self, x, runs=20):
        """Where a run's time goes: `runs` runs of x (as `run` takes it), each step
        timed.  Returns one dict per step, in execution order: node (name), op, kind
        (the kernel path of a Linear or Conv2d layer, else None), seconds (the least
        over the runs: the machine's noise only ever adds time) and median.  Fused
        steps appear once, under the node that ends them (a score chain under its
        Softmax, sibling Linears under the first); the time between steps (the
        interpreter, layout conversions of the outputs) is not in any step."""
        _positive_int("runs", runs)
        feeds = self._feeds(x)
        n = self._batch_rows(feeds)
        if n > self.max_batch_rows:     # what run would split into chunks
            raise ShapeError(f"profile runs its input as one batch: at most max_batch_rows = "
                             f"{self.max_batch_rows} rows, got {n}")
        times = [[] for _ in self._steps]

        def timer(index, seconds):
            times[index].append(seconds)
        for _ in range(runs):
            self._in_workspace(self._run, dict(feeds), timer)
        steps = []
        for (node, step, _), seconds in zip(self._steps, times):
            steps.append({"node": node.name, "op": node.op, "kind": getattr(step, "kind", None),
                          "seconds": min(seconds), "median": float(np.median(seconds))})
        return steps

    def close(self):
        """Stop the worker threads and free the cached run memory.  The Session still
        runs afterwards, on one thread."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._workspace is not None:
            self._workspace.trim()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        ins = ", ".join(f"{v.name}: {v.describe()}" for v in self.inputs)
        return f"<edgerun.Session inputs=({ins}) layers={len(self.layers)} backend={_backend.name}>"
