"""bench/tuning_efficiency.py on two tiny models with a budget of a few trials: the report's structure and arithmetic.

Timings are never asserted (they are what the script measures); only that the numbers it reports follow from the
trials in its databases.
"""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest

import records
from bench import tuning_efficiency as te


def test_running_best_and_trials_to_reach():
    lat = [None, 5.0, 7.0, 4.0, None, 4.1, 3.0]
    assert te.running_best(lat) == [math.inf, 5.0, 5.0, 4.0, 4.0, 4.0, 3.0]
    assert te.running_best([]) == []
    assert te.trials_to_reach(lat, 3.0) == 7  # only the last one is within 5% of 3.0
    assert te.trials_to_reach(lat, 3.9) == 4  # 4.0 <= 3.9 * 1.05; the failed first trial counts
    assert te.trials_to_reach(lat, 4.8, tolerance=0.05) == 2  # 5.0 <= 5.04
    assert te.trials_to_reach(lat, 4.7, tolerance=0.05) == 4  # 5.0 > 4.935
    assert te.trials_to_reach([None, None], 1.0) is None
    assert te.trials_to_reach([2.0], 1.0) is None
    assert te.ratio(3.0, 2.0) == 1.5 and te.ratio(None, 2.0) is None and te.ratio(1.0, 0.0) is None


def _tiny_models() -> list[te.Subject]:
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    booster = xgb.XGBClassifier(n_estimators=4, max_depth=3, random_state=0).fit(X, y).get_booster()
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)
    return [te.Subject("tiny_xgb", booster, X, "XGBoost, 4 trees"), te.Subject("tiny_rf", forest, X, "RF, 3 trees")]


