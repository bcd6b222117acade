"""``tune``: compose the roles (task scheduler, search strategy, cost model, measurer, database) for a model.

The logic lives in the roles: :mod:`tuner.scheduler` shares the budget,
:mod:`tuner.search` proposes, :mod:`cost_model` ranks, :mod:`tuner.measure`
builds and times, :mod:`records` keeps everything.  Here: convert the model,
make its tasks and jobs, run the scheduler, pick each batch size's best
partition, build the winners' artifacts (in the measurer's worker, within the
deadline) and write the model index that ``tuner.load`` finds without parsing
the model.  Deploy-time loading lives in :mod:`tuner.deploy`.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

import records
import strategies
from records import WorkloadRecord
from strategies.compile import CompiledTask, resolve_config
from strategies.ground.config import Config
from strategies.ground.device import Device, current_device
from strategies.inputs import as_2d_float
from strategies.model import ConvertedModel
from strategies.sampling import sample_inputs

from .artifact import ARTIFACT_FORMAT, task_artifact_bytes
from .deploy import index_bytes, load, model_keys, store_index  # noqa: F401  - load: tuner.tuning.load stays
from .job import Budget, Job, TuneContext
from .measure import MeasureResult, MeasureSettings, Measurer, make_task_inputs
from .partition import (Task, enumerate_partitions, needs_float32, run_reference, sources_of, structure_hash,
                        unique_tasks, verified)
from .report import JobReport, TuneReport, _fmt_s
from .scheduler import TaskScheduler, make_scheduler
from .search import SearchSettings, SearchStrategy, make_search
from .space import SpaceOptions, TaskSpace, thread_options

log = logging.getLogger(__name__)

DEFAULT_TIME_BUDGET = 300.0  # seconds, when neither trials nor time_budget is given
DEFAULT_BATCH_SIZES = (1, 1024, 65536)  # single rows, 1,024-row calls, large batches
SYNTHETIC_ROWS = 4096
RESERVE_SHARE = 0.3  # at most this share of a time budget is kept back for the winners' builds


def _open(db: Any) -> Any:
    return db if isinstance(db, records.Database) else records.open_database(db)


def make_cost_model(cost_model: Any, db: Any, device: Device) -> Any:
    """The cost model called ``cost_model`` (``device``: the device's learned model with a heuristic
    warm-up, the default; ``heuristic``; ``xgb``: a fresh learned model), or ``cost_model`` itself."""
    from cost_model import CostModel, HeuristicCostModel, XGBCostModel
    from cost_model.tuning import for_device

    if isinstance(cost_model, CostModel):
        return cost_model
    if cost_model in (None, "device"):
        return for_device(db, device)
    if cost_model == "heuristic":
        return HeuristicCostModel()
    if cost_model == "xgb":
        return XGBCostModel()
    raise ValueError(f"unknown cost model {cost_model!r}; expected 'device', 'heuristic', 'xgb' or a CostModel")


def task_inputs(partitions: list[list[Task]], X: np.ndarray) -> dict[str, np.ndarray]:
    """Each task's input rows (by workload hash): ``X`` run by the reference through the tasks it reads."""
    out: dict[str, np.ndarray] = {}
    for part in partitions:
        run_reference(part, X, keep=out)
    return out


