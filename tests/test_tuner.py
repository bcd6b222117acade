"""The tuner end to end: tune -> records -> load in a fresh process; failures, invalid results, resume."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import fake_backends  # noqa: F401 - registers the "crashy" and "liar" backends in this process
import records
import strategies
import tuner
from cost_model import HeuristicCostModel
from tuner.measure import MeasureSettings
from tuner.search import SearchSettings
from tuner.testing import FakeMeasurer
from tolerances import assert_scores
from zoo import ZOO, data

FAST = MeasureSettings(warmup=1, min_repeats=3, min_seconds=0.02, timeout_s=60, preload=("fake_backends",))
REPO = Path(__file__).resolve().parents[1]


class PreferBackend(HeuristicCostModel):
    """A cost model that puts one backend first, so a test knows what gets measured."""

    def __init__(self, backend: str):
        super().__init__()
        self.backend = backend

    def predict(self, candidates):
        return np.array([0.0 if c.config["backend"] == self.backend else 1.0 for c in candidates])


def run_python(code: str, **env) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env}, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_end_to_end_tune_then_load_in_a_fresh_process(tmp_path):
    import joblib

    db = f"sqlite:///{tmp_path / 'tune.db'}"
    rf = ZOO["sk_random_forest_clf"]()
    xgbm = ZOO["xgb_binary_nan"]()
    rf_path, xgb_path = tmp_path / "rf.joblib", tmp_path / "xgb.json"
    joblib.dump(rf, rf_path)
    xgbm.save_model(xgb_path)
    X = data(n=400, nan=0.05, seed=9)
    for model in (rf, str(xgb_path)):
        report = tuner.tune(model, X, db=db, batch_sizes=(1, 64), trials=8, progress=False,
                            backends=("torch", "torchscript"), measure_settings=FAST)
        assert report.trials_measured == 8
        assert set(report.tuned_latency_s) == {1, 64}
        assert report.artifacts >= 2
        assert all(s > 0 for s in report.speedup.values())
    np.save(tmp_path / "X.npy", X)
    out = run_python(f"""
        import json, warnings, numpy as np, tuner
        warnings.filterwarnings("error", message="nothing is tuned")  # no fallback to the untuned default
        X = np.load({str(tmp_path / 'X.npy')!r})
        rf = tuner.load({str(rf_path)!r}, db={db!r})
        booster = tuner.load({str(xgb_path)!r}, db={db!r})  # an XGBoost .json file loads as a Booster
        assert rf.tuned and booster.tuned, (rf, booster)
        res = {{"rf": [rf.predict_proba(X).tolist(), rf.predict_proba(X[:1]).tolist(), rf.predict(X).tolist()],
               "xgb": [booster.predict(X).tolist(), booster.decision_function(X).tolist()]}}
        print(json.dumps(res))
    """)
    res = json.loads(out.strip().splitlines()[-1])
    np.testing.assert_allclose(res["rf"][0], rf.predict_proba(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(res["rf"][2], rf.predict(X))
    np.testing.assert_allclose(res["rf"][1], rf.predict_proba(X[:1]), rtol=1e-5, atol=1e-5)
    booster = xgbm.get_booster()
    np.testing.assert_allclose(res["xgb"][0], booster.inplace_predict(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res["xgb"][1], booster.inplace_predict(X, predict_type="margin"), rtol=1e-5, atol=1e-5)

    from tuner.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["records", "--db", db]) == 0
    text = buf.getvalue()
    assert "tree_ensemble" in text
    assert any(s in text for s in ("perfect_tree_traversal", "gemm", "tree_traversal")), text


def test_a_crashing_candidate_is_an_error_trial_and_the_run_goes_on(tmp_path):
    db = f"sqlite:///{tmp_path / 'crash.db'}"
    model = ZOO["xgb_binary_nan"]()
    report = tuner.tune(model, db=db, batch_sizes=(64,), trials=5, progress=False, backends=("torch", "crashy"),
                        cost_model=PreferBackend("crashy"), measure_settings=FAST, settings=SearchSettings(per_round=2))
    with records.open_database(db) as d:
        trials = d.trials()
    by_backend = {t.config["backend"]: t.status.value for t in trials}
    assert by_backend.get("crashy") == "error", by_backend
    crashed = [t for t in trials if t.status.value == "error"]
    assert crashed and all("died" in (t.error or "") for t in crashed)
    assert any(t.status.value == "ok" for t in trials)
    assert report.chosen[64][0]["backend"] == "torch"


def test_a_wrong_candidate_is_invalid_and_never_wins(tmp_path):
    db = f"sqlite:///{tmp_path / 'liar.db'}"
    model = ZOO["sk_gradient_boosting_clf"]()
    report = tuner.tune(model, db=db, batch_sizes=(64,), trials=6, progress=False, backends=("torch", "liar"),
                        cost_model=PreferBackend("liar"), measure_settings=FAST, settings=SearchSettings(per_round=3))
    with records.open_database(db) as d:
        trials = d.trials()
    liars = [t for t in trials if t.config["backend"] == "liar"]
    assert liars and all(t.status.value == "invalid" for t in liars)
    assert all("differ from the reference" in t.error for t in liars)
    assert report.chosen[64][0]["backend"] == "torch"
    pred = tuner.load(model, db=db)
    X = data(n=50, seed=3)
    np.testing.assert_allclose(pred.predict_proba(X), model.predict_proba(X), rtol=1e-5, atol=1e-5)


def test_an_interrupted_tune_resumes_without_measuring_a_config_twice(tmp_path):
    import joblib

    db = f"sqlite:///{tmp_path / 'resume.db'}"
    path = tmp_path / "m.joblib"
    joblib.dump(ZOO["sk_extra_trees_reg"](), path)
    code = f"""
        import tuner
        from tuner.testing import FakeMeasurer
        tuner.tune({str(path)!r}, db={db!r}, batch_sizes=(1, 256), trials=10_000, progress=False,
                   measurer=FakeMeasurer(delay_s=0.05))
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.monotonic() + 120
    n_before = 0
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if Path(tmp_path / "resume.db").exists():
            with records.open_database(db) as d:
                n_before = len(d.trials())
            if n_before >= 12:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert n_before >= 12, "the first run recorded too few trials before the kill"
    with records.open_database(db) as d:
        before = {(t.batch_size, t.config_hash) for t in d.trials()}
    fake = FakeMeasurer()
    tuner.tune(str(path), db=db, batch_sizes=(1, 256), trials=15, progress=False, measurer=fake)
    assert len(fake.calls) == 15
    assert not {(b, records.config_hash(c)) for c, b in fake.calls} & before
    with records.open_database(db) as d:
        after = d.trials()
    keys = [(t.batch_size, t.config_hash) for t in after]
    assert len(keys) == len(set(keys)), "a config was recorded twice"
    assert len(after) == len(before) + 15, "the rerun measured a config the first run had already measured"


