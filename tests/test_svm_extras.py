"""Kernel SVMs: ``predict`` / ``decision_function`` of ``probability=True`` models run no pairwise coupling (libsvm's
``svm_predict`` votes; only ``predict_proba`` couples), and ``kernel="precomputed"`` (X is the kernel matrix against
the training samples; the kernel values are its columns ``support_``) for SVC, NuSVC, SVR, NuSVR and OneClassSVM on
every backend the SVM strategies serve, compiled, tuned and saved."""

from __future__ import annotations


import numpy as np
import pytest
from sklearn.metrics.pairwise import linear_kernel, rbf_kernel
from sklearn.svm import SVC, SVR, NuSVC, NuSVR, OneClassSVM

import strategies
import tuner
from strategies import reference
from strategies import svm as svm_strategies
from strategies.ir.svm import PairwiseCoupling
from strategies.sampling import sample_inputs
from test_svm import _data as svm_data
from test_svm import _fit, check
from tolerances import assert_same_labels, assert_scores


def _data(n=120, f=5, k=3, seed=0):
    return svm_data(n=n, f=f, k=k, seed=seed)


# --------------------------------------------------------------------------- probability=True: predict skips coupling


@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("cls,params", [(SVC, {}), (NuSVC, {"nu": 0.1})], ids=["SVC", "NuSVC"])
@pytest.mark.parametrize("shape,break_ties", [("ovo", False), ("ovr", False), ("ovr", True)],
                         ids=["ovo", "ovr", "ovr-break_ties"])
def test_probability_models_match(cls, params, k, shape, break_ties):
    X, y = _data(k=k, seed=k)
    model = _fit(cls(probability=True, decision_function_shape=shape, break_ties=break_ties, random_state=0,
                     **params), X, y)
    conv = strategies.convert(model)
    assert set(conv.methods) == {"predict", "decision_function", "predict_proba"}
    assert [conv.head.source(m) for m in conv.methods] == ["raw", "raw", "out"]
    Xt = sample_inputs(conv, 300, seed=1, nan=False, inf=False)
    check(model, Xt, what=f"{cls.__name__} k={k} {shape} break_ties={break_ties}")


def test_break_ties_with_probability_changes_tied_labels():
    """Rows with one vote per class: libsvm's predict takes the first, break_ties the best ovr score; the
    probabilities are the same for both."""
    rng = np.random.RandomState(2)
    X, y = rng.rand(150, 2), rng.randint(3, size=150)
    Xt = rng.rand(3000, 2)
    plain = _fit(SVC(gamma=20.0, C=10.0, probability=True, random_state=0), X, y)
    broken = _fit(SVC(gamma=20.0, C=10.0, probability=True, random_state=0, break_ties=True), X, y)
    a, b = check(plain, Xt, what="plain"), check(broken, Xt, what="break_ties")
    assert (a.predict(Xt) != b.predict(Xt)).any(), "the data should hold vote ties that break_ties resolves"


def test_break_ties_with_ovo_has_no_predict():
    X, y = _data(k=3)
    model = _fit(SVC(probability=True, break_ties=True, decision_function_shape="ovo", random_state=0), X, y)
    with pytest.raises(ValueError, match="break_ties must be False"):
        model.predict(X)
    pred = tuner.compile(model)
    assert pred.methods == ("decision_function", "predict_proba")
    with pytest.raises(AttributeError, match="no method 'predict'"):
        pred.predict(X)
    assert_scores(pred.decision_function(X), model.decision_function(X))
    assert_scores(pred.predict_proba(X), model.predict_proba(X))


@pytest.fixture
def coupling_calls(monkeypatch):
    """Counts of the coupling loop's runs: torch (``CouplingModule.coupling``) and the reference
    (``PairwiseCoupling.coupling``)."""
    calls = {"torch": 0, "reference": 0}

    def counted(fn, key):
        def wrapper(*a, **kw):
            calls[key] += 1
            return fn(*a, **kw)
        return wrapper

    monkeypatch.setattr(svm_strategies.CouplingModule, "coupling", counted(svm_strategies.CouplingModule.coupling,
                                                                          "torch"))
    monkeypatch.setattr(PairwiseCoupling, "coupling", counted(PairwiseCoupling.coupling, "reference"))
    return calls