def tune(
    model: Any,
    X: Any = None,
    *,
    db: Any = None,
    batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES,
    trials: int | None = None,
    time_budget: float | None = None,
    threads: int | None = None,
    progress: bool = True,
    backends: Sequence[str] | None = None,
    measurer: Any = None,
    cost_model: Any = None,
    search: str | SearchStrategy | None = None,
    scheduler: str | TaskScheduler | None = None,
    settings: SearchSettings | None = None,
    measure_settings: MeasureSettings | None = None,
    client: Any = None,
) -> TuneReport:
    """Tune ``model`` for this machine at each batch size and store trials and winning artifacts in ``db``.

    ``X``: sample inputs (else synthetic rows drawn from the model's own thresholds).  A float32 ``X``
    (array, tensor or all-float32 frame) says the model will be served float32 rows: then plans that are
    exact for float32 values only are tuned too (float64-comparing tree ensembles, LightGBM's and
    HistGradientBoosting's, compared in float32: ``strategies.precision``), kept beside the exact plan when
    faster, and the Predictor gives them float32 arrays only.
    ``batch_sizes``: the default tunes a plan for single rows, for 1,024-row
    calls and for large batches (65,536 rows, the plan a call of 10,000 rows or
    more uses), so large batches are not served by a small batch's plan in chunks.
    Budget: ``trials`` measured candidates and/or ``time_budget`` seconds (default
    5 minutes when neither is given); with a time budget the call returns within
    ``1.1 * time_budget + 10`` seconds, the winners' builds included.  Re-running
    resumes: configs already in the database are not measured again.

    The roles, by name or instance: ``search`` (``auto``, ``grid``, ``tpe``,
    ``evolutionary``), ``scheduler`` (``gradient``, ``round-robin``),
    ``cost_model`` (``device``, ``heuristic``, ``xgb`` or a ``cost_model.CostModel``),
    ``measurer`` (default: a worker process with ``measure_settings``).

    ``client``: a ``dask.distributed.Client``: candidates are built and timed on
    the cluster's workers that run on this device, one per worker at a time, with
    at most the threads each worker declares (:mod:`tuner.dask_measure`); this
    process records every result.
    """
    t0 = time.monotonic()
    if trials is None and time_budget is None:
        time_budget = DEFAULT_TIME_BUDGET
    budget = Budget(trials=trials, seconds=time_budget, started=t0)
    conv = strategies.convert(model)
    batches = sorted({int(b) for b in batch_sizes})
    if not batches or batches[0] < 1:
        raise ValueError(f"batch_sizes must be positive integers, got {list(batch_sizes)}")
    device = current_device()
    database = _open(db)
    own_measurer = measurer is None
    if measurer is None and client is not None:
        from .dask_measure import DaskMeasurer

        measurer = DaskMeasurer(client, measure_settings, device)
    measurer = measurer or Measurer(measure_settings or MeasureSettings())
    cm = None
    try:
        database.register_device(device)
        partitions, jobs, default = _jobs(conv, X, database, batches, threads, backends,
                                          max_threads=getattr(measurer, "max_threads", None))
        t_prepared = time.monotonic()
        cm = make_cost_model(cost_model, database, device)
        bar = _progress(progress, budget)

        def on_trial(job: Job, cfg: Config, res: MeasureResult) -> None:
            budget.reserve_s = _build_reserve(jobs, budget)
            bar.update(job, res)

        ctx = TuneContext(measurer=measurer, cost_model=cm, db=database, device=device, budget=budget,
                          search=make_search(search, settings), settings=settings or SearchSettings(),
                          on_trial=on_trial)
        try:
            make_scheduler(scheduler).run(jobs, ctx)
        finally:
            bar.close()
        t_searched = time.monotonic()
        chosen, narrow, tuned_lat = _choose(partitions, jobs, batches)
        build_s = {(j.task.workload_hash, j.batch, c.key): r.build_s for j in jobs for c, r in j.measured.values()}
        stored, skipped = _cache_winners(conv, database, device, [*chosen.items(), *narrow.items()], measurer,
                                         budget, build_s)
        if chosen and not skipped:
            _store_index(model, conv, database, device, chosen)
        t_built = time.monotonic()
    finally:
        if cm is not None and hasattr(cm, "close"):
            cm.close()
        if own_measurer:
            measurer.close()
        if not isinstance(db, records.Database):
            database.close()
    whole = Task(conv.graph).workload_hash
    default_lat = {}
    for j in jobs:
        hit = j.result(default) if j.task.workload_hash == whole else None
        if hit is not None and hit.ok:
            default_lat[j.batch] = hit.median_s
    return TuneReport(
        model=conv.source, device=device.summary(), db=database.url, jobs=[_job_report(j, default) for j in jobs],
        tuned_latency_s=tuned_lat, default_latency_s=default_lat,
        chosen={b: [dict(cfg) for _, cfg in narrow.get(b, parts)] for b, parts in chosen.items()},
        trials_measured=budget.used_trials, seconds=time.monotonic() - t0, artifacts=stored,
        time_s={"prepare": t_prepared - t0, "search": t_searched - t_prepared, "builds": t_built - t_searched},
        skipped_builds=skipped,
    )