def test_load_without_tuning_warns_or_raises(tmp_path):
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    model = ZOO["xgb_multiclass"]()
    with pytest.warns(UserWarning, match="nothing is tuned"):
        pred = tuner.load(model, db=db)
    assert not pred.tuned
    with pytest.raises(tuner.NotTunedError):
        tuner.load(model, db=db, strict=True)


def test_search_with_fake_measurer_finds_the_best_and_uses_the_budget(tmp_path):
    db = f"sqlite:///{tmp_path / 'fake.db'}"
    from strategies.testing import as_model, random_ensemble

    model = as_model(random_ensemble(1, n_trees=10, depth=4))
    fake = FakeMeasurer()
    report = tuner.tune(model, db=db, batch_sizes=(1, 1024), trials=60, progress=False, measurer=fake,
                        backends=("torch", "torchscript", "tvm"))
    assert report.trials_measured == len(fake.calls) <= 60
    for b in (1, 1024):
        best = min(fake.latency_fn(c, b) for c, cb in fake.calls if cb == b)
        assert report.tuned_latency_s[b] == pytest.approx(best, rel=1e-12)
        assert report.speedup[b] >= 1.0


def test_suggested_configs_are_valid_configs_of_the_space():
    from strategies.backends.registry import all_backends
    from strategies.testing import random_ensemble
    from tuner.space import TaskSpace, config_key

    if all_backends()["tvm-tir"].unavailable_reason() is not None:
        pytest.skip("the tvm-tir backend is unavailable here")
    op = random_ensemble(3, n_trees=12, depth=5, n_features=6)
    from tuner.space import SpaceOptions, thread_options

    for batch, threads in ((1, 1), (1024, max(thread_options(SpaceOptions())))):
        space = TaskSpace((op,), batch)
        suggested = space.suggested()
        assert suggested and all(c["backend"] == "tvm-tir" for c in suggested)
        assert {"tiled_traversal", "quickscorer"} <= {c["strategy"] for c in suggested}
        for c in suggested:  # a point of the searched grid (the grid itself is too large to list)
            values = space.values_of(c)
            dims = space.dimensions(c["strategy"], c["backend"])
            assert all(values[d.name] in d.values for d in dims if d.name in values), c
            assert config_key(space.make_config(c["strategy"], c["backend"], values)) == config_key(c)
        assert {c["threads"] for c in suggested} == {threads} and all(c["batch_size"] <= batch for c in suggested)


