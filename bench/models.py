"""The model zoo: the four shared Treebeard XGBoost models plus synthetic models trained reproducibly here.

Synthetic models are trained on data made in code (fixed seeds, sized so that
training takes seconds) and cached under ``bench/results/models/`` so reruns
skip training.  Every model comes with a pool of float32 input rows: the
sampled test rows for higgs and airline, rows drawn from the model's own split
points for epsilon and bosch, held-out rows of the generator for the others.
The mixed-type pipelines (``pipe_*``, see ``bench/pipelines.py``) take a pandas
DataFrame with string and float columns instead: their pool is a DataFrame.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
TREEBEARD = REPO.parent / "shared" / "data" / "treebeard"
DEFAULT_CACHE = REPO / "bench" / "results" / "models"
POOL_ROWS = 8192
N_FEATURES = 32


@dataclass(frozen=True)
class ModelSpec:
    """One suite model: how to get it, and the largest batch size worth timing for it."""

    name: str
    description: str
    family: str  # xgboost | lightgbm | sklearn
    max_batch: int | None = None
    max_batch_reason: str = ""
    train: Callable[[], Any] | None = field(default=None, repr=False, compare=False)  # synthetic models only
    params: str = ""  # what the cache key hashes for synthetic models
    frame: bool = False  # inputs are a pandas DataFrame (string and float columns), not a float32 array
    batch_sizes: tuple[int, ...] | None = None  # the only batch sizes timed for this model (None: all asked for)


@dataclass
class SuiteModel:
    """A loaded suite model: the native object, the file it was loaded from, and input rows."""

    spec: ModelSpec
    model: Any
    path: Path
    X: Any  # float32 C-contiguous np.ndarray; a pandas DataFrame when ``spec.frame``
    data: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])


# --------------------------------------------------------------------------- synthetic data


def make_data(n: int, seed: int, *, nan: float = 0.0, f: int = N_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of ``f`` float32 features and a continuous nonlinear target (before labelling)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    X[:, 1] = np.round(X[:, 1], 1)  # a feature with ties, so thresholds are hit exactly
    X[:, 2] = rng.integers(0, 12, size=n)  # an integer-coded feature
    z = X.astype(np.float64)
    s = (z[:, 0] * z[:, 1] + np.sin(2 * z[:, 3]) + 0.5 * z[:, 4] - 0.3 * z[:, 5] ** 2
         + 0.2 * z[:, 6:16].sum(1) + 0.1 * (z[:, 2] % 3) + rng.normal(scale=0.4, size=n))
    if nan:
        X[rng.random(X.shape) < nan] = np.nan
    return X, s


def _classes(s: np.ndarray, k: int) -> np.ndarray:
    return np.digitize(s, np.quantile(s, np.linspace(0, 1, k + 1)[1:-1]))


def _rf() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    X, s = make_data(20_000, seed=1)
    return RandomForestClassifier(n_estimators=500, max_depth=8, random_state=0, n_jobs=-1).fit(X, _classes(s, 2))


def _rf_deep() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    X, s = make_data(20_000, seed=2)
    return RandomForestClassifier(n_estimators=100, max_depth=16, random_state=0, n_jobs=-1).fit(X, _classes(s, 2))


def _extra_trees() -> Any:
    from sklearn.ensemble import ExtraTreesRegressor

    X, s = make_data(20_000, seed=3)
    return ExtraTreesRegressor(n_estimators=200, max_depth=10, random_state=0, n_jobs=-1).fit(X, s)


def _gradient_boosting() -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    X, s = make_data(10_000, seed=4)
    return GradientBoostingClassifier(n_estimators=200, max_depth=5, random_state=0).fit(X, _classes(s, 2))


def _hist_gradient_boosting() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, s = make_data(20_000, seed=5, nan=0.02)
    return HistGradientBoostingClassifier(max_iter=200, max_leaf_nodes=31, early_stopping=False,
                                          random_state=0).fit(X, _classes(s, 2))


def _lightgbm() -> Any:
    import lightgbm as lgb

    X, s = make_data(20_000, seed=6, nan=0.02)
    return lgb.LGBMClassifier(n_estimators=500, num_leaves=31, learning_rate=0.05, random_state=0,
                              verbose=-1).fit(X, _classes(s, 2))


def _xgb_multiclass() -> Any:
    import xgboost as xgb

    X, s = make_data(20_000, seed=7, nan=0.02)
    return xgb.XGBClassifier(n_estimators=100, max_depth=6, learning_rate=0.1, random_state=0,
                             tree_method="hist").fit(X, _classes(s, 8))


def _logreg() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, s = make_data(20_000, seed=8)
    X = X * np.linspace(0.5, 20, X.shape[1], dtype=np.float32) + 3  # unscaled columns, so the scaler matters
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, _classes(s, 4))


def _mlp() -> Any:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, s = make_data(20_000, seed=9)
    return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=60,
                                                         random_state=0)).fit(X, _classes(s, 4))


def _svc_rbf() -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X, s = make_data(5_000, seed=10)
    return make_pipeline(StandardScaler(), SVC(kernel="rbf", C=1.0)).fit(X, _classes(s, 2))


def _knn() -> Any:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, s = make_data(5_000, seed=11)
    return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5)).fit(X, _classes(s, 4))


_PAIRWISE = "every row is compared with 5,000 fitted rows: 100,000-row calls take seconds for every system"


def _pipeline_specs() -> tuple[ModelSpec, ...]:
    """The mixed-type pipelines: ColumnTransformer (OneHotEncoder on 6 string columns, SimpleImputer + StandardScaler
    on 8 float columns) and a classifier, fitted on 50,000 DataFrame rows made by ``bench/pipelines.py``."""
    from . import pipelines as p

    data = (f"gen{p.GENERATOR_VERSION} {p.TRAIN_ROWS} s{p.TRAIN_SEED} w{p.WORLD_SEED}")
    prep = "ColumnTransformer(OneHotEncoder(ignore) x 6 str, SimpleImputer+StandardScaler x 8 float)"
    common = dict(family="sklearn", frame=True, batch_sizes=p.BATCH_SIZES)
    return (
        ModelSpec("pipe_hgb", f"{prep}, dense output + HistGradientBoostingClassifier (100 iterations), binary",
                  train=p.train_hgb, params=f"pipe hgb 100 dense {data}", **common),
        ModelSpec("pipe_xgb", f"{prep}, sparse output + XGBClassifier (100 trees, depth 6), binary",
                  train=p.train_xgb, params=f"pipe xgb 100 d6 {data}", **common),
        ModelSpec("pipe_logreg", f"{prep}, sparse output + LogisticRegression, binary",
                  train=p.train_logreg, params=f"pipe lr {data}", **common),
    )


SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec("higgs", "Treebeard higgs: XGBoost, 100 trees, depth 8, 28 features", "xgboost"),
        ModelSpec("airline", "Treebeard airline: XGBoost, 100 trees, depth 8, 13 features", "xgboost"),
        ModelSpec("epsilon", "Treebeard epsilon: XGBoost, 100 trees, depth 8, 2000 features", "xgboost"),
        ModelSpec("bosch", "Treebeard bosch: XGBoost, 100 trees, depth 8, 968 features", "xgboost"),
        ModelSpec("rf", "RandomForestClassifier: 500 trees, depth 8, binary", "sklearn", train=_rf,
                  params="rf 500 d8 20k s1"),
        ModelSpec("rf_deep", "RandomForestClassifier: 100 trees, depth 16, binary", "sklearn", train=_rf_deep,
                  params="rf 100 d16 20k s2"),
        ModelSpec("extra_trees", "ExtraTreesRegressor: 200 trees, depth 10", "sklearn", train=_extra_trees,
                  params="et 200 d10 20k s3"),
        ModelSpec("gbdt", "GradientBoostingClassifier: 200 trees, depth 5, binary", "sklearn",
                  train=_gradient_boosting, params="gb 200 d5 10k s4"),
        ModelSpec("hgb", "HistGradientBoostingClassifier: 200 trees, 31 leaves, binary, 2% NaN", "sklearn",
                  train=_hist_gradient_boosting, params="hgb 200 l31 20k s5 nan"),
        ModelSpec("lightgbm", "LGBMClassifier: 500 trees, 31 leaves, binary, 2% NaN", "lightgbm", train=_lightgbm,
                  params="lgbm 500 l31 20k s6 nan"),
        ModelSpec("xgb_multiclass", "XGBClassifier: 8 classes x 100 rounds (800 trees), depth 6, 2% NaN",
                  "xgboost", train=_xgb_multiclass, params="xgb 8c 100 d6 20k s7 nan"),
        ModelSpec("logreg", "StandardScaler + LogisticRegression pipeline, 4 classes", "sklearn", train=_logreg,
                  params="lr 4c 20k s8"),
        ModelSpec("mlp", "StandardScaler + MLPClassifier (128, 64) relu, 4 classes", "sklearn", train=_mlp,
                  params="mlp 128-64 4c 20k s9"),
        ModelSpec("svc_rbf", "StandardScaler + SVC (rbf kernel), binary, 5,000 training rows", "sklearn",
                  train=_svc_rbf, params="svc rbf 5k s10", max_batch=10_000, max_batch_reason=_PAIRWISE),
        ModelSpec("knn", "StandardScaler + KNeighborsClassifier (k=5), 4 classes, 5,000 training rows", "sklearn",
                  train=_knn, params="knn 5 4c 5k s11", max_batch=10_000, max_batch_reason=_PAIRWISE),
        *_pipeline_specs(),
    )
}
# input pools are seeded by rank in this order (models added later go last, so earlier pools stay as they were)
_POOL_ORDER = ("airline", "bosch", "epsilon", "extra_trees", "gbdt", "hgb", "higgs", "lightgbm", "logreg", "rf",
               "rf_deep", "xgb_multiclass", "mlp", "svc_rbf", "knn")

SMALL_MODEL = "logreg"  # trains in a second: the smoke test's model


# --------------------------------------------------------------------------- loading


def _versions() -> str:
    import lightgbm
    import sklearn
    import xgboost

    return f"sklearn {sklearn.__version__} xgboost {xgboost.__version__} lightgbm {lightgbm.__version__}"


def cache_path(spec: ModelSpec, cache_dir: Path) -> Path:
    """Where a synthetic model is cached: the key covers its parameters and the library versions."""
    key = hashlib.sha256(f"{spec.params}|{_versions()}".encode()).hexdigest()[:10]
    return Path(cache_dir) / f"{spec.name}-{key}.joblib"


def model_path(name: str, cache_dir: Path = DEFAULT_CACHE) -> Path:
    """The model file for ``name`` (training and caching a synthetic model first when needed)."""
    spec = SPECS[name]
    if spec.train is None:
        path = TREEBEARD / f"{name}_xgb_model_save.json"
        if not path.exists():
            raise FileNotFoundError(f"the shared Treebeard model {path} is missing (it lives in ../shared/data)")
        return path
    path = cache_path(spec, cache_dir)
    if not path.exists():
        import joblib

        log.info("training %s (cached at %s)", name, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        joblib.dump(spec.train(), tmp)
        tmp.replace(path)
    return path


def load_native(name: str, cache_dir: Path = DEFAULT_CACHE) -> Any:
    """The native model object (an XGBoost Booster for the Treebeard models)."""
    path = model_path(name, cache_dir)
    if path.suffix == ".json":
        import xgboost as xgb
        import warnings

        booster = xgb.Booster()
        with warnings.catch_warnings():  # "saved before XGBoost 1.6": the shared files are what they are
            warnings.simplefilter("ignore")
            booster.load_model(str(path))
        return booster
    import joblib

    return joblib.load(path)


def input_rows(name: str, model: Any, n: int | None = None) -> tuple[Any, str]:
    """A pool of ``n`` input rows for ``name`` (float32; a DataFrame for the pipelines) and a sentence saying where
    they come from.  ``n`` defaults to ``POOL_ROWS`` (``pipelines.POOL_ROWS`` for the pipelines)."""
    spec = SPECS[name]
    if spec.frame:
        from . import pipelines

        X = pipelines.serving_pool(n or pipelines.POOL_ROWS)
        return X, pipelines.describe_pool(X)
    n = n or POOL_ROWS
    if spec.train is not None:
        seed = 1000 + _POOL_ORDER.index(name)
        X, _ = make_data(n, seed=seed, nan=0.02 if "NaN" in spec.description else 0.0)
        if name == "logreg":
            X = X * np.linspace(0.5, 20, X.shape[1], dtype=np.float32) + 3
        return np.ascontiguousarray(X, dtype=np.float32), "held-out rows of the generator the model was trained on"
    n_features = int(model.num_features())
    csv = TREEBEARD / f"{name}_xgb_model_save.json.test.sampled.csv"
    if csv.exists():
        X = np.loadtxt(csv, delimiter=",", dtype=np.float64)
        if X.shape[1] == n_features + 1:
            X = X[:, :n_features]  # the last column is the label
        if X.shape[1] != n_features:
            raise ValueError(f"{csv.name} has {X.shape[1]} columns, the model {n_features} features")
        return np.ascontiguousarray(X, dtype=np.float32), f"the {len(X):,} sampled test rows ({csv.name})"
    import strategies
    from strategies.sampling import sample_inputs

    conv = strategies.convert(model)
    X = sample_inputs(conv, n, seed=1, special_fraction=0.1, nan=True, inf=False)
    return (np.ascontiguousarray(X, dtype=np.float32),
            "synthetic rows drawn from the model's split points (10% exact thresholds, neighbours and NaN)")


def load(name: str, cache_dir: Path = DEFAULT_CACHE, *, rows: int | None = None) -> SuiteModel:
    """Model ``name`` with its input pool (``rows`` rows; by default the model's usual pool size)."""
    if name not in SPECS:
        raise KeyError(f"unknown suite model {name!r}; choose from {', '.join(SPECS)}")
    model = load_native(name, cache_dir)
    X, data = input_rows(name, model, rows)
    return SuiteModel(SPECS[name], model, model_path(name, cache_dir), X, data)