@pytest.mark.parametrize("backend", ["torch", "torchscript"])  # torchscript: the coupling in a torch side task
def test_predict_runs_no_coupling(coupling_calls, backend):
    X, y = _data(k=4, seed=5)
    model = _fit(SVC(probability=True, random_state=0), X, y)
    pred = tuner.compile(model, backend=backend)
    last = pred.plans[0].tasks[-1]
    assert "pairwise_coupling" in [op.kind for op in last.ops]
    for x in (X[:1], X):  # one row (the fast path) and a batch
        assert_same_labels(pred.predict(x), model.predict(x), "predict")
        assert_scores(pred.decision_function(x), model.decision_function(x))
    assert coupling_calls == {"torch": 0, "reference": 0}
    # the program predict runs holds the coupling op only as its raw form: zeros, no loop
    modules = [m for m in last.program("raw").fn.modules() if isinstance(m, svm_strategies.CouplingModule)]
    assert modules and not any(m.couple for m in modules)
    conv = strategies.convert(model)
    assert_same_labels(reference.predict(conv, X, "predict"), model.predict(X), "reference predict")
    assert coupling_calls == {"torch": 0, "reference": 0}
    assert_scores(pred.predict_proba(X), model.predict_proba(X))
    assert coupling_calls["torch"] > 0
    assert_scores(reference.predict(conv, X, "predict_proba"), model.predict_proba(X))
    assert coupling_calls["reference"] > 0


def test_raw_value_of_the_coupling_op():
    """The op's raw value carries the one-vs-one columns and leaves the probabilities at 0; out couples them."""
    rng = np.random.RandomState(0)
    op = PairwiseCoupling(3, rng.normal(-2.0, 0.5, size=3), rng.normal(0.0, 0.3, size=3), carry=6)
    carried, d = rng.normal(size=(5, 6)), rng.normal(size=(5, 3))
    raw = reference.evaluate_op(op, carried, d, output="raw")
    np.testing.assert_array_equal(raw, np.concatenate([carried, np.zeros((5, 3))], axis=1))
    out = reference.evaluate_op(op, carried, d)
    np.testing.assert_array_equal(out[:, :6], carried)
    np.testing.assert_allclose(out[:, 6:].sum(1), 1.0, rtol=1e-12)
    raw_op = op.raw_op()
    assert raw_op.raw_op() is raw_op and not raw_op.couple and raw_op.summary().endswith("(not coupled)")


def test_probability_artifact(tmp_path):
    X, y = _data(k=3, seed=6)
    model = _fit(SVC(probability=True, random_state=0), X, y)
    pred = tuner.compile(model)
    pred.save(str(tmp_path / "svc.tb"))
    loaded = tuner.load_artifact(str(tmp_path / "svc.tb"))
    assert_same_labels(loaded.predict(X), model.predict(X), "artifact predict")
    assert_scores(loaded.decision_function(X), model.decision_function(X), what="artifact decision_function")
    assert_scores(loaded.predict_proba(X), model.predict_proba(X), what="artifact predict_proba")


# --------------------------------------------------------------------------- kernel="precomputed"


def _kernels(kernel="rbf", n=90, n_test=60, k=3, seed=0):
    """Training and test kernel matrices (``(n, n)``, ``(n_test, n)``) and the training labels."""
    X, y = _data(n=n + n_test, k=k, seed=seed)
    fn = (lambda a, b: rbf_kernel(a, b, gamma=0.3)) if kernel == "rbf" else linear_kernel
    return fn(X[:n], X[:n]), fn(X[n:], X[:n]), y[:n]


PRECOMPUTED_SVC = {
    "binary": (2, dict()),
    "ovo": (3, dict(decision_function_shape="ovo")),
    "ovr": (4, dict(decision_function_shape="ovr")),
    "ovr-break_ties": (3, dict(break_ties=True)),
    "probability": (3, dict(probability=True, random_state=0)),
    "probability-binary": (2, dict(probability=True, random_state=0)),
}


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
@pytest.mark.parametrize("case", list(PRECOMPUTED_SVC))
def test_precomputed_svc(case, kernel):
    k, params = PRECOMPUTED_SVC[case]
    K, Kt, y = _kernels(kernel, k=k, seed=k)
    model = _fit(SVC(kernel="precomputed", **params), K, y)
    assert model.support_.size < K.shape[1], "the test wants training samples that are not support vectors"
    conv = strategies.convert(model)
    assert [op.kind for op in conv.graph.ops][:2] == ["gather", "kernel_machine"]
    check(model, Kt, what=f"SVC precomputed {case} {kernel}")
    check(model, K, what=f"SVC precomputed {case} {kernel} (training rows)")


@pytest.mark.parametrize("cls,params", [(NuSVC, dict(nu=0.3)), (NuSVC, dict(nu=0.3, probability=True, random_state=0)),
                                        (SVR, dict(C=3.0)), (NuSVR, dict(nu=0.4)), (OneClassSVM, dict(nu=0.2))],
                         ids=["NuSVC", "NuSVC-probability", "SVR", "NuSVR", "OneClassSVM"])
def test_precomputed_other_models(cls, params):
    X, y = _data(n=150, k=3, seed=7)
    K, Kt = rbf_kernel(X[:90], X[:90], gamma=0.3), rbf_kernel(X[90:], X[:90], gamma=0.3)
    if cls is OneClassSVM:
        model = _fit(cls(kernel="precomputed", **params), K)
    else:
        target = y[:90] if cls is NuSVC else X[:90, 0] ** 2 - X[:90, 1]
        model = _fit(cls(kernel="precomputed", **params), K, target)
    check(model, Kt, what=f"{cls.__name__} precomputed")


