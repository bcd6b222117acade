"""The measurement loop every system's worker process runs (NumPy, the standard library and ``tuner.timing``
only: the Hummingbird worker imports this module from its own virtual environment).

A worker measures one system on one model: it resets the process's peak RSS
(Linux ``/proc/self/clear_refs``) after imports and inputs are loaded, builds
the predictor, runs every batch size, and reports the peak RSS increase as the
predictor's memory.  Outputs of each batch size's first input batch are saved
so the parent can check them against the native model's.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tuner.timing import METHODOLOGY, time_calls


@dataclass(frozen=True)
class Tier:
    """Timing effort for a range of batch sizes."""

    warmup: int
    min_repeats: int
    min_seconds: float
    max_repeats: int = 100_000


TIERS: tuple[tuple[int, Tier], ...] = (  # (largest batch of the tier, settings)
    (1, Tier(warmup=20, min_repeats=50, min_seconds=0.5)),
    (1024, Tier(warmup=3, min_repeats=10, min_seconds=0.5)),
    (10_000, Tier(warmup=2, min_repeats=5, min_seconds=0.5)),
    (10**12, Tier(warmup=1, min_repeats=3, min_seconds=0.5)),
)
N_BATCHES = 4  # rotating input batches per batch size (2 when a batch is larger than LARGE_BATCH_BYTES)
LARGE_BATCH_BYTES = 64 << 20
EXTRAPOLATE_FROM = 1024  # smaller batches are dominated by per-call overhead: no linear extrapolation from them


def tier_for(batch: int, min_seconds: float | None = None) -> Tier:
    tier = next(t for limit, t in TIERS if batch <= limit)
    if min_seconds is not None:
        tier = Tier(tier.warmup, min(tier.min_repeats, 3), min_seconds, tier.max_repeats)
    return tier


def methodology(min_seconds: float | None = None) -> str:
    """The timing rules in words (printed with every table): tuner.timing's statement, then the effort per tier."""
    parts, lo = [], 1
    for limit, _ in TIERS:
        t = tier_for(limit, min_seconds)
        rng = f"{lo:,}" if limit == lo else (f"{lo:,}-{limit:,}" if limit < 10**12 else f">= {lo:,}")
        parts.append(f"batch {rng}: {t.warmup} warm-up, >= {t.min_repeats} calls and >= {t.min_seconds:g} s")
        lo = limit + 1
    general = METHODOLOGY.format(warmup="W", n_batches=N_BATCHES, min_repeats="N", min_seconds=0).replace(
        " and 0 s", " and S seconds")
    return (f"{general} ({'; '.join(parts)}). Batches larger than {LARGE_BATCH_BYTES >> 20} MB rotate over 2 "
            f"batches. Every system gets the same float32 arrays (pandas DataFrames for the pipe_* pipelines; rows "
            f"drawn with replacement from the model's input pool); the first call on each batch size is also the "
            f"correctness check.")


# --------------------------------------------------------------------------- peak memory


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> int | None:
    """Reset the peak RSS to the current RSS; returns the current RSS in kB (None where unsupported)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _status_kb("VmRSS")


def peak_kb() -> int | None:
    return _status_kb("VmHWM")


# --------------------------------------------------------------------------- inputs


def load_inputs(path: str | Path) -> dict[int, list[Any]]:
    """Rotating batches per batch size, as written by the parent (``b<batch>_<i>`` arrays in an .npz; for the
    DataFrame models a pickle of ``{batch: [DataFrame, ...]}``, written by the parent for this run)."""
    if Path(path).suffix == ".pkl":
        import pickle

        with open(path, "rb") as f:
            return pickle.load(f)
    out: dict[int, list[np.ndarray]] = {}
    with np.load(path) as z:
        for key in sorted(z.files, key=lambda k: (int(k[1:].split("_")[0]), int(k.split("_")[1]))):
            out.setdefault(int(key[1:].split("_")[0]), []).append(np.ascontiguousarray(z[key]))
    return out


def save_inputs(path: str | Path, batches: dict[int, list[Any]]) -> None:
    """Arrays as an .npz; with a ``.pkl`` path (DataFrames of strings, None and NaN), a pickle."""
    if Path(path).suffix == ".pkl":
        import pickle

        with open(path, "wb") as f:
            pickle.dump(batches, f, protocol=pickle.HIGHEST_PROTOCOL)
        return
    np.savez(path, **{f"b{b}_{i}": x for b, xs in batches.items() for i, x in enumerate(xs)})


# --------------------------------------------------------------------------- the loop


@dataclass
class Cell:
    """One (system, batch size) measurement; ``status``: ok | skipped | failed."""

    status: str
    median_s: float | None = None
    p25_s: float | None = None
    p75_s: float | None = None
    repeats: int = 0
    reason: str = ""


def short_error(exc: BaseException) -> str:
    """``Type: first line of the message`` (and its cause), short enough for a table's legend."""
    def one(e: BaseException) -> str:
        lines = str(e).strip().splitlines()
        text = f"{type(e).__name__}: {lines[0] if lines else ''}".strip()
        return text if len(text) <= 160 else text[:157] + "..."

    cause = exc.__cause__ or exc.__context__
    return one(exc) + (f" (from {one(cause)})" if cause is not None and str(cause) not in str(exc) else "")


