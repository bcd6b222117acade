"""fused_linear on the tvm-tir backend: preprocessing + linear model + post-transform in one kernel.

Tolerance (the project's, never loosened): labels identical; scores
``|got - want| <= 1e-5 * max(|want|, scale)``, ``scale = max(1, max |want|)``
(``tolerances.assert_scores``), against scikit-learn and against the reference
evaluator, for both dtypes.  The kernel's own ``exp`` is checked tighter
(float64: 1e-13 relative; float32: 1e-6) over the whole range, overflow,
underflow and NaN included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import strategies
import tuner
from strategies import reference
from strategies.backends.base import BuildRequest
from strategies.backends.tvm_tir import TvmTirBackend, TvmTirProgram
from strategies.ground.errors import InvalidConfigError
from strategies.ir import Graph, Imputer, Linear, Normalizer, PostTransform, Scaler
from strategies.linear_tir import FusedLinear
from strategies.sampling import sample_inputs
from tolerances import assert_same_labels, assert_scores
from zoo import data, labels, target

REPO = Path(__file__).resolve().parents[1]
KNOB_SETS = [  # together every value of every knob
    {},
    {"dtype": "float32", "fold_scaler": True, "vector_rows": 4, "rows_per_block": 16},
    {"fold_scaler": True, "vector_rows": 1, "unroll": False, "parallel": "none"},
    {"dtype": "float32", "vector_rows": 16, "rows_per_block": 64, "unroll": False},
    {"vector_rows": 8, "rows_per_block": 1024},
]
BATCHES = (1, 3, 7, 8, 9, 17, 255, 257, 1500)


def _pipe(*steps):
    from sklearn.pipeline import make_pipeline

    return make_pipeline(*steps)


def _models():
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDClassifier
    from sklearn.preprocessing import MinMaxScaler, Normalizer as SkNormalizer, StandardScaler

    X = data(400, 7, seed=1)
    Xn = data(400, 7, nan=0.1, seed=2)
    Xn[:, 5] = np.nan  # an all-NaN column: the imputer drops it
    Xm = np.round(data(400, 7, seed=3), 1)
    Xm[::9, 2] = -1.0  # the imputer's marker
    return {
        "binary_scaled": (_pipe(StandardScaler(), LogisticRegression()).fit(X, labels(X)), X),
        "binary_raw": (LogisticRegression().fit(X, labels(X)), X),
        "softmax_scaled": (_pipe(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, labels(X, 4)), X),
        "ovr_sgd_minmax": (
            _pipe(MinMaxScaler(), SGDClassifier(loss="log_loss", random_state=0)).fit(X, labels(X, 3)), X),
        "ridge_impute_scale": (_pipe(SimpleImputer(), StandardScaler(), Ridge()).fit(Xn, target(Xn)), Xn),
        "linreg_normalize": (_pipe(SkNormalizer("l1"), LinearRegression()).fit(X, target(X)), X),
        "ridge_scale_normalize_multi": (
            _pipe(StandardScaler(), SkNormalizer("max"), Ridge()).fit(X, np.c_[target(X), X[:, 0]]), X),
        "linreg_marker_imputer": (
            _pipe(SimpleImputer(missing_values=-1.0, strategy="median"), MinMaxScaler(), LinearRegression())
            .fit(Xm, target(Xm)), Xm),
    }


MODELS = _models()


def compile_fused(model, threads: int = 1, **knobs):
    return tuner.compile(model, strategy="fused_linear", backend="tvm-tir", threads=threads, batch_size=4096,
                         **knobs)


def check(name: str, knobs: dict, threads: int, batches=BATCHES) -> None:
    model, _ = MODELS[name]
    conv = strategies.convert(model)
    X = sample_inputs(conv, max(batches), seed=5, nan=conv.input.allow_nan, inf=conv.input.allow_inf)
    pred = compile_fused(model, threads, **knobs)
    (plan,) = pred.plans
    assert [t.config["strategy"] for t in plan.tasks] == ["fused_linear"], "one task: the whole chain"
    for method in conv.methods:
        for n in batches:
            what = f"{name} {knobs} t{threads} {method} n={n}"
            got = getattr(pred, method)(X[:n])
            want = reference.predict(conv, X[:n], method)
            native = getattr(model, method)(X[:n])
            if method == "predict" and conv.head.task == "classifier":
                assert_same_labels(got, want, what + " vs reference")
                assert_same_labels(got, native, what + " vs scikit-learn")
            else:
                assert_scores(got, want, what=what + " vs reference")
                assert_scores(got, native, what=what + " vs scikit-learn")


@pytest.mark.parametrize("name", list(MODELS))
def test_models_default_knobs(name):
    check(name, {}, threads=2)


@pytest.mark.parametrize("i", range(1, len(KNOB_SETS)))
@pytest.mark.parametrize("name", ["softmax_scaled", "ridge_impute_scale", "ridge_scale_normalize_multi",
                                  "ovr_sgd_minmax"])
def test_knobs(name, i):
    knobs = KNOB_SETS[i]
    if FusedLinear._inexact_reason(strategies.convert(MODELS[name][0]).graph, FusedLinear.resolve_knobs(knobs)):
        pytest.skip("float32 is not offered for this chain")
    check(name, knobs, threads=1 + i % 2, batches=(1, 5, 9, 1500))


def test_float32_is_refused_where_an_imputer_compares_with_a_marker():
    model, _ = MODELS["linreg_marker_imputer"]
    graph = strategies.convert(model).graph
    assert "non-NaN marker" in FusedLinear.task_reason(graph, {"dtype": "float32"})
    with pytest.raises(InvalidConfigError, match="non-NaN marker"):
        compile_fused(model, dtype="float32").warm_up()
    check("linreg_marker_imputer", {"fold_scaler": True}, threads=1, batches=(1, 9, 400))


def test_nan_is_refused_where_the_model_refuses_it_and_imputed_where_it_is_imputed():
    model, X = MODELS["softmax_scaled"]
    bad = X[:20].copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        compile_fused(model).predict_proba(bad)
    model, X = MODELS["ridge_impute_scale"]
    assert np.isnan(X).any()
    assert_scores(compile_fused(model).predict(X), model.predict(X), what="imputed NaN")


def _direct(graph: Graph, knobs: dict, output: str = "out", threads: int = 1) -> TvmTirProgram:
    config = {"strategy": "fused_linear", "backend": "tvm-tir", "threads": threads, "knobs": knobs}
    return TvmTirBackend().build(BuildRequest(graph, config, output))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_exp_over_the_whole_range(dtype):
    # raw = x (one column, weight 1): exp of every magnitude, +-inf and NaN; then sigmoid and softmax
    def lin(post: str, f: int) -> Linear:
        return Linear(coef=np.eye(f), intercept=np.zeros(f), post_transform=PostTransform(post))

    lim = 760.0 if dtype == "float64" else 110.0
    v = np.concatenate([np.linspace(-lim, lim, 30001), [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30]])
    X = np.ascontiguousarray(v[:, None], dtype=dtype)
    with np.errstate(over="ignore"):
        want = np.exp(X.astype(np.float64))
    got = _direct(Graph(1, (lin("exp", 1),)), {"dtype": dtype}, threads=2)(X).astype(np.float64)
    tiny = np.finfo(dtype).tiny
    normal = np.isfinite(want) & (want > tiny) & (want < np.finfo(dtype).max / 2)
    np.testing.assert_allclose(got[normal], want[normal], rtol=1e-13 if dtype == "float64" else 1e-6)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isposinf(got), np.isposinf(want.astype(dtype)))
    assert np.all(got[want < tiny / 2**30] <= tiny), "underflow goes to (nearly) zero"
    X3 = np.ascontiguousarray(np.resize(v, (len(v) // 3 + 1) * 3).reshape(-1, 3), dtype=dtype)
    for post in ("sigmoid", "softmax", "ovr_normalize"):
        g = Graph(3, (lin(post, 3),))
        assert_scores(_direct(g, {"dtype": dtype})(X3), reference.evaluate(g, X3.astype(np.float64)), what=post)


@pytest.mark.parametrize("post", ["identity", "sigmoid", "softmax", "ovr_normalize", "exp", "isolation"])
def test_graph_with_nan_and_inf_matches_the_reference(post):
    # every step kind in one chain; the inputs hold NaN and +-inf (what the ops do with them, not a model)
    rng = np.random.default_rng(0)
    f, k = 6, 3 if post in ("softmax", "ovr_normalize") else 1
    imp = Imputer(fill=rng.normal(size=f), keep=np.array([0, 2, 3, 4, 5], np.int32))
    sc = Scaler(offset=rng.normal(size=5), scale=rng.uniform(0.5, 2, size=5))
    norm = Normalizer(5, "l2")
    lin = Linear(coef=rng.normal(size=(k, 5)), intercept=rng.normal(size=k),
                 post_transform=PostTransform(post, 2.0 if post == "isolation" else 1.0))
    X = rng.normal(size=(300, f)) * 3
    X[rng.random(X.shape) < 0.1] = np.nan
    X[rng.random(X.shape) < 0.03] = np.inf
    X[rng.random(X.shape) < 0.03] = -np.inf
    X[:5] = [[0.0] * f, [1e-30] * f, [np.nan] * f, [1e30] * f, [-1e-15] * f]  # l2 squares beyond float32's range
    X64 = X.copy()
    X64[5:8] = [[1e-300] * f, [1e300] * f, [-1e-160] * f]  # float64 only: float32 input cannot hold them
    for chain in ((imp, sc, norm, lin), (imp, norm, sc, lin), (imp, sc, lin)):
        g = Graph(f, chain)
        for knobs in ({}, {"vector_rows": 1, "unroll": False}, {"dtype": "float32", "fold_scaler": True}):
            x = X if knobs.get("dtype") == "float32" else X64
            for output in ("raw", "out"):
                want = reference.evaluate(g, x, output=output)
                got = _direct(g, knobs, output)(np.ascontiguousarray(x, dtype=knobs.get("dtype", "float64")))
                assert_scores(got, want, what=f"{[o.kind for o in chain]} {knobs} {output}")


def test_the_space_offers_fused_linear_for_the_chain_and_prunes_knobs_that_do_not_fit():
    from tuner.partition import computes_whole, tasks_for_backend
    from tuner.space import TaskSpace

    scaled = strategies.convert(MODELS["softmax_scaled"][0]).graph
    raw = strategies.convert(MODELS["binary_raw"][0]).graph
    assert computes_whole(scaled, "tvm-tir") and computes_whole(scaled, "tvm-tir", "fused_linear")
    assert not computes_whole(scaled, "tvm-tir", "tiled_traversal")
    assert [t.ops for t in tasks_for_backend(scaled, "tvm-tir")] == [scaled.ops]
    space = TaskSpace(scaled, 1024)
    assert "tvm-tir" in space.strategies["fused_linear"][1]
    configs = [c for c in space.enumerate() if c["strategy"] == "fused_linear"]
    assert {c["knobs"]["fold_scaler"] for c in configs} == {False, True}
    raw_configs = [c for c in TaskSpace(raw, 1024).enumerate() if c["strategy"] == "fused_linear"]
    assert raw_configs and not any(c["knobs"]["fold_scaler"] for c in raw_configs), "no Scaler: nothing to fold"
    assert space.suggested() and all(c["strategy"] in space.strategies for c in space.suggested())


def test_a_tree_pipeline_on_tvm_tir_keeps_its_preprocessing_out_of_the_tree_task():
    # tvm-tir serves scalers and imputers (for fused_linear), yet tiled_traversal computes one ensemble alone
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import Normalizer as SkNormalizer

    from tuner.partition import tasks_for_backend
    from tuner.space import TaskSpace

    X = data(200, 5, nan=0.1, seed=4)
    model = _pipe(SimpleImputer(), SkNormalizer(), RandomForestRegressor(4, max_depth=3, random_state=0))
    graph = strategies.convert(model.fit(X, target(X))).graph
    tasks = tasks_for_backend(graph, "tvm-tir")
    assert len(tasks) == 2 and [op.kind for op in tasks[-1].ops] == ["tree_ensemble"]
    assert "tvm-tir" not in {b for _, bs in TaskSpace(graph, 64).strategies.values() for b in bs}
    pred = tuner.compile(model, backend="tvm-tir", threads=1)
    assert_scores(pred.predict(X), model.predict(X), what="tree pipeline on tvm-tir")


def test_tune_can_choose_fused_linear(tmp_path):
    model, X = MODELS["softmax_scaled"]
    report = tuner.tune(model, X=X, db=str(tmp_path / "t.db"), batch_sizes=(1,), trials=8, threads=1,
                        backends=("tvm-tir",), progress=False)
    # with tvm-tir only, the linear model's task (whole, or split from its scaler) is fused_linear's
    assert report.chosen and all(any(c["strategy"] == "fused_linear" for c in cfgs) for cfgs in report.chosen.values())
    pred = tuner.load(model, db=str(tmp_path / "t.db"), strict=True)
    assert_scores(pred.predict_proba(X[:50]), model.predict_proba(X[:50]), what="tuned")


LOADER = r"""
import json, sys
from pathlib import Path
import numpy as np
from strategies.backends.tvm_tir import TvmTirProgram
d = Path(sys.argv[1])
for name in json.loads((d / "cases.json").read_text()):
    p = TvmTirProgram.load(d / name, json.loads((d / name / "meta.json").read_text()))
    X = np.load(d / name / "x.npy")
    for n in (1, 9, len(X)):
        np.save(d / name / f"y{n}.npy", p(X[:n]))
