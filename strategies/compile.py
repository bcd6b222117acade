"""Configs -> compiled tasks.

A :class:`~strategies.ground.config.Config` names one choice for a task (a
sub-graph of ops)::

    {"strategy": "perfect_tree_traversal", "backend": "torch", "threads": 2,
     "batch_size": 4096, "fuse_post": true, "knobs": {"x_layout": "gather"}}

``strategy`` applies to the task's main op (its tree ensemble or linear model);
the other ops use their single implementation.  ``knobs`` holds the strategy's
and the backend's knobs.  ``fuse_post`` false runs the last post-transform in
NumPy after the program instead of inside it.  Defaults (strategy, backend,
chunk size) come from the strategies' own declarations.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from . import reference
from .ground.config import KEYS, Config
from .ground.device import usable_cores
from .ground.quiet import quiet
from .backends.base import BuildRequest, Program
from .backends.registry import get_backend
from .registry import get_strategy, strategies_for
from .ground.errors import InvalidConfigError
from .ir import Graph, Op, TreeEnsemble, as_graph
from .ir import main_op_index

log = logging.getLogger(__name__)

CONFIG_KEYS = KEYS

DEFAULT_BACKEND = {"torch": "torch", "tir": "tvm-tir"}


def default_strategy(op: Op) -> str:
    """The untuned choice for an op.

    Tree ensembles follow Hummingbird's rule (gemm for depth <= 3,
    perfect_tree_traversal for depth <= 10, tree_traversal otherwise): the
    published heuristic, kept as the baseline that tuning is measured against.
    """
    if isinstance(op, TreeEnsemble):
        if op.max_depth <= 3 and get_strategy("gemm").unsupported_reason(op) is None:
            return "gemm"
        if op.max_depth <= 10 and get_strategy("perfect_tree_traversal").unsupported_reason(op) is None:
            return "perfect_tree_traversal"
        return "tree_traversal"
    options = strategies_for(op.kind)
    if not options:
        raise InvalidConfigError(f"no strategy computes operator {op.kind!r}")
    # the untuned default runs on torch (no compiler), its preferred strategy first
    return min(options, key=lambda s: (s.family != "torch", not s.preferred)).name


def resolve_config(task: Graph | Sequence[Op], given: Mapping[str, Any] | None = None) -> Config:
    """Fill in defaults and validate for a task (its graph, or a chain of ops); errors name the allowed values."""
    ops = task.ops if isinstance(task, Graph) else tuple(task)
    given = dict(given or {})
    unknown = sorted(set(given) - set(CONFIG_KEYS))
    if unknown:
        raise InvalidConfigError(f"unknown config key(s) {unknown}; expected {list(CONFIG_KEYS)}")
    main = ops[main_op_index(ops)]
    backend_name = given.get("backend")
    strategy_name = given.get("strategy")
    if strategy_name is None:
        strategy_name = default_strategy(main)
        if backend_name is not None and get_backend(backend_name).family != get_strategy(strategy_name).family:
            fam = get_backend(backend_name).family
            fitting = [s.name for s in sorted(strategies_for(main.kind), key=lambda s: not s.preferred)
                       if s.family == fam]
            if not fitting:
                raise InvalidConfigError(f"backend {backend_name!r} has no strategy for {main.kind}")
            strategy_name = fitting[0]
    strat = get_strategy(strategy_name, main.kind)
    if backend_name is None:
        backend_name = DEFAULT_BACKEND[strat.family]
    backend = get_backend(backend_name)
    if backend.family != strat.family:
        allowed = sorted(n for n, b in _backends().items() if b.family == strat.family)
        raise InvalidConfigError(
            f"strategy {strat.name!r} runs on backend(s) {allowed}, not on {backend_name!r}"
        )
    reason = backend.unavailable_reason()
    if reason:
        raise InvalidConfigError(f"backend {backend_name!r} is not available: {reason}")

    knobs = dict(given.get("knobs") or {})
    backend_knobs = {k.name: k for k in backend.knobs}
    strat_given = {k: v for k, v in knobs.items() if k not in backend_knobs}
    resolved = strat.resolve_knobs(strat_given)
    for name, knob in backend_knobs.items():
        resolved[name] = knob.check(knobs.get(name, knob.default), f"backend {backend_name!r}")

    reason = strat.unsupported_reason(main) or strat.invalid_reason(main, resolved)
    if reason:
        raise InvalidConfigError(f"strategy {strat.name!r} cannot serve this model: {reason}")
    reason = strat.backend_reason(main, resolved, backend_name)
    if reason:
        raise InvalidConfigError(f"strategy {strat.name!r} is not built on backend {backend_name!r} with knobs "
                                 f"{dict(resolved)}: {reason}")

    threads = given.get("threads")
    threads = usable_cores() if threads is None else threads
    batch = given.get("batch_size")
    batch = strat.default_batch if batch is None else batch
    for name, value in (("threads", threads), ("batch_size", batch)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise InvalidConfigError(f"{name} must be a positive integer, got {value!r}")
    fuse = given.get("fuse_post", True)
    if not isinstance(fuse, bool):
        raise InvalidConfigError(f"fuse_post must be true or false, got {fuse!r}")
    return Config(strat.name, backend_name, int(threads), int(batch), fuse, tuple(resolved.items()))


def _backends():
    from .backends.registry import all_backends

    return all_backends()


class CompiledTask:
    """A task's graph (or chain of ops) and resolved config; builds one program per requested value, lazily."""

    def __init__(self, graph: Graph | Sequence[Op], config: Mapping[str, Any],
                 programs: Mapping[str, Program] | None = None):
        self.graph = as_graph(graph)
        self.config = Config.from_json(config)
        self.programs: dict[str, Program] = dict(programs or {})

    @property
    def ops(self) -> tuple[Op, ...]:
        return self.graph.ops

    def program_key(self, output: str) -> str:
        """Which program serves ``output``: unfused post-transforms reuse the raw program."""
        if output == "out" and not self.config["fuse_post"] and not self.graph.post_transform.is_identity:
            return "raw"
        return output

    def program(self, output: str = "out") -> Program:
        key = self.program_key(output)
        prog = self.programs.get(key)
        if prog is None:
            backend = get_backend(self.config["backend"])()
            with quiet(f"building {self.config['strategy']}@{self.config['backend']}"):
                prog = backend.build(BuildRequest(self.graph, self.config, key))
            self.programs[key] = prog
        return prog

    def __call__(self, x: np.ndarray, output: str = "out") -> np.ndarray:
        prog = self.program(output)
        if x.dtype != prog.input_dtype or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=prog.input_dtype)
        y = prog(x)
        if output == "out" and self.program_key(output) == "raw":
            y = reference.apply_post_transform(self.graph.post_transform, y)
        return y

    def run_chunked(self, x: np.ndarray, output: str = "out") -> np.ndarray:
        """``self(x, output)`` in chunks of the config's ``batch_size`` rows: how a plan runs a large batch, and so
        how a candidate is timed (a chunk size is part of what is tuned)."""
        bs = int(self.config.get("batch_size") or 0)
        n = x.shape[0]
        if bs <= 0 or n <= bs:
            return self(x, output)
        first = self(x[:bs], output)
        out = np.empty((n,) + first.shape[1:], dtype=first.dtype)
        out[:bs] = first
        for s in range(bs, n, bs):
            out[s : s + bs] = self(x[s : s + bs], output)
        return out

    @property
    def input_dtype(self) -> np.dtype:
        return self.program("out").input_dtype
