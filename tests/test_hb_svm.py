"""Support vector machines, re-expressing Hummingbird's tests/test_sklearn_sv_converter.py.

Same data (``np.random.seed(0)``; 100 x 200 uniform floats as float32, labels
``randint(num_classes)`` plus an optional shift), same models (default LinearSVC /
LinearSVR / SVC / NuSVC, the kernel and gamma variants), same backends (torch,
torchscript for Hummingbird's ``torch.jit`` cases, tvm).  Hummingbird compares
``predict``; here ``decision_function`` is compared too (scores within 1e-5 of the
batch scale, labels identical).  Hummingbird's commented-out multiclass TVM cases
(it lacked a ``mode`` operator) run here as one multiclass tvm case.  Its
``precomputed`` kernel case expects an error: tunebird supports precomputed kernels, so
here the same model must match scikit-learn (more cases in ``test_svm_extras.py``).

Left out: nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR, NuSVC

import tuner
from tolerances import assert_same_labels, assert_scores


def _data(num_classes: int, labels_shift: int = 0, dtype=np.float32):
    np.random.seed(0)
    X = np.array(np.random.rand(100, 200), dtype=dtype)
    y = np.random.randint(num_classes, size=100) + labels_shift
    return X, y


def _check(model, X, backend="torch", what=""):
    pred = tuner.compile(model, backend=backend)
    assert_same_labels(pred.predict(X), model.predict(X), what=f"{what} predict")
    if hasattr(model, "decision_function"):
        assert_scores(pred.decision_function(X), model.decision_function(X), what=f"{what} decision_function")


# ---- LinearSVC / LinearSVR (linear models: here to cover the whole Hummingbird file)


@pytest.mark.parametrize("num_classes,shift", [(2, 0), (3, 0), (3, 2)], ids=["bi", "multi", "shifted"])
def test_linear_svc(num_classes, shift):
    X, y = _data(num_classes, shift)
    _check(LinearSVC().fit(X, y), X, what="LinearSVC")


def test_float64_linear_svc():
    X, y = _data(3, dtype=np.float64)
    _check(LinearSVC().fit(X, y), X, what="LinearSVC float64")


@pytest.mark.parametrize("target", ["int", "float"])
def test_linear_svr(target):
    X, _ = _data(2)
    np.random.seed(0)
    y = np.random.randint(2, size=100) if target == "int" else np.random.rand(100)
    model = LinearSVR().fit(X, y)
    assert_scores(tuner.compile(model).predict(X), model.predict(X), what=f"LinearSVR {target}")


# ---- SVC: id -> (num_classes, kernel, gamma, labels_shift)
SVC_CASES = {
    "svc_bi": (2, "rbf", None, 0),
    "svc_multi": (3, "rbf", None, 0),
    "svc_linear": (2, "linear", None, 0),
    "svc_sigmoid": (3, "sigmoid", None, 0),
    "svc_poly": (3, "poly", None, 0),
    "svc_shifted": (3, "rbf", None, 2),
    "svc_gamma": (3, "rbf", "auto", 0),
    # Hummingbird's torch.jit (here torchscript) and tvm cases: all binary
    "svc_linear_bi": (2, "linear", None, 0),
    "svc_sigmoid_bi": (2, "sigmoid", None, 0),
    "svc_poly_bi": (2, "poly", None, 0),
}


def _svc(case):
    num_classes, kernel, gamma, shift = SVC_CASES[case]
    X, y = _data(num_classes, shift)
    model = SVC(kernel=kernel, gamma=gamma) if gamma else SVC(kernel=kernel)
    return model.fit(X, y), X


@pytest.mark.parametrize("case,backend", [
    *[(c, "torch") for c in ("svc_bi", "svc_multi", "svc_linear", "svc_sigmoid", "svc_poly", "svc_shifted",
                             "svc_gamma")],
    *[(c, "torchscript") for c in ("svc_bi", "svc_linear_bi", "svc_sigmoid_bi", "svc_poly_bi", "svc_multi")],
    *[(c, "tvm") for c in ("svc_bi", "svc_linear_bi", "svc_sigmoid_bi", "svc_poly_bi", "svc_multi")],
])
def test_svc(case, backend):
    model, X = _svc(case)
    _check(model, X, backend, what=f"{case} on {backend}")


@pytest.mark.parametrize("num_classes,backend", [(2, "torch"), (3, "torch"), (2, "torchscript"), (2, "tvm")])
def test_nu_svc(num_classes, backend):
    X, y = _data(num_classes)
    _check(NuSVC().fit(X, y), X, backend, what=f"NuSVC {num_classes} classes on {backend}")


def test_svr():
    X, _ = _data(2)
    np.random.seed(0)
    y = np.random.rand(100)
    model = SVR().fit(X, y)
    assert_scores(tuner.compile(model).predict(X), model.predict(X), what="SVR")


def test_precomputed_kernel():
    np.random.seed(0)
    X = np.array(np.random.rand(10, 10), dtype=np.float32)
    y = np.random.randint(2, size=10)
    K = X @ X.T
    model = SVC(kernel="precomputed").fit(K, y)
    pred = tuner.compile(model)
    assert_same_labels(pred.predict(K), model.predict(K), "precomputed SVC")
    assert_scores(pred.decision_function(K), model.decision_function(K), what="precomputed SVC")
