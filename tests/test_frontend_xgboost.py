"""XGBoost frontend: converted models reproduce Booster / wrapper outputs on threshold, NaN and inf inputs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import strategies
from strategies import reference
from strategies.ground.errors import UnsupportedModelError
from strategies.ir import TreeEnsemble
from strategies.sampling import sample_inputs
from tolerances import assert_close, assert_same_labels

N_ROWS, N_FEATURES = 240, 5


def _data(seed: int = 0, n: int = N_ROWS, f: int = N_FEATURES) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


def _labels(objective: str, X: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1])
    if objective.startswith("binary"):
        return (signal + 0.3 * rng.normal(size=len(X)) > 0).astype(float)
    if objective.startswith("multi"):
        return np.digitize(signal, [-0.5, 0.5]).astype(float)
    if objective == "rank:map":
        return (signal > 0).astype(float)
    if objective.startswith("rank"):
        return np.digitize(signal, [-0.5, 0.5]).astype(float)
    if objective == "reg:logistic":
        return 1 / (1 + np.exp(-signal))
    if objective == "count:poisson":
        return rng.poisson(np.exp(0.5 * signal)).astype(float)
    if objective in ("reg:gamma", "reg:tweedie"):
        return np.exp(0.5 * signal) * rng.gamma(2.0, 1.0, size=len(X)) + (0.1 if objective == "reg:gamma" else 0.0)
    return 3 * signal + 2 + rng.normal(size=len(X))


def _train(objective: str, rounds: int = 6, X: np.ndarray | None = None, **params) -> xgb.Booster:
    X = _data() if X is None else X
    dtrain = xgb.DMatrix(X, _labels(objective, X))
    if objective.startswith("rank"):
        dtrain.set_group([24] * (len(X) // 24))
    params = {"objective": objective, "max_depth": 4, "eta": 0.3, "nthread": 1, **params}
    if objective.startswith("multi"):
        params["num_class"] = 3
    return xgb.train(params, dtrain, rounds)


def _inputs(conv, n: int = 400, seed: int = 7) -> np.ndarray:
    return sample_inputs(conv, n, seed=seed)


def _is_label(conv, method: str) -> bool:
    return method == "predict" and (conv.head.task == "classifier" or conv.head.predict_argmax)


def _compare(conv, native: dict, X: np.ndarray, what: str) -> None:
    """Every head method, float32 and float64 input: reference vs native."""
    assert set(native) == set(conv.head.methods), f"{what}: test covers {sorted(native)}, head has {conv.head.methods}"
    for dtype in (np.float32, np.float64):
        Xd = X.astype(dtype)
        for method, fn in native.items():
            ref = reference.predict(conv, Xd, method)
            nat = np.asarray(fn(Xd))
            tag = f"{what} {method} {dtype.__name__}"
            if _is_label(conv, method):
                assert_same_labels(ref, nat.astype(ref.dtype), what=tag)
            else:
                assert_close(ref, nat, float32_native=True, what=tag)


def _booster_native(booster: xgb.Booster) -> dict:
    return {
        "predict": lambda X: booster.inplace_predict(X),
        "decision_function": lambda X: booster.inplace_predict(X, predict_type="margin"),
    }


def _compare_dmatrix(conv, booster: xgb.Booster, X: np.ndarray, what: str) -> None:
    """Booster.predict(DMatrix) too; a DMatrix rejects inf, so only the rows without it."""
    X = X[~np.isinf(X).any(axis=1)]
    dm = xgb.DMatrix(X, feature_names=booster.feature_names, feature_types=booster.feature_types,
                     enable_categorical=True)
    for method, margin in (("predict", False), ("decision_function", True)):
        ref = reference.predict(conv, X, method)
        nat = booster.predict(dm, output_margin=margin)
        if _is_label(conv, method):
            assert_same_labels(ref, nat.astype(ref.dtype), what=f"{what} DMatrix {method}")
        else:
            assert_close(ref, nat, float32_native=True, what=f"{what} DMatrix {method}")


BOOSTER_OBJECTIVES = [
    "binary:logistic", "binary:logitraw", "multi:softprob", "multi:softmax", "reg:squarederror",
    "reg:logistic", "count:poisson", "reg:tweedie", "reg:gamma", "rank:pairwise", "rank:ndcg", "rank:map",
]


@pytest.mark.parametrize("objective", BOOSTER_OBJECTIVES)
def test_booster_objectives(objective):
    booster = _train(objective)
    conv = strategies.convert(booster)
    assert conv.head.task == "booster" and conv.head.methods == ("predict", "decision_function")
    assert conv.input.allow_nan and conv.input.allow_inf
    X = _inputs(conv)
    assert np.isnan(X).any() and np.isinf(X).any()
    _compare(conv, _booster_native(booster), X, objective)
    _compare_dmatrix(conv, booster, X, objective)


@pytest.mark.parametrize("objective", ["binary:logistic", "binary:logitraw", "multi:softprob", "multi:softmax"])
def test_classifier(objective):
    X = _data(2)
    y = _labels(objective, X).astype(int)
    clf = xgb.XGBClassifier(n_jobs=1, n_estimators=6, max_depth=3, objective=objective).fit(X, y)
    conv = strategies.convert(clf)
    assert conv.head.task == "classifier" and conv.head.methods == ("predict", "predict_proba")
    np.testing.assert_array_equal(conv.classes_, clf.classes_)
    expected_rule = "argmax" if objective.startswith("multi") else "out_gt_half"
    assert conv.head.label_rule == expected_rule
    _compare(conv, {"predict": clf.predict, "predict_proba": clf.predict_proba}, _inputs(conv), objective)


@pytest.mark.parametrize("objective", ["reg:squarederror", "reg:logistic", "count:poisson", "reg:tweedie", "reg:gamma"])
def test_regressor(objective):
    X = _data(3)
    reg = xgb.XGBRegressor(n_jobs=1, n_estimators=6, max_depth=3, objective=objective).fit(X, _labels(objective, X))
    conv = strategies.convert(reg)
    assert conv.head.task == "regressor" and conv.head.methods == ("predict",)
    _compare(conv, {"predict": reg.predict}, _inputs(conv), objective)


def test_ranker_and_random_forests():
    X = _data(4)
    ranker = xgb.XGBRanker(n_jobs=1, n_estimators=5, max_depth=3).fit(X, _labels("rank:ndcg", X), qid=np.repeat(np.arange(10), 24))
    rfc = xgb.XGBRFClassifier(n_jobs=1, n_estimators=4, max_depth=3).fit(X, _labels("binary:logistic", X).astype(int))
    rfr = xgb.XGBRFRegressor(n_jobs=1, n_estimators=4, max_depth=3).fit(X, _labels("reg:squarederror", X))
    for model in (ranker, rfc, rfr):
        conv = strategies.convert(model)
        native = {m: getattr(model, m) for m in conv.head.methods}
        _compare(conv, native, _inputs(conv), type(model).__name__)
    assert strategies.convert(rfc).graph.ops[0].n_trees == 4  # one round of a 4-tree forest


def test_float64_inputs_are_rounded_to_float32_before_comparing():
    booster = _train("reg:squarederror")
    conv = strategies.convert(booster)
    op = conv.graph.ops[0]
    rows = []
    for tree in op.trees:
        for f, t in zip(tree.feature[tree.left >= 0], tree.threshold[tree.left >= 0]):
            # just below t in float64 but rounds to t in float32: XGBoost sends it right (not < t)
            below = np.nextafter(t, -np.inf)
            assert below < t and np.float32(below) == np.float32(t)
            row = np.zeros(op.n_features)
            row[f] = below
            rows.append(row)
    X = np.array(rows)
    _compare(conv, _booster_native(booster), X, "float64 rounding")
    exact = np.array([[np.float32(t) for t in row] for row in X], dtype=np.float64)
    np.testing.assert_array_equal(reference.predict(conv, X), reference.predict(conv, exact))


def test_base_score_is_converted_to_margin_like_xgboost():
    """Zero every leaf: the margin XGBoost predicts is then exactly its base margin."""
    X = _data(5)
    cases = [("binary:logistic", 0.3), ("reg:logistic", 0.62), ("count:poisson", 2.5), ("reg:gamma", 3.7),
             ("reg:tweedie", 0.8), ("reg:squarederror", -1.25), ("multi:softprob", None), ("binary:logistic", None)]
    for objective, base in cases:
        params = {} if base is None else {"base_score": base}
        doc = json.loads(bytes(_train(objective, rounds=2, X=X, **params).save_raw("json")))
        mp = doc["learner"]["learner_model_param"]
        assert mp["base_score"].startswith("[")  # XGBoost 3.x: a vector string, in output space
        for tree in doc["learner"]["gradient_booster"]["model"]["trees"]:
            tree["split_conditions"] = [0.0 if l == -1 else s for s, l in zip(tree["split_conditions"], tree["left_children"])]
        zeroed = xgb.Booster()
        zeroed.load_model(bytearray(json.dumps(doc).encode()))
        margin = zeroed.inplace_predict(X[:1], predict_type="margin").reshape(-1)
        conv = strategies.convert(zeroed)
        np.testing.assert_array_equal(conv.graph.ops[0].base_score, margin.astype(np.float64), err_msg=objective)


def test_zero_rounds_predict_the_base_score():
    X = _data()
    for objective, params in (("binary:logistic", {"base_score": 0.3}), ("multi:softprob", {})):
        booster = _train(objective, rounds=0, X=X, **params)
        conv = strategies.convert(booster)
        assert conv.graph.ops[0].n_trees == 1 and conv.graph.ops[0].trees[0].n_nodes == 1
        _compare(conv, _booster_native(booster), _inputs(conv, 50), f"{objective} without trees")


def _categorical_frame(seed: int = 6) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 400
    many = rng.integers(0, 40, n)
    few = rng.integers(0, 3, n)
    df = pd.DataFrame({
        "many": pd.Categorical(many, categories=range(40)),
        "num": rng.normal(size=n),
        "few": pd.Categorical(few, categories=range(3)),
    })
    df.loc[rng.random(n) < 0.1, "many"] = np.nan
    df.loc[rng.random(n) < 0.1, "num"] = np.nan
    y = np.isin(many, [1, 5, 7, 11, 12, 30, 33]) * 2.0 + (few == 1) + np.nan_to_num(df["num"].to_numpy())
    return df, y


def test_categorical_splits_with_unseen_negative_fractional_and_missing_categories():
    df, y = _categorical_frame()
    booster = xgb.train({"max_depth": 4, "max_cat_to_onehot": 4, "nthread": 1}, xgb.DMatrix(df, y, enable_categorical=True), 8)
    conv = strategies.convert(booster)
    op = conv.graph.ops[0]
    assert op.has_categorical and op.category_rounding == "floor"
    assert conv.input.feature_names == ("many", "num", "few")
    special = [-1, -0.5, -0.0, 0.0, 0.5, 1, 1.99, 2, 2.5, 3, 5.999, 39, 39.5, 40, 41, 63, 64, 100, 1e7,
               2.0**24 - 1, 2.0**24, 2.0**24 + 1, 1e10, -1e10, np.inf, -np.inf, np.nan]
    grid = np.array([[a, 0.1, b] for a in special for b in special])
    X = np.vstack([grid, _inputs(conv, 400)])
    _compare(conv, _booster_native(booster), X, "categorical")
    _compare_dmatrix(conv, booster, X, "categorical")
    reg = xgb.XGBRegressor(n_jobs=1, n_estimators=4, max_depth=3, enable_categorical=True, max_cat_to_onehot=1).fit(df, y)
    conv_reg = strategies.convert(reg)
    assert conv_reg.graph.ops[0].has_categorical
    _compare(conv_reg, {"predict": reg.predict}, X, "categorical regressor")


def test_num_parallel_tree_multiclass_tree_output():
    booster = _train("multi:softprob", rounds=3, num_parallel_tree=3, subsample=0.7, colsample_bynode=0.8)
    conv = strategies.convert(booster)
    op = conv.graph.ops[0]
    assert op.n_trees == 27 and op.n_outputs == 3
    np.testing.assert_array_equal(op.tree_output, np.tile(np.repeat([0, 1, 2], 3), 3))
    _compare(conv, _booster_native(booster), _inputs(conv), "parallel multiclass")


def test_dart_scales_leaves_by_weight_drop():
    booster = _train("reg:squarederror", rounds=10, booster="dart", rate_drop=0.5, skip_drop=0.0, seed=3)
    weights = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]["weight_drop"]
    assert min(weights) < 1.0  # some trees were dropped and re-weighted
    conv = strategies.convert(booster)
    X = _inputs(conv)
    _compare(conv, _booster_native(booster), X, "dart")
    _compare_dmatrix(conv, booster, X, "dart")
    clf = xgb.XGBClassifier(n_jobs=1, n_estimators=8, max_depth=3, booster="dart", rate_drop=0.4, skip_drop=0.0)
    clf.fit(_data(8), _labels("binary:logistic", _data(8)).astype(int))
    conv = strategies.convert(clf)
    _compare(conv, {"predict": clf.predict, "predict_proba": clf.predict_proba}, X, "dart classifier")


def test_early_stopping_uses_best_iteration_in_wrappers_only():
    X = _data(9, n=400)
    y = _labels("multi:softprob", X).astype(int)
    rng = np.random.default_rng(0)
    y_valid = rng.permutation(y[300:])  # noisy validation labels stop training early
    clf = xgb.XGBClassifier(n_jobs=1, n_estimators=60, max_depth=3, early_stopping_rounds=3, learning_rate=0.5)
    clf.fit(X[:300], y[:300], eval_set=[(X[300:], y_valid)], verbose=False)
    booster = clf.get_booster()
    assert clf.best_iteration + 1 < booster.num_boosted_rounds()
    conv = strategies.convert(clf)
    assert conv.graph.ops[0].n_trees == 3 * (clf.best_iteration + 1)
    Z = _inputs(conv)
    _compare(conv, {"predict": clf.predict, "predict_proba": clf.predict_proba}, Z, "early-stopped classifier")
    conv_booster = strategies.convert(booster)  # Booster.predict uses every tree
    assert conv_booster.graph.ops[0].n_trees == 3 * booster.num_boosted_rounds()
    _compare(conv_booster, _booster_native(booster), Z, "early-stopped booster")


def test_pruned_trees_with_deleted_nodes_are_renumbered():
    X = _data(10)
    dtrain = xgb.DMatrix(X, _labels("reg:squarederror", X))
    booster = xgb.train({"max_depth": 5, "nthread": 1}, dtrain, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "you have manually specified the updater"
        booster = xgb.train({"process_type": "update", "updater": "prune", "gamma": 20, "max_depth": 5, "nthread": 1},
                            dtrain, 3, xgb_model=booster)
    trees = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]["model"]["trees"]
    assert any(int(t["tree_param"]["num_deleted"]) > 0 for t in trees)
    conv = strategies.convert(booster)
    assert sum(t.n_nodes for t in conv.graph.ops[0].trees) < sum(len(t["left_children"]) for t in trees)
    _compare(conv, _booster_native(booster), _inputs(conv), "pruned")


def test_multi_target_regression():
    X = _data(11)
    Y = np.column_stack([_labels("reg:squarederror", X, seed=s) for s in (1, 2)])
    for strategy in ("one_output_per_tree", "multi_output_tree"):
        reg = xgb.XGBRegressor(n_jobs=1, n_estimators=4, max_depth=3, tree_method="hist", multi_strategy=strategy).fit(X, Y)
        conv = strategies.convert(reg)
        op = conv.graph.ops[0]
        assert op.n_outputs == 2 and (op.tree_output is None) == (strategy == "multi_output_tree")
        _compare(conv, {"predict": reg.predict}, _inputs(conv), strategy)
    labels = (Y > 2).astype(float)
    multilabel = xgb.train({"objective": "binary:logistic", "max_depth": 3, "tree_method": "hist", "nthread": 1},
                           xgb.DMatrix(X, labels), 4)
    conv = strategies.convert(multilabel)
    assert conv.graph.ops[0].n_outputs == 2
    _compare(conv, _booster_native(multilabel), _inputs(conv), "multi-label booster")
    clf = xgb.XGBClassifier(n_jobs=1, n_estimators=2, max_depth=2, tree_method="hist").fit(X, labels.astype(int))
    with pytest.raises(UnsupportedModelError, match="multi-label"):
        strategies.convert(clf)


def test_object_json_and_ubj_give_the_same_ir(tmp_path):
    df, y = _categorical_frame()
    booster = xgb.train({"max_depth": 3, "objective": "reg:squarederror", "base_score": 0.7, "nthread": 1},
                        xgb.DMatrix(df, y, enable_categorical=True), 4)
    multi = _train("multi:softprob", rounds=3, num_parallel_tree=2)
    for name, model in (("cat", booster), ("multi", multi)):
        expected = strategies.convert(model).content_hash()
        for suffix in (".json", ".ubj"):
            path = tmp_path / f"{name}{suffix}"
            model.save_model(path)
            assert strategies.convert(path).content_hash() == expected, f"{name}{suffix}"
            assert strategies.convert(str(path)).content_hash() == expected
    clf = xgb.XGBClassifier(n_jobs=1, n_estimators=3, max_depth=2).fit(_data(), _labels("binary:logistic", _data()).astype(int))
    clf.save_model(tmp_path / "clf.json")
    assert strategies.convert(tmp_path / "clf.json").content_hash() == strategies.convert(clf.get_booster()).content_hash()


def test_unsupported_models_raise_clear_errors():
    X = _data()
    hinge = xgb.train({"objective": "binary:hinge", "nthread": 1}, xgb.DMatrix(X, _labels("binary:logistic", X)), 2)
    with pytest.raises(UnsupportedModelError, match=r"binary:hinge.*Supported models"):
        strategies.convert(hinge)
    linear = xgb.train({"booster": "gblinear", "nthread": 1}, xgb.DMatrix(X, _labels("reg:squarederror", X)), 2)
    with pytest.raises(UnsupportedModelError, match="gblinear"):
        strategies.convert(linear)
    custom = xgb.XGBRegressor(n_jobs=1, n_estimators=2, objective=lambda y, p: (p - y, np.ones_like(p)))
    custom.fit(X, _labels("reg:squarederror", X))
    with pytest.raises(UnsupportedModelError, match="custom"):
        strategies.convert(custom)
    odd_missing = xgb.XGBRegressor(n_jobs=1, n_estimators=2, missing=-999.0).fit(X, _labels("reg:squarederror", X))
    with pytest.raises(UnsupportedModelError, match="missing"):
        strategies.convert(odd_missing)


@pytest.mark.filterwarnings("ignore:.*JSON model saved before XGBoost 1.6")
def test_treebeard_models(treebeard_dir):
    for name in ("higgs", "airline", "epsilon", "bosch"):
        path = treebeard_dir / f"{name}_xgb_model_save.json"
        conv = strategies.convert(path)
        op = conv.graph.ops[0]
        assert isinstance(op, TreeEnsemble) and op.n_trees == 100
        if name not in ("higgs", "airline"):
            continue
        table = np.loadtxt(f"{path}.test.sampled.csv", delimiter=",")
        X = table[:, :-1]  # the last column is XGBoost's own prediction for the row
        booster = strategies.load_model(path)
        native = booster.predict(xgb.DMatrix(X, feature_names=booster.feature_names))
        ref = reference.predict(conv, X)
        assert np.abs(ref - native).max() <= 1e-6, name
        assert_close(ref, native, float32_native=True, what=name)
