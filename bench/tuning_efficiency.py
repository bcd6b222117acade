"""``python -m bench.tuning_efficiency``: how good is tunebird's default tuning budget?

Two questions, answered with measured numbers in ``bench/results/tuning_efficiency.md`` (and ``.json``):

1. **Default vs long search.** Per suite model, tune with the default settings and ``--time-budget`` seconds
   into a fresh database; then tune the same model into another fresh database with ``--long-factor`` (8) times
   the measurements the default run made and no early stop (``SearchSettings(patience=10**9)``).  Per batch
   size: the tuner's own tuned latency of each (``TuneReport.tuned_latency_s``), their ratio (goal: default
   within 3% of long), the trials each used; then both winners are loaded (``tuner.load``) and their ``predict``
   re-timed in this process, interleaved, so the two figures are compared under the same conditions.
2. **Transfer (leave one model out).** Per model m: a fresh database holding every trial of the *other* models
   (their default and long runs, this device; plus the stored operators of their workloads, which is what the
   cost model is trained from), the device's cost model retrained on them (``cost_model.tuning.for_device``),
   then m tuned with the default settings and budget.  Per (task, batch size): how many measurements, in the
   order the database recorded them, the running best needed to come within 5% of m's best known latency (the
   best over all of m's runs), with transfer and from scratch (the default run: an empty database, the same
   budget; and the long run).  Goal: <= 10 measurements per task with transfer.

    python -m bench.tuning_efficiency                                   # every suite model, 200 s each
    python -m bench.tuning_efficiency --models higgs airline lightgbm rf --time-budget 60

The databases are kept under ``bench/results/efficiency/<model>/`` (git-ignored); ``--reuse`` keeps the runs
already finished there (after an interruption) instead of tuning again.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import models

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results"
DEFAULT_WORK = DEFAULT_OUT / "efficiency"
LONG_FACTOR = 8
GOAL_RATIO = 1.03  # default run's tuned latency within 3% of the long run's
TOLERANCE = 0.05  # "reached": within 5% of the best known latency
GOAL_TRIALS = 10  # measurements per task with transfer
IR_PREFIX = "workload-ir:"  # cost_model.store keeps each workload's operators as a cost-model record of this name

log = logging.getLogger(__name__)


@dataclass
class Subject:
    """A model to study: the estimator, its sample inputs, a description."""

    name: str
    model: Any
    X: Any
    description: str = ""
    batch_sizes: tuple[int, ...] | None = None  # the model's own batch sizes (None: every one asked for)

    def sizes(self, wanted: Sequence[int]) -> tuple[int, ...]:
        return tuple(b for b in wanted if self.batch_sizes is None or b in self.batch_sizes)


# --------------------------------------------------------------------------- arithmetic


def running_best(latencies: Sequence[float | None]) -> list[float]:
    """The best latency after each measurement (``None``: a failed one); ``inf`` before the first success."""
    out, best = [], math.inf
    for v in latencies:
        if v is not None and math.isfinite(v) and v < best:
            best = v
        out.append(best)
    return out


def trials_to_reach(latencies: Sequence[float | None], target: float, tolerance: float = TOLERANCE) -> int | None:
    """How many measurements (failures count) until the running best is within ``tolerance`` of ``target``."""
    limit = target * (1 + tolerance)
    for i, best in enumerate(running_best(latencies), 1):
        if best <= limit:
            return i
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b and math.isfinite(a) and math.isfinite(b) else None


# --------------------------------------------------------------------------- databases


def fresh_db(path: Path) -> str:
    """Remove a SQLite database and everything beside it (artifact directory, journals); return its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in path.parent.glob(path.name + "*"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return f"sqlite:///{path}"


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def device_fingerprint() -> str:
    from tuner.device import current_device

    return current_device().fingerprint


def history(db: str, workload_hash: str, batch_size: int, fingerprint: str) -> list[float | None]:
    """The latencies of one job's trials in the order the database recorded them (None: not ok)."""
    import records

    with records.open_database(db) as d:
        trials = d.trials(workload_hash=workload_hash, device_fingerprint=fingerprint, batch_size=batch_size)
    return [t.latency_median_s if t.status.value == "ok" else None for t in trials]


def copy_records(sources: Iterable[str], dest: str, *, exclude_workloads: set[str], fingerprint: str) -> dict[str, int]:
    """Merge the trials of ``sources`` on this device, without ``exclude_workloads``, into ``dest``, with the
    devices, workloads and stored workload operators they need.  Artifacts and trained cost models stay behind:
    the cost model is retrained from the trials."""
    import records

    counts = {"trials": 0, "workloads": 0, "workload_ir": 0}
    with records.open_database(dest) as out:
        for src in sources:
            with records.open_database(src) as db:
                for d in db.devices():
                    out.register_device(d)
                keep = set()
                for w in db.workloads():
                    if w.workload_hash not in exclude_workloads:
                        counts["workloads"] += out.get_workload(w.workload_hash) is None
                        out.register_workload(w)
                        keep.add(w.workload_hash)
                counts["trials"] += out.add_trials(t for t in db.trials(device_fingerprint=fingerprint)
                                                   if t.workload_hash in keep)
                for c in db.cost_models():
                    ir_of = c.name[len(IR_PREFIX):] if c.name.startswith(IR_PREFIX) else None
                    if ir_of in keep and not out.cost_models(name=c.name):
                        out.save_cost_model(device_fingerprint=c.device_fingerprint, name=c.name,
                                            payload=db.fetch_cost_model(c), n_trials=c.n_trials)
                        counts["workload_ir"] += 1
    return counts


def pretrain_cost_model(db: str) -> int:
    """Retrain (and save) the device's cost model from the records of ``db``; how many trials it learned from."""
    import records
    from tuner.device import current_device

    try:
        from cost_model.tuning import for_device  # the tuner's default cost model (since the engine refactor)
    except ImportError:
        from cost_model.tuning import ranker_for as for_device  # before it

    with records.open_database(db) as d:
        model = for_device(d, current_device())
        n = getattr(model, "n_trials", None)
        return int((n if n is not None else getattr(getattr(model, "model", None), "n_trials", 0)) or 0)


# --------------------------------------------------------------------------- tuning runs


def tune_run(s: Subject, db: str, *, batch_sizes: Sequence[int], trials: int | None, time_budget: float | None,
             settings: Any = None, label: str = "", options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``tuner.tune`` into ``db`` (``options``: more keyword arguments of it); the report's figures as plain data."""
    import tuner

    load, started = _loadavg(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    report = tuner.tune(s.model, s.X, db=db, batch_sizes=tuple(batch_sizes), trials=trials, time_budget=time_budget,
                        progress=False, settings=settings, **(options or {}))
    return {
        "label": label, "db": db, "trials_budget": trials, "time_budget_s": time_budget,
        "patience": getattr(settings, "patience", None),
        "tuned_latency_s": {str(b): v for b, v in sorted(report.tuned_latency_s.items())},
        "trials_measured": int(report.trials_measured), "seconds": float(report.seconds),
        "started": started, "load_average_start": load, "load_average_end": _loadavg(),
        "jobs": [{"task": j.task[:100], "workload_hash": j.workload_hash, "batch_size": int(j.batch_size),
                  "trials": int(j.trials), "best_latency_s": j.best_latency_s} for j in report.jobs],
    }


def _cached(work: Path, label: str, reuse: bool, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    summary = work / f"{label}.json"
    if reuse and summary.exists() and (work / f"{label}.db").exists():
        return json.loads(summary.read_text())
    out = run()
    summary.write_text(json.dumps(out, indent=1))
    return out


def default_and_long(s: Subject, work: Path, *, batch_sizes: Sequence[int], time_budget: float | None,
                     trials: int | None, long_factor: int, reuse: bool = False, long: bool = True,
                     options: Mapping[str, Any] | None = None,
                     say: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """The default run and (when ``long``) the long run of one model, each into its own fresh database under
    ``work``."""
    from tuner.search import SearchSettings

    work.mkdir(parents=True, exist_ok=True)
    default = _cached(work, "default", reuse, lambda: tune_run(
        s, fresh_db(work / "default.db"), batch_sizes=batch_sizes, trials=trials, time_budget=time_budget,
        label="default", options=options))
    say(f"  default: {default['trials_measured']} trials in {default['seconds']:.0f} s; {_lat(default)}")
    if not long:
        return {"default": default}
    n = max(1, long_factor * default["trials_measured"])
    long = _cached(work, "long", reuse, lambda: tune_run(
        s, fresh_db(work / "long.db"), batch_sizes=batch_sizes, trials=n, time_budget=None,
        settings=SearchSettings(patience=10**9), label="long", options=options))
    say(f"  long: {long['trials_measured']} trials (budget {n}) in {long['seconds']:.0f} s; {_lat(long)}")
    return {"default": default, "long": long}


def _lat(run: Mapping[str, Any]) -> str:
    return ", ".join(f"batch {b}: {fmt_s(v)}" for b, v in run["tuned_latency_s"].items()) or "nothing tuned"


# --------------------------------------------------------------------------- re-timing both winners


def _batches(X: Any, b: int, n: int = 4, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [X[rng.integers(0, len(X), size=b)] if not hasattr(X, "iloc") else X.iloc[rng.integers(0, len(X), size=b)]
            for _ in range(n)]


def retime(s: Subject, dbs: Mapping[str, str], batch_sizes: Sequence[int], *, min_seconds: float = 1.0,
           min_rounds: int = 20) -> dict[str, dict[str, dict[str, float]]]:
    """Load the tuned predictor of each database and time ``predict`` per call, interleaved: rounds in which
    each predictor (in alternating order) makes the same number of calls on rotating batches, until each has
    run ``min_seconds`` and ``min_rounds`` rounds.  Per label and batch size: median, quartiles, calls."""
    import tuner

    preds = {label: tuner.load(s.model, db=db, strict=True) for label, db in dbs.items()}
    out: dict[str, dict[str, dict[str, float]]] = {label: {} for label in preds}
    for b in batch_sizes:
        batches = _batches(s.X, b)
        for p in preds.values():  # warm-up (and a first estimate of the per-call time)
            for x in batches * 2:
                p.predict(x)
        t = time.perf_counter()
        for p in preds.values():
            p.predict(batches[0])
        per_call = max((time.perf_counter() - t) / len(preds), 1e-7)
        calls = max(1, min(200, int(0.01 / per_call)))  # ~10 ms per predictor and round
        samples: dict[str, list[float]] = {label: [] for label in preds}
        spent = dict.fromkeys(preds, 0.0)
        order, r = list(preds), 0
        while r < min_rounds or min(spent.values()) < min_seconds:
            for label in (order if r % 2 == 0 else order[::-1]):
                p = preds[label]
                for i in range(calls):
                    x = batches[i % len(batches)]
                    t = time.perf_counter()
                    p.predict(x)
                    dt = time.perf_counter() - t
                    samples[label].append(dt)
                    spent[label] += dt
            r += 1
        for label, v in samples.items():
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            out[label][str(b)] = {"median_s": float(med), "p25_s": float(q1), "p75_s": float(q3), "calls": len(v)}
    return out


# --------------------------------------------------------------------------- the two parts


def compare_rows(name: str, runs: Mapping[str, Mapping[str, Any]], retimed: Mapping[str, Any] | None,
                 batch_sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Part 1's rows: one per batch size."""
    d, l = runs["default"], runs["long"]
    rows = []
    for b in map(str, batch_sizes):
        td, tl = d["tuned_latency_s"].get(b), l["tuned_latency_s"].get(b)
        jd = sum(j["trials"] for j in d["jobs"] if str(j["batch_size"]) == b)
        jl = sum(j["trials"] for j in l["jobs"] if str(j["batch_size"]) == b)
        row = {
            "model": name, "batch_size": int(b),
            "default_latency_s": td, "long_latency_s": tl, "ratio": ratio(td, tl),
            "default_trials": jd, "long_trials": jl, "trial_fraction": ratio(jd, jl),
            "default_run_trials": d["trials_measured"], "long_run_trials": l["trials_measured"],
            "run_trial_fraction": ratio(d["trials_measured"], l["trials_measured"]),
            "default_seconds": d["seconds"], "long_seconds": l["seconds"],
        }
        row["within_goal"] = row["ratio"] is not None and row["ratio"] <= GOAL_RATIO
        if retimed:
            rd, rl = retimed.get("default", {}).get(b), retimed.get("long", {}).get(b)
            row["retimed_default"], row["retimed_long"] = rd, rl
            row["retimed_ratio"] = ratio(rd and rd["median_s"], rl and rl["median_s"])
            row["retimed_within_goal"] = row["retimed_ratio"] is not None and row["retimed_ratio"] <= GOAL_RATIO
        rows.append(row)
    return rows


def transfer_rows(name: str, runs: Mapping[str, Mapping[str, Any]], fingerprint: str,
                  cost_model_trials: int | None) -> list[dict[str, Any]]:
    """Part 2's rows: one per (task, batch size) of the model, from the trials in each run's database."""
    rows = []
    jobs = {(j["workload_hash"], j["batch_size"]): j["task"] for run in runs.values() for j in run["jobs"]}
    for (h, b), task in sorted(jobs.items(), key=lambda kv: (kv[0][1], kv[1])):
        hist = {label: history(run["db"], h, b, fingerprint) for label, run in runs.items()}
        bests = [min((v for v in lat if v is not None), default=math.inf) for lat in hist.values()]
        best = min(bests)
        row: dict[str, Any] = {"model": name, "task": task, "workload_hash": h, "batch_size": b,
                               "best_known_s": best if math.isfinite(best) else None,
                               "cost_model_trials": cost_model_trials}
        default_best = bests[list(hist).index("default")] if "default" in hist else math.inf
        row["default_best_s"] = default_best if math.isfinite(default_best) else None
        for label, lat in hist.items():
            row[label] = {"trials": len(lat), "to_reach": trials_to_reach(lat, best) if math.isfinite(best) else None,
                          "to_reach_default": trials_to_reach(lat, default_best) if math.isfinite(default_best)
                          else None,
                          "best_s": min((v for v in lat if v is not None), default=None)}
        t = row.get("transfer", {}).get("to_reach")
        row["within_goal"] = t is not None and t <= GOAL_TRIALS
        rows.append(row)
    return rows


def run(subjects: Sequence[Subject], work: Path, *, batch_sizes: Sequence[int] = (1, 1024),
        time_budget: float | None = 200.0, trials: int | None = None, long_factor: int = LONG_FACTOR,
        retime_seconds: float = 1.0, transfer: bool = True, reuse: bool = False, note: str = "",
        long_models: Sequence[str] | None = None,
        tune_options: Mapping[str, Any] | None = None, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Both parts on ``subjects``; the result as plain data (what the JSON holds).  ``tune_options``: more keyword
    arguments for every ``tuner.tune`` call (the tests limit the backends with it).  ``long_models``: the models that
    get the long search (None: all); the others only get the default run (for the transfer part)."""
    t0 = time.monotonic()
    load_start = _loadavg()
    code = code_state()
    fp = device_fingerprint()
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    compare, failures, done = [], [], []
    for i, s in enumerate(subjects, 1):
        sizes = s.sizes(batch_sizes)
        long = long_models is None or s.name in long_models
        say(f"[{i}/{len(subjects)}] {s.name}: default {'vs long search ' if long else 'run '}at batch sizes "
            f"{', '.join(map(str, sizes))}")
        try:
            runs[s.name] = default_and_long(s, work / s.name, batch_sizes=sizes, time_budget=time_budget,
                                            trials=trials, long_factor=long_factor, reuse=reuse, long=long,
                                            options=tune_options, say=say)
        except Exception as exc:  # noqa: BLE001 - one model's failure is reported, the others still run
            failures.append(f"{s.name}: tuning failed: {type(exc).__name__}: {exc}"[:300])
            say("  " + failures[-1])
            continue
        done.append(s)
        if not long:
            continue
        try:
            retimed = retime(s, {k: r["db"] for k, r in runs[s.name].items()}, sizes, min_seconds=retime_seconds)
        except Exception as exc:  # noqa: BLE001 - the tuner's figures still stand; say why re-timing failed
            retimed = None
            failures.append(f"{s.name}: re-timing failed: {type(exc).__name__}: {exc}"[:300])
            say("  " + failures[-1])
        compare += compare_rows(s.name, runs[s.name], retimed, sizes)
    transfers = []
    if transfer and len(done) > 1:
        for i, s in enumerate(done, 1):
            say(f"[{i}/{len(done)}] {s.name}: transfer from the {len(done) - 1} other model(s)")
            w = work / s.name
            own = {j["workload_hash"] for r in runs[s.name].values() for j in r["jobs"]}
            sources = [r["db"] for other in done if other.name != s.name for r in runs[other.name].values()]

            def transfer_run(w: Path = w, s: Subject = s, own: set = own, sources: list = sources) -> dict[str, Any]:
                db = fresh_db(w / "transfer.db")
                copied = copy_records(sources, db, exclude_workloads=own, fingerprint=fp)
                learned = pretrain_cost_model(db)
                out = tune_run(s, db, batch_sizes=s.sizes(batch_sizes), trials=trials, time_budget=time_budget,
                               label="transfer", options=tune_options)
                return {**out, "copied": copied, "cost_model_trials": learned}

            try:
                tr = _cached(w, "transfer", reuse, transfer_run)
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{s.name}: transfer run failed: {type(exc).__name__}: {exc}"[:300])
                say("  " + failures[-1])
                continue
            runs[s.name]["transfer"] = tr
            say(f"  copied {tr['copied']['trials']} trials of other models, cost model learned from "
                f"{tr['cost_model_trials']}; {tr['trials_measured']} trials in {tr['seconds']:.0f} s; {_lat(tr)}")
            transfers += transfer_rows(s.name, {k: runs[s.name][k] for k in ("default", "long", "transfer")
                                                if k in runs[s.name]}, fp, tr["cost_model_trials"])
    elif transfer:
        failures.append("transfer needs at least two models (leave one out)")
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(), "fingerprint": fp[:12], "code": code,
        "settings": {"models": [s.name for s in subjects], "batch_sizes": list(batch_sizes),
                     "long_models": [s.name for s in subjects if long_models is None or s.name in long_models],
                     "time_budget_s": time_budget, "trials": trials, "long_factor": long_factor,
                     "goal_ratio": GOAL_RATIO, "tolerance": TOLERANCE, "goal_trials": GOAL_TRIALS,
                     "retime_seconds": retime_seconds,
                     "tune_options": json.loads(json.dumps(dict(tune_options or {}), default=str))},
        "note": note,
        "descriptions": {s.name: s.description for s in subjects},
        "load_average_start": load_start, "load_average_end": _loadavg(),
        "wall_s": time.monotonic() - t0,
        "default_vs_long": compare, "transfer": transfers, "runs": runs, "failures": failures,
    }


def code_state(repo: Path = HERE.parent) -> dict[str, Any] | None:
    """The code measured: HEAD's commit and subject, and the tracked files with uncommitted changes (the tuner runs
    from the working tree); None outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout

    try:
        head = git("rev-parse", "HEAD").strip()
        subject = git("log", "-1", "--format=%s", "HEAD").strip()
        # porcelain lines are "XY path": not stripped, the first line's X may be a space
        dirty = [ln[3:] for ln in git("status", "--porcelain", "--untracked-files=no").splitlines() if ln[3:]]
    except (OSError, subprocess.SubprocessError):
        return None
    return {"head": head, "subject": subject[:120], "modified": dirty}


def summarize_previous(previous: Mapping[str, Any], label: str | None = None) -> dict[str, Any]:
    """The figures of an earlier result of this script that the report compares with: per (model, batch size) the
    default/long ratios, and per transfer row the measurements to reach (with transfer and from scratch)."""
    code = previous.get("code") or {}
    return {
        "label": label or (code.get("head") or "")[:7] or previous.get("created", "earlier run"),
        "created": previous.get("created"),
        "settings": {k: previous.get("settings", {}).get(k) for k in ("models", "long_models", "time_budget_s",
                                                                      "long_factor")},
        "default_vs_long": [{"model": r["model"], "batch_size": r["batch_size"], "ratio": r.get("ratio"),
                             "retimed_ratio": r.get("retimed_ratio"), "within_goal": r.get("within_goal"),
                             "retimed_within_goal": r.get("retimed_within_goal")}
                            for r in previous.get("default_vs_long", [])],
        "transfer": [{"model": r["model"], "batch_size": r["batch_size"], "within_goal": r.get("within_goal"),
                      "transfer": _entry(r.get("transfer")), "default": _entry(r.get("default"))}
                     for r in previous.get("transfer", [])],
    }


def _entry(e: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if not e else {"trials": e.get("trials"), "to_reach": e.get("to_reach")}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _machine() -> dict[str, Any]:
    from .runner import describe_machine

    return describe_machine()


# --------------------------------------------------------------------------- report


def fmt_s(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "–"
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def _x(r: float | None) -> str:
    return "–" if r is None else f"{r:.3f}"


def _reach(entry: Mapping[str, Any] | None, key: str = "to_reach") -> str:
    if not entry or key not in entry:
        return "–"
    return str(entry[key]) if entry[key] is not None else f"not in {entry['trials']}"


def markdown(result: Mapping[str, Any]) -> str:
    st, m = result["settings"], result["machine"]
    budget = (f"{st['time_budget_s']:.0f} s" if st["time_budget_s"] else "") + \
        (f"{' and ' if st['time_budget_s'] else ''}at most {st['trials']} trial{'s' * (st['trials'] != 1)}"
         if st["trials"] else "")
    lines = [
        "# Tuning efficiency: the default budget vs a long search, and transfer between models",
        "",
        f"Run {result['created']} on {m.get('cpu')} ({m.get('cores')} cores, {m.get('memory_gb')} GB, {m.get('os')}, "
        f"Python {m.get('python')}; device {result['fingerprint']}), load average {result['load_average_start']} at "
        f"the start, {result['load_average_end']} at the end; this invocation {result['wall_s'] / 60:.0f} min"
        + _tuning_time(result) + ".",
        f"Models: {', '.join(st['models'])}; batch sizes {', '.join(map(str, st['batch_sizes']))}; default budget "
        f"{budget} per model (every batch size together); long search {st['long_factor']}x the default run's "
        "measurements, no early stop"
        + (f", on {', '.join(st['long_models'])} only" if st["long_models"] != st["models"] else "") + ".",
        f"Command: `python -m bench.tuning_efficiency --models {' '.join(st['models'])} --batch-sizes "
        f"{' '.join(map(str, st['batch_sizes']))}"
        + (f" --time-budget {st['time_budget_s']:g}" if st["time_budget_s"] else "")
        + (f" --trials {st['trials']}" if st["trials"] else "")
        + (f" --long-factor {st['long_factor']}" if st["long_factor"] != LONG_FACTOR else "")
        + (f" --long-models {' '.join(st['long_models'])}" if st["long_models"] != st["models"] else "") + "`"
        + (f" (and `tuner.tune` options {st['tune_options']})" if st.get("tune_options") else "") + ".",
        *([_code_line(result["code"])] if result.get("code") else []),
        *([result["note"]] if result.get("note") else []),
        *(_comparison(result) if result.get("previous") else []),
        "",
        "## 1. Default budget vs a long search",
        "",
        f"Goal: the default run's tuned latency within {(st['goal_ratio'] - 1) * 100:.0f}% of the long search's "
        "(default/long <= " f"{st['goal_ratio']:.2f}). *Tuner* latencies are the tuner's own measurements of the "
        "winning plan (`TuneReport.tuned_latency_s`, the kernels in a worker process, at the time of each run); "
        "*re-timed* is `predict` of both tuned predictors loaded from their databases (`tuner.load`), timed per call "
        "in one process, interleaved round by round (median; Python overhead included). Trials: that batch size's "
        "measurements / the whole run's.",
        "",
        "| model | batch | tuner: default | tuner: long | default/long | re-timed: default | re-timed: long "
        "| default/long | trials default / long (run) | fraction | seconds default / long |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["default_vs_long"]:
        rd, rl = r.get("retimed_default"), r.get("retimed_long")
        lines.append(
            f"| {r['model']} | {r['batch_size']:,} | {fmt_s(r['default_latency_s'])} | {fmt_s(r['long_latency_s'])} "
            f"| {_mark(_x(r['ratio']), r['within_goal'])} | {fmt_s(rd and rd['median_s'])} "
            f"| {fmt_s(rl and rl['median_s'])} "
            f"| {_mark(_x(r.get('retimed_ratio')), r.get('retimed_within_goal'))} "
            f"| {r['default_trials']} / {r['long_trials']} ({r['default_run_trials']} / {r['long_run_trials']}) "
            f"| {_x(r['trial_fraction'])} | {r['default_seconds']:.0f} / {r['long_seconds']:.0f} |")
    rows = result["default_vs_long"]
    if rows:
        ok = sum(bool(r["within_goal"]) for r in rows)
        ok_rt = sum(bool(r.get("retimed_within_goal")) for r in rows)
        lines += ["", f"Within {(st['goal_ratio'] - 1) * 100:.0f}%: {ok} of {len(rows)} (tuner's figures), "
                  f"{ok_rt} of {len(rows)} (re-timed). Values in bold meet the goal."]
    missing = [m for m in st["models"] if m not in st["long_models"]]
    if missing:
        lines += ["", f"No long search for {', '.join(missing)} (`--long-models`): they took part in the transfer "
                  "part only."]
    lines += [
        "",
        "## 2. Transfer: leave one model out",
        "",
        "Per model m, a fresh database with every trial of the other models (their default runs and long searches) "
        f"and the device's cost model retrained on them; then m tuned with the default settings and budget. Columns: "
        f"measurements of that (task, batch size), in the order the database recorded them, until the running best "
        f"was within {st['tolerance'] * 100:.0f}% of m's best known latency (the best of all of m's runs); "
        f"\"not in N\": never, in that run's N measurements. *Scratch*: an empty database (the default run, same "
        f"budget; and the long run). Goal: <= {st['goal_trials']} with transfer. The last two columns: measurements "
        f"until within {st['tolerance'] * 100:.0f}% of what the default run (from scratch) ended with instead, "
        "by the default run itself and with transfer.",
        "",
        "| model | batch | task | best known | scratch (default run) | scratch (long run) | with transfer "
        "| transfer's best | cost model trained on | default run's best | reached by: default run / transfer |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["transfer"]:
        tr = r.get("transfer") or {}
        lines.append(
            f"| {r['model']} | {r['batch_size']:,} | {r['task'][:44].rstrip(' ->')} | {fmt_s(r['best_known_s'])} "
            f"| {_reach(r.get('default'))} | {_reach(r.get('long'))} | {_mark(_reach(tr), r['within_goal'])} "
            f"| {fmt_s(tr.get('best_s'))} | {r['cost_model_trials']} trials | {fmt_s(r.get('default_best_s'))} "
            f"| {_reach(r.get('default'), 'to_reach_default')} / {_reach(tr, 'to_reach_default')} |")
    rows = result["transfer"]
    if rows:
        ok = sum(bool(r["within_goal"]) for r in rows)
        tr = [r["transfer"]["to_reach"] for r in rows if r["transfer"]["to_reach"] is not None]
        sc = [r["default"]["to_reach"] for r in rows if r["default"]["to_reach"] is not None]
        lines += ["", f"With transfer, {ok} of {len(rows)} (task, batch size) jobs came within "
                  f"{st['tolerance'] * 100:.0f}% in <= {st['goal_trials']} measurements"
                  + (f"; median {statistics.median(tr):g} measurements where reached ({len(tr)} of {len(rows)})"
                     if tr else "")
                  + (f"; from scratch (default run) median {statistics.median(sc):g} ({len(sc)} of {len(rows)} "
                     "reached)." if sc else ".")]
    elif not result["failures"]:
        lines += ["", "Not run."]
    if result["failures"]:
        lines += ["", "## What did not work", ""] + [f"- {f}" for f in result["failures"]]
    lines += ["", "Per-run details (trials per job, budgets, seconds, database paths): "
              "[tuning_efficiency.json](tuning_efficiency.json).", ""]
    return "\n".join(lines)


def _code_line(code: Mapping[str, Any]) -> str:
    mod = code.get("modified") or []
    return (f"Code: the working tree at HEAD {code['head']} ({code.get('subject', '').split(';')[0][:100]})"
            + (f", with uncommitted changes to {len(mod)} tracked file{'s' * (len(mod) != 1)} at the start "
               f"({', '.join(mod)})" if mod else ", no uncommitted changes at the start") + ".")


def _comparison(result: Mapping[str, Any]) -> list[str]:
    """Lines comparing with ``result['previous']`` (see ``summarize_previous``): the ratios and transfer counts."""
    prev = result["previous"]
    old = {(r["model"], r["batch_size"]): r for r in prev["default_vs_long"]}
    parts = []
    for r in result["default_vs_long"]:
        o = old.get((r["model"], r["batch_size"]))
        if o:
            parts.append(f"{r['model']} {r['batch_size']:,}: {_x(o['ratio'])} -> {_x(r['ratio'])} "
                         f"(re-timed {_x(o.get('retimed_ratio'))} -> {_x(r.get('retimed_ratio'))})")
    otr = {(r["model"], r["batch_size"]): r for r in prev["transfer"]}
    tparts = []
    for r in result["transfer"]:
        o = otr.get((r["model"], r["batch_size"]))
        if o:
            tparts.append(f"{r['model']} {r['batch_size']:,}: {_reach(o['transfer'])} -> {_reach(r.get('transfer'))}")
    n_old = sum(bool(r["within_goal"]) for r in prev["transfer"])
    n_new = sum(bool(r["within_goal"]) for r in result["transfer"])
    return ["", f"Compared with the previous run ({prev['label']}, {prev.get('created')}, same models, batch sizes "
            f"and budget): default/long, tuner's figures -> now: " + ("; ".join(parts) or "no common rows") + ". "
            f"Transfer, measurements to within {result['settings']['tolerance'] * 100:.0f}% of the best known, "
            "then -> now: " + ("; ".join(tparts) or "no common rows")
            + f"; within the goal {n_old} of {len(prev['transfer'])} -> {n_new} of {len(result['transfer'])}. "
            "(Each run's best known is its own, so the counts are relative to different targets.)"]


def _tuning_time(result: Mapping[str, Any]) -> str:
    runs = [r for m in result["runs"].values() for r in m.values()]
    if not runs:
        return ""
    starts = sorted(r["started"] for r in runs if r.get("started"))
    return (f" ({len(runs)} tuning runs, {sum(r['seconds'] for r in runs) / 60:.0f} min of tuning"
            + (f", the first started {starts[0]}" if starts else "") + ")")


def _mark(text: str, ok: bool | None) -> str:
    return f"**{text}**" if ok else text


def rerender(result: dict[str, Any], note: str | None = None) -> dict[str, Any]:
    """``result`` with its transfer rows recomputed from the databases it names (and ``note`` replaced)."""
    fp = device_fingerprint()
    rows = []
    for name, runs in result["runs"].items():
        if "transfer" in runs:
            rows += transfer_rows(name, runs, fp, runs["transfer"].get("cost_model_trials"))
    out = {**result, "transfer": rows}
    if note is not None:
        out["note"] = note
    return out


def write(result: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "tuning_efficiency.md", out / "tuning_efficiency.json"
    js.write_text(json.dumps(result, indent=1, default=str) + "\n")
    md.write_text(markdown(result))
    return md, js


# --------------------------------------------------------------------------- CLI


def suite_subjects(names: Sequence[str], cache_dir: Path) -> list[Subject]:
    out = []
    for n in names:
        sm = models.load(n, cache_dir)
        out.append(Subject(n, sm.model, sm.X, sm.spec.description, sm.spec.batch_sizes))
    return out


def build_parser() -> argparse.ArgumentParser:
    suite = list(models.SPECS)
    p = argparse.ArgumentParser(prog="python -m bench.tuning_efficiency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=suite, metavar="NAME",
                   help=f"suite models (default: all of them: {' '.join(suite)})")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 1024], metavar="N")
    p.add_argument("--time-budget", type=float, default=200.0, metavar="S",
                   help="the default run's budget per model, as make bench-tune (default 200)")
    p.add_argument("--trials", type=int, default=None, help="also cap the default run at N trials (smoke runs)")
    p.add_argument("--long-factor", type=int, default=LONG_FACTOR, help="long run: this many times the default "
                   f"run's measurements (default {LONG_FACTOR})")
    p.add_argument("--out", default=str(DEFAULT_OUT),
                   help="where tuning_efficiency.md/.json go (default bench/results)")
    p.add_argument("--work", default=None, help="the databases (default: OUT/efficiency)")
    p.add_argument("--models-cache", default=None, help="trained synthetic models (default: bench/results/models)")
    p.add_argument("--retime-seconds", type=float, default=1.0, help="re-timing: seconds per predictor and batch size")
    p.add_argument("--no-transfer", action="store_true", help="only the default-vs-long part")
    p.add_argument("--long-models", nargs="+", default=None, metavar="NAME",
                   help="the long search only for these models (default: all); the others get the default run only, "
                        "for the transfer part")
    p.add_argument("--reuse", action="store_true", help="keep runs already finished in the work directory")
    p.add_argument("--note", default=None, help="a sentence for the report's header (e.g. which code was run)")
    p.add_argument("--previous", default=None, metavar="JSON",
                   help="an earlier tuning_efficiency.json to compare with (ratios and transfer counts, in the header)")
    p.add_argument("--previous-label", default=None, help="what to call the earlier run (default: its commit)")
    p.add_argument("--render-only", action="store_true",
                   help="no tuning: rebuild the report from OUT/tuning_efficiency.json and the databases it names "
                        "(the transfer counts are recomputed; --note replaces the note)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="tuning_efficiency: %(levelname)s: %(message)s")
    unknown = [m for m in args.models if m not in models.SPECS]
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(models.SPECS)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.render_only:
        result = rerender(json.loads((out / "tuning_efficiency.json").read_text()), note=args.note)
        if args.previous:
            result["previous"] = summarize_previous(json.loads(Path(args.previous).read_text()), args.previous_label)
        md, js = write(result, out)
        print(f"wrote {md} and {js}")
        return 0
    work = Path(args.work) if args.work else out / "efficiency"
    cache = Path(args.models_cache) if args.models_cache else models.DEFAULT_CACHE
    previous = (summarize_previous(json.loads(Path(args.previous).read_text()), args.previous_label)
                if args.previous else None)  # read before hours of tuning, not after
    subjects = suite_subjects(args.models, cache)
    result = run(subjects, work, batch_sizes=args.batch_sizes, time_budget=args.time_budget or None,
                 trials=args.trials, long_factor=args.long_factor, retime_seconds=args.retime_seconds,
                 transfer=not args.no_transfer, reuse=args.reuse, note=args.note or "", long_models=args.long_models)
    if previous:
        result["previous"] = previous
    md, js = write(result, out)
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
