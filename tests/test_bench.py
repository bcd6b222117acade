"""Smoke test of the benchmark suite: one small model, two batch sizes, every system present or reported.

The suite runs once, in one test (under pytest-xdist a module fixture would run once per worker).
Peers that are not installed (``pip install -e .[bench]``) must show up as missing, not vanish.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from bench.__main__ import main
from bench.peers import SYSTEMS, TUNEBIRD
from bench.report import combined_cell, combined_table, headline_cell, markdown, plots_unavailable, ratio_text, write_all

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
    assert entry["trees"] is None  # a linear model: no ns per tree-level
    for b in ("1", "64"):
        assert systems["tunebird-tuned"]["cells"][b]["threads"] >= 1  # the threads of the plan serving it
    (row,) = result["headline"]["models"]
    assert row["name"] == "logreg" and set(row["cells"]) == {"1", "64"}

    text = (tmp_path / "bench.md").read_text()
    assert text == markdown(result)
    for info in result["systems"].values():
        assert info["label"] in text
    assert "| system | batch 1 (µs/call) | 64 (rows/s) |" in text
    assert next(ln for ln in text.splitlines() if ln.startswith("## ")) == "## Tuned tunebird over the best correct peer"
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
    assert "| m | **1.25x native** |" in text  # the headline compares with the best *correct* peer
    assert "Treelite/TL2cgen: missing (not installed)" in text
    headline = json.loads((tmp_path / "bench.json").read_text())["headline"]
    cell = headline["models"][0]["cells"]["1024"]
    assert cell["peer"] == "native" and cell["ratio"] == pytest.approx(1.25, rel=1e-12)


def _entry(peers: dict[str, dict], tuned: dict | None, trees: dict | None = None, batch: int = 1024) -> dict:
    """A results entry: native + ``peers`` (system -> cell) + tuned tunebird's cell (None: not tuned)."""
    labels = {"native": "native", "onnxruntime": "ONNX Runtime", "onedal": "oneDAL", "ydf": "ydf", "lleaves": "lleaves"}
    systems = [{"system": n, "label": labels[n], "status": "ok", "cells": {str(batch): c}} for n, c in peers.items()]
    if tuned is None:
        systems.append({"system": "tunebird-tuned", "label": "tunebird tuned", "status": "not tuned",
                        "reason": "not tuned in db"})
    else:
        systems.append({"system": "tunebird-tuned", "label": "tunebird tuned", "status": "ok",
                        "cells": {str(batch): tuned}})
    return {"name": "m", "batch_sizes": [batch], "systems": systems, "trees": trees}


def _ok(median_s: float, **extra) -> dict:
    return {"status": "ok", "median_s": median_s, "mismatch": None, **extra}


def test_headline_cell_names_the_peer_and_the_ratio():
    e = _entry({"native": _ok(4e-3), "onedal": _ok(2.31e-3), "lleaves": _ok(3e-3)}, _ok(1e-3, threads=2))
    hc = headline_cell(e, 1024)
    assert hc["peer"] == "onedal" and hc["ratio"] == pytest.approx(2.31, rel=1e-12)
    assert hc["tuned_rows_per_s"] == pytest.approx(1024 / 1e-3) and hc["peer_rows_per_s"] == pytest.approx(1024 / 2.31e-3)
    assert ratio_text(hc) == "**2.31x oneDAL**"
    behind = headline_cell(_entry({"native": _ok(4e-3), "onedal": _ok(5e-4)}, _ok(1e-3, threads=2)), 1024)
    assert ratio_text(behind) == "0.50x oneDAL"


