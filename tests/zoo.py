"""Small models of every supported family, trained on the fly, for tests beyond the frontends'."""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

ZOO: dict[str, Callable[[], Any]] = {}


def entry(fn: Callable[[], Any]) -> Callable[[], Any]:
    cached = functools.lru_cache(maxsize=1)(fn)
    ZOO[fn.__name__] = cached
    return cached


def data(n: int = 300, f: int = 6, nan: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    X[:, 1] = np.round(X[:, 1], 1)
    if nan:
        X[rng.random((n, f)) < nan] = np.nan
    return X


def labels(X: np.ndarray, k: int = 2) -> np.ndarray:
    Z = np.nan_to_num(X)
    s = Z[:, 0] + 0.5 * Z[:, 1] - 0.3 * Z[:, 2] + 0.4 * np.isnan(X[:, 3])
    return np.digitize(s, np.quantile(s, np.linspace(0, 1, k + 1)[1:-1]))


def target(X: np.ndarray) -> np.ndarray:
    Z = np.nan_to_num(X)
    return 2 * Z[:, 0] - Z[:, 1] + 0.5 * Z[:, 2] * Z[:, 3] + np.isnan(X[:, 0])


@entry
def sk_random_forest_clf():
    from sklearn.ensemble import RandomForestClassifier

    X = data(nan=0.05)
    return RandomForestClassifier(12, max_depth=6, random_state=0).fit(X, labels(X, 3))


@entry
def sk_extra_trees_reg():
    from sklearn.ensemble import ExtraTreesRegressor

    X = data()
    return ExtraTreesRegressor(8, max_depth=7, random_state=0).fit(X, target(X))


@entry
def sk_gradient_boosting_clf():
    from sklearn.ensemble import GradientBoostingClassifier

    X = data()
    return GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X, labels(X, 3))


@entry
def sk_hist_gradient_boosting_cat():
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(3)
    X = data(nan=0.05, seed=3)
    X[:, 4] = rng.integers(0, 12, X.shape[0])
    y = labels(X) ^ np.isin(X[:, 4], [1, 5, 7]).astype(int)
    return HistGradientBoostingClassifier(max_iter=10, max_depth=4, categorical_features=[4], random_state=0).fit(X, y)


@entry
def sk_isolation_forest():
    from sklearn.ensemble import IsolationForest

    return IsolationForest(n_estimators=10, random_state=0).fit(data())


@entry
def sk_decision_tree_deep():
    from sklearn.tree import DecisionTreeRegressor

    X = data(n=600, nan=0.05)
    return DecisionTreeRegressor(random_state=0).fit(X, target(X))


@entry
def sk_logistic_multinomial():
    from sklearn.linear_model import LogisticRegression

    X = data()
    return LogisticRegression(max_iter=500).fit(X, labels(X, 3))


@entry
def sk_pipeline_scaler_logistic():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = data()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, labels(X))


@entry
def sk_pipeline_impute_scale_forest():
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    X = data(nan=0.1)
    return make_pipeline(SimpleImputer(), MinMaxScaler(), RandomForestRegressor(6, max_depth=5, random_state=0)).fit(X, target(X))


@entry
def sk_pipeline_normalize_ridge():
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    X = data()
    return make_pipeline(Normalizer(), Ridge()).fit(X, target(X))


@entry
def xgb_binary_nan():
    import xgboost as xgb

    X = data(nan=0.1)
    return xgb.XGBClassifier(n_estimators=12, max_depth=4, n_jobs=1, random_state=0).fit(X, labels(X))


@entry
def xgb_multiclass():
    import xgboost as xgb

    X = data(nan=0.05)
    return xgb.XGBClassifier(n_estimators=6, max_depth=3, n_jobs=1, random_state=0).fit(X, labels(X, 4))


@entry
def xgb_categorical():
    import pandas as pd
    import xgboost as xgb

    X = data(nan=0.05, seed=4)
    rng = np.random.default_rng(4)
    X[:, 5] = rng.integers(0, 9, X.shape[0])
    y = target(X) + 3 * np.isin(X[:, 5], [2, 3, 8])
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    df["f5"] = pd.Categorical(X[:, 5].astype(int), categories=range(9))
    return xgb.XGBRegressor(n_estimators=8, max_depth=4, enable_categorical=True, tree_method="hist",
                            max_cat_to_onehot=1, n_jobs=1).fit(df, y).get_booster()


@entry
def lgb_binary_nan():
    import lightgbm as lgb

    X = data(nan=0.1)
    return lgb.LGBMClassifier(n_estimators=10, num_leaves=15, verbose=-1, n_jobs=1).fit(X, labels(X))


@entry
def lgb_multiclass_zero_missing():
    import lightgbm as lgb

    X = data()
    X[np.random.default_rng(5).random(X.shape) < 0.1] = 0.0
    return lgb.LGBMClassifier(n_estimators=5, num_leaves=8, zero_as_missing=True, verbose=-1, n_jobs=1).fit(X, labels(X, 3))


@entry
def lgb_categorical():
    import lightgbm as lgb

    rng = np.random.default_rng(6)
    X = data(nan=0.05, seed=6)
    X[:, 2] = rng.integers(0, 20, X.shape[0])
    y = target(X) + 2 * np.isin(X[:, 2], [1, 4, 9, 17])
    ds = lgb.Dataset(X, y, categorical_feature=[2], params={"verbose": -1})
    return lgb.train({"objective": "regression", "num_leaves": 15, "verbose": -1, "num_threads": 1,
                      "min_data_per_group": 5, "cat_smooth": 1}, ds, num_boost_round=8)


TREE_MODELS = [n for n in ZOO if n not in ("sk_logistic_multinomial", "sk_pipeline_scaler_logistic", "sk_pipeline_normalize_ridge")]
LINEAR_MODELS = ["sk_logistic_multinomial", "sk_pipeline_scaler_logistic", "sk_pipeline_normalize_ridge"]


# ---- kernel SVMs (after TREE_MODELS on purpose: they are not tree models)


@entry
def sk_svc_rbf_proba():
    import warnings

    from sklearn.svm import SVC

    X = data(200, 6, seed=21)
    with warnings.catch_warnings():  # probability=True is deprecated in scikit-learn 1.9, still supported
        warnings.simplefilter("ignore", FutureWarning)
        return SVC(probability=True, random_state=0).fit(X, labels(X, 3))


@entry
def sk_pipeline_scaler_nusvc_poly_ovo():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import NuSVC

    X = data(200, 6, seed=22)
    return make_pipeline(StandardScaler(), NuSVC(kernel="poly", degree=2, coef0=1.0, decision_function_shape="ovo")
                         ).fit(X, labels(X, 4))


@entry
def sk_svr_sigmoid():
    from sklearn.svm import SVR

    X = data(200, 6, seed=23)
    return SVR(kernel="sigmoid", gamma=0.05, coef0=0.1).fit(X, target(X))


SVM_MODELS = ["sk_svc_rbf_proba", "sk_pipeline_scaler_nusvc_poly_ovo", "sk_svr_sigmoid"]


# ---- MLPs and naive Bayes (after TREE_MODELS on purpose: they are not tree models)


@entry
def sk_pipeline_scaler_mlp_tanh():
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = data(200, 6, seed=31)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_pipeline(StandardScaler(), MLPClassifier((8, 6), activation="tanh", max_iter=100, random_state=0)
                             ).fit(X, labels(X, 3))


@entry
def sk_gaussian_nb():
    from sklearn.naive_bayes import GaussianNB

    X = data(200, 6, seed=32)
    return GaussianNB().fit(X, labels(X, 3))
