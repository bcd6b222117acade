"""Gaussian naive Bayes: the ``gaussian_nb`` operator (the per-class diagonal quadratic form).

The other naive Bayes classifiers are linear in (binarized / one-hot encoded) ``x`` and use the
``linear`` op.  Its output is the joint log-likelihood of every class, formed as
``GaussianNB._joint_log_likelihood`` forms it; the classifier's softmax is the post-transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .core import IDENTITY, Op, PostTransform, TensorType, _arr, register_op


@register_op
@dataclass(frozen=True, eq=False)
class GaussianNB(Op):
    """``raw[:, c] = log_prior[c] + (norm[c] - 0.5 * sum_j (x_j - theta[c, j]) ** 2 / var[c, j])``.

    ``norm[c]`` is ``-0.5 * sum_j log(2 pi var[c, j])``, computed by the frontend as scikit-learn does.
    """

    kind: ClassVar[str] = "gaussian_nb"
    theta: np.ndarray  # float64 (K, F)
    var: np.ndarray  # float64 (K, F), > 0
    log_prior: np.ndarray  # float64 (K,)
    norm: np.ndarray  # float64 (K,)
    post_transform: PostTransform = IDENTITY  # type: ignore[assignment]

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "theta", _arr(self.theta, np.float64, 2, "theta"))
        s(self, "var", _arr(self.var, np.float64, 2, "var"))
        K = self.theta.shape[0]
        if self.var.shape != self.theta.shape:
            raise ValueError(f"gaussian_nb: var {self.var.shape} and theta {self.theta.shape} differ in shape")
        for name in ("log_prior", "norm"):
            a = _arr(getattr(self, name), np.float64, 1, name)
            if a.shape != (K,):
                raise ValueError(f"gaussian_nb: {name} must have {K} entries, got {a.shape}")
            s(self, name, a)

    @property
    def n_classes(self) -> int:
        return int(self.theta.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.theta.shape[1])

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(self.n_classes, "float64")

    def reference(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        out = np.empty((x.shape[0], self.n_classes))
        for c in range(self.n_classes):
            n_ij = self.norm[c] - 0.5 * np.sum(((x - self.theta[c, :]) ** 2) / self.var[c, :], 1)
            out[:, c] = self.log_prior[c] + n_ij
        return out

    def summary(self) -> str:
        return f"gaussian_nb: {self.n_features} features -> {self.n_classes} classes, {self.post_transform.kind}"
