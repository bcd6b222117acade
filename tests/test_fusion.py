"""Fusion rewrites (``strategies.fusion``) on real pipelines, checked against the graph they replace.

Pipelines: ``ColumnTransformer([OneHotEncoder on 3 string columns (object dtype with None and NaN),
SimpleImputer + StandardScaler / MinMaxScaler on 3 numeric columns with NaN])`` in front of
HistGradientBoosting, XGBoost, LightGBM, RandomForest, GradientBoostingRegressor and LogisticRegression.

* Trees: ``rewrites(graph)`` must hold one graph whose only node is a tree ensemble reading the input, and
  ``reference.evaluate`` of both graphs must be bit-identical on inputs built to stress the fold: every
  numeric split's preimage boundary (computed here independently, with ``fusion.boundary`` over the
  reference evaluation of the preprocessing sub-graph) and its float64 neighbours, NaN, +-inf, unknown
  string codes (-1), None (-2) and every known code.  The folded thresholds must equal those boundaries.
* LogisticRegression: the one-hot block becomes a lookup no wider than string columns x classes; the
  rewrite agrees within the project tolerance.
* OrdinalEncoder(handle_unknown='use_encoded_value', unknown_value=-1) in front of trees: splits on ordinal
  codes become categorical splits.
* ``tuner.compile(backend="tvm-tir")`` serves a folded pipeline as one ``tiled_traversal`` task.
* A tree behind a Normalizer or PolynomialFeatures must not fold.

Inputs are fed to the graphs as the boundary's float codes (``strategies.inputs``: string -> its index in the
column's vocabulary, unknown string -1, None -2, NaN NaN), so the rewrites are tested on every value a graph
can receive, independently of the DataFrame parsing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, Normalizer, OneHotEncoder, OrdinalEncoder, PolynomialFeatures, \
    StandardScaler
from threadpoolctl import threadpool_limits

import strategies
import tuner
from strategies import fusion, reference
from strategies.head import UNKNOWN_CODE
from strategies.ir import INPUT, Graph, Linear, TreeEnsemble
from strategies.ir.columns import Lookup
from tolerances import assert_same_labels, assert_scores

STRING_COLS = ["a", "b", "c"]
NUM_COLS = ["n1", "n2", "n3"]
A_VALUES = ["x", "y", "z", "w"]
B_VALUES = ["p", "q", "r", "s", "t"]
C_VALUES = ["u", "v"]


def frame(n: int = 400, seed: int = 0, none: bool = True) -> pd.DataFrame:
    """Object string columns with NaN (and None unless ``none`` is false), numeric columns with NaN."""
    rng = np.random.default_rng(seed)
    missing = [None, np.nan] if none else [np.nan]

    def strings(values, p_missing):
        col = np.array(rng.choice(values, n), dtype=object)
        hit = rng.random(n) < p_missing
        col[hit] = np.array(missing, dtype=object)[rng.integers(0, len(missing), hit.sum())]
        col[: len(missing)] = missing  # every missing kind at least once
        return pd.Series(col, dtype=object)

    def numbers(x):
        x = x.astype(float)
        x[rng.random(n) < 0.1] = np.nan
        return x

    return pd.DataFrame({
        "a": strings(A_VALUES, 0.15), "b": strings(B_VALUES, 0.1), "c": strings(C_VALUES, 0.1),
        "n1": numbers(rng.normal(0, 3, n)), "n2": numbers(rng.exponential(5, n)),
        "n3": numbers(rng.integers(0, 20, n)),
    })


def target(df: pd.DataFrame, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = (df["a"].map({"x": 1.0, "y": -1.0}).fillna(0.4).to_numpy() + 0.5 * df["b"].isna().to_numpy()
         + 0.4 * np.nan_to_num(df["n1"].to_numpy(), nan=2.0) - 0.1 * np.nan_to_num(df["n2"].to_numpy())
         + rng.normal(0, 0.5, len(df)))
    return np.digitize(s, [-0.5, 0.7])


def numeric_branch(kind: str):
    if kind == "standard":
        return make_pipeline(SimpleImputer(), StandardScaler())
    if kind == "minmax":
        return make_pipeline(SimpleImputer(strategy="median"), MinMaxScaler())
    if kind == "normalizer":
        return make_pipeline(SimpleImputer(), Normalizer())
    if kind == "poly":
        return make_pipeline(SimpleImputer(), PolynomialFeatures(2))
    raise ValueError(kind)


def string_branch(kind: str):
    if kind == "ignore":
        return OneHotEncoder(handle_unknown="ignore")
    if kind == "infrequent":
        return OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=40)
    if kind == "error":
        return OneHotEncoder(handle_unknown="error")
    if kind == "ordinal":
        return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    raise ValueError(kind)


ESTIMATORS = {
    "hgb": lambda: HistGradientBoostingClassifier(max_iter=8, max_depth=4, random_state=0),
    "xgb": lambda: __import__("xgboost").XGBClassifier(n_estimators=8, max_depth=4, random_state=0,
                                                                  n_jobs=1),
    "lgbm": lambda: __import__("lightgbm").LGBMClassifier(n_estimators=8, num_leaves=12, min_child_samples=5,
                                                         verbose=-1, n_jobs=1),
    "rf": lambda: RandomForestClassifier(n_estimators=6, max_depth=7, random_state=0),
    "gbr": lambda: GradientBoostingRegressor(n_estimators=8, max_depth=3, random_state=0),
    "lr": lambda: LogisticRegression(max_iter=3000),
}


def fit(est: str, strings: str = "ignore", numbers: str = "standard", none: bool = True, n: int = 400,
        sparse: bool = False):
    df = frame(n=n, seed=0, none=none)
    ct = ColumnTransformer([("cat", string_branch(strings), STRING_COLS),
                            ("num", numeric_branch(numbers), NUM_COLS)], sparse_threshold=1.0 if sparse else 0)
    model = make_pipeline(ct, ESTIMATORS[est]())
    y = target(df)
    with warnings.catch_warnings(), threadpool_limits(1):  # tiny fits: threads only contend with xdist workers
        warnings.simplefilter("ignore")
        model.fit(df, y.astype(float) if est == "gbr" else y)
    return model, df


# --------------------------------------------------------------------------- stress inputs


def string_codes(conv, j: int) -> np.ndarray:
    """Every code the boundary can give string column ``j``: the vocabulary, unknown (-1), None (-2), NaN."""
    vocab = conv.input.columns[j].vocabulary
    return np.array([*range(len(vocab)), UNKNOWN_CODE, -2.0, np.nan])


def random_codes(conv, n: int, seed: int) -> np.ndarray:
    """Rows as the boundary gives them: string columns as codes (every kind), numbers around their fitted
    range with NaN and +-inf."""
    rng = np.random.default_rng(seed)
    F = conv.graph.n_features
    X = np.empty((n, F))
    for j in range(F):
        spec = conv.input.column(j) if conv.input.columns is not None else None
        if spec is not None and spec.kind == "string":
            X[:, j] = rng.choice(string_codes(conv, j), n)
        else:
            X[:, j] = rng.normal(3, 6, n)
            special = rng.random(n) < 0.15
            X[special, j] = rng.choice([np.nan, np.nan, np.inf, -np.inf, 0.0, -0.0], special.sum())
    return X


def numeric_boundaries(graph: Graph, rewrite: Graph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every numeric split of the original ensemble: the input column it reads after the fold, the
    folded threshold, and the preimage boundary computed independently: the largest float64 input value
    ``u`` of that column for which the preprocessing sub-graph's output goes left at the original split
    (reference evaluation of the sub-graph, rounding to the ensemble's compare dtype included)."""
    orig_node = graph.nodes[-1]
    orig: TreeEnsemble = orig_node.op
    (src,) = orig_node.inputs
    pre = Graph(graph.n_features, graph.nodes[: src + 1])
    folded: TreeEnsemble = rewrite.nodes[-1].op
    feats, cols, thr, folded_thr = [], [], [], []
    for t0, t1 in zip(orig.trees, folded.trees):
        cat0 = t0.is_categorical if t0.is_categorical is not None else np.zeros(t0.n_nodes, bool)
        cat1 = t1.is_categorical if t1.is_categorical is not None else np.zeros(t1.n_nodes, bool)
        for i in np.flatnonzero((t0.left >= 0) & ~cat0 & ~cat1):
            feats.append(int(t0.feature[i]))
            cols.append(int(t1.feature[i]))
            thr.append(float(t0.threshold[i]))
            folded_thr.append(float(t1.threshold[i]))
    feats, cols, thr = np.array(feats), np.array(cols), np.array(thr)
    m = len(feats)
    base = np.zeros((m, graph.n_features))
    rows = np.arange(m)

    def goes_left(x: np.ndarray) -> np.ndarray:
        X = base.copy()
        X[rows, cols] = x
        v = reference.evaluate(pre, X)[rows, feats]
        with np.errstate(over="ignore"):
            v = v.astype(orig.compare_dtype).astype(np.float64)
        with np.errstate(invalid="ignore"):
            return v <= thr if orig.comparison == "<=" else v < thr

    return cols, np.array(folded_thr), fusion.boundary(goes_left, m)


