"""scikit-learn frontend: fitted estimators and pipelines -> :class:`~strategies.model.ConvertedModel`.

One converter per estimator class (``STEPS``, looked up by class name for classes
defined in scikit-learn; subclasses are refused, as they may predict otherwise).
A converter adds its operators to a :class:`~._graph.Builder` and returns the value
it produces; compositions (``Pipeline``, ``ColumnTransformer``, ``FeatureUnion``,
searches) call the converters of their parts, so the result is a graph.  String
categories become input codes (:mod:`strategies.inputs`).

Semantics follow the installed scikit-learn's prediction code (checked against 1.9):

* ``tree_``-based trees (decision trees, forests, gradient boosting, isolation
  forests) cast ``X`` to float32 and test ``x32 <= threshold64``; NaN follows
  ``missing_go_to_left``.  Classifier leaves already hold the class fractions
  that ``predict_proba`` returns.
* HistGradientBoosting compares in float64.  With categorical features its
  input first goes through an ``OrdinalEncoder``: a value that is not exactly
  one of the training categories is *unknown* and takes the missing-value
  branch, and inf in a categorical column is rejected.
* Linear models compute ``X @ coef.T + intercept`` in float64.

Private attributes are read where scikit-learn keeps the fitted state there
(``_predictors``, ``_loss``, ``_raw_predict_init``, ...).  A model or option the
IR cannot reproduce raises :class:`~strategies.ground.errors.UnsupportedModelError`.
Inputs on which the IR still differs (each logged or documented where it arises):
a non-integer value in a HistGradientBoosting categorical column (the IR floors
it); float32 input to transformers or to linear models fitted on float32 data
(scikit-learn then computes in float32, the IR in float64); Normalizer rows with
a norm below ``10 * eps``; one-vs-rest rows whose probabilities all underflow.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from sklearn.utils.validation import check_is_fitted

from ...head import Head
from ...model import ConvertedModel
from . import (_compose, _decomposition, _encoders, _ensembles, _expansions, _linear, _mixture, _mlp,  # noqa: F401
               _naive_bayes, _neighbors, _preprocessing, _svm, _trees)
from ._common import logger, name_of, require, unsupported
from ._graph import Builder, Converter, Value, legacy

_TREES = {  # decision trees and forests: _trees.STEPS
    **dict.fromkeys(["GradientBoostingClassifier", "GradientBoostingRegressor"], _trees._gradient_boosting),
    "IsolationForest": _trees._isolation_forest,
}
_LINEAR = {
    **dict.fromkeys(["LogisticRegression", "LogisticRegressionCV", "SGDClassifier", "LinearSVC", "RidgeClassifier",
                     "RidgeClassifierCV", "Perceptron", "PassiveAggressiveClassifier"], _linear._linear_classifier),
    **dict.fromkeys(["LinearRegression", "Ridge", "RidgeCV", "Lasso", "LassoCV", "ElasticNet", "ElasticNetCV",
                     "Lars", "LarsCV", "LassoLars", "LassoLarsCV", "LassoLarsIC", "OrthogonalMatchingPursuit",
                     "OrthogonalMatchingPursuitCV", "MultiTaskLasso", "MultiTaskLassoCV", "MultiTaskElasticNet",
                     "MultiTaskElasticNetCV", "BayesianRidge", "ARDRegression", "HuberRegressor",
                     "TheilSenRegressor", "QuantileRegressor", "SGDRegressor", "LinearSVR",
                     "PassiveAggressiveRegressor"], _linear._linear_regressor),
}
STEPS: dict[str, Converter] = {
    **{name: legacy(fn) for name, fn in {**_TREES, **_LINEAR}.items()},
    # inf is refused in the categorical columns only, as scikit-learn does: a graph converter
    **dict.fromkeys(["HistGradientBoostingClassifier", "HistGradientBoostingRegressor"],
                    _trees.hist_gradient_boosting),
    **dict.fromkeys(["PCA", "IncrementalPCA", "TruncatedSVD"], legacy(_linear._projection)),
    "OneVsRestClassifier": legacy(_linear._one_vs_rest),
    **dict.fromkeys(["StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler"],
                    legacy(_preprocessing._scaler)),
    "Normalizer": legacy(_preprocessing._normalizer),
    "SimpleImputer": _preprocessing.simple_imputer,
    "MissingIndicator": _preprocessing.missing_indicator,
    "Binarizer": _preprocessing.binarizer,
    **dict.fromkeys(_preprocessing.SELECTORS, _preprocessing.selector),
    "OneHotEncoder": _encoders.one_hot_encoder,
    "OrdinalEncoder": _encoders.ordinal_encoder,
    "TargetEncoder": _encoders.target_encoder,
    "Pipeline": _compose.pipeline,
    "ColumnTransformer": _compose.column_transformer,
    "FeatureUnion": _compose.feature_union,
    "FunctionTransformer": _compose.function_transformer,
    **dict.fromkeys(["GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV"],
                    _compose.search_cv),
    **_expansions.STEPS,
    **_linear.STEPS,
    **_mlp.STEPS,
    **_naive_bayes.STEPS,
    **_neighbors.STEPS,
    **_mixture.STEPS,
    **_svm.STEPS,
    **_ensembles.STEPS,
    **_trees.STEPS,
    **_decomposition.STEPS,
}
# estimators of other libraries that may sit inside scikit-learn compositions
FOREIGN = ("xgboost", "lightgbm")


def register_step(names: list[str] | str, fn: Converter) -> None:
    """Add a converter for one or more scikit-learn class names."""
    for n in [names] if isinstance(names, str) else names:
        STEPS[n] = fn


def convert_step(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """Add ``model`` (fitted) reading ``x`` to the graph being built; returns its output and head."""
    cls = type(model)
    lib = cls.__module__.split(".")[0]
    if lib in FOREIGN:
        return _compose.foreign(model, b, x)
    fn = STEPS.get(cls.__name__) if lib == "sklearn" else None
    if fn is None:
        raise unsupported(model, "it is not a supported estimator type (subclasses of supported "
                          "types are not accepted either, as they may change how they predict)")
    check_is_fitted(model)
    return fn(model, b, x)


def _first(model: Any) -> Any:
    """The estimator that sees a pipeline's input (pipelines delegate ``n_features_in_`` to it)."""
    if type(model).__name__ == "Pipeline":
        active = [est for _, est in model.steps if not _compose._is_skip(est)]
        return _first(active[0]) if active else model
    return model


