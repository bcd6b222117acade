"""The input boundary (``strategies.inputs``) on real pipelines with string columns.

A ``ColumnTransformer`` (OneHotEncoder on string columns, SimpleImputer + StandardScaler and a bare
StandardScaler on numeric ones) in front of a LogisticRegression, fitted on a pandas DataFrame.  The compiled
``predict_proba`` must equal scikit-learn's for every way the same data can be handed over: object columns
holding str / None / NaN, pandas ``string`` (pd.NA) and pandas 3's default ``str`` dtype, ``category``
columns (with categories unseen at fit), a positional NumPy object array, and columns in another order.
Bad input must raise a one-line error that names the column.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import tuner
from tolerances import assert_same_labels, assert_scores

COLORS = np.array(["red", "green", "blue", None, np.nan], dtype=object)
SHAPES = np.array(["circle", "square", "triangle", np.nan], dtype=object)
COLUMNS = ["color", "shape", "size", "weight", "count"]


def frame(n: int = 240, seed: int = 0, unseen: bool = False) -> pd.DataFrame:
    """Object string columns with None / NaN, a numeric column with NaN, a finite one and an int one.
    ``unseen``: also categories the encoders never saw."""
    rng = np.random.default_rng(seed)
    colors = np.concatenate([COLORS, ["purple", "Red", ""]]) if unseen else COLORS
    shapes = np.concatenate([SHAPES, ["hexagon"]]) if unseen else SHAPES
    color = rng.choice(colors, n)
    color[: len(colors)] = colors  # every value at least once
    shape = rng.choice(shapes, n)
    shape[: len(shapes)] = shapes
    size = rng.normal(2.0, 1.5, n)
    size[rng.random(n) < 0.15] = np.nan
    return pd.DataFrame({
        "color": pd.Series(color, dtype=object),
        "shape": pd.Series(shape, dtype=object),
        "size": size,
        "weight": rng.normal(60.0, 12.0, n),
        "count": rng.integers(0, 9, n),
    })


def labels(df: pd.DataFrame, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    score = (df["color"].map({"red": 1.5, "green": -1.0}).fillna(0.3).to_numpy()
             + np.nan_to_num(df["size"].to_numpy()) * 0.8 - (df["weight"].to_numpy() - 60) / 12)
    return np.digitize(score + rng.normal(0, 0.7, len(df)), [-0.5, 0.8])


def pipeline(columns, handle_unknown: str = "ignore"):
    cat, num, w = columns
    ct = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown=handle_unknown), cat),
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), num),
        ("w", StandardScaler(), w),  # no imputer: NaN here reaches the LogisticRegression, which refuses it
    ])
    return make_pipeline(ct, LogisticRegression(max_iter=2000))


@pytest.fixture(scope="module")
def by_name():
    df = frame()
    model = pipeline((["color", "shape"], ["size", "count"], ["weight"])).fit(df, labels(df))
    return model, tuner.compile(model, backend="torch")


@pytest.fixture(scope="module")
def positional():
    df = frame(seed=3)
    model = pipeline(([0, 1], [2, 4], [3])).fit(df.to_numpy(), labels(df))
    return model, tuner.compile(model, backend="torch")


@pytest.fixture(scope="module")
def strict():
    df = frame(seed=5)
    model = pipeline((["color", "shape"], ["size", "count"], ["weight"]), handle_unknown="error")
    model.fit(df, labels(df))
    return model, tuner.compile(model, backend="torch")


def same_as_sklearn(model, pred, X, what: str = "") -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "X does not have valid feature names"
        want_p, want_y = model.predict_proba(X), model.predict(X)
    assert_scores(pred.predict_proba(X), want_p, what=f"predict_proba {what}")
    assert_same_labels(pred.predict(X), want_y, what=f"predict {what}")


def raises_one_line(exc, match: str, fn, *args):
    with pytest.raises(exc, match=match) as info:
        fn(*args)
    assert "\n" not in str(info.value), f"the error is not one line: {info.value}"
    return info.value


# --------------------------------------------------------------------------- accepted input


def test_object_columns_with_none_and_nan(by_name):
    model, pred = by_name
    cats = model[0].named_transformers_["cat"].categories_
    assert any(c is None for c in cats[0]) and any(isinstance(c, float) and np.isnan(c) for c in cats[0])
    for seed, unseen in ((10, False), (11, True)):
        X = frame(seed=seed, unseen=unseen)
        same_as_sklearn(model, pred, X, f"object columns, unseen={unseen}")


def test_a_few_rows_and_one_row(by_name):
    model, pred = by_name
    X = frame(seed=12, unseen=True)
    for rows in (slice(0, 1), slice(3, 4), slice(0, 9)):  # row 3: color None; row 4: color NaN
        same_as_sklearn(model, pred, X.iloc[rows], f"rows {rows}")


def test_pandas_str_dtype(by_name):
    """pandas 3's default string dtype ("str"): missing values are NaN (None becomes NaN too), as scikit-learn
    sees them: the encoder's NaN category."""
    model, pred = by_name
    X = frame(seed=13, unseen=True)
    for col in ("color", "shape"):
        X[col] = X[col].astype("str")
        assert str(X[col].dtype) == "str"
    same_as_sklearn(model, pred, X, "str dtype")
    # a frame built from Python lists gets the str dtype by default in pandas 3
    lists = pd.DataFrame({"color": ["red", None, "blue", "purple"], "shape": ["circle", "square", None, "tri"],
                          "size": [1.0, np.nan, 2.0, 3.0], "weight": [50.0, 60.0, 70.0, 80.0], "count": [1, 2, 3, 4]})
    same_as_sklearn(model, pred, lists, "str dtype from lists")


