"""GaussianMixture and BayesianGaussianMixture, re-expressing Hummingbird's tests/test_sklearn_mixture.py.

Hummingbird's cases: BayesianGaussianMixture (``dirichlet_process``, ``full`` covariance, ``max_iter=100``,
``random_state=0``) with 1, 2, 3 and 7 components on ``make_blobs(n_samples=100, random_state=0)``,
``predict`` compared.  Here ``predict_proba`` and ``score_samples`` are checked as well (within the score
tolerance; labels identical).

Left out: nothing.  Beyond Hummingbird: every ``covariance_type`` of both mixtures, the
``dirichlet_distribution`` prior, both formulations, and the torchscript, inductor and tvm backends.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

import strategies
import tuner
from strategies import reference
from tolerances import assert_same_labels, assert_scores

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
METHODS = ("predict", "predict_proba", "score_samples")


@functools.lru_cache(maxsize=None)
def blobs() -> np.ndarray:
    return make_blobs(n_samples=100, random_state=0)[0]


def check(model, X, backend: str = "torch", **knobs) -> None:
    conv = strategies.convert(model)
    pred = tuner.compile(model, backend=backend, **knobs)
    for method in METHODS:
        want = getattr(model, method)(X)
        for what, got in (("reference", reference.predict(conv, X, method)), (backend, getattr(pred, method)(X))):
            if method == "predict":
                assert_same_labels(got, want, what=f"{what} {method}")
            else:
                assert_scores(got, want, what=f"{what} {method}")


@pytest.mark.parametrize("n_components", [1, 2, 3, 7])
def test_bayesian_gaussian_mixture(n_components):
    model = BayesianGaussianMixture(n_components=n_components, max_iter=100, covariance_type="full",
                                    weight_concentration_prior_type="dirichlet_process", random_state=0)
    check(model.fit(blobs()), blobs())


@pytest.mark.parametrize("form", ["per_type", "batched"])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_covariance_types(covariance_type, form):
    X = blobs()
    queries = np.vstack([X, X[:20] * 3 + 1])  # and rows far from every component
    check(GaussianMixture(n_components=3, covariance_type=covariance_type, random_state=0).fit(X), queries,
          form=form)
    bgm = BayesianGaussianMixture(n_components=4, covariance_type=covariance_type, random_state=0,
                                  weight_concentration_prior_type="dirichlet_distribution")
    check(bgm.fit(X), queries, form=form)


@pytest.mark.parametrize("backend", ["torchscript", "inductor", "tvm"])
def test_backends(backend):
    check(GaussianMixture(n_components=3, covariance_type="full", random_state=0).fit(blobs()), blobs(), backend)
