"""torch-family backends: eager ``torch``, ``torchscript`` and ``inductor`` (AOTInductor package)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from ..task_module import build_task_module
from ..torch_ops import TaskModule
from .base import Backend, BuildRequest, Program, register_backend

log = logging.getLogger(__name__)

TORCH_OPS = ("tree_ensemble", "linear", "scaler", "imputer", "normalizer", "gather", "concat", "constant",
             "lookup", "indicator", "binarize", "bucketize", "polynomial", "spline", "activation", "label", "average",
             "kernel_machine", "one_vs_one", "kneighbors", "centroids", "gaussian_mixture", "mlp", "gaussian_nb",
             "kernel_pca")
# ops whose program loops until the data converge: eager torch only (exported, they unroll to thousands of ops)
EAGER_ONLY = ("pairwise_coupling",)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` intra-op threads inside the block; restore the process's setting after."""
    before = torch.get_num_threads()
    if n == before or n <= 0:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def input_dtype_of(module: TaskModule) -> np.dtype:
    """The dtype the parts reading the input compute in (what callers should pass): float32 only when
    every one of them computes in float32."""
    dts = {getattr(p, "dtype", torch.float64) for p in module.input_parts()}
    return np.dtype("float32") if dts == {torch.float32} else np.dtype("float64")


def example_input(module: TaskModule, n_features: int, n: int = 8) -> torch.Tensor:
    dt = getattr(torch, input_dtype_of(module).name)
    g = torch.Generator().manual_seed(0)
    return torch.randn((n, n_features), generator=g, dtype=dt)


class TorchProgram(Program):
    """Runs a callable taking and returning torch tensors; numpy in, numpy out (zero-copy in)."""

    kind = "torch"

    def __init__(self, fn: Any, input_dtype: np.dtype, n_outputs: int, threads: int):
        self.fn = fn
        self.input_dtype = np.dtype(input_dtype)
        self.n_outputs = n_outputs
        self.threads = threads

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch_threads(self.threads):
            return self._run(torch.from_numpy(x)).numpy()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def save(self, directory: Path) -> dict[str, Any]:
        torch.save(self.fn, directory / "module.pt")
        return self._meta()

    def _meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "input_dtype": self.input_dtype.name, "n_outputs": self.n_outputs,
                "threads": self.threads}

    @classmethod
    def load(cls, directory: Path, meta: Mapping[str, Any]) -> "Program":
        # weights_only=False: the module class is tunebird's own; the artifact's SHA-256 was checked by the caller
        fn = torch.load(directory / "module.pt", weights_only=False)
        return cls(fn, np.dtype(meta["input_dtype"]), meta["n_outputs"], meta["threads"])


@register_backend
class TorchBackend(Backend):
    """PyTorch eager mode."""

    name = "torch"
    family = "torch"
    serves = TORCH_OPS + EAGER_ONLY

    def build(self, request: BuildRequest) -> Program:
        from .base import check_ops

        check_ops(self.name, request.ops, self.serves)
        module = build_task_module(request.graph, request.config, request.output).eval()
        return TorchProgram(module, input_dtype_of(module), _n_outputs(request), request.threads)

    @classmethod
    def program_class(cls) -> type[Program]:
        return TorchProgram


class TorchScriptProgram(TorchProgram):
    kind = "torchscript"

    def save(self, directory: Path) -> dict[str, Any]:
        with _quiet_jit():
            torch.jit.save(self.fn, str(directory / "module.ts"))
        return self._meta()

    @classmethod
    def load(cls, directory: Path, meta: Mapping[str, Any]) -> "Program":
        with _quiet_jit():
            fn = torch.jit.load(str(directory / "module.ts"))
        return cls(fn, np.dtype(meta["input_dtype"]), meta["n_outputs"], meta["threads"])


@register_backend
class TorchScriptBackend(Backend):
    """``torch.jit.trace`` + freeze: no Python in the call path."""

    name = "torchscript"
    family = "torch"
    serves = TORCH_OPS

    def build(self, request: BuildRequest) -> Program:
        from .base import check_ops

        check_ops(self.name, request.ops, TORCH_OPS)
        module = build_task_module(request.graph, request.config, request.output).eval()
        ex = example_input(module, request.n_features)
        with torch.inference_mode(False), torch.no_grad(), _quiet_jit():
            traced = torch.jit.trace(module, (ex,), check_trace=False)
            frozen = torch.jit.freeze(traced)
        return TorchScriptProgram(frozen, input_dtype_of(module), _n_outputs(request), request.threads)

    @classmethod
    def program_class(cls) -> type[Program]:
        return TorchScriptProgram


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """torch 2.13 deprecates torch.jit; the torchscript backend uses it on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*")
        yield


def export_dynamic(module: torch.nn.Module, example: torch.Tensor) -> "torch.export.ExportedProgram":
    """``torch.export`` with a dynamic batch dimension."""
    batch = torch.export.Dim("batch", min=1)
    return torch.export.export(module, (example,), dynamic_shapes={"x": {0: batch}}, strict=False)


class InductorProgram(TorchProgram):
    kind = "inductor"

    def __init__(self, fn: Any, input_dtype: np.dtype, n_outputs: int, threads: int, package: bytes):
        super().__init__(fn, input_dtype, n_outputs, threads)
        self.package = package

    def save(self, directory: Path) -> dict[str, Any]:
        (directory / "model.pt2").write_bytes(self.package)
        return self._meta()

    @classmethod
    def load(cls, directory: Path, meta: Mapping[str, Any]) -> "Program":
        path = directory / "model.pt2"
        fn = torch._inductor.aoti_load_package(str(path))
        return cls(fn, np.dtype(meta["input_dtype"]), meta["n_outputs"], meta["threads"], path.read_bytes())


@register_backend
class InductorBackend(Backend):
    """``torch.export`` + AOTInductor: C++/OpenMP kernels generated by inductor, saved as a .pt2 package."""

    name = "inductor"
    family = "torch"
    serves = TORCH_OPS

    def build(self, request: BuildRequest) -> Program:
        import tempfile

        from .base import check_ops

        check_ops(self.name, request.ops, TORCH_OPS)
        module = build_task_module(request.graph, request.config, request.output).eval()
        ex = example_input(module, request.n_features)
        with torch.no_grad():
            ep = export_dynamic(module, ex)
        with tempfile.TemporaryDirectory(prefix="tunebird-aoti-") as workdir, torch_threads(request.threads):
            path = torch._inductor.aoti_compile_and_package(ep, package_path=str(Path(workdir) / "model.pt2"))
            fn = torch._inductor.aoti_load_package(path)
            package = Path(path).read_bytes()
        return InductorProgram(fn, input_dtype_of(module), _n_outputs(request), request.threads, package)

    @classmethod
    def program_class(cls) -> type[Program]:
        return InductorProgram


def _n_outputs(request: BuildRequest) -> int:
    return request.n_outputs
