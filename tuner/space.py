"""Task -> candidate configs, read from the strategies' and backends' declared knobs.

The space of a task at one tuned batch size is the product of
strategy x backend x the strategy's knobs x the backend's knobs x threads x
chunk size x post-transform fusion, pruned by rule (``resolve_config``: a
strategy that cannot serve the op, an invalid knob combination, a backend of
the wrong family, knobs a backend should not build: ``Strategy.backend_reason``)
before anything is built.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from strategies.ground.device import usable_cores
from strategies.backends.registry import all_backends
from strategies.base import Strategy
from strategies.registry import strategies_for
from strategies.compile import resolve_config
from strategies.ground.config import Config
from strategies.ground.errors import InvalidConfigError
from strategies.ir import Graph, Op, as_graph
from strategies.ir import main_op_index

from .partition import task_reason

CHUNKS = (256, 1024, 4096, 16384, 65536)


@dataclass(frozen=True)
class SpaceOptions:
    """Limits on the space: which backends, thread counts and knob values to consider."""

    backends: tuple[str, ...] | None = None  # None: every available backend
    threads: tuple[int, ...] | None = None  # None: 1 and every power of two up to the core count
    exclude_backends: tuple[str, ...] = ()
    # per knob name, the largest value to search: widens (or narrows) the knob's declared ``searched``
    # values, e.g. ``(("ms_trials", 64),)`` to let candidates run MetaSchedule
    knob_limits: tuple[tuple[str, Any], ...] = ()
    strategies: tuple[str, ...] | None = None  # None: every strategy that computes the task's main op
    # per knob name, exactly the values to search (overrides the declaration and ``knob_limits``)
    knob_values: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def limit(self, knob: str) -> Any:
        return dict(self.knob_limits).get(knob)

    def values(self, knob: Any) -> tuple[Any, ...]:
        """The values of ``knob`` (a ``Knob``) to search under these options."""
        pinned = dict(self.knob_values).get(knob.name)
        return tuple(pinned) if pinned is not None else knob.search_values(self.limit(knob.name))


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
        ]
        self.strategies = {}
        for strat in strategies_for(self.main.kind):
            if strat.unsupported_reason(self.main) is not None:
                continue
            if self.options.strategies is not None and strat.name not in self.options.strategies:
                continue
            # the pairs that compute the whole task (tvm-tir: a kernel that takes its chain of ops)
            fitting = [b for b in allowed if task_reason(self.graph, strat, b) is None
                       and self._builds_on(strat, b)]
            if fitting:
                self.strategies[strat.name] = (strat, fitting)

    def _builds_on(self, strat: type[Strategy], backend: str) -> bool:
        """Whether some searched value of ``strat``'s knobs may be built on ``backend``
        (``Strategy.backend_reason``): a pair with none is no part of the space."""
        if getattr(strat.backend_reason, "__func__", None) is getattr(Strategy.backend_reason, "__func__", None):
            return True
        knobs = strat.knobs
        for combo in itertools.product(*(self.options.values(k) for k in knobs)):
            if strat.backend_reason(self.main, {k.name: v for k, v in zip(knobs, combo)}, backend) is None:
                return True
        return False

    # ---- declarative view (what optuna and the cost model read)
    def dimensions(self, strategy: str, backend: str) -> list[Dimension]:
        strat, _ = self.strategies[strategy]
        dims = [Dimension(k.name, self.options.values(k)) for k in strat.knobs]
        for k in all_backends()[backend].knobs:
            dims.append(Dimension(k.name, self.options.values(k)))
        dims.append(Dimension("threads", thread_options(self.options)))
        dims.append(Dimension("batch_size", chunk_options(self.batch)))
        if not self.graph.post_transform.is_identity:
            dims.append(Dimension("fuse_post", (True, False)))
        return dims

    def make_config(self, strategy: str, backend: str, values: Mapping[str, Any]) -> Config | None:
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
        if strat.task_reason(self.graph, cfg["knobs"]):  # knob values that do not fit this task's chain
            return None
        return cfg

    def values_of(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A config's value of every dimension (knobs, threads, chunk size, fusion) by name."""
        return {**dict(config["knobs"]), "threads": config["threads"], "batch_size": config["batch_size"],
                "fuse_post": config["fuse_post"]}

    def sample(self, rng: Any, tries: int = 16) -> Config | None:
        """A config drawn at random: a strategy/backend pair uniformly, then each dimension's value uniformly
        (redrawn up to ``tries`` times when a rule prunes the draw, so constrained pairs are not starved);
        None when every draw was pruned."""
        if not self.strategies:
            return None
        pairs = [(s, b) for s, (_, bs) in self.strategies.items() for b in bs]
        strategy, backend = pairs[int(rng.integers(len(pairs)))]
        dims = self.dimensions(strategy, backend)
        for _ in range(tries):
            values = {d.name: d.values[int(rng.integers(len(d.values)))] for d in dims}
            cfg = self.make_config(strategy, backend, values)
            if cfg is not None:
                return cfg
        return None

    def mutate(self, config: Mapping[str, Any], rng: Any) -> Config | None:
        """``config`` with one dimension changed at random (or its strategy/backend pair, keeping the values
        that still apply); None when the result is pruned."""
        strategy, backend = config["strategy"], config["backend"]
        if strategy not in self.strategies:
            return None
        values = self.values_of(config)
        dims = [d for d in self.dimensions(strategy, backend) if len(d.values) > 1]
        pairs = [(s, b) for s, (_, bs) in self.strategies.items() for b in bs if (s, b) != (strategy, backend)]
        if pairs and (not dims or rng.random() < 1.0 / (len(dims) + 1)):
            strategy, backend = pairs[int(rng.integers(len(pairs)))]
            kept = {}
            for d in self.dimensions(strategy, backend):
                v = values.get(d.name)
                kept[d.name] = v if v in d.values else d.values[int(rng.integers(len(d.values)))]
            return self.make_config(strategy, backend, kept)
        if not dims:
            return None
        d = dims[int(rng.integers(len(dims)))]
        others = [v for v in d.values if v != values.get(d.name)]
        values[d.name] = others[int(rng.integers(len(others)))]
        return self.make_config(strategy, backend, {k: values[k] for k in (x.name for x in self.dimensions(strategy, backend)) if k in values})

    def suggested(self) -> list[Config]:
        """The strategies' expert starting points (``Strategy.suggestions``) as configs of this space:
        every thread and a chunk of the whole batch (capped at 16384 rows) from 64 rows up, one thread below."""
        threads = thread_options(self.options)
        n_threads = threads[-1] if self.batch >= 64 else threads[0]
        chunks = chunk_options(self.batch)
        chunk = max((c for c in chunks if c <= 16384), default=min(chunks))
        per_strategy = []
        for strategy, (strat, backends) in self.strategies.items():
            mine = []
            for knobs in strat.suggestions(self.main, self.batch):
                for backend in backends:
                    cfg = self.make_config(strategy, backend, {**knobs, "threads": n_threads, "batch_size": chunk})
                    if cfg is not None and self.contains(cfg):
                        mine.append(cfg)
            per_strategy.append(mine)
        # interleaved (each strategy's first suggestion, then each one's second, ...): a short budget
        # measures every strategy's best guess before anyone's second
        return [c for tier in itertools.zip_longest(*per_strategy) for c in tier if c is not None]

    def contains(self, config: Mapping[str, Any]) -> bool:
        """Whether every value of ``config`` is among its dimension's searched values."""
        values = self.values_of(config)
        return all(values[d.name] in d.values for d in self.dimensions(config["strategy"], config["backend"])
                   if d.name in values)

    def adapt(self, config: Mapping[str, Any]) -> Config | None:
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

    def enumerate(self) -> Iterator[Config]:
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


def config_key(config: Mapping[str, Any]) -> str:
    """A config's identity (:attr:`Config.key`, the SHA-256 the records database keys trials by)."""
    return Config.from_json(config).key


def spaces_for(task: Graph | Sequence[Op], batches: Sequence[int], options: SpaceOptions | None = None) -> list[TaskSpace]:
    return [TaskSpace(as_graph(task), b, options or SpaceOptions()) for b in batches]
