"""Plans for float32 inputs: float64-comparing tree ensembles rewritten to compare in float32.

The rewrite (``strategies.precision``) must give every comparison the float64 one gives for inputs of
float32 values (thresholds, their float32 neighbours, NaN, +-inf, zeros, subnormals; categorical and
zero-as-missing nodes), and the Predictor must give such plans float32 arrays only: a float64 value between
two float32 values at a threshold would go the other way.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import strategies
import tuner
from strategies import reference
from strategies.compile import CompiledTask, resolve_config
from strategies.ir import Graph, TreeEnsemble
from strategies.precision import float32_ensemble, float32_input_graph
from tolerances import assert_same_labels, assert_scores
from tuner.partition import enumerate_partitions, needs_float32
from tuner.plan import Plan
from tuner.predictor import Predictor
from tuner.tuning import holds_float32
from zoo import ZOO

F64_MODELS = ["lgb_binary_nan", "lgb_multiclass_zero_missing", "lgb_categorical", "sk_hist_gradient_boosting_cat"]
F32 = np.float32


def _ensemble(conv) -> TreeEnsemble:
    return next(op for op in conv.graph.ops if isinstance(op, TreeEnsemble))


def edge_rows(op: TreeEnsemble, n: int = 600, seed: int = 0, inf: bool = True) -> np.ndarray:
    """float32 rows whose values sit on and beside every threshold (as float32 values), with NaN, +-inf
    (with ``inf``), +-0, subnormals and the float32 extremes."""
    rng = np.random.default_rng(seed)
    special = [np.nan, 0.0, -0.0, 1e-40, -1e-40, 1e-36, float(np.finfo(F32).max), float(-np.finfo(F32).max)]
    per_feature: list[list[float]] = [special + ([np.inf, -np.inf] if inf else []) for _ in range(op.n_features)]
    for tree in op.trees:
        for f, t in zip(tree.feature, tree.threshold):
            if f < 0:
                continue
            near = F32(t)
            for v in (near, np.nextafter(near, F32(np.inf)), np.nextafter(near, F32(-np.inf)), np.floor(t)):
                per_feature[f].append(float(F32(v)))
    X = np.empty((n, op.n_features), dtype=F32)
    for f, values in enumerate(per_feature):
        X[:, f] = rng.choice(np.asarray(values, dtype=F32), size=n)
    return X


@pytest.mark.parametrize("name", F64_MODELS)
def test_rewrite_is_exact_for_float32_values(name):
    conv = strategies.convert(ZOO[name]())
    narrow = float32_input_graph(conv.graph)
    assert narrow is not None
    op32 = _ensemble(type(conv)(**{**conv.__dict__, "graph": narrow}))
    assert op32.compare_dtype == "float32" and op32.comparison == "<="
    X = edge_rows(_ensemble(conv)).astype(np.float64)
    want = reference.evaluate(conv.graph, X)
    got = reference.evaluate(narrow, X)
    assert np.array_equal(got, want, equal_nan=True), name


def test_rewrite_needs_float32_values():
    """A float64 value strictly between two float32 values at a threshold goes the other way after the
    rewrite: the reason float32-input plans never see float64 arrays."""
    conv = strategies.convert(ZOO["lgb_binary_nan"]())
    op = _ensemble(conv)
    tree = next(t for t in op.trees if (t.feature >= 0).any() and not np.all(t.threshold == F32(t.threshold)))
    i = int(np.flatnonzero((tree.feature >= 0) & (tree.threshold != tree.threshold.astype(F32)))[0])
    t = float(tree.threshold[i])
    lo = float(np.nextafter(F32(t), F32(-np.inf))) if float(F32(t)) > t else float(F32(t))
    x = np.full((1, op.n_features), 0.5 * (lo + t) if lo < t else t)  # a float64 value in (lo, t]: goes left
    x[0, tree.feature[i]] = np.nextafter(t, -np.inf)
    single = TreeEnsemble(trees=(tree,), n_features=op.n_features, n_outputs=op.n_outputs,
                          comparison=op.comparison, compare_dtype="float64", base_score=0.0)
    before = reference.evaluate(Graph(op.n_features, (single,)), x)
    after = reference.evaluate(Graph(op.n_features, (float32_ensemble(single),)), x)
    assert not np.array_equal(before, after), "the float32 rewrite is not exact for float64 values"


def test_rewrite_leaves_float32_ensembles_alone():
    conv = strategies.convert(ZOO["xgb_binary_nan"]())
    assert float32_input_graph(conv.graph) is None
    assert not any(needs_float32(p) for p in enumerate_partitions(conv.graph, float32_input=True))


def test_partitions_for_float32_inputs_are_marked():
    conv = strategies.convert(ZOO["lgb_binary_nan"]())
    parts = enumerate_partitions(conv.graph, float32_input=True)
    narrow = [p for p in parts if needs_float32(p)]
    assert narrow and len(parts) == len(enumerate_partitions(conv.graph)) + len(narrow)
    for p in narrow:
        assert any(op.kind == "tree_ensemble" and op.compare_dtype == "float32" for t in p for op in t.ops)


def _two_plans(name: str, strategy: str, backend: str) -> tuple[object, Predictor]:
    native = ZOO[name]()
    conv = strategies.convert(native)
    narrow = float32_input_graph(conv.graph)
    given = {"strategy": strategy, "backend": backend, "threads": 1, "batch_size": 64}
    exact = Plan((CompiledTask(conv.graph, resolve_config(conv.graph, given)),), tuned_batch=64)
    f32 = Plan((CompiledTask(narrow, resolve_config(narrow, given)),), tuned_batch=64, float32_input=True)
    return native, Predictor(conv, [exact, f32], tuned=True)


@pytest.mark.parametrize("strategy,backend", [("tree_lanes", "tvm-tir"), ("tiled_traversal", "tvm-tir"),
                                              ("quickscorer", "tvm-tir"), ("gemm", "torch"),
                                              ("tree_traversal", "torchscript")])
@pytest.mark.parametrize("name", F64_MODELS)
def test_float32_plans_serve_float32_arrays_exactly(name, strategy, backend):
    native, p = _two_plans(name, strategy, backend) if _serves(name, strategy) else (None, None)
    if p is None:
        pytest.skip(f"{strategy} does not serve {name}")
    conv = p.model
    X32 = edge_rows(_ensemble(conv), seed=1, inf=conv.input.allow_inf)
    assert p.plan_for(1, float32=True).float32_input and not p.plan_for(1).float32_input
    for method in conv.methods:
        want = getattr(native, method)(X32) if hasattr(native, method) else native.predict(X32)
        for X in (X32, X32[:1], X32[:7]):
            got = getattr(p, method)(X)
            ref = reference.predict(conv, X.astype(np.float64), method)
            what = f"{name} {strategy}@{backend} {method} ({len(X)} rows)"
            if method == "predict" and conv.head.task == "classifier":
                assert_same_labels(got, ref, what)
                assert_same_labels(got, want[: len(X)], what + " vs native")
            else:
                assert_scores(got, ref, rtol=1e-5, what=what)
                assert_scores(got, want[: len(X)], rtol=1e-5, what=what + " vs native")


def _serves(name: str, strategy: str) -> bool:
    from strategies.registry import get_strategy

    op = _ensemble(strategies.convert(ZOO[name]()))
    return get_strategy(strategy).unsupported_reason(float32_ensemble(op)) is None


def test_float64_arrays_never_reach_a_float32_plan(tmp_path):
    native, p = _two_plans("lgb_binary_nan", "tree_lanes", "tvm-tir")
    op = _ensemble(p.model)
    X = edge_rows(op, seed=2).astype(np.float64)
    # float64 values just below every threshold that is not a float32 value: a float32 plan sends them right
    for tree in op.trees:
        for f, t in zip(tree.feature, tree.threshold):
            if f >= 0 and float(F32(t)) != t:
                X[np.random.default_rng(int(f)).integers(0, len(X), 20), f] = t
    for Xin in (X, X[:1], X[:5], np.asfortranarray(X)):
        np.testing.assert_array_equal(p.predict(Xin), native.predict(Xin))
        assert_scores(p.predict_proba(Xin), native.predict_proba(Xin), rtol=1e-5, what="float64 rows")
    p.save(tmp_path / "m.tb")
    manifest = json.loads(zipfile.ZipFile(tmp_path / "m.tb").read("manifest.json"))
    assert manifest["format_version"] == 4 and [pl.get("float32_input", False) for pl in manifest["plans"]] == [
        False, True]
    q = tuner.load_artifact(tmp_path / "m.tb")
    assert [pl.float32_input for pl in q.plans] == [False, True]
    np.testing.assert_array_equal(q.predict(X), native.predict(X))


def test_a_predictor_needs_an_exact_plan():
    _, p = _two_plans("lgb_binary_nan", "gemm", "torch")
    with pytest.raises(ValueError, match="exact for every input"):
        Predictor(p.model, [p.plans[1]])


def test_holds_float32():
    import pandas as pd
    import torch

    assert holds_float32(np.zeros((2, 2), F32)) and not holds_float32(np.zeros((2, 2)))
    assert holds_float32(torch.zeros(2, 2)) and not holds_float32(torch.zeros(2, 2, dtype=torch.float64))
    assert holds_float32(pd.DataFrame({"a": np.zeros(2, F32)})) and not holds_float32(pd.DataFrame({"a": [1.0]}))
    assert not holds_float32(None) and not holds_float32([[1.0, 2.0]])


def test_tuning_on_float32_rows_and_the_hidden_rows(tmp_path):
    native = ZOO["lgb_multiclass_zero_missing"]()
    conv = strategies.convert(native)
    X = edge_rows(_ensemble(conv), n=400, seed=3)
    tune_rows, hidden = X[:200], X[200:]
    report = tuner.tune(native, tune_rows, db=f"sqlite:///{tmp_path / 't.db'}", batch_sizes=(64,), trials=14,
                        progress=False, backends=("torch", "tvm-tir"))
    narrow = [j for j in report.jobs if "x <= t in float32" in j.task]
    assert narrow and any(j.trials for j in narrow), "tasks for float32 inputs were tuned"
    p = tuner.load(native, db=f"sqlite:///{tmp_path / 't.db'}", strict=True)
    for rows in (hidden, hidden.astype(np.float64), hidden[:1]):
        assert_same_labels(p.predict(rows), native.predict(rows), "hidden rows")
        assert_scores(p.predict_proba(rows), native.predict_proba(rows), rtol=1e-5, what="hidden rows")