def test_precomputed_reads_only_the_support_columns():
    """libsvm reads ``x->values[sv->ind]``: columns of samples that are not support vectors change nothing."""
    K, Kt, y = _kernels(k=3, seed=8)
    model = _fit(SVC(kernel="precomputed", probability=True, random_state=0), K, y)
    other = np.setdiff1d(np.arange(K.shape[1]), model.support_)
    assert other.size
    noisy = Kt.copy()
    noisy[:, other] = np.random.RandomState(0).normal(scale=1e6, size=(Kt.shape[0], other.size))
    pred = check(model, noisy, what="noise in non-support columns")
    assert_same_labels(pred.predict(noisy), pred.predict(Kt), "support columns only")


@pytest.mark.parametrize("backend,knobs", [
    ("torch", dict(strategy="kernel_primal")), ("torch", dict(sv_block=16)), ("torch", dict(sv_block=16, reduce="concat")),
    ("torchscript", {}), ("tvm", {}), ("onnxruntime", {}), ("inductor", {}),
], ids=["primal", "tiles16", "tiles16-concat", "torchscript", "tvm", "onnxruntime", "inductor"])
def test_precomputed_backends_and_strategies(backend, knobs):
    K, Kt, y = _kernels(k=3, n=70, n_test=30, seed=9)
    probability = backend != "inductor"  # inductor compiles for seconds: one program (no coupling side task)
    model = _fit(SVC(kernel="precomputed", probability=probability, random_state=0), K, y)
    check(model, Kt, backend=backend, what=f"{backend} {knobs}", **knobs)


def test_precomputed_wrong_column_count_is_refused():
    K, Kt, y = _kernels(k=3, seed=10)
    n_train = K.shape[1]
    for model in (_fit(SVC(kernel="precomputed", probability=True, random_state=0), K, y),
                  _fit(SVR(kernel="precomputed"), K, y.astype(float))):
        pred = tuner.compile(model)
        for bad in (Kt[:, :10], np.hstack([Kt, Kt[:, :1]]), Kt[:1, :-1]):
            with pytest.raises(ValueError, match=f"X has {bad.shape[1]} features"):
                model.predict(bad)  # scikit-learn refuses it too
            for method in pred.methods:
                with pytest.raises(ValueError, match=rf"X has {bad.shape[1]} features, but .*(SVC|SVR) is "
                                                     rf"expecting {n_train} features"):
                    getattr(pred, method)(bad)


def test_precomputed_nan_and_inf_refused():
    K, Kt, y = _kernels(k=3, seed=11)
    model = _fit(SVC(kernel="precomputed"), K, y)
    pred = tuner.compile(model)
    other = np.setdiff1d(np.arange(K.shape[1]), model.support_)[0]
    for bad in (np.nan, np.inf):
        for col in (int(model.support_[0]), int(other)):  # scikit-learn checks every column, support or not
            x = Kt[:3].copy()
            x[1, col] = bad
            with pytest.raises(ValueError):
                model.predict(x)
            with pytest.raises(ValueError, match="NaN|inf"):
                pred.predict(x)


def test_callable_kernel_still_refused():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from strategies.frontends.sklearn._svm import kernel_machine

    X, y = _data(k=2)
    for cls, target in ((SVC, y), (SVR, X[:, 0])):
        model = _fit(cls(kernel=lambda a, b: a @ b.T), X, target)
        with pytest.raises(tuner.UnsupportedModelError, match=f"{cls.__name__}: its kernel is a Python callable"):
            tuner.compile(model)
        with pytest.raises(tuner.UnsupportedModelError, match="callable kernels"):
            kernel_machine(model)
        pipe = _fit(make_pipeline(StandardScaler(), cls(kernel=lambda a, b: a @ b.T)), X, target)
        with pytest.raises(tuner.UnsupportedModelError, match="callable kernels"):
            tuner.compile(pipe)


def test_precomputed_tuned(tmp_path):
    K, Kt, y = _kernels(k=3, seed=12)
    model = _fit(SVC(kernel="precomputed", probability=True, random_state=0), K, y)
    db = str(tmp_path / "t.db")
    report = tuner.tune(model, Kt, db=db, batch_sizes=(1, 32), trials=4, threads=1, progress=False,
                        backends=("torch", "torchscript"))
    assert report.chosen
    pred = tuner.load(model, db=db, strict=True)
    assert pred.tuned
    for x in (Kt[:1], Kt):
        assert_same_labels(pred.predict(x), model.predict(x), "tuned predict")
        assert_scores(pred.decision_function(x), model.decision_function(x), what="tuned decision_function")
        assert_scores(pred.predict_proba(x), model.predict_proba(x), what="tuned predict_proba")