def stress_rows(conv, rewrite: Graph, n_random: int = 300, seed: int = 0) -> np.ndarray:
    """Random boundary-domain rows, plus rows that put each numeric split's boundary and its float64
    neighbours (two on each side) into the split's column."""
    X = random_codes(conv, n_random, seed)
    if isinstance(rewrite.nodes[-1].op, TreeEnsemble):
        cols, _, u = numeric_boundaries(conv.graph, rewrite)
        keep = np.isfinite(u)
        cols, u = cols[keep], u[keep]
        pts = [u, np.nextafter(u, -np.inf), np.nextafter(u, np.inf),
               np.nextafter(np.nextafter(u, -np.inf), -np.inf), np.nextafter(np.nextafter(u, np.inf), np.inf)]
        extra = random_codes(conv, len(cols) * len(pts), seed + 1)
        extra[np.arange(extra.shape[0]), np.tile(cols, len(pts))] = np.concatenate(pts)
        X = np.vstack([X, extra])
    return X


def the_tree_rewrite(graph: Graph) -> Graph:
    rw = [g for g in fusion.rewrites(graph) if isinstance(g.nodes[-1].op, TreeEnsemble)]
    assert len(rw) == 1, f"expected one tree rewrite of {graph.summary()}, got {len(rw)}"
    g = rw[0]
    assert len(g.nodes) == 1 and g.nodes[0].op.kind == "tree_ensemble" and g.nodes[0].inputs == (INPUT,), \
        f"the rewrite is not a lone tree ensemble reading the input: {g.summary()}"
    return g


