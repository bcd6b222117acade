"""The operator IR: a DAG of typed operators, and the tree-ensemble normal form.

A converted model is a :class:`Graph` (operators whose inputs are earlier
values: the input matrix ``X`` of shape ``(n, n_features)`` or other operators'
outputs) plus a :class:`~strategies.head.Head` that says how the original
model's methods are read off the graph's output.  Column routing (``gather``,
``concat``) and categorical encodings (``lookup``) live in
:mod:`strategies.ir.columns`; every operator states its input and output widths.
String columns never reach the graph: they become integer codes at the input
boundary (:mod:`strategies.inputs`).

Every operator can be evaluated to two values: ``raw`` (before its
post-transform) and ``out`` (after).  Only the last operator's post-transform
can differ from identity.  An operator with a costly last stage that only some
methods read (libsvm's pairwise coupling) names, by :meth:`Op.raw_op`, the
operator that computes its ``raw`` value without that stage.

All parameters are NumPy arrays or plain scalars, normalised on construction,
so two conversions of the same model are equal field by field and hash alike
(:func:`content_hash`), whatever file or object they came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import struct
import zipfile
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Sequence

import numpy as np

from ..ground.errors import UnsupportedModelError

DType = Literal["float32", "float64"]
# scikit-learn's _handle_zeros_in_scale: norms below this are treated as zero
NORM_TINY = 10 * float(np.finfo(np.float64).eps)
DTYPES: tuple[str, ...] = ("float32", "float64")

# LightGBM's kZeroThreshold, the float literal 1e-35f (1.0000000180025095e-35 as a double):
# with zero_as_missing, |x| <= this counts as missing.
ZERO_MISSING_THRESHOLD = float(np.float32(1e-35))


@dataclass(frozen=True)
class TensorType:
    """A 2-D value flowing between operators: ``(batch, width)`` of ``dtype``."""

    width: int
    dtype: str

    def __str__(self) -> str:
        return f"{self.dtype}[n, {self.width}]"


@dataclass(frozen=True)
class PostTransform:
    """The elementwise / row-wise map from raw scores to outputs.

    kinds:
      identity        y = x
      sigmoid         y = 1 / (1 + exp(-param * x))           (param defaults to 1)
      softmax         y = exp(x - max) / sum(exp(x - max)) over each row
      exp             y = exp(x)
      ovr_normalize   p = sigmoid(x); y = p / sum(p) over each row (one-vs-rest; a row whose p are all 0
                      becomes uniform, as in scikit-learn)
      isolation       y = -(2 ** (-x / param))                (IsolationForest scores)
      modified_huber  p = (clip(x, -1, 1) + 1) / 2; with several columns y = p / sum(p) over each row (a row
                      whose p are all 0 becomes uniform), as SGDClassifier(loss="modified_huber")
    """

    kind: str = "identity"
    param: float = 1.0

    KINDS: ClassVar[tuple[str, ...]] = (
        "identity", "sigmoid", "softmax", "exp", "ovr_normalize", "isolation", "modified_huber",
    )

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"post-transform kind must be one of {self.KINDS}, got {self.kind!r}")
        object.__setattr__(self, "param", float(self.param))

    @property
    def is_identity(self) -> bool:
        return self.kind == "identity"


IDENTITY = PostTransform()

_DATACLASSES: dict[str, type] = {}  # every IR dataclass :func:`encode` / :func:`decode` know, by class name


def _arr(x: Any, dtype: Any, ndim: int | None = None, name: str = "array") -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(x, dtype=dtype))
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------- trees


@dataclass(frozen=True, eq=False)
class Tree:
    """One decision tree in normal form.

    Node 0 is the root and every child index is greater than its parent's, so a
    pass in index order visits parents first.  A node is a leaf when its
    ``left`` is -1.  At an internal node ``i`` with a numeric split, a row goes
    left when ``x[feature[i]] <cmp> threshold[i]`` (``cmp`` is the ensemble's
    comparison) and right otherwise; a missing value (NaN, or with
    ``zero_missing[i]`` also ``|x| <= ZERO_MISSING_THRESHOLD``, float32 1e-35) goes left iff
    ``missing_left[i]``.  At a categorical node the category ``c`` (``x``
    rounded as the ensemble says) goes left iff bit ``c`` of
    ``cat_bitset[i]`` is set; a category that is negative or beyond the bitset
    goes left iff ``cat_unknown_left[i]``; NaN goes left iff ``missing_left[i]``.
    ``value[i]`` holds a leaf's output vector (internal rows are zero).
    """

    feature: np.ndarray  # int32 (n,), -1 at leaves
    threshold: np.ndarray  # float64 (n,), 0 at leaves and categorical nodes
    left: np.ndarray  # int32 (n,), -1 at leaves
    right: np.ndarray  # int32 (n,), -1 at leaves
    missing_left: np.ndarray  # bool (n,)
    value: np.ndarray  # float64 (n, k)
    zero_missing: np.ndarray | None = None  # bool (n,) or None when no node has it
    is_categorical: np.ndarray | None = None  # bool (n,) or None when no node is categorical
    cat_bitset: np.ndarray | None = None  # uint32 (n, words): categories going left
    cat_unknown_left: np.ndarray | None = None  # bool (n,)

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "left", _arr(self.left, np.int32, 1, "left"))
        n = self.left.shape[0]
        if n == 0:
            raise ValueError("a tree needs at least one node")
        leaf = self.left < 0
        feature = np.where(leaf, -1, np.asarray(self.feature, dtype=np.int64))
        s(self, "feature", _arr(feature, np.int32, 1, "feature"))
        s(self, "right", _arr(np.where(leaf, -1, self.right), np.int32, 1, "right"))
        s(self, "missing_left", _arr(np.asarray(self.missing_left, bool) & ~leaf, bool, 1))
        value = np.asarray(self.value, dtype=np.float64)
        if value.ndim == 1:
            value = value[:, None]
        s(self, "value", _arr(np.where(leaf[:, None], value, 0.0), np.float64, 2, "value"))
        cat = None
        if self.is_categorical is not None:
            cat = np.asarray(self.is_categorical, bool) & ~leaf
            if not cat.any():
                cat = None
        if cat is None:
            s(self, "is_categorical", None)
            s(self, "cat_bitset", None)
            s(self, "cat_unknown_left", None)
            numeric = ~leaf
        else:
            if self.cat_bitset is None or self.cat_unknown_left is None:
                raise ValueError("categorical nodes need cat_bitset and cat_unknown_left")
            bits = np.asarray(self.cat_bitset, dtype=np.uint32)
            if bits.ndim != 2 or bits.shape[0] != n:
                raise ValueError(f"cat_bitset must have shape ({n}, words), got {bits.shape}")
            s(self, "is_categorical", _arr(cat, bool, 1))
            s(self, "cat_bitset", _arr(np.where(cat[:, None], bits, 0), np.uint32, 2))
            s(self, "cat_unknown_left", _arr(np.asarray(self.cat_unknown_left, bool) & cat, bool, 1))
            numeric = ~leaf & ~cat
        s(self, "threshold", _arr(np.where(numeric, self.threshold, 0.0), np.float64, 1, "threshold"))
        zm = None
        if self.zero_missing is not None:
            zm = np.asarray(self.zero_missing, bool) & numeric
            if not zm.any():
                zm = None
        s(self, "zero_missing", None if zm is None else _arr(zm, bool, 1))
        for name in ("feature", "threshold", "right", "missing_left", "value"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"tree array {name!r} has {getattr(self, name).shape[0]} rows, expected {n}")
        self._check_structure()

    def _check_structure(self) -> None:
        n = self.n_nodes
        internal = np.flatnonzero(self.left >= 0)
        kids = np.concatenate([self.left[internal], self.right[internal]])
        if kids.size and (kids.min() < 1 or kids.max() >= n):
            raise ValueError(f"child index out of range [1, {n})")
        if np.any(self.left[internal] <= internal) or np.any(self.right[internal] <= internal):
            raise ValueError("every child index must be greater than its parent's")
        if np.unique(kids).size != kids.size or kids.size != n - 1:
            raise ValueError("every node but the root must have exactly one parent")
        if np.any(self.feature[internal] < 0):
            raise ValueError("internal nodes need a feature index >= 0")

    # ---- derived facts
    @property
    def n_nodes(self) -> int:
        return int(self.left.shape[0])

    @property
    def is_leaf(self) -> np.ndarray:
        return self.left < 0

    @property
    def n_leaves(self) -> int:
        return int(self.is_leaf.sum())

    @property
    def n_values(self) -> int:
        return int(self.value.shape[1])

    def node_depths(self) -> np.ndarray:
        """Depth of every node (root 0)."""
        depth = np.zeros(self.n_nodes, dtype=np.int32)
        for i in np.flatnonzero(self.left >= 0):
            depth[self.left[i]] = depth[i] + 1
            depth[self.right[i]] = depth[i] + 1
        return depth

    @property
    def depth(self) -> int:
        """Edges on the longest root-to-leaf path (a lone leaf has depth 0)."""
        return int(self.node_depths().max())

    def cat_table(self, n_categories: int) -> np.ndarray:
        """Bool ``(n_nodes, n_categories)``: category c goes left at node i (non-categorical rows: False)."""
        out = np.zeros((self.n_nodes, n_categories), dtype=bool)
        if self.cat_bitset is None:
            return out
        c = np.arange(n_categories)
        words = c >> 5
        ok = words < self.cat_bitset.shape[1]
        bits = (self.cat_bitset[:, np.minimum(words, self.cat_bitset.shape[1] - 1)] >> (c & 31).astype(np.uint32)) & 1
        out[:, ok] = bits[:, ok].astype(bool)
        # categories beyond this tree's bitset are unknown to it (they go where unknown categories go)
        out[:, ~ok] = self.cat_unknown_left[:, None]
        return out


# --------------------------------------------------------------------------- operators


class Op:
    """Base of every IR operator: a frozen dataclass with a ``kind`` tag."""

    kind: ClassVar[str]

    def input_type(self) -> TensorType:  # pragma: no cover - every op overrides
        raise NotImplementedError

    def input_widths(self) -> tuple[int, ...]:
        """Width of each input value (one for every op but ``concat``)."""
        return (self.input_type().width,)

    def output_type(self) -> TensorType:  # pragma: no cover
        raise NotImplementedError

    @property
    def post_transform(self) -> PostTransform:
        return IDENTITY

    def raw_op(self) -> "Op":
        """The operator whose output is this one's ``raw`` value (then without the post-transform): itself,
        unless a stage of it only ``out`` needs can be skipped; then an operator of the same input and output
        widths that leaves that stage's columns at 0 (the head reads them from ``out`` only)."""
        return self

    def summary(self) -> str:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class TreeEnsemble(Op):
    """A sum or mean of decision trees, plus base score and post-transform.

    Each tree either writes one scalar per leaf into output column
    ``tree_output[t]`` (boosted ensembles: one tree per class per round), or,
    when ``tree_output`` is None, a vector of ``n_outputs`` values per leaf
    (forests of classifiers).  ``raw = base_score + agg(trees)`` where ``agg``
    is the sum, or the mean over the trees that write to each column.
    ``compare_dtype`` is the precision the original library compares in: the
    input is rounded to it before any split.  Categories are ``floor(x)`` or
    ``trunc(x)`` of the feature value, or with ``"exact"`` only integral values
    (any other value is an unknown category) (``category_rounding``).
    """

    kind: ClassVar[str] = "tree_ensemble"
    trees: tuple[Tree, ...]
    n_features: int
    n_outputs: int
    comparison: Literal["<=", "<"]
    compare_dtype: DType
    base_score: np.ndarray  # float64 (n_outputs,)
    tree_output: np.ndarray | None = None  # int32 (n_trees,)
    aggregation: Literal["sum", "mean"] = "sum"
    post_transform: PostTransform = IDENTITY  # type: ignore[assignment]
    category_rounding: Literal["floor", "trunc", "exact"] = "trunc"

    def __post_init__(self) -> None:
        s = object.__setattr__
        if not self.trees:
            raise ValueError("a tree ensemble needs at least one tree")
        s(self, "trees", tuple(self.trees))
        s(self, "n_features", int(self.n_features))
        s(self, "n_outputs", int(self.n_outputs))
        if self.comparison not in ("<=", "<"):
            raise ValueError(f"comparison must be '<=' or '<', got {self.comparison!r}")
        if self.compare_dtype not in DTYPES:
            raise ValueError(f"compare_dtype must be one of {DTYPES}, got {self.compare_dtype!r}")
        if self.aggregation not in ("sum", "mean"):
            raise ValueError(f"aggregation must be 'sum' or 'mean', got {self.aggregation!r}")
        if self.category_rounding not in ("floor", "trunc", "exact"):
            raise ValueError(f"category_rounding must be 'floor', 'trunc' or 'exact', got {self.category_rounding!r}")
        base = np.broadcast_to(np.asarray(self.base_score, dtype=np.float64), (self.n_outputs,))
        s(self, "base_score", _arr(base, np.float64, 1))
        if self.tree_output is not None:
            to = _arr(self.tree_output, np.int32, 1, "tree_output")
            if to.shape[0] != len(self.trees):
                raise ValueError(f"tree_output has {to.shape[0]} entries for {len(self.trees)} trees")
            if to.size and (to.min() < 0 or to.max() >= self.n_outputs):
                raise ValueError(f"tree_output entries must lie in [0, {self.n_outputs})")
            s(self, "tree_output", to)
            want = 1
        else:
            want = self.n_outputs
        for i, t in enumerate(self.trees):
            if t.n_values != want:
                raise ValueError(f"tree {i} has {t.n_values} values per leaf, expected {want}")
            used = t.feature[t.feature >= 0]
            if used.size and used.max() >= self.n_features:
                raise ValueError(f"tree {i} splits on feature {used.max()} but the ensemble has {self.n_features}")

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, self.compare_dtype)

    def output_type(self) -> TensorType:
        return TensorType(self.n_outputs, "float64")

    # ---- facts used by strategies, the cost model and the default heuristic
    @property
    def n_trees(self) -> int:
        return len(self.trees)

    @property
    def max_depth(self) -> int:
        return max(t.depth for t in self.trees)

    @property
    def has_categorical(self) -> bool:
        return any(t.is_categorical is not None for t in self.trees)

    @property
    def has_zero_missing(self) -> bool:
        return any(t.zero_missing is not None for t in self.trees)

    @property
    def cat_words(self) -> int:
        return max((t.cat_bitset.shape[1] for t in self.trees if t.cat_bitset is not None), default=0)

    def trees_per_output(self) -> np.ndarray:
        """How many trees contribute to each output column."""
        if self.tree_output is None:
            return np.full(self.n_outputs, self.n_trees, dtype=np.int64)
        return np.bincount(self.tree_output, minlength=self.n_outputs)

    def summary(self) -> str:
        return (
            f"tree_ensemble: {self.n_trees} trees, depth<={self.max_depth}, "
            f"{self.n_features} features -> {self.n_outputs} outputs, x {self.comparison} t in "
            f"{self.compare_dtype}, {self.aggregation}, {self.post_transform.kind}"
            + (", categorical" if self.has_categorical else "")
        )


