"""Voting, bagging and stacking ensembles, composed of their members' graphs (``_members``).

Combination follows scikit-learn's arithmetic:

* ``VotingClassifier``: soft, ``np.average`` of the members' ``predict_proba`` (weights); hard, the
  weighted ``bincount`` of the members' labels and its arg-max (ties: the lowest class).
  ``VotingRegressor``: ``np.average`` of the predictions.
* ``BaggingClassifier``: the members' ``predict_proba`` on their ``estimators_features_`` added into their
  classes' columns (one vote for the predicted class when the member has no ``predict_proba``), divided
  by ``n_estimators``; ``decision_function`` the mean of the members' (when every member saw every class).
  ``BaggingRegressor``: the mean.  Bagged single trees become one tree ensemble.
* ``StackingClassifier`` / ``StackingRegressor``: each member's ``stack_method_`` output side by side
  (a binary classifier's probabilities without the first column), then ``X`` when ``passthrough``, read
  by the final estimator.

Not converted (the method left out, the reason logged, or the model refused): ``transform`` of voting and
stacking ensembles, ``decision_function`` of a bagging whose members saw only some classes, multilabel
stacking, negative voting weights.  The multi-output estimators and chains are in ``_multioutput``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from sklearn.base import is_classifier

from ...head import Head
from . import _multioutput
from ._common import logger, name_of, require
from ._compose import _concat, _step
from ._graph import Builder, Value
from ._members import Member, average, merged_trees, numeric, voting_weights, where

# --------------------------------------------------------------------------- voting


def voting_classifier(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    names = [n for n, e in model.estimators if e != "drop"]
    k = len(model.classes_)
    members = [Member.convert(e, b, x, where(model, f"estimator {n!r}"), "classifier")
               for n, e in zip(names, model.estimators_)]
    w, total = voting_weights(model, len(members))
    logger.info("%s: transform is not converted", name_of(model))
    if model.voting == "soft":
        parts = [m.proba() for m in members]
        for m, p in zip(members, parts):
            require(p.width == k, model, f"{name_of(m.model)} gives {p.width} probabilities for {k} classes")
        out = average(b, parts, [np.arange(k)] * len(parts), w, k, total)
        return out, Head("classifier", ("predict", "predict_proba"), classes=model.classes_)
    # members predict encoded labels 0 .. k-1: one vote each (its weight) for the predicted class
    votes = [m.label(np.asarray(m.head.classes, np.int64), np.ones(len(m.head.classes)), k) for m in members]
    out = average(b, votes, [np.arange(k)] * len(votes), w, k, 1.0)
    return out, Head("classifier", ("predict",), classes=model.classes_)


def voting_regressor(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    names = [n for n, e in model.estimators if e != "drop"]
    members = [Member.convert(e, b, x, where(model, f"estimator {n!r}"), "regressor")
               for n, e in zip(names, model.estimators_)]
    parts = [m.value("predict") for m in members]
    for m, p in zip(members, parts):
        require(p.width == 1, model, f"{name_of(m.model)} predicts {p.width} targets; voting averages one")
    w, total = voting_weights(model, len(members))
    logger.info("%s: transform is not converted", name_of(model))
    return average(b, parts, [[0]] * len(parts), w, 1, total), Head("regressor", ("predict",))


# --------------------------------------------------------------------------- bagging


def _bagged(model: Any, b: Builder, x: Value, task: str) -> list[Member]:
    out = []
    for i, (e, f) in enumerate(zip(model.estimators_, model.estimators_features_)):
        sub = b.gather(x, f)
        m = Member.convert(e, b, sub, where(model, f"estimator {i}"), task)
        m.source = sub
        out.append(m)
    return out


def bagging_classifier(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    k = len(model.classes_)
    members = _bagged(model, b, x, "classifier")
    parts, targets = [], []
    for m in members:
        cls = np.asarray(m.model.classes_, np.int64)  # bagging fits its members on class indices
        targets.append(cls)
        if hasattr(m.model, "predict_proba"):
            parts.append(m.proba())
        else:  # scikit-learn resorts to voting
            parts.append(m.label(np.arange(len(cls)), np.ones(len(cls)), len(cls)))
    n = float(model.n_estimators)
    proba = merged_trees(b, x, members, model.estimators_features_, k, targets)
    if proba is None:
        proba = average(b, parts, targets, np.ones(len(parts)), k, n)
    head = Head("classifier", ("predict", "predict_proba"), classes=model.classes_)
    if not hasattr(model, "decision_function"):
        return proba, head
    full = all(len(m.model.classes_) == k for m in members)
    if not full or not all("decision_function" in m.head.methods for m in members):
        logger.info("%s: decision_function is not converted (%s)", name_of(model),
                    "a member saw only some classes" if not full else "a member's is not converted")
        return proba, head
    dec = [m.value("decision_function") for m in members]
    width = dec[0].width
    require(all(d.width == width for d in dec), model, "its members' decision functions differ in width")
    decision = average(b, dec, [np.arange(width)] * len(dec), np.ones(len(dec)), width, n)
    out = _concat(b, [proba, decision], x, False)
    views = (("predict", 0, k), ("predict_proba", 0, k), ("decision_function", k, k + width))
    return out, Head("classifier", ("predict", "predict_proba", "decision_function"), classes=model.classes_,
                     views=views)


def bagging_regressor(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    members = _bagged(model, b, x, "regressor")
    parts = [m.value("predict") for m in members]
    width = parts[0].width
    require(all(p.width == width for p in parts), model, "its members predict different numbers of targets")
    n, cols = float(model.n_estimators), [np.arange(width)] * len(parts)
    out = merged_trees(b, x, members, model.estimators_features_, width, cols)
    if out is None:
        out = average(b, parts, cols, np.ones(len(parts)), width, n)
    return out, Head("regressor", ("predict",), squeeze=members[0].head.squeeze)


# --------------------------------------------------------------------------- stacking


def _stacked(model: Any, b: Builder, x: Value, task: str) -> Value:
    names = [n for n, e in model.estimators if e != "drop"]
    estimators = [e for e in model.estimators_ if not (isinstance(e, str) and e == "drop")]
    methods = [m for e, m in zip(model.estimators_, model.stack_method_)
               if not (isinstance(e, str) and e == "drop")]
    binary = task == "classifier" and len(model.classes_) == 2
    parts = []
    for name, est, method in zip(names, estimators, methods):
        is_clf = is_classifier(est)
        m = Member.convert(est, b, x, where(model, f"estimator {name!r}"), "classifier" if is_clf else "regressor")
        if method == "predict_proba":
            v = m.value("predict_proba")
            if binary and v.width == 2:
                v = b.gather(v, [1])
        elif method == "predict" and is_clf:
            cls = numeric(est, m.head.classes, "its classes")
            v = m.label(np.zeros(len(cls), np.int64), cls, 1)
        else:
            require(method in ("predict", "decision_function"), model, f"stack_method {method!r} is not supported")
            v = m.value(method)
        parts.append(v)
    if model.passthrough:
        parts.append(x)
    return _concat(b, parts, x, False)


def stacking_classifier(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    require(not isinstance(model._label_encoder, list), model, "multilabel stacking is not supported")
    meta = _stacked(model, b, x, "classifier")
    out, head = _step(model.final_estimator_, b, meta, where(model, "final_estimator_"))
    require(head is not None and head.task == "classifier" and len(head.classes) == len(model.classes_), model,
            "its final estimator is not a classifier of its classes")
    logger.info("%s: transform is not converted", name_of(model))
    return out, replace(head, classes=model.classes_)  # the final estimator predicts class indices


def stacking_regressor(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    meta = _stacked(model, b, x, "regressor")
    out, head = _step(model.final_estimator_, b, meta, where(model, "final_estimator_"))
    require(head is not None and head.task == "regressor", model, "its final estimator is not a regressor")
    logger.info("%s: transform is not converted", name_of(model))
    return out, head


STEPS: dict = {  # class name -> converter(model, b, x) -> (Value, Head)
    "VotingClassifier": voting_classifier,
    "VotingRegressor": voting_regressor,
    "BaggingClassifier": bagging_classifier,
    "BaggingRegressor": bagging_regressor,
    "StackingClassifier": stacking_classifier,
    "StackingRegressor": stacking_regressor,
    **_multioutput.STEPS,
}
