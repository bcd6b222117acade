"""Decompositions and discriminant analysis: KernelPCA, FastICA, the PLS family, LinearDiscriminantAnalysis.

Each follows the installed scikit-learn's own arithmetic (checked against 1.9):

* ``KernelPCA.transform``: the ``kernel_pca`` operator (kernel against ``X_fit_``, ``KernelCenterer``'s
  centring, the eigenvectors scaled by ``1 / sqrt(eigenvalue)`` where the eigenvalue is not 0); the
  cosine kernel is ``normalize(X) @ normalize(X_fit_).T``: a ``normalizer`` before a linear kernel.
* ``FastICA.transform``: ``(X - mean_) @ components_.T`` (no centring without whitening).
* ``PLSRegression`` / ``PLSCanonical`` / ``CCA``: ``predict`` ``(X - x_mean) @ coef_.T + intercept_``,
  ``transform`` ``((X - x_mean) / x_std) @ x_rotations_``; ``PLSSVD.transform`` with ``x_weights_``.
* ``LinearDiscriminantAnalysis``: ``decision_function`` ``X @ coef_.T + intercept_``, ``predict`` its
  sign (binary) or arg-max, ``predict_proba`` its sigmoid ``[1 - p, p]`` or softmax; ``transform``
  ``(X - xbar_) @ scalings_`` (svd) or ``X @ scalings_`` (eigen), first ``_max_components`` columns.

Centring before a projection is a ``scaler`` (``(x - mean) / 1`` is exact) then a ``linear``: the
order scikit-learn computes in (a strategy may still fold the scaler into the weights).
Every one refuses NaN and inf, as scikit-learn's input check does.  Not converted: callable kernels,
poly kernels of non-integer degree (negative bases make NaN, which scikit-learn refuses at transform
time), sparse fitted data, ``transform`` of ``y`` (PLS), ``transform`` of LDA's ``lsqr`` solver
(scikit-learn has none).  For float32 input, FastICA and PLS centre in float32 (in place), the
converted model in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...head import Head
from ...ir import Linear, Normalizer, Op, PostTransform, Scaler
from ...ir.decomposition import KernelPCA
from ...ir.ensembles import Activation
from ._common import Step, classifier_head, logger, name_of, require
from ._compose import _concat
from ._graph import Builder, Col, Value, apply_step, legacy

KPCA_KERNELS = ("linear", "poly", "rbf", "sigmoid", "cosine", "precomputed")


def _f64(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _centred(mean: Any, coef: Any, intercept: Any = 0.0, scale: Any = None) -> tuple[Op, ...]:
    """``((x - mean) / scale) @ coef.T + intercept`` as a scaler and a linear operator."""
    mean = _f64(mean)
    scale = np.ones_like(mean) if scale is None else _f64(scale)
    return Scaler(offset=mean, scale=scale), Linear(coef=_f64(coef), intercept=intercept)


def _kernel_pca(model: Any) -> Step:
    kernel = model.kernel
    require(isinstance(kernel, str), model, f"its kernel is a callable ({kernel!r}); expected one of {KPCA_KERNELS}")
    require(kernel in KPCA_KERNELS, model, f"kernel={kernel!r} is not supported; expected one of {KPCA_KERNELS}")
    X_fit = model.X_fit_
    require(isinstance(X_fit, np.ndarray), model, f"it was fitted on a {type(X_fit).__name__}; only dense "
            "arrays are supported")
    if X_fit.dtype == np.float32:
        logger.warning("%s was fitted on float32 data: for float32 input scikit-learn computes its kernel in "
                       "float32, the converted model in float64", name_of(model))
    require(kernel != "poly" or float(model.degree) == int(model.degree), model,
            f"its poly kernel has the non-integer degree {model.degree}: negative bases make NaN, which "
            "scikit-learn refuses at transform time; only integer degrees are supported")
    values, vectors = _f64(model.eigenvalues_), _f64(model.eigenvectors_)
    non_zero = np.flatnonzero(values)
    alphas = np.zeros_like(vectors)
    alphas[:, non_zero] = vectors[:, non_zero] / np.sqrt(values[non_zero])
    centerer = model._centerer
    ops: tuple[Op, ...] = ()
    basis = _f64(X_fit)
    if kernel == "cosine":
        from sklearn.preprocessing import normalize

        ops, basis, kernel = (Normalizer(basis.shape[1], "l2"),), normalize(basis), "linear"
    elif kernel == "precomputed":
        basis = np.zeros((basis.shape[0], 0))
    op = KernelPCA(basis=basis, alphas=alphas, fit_rows=centerer.K_fit_rows_, fit_all=centerer.K_fit_all_,
                   kernel=kernel, gamma=model.gamma_, coef0=model.coef0, degree=model.degree)
    return Step((*ops, op), None, "reject", "reject")


def _fast_ica(model: Any) -> Step:
    if model.whiten:
        return Step(_centred(model.mean_, model.components_), None, "reject", "reject")
    return Step((Linear(coef=_f64(model.components_), intercept=0.0),), None, "reject", "reject")


def _branch(b: Builder, x: Value, ops: tuple[Op, ...], model: Any) -> Value:
    return apply_step(b, x, Step(ops, None, "reject", "reject"), model)[0]


def _side_by_side(b: Builder, x: Value, blocks: dict[str, Value]) -> tuple[Value, tuple[tuple[str, int, int], ...]]:
    """The blocks concatenated, and each method's view of the result."""
    views, start = [], 0
    for method, v in blocks.items():
        views.append((method, start, start + v.width))
        start += v.width
    return _concat(b, list(blocks.values()), x, False), tuple(views)


