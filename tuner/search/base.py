"""The search-strategy role: which configs of a job to measure next.

A search strategy sees one job at a time (a task at one tuned batch size: its
space, what has been measured) and proposes up to ``n`` configs that were not
measured yet, in the order to measure them; the scheduler measures them and
notifies the strategy of the results.  Every strategy ranks with the cost model
it is handed (``predict``: predicted seconds per call, lower is better; 0 or NaN
for "no idea, measure it") and keeps exploring with one pick at random among
the rest (epsilon-greedy, as MetaSchedule's evolutionary search does).

Strategies keep per-job state in ``job.state[self.name]``; they never measure,
write records or train the cost model.  ``make_search(name_or_instance)`` gives
one by name.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence

import numpy as np

from strategies.ground.config import Config

from ..space import TaskSpace

Predict = Callable[[Sequence[Config]], np.ndarray]


class Result(Protocol):
    """What a strategy reads of a measurement (``tuner.measure.MeasureResult``)."""

    @property
    def ok(self) -> bool: ...

    median_s: float | None


class Job(Protocol):
    """What a strategy sees of a job (``tuner.job.Job``): its space, what is measured, its own state."""

    space: TaskSpace
    measured: Mapping[str, tuple[Config, Result]]  # by Config.key
    state: dict[str, Any]  # per-strategy state, keyed by the strategy's name


@dataclass(frozen=True)
class SearchSettings:
    """How each round of a job goes: pool size, measurements per round, patience, exploration seed."""

    pool_size: int = 64
    per_round: int = 4
    patience: int = 3
    min_improvement: float = 0.02  # a round "improves" when the best drops by more than this fraction
    seed: int = 0


class SearchStrategy(abc.ABC):
    """Proposes what to measure next for a job; learns from the results it is notified of."""

    name: ClassVar[str]

    def __init__(self, settings: SearchSettings | None = None) -> None:
        self.settings = settings or SearchSettings()
        self.rng = np.random.default_rng(self.settings.seed)

    def prepare(self, job: Job) -> None:
        """Set up the job's state (called once per job, after any trials from the database are loaded)."""

    @abc.abstractmethod
    def propose(self, job: Job, n: int, predict: Predict) -> list[Config]:
        """Up to ``n`` unmeasured configs to measure next, best first; [] when the space is exhausted."""

    def notify(self, job: Job, configs: Sequence[Config], results: Sequence[Result]) -> None:
        """The results of measuring ``configs`` (proposed by this strategy or not)."""

    def finish(self, job: Job) -> None:
        """The job is over: drop per-job state."""
        job.state.pop(self.name, None)


def pick(pool: Sequence[Config], predicted: np.ndarray, n: int, rng: np.random.Generator,
         job: Job | None = None) -> list[Config]:
    """The ``n - 1`` best predicted of ``pool`` and one more from the rest (exploration): a config of a
    strategy/backend pair the job has not measured yet when the rest has one, else one at random."""
    if not pool or n <= 0:
        return []
    order = list(np.argsort(np.nan_to_num(np.asarray(predicted, dtype=float), nan=0.0), kind="stable"))
    if len(order) <= n or n < 2:
        return [pool[i] for i in order[:n]]
    rest = order[n - 1 :]
    chosen = [pool[i] for i in order[: n - 1]]
    if job is not None:
        seen = measured_pairs(job) | {(c["strategy"], c["backend"]) for c in chosen}
        fresh = [i for i in rest if (pool[i]["strategy"], pool[i]["backend"]) not in seen]
        if fresh:
            rest = fresh
    return chosen + [pool[rest[int(rng.integers(0, len(rest)))]]]


def measured_pairs(job: Job) -> set[tuple[str, str]]:
    """The (strategy, backend) pairs of the configs a job has measured."""
    return {(c["strategy"], c["backend"]) for c, _ in job.measured.values()}


def random_configs(job: Job, count: int, rng: np.random.Generator) -> list[Config]:
    """Up to ``count`` distinct unmeasured configs drawn at random from the job's space."""
    out: dict[str, Config] = {}
    for _ in range(count * 4):
        if len(out) >= count:
            break
        cfg = job.space.sample(rng)
        if cfg is not None and cfg.key not in job.measured:
            out.setdefault(cfg.key, cfg)
    return list(out.values())


_STRATEGIES: dict[str, type[SearchStrategy]] = {}


def register_search(cls: type[SearchStrategy]) -> type[SearchStrategy]:
    """Class decorator: make a search strategy available by name."""
    _STRATEGIES[cls.name] = cls
    return cls


def unmeasured(job: Job, configs: Any) -> list[Config]:
    """``configs`` without the ones measured already or repeated (first occurrence kept)."""
    seen = set(job.measured)
    out = []
    for c in configs:
        if c is not None and c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return out
