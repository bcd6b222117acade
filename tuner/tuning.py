"""``tune`` (offline, once per device) and ``load`` (at deploy time): the wiring, not the logic."""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import optuna

import records
import strategies
from records import WorkloadRecord
from strategies import reference
from strategies.compile import CompiledTask, resolve_config
from strategies.errors import NotTunedError
from strategies.inputs import as_2d_float
from strategies.model import ConvertedModel
from strategies.sampling import sample_inputs

from .artifact import load_task_artifact, task_artifact_bytes
from .device import Device, current_device
from .measure import MeasureResult, MeasureSettings, Measurer, make_task_inputs
from .partition import Task, enumerate_partitions, unique_tasks, verified
from .predictor import Plan, Predictor
from .search import Budget, Job, Search, SearchSettings
from .space import SpaceOptions, TaskSpace

log = logging.getLogger(__name__)

DEFAULT_TIME_BUDGET = 300.0  # seconds, when neither trials nor time_budget is given
ARTIFACT_FORMAT = "tunebird-task"
SYNTHETIC_ROWS = 4096


@dataclass
class JobReport:
    task: str
    workload_hash: str
    batch_size: int
    trials: int
    best_config: dict[str, Any] | None
    best_latency_s: float | None
    default_latency_s: float | None
    statuses: dict[str, int]


@dataclass
class TuneReport:
    """What ``tune`` tried and found.  ``speedup[b]`` is untuned default latency / tuned latency at batch b."""

    model: str
    device: str
    db: str
    jobs: list[JobReport]
    tuned_latency_s: dict[int, float]
    default_latency_s: dict[int, float]
    chosen: dict[int, list[dict[str, Any]]]
    trials_measured: int
    seconds: float
    artifacts: int = 0

    @property
    def speedup(self) -> dict[int, float]:
        return {
            b: self.default_latency_s[b] / t
            for b, t in self.tuned_latency_s.items()
            if b in self.default_latency_s and t > 0
        }

    def rows(self) -> list[list[str]]:
        """One row per batch size: tuned vs untuned latency and the chosen strategy per task."""
        out = []
        for b in sorted(self.tuned_latency_s):
            t = self.tuned_latency_s[b]
            d = self.default_latency_s.get(b)
            choice = " + ".join(f"{c['strategy']}@{c['backend']}" for c in self.chosen.get(b, []))
            out.append([
                str(b), _fmt_s(d), _fmt_s(t), f"{d / t:.2f}x" if d and t else "-",
                f"{b / t:,.0f}" if t else "-", choice,
            ])
        return out


