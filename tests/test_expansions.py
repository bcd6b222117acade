"""KBinsDiscretizer, PolynomialFeatures and SplineTransformer: the ``bucketize``, ``polynomial`` and ``spline``
operators against scikit-learn, on inputs at bin edges / knots and their float neighbours.

Every case checks the reference evaluator and a compiled backend (torch, torchscript; one case per operator
on tvm) against scikit-learn's ``transform``, within the project's score tolerance.  Where the reference is
meant to be bit-identical to scikit-learn (float64 input), that is checked too.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import KBinsDiscretizer, PolynomialFeatures, SplineTransformer, StandardScaler

import strategies
import tuner
from strategies import reference
from strategies.ir import content_hash, from_bytes, to_bytes
from strategies.ir.expansions import Bucketize, Polynomial, Spline
from tolerances import assert_scores

pytestmark = pytest.mark.filterwarnings("ignore:Bins whose width are too small", "ignore:Feature .* is constant",
                                      "ignore:invalid value encountered:RuntimeWarning")

BACKENDS = ("torch", "torchscript")


def dense(a) -> np.ndarray:
    return np.asarray(a.toarray() if hasattr(a, "toarray") else a, dtype=np.float64)


def with_neighbours(points) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    p = p[np.isfinite(p)]
    return np.concatenate([p, np.nextafter(p, -np.inf), np.nextafter(p, np.inf)])


def columns(cols: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """Columns of different lengths side by side (repeated to the longest, each shuffled its own way)."""
    rng = np.random.default_rng(seed)
    n = max(len(c) for c in cols)
    return np.column_stack([rng.permutation(np.resize(c, n)) for c in cols])


@functools.lru_cache(maxsize=None)
def train(n: int = 120) -> np.ndarray:
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(size=n), rng.exponential(size=n), np.round(rng.normal(size=n), 1)])
    X[:6, 2] = 0.5  # ties
    return X


def check(model, X: np.ndarray, backend: str | None, *, exact: bool = True, **knobs) -> strategies.ConvertedModel:
    """Reference (bit-exact when ``exact``) and ``backend`` against ``model.transform``."""
    expected = dense(model.transform(X))
    conv = strategies.convert(model)
    ref = reference.predict(conv, X, "transform")
    assert_scores(ref, expected, what="reference")
    if exact:
        np.testing.assert_array_equal(ref, expected, err_msg="reference is not bit-identical")
    if backend is not None:
        got = tuner.compile(conv, backend=backend, **knobs).transform(X)
        assert_scores(got, expected, what=backend)
    return conv


# --------------------------------------------------------------------------- KBinsDiscretizer


def kbins_data(model) -> np.ndarray:
    edges = [with_neighbours(np.r_[e, e[0] - 1, e[-1] + 1, 0.5 * (e[:-1] + e[1:])]) for e in model.bin_edges_]
    return columns(edges)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("encode", ["ordinal", "onehot", "onehot-dense"])
@pytest.mark.parametrize("strategy", ["uniform", "quantile", "kmeans"])
def test_kbins(strategy, encode, backend):
    n_bins = [3, 6, 4] if strategy != "kmeans" else 4
    model = KBinsDiscretizer(n_bins=n_bins, encode=encode, strategy=strategy, quantile_method="linear",
                             subsample=None).fit(train())
    check(model, kbins_data(model), backend)


@pytest.mark.parametrize("method", ["compare", "binary_search"])
def test_kbins_many_bins_methods(method):
    model = KBinsDiscretizer(n_bins=37, encode="ordinal", strategy="uniform").fit(train())
    check(model, kbins_data(model), "torch", method=method)


def test_kbins_float32():
    """Edges fitted on float32 data; ``dtype=np.float32`` rounds float64 input before comparing."""
    X32 = train().astype(np.float32)
    model = KBinsDiscretizer(n_bins=5, encode="ordinal", strategy="uniform", dtype=np.float32).fit(X32)
    X = kbins_data(model)
    rounded = np.column_stack([np.searchsorted(e[1:-1], X[:, j], side="right")
                               for j, e in enumerate(model.bin_edges_)])
    assert np.any(rounded != model.transform(X)), "the data should hit a float32 rounding across an edge"
    check(model, X, "torch")
    check(model, X.astype(np.float32), "torchscript")


# --------------------------------------------------------------------------- PolynomialFeatures

POLY_CASES = {
    "deg3": dict(degree=3),
    "deg2-3": dict(degree=(2, 3)),
    "interaction2-4": dict(degree=(2, 4), interaction_only=True),
    "deg0-2-nobias": dict(degree=(0, 2), include_bias=False),
    "deg0": dict(degree=0),
    "interaction3-nobias": dict(degree=3, interaction_only=True, include_bias=False),
    "interaction3-3": dict(degree=(3, 3), interaction_only=True),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", POLY_CASES)
def test_polynomial(case, backend):
    X = train()[:40] * 3
    X[0] = 0.0
    X[1, 0] = -0.0
    model = PolynomialFeatures(**POLY_CASES[case]).fit(X)
    check(model, X, backend)  # float64: the same products in the same order, bit for bit


def test_polynomial_float32_input():
    """scikit-learn multiplies float32 input in float32; the IR in float64 (within the score tolerance)."""
    X = (train()[:40] * 3).astype(np.float32)
    model = PolynomialFeatures(degree=4).fit(X)
    check(model, X, "torch", exact=False)


# --------------------------------------------------------------------------- SplineTransformer

EXTRAPOLATIONS = ("error", "constant", "linear", "continue", "periodic")


def spline_data(model, extrapolation: str, *, missing: bool) -> np.ndarray:
    k = model.degree
    cols = []
    for spl in model.bsplines_:
        t = spl.t
        pts = np.r_[t, t[0] - 2.5, t[-1] + 3.0, 0.5 * (t[:-1] + t[1:])]
        if extrapolation == "error":  # scikit-learn rejects values beyond the base interval
            pts = pts[(pts >= t[k]) & (pts <= t[-k - 1])]
        c = with_neighbours(pts)
        if extrapolation == "error":
            c = c[(c >= t[k]) & (c <= t[-k - 1])]
        if extrapolation == "constant" and k == 0:  # scikit-learn fails above the range (f_max[-0:])
            c = c[c <= t[-1]]
        cols.append(c)
    X = columns(cols)
    if missing:
        X = np.vstack([X, [np.nan] * X.shape[1]])
        if extrapolation in ("constant", "linear", "continue", "periodic"):
            X = np.vstack([X, np.resize([np.inf, -np.inf], X.shape[1]), np.resize([-np.inf, np.inf], X.shape[1])])
    return X


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_spline(extrapolation, backend):
    """Degrees 0..4, uniform / quantile knots, with and without bias, NaN / inf with handle_missing='zeros'."""
    for degree, knots, bias, missing in ((0, "uniform", True, "error"), (1, "quantile", False, "zeros"),
                                         (2, "uniform", False, "error"), (3, "quantile", True, "zeros"),
                                         (4, "uniform", True, "zeros")):
        if extrapolation == "periodic" and degree >= 4:
            continue
        if extrapolation == "constant" and degree == 0 and missing == "zeros":
            continue
        model = SplineTransformer(n_knots=5, degree=degree, knots=knots, extrapolation=extrapolation,
                                  include_bias=bias, handle_missing=missing).fit(train())
        X = spline_data(model, extrapolation, missing=missing == "zeros")
        check(model, X, backend)


def test_spline_array_knots_periodic():
    knots = np.array([[-2.0, 0.0, 0.3], [-1.0, 0.5, 1.5], [0.0, 1.0, 2.0], [2.0, 3.0, 2.5]])
    model = SplineTransformer(knots=knots, degree=2, extrapolation="periodic").fit(train())
    X = columns([with_neighbours(np.r_[knots[:, j], knots[:, j] + 3 * (knots[-1, j] - knots[0, j]),
                                       knots[:, j] - 5 * (knots[-1, j] - knots[0, j]), [-7.3, 11.1]])
                 for j in range(3)])
    check(model, X, "torch")


@pytest.mark.parametrize("degree", [0, 1])
def test_spline_linear_low_degree(degree):
    """scikit-learn 1.9's linear extrapolation with degree <= 1 widens the bounds of every feature after the
    first (its loop variable ``degree`` grows); reproduced as it is."""
    model = SplineTransformer(n_knots=6, degree=degree, extrapolation="linear").fit(train())
    conv = check(model, spline_data(model, "linear", missing=False), "torch")
    op = conv.graph.nodes[-1].op
    assert isinstance(op, Spline)
    assert not np.array_equal(op.bounds[1], [op.lower[1], op.upper[1]])


def test_spline_error_beyond_knots_is_nan():
    """scikit-learn raises on values beyond the knots with extrapolation='error'; the IR gives NaN."""
    model = SplineTransformer(n_knots=4, extrapolation="error").fit(train())
    X = train()[:3].copy()
    X[0, 0] = 50.0
    with pytest.raises(ValueError):
        model.transform(X)
    out = tuner.compile(model, backend="torch").transform(X)
    S = out.shape[1] // 3
    assert np.isnan(out[0, :S]).all() and np.isfinite(out[0, S:]).all() and np.isfinite(out[1:]).all()


# --------------------------------------------------------------------------- input checks, pipelines, tvm


@pytest.mark.parametrize("model,nan_ok,inf_ok", [
    (KBinsDiscretizer(n_bins=3, encode="onehot"), False, False),
    (PolynomialFeatures(2), False, False),
    (SplineTransformer(), False, False),
    (SplineTransformer(handle_missing="zeros"), True, True),
    (SplineTransformer(handle_missing="zeros", extrapolation="error"), True, False),
    (SplineTransformer(handle_missing="zeros", extrapolation="continue", sparse_output=True), True, False),
], ids=["kbins", "poly", "spline", "spline-zeros", "spline-zeros-error", "spline-zeros-sparse"])
def test_refusals(model, nan_ok, inf_ok):
    model.fit(train())
    conv = strategies.convert(model)
    assert (conv.input.allow_nan, conv.input.allow_inf) == (nan_ok, inf_ok)
    for value, ok in ((np.nan, nan_ok), (np.inf, inf_ok), (-np.inf, inf_ok)):
        bad = train()[:3].copy()
        bad[0, 0] = value  # column 0: scikit-learn's sparse spline output zeroes NaN only there (next test)
        if ok:
            assert_scores(reference.predict(conv, bad, "transform"), dense(model.transform(bad)), what=str(value))
            continue
        with pytest.raises(ValueError):
            model.transform(bad)
        with pytest.raises(ValueError):
            reference.predict(conv, bad, "transform")


def test_spline_sparse_nan_is_dense():
    """scikit-learn 1.9's sparse spline path (continue / periodic / error) zeroes a NaN only in feature 0;
    in later features the row gets the basis at the batch's smallest value.  The IR gives zeros, as the
    dense path (and the documentation) do."""
    kw = dict(n_knots=4, extrapolation="continue", handle_missing="zeros")
    sparse_model = SplineTransformer(sparse_output=True, **kw).fit(train())
    dense_model = SplineTransformer(**kw).fit(train())
    X = train()[:4].copy()
    X[0, 1] = np.nan
    want = dense_model.transform(X)
    assert not np.allclose(dense(sparse_model.transform(X)), want)
    assert_scores(tuner.compile(sparse_model, backend="torch").transform(X), want)


def test_pipeline():
    X = train()
    y = X[:, 0] ** 2 + np.sin(X[:, 1])
    ct = ColumnTransformer([("kb", KBinsDiscretizer(n_bins=4, encode="onehot"), [0, 1]),
                            ("poly", PolynomialFeatures(2), [1, 2]),
                            ("sp", SplineTransformer(n_knots=4, extrapolation="linear"), [2])])
    pipe = make_pipeline(ct, StandardScaler(), Ridge()).fit(X, y)
    Xt = np.random.default_rng(5).normal(size=(60, 3)) * 2
    assert_scores(tuner.compile(pipe, backend="torchscript").predict(Xt), pipe.predict(Xt))


@pytest.mark.parametrize("model", [
    KBinsDiscretizer(n_bins=[3, 5, 4], encode="onehot-dense", strategy="quantile", quantile_method="linear"),
    PolynomialFeatures(degree=(1, 3), interaction_only=True),
    SplineTransformer(n_knots=4, degree=3, extrapolation="periodic", handle_missing="zeros", include_bias=False),
], ids=["bucketize", "polynomial", "spline"])
def test_tvm(model):
    model.fit(train())
    if isinstance(model, KBinsDiscretizer):
        X = kbins_data(model)
    elif isinstance(model, SplineTransformer):
        X = spline_data(model, "periodic", missing=True)
    else:
        X = train()[:30] * 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(model, X, "tvm")


# --------------------------------------------------------------------------- the IR itself


def test_round_trip():
    X = train()
    models = [KBinsDiscretizer(n_bins=4, encode="onehot").fit(X), PolynomialFeatures((2, 3)).fit(X),
              SplineTransformer(degree=1, extrapolation="linear", include_bias=False).fit(X),
              SplineTransformer(extrapolation="periodic").fit(X)]
    for model in models:
        conv = strategies.convert(model)
        back = from_bytes(to_bytes(conv.graph))
        assert content_hash(back) == content_hash(conv.graph)
        assert content_hash(strategies.convert(model).graph) == content_hash(conv.graph)
        np.testing.assert_array_equal(reference.evaluate(back, X), reference.evaluate(conv.graph, X))


def test_op_validation():
    with pytest.raises(ValueError):
        Bucketize.from_edges([np.array([1.0, 0.0])])
    with pytest.raises(ValueError):
        Bucketize.from_edges([np.array([0.0, np.nan])])
    with pytest.raises(ValueError):
        Polynomial(np.array([[1, -1]]))
    with pytest.raises(ValueError):
        Spline(1, 2, "constant", np.array([[0.0, 1.0, 2.0, 3.0, 2.5, 5.0]]))  # not sorted
    with pytest.raises(ValueError):
        Spline(1, 1, "wrap", np.arange(6.0)[None])
    op = Bucketize.from_edges([np.array([0.0, 1.0]), np.array([]), np.array([-1.0, 0.0, 0.0, 3.0])])
    x = np.array([[0.0, 5.0, 0.0], [np.nextafter(1.0, 0), -5.0, 3.0], [7.0, 0.0, -2.0]])
    np.testing.assert_array_equal(reference.evaluate_op(op, x), [[1, 0, 3], [1, 0, 4], [2, 0, 0]])
    # edge values outside the edge columns are normalised away (equal ops hash alike)
    t = np.arange(8.0)[None]
    a = Spline(1, 2, "constant", t, edge_value=np.ones((1, 2, 5)))
    b = Spline(1, 2, "constant", t, edge_value=np.where(a.edge_mask(), 1.0, 0.0))
    assert content_hash(a) == content_hash(b)