def test_a_hopeless_candidate_is_timed_by_one_call(tmp_path):
    from strategies.compile import resolve_config
    from strategies.sampling import sample_inputs
    from tuner.measure import Measurer, make_task_inputs

    conv = strategies.convert(ZOO["xgb_binary_nan"]())
    ops = conv.graph.ops
    inputs = make_task_inputs(ops, sample_inputs(conv, 256, seed=0, nan=True), 256)
    cfg = resolve_config(ops, {"strategy": "tree_traversal", "backend": "torch", "threads": 1})
    with Measurer(FAST) as m:
        full = m.measure(ops, cfg, inputs)
        cut = m.measure(ops, cfg, inputs, best_s=1e-9)  # "the best so far" is absurdly fast: one call decides
    assert full.ok and full.repeats >= FAST.min_repeats
    assert cut.ok and cut.repeats == 1 and cut.median_s > 0


def test_candidates_are_timed_in_the_chunks_a_plan_runs():
    """A config's batch_size is the chunk a plan runs a large batch in: the measurer times exactly that."""
    from strategies.compile import CompiledTask, resolve_config
    from strategies.ir import to_bytes
    from strategies.sampling import sample_inputs
    from tuner.measure import _run_trial, make_task_inputs

    conv = strategies.convert(ZOO["xgb_binary_nan"]())
    ops = conv.graph.ops
    calls: list[int] = []

    class Counting(CompiledTask):
        def __call__(self, x, output="out"):
            calls.append(len(x))
            return super().__call__(x, output)

    cfg = resolve_config(ops, {"strategy": "tree_traversal", "backend": "torch", "threads": 1, "batch_size": 16})
    task = Counting(ops, cfg)
    X = sample_inputs(conv, 100, seed=0, nan=True)
    np.testing.assert_allclose(task.run_chunked(X), task(X), rtol=1e-6)  # the float32 sums' order may differ
    assert calls == [16] * 6 + [4] + [100]
    inputs = make_task_inputs(ops, X, 100)
    calls.clear()
    res = _run_trial(Counting, to_bytes(conv.graph), cfg, (inputs.batches, inputs.expected, inputs.output), FAST)
    assert res.ok and calls and set(calls) == {16, 4} and len(calls) == 7 * (1 + FAST.warmup + res.repeats)


