"""Summaries of a tuning log as rows of text, for ``tunebird records`` and notebooks."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from .database import Database, TrialStatus

HASH_WIDTH = 12
CONFIG_WIDTH = 72


@dataclass(frozen=True)
class Table:
    """A titled table of text cells."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def format_seconds(seconds: float | None) -> str:
    """``1.5e-05`` -> ``'15.0 µs'``; None -> ``'-'``."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def isa_summary(flags: tuple[str, ...]) -> str:
    """ISA flags with the large families counted: ``'avx2 fma avx512(14)'``."""
    families = ("avx512", "amx", "avx10", "sve", "sme")
    plain = [f for f in flags if not f.startswith(families)]
    counted = [f"{fam}({n})" for fam in families if (n := sum(f.startswith(fam) for f in flags))]
    return " ".join(plain + counted) or "-"


def describe_config(config: dict) -> str:
    """A config in one short line: ``strategy@backend threads=2 chunk=1024 knob=value ...``."""
    if "strategy" not in config or "backend" not in config:
        return json.dumps(config, sort_keys=True, separators=(",", ":"))
    parts = [f"{config['strategy']}@{config['backend']}"]
    for key, label in (("threads", "threads"), ("batch_size", "chunk")):
        if key in config:
            parts.append(f"{label}={config[key]}")
    if config.get("fuse_post") is False:
        parts.append("post=separate")
    parts += [f"{k}={v}" for k, v in sorted(config.get("knobs", {}).items())]
    return " ".join(parts)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def device_table(db: Database) -> Table:
    """One row per registered device."""
    rows = []
    for d in db.devices():
        versions = " ".join(f"{k} {v}" for k, v in sorted(d.versions.items()) if v)
        rows.append((
            d.fingerprint[:HASH_WIDTH], d.cpu_model, str(d.n_cores), isa_summary(d.isa_flags), d.gpu or "-",
            f"{d.os}/{d.arch}", versions, d.created_at.strftime("%Y-%m-%d %H:%M"),
        ))
    header = ("device", "cpu", "cores", "isa", "gpu", "os/arch", "versions", "registered")
    return Table("Devices", header, tuple(rows))


def workload_table(db: Database) -> Table:
    """One row per registered workload, with its number of trials."""
    counts = Counter(t.workload_hash for t in db.trials())
    rows = tuple(
        (w.workload_hash[:HASH_WIDTH], ",".join(w.op_kinds) or "-", _clip(w.summary, CONFIG_WIDTH),
         str(counts[w.workload_hash]), w.created_at.strftime("%Y-%m-%d %H:%M"))
        for w in db.workloads()
    )
    return Table("Workloads", ("workload", "ops", "summary", "trials", "registered"), rows)


def best_table(db: Database) -> Table:
    """One row per (workload, device, batch size) with trials: the best ok config and its latency."""
    total: Counter[tuple[str, str, int]] = Counter()
    ok: Counter[tuple[str, str, int]] = Counter()
    for t in db.trials():
        key = (t.workload_hash, t.device_fingerprint, t.batch_size)
        total[key] += 1
        ok[key] += t.status is TrialStatus.OK
    rows = []
    for w, d in sorted({(w, d) for w, d, _ in total}):
        best = db.best_trials(w, d)
        for batch in sorted(b for ww, dd, b in total if (ww, dd) == (w, d)):
            t = best.get(batch)
            config = describe_config(t.config) if t else "(no ok trial)"
            rows.append((
                w[:HASH_WIDTH], d[:HASH_WIDTH], str(batch),
                format_seconds(t.latency_median_s if t else None),
                format_seconds(t.latency_spread_s if t else None),
                f"{ok[(w, d, batch)]}/{total[(w, d, batch)]}", _clip(config, CONFIG_WIDTH),
            ))
    header = ("workload", "device", "batch", "median", "spread", "ok/trials", "best config")
    return Table("Best config per batch size", header, tuple(rows))


def summary_tables(db: Database) -> list[Table]:
    """The tables ``tunebird records`` prints: devices, workloads, best configs."""
    return [device_table(db), workload_table(db), best_table(db)]


def format_table(table: Table) -> str:
    """``table`` as aligned text under its title (``(none)`` when it has no rows)."""
    lines = [f"{table.title}:"]
    if not table.rows:
        return "\n".join([*lines, "  (none)"])
    widths = [max(len(r[i]) for r in (table.header, *table.rows)) for i in range(len(table.header))]
    for i, row in enumerate((table.header, *table.rows)):
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)
