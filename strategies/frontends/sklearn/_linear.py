"""Linear scikit-learn models (``X @ coef.T + intercept`` in float64)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...head import Head
from ...ir import Linear, PostTransform
from ._common import Step, classifier_head, logger, name_of, require
from ._graph import legacy


def _linear_op(model: Any, post: PostTransform = PostTransform()) -> Linear:
    if np.asarray(model.coef_).dtype == np.float32:
        logger.warning("%s was fitted on float32 data: for float32 input scikit-learn computes in float32, "
                       "the converted model in float64", name_of(model))
    coef = np.asarray(model.coef_, dtype=np.float64)
    return Linear(coef=np.atleast_2d(coef), intercept=model.intercept_, post_transform=post)


def _linear_classifier(model: Any) -> Step:
    methods: tuple[str, ...] = ("predict", "decision_function")
    binary = len(model.classes_) == 2
    post = PostTransform()
    kind = type(model).__name__
    if kind in ("LogisticRegression", "LogisticRegressionCV"):
        methods += ("predict_proba",)
        post = PostTransform("sigmoid" if binary else "softmax")
    elif kind == "SGDClassifier":
        if model.loss == "log_loss":
            methods += ("predict_proba",)
            post = PostTransform("sigmoid" if binary else "ovr_normalize")
        elif model.loss == "modified_huber":
            methods += ("predict_proba",)
            post = PostTransform("modified_huber")
    head = classifier_head(model, methods, "raw_gt0")
    return Step((_linear_op(model, post),), head, "reject", "reject")


def _linear_regressor(model: Any) -> Step:
    squeeze = np.ndim(model.coef_) == 1
    return Step((_linear_op(model),), Head("regressor", ("predict",), squeeze=squeeze), "reject", "reject")


def _glm_regressor(model: Any) -> Step:
    """PoissonRegressor / GammaRegressor / TweedieRegressor: ``link.inverse(X @ coef + intercept)``."""
    link = type(model._base_loss.link).__name__
    posts = {"IdentityLink": PostTransform(), "LogLink": PostTransform("exp")}
    require(link in posts, model, f"its link is {link}; expected IdentityLink or LogLink")
    return Step((_linear_op(model, posts[link]),), Head("regressor", ("predict",)), "reject", "reject")


def _projection(model: Any) -> Step:
    """PCA / IncrementalPCA / TruncatedSVD ``transform``: a linear map (centring and whitening folded in)."""
    comp = np.asarray(model.components_, dtype=np.float64)
    mean = np.asarray(getattr(model, "mean_", None) if getattr(model, "mean_", None) is not None
                      else np.zeros(comp.shape[1]), dtype=np.float64)
    coef, intercept = comp, -(mean[None, :] @ comp.T)[0]
    if getattr(model, "whiten", False):
        scale = np.sqrt(np.asarray(model.explained_variance_, dtype=np.float64))
        scale[scale < np.finfo(np.float64).eps] = np.finfo(np.float64).eps
        coef, intercept = coef / scale[:, None], intercept / scale
    return Step((Linear(coef=coef, intercept=intercept),), None, "reject", "reject")


def _one_vs_rest(model: Any) -> Step:
    """OneVsRestClassifier over linear binary classifiers: their scores side by side; probabilities are the
    positive-class probabilities normalised over the classes, as scikit-learn computes them."""
    require(not getattr(model, "multilabel_", False), model, "multilabel targets are not supported")
    require(len(model.classes_) > 2, model, "binary one-vs-rest is the estimator itself: convert that")
    kinds = {type(e).__name__ for e in model.estimators_}
    require(kinds <= {"LogisticRegression", "LogisticRegressionCV"}, model,
            f"its estimators are {sorted(kinds)}; only logistic regressions are supported")
    coef = np.vstack([np.asarray(e.coef_, dtype=np.float64).reshape(1, -1) for e in model.estimators_])
    intercept = np.array([float(np.ravel(e.intercept_)[0]) for e in model.estimators_])
    op = Linear(coef=coef, intercept=intercept, post_transform=PostTransform("ovr_normalize"))
    head = classifier_head(model, ("predict", "predict_proba", "decision_function"), "argmax")
    return Step((op,), head, "reject", "reject")


STEPS: dict = {  # class name -> converter(model, b, x): the generalized linear models (the rest: ``__init__``)
    **dict.fromkeys(["PoissonRegressor", "GammaRegressor", "TweedieRegressor"], legacy(_glm_regressor)),
}
