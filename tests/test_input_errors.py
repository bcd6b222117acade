"""Bad input a user can act on: +-inf where scikit-learn's HistGradientBoosting accepts it (and only
there), model files that are no valid model, and damaged tuning logs.  Each error is one line that
names the column or the file; no native stack trace, no third-party warning reaches the terminal.

Small models are trained on the fly; the CLI runs in-process (``tuner.cli.main``) with its file
descriptors captured, so a line written by C++ straight to stderr would show.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline

import strategies
import tuner
from strategies import reference
from strategies.frontends.sklearn import STEPS, _trees
from tests.tolerances import assert_close, assert_same_labels, assert_scores

HGB_NAMES = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]


# --------------------------------------------------------------------------- HistGradientBoosting and inf


@pytest.fixture
def hgb_per_column(monkeypatch):
    """The HistGradientBoosting converter that refuses inf in categorical columns only.

    ``strategies/frontends/sklearn/__init__.py`` still registers the step-level one (through ``legacy``,
    which refuses inf in every column); :func:`test_hgb_converter_is_registered` fails until it registers
    ``_trees.hist_gradient_boosting``, and then this fixture changes nothing.
    """
    for name in HGB_NAMES:
        monkeypatch.setitem(STEPS, name, _trees.hist_gradient_boosting)


@pytest.mark.xfail(strict=True, reason="strategies/frontends/sklearn/__init__.py (not in this change) registers "
                   "HistGradientBoosting through legacy(_trees._hist_gradient_boosting); it must register "
                   "_trees.hist_gradient_boosting")
def test_hgb_converter_is_registered():
    for name in HGB_NAMES:
        assert STEPS[name] is _trees.hist_gradient_boosting


def hgb_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Columns: 0 numeric with NaN (NaN tells the target), 1 categorical 0..5, 2 numeric."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 6, n).astype(float), rng.normal(size=n)])
    X[rng.random(n) < 0.2, 0] = np.nan
    y = np.isnan(X[:, 0]) * 2.0 + (X[:, 1] % 2) + np.nan_to_num(X[:, 2]) + rng.normal(scale=0.1, size=n)
    return X, y


def probe_rows(seed: int = 1) -> np.ndarray:
    """+-inf, NaN, 0 and huge values in the numeric columns; known, unknown, fractional and NaN categories."""
    rng = np.random.default_rng(seed)
    X, _ = hgb_data(60, seed)
    specials = np.array([np.inf, -np.inf, np.nan, 0.0, 1e308, -1e308])
    for j in (0, 2):
        hit = rng.random(len(X)) < 0.5
        X[hit, j] = rng.choice(specials, size=int(hit.sum()))
    X[:8, 0] = [np.inf, -np.inf, np.inf, -np.inf, np.nan, np.inf, 0.0, -np.inf]
    X[:8, 2] = [np.inf, np.inf, -np.inf, -np.inf, np.inf, np.nan, -np.inf, 0.0]
    X[:, 1] = np.resize([0, 1, 2, 3, 4, 5, 7, -1, np.nan, 2.5, 1e9], len(X))
    return X


def hgb_models():
    X, y = hgb_data()
    reg = HistGradientBoostingRegressor(max_iter=15, categorical_features=[1], random_state=0).fit(X, y)
    clf = HistGradientBoostingClassifier(max_iter=10, categorical_features=[1], random_state=0).fit(
        X, np.digitize(y, [0.5, 2.0]))
    binary = HistGradientBoostingClassifier(max_iter=10, categorical_features=[1], random_state=0).fit(X, y > 1)
    return {"regressor": reg, "multiclass": clf, "binary": binary}


def test_hgb_probe_covers_a_split_of_nan_from_all_numbers():
    # +inf <= +inf goes to the non-missing side: the case that tells inf from NaN
    reg = hgb_models()["regressor"]
    thresholds = [n["num_threshold"] for it in reg._predictors for p in it for n in p.nodes if not n["is_leaf"]]
    assert np.isposinf(thresholds).any()


@pytest.mark.parametrize("kind", ["regressor", "multiclass", "binary"])
def test_hgb_accepts_inf_in_numeric_columns_as_sklearn_does(hgb_per_column, kind):
    native = hgb_models()[kind]
    X = probe_rows()
    conv = strategies.convert(native)
    assert [c.allow_inf for c in conv.input.columns] == [True, False, True]
    assert all(c.allow_nan for c in conv.input.columns)
    pred = tuner.compile(native)
    for method in conv.methods:
        want = getattr(native, method)(X)
        what = f"{kind}.{method}"
        if method == "predict" and kind != "regressor":
            assert_same_labels(pred.predict(X), want, what)
            assert_same_labels(reference.predict(conv, X, method), want, what + " (reference)")
        else:
            assert_scores(getattr(pred, method)(X), want, what=what)
            assert_close(reference.predict(conv, X, method), want, what=what + " (reference)")


@pytest.mark.parametrize("strategy", ["gemm", "tree_traversal", "perfect_tree_traversal"])
def test_hgb_inf_routes_alike_in_every_torch_strategy(hgb_per_column, strategy):
    native = hgb_models()["regressor"]
    X = probe_rows(seed=2)
    pred = tuner.compile(native, strategy=strategy, backend="torch")
    assert_scores(pred.predict(X), native.predict(X), what=strategy)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_hgb_refuses_inf_in_a_categorical_column_naming_it(hgb_per_column, value):
    native = hgb_models()["binary"]
    X = probe_rows()[:5]
    X[3, 1] = value
    with pytest.raises(ValueError):
        native.predict(X)
    pred = tuner.compile(native)
    for call in (pred.predict, pred.predict_proba, lambda X: reference.predict(strategies.convert(native), X)):
        with pytest.raises(ValueError, match="infinity in column 1") as info:
            call(X)
        one_line(str(info.value))


def test_hgb_names_the_column_of_a_frame(hgb_per_column):
    pd = pytest.importorskip("pandas")
    X, y = hgb_data()
    df = pd.DataFrame(X, columns=["age", "colour", "size"])
    native = HistGradientBoostingRegressor(max_iter=5, categorical_features=["colour"], random_state=0).fit(df, y)
    pred = tuner.compile(native)
    good = df.iloc[:6].copy()
    good["age"] = [np.inf, -np.inf, 1.0, np.nan, 0.0, np.inf]
    good["size"] = [-np.inf, np.inf, np.inf, 0.0, np.nan, 1.0]
    assert_scores(pred.predict(good), native.predict(good))
    bad = good.copy()
    bad.loc[bad.index[2], "colour"] = np.inf
    with pytest.raises(ValueError):
        native.predict(bad)
    with pytest.raises(ValueError, match="infinity in column 'colour'"):
        pred.predict(bad)


def test_hgb_in_a_pipeline_refuses_inf_in_the_input_column_that_becomes_categorical(hgb_per_column):
    X, y = hgb_data()
    # the HGB's categorical column 2 is input column 1; its numeric ones are input columns 2 and 0
    ct = ColumnTransformer([("num", "passthrough", [2, 0]), ("cat", "passthrough", [1])])
    native = make_pipeline(ct, HistGradientBoostingRegressor(max_iter=8, categorical_features=[2],
                                                             random_state=0)).fit(X, y)
    conv = strategies.convert(native)
    assert [c.allow_inf for c in conv.input.columns] == [True, False, True]
    X = probe_rows(seed=3)
    assert_close(reference.predict(conv, X), native.predict(X))
    X[0, 1] = np.inf
    with pytest.raises(ValueError):
        native.predict(X)
    with pytest.raises(ValueError, match="infinity in column 1"):
        reference.predict(conv, X)


def test_hgb_without_categories_accepts_inf_everywhere(hgb_per_column):
    X, y = hgb_data()
    native = HistGradientBoostingRegressor(max_iter=8, random_state=0).fit(X, y)
    conv = strategies.convert(native)
    assert conv.input.allow_inf and conv.input.allow_nan
    X = probe_rows()
    X[:, 1] = np.resize([np.inf, -np.inf, 3.0], len(X))
    assert_scores(tuner.compile(native).predict(X), native.predict(X))