def run_job(build: Callable[[], Any], inputs: dict[int, list[np.ndarray]], outputs_path: str | Path,
            max_call_s: float, min_seconds: float | None = None, always_output: bool = False,
            facts: Callable[[int], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Build the predictor (``build()`` returns ``fn`` or ``(fn, note)``), then measure each batch size in
    increasing order; a JSON-able result.  An exception with a ``status`` attribute (``NotApplicable``) makes
    that the result's status.  ``facts(batch)``, when given, adds to each measured cell (e.g. the plan's threads).

    A batch size whose one call is estimated (linearly from the last measured
    size of at least ``EXTRAPOLATE_FROM`` rows) to take longer than ``max_call_s``
    is skipped and says so; with ``always_output`` (the native reference) its
    outputs are still computed, only the timing is skipped.
    """
    base_kb = reset_peak()
    t0 = time.perf_counter()
    try:
        built = build()
    except Exception as exc:  # noqa: BLE001 - a peer that cannot build this model is a result
        status = getattr(exc, "status", None)
        if status:
            return {"status": status, "reason": str(exc)}
        return {"status": "failed", "reason": short_error(exc), "trace": traceback.format_exc(limit=8)[-3000:]}
    fn, note = built if isinstance(built, tuple) else (built, "")
    build_s = time.perf_counter() - t0
    cells: dict[str, dict[str, Any]] = {}
    outputs: dict[str, np.ndarray] = {}
    per_row: float | None = None
    for b in sorted(inputs):
        batches = inputs[b]
        try:
            estimate = per_row * b if per_row is not None else 0.0
            if estimate > max_call_s and not always_output:
                cells[str(b)] = asdict(Cell("skipped", reason=f"too slow (est. {estimate:.0f} s per call)"))
                continue
            t = time.perf_counter()
            first = np.asarray(fn(batches[0]))
            first_s = time.perf_counter() - t
            outputs[f"b{b}"] = first
            if estimate > max_call_s or first_s > 3 * max_call_s:  # outputs kept for the check, time not measured
                shown = first_s if first_s > 3 * max_call_s else estimate
                cells[str(b)] = asdict(Cell("skipped", reason=f"too slow ({shown:.0f} s per call)"))
                per_row = first_s / b
                continue
            tier = tier_for(b, min_seconds)
            timing = time_calls(fn, batches, warmup=tier.warmup, min_repeats=tier.min_repeats,
                                min_seconds=tier.min_seconds, max_repeats=tier.max_repeats)
        except Exception as exc:  # noqa: BLE001
            cells[str(b)] = asdict(Cell("failed", reason=short_error(exc)))
            continue
        # extrapolate only from batches large enough for per-row cost to dominate per-call overhead
        per_row = max(timing.median_s, 1e-9) / b if b >= EXTRAPOLATE_FROM else None
        cells[str(b)] = asdict(Cell("ok", timing.median_s, timing.p25_s, timing.p75_s, timing.repeats))
        if facts is not None:
            cells[str(b)].update(facts(b))
    np.savez(outputs_path, **outputs)
    peak = peak_kb()
    mem_mb = None if base_kb is None or peak is None else max(peak - base_kb, 0) / 1024
    return {"status": "ok", "build_s": build_s, "peak_rss_mb": mem_mb, "cells": cells, "note": note}


def write_result(path: str | Path, result: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(result, indent=1))
