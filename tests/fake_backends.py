"""Backends that misbehave on purpose, for the tuner's failure-handling tests.

Imported by the test process (so the search space includes them) and by the
measurement worker (``MeasureSettings(preload=("fake_backends",))``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from strategies.backends.base import Backend, BuildRequest, Program, register_backend
from strategies.backends.torch_backends import TORCH_OPS


@register_backend
class CrashingBackend(Backend):
    """Kills the process that builds it, as a segfaulting compiler would."""

    name = "crashy"
    family = "torch"
    serves = TORCH_OPS

    def build(self, request: BuildRequest) -> Program:
        os.abort()


class ZerosProgram(Program):
    def __init__(self, n_outputs: int, input_dtype: Any = np.float32):
        self.n_outputs = n_outputs
        self.input_dtype = np.dtype(input_dtype)
        self.output_dtype = np.dtype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((x.shape[0], self.n_outputs), np.float32)

    def save(self, directory: Path) -> dict[str, Any]:
        return {"n_outputs": self.n_outputs}

    @classmethod
    def load(cls, directory: Path, meta: Mapping[str, Any]) -> Program:
        return cls(meta["n_outputs"])


@register_backend
class LyingBackend(Backend):
    """Instantly returns zeros: the fastest candidate there is, and wrong."""

    name = "liar"
    family = "torch"
    serves = TORCH_OPS

    def build(self, request: BuildRequest) -> Program:
        op = request.ops[0]
        return ZerosProgram(request.ops[-1].output_type().width, op.input_type().dtype)

    @classmethod
    def program_class(cls) -> type[Program]:
        return ZerosProgram
