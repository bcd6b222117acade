"""The ``onnxruntime`` backend: the strategy's torch program exported to ONNX (the TorchScript-based
``torch.onnx`` exporter, dynamic batch) and run by ONNX Runtime's CPU provider, ``threads`` intra-op threads.

:func:`export_module` is also what ``Predictor.to_onnx`` uses.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..ground.quiet import quiet
from ..task_module import build_task_module
from .base import Backend, BuildRequest, Program, check_ops, register_backend
from .torch_backends import TORCH_OPS, example_input, input_dtype_of

OPSET = 17


def export_module(module: Any, example: Any, outputs: Sequence[str], input_name: str = "X") -> bytes:
    """``module`` (one tensor in, ``outputs`` out) as ONNX bytes, the batch dimension dynamic.  The
    TorchScript-based exporter: it needs no onnxscript and traces the module as the torchscript backend does."""
    import torch

    buf = io.BytesIO()
    axes = {name: {0: "N"} for name in [input_name, *outputs]}
    with warnings.catch_warnings(), quiet("exporting to ONNX"), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and tracer warnings
        torch.onnx.export(module, (example,), buf, dynamo=False, input_names=[input_name], output_names=list(outputs),
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True)
    return buf.getvalue()


class OnnxRuntimeProgram(Program):
    """An ONNX Runtime session on the CPU provider: ``threads`` intra-op threads, one inter-op thread."""

    def __init__(self, model: bytes, input_dtype: np.dtype, n_outputs: int, threads: int):
        import onnxruntime as ort

        self.model = model
        self.input_dtype = np.dtype(input_dtype)
        self.n_outputs = n_outputs
        self.threads = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self._run = self.session.run

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._run(None, {"X": x})[0]

    def save(self, directory: Path) -> dict[str, Any]:
        (directory / "model.onnx").write_bytes(self.model)
        return {"input_dtype": self.input_dtype.name, "n_outputs": self.n_outputs, "threads": self.threads}

    @classmethod
    def load(cls, directory: Path, meta: Mapping[str, Any]) -> "Program":
        return cls((directory / "model.onnx").read_bytes(), np.dtype(meta["input_dtype"]), meta["n_outputs"],
                   meta["threads"])


@register_backend
class OnnxRuntimeBackend(Backend):
    """torch module -> ONNX -> ONNX Runtime (CPU)."""

    name = "onnxruntime"
    family = "torch"
    serves = TORCH_OPS

    @classmethod
    def unavailable_reason(cls) -> str | None:
        import importlib.util

        missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        return f"{' and '.join(missing)} not installed (pip install 'tunebird[onnx]')" if missing else None

    def build(self, request: BuildRequest) -> Program:
        check_ops(self.name, request.ops, TORCH_OPS)
        module = build_task_module(request.graph, request.config, request.output).eval()
        model = export_module(module, example_input(module, request.n_features), ["Y"])
        return OnnxRuntimeProgram(model, input_dtype_of(module), request.n_outputs, request.threads)

    @classmethod
    def program_class(cls) -> type[Program]:
        return OnnxRuntimeProgram