def pls(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """PLSRegression / PLSCanonical / CCA: ``predict`` and ``transform`` (of ``X``) side by side."""
    predict = _branch(b, x, _centred(model._x_mean, model.coef_, model.intercept_), model)
    transform = _branch(b, x, _centred(model._x_mean, _f64(model.x_rotations_).T, 0.0, model._x_std), model)
    out, views = _side_by_side(b, x, {"predict": predict, "transform": transform})
    return out, Head("regressor", ("predict", "transform"), squeeze=bool(model._predict_1d), views=views)


def _pls_svd(model: Any) -> Step:
    return Step(_centred(model._x_mean, _f64(model.x_weights_).T, 0.0, model._x_std), None, "reject", "reject")


def linear_discriminant(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """LinearDiscriminantAnalysis: decision function, probabilities and (svd / eigen) transform side by side."""
    classes = np.asarray(model.classes_)
    binary = classes.size == 2
    decision = _branch(b, x, (Linear(coef=np.atleast_2d(_f64(model.coef_)), intercept=model.intercept_),), model)
    post = PostTransform("sigmoid" if binary else "softmax")
    proba = b.add(Activation(decision.width, post), [decision], [Col()] * decision.width)
    blocks = {"predict": decision, "decision_function": decision, "predict_proba": proba}
    if model.solver in ("svd", "eigen"):
        scalings = _f64(model.scalings_)[:, : model._max_components].T
        ops = _centred(model.xbar_, scalings) if model.solver == "svd" else (Linear(coef=scalings, intercept=0.0),)
        blocks["transform"] = _branch(b, x, ops, model)
    views, start, parts = [], 0, []
    for method, v in blocks.items():
        if method == "decision_function":  # reads the same columns as predict
            views.append((method, views[0][1], views[0][2]))
            continue
        views.append((method, start, start + v.width))
        parts.append(v)
        start += v.width
    head = classifier_head(model, tuple(blocks), "raw_gt0")
    return _concat(b, parts, x, False), Head("classifier", head.methods, classes=head.classes,
                                               label_rule="raw_gt0", views=tuple(views))


STEPS: dict = {  # class name -> converter(model, b, x) -> (Value, Head)
    "KernelPCA": legacy(_kernel_pca),
    "FastICA": legacy(_fast_ica),
    **dict.fromkeys(["PLSRegression", "PLSCanonical", "CCA"], pls),
    "PLSSVD": legacy(_pls_svd),
    "LinearDiscriminantAnalysis": linear_discriminant,
}
