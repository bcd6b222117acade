"""Plans with parallel branches: an ensemble's members as tasks of their own, each tuned and compiled alone.

The cut (``tuner.partition.split_members``) must compute exactly what the graph computes (the reference
evaluator gives identical values); a branched plan must run, save, load, export to ONNX and come back from
the records database (index and full lookup) with the member tasks and what each reads.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.ensemble import (BaggingClassifier, GradientBoostingClassifier, RandomForestClassifier,
                              RandomForestRegressor, StackingClassifier, StackingRegressor, VotingClassifier,
                              VotingRegressor)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

import strategies
import tuner
from strategies import reference
from strategies.compile import CompiledTask, resolve_config
from tuner.partition import enumerate_partitions, run_reference, sources_of, split_members, verified
from tuner.plan import Plan, check_sources
from tuner.predictor import Predictor
from tuner.testing import FakeMeasurer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@functools.lru_cache(maxsize=None)
def clf_data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(400, 8, n_informative=5, n_classes=3, random_state=0)
    return X, y


@functools.lru_cache(maxsize=None)
def reg_data() -> tuple[np.ndarray, np.ndarray]:
    return make_regression(400, 8, n_informative=5, random_state=0)


def _lr():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))


MODELS = {
    "voting_soft": lambda: VotingClassifier([("rf", RandomForestClassifier(5, max_depth=4, random_state=0)),
                                             ("gb", GradientBoostingClassifier(n_estimators=5, random_state=0)),
                                             ("lr", _lr())], voting="soft", weights=[1, 2, 0.5]),
    "voting_hard": lambda: VotingClassifier([("rf", RandomForestClassifier(5, max_depth=4, random_state=0)),
                                             ("lr", _lr())], voting="hard"),
    "stacking_passthrough": lambda: StackingClassifier([("rf", RandomForestClassifier(5, max_depth=3, random_state=0)),
                                                        ("lr", _lr())], passthrough=True),
    "bagging_logreg": lambda: make_pipeline(StandardScaler(), BaggingClassifier(LogisticRegression(), n_estimators=3,
                                                                                random_state=0)),
    "voting_reg": lambda: VotingRegressor([("rf", RandomForestRegressor(5, max_depth=4, random_state=0)),
                                           ("ridge", make_pipeline(StandardScaler(), Ridge()))]),
    "stacking_reg": lambda: StackingRegressor([("tree", DecisionTreeRegressor(max_depth=4, random_state=0)),
                                               ("lin", LinearRegression())], final_estimator=Ridge()),
    "feature_union": lambda: make_pipeline(FeatureUnion([("pca", PCA(3)), ("svd", TruncatedSVD(2))]),
                                           LogisticRegression(max_iter=500)),
}
REGRESSORS = {"voting_reg", "stacking_reg"}


@functools.lru_cache(maxsize=None)
def fitted(name: str):
    X, y = reg_data() if name in REGRESSORS else clf_data()
    return MODELS[name]().fit(X, y), X


def _member_partitions(graph):
    return [p for p in enumerate_partitions(graph) if any(t.inputs is not None for t in p)]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_member_cut_is_exact(name):
    model, X = fitted(name)
    graph = strategies.convert(model).graph
    parts = _member_partitions(graph)
    assert parts, f"{name}: no member partition of {graph.summary()[:200]}"
    want = reference.evaluate(graph, X)
    for part in parts:
        check_sources(sources_of(part), len(part))
        got = run_reference(part, X)
        assert got.shape == want.shape
        assert np.array_equal(got, want, equal_nan=True), f"{name}: {[t.summary()[:60] for t in part]}"
    assert len(verified(parts, graph, X)) == len(parts)


def test_member_cut_shape():
    model, _ = fitted("voting_soft")
    tasks = split_members(strategies.convert(model).graph)
    kinds = [[op.kind for op in t.ops] for t in tasks]
    assert kinds[0] == ["tree_ensemble"] and kinds[1] == ["tree_ensemble", "activation"]
    assert kinds[2] == ["scaler", "linear", "activation"], "a member keeps its own preprocessing and activation"
    assert [t.inputs for t in tasks] == [(-1,), (-1,), (-1,), (0, 1, 2)]
    assert kinds[3].count("gather") == 3 and kinds[3][-1] == "average"


def test_shared_preprocessing_is_one_task():
    model, _ = fitted("bagging_logreg")
    tasks = split_members(strategies.convert(model).graph)
    assert [op.kind for op in tasks[0].ops] == ["scaler"] and tasks[0].inputs == (-1,)
    assert all(t.inputs == (0,) for t in tasks[1:-1]), "every member reads the shared scaler"
    assert tasks[-1].inputs == (1, 2, 3)


def test_no_member_cut_for_chains_and_single_members():
    X, y = clf_data()
    chain = make_pipeline(StandardScaler(), RandomForestClassifier(3, max_depth=3, random_state=0)).fit(X, y)
    assert split_members(strategies.convert(chain).graph) is None
    one = StackingClassifier([("rf", RandomForestClassifier(3, max_depth=3, random_state=0))]).fit(X, y)
    assert split_members(strategies.convert(one).graph) is None, "a stacking's final estimator is no member"


@pytest.mark.parametrize("bad,message", [
    ([(-1,), (-1,)], "read by no later task"),
    ([(-1,), (1,)], "must read X"),
    ([(-1,)], "needs 2 source lists"),
])
def test_plan_sources_checked(bad, message):
    with pytest.raises(ValueError, match=message):
        check_sources(bad, 2)


def _branched_predictor(name: str, member_backend: str = "tvm-tir") -> Predictor:
    """The model's member partition, tree members on ``member_backend``'s default, the rest on torch."""
    model, _ = fitted(name)
    conv = strategies.convert(model)
    part = split_members(conv.graph)
    tasks = []
    for t in part:
        given = {"backend": member_backend} if any(op.kind == "tree_ensemble" for op in t.ops) and \
            len(t.ops) == 1 else {"backend": "torch"}
        tasks.append(CompiledTask(t.graph, resolve_config(t.graph, {**given, "threads": 1, "batch_size": 64})))
    return Predictor(conv, [Plan(tuple(tasks), sources=sources_of(part))])


@pytest.mark.parametrize("name", ["voting_soft", "stacking_passthrough", "voting_reg"])
def test_branched_plan_matches_sklearn_and_round_trips(name, tmp_path):
    model, X = fitted(name)
    p = _branched_predictor(name)
    assert not p.plans[0].is_chain
    methods = ["predict"] + (["predict_proba"] if hasattr(model, "predict_proba") else [])
    for m in methods:
        got, want = getattr(p, m)(X), getattr(model, m)(X)
        if m == "predict" and name not in REGRESSORS:
            assert np.array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    sha = p.save(tmp_path / "m.tb")
    q = tuner.load_artifact(tmp_path / "m.tb")
    assert q.plans[0].task_sources() == p.plans[0].task_sources() and len(sha) == 64
    np.testing.assert_array_equal(q.predict(X), p.predict(X))
    # chunked: a batch larger than every task's batch size
    np.testing.assert_array_equal(p.predict(np.repeat(X, 2, axis=0)), np.repeat(p.predict(X), 2))


def test_chain_artifacts_keep_their_format_version(tmp_path):
    import json
    import zipfile

    model, X = fitted("voting_soft")
    tuner.compile(model).save(tmp_path / "chain.tb")
    _branched_predictor("voting_soft").save(tmp_path / "branched.tb")
    version = lambda f: json.loads(zipfile.ZipFile(tmp_path / f).read("manifest.json"))["format_version"]  # noqa: E731
    assert version("chain.tb") == 3, "readers of format 3 still load chain plans"
    assert version("branched.tb") == 4, "older readers refuse plans with branches instead of misreading them"


def test_branched_plan_exports_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model, X = fitted("voting_soft")
    p = _branched_predictor("voting_soft", member_backend="torch")
    p.to_onnx(tmp_path / "m.onnx", ["predict", "predict_proba"])
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    dtype = np.float32 if sess.get_inputs()[0].type == "tensor(float)" else np.float64
    assert dtype == np.float64, "the scaler + linear member reads X in float64"
    label, proba = sess.run(None, {sess.get_inputs()[0].name: X.astype(dtype)})
    np.testing.assert_array_equal(label, model.predict(X))
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-5, atol=1e-7)


def _prefer_tir(config, batch: int) -> float:
    """Tree kernels are fast only on tvm-tir (which serves a tree ensemble alone: a member task)."""
    trees = config["strategy"] in {"gemm", "tree_traversal", "perfect_tree_traversal", "tiled_traversal",
                                   "quickscorer", "tree_lanes"}
    return 1e-3 if trees and config["backend"] != "tvm-tir" else 1e-6


def test_tuned_members_come_back_from_the_records(tmp_path):
    model, X = fitted("voting_reg")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    report = tuner.tune(model, X, db=db, batch_sizes=(64,), trials=40, progress=False,
                        measurer=FakeMeasurer(_prefer_tir))
    chosen = report.chosen[64]
    assert len(chosen) > 1 and chosen[0]["backend"] == "tvm-tir", chosen
    for loaded in (tuner.load(model, db=db, strict=True),  # the model index
                   _without_index(model, db)):  # the full lookup over the partitions
        plan = loaded.plans[0]
        assert not plan.is_chain and plan.configs()[0]["backend"] == "tvm-tir", loaded
        np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-5, atol=1e-7)


def _without_index(model, db: str) -> Predictor:
    from tuner.deploy import _plans_from_records
    import records
    from strategies.ground.device import current_device

    conv = strategies.convert(model)
    database = records.open_database(db)
    try:
        plans = _plans_from_records(conv, database, current_device().fingerprint)
    finally:
        database.close()
    return Predictor(conv, plans, tuned=True)


def test_members_of_one_structure_are_tuned_once(tmp_path):
    X, y = clf_data()
    model = BaggingClassifier(LogisticRegression(max_iter=500), n_estimators=4, random_state=0).fit(X, y)
    fake = FakeMeasurer(lambda cfg, b: 1e-6 * (1 + len(str(cfg)) % 7))
    report = tuner.tune(model, X, db=f"sqlite:///{tmp_path / 'r.db'}", batch_sizes=(32,), trials=60,
                        progress=False, measurer=fake)
    member, alone = "%0 = linear: 8 -> 3, identity(x); %1 = activation", "linear: 8 -> 3, identity"
    members = [j for j in report.jobs if j.task.startswith(member) or j.task == alone]
    searched = [j for j in members if j.trials > 1]
    followed = [j for j in members if j.trials == 1]
    # each structure (the member whole; its linear op alone) searched by one job, measured once by the other 3
    assert len(searched) == 2 and len(followed) == 6, [(j.task[:50], j.trials) for j in members]
    for f in followed:
        twin = next(s for s in searched if s.task.split("(")[0] == f.task.split("(")[0])
        assert f.best_config == twin.best_config, "a follower measures its leader's winner"
    assert report.trials_measured <= 60