def test_a_candidate_over_the_memory_limit_fails_and_the_next_one_runs():
    import dataclasses

    from strategies.compile import resolve_config
    from strategies.sampling import sample_inputs
    from tuner.measure import Measurer, _physical_bytes, make_task_inputs

    conv = strategies.convert(ZOO["xgb_binary_nan"]())
    ops = conv.graph.ops
    inputs = make_task_inputs(ops, sample_inputs(conv, 256, seed=0, nan=True), 256)
    cfg = resolve_config(ops, {"strategy": "tree_traversal", "backend": "torch", "threads": 1})
    tiny = dataclasses.replace(FAST, max_memory_fraction=(16 << 20) / _physical_bytes())  # 16 MiB: no worker fits
    with Measurer(tiny) as m:
        res = m.measure(ops, cfg, inputs)
        assert res.status == "error" and "over the limit of 0.0 GiB" in res.error, res.error
        m.settings = FAST  # the same measurer, a limit the worker fits: a fresh worker measures
        assert m.measure(ops, cfg, inputs).ok


def test_a_config_tuned_at_one_batch_size_adapts_to_another():
    from strategies.testing import random_ensemble
    from tuner.space import SpaceOptions, TaskSpace, config_key

    op = random_ensemble(4, n_trees=8, depth=4, n_features=5)
    torch_only = SpaceOptions(backends=("torch",))  # (the tvm-tir grids are too large to list)
    small, large = TaskSpace((op,), 1024, torch_only), TaskSpace((op,), 100_000, torch_only)
    cfg = next(c for c in small.enumerate() if c["strategy"] == "perfect_tree_traversal" and c["batch_size"] == 1024)
    moved = large.adapt(cfg)
    assert moved is not None and moved["batch_size"] == 1024 and moved["knobs"] == cfg["knobs"]
    assert config_key(moved) in {config_key(c) for c in large.enumerate() if c["strategy"] == "perfect_tree_traversal"}
    big = next(c for c in large.enumerate() if c["batch_size"] == 16384)
    assert small.adapt(big)["batch_size"] == 1024  # capped at the smaller batch


def test_string_pipeline_tuned_from_parquet_by_the_cli_then_loaded_from_a_frame_in_a_fresh_process(tmp_path):
    import joblib
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    import xgboost as xgb

    from tuner.cli import main

    rng = np.random.default_rng(4)
    n = 600
    df = pd.DataFrame({
        "city": pd.Series(rng.choice(["oslo", "rome", "lima", None, np.nan], n), dtype=object),
        "plan": pd.Series(rng.choice([f"p{i}" for i in range(25)], n), dtype=object),
        "age": np.where(rng.random(n) < 0.1, np.nan, rng.normal(40, 9, n).round()),
        "spend": rng.gamma(2.0, 30.0, n),
    })
    y = ((df.age.fillna(40) > 40) ^ (df.city == "rome")) | (df.plan == "p3")
    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
                            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "spend"])])
    model = make_pipeline(ct, xgb.XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1)).fit(df, y)
    serve = df.sample(200, random_state=0).reset_index(drop=True)
    serve.loc[:9, "plan"] = "never seen"
    serve["label"] = 0  # a label column the model does not read
    joblib.dump(model, tmp_path / "pipe.joblib")
    serve.to_parquet(tmp_path / "rows.parquet")
    db = f"sqlite:///{tmp_path / 'tune.db'}"
    with redirect_stdout(io.StringIO()):
        assert main(["tune", str(tmp_path / "pipe.joblib"), "--data", str(tmp_path / "rows.parquet"), "--db", db,
                     "--trials", "6", "--batch-size", "64", "--backends", "torch,tvm-tir", "-q"]) == 0
    out = run_python(f"""
        import json, warnings, pandas as pd, tuner
        warnings.filterwarnings("error", message="nothing is tuned")
        rows = pd.read_parquet({str(tmp_path / 'rows.parquet')!r}).drop(columns="label")
        p = tuner.load({str(tmp_path / 'pipe.joblib')!r}, db={db!r})
        assert p.tuned, p
        print(json.dumps([p.predict_proba(rows).tolist(), p.predict(rows).tolist()]))
    """)
    proba, labels = json.loads(out.strip().splitlines()[-1])
    rows = serve.drop(columns="label")
    assert_scores(proba, model.predict_proba(rows), what="tuned pipeline, fresh process")
    np.testing.assert_array_equal(labels, model.predict(rows))


