"""Gaussian mixtures (GaussianMixture, BayesianGaussianMixture): the ``gaussian_mixture`` operator.

Its output is ``[wlp_1 .. wlp_K, lse, proba_1 .. proba_K]``: the weighted log-probability of each
component (``_estimate_weighted_log_prob``), their log-sum-exp (``score_samples``) and
``exp(wlp - lse)`` (``predict_proba``).  The head reads ``predict`` as the first arg-max of ``wlp``, as
scikit-learn does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .core import Op, TensorType, _arr, register_op

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_CHOL_NDIM = {"full": 3, "tied": 2, "diag": 2, "spherical": 1}


@register_op
@dataclass(frozen=True, eq=False)
class GaussianMixture(Op):
    """``wlp_k = (-0.5 * (F log(2 pi) + q_k(x)) + log_det_k) + bias_k``; ``lse = logsumexp_k wlp_k``;
    ``proba_k = exp(wlp_k - lse)``.

    ``q_k`` is the squared Mahalanobis distance through the Cholesky factor of the precision
    (``precisions_cholesky_``, in scikit-learn's shape for ``covariance_type``), formed as
    ``_estimate_log_gaussian_prob`` forms it: ``sum((x L_k - mu_k L_k)^2)`` (full, tied);
    ``sum(mu^2 P) - 2 x.(mu P) + x^2.P`` with ``P = L^2`` (diag), ``sum(mu^2) P - 2 (x.mu) P + |x|^2 P``
    (spherical).  ``log_det_k`` is the
    log-determinant of ``L_k``; ``bias_k`` gathers the mixture weight and, for the Bayesian mixture,
    its degrees-of-freedom terms.
    """

    kind: ClassVar[str] = "gaussian_mixture"
    covariance_type: str
    means: np.ndarray  # float64 (K, F)
    prec_chol: np.ndarray  # float64: full (K, F, F), tied (F, F), diag (K, F), spherical (K,)
    log_det: np.ndarray  # float64 (K,)
    bias: np.ndarray  # float64 (K,)

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"gaussian_mixture: covariance_type must be one of {COVARIANCE_TYPES}, "
                             f"got {self.covariance_type!r}")
        s(self, "means", _arr(self.means, np.float64, 2, "means"))
        K, F = self.means.shape
        s(self, "prec_chol", _arr(self.prec_chol, np.float64, _CHOL_NDIM[self.covariance_type], "prec_chol"))
        want = {"full": (K, F, F), "tied": (F, F), "diag": (K, F), "spherical": (K,)}[self.covariance_type]
        if self.prec_chol.shape != want:
            raise ValueError(f"gaussian_mixture: {self.covariance_type} prec_chol must be {want}, "
                             f"got {self.prec_chol.shape}")
        for name in ("log_det", "bias"):
            a = _arr(getattr(self, name), np.float64, 1, name)
            if a.shape != (K,):
                raise ValueError(f"gaussian_mixture: {name} must have {K} entries, got {a.shape}")
            s(self, name, a)

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.means.shape[1])

    def full_chol(self) -> np.ndarray:
        """float64 (K, F, F): every component's Cholesky factor as a full matrix."""
        K, F = self.means.shape
        t, L = self.covariance_type, self.prec_chol
        if t == "full":
            return L
        if t == "tied":
            return np.broadcast_to(L, (K, F, F)).copy()
        if t == "diag":
            return np.stack([np.diag(row) for row in L]) if K else np.zeros((0, F, F))
        return L[:, None, None] * np.eye(F)[None]

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(2 * self.n_components + 1, "float64")

    def summary(self) -> str:
        return f"gaussian_mixture: {self.n_components} {self.covariance_type} components of {self.n_features} features"

    def reference(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        mu, L, t = self.means, self.prec_chol, self.covariance_type
        q = np.empty((x.shape[0], self.n_components))
        if t in ("full", "tied"):
            for k in range(self.n_components):
                Lk = L[k] if t == "full" else L
                y = np.dot(x, Lk) - np.dot(mu[k], Lk)
                q[:, k] = np.sum(np.square(y), axis=1)
        elif t == "diag":
            P = L**2
            q = np.sum(mu**2 * P, 1) - 2.0 * np.dot(x, (mu * P).T) + np.dot(x**2, P.T)
        else:
            P = L**2
            q = np.sum(mu**2, 1) * P - 2 * (np.dot(x, mu.T) * P) + np.outer(np.einsum("ij,ij->i", x, x), P)
        wlp = (-0.5 * (self.n_features * np.log(2 * np.pi) + q) + self.log_det) + self.bias
        top = wlp.max(axis=1, keepdims=True)
        lse = np.log(np.sum(np.exp(wlp - top), axis=1, keepdims=True)) + top
        return np.concatenate([wlp, lse, np.exp(wlp - lse)], axis=1)
