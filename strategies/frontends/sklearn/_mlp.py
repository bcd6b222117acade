"""MLPClassifier and MLPRegressor: one ``mlp`` op (``coefs_``, ``intercepts_``, the hidden activation),
the output activation as its post-transform.

Classifier: ``softmax`` (multiclass) or ``logistic`` (binary: one output column); ``predict`` is the
probability ``> 0.5`` (binary, as its ``LabelBinarizer`` thresholds) or the first arg-max.  Multilabel
classifiers (``logistic`` output, one column per label): ``predict`` is the int64 indicator matrix
``probability > 0.5``, ``predict_proba`` the probabilities.  Regressor: ``identity`` (or ``exp``
with ``loss="poisson"``), one column per target.  NaN and inf are refused, as scikit-learn's input check
does.  A model fitted on float32 data computes float32 input in float32; the op computes in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...head import Head
from ...ir import PostTransform
from ...ir.mlp import ACTIVATIONS, MLP
from ._common import Step, classifier_head, logger, name_of, require
from ._graph import legacy

_OUT = {"identity": PostTransform(), "logistic": PostTransform("sigmoid"), "softmax": PostTransform("softmax"),
        "exp": PostTransform("exp")}


def _op(model: Any) -> MLP:
    require(model.activation in ACTIVATIONS, model,
            f"its activation is {model.activation!r}; expected one of {list(ACTIVATIONS)}")
    require(model.out_activation_ in _OUT, model,
            f"its output activation is {model.out_activation_!r}; expected one of {list(_OUT)}")
    if np.asarray(model.coefs_[0]).dtype == np.float32:
        logger.warning("%s was fitted on float32 data: for float32 input scikit-learn computes in float32, "
                       "the converted model in float64", name_of(model))
    return MLP(weights=tuple(np.asarray(w, np.float64) for w in model.coefs_),
               biases=tuple(np.asarray(b, np.float64) for b in model.intercepts_),
               activation=model.activation, post_transform=_OUT[model.out_activation_])


def _mlp_classifier(model: Any) -> Step:
    y_type = model._label_binarizer.y_type_
    require(y_type in ("binary", "multiclass", "multilabel-indicator"), model,
            f"its targets are {y_type!r}; expected binary, multiclass or multilabel-indicator")
    op = _op(model)
    want = 1 if y_type == "binary" else len(model.classes_)
    require(op.output_type().width == want, model,
            f"it has {op.output_type().width} outputs for {len(model.classes_)} {y_type} classes")
    rule = "indicator_gt_half" if y_type == "multilabel-indicator" else "out_gt_half"
    head = classifier_head(model, ("predict", "predict_proba"), rule)
    return Step((op,), head, "reject", "reject")


def _mlp_regressor(model: Any) -> Step:
    return Step((_op(model),), Head("regressor", ("predict",)), "reject", "reject")


STEPS: dict = {  # class name -> converter(model, b, x)
    "MLPClassifier": legacy(_mlp_classifier),
    "MLPRegressor": legacy(_mlp_regressor),
}
