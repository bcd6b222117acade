"""Column routing and per-column encodings: the operators that make a pipeline a graph.

* ``gather``    picks columns (ColumnTransformer routing, feature selection);
* ``concat``    joins several values side by side (ColumnTransformer, FeatureUnion);
* ``constant``  a fixed row for every input row;
* ``lookup``    per-column category tables (one-hot, ordinal and target encoders);
* ``indicator`` missing-value indicator columns;
* ``binarize``  ``x > threshold``.

All compute in float64.  Categories are matched on values: numeric categories
by their value, string categories by the integer code the input boundary gave
them (:mod:`strategies.inputs`); NaN matches NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .core import Op, TensorType, _arr, register_op


def _check_columns(columns: np.ndarray, n: int, what: str) -> None:
    if columns.size and (columns.min() < 0 or columns.max() >= n):
        raise ValueError(f"{what}: column indices must lie in [0, {n}), got {columns.min()}..{columns.max()}")


@register_op
@dataclass(frozen=True, eq=False)
class Gather(Op):
    """``y = x[:, columns]`` (columns may repeat or be empty)."""

    kind: ClassVar[str] = "gather"
    n_features: int
    columns: np.ndarray  # int32 (W,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_features", int(self.n_features))
        object.__setattr__(self, "columns", _arr(self.columns, np.int32, 1, "columns"))
        _check_columns(self.columns, self.n_features, "gather")

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(int(self.columns.shape[0]), "float64")

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.columns, np.arange(self.n_features)))

    def summary(self) -> str:
        return f"gather: {self.n_features} -> {self.columns.shape[0]} columns"


@register_op
@dataclass(frozen=True, eq=False)
class Concat(Op):
    """``y = [x_0, x_1, ...]`` side by side; input ``j`` has ``widths[j]`` columns."""

    kind: ClassVar[str] = "concat"
    widths: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.widths or min(self.widths) < 0:
            raise ValueError(f"concat needs one or more non-negative widths, got {self.widths}")

    def input_type(self) -> TensorType:
        return TensorType(self.widths[0], "float64")

    def input_widths(self) -> tuple[int, ...]:
        return self.widths

    def output_type(self) -> TensorType:
        return TensorType(sum(self.widths), "float64")

    def summary(self) -> str:
        return f"concat: {' + '.join(map(str, self.widths))} columns"


@register_op
@dataclass(frozen=True, eq=False)
class Constant(Op):
    """Every row becomes ``value`` (the input only gives the number of rows)."""

    kind: ClassVar[str] = "constant"
    n_features: int
    value: np.ndarray  # float64 (W,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_features", int(self.n_features))
        object.__setattr__(self, "value", _arr(self.value, np.float64, 1, "value"))

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(int(self.value.shape[0]), "float64")

    def summary(self) -> str:
        return f"constant: {self.value.shape[0]} columns"


@register_op
@dataclass(frozen=True, eq=False)
class Lookup(Op):
    """Per-column category tables.

    Entry ``k`` is the category ``value[k]`` of input column ``column[k]`` (NaN
    matches NaN; a category has one entry per output it writes).  Output column ``o`` reads
    input column ``source[o]``: when the row's value there is one of that
    column's categories, ``y[o]`` is the ``weight`` of the matching entry whose
    ``target`` is ``o`` (0 when none is); when it is no category of the column
    (an unknown value), ``y[o] = unknown[o]``.  Entries with ``target = -1`` are
    known categories that write nothing (a dropped one-hot column).

    One-hot encoding: weight 1, one output per kept category, unknown 0 (or 1 in
    the infrequent column); ordinal: one output per column, weight the ordinal
    code; target encoding: weight the fitted target mean, unknown the overall mean.
    """

    kind: ClassVar[str] = "lookup"
    n_features: int
    column: np.ndarray  # int32 (K,)
    value: np.ndarray  # float64 (K,)
    target: np.ndarray  # int32 (K,), -1: no output
    weight: np.ndarray  # float64 (K,)
    source: np.ndarray  # int32 (n_out,)
    unknown: np.ndarray  # float64 (n_out,)

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "n_features", int(self.n_features))
        for name, dt in (("column", np.int32), ("value", np.float64), ("target", np.int32), ("weight", np.float64),
                         ("source", np.int32), ("unknown", np.float64)):
            s(self, name, _arr(getattr(self, name), dt, 1, name))
        K, n_out = self.column.shape[0], self.source.shape[0]
        for name in ("value", "target", "weight"):
            if getattr(self, name).shape[0] != K:
                raise ValueError(f"lookup: {name} has {getattr(self, name).shape[0]} entries, column has {K}")
        if self.unknown.shape[0] != n_out:
            raise ValueError(f"lookup: unknown has {self.unknown.shape[0]} entries for {n_out} outputs")
        _check_columns(self.column, self.n_features, "lookup column")
        _check_columns(self.source, self.n_features, "lookup source")
        t = self.target
        if K and (t.min() < -1 or t.max() >= n_out):
            raise ValueError(f"lookup: targets must lie in [-1, {n_out})")
        hit = t >= 0
        if np.any(self.source[t[hit]] != self.column[hit]):
            raise ValueError("lookup: an entry writes an output column that reads another input column")
        seen = set()
        for c, v, tt in zip(self.column.tolist(), self.value.tolist(), t.tolist()):
            k = (c, "nan" if v != v else v, tt)
            if k in seen:
                raise ValueError(f"lookup: column {c} lists category {v!r} twice for output {tt}")
            seen.add(k)

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(int(self.source.shape[0]), "float64")

    def columns_used(self) -> np.ndarray:
        return np.unique(np.concatenate([self.column, self.source]))

    def categories(self, column: int) -> np.ndarray:
        """The category values of one input column, in entry order."""
        return self.value[self.column == column]

    def summary(self) -> str:
        return (f"lookup: {self.columns_used().size} of {self.n_features} columns, {self.column.shape[0]} categories "
                f"-> {self.source.shape[0]} outputs")


@register_op
@dataclass(frozen=True, eq=False)
class Indicator(Op):
    """``y[:, j] = 1`` where ``x[:, columns[j]]`` is missing (NaN, or equal to its marker), else 0."""

    kind: ClassVar[str] = "indicator"
    n_features: int
    columns: np.ndarray  # int32 (W,)
    missing_value: float = float("nan")
    missing_per_column: np.ndarray | None = None  # float64 (W,): a marker per output column instead

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_features", int(self.n_features))
        object.__setattr__(self, "columns", _arr(self.columns, np.int32, 1, "columns"))
        object.__setattr__(self, "missing_value", float(self.missing_value))
        _check_columns(self.columns, self.n_features, "indicator")
        if self.missing_per_column is not None:
            m = _arr(self.missing_per_column, np.float64, 1, "missing_per_column")
            if m.shape != self.columns.shape:
                raise ValueError("missing_per_column needs one marker per output column")
            object.__setattr__(self, "missing_per_column", m)

    def markers(self) -> np.ndarray:
        """The missing marker of every output column."""
        if self.missing_per_column is not None:
            return self.missing_per_column
        return np.full(self.columns.shape[0], self.missing_value)

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(int(self.columns.shape[0]), "float64")

    def summary(self) -> str:
        return f"indicator: {self.columns.shape[0]} of {self.n_features} columns"


@register_op
@dataclass(frozen=True, eq=False)
class Binarize(Op):
    """``y = 1 if x > threshold else 0`` per column (NaN gives 0)."""

    kind: ClassVar[str] = "binarize"
    n_features: int
    threshold: np.ndarray  # float64 (F,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_features", int(self.n_features))
        t = np.broadcast_to(np.asarray(self.threshold, dtype=np.float64), (self.n_features,))
        object.__setattr__(self, "threshold", _arr(t, np.float64, 1, "threshold"))

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return self.input_type()

    def summary(self) -> str:
        return f"binarize: {self.n_features} columns"
