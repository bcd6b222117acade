"""Seed the cost model: measure a spread of candidates for a spread of models, then evaluate.

    python bench/seed_costmodel.py                        # ~70 min into bench/results/seed.db, then the evaluation
    python bench/seed_costmodel.py --minutes 5 --quick    # a smoke run
    python bench/seed_costmodel.py --eval-only            # just `tunebird costmodel eval --objective all`

Workloads: synthetic ensembles built directly as IR (varied tree count, depth,
feature count, outputs, categorical splits), small scikit-learn / XGBoost /
LightGBM models trained here, a scaler + logistic-regression pipeline, and the
four Treebeard XGBoost models.  For each workload and batch size it measures
the untuned default config and a stratified random sample of the task's space:
every (strategy, backend) pair gets its quota (cheap builds more, inductor one
per group), interleaved so that a group cut short by its time budget stays
balanced; a pair whose config took over ``--slow`` seconds per call is not
sampled further in that group.

The machine is shared: before each group the script waits while other
processes keep the CPUs busy, and after it re-times the default config; a group
whose two timings of the default differ by more than ``--noise`` is discarded
and measured again.  Each clean group is committed at once, and configs already
in the database are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

# TVM's thread pool pins the calling thread to one core, and torch's intra-op threads created afterwards
# in the same (worker) process share that core: torch configs with 2 threads then run ~100x slower after
# any TVM program ran.  Measure what an unpinned process sees.
os.environ.setdefault("TVM_BIND_THREADS", "0")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import records  # noqa: E402
import strategies  # noqa: E402
from cost_model import default_config, store_workload_ir  # noqa: E402
from records import TrialRecord, TrialStatus  # noqa: E402
from strategies import reference  # noqa: E402
from strategies.ir import PostTransform  # noqa: E402
from strategies.model import ConvertedModel  # noqa: E402
from strategies.sampling import sample_inputs  # noqa: E402
from strategies.testing import as_model, random_ensemble  # noqa: E402
from tuner.device import current_device  # noqa: E402
from tuner.measure import MeasureSettings, Measurer, make_task_inputs  # noqa: E402
from tuner.partition import Task, main_task_index, tasks_for_backend  # noqa: E402
from tuner.space import SpaceOptions, TaskSpace  # noqa: E402

TREEBEARD = REPO.parent / "shared" / "data" / "treebeard"
DEFAULT_DB = REPO / "bench" / "results" / "seed.db"

# configs per (strategy, backend) pair and group; a backend not listed gets DEFAULT_QUOTA
QUOTA = {"tvm-tir": 30, "torch": 4, "torchscript": 4, "tvm": 1, "inductor": 0}
DEFAULT_QUOTA = 2
INDUCTOR_PER_GROUP = 1  # inductor builds take ~10-20 s: one per group, its strategy rotating


@dataclass
class Workload:
    name: str
    make: Callable[[], ConvertedModel]
    big_batch: bool = False  # also measured at --big-batch rows


def _data(n: int, f: int, seed: int, nan: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    y = X[:, 0] + 0.5 * X[:, 1] * X[:, 2] - 0.3 * X[:, 3 % f] + 0.1 * rng.normal(size=n)
    if nan:
        X[rng.random(X.shape) < nan] = np.nan
    return X, y


def _ir(seed: int, **kw: Any) -> Callable[[], ConvertedModel]:
    return lambda: as_model(random_ensemble(seed, **kw))


def _sk_rf() -> ConvertedModel:
    from sklearn.ensemble import RandomForestRegressor

    X, y = _data(3000, 20, 1)
    return strategies.convert(RandomForestRegressor(n_estimators=50, max_depth=10, random_state=0).fit(X, y))


def _sk_gb() -> ConvertedModel:
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = _data(3000, 10, 2)
    return strategies.convert(GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(X, y > 0))


def _sk_et() -> ConvertedModel:
    from sklearn.ensemble import ExtraTreesClassifier

    X, y = _data(3000, 16, 3)
    classes = np.digitize(y, np.quantile(y, [0.33, 0.66]))
    return strategies.convert(ExtraTreesClassifier(n_estimators=30, max_depth=8, random_state=0).fit(X, classes))


def _sk_logreg() -> ConvertedModel:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data(3000, 50, 4)
    classes = np.digitize(y, np.quantile(y, [0.25, 0.5, 0.75]))
    return strategies.convert(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, classes))


def _xgb_clf() -> ConvertedModel:
    import xgboost

    X, y = _data(4000, 30, 5, nan=0.05)
    return strategies.convert(xgboost.XGBClassifier(n_estimators=200, max_depth=6, random_state=0).fit(X, y > 0))


def _xgb_reg() -> ConvertedModel:
    import xgboost

    X, y = _data(4000, 8, 6)
    return strategies.convert(xgboost.XGBRegressor(n_estimators=400, max_depth=4, random_state=0).fit(X, y))


def _lgbm() -> ConvertedModel:
    import lightgbm

    X, y = _data(4000, 40, 7)
    return strategies.convert(lightgbm.LGBMRegressor(n_estimators=150, num_leaves=63, random_state=0,
                                                     verbose=-1).fit(X, y))


def _treebeard(name: str) -> Callable[[], ConvertedModel]:
    return lambda: strategies.convert(TREEBEARD / f"{name}_xgb_model_save.json")


WORKLOADS = [
    Workload("ir_t10_d3_f8", _ir(101, n_trees=10, depth=3, n_features=8), big_batch=True),
    Workload("higgs", _treebeard("higgs"), big_batch=True),
    Workload("ir_t100_d6_f30", _ir(105, n_trees=100, depth=6, n_features=30)),
    Workload("sk_logreg_pipeline", _sk_logreg),
    Workload("ir_t30_d12_f20", _ir(107, n_trees=30, depth=12, n_features=20)),
    Workload("xgb_clf_200x6", _xgb_clf, big_batch=True),
    Workload("ir_t200_d3_f50", _ir(103, n_trees=200, depth=3, n_features=50)),
    Workload("airline", _treebeard("airline")),
    Workload("ir_t20_d8_f10", _ir(104, n_trees=20, depth=8, n_features=10)),
    Workload("sk_rf_50x10", _sk_rf),
    Workload("ir_t60_d7_f16_k3", _ir(110, n_trees=60, depth=7, n_features=16, n_outputs=3,
                                     post=PostTransform("softmax"))),
    Workload("lgbm_150x63", _lgbm),
    Workload("ir_t50_d4_f20", _ir(102, n_trees=50, depth=4, n_features=20)),
    Workload("bosch", _treebeard("bosch")),
    Workload("ir_t300_d6_f100", _ir(106, n_trees=300, depth=6, n_features=100)),
    Workload("sk_gb_100x3", _sk_gb),
    Workload("ir_t40_d6_f12_cat", _ir(111, n_trees=40, depth=6, n_features=12, categorical=frozenset({0, 3}))),
    Workload("xgb_reg_400x4", _xgb_reg),
    Workload("ir_t100_d10_f50", _ir(108, n_trees=100, depth=10, n_features=50)),
    Workload("epsilon", _treebeard("epsilon")),
    Workload("sk_et_30x8_k3", _sk_et),
    Workload("ir_t500_d5_f200", _ir(109, n_trees=500, depth=5, n_features=200)),
]


def main_task(conv: ConvertedModel) -> Task:
    tasks = tasks_for_backend(conv.graph, "torch")
    return tasks[main_task_index(tasks)]


def task_inputs(conv: ConvertedModel, task: Task, rows: int = 4096) -> np.ndarray:
    X = sample_inputs(conv, rows, seed=0, nan=conv.input.allow_nan, inf=conv.input.allow_inf)
    tasks = tasks_for_backend(conv.graph, "torch")
    for t in tasks[: tasks.index(task)]:
        X = reference.evaluate(t.graph, X)
    return X


def sample_plan(space: TaskSpace, ops: tuple, batch: int, rng: random.Random, group_index: int) -> list[dict]:
    """The default config, then per-pair random samples interleaved round-robin."""
    per_pair: list[list[dict]] = []
    inductor = [(s, b) for s, (_, bs) in space.strategies.items() for b in bs if b == "inductor"]
    inductor_pick = set(inductor[group_index % len(inductor):][:INDUCTOR_PER_GROUP]) if inductor else set()
    for strategy, (_, backends) in space.strategies.items():
        for backend in backends:
            quota = QUOTA.get(backend, DEFAULT_QUOTA)
            if backend == "inductor":
                quota = int((strategy, backend) in inductor_pick)
            dims = space.dimensions(strategy, backend)
            seen, picked = set(), []
            for _ in range(quota * 30):
                if len(picked) >= quota:
                    break
                values = {d.name: rng.choice(d.values) for d in dims}
                cfg = space.make_config(strategy, backend, values)
                if cfg is None:
                    continue
                key = records.config_hash(cfg)
                if key not in seen:
                    seen.add(key)
                    picked.append(cfg)
            if picked:
                per_pair.append(picked)
    rng.shuffle(per_pair)
    plan = [c for c in [default_config(ops, batch)] if c is not None]
    for i in range(max((len(p) for p in per_pair), default=0)):
        plan += [p[i] for p in per_pair if i < len(p)]
    unique, keys = [], set()
    for cfg in plan:
        k = records.config_hash(cfg)
        if k not in keys:
            keys.add(k)
            unique.append(cfg)
    return unique


def busy_fraction(seconds: float = 5.0) -> float:
    """Fraction of all CPUs busy over ``seconds`` (call it while this script is idle: the busy part is others')."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    t1, i1 = sample()
    time.sleep(seconds)
    t2, i2 = sample()
    return 1.0 - (i2 - i1) / max(t2 - t1, 1)


def pause_while_busy(max_busy: float, max_wait_s: float, say: Callable[[str], None]) -> float:
    """Between groups: wait (up to ``max_wait_s``) while other processes keep the CPUs over ``max_busy`` busy.

    Returns the seconds paused (they do not count against the measuring budget).
    """
    start = time.monotonic()
    busy = busy_fraction()
    said = False
    while busy > max_busy and time.monotonic() - start < max_wait_s:
        if not said:
            say(f"other processes keep the CPUs {busy:.0%} busy: pausing until they are below {max_busy:.0%}")
            said = True
        time.sleep(20)
        busy = busy_fraction()
    if said:
        say(f"resuming after {(time.monotonic() - start) / 60:.1f} min (CPUs {busy:.0%} busy)")
    return time.monotonic() - start


def wait_for_quiet(max_load: float, max_wait_s: float) -> None:
    start = time.monotonic()
    while os.getloadavg()[0] > max_load and time.monotonic() - start < max_wait_s:
        print(f"load average {os.getloadavg()[0]:.2f} > {max_load}: waiting for a quiet machine", flush=True)
        time.sleep(30)
    print(f"load average {os.getloadavg()[0]:.2f}; starting", flush=True)


@dataclass
class Group:
    """One (workload, batch size): what to measure it with."""

    name: str
    task: Task
    batch: int
    plan: list[dict]
    inputs: Any
    seconds: float


def measure_group(g: Group, measurer: Measurer, done: set[str], fp: str, args: argparse.Namespace,
                  deadline: float, bar: Any) -> tuple[list[TrialRecord], float | None]:
    """Measure the group's unmeasured configs; the default is timed again at the end, and the ratio of the
    two timings (None if it could not be timed) says whether the machine stayed quiet meanwhile."""
    trials: list[TrialRecord] = []
    first = again = None
    end = time.monotonic() + g.seconds
    slow: set[tuple[str, str]] = set()
    for i, cfg in enumerate(g.plan):
        pair = (cfg["strategy"], cfg["backend"])
        is_default = i == 0
        if not is_default and (records.config_hash(cfg) in done or pair in slow
                               or time.monotonic() > min(end, deadline)):
            continue
        started = time.time()
        res = measurer.measure(g.task.ops, cfg, g.inputs)
        if is_default:
            first = res.median_s if res.ok else None
        if records.config_hash(cfg) not in done:
            trials.append(TrialRecord(
                workload_hash=g.task.workload_hash, device_fingerprint=fp, batch_size=g.batch, config=cfg,
                status=TrialStatus(res.status), latency_median_s=res.median_s, latency_spread_s=res.spread_s,
                error=res.error or None, started_at=_utc(started),
            ))
            bar.update(1)
        if res.status == "timeout" or (res.ok and res.median_s > args.slow):
            slow.add(pair)
    if g.plan:
        res = measurer.measure(g.task.ops, g.plan[0], g.inputs)
        again = res.median_s if res.ok else None
    ratio = again / first if first and again else None
    return trials, ratio


def describe(trials: list[TrialRecord], ratio: float | None) -> str:
    ok = [t for t in trials if t.status is TrialStatus.OK]
    best = min(ok, key=lambda t: t.latency_median_s) if ok else None
    best_s = f"best {best.latency_median_s:.3g}s {best.config['strategy']}@{best.config['backend']}" if best else "no ok trial"
    noise = f"{ratio:.2f}" if ratio is not None else "-"
    return f"{len(trials):3d} new trials ({len(ok)} ok), {best_s}; default re-timed x{noise}"


def seed(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    device = current_device()
    settings = MeasureSettings(warmup=1, min_repeats=3, min_seconds=0.1, timeout_s=args.timeout)
    workloads = [w for w in WORKLOADS if not args.workloads or w.name in args.workloads]
    if args.quick:
        workloads = workloads[:3]
    deadline = time.monotonic() + 60 * args.minutes
    t0 = time.monotonic()
    counts = {s.value: 0 for s in TrialStatus}
    with records.open_database(args.db) as db, Measurer(settings) as measurer:
        db.register_device(device)
        fp = device.fingerprint
        bar = tqdm(total=None, unit="trial", dynamic_ncols=True)
        for wi, w in enumerate(workloads):
            if time.monotonic() > deadline:
                bar.write(f"time budget spent; {len(workloads) - wi} workloads not started")
                break
            conv = w.make()
            task = main_task(conv)
            store_workload_ir(db, task.ops, fp, workload_hash_=task.workload_hash, summary=task.summary())
            X = task_inputs(conv, task)
            bar.write(f"{w.name}: {task.summary()[:100]}")
            batches = list(args.batches) + ([args.big_batch] if w.big_batch and args.big_batch else [])
            for bi, batch in enumerate(batches):
                rng = random.Random(zlib.crc32(f"{w.name}/{batch}".encode()) + 7919 * args.round)
                space = TaskSpace(task.ops, batch, SpaceOptions(threads=None))
                group = Group(w.name, task, batch, sample_plan(space, task.ops, batch, rng, wi * 3 + bi),
                              make_task_inputs(task.ops, X, batch), args.group_seconds * (2 if batch > 10000 else 1))
                bar.set_description(f"{w.name}@{batch}")
                for attempt in range(1, args.attempts + 1):
                    if args.max_busy < 1:
                        deadline += pause_while_busy(args.max_busy, args.max_pause * 60, bar.write)
                    done = db.measured_configs(task.workload_hash, fp, batch)
                    trials, ratio = measure_group(group, measurer, done, fp, args, deadline, bar)
                    quiet = ratio is None or 1 / args.noise < ratio < args.noise
                    bar.write(f"  batch {batch:>6}: {describe(trials, ratio)}" + ("" if quiet else "  NOISY: discarded"))
                    if quiet:
                        db.add_trials(trials)
                        for t in trials:
                            counts[t.status.value] += 1
                        break
                bar.set_postfix_str(" ".join(f"{k}={v}" for k, v in counts.items() if v), refresh=False)
        bar.close()
    minutes = (time.monotonic() - t0) / 60
    print(f"committed {sum(counts.values())} trials in {minutes:.1f} min: "
          + ", ".join(f"{v} {k}" for k, v in counts.items() if v), flush=True)


def _utc(ts: float):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default=str(DEFAULT_DB), help="records database (path or SQLAlchemy URL)")
    p.add_argument("--minutes", type=float, default=70.0, help="wall-time budget for measuring")
    p.add_argument("--group-seconds", type=float, default=75.0,
                   help="time budget per (workload, batch size); doubled for the big batch")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 1024], help="batch sizes for every workload")
    p.add_argument("--big-batch", type=int, default=100000, help="extra batch size for a few small workloads (0: none)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a trial is killed")
    p.add_argument("--slow", type=float, default=0.5,
                   help="a (strategy, backend) pair is not sampled further in a group once a config of it takes "
                        "longer than this many seconds per call")
    p.add_argument("--workloads", nargs="*", default=None, help="only these workloads (names)")
    p.add_argument("--round", type=int, default=0,
                   help="sampling round: another round draws other configs (those measured are skipped)")
    p.add_argument("--quick", action="store_true", help="only the first three workloads")
    p.add_argument("--max-load", type=float, default=1.5, help="wait (up to 30 min) until the load average is below this")
    p.add_argument("--max-busy", type=float, default=0.25,
                   help="between groups, pause while others keep the CPUs busier than this fraction")
    p.add_argument("--noise", type=float, default=1.35,
                   help="a group whose default config re-times more than this factor off is discarded and redone")
    p.add_argument("--attempts", type=int, default=3, help="tries per group before giving up on a noisy one")
    p.add_argument("--max-pause", type=float, default=120.0, help="minutes to wait for others at most, per group")
    p.add_argument("--eval-only", action="store_true", help="skip measuring; only evaluate")
    args = p.parse_args(argv)
    if not args.eval_only:
        wait_for_quiet(args.max_load, 1800)
        seed(args)
    from tuner import cli

    print()
    return cli.main(["costmodel", "eval", "--db", args.db, "--objective", "all"])


if __name__ == "__main__":
    sys.exit(main())