def test_pandas_string_dtype_with_pd_na(by_name):
    """pandas' nullable ``string`` dtype: missing values are pd.NA (None too).  scikit-learn's encoder does NOT
    treat pd.NA as missing: it is not ``is_scalar_nan``, so it is an unknown category (all zeros under
    handle_unknown='ignore'), even though the encoder saw NaN (and None) at fit.  The compiled model must do
    what scikit-learn does.  (Checked here: scikit-learn's output for pd.NA rows equals its output for an
    unseen string.)"""
    model, pred = by_name
    X = frame(seed=14, unseen=True)
    S = X.copy()
    for col in ("color", "shape"):
        S[col] = X[col].astype("string")
        assert str(S[col].dtype) == "string"
    assert S["color"].isna().any()
    enc = model[0].named_transformers_["cat"]
    na_rows = S["color"].isna().to_numpy()
    as_unseen = S.copy()
    as_unseen["color"] = S["color"].fillna("never seen")
    cat_cols = ["color", "shape"]
    np.testing.assert_array_equal(enc.transform(S[cat_cols]).toarray()[na_rows],
                                  enc.transform(as_unseen[cat_cols]).toarray()[na_rows])
    same_as_sklearn(model, pred, S, "string dtype (pd.NA)")


def test_pd_na_in_object_column(by_name):
    """pd.NA in an object column: scikit-learn again treats it as an unknown category (see above)."""
    model, pred = by_name
    X = frame(seed=15)
    X.loc[[0, 5, 6], "color"] = pd.NA
    same_as_sklearn(model, pred, X, "pd.NA in an object column")


def test_category_dtype_columns(by_name):
    """``category`` columns: categories in another order than at fit, categories never seen at fit (some used,
    some not), NaN as a missing code."""
    model, pred = by_name
    X = frame(seed=16, unseen=True)
    X["color"] = pd.Categorical(X["color"], categories=["purple", "blue", "Red", "", "orange", "red", "green"])
    X["shape"] = X["shape"].astype("category")
    assert X["color"].isna().any() and (X["color"] == "purple").any()
    same_as_sklearn(model, pred, X, "category dtype")
    # a category column whose rows are all missing / all one unseen category
    Y = X.iloc[:6].copy()
    Y["color"] = pd.Categorical([None] * 6, categories=["red"])
    Y["shape"] = pd.Categorical(["hexagon"] * 6)
    same_as_sklearn(model, pred, Y, "category dtype, all missing / all unseen")


def test_numpy_object_array_positional(positional):
    model, pred = positional
    for seed, unseen in ((20, False), (21, True)):
        X = frame(seed=seed, unseen=unseen).to_numpy()
        assert X.dtype == object
        same_as_sklearn(model, pred, X, f"object array, unseen={unseen}")


def test_model_fitted_on_names_takes_a_positional_object_array():
    """A model fitted on a DataFrame with positional column specs takes an object array too (scikit-learn
    warns that X has no feature names, and reads the columns by position)."""
    df = frame(seed=22)
    model = pipeline(([0, 1], [2, 4], [3])).fit(df, labels(df))
    pred = tuner.compile(model, backend="torch")
    X = frame(seed=23, unseen=True)
    same_as_sklearn(model, pred, X, "DataFrame")
    same_as_sklearn(model, pred, X.to_numpy(), "object array")