@dataclass(frozen=True, eq=False)
class Linear(Op):
    """``raw = X @ coef.T + intercept`` in float64, then the post-transform."""

    kind: ClassVar[str] = "linear"
    coef: np.ndarray  # float64 (n_outputs, n_features)
    intercept: np.ndarray  # float64 (n_outputs,)
    post_transform: PostTransform = IDENTITY  # type: ignore[assignment]

    def __post_init__(self) -> None:
        coef = np.asarray(self.coef, dtype=np.float64)
        if coef.ndim == 1:
            coef = coef[None, :]
        object.__setattr__(self, "coef", _arr(coef, np.float64, 2, "coef"))
        b = np.broadcast_to(np.asarray(self.intercept, dtype=np.float64), (coef.shape[0],))
        object.__setattr__(self, "intercept", _arr(b, np.float64, 1, "intercept"))

    def input_type(self) -> TensorType:
        return TensorType(int(self.coef.shape[1]), "float64")

    def output_type(self) -> TensorType:
        return TensorType(int(self.coef.shape[0]), "float64")

    def summary(self) -> str:
        return f"linear: {self.coef.shape[1]} -> {self.coef.shape[0]}, {self.post_transform.kind}"


@dataclass(frozen=True, eq=False)
class Scaler(Op):
    """Per-feature affine map, in float64, in the original library's order of operations.

    ``mode="sub_div"``: ``y = (x - offset) / scale`` (StandardScaler, RobustScaler, MaxAbsScaler);
    ``mode="mul_add"``: ``y = x * scale + offset`` (MinMaxScaler).
    """

    kind: ClassVar[str] = "scaler"
    offset: np.ndarray  # float64 (F,)
    scale: np.ndarray  # float64 (F,)
    mode: Literal["sub_div", "mul_add"] = "sub_div"

    def __post_init__(self) -> None:
        object.__setattr__(self, "offset", _arr(self.offset, np.float64, 1, "offset"))
        object.__setattr__(self, "scale", _arr(self.scale, np.float64, 1, "scale"))
        if self.offset.shape != self.scale.shape:
            raise ValueError(f"offset {self.offset.shape} and scale {self.scale.shape} differ in shape")
        if self.mode not in ("sub_div", "mul_add"):
            raise ValueError(f"mode must be 'sub_div' or 'mul_add', got {self.mode!r}")

    def input_type(self) -> TensorType:
        return TensorType(int(self.offset.shape[0]), "float64")

    def output_type(self) -> TensorType:
        return self.input_type()

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` with ``y = x * a + b`` (equal to the op up to rounding)."""
        if self.mode == "mul_add":
            return self.scale, self.offset
        return 1.0 / self.scale, -self.offset / self.scale

    def summary(self) -> str:
        return f"scaler({self.mode}): {self.offset.shape[0]} features"


@dataclass(frozen=True, eq=False)
class Normalizer(Op):
    """Row-wise ``x / norm(x)`` (norm ``l1``, ``l2`` or ``max``); as scikit-learn, rows whose norm is
    below ``10 * eps`` (float64) are left as they are."""

    kind: ClassVar[str] = "normalizer"
    n_features: int
    norm: Literal["l1", "l2", "max"] = "l2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_features", int(self.n_features))
        if self.norm not in ("l1", "l2", "max"):
            raise ValueError(f"norm must be 'l1', 'l2' or 'max', got {self.norm!r}")

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return self.input_type()

    def summary(self) -> str:
        return f"normalizer({self.norm}): {self.n_features} features"


@dataclass(frozen=True, eq=False)
class Imputer(Op):
    """Replace missing entries by per-feature fill values, then keep the columns ``keep``.

    An entry is missing when it is NaN (``missing_value`` NaN) or equals ``missing_value``;
    ``missing_per_column`` gives each column its own marker instead (string codes differ by column).
    """

    kind: ClassVar[str] = "imputer"
    fill: np.ndarray  # float64 (F,)
    keep: np.ndarray  # int32 (F_out,)
    missing_value: float = float("nan")
    missing_per_column: np.ndarray | None = None  # float64 (F,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fill", _arr(self.fill, np.float64, 1, "fill"))
        object.__setattr__(self, "keep", _arr(self.keep, np.int32, 1, "keep"))
        object.__setattr__(self, "missing_value", float(self.missing_value))
        if self.missing_per_column is not None:
            object.__setattr__(self, "missing_per_column",
                               _arr(self.missing_per_column, np.float64, 1, "missing_per_column"))
            if self.missing_per_column.shape != self.fill.shape:
                raise ValueError("missing_per_column needs one marker per column")
        if self.keep.size and (self.keep.min() < 0 or self.keep.max() >= self.fill.shape[0]):
            raise ValueError("imputer keep indices out of range")

    def markers(self) -> np.ndarray:
        """The missing marker of every input column."""
        if self.missing_per_column is not None:
            return self.missing_per_column
        return np.full(self.fill.shape[0], self.missing_value)

    def input_type(self) -> TensorType:
        return TensorType(int(self.fill.shape[0]), "float64")

    def output_type(self) -> TensorType:
        return TensorType(int(self.keep.shape[0]), "float64")

    def summary(self) -> str:
        return f"imputer: {self.fill.shape[0]} -> {self.keep.shape[0]} features"


OP_TYPES: dict[str, type[Op]] = {
    cls.kind: cls for cls in (TreeEnsemble, Linear, Scaler, Normalizer, Imputer)
}


def register_op(cls: type) -> type:
    """Class decorator: add an operator type to :data:`OP_TYPES` (and make it encodable)."""
    OP_TYPES[cls.kind] = cls
    _DATACLASSES[cls.__name__] = cls
    return cls


# --------------------------------------------------------------------------- graph

INPUT = -1  # the value index of a graph's input


@dataclass(frozen=True, eq=False)
class Node:
    """One operator applied to named values: ``inputs`` are indices, ``-1`` the graph input and
    ``k >= 0`` the output of node ``k`` (always an earlier node), as in SSA form (``%k``)."""

    op: Op
    inputs: tuple[int, ...] = (INPUT,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))


@dataclass(frozen=True, eq=False)
class Graph:
    """A DAG of operators from the input ``X`` (``n_features`` columns) to the last node's output.

    Nodes are in topological order; value ``-1`` is the input and value ``k`` the
    output of node ``k``.  A chain (each node consuming the previous one) is the
    special case: ``Graph(n, (op1, op2))`` builds one from bare operators.  Only
    the last node's post-transform may differ from identity.
    """

    n_features: int
    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_features", int(self.n_features))
        nodes = []
        for i, n in enumerate(self.nodes):
            if isinstance(n, Op):  # chain shorthand
                n = Node(n, (i - 1,) if i else (INPUT,))
            nodes.append(n)
        object.__setattr__(self, "nodes", tuple(nodes))
        if not self.nodes:
            raise ValueError("a graph needs at least one operator")
        widths = []
        for i, node in enumerate(self.nodes):
            want = node.op.input_widths()
            if len(node.inputs) != len(want):
                raise ValueError(f"node {i} ({node.op.kind}) takes {len(want)} input(s), got {len(node.inputs)}")
            for j, v in enumerate(node.inputs):
                if not INPUT <= v < i:
                    raise ValueError(f"node {i} ({node.op.kind}) reads value {v}, which is not an earlier value")
                have = self.n_features if v == INPUT else widths[v]
                if have != want[j]:
                    raise ValueError(
                        f"operator {i} ({node.op.kind}) expects {want[j]} columns at input {j}, "
                        f"but value {v} has {have}"
                    )
            if i < len(self.nodes) - 1 and not node.op.post_transform.is_identity:
                raise ValueError("only the last operator may have a post-transform")
            widths.append(node.op.output_type().width)

    @property
    def ops(self) -> tuple[Op, ...]:
        return tuple(n.op for n in self.nodes)

    @property
    def is_chain(self) -> bool:
        return all(n.inputs == (i - 1,) for i, n in enumerate(self.nodes))

    @property
    def n_outputs(self) -> int:
        return self.nodes[-1].op.output_type().width

    @property
    def post_transform(self) -> PostTransform:
        return self.nodes[-1].op.post_transform

    def consumers(self) -> dict[int, list[int]]:
        """Value index -> the nodes reading it."""
        out: dict[int, list[int]] = {INPUT: []}
        for i, n in enumerate(self.nodes):
            out.setdefault(i, [])
            for v in n.inputs:
                out[v].append(i)
        return out

    def ancestors(self, k: int) -> set[int]:
        """Nodes whose output node ``k`` depends on (``k`` excluded)."""
        seen: set[int] = set()
        stack = [v for v in self.nodes[k].inputs if v >= 0]
        while stack:
            v = stack.pop()
            if v not in seen:
                seen.add(v)
                stack.extend(u for u in self.nodes[v].inputs if u >= 0)
        return seen

    def summary(self) -> str:
        if self.is_chain:
            return " -> ".join(op.summary() for op in self.ops)
        parts = []
        for i, n in enumerate(self.nodes):
            args = ", ".join("x" if v == INPUT else f"%{v}" for v in n.inputs)
            parts.append(f"%{i} = {n.op.summary()}({args})")
        return "; ".join(parts)


def prune(graph: Graph, drop: set[int], keep: int | None = None) -> tuple[Graph, int]:
    """``graph`` without the nodes ``drop`` (which nothing may read any more), renumbered; also returns
    the new index of node ``keep`` (or -1)."""
    new_id: dict[int, int] = {INPUT: INPUT}
    nodes = []
    for i, n in enumerate(graph.nodes):
        if i in drop:
            continue
        new_id[i] = len(nodes)
        nodes.append(Node(n.op, tuple(new_id[v] for v in n.inputs)))
    return Graph(graph.n_features, tuple(nodes)), (new_id[keep] if keep is not None else -1)


def eliminate_dead(graph: Graph) -> Graph:
    """``graph`` without the nodes its output does not depend on."""
    last = len(graph.nodes) - 1
    dead = set(range(last)) - graph.ancestors(last)
    return prune(graph, dead)[0] if dead else graph


def as_graph(value: "Graph | Sequence[Op]") -> Graph:
    """A graph as it is, or a sequence of operators as the chain they form."""
    if isinstance(value, Graph):
        return value
    ops = tuple(value)
    if not ops:
        raise ValueError("a graph needs at least one operator")
    return Graph(ops[0].input_widths()[0], ops)


# --------------------------------------------------------------------------- canonical encoding

_DATACLASSES.update({"Tree": Tree, "PostTransform": PostTransform, "Graph": Graph, "Node": Node,
                     **{cls.__name__: cls for cls in OP_TYPES.values()}})


def register_dataclass(cls: type) -> type:
    """Make a frozen dataclass encodable by :func:`encode` (used by ``strategies.head``)."""
    _DATACLASSES[cls.__name__] = cls
    return cls


def encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Turn an IR object into JSON-able data, moving arrays into ``arrays``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = type(obj).__name__
        if name not in _DATACLASSES:
            raise TypeError(f"cannot encode {name}")
        return {"__type__": name, **{f.name: encode(getattr(obj, f.name), arrays) for f in dataclasses.fields(obj)}}
    if isinstance(obj, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, (list, tuple)):
        return [encode(v, arrays) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot encode {type(obj).__name__}")


def decode(data: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(data, dict):
        if "__array__" in data:
            return arrays[data["__array__"]]
        if "__float__" in data:
            return float(data["__float__"])
        name = data.get("__type__")
        cls = _DATACLASSES.get(name)
        if cls is None:
            raise ValueError(f"unknown IR type {name!r}")
        kwargs = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in ((k, decode(v, arrays)) for k, v in data.items() if k != "__type__")
        }
        if cls is Graph and "ops" in kwargs:  # written before graphs were DAGs: a chain
            kwargs["nodes"] = kwargs.pop("ops")
        return cls(**kwargs)
    if isinstance(data, list):
        return [decode(v, arrays) for v in data]
    return data


_ALIGN = 64


def to_bytes(obj: Any) -> bytes:
    """Serialise an IR object (graph, op, head, model) as a zip of ``ir.json``, one ``arrays.bin`` blob
    (every array, 64-byte aligned) and ``arrays.json`` (each array's dtype, shape and offset)."""
    arrays: dict[str, np.ndarray] = {}
    meta = encode(obj, arrays)
    table: dict[str, list[Any]] = {}
    blob = bytearray()
    for key, a in arrays.items():
        if a.dtype.hasobject:
            raise TypeError(f"cannot encode an array of dtype {a.dtype}")
        blob.extend(b"\0" * (-len(blob) % _ALIGN))
        data = np.ascontiguousarray(a).tobytes()
        table[key] = [a.dtype.str, list(a.shape), len(blob), len(data)]
        blob.extend(data)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ir.json", json.dumps(meta, sort_keys=True))
        zf.writestr("arrays.json", json.dumps(table, sort_keys=True))
        zf.writestr("arrays.bin", bytes(blob))
    return buf.getvalue()


def from_bytes(data: bytes) -> Any:
    """Inverse of :func:`to_bytes` (no pickle); also reads the older layout of one ``.npy`` per array."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        meta = json.loads(zf.read("ir.json"))
        names = set(zf.namelist())
        if "arrays.json" in names:
            table = json.loads(zf.read("arrays.json"))
            blob = zf.read("arrays.bin")
            arrays = {}
            for key, (dtype, shape, offset, size) in table.items():
                dt = np.dtype(dtype)
                if dt.hasobject or offset < 0 or offset + size > len(blob):
                    raise ValueError(f"array {key!r} of the encoded IR is malformed")
                arrays[key] = np.frombuffer(blob, dtype=dt, count=size // max(dt.itemsize, 1),
                                            offset=offset).reshape(shape)
        else:
            arrays = {
                name[:-4]: np.load(io.BytesIO(zf.read(name)), allow_pickle=False)
                for name in names
                if name.endswith(".npy")
            }
    for a in arrays.values():
        a.setflags(write=False)
    return decode(meta, arrays)


def _feed(h: Any, obj: Any) -> None:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(b"D" + type(obj).__name__.encode() + b"(")
        for f in dataclasses.fields(obj):
            if f.metadata.get("hash_default") and getattr(obj, f.name) == f.default:
                continue  # a field added later: objects that leave it at its default keep their old hash
            h.update(f.name.encode() + b"=")
            _feed(h, getattr(obj, f.name))
        h.update(b")")
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder not in ("|", "=") else a.dtype
        a = a.astype(dt.newbyteorder("<") if dt.byteorder != "|" else dt, copy=False)
        h.update(b"A" + a.dtype.str.encode() + repr(a.shape).encode())
        h.update(a.tobytes())
    elif isinstance(obj, (list, tuple)):
        h.update(b"L%d[" % len(obj))
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(obj, bool) or obj is None:
        h.update(b"B" + repr(obj).encode())
    elif isinstance(obj, (int, np.integer)):
        h.update(b"I" + str(int(obj)).encode())
    elif isinstance(obj, (float, np.floating)):
        h.update(b"F" + struct.pack("<d", float(obj)))
    elif isinstance(obj, str):
        h.update(b"S" + obj.encode() + b"\x00")
    else:
        raise TypeError(f"cannot hash {type(obj).__name__}")


def content_hash(obj: Any) -> str:
    """Stable SHA-256 of an IR object's kinds, shapes and every parameter."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def require(condition: bool, message: str) -> None:
    """Raise :class:`UnsupportedModelError` unless ``condition``."""
    if not condition:
        raise UnsupportedModelError(message)


# the op a task's strategy is chosen for, most expensive kinds first (a PCA before an SVC: the SVC's kernels)
MAIN_KINDS = ("tree_ensemble", "kneighbors", "kernel_machine", "kernel_pca", "mlp", "gaussian_mixture", "gaussian_nb",
              "centroids", "linear", "lookup")


def main_op_index(ops: Sequence[Op]) -> int:
    """The op a task's ``strategy`` applies to: its (last) tree ensemble, else linear model, else
    encoder, else its last op."""
    for kind in MAIN_KINDS:
        for i in range(len(ops) - 1, -1, -1):
            if ops[i].kind == kind:
                return i
    return len(ops) - 1
