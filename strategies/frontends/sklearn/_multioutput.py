"""MultiOutputRegressor / MultiOutputClassifier / RegressorChain / ClassifierChain, composed of their members.

* ``MultiOutputRegressor``: the members' predictions side by side (tree-ensemble members as one ensemble
  with an output per target, linear members as one linear model).
* ``MultiOutputClassifier``: the members' labels side by side (numeric labels), then their probabilities:
  ``predict_proba`` is a list of one array per output, as scikit-learn returns it (head splits).
* ``RegressorChain`` / ``ClassifierChain``: member ``k`` reads ``X`` and the earlier members' outputs
  (``chain_method_``: ``predict``, ``predict_proba`` or ``decision_function``), and the outputs are put back
  in target order.  A ``ClassifierChain``'s ``predict``, ``predict_proba`` and ``decision_function`` are three
  blocks of one value (head views); its head is a regressor's, as its labels are 0 / 1 floats.
  ``chain_method="predict_log_proba"`` is refused.  The chains refuse NaN and inf, as scikit-learn does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...head import Head
from ._common import logger, name_of, require
from ._compose import _concat
from ._graph import Builder, Value
from ._members import Member, numeric, side_by_side_linear, side_by_side_trees, where

def multi_output_regressor(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    members = [Member.convert(e, b, x, where(model, f"estimator {i}"), "regressor")
               for i, e in enumerate(model.estimators_)]
    out = side_by_side_trees(b, x, members) or side_by_side_linear(b, x, members)
    if out is None:
        out = _concat(b, [m.value("predict") for m in members], x, False)
    return out, Head("regressor", ("predict",), squeeze=False)


def multi_output_classifier(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    labels, members = [], []
    for i, e in enumerate(model.estimators_):
        m = Member.convert(e, b, x, where(model, f"estimator {i}"), "classifier")
        cls = numeric(model, m.head.classes, f"the classes of output {i}")
        labels.append(m.label(np.zeros(len(cls), np.int64), cls, 1))
        members.append(m)
    n = len(labels)
    if not (hasattr(model, "predict_proba") and all("predict_proba" in m.head.methods for m in members)):
        logger.info("%s: predict_proba is not converted (a member has none)", name_of(model))
        return _concat(b, labels, x, False), Head("regressor", ("predict",), squeeze=False)
    probas = [m.proba() for m in members]
    bounds = tuple(int(v) for v in np.cumsum([0] + [p.width for p in probas]))
    head = Head("regressor", ("predict", "predict_proba"), squeeze=False,
                views=(("predict", 0, n), ("predict_proba", n, n + bounds[-1])),
                splits=(("predict_proba", bounds),))
    return _concat(b, labels + probas, x, False), head


def _chain(model: Any, b: Builder, x: Value, task: str) -> tuple[list[Value], list[Member]]:
    b.refuse(x, ["nan", "inf"], model)  # the chain checks its input
    feeds: list[Value] = []
    members = []
    method = getattr(model, "chain_method_", "predict")
    require(method in ("predict", "predict_proba", "decision_function"), model,
            f"chain_method={method!r} is not supported (expected predict, predict_proba or decision_function)")
    for k, est in enumerate(model.estimators_):
        xa = _concat(b, [x, *feeds], x, False) if feeds else x
        m = Member.convert(est, b, xa, where(model, f"estimator {k}"), task)
        members.append(m)
        if k < len(model.estimators_) - 1:
            feeds.append(_chain_output(m, method))
    return feeds, members


def _chain_output(m: Member, method: str) -> Value:
    """One column of the member's ``method`` as scikit-learn's ``_get_response_values`` gives it."""
    if m.head.task == "regressor":
        return m.value("predict")
    if method == "predict":
        cls = numeric(m.model, m.head.classes, "its classes")
        return m.label(np.zeros(len(cls), np.int64), cls, 1)
    v = m.value(method)
    require(len(m.head.classes) == 2, m.model, "a chain needs binary classifiers")
    return m.b.gather(v, [1]) if v.width == 2 else v


def _in_order(b: Builder, model: Any, parts: list[Value], x: Value) -> Value:
    chain = _concat(b, parts, x, False)
    inv = np.empty(len(model.order_), dtype=np.int64)
    inv[np.asarray(model.order_)] = np.arange(len(model.order_))
    return b.gather(chain, inv)


def regressor_chain(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    feeds, members = _chain(model, b, x, "regressor")
    last = members[-1].value("predict")
    return _in_order(b, model, feeds + [last], x), Head("regressor", ("predict",), squeeze=False)


def classifier_chain(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    feeds, members = _chain(model, b, x, "classifier")
    method = getattr(model, "chain_method_", "predict")
    blocks, methods = [], []
    for out_method in ("predict", "predict_proba", "decision_function"):
        if out_method != "predict" and not hasattr(model, out_method):
            continue
        if not all(out_method in m.head.methods for m in members):
            logger.info("%s: %s is not converted (a member's is not)", name_of(model), out_method)
            continue
        parts = [feeds[k] if out_method == method else _chain_output(m, out_method)
                 for k, m in enumerate(members[:-1])]
        blocks.append(_in_order(b, model, parts + [_chain_output(members[-1], out_method)], x))
        methods.append(out_method)
    n = len(model.order_)
    views = tuple((m, i * n, (i + 1) * n) for i, m in enumerate(methods))
    return _concat(b, blocks, x, False), Head("regressor", tuple(methods), squeeze=False, views=views)


STEPS: dict = {  # class name -> converter(model, b, x) -> (Value, Head)
    "MultiOutputRegressor": multi_output_regressor,
    "MultiOutputClassifier": multi_output_classifier,
    "RegressorChain": regressor_chain,
    "ClassifierChain": classifier_chain,
}
