"""Pipelines and ColumnTransformers, re-expressing Hummingbird's tests/test_sklearn_pipeline.py.

Same models, data, shapes and parameters as Hummingbird; every case is checked
against scikit-learn itself with the project tolerance.  Beyond Hummingbird:
StandardScaler in front of XGBoost / LightGBM classifiers, and ColumnTransformers
over pandas DataFrames with string columns (None / NaN / unseen categories).

Changes forced by scikit-learn 1.9: LogisticRegression's ``n_jobs`` is left unset
(it has had no effect since 1.8 and is deprecated).  PCA(svd_solver="randomized")
gets random_state=0, and the unseeded data and forest of test_pipeline_many_inputs
get seed 0, so that a failure reproduces.

Left out: test_pipeline2 (identical to test_pipeline: same float32 data and model);
test_pipeline_column_transformer_string (downloads titanic3.csv over the network;
re-expressed on generated data of the same shape of problem as "titanic_like");
the ONNX-only parts of test_pipeline_many_inputs (one ONNX input per column) and
all of test_pipeline_many_inputs_with_schema (ONNX graph input/output names): the
model of test_pipeline_many_inputs is kept, fed one array; the stacking cases
(StackingClassifier / StackingRegressor) are re-expressed in test_hb_stacking.py.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from scipy import sparse
from sklearn import datasets
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits
from xgboost import XGBClassifier

import tuner
from tolerances import assert_same_labels, assert_scores

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def _one_thread():
    # HistGradientBoosting's / LightGBM's OpenMP loops crawl on a loaded 2-core machine.
    with threadpool_limits(limits=1):
        yield


def check(model, X, methods, *, backend="torch", X_in=None):
    """Compile ``model``; each method on ``X_in`` (default ``X``) must match scikit-learn's on ``X``."""
    pred = tuner.compile(model, backend=backend)
    if is_classifier(model):
        assert_same_labels(pred.classes_, model.classes_, what="classes_")
    for method in methods:
        expected = getattr(model, method)(X)
        if sparse.issparse(expected):
            expected = expected.toarray()
        actual = getattr(pred, method)(X if X_in is None else X_in)
        what = f"{method} on {backend}"
        if method == "predict" and is_classifier(model):
            assert_same_labels(actual, expected, what=what)
        else:
            assert_scores(actual, expected, what=what)


# --------------------------------------------------------------------------- Hummingbird's cases

FOUR_ROWS = np.array([[0, 0], [0, 0], [1, 1], [1, 1]], dtype=np.float32)


def scaler_twice(data):
    scaler = StandardScaler().fit(data)
    return Pipeline([("scaler1", scaler), ("scaler2", scaler)])  # one fitted object, used twice


def union_in_pipeline():
    model = Pipeline([("scaler1", StandardScaler()),
                      ("union", FeatureUnion([("scaler2", StandardScaler()), ("scaler3", MinMaxScaler())]))])
    return model.fit(FOUR_ROWS)


@pytest.mark.parametrize("backend", ["torch", "torchscript"])
def test_pipeline_same_scaler_twice(backend):
    check(scaler_twice(FOUR_ROWS), FOUR_ROWS, ["transform"], backend=backend)


def test_union_in_pipeline():
    check(union_in_pipeline(), FOUR_ROWS, ["transform"])


def test_pipeline_floats_and_ints_in_a_list():
    data = [[0, 0.0], [0, 0.0], [1, 1.0], [1, 1.0]]
    check(scaler_twice(data), data, ["transform"])


@functools.lru_cache(maxsize=None)
def iris_frame(float32: bool) -> tuple[pd.DataFrame, np.ndarray]:
    iris = datasets.load_iris()
    X = iris.data[:, :3].astype(np.float32 if float32 else np.float64)
    frame = pd.DataFrame(X, columns=["vA", "vB", "vC"])
    frame["vcat"] = frame["vA"].apply(lambda v: 1 if v > 0.5 else 2)
    frame["vcat2"] = frame["vB"].apply(lambda v: 3 if v > 0.5 else 4)
    return frame, iris.target % 2


