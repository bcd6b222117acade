"""Naive Bayes classifiers: the joint log-likelihood of every class, then its softmax.

``predict`` is the first arg-max of the joint log-likelihood (``raw``), ``predict_proba`` its
softmax (``exp(jll - logsumexp(jll))``, equal to scikit-learn's within rounding).

* ``GaussianNB``: the ``gaussian_nb`` op, formed as ``_joint_log_likelihood`` forms it.
* ``MultinomialNB``: ``X @ feature_log_prob_.T + class_log_prior_``, a ``linear`` op.
* ``ComplementNB`` (``norm`` True or False: it only changes ``feature_log_prob_``):
  ``X @ feature_log_prob_.T``, a ``linear`` op.
* ``BernoulliNB``: ``binarize`` (when its threshold is not None), then
  ``X @ (flp - neg).T + (class_log_prior_ + neg.sum(1))`` with ``neg = log(1 - exp(flp))``: a
  ``linear`` op with scikit-learn's own coefficients.
* ``CategoricalNB``: each feature's categories one-hot (a ``lookup``), then a ``linear`` op holding
  every ``feature_log_prob_[i]`` side by side.  scikit-learn casts the input to int (truncating) and
  fails on categories beyond those it was fitted with; the converted model accepts exactly the
  integral categories ``0 .. n_categories_[i] - 1`` and refuses every other value (also the
  non-integral ones scikit-learn truncates), naming the column.

All refuse NaN and inf as scikit-learn's input check does.  Models whose log-probabilities are not
finite (``alpha=0`` with ``force_alpha=True`` and a zero count) are refused: ``0 * -inf`` would be NaN.
With float32 input GaussianNB fitted on float32 data computes in float32; the op in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...head import Head
from ...ir import Linear, PostTransform
from ...ir.columns import Binarize, Lookup
from ...ir.naive_bayes import GaussianNB
from ._common import classifier_head, logger, name_of, require
from ._graph import Builder, Col, Value, union_taint, without

SOFTMAX = PostTransform("softmax")


def _head(model: Any) -> Head:
    # raw_gt0 with two or more columns: the arg-max of raw (the joint log-likelihood), as scikit-learn
    return classifier_head(model, ("predict", "predict_proba"), "raw_gt0")


def _start(model: Any, b: Builder, x: Value) -> None:
    n = int(model.n_features_in_)
    require(x.width == n, model, f"it reads {n} features, its input has {x.width}")
    b.refuse(x, ["nan", "inf"], model)


def _finite(model: Any, **arrays: np.ndarray) -> None:
    for name, a in arrays.items():
        require(bool(np.all(np.isfinite(a))), model, f"its {name} has non-finite entries (a zero count with "
                "alpha=0?), which the converted model cannot reproduce")


def _cols(x: Value, width: int) -> list[Col]:
    return [Col(taint=without(union_taint(x.cols), ["nan", "inf"]))] * width


def _linear(model: Any, b: Builder, x: Value, coef: np.ndarray, intercept: np.ndarray) -> tuple[Value, Head]:
    _finite(model, coefficients=coef, intercepts=intercept)
    op = Linear(coef=coef, intercept=intercept, post_transform=SOFTMAX)
    return b.add(op, [x], _cols(x, coef.shape[0])), _head(model)


def gaussian_nb(model: Any, b: Builder, x: Value) -> tuple[Value, Head]:
    _start(model, b, x)
    if np.asarray(model.theta_).dtype == np.float32:
        logger.warning("%s was fitted on float32 data: for float32 input scikit-learn computes in float32, "
                       "the converted model in float64", name_of(model))
    theta = np.asarray(model.theta_, dtype=np.float64)
    var = np.asarray(model.var_, dtype=np.float64)
    prior = np.asarray(model.class_prior_)
    log_prior = np.array([np.log(prior[i]) for i in range(theta.shape[0])], dtype=np.float64)
    var_own = np.asarray(model.var_)
    norm = np.array([-0.5 * np.sum(np.log(2.0 * np.pi * var_own[i, :])) for i in range(theta.shape[0])],
                    dtype=np.float64)
    _finite(model, var_=var, theta_=theta)
    require(bool(np.all(var > 0)), model, "its var_ has entries <= 0")
    op = GaussianNB(theta=theta, var=var, log_prior=log_prior, norm=norm, post_transform=SOFTMAX)
    return b.add(op, [x], _cols(x, theta.shape[0])), _head(model)


def multinomial_nb(model: Any, b: Builder, x: Value) -> tuple[Value, Head]:
    _start(model, b, x)
    return _linear(model, b, x, np.asarray(model.feature_log_prob_, np.float64),
                   np.asarray(model.class_log_prior_, np.float64))


def complement_nb(model: Any, b: Builder, x: Value) -> tuple[Value, Head]:
    _start(model, b, x)
    flp = np.asarray(model.feature_log_prob_, np.float64)
    return _linear(model, b, x, flp, np.zeros(flp.shape[0]))


def bernoulli_nb(model: Any, b: Builder, x: Value) -> tuple[Value, Head]:
    _start(model, b, x)
    flp = np.asarray(model.feature_log_prob_, np.float64)
    with np.errstate(divide="ignore"):
        neg = np.log(1 - np.exp(flp))
    coef = flp - neg
    intercept = np.asarray(model.class_log_prior_, np.float64) + neg.sum(axis=1)
    if model.binarize is not None:
        x = b.add(Binarize(x.width, float(model.binarize)), [x], _cols(x, x.width))
    return _linear(model, b, x, coef, intercept)


def categorical_nb(model: Any, b: Builder, x: Value) -> tuple[Value, Head]:
    _start(model, b, x)
    counts = [int(c) for c in np.asarray(model.n_categories_)]
    column, value, target = [], [], []
    for j, n in enumerate(counts):
        col = x.cols[j]
        require(col.kind == "number", model, f"its feature {j} holds strings; CategoricalNB reads integers")
        b.require_known(col, np.arange(n, dtype=np.float64), model)
        column += [j] * n
        value += list(range(n))
        target += list(range(len(target), len(target) + n))
    width = len(target)
    onehot = Lookup(n_features=x.width, column=np.array(column, np.int32), value=np.array(value, np.float64),
                    target=np.array(target, np.int32), weight=np.ones(width), source=np.array(column, np.int32),
                    unknown=np.zeros(width))
    h = b.add(onehot, [x], _cols(x, width))
    coef = np.hstack([np.asarray(f, np.float64) for f in model.feature_log_prob_])
    return _linear(model, b, h, coef, np.asarray(model.class_log_prior_, np.float64))


STEPS: dict = {  # class name -> converter(model, b, x) -> (Value, Head)
    "GaussianNB": gaussian_nb,
    "MultinomialNB": multinomial_nb,
    "ComplementNB": complement_nb,
    "BernoulliNB": bernoulli_nb,
    "CategoricalNB": categorical_nb,
}
