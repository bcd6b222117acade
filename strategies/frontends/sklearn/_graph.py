"""Building a model's graph: values with what is known of their columns, and the input spec that results.

A converter receives the :class:`Builder` and the :class:`Value` its estimator
reads, adds operators, and returns the value it produces (and a head when it is
a final estimator).  The builder tracks, per column of every value:

* its kind: a number, or the integer code of a string column of the input;
* which input column it copies (through gathers and string imputation), so an
  encoder can learn the input column its categories belong to;
* which input columns' NaN / inf / unknown categories can reach it (``taint``),
  so a step that refuses NaN makes exactly those input columns refuse it, as
  scikit-learn's own check would at that step.

From that the builder derives the :class:`~strategies.head.InputSpec`: per
input column, its kind, the vocabulary of its string codes (every string any
encoder reading it knows, in first-seen order), and what the model refuses.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ...head import ColumnSpec, Head, InputSpec
from ...ir import INPUT, Graph, Node, Op, eliminate_dead
from ...ir.columns import Gather
from ._common import Step, name_of, unsupported

Taint = tuple[str, int]  # ("nan" | "inf" | "unknown", input column)


@dataclass(frozen=True)
class Col:
    """What the builder knows of one column of a value."""

    kind: str = "number"  # "number", or "string": codes of input column ``source``
    source: int | None = None  # the input column this one copies (through gathers / string imputation)
    taint: frozenset[Taint] = frozenset()
    filled: frozenset[float] = frozenset()  # missing markers (codes) an imputer replaced on the way


@dataclass(frozen=True)
class Value:
    """A value of the graph being built: its index (-1: the input) and its columns.

    ``sparse``: scikit-learn hands this value on as a sparse matrix (a one-hot encoder's or a
    ColumnTransformer's sparse output); XGBoost reads the zeros of a sparse matrix as missing.
    """

    index: int
    cols: tuple[Col, ...]
    sparse: bool = False

    @property
    def width(self) -> int:
        return len(self.cols)


def union_taint(cols: Iterable[Col]) -> frozenset[Taint]:
    out: frozenset[Taint] = frozenset()
    for c in cols:
        out |= c.taint
    return out


def without(taint: frozenset[Taint], kinds: Iterable[str]) -> frozenset[Taint]:
    kinds = set(kinds)
    return frozenset(t for t in taint if t[0] not in kinds)


@dataclass
class Builder:
    """Collects nodes, string vocabularies and refusals while converters run."""

    n_features: int
    feature_names: tuple[str, ...] | None = None
    nodes: list[Node] = field(default_factory=list)
    vocab: dict[int, dict[str | None, int]] = field(default_factory=dict)
    refused: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    known: dict[int, list[tuple[np.ndarray, str]]] = field(default_factory=lambda: defaultdict(list))
    unknown_known: dict[int, tuple[np.ndarray, str]] = field(default_factory=dict)
    refused_values: dict[int, tuple[list[float], str]] = field(default_factory=dict)
    # converts a part of a composition (the frontend's table of converters): compositions call it
    convert: Callable[[Any, "Builder", Value], tuple[Value, Any]] | None = None

    def input(self) -> Value:
        return Value(INPUT, tuple(Col(source=j, taint=frozenset({("nan", j), ("inf", j)}))
                                  for j in range(self.n_features)))

    def add(self, op: Op, inputs: Sequence[Value], cols: Sequence[Col]) -> Value:
        """Append ``op`` reading ``inputs``; ``cols`` describes its output columns."""
        if len(cols) != op.output_type().width:
            raise AssertionError(f"{op.kind}: {len(cols)} column facts for width {op.output_type().width}")
        self.nodes.append(Node(op, tuple(v.index for v in inputs)))
        return Value(len(self.nodes) - 1, tuple(cols))

    def gather(self, x: Value, columns: Sequence[int]) -> Value:
        """``x[:, columns]`` (no node when it is all of ``x`` in order)."""
        columns = [int(c) for c in columns]
        if columns == list(range(x.width)):
            return x
        v = self.add(Gather(x.width, np.asarray(columns, dtype=np.int32)), [x], [x.cols[c] for c in columns])
        return replace(v, sparse=x.sparse)

    # ---- categories
    def code(self, col: Col, category: Any, who: Any) -> float:
        """The value a category of ``col`` is matched by: a number as it is; a string, or None (which
        scikit-learn keeps apart from NaN), as its input code."""
        if category is None or isinstance(category, (str, np.str_)):
            if col.source is None:
                raise unsupported(who, "it has string categories for a column computed from other columns")
            return float(self._string_code(col.source, None if category is None else str(category), who))
        if isinstance(category, (bool, np.bool_)):
            return float(category)
        try:
            return float(category)
        except (TypeError, ValueError):
            raise unsupported(who, f"its category {category!r} is neither a string nor a number") from None

    def _string_code(self, source: int, s: str | None, who: Any) -> int:
        table = self.vocab.setdefault(source, {})
        return table.setdefault(s, len(table))

    def string_col(self, col: Col, who: Any) -> Col:
        """``col`` marked as holding string codes (its input column becomes a string column)."""
        if col.kind == "string":
            return col
        if col.source is None:
            raise unsupported(who, "it reads strings from a column computed from other columns")
        self.vocab.setdefault(col.source, {})
        return replace(col, kind="string")

    # ---- refusals
    def refuse(self, x: Value | Sequence[Col], kinds: Iterable[str], who: Any) -> None:
        """A step refuses NaN / inf in what it reads: so do the input columns whose values reach it."""
        kinds = set(kinds)
        cols = x.cols if isinstance(x, Value) else x
        for kind, j in union_taint(cols):
            if kind in kinds:
                self.refused[j].add(kind)
            elif kind == "unknown" and "nan" in kinds and j in self.unknown_known:
                self._require(j, *self.unknown_known[j])

    def require_known(self, col: Col, values: Iterable[float], who: Any) -> None:
        """Values of ``col`` outside ``values`` are an error (``handle_unknown='error'``)."""
        if col.source is None:
            raise unsupported(who, "handle_unknown='error' on a column computed from other columns "
                              "cannot be checked at the input")
        self._require(col.source, np.array([*values, *col.filled], dtype=np.float64), name_of(who))

    def _require(self, j: int, values: np.ndarray, who: str) -> None:
        self.known[j].append((values, who))

    def refuse_value(self, col: Col, value: float, who: Any) -> None:
        """The input value ``value`` of ``col`` is an error (MissingIndicator's ``error_on_new``)."""
        if col.source is None:
            raise unsupported(who, "error_on_new=True on a column computed from other columns cannot be checked "
                              "at the input")
        vals, _ = self.refused_values.get(col.source, ([], ""))
        self.refused_values[col.source] = (vals + [float(value)], name_of(who))

    # ---- the result
    def spec(self) -> InputSpec:
        plain = not self.vocab and not self.known and not self.refused_values
        flags = {(("nan" not in self.refused.get(j, ())), ("inf" not in self.refused.get(j, ())))
                 for j in range(self.n_features)}
        if plain and len(flags) <= 1:
            allow_nan, allow_inf = flags.pop() if flags else (True, True)
            return InputSpec(self.n_features, allow_nan, allow_inf, self.feature_names)
        cols = []
        for j in range(self.n_features):
            vocab = self.vocab.get(j)
            known = _intersect(self.known[j]) if self.known.get(j) else None
            cols.append(ColumnSpec(
                kind="string" if vocab is not None else "number",
                vocabulary=tuple(vocab) if vocab else (),
                allow_nan="nan" not in self.refused.get(j, ()),
                allow_inf="inf" not in self.refused.get(j, ()),
                known=None if known is None else known[0],
                known_by=known[1] if known else "",
                refused=np.array(self.refused_values[j][0]) if j in self.refused_values else None,
                refused_by=self.refused_values[j][1] if j in self.refused_values else "",
            ))
        return InputSpec(self.n_features, feature_names=self.feature_names, columns=tuple(cols))

    def graph(self, out: Value) -> Graph:
        """The graph ending at ``out``, without nodes it does not need."""
        nodes = list(self.nodes)
        if out.index == INPUT or out.index != len(nodes) - 1:
            nodes.append(Node(Gather(out.width if out.index != INPUT else self.n_features,
                                     np.arange(out.width, dtype=np.int32)), (out.index,)))
        graph = Graph(self.n_features, tuple(nodes))
        return eliminate_dead(graph)


def _intersect(sets: list[tuple[np.ndarray, str]]) -> tuple[np.ndarray, str]:
    """Values every one of several encoders knows (NaN counts when all know it)."""
    values, who = sets[0]
    for other, name in sets[1:]:
        keep = np.isin(values, other) | (np.isnan(values) & np.isnan(other).any())
        values, who = values[keep], f"{who} and {name}"
    return values, who


# --------------------------------------------------------------------------- steps of the first frontend


ELEMENTWISE = ("scaler",)


def apply_step(b: Builder, x: Value, step: Step, who: Any) -> tuple[Value, Head | None]:
    """Add a :class:`Step` (a chain of ops with NaN / inf flows) reading ``x``."""
    kinds = [k for k, flow in (("nan", step.nan), ("inf", step.inf)) if flow == "reject"]
    if kinds:
        b.refuse(x, kinds, who)
    drop = [k for k, flow in (("nan", step.nan), ("inf", step.inf)) if flow != "pass"]
    v = x
    for op in step.ops:
        if op.kind in ELEMENTWISE:
            cols = [Col(taint=without(c.taint, drop)) for c in v.cols]
        elif op.kind == "imputer":
            cols = [Col(taint=without(v.cols[k].taint, drop)) for k in op.keep]
        else:
            t = without(union_taint(v.cols), drop)
            cols = [Col(taint=t)] * op.output_type().width
        v = b.add(op, [v], cols)
    if x.sparse and all(op.kind in ELEMENTWISE + ("normalizer",) for op in step.ops):
        v = replace(v, sparse=True)  # scaling a sparse matrix keeps it sparse
    return v, step.head


Converter = Callable[[Any, Builder, Value], tuple[Value, "Head | None"]]


def legacy(fn: Callable[[Any], Step]) -> Converter:
    """A converter from a function that returns a :class:`Step`."""

    def convert(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
        return apply_step(b, x, fn(model), model)

    convert.__name__ = fn.__name__
    return convert