def _fmt_s(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms"


# --------------------------------------------------------------------------- rankers until the cost model learns


class EmpiricalRanker:
    """Ranks by what this search has measured: unseen (strategy, backend) pairs first, then by their mean."""

    def __init__(self) -> None:
        self.seen: dict[tuple, list[float]] = {}

    def predict(self, task: Task, configs: Sequence[Mapping[str, Any]], batch: int) -> np.ndarray:
        out = []
        for c in configs:
            vals = self.seen.get((task.workload_hash, batch, c["strategy"], c["backend"]))
            out.append(0.0 if not vals else math.exp(float(np.mean(vals))))
        return np.array(out)

    def observe(self, task: Task, batch: int, configs: Sequence[Mapping[str, Any]], results: Sequence[MeasureResult]) -> None:
        for c, r in zip(configs, results):
            key = (task.workload_hash, batch, c["strategy"], c["backend"])
            self.seen.setdefault(key, []).append(math.log(r.median_s) if r.ok else 10.0)


def default_ranker(db: Any, device: Device) -> Any:
    """The device's learned cost model (transferred from earlier sessions) when available."""
    try:
        from cost_model.tuning import ranker_for  # noqa: PLC0415
    except ImportError:
        return EmpiricalRanker()
    return ranker_for(db, device)


# --------------------------------------------------------------------------- tune


def _open(db: Any) -> Any:
    return db if isinstance(db, records.Database) else records.open_database(db)


def task_inputs(partitions: list[list[Task]], X: np.ndarray) -> dict[str, np.ndarray]:
    """Each task's input rows (by workload hash): ``X`` run by the reference through the tasks before it."""
    out: dict[str, np.ndarray] = {}
    for part in partitions:
        v = X
        for t in part:
            out.setdefault(t.workload_hash, v)
            if t is not part[-1]:
                v = reference.evaluate(t.graph, v)
    return out


def tune(
    model: Any,
    X: Any = None,
    *,
    db: Any = None,
    batch_sizes: Iterable[int] = (1, 1024),
    trials: int | None = None,
    time_budget: float | None = None,
    threads: int | None = None,
    progress: bool = True,
    backends: Sequence[str] | None = None,
    measurer: Any = None,
    ranker: Any = None,
    settings: SearchSettings | None = None,
    measure_settings: MeasureSettings | None = None,
) -> TuneReport:
    """Tune ``model`` for this machine at each batch size and store trials and winning artifacts in ``db``.

    ``X``: sample inputs (else synthetic rows drawn from the model's own thresholds).
    Budget: ``trials`` measured candidates and/or ``time_budget`` seconds (default
    5 minutes when neither is given).  Re-running resumes: configs already in the
    database are not measured again.
    """
    t0 = time.monotonic()
    conv = strategies.convert(model)
    batches = sorted({int(b) for b in batch_sizes})
    if not batches or batches[0] < 1:
        raise ValueError(f"batch_sizes must be positive integers, got {list(batch_sizes)}")
    device = current_device()
    database = _open(db)
    database.register_device(device)
    if X is None:
        Xs = sample_inputs(conv, SYNTHETIC_ROWS, seed=0, nan=conv.input.allow_nan, inf=conv.input.allow_inf)
    else:
        Xs = np.asarray(as_2d_float(X, conv.input, what=conv.source), dtype=np.float64)
        if len(Xs) == 0:
            raise ValueError("X has no rows: give sample inputs, or None for synthetic ones")
    partitions = verified(enumerate_partitions(conv.graph), conv.graph, Xs)
    tasks = unique_tasks(partitions)
    for t in tasks:
        database.register_workload(WorkloadRecord(t.workload_hash, t.summary(), tuple(op.kind for op in t.ops)))
    inputs_of = task_inputs(partitions, Xs)
    options = SpaceOptions(backends=tuple(backends) if backends else None, threads=(threads,) if threads else None)
    default = resolve_config(conv.graph, {"threads": threads} if threads else {})
    whole = Task(conv.graph)  # the untuned default serves the whole graph: its job times the default
    jobs = []
    for t in tasks:
        xt = inputs_of[t.workload_hash]
        for b in batches:
            job = Job(t, b, TaskSpace(t.graph, b, options), _inputs_factory(t, xt, b))
            # the strategies' starting points, else the task's own default: every job measures something,
            # so every partition gets a complete latency
            job.seed_configs = job.space.suggested() or [resolve_config(t.graph, {"threads": threads} if threads
                                                                         else {})]
            if t.workload_hash == whole.workload_hash:
                job.default_config = default
            jobs.append(job)
    if trials is None and time_budget is None:
        time_budget = DEFAULT_TIME_BUDGET
    budget = Budget(trials=trials, seconds=time_budget)
    bar = _progress(progress, budget)
    own_measurer = measurer is None
    measurer = measurer or Measurer(measure_settings or MeasureSettings())
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # restored below: no lasting global change
    try:
        search = Search(
            jobs, measurer=measurer, ranker=ranker or default_ranker(database, device), db=database,
            device_fingerprint=device.fingerprint, budget=budget, settings=settings, on_trial=bar.update,
        )
        search.run()
    finally:
        optuna.logging.set_verbosity(verbosity)
        bar.close()
        if own_measurer:
            measurer.close()
    chosen, tuned_lat = _choose(partitions, jobs, batches)
    stored = _cache_winners(conv, database, device, chosen)
    default_lat = {}
    for j in jobs:
        if j.task.workload_hash == whole.workload_hash:
            hit = _find(j, default)
            if hit is not None and hit.ok:
                default_lat[j.batch] = hit.median_s
    report = TuneReport(
        model=conv.source, device=device.summary() if hasattr(device, "summary") else device.fingerprint,
        db=database.url, jobs=[_job_report(j, default) for j in jobs], tuned_latency_s=tuned_lat,
        default_latency_s=default_lat,
        chosen={b: [cfg for _, cfg in parts] for b, parts in chosen.items()},
        trials_measured=budget.used_trials, seconds=time.monotonic() - t0, artifacts=stored,
    )
    if db is None or not isinstance(db, records.Database):
        database.close()
    return report


def _inputs_factory(task: Task, X: np.ndarray, batch: int):
    return lambda: make_task_inputs(task.graph, X, batch, output="out")


def _find(job: Job, config: Mapping[str, Any]) -> MeasureResult | None:
    from .space import config_key

    hit = job.measured.get(config_key(config))
    return hit[1] if hit else None


def _job_report(job: Job, default: Mapping[str, Any]) -> JobReport:
    best = job.best
    statuses: dict[str, int] = {}
    for _, r in job.measured.values():
        statuses[r.status] = statuses.get(r.status, 0) + 1
    d = _find(job, default)
    return JobReport(
        task=job.task.summary(), workload_hash=job.task.workload_hash, batch_size=job.batch,
        trials=len(job.measured), best_config=best[0] if best else None,
        best_latency_s=best[1].median_s if best else None,
        default_latency_s=d.median_s if d is not None and d.ok else None, statuses=statuses,
    )


def _choose(partitions: list[list[Task]], jobs: list[Job], batches: list[int]):
    """Per batch, the partition whose tasks' best latencies sum lowest, with each task's best config."""
    by_key = {(j.task.workload_hash, j.batch): j for j in jobs}
    chosen: dict[int, list[tuple[Task, dict[str, Any]]]] = {}
    latency: dict[int, float] = {}
    for b in batches:
        best_total, best_part = math.inf, None
        for part in partitions:
            picks = [by_key[(t.workload_hash, b)].best for t in part]
            if any(p is None for p in picks):
                continue
            total = sum(p[1].median_s for p in picks)
            if total < best_total:
                best_total, best_part = total, [(t, p[0]) for t, p in zip(part, picks)]
        if best_part is not None:
            chosen[b], latency[b] = best_part, best_total
    return chosen, latency


def _needed_outputs(conv: ConvertedModel, last: bool) -> set[str]:
    return {conv.head.source(m) for m in conv.methods} if last else {"out"}


def _cache_winners(conv: ConvertedModel, db: Any, device: Device, chosen: Mapping[int, list]) -> int:
    """Compile each chosen (task, batch) winner once more and store its artifact."""
    stored = 0
    for b, parts in chosen.items():
        for i, (task, cfg) in enumerate(parts):
            if db.get_artifact(task.workload_hash, device.fingerprint, b, records.config_hash(cfg), ARTIFACT_FORMAT):
                continue
            compiled = CompiledTask(task.graph, cfg)
            for out in _needed_outputs(conv, i == len(parts) - 1):
                compiled.program(out)
            db.store_artifact(workload_hash=task.workload_hash, device_fingerprint=device.fingerprint, batch_size=b,
                              config=cfg, format=ARTIFACT_FORMAT, payload=task_artifact_bytes(compiled))
            stored += 1
    return stored


class _progress:
    """A tqdm bar (trials done, best so far, time left) when asked for; a no-op otherwise."""

    def __init__(self, enabled: bool, budget: Budget):
        self.bar = None
        self.budget = budget
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=budget.trials, unit="trial", desc="tuning", dynamic_ncols=True)

    def update(self, job: Job, cfg: Mapping[str, Any], res: MeasureResult) -> None:
        if self.bar is None:
            return
        left = self.budget.left_seconds()
        self.bar.set_postfix_str(
            f"{job.name()} best {_fmt_s(job.best_latency)}" + ("" if math.isinf(left) else f", {max(left, 0):.0f}s left"),
            refresh=False,
        )
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- load


