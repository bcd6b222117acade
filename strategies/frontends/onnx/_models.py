"""ONNX-ML models -> IR: linear and tree-ensemble classifiers and regressors, kernel SVM regressors."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ...ground.errors import UnsupportedModelError
from ...ir import Linear, TreeEnsemble
from ...ir.columns import Concat
from ...ir.svm import KernelMachine, OneVsOne, PairwiseCoupling, pairs
from ._graph import Builder, LabelInfo, Val
from ._ops import as_text, class_labels, numeric, operand, post_transform, what
from ._trees import V5_AGGREGATES, V5_TRANSFORMS, fold_scaler, parse_trees, v5_as_v3

def linear_regressor(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v = numeric(node, operand(node, args))
    post_transform(node, attrs, ("NONE",))
    k = int(attrs.get("targets", 1))
    coef = np.asarray(attrs["coefficients"], np.float32).astype(np.float64).reshape(k, v.width)
    bias = np.asarray(attrs.get("intercepts") or [0.0] * k, np.float32).astype(np.float64)
    return [Val(b.add(Linear(coef, bias), v), k, role="regressor")]


def linear_classifier(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v = numeric(node, operand(node, args))
    classes = class_labels(node, attrs, "classlabels")
    bias = np.asarray(attrs.get("intercepts"), np.float32).astype(np.float64)
    k = bias.shape[0]
    if k != classes.shape[0] or k < 2:
        raise UnsupportedModelError(f"{what(node)}: {k} score columns for {classes.shape[0]} classes is not "
                                    "supported (one score column per class is)")
    coef = np.asarray(attrs["coefficients"], np.float32).astype(np.float64).reshape(k, v.width)
    scores = Val(b.add(Linear(coef, bias), v), k, pt=post_transform(node, attrs), role="probabilities")
    return [Val(scores.node, 1, label=LabelInfo(classes, "argmax", scores)), scores]


def tree_regressor(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v = numeric(node, operand(node, args))
    post_transform(node, attrs, ("NONE",))
    k = int(attrs.get("n_targets", 1))
    agg = as_text(attrs.get("aggregate_function", "SUM"))
    if agg not in ("SUM", "AVERAGE"):
        raise UnsupportedModelError(f"{what(node)}: aggregate_function {agg!r} is not supported (SUM, AVERAGE)")
    parsed = parse_trees(attrs, "target", k, what(node), _compare(v))
    v, trees = _fold(v, parsed.trees)
    base = _base(attrs, k)
    op = TreeEnsemble(trees, v.width, k, "<=", _compare(v), base,
                      aggregation="mean" if agg == "AVERAGE" else "sum")
    return [Val(b.add(op, v), k, role="regressor")]


def _compare(v: Val) -> str:
    """The precision ONNX Runtime's trees compare a value in: its own (integers as float32)."""
    return "float64" if v.dtype == "double" else "float32"


def _fold(v: Val, trees: list) -> tuple[Val, tuple]:
    """Trees reading ONNX's Scaler output read its input instead, splits moved (exact); else as they are."""
    if v.scaled is None:
        return v, tuple(trees)
    x, offset, scale = v.scaled
    if x.dtype != "float" or not (np.all(np.isfinite(offset)) and np.all(np.isfinite(scale)) and np.all(scale != 0)):
        return v, tuple(trees)
    try:
        return x, tuple(fold_scaler(t, offset, scale) for t in trees)
    except ValueError:  # a split no (or every) value satisfies: keep the scaler
        return v, tuple(trees)


def _base(attrs: dict, k: int) -> np.ndarray:
    base = attrs.get("base_values_as_tensor")
    if base is None:
        base = attrs.get("base_values") or [0.0] * k
    base = np.asarray(base, np.float32).astype(np.float64)
    if base.shape[0] != k:
        raise UnsupportedModelError(f"{len(base)} base values for {k} outputs")
    return base