def test_columns_in_another_order(by_name):
    model, pred = by_name
    X = frame(seed=24, unseen=True)
    shuffled = X[["weight", "shape", "count", "color", "size"]]
    same_as_sklearn(model, pred, shuffled, "columns reordered")
    assert_scores(pred.predict_proba(shuffled), pred.predict_proba(X))


# --------------------------------------------------------------------------- refused input


def test_missing_column(by_name):
    model, pred = by_name
    X = frame(seed=30).drop(columns="size")
    with pytest.raises(ValueError, match="size"):
        model.predict_proba(X)
    raises_one_line(ValueError, r"missing column\(s\) \['size'\]", pred.predict_proba, X)


def test_extra_column(by_name):
    """scikit-learn's ColumnTransformer ignores a column it was not fitted with (it selects by name); the
    compiled model refuses it, naming it (the boundary's documented contract)."""
    model, pred = by_name
    X = frame(seed=31)
    X["extra"] = 1.0
    model.predict_proba(X)  # scikit-learn: accepted
    raises_one_line(ValueError, r"unexpected column\(s\) \['extra'\]", pred.predict_proba, X)


def test_numeric_column_holding_strings(by_name):
    model, pred = by_name
    X = frame(seed=32)
    X["size"] = X["size"].astype(object)
    X.loc[3, "size"] = "abc"
    with pytest.raises(ValueError, match="abc"):
        model.predict_proba(X)
    raises_one_line(TypeError, r"column 'size' of X holds strings \(e\.g\. 'abc'\)", pred.predict_proba, X)
    X["size"] = X["size"].astype(str)  # a whole str-dtype column of numbers as text
    raises_one_line(TypeError, r"column 'size' of X holds strings", pred.predict_proba, X)


def test_string_column_holding_numbers(by_name):
    model, pred = by_name
    X = frame(seed=33)
    X["color"] = np.arange(len(X))  # an int column where strings were fitted
    with pytest.raises(TypeError):
        model.predict_proba(X)
    raises_one_line(TypeError, r"column 'color' of X holds numbers", pred.predict_proba, X)
    X["color"] = np.linspace(0.5, 3, len(X))
    raises_one_line(TypeError, r"column 'color' of X holds numbers", pred.predict_proba, X)


def test_string_column_mixing_strings_and_numbers(by_name):
    """scikit-learn's encoder takes a stray number among strings as an unknown category (under
    handle_unknown='ignore'); the boundary refuses it, naming the column and the value."""
    model, pred = by_name
    X = frame(seed=34)
    X.loc[7, "color"] = 5
    model.predict_proba(X)  # scikit-learn: accepted
    raises_one_line(TypeError, r"column 'color' of X mixes strings and numbers \(5\)", pred.predict_proba, X)


def test_unseen_category_under_handle_unknown_error(strict):
    model, pred = strict
    X = frame(seed=35)
    same_as_sklearn(model, pred, X, "handle_unknown='error', known categories")
    assert X["color"].isna().any() and X["color"].map(lambda v: v is None).any()  # NaN and None were seen
    bad = X.copy()
    bad.loc[4, "color"] = "purple"
    with pytest.raises(ValueError, match="purple"):
        model.predict_proba(bad)
    raises_one_line(ValueError, r"unknown categories \[.*\] in column 'color'", pred.predict_proba, bad)
    bad = X.copy()
    bad.loc[2, "shape"] = "hexagon"
    raises_one_line(ValueError, r"unknown categories \[.*\] in column 'shape'", pred.predict_proba, bad)
    cat = X.copy()
    cat["color"] = pd.Categorical(X["color"], categories=["red", "green", "blue", "purple"])
    same_as_sklearn(model, pred, cat, "an unused unseen category is no error")
    cat.loc[1, "color"] = "purple"
    raises_one_line(ValueError, r"unknown categories \[.*\] in column 'color'", pred.predict_proba, cat)


def test_pd_na_under_handle_unknown_error(strict):
    """scikit-learn refuses pd.NA under handle_unknown='error' ("Found unknown categories [<NA>]"), even
    though the encoder saw NaN and None at fit: pd.NA is an unknown category to it (see
    ``test_pandas_string_dtype_with_pd_na``).  The compiled model must refuse it too."""
    model, pred = strict
    X = frame(seed=39).iloc[:10].copy()
    X["color"] = X["color"].astype("string")
    X.loc[X.index[2], "color"] = pd.NA
    with pytest.raises(ValueError, match="unknown categories"):
        model.predict_proba(X)
    raises_one_line(ValueError, r"unknown categories .* in column 'color'", pred.predict_proba, X)