ALL_NUM, TWO_NUM, CAT = [0, 1, 2], [0, 1], [3, 4]
WEIGHTS = {"num": 2, "cat": 3}
# id -> (numeric columns, categorical columns or None, transformer_weights, remainder)
COLUMN_CASES = {
    "column_transformer_1": (ALL_NUM, None, None, "drop"),
    "column_transformer": (ALL_NUM, CAT, None, "drop"),
    "weights": (ALL_NUM, CAT, WEIGHTS, "drop"),
    "drop": (TWO_NUM, CAT, WEIGHTS, "drop"),
    "drop_noweights": (TWO_NUM, CAT, None, "drop"),
    "passthrough": (TWO_NUM, CAT, WEIGHTS, "passthrough"),
    "passthrough_noweights": (TWO_NUM, CAT, None, "passthrough"),
    "passthrough_slice": (slice(0, 1), slice(3, 4), WEIGHTS, "passthrough"),
}


def iris_column_pipeline(case: str, float32: bool = False) -> Pipeline:
    num, cat, weights, remainder = COLUMN_CASES[case]
    parts = [("num", Pipeline([("scaler", StandardScaler())]), num)]
    if cat is not None:
        parts.append(("cat", Pipeline([("onehot", OneHotEncoder(sparse_output=True, handle_unknown="ignore"))]), cat))
    classifier = LogisticRegression(C=0.01, class_weight=dict(zip([False, True], [0.2, 0.8])), max_iter=10,
                                    solver="liblinear", tol=1e-3)
    model = Pipeline([("preprocessor", ColumnTransformer(parts, transformer_weights=weights, remainder=remainder)),
                      ("classifier", classifier)])
    return model.fit(*iris_frame(float32))


# (case, tunebird gets the DataFrame (else .values), float32 data, backend)
@pytest.mark.parametrize("case,frame_input,float32,backend", [
    *[(c, False, False, "torch") for c in COLUMN_CASES],
    ("column_transformer", True, False, "torch"),        # Hummingbird's ..._pandas
    ("weights", True, False, "torch"),                   # ..._weights_pandas
    ("column_transformer", True, True, "torchscript"),   # ..._pandas_ts
    ("passthrough", False, False, "torchscript"),
])
def test_column_transformer_iris(case, frame_input, float32, backend):
    model = iris_column_pipeline(case, float32)
    X_test = iris_frame(float32)[0][:11]
    check(model, X_test, ["predict_proba"], backend=backend, X_in=X_test if frame_input else X_test.values)


def test_pca_random_forest():
    X, y = datasets.make_regression(n_samples=1000, n_features=8, n_informative=5, n_targets=1, random_state=0,
                                    shuffle=True)
    pca = PCA(n_components=8, svd_solver="randomized", whiten=True, random_state=0)
    model = make_pipeline(StandardScaler(), pca, RandomForestRegressor(n_estimators=10, max_depth=30, random_state=0))
    model.fit(X, y)
    check(model, [[0.0] * 8], ["predict"])  # Hummingbird's one all-zero row
    check(model, X[:50], ["predict"])


def test_column_transformer_many_columns_random_forest():
    n_features = 18
    rng = np.random.RandomState(0)
    X = rng.rand(100, n_features)
    y = rng.randint(1000, size=100)
    pre = ColumnTransformer([("scaling", Pipeline([("scaler", StandardScaler())]), list(range(n_features)))])
    model = Pipeline([("preprocessor", pre), ("model", RandomForestRegressor(n_estimators=10, max_depth=9,
                                                                              random_state=0))])
    check(model.fit(X, y), X, ["predict"])


def titanic_like(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Stand-in for the titanic3.csv columns the Hummingbird case keeps: age, fare (with NaN), int64 pclass."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"pclass": rng.choice([1, 2, 3], n, p=[0.25, 0.2, 0.55]).astype(np.int64),
                          "age": rng.normal(30, 14, n).clip(0.2, 80),
                          "fare": rng.exponential(33, n)})
    frame.loc[rng.random(n) < 0.2, "age"] = np.nan
    frame.loc[rng.random(n) < 0.01, "fare"] = np.nan
    logit = (1.2 * (frame.pclass == 1) - 0.8 * (frame.pclass == 3)
             - 0.02 * frame.age.fillna(30) + 0.01 * frame.fare.fillna(14))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame[["pclass", "age", "fare"]], y