def _jobs(conv: ConvertedModel, X: Any, database: Any, batches: list[int], threads: int | None,
          backends: Sequence[str] | None, max_threads: int | None = None,
          ) -> tuple[list[list[Task]], list[Job], Config]:
    """The model's partitions (checked against the reference), and one job per (task, batch size);
    ``max_threads`` caps the candidates' threads (a cluster's workers declare fewer cores than the device)."""
    if X is None:
        Xs = sample_inputs(conv, SYNTHETIC_ROWS, seed=0, nan=conv.input.allow_nan, inf=conv.input.allow_inf)
    else:
        Xs = np.asarray(as_2d_float(X, conv.input, what=conv.source), dtype=np.float64)
        if len(Xs) == 0:
            raise ValueError("X has no rows: give sample inputs, or None for synthetic ones")
    partitions = verified(enumerate_partitions(conv.graph, float32_input=holds_float32(X)), conv.graph, Xs)
    tasks = unique_tasks(partitions)
    for t in tasks:
        database.register_workload(WorkloadRecord(t.workload_hash, t.summary(), tuple(op.kind for op in t.ops)))
    inputs_of = task_inputs(partitions, Xs)
    if holds_float32(X):  # served float32 rows: tasks reading the model's input are timed on them, as they run
        x32 = Xs.astype(np.float32)  # exact: Xs holds X's float32 values
        inputs_of = {h: x32 if v is Xs else v for h, v in inputs_of.items()}
    if threads and max_threads and threads > max_threads:
        raise ValueError(f"threads={threads}, but the measuring workers declare at most {max_threads} threads")
    thread_values = (threads,) if threads else None
    if max_threads and not threads:
        thread_values = tuple(t for t in thread_options(SpaceOptions()) if t <= max_threads)
        threads = max(thread_values)  # the untuned default too
    options = SpaceOptions(backends=tuple(backends) if backends else None, threads=thread_values)
    given = {"threads": threads} if threads else {}
    default = resolve_config(conv.graph, given)
    whole = Task(conv.graph).workload_hash  # the untuned default serves the whole graph: its job times it
    jobs = []
    leaders: dict[tuple[str, int], Job] = {}
    for t in tasks:
        xt = inputs_of[t.workload_hash]
        shape = structure_hash(t.graph)
        for b in batches:
            job = Job(t, b, TaskSpace(t.graph, b, options), _inputs_factory(t, xt, b))
            job.leader = leaders.setdefault((shape, b), job) if t.workload_hash != whole else None
            if job.leader is job:
                job.leader = None
            # the strategies' starting points, else the task's own default: every job measures something,
            # so every partition gets a complete latency
            job.seed_configs = job.space.suggested() or [resolve_config(t.graph, given)]
            if t.workload_hash == whole:
                job.default_config = default
            jobs.append(job)
    return partitions, jobs, default


def holds_float32(X: Any) -> bool:
    """Whether sample inputs ``X`` are float32 (an array, tensor or all-float32 frame): the model will
    then be served float32 rows, and plans exact for those only are tuned too."""
    if X is None:
        return False
    dtype = getattr(X, "dtype", None)
    if dtype is not None:
        return str(dtype) in ("float32", "torch.float32")
    dtypes = getattr(X, "dtypes", None)
    return dtypes is not None and len(dtypes) > 0 and all(str(d) == "float32" for d in dtypes)


def _inputs_factory(task: Task, X: np.ndarray, batch: int):
    return lambda: make_task_inputs(task.graph, X, batch, output="out")


def _job_report(job: Job, default: Config) -> JobReport:
    best = job.best
    statuses: dict[str, int] = {}
    for _, r in job.measured.values():
        statuses[r.status] = statuses.get(r.status, 0) + 1
    d = job.result(default)
    return JobReport(
        task=job.task.summary(), workload_hash=job.task.workload_hash, batch_size=job.batch,
        trials=len(job.measured), best_config=dict(best[0]) if best else None,
        best_latency_s=best[1].median_s if best else None,
        default_latency_s=d.median_s if d is not None and d.ok else None, statuses=statuses,
    )


def _choose(partitions: list[list[Task]], jobs: list[Job], batches: list[int]):
    """Per batch, the partition whose tasks' best latencies sum lowest, with each task's best config: among
    the partitions exact for every input (``chosen``), and among those exact for float32 inputs only when
    one is faster (``narrow``); ``latency``: the faster of the two."""
    by_key = {(j.task.workload_hash, j.batch): j for j in jobs}
    chosen: dict[int, list[tuple[Task, Config]]] = {}
    narrow: dict[int, list[tuple[Task, Config]]] = {}
    latency: dict[int, float] = {}
    for b in batches:
        best: dict[bool, tuple[float, list]] = {}
        for part in partitions:
            picks = [by_key[(t.workload_hash, b)].best for t in part]
            if any(p is None for p in picks):
                continue
            total = sum(p[1].median_s for p in picks)
            f32 = needs_float32(part)
            if f32 not in best or total < best[f32][0]:
                best[f32] = (total, [(t, p[0]) for t, p in zip(part, picks)])
        if False in best:
            latency[b], chosen[b] = best[False]
            if True in best and best[True][0] < best[False][0]:
                latency[b], narrow[b] = best[True]
    return chosen, narrow, latency


