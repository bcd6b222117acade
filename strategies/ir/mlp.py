"""Multi-layer perceptrons (MLPClassifier, MLPRegressor): the ``mlp`` operator.

``raw`` is the last layer's pre-activation; the output activation (softmax,
logistic, identity) is the op's post-transform.  Every layer computes
``a @ W + b`` then the hidden activation, in float64, in scikit-learn's order
(``_forward_pass_fast``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .core import IDENTITY, Op, PostTransform, TensorType, _arr, register_op

ACTIVATIONS = ("identity", "logistic", "tanh", "relu")


def activate(name: str, a: np.ndarray) -> np.ndarray:
    """scikit-learn's hidden activations (``sklearn.neural_network._base.ACTIVATIONS``) in NumPy."""
    if name == "identity":
        return a
    if name == "logistic":
        from scipy.special import expit

        return expit(a)
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, 0)
    raise ValueError(f"mlp: activation must be one of {ACTIVATIONS}, got {name!r}")


@register_op
@dataclass(frozen=True, eq=False)
class MLP(Op):
    """``a_0 = x``; ``a_{i+1} = act(a_i @ weights[i] + biases[i])`` with the hidden activation on every
    layer but the last; ``raw`` is the last layer's ``a @ W + b``."""

    kind: ClassVar[str] = "mlp"
    weights: tuple[np.ndarray, ...]  # float64 (in_i, out_i), scikit-learn's coefs_
    biases: tuple[np.ndarray, ...]  # float64 (out_i,)
    activation: str = "relu"
    post_transform: PostTransform = IDENTITY  # type: ignore[assignment]

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "weights", tuple(_arr(w, np.float64, 2, f"weights[{i}]") for i, w in enumerate(self.weights)))
        s(self, "biases", tuple(_arr(b, np.float64, 1, f"biases[{i}]") for i, b in enumerate(self.biases)))
        if not self.weights or len(self.weights) != len(self.biases):
            raise ValueError(f"mlp: needs one or more layers with one bias each, got {len(self.weights)} weights "
                             f"and {len(self.biases)} biases")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"mlp: activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if b.shape[0] != w.shape[1]:
                raise ValueError(f"mlp: layer {i} has {w.shape[1]} outputs but {b.shape[0]} biases")
            if i and w.shape[0] != self.weights[i - 1].shape[1]:
                raise ValueError(f"mlp: layer {i} reads {w.shape[0]} values, layer {i - 1} writes "
                                 f"{self.weights[i - 1].shape[1]}")

    @property
    def n_features(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    @property
    def widths(self) -> tuple[int, ...]:
        """Input width, then every layer's output width."""
        return (self.n_features, *(int(w.shape[1]) for w in self.weights))

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(int(self.weights[-1].shape[1]), "float64")

    def reference(self, x: np.ndarray) -> np.ndarray:
        a = np.asarray(x, dtype=np.float64)
        last = self.n_layers - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = a @ w
            a += b
            if i < last:
                a = activate(self.activation, a)
        return a

    def summary(self) -> str:
        return (f"mlp({self.activation}): {' -> '.join(str(w) for w in self.widths)}, "
                f"{self.post_transform.kind}")
