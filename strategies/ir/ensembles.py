"""Operators that combine the members of meta-estimators (voting, bagging, stacking, chains, multi-output).

* ``activation``  a member's post-transform in the middle of a graph (probabilities of a member whose
                  scores a meta-estimator reads), optionally as the pair ``[1 - p, p]`` of a binary one;
* ``label``       a member classifier's predicted label: its index by the member's rule (arg-max, or a
                  binary score against 0 / 1/2), written as a value into one output column (one-hot votes,
                  class values);
* ``average``     the (weighted) sum of several members' outputs placed into shared columns, divided by a
                  divisor, in member order (scikit-learn's ``np.average`` / ``sum(...) / n_estimators``).

All compute in float64 and follow scikit-learn's order of operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .core import IDENTITY, Op, PostTransform, TensorType, _arr, register_op

LABEL_RULES = ("argmax", "gt0", "ge0", "gt_half")


@register_op
@dataclass(frozen=True, eq=False)
class Activation(Op):
    """``y = transform(x)`` (a :class:`PostTransform` applied mid-graph); with ``pair`` a one-column input
    becomes ``[1 - y, y]`` (a binary classifier's two probabilities).  (Its NumPy rule lives in
    ``strategies.reference``, beside the post-transforms'.)"""

    kind: ClassVar[str] = "activation"
    n_features: int
    transform: PostTransform = field(default_factory=PostTransform)
    pair: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_features", int(self.n_features))
        object.__setattr__(self, "pair", bool(self.pair))
        if self.pair and self.n_features != 1:
            raise ValueError(f"activation: pair needs one input column, got {self.n_features}")

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(2 if self.pair else self.n_features, "float64")

    def summary(self) -> str:
        return f"activation({self.transform.kind}{', pair' if self.pair else ''}): {self.n_features} columns"


@register_op
@dataclass(frozen=True, eq=False)
class Label(Op):
    """A classifier's label index ``j`` from its scores, written as ``values[j]`` into output column
    ``targets[j]`` (the other columns are 0).

    ``j`` is the arg-max of the row (the first of equal maxima, as NumPy) when the input has several
    columns.  A one-column input ``v`` is binary: ``gt0`` ``j = v > 0``, ``ge0`` ``j = v >= 0``,
    ``gt_half`` ``j = v > 0.5``, ``argmax`` the arg-max of ``[1 - v, v]``.
    One-hot votes: ``targets = class positions``, ``values = weights``; a label value: one output,
    ``targets = 0``, ``values = class values``.
    """

    kind: ClassVar[str] = "label"
    n_features: int
    rule: str
    targets: np.ndarray  # int32 (n_labels,)
    values: np.ndarray  # float64 (n_labels,)
    n_outputs: int = 1

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "n_features", int(self.n_features))
        s(self, "n_outputs", int(self.n_outputs))
        s(self, "targets", _arr(self.targets, np.int32, 1, "targets"))
        s(self, "values", _arr(self.values, np.float64, 1, "values"))
        if self.rule not in LABEL_RULES:
            raise ValueError(f"label: rule must be one of {LABEL_RULES}, got {self.rule!r}")
        if self.n_features > 1 and self.rule != "argmax":
            raise ValueError(f"label: rule {self.rule!r} reads one column, got {self.n_features}")
        n = self.n_labels
        if self.targets.shape != (n,) or self.values.shape != (n,):
            raise ValueError(f"label: {n} labels need {n} targets and values, got {self.targets.shape[0]} "
                             f"and {self.values.shape[0]}")
        if self.targets.size and (self.targets.min() < 0 or self.targets.max() >= self.n_outputs):
            raise ValueError(f"label: targets must lie in [0, {self.n_outputs})")

    @property
    def n_labels(self) -> int:
        return max(self.n_features, 2)

    def table(self) -> np.ndarray:
        """float64 (n_labels, n_outputs): the row written for each label index."""
        t = np.zeros((self.n_labels, self.n_outputs))
        t[np.arange(self.n_labels), self.targets] = self.values
        return t

    def index(self, x: np.ndarray) -> np.ndarray:
        """The label index of every row (NumPy, float64 scores)."""
        if self.n_features > 1:
            return np.argmax(x, axis=1)
        v = x[:, 0]
        with np.errstate(invalid="ignore"):
            if self.rule == "gt0":
                return (v > 0).astype(np.intp)
            if self.rule == "ge0":
                return (v >= 0).astype(np.intp)
            if self.rule == "gt_half":
                return (v > 0.5).astype(np.intp)
            return np.argmax(np.column_stack([1 - v, v]), axis=1)

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(self.n_outputs, "float64")

    def reference(self, x: np.ndarray) -> np.ndarray:
        return self.table()[self.index(x)]

    def summary(self) -> str:
        return f"label({self.rule}): {self.n_features} scores -> {self.n_outputs} columns"


@register_op
@dataclass(frozen=True, eq=False)
class Average(Op):
    """``y = (sum_i weights[i] * place_i(x_i)) / divisor``, summed in input order from 0.

    Input ``i`` has ``widths[i]`` columns; its column ``c`` adds into output column
    ``targets[offset_i + c]`` (``offset_i`` the widths before it); outputs no column of an input
    writes to get 0 from it.  ``post_transform`` is identity.
    """

    kind: ClassVar[str] = "average"
    widths: tuple[int, ...]
    targets: np.ndarray  # int32 (sum(widths),)
    weights: np.ndarray  # float64 (n_inputs,)
    n_outputs: int
    divisor: float = 1.0

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "widths", tuple(int(w) for w in self.widths))
        s(self, "n_outputs", int(self.n_outputs))
        s(self, "divisor", float(self.divisor))
        s(self, "targets", _arr(self.targets, np.int32, 1, "targets"))
        s(self, "weights", _arr(self.weights, np.float64, 1, "weights"))
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"average needs one or more inputs of positive width, got {self.widths}")
        if self.targets.shape[0] != sum(self.widths) or self.weights.shape[0] != len(self.widths):
            raise ValueError(f"average: {sum(self.widths)} targets and {len(self.widths)} weights expected, got "
                             f"{self.targets.shape[0]} and {self.weights.shape[0]}")
        if self.targets.min() < 0 or self.targets.max() >= self.n_outputs:
            raise ValueError(f"average: targets must lie in [0, {self.n_outputs})")
        for i, t in enumerate(self.parts()):
            if np.unique(t).size != t.size:
                raise ValueError(f"average: input {i} writes one output column twice")

    def parts(self) -> list[np.ndarray]:
        """The targets of each input."""
        ends = np.cumsum(self.widths)
        return [self.targets[e - w:e] for w, e in zip(self.widths, ends)]

    def input_type(self) -> TensorType:
        return TensorType(self.widths[0], "float64")

    def input_widths(self) -> tuple[int, ...]:
        return self.widths

    def output_type(self) -> TensorType:
        return TensorType(self.n_outputs, "float64")

    @property
    def post_transform(self) -> PostTransform:
        return IDENTITY

    def reference(self, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
        acc = np.zeros((x.shape[0], self.n_outputs))
        for w, t, xi in zip(self.weights, self.parts(), (x, *more)):
            acc[:, t] += np.asarray(xi, dtype=np.float64) * w
        return acc / self.divisor

    def summary(self) -> str:
        return f"average: {len(self.widths)} inputs -> {self.n_outputs} columns"