print(json.dumps(sorted(m for m in ("tvm", "torch", "tvm_ffi", "sklearn") if m in sys.modules)))
"""


def test_saved_kernels_load_and_run_without_tvm(tmp_path):
    cases = {"softmax_scaled": ({}, 2), "ridge_impute_scale": ({"dtype": "float32", "vector_rows": 4}, 1),
             "ridge_scale_normalize_multi": ({"fold_scaler": True, "vector_rows": 1}, 1)}
    built = {}
    for name, (knobs, threads) in cases.items():
        conv = strategies.convert(MODELS[name][0])
        prog = _direct(conv.graph, knobs, threads=threads)
        (tmp_path / name).mkdir()
        meta = prog.save(tmp_path / name)
        (tmp_path / name / "meta.json").write_text(json.dumps(meta))
        X = sample_inputs(conv, 600, seed=1, nan=conv.input.allow_nan, inf=conv.input.allow_inf)
        X = np.ascontiguousarray(X, dtype=prog.input_dtype)
        np.save(tmp_path / name / "x.npy", X)
        built[name] = (prog, X)
    (tmp_path / "cases.json").write_text(json.dumps(list(cases)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", LOADER, str(tmp_path)], env=env, cwd=tmp_path, timeout=300,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [], "loading and calling imported tvm or torch"
    for name, (prog, X) in built.items():
        for n in (1, 9, len(X)):
            np.testing.assert_array_equal(np.load(tmp_path / name / f"y{n}.npy"), prog(X[:n]), err_msg=name)


def test_a_saved_predictor_reloads_bit_identical(tmp_path):
    model, X = MODELS["binary_scaled"]
    pred = compile_fused(model, threads=2, fold_scaler=True)
    pred.save(str(tmp_path / "m.tb"))
    again = tuner.load_artifact(tmp_path / "m.tb")
    for method in ("predict", "predict_proba", "decision_function"):
        np.testing.assert_array_equal(getattr(again, method)(X), getattr(pred, method)(X), err_msg=method)


def test_torch_tasks_and_untuned_defaults_never_pick_a_tir_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    # whatever order the registry lists them in (it depends on import order), a torch task builds its side
    # ops with torch strategies, and the untuned default of a linear op is the torch matmul
    from strategies import compile as compile_mod, task_module
    from strategies.linear import Matmul

    def tir_first(kind):
        return [FusedLinear, Matmul] if kind == "linear" else real(kind)

    real = task_module.strategies_for
    monkeypatch.setattr(task_module, "strategies_for", tir_first)
    monkeypatch.setattr(compile_mod, "strategies_for", tir_first)
    lin = Linear(coef=np.ones((1, 3)), intercept=np.zeros(1))
    assert compile_mod.default_strategy(lin) == "matmul"
    from strategies.testing import random_ensemble

    forest = random_ensemble(1, n_trees=3, depth=2, n_features=1)  # the linear op is a side op before it
    module = task_module.build_task_module((lin, forest), {"strategy": "tree_traversal", "knobs": {}})
    assert isinstance(module.parts[0], Matmul.build_module(lin, Matmul.resolve_knobs({})).__class__)
