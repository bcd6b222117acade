"""The ``tvm`` backend: the strategy's torch program exported with ``torch.export``, imported into
Relax, built with ``tvm.compile`` for this CPU; optionally MetaSchedule-tuned (knob ``ms_trials``).

Untuned Relax code applies no schedule (matmuls run as naive serial loops), which
is why ``ms_trials`` exists: N > 0 tunes every task of the module for N trials at
the static batch shape ``batch_size`` (MetaSchedule records are per shape); the
program then pads the last chunk up to that shape.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..base import Knob
from ..task_module import build_task_module
from . import _tvm_runtime
from .base import Backend, BuildRequest, Program, check_ops, register_backend
from .torch_backends import TORCH_OPS, example_input, export_dynamic, input_dtype_of

log = logging.getLogger(__name__)


class TvmProgram(Program):
    """A Relax VM executable; ``static_batch`` > 0 means the function only takes that many rows."""

    def __init__(self, lib: Any, input_dtype: np.dtype, n_outputs: int, threads: int, static_batch: int = 0):
        import tvm
        from tvm import relax

        self.lib = lib
        self.vm = relax.VirtualMachine(lib, tvm.cpu())
        self.fn = self.vm["main"]
        self.input_dtype = np.dtype(input_dtype)
        self.n_outputs = n_outputs
        self.threads = threads
        self.static_batch = static_batch
        self._from_dlpack = tvm.runtime.from_dlpack
        # untuned Relax code has no parallel loops; MetaSchedule-tuned code does
        self._parallel = _tvm_runtime.ParallelCall(threads) if threads > 1 and static_batch else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if self.static_batch and n != self.static_batch:
            out = np.empty((n, self.n_outputs), dtype=np.float64)
            pad = _tvm_runtime.aligned_empty((self.static_batch, x.shape[1]), x.dtype)
            pad[:] = 0
            for s in range(0, n, self.static_batch):
                m = min(self.static_batch, n - s)
                pad[:m] = x[s : s + m]
                res = self._call(pad)
                if s == 0:
                    out = out.astype(res.dtype)
                out[s : s + m] = res[:m]
            return out
        return self._call(x)

    def _call(self, x: np.ndarray) -> np.ndarray:
        arg = self._from_dlpack(_tvm_runtime.as_aligned(x))
        out = self.fn(arg) if self._parallel is None else self._parallel(self.fn, arg)
        return out.numpy()

    library: bytes | None = None  # the shared library's bytes when loaded from one (re-saved as is)

    def save(self, directory: Path) -> dict[str, Any]:
        if self.library is not None:  # a loaded module cannot be exported again
            (directory / "module.so").write_bytes(self.library)
        else:
            self.lib.export_library(str(directory / "module.so"))
        return {"input_dtype": self.input_dtype.name, "n_outputs": self.n_outputs, "threads": self.threads,
                "static_batch": self.static_batch}

    @classmethod
    def load(cls, directory: Path, meta: Mapping[str, Any]) -> "Program":
        import tvm

        from ..ground.quiet import quiet

        with quiet("loading a tvm module"):  # the VM logs a "Scope Loaded" warning line per module
            lib = tvm.runtime.load_module(str(directory / "module.so"))
        program = cls(lib, np.dtype(meta["input_dtype"]), meta["n_outputs"], meta["threads"], meta.get("static_batch", 0))
        program.library = (directory / "module.so").read_bytes()
        return program


@register_backend
class TvmBackend(Backend):
    """torch.export -> Relax -> LLVM for the host CPU, dynamic batch (or static when MetaSchedule-tuned)."""

    name = "tvm"
    family = "torch"
    serves = TORCH_OPS
    # MetaSchedule tuning inside one candidate costs minutes: searched only when asked for
    knobs = (Knob("ms_trials", (0, 8, 64, 512), 0, "MetaSchedule trials per task (0: untuned)", searched=(0,)),)

    def build(self, request: BuildRequest) -> Program:
        import torch
        from tvm.relax.frontend.torch import from_exported_program

        check_ops(self.name, request.ops, TORCH_OPS)
        module = build_task_module(request.graph, request.config, request.output).eval()
        trials = int(request.knobs.get("ms_trials", 0))
        batch = int(request.config.get("batch_size") or 0) if trials else 0
        ex = example_input(module, request.n_features, n=batch or 8)
        with torch.no_grad():
            if batch:
                ep = torch.export.export(module, (ex,), strict=False)
            else:
                ep = export_dynamic(module, ex)
        mod = from_exported_program(ep, unwrap_unit_return_tuple=True, custom_convert_map=_CONVERT)
        target = _tvm_runtime.host_target()
        t0 = time.perf_counter()
        lib = _metaschedule_build(mod, target, trials, request.threads) if trials else _plain_build(mod, target)
        log.debug("tvm build (%d MetaSchedule trials) took %.1fs", trials, time.perf_counter() - t0)
        return TvmProgram(lib, input_dtype_of(module), request.n_outputs, request.threads, batch)

    @classmethod
    def program_class(cls) -> type[Program]:
        return TvmProgram


def _matmul(node: Any, importer: Any) -> Any:
    """``matmul`` / ``mm`` in the operands' dtype (TVM's importer would compute float64 products in float32)."""
    from tvm import relax

    lhs, rhs = importer.retrieve_args(node)
    dtypes = {str(lhs.ty.dtype), str(rhs.ty.dtype)}
    dtype = "float64" if "float64" in dtypes else str(lhs.ty.dtype)
    lhs, rhs = (v if str(v.ty.dtype) == dtype else importer.block_builder.emit(relax.op.astype(v, dtype))
                for v in (lhs, rhs))
    return importer.block_builder.emit(relax.op.linear_algebra.matmul(lhs, rhs, out_dtype=dtype))


_CONVERT = {"matmul.default": _matmul, "mm.default": _matmul}


def _plain_build(mod: Any, target: Any) -> Any:
    import tvm

    return tvm.compile(mod, target=target)


def _metaschedule_build(mod: Any, target: Any, trials: int, threads: int) -> Any:
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    mod = relax.get_pipeline("zero")(mod)
    tasks = ms.relax_integration.extract_tasks(mod, target)
    if not tasks:
        return tvm.compile(mod, target=target)
    contexts = [
        ms.TuneContext(
            mod=t.dispatched[0], target=target, space_generator="post-order-apply",
            search_strategy="evolutionary", task_name=t.task_name, num_threads=threads,
        )
        for t in tasks
    ]
    with tempfile.TemporaryDirectory(prefix="tunebird-ms-") as work:
        db = ms.tune_tasks(
            tasks=contexts,
            task_weights=[float(t.weight) for t in tasks],
            work_dir=work,
            max_trials_global=trials * len(tasks),
            max_trials_per_task=trials,
            num_trials_per_iter=min(32, trials),
            builder=ms.builder.LocalBuilder(f_build=_tvm_runtime.metaschedule_build, max_workers=1),
            runner=ms.runner.LocalRunner(),
            database=ms.database.MemoryDatabase(),
        )
        return ms.relax_integration.compile_relax(db, mod, target, params=None)