def test_headline_excludes_peers_that_are_not_correct():
    fast_wrong = {**_ok(1e-4), "mismatch": "2048 of 2048 outputs differ"}
    unchecked = {**_ok(2e-4), "unchecked": "no outputs saved"}
    e = _entry({"native": _ok(4e-3), "ydf": fast_wrong, "onnxruntime": unchecked, "onedal": _ok(2e-3)}, _ok(1e-3))
    hc = headline_cell(e, 1024)
    assert (hc["peer"], ratio_text(hc)) == ("onedal", "**2.00x oneDAL**")
    none_right = _entry({"native": {**_ok(4e-3), "status": "skipped", "median_s": None}, "ydf": fast_wrong}, _ok(1e-3))
    hc = headline_cell(none_right, 1024)
    assert hc["ratio"] is None and ratio_text(hc) == "no correct peer"
    assert ratio_text(headline_cell(_entry({"native": _ok(4e-3)}, None), 1024)) == "not tuned"
    skipped = {"status": "skipped", "median_s": None, "reason": "too slow"}
    assert ratio_text(headline_cell(_entry({"native": _ok(4e-3)}, skipped), 1024)) == "skipped"
    tuned_wrong = {**_ok(1e-3), "mismatch": "1 of 8 outputs differ"}
    assert ratio_text(headline_cell(_entry({"native": _ok(4e-3)}, tuned_wrong), 1024)) == "✗ tuned mismatch"


def test_ns_per_tree_level_per_core_on_a_small_forest():
    from sklearn.ensemble import RandomForestClassifier

    import strategies
    from bench.runner import tree_facts

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int)
    rf = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    facts = tree_facts(strategies.convert(rf).graph)
    depths = [est.tree_.max_depth for est in rf.estimators_]  # scikit-learn's own count of levels per tree
    assert facts == {"trees": 5, "levels": sum(depths), "max_depth": max(depths)}

    median_s, threads, batch = 2.5e-4, 2, 1024
    hc = headline_cell(_entry({"native": _ok(1e-3)}, _ok(median_s, threads=threads), trees=facts, batch=batch), batch)
    want = 1e9 * threads / ((batch / median_s) * sum(depths))  # core-ns per level a row walks
    assert hc["threads_used"] == threads
    assert hc["ns_per_tree_level_per_core"] == pytest.approx(want, rel=1e-12)
    no_threads = headline_cell(_entry({"native": _ok(1e-3)}, _ok(median_s), trees=facts, batch=batch), batch)
    assert no_threads["ns_per_tree_level_per_core"] is None  # never guessed from the run's thread count


def test_onedal_densifies_sparse_input_as_the_booster_reads_it():
    import scipy.sparse as sp

    from bench.peers.onedal import dense

    Z = sp.csr_matrix(np.array([[0.0, 2.0, 0.0], [1.5, 0.0, -3.0]]))
    got = dense(Z, np.nan)  # XGBoost: an unstored entry is missing
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array([[np.nan, 2.0, np.nan], [1.5, np.nan, -3.0]], dtype=np.float32))
    np.testing.assert_array_equal(dense(Z, 0.0), Z.toarray().astype(np.float32))  # LightGBM: an unstored entry is 0
    np.testing.assert_array_equal(dense(np.eye(2), np.nan), np.eye(2, dtype=np.float32))  # dense input as it is


def test_ydf_refuses_what_from_sklearn_cannot_convert():
    pytest.importorskip("ydf")
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from bench.peers.base import NotApplicable
    from bench.peers.ydf import convert

    X = np.random.default_rng(1).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    for model, named in ((GradientBoostingClassifier(n_estimators=2).fit(X, y), "GradientBoostingClassifier"),
                         (make_pipeline(LogisticRegression()).fit(X, y), "Pipeline (ending in LogisticRegression)")):
        with pytest.raises(NotApplicable) as info:
            convert(model)
        assert info.value.status == "unsupported" and named in str(info.value), str(info.value)


def test_the_readme_table_puts_ns_per_tree_level_beside_the_ratio():
    trees = {"trees": 100, "levels": 800}
    ahead = _entry({"native": _ok(4e-3), "onedal": _ok(2.31e-3)}, _ok(1e-3, threads=2), trees=trees)
    behind = {**_entry({"native": _ok(4e-3), "onedal": _ok(5e-4)}, _ok(1e-3, threads=1)), "name": "linear"}
    lines = combined_table({"models": [ahead, behind]})
    # 1e9 * 2 threads / (1,024,000 rows/s * 800 levels) = 2.44 ns
    assert lines[2] == "| m | 100 · 800 | **2.31x** oneDAL · 2.44 ns |"
    assert lines[3] == "| linear | – | 0.50x oneDAL |"
    assert combined_cell(headline_cell(_entry({"native": _ok(4e-3)}, None, trees=trees), 1024)) == "not tuned"
