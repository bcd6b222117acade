"""Strategies declare their knobs as data; the tuner, cost model and records read the declaration.

A :class:`Strategy` is one way to compute one operator kind as tensors.  Its
``knobs`` are the search space (name, allowed values, default); adding a knob
is one edit to that tuple.  ``unsupported_reason`` / ``invalid_reason`` /
``backend_reason`` prune the space by rule before anything is built.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

from .ground.errors import InvalidConfigError
from .ir import Graph, Op


@dataclass(frozen=True)
class Knob:
    """One tunable parameter: a name, its allowed values (in order) and a default."""

    name: str
    values: tuple[Any, ...]
    default: Any
    help: str = ""
    # the values the tuner searches by default (None: all); others only when asked for (costly ones)
    searched: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.default not in self.values:
            raise ValueError(f"knob {self.name!r}: default {self.default!r} is not among {self.values}")
        if self.searched is not None and not set(self.searched) <= set(self.values):
            raise ValueError(f"knob {self.name!r}: searched values {self.searched} are not among {self.values}")

    def search_values(self, limit: Any = None) -> tuple[Any, ...]:
        """The values to search: ``searched`` (or all), widened to every value up to ``limit`` when given."""
        if limit is not None:
            return tuple(v for v in self.values if v <= limit)
        return self.values if self.searched is None else self.searched

    def check(self, value: Any, owner: str) -> Any:
        if value not in self.values:
            raise InvalidConfigError(
                f"{owner}: knob {self.name!r} must be one of {list(self.values)}, got {value!r}"
            )
        return value

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "values": list(self.values), "default": self.default, "help": self.help,
                "searched": None if self.searched is None else list(self.searched)}


@dataclass(frozen=True, eq=False)
class TirKernel:
    """What a ``tir``-family strategy hands the ``tvm-tir`` backend: a PrimFunc ``main(x, out, *buffers)``
    (``x``: ``(n, n_features)`` of ``input_dtype``; ``out``: ``(n, n_outputs)`` of ``output_dtype``),
    its weight buffers in argument order, and the facts the program runs by."""

    func: Any  # tvm PrimFunc
    buffers: Mapping[str, Any]  # name -> 1-D numpy array, in argument order
    input_dtype: str
    output_dtype: str
    n_features: int
    n_outputs: int
    parallel: str  # the kernel's parallel loop: "rows" (over row blocks), "trees", or "none"
    rows_per_block: int = 0  # parallel == "rows": a batch of at most this many rows runs serially
    row_span: int = 0  # int32 indexing: rows per call are capped so that rows * row_span fits (0: n_features)
    summary: str = ""  # one line for the debug log


class Strategy(ABC):
    """One tensor implementation of an operator kind.

    Lifecycle: the class is registered once (``register``); the tuner asks
    ``unsupported_reason(op)`` to filter strategies for an operator, enumerates
    ``knobs``, prunes with ``invalid_reason``, and a backend of the strategy's
    ``family`` builds it.  Strategies hold no state.
    """

    name: ClassVar[str]
    op_kind: ClassVar[str]
    family: ClassVar[str]  # "torch": builds a torch.nn.Module; "tir": builds TensorIR
    knobs: ClassVar[tuple[Knob, ...]] = ()
    # rows per program call when a config does not say
    default_batch: ClassVar[int] = 65536
    # the analytic quantities (cost_model.features ``an.*`` names) that stand for this strategy's work
    # per row and bytes streamed per row; None: its operator kind's estimate
    work_estimate: ClassVar[tuple[str, str] | None] = None
    # the strategy a backend of its family uses for its operator kind when none is named
    preferred: ClassVar[bool] = False
    # tir family: the op kinds its kernel computes before the main op, in the same task (a torch-family
    # backend builds the ops around the main one with their own strategies instead)
    fuses: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def unsupported_reason(cls, op: Op) -> str | None:
        """Why this strategy cannot compute ``op`` at all, or None."""
        return None

    @classmethod
    def invalid_reason(cls, op: Op, knobs: Mapping[str, Any]) -> str | None:
        """Why this knob combination is invalid for ``op`` (pruned before measuring), or None."""
        return None

    @classmethod
    def task_reason(cls, graph: Graph, knobs: Mapping[str, Any] | None = None) -> str | None:
        """Why this strategy cannot compute the task ``graph`` (its main op and the ops around it) as one
        program, or None.  With ``knobs``: also why these values do not fit this task (wrong for it, or
        building the same program as another value: the search skips them).

        torch family: None (the backend builds the other ops with their own strategies); tir family: the
        task must be a chain of ``fuses`` ops ending in the main op.
        """
        if cls.family != "tir":
            return None
        kinds = [op.kind for op in graph.ops]
        if kinds[-1] != cls.op_kind:
            return f"strategy {cls.name!r} computes a task ending in a {cls.op_kind}, not in a {kinds[-1]}"
        bad = [k for k in kinds[:-1] if k not in cls.fuses]
        if bad:
            allowed = f"only {list(cls.fuses)}" if cls.fuses else "nothing"
            return f"strategy {cls.name!r} computes {allowed} before its {cls.op_kind} in one kernel, not {bad}"
        if not graph.is_chain:
            return f"strategy {cls.name!r} computes a chain of operators, not a graph with branches"
        return None

    @classmethod
    def backend_reason(cls, op: Op, knobs: Mapping[str, Any], backend: str) -> str | None:
        """Why these knobs should not be built on ``backend`` (a program its compiler cannot build in
        reasonable time, or a data-dependent branch it cannot trace), or None.  The search never proposes
        such configs; asked for explicitly, they raise ``InvalidConfigError`` with this reason."""
        return None

    @classmethod
    def redundant_reason(cls, op: Op, knobs: Mapping[str, Any], threads: int) -> str | None:
        """Why this config would build the same program as another one (the search skips it), or None."""
        return None

    @classmethod
    def suggestions(cls, op: Op, batch_size: int) -> list[dict[str, Any]]:
        """Knob settings worth measuring first when tuning ``op`` at ``batch_size`` rows per call
        (expert starting points, as Treebeard's default schedules); the search explores from there."""
        return []

    @classmethod
    def build_output_module(cls, op: Op, knobs: Mapping[str, Any], output: str) -> Any:
        """torch family: the module computing ``op``'s named output ``output`` (one besides ``raw`` / ``out``, such
        as a ``kneighbors`` op's neighbours) when ``op`` is its task's last op.

        Raises:
            InvalidConfigError: this strategy computes no such output.
        """
        raise InvalidConfigError(f"strategy {cls.name!r} computes no output {output!r} of a {op.kind}")

    @classmethod
    def tir_kernel(cls, ops: Sequence[Op], knobs: Mapping[str, Any], *, output: str, threads: int,
                   simd: str) -> TirKernel:
        """``tir`` family: the kernel computing ``ops`` (one task's chain) under ``knobs``.

        ``output`` is "raw" or "out" (post-transform fused); ``threads`` == 1 asks
        for no parallel loop; ``simd`` ("avx512", "avx2" or "generic") is what the
        target CPU offers.
        """
        raise NotImplementedError(f"strategy {cls.name!r} ({cls.family} family) generates no TensorIR")

    @classmethod
    def resolve_knobs(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled in; unknown names and values rejected with the allowed ones named."""
        names = {k.name: k for k in cls.knobs}
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise InvalidConfigError(
                f"strategy {cls.name!r} has no knob(s) {unknown}; its knobs are {sorted(names) or 'none'}"
            )
        return {k.name: k.check(given.get(k.name, k.default), f"strategy {cls.name!r}") for k in cls.knobs}


_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: add a strategy to the table."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"strategy {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def module_strategy(name: str, op_kind: str, module: Any, doc: str = "") -> type[Strategy]:
    """Register a knob-less torch strategy whose program is ``module(op)`` (a ``torch.nn.Module`` class)."""

    def build_module(cls: type, op: Op, knobs: Mapping[str, Any]) -> Any:
        return module(op)

    cls = type(f"{module.__name__}Strategy", (Strategy,), {
        "__doc__": doc or f"``{op_kind}`` as {module.__name__}.", "name": name, "op_kind": op_kind,
        "family": "torch", "build_module": classmethod(build_module), "__module__": module.__module__,
    })
    return register(cls)