def test_unseen_category_error_names_the_value(strict):
    """The boundary's contract: an error names what was given.  scikit-learn says "Found unknown categories
    ['purple'] in column 0"; the compiled model should name 'purple' too (not just "<unknown>")."""
    model, pred = strict
    bad = frame(seed=35)
    bad.loc[4, "color"] = "purple"
    raises_one_line(ValueError, r"unknown categories \['purple'\] in column 'color'", pred.predict_proba, bad)


def test_nan_seen_at_fit_is_accepted_under_handle_unknown_error(strict):
    model, pred = strict
    X = frame(seed=36).iloc[:20].copy()
    X["color"] = np.array([np.nan, None] * 10, dtype=object)
    X["shape"] = np.array([np.nan] * 20, dtype=object)
    same_as_sklearn(model, pred, X, "NaN / None seen at fit, handle_unknown='error'")
    X["color"] = X["color"].astype("str")  # str dtype: None and NaN are NaN
    same_as_sklearn(model, pred, X, "NaN seen at fit, str dtype")


def test_nan_where_the_linear_model_refuses_it(by_name):
    model, pred = by_name
    X = frame(seed=37)
    X.loc[9, "weight"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict_proba(X)
    raises_one_line(ValueError, r"NaN in column 'weight'", pred.predict_proba, X)
    X = frame(seed=37)
    X.loc[9, "size"] = np.nan  # imputed: fine
    same_as_sklearn(model, pred, X, "NaN in an imputed column")
    X.loc[9, "size"] = np.inf  # scikit-learn's imputer refuses inf
    with pytest.raises(ValueError, match="infinity"):
        model.predict_proba(X)
    raises_one_line(ValueError, r"infinity in column 'size'", pred.predict_proba, X)


def test_numeric_array_for_a_model_with_string_columns(by_name, positional):
    for model, pred in (by_name, positional):
        X = np.zeros((4, 5))
        raises_one_line(TypeError, r"expects strings in column\(s\) .*color.*shape|expects strings in column\(s\) 0, 1",
                        pred.predict_proba, X)
        raises_one_line(TypeError, r"expects strings in column\(s\)", pred.predict_proba, X.astype(np.int64))


def test_wrong_width_positional(positional):
    model, pred = positional
    X = frame(seed=38).to_numpy()[:, :4]
    raises_one_line(ValueError, r"X has 4 features, but .* is expecting 5 features", pred.predict_proba, X)


@pytest.mark.parametrize("selector", ["names", "indices", "slice", "mask", "make_column_selector"])
def test_column_transformer_columns_by_every_kind_of_selector(selector):
    """Columns are resolved at convert time from the fitted transformer, however they were named."""
    from sklearn.compose import make_column_selector

    rng = np.random.default_rng(11)
    n = 240
    frame = pd.DataFrame({
        "city": pd.Series(rng.choice(["oslo", "rome", None], n), dtype=object),
        "kind": pd.Series(rng.choice(["a", "b", "c", np.nan], n), dtype=object),
        "x": rng.normal(size=n),
        "y": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
    })
    target = (frame.x > 0) ^ (frame.city == "rome")
    strings, numbers = {
        "names": (["city", "kind"], ["x", "y"]),
        "indices": ([0, 1], [2, 3]),
        "slice": (slice(0, 2), slice(2, 4)),
        "mask": ([True, True, False, False], [False, False, True, True]),
        "make_column_selector": (make_column_selector(dtype_include=object),
                                 make_column_selector(dtype_include=np.number)),
    }[selector]
    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), strings),
                            ("num", make_pipeline(SimpleImputer(), StandardScaler()), numbers)])
    model = make_pipeline(ct, LogisticRegression(max_iter=500)).fit(frame, target)
    test = frame.iloc[:60].copy()
    test.loc[:5, "kind"] = "unseen"
    assert_scores(tuner.compile(model).predict_proba(test), model.predict_proba(test), what=selector)


def test_read_only_rows_reach_a_tvm_program():
    """DLPack cannot mark a tensor read-only, so TVM refuses read-only arrays (a pandas frame's ``to_numpy()``
    under copy-on-write is one): the backend hands it a copy, whatever the rows' alignment."""
    from strategies.backends._tvm_runtime import aligned_empty

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    p = tuner.compile(model, backend="tvm")
    rows = aligned_empty(X.shape, X.dtype)
    rows[...] = X
    rows.flags.writeable = False
    for n in (1, 7, 64):
        assert_scores(p.predict_proba(rows[:n]), model.predict_proba(X[:n]), what=f"{n} read-only rows")