def test_column_transformer_titanic_like():
    X_train, y_train = titanic_like(1047, seed=0)  # titanic3 has 1309 rows; Hummingbird trains on 80%
    X_test, _ = titanic_like(262, seed=1)
    numeric = Pipeline([("imputer", SimpleImputer(strategy="median")), ("scaler", StandardScaler())])
    categorical = Pipeline([("onehot", OneHotEncoder(handle_unknown="ignore"))])
    pre = ColumnTransformer([("num", numeric, ["age", "fare"]), ("cat", categorical, ["pclass"])])
    model = Pipeline([("preprocessor", pre), ("classifier", LogisticRegression(solver="liblinear"))])
    model.fit(X_train, y_train)
    check(model, X_test, ["predict", "predict_proba"])


# --------------------------------------------------------------------------- beyond Hummingbird

@functools.lru_cache(maxsize=None)
def dataset(name: str):
    return (datasets.load_breast_cancer if name == "breast_cancer" else datasets.load_iris)(return_X_y=True)


BOOSTERS = {
    "xgboost": lambda: XGBClassifier(n_estimators=5),
    "lightgbm": lambda: LGBMClassifier(n_estimators=5, verbose=-1),
}


@pytest.mark.parametrize("data,booster,backend", [
    ("breast_cancer", "xgboost", "torch"),
    ("iris", "xgboost", "torch"),
    ("breast_cancer", "lightgbm", "torch"),
    ("iris", "lightgbm", "torch"),
    ("iris", "xgboost", "torchscript"),
    ("breast_cancer", "lightgbm", "torchscript"),
])
def test_scaler_then_gradient_boosting(data, booster, backend):
    X, y = dataset(data)
    model = make_pipeline(StandardScaler(), BOOSTERS[booster]()).fit(X, y)
    check(model, X, ["predict", "predict_proba"], backend=backend)


NUMERIC, STRINGS = ["age", "fare", "height"], ["color", "city"]


def string_frame(n: int, seed: int, unseen: bool) -> pd.DataFrame:
    """3 numeric columns with NaN; 'color' object dtype with None and NaN, 'city' pandas' own string dtype with NaN."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"age": rng.normal(40, 10, n), "fare": rng.exponential(30, n),
                          "height": rng.normal(170, 8, n)})
    for col, rate in zip(NUMERIC, (0.1, 0.1, 0.05)):
        frame.loc[rng.random(n) < rate, col] = np.nan
    color = rng.choice(["red", "green", "blue"], n).astype(object)
    color[rng.random(n) < 0.08] = None
    color[rng.random(n) < 0.08] = np.nan
    city = rng.choice(["paris", "tokyo", "lima", "oslo"], n).astype(object)
    city[rng.random(n) < 0.1] = np.nan
    if unseen:
        color[:4] = ["purple", "purple", None, np.nan]
        city[2:6] = ["rome", "rome", "paris", "rome"]
    frame["color"] = pd.Series(color, dtype=object)
    frame["city"] = pd.Series(city, dtype="str")
    return frame


def string_target(frame: pd.DataFrame) -> np.ndarray:
    score = ((frame.age.fillna(40) - 40) / 10 + (frame.color == "red") - (frame.color.isna()) * 0.5
             + (frame.city == "tokyo") - 0.02 * (frame.fare.fillna(30) - 30))
    return (score > 0).astype(np.int64).to_numpy()


STRING_MODELS = {
    "logistic": lambda: LogisticRegression(),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0),
}


@pytest.mark.parametrize("final,backend", [
    ("logistic", "torch"), ("hist_gradient_boosting", "torch"), ("logistic", "torchscript"),
])
def test_column_transformer_string_columns(final, backend):
    train = string_frame(300, seed=0, unseen=False)
    test = string_frame(80, seed=1, unseen=True)
    numeric = make_pipeline(SimpleImputer(), StandardScaler())
    pre = ColumnTransformer([("num", numeric, NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), STRINGS)])
    model = make_pipeline(pre, STRING_MODELS[final]()).fit(train, string_target(train))
    check(model, test, ["predict", "predict_proba", "decision_function"], backend=backend)
