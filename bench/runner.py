"""Running the suite: per model, every system in a fresh worker process, checked against the native model.

Memory method: each (model, system) runs in its own process; after the
libraries are imported and the inputs loaded, the worker resets its peak RSS
(``/proc/self/clear_refs``), then loads/builds the predictor and runs every
batch size; the reported memory is the peak RSS increase over that baseline
(``VmHWM - VmRSS``).  That sees native allocations (which ``tracemalloc``
cannot) and isolates systems from each other, at the cost of one process
start per (model, system).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import models
from .measure import LARGE_BATCH_BYTES, N_BATCHES, methodology, save_inputs
from .peers import PEER_NAMES, SYSTEMS, get
from .peers.base import Context, align, as_columns
from .tune import batch_sizes_for

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger(__name__)


@dataclass
class RunSettings:
    threads: int | None = None
    batch_sizes: tuple[int, ...] = (1, 64, 1024, 10_000, 100_000)
    db: str = str(REPO / "bench" / "results" / "bench.db")
    cache_dir: Path = models.DEFAULT_CACHE
    skip: tuple[str, ...] = ()
    max_call_s: float = 4.0
    hummingbird_setup: bool = True
    timeout_s: float = 1200.0
    min_seconds: float | None = None  # overrides the timing tiers' minimum (smoke tests)
    systems: tuple[str, ...] = field(default=SYSTEMS)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def describe_machine() -> dict[str, Any]:
    """CPU, cores, memory, OS and the tunebird device fingerprint (what the tuned plans are keyed by)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1])
        mem_gb = round(kb / 1024**2, 1)
    except (OSError, StopIteration):
        pass
    out = {"cpu": cpu, "cores": usable_cores(), "memory_gb": mem_gb,
           "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}
    try:
        from tuner.device import current_device

        dev = current_device()
        out["device"] = dev.summary()
        out["fingerprint"] = dev.fingerprint[:12]
    except Exception as exc:  # noqa: BLE001 - a description, not a requirement
        out["device"] = f"unknown ({type(exc).__name__})"
    return out


def availability(settings: RunSettings, say: Callable[[str], None]) -> dict[str, tuple[str, str] | None]:
    """Per system: None when it will run, else (status, reason): skipped or missing."""
    out: dict[str, tuple[str, str] | None] = {}
    for name in settings.systems:
        if name in settings.skip:
            out[name] = ("skipped", "skipped with --skip-peers")
            continue
        system = get(name)
        reason = system.available()
        if reason and name == "hummingbird" and settings.hummingbird_setup:
            from .peers.hummingbird import create_venv

            failure = create_venv(say=say)
            reason = failure or system.available()
        out[name] = None if reason is None else ("missing", reason)
    return out


def _inputs(sm: models.SuiteModel, sizes: tuple[int, ...]) -> dict[int, list[Any]]:
    """Rotating batches per batch size: float32 arrays, or DataFrame row slices for the pipelines."""
    from tuner.timing import rotating_batches

    from .pipelines import frame_bytes_per_row, rotating_frames

    frame = sm.spec.frame
    row_bytes = frame_bytes_per_row(sm.X) if frame else sm.X.shape[1] * sm.X.itemsize
    out = {}
    for b in sizes:
        n = 2 if b * row_bytes > LARGE_BATCH_BYTES else N_BATCHES
        out[b] = (rotating_frames if frame else rotating_batches)(sm.X, b, n_batches=n, seed=b)
    return out


def convert(model: Any) -> Any | None:
    """tunebird's conversion of ``model`` (``strategies.ConvertedModel``), or None when it cannot convert it (yet):
    its tunebird cells then report the failure."""
    import strategies
    from strategies.ground.errors import UnsupportedModelError

    try:
        return strategies.convert(model)
    except Exception as exc:  # noqa: BLE001 - a converter's failure is tunebird's result, shown in its cells
        (log.info if isinstance(exc, UnsupportedModelError) else log.warning)(
            "tunebird cannot convert %s (%s: %s): timing the native model's own methods", type(model).__name__,
            type(exc).__name__, str(exc)[:200])
        return None


def method_of(model: Any, converted: Any | None) -> str:
    """The native method every system reproduces: from tunebird's conversion of the model, or, when it has none
    (``converted`` is None), from what the native model offers."""
    from tuner.native import primary_method

    if converted is not None:
        methods = converted.methods
    else:
        methods = tuple(m for m in ("predict_proba", "predict", "transform", "score_samples") if hasattr(model, m))
    return primary_method(methods)


def tree_facts(graph: Any) -> dict[str, int] | None:
    """The tree work of one row in a converted graph: ``trees`` (over every ``TreeEnsemble`` op), ``levels`` (the sum
    over those trees of each tree's depth: the split nodes on its longest root-to-leaf path, ``Tree.depth``) and
    ``max_depth``; None for a graph without trees."""
    from strategies.ir import TreeEnsemble

    depths = [t.depth for node in graph.nodes if isinstance(node.op, TreeEnsemble) for t in node.op.trees]
    if not depths:
        return None
    return {"trees": len(depths), "levels": int(sum(depths)), "max_depth": int(max(depths))}


def _run_worker(cmd: list[str], result_path: Path, timeout: float, threads: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return {"status": "failed", "reason": f"timed out after {timeout:.0f} s"}
    if result_path.exists():
        return json.loads(result_path.read_text())
    tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or [f"exit code {proc.returncode}"]
    return {"status": "failed", "reason": f"worker died (exit code {proc.returncode}): {tail[0][:200]}"}


def check_against(result: dict[str, Any], outputs: Path, ref: dict[int, np.ndarray]) -> None:
    """Mark each measured cell with ``mismatch`` (None when its outputs match the native ones)."""
    from tuner.measure import check_outputs

    got = dict(np.load(outputs)) if outputs.exists() else {}
    for b, cell in result.get("cells", {}).items():
        want = ref.get(int(b))
        out = got.get(f"b{b}")
        cell["mismatch"] = None
        if want is None or out is None:
            if cell["status"] == "ok":
                cell["unchecked"] = "no native outputs to compare with" if want is None else "no outputs saved"
            continue
        try:
            cell["mismatch"] = check_outputs(align(out, want), want)
        except Exception as exc:  # noqa: BLE001 - a malformed output is a mismatch
            cell["mismatch"] = f"outputs not comparable: {type(exc).__name__}: {exc}"[:200]


def run_model(name: str, settings: RunSettings, avail: dict[str, Any], threads: int,
              step: Callable[[str], None]) -> dict[str, Any]:
    """Every system on model ``name``; the model's entry of the results JSON."""
    sm = models.load(name, settings.cache_dir)
    converted = convert(sm.model)
    method = method_of(sm.model, converted)
    sizes = batch_sizes_for(name, settings.batch_sizes)
    entry: dict[str, Any] = {
        "name": name, "description": sm.spec.description, "n_features": sm.n_features, "data": sm.data,
        "method": method, "batch_sizes": list(sizes), "systems": [],
        "batch_note": sm.spec.max_batch_reason if len(sizes) < len(settings.batch_sizes) else "",
        "trees": tree_facts(converted.graph) if converted is not None else None,
    }
    ctx = Context(threads=threads, db=settings.db, cache_dir=Path(settings.cache_dir), method=method)
    ref: dict[int, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        tmpdir = Path(tmp)
        inputs = tmpdir / ("inputs.pkl" if sm.spec.frame else "inputs.npz")  # DataFrames with str/None are pickled
        save_inputs(inputs, _inputs(sm, sizes))
        for sys_name in settings.systems:
            step(f"{name}: {sys_name}")
            system = get(sys_name)
            rec: dict[str, Any] = {"system": sys_name, "label": system.label}
            if avail.get(sys_name):
                rec["status"], rec["reason"] = avail[sys_name]
                entry["systems"].append(rec)
                continue
            job = {"system": sys_name, "model": name, "cache_dir": str(settings.cache_dir), "db": settings.db,
                   "threads": threads, "method": method, "inputs": str(inputs), "max_call_s": settings.max_call_s,
                   "min_seconds": settings.min_seconds,
                   "outputs": str(tmpdir / f"{sys_name}.out.npz"), "result": str(tmpdir / f"{sys_name}.json")}
            try:
                if system.external:
                    job.update(system.job(name, ctx))
                    (tmpdir / f"{sys_name}.job.json").write_text(json.dumps(job))
                    cmd = system.command(tmpdir / f"{sys_name}.job.json")
                else:
                    (tmpdir / f"{sys_name}.job.json").write_text(json.dumps(job))
                    cmd = [sys.executable, "-m", "bench.worker", str(tmpdir / f"{sys_name}.job.json")]
                t = time.monotonic()
                result = _run_worker(cmd, Path(job["result"]), settings.timeout_s, threads)
                result["wall_s"] = round(time.monotonic() - t, 1)
            except Exception as exc:  # noqa: BLE001 - e.g. NotApplicable while preparing the job
                result = {"status": getattr(exc, "status", "failed"), "reason": str(exc)[:300]}
            if sys_name == "native" and result.get("status") == "ok":
                outs = np.load(job["outputs"])
                ref = {b: as_columns(outs[f"b{b}"], len(outs[f"b{b}"])) for b in sizes if f"b{b}" in outs}
            if result.get("status") == "ok":
                check_against(result, Path(job["outputs"]), ref)
            result.pop("trace", None)
            rec.update(result)
            entry["systems"].append(rec)
    return entry


def run_suite(names: list[str], settings: RunSettings, say: Callable[[str], None] = print,
              progress: bool = True) -> dict[str, Any]:
    """The whole suite; the results JSON (see ``bench.report`` for the tables and plots)."""
    threads = settings.threads or usable_cores()
    t0 = time.monotonic()
    load_start = os.getloadavg()
    say(f"bench: {len(names)} models x {len(settings.systems)} systems, {threads} threads, db {settings.db}")
    if load_start[0] > 0.5:
        say(f"bench: warning: load average {load_start[0]:.2f}: other processes share the cores, and systems "
            f"running {threads} threads (OpenMP above all) lose most when one of their threads is descheduled")
    avail = availability(settings, say)
    for sys_name, why in avail.items():
        if why:
            say(f"  {sys_name}: {why[0]} ({why[1]})")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(names) * len(settings.systems), unit="run", dynamic_ncols=True)

    def step(label: str) -> None:
        if bar is not None:
            bar.set_description_str(label[:40])
            bar.update(1)

    entries = []
    try:
        for name in names:
            t = time.monotonic()
            entries.append(run_model(name, settings, avail, threads, step))
            entries[-1]["wall_s"] = round(time.monotonic() - t, 1)
    finally:
        if bar is not None:
            bar.close()
    return {
        "suite": "tunebird bench", "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": describe_machine(), "threads": threads, "db": settings.db,
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.monotonic() - t0, 1), "methodology": methodology(settings.min_seconds),
        "memory_method": ("peak RSS increase (VmHWM - VmRSS after /proc/self/clear_refs) of a fresh worker "
                          "process while it loads/builds the predictor and runs every batch size; libraries are "
                          "imported and inputs loaded before the baseline"),
        "correctness": ("each batch size's first input batch: outputs compared with the native model's by "
                        "tuner.measure.check_outputs (relative 1e-5, scaled by the output's magnitude)"),
        "systems": {name: {"label": get(name).label, "notes": get(name).notes(),
                           "optional": name in PEER_NAMES} for name in settings.systems},
        "models": entries,
    }