def tree_classifier(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v = numeric(node, operand(node, args))
    name = what(node)
    classes = class_labels(node, attrs, "classlabels")
    n = classes.shape[0]
    pt = post_transform(node, attrs)
    parsed = parse_trees(attrs, "class", n, name, _compare(v))
    base = attrs.get("base_values_as_tensor")
    base = list(base) if base is not None else list(attrs.get("base_values") or [])
    if n > 2 or parsed.targets_used == {0, 1}:
        # ONNX Runtime's label skips classes no leaf of the row scored (unless base values are given)
        if n == 2 and not parsed.targets_used <= parsed.always_scored:
            raise UnsupportedModelError(f"{name}: a two-class ensemble whose leaves score only one of the classes "
                                        "is not supported")
        if not base and not parsed.weights_nonnegative and len(parsed.targets_used) < n:
            raise UnsupportedModelError(f"{name}: classes no leaf scores, with negative weights, are not supported")
        if not (parsed.weights_nonnegative or parsed.targets_used <= parsed.always_scored):
            raise UnsupportedModelError(f"{name}: leaves that score only some classes, with negative weights, "
                                        "are not supported")
        if n == 2 and any(base):
            raise UnsupportedModelError(f"{name}: base_values on a two-class ensemble scoring both classes "
                                        "are not supported")
        v, trees = _fold(v, parsed.trees)
        op = TreeEnsemble(trees, v.width, n, "<=", _compare(v), _base({"base_values": base or [0.0] * n}, n))
        scores = Val(b.add(op, v), n, pt=pt, role="probabilities")
        return [Val(scores.node, 1, label=LabelInfo(classes, "argmax", scores)), scores]
    if n != 2 or parsed.targets_used != {0} or len(base) > 1:
        raise UnsupportedModelError(f"{name}: a two-class ensemble scoring class(es) {sorted(parsed.targets_used)} "
                                    f"with {len(base)} base values is not supported")
    # one score s (class 0's column): ONNX Runtime labels and scores as its binary case
    v, trees = _fold(v, [dataclasses.replace(t, value=t.value[:, :1]) for t in parsed.trees])
    op = TreeEnsemble(trees, v.width, 1, "<=", _compare(v), np.asarray(base or [0.0], np.float32).astype(np.float64))
    s = Val(b.add(op, v), 1, role="probabilities")
    if parsed.weights_nonnegative:  # label: raw s > 0.5; probabilities [1 - t(s), t(s)]
        if not pt.is_identity:
            raise UnsupportedModelError(f"{name}: a one-score binary ensemble with non-negative weights and "
                                        f"post_transform {pt.kind!r} (label from the raw score > 0.5) is not supported")
        return [Val(s.node, 1, label=LabelInfo(classes, "out_gt_half", s)), s]
    if pt.kind == "sigmoid":  # label: s > 0; probabilities [sigmoid(-s), sigmoid(s)]
        s = dataclasses.replace(s, pt=pt)
        return [Val(s.node, 1, label=LabelInfo(classes, "raw_gt0", s)), s]
    if pt.kind == "identity":  # label: s > 0; probabilities [-s, s]
        pair = Val(b.add(Linear(np.array([[-1.0], [1.0]]), np.zeros(2)), s), 2, role="probabilities")
        return [Val(pair.node, 1, label=LabelInfo(classes, "argmax", pair)), pair]
    raise UnsupportedModelError(f"{name}: a one-score binary ensemble with post_transform {pt.kind!r} is not supported")


def tree_ensemble_v5(b: Builder, node: Any, attrs: dict, args: list) -> list:
    """The opset-5 ``TreeEnsemble`` (a regressor): its attributes read as ``TreeEnsembleRegressor``'s."""
    agg, post = int(attrs.get("aggregate_function", 1)), int(attrs.get("post_transform", 0))
    if attrs.get("membership_values") is not None and len(attrs["membership_values"]):
        raise UnsupportedModelError(f"{what(node)}: BRANCH_MEMBER splits are not supported")
    v3 = v5_as_v3(attrs, what(node))
    v3.update(n_targets=int(attrs["n_targets"]),
              aggregate_function=V5_AGGREGATES[agg] if agg < len(V5_AGGREGATES) else str(agg),
              post_transform=V5_TRANSFORMS[post] if post < len(V5_TRANSFORMS) else str(post))
    return tree_regressor(b, node, v3, args)


_KERNELS = {"LINEAR": "linear", "POLY": "poly", "RBF": "rbf", "SIGMOID": "sigmoid"}


def _kernel(node: Any, attrs: dict) -> tuple[str, float, float, int]:
    kernel = as_text(attrs.get("kernel_type", "LINEAR"))
    params = [float(np.float32(p)) for p in (attrs.get("kernel_params") or [])] + [0.0, 0.0, 0.0]
    gamma, coef0, degree = params[:3]
    if kernel not in _KERNELS or degree != int(degree):
        raise UnsupportedModelError(f"{what(node)}: kernel {kernel!r} with degree {degree} is not supported "
                                    f"(kernels {', '.join(_KERNELS)}, integer degrees)")
    return _KERNELS[kernel], gamma, coef0, int(degree)


def svm_classifier(b: Builder, node: Any, attrs: dict, args: list) -> list:
    """``SVMClassifier`` as libsvm's one-vs-one machine: pairwise decisions ``d`` (``sum + rho``), the label by
    votes (``d > 0`` votes the pair's first class; the first class with most votes), probabilities by
    pairwise coupling of ``prob_a`` / ``prob_b``; without them two classes output ``[-d, d]``."""
    v = numeric(node, operand(node, args))
    post_transform(node, attrs, ("NONE",))
    classes = class_labels(node, attrs, "classlabels")
    k, per_class = classes.shape[0], [int(c) for c in (attrs.get("vectors_per_class") or [])]
    if len(per_class) != k or k < 2:
        raise UnsupportedModelError(f"{what(node)}: only support-vector mode with vectors_per_class for each of "
                                    f"the {k} classes is supported")
    kernel, gamma, coef0, degree = _kernel(node, attrs)
    n_sv = sum(per_class)
    sv = np.asarray(attrs["support_vectors"], np.float32).astype(np.float64).reshape(n_sv, v.width)
    dual = np.asarray(attrs["coefficients"], np.float32).astype(np.float64).reshape(k - 1, n_sv)
    start = np.concatenate([[0], np.cumsum(per_class)])
    coef = np.zeros((n_sv, k * (k - 1) // 2))
    for p, (i, j) in enumerate(pairs(k)):  # libsvm's sv_coef layout
        coef[start[i]:start[i + 1], p] = dual[j - 1, start[i]:start[i + 1]]
        coef[start[j]:start[j + 1], p] = dual[i, start[j]:start[j + 1]]
    rho = np.asarray(attrs["rho"], np.float32).astype(np.float64)
    d = Val(b.add(KernelMachine(sv, coef, rho, kernel, gamma, coef0, degree), v), coef.shape[1])
    b.finite_only = True  # NaN kernels: ONNX Runtime's coupling returns uniform rows, libsvm's does not
    ovo = OneVsOne(k, "ovo")
    votes_at = ovo.blocks()["votes"]
    votes = Val(b.add(ovo, d), ovo.output_type().width)
    prob_a = attrs.get("prob_a") or []
    if len(prob_a):
        probs = Val(b.add(PairwiseCoupling(k, np.asarray(prob_a, np.float32), np.asarray(attrs["prob_b"], np.float32)),
                          d), k)
        views = (("predict", k + votes_at[0], k + votes_at[1]), ("predict_proba", 0, k))
    elif k == 2:
        probs = Val(b.add(Linear(np.array([[-1.0], [1.0]]), np.zeros(2)), d), 2)
        views = (("predict", 2 + votes_at[0], 2 + votes_at[1]), ("decision_function", 0, 2))
    else:
        raise UnsupportedModelError(f"{what(node)}: more than two classes without probabilities is not supported")
    out = Val(b.add(Concat((probs.width, votes.width)), probs, votes), probs.width + votes.width,
              role="probabilities")
    return [Val(out.node, 1, label=LabelInfo(classes, "argmax", out, views)), out]


def svm_regressor(b: Builder, node: Any, attrs: dict, args: list) -> list:
    """``SVMRegressor``: ``sum_s coef_s K(x, sv_s) + rho`` (a linear model when it has no support vectors)."""
    v = numeric(node, operand(node, args))
    post_transform(node, attrs, ("NONE",))
    if int(attrs.get("one_class", 0)):
        raise UnsupportedModelError(f"{what(node)}: one_class=1 (a one-class SVM's +-1 output) is not supported")
    coef = np.asarray(attrs.get("coefficients") or [], np.float32).astype(np.float64)
    rho = np.asarray(attrs.get("rho") or [0.0], np.float32).astype(np.float64)[:1]
    n_sv = int(attrs.get("n_supports", 0))
    if n_sv == 0:
        op = Linear(coef.reshape(1, v.width), rho)
    else:
        kernel, gamma, coef0, degree = _kernel(node, attrs)
        sv = np.asarray(attrs["support_vectors"], np.float32).astype(np.float64).reshape(n_sv, v.width)
        op = KernelMachine(sv, coef.reshape(n_sv, 1), rho, kernel, gamma, coef0, degree)
        b.finite_only = True
    return [Val(b.add(op, v), 1, role="regressor")]


CONVERTERS = {
    ("ai.onnx.ml", "LinearRegressor"): linear_regressor,
    ("ai.onnx.ml", "LinearClassifier"): linear_classifier,
    ("ai.onnx.ml", "TreeEnsembleRegressor"): tree_regressor,
    ("ai.onnx.ml", "TreeEnsembleClassifier"): tree_classifier,
    ("ai.onnx.ml", "TreeEnsemble"): tree_ensemble_v5,
    ("ai.onnx.ml", "SVMRegressor"): svm_regressor,
    ("ai.onnx.ml", "SVMClassifier"): svm_classifier,
}
