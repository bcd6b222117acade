"""LightGBM frontend: every objective, boosting type, missing-value mode and categorical split vs the native library."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import lightgbm as lgb
import numpy as np
import pytest

import strategies
from strategies import ir, reference
from strategies.ground.errors import UnsupportedModelError
from strategies.frontends.lightgbm import K_ZERO_THRESHOLD, parse_model_text
from strategies.model import ConvertedModel
from strategies.sampling import sample_inputs, split_points
from tolerances import assert_close, assert_same_labels

CAT = 4  # the categorical column of the training data
N_CATS = 40  # more than 32, so bitsets span two words
CAT_PARAMS = dict(min_data_per_group=5, cat_smooth=1.0, max_cat_to_onehot=4)
BASE = dict(num_leaves=8, min_data_in_leaf=5, verbose=-1, num_threads=1, seed=0, **CAT_PARAMS)
SKL = dict(num_leaves=8, min_child_samples=5, verbose=-1, n_jobs=1, random_state=0, **CAT_PARAMS)  # wrapper spelling
# Values for a categorical column: unseen, negative, fractional, huge, NaN, +-inf.
CAT_SPECIALS = [N_CATS + 3, 95.0, 1e3, -1.0, -0.5, -3.7, 0.5, 2.5, 31.9, 33.2, 1e10, 2.0**31, 2.0**32 + 1, -2.0**31,
                1e300, np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40]


def make_data(seed: int = 0, n: int = 400) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Features with NaN, exact zeros and a categorical column; targets for every task."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[rng.random(n) < 0.25, 1] = 0.0
    X[rng.random(X.shape) < 0.08] = np.nan
    X[:, 2] = np.round(X[:, 2], 1)  # ties at thresholds
    X[:, CAT] = rng.integers(0, N_CATS, n)
    X[rng.random(n) < 0.05, CAT] = np.nan
    x0, x1 = np.nan_to_num(X[:, 0]), np.nan_to_num(X[:, 1])
    cat_effect = np.isin(X[:, CAT], [1, 3, 7, 34, 38]) * 1.5
    score = x0 - 0.7 * x1 + cat_effect + 0.3 * rng.normal(size=n)
    y = {
        "binary": (score > 0.3).astype(int),
        "multi": np.digitize(score, [-0.3, 0.8]),
        "real": score * 2 + np.nan_to_num(X[:, 2]),
        "positive": np.exp(0.5 * score) + 0.1,
        "unit": 1 / (1 + np.exp(-score)),
        "rank": np.clip(np.digitize(score, [-0.5, 0.3, 1.2]), 0, 3),
    }
    return X, y


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return make_data()


def probe_inputs(conv: ConvertedModel, n: int = 1500, seed: int = 1) -> np.ndarray:
    """Sampled inputs (thresholds, neighbours, NaN, +-inf) plus categorical edge values in every categorical column."""
    X = sample_inputs(conv, n, seed=seed)
    _, cats = split_points(conv.graph.ops[0])
    rng = np.random.default_rng(seed)
    for f in cats:
        rows = rng.choice(n, size=len(CAT_SPECIALS) * 4, replace=False)
        X[rows, f] = np.resize(CAT_SPECIALS, rows.size)
    return X


def native_methods(model) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """How each head method is called on the native model."""
    if isinstance(model, lgb.Booster):
        return {"predict": model.predict, "decision_function": lambda X: model.predict(X, raw_score=True)}
    return {m: getattr(model, m) for m in ("predict", "predict_proba", "decision_function") if hasattr(model, m)}


def assert_matches_native(model, conv: ConvertedModel | None = None, X: np.ndarray | None = None) -> ConvertedModel:
    """Every head method, float64 and float32 input: reference == native."""
    conv = conv or strategies.convert(model)
    X = probe_inputs(conv) if X is None else X
    native = native_methods(model)
    for dtype in (np.float64, np.float32):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # huge values overflow to inf in float32
            x = X.astype(dtype)
        for method in conv.head.methods:
            got, want = reference.predict(conv, x, method), native[method](x)
            what = f"{conv.source}.{method} on {dtype.__name__}"
            if method == "predict" and conv.head.task == "classifier":
                assert_same_labels(got, want, what)
            else:
                assert_close(got, want, what=what)
    return conv


def train(params: dict, X: np.ndarray, y: np.ndarray, rounds: int = 6, **dataset) -> lgb.Booster:
    ds = lgb.Dataset(X, y, categorical_feature=[CAT], **dataset)
    return lgb.train({**BASE, **params}, ds, rounds)


# --------------------------------------------------------------------------- objectives x boosting

CASES = {
    "binary": ({"objective": "binary"}, "binary"),
    "binary-sigmoid": ({"objective": "binary", "sigmoid": 0.35}, "binary"),
    "multiclass": ({"objective": "multiclass", "num_class": 3}, "multi"),
    "multiclassova": ({"objective": "multiclassova", "num_class": 3, "sigmoid": 1.5}, "multi"),
    "cross_entropy": ({"objective": "cross_entropy"}, "unit"),
    "regression": ({"objective": "regression"}, "real"),
    "regression-no-missing": ({"objective": "regression", "use_missing": False}, "real"),
    "l1": ({"objective": "regression_l1"}, "real"),
    "huber": ({"objective": "huber"}, "real"),
    "quantile": ({"objective": "quantile", "alpha": 0.7}, "real"),
    "fair": ({"objective": "fair"}, "real"),
    "mape": ({"objective": "mape"}, "positive"),
    "poisson": ({"objective": "poisson"}, "positive"),
    "gamma": ({"objective": "gamma"}, "positive"),
    "tweedie": ({"objective": "tweedie", "tweedie_variance_power": 1.3}, "positive"),
    "dart-binary": ({"objective": "binary", "boosting": "dart", "drop_rate": 0.5}, "binary"),
    "goss-multiclass": ({"objective": "multiclass", "num_class": 3, "data_sample_strategy": "goss"}, "multi"),
    "rf-binary": ({"objective": "binary", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7}, "binary"),
    "rf-multiclass": ({"objective": "multiclass", "num_class": 3, "boosting": "rf", "bagging_freq": 1,
                       "bagging_fraction": 0.7, "feature_fraction": 0.8}, "multi"),
    "rf-regression": ({"objective": "regression", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7},
                      "real"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_booster_matches_native(case, data):
    params, target = CASES[case]
    X, y = data
    booster = train(params, X, y[target])
    conv = assert_matches_native(booster)
    op = conv.graph.ops[0]
    assert conv.head.task == "booster"
    assert op.comparison == "<=" and op.compare_dtype == "float64"
    assert op.aggregation == ("mean" if params.get("boosting") == "rf" else "sum")
    assert op.n_trees == booster.num_trees()
    # random forests: LightGBM's raw score is the un-averaged sum, which the IR cannot give next to the mean
    assert ("decision_function" in conv.head.methods) == (params.get("boosting") != "rf")


def test_categorical_splits_use_multiword_bitsets(data):
    X, y = data
    booster = train({"objective": "regression", "max_cat_threshold": 40}, X, y["real"], rounds=10)
    conv = assert_matches_native(booster)
    op = conv.graph.ops[0]
    assert op.has_categorical and op.cat_words == 2
    assert all(not t.cat_unknown_left.any() and not t.missing_left[t.is_categorical].any()
               for t in op.trees if t.is_categorical is not None)  # NaN / unknown categories always go right


def test_lambdarank_and_xendcg(data):
    X, y = data
    group = [20] * (len(X) // 20)
    for objective in ("lambdarank", "rank_xendcg"):
        assert_matches_native(train({"objective": objective}, X, y["rank"], group=group))


# --------------------------------------------------------------------------- missing values


def test_use_missing_false_sends_nan_where_zero_goes(data):
    X, y = data
    conv = assert_matches_native(train({"objective": "regression", "use_missing": False}, X, y["real"]))
    for t in conv.graph.ops[0].trees:
        numeric = (t.left >= 0) & ~(t.is_categorical if t.is_categorical is not None else False)
        np.testing.assert_array_equal(t.missing_left[numeric], 0.0 <= t.threshold[numeric])


def test_values_that_lightgbm_reads_as_zero():
    # LightGBM drops |x| <= kZeroThreshold (1e-35f) from dense rows, so they reach the trees as 0.0;
    # with exact zeros in the data, thresholds at +-kZeroThreshold are common.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 2))
    X[rng.random(500) < 0.4, 0] = 0.0
    y = (X[:, 0] == 0) * 2.0 + (X[:, 0] < -0.5) + X[:, 1]
    booster = lgb.train({**BASE, "objective": "regression"}, lgb.Dataset(X, y), 8)
    conv = strategies.convert(booster)
    thresholds = np.concatenate([t.threshold[t.left >= 0] for t in conv.graph.ops[0].trees])
    assert np.isin(K_ZERO_THRESHOLD, thresholds)
    tiny = [0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, K_ZERO_THRESHOLD, -K_ZERO_THRESHOLD, 5e-324, -5e-324,
            np.nextafter(K_ZERO_THRESHOLD, 1), -np.nextafter(K_ZERO_THRESHOLD, 1), np.nan, np.inf, -np.inf]
    X = probe_inputs(conv)
    X[: len(tiny), 0] = tiny
    assert_matches_native(booster, conv, X)


def _zero_as_missing_booster(data) -> lgb.Booster:
    X, y = data
    return train({"objective": "regression", "zero_as_missing": True}, X, y["real"])


def test_zero_as_missing(data):
    assert ir.ZERO_MISSING_THRESHOLD == K_ZERO_THRESHOLD
    booster = _zero_as_missing_booster(data)
    conv = strategies.convert(booster)
    assert conv.graph.ops[0].has_zero_missing
    X = probe_inputs(conv)
    X[:12, 0] = [0.0, -0.0, 1e-36, -1e-35, 1e-35, K_ZERO_THRESHOLD, -K_ZERO_THRESHOLD,
                 np.nextafter(K_ZERO_THRESHOLD, 1), 5e-324, np.nan, np.inf, -np.inf]
    X[12:24, 1] = X[:12, 0]
    assert_matches_native(booster, conv, X)


# --------------------------------------------------------------------------- hand-written model text


def _stump(j: int, decision_type: int, threshold: float, feature: int = 0, bitset: list[int] | None = None) -> str:
    lines = [f"Tree={j}", "num_leaves=2", f"num_cat={1 if bitset else 0}", f"split_feature={feature}", "split_gain=1",
             f"threshold={threshold!r}", f"decision_type={decision_type}", "left_child=-1", "right_child=-2",
             f"leaf_value=0 {float(2**j)!r}", "leaf_weight=1 1", "leaf_count=1 1", "internal_value=0",
             "internal_weight=1", "internal_count=2"]
    if bitset:
        lines += [f"cat_boundaries=0 {len(bitset)}", "cat_threshold=" + " ".join(map(str, bitset))]
    return "\n".join(lines + ["is_linear=0", "shrinkage=1", "", ""])


def test_every_decision_type_on_hand_written_stumps(monkeypatch):
    """Stump j adds 2**j when a row goes right, so the raw sum spells out every decision exactly."""
    monkeypatch.setattr(ir, "ZERO_MISSING_THRESHOLD", K_ZERO_THRESHOLD)
    monkeypatch.setattr(reference, "ZERO_MISSING_THRESHOLD", K_ZERO_THRESHOLD)
    kz = K_ZERO_THRESHOLD
    specs = [(dt, t, 0, None) for dt in (0, 2, 4, 6, 8, 10) for t in (0.5, -0.5, 0.0, kz, -kz, 1e-36, -1e-36)]
    specs += [(dt, 0, 1, [0b1010, 0, 1 << 5]) for dt in (1, 3, 5, 7, 9, 11)]  # categories 1, 3 and 69 go left
    specs += [(1, 0, 1, [0b1011])]  # category 0 goes left: -0.5 truncates to 0 (floor would give -1)
    text = (
        "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=1\n"
        "objective=regression\nfeature_names=a b\nfeature_infos=[-1:1] -1:0:1:3\n\n"
        + "".join(_stump(j, *s) for j, s in enumerate(specs)) + "end of trees\n"
    )
    booster = lgb.Booster(model_str=text)
    conv = strategies.convert(booster)
    assert conv.input.feature_names == ("a", "b")
    col0 = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, kz, -kz, np.nextafter(kz, 1),
            -np.nextafter(kz, 1), 0.5, -0.5, np.nextafter(0.5, 1), np.nextafter(-0.5, -1), 1e300, 5e-324]
    col1 = [1, 1.9, 3, 69, 69.99, 70, 2, 64, 96] + CAT_SPECIALS
    X = np.array([[a, b] for a in col0 for b in col1])
    for dtype in (np.float64, np.float32):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            x = X.astype(dtype)
        np.testing.assert_array_equal(reference.predict(conv, x), booster.predict(x))


def test_single_leaf_trees(data):
    X, y = data
    for params, target in (({"objective": "binary"}, "binary"), ({"objective": "multiclass", "num_class": 3}, "multi")):
        booster = train({**params, "min_data_in_leaf": 10_000}, X, y[target], rounds=3)
        conv = assert_matches_native(booster)
        assert all(t.n_nodes == 1 for t in conv.graph.ops[0].trees)


def test_model_without_trees():
    text = ("tree\nversion=v4\nnum_class=3\nnum_tree_per_iteration=3\nlabel_index=0\nmax_feature_idx=1\n"
            "objective=multiclass num_class:3\nfeature_names=a b\nfeature_infos=[-1:1] [-1:1]\n\nend of trees\n")
    booster = lgb.Booster(model_str=text)
    assert booster.num_trees() == 0
    assert_matches_native(booster, X=np.array([[0.0, 1.0], [np.nan, -np.inf]]))


def test_unbalanced_tree_is_renumbered_parents_first(data):
    X, y = data
    booster = train({"objective": "regression", "num_leaves": 31, "min_data_in_leaf": 2}, X, y["real"], rounds=3)
    text = parse_model_text(booster.model_to_string())
    conv = assert_matches_native(booster)
    for block, tree in zip(text.trees, conv.graph.ops[0].trees):
        assert tree.n_leaves == int(block["num_leaves"])
        assert sorted(tree.value[tree.is_leaf, 0]) == sorted(map(float, block["leaf_value"].split()))


# --------------------------------------------------------------------------- iterations, files, live boosters


def test_best_iteration_is_what_predict_uses(data):
    X, y = data
    train_set = lgb.Dataset(X[:300], y["multi"][:300], categorical_feature=[CAT])
    valid = lgb.Dataset(X[300:], np.roll(y["multi"][300:], 7), reference=train_set)
    # keep_training_booster: otherwise lgb.train itself reloads the model cut at best_iteration
    params = {**BASE, "objective": "multiclass", "num_class": 3, "learning_rate": 0.5}
    booster = lgb.train(params, train_set, 40, valid_sets=[valid], callbacks=[lgb.early_stopping(3, verbose=False)],
                        keep_training_booster=True)
    assert 0 < booster.best_iteration < booster.current_iteration()
    conv = assert_matches_native(booster)
    assert conv.graph.ops[0].n_trees == 3 * booster.best_iteration
    booster.best_iteration = 1  # a plain attribute; predict and model_to_string both read it
    assert assert_matches_native(booster).graph.ops[0].n_trees == 3


@pytest.mark.parametrize("case", ["binary", "multiclass", "rf-binary"])
def test_text_file_and_object_hash_alike(case, data, tmp_path):
    params, target = CASES[case]
    X, y = data
    booster = train(params, X, y[target])
    path = tmp_path / "model.txt"
    booster.save_model(path)
    from_file = strategies.convert(path)
    assert from_file.content_hash() == strategies.convert(booster).content_hash()
    assert from_file.source == "lightgbm.Booster"
    assert ConvertedModel.from_bytes(from_file.to_bytes()).content_hash() == from_file.content_hash()
    assert_matches_native(strategies.load_model(path), from_file)


def test_live_training_booster_uses_full_sigmoid(data):
    # The model text prints sigmoid with 6 digits; a booster kept for training predicts with the full value.
    X, y = data
    booster = train({"objective": "binary", "sigmoid": 1.23456789}, X, y["binary"])
    assert "sigmoid:1.23457" in booster.model_to_string()
    live = lgb.train({**BASE, "objective": "binary", "sigmoid": 1.23456789},
                     lgb.Dataset(X, y["binary"], categorical_feature=[CAT]), 6, keep_training_booster=True)
    assert strategies.convert(booster).graph.post_transform.param == 1.23457
    assert strategies.convert(live).graph.post_transform.param == 1.23456789
    assert_matches_native(booster)
    assert_matches_native(live)


# --------------------------------------------------------------------------- scikit-learn wrappers


@pytest.mark.parametrize("labels", ["int", "str"])
@pytest.mark.parametrize("target", ["binary", "multi"])
def test_classifier(target, labels, data):
    X, y = data
    yy = y[target] if labels == "int" else np.array(["cat", "dog", "emu"])[y[target]]
    clf = lgb.LGBMClassifier(n_estimators=6, **SKL).fit(X, yy, categorical_feature=[CAT])
    conv = assert_matches_native(clf)
    assert conv.head.task == "classifier" and conv.source == "lightgbm.LGBMClassifier"
    assert conv.head.classes.tolist() == clf.classes_.tolist()
    raw = {"decision_function"} if hasattr(clf, "decision_function") else set()  # lightgbm >= 4.7
    assert set(conv.head.methods) == {"predict", "predict_proba"} | raw


def test_classifier_variants(data):
    X, y = data
    fit = dict(categorical_feature=[CAT])
    ova = lgb.LGBMClassifier(objective="multiclassova", n_estimators=5, **SKL).fit(X, y["multi"], **fit)
    rf = lgb.LGBMClassifier(boosting_type="rf", subsample=0.7, subsample_freq=1, n_estimators=5, **SKL)
    rf.fit(X, y["binary"], **fit)
    for clf in (ova, rf):
        assert_matches_native(clf)
    assert strategies.convert(ova).graph.post_transform.kind == "sigmoid"  # per class, not normalised
    assert "decision_function" not in strategies.convert(rf).head.methods


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_regressor_and_ranker(data):
    import pandas as pd

    X, y = data
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    reg = lgb.LGBMRegressor(objective="tweedie", n_estimators=6, **SKL)
    reg.fit(df, y["positive"], categorical_feature=[CAT])
    conv = assert_matches_native(reg)
    assert conv.head.task == "regressor" and conv.head.methods == ("predict",)
    assert conv.input.feature_names == tuple(df.columns)
    rank = lgb.LGBMRanker(n_estimators=6, **SKL).fit(X, y["rank"], group=[20] * 20, categorical_feature=[CAT])
    assert assert_matches_native(rank).source == "lightgbm.LGBMRanker"


def test_default_column_names_are_not_required(data):
    X, y = data
    conv = strategies.convert(train({"objective": "regression"}, X, y["real"]))
    assert conv.input.feature_names is None  # LightGBM's Column_0.. placeholders


# --------------------------------------------------------------------------- unsupported


def test_unsupported_options_are_refused(data):
    X, y = data
    cases = {
        "linear_tree": train({"objective": "regression", "linear_tree": True}, np.nan_to_num(X), y["real"]),
        "cross_entropy_lambda": train({"objective": "cross_entropy_lambda"}, X, y["unit"]),
        "reg_sqrt": train({"objective": "regression", "reg_sqrt": True}, X, y["real"]),
    }
    for what, booster in cases.items():
        with pytest.raises(UnsupportedModelError, match=f"{what}.*README"):
            strategies.convert(booster)

    def squared(y_true, y_pred):
        return y_pred - y_true, np.ones_like(y_pred)

    clf = lgb.LGBMClassifier(objective=squared, n_estimators=2, **SKL).fit(X, y["binary"])
    with pytest.raises(UnsupportedModelError, match="custom objective"):
        strategies.convert(clf)


def test_custom_objective_booster_predicts_raw(data):
    X, y = data

    def squared(preds, dataset):
        return preds - dataset.get_label(), np.ones_like(preds)

    booster = lgb.train({**BASE, "objective": squared}, lgb.Dataset(X, y["real"], categorical_feature=[CAT]), 4)
    conv = assert_matches_native(booster)
    assert conv.graph.post_transform.is_identity


def test_not_a_model_text():
    with pytest.raises(ValueError, match="max_feature_idx"):
        parse_model_text("hello\nworld\n")
