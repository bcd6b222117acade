"""Kernel support vector machines, as libsvm (inside scikit-learn) predicts with them.

* ``kernel_machine``  the weighted kernel sums against the support vectors:
  ``raw[:, o] = sum_s coef[s, o] * K(x, sv_s) + intercept[o]`` (libsvm's decision
  values, ``sum - rho``).  The kernel matrix against the support vectors is the heavy part;
  with a ``precomputed`` kernel the input is that matrix (one column per support vector).
* ``one_vs_one``      libsvm's one-vs-one classifier read off the ``k(k-1)/2`` pairwise
  decision values: the decision function (scikit-learn's ``ovo`` or ``ovr`` shape) and the
  votes ``predict`` counts.
* ``pairwise_coupling``  the probabilities: Platt sigmoids per pair, coupled as libsvm couples
  them (an iteration that stops when each row has converged); it can carry the one-vs-one
  columns in front of them, and its ``raw`` value leaves the coupling out (``predict`` and
  ``decision_function`` do not run it).

Both follow ``sklearn/svm/src/libsvm/svm.cpp`` (``Kernel::k_function``,
``svm_predict_values``, ``sigmoid_predict``, ``multiclass_probability``) operation by
operation, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from .core import Op, TensorType, _arr, register_op

KERNELS = ("linear", "poly", "rbf", "sigmoid", "precomputed")
DECISION_SHAPES = ("ovo", "ovr")
MIN_PROB = 1e-7  # libsvm clips each pairwise probability to [MIN_PROB, 1 - MIN_PROB]


def powi(base: np.ndarray, times: int) -> np.ndarray:
    """libsvm's ``powi``: ``base ** times`` by repeated squaring, in its multiplication order."""
    tmp, ret = base, np.ones_like(base)
    t = times
    while t > 0:
        if t % 2 == 1:
            ret = ret * tmp
        tmp = tmp * tmp
        t //= 2
    return ret