def test_both_parts_on_tiny_models(tmp_path):
    subjects = _tiny_models()
    sizes = (1, 16)
    said: list[str] = []
    # one trial, then (the time budget never binds) the seeds of the batch size the trial budget did not reach
    result = te.run(subjects, tmp_path / "work", batch_sizes=sizes, time_budget=120, trials=1, long_factor=2,
                    retime_seconds=0.02, say=said.append,
                    tune_options={"backends": ("torch", "tvm-tir")})  # quick to build: the test stays short
    assert result["failures"] == [], result["failures"]
    fp = te.device_fingerprint()

    # part 1: one row per model and batch size, ratios computed from the runs' own figures
    rows = result["default_vs_long"]
    assert [(r["model"], r["batch_size"]) for r in rows] == [(s.name, b) for s in subjects for b in sizes]
    for r in rows:
        runs = result["runs"][r["model"]]
        d, l = runs["default"], runs["long"]
        assert d["db"] != l["db"]
        assert r["default_latency_s"] == d["tuned_latency_s"][str(r["batch_size"])] > 0
        assert r["long_latency_s"] == l["tuned_latency_s"][str(r["batch_size"])] > 0
        assert r["ratio"] == pytest.approx(r["default_latency_s"] / r["long_latency_s"])
        assert r["within_goal"] == (r["ratio"] <= te.GOAL_RATIO)
        assert r["default_run_trials"] == d["trials_measured"] >= 2  # seeds are measured past a trials budget
        assert l["trials_budget"] == 2 * d["trials_measured"] and l["patience"] == 10**9
        assert r["trial_fraction"] == pytest.approx(r["default_trials"] / r["long_trials"])
        assert r["run_trial_fraction"] == pytest.approx(d["trials_measured"] / l["trials_measured"])
        for label in ("retimed_default", "retimed_long"):
            t = r[label]
            assert t["p25_s"] <= t["median_s"] <= t["p75_s"] and t["calls"] >= 20
        assert r["retimed_ratio"] == pytest.approx(r["retimed_default"]["median_s"] / r["retimed_long"]["median_s"])
        # a fresh database per run: it holds exactly the trials its report counts
        for run in (d, l):
            with records.open_database(run["db"]) as db:
                assert len(db.trials(device_fingerprint=fp)) == run["trials_measured"]

    # part 2: one row per (model, task, batch size); counts recomputed from the databases' trial order
    rows = result["transfer"]
    assert {(r["model"], r["batch_size"]) for r in rows} == {(s.name, b) for s in subjects for b in sizes}
    for r in rows:
        runs = result["runs"][r["model"]]
        tr = runs["transfer"]
        assert tr["copied"]["trials"] > 0 and tr["cost_model_trials"] > 0
        assert r["cost_model_trials"] == tr["cost_model_trials"]
        hists = {k: te.history(runs[k]["db"], r["workload_hash"], r["batch_size"], fp)
                 for k in ("default", "long", "transfer")}
        best = min(v for h in hists.values() for v in h if v is not None)
        assert r["best_known_s"] == best
        for k, h in hists.items():
            assert r[k]["trials"] == len(h)
            assert r[k]["to_reach"] == te.trials_to_reach(h, best)
            if r[k]["to_reach"] is not None:
                assert te.running_best(h)[r[k]["to_reach"] - 1] <= best * 1.05
        assert r["within_goal"] == (r["transfer"]["to_reach"] is not None and r["transfer"]["to_reach"] <= 10)
        assert r["default_best_s"] == min(v for v in hists["default"] if v is not None)
        assert r["default"]["to_reach_default"] == te.trials_to_reach(hists["default"], r["default_best_s"]) >= 1
        assert r["transfer"]["to_reach_default"] == te.trials_to_reach(hists["transfer"], r["default_best_s"])
        # the transfer database holds the other model's trials, none of this model's from earlier runs
        with records.open_database(tr["db"]) as db:
            own = db.trials(workload_hash=r["workload_hash"], device_fingerprint=fp)
            assert len(own) == sum(j["trials"] for j in tr["jobs"] if j["workload_hash"] == r["workload_hash"])
            assert len(db.trials(device_fingerprint=fp)) == tr["copied"]["trials"] + tr["trials_measured"]

    assert te.rerender(json.loads(json.dumps(result)))["transfer"] == json.loads(json.dumps(rows))
    md, js = te.write(result, tmp_path / "out")
    assert json.loads(js.read_text())["settings"]["models"] == ["tiny_xgb", "tiny_rf"]
    text = md.read_text()
    assert text == te.markdown(json.loads(js.read_text()))
    assert "## 1. Default budget vs a long search" in text and "## 2. Transfer: leave one model out" in text
    assert text.count("| tiny_xgb |") == 4 and text.count("| tiny_rf |") == 4
    assert "120 s and at most 1 trial per model" in text
    # the code measured: HEAD's commit in the result and the header
    code = result["code"]
    assert code is not None and len(code["head"]) == 40 and isinstance(code["modified"], list)
    tracked = set(subprocess.run(["git", "-C", str(te.HERE.parent), "ls-files"], capture_output=True, text=True,
                                 check=True).stdout.splitlines())
    assert set(code["modified"]) <= tracked  # whole paths (the porcelain lines' first column may be a space)
    assert f"Code: the working tree at HEAD {code['head']}" in text

    # a comparison with an earlier result (here: this one), from the figures summarize_previous keeps
    prev = te.summarize_previous(json.loads(js.read_text()), "earlier")
    assert prev["label"] == "earlier" and prev["settings"]["models"] == ["tiny_xgb", "tiny_rf"]
    assert [(r["model"], r["batch_size"], r["ratio"]) for r in prev["default_vs_long"]] == \
        [(r["model"], r["batch_size"], r["ratio"]) for r in result["default_vs_long"]]
    assert [r["transfer"]["to_reach"] for r in prev["transfer"]] == [r["transfer"]["to_reach"] for r in rows]
    text = te.markdown({**json.loads(js.read_text()), "previous": prev})
    line = next(ln for ln in text.splitlines() if ln.startswith("Compared with the previous run (earlier"))
    r0 = result["default_vs_long"][0]
    assert f"tiny_xgb 1: {te._x(r0['ratio'])} -> {te._x(r0['ratio'])}" in line
    n = sum(bool(r["within_goal"]) for r in rows)
    assert f"within the goal {n} of {len(rows)} -> {n} of {len(rows)}" in line


def test_copy_records_leaves_out_the_excluded_workloads(tmp_path):
    from tuner.device import current_device

    dev = current_device()
    src, dst = f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{tmp_path / 'dst.db'}"
    a, b = "a" * 64, "b" * 64
    cfg = {"strategy": "s", "backend": "x"}
    with records.open_database(src) as db:
        db.register_device(dev)
        for h in (a, b):
            db.register_workload(records.WorkloadRecord(h, h[:4], ("tree_ensemble",)))
            db.save_cost_model(device_fingerprint=dev.fingerprint, name=te.IR_PREFIX + h, payload=b"ops", n_trials=0)
            for i in range(3):
                db.add_trial(records.TrialRecord(h, dev.fingerprint, 1, {**cfg, "i": i}, latency_median_s=1e-3 + i))
        db.save_cost_model(device_fingerprint=dev.fingerprint, name="xgboost", payload=b"model", n_trials=6)
    counts = te.copy_records([src, src], dst, exclude_workloads={b}, fingerprint=dev.fingerprint)
    assert counts == {"trials": 3, "workloads": 1, "workload_ir": 1}
    with records.open_database(dst) as db:
        assert {t.workload_hash for t in db.trials()} == {a}
        assert db.get_workload(b) is None
        assert [c.name for c in db.cost_models()] == [te.IR_PREFIX + a]  # the trained model stays behind
