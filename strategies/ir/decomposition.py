"""Kernel PCA: a centred kernel matrix against the fitted rows, projected on the scaled eigenvectors.

* ``kernel_pca``  scikit-learn's ``KernelPCA.transform``: ``K = kernel(x, basis)`` as
  ``sklearn.metrics.pairwise`` computes it, centred as ``KernelCenterer.transform`` centres it
  (``K - fit_rows - rowsum(K) / S + fit_all``), times ``alphas`` (the eigenvectors divided by the
  square roots of their non-zero eigenvalues).

The linear maps of the other decompositions (PCA, FastICA, PLS, LDA) are ``linear`` operators
(after a ``scaler`` where scikit-learn centres first); only the kernel needs its own operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .core import Op, TensorType, _arr, register_op

KERNELS = ("linear", "poly", "rbf", "sigmoid", "precomputed")


@register_op
@dataclass(frozen=True, eq=False)
class KernelPCA(Op):
    """``raw = center(K(x, basis)) @ alphas``, in float64, in scikit-learn's order of operations.

    ``K(x, s)``: ``linear`` ``x.s``; ``poly`` ``(gamma * x.s + coef0) ** degree``; ``sigmoid``
    ``tanh(gamma * x.s + coef0)``; ``rbf`` ``exp(-gamma * max(-2 x.s + |x|^2 + |s|^2, 0))``
    (scikit-learn's ``euclidean_distances`` in float64: the expanded form, clipped at 0);
    ``precomputed`` the input itself is ``K`` (one column per fitted row; ``basis`` has no columns).
    ``center(K) = ((K - fit_rows) - sum(K, axis=1) / S) + fit_all`` with ``S`` fitted rows.
    (The cosine kernel is a ``normalizer`` before a ``linear`` one, as scikit-learn computes it.)
    """

    kind: ClassVar[str] = "kernel_pca"
    basis: np.ndarray  # float64 (S, F): the fitted rows (F = 0 for a precomputed kernel)
    alphas: np.ndarray  # float64 (S, m): eigenvectors / sqrt(eigenvalues), 0 where an eigenvalue is 0
    fit_rows: np.ndarray  # float64 (S,): KernelCenterer.K_fit_rows_
    fit_all: float  # KernelCenterer.K_fit_all_
    kernel: str
    gamma: float = 1.0
    coef0: float = 0.0
    degree: float = 3.0

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "basis", _arr(self.basis, np.float64, 2, "basis"))
        s(self, "alphas", _arr(self.alphas, np.float64, 2, "alphas"))
        s(self, "fit_rows", _arr(self.fit_rows, np.float64, 1, "fit_rows"))
        for name in ("fit_all", "gamma", "coef0", "degree"):
            s(self, name, float(getattr(self, name)))
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel_pca: kernel must be one of {KERNELS}, got {self.kernel!r}")
        S = self.basis.shape[0]
        if self.alphas.shape[0] != S or self.fit_rows.shape[0] != S or S == 0:
            raise ValueError(f"kernel_pca: {S} fitted rows, alphas {self.alphas.shape} and {self.fit_rows.shape[0]} "
                             "row means do not agree (at least one fitted row is needed)")
        if self.kernel == "precomputed" and self.basis.shape[1] != 0:
            raise ValueError("kernel_pca: a precomputed kernel has no fitted rows to keep (basis of shape (S, 0))")

    @property
    def n_fit(self) -> int:
        """Fitted rows ``S``: the kernel matrix's columns."""
        return int(self.basis.shape[0])

    @property
    def n_features(self) -> int:
        return self.n_fit if self.kernel == "precomputed" else int(self.basis.shape[1])

    @property
    def n_components(self) -> int:
        return int(self.alphas.shape[1])

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(self.n_components, "float64")

    def summary(self) -> str:
        return (f"kernel_pca({self.kernel}): {self.n_features} features x {self.n_fit} fitted rows "
                f"-> {self.n_components} components")

    def kernel_matrix(self, x: np.ndarray) -> np.ndarray:
        """float64 ``(n, S)``: the kernel against the fitted rows, as ``sklearn.metrics.pairwise`` computes it."""
        if self.kernel == "precomputed":
            return np.array(x, dtype=np.float64)
        dot = x @ self.basis.T
        if self.kernel == "linear":
            return dot
        if self.kernel == "rbf":
            d2 = -2 * dot
            d2 += np.einsum("ij,ij->i", x, x)[:, None]
            d2 += np.einsum("ij,ij->i", self.basis, self.basis)[None, :]
            np.maximum(d2, 0, out=d2)
            d2 *= -self.gamma
            return np.exp(d2)
        K = dot * self.gamma
        K += self.coef0
        if self.kernel == "poly":
            return K**self.degree
        return np.tanh(K)

    def centering(self) -> tuple[np.ndarray, np.ndarray]:
        """``(weights, bias)`` with ``center(K) @ alphas == K @ weights + bias`` (the centring folded in)."""
        total = self.alphas.sum(axis=0)
        weights = self.alphas - total[None, :] / self.n_fit
        bias = self.fit_all * total - self.fit_rows @ self.alphas
        return weights, bias

    def reference(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            K = self.kernel_matrix(x)
            row_mean = (np.sum(K, axis=1) / self.n_fit)[:, None]
            K -= self.fit_rows
            K -= row_mean
            K += self.fit_all
            return K @ self.alphas