def test_small_calls_run_the_plan_tuned_for_their_size():
    """A predictor with plans for 1, 64 and 1,024 rows: every call of a plain array (the fast path up to
    ``FAST_ROWS`` rows, the validated path beyond) runs the program of ``plan_for(n)`` and gives what that
    plan's validated run gives."""
    from strategies.compile import CompiledTask, resolve_config
    from tuner.plan import Plan
    from tuner.predictor import FAST_ROWS, Predictor

    model = ZOO["xgb_binary_nan"]()
    conv = strategies.convert(model)
    plans = []
    for batch, strategy in ((1, "tree_traversal"), (64, "gemm"), (1024, "perfect_tree_traversal")):
        cfg = resolve_config(conv.graph, {"strategy": strategy, "backend": "torch", "threads": 1, "batch_size": batch})
        plans.append(Plan((CompiledTask(conv.graph, cfg),), tuned_batch=batch))
    p = Predictor(conv, plans, tuned=True)
    calls: list[int] = []
    for i, plan in enumerate(p.plans):
        task = plan.tasks[0]
        program = task.program(conv.head.source("predict_proba"))

        class Spy:
            def __init__(self, inner, index):
                self.inner, self.index = inner, index
                self.input_dtype, self.n_features = inner.input_dtype, getattr(inner, "n_features", None)

            def __call__(self, x):
                calls.append(self.index)
                return self.inner(x)

        task.programs[task.program_key(conv.head.source("predict_proba"))] = Spy(program, i)
    X = data(FAST_ROWS + 10, conv.input.n_features, nan=0.05, seed=3)
    for n in (1, 2, 7, 8, 9, 63, 64, 255, 256, 257, 1024, FAST_ROWS, FAST_ROWS + 1):
        rows = np.ascontiguousarray(X[:n])
        want_plan = p.plan_for(n)
        calls.clear()
        got = p.predict_proba(rows)
        assert set(calls) == {p.plans.index(want_plan)}, (n, calls)
        want = conv.head.finish("predict_proba", want_plan.run(rows, conv.head.source("predict_proba")))
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(p.predict_proba(rows.astype(np.float32)), p.predict_proba(rows.astype(np.float32).tolist()))


def test_float32_rows_are_timed_as_float32(tmp_path):
    """tune's X is float32: the tasks reading the model's input are measured on float32 batches (no cast a
    deployed float32 call would not pay), checked against the float64 reference of the same values."""
    from tuner.tuning import _jobs

    model = ZOO["sk_pipeline_scaler_logistic"]()
    conv = strategies.convert(model)
    X = data(300, conv.input.n_features, seed=4)
    with records.open_database(f"sqlite:///{tmp_path / 'd.db'}") as db:
        for given, want in ((X, np.float64), (X.astype(np.float32), np.float32)):
            _, jobs, _ = _jobs(conv, given, db, [64], None, ("torch",))
            whole = [j for j in jobs if len(j.task.graph.ops) == len(conv.graph.ops)]  # reads the model's input
            assert whole and all(j.inputs().batches[0].dtype == want for j in whole), given.dtype
    tuner.tune(model, X.astype(np.float32), db=f"sqlite:///{tmp_path / 't.db'}", batch_sizes=(64,), trials=2,
               progress=False, backends=("torch",))
    p = tuner.load(model, db=f"sqlite:///{tmp_path / 't.db'}")
    X32 = X.astype(np.float32)
    np.testing.assert_allclose(p.predict_proba(X32), model.predict_proba(X32.astype(np.float64)), rtol=1e-5, atol=1e-7)