def _build_reserve(jobs: Sequence[Job], budget: Budget) -> float:
    """Seconds to keep for building the current winners (each job's best, as measured), capped."""
    if budget.seconds is None:
        return 0.0
    total = 0.0
    for j in jobs:
        best = j.best
        if best is not None and best[1].build_s:
            total += 1.5 * best[1].build_s + 0.2
    return min(total, RESERVE_SHARE * budget.seconds)


def _needed_outputs(conv: ConvertedModel, last: bool) -> list[str]:
    return sorted({conv.head.source(m) for m in conv.methods}) if last else ["out"]


def _cache_winners(conv: ConvertedModel, db: Any, device: Device, chosen: Sequence[tuple[int, list]], measurer: Any,
                   budget: Budget, build_s: Mapping[tuple, float | None]) -> tuple[int, int]:
    """Build each chosen (task, batch) winner once more and store its artifact: in the measurer's worker
    when it can build (killed at the run's hard deadline), else here.  A build its measured build time
    says would pass the hard deadline is not started.  Returns (stored, skipped)."""
    stored = skipped = 0
    can_build = hasattr(measurer, "build")
    for b, parts in chosen:
        for i, (task, cfg) in enumerate(parts):
            if db.get_artifact(task.workload_hash, device.fingerprint, b, cfg.key, ARTIFACT_FORMAT):
                continue
            outputs = _needed_outputs(conv, i == len(parts) - 1)
            left = budget.hard_deadline - time.monotonic()
            expected = (build_s.get((task.workload_hash, b, cfg.key)) or 0.0) * len(outputs)
            if left <= max(0.5, expected):
                log.warning("no time left to build the artifact of %s at batch %d; it is not stored "
                            "(tune again, or give a larger time budget)", task.summary()[:60], b)
                skipped += 1
                continue
            try:
                if can_build:
                    payload = measurer.build(task.graph, cfg, outputs, timeout_s=budget.timeout())
                else:
                    compiled = CompiledTask(task.graph, cfg)
                    for out in outputs:
                        compiled.program(out)
                    payload = task_artifact_bytes(compiled)
            except (TimeoutError, RuntimeError) as e:
                log.warning("artifact of %s at batch %d not stored: %s", task.summary()[:60], b, e)
                skipped += 1
                continue
            db.store_artifact(workload_hash=task.workload_hash, device_fingerprint=device.fingerprint, batch_size=b,
                              config=dict(cfg), format=ARTIFACT_FORMAT, payload=payload)
            stored += 1
    return stored, skipped


def _store_index(model: Any, conv: ConvertedModel, db: Any, device: Device, chosen: Mapping[int, list]) -> None:
    """The model index ``tuner.load`` finds by the model file's digest: the best plan per batch size over
    everything the database holds for this model (earlier runs included)."""
    from .deploy import best_plans

    plans = [(b, [(t.graph, t.workload_hash, art.config_hash) for t, art in picks],
              sources_of([t for t, _ in picks]), f32)
             for (b, f32), (_, picks) in sorted(best_plans(conv, db, device.fingerprint).items())]
    if plans:
        store_index(db, device, model_keys(model, conv), conv.source, index_bytes(conv, plans))


class _progress:
    """A tqdm bar (trials done, best so far, time left) when asked for; a no-op otherwise."""

    def __init__(self, enabled: bool, budget: Budget):
        self.bar = None
        self.budget = budget
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=budget.trials, unit="trial", desc="tuning", dynamic_ncols=True)

    def update(self, job: Job, res: MeasureResult) -> None:
        if self.bar is None:
            return
        left = self.budget.deadline - time.monotonic()
        self.bar.set_postfix_str(
            f"{job.name()} best {_fmt_s(job.best_latency)}" + ("" if math.isinf(left) else f", {max(left, 0):.0f}s left"),
            refresh=False,
        )
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
