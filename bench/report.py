"""Reporting: the results JSON as Markdown tables, JSON, and matplotlib plots (PNG)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

PEERS = ("native", "onnxruntime", "treelite", "hummingbird", "onedal", "lleaves", "ydf")  # "best peer" is one of these
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


# --------------------------------------------------------------------------- the headline table

HEADLINE = "tuned tunebird over the best correct peer"
NS_DEFINITION = (
    "ns per tree-level per core = 1e9 × threads_used / (rows_per_s × levels): rows_per_s is tuned tunebird's median "
    "throughput at that batch size (batch / median seconds per call); threads_used is the thread count of the tuned "
    "plan that serves that batch size (the most any of its tasks uses; it may be below the run's thread count); "
    "levels is the sum, over every tree of every TreeEnsemble op in tunebird's converted model "
    "(`strategies.convert(model).graph`), of the tree's depth: the split nodes on its longest root-to-leaf path "
    "(`Tree.depth`), i.e. the levels a row visits when it walks each tree to its deepest leaf. Lower is better. "
    "A walk that ends at a shallower leaf visits fewer levels, so for trees whose leaves are not all at the same "
    "depth the figure understates the time per level actually visited.")


def ns_per_tree_level(rows_per_s: float, threads: int | None, levels: int | None) -> float | None:
    """Core-nanoseconds per tree level: ``1e9 * threads / (rows_per_s * levels)`` (None when a fact is missing)."""
    if not threads or not levels or not rows_per_s:
        return None
    return 1e9 * threads / (rows_per_s * levels)


def _tuned_blocker(entry: dict[str, Any], batch: int) -> str | None:
    """Why tuned tunebird has no correct measurement at ``batch`` (None when it has one)."""
    if batch not in entry["batch_sizes"]:
        return "not timed"
    tuned = by_name(entry).get(TUNED)
    if tuned is None:
        return "not run"
    if tuned.get("status") != "ok":
        return _status_text(tuned)
    c = cell(tuned, batch)
    if c is None:
        return "not timed"
    if c.get("status") == "skipped":
        return "skipped"
    if c.get("status") != "ok" or not c.get("median_s"):
        return "fails"
    if c.get("mismatch"):
        return "✗ tuned mismatch"
    if c.get("unchecked"):
        return "unchecked"
    return None


def headline_cell(entry: dict[str, Any], batch: int) -> dict[str, Any]:
    """Tuned tunebird against the fastest correct peer at ``batch`` in the same run: ``ratio`` (tuned rows/s over
    the peer's) and ``peer``, or ``reason`` when there is no ratio; and tuned tunebird's ``ns_per_tree_level_per_core``
    (see ``NS_DEFINITION``; None for models without trees)."""
    out: dict[str, Any] = {"ratio": None, "peer": None, "peer_label": None, "tuned_rows_per_s": None,
                           "peer_rows_per_s": None, "threads_used": None, "ns_per_tree_level_per_core": None,
                           "reason": _tuned_blocker(entry, batch)}
    if out["reason"]:
        return out
    systems = by_name(entry)
    c = cell(systems[TUNED], batch)
    t = float(c["median_s"])
    out["tuned_rows_per_s"] = batch / t
    out["threads_used"] = c.get("threads")
    out["ns_per_tree_level_per_core"] = ns_per_tree_level(batch / t, c.get("threads"),
                                                          (entry.get("trees") or {}).get("levels"))
    peer = best_peer(entry, batch)
    if peer is None:
        out["reason"] = "no correct peer"
        return out
    out.update(ratio=peer[1] / t, peer=peer[0], peer_label=systems[peer[0]].get("label") or peer[0],
               peer_rows_per_s=batch / peer[1])
    return out


def ratio_text(hc: dict[str, Any]) -> str:
    """A headline cell as text: ``2.31x oneDAL`` (bold when tunebird is ahead), or the reason there is no ratio."""
    if hc["ratio"] is None:
        return hc["reason"] or "–"
    text = f"{hc['ratio']:.2f}x {hc['peer_label']}"
    return f"**{text}**" if hc["ratio"] >= 1 else text


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The headline's data (what bench.json holds under ``headline``): per model and batch size, ``headline_cell``."""
    sizes = sorted({b for e in result["models"] for b in e["batch_sizes"]})
    return {
        "title": HEADLINE, "batch_sizes": sizes, "peers": list(PEERS),
        "ratio": "tuned tunebird's rows/s / the fastest correct peer's rows/s, same run, same batch size",
        "ns_per_tree_level_per_core": NS_DEFINITION,
        "models": [{"name": e["name"], "trees": e.get("trees"), "trees_recorded": "trees" in e,
                    "cells": {str(b): headline_cell(e, b) for b in sizes}} for e in result["models"]],
    }


def headline_section(result: dict[str, Any]) -> list[str]:
    """The headline section of bench.md, as Markdown lines (the README copies this)."""
    data = headline(result)
    sizes = data["batch_sizes"]
    cols = [f"batch {b:,}" for b in sizes]
    labels = ", ".join(info["label"] for name, info in result["systems"].items() if name in PEERS) or "none"
    lines = [f"## {HEADLINE[0].upper()}{HEADLINE[1:]}", "",
             "| model | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for m in data["models"]:
        lines.append(f"| {m['name']} | " + " | ".join(ratio_text(m["cells"][str(b)]) for b in sizes) + " |")
    lines += [
        "",
        "Each cell: tuned tunebird's throughput divided by the throughput of the fastest peer whose outputs matched "
        "the native model's at that batch size in the same run (rows per second; at batch 1, 1 / seconds per call), "
        f"and that peer; **bold** when tunebird is ahead. Peers: {labels}. A peer with ✗ (mismatch) or unchecked "
        "outputs is never the best correct peer. No ratio: *not tuned* (no tuned plan in the database), *no correct "
        "peer* (every peer missing, unsupported, failed, skipped or mismatched), *skipped* (the tuned call was "
        "estimated too slow), *✗ tuned mismatch*, *unsupported* / *fails*, *not timed* (a batch size not timed for "
        "that model).",
        "",
        "Tuned tunebird's ns per tree-level per core (threads the tuned plan used):",
        "",
        "| model | trees | levels per row | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 3),
    ]
    for m in data["models"]:
        trees = m["trees"]
        if not trees:
            why = "no trees" if m.get("trees_recorded", True) else "not recorded"
            lines.append(f"| {m['name']} | {why} | – | " + " | ".join("–" for _ in sizes) + " |")
            continue
        row = []
        for b in sizes:
            hc = m["cells"][str(b)]
            ns = hc["ns_per_tree_level_per_core"]
            if ns is not None:
                row.append(f"{ns:.3g} ({hc['threads_used']}t)")
            elif hc["tuned_rows_per_s"] is not None:
                row.append("threads unknown")
            else:
                row.append(hc["reason"] if hc["reason"] != "no correct peer" else "–")
        lines.append(f"| {m['name']} | {trees['trees']:,} | {trees['levels']:,} | " + " | ".join(row) + " |")
    lines += ["", NS_DEFINITION]
    return lines


def headline_markdown(result: dict[str, Any]) -> str:
    return "\n".join(headline_section(result)) + "\n"


def combined_cell(hc: dict[str, Any]) -> str:
    """A headline cell with tuned tunebird's ns per tree-level per core beside the ratio: ``**2.31x** oneDAL ·
    0.417 ns``, bold when tunebird is ahead."""
    if hc["ratio"] is None:
        text = hc["reason"] or "–"
    else:
        ratio = f"{hc['ratio']:.2f}x"
        text = f"{'**' + ratio + '**' if hc['ratio'] >= 1 else ratio} {hc['peer_label']}"
    ns = hc["ns_per_tree_level_per_core"]
    return text if ns is None else f"{text} · {ns:.3g} ns"


def combined_table(result: dict[str, Any]) -> list[str]:
    """One table (the README's): per model and batch size, tuned tunebird over the best correct peer, that peer,
    and beside it tuned tunebird's ns per tree-level per core (tree models)."""
    data = headline(result)
    sizes = data["batch_sizes"]
    lines = ["| model | trees · levels per row | " + " | ".join(f"batch {b:,}" for b in sizes) + " |",
             "|" + "---|" * (len(sizes) + 2)]
    for m in data["models"]:
        trees = m["trees"]
        shape = f"{trees['trees']:,} · {trees['levels']:,}" if trees else "–"
        lines.append(f"| {m['name']} | {shape} | " + " | ".join(combined_cell(m["cells"][str(b)]) for b in sizes)
                     + " |")
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
        *headline_section(result),
        "",
        "## Method",
        "",
        f"- Timing: {result['methodology']}",
        f"- Memory: {result['memory_method']}.",
        f"- Correctness: {result['correctness']}; a mismatch is shown as ✗ and never counted as a win.",
        *([f"- Plots: {result['plots']}."] if result.get("plots") else []),
        "- Cells: batch 1 in microseconds per call, larger batches in rows per second (median); ±N% is half the "
        "interquartile range relative to the median; (N.NNx) is the speedup relative to the native library in the "
        "same run; **bold** is the fastest correct system at that batch size.",
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
          "onedal": "#17becf", "lleaves": "#bcbd22", "ydf": "#8c564b",
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
    result = {**result, "headline": headline(result)}
    md = out / "bench.md"
    md.write_text(markdown(result))
    js = out / "bench.json"
    js.write_text(json.dumps(result, indent=1, default=str))
    if no_plots:
        return [md, js]
    return [md, js, plot_throughput(result, out / "throughput.png"), plot_speedups(result, out / "speedup.png")]


def systems_in(result: dict[str, Any]) -> Iterable[str]:
    return [s["system"] for e in result["models"] for s in e["systems"]]


if __name__ == "__main__":  # python -m bench.report [--readme] [bench.json]: the headline section (or README table)
    import sys

    args = [a for a in sys.argv[1:] if a != "--readme"]
    source = Path(args[0]) if args else Path(__file__).resolve().parent / "results" / "bench.json"
    result = json.loads(source.read_text())
    sys.stdout.write("\n".join(combined_table(result)) + "\n" if "--readme" in sys.argv else headline_markdown(result))