def check_tree_fold(model, seed: int = 0) -> tuple[Graph, Graph]:
    conv = strategies.convert(model)
    rewrite = the_tree_rewrite(conv.graph)
    cols, folded_thr, u = numeric_boundaries(conv.graph, rewrite)
    np.testing.assert_array_equal(folded_thr, u, err_msg="folded thresholds != preimage boundaries")
    X = stress_rows(conv, rewrite, seed=seed)
    for output in ("raw", "out"):
        np.testing.assert_array_equal(reference.evaluate(rewrite, X, output=output),
                                      reference.evaluate(conv.graph, X, output=output), err_msg=output)
    return conv.graph, rewrite


# --------------------------------------------------------------------------- trees


TREE_CASES = [
    ("hgb", "ignore", "standard"),
    ("hgb", "infrequent", "minmax"),
    ("xgb", "ignore", "standard"),
    ("xgb", "error", "minmax"),
    ("lgbm", "ignore", "minmax"),
    ("lgbm", "infrequent", "standard"),
    ("rf", "ignore", "standard"),
    ("rf", "error", "minmax"),
    ("gbr", "ignore", "minmax"),
    ("gbr", "infrequent", "standard"),
]


@pytest.mark.parametrize("est,strings,numbers", TREE_CASES, ids=["-".join(c) for c in TREE_CASES])
def test_one_hot_and_scalers_fold_into_trees(est, strings, numbers):
    model, _ = fit(est, strings, numbers)
    graph, rewrite = check_tree_fold(model)
    assert rewrite.nodes[0].op.has_categorical  # one-hot splits became categorical splits on codes


