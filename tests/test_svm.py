"""Kernel SVMs beyond Hummingbird's cases: probabilities (Platt + libsvm's pairwise coupling), decision shapes,
libsvm's vote ties and ``break_ties``, a decision exactly at 0, kernel parameters, regressors and OneClassSVM,
every strategy knob, the rbf ``gemm`` / ``direct`` forms on realistic data, and refused inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.svm import SVC, SVR, NuSVC, NuSVR, OneClassSVM

import strategies
import tuner
from strategies import reference
from strategies.ground.errors import InvalidConfigError
from strategies.ir.svm import OneVsOne, PairwiseCoupling
from strategies.registry import get_strategy
from strategies.sampling import sample_inputs
from tolerances import assert_same_labels, assert_scores



def _fit(model, X, y=None):
    with warnings.catch_warnings():  # probability=True is deprecated in scikit-learn 1.9 (still supported)
        warnings.simplefilter("ignore", FutureWarning)
        return model.fit(X, y) if y is not None else model.fit(X)


def _data(n=120, f=6, k=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, f))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int) + (X[:, 1] > 0.5) * (k > 2) + (X[:, 2] > 1) * (k > 3)
    return X, y


def check(model, X, backend="torch", what="", **knobs):
    """Every method of ``model``: compiled vs scikit-learn, and the reference oracle vs scikit-learn."""
    pred = tuner.compile(model, backend=backend, **knobs)
    conv = strategies.convert(model)
    for method in conv.methods:
        want = getattr(model, method)(X)
        for got, who in ((getattr(pred, method)(X), backend), (reference.predict(conv, X, method), "reference")):
            if method == "predict" and conv.head.task in ("classifier", "outlier"):
                assert_same_labels(got, want, f"{what} {method} ({who})")
            else:
                assert_scores(got, want, what=f"{what} {method} ({who})")
    return pred


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("shape", ["ovo", "ovr"])
def test_svc_probability(k, shape):
    X, y = _data(k=k)
    model = _fit(SVC(probability=True, decision_function_shape=shape, random_state=0), X, y)
    Xt = sample_inputs(strategies.convert(model), 300, seed=1, nan=False, inf=False)
    check(model, Xt, what=f"SVC k={k} {shape}")


@pytest.mark.parametrize("kernel,params", [
    ("poly", dict(degree=1, coef0=1.5)), ("poly", dict(degree=2, gamma=0.3, coef0=-1)),
    ("poly", dict(degree=5, gamma="auto", coef0=0.5)), ("sigmoid", dict(gamma=0.05, coef0=0.2)),
    ("rbf", dict(gamma=2.0)), ("linear", dict(nu=0.3)),
])
def test_nu_svc_kernels_with_probability(kernel, params):
    X, y = _data(k=3, seed=1)
    model = _fit(NuSVC(kernel=kernel, probability=True, random_state=0, **params), X, y)
    check(model, X, what=f"NuSVC {kernel} {params}")


def test_vote_ties_and_break_ties():
    """Rows whose three classes get one vote each: libsvm takes the first, break_ties the best ovr score."""
    rng = np.random.RandomState(2)
    X, y = rng.rand(150, 2), rng.randint(3, size=150)  # noisy labels: many small regions of cyclic votes
    Xt = rng.rand(4000, 2)
    plain = _fit(SVC(gamma=20.0, C=10.0), X, y)
    conv = strategies.convert(plain)
    d = reference.evaluate(conv.graph, Xt)
    votes = d[:, 3:6]
    tied = np.flatnonzero((votes == 1).all(axis=1))
    assert tied.size > 5, "the test data should contain vote ties"
    check(plain, Xt[tied], what="vote ties")
    broken = _fit(SVC(gamma=20.0, C=10.0, break_ties=True), X, y)
    pred = check(broken, Xt[tied], what="break_ties")
    assert (pred.predict(Xt[tied]) != plain.predict(Xt[tied])).any(), "break_ties should change some tied labels"


def test_break_ties_with_ovo_has_no_predict():
    X, y = _data(k=3)
    model = _fit(SVC(break_ties=True, decision_function_shape="ovo"), X, y)
    pred = tuner.compile(model)
    assert_scores(pred.decision_function(X), model.decision_function(X))
    with pytest.raises(AttributeError, match="no method 'predict'"):
        pred.predict(X)


def test_decision_exactly_zero():
    """libsvm votes for the second class when a decision value is exactly 0 (d > 0 votes for the first)."""
    X = np.array([[-1.0], [1.0], [-2.0], [2.0]])
    model = _fit(SVC(kernel="linear"), X, np.array([0, 1, 0, 1]))
    at = np.zeros((3, 1))
    assert np.all(model.decision_function(at) == 0)
    check(model, at, what="decision 0")
    ocsvm = _fit(OneClassSVM(kernel="linear", nu=0.5), np.array([[-1.0], [1.0]]))
    check(ocsvm, np.array([[0.0], [1.0], [-3.0]]), what="OneClassSVM")


@pytest.mark.parametrize("cls", [SVR, NuSVR])
@pytest.mark.parametrize("kernel", ["linear", "poly", "rbf", "sigmoid"])
def test_regressors(cls, kernel):
    X, _ = _data(seed=4)
    y = X[:, 0] ** 2 - X[:, 1]
    model = _fit(cls(kernel=kernel, gamma=0.2 if kernel == "sigmoid" else "scale"), X, y)
    check(model, sample_inputs(strategies.convert(model), 200, seed=5, nan=False, inf=False), what=f"{cls.__name__}")


@pytest.mark.parametrize("kernel", ["rbf", "poly", "sigmoid"])
def test_one_class_svm(kernel):
    X, _ = _data(seed=6)
    model = _fit(OneClassSVM(kernel=kernel, nu=0.2, gamma=0.1), X)
    check(model, np.vstack([X, 3 * X[:40]]), what=f"OneClassSVM {kernel}")


KNOBS = [dict(sv_block=16), dict(sv_block=16, reduce="concat"), dict(sv_block=64, distance="direct"),
         dict(sv_block=16, distance="direct", reduce="concat")]


@pytest.mark.parametrize("knobs", KNOBS, ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()))
def test_kernel_tiles_knobs(knobs):
    X, y = _data(k=4, seed=7)
    model = _fit(SVC(probability=True, random_state=0, decision_function_shape="ovo"), X, y)
    assert model.support_vectors_.shape[0] > 64
    check(model, X, what=str(knobs), **knobs)


@pytest.mark.parametrize("offset", [0.0, 1e4])
@pytest.mark.parametrize("distance", ["gemm", "direct"])
def test_rbf_distance_forms_on_real_data(distance, offset):
    """Breast cancer, unscaled (features from 1e-3 to 4e3), and shifted by 1e4: both forms within 1e-5."""
    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :8] + offset
    model = _fit(SVC(gamma="scale", C=10.0), X[::2], y[::2])
    check(model, X[1::2], what=f"{distance} offset={offset}", sv_block=16, distance=distance)


def test_kernel_primal():
    X, y = _data(k=3, seed=8)
    check(_fit(SVC(kernel="linear"), X, y), X, strategy="kernel_primal", what="primal")
    with pytest.raises(InvalidConfigError, match="linear kernels only"):
        tuner.compile(_fit(SVC(), X, y), strategy="kernel_primal")


def test_direct_tile_too_large_is_invalid():
    X, y = _data(n=200, f=300, k=2, seed=9)
    model = _fit(SVC(), X, y)
    with pytest.raises(InvalidConfigError, match="direct rbf tile"):
        tuner.compile(model, distance="direct")
    op = strategies.convert(model).graph.ops[0]
    strat = get_strategy("kernel_tiles")
    assert strat.redundant_reason(op, {"sv_block": 0, "distance": "gemm", "reduce": "concat"}, 1)
    assert strat.redundant_reason(op, {"sv_block": 16, "distance": "gemm", "reduce": "concat"}, 1) is None


@pytest.mark.parametrize("k", [2, 3, 5])
def test_one_vs_one_and_coupling_formulations(k):
    """Every formulation of the two small ops against their NumPy rule."""
    rng = np.random.RandomState(k)
    d = rng.normal(scale=2.0, size=(500, k * (k - 1) // 2))
    d[:20] = 0.0  # exact zeros: libsvm's and scikit-learn's ovr votes differ there
    for shape in ("ovo", "ovr"):
        op = OneVsOne(k, shape)
        for votes in ("matmul", "gather"):
            got = get_strategy("one_vs_one_votes").build_module(op, {"votes": votes})(torch.from_numpy(d)).numpy()
            np.testing.assert_allclose(got, op.reference(d), rtol=1e-12, atol=1e-12)
    op = PairwiseCoupling(k, rng.normal(-2.0, 0.5, size=d.shape[1]), rng.normal(0.0, 0.3, size=d.shape[1]))
    want = op.reference(d)
    for loop in ("early_exit", "unrolled"):
        for matvec in ("broadcast", "bmm"):
            module = get_strategy("coupling_iteration").build_module(op, {"loop": loop, "matvec": matvec})
            got = module(torch.from_numpy(d)).numpy()
            assert_scores(got, want, what=f"coupling {loop} {matvec}")


def test_other_backends_with_probabilities():
    """The coupling loop stops on the data: exported backends leave it to a torch side task."""
    X, y = _data(n=60, f=4, k=3, seed=10)
    model = _fit(SVC(probability=True, random_state=0), X, y)
    for backend in ("torchscript", "tvm"):
        pred = check(model, X, backend=backend, what=backend)
        kinds = [[op.kind for op in t.graph.ops] for t in pred.plans[0].tasks]
        assert kinds[0] == ["kernel_machine"] and "pairwise_coupling" in kinds[-1]
        assert pred.plans[0].tasks[-1].config["backend"] == "torch"


def test_inductor_small_model():
    X, y = _data(n=40, f=3, k=3, seed=11)
    check(_fit(SVC(kernel="poly", degree=2), X, y), X, backend="inductor", what="inductor")


def test_inputs_sparse_fit_and_artifact(tmp_path):
    X, y = _data(k=3, seed=12)
    model = _fit(SVC(probability=True, random_state=0), sp.csr_matrix(X), y)
    check(model, X, what="fitted on sparse data")
    pred = tuner.compile(model)
    ints = np.round(X * 3).astype(np.int64)
    assert_same_labels(pred.predict(ints), model.predict(ints), "int input")
    assert_scores(pred.predict_proba(X.astype(np.float32)), model.predict_proba(X.astype(np.float32)))
    pred.save(str(tmp_path / "svc.tb"))
    loaded = tuner.load_artifact(str(tmp_path / "svc.tb"))
    assert_scores(loaded.predict_proba(X), model.predict_proba(X), what="artifact")
    assert pred.predict_proba(X[:0]).shape == (0, 3)


@pytest.mark.parametrize("kernel", ["rbf", "poly", "linear", "sigmoid"])
def test_huge_finite_inputs(kernel):
    """Values whose squares overflow: the rbf gemm form must not turn inf - inf into NaN; a NaN decision (poly)
    votes for the pair's second class and its pairwise probability becomes 1e-7, as in libsvm."""
    X, y = _data(k=3, f=4, seed=13)
    model = _fit(SVC(kernel=kernel, probability=True, random_state=0), X, y)
    Xt = np.random.RandomState(14).normal(size=(8, 4))
    Xt[0, 0], Xt[1, 1], Xt[2, 2], Xt[3] = 1e200, -1e160, 1e150, 1e300
    for knobs in ({}, {"sv_block": 16, "distance": "direct"}):
        check(model, Xt, what=f"{kernel} {knobs}", **knobs)


def test_nan_and_inf_refused():
    X, y = _data(k=3)
    pred = tuner.compile(_fit(SVC(), X, y))
    for bad in (np.nan, np.inf):
        x = X[:3].copy()
        x[1, 2] = bad
        with pytest.raises(ValueError):
            pred.predict(x)


def test_unsupported_options():
    X, y = _data(k=2)
    model = _fit(SVC(kernel=lambda a, b: a @ b.T), X, y)
    with pytest.raises(tuner.UnsupportedModelError, match="SVC"):  # it has no n_features_in_: refused early
        tuner.compile(model)
    with pytest.raises(tuner.UnsupportedModelError, match="callable kernels"):
        from strategies.frontends.sklearn._svm import kernel_machine

        kernel_machine(model)
