"""The search: optuna proposes, the cost model screens, the measurer decides; a scheduler shares the budget.

A *job* is one (task, tuned batch size).  Each round of a job:

1. proposes a pool of configs: the whole remaining grid when the space is small,
   otherwise ``pool_size`` asks of an optuna TPE study (define-by-run over the
   space's declared dimensions);
2. ranks the pool with the cost model and measures the top ``per_round`` (one
   of them drawn at random from the rest, to keep exploring);
3. records every measured trial in the database at once (a crash loses nothing),
   tells optuna, and refits the cost model.

A job's first round also measures its seed configs: the strategies' suggested
starting points (``Strategy.suggestions``), so the cost model learns from good
programs early, then the untuned default (the speedup is reported against it,
so it is always timed in full).  Every round
also measures the best configs of the same task at the other batch sizes
(adapted to this one), when not measured yet.  A job that a time budget never
reached still gets its seeds measured after the budget is spent.

The scheduler (after Ansor's) first gives every job a round, then picks the
job whose best latency is falling fastest relative to its batch's end-to-end
latency.  A job ends when its space is exhausted or it has not improved for
``patience`` rounds; the search ends when the trial or time budget is spent or
every job has ended.  Trials already in the database are reused, not measured
again.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import optuna

from records import TrialRecord, TrialStatus

from .measure import MeasureResult, TaskInputs
from .partition import Task
from .space import TaskSpace, config_key

log = logging.getLogger(__name__)

GRID_LIMIT = 192  # spaces up to this size are searched as a grid, in cost-model order


class MeasurerLike(Protocol):
    def measure(self, task: Any, config: Mapping[str, Any], inputs: TaskInputs, *,
                best_s: float | None = None) -> MeasureResult: ...


class Ranker(Protocol):
    """What the search needs of a cost model: predictions to rank by, and online updates."""

    def predict(self, task: Task, configs: Sequence[Mapping[str, Any]], batch: int) -> np.ndarray:
        """Predicted latency per call in seconds (lower is better; NaN or 0 for "no idea, try it")."""

    def observe(self, task: Task, batch: int, configs: Sequence[Mapping[str, Any]], results: Sequence[MeasureResult]) -> None: ...


@dataclass
class SearchSettings:
    pool_size: int = 64
    per_round: int = 4
    patience: int = 3
    min_improvement: float = 0.02  # a round "improves" when the best drops by more than this fraction
    seed: int = 0


@dataclass
class Budget:
    trials: int | None = None
    seconds: float | None = None
    started: float = field(default_factory=time.monotonic)
    used_trials: int = 0

    def left_seconds(self) -> float:
        return math.inf if self.seconds is None else self.seconds - (time.monotonic() - self.started)

    def spent(self) -> bool:
        return (self.trials is not None and self.used_trials >= self.trials) or self.left_seconds() <= 0


@dataclass
class Job:
    """One (task, batch size) search and everything it has learned."""

    task: Task
    batch: int
    space: TaskSpace
    inputs: Callable[[], TaskInputs]
    seed_configs: list[dict[str, Any]] = field(default_factory=list)
    default_config: dict[str, Any] | None = None  # the untuned default, measured in the first round
    measured: dict[tuple, tuple[dict[str, Any], MeasureResult]] = field(default_factory=dict)
    best_history: list[float] = field(default_factory=list)
    rounds: int = 0
    stale_rounds: int = 0
    done: bool = False
    study: Any = None
    grid: list[dict[str, Any]] | None = None
    _inputs: TaskInputs | None = None

    @property
    def best(self) -> tuple[dict[str, Any], MeasureResult] | None:
        ok = [(c, r) for c, r in self.measured.values() if r.ok]
        return min(ok, key=lambda cr: cr[1].median_s) if ok else None

    @property
    def best_latency(self) -> float:
        b = self.best
        return b[1].median_s if b else math.inf

    def get_inputs(self) -> TaskInputs:
        if self._inputs is None:
            self._inputs = self.inputs()
        return self._inputs

    def name(self) -> str:
        return f"{self.task.main.kind}[{self.task.workload_hash[:8]}]@{self.batch}"


def _params(space: TaskSpace, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """optuna params and distributions naming one config (conditional names keep TPE's groups apart)."""
    s, b = config["strategy"], config["backend"]
    params: dict[str, Any] = {"strategy": s, f"{s}.backend": b}
    dists: dict[str, Any] = {
        "strategy": optuna.distributions.CategoricalDistribution(list(space.strategies)),
        f"{s}.backend": optuna.distributions.CategoricalDistribution(space.strategies[s][1]),
    }
    flat = {**config["knobs"], "threads": config["threads"], "batch_size": config["batch_size"], "fuse_post": config["fuse_post"]}
    for d in space.dimensions(s, b):
        if d.name in flat and flat[d.name] in d.values:
            params[f"{s}.{b}.{d.name}"] = flat[d.name]
            dists[f"{s}.{b}.{d.name}"] = optuna.distributions.CategoricalDistribution(list(d.values))
    return params, dists


def _ask(study: Any, space: TaskSpace) -> tuple[Any, dict[str, Any] | None]:
    trial = study.ask()
    s = trial.suggest_categorical("strategy", list(space.strategies))
    b = trial.suggest_categorical(f"{s}.backend", space.strategies[s][1])
    values = {d.name: trial.suggest_categorical(f"{s}.{b}.{d.name}", list(d.values)) for d in space.dimensions(s, b)}
    return trial, space.make_config(s, b, values)


class Search:
    """Runs jobs against a measurer, a ranker and a records database, within one budget."""

    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        measurer: MeasurerLike,
        ranker: Ranker,
        db: Any,
        device_fingerprint: str,
        budget: Budget,
        settings: SearchSettings | None = None,
        on_trial: Callable[[Job, dict[str, Any], MeasureResult], None] | None = None,
        batch_weights: Mapping[int, float] | None = None,
    ):
        self.jobs = list(jobs)
        self.measurer = measurer
        self.ranker = ranker
        self.db = db
        self.device = device_fingerprint
        self.budget = budget
        self.settings = settings or SearchSettings()
        self.on_trial = on_trial
        self.rng = np.random.default_rng(self.settings.seed)
        for job in self.jobs:
            self._prepare(job)

    # ---- set-up and resume
    def _prepare(self, job: Job) -> None:
        sampler = optuna.samplers.TPESampler(seed=self.settings.seed, n_startup_trials=8, multivariate=True,
                                             group=True, warn_independent_sampling=False)
        job.study = optuna.create_study(sampler=sampler, direction="minimize")
        if job.space.size() <= GRID_LIMIT:
            job.grid = list(job.space.enumerate())
        for trial in self.db.trials(workload_hash=job.task.workload_hash, device_fingerprint=self.device,
                                    batch_size=job.batch):
            res = MeasureResult(trial.status.value, trial.latency_median_s, trial.latency_spread_s, error=trial.error or "")
            job.measured[config_key(trial.config)] = (trial.config, res)
            self._tell_known(job, trial.config, res)
        if job.measured:
            log.info("%s: resuming with %d trials from the database", job.name(), len(job.measured))
            job.best_history.append(job.best_latency)

    def _tell_known(self, job: Job, config: Mapping[str, Any], res: MeasureResult) -> None:
        try:
            params, dists = _params(job.space, config)
            state = optuna.trial.TrialState.COMPLETE if res.ok else optuna.trial.TrialState.FAIL
            value = math.log(res.median_s) if res.ok else None
            job.study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value, state=state))
        except (ValueError, KeyError):  # a stored config outside today's space: keep it out of TPE
            pass

    # ---- the loop
    def run(self) -> None:
        while not self.budget.spent():
            job = self._pick()
            if job is None:
                break
            self._round(job)
        if self.budget.seconds is not None:
            # a job the time budget never reached still gets its seeds measured (the hopeless-candidate
            # cut-off bounds their cost), so no batch size is left with nothing but the default
            for job in self.jobs:
                if job.rounds == 0 and not job.done:
                    self._round(job, seeds_only=True)

    def _pick(self) -> Job | None:
        live = [j for j in self.jobs if not j.done]
        if not live:
            return None
        fresh = [j for j in live if j.rounds == 0]
        if fresh:
            return fresh[0]
        totals: dict[int, float] = {}
        for j in self.jobs:
            if math.isfinite(j.best_latency):
                totals[j.batch] = totals.get(j.batch, 0.0) + j.best_latency

        def gain(j: Job) -> float:
            hist = j.best_history
            if len(hist) < 2 or not math.isfinite(hist[-1]):
                return math.inf
            recent = max(hist[-3] if len(hist) >= 3 else hist[0], hist[-1]) - hist[-1]
            optimistic = 0.05 * hist[-1]  # every job keeps some hope, as Ansor's forward estimate
            return (max(recent, 0.0) + optimistic) / max(totals.get(j.batch, hist[-1]), 1e-12)

        return max(live, key=gain)

    def _proposals(self, job: Job) -> tuple[list[dict[str, Any]], list[Any]]:
        seen = set(job.measured)
        if job.grid is not None:
            pool = [c for c in job.grid if config_key(c) not in seen]
            return pool, []
        pool, asked = [], []
        keys = set()
        for _ in range(self.settings.pool_size):
            trial, cfg = _ask(job.study, job.space)
            if cfg is None:
                job.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            k = config_key(cfg)
            if k in seen or k in keys:
                job.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            keys.add(k)
            pool.append(cfg)
            asked.append(trial)
        return pool, asked

    def _round(self, job: Job, *, seeds_only: bool = False) -> None:
        job.rounds += 1
        pool, asked = ([], []) if seeds_only else self._proposals(job)
        # the strategies' suggestions and the other batch sizes' bests first: when the budget runs out
        # mid-round, the good programs have been measured
        default = [job.default_config] if job.default_config is not None else []
        seeds = [c for c in job.seed_configs + self._sibling_bests(job) + default if config_key(c) not in job.measured]
        seeds = list({config_key(c): c for c in seeds}.values())
        job.seed_configs = []
        if not pool and not seeds:
            job.done = not seeds_only
            return
        chosen: list[int] = []
        if pool:
            pred = np.asarray(self.ranker.predict(job.task, pool, job.batch), dtype=float)
            order = list(np.argsort(pred, kind="stable"))
            k = max(1, self.settings.per_round - len(seeds))  # at least one pick of the cost model
            if len(order) <= k or k < 2:
                chosen = order[:k]
            else:  # the k-1 best predicted, and one more at random to keep exploring
                rest = order[k - 1 :]
                chosen = order[: k - 1] + [rest[int(self.rng.integers(0, len(rest)))]]
        else:
            pred = np.array([])
        seed_keys = {config_key(c) for c in seeds}
        to_measure = [(c, None) for c in seeds] + [
            (pool[i], _seconds(pred[i])) for i in chosen if config_key(pool[i]) not in seed_keys
        ]
        measured_cfgs, results = [], []
        before = job.best_latency
        for cfg, prediction in to_measure:
            if self.budget.spent() and not seeds_only:
                break
            res = self._measure(job, cfg, prediction)
            measured_cfgs.append(cfg)
            results.append(res)
        # tell optuna about this round's asks: values for the measured ones, FAIL for the rest
        done_keys = {config_key(c): r for c, r in zip(measured_cfgs, results)}
        for cfg in seeds:
            r = done_keys.get(config_key(cfg))
            if r is not None:
                self._tell_known(job, cfg, r)
        for trial, cfg in zip(asked, pool):
            r = done_keys.get(config_key(cfg))
            if r is not None and r.ok:
                job.study.tell(trial, math.log(r.median_s))
            else:
                job.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if measured_cfgs:
            self.ranker.observe(job.task, job.batch, measured_cfgs, results)
        after = job.best_latency
        job.best_history.append(after)
        improved = math.isfinite(after) and (not math.isfinite(before) or after < before * (1 - self.settings.min_improvement))
        job.stale_rounds = 0 if improved else job.stale_rounds + 1
        if job.stale_rounds >= self.settings.patience:
            job.done = True
            log.info("%s: no improvement for %d rounds; best %.3g s", job.name(), job.stale_rounds, after)

    def _sibling_bests(self, job: Job) -> list[dict[str, Any]]:
        """The best configs found for the same task at other batch sizes, adapted to this job's."""
        out = []
        for other in self.jobs:
            if other is job or other.task.workload_hash != job.task.workload_hash:
                continue
            best = other.best
            cfg = job.space.adapt(best[0]) if best is not None else None
            if cfg is not None:
                out.append(cfg)
        return out

    def _measure(self, job: Job, cfg: dict[str, Any], prediction: float | None) -> MeasureResult:
        started = time.time()
        is_default = job.default_config is not None and config_key(cfg) == config_key(job.default_config)
        # the default is the reference of the reported speedup: always timed in full
        best = None if is_default else job.best_latency
        res = self.measurer.measure(job.task.graph, cfg, job.get_inputs(), best_s=best)
        self.budget.used_trials += 1
        job.measured[config_key(cfg)] = (cfg, res)
        self.db.add_trial(TrialRecord(
            workload_hash=job.task.workload_hash, device_fingerprint=self.device, batch_size=job.batch,
            config=cfg, status=TrialStatus(res.status), latency_median_s=res.median_s,
            latency_spread_s=res.spread_s, error=res.error or None, cost_prediction=prediction,
            started_at=_utc(started),
        ))
        if self.on_trial is not None:
            self.on_trial(job, cfg, res)
        log.debug("%s %s -> %s %s", job.name(), cfg, res.status, res.median_s)
        return res


def _seconds(p: float) -> float | None:
    return float(p) if math.isfinite(p) and p > 0 else None


def _utc(ts: float):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc)

