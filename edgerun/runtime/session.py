"""Session: plan a Graph once, then run it many times.

Planning chooses a kernel per Linear layer from its weight encoding (ops.py),
binds every other op to its numpy function, and resolves the order of values.
`run` is then a loop over prepared steps.

Thread safety: a Session holds no per-call state -- every run allocates its own
intermediates -- so any number of threads may call `run` on one Session
concurrently.  With num_threads > 1 a layer's output columns are split across a
thread pool; the kernels release the GIL.
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edgerun import _backend, evaluate
from edgerun.errors import EdgerunError, ShapeError
from edgerun.graph import Graph
from edgerun.runtime.ops import LinearStep


def load(path, num_threads=1):
    """Open a .edgerun file (memory-mapped, fully validated) and plan it."""
    from edgerun import format as fmt

    return Session(fmt.load(path), num_threads=num_threads)


class Session:
    def __init__(self, graph: Graph, num_threads=1, kernels=None):
        """kernels: the kernel module (default: the active backend; tests pass
        edgerun.reference to compare the C path with its numpy twin)."""
        if not isinstance(num_threads, int) or num_threads < 1:
            raise EdgerunError(f"num_threads must be a positive integer, got {num_threads!r}")
        graph.validate()
        self.graph = graph
        self.inputs = list(graph.inputs)
        self.outputs = list(graph.outputs)
        self.num_threads = num_threads
        self._kernels = kernels or _backend.kernels
        self._pool = ThreadPoolExecutor(num_threads) if num_threads > 1 else None
        self._steps = [self._plan(node) for node in graph.nodes]

    def _plan(self, node):
        tensors = self.graph.tensors
        if node.op == "Linear":
            bias = tensors[node.inputs[2]] if len(node.inputs) > 2 else None
            step = LinearStep(node, tensors[node.inputs[1]], bias, self._kernels)
            return node, step, [node.inputs[0]]
        constants = {name: tensors[name].to_dense() for name in node.inputs if name in tensors}
        function = evaluate.op_function(node)
        return node, function, constants

    @property
    def layers(self):
        """[(layer name, kernel path)] in execution order, e.g. ("fc1", "spmm_csr_s8")."""
        return [(node.name, step.kind) for node, step, _ in self._steps
                if isinstance(step, LinearStep)]

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
        """One array in -> the first output; a dict {input name: array} in -> dict out."""
        values = self._feeds(x)
        for node, step, extra in self._steps:
            if isinstance(step, LinearStep):
                activation = values[node.inputs[0]]
                if activation.ndim != 2 or activation.shape[1] != step.in_features:
                    raise ShapeError(f"layer {node.name!r} expects [N, {step.in_features}] "
                                     f"inputs, got {list(activation.shape)}")
                result = step(np.ascontiguousarray(activation, dtype=np.float32), self._pool)
            else:
                args = [extra[name] if name in extra else values[name] for name in node.inputs]
                result = step(*args)
            values[node.outputs[0]] = result
        if isinstance(x, dict):
            return {v.name: values[v.name] for v in self.outputs}
        return values[self.outputs[0].name]

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        ins = ", ".join(f"{v.name}: {v.describe()}" for v in self.inputs)
        return f"<edgerun.Session inputs=({ins}) layers={len(self.layers)} backend={_backend.name}>"
