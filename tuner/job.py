"""A tuning job (one task at one tuned batch size), the budget, and one round of a job.

A round of a job:

1. seeds first: the strategies' suggested starting points (``Strategy.suggestions``),
   the best configs of the same task at the other batch sizes (adapted), and the
   untuned default (the reported speedup is against it, so it is always timed in
   full), each once;
2. the search strategy proposes the rest of the round's ``per_round`` configs
   (ranked with the cost model);
3. each is measured (several at once on a measurer with ``parallelism``) and recorded in the
   database as its result arrives (a crash loses nothing);
4. the search strategy is notified and the cost model learns from the round.

A job ends when its space is exhausted or it has not improved for ``patience``
rounds.  A job with a ``leader`` (a task of the same structure, e.g. another
member of a bagging ensemble) is not searched: after the search it measures its
leader's winner (its own seeds when the leader has none).  Trials already in the database are loaded when a job starts and never
measured again.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from sklearn.exceptions import NotFittedError

from cost_model.base import CostModel
from cost_model.features import Candidate
from records import TrialRecord, TrialStatus
from strategies.ground.config import Config

from .measure import MeasureResult, TaskInputs
from .partition import Task
from .search import SearchSettings, SearchStrategy
from .space import TaskSpace

log = logging.getLogger(__name__)


class Measurer(Protocol):
    """The measurer role (``tuner.measure.Measurer``; ``tuner.dask_measure.DaskMeasurer``;
    ``tuner.testing.FakeMeasurer`` in tests).  A measurer that can time several candidates at once also has
    ``parallelism`` (how many) and ``measure_many(task, [(config, best_s), ...], inputs, timeout_s=...)``."""

    def measure(self, task: Any, config: Config, inputs: TaskInputs, *, best_s: float | None = None,
                timeout_s: float | None = None) -> MeasureResult: ...


@dataclass
class Budget:
    """Trials and seconds for a tuning run.

    The search stops ``reserve_s`` before ``deadline`` (the start plus ``seconds``):
    that much is kept for building the winners' artifacts.  Nothing runs past
    ``hard_deadline`` (10% and 5 s of grace): a measurement or build still in
    flight then is killed.
    """

    trials: int | None = None
    seconds: float | None = None
    started: float = field(default_factory=time.monotonic)
    used_trials: int = 0
    reserve_s: float = 0.0
    held_trials: int = 0  # trials kept for the jobs measured after the search (followers of a leader)

    @property
    def deadline(self) -> float:
        """The monotonic time by which the run should be done."""
        return math.inf if self.seconds is None else self.started + self.seconds

    @property
    def hard_deadline(self) -> float:
        """The monotonic time at which anything still running is killed."""
        return math.inf if self.seconds is None else self.started + 1.1 * self.seconds + 9.0

    def left_seconds(self) -> float:
        """Seconds left for the search (the final builds' reserve excluded)."""
        return self.deadline - self.reserve_s - time.monotonic()

    def timeout(self, default: float | None = None, *, search: bool = False) -> float | None:
        """How long one build may take from now: ``default``, cut at the hard deadline (a measurement of the
        search, ``search=True``: cut at the deadline, so the winners' builds keep their time)."""
        left = (self.deadline if search else self.hard_deadline) - time.monotonic()
        if not math.isfinite(left):
            return default
        return max(0.5, left if default is None else min(default, left))

    def spent(self) -> bool:
        return (self.trials is not None and self.used_trials + self.held_trials >= self.trials) \
            or self.left_seconds() <= 0


@dataclass
class Job:
    """One (task, batch size) search and everything it has learned."""

    task: Task
    batch: int
    space: TaskSpace
    inputs: Callable[[], TaskInputs]
    seed_configs: list[Config] = field(default_factory=list)
    default_config: Config | None = None  # the untuned default, measured in the first round
    leader: "Job | None" = None  # a job of the same structure and batch that searches for this one
    measured: dict[str, tuple[Config, MeasureResult]] = field(default_factory=dict)  # by Config.key
    best_history: list[float] = field(default_factory=list)
    rounds: int = 0
    stale_rounds: int = 0
    done: bool = False
    state: dict[str, Any] = field(default_factory=dict)  # the search strategy's per-job state
    walls: list[float] = field(default_factory=list)  # seconds each measurement of this run took
    _inputs: TaskInputs | None = None

    def expected_seconds(self) -> float:
        """How long the next measurement may take (the longest of this job's last 8, 0 before any)."""
        return Job.expected_from(self.walls)

    @staticmethod
    def expected_from(walls: Sequence[float]) -> float:
        return max(walls[-8:], default=0.0)

    @property
    def best(self) -> tuple[Config, MeasureResult] | None:
        ok = [(c, r) for c, r in self.measured.values() if r.ok]
        return min(ok, key=lambda cr: cr[1].median_s) if ok else None

    @property
    def best_latency(self) -> float:
        b = self.best
        return b[1].median_s if b else math.inf

    def result(self, config: Config) -> MeasureResult | None:
        hit = self.measured.get(config.key)
        return hit[1] if hit else None

    def get_inputs(self) -> TaskInputs:
        if self._inputs is None:
            self._inputs = self.inputs()
        return self._inputs

    def name(self) -> str:
        return f"{self.task.main.kind}[{self.task.workload_hash[:8]}]@{self.batch}"


@dataclass
class TuneContext:
    """The roles a tuning run composes, shared by every job."""

    measurer: Measurer
    cost_model: CostModel
    db: Any
    device: Any  # tuner.device.Device (its fingerprint keys the records)
    budget: Budget
    search: SearchStrategy
    settings: SearchSettings = field(default_factory=SearchSettings)
    on_trial: Callable[[Job, Config, MeasureResult], None] | None = None
    out_of_time: bool = False  # set when a measurement was not started for lack of time: the search ends
    walls: list[float] = field(default_factory=list)  # seconds each measurement of this run took, any job

    def expected_seconds(self, job: Job) -> float:
        """How long ``job``'s next measurement may take: the longest of its own recent ones, else of the
        run's (0 before any).  Erring long: a measurement that passes the deadline eats the final builds'
        time."""
        return job.expected_seconds() or Job.expected_from(self.walls)

    @property
    def fingerprint(self) -> str:
        return self.device.fingerprint

    def candidates(self, job: Job, configs: Sequence[Config]) -> list[Candidate]:
        return [Candidate(tuple(job.task.ops), c, job.batch, self.device, job.task.workload_hash) for c in configs]

    def predict(self, job: Job, configs: Sequence[Config]) -> np.ndarray:
        """The cost model's predicted seconds per call (lower is better)."""
        if not configs:
            return np.zeros(0)
        try:
            return np.asarray(self.cost_model.predict(self.candidates(job, configs)), dtype=float)
        except NotFittedError:  # a learned model before its first update: no idea yet, measure in order
            return np.zeros(len(configs))

    # ---- a job's life
    def start(self, job: Job) -> None:
        """Load the job's trials from the database, then let the search strategy set up."""
        for trial in self.db.trials(workload_hash=job.task.workload_hash, device_fingerprint=self.fingerprint,
                                    batch_size=job.batch):
            try:
                cfg = Config.from_json(trial.config)
            except ValueError:
                continue
            res = MeasureResult(trial.status.value, trial.latency_median_s, trial.latency_spread_s,
                                error=trial.error or "")
            job.measured[cfg.key] = (cfg, res)
        if job.measured:
            log.info("%s: resuming with %d trials from the database", job.name(), len(job.measured))
            job.best_history.append(job.best_latency)
        self.search.prepare(job)

    def run_round(self, job: Job, siblings: Sequence[Job] = (), *, seeds_only: bool = False) -> None:
        """One round of ``job`` (see the module docstring); ``seeds_only`` measures the seeds alone."""
        job.rounds += 1
        default = [job.default_config] if job.default_config is not None else []
        led = _leader_best(job)
        own = job.seed_configs + _sibling_bests(job, siblings) if not led else []
        seeds = [c for c in led + own + default if c.key not in job.measured]
        seeds = list({c.key: c for c in seeds}.values())
        if not led:
            job.seed_configs = []
        proposed: list[Config] = []
        if not seeds_only:
            wanted = max(1, self.settings.per_round - len(seeds))  # at least one pick of the search
            seed_keys = {c.key for c in seeds}
            proposed = [c for c in self.search.propose(job, wanted, lambda cs: self.predict(job, cs))
                        if c.key not in seed_keys]
        if not proposed and not seeds:
            job.done = not seeds_only
            return
        predictions = self.predict(job, proposed)
        to_measure = [(c, None) for c in seeds] + [(c, _seconds(p)) for c, p in zip(proposed, predictions)]
        before = job.best_latency
        configs, results = [], []
        width = max(1, int(getattr(self.measurer, "parallelism", 1)))  # candidates measured at once
        while len(configs) < len(to_measure):
            # a measurement expected to end past the search's deadline is not started; seeds of a job the
            # search never reached may use the final builds' reserve, not more
            expected = self.expected_seconds(job)
            if seeds_only:
                if time.monotonic() + expected >= self.budget.deadline:
                    break
            elif self.budget.spent() or expected > self.budget.left_seconds():
                self.out_of_time = self.budget.seconds is not None
                break
            n = width if self.budget.trials is None else max(1, min(width, self.budget.trials - self.budget.used_trials))
            chunk = to_measure[len(configs):len(configs) + n]
            configs += [cfg for cfg, _ in chunk]
            results += self.measure_chunk(job, chunk)
        self.search.notify(job, configs, results)
        if configs:
            lat = [r.median_s if r.ok and r.median_s else math.nan for r in results]
            self.cost_model.update(self.candidates(job, configs), lat)
        after = job.best_latency
        job.best_history.append(after)
        improved = math.isfinite(after) and (not math.isfinite(before) or after < before * (1 - self.settings.min_improvement))
        job.stale_rounds = 0 if improved else job.stale_rounds + 1
        if job.stale_rounds >= self.settings.patience:
            job.done = True
            log.info("%s: no improvement for %d rounds; best %.3g s", job.name(), job.stale_rounds, after)

    def _best_for(self, job: Job, cfg: Config) -> float | None:
        is_default = job.default_config is not None and cfg.key == job.default_config.key
        return None if is_default else job.best_latency  # the default is the speedup's reference: timed in full

    def measure(self, job: Job, cfg: Config, prediction: float | None) -> MeasureResult:
        started = time.time()
        t0 = time.monotonic()
        res = self.measurer.measure(job.task.graph, cfg, job.get_inputs(), best_s=self._best_for(job, cfg),
                                    timeout_s=self.budget.timeout(search=True))
        return self._record(job, cfg, res, prediction, started, time.monotonic() - t0)

    def measure_chunk(self, job: Job, chunk: Sequence[tuple[Config, float | None]]) -> list[MeasureResult]:
        """Measure ``chunk`` (config, predicted seconds) at once when the measurer can (``measure_many``), and
        record each result once."""
        if len(chunk) == 1 or not hasattr(self.measurer, "measure_many"):
            return [self.measure(job, cfg, prediction) for cfg, prediction in chunk]
        started = time.time()
        t0 = time.monotonic()
        results = self.measurer.measure_many(job.task.graph, [(cfg, self._best_for(job, cfg)) for cfg, _ in chunk],
                                             job.get_inputs(), timeout_s=self.budget.timeout(search=True))
        wall = time.monotonic() - t0
        return [self._record(job, cfg, res, prediction, started, wall) for (cfg, prediction), res in zip(chunk, results)]

    def _record(self, job: Job, cfg: Config, res: MeasureResult, prediction: float | None, started: float,
                wall: float) -> MeasureResult:
        job.walls.append(wall)
        self.walls.append(wall)
        self.budget.used_trials += 1
        job.measured[cfg.key] = (cfg, res)
        if res.status == "timeout" and time.monotonic() >= self.budget.deadline - 0.5:
            # cut by the run's deadline, not by its own slowness: not a result to keep (a later run
            # measures it again)
            log.info("%s: a measurement was stopped at the deadline; not recorded", job.name())
            return res
        self.db.add_trial(TrialRecord(
            workload_hash=job.task.workload_hash, device_fingerprint=self.fingerprint, batch_size=job.batch,
            config=dict(cfg), status=TrialStatus(res.status), latency_median_s=res.median_s,
            latency_spread_s=res.spread_s, error=res.error or None, cost_prediction=prediction,
            started_at=datetime.fromtimestamp(started, tz=timezone.utc),
        ))
        if self.on_trial is not None:
            self.on_trial(job, cfg, res)
        log.debug("%s %s -> %s %s", job.name(), cfg, res.status, res.median_s)
        return res


def _sibling_bests(job: Job, siblings: Sequence[Job]) -> list[Config]:
    """The best configs found for the same task at other batch sizes, adapted to this job's."""
    out = []
    for other in siblings:
        if other is job or other.task.workload_hash != job.task.workload_hash:
            continue
        best = other.best
        cfg = job.space.adapt(best[0]) if best is not None else None
        if cfg is not None:
            out.append(cfg)
    return out


def _leader_best(job: Job) -> list[Config]:
    """The best config of the job's leader, adapted to its task (nothing when it has none, or no leader)."""
    best = job.leader.best if job.leader is not None else None
    cfg = job.space.adapt(best[0]) if best is not None else None
    return [cfg] if cfg is not None else []


def _seconds(p: float) -> float | None:
    return float(p) if math.isfinite(p) and p > 0 else None
