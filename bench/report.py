"""Reporting: the results JSON as Markdown tables, JSON, and matplotlib plots (PNG)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

PEERS = ("native", "onnxruntime", "treelite", "hummingbird", "onedal", "lleaves")  # what "best peer" is chosen from
TUNED, UNTUNED = "tunebird-tuned", "tunebird-untuned"


# --------------------------------------------------------------------------- reading the results


def cell(system: dict[str, Any], batch: int) -> dict[str, Any] | None:
    return system.get("cells", {}).get(str(batch))


def seconds(system: dict[str, Any], batch: int, *, correct_only: bool = True) -> float | None:
    """Median seconds per call, or None when not measured (or, by default, when its outputs mismatch)."""
    c = cell(system, batch)
    if not c or c.get("status") != "ok" or not c.get("median_s"):
        return None
    if correct_only and (c.get("mismatch") or c.get("unchecked")):
        return None
    return float(c["median_s"])


def by_name(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["system"]: s for s in entry["systems"]}


def best_peer(entry: dict[str, Any], batch: int) -> tuple[str, float] | None:
    """The fastest correct peer (native library included) at ``batch``: (system, seconds)."""
    found = [(s["system"], seconds(s, batch)) for s in entry["systems"] if s["system"] in PEERS]
    found = [(n, t) for n, t in found if t is not None]
    return min(found, key=lambda x: x[1]) if found else None


def tuned_vs_best_peer(entry: dict[str, Any], batch: int) -> tuple[float, str] | None:
    """(best peer seconds / tuned seconds, peer); > 1 means tuned tunebird is ahead."""
    tuned = by_name(entry).get(TUNED)
    t = seconds(tuned, batch) if tuned else None
    peer = best_peer(entry, batch)
    if t is None or peer is None:
        return None
    return peer[1] / t, peer[0]


# --------------------------------------------------------------------------- formatting


def fmt_rate(rows_per_s: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rows_per_s >= scale:
            return f"{rows_per_s / scale:.3g}{unit}"
    return f"{rows_per_s:.3g}"


def fmt_latency(s: float) -> str:
    us = s * 1e6
    return f"{us:.3g} µs" if us < 1000 else f"{us / 1000:.3g} ms"


def _status_text(system: dict[str, Any]) -> str:
    status = system.get("status", "failed")
    if status == "failed":
        return "fails"
    return status


def cell_text(system: dict[str, Any], batch: int, native_s: float | None, winner: bool) -> str:
    c = cell(system, batch)
    if system.get("status") != "ok":
        return "–"
    if c is None:
        return "–"
    if c["status"] == "skipped":
        return "skipped"
    if c["status"] != "ok":
        return "fails"
    s = float(c["median_s"])
    value = fmt_latency(s) if batch == 1 else fmt_rate(batch / s)
    if winner:
        value = f"**{value}**"
    if c.get("p25_s") is not None and c.get("p75_s") is not None and s > 0:
        value += f" ±{50 * (c['p75_s'] - c['p25_s']) / s:.0f}%"
    if c.get("mismatch"):
        return f"{value} ✗ mismatch"
    if c.get("unchecked"):
        return f"{value} (unchecked)"
    if native_s and system["system"] != "native":
        value += f" ({native_s / s:.2f}x)"
    return value


def model_table(entry: dict[str, Any]) -> list[str]:
    sizes = entry["batch_sizes"]
    systems = by_name(entry)
    native = systems.get("native")
    head = ["system"] + [("batch 1 (µs/call)" if b == 1 else f"{b:,} (rows/s)") for b in sizes] + ["peak memory", "build"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    winners = {}
    for b in sizes:
        times = [(s["system"], seconds(s, b)) for s in entry["systems"]]
        times = [(n, t) for n, t in times if t is not None]
        winners[b] = min(times, key=lambda x: x[1])[0] if times else None
    for s in entry["systems"]:
        label = s.get("label") or s["system"]
        if s.get("status") != "ok":
            why = s.get("reason", "")
            first = f"{label}: {_status_text(s)}" + (f" ({why})" if why else "")
            lines.append("| " + " | ".join([first] + ["–"] * (len(head) - 1)) + " |")
            continue
        cells = [cell_text(s, b, seconds(native, b) if native else None, winners[b] == s["system"]) for b in sizes]
        mem = s.get("peak_rss_mb")
        build = s.get("build_s")
        lines.append("| " + " | ".join([label, *cells, "–" if mem is None else f"{mem:,.0f} MB",
                                        "–" if build is None else f"{build:.1f} s"]) + " |")
    return lines


def model_notes(entry: dict[str, Any]) -> list[str]:
    notes = []
    for s in entry["systems"]:
        label = s.get("label") or s["system"]
        if s.get("note"):
            notes.append(f"- {label}: {s['note']}")
        for b, c in sorted(s.get("cells", {}).items(), key=lambda kv: int(kv[0])):
            if c.get("mismatch"):
                notes.append(f"- {label} at batch {int(b):,}: ✗ {c['mismatch']}")
            elif c.get("unchecked"):
                notes.append(f"- {label} at batch {int(b):,}: unchecked ({c['unchecked']}), so not counted as a win")
            elif c.get("status") in ("skipped", "failed") and c.get("reason"):
                notes.append(f"- {label} at batch {int(b):,}: {c['status']}: {c['reason']}")
    return notes


def summary_table(result: dict[str, Any]) -> list[str]:
    sizes = sorted({b for e in result["models"] for b in e["batch_sizes"] if b >= 1024}) or \
        sorted({b for e in result["models"] for b in e["batch_sizes"]})
    head = ["model"] + [f"batch {b:,}" for b in sizes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in result["models"]:
        row = [e["name"]]
        for b in sizes:
            if b not in e["batch_sizes"]:
                row.append("–")
                continue
            r = tuned_vs_best_peer(e, b)
            if r is None:
                tuned = by_name(e).get(TUNED, {})
                row.append(_status_text(tuned) if tuned.get("status") not in (None, "ok") else "n/a")
                continue
            text = f"{r[0]:.2f}x vs {r[1]}"
            row.append(f"**{text}**" if r[0] >= 1 else text)
        lines.append("| " + " | ".join(row) + " |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        "# tunebird bench: tuned vs untuned vs every peer",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gb')} GB, {m.get('os')}, Python "
        f"{m.get('python')} (tunebird device {m.get('fingerprint', '?')}: {m.get('device')}).",
        f"Run {result['created']}, {result['wall_s']:.0f} s, {result['threads']} threads for every system; load "
        f"average {result['load_average_start'][0]:.2f} at the start, {result['load_average_end'][0]:.2f} at the end.",
        "",
        f"- Timing: {result['methodology']}",
        f"- Memory: {result['memory_method']}.",
        f"- Correctness: {result['correctness']}; a mismatch is shown as ✗ and never counted as a win.",
        *([f"- Plots: {result['plots']}."] if result.get("plots") else []),
        "- Cells: batch 1 in microseconds per call, larger batches in rows per second (median); ±N% is half the "
        "interquartile range relative to the median; (N.NNx) is the speedup relative to the native library in the "
        "same run; **bold** is the fastest correct system at that batch size.",
        "",
        "## Summary: tuned tunebird vs the best peer (native library included)",
        "",
        "Throughput of tuned tunebird / throughput of the fastest correct peer (> 1: tunebird ahead).",
        "",
        *summary_table(result),
        "",
        "## Systems",
        "",
    ]
    for name, info in result["systems"].items():
        out.append(f"- **{info['label']}**" + (f": {info['notes']}" if info.get("notes") else ""))
    for e in result["models"]:
        out += ["", f"## {e['name']}: {e['description']}", "",
                f"Inputs: {e['data']} ({e['n_features']} features); timed method: `{e['method']}`."
                + (f" Batch sizes capped at {max(e['batch_sizes']):,}: {e['batch_note']}." if e.get("batch_note") else ""),
                "", *model_table(e)]
        notes = model_notes(e)
        if notes:
            out += ["", *notes]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- plots

COLORS = {"native": "#444444", "onnxruntime": "#1f77b4", "treelite": "#2ca02c", "hummingbird": "#9467bd",
          "onedal": "#17becf", "lleaves": "#bcbd22",
          UNTUNED: "#ff7f0e", TUNED: "#d62728"}


def plot_throughput(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = result["models"]
    ncols = min(4, len(entries))
    nrows = math.ceil(len(entries) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    handles = {}
    for ax, e in zip(axes.flat, entries):
        for s in e["systems"]:
            pts = [(b, b / seconds(s, b, correct_only=False)) for b in e["batch_sizes"]
                   if seconds(s, b, correct_only=False)]
            if not pts:
                continue
            bad = [(b, r) for b, r in pts if (cell(s, b) or {}).get("mismatch")]
            (line,) = ax.plot(*zip(*pts), marker="o", ms=3, color=COLORS.get(s["system"]), label=s["label"],
                              lw=2.2 if s["system"] == TUNED else 1.2)
            if bad:
                ax.scatter(*zip(*bad), marker="x", s=50, color="black", zorder=5)
            handles[s["label"]] = line
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{e['name']}", fontsize=10)
        ax.set_xlabel("batch size", fontsize=8)
        ax.set_ylabel("rows/s", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="major", alpha=0.3)
    for ax in list(axes.flat)[len(entries):]:
        ax.axis("off")
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(6, len(handles)), fontsize=8,
               title="x: outputs mismatch the native model", title_fontsize=7)
    fig.suptitle(f"Throughput vs batch size, {result['threads']} threads ({result['machine'].get('cpu')})", fontsize=11)
    fig.tight_layout(rect=(0, 0.12 if nrows == 1 else 0.06, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_speedups(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sizes = sorted({b for e in result["models"] for b in e["batch_sizes"]})
    shown = [b for b in sizes if b >= 1024] or sizes[-1:]
    fig, axes = plt.subplots(len(shown), 1, figsize=(max(6, 1.0 * len(result["models"]) + 2), 3.2 * len(shown)),
                             squeeze=False)
    for ax, b in zip(axes[:, 0], shown):
        names, peers, series = [], [], {"tunebird tuned": [], "tunebird untuned": [], "best peer": []}
        for e in result["models"]:
            if b not in e["batch_sizes"]:
                continue
            sysd = by_name(e)
            native = seconds(sysd["native"], b) if "native" in sysd else None
            if not native:
                continue
            names.append(e["name"])
            for key, sname in (("tunebird tuned", TUNED), ("tunebird untuned", UNTUNED)):
                t = seconds(sysd[sname], b) if sname in sysd else None
                series[key].append(native / t if t else np.nan)
            peer = best_peer(e, b)
            series["best peer"].append(native / peer[1] if peer else np.nan)
            peers.append(peer[0] if peer else "")
        x = np.arange(len(names))
        for i, (key, vals) in enumerate(series.items()):
            color = {"tunebird tuned": COLORS[TUNED], "tunebird untuned": COLORS[UNTUNED], "best peer": "#7f7f7f"}[key]
            ax.bar(x + (i - 1) * 0.27, vals, width=0.27, label=key, color=color)
            if key == "best peer":
                for xi, v, peer_name in zip(x, vals, peers):
                    if np.isfinite(v):
                        ax.annotate(peer_name, (xi + 0.27, v), ha="center", va="bottom", fontsize=6, rotation=90,
                                    xytext=(0, 2), textcoords="offset points")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi * 4)  # room for the peer names above the bars
        from matplotlib.ticker import FuncFormatter

        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xticks(x, names, fontsize=8, rotation=20)
        ax.set_ylabel("speedup vs native", fontsize=8)
        ax.set_title(f"batch {b:,}: throughput relative to the native library (higher is better)", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plots_unavailable() -> str | None:
    """None when matplotlib is importable, else what to install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install -e .[bench]): no plots written"
    return None


def write_all(result: dict[str, Any], out: Path) -> list[Path]:
    """bench.md, bench.json, and (with matplotlib) throughput.png and speedup.png in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    no_plots = plots_unavailable()
    if no_plots:
        result = {**result, "plots": no_plots}
        log.warning("%s", no_plots)
    md = out / "bench.md"
    md.write_text(markdown(result))
    js = out / "bench.json"
    js.write_text(json.dumps(result, indent=1, default=str))
    if no_plots:
        return [md, js]
    return [md, js, plot_throughput(result, out / "throughput.png"), plot_speedups(result, out / "speedup.png")]


def systems_in(result: dict[str, Any]) -> Iterable[str]:
    return [s["system"] for e in result["models"] for s in e["systems"]]
