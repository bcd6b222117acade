"""Mixed-type pipeline workload: string and numeric columns in a pandas DataFrame, made in code.

The data imitate a tabular scoring table: six string columns with 3, 8, 20,
50, 120 and 300 categories of Zipf-skewed frequency (order shuffled, so
frequency is unrelated to the sorted order ``OneHotEncoder`` uses), each with
about 3% NaN and 1% None; eight float columns of different scales and shapes
with about 5% NaN; a binary target that depends on every string column (one
effect per category, missing ones included) and on the numeric columns
(nonlinear terms and an interaction with a string column).  String columns are
``object`` dtype holding ``str``, ``None`` and ``float('nan')`` (pandas 3 would
otherwise infer its ``str`` dtype, which turns None into NaN).

The serving pool (what the suite times) comes from the same generator with
another seed and, besides NaN and None, about 1% of string cells hold
categories never seen at fit time (``"<column>-new-<k>"``).

Three pipelines share one preprocessing ``ColumnTransformer``
(``OneHotEncoder(handle_unknown="ignore")`` on the string columns,
``SimpleImputer`` + ``StandardScaler`` on the numeric ones) and differ in the
final estimator: HistGradientBoosting, XGBoost, LogisticRegression.  The one
change from the plain recipe: ``pipe_hgb``'s ``ColumnTransformer`` has
``sparse_threshold=0`` (dense output), because HistGradientBoostingClassifier
refuses sparse input; with the default threshold the other two get a CSR
matrix (the one-hot block makes the output ~3% dense), so XGBoost treats the
absent entries (the zeros of the one-hot columns) as missing values, as its
users get it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# name -> number of categories seen at fit time
STRING_COLUMNS: dict[str, int] = {"plan": 3, "channel": 8, "region": 20, "device": 50, "city": 120, "merchant": 300}
NUMERIC_COLUMNS: tuple[str, ...] = ("age", "tenure_days", "amount", "balance", "n_orders", "discount", "latency_ms",
                                    "score")
# interleaved, so the ColumnTransformer routes by name rather than by position blocks
COLUMNS: tuple[str, ...] = tuple(c for pair in zip(STRING_COLUMNS, NUMERIC_COLUMNS) for c in pair) + NUMERIC_COLUMNS[6:]

GENERATOR_VERSION = 1  # part of the cached models' key: bump it when the data change
TRAIN_ROWS = 50_000
POOL_ROWS = 100_000  # serving rows the suite draws its batches from
TRAIN_SEED = 11
POOL_SEED = 12
WORLD_SEED = 20_261_130  # category frequencies and effects: shared by training and serving data

STR_NAN = 0.03  # fraction of string cells that are NaN
STR_NONE = 0.01  # ... that are None
STR_UNSEEN = 0.01  # ... that hold a category unseen at fit time (serving data only)
NUM_NAN = 0.05  # fraction of numeric cells that are NaN
INTERCEPT = -1.82  # about the median logit: the classes are about balanced
ZIPF_EXPONENT = 1.1
BATCH_SIZES = (1, 1024, 10_000, 100_000)  # what the suite times for the pipelines


def categories(column: str) -> list[str]:
    """The categories of a string column seen at fit time (``"<column>-<i>"``)."""
    return [f"{column}-{i}" for i in range(STRING_COLUMNS[column])]


def _world() -> dict[str, Any]:
    """What every sample shares: per column, category probabilities and effects on the target."""
    rng = np.random.default_rng(WORLD_SEED)
    world: dict[str, Any] = {}
    for column, k in STRING_COLUMNS.items():
        p = 1.0 / np.arange(1, k + 1) ** ZIPF_EXPONENT
        p = rng.permutation(p / p.sum())  # skewed, but not in the sorted order of the labels
        scale = 0.8 if k <= 8 else 0.5
        world[column] = {"p": p, "effect": rng.normal(scale=scale, size=k),
                         "missing_effect": rng.normal(scale=0.5, size=2)}  # NaN, None
    return world


def make_frame(n: int, seed: int, *, unseen: float = 0.0) -> tuple[Any, np.ndarray]:
    """``n`` rows as a pandas DataFrame (columns ``COLUMNS``) and the binary target (int64).

    ``unseen``: the fraction of string cells replaced by categories not seen at fit time
    (0 for training data, ``STR_UNSEEN`` for the serving pool).
    """
    import pandas as pd

    world = _world()
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    logit = np.zeros(n)

    # numeric columns: latent values drive the target; NaN hides them from the model
    age = np.clip(np.round(rng.normal(40, 12, n)), 18, 90)
    tenure = rng.exponential(400.0, n)
    amount = rng.lognormal(3.5, 1.0, n)
    balance = rng.normal(1000.0, 3000.0, n)
    n_orders = rng.poisson(5.0, n).astype(np.float64)
    discount = np.round(rng.uniform(0.0, 0.5, n) * 20) / 20  # multiples of 0.05: ties
    latency = rng.gamma(2.0, 50.0, n)
    score = rng.normal(0.0, 1.0, n)
    numeric = dict(zip(NUMERIC_COLUMNS, (age, tenure, amount, balance, n_orders, discount, latency, score)))
    logit += (0.03 * (age - 40) - 0.4 * np.log1p(tenure / 100) + 0.5 * (np.log(amount) - 3.5)
              + 0.0001 * balance + np.sin(n_orders / 2) - 1.5 * discount + 0.004 * (latency - 100)
              + 0.8 * score * np.abs(score) / 2)

    for column, k in STRING_COLUMNS.items():
        w = world[column]
        codes = rng.choice(k, size=n, p=w["p"])
        values = np.array(categories(column), dtype=object)[codes]
        logit += w["effect"][codes]
        u = rng.random(n)
        nan, none = u < STR_NAN, (u >= STR_NAN) & (u < STR_NAN + STR_NONE)
        new = (u >= STR_NAN + STR_NONE) & (u < STR_NAN + STR_NONE + unseen)
        values[nan] = np.nan
        values[none] = None
        logit[nan] += w["missing_effect"][0] - w["effect"][codes[nan]]
        logit[none] += w["missing_effect"][1] - w["effect"][codes[none]]
        if new.any():
            labels = np.array([f"{column}-new-{j}" for j in range(max(3, k // 4))], dtype=object)
            values[new] = labels[rng.integers(0, len(labels), size=int(new.sum()))]
            logit[new] -= w["effect"][codes[new]]  # an unknown category has no effect
        data[column] = values
    # an interaction between a string column and a numeric one
    logit += np.where(data["plan"] == "plan-0", 0.8 * score, 0.0)

    for column in NUMERIC_COLUMNS:
        x = numeric[column].astype(np.float64)
        x[rng.random(n) < NUM_NAN] = np.nan
        data[column] = x
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(logit - INTERCEPT)))).astype(np.int64)
    frame = pd.DataFrame({c: pd.Series(data[c], dtype=object if c in STRING_COLUMNS else np.float64) for c in COLUMNS})
    return frame, y


def training_data(n: int = TRAIN_ROWS) -> tuple[Any, np.ndarray]:
    return make_frame(n, TRAIN_SEED)


def serving_pool(n: int = POOL_ROWS) -> Any:
    """The rows the suite times: NaN, None, and ~1% unseen categories in the string columns."""
    return make_frame(n, POOL_SEED, unseen=STR_UNSEEN)[0]


def missing_fractions(X: Any) -> dict[str, dict[str, float]]:
    """Per column of a generated frame: the fractions of NaN, None and (string columns) unseen categories."""
    out = {}
    for column in X.columns:
        values = X[column].to_numpy()
        missing = np.asarray(X[column].isna())
        if column in STRING_COLUMNS:
            none = np.fromiter((v is None for v in values), bool, len(values))
            unseen = ~missing & ~np.asarray(X[column].isin(categories(column)))
            out[column] = {"nan": float((missing & ~none).mean()), "none": float(none.mean()),
                           "unseen": float(unseen.mean())}
        else:
            out[column] = {"nan": float(missing.mean())}
    return out


def describe_pool(X: Any) -> str:
    """The serving pool in one sentence (measured on ``X``, not restated from the constants)."""
    f = missing_fractions(X)
    s = [f[c] for c in STRING_COLUMNS]
    num = np.mean([f[c]["nan"] for c in NUMERIC_COLUMNS])
    pct = lambda key: f"{100 * np.mean([x[key] for x in s]):.1f}%"  # noqa: E731
    return (f"{len(X):,} generated serving rows (DataFrame, seed {POOL_SEED}): {len(STRING_COLUMNS)} string columns "
            f"({'/'.join(map(str, STRING_COLUMNS.values()))} categories; {pct('nan')} NaN, {pct('none')} None, "
            f"{pct('unseen')} categories unseen at fit time) and {len(NUMERIC_COLUMNS)} float columns "
            f"({100 * num:.1f}% NaN)")


# --------------------------------------------------------------------------- the pipelines


def preprocessor(*, dense: bool = False) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), list(STRING_COLUMNS)),
         ("num", make_pipeline(SimpleImputer(), StandardScaler()), list(NUMERIC_COLUMNS))],
        **({"sparse_threshold": 0.0} if dense else {}))


def _fit(estimator: Any, *, dense: bool = False) -> Any:
    from sklearn.pipeline import make_pipeline

    X, y = training_data()
    return make_pipeline(preprocessor(dense=dense), estimator).fit(X, y)


def train_hgb() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return _fit(HistGradientBoostingClassifier(max_iter=100, random_state=0), dense=True)


def train_xgb() -> Any:
    import xgboost as xgb

    return _fit(xgb.XGBClassifier(n_estimators=100, max_depth=6, n_jobs=2, random_state=0))


def train_logreg() -> Any:
    from sklearn.linear_model import LogisticRegression

    return _fit(LogisticRegression(max_iter=1000))


def final_estimator(model: Any) -> Any:
    return model.steps[-1][1] if hasattr(model, "steps") else model


# --------------------------------------------------------------------------- batches


def frame_bytes_per_row(X: Any) -> float:
    """Bytes per row of a DataFrame's columns (object columns count their pointers: the strings are shared)."""
    return float(X.memory_usage(index=False, deep=False).sum()) / max(len(X), 1)


def rotating_frames(X: Any, batch: int, n_batches: int, seed: int) -> list[Any]:
    """Like ``tuner.timing.rotating_batches`` for a DataFrame: row slices drawn with replacement, fresh index."""
    rng = np.random.default_rng(seed)
    return [X.iloc[rng.integers(0, len(X), size=batch)].reset_index(drop=True) for _ in range(n_batches)]