@pytest.mark.parametrize("est", ["hgb", "xgb", "lgbm", "rf", "gbr"])
def test_folds_without_none_in_the_data(est):
    """The same pipelines fitted on string columns whose only missing value is NaN (no None category, so no
    negative code among the encoder's categories); None still appears in the inputs (code -2)."""
    model, _ = fit(est, numbers="minmax" if est in ("lgbm", "gbr") else "standard", none=False)
    check_tree_fold(model, seed=3)


def test_xgboost_behind_a_sparse_column_transformer():
    """A sparse ColumnTransformer output: XGBoost reads its zeros as missing, so a scaled value that is
    exactly 0 is missing.  The fold makes those input points NaN with an imputer in front of the tree (the
    rewrite is imputer -> tree).  NaN inputs are imputed to the SimpleImputer's mean, which is not always the
    StandardScaler's ``mean_`` to the last bit (one is the mean of the raw column, the other of the imputed
    one): then a NaN input is *not* missing for XGBoost but the input ``mean_`` is, and both must still go
    their own way after the fold.  Rows at every exact zero preimage (``mean_``), the imputer fills and their
    float64 neighbours check it."""
    model, _ = fit("xgb", none=False, sparse=True)
    assert model[0].sparse_output_
    conv = strategies.convert(model)
    rws = [g for g in fusion.rewrites(conv.graph) if isinstance(g.nodes[-1].op, TreeEnsemble)]
    assert len(rws) == 1
    rw = rws[0]
    # imputers on the input (NaN -> the SimpleImputer's fill, then the zero preimages -> NaN), then the tree
    kinds = [n.op.kind for n in rw.nodes]
    assert kinds[-1] == "tree_ensemble" and set(kinds[:-1]) == {"imputer"} and 1 <= len(kinds) - 1 <= 2, kinds
    assert all(n.inputs == (k - 1,) for k, n in enumerate(rw.nodes))
    num = model[0].named_transformers_["num"]
    points = np.concatenate([num[1].mean_, num[0].statistics_])
    cols = np.concatenate([np.arange(3, 6)] * 2)
    pts = [points, np.nextafter(points, -np.inf), np.nextafter(points, np.inf), np.full(points.shape, np.nan)]
    X = random_codes(conv, len(cols) * len(pts), seed=9)
    X[np.arange(X.shape[0]), np.tile(cols, len(pts))] = np.concatenate(pts)
    X = np.vstack([X, random_codes(conv, 300, seed=10)])
    np.testing.assert_array_equal(reference.evaluate(rw, X), reference.evaluate(conv.graph, X))


@pytest.mark.parametrize("est", ["hgb", "rf", "xgb"])
def test_ordinal_codes_fold_into_categorical_splits(est):
    model, _ = fit(est, strings="ordinal")
    graph, rewrite = check_tree_fold(model, seed=5)
    op = rewrite.nodes[0].op
    assert op.has_categorical and op.category_rounding == "exact"
    string_inputs = {0, 1, 2}
    for t in op.trees:
        internal = t.left >= 0
        on_strings = internal & np.isin(t.feature, list(string_inputs))
        assert not on_strings.any() or (t.is_categorical is not None and np.all(t.is_categorical[on_strings]))


def test_ordinal_encoder_on_integer_categories_with_gaps():
    """OrdinalEncoder on a numeric column whose categories are integers with gaps ({0, 3, 7, 12}): an input
    value between them (5) or beyond the largest one (13..31) is an unknown category (-1 after the encoder),
    and the folded categorical split must send it where -1 goes."""
    rng = np.random.default_rng(0)
    n = 300
    k = rng.choice([0.0, 3.0, 7.0, 12.0], n)
    z = rng.normal(size=n)
    X = np.column_stack([k, z])
    y = ((k == 7) | (k == 0) ^ (z > 0)).astype(int)
    ct = ColumnTransformer([("ord", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), [0]),
                            ("num", StandardScaler(), [1])])
    model = make_pipeline(ct, HistGradientBoostingClassifier(max_iter=5, max_depth=3, random_state=0))
    with threadpool_limits(1):
        model.fit(X, y)
    conv = strategies.convert(model)
    rewrite = the_tree_rewrite(conv.graph)
    probe = np.array([[v, w] for v in [0, 3, 7, 12, 1, 2, 5, 6, 11, 13, 20, 31, 32, 40, -1, 0.5, np.nan]
                      for w in (-1.0, 0.0, 1.0)])
    np.testing.assert_array_equal(reference.evaluate(rewrite, probe), reference.evaluate(conv.graph, probe))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_scores(reference.evaluate(rewrite, probe), model.predict_proba(probe)[:, 1:])


