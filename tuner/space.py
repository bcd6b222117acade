"""Task -> candidate configs, read from the strategies' and backends' declared knobs.

The space of a task at one tuned batch size is the product of
strategy x backend x the strategy's knobs x the backend's knobs x threads x
chunk size x post-transform fusion, pruned by rule (``resolve_config``: a
strategy that cannot serve the op, an invalid knob combination, a backend of
the wrong family) before anything is built.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from strategies.backends._tvm_runtime import usable_cores
from strategies.backends.base import all_backends
from strategies.base import strategies_for
from strategies.compile import resolve_config
from strategies.errors import InvalidConfigError
from strategies.ir import Graph, Op, as_graph
from strategies.torch_ops import main_op_index

CHUNKS = (256, 1024, 4096, 16384, 65536)


@dataclass(frozen=True)
class SpaceOptions:
    """Limits on the space: which backends, thread counts and MetaSchedule budgets to consider."""

    backends: tuple[str, ...] | None = None  # None: every available backend
    threads: tuple[int, ...] | None = None  # None: 1 and every power of two up to the core count
    max_ms_trials: int = 0  # MetaSchedule tuning inside a candidate costs minutes; off unless asked
    exclude_backends: tuple[str, ...] = ()


def thread_options(opts: SpaceOptions) -> tuple[int, ...]:
    if opts.threads:
        return tuple(sorted(set(opts.threads)))
    cores = usable_cores()
    out = {1, cores}
    t = 2
    while t < cores:
        out.add(t)
        t *= 2
    return tuple(sorted(out))


def chunk_options(batch: int) -> tuple[int, ...]:
    """Run-time chunk sizes worth trying when serving batches of ``batch`` rows."""
    return tuple(sorted({batch, *(c for c in CHUNKS if c < batch)}))


@dataclass(frozen=True)
class Dimension:
    name: str
    values: tuple[Any, ...]


@dataclass
class TaskSpace:
    """Every valid config of one task at one tuned batch size."""

    graph: Graph
    batch: int
    options: SpaceOptions = field(default_factory=SpaceOptions)

    def __post_init__(self) -> None:
        self.graph = as_graph(self.graph)
        self.ops = self.graph.ops
        self.main = self.ops[main_op_index(self.ops)]
        backends = all_backends()
        allowed = [
            name for name, b in backends.items()
            if (self.options.backends is None or name in self.options.backends)
            and name not in self.options.exclude_backends
            and b.unavailable_reason() is None
            and all(op.kind in b.serves for op in self.ops)
        ]
        self.strategies = {}
        for strat in strategies_for(self.main.kind):
            if strat.unsupported_reason(self.main) is not None:
                continue
            fitting = [b for b in allowed if backends[b].family == strat.family]
            if fitting:
                self.strategies[strat.name] = (strat, fitting)

    # ---- declarative view (what optuna and the cost model read)
    def dimensions(self, strategy: str, backend: str) -> list[Dimension]:
        strat, _ = self.strategies[strategy]
        dims = [Dimension(k.name, k.values) for k in strat.knobs]
        for k in all_backends()[backend].knobs:
            values = k.values
            if k.name == "ms_trials":
                values = tuple(v for v in values if v <= self.options.max_ms_trials)
            dims.append(Dimension(k.name, values))
        dims.append(Dimension("threads", thread_options(self.options)))
        dims.append(Dimension("batch_size", chunk_options(self.batch)))
        if not self.graph.post_transform.is_identity:
            dims.append(Dimension("fuse_post", (True, False)))
        return dims

    def make_config(self, strategy: str, backend: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The resolved config for these choices, or None when a rule prunes it."""
        top = {"threads", "batch_size", "fuse_post"}
        given = {
            "strategy": strategy, "backend": backend,
            "threads": values.get("threads"), "batch_size": values.get("batch_size"),
            "fuse_post": values.get("fuse_post", True),
            "knobs": {k: v for k, v in values.items() if k not in top},
        }
        try:
            cfg = resolve_config(self.graph, given)
        except InvalidConfigError:
            return None
        strat = self.strategies[strategy][0]
        if strat.redundant_reason(self.main, cfg["knobs"], cfg["threads"]):
            return None
        return cfg

    def suggested(self) -> list[dict[str, Any]]:
        """The strategies' expert starting points (``Strategy.suggestions``) as configs of this space:
        every thread and a chunk of the whole batch (capped at 16384 rows) from 64 rows up, one thread below."""
        threads = thread_options(self.options)
        n_threads = threads[-1] if self.batch >= 64 else threads[0]
        chunks = chunk_options(self.batch)
        chunk = max((c for c in chunks if c <= 16384), default=min(chunks))
        out = []
        for strategy, (strat, backends) in self.strategies.items():
            for knobs in strat.suggestions(self.main, self.batch):
                for backend in backends:
                    cfg = self.make_config(strategy, backend, {**knobs, "threads": n_threads, "batch_size": chunk})
                    if cfg is not None:
                        out.append(cfg)
        return out

    def adapt(self, config: Mapping[str, Any]) -> dict[str, Any] | None:
        """A config tuned for another batch size as a config of this space (its chunk size capped at
        this batch), or None when it does not fit here."""
        strategy, backend = config.get("strategy"), config.get("backend")
        if strategy not in self.strategies or backend not in self.strategies[strategy][1]:
            return None
        chunks = chunk_options(self.batch)
        chunk = int(config.get("batch_size") or self.batch)
        fitting = [c for c in chunks if c <= chunk]
        values = {**dict(config.get("knobs") or {}), "threads": config.get("threads"),
                  "batch_size": max(fitting) if fitting else min(chunks)}
        if "fuse_post" in config:
            values["fuse_post"] = config["fuse_post"]
        return self.make_config(strategy, backend, values)

    def enumerate(self) -> Iterator[dict[str, Any]]:
        """Every valid config (the grid); sizes are small enough to list for tree tasks."""
        for strategy, (_, backends) in self.strategies.items():
            for backend in backends:
                dims = self.dimensions(strategy, backend)
                for combo in itertools.product(*(d.values for d in dims)):
                    cfg = self.make_config(strategy, backend, {d.name: v for d, v in zip(dims, combo)})
                    if cfg is not None:
                        yield cfg

    def size(self) -> int:
        total = 0
        for strategy, (_, backends) in self.strategies.items():
            for backend in backends:
                n = 1
                for d in self.dimensions(strategy, backend):
                    n *= len(d.values)
                total += n
        return total


def config_key(config: Mapping[str, Any]) -> tuple:
    """Hashable identity of a config (for de-duplicating proposals)."""
    return (
        config["strategy"], config["backend"], config["threads"], config["batch_size"], config["fuse_post"],
        tuple(sorted(config["knobs"].items())),
    )


def spaces_for(task: Graph | Sequence[Op], batches: Sequence[int], options: SpaceOptions | None = None) -> list[TaskSpace]:
    return [TaskSpace(as_graph(task), b, options or SpaceOptions()) for b in batches]