def load(model_or_path: Any, *, db: Any = None, device: Device | str | None = None, strict: bool = False) -> Predictor:
    """The predictor tuned for this model on this device (or ``device``), from the records database.

    Per call it uses the plan tuned for the nearest batch size.  When nothing is
    tuned for this model and device it returns the untuned default with a
    warning, or raises ``NotTunedError`` when ``strict``.
    """
    conv = strategies.convert(model_or_path)
    fp = device if isinstance(device, str) else (device or current_device()).fingerprint
    database = _open(db)
    try:
        plans = _plans_from_records(conv, database, fp)
    finally:
        if not isinstance(db, records.Database):
            database.close()
    if not plans:
        msg = (f"nothing is tuned for {conv.source} on device {fp[:12]} in {database.url}; "
               "using the untuned default (run tunebird tune first)")
        if strict:
            raise NotTunedError(msg)
        warnings.warn(msg, stacklevel=2)
        from .api import compile as compile_default

        return compile_default(conv)
    return Predictor(conv, plans, tuned=True, origin="records")


def _plans_from_records(conv: ConvertedModel, db: Any, fp: str) -> list[Plan]:
    partitions = enumerate_partitions(conv.graph)
    options: dict[int, tuple[float, list[tuple[Task, Any]]]] = {}
    for part in partitions:
        per_task = []
        for t in part:
            best: dict[int, tuple[float, Any]] = {}
            for art in db.artifacts(t.workload_hash, fp):
                trial = db.get_trial(t.workload_hash, fp, art.batch_size, art.config_hash)
                lat = trial.latency_median_s if trial is not None and trial.latency_median_s else math.inf
                if art.batch_size not in best or lat < best[art.batch_size][0]:
                    best[art.batch_size] = (lat, art)
            per_task.append(best)
        for b in set.intersection(*(set(d) for d in per_task)) if per_task else ():
            total = sum(d[b][0] for d in per_task)
            if b not in options or total < options[b][0]:
                options[b] = (total, [(t, d[b][1]) for t, d in zip(part, per_task)])
    plans = []
    for b, (_, picks) in sorted(options.items()):
        tasks = tuple(
            load_task_artifact(db.fetch_artifact(art), t.graph, what=f"artifact for {t.summary()[:40]} at batch {b}")
            for t, art in picks
        )
        plans.append(Plan(tasks, tuned_batch=b))
    return plans