def test_a_tree_behind_a_normalizer_or_polynomial_features_does_not_fold():
    for numbers in ("normalizer", "poly"):
        model, _ = fit("hgb", numbers=numbers)
        conv = strategies.convert(model)
        assert fusion.fold_into_tree(conv.graph, len(conv.graph.nodes) - 1) is None, numbers
        assert not [g for g in fusion.rewrites(conv.graph) if isinstance(g.nodes[-1].op, TreeEnsemble)
                    and g.nodes[-1].inputs == (INPUT,)], numbers


def test_boundary_helper():
    """``fusion.boundary``: the largest float where a monotone predicate holds, +-inf included, NaN when
    it holds nowhere."""
    x32 = np.float32(0.1)
    preds = [
        lambda x: x <= 1.5,
        lambda x: x < 1.5,
        lambda x: x.astype(np.float32) <= x32,  # float32 rounding: the largest float64 rounding to <= 0.1f
        lambda x: np.ones_like(x, bool),
        lambda x: np.zeros_like(x, bool),
        lambda x: x <= -np.inf,
    ]

    def goes_left(x):
        return np.array([bool(p(x[i:i + 1])[0]) for i, p in enumerate(preds)])

    with np.errstate(over="ignore"):
        u = fusion.boundary(goes_left, len(preds))
    assert u[0] == 1.5 and u[1] == np.nextafter(1.5, -np.inf)
    assert np.float32(u[2]) <= x32 and np.float32(np.nextafter(u[2], np.inf)) > x32
    assert u[3] == np.inf and np.isnan(u[4]) and u[5] == -np.inf


# --------------------------------------------------------------------------- linear


@pytest.mark.parametrize("strings", ["ignore", "infrequent", "error"])
def test_one_hot_folds_into_logistic_regression(strings):
    model, _ = fit("lr", strings=strings)
    conv = strategies.convert(model)
    lin = conv.graph.nodes[-1].op
    assert isinstance(lin, Linear)
    n_classes = lin.coef.shape[0]
    rws = fusion.rewrites(conv.graph)
    assert len(rws) == 1
    rw = rws[0]
    assert isinstance(rw.nodes[-1].op, Linear)
    widths = [n.op.output_type().width for n in rw.nodes if isinstance(n.op, Lookup)]
    assert widths and max(widths) <= len(STRING_COLS) * n_classes, widths
    assert rw.nodes[-1].op.coef.shape[1] < lin.coef.shape[1]
    X = stress_rows(conv, rw, n_random=600, seed=7)
    for output in ("raw", "out"):
        assert_scores(reference.evaluate(rw, X, output=output), reference.evaluate(conv.graph, X, output=output),
                      what=output)


# --------------------------------------------------------------------------- compiled


@pytest.mark.slow
def test_tvm_tir_serves_a_folded_pipeline_as_one_tiled_traversal_task():
    from strategies.backends.registry import get_backend

    reason = get_backend("tvm-tir").unavailable_reason()
    if reason:
        pytest.skip(f"tvm-tir unavailable: {reason}")
    model, _ = fit("hgb", strings="ignore", numbers="standard", none=False)
    pred = tuner.compile(model, backend="tvm-tir")
    (plan,) = pred.plans
    assert len(plan.tasks) == 1, [t.graph.summary() for t in plan.tasks]
    task = plan.tasks[0]
    assert task.config["strategy"] == "tiled_traversal" and task.config["backend"] == "tvm-tir"
    assert [op.kind for op in task.ops] == ["tree_ensemble"] and task.graph.nodes[0].inputs == (INPUT,)
    X = frame(n=500, seed=11, none=False)
    X.loc[X.index[:40:3], "a"] = "never seen"
    X.loc[X.index[1:40:3], "n2"] = np.nan
    assert_scores(pred.predict_proba(X), model.predict_proba(X), what="predict_proba on tvm-tir")
    assert_same_labels(pred.predict(X), model.predict(X), what="predict on tvm-tir")