@register_op
@dataclass(frozen=True, eq=False)
class KernelMachine(Op):
    """``raw = K(x, support_vectors) @ coef + intercept`` with libsvm's kernels.

    ``K(x, s)``: ``linear`` ``x.s``; ``poly`` ``powi(gamma * x.s + coef0, degree)``;
    ``rbf`` ``exp(-gamma * sum((x - s) ** 2))`` (direct differences, as libsvm);
    ``sigmoid`` ``tanh(gamma * x.s + coef0)``; ``precomputed`` the input itself is ``K`` (one column per
    support vector, libsvm's ``x->values[sv->ind]``; ``support_vectors`` has no columns).
    """

    kind: ClassVar[str] = "kernel_machine"
    support_vectors: np.ndarray  # float64 (S, F); (S, 0) for a precomputed kernel
    coef: np.ndarray  # float64 (S, m): the dual coefficients of every output
    intercept: np.ndarray  # float64 (m,)
    kernel: str
    gamma: float = 1.0
    coef0: float = 0.0
    degree: int = 3

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "support_vectors", _arr(self.support_vectors, np.float64, 2, "support_vectors"))
        s(self, "coef", _arr(self.coef, np.float64, 2, "coef"))
        s(self, "intercept", _arr(self.intercept, np.float64, 1, "intercept"))
        s(self, "gamma", float(self.gamma))
        s(self, "coef0", float(self.coef0))
        s(self, "degree", int(self.degree))
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel_machine: kernel must be one of {KERNELS}, got {self.kernel!r}")
        S, m = self.coef.shape
        if self.support_vectors.shape[0] != S or self.intercept.shape[0] != m:
            raise ValueError(f"kernel_machine: {self.support_vectors.shape[0]} support vectors, coef {self.coef.shape}"
                             f" and {self.intercept.shape[0]} intercepts do not agree")
        if self.degree < 0:
            raise ValueError(f"kernel_machine: degree must be >= 0, got {self.degree}")
        if self.kernel == "precomputed" and self.support_vectors.shape[1] != 0:
            raise ValueError("kernel_machine: a precomputed kernel keeps no support vectors' features "
                             "(support_vectors of shape (S, 0))")

    @property
    def n_features(self) -> int:
        return self.n_support if self.kernel == "precomputed" else int(self.support_vectors.shape[1])

    @property
    def n_support(self) -> int:
        return int(self.support_vectors.shape[0])

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(int(self.coef.shape[1]), "float64")

    def summary(self) -> str:
        return (f"kernel_machine({self.kernel}): {self.n_support} support vectors x {self.n_features} features "
                f"-> {self.coef.shape[1]} outputs")

    def kernel_matrix(self, x: np.ndarray) -> np.ndarray:
        """float64 ``(n, S)``: ``K(x_i, s_j)`` as libsvm computes each entry."""
        if self.kernel == "precomputed":
            return np.array(x, dtype=np.float64)
        sv = self.support_vectors
        if self.kernel == "rbf":
            d2 = np.empty((x.shape[0], sv.shape[0]))
            for j in range(sv.shape[0]):
                diff = x - sv[j]
                d2[:, j] = np.einsum("ij,ij->i", diff, diff)
            return np.exp(-self.gamma * d2)
        dot = x @ sv.T
        if self.kernel == "linear":
            return dot
        if self.kernel == "poly":
            return powi(self.gamma * dot + self.coef0, self.degree)
        return np.tanh(self.gamma * dot + self.coef0)

    def reference(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return self.kernel_matrix(x) @ self.coef + self.intercept


def n_pairs(k: int) -> int:
    return k * (k - 1) // 2


def pairs(k: int) -> list[tuple[int, int]]:
    """libsvm's order of the class pairs ``(i, j)``, ``i < j``."""
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


@register_op
@dataclass(frozen=True, eq=False)
class OneVsOne(Op):
    """libsvm's one-vs-one classification from the pairwise decision values ``d`` (libsvm's sign: ``d > 0``
    votes for the pair's first class).

    Output columns, side by side:

    * the decision function, ``D`` columns: with two classes ``-d`` (scikit-learn's binary sign); else
      ``d`` itself (``ovo``) or scikit-learn's ``_ovr_decision_function(d < 0, -d, k)`` (``ovr``);
    * the votes, ``k`` columns: pair ``(i, j)`` votes ``i`` when ``d > 0``, else ``j`` (libsvm's
      ``predict`` takes the first class with the most votes).
    """

    kind: ClassVar[str] = "one_vs_one"
    n_classes: int
    decision_shape: str = "ovr"

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_classes", int(self.n_classes))
        if self.n_classes < 2:
            raise ValueError(f"one_vs_one: needs at least two classes, got {self.n_classes}")
        if self.decision_shape not in DECISION_SHAPES:
            raise ValueError(f"one_vs_one: decision_shape must be one of {DECISION_SHAPES}, "
                             f"got {self.decision_shape!r}")

    @property
    def n_pairs(self) -> int:
        return n_pairs(self.n_classes)

    @property
    def decision_width(self) -> int:
        if self.n_classes == 2:
            return 1
        return self.n_pairs if self.decision_shape == "ovo" else self.n_classes

    def blocks(self) -> dict[str, tuple[int, int]]:
        """Column ranges of the output: ``decision`` and ``votes``."""
        d, k = self.decision_width, self.n_classes
        return {"decision": (0, d), "votes": (d, d + k)}

    def input_type(self) -> TensorType:
        return TensorType(self.n_pairs, "float64")

    def output_type(self) -> TensorType:
        return TensorType(self.decision_width + self.n_classes, "float64")

    def summary(self) -> str:
        return f"one_vs_one: {self.n_classes} classes, {self.decision_shape} decision"

    def reference(self, d: np.ndarray) -> np.ndarray:
        k = self.n_classes
        n = d.shape[0]
        votes = np.zeros((n, k))
        conf = np.zeros((n, k))
        ovr_votes = np.zeros((n, k))
        for p, (i, j) in enumerate(pairs(k)):
            win_i = d[:, p] > 0
            votes[:, i] += win_i
            votes[:, j] += ~win_i
            # scikit-learn's _ovr_decision_function(d < 0, -d, k)
            conf[:, i] -= -d[:, p]
            conf[:, j] += -d[:, p]
            neg = d[:, p] < 0
            ovr_votes[:, i] += ~neg
            ovr_votes[:, j] += neg
        if k == 2:
            decision = -d
        elif self.decision_shape == "ovo":
            decision = d
        else:
            decision = ovr_votes + conf / (3 * (np.abs(conf) + 1))
        return np.concatenate([decision, votes], axis=1)


@register_op
@dataclass(frozen=True, eq=False)
class PairwiseCoupling(Op):
    """libsvm's probabilities from the pairwise decision values ``d``: each pair's ``sigmoid_predict(d, A, B)``
    clipped to ``[1e-7, 1 - 1e-7]`` (by libsvm's own max / min: NaN becomes 1e-7), coupled by ``multiclass_probability`` (its iteration and stopping rule,
    at most ``max(100, k)`` rounds; a row stops at the first round whose error is below ``0.005 / k``).

    With ``carry > 0`` it reads two values, ``carry`` columns (the one-vs-one head's decision function and
    votes) and ``d``, and outputs ``[carried | probabilities]``.  Its ``raw`` value (:meth:`raw_op`) leaves
    the probabilities at 0 and runs no coupling (``couple=False``): what ``predict`` and
    ``decision_function`` read, as libsvm's ``predict`` never computes probabilities.
    """

    kind: ClassVar[str] = "pairwise_coupling"
    n_classes: int
    prob_a: np.ndarray  # float64 (k(k-1)/2,)
    prob_b: np.ndarray  # float64 (k(k-1)/2,)
    carry: int = field(default=0, metadata={"hash_default": True})
    couple: bool = field(default=True, metadata={"hash_default": True})

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "n_classes", int(self.n_classes))
        if self.n_classes < 2:
            raise ValueError(f"pairwise_coupling: needs at least two classes, got {self.n_classes}")
        s(self, "prob_a", _arr(self.prob_a, np.float64, 1, "prob_a"))
        s(self, "prob_b", _arr(self.prob_b, np.float64, 1, "prob_b"))
        s(self, "carry", int(self.carry))
        s(self, "couple", bool(self.couple))
        m = self.n_pairs
        if self.prob_a.shape[0] != m or self.prob_b.shape[0] != m:
            raise ValueError(f"pairwise_coupling: needs {m} Platt parameters of each kind, got "
                             f"{self.prob_a.shape[0]} and {self.prob_b.shape[0]}")
        if self.carry < 0:
            raise ValueError(f"pairwise_coupling: carry must be >= 0, got {self.carry}")

    @property
    def n_pairs(self) -> int:
        return n_pairs(self.n_classes)

    @property
    def max_iter(self) -> int:
        return max(100, self.n_classes)

    def input_type(self) -> TensorType:
        return TensorType(self.n_pairs, "float64")

    def input_widths(self) -> tuple[int, ...]:
        return (self.carry, self.n_pairs) if self.carry else (self.n_pairs,)

    def output_type(self) -> TensorType:
        return TensorType(self.carry + self.n_classes, "float64")

    def raw_op(self) -> "PairwiseCoupling":
        return replace(self, couple=False) if self.couple else self

    def summary(self) -> str:
        carried = f", {self.carry} columns carried" if self.carry else ""
        return f"pairwise_coupling: {self.n_classes} classes{carried}{'' if self.couple else ' (not coupled)'}"

    def pairwise_probabilities(self, d: np.ndarray) -> np.ndarray:
        """``(n, m)``: libsvm's clipped ``sigmoid_predict`` of every pair."""
        with np.errstate(over="ignore", invalid="ignore"):
            f = d * self.prob_a + self.prob_b
            pos = f >= 0
            e = np.exp(np.where(pos, -f, f))
            r = np.where(pos, e / (1.0 + e), 1.0 / (1 + e))
        # libsvm's own max / min (x > y ? x : y, x < y ? x : y): a NaN probability becomes MIN_PROB
        r = np.where(r > MIN_PROB, r, MIN_PROB)
        return np.where(r < 1 - MIN_PROB, r, 1 - MIN_PROB)

    def reference(self, *xs: np.ndarray) -> np.ndarray:
        """``[carried | probabilities]`` (probabilities 0 when not coupled)."""
        carried, d = xs if self.carry else (xs[0][:, :0], xs[0])
        p = self.coupling(d) if self.couple else np.zeros((d.shape[0], self.n_classes))
        return np.concatenate([np.asarray(carried, dtype=np.float64), p], axis=1)

    def coupling(self, d: np.ndarray) -> np.ndarray:
        """libsvm's ``multiclass_probability`` on every row (vectorised over rows, in its operation order)."""
        k, n = self.n_classes, d.shape[0]
        rp = self.pairwise_probabilities(d)
        r = np.zeros((n, k, k))
        for p, (i, j) in enumerate(pairs(k)):
            r[:, i, j] = rp[:, p]
            r[:, j, i] = 1 - rp[:, p]
        Q = np.zeros((n, k, k))
        for t in range(k):
            for j in range(k):
                if j != t:
                    Q[:, t, t] += r[:, j, t] * r[:, j, t]
            for j in range(t):
                Q[:, t, j] = Q[:, j, t]
            for j in range(t + 1, k):
                Q[:, t, j] = -r[:, j, t] * r[:, t, j]
        p = np.full((n, k), 1.0 / k)
        eps = 0.005 / k
        active = np.ones(n, dtype=bool)
        for _ in range(self.max_iter):
            Qp = np.zeros((n, k))
            pQp = np.zeros(n)
            for t in range(k):
                for j in range(k):
                    Qp[:, t] += Q[:, t, j] * p[:, j]
                pQp += p[:, t] * Qp[:, t]
            max_error = np.zeros(n)
            for t in range(k):
                max_error = np.maximum(max_error, np.abs(Qp[:, t] - pQp))
            active &= ~(max_error < eps)
            if not active.any():
                break
            a = active
            for t in range(k):
                diff = (-Qp[a, t] + pQp[a]) / Q[a, t, t]
                p[a, t] += diff
                pQp[a] = (pQp[a] + diff * (diff * Q[a, t, t] + 2 * Qp[a, t])) / (1 + diff) / (1 + diff)
                Qp[a] = (Qp[a] + diff[:, None] * Q[a, t, :]) / (1 + diff)[:, None]
                p[a] = p[a] / (1 + diff)[:, None]
        return p
