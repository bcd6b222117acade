"""Backends turn a task (a short chain of IR operators) plus a config into a callable :class:`Program`.

Two families: ``torch`` backends (torch, torchscript, inductor, tvm) take the
``torch.nn.Module`` that the task's strategies build; the ``tir`` backend
(tvm-tir) takes TensorIR that its strategies generate.  A program maps a
C-contiguous ``(n, F_in)`` array of ``input_dtype`` to ``(n, F_out)``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ..base import Knob
from ..ground.errors import InvalidConfigError
from ..ir import Graph, Op, as_graph
from ..ir.neighbors import is_neighbors_output


@dataclass(frozen=True)
class BuildRequest:
    """What to build: the task's graph (or chain of ops), the full config, and which value to return."""

    graph: Graph
    config: Mapping[str, Any]  # strategy, backend, threads, batch_size, knobs
    output: str = "out"  # "out" (with the last op's post-transform), "raw", or a kneighbors op's "kneighbors[:<k>]"

    def __post_init__(self) -> None:
        object.__setattr__(self, "graph", as_graph(self.graph))

    @property
    def ops(self) -> tuple[Op, ...]:
        return self.graph.ops

    @property
    def n_features(self) -> int:
        return self.graph.n_features

    @property
    def n_outputs(self) -> int:
        if is_neighbors_output(self.output):  # distances and two index orders (strategies.ir.neighbors)
            return 3 * self.graph.ops[-1].neighbors_k(self.output)  # type: ignore[attr-defined]
        return self.graph.n_outputs

    @property
    def threads(self) -> int:
        return int(self.config.get("threads") or 1)

    @property
    def knobs(self) -> Mapping[str, Any]:
        return self.config.get("knobs", {})


class Program(ABC):
    """A compiled task.  Thread-compatible: one call at a time per program."""

    input_dtype: np.dtype
    output_dtype: np.dtype
    n_outputs: int

    @abstractmethod
    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x``: C-contiguous ``(n, F_in)`` of ``input_dtype``, n >= 1.  Returns ``(n, F_out)``."""

    @abstractmethod
    def save(self, directory: Path) -> dict[str, Any]:
        """Write the payload files into ``directory``; return the JSON-able facts ``load`` needs."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, meta: Mapping[str, Any]) -> "Program":
        """Rebuild a saved program without the original model or its training library."""


class Backend(ABC):
    """An adapter from a strategy's tensor program to something callable."""

    name: ClassVar[str]
    family: ClassVar[str]  # "torch" or "tir"
    knobs: ClassVar[tuple[Knob, ...]] = ()
    serves: ClassVar[tuple[str, ...]] = ("tree_ensemble",)  # op kinds a task on this backend may contain

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run in this process (a missing package), or None."""
        return None

    @abstractmethod
    def build(self, request: BuildRequest) -> Program:
        """Compile ``request`` into a program.

        Raises:
            InvalidConfigError: the backend cannot serve one of the operators or knob values.
        """

    @classmethod
    def program_class(cls) -> type[Program]:
        raise NotImplementedError


_BACKENDS: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    _BACKENDS[cls.name] = cls
    return cls


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


def check_ops(backend: str, ops: Sequence[Op], allowed: Sequence[str]) -> None:
    bad = [op.kind for op in ops if op.kind not in allowed]
    if bad:
        raise InvalidConfigError(f"backend {backend!r} cannot serve operator(s) {bad}; it serves {list(allowed)}")