def _n_features(model: Any) -> int:
    if type(model).__name__ == "LabelEncoder":
        return 1
    n = getattr(_first(model), "n_features_in_", None)
    require(n is not None or not callable(getattr(_first(model), "kernel", None)), model,
            "its kernel is a Python callable (computed in Python at predict time; scikit-learn keeps no "
            "n_features_in_ then); supported: the named kernels, or kernel='precomputed' with the kernel matrix as X")
    require(n is not None, model, "it has no n_features_in_ (is it fitted?)")
    return int(n)


def convert_model(model: Any) -> ConvertedModel:
    """Convert a fitted scikit-learn estimator, transformer or composition."""
    check_is_fitted(model)
    names = getattr(_first(model), "feature_names_in_", None)
    b = Builder(_n_features(model), None if names is None else tuple(str(n) for n in names), convert=convert_step)
    x = b.input()
    if type(model).__name__ == "LabelEncoder" and type(model).__module__.startswith("sklearn."):
        out, head = _encoders.label_encoder(model, b, x)
        spec = b.spec()
        spec = type(spec)(spec.n_features, spec.allow_nan, spec.allow_inf, None, spec.columns, ndim=1)
    else:
        out, head = convert_step(model, b, x)
        spec = b.spec()
    head = head or Head("transformer", ("transform",), squeeze=False)
    if "kneighbors" in head.methods and not hasattr(model, "kneighbors"):  # a pipeline or search ending in KNN
        head = replace(head, methods=tuple(m for m in head.methods if m != "kneighbors"))
    converted = ConvertedModel(b.graph(out), head, spec, name_of(model))
    logger.debug("converted %s", converted.summary())
    return converted


CONVERTERS: dict[str, Callable[[Any], ConvertedModel]] = {
    **dict.fromkeys(STEPS, convert_model),
    "LabelEncoder": convert_model,
}
