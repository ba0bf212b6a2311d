"""Export PyTorch modules to ONNX the way users do, for the importer tests and benchmarks.

Both of torch's exporters are covered: the TorchScript tracer (`dynamo=False`, the
one most published models went through) and the dynamo exporter (`dynamo=True`,
torch's default since 2.9), which emits different patterns for the same module
(ReduceMean for adaptive pooling, its own shape subgraphs, opset 18+).
"""
import io
import warnings

import numpy as np
import onnx
import torch


def export(module, example, *, dynamo=False, opset=None, input_names=("x",), output_names=("y",),
           dynamic=(0,)):
    """module (eval mode) exported on `example` (a tensor or a tuple of them) -> ModelProto.

    dynamic: the axes of every input that stay symbolic ("N" for axis 0, "S" for 1)."""
    module = module.eval()
    examples = example if isinstance(example, tuple) else (example,)
    names = {0: "N", 1: "S"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # the TorchScript exporter's deprecation notice
        if dynamo:
            shapes = [{axis: torch.export.Dim(names[axis], max=4096) for axis in dynamic}
                      for _ in examples]
            program = torch.onnx.export(module, examples, dynamo=True, opset_version=opset or 18,
                                        input_names=list(input_names), output_names=list(output_names),
                                        dynamic_shapes=shapes, verbose=False)
            if program is None:
                raise RuntimeError("torch.onnx.export(dynamo=True) returned no program")
            program.save(buffer)
        else:
            axes = {name: {axis: names[axis] for axis in dynamic}
                    for name in list(input_names) + list(output_names)}
            torch.onnx.export(module, examples, buffer, dynamo=False, opset_version=opset or 17,
                              input_names=list(input_names), output_names=list(output_names),
                              dynamic_axes=axes)
    return onnx.load_from_string(buffer.getvalue())


def seeded(factory, seed=0):
    """A module built under a fixed seed, with BatchNorm statistics made non-trivial
    (fresh ones are mean 0 / var 1, which would hide a wrong BatchNorm fold)."""
    torch.manual_seed(seed)
    module = factory()
    generator = torch.Generator().manual_seed(seed + 1)
    for layer in module.modules():
        if isinstance(layer, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            channels = layer.num_features
            layer.running_mean.copy_(torch.randn(channels, generator=generator) * 0.1)
            layer.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
            layer.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            layer.bias.data.copy_(torch.randn(channels, generator=generator) * 0.1)
    return module.eval()


def onnxruntime_outputs(model, feeds):
    """{output name: array} from onnxruntime on one thread (the yardstick)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {k: np.asarray(v) for k, v in feeds.items()})))
