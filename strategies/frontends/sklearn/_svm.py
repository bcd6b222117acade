"""Kernel SVMs: SVC, NuSVC, SVR, NuSVR and OneClassSVM (libsvm inside scikit-learn).

Each becomes a ``kernel_machine`` (libsvm's decision values ``sum_s coef * K(x, s) - rho``,
read from the private ``_dual_coef_`` / ``_intercept_`` that scikit-learn hands libsvm,
before its binary sign flip), and for the classifiers a ``one_vs_one`` that reads the
decision function and the votes off the pairwise values, and with ``probability=True`` a
``pairwise_coupling`` after it that carries those columns and appends the probabilities.  The
head views pick each method's columns:

* ``decision_function``: ``ovo`` / ``ovr`` shape (binary: ``-d``, one column);
* ``predict``: libsvm's votes (first class with the most), or with ``break_ties=True``
  (``ovr``, more than two classes) the arg-max of the ``ovr`` decision function;
* ``predict_proba`` (``probability=True``): Platt + libsvm's pairwise coupling.

``predict`` and ``decision_function`` read the graph's ``raw`` value, where the coupling is left
out: as in scikit-learn (libsvm's ``svm_predict``), they never compute probabilities.

Kernels ``linear``, ``poly``, ``rbf``, ``sigmoid`` with the fitted ``_gamma`` (``scale`` /
``auto`` already resolved), ``coef0`` and ``degree``; models fitted on sparse data read as
dense.  ``precomputed``: ``X`` is the kernel matrix against the training samples, ``(n,
n_train)``, and the kernel values are its columns ``support_`` (libsvm reads
``x->values[sv->ind]``; scikit-learn refuses any other column count, and so does the
converted model).  Refused: callable kernels.  NaN and inf are refused, as scikit-learn's
input check refuses them.  OneClassSVM: ``score_samples`` is the kernel sum
(``decision_function + offset_``), and ``predict`` is 1 only when the decision is > 0,
as libsvm says.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...head import Head
from ...ir.svm import KERNELS, KernelMachine, OneVsOne, PairwiseCoupling, n_pairs, pairs
from ._common import Step, classifier_head, require
from ._graph import Builder, Col, Value, apply_step

CLASSIFIERS = ("SVC", "NuSVC")
REGRESSORS = ("SVR", "NuSVR")


def _dense(a: Any) -> np.ndarray:
    """A float64 copy (the IR freezes its arrays: never the model's own, which libsvm writes through)."""
    return np.array(a.toarray() if hasattr(a, "toarray") else a, dtype=np.float64, copy=True)


def _check(model: Any) -> None:
    require(not callable(model.kernel) and model.kernel in KERNELS, model,
            f"kernel={model.kernel!r} is not supported; expected one of {list(KERNELS)} "
            "(callable kernels compute the kernel matrix in Python at predict time)")
    n_sv = model.support_.shape[0] if model.kernel == "precomputed" else model.support_vectors_.shape[0]
    require(n_sv == int(np.sum(model.n_support_)), model,
            "its support vectors and n_support_ disagree (the fitted state was altered)")
    if model.kernel == "precomputed":
        n_train = int(model.shape_fit_[0])
        require(n_train == int(model.n_features_in_), model,
                f"it was fitted on a kernel matrix of {model.shape_fit_} but expects {model.n_features_in_} "
                "columns (the fitted state was altered)")
        support = np.asarray(model.support_)
        require(support.size == 0 or (support.min() >= 0 and support.max() < n_train), model,
                f"its support_ indices lie outside the {n_train} training samples")


def _read(model: Any, b: Builder, x: Value) -> Value:
    """What the kernel machine reads: ``x`` (checked to be the model's width), or with a precomputed kernel
    its columns ``support_`` (the kernel values against the support vectors)."""
    _check(model)
    require(x.width == int(model.n_features_in_), model,
            f"it reads {model.n_features_in_} features, its input has {x.width}")
    if model.kernel != "precomputed":
        return x
    return b.gather(x, np.asarray(model.support_, dtype=np.int64))


def kernel_machine(model: Any) -> KernelMachine:
    """The model's libsvm decision values ``sum - rho``: one column per class pair (classifiers), else one.
    A precomputed kernel's machine reads the kernel matrix's columns ``support_`` (see :func:`_read`)."""
    _check(model)
    sv = np.zeros((model.support_.shape[0], 0)) if model.kernel == "precomputed" else _dense(model.support_vectors_)
    dual = _dense(model._dual_coef_)  # (k - 1, S), libsvm's sv_coef
    rho_neg = _dense(model._intercept_)  # -rho, one per pair
    kind = type(model).__name__
    if kind in CLASSIFIERS:
        k = len(model.classes_)
        counts = np.asarray(model._n_support, dtype=np.int64)
        require(counts.shape[0] == k, model, f"it has {counts.shape[0]} support-vector groups for {k} classes")
        start = np.concatenate([[0], np.cumsum(counts)])
        coef = np.zeros((sv.shape[0], n_pairs(k)))
        for p, (i, j) in enumerate(pairs(k)):
            si, sj = slice(start[i], start[i + 1]), slice(start[j], start[j + 1])
            coef[si, p] = dual[j - 1, si]
            coef[sj, p] = dual[i, sj]
    else:
        coef = dual.reshape(-1, 1)
    return KernelMachine(support_vectors=sv, coef=coef, intercept=rho_neg, kernel=model.kernel,
                         gamma=float(model._gamma), coef0=float(model.coef0), degree=int(model.degree))


def svc(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """SVC / NuSVC: kernel sums, then libsvm's one-vs-one votes, decision function and probabilities."""
    b.refuse(x, ["nan", "inf"], model)
    x = _read(model, b, x)
    k = len(model.classes_)
    shape = model.decision_function_shape
    require(shape in ("ovo", "ovr"), model, f"decision_function_shape={shape!r} is not known")
    # break_ties with the ovo shape: scikit-learn's predict raises, so the converted model has no predict
    methods: tuple[str, ...] = ("decision_function",) if (model.break_ties and shape == "ovo") else \
        ("predict", "decision_function")
    km = b.add(kernel_machine(model), [x], [Col() for _ in range(n_pairs(k))])
    vote = OneVsOne(n_classes=k, decision_shape=shape)
    out = b.add(vote, [km], [Col() for _ in range(vote.output_type().width)])
    blocks = vote.blocks()
    label = "decision" if (model.break_ties and shape == "ovr" and k > 2) else "votes"
    views = [("decision_function", *blocks["decision"])]
    if "predict" in methods:
        views.append(("predict", *blocks[label]))
    raw_methods: tuple[str, ...] = ()
    if model.probability != "deprecated" and bool(model.probability) and np.size(model._probA) > 0:
        prob_a, prob_b = _dense(model._probA), _dense(model._probB)
        require(prob_a.shape == (n_pairs(k),) and prob_b.shape == (n_pairs(k),), model,
                f"its Platt parameters have shapes {prob_a.shape} and {prob_b.shape}, expected ({n_pairs(k)},)")
        # the coupling carries the one-vs-one columns: its raw value (no coupling) serves the other methods
        width = out.width
        coupling = PairwiseCoupling(n_classes=k, prob_a=prob_a, prob_b=prob_b, carry=width)
        out = b.add(coupling, [out, km], [*out.cols, *(Col() for _ in range(k))])
        raw_methods = methods
        methods += ("predict_proba",)
        views.append(("predict_proba", width, width + k))
    classes = classifier_head(model, methods, "argmax").classes
    return out, Head("classifier", methods, classes=classes, label_rule="argmax", views=tuple(views),
                     raw_methods=raw_methods)


def svr(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """SVR / NuSVR: ``predict`` is the kernel sum minus rho."""
    b.refuse(x, ["nan", "inf"], model)
    head = Head("regressor", ("predict",))
    return apply_step(b, _read(model, b, x), Step((kernel_machine(model),), head, "reject", "reject"), model)


def one_class_svm(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """OneClassSVM: ``score_samples`` is the kernel sum; ``decision_function`` subtracts ``offset_`` (rho)."""
    b.refuse(x, ["nan", "inf"], model)
    x = _read(model, b, x)
    op = kernel_machine(model)
    op = KernelMachine(support_vectors=op.support_vectors, coef=op.coef, intercept=np.zeros(1), kernel=op.kernel,
                       gamma=op.gamma, coef0=op.coef0, degree=op.degree)
    head = Head("outlier", ("predict", "decision_function", "score_samples"), offset=float(np.ravel(model.offset_)[0]),
                label_rule="raw_gt0")
    return apply_step(b, x, Step((op,), head, "reject", "reject"), model)


STEPS: dict = {  # class name -> converter(model, b, x) -> (Value, Head)
    **dict.fromkeys(CLASSIFIERS, svc),
    **dict.fromkeys(REGRESSORS, svr),
    "OneClassSVM": one_class_svm,
}
