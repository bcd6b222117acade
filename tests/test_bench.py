"""Smoke test of the benchmark suite: one small model, two batch sizes, every system present or reported.

The suite runs once, in one test (under pytest-xdist a module fixture would run once per worker).
Peers that are not installed (``pip install -e .[bench]``) must show up as missing, not vanish.
"""

from __future__ import annotations

import json
import sys

from bench.__main__ import main
from bench.peers import SYSTEMS, TUNEBIRD
from bench.report import markdown, plots_unavailable, write_all

PNG = b"\x89PNG\r\n\x1a\n"


def test_suite_on_one_small_model(tmp_path):
    common = ["--models", "logreg", "--batch-sizes", "1", "64", "--out", str(tmp_path),
              "--db", str(tmp_path / "bench.db"), "--models-cache", str(tmp_path / "models")]
    assert main(["--tune", "--trials", "2", "--no-hummingbird-setup", *common]) == 0
    assert main([*common, "--no-hummingbird-setup", "--min-seconds", "0.02"]) == 0

    result = json.loads((tmp_path / "bench.json").read_text())
    (entry,) = result["models"]
    assert entry["batch_sizes"] == [1, 64]
    systems = {s["system"]: s for s in entry["systems"]}
    assert set(systems) == set(SYSTEMS)  # present, or reported as missing/unsupported: never dropped
    for s in systems.values():
        assert s["status"] in ("ok", "missing", "skipped", "unsupported", "not tuned", "failed")
        if s["status"] != "ok":
            assert s.get("reason"), s
    assert systems["native"]["status"] == "ok"
    for name in TUNEBIRD:
        s = systems[name]
        assert s["status"] == "ok", s
        for b in ("1", "64"):
            assert s["cells"][b]["status"] == "ok", s["cells"][b]
            assert s["cells"][b]["mismatch"] is None, s["cells"][b]
            assert s["cells"][b]["median_s"] > 0
    assert result["methodology"] and result["machine"]["cores"] >= 1

    text = (tmp_path / "bench.md").read_text()
    assert text == markdown(result)
    for info in result["systems"].values():
        assert info["label"] in text
    assert "| system | batch 1 (µs/call) | 64 (rows/s) |" in text
    if plots_unavailable():  # matplotlib comes with the [bench] extras; the tables say plots were left out
        assert "matplotlib is not installed" in text
    else:
        for name in ("throughput.png", "speedup.png"):
            assert (tmp_path / name).read_bytes()[:8] == PNG, name


def test_a_missing_peer_is_reported_not_dropped(monkeypatch):
    from bench.runner import RunSettings, availability

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "tl2cgen", None)
    avail = availability(RunSettings(hummingbird_setup=False, skip=("hummingbird",)), say=lambda _: None)
    assert avail["onnxruntime"][0] == "missing" and "pip install -e .[bench]" in avail["onnxruntime"][1]
    assert avail["treelite"][0] == "missing"
    assert avail["hummingbird"] == ("skipped", "skipped with --skip-peers")
    assert avail["native"] is None and avail["tunebird-tuned"] is None


def _tiny_result() -> dict:
    ok = {"status": "ok", "median_s": 1e-3, "p25_s": 9e-4, "p75_s": 1.1e-3, "repeats": 10, "mismatch": None}
    bad = {**ok, "median_s": 5e-4, "mismatch": "3 of 4 outputs differ"}
    systems = [
        {"system": "native", "label": "native", "status": "ok", "cells": {"1024": ok}, "peak_rss_mb": 1.0, "build_s": 0.1},
        {"system": "onnxruntime", "label": "ONNX Runtime", "status": "ok", "cells": {"1024": bad}},
        {"system": "treelite", "label": "Treelite/TL2cgen", "status": "missing", "reason": "not installed"},
        {"system": "tunebird-tuned", "label": "tunebird tuned", "status": "ok", "cells": {"1024": {**ok, "median_s": 8e-4}}},
    ]
    return {"created": "now", "wall_s": 1.0, "threads": 2, "load_average_start": [0.1], "load_average_end": [0.2],
            "machine": {"cpu": "cpu", "cores": 2}, "methodology": "m", "memory_method": "r", "correctness": "c",
            "systems": {s["system"]: {"label": s["label"], "notes": ""} for s in systems},
            "models": [{"name": "m", "description": "d", "n_features": 3, "data": "x", "method": "predict",
                        "batch_sizes": [1024], "systems": systems}]}


def test_mismatch_is_shown_and_never_wins(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    paths = write_all(_tiny_result(), tmp_path)
    assert [p.name for p in paths] == ["bench.md", "bench.json"]
    text = (tmp_path / "bench.md").read_text()
    assert "matplotlib is not installed" in text
    assert "✗ mismatch" in text and "3 of 4 outputs differ" in text
    tuned_row = next(line for line in text.splitlines() if line.startswith("| tunebird tuned |"))
    assert "**1.28M**" in tuned_row and "(1.25x)" in tuned_row  # the faster ONNX cell mismatches: no win
    assert "1.25x vs native" in text  # the summary compares with the best *correct* peer
    assert "Treelite/TL2cgen: missing (not installed)" in text
