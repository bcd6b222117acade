"""Fusion rewrites: graphs that compute exactly what a model's graph computes, with fewer ops.

* **Into tree ensembles.** A tree's split on a column that a chain of per-column
  monotone steps (gathers, concats, NaN imputation, scalers with a positive
  scale) made from input column ``k`` becomes a split on ``k`` itself: the
  threshold is the largest float64 ``u`` with ``steps(u) <= t`` (found by
  bisection over the ordered float64 values, so it is exact, rounding to the
  tree's compare dtype included), and a missing value goes where the imputed
  value would.  A split on a one-hot output column becomes a categorical
  split on the code (no one-hot matrix is built): the categories whose
  encoding goes left form its bitset, unknown categories and NaN go where
  their encoding would.  When every split of the ensemble folds, the tree
  reads the graph's input and the preprocessing disappears.
* **Into linear models.** One-hot blocks in front of a linear model become a
  lookup of each category's summed weights (per input column and output):
  the one-hot matrix is never built.  (Scalers fold into linear models through
  the ``matmul`` strategy's ``fold_scaler`` knob.)

Every rewrite is checked against the reference by the caller before it counts
(``tuner.tune`` evaluates both graphs on the sample rows); ``rewrites`` only
returns graphs whose construction is exact by the arguments above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .ir import (
    INPUT,
    ZERO_MISSING_THRESHOLD,
    Graph,
    Imputer,
    Linear,
    Node,
    Scaler,
    Tree,
    TreeEnsemble,
    eliminate_dead,
)
from .ir.columns import Concat, Gather, Lookup

MAX_CODE = 1 << 16  # categorical folds need codes in [0, MAX_CODE)


@dataclass(frozen=True)
class Numeric:
    """Column = ``steps`` (monotone non-decreasing maps of float64, NaN in, anything out) applied in order to
    input column ``column``; except that inputs in a hole ``[lo, hi]`` become its value, and a NaN input
    becomes ``nan_value`` when that is set (an imputer that replaces one value, such as XGBoost's
    missing zeros of a sparse matrix, makes them)."""

    column: int
    steps: tuple[Callable[[np.ndarray], np.ndarray], ...] = ()
    holes: tuple[tuple[float, float, float], ...] = ()
    nan_value: float | None = None
    first_fill: float | None = None  # the first step replaces a NaN input by this (an imputer on the input)

    def monotone(self, x: np.ndarray) -> np.ndarray:
        for s in self.steps:
            x = s(x)
        return x

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The column's value for inputs ``x``."""
        y = self.monotone(x)
        for lo, hi, v in self.holes:
            y = np.where((x >= lo) & (x <= hi), v, y)
        if self.nan_value is not None:
            y = np.where(np.isnan(x), self.nan_value, y)
        return y

    def then(self, step: Callable[[np.ndarray], np.ndarray]) -> "Numeric":
        """This column with one more monotone step (hole and NaN values go through it too)."""
        one = lambda v: float(step(np.array([v]))[0])  # noqa: E731
        return Numeric(self.column, self.steps + (step,), tuple((lo, hi, one(v)) for lo, hi, v in self.holes),
                       None if self.nan_value is None else one(self.nan_value), self.first_fill)

    def replacing(self, marker: float, fill: float) -> "Numeric | None":
        """This column with every value equal to ``marker`` replaced by ``fill`` (None when it has holes)."""
        if self.holes:
            return None
        lo = _first_at_least(self, marker)
        hi = boundary(lambda x: self.monotone(x) <= marker, 1)[0]
        holes = ((lo, hi, fill),) if not (np.isnan(lo) or np.isnan(hi)) and lo <= hi else ()
        at_nan = float(self.apply(np.array([np.nan]))[0])
        return Numeric(self.column, self.steps, holes, fill if at_nan == marker else self.nan_value, self.first_fill)

    def after_first_fill(self) -> "Numeric":
        """This column as seen once a NaN input has been replaced by ``first_fill`` on the input."""
        return Numeric(self.column, self.steps[1:], self.holes)


def _first_at_least(o: Numeric, v: float) -> float:
    """Smallest float64 input (+-inf included) whose monotone value is >= ``v``; NaN when there is none."""
    below = boundary(lambda x: o.monotone(x) < v, 1)[0]  # the largest input still below v
    if np.isnan(below):  # none is below: -inf already reaches v (or nothing does)
        return -np.inf if o.monotone(np.array([-np.inf]))[0] >= v else np.nan
    return np.nan if below == np.inf else float(np.nextafter(below, np.inf))


@dataclass(frozen=True)
class Category:
    """Column = the encoding of input column ``column``'s category: ``table[code]`` for known codes,
    ``nan_value`` for NaN, ``unknown`` for any other value."""

    column: int
    table: dict[float, float] = field(default_factory=dict)
    nan_value: float = 0.0
    unknown: float = 0.0


Origin = Numeric | Category | None


def trace(graph: Graph, value: int, col: int) -> Origin:
    """How column ``col`` of ``value`` is computed from one input column, or None when it is not a
    per-column chain of steps this module can fold."""
    if value == INPUT:
        return Numeric(col)
    node = graph.nodes[value]
    op = node.op
    if isinstance(op, Gather):
        return trace(graph, node.inputs[0], int(op.columns[col]))
    if isinstance(op, Concat):
        off = 0
        for v, w in zip(node.inputs, op.widths):
            if col < off + w:
                return trace(graph, v, col - off)
            off += w
        return None
    if isinstance(op, Scaler):
        inner = trace(graph, node.inputs[0], col)
        a, b = float(op.offset[col]), float(op.scale[col])
        if not isinstance(inner, Numeric) or not b > 0 or not np.isfinite(b) or not np.isfinite(a):
            return None
        step = (lambda x, a=a, b=b: (x - a) / b) if op.mode == "sub_div" else (lambda x, a=a, b=b: x * b + a)
        return inner.then(step)
    if isinstance(op, Imputer):
        k = int(op.keep[col])
        marker, fill = float(op.markers()[k]), float(op.fill[k])
        inner = trace(graph, node.inputs[0], k)
        if isinstance(inner, Category):
            def sub(w: float) -> float:
                return fill if (np.isnan(w) if np.isnan(marker) else w == marker) else w
            return Category(inner.column, {c: sub(w) for c, w in inner.table.items()}, sub(inner.nan_value),
                            sub(inner.unknown))
        if not isinstance(inner, Numeric):
            return None
        if np.isnan(marker):
            out = inner.then(lambda x, f=fill: np.where(np.isnan(x), f, x))
            if not inner.steps and not inner.holes and inner.nan_value is None:
                out = Numeric(out.column, out.steps, out.holes, out.nan_value, first_fill=fill)
            return out
        return inner.replacing(marker, fill)
    if isinstance(op, Lookup):
        c = int(op.source[col])
        inner = trace(graph, node.inputs[0], c)
        if not isinstance(inner, Numeric):
            return None
        entries = op.column == c
        table: dict[float, float] = {}
        nan_value = None
        for v, t, w in zip(op.value[entries], op.target[entries], op.weight[entries]):
            # a category writes its weight to this output, or 0 when none of its entries targets it
            if np.isnan(v):
                nan_value = float(w) if t == col else (0.0 if nan_value is None else nan_value)
            else:
                table[float(v)] = float(w) if t == col else table.get(float(v), 0.0)
        unknown = float(op.unknown[col])
        # steps before the lookup may only impute NaN (strings: NaN -> the fill's code)
        probe = inner.apply(np.array([np.nan]))[0]
        # (what reaches a lookup is the input column itself, or it with NaN imputed: a string imputer)
        if inner.holes or not (not inner.steps or (len(inner.steps) == 1 and inner.first_fill is not None)):
            return None
        if np.isnan(probe):
            nan_v = unknown if nan_value is None else nan_value
        else:
            nan_v = table.get(float(probe), unknown)
        return Category(inner.column, table, nan_v, unknown)
    return None


# --------------------------------------------------------------------------- thresholds


def _ordered(x: np.ndarray) -> np.ndarray:
    """float64 -> int64 keys with the same order (for bisection over the floats)."""
    i = x.view(np.int64)
    return np.where(i < 0, np.int64(-(2**63)) - i - 1, i)


def _unordered(k: np.ndarray) -> np.ndarray:
    i = np.where(k < 0, np.int64(-(2**63)) - k - 1, k)
    return i.astype(np.int64).view(np.float64)


def boundary(goes_left: Callable[[np.ndarray], np.ndarray], n: int) -> np.ndarray:
    """For ``n`` monotone predicates (true on a down-set of the floats), the largest float64 (+-inf
    included) where each is true; NaN where it is true nowhere.  ``goes_left(x)`` takes ``n`` floats."""
    lo = np.full(n, _ordered(np.array([-np.inf]))[0])
    hi = np.full(n, _ordered(np.array([np.inf]))[0])
    ok_lo = goes_left(_unordered(lo))
    ok_hi = goes_left(_unordered(hi))
    # invariant: pred(lo) true, pred(hi) false (for the rows still open)
    open_ = ok_lo & ~ok_hi
    for _ in range(66):
        if not open_.any():
            break
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # floor((lo + hi) / 2) without overflowing int64
        ok = goes_left(_unordered(mid))
        lo = np.where(open_ & ok, mid, lo)
        hi = np.where(open_ & ~ok, mid, hi)
        open_ &= hi > lo + 1
    out = _unordered(lo)
    out = np.where(ok_hi, np.inf, out)
    return np.where(ok_lo, out, np.nan)


def _compare(op: TreeEnsemble, v: np.ndarray, t: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # huge float64 values round to +-inf in float32, as the library's do
        v = v.astype(op.compare_dtype).astype(np.float64)
    with np.errstate(invalid="ignore"):
        return v <= t if op.comparison == "<=" else v < t


# --------------------------------------------------------------------------- trees


def fold_into_tree(graph: Graph, index: int) -> Graph | None:
    """``graph`` with tree ensemble ``index`` reading the graph input directly, or None when some split
    does not fold."""
    node = graph.nodes[index]
    op = node.op
    if not isinstance(op, TreeEnsemble) or node.inputs == (INPUT,):
        return None
    (src,) = node.inputs
    used = sorted({int(f) for t in op.trees for f in t.feature[t.feature >= 0]})
    origins = {f: trace(graph, src, f) for f in used}
    if any(o is None for o in origins.values()):
        return None
    # Single-point holes that become NaN (XGBoost's missing zeros of a sparse matrix) are made NaN before the
    # tree, by one imputer on the input (column -> (value, NaN)): the folded split sends them where missing
    # values go
    # A column with holes whose first step imputes NaN gets that imputation on the input too (before the
    # holes are made NaN): a NaN input then goes where its imputed value goes, a hole where missing values go.
    remap: dict[int, tuple[float, float]] = {}
    prefill: dict[int, float] = {}
    for f, o in list(origins.items()):
        if isinstance(o, Numeric) and o.holes:
            for lo, hi, v in o.holes:
                if lo != hi or not np.isnan(v) or remap.get(o.column, (lo, v))[0] != lo:
                    return None
                remap[o.column] = (lo, v)
            if o.first_fill is not None:
                if prefill.get(o.column, o.first_fill) != o.first_fill:
                    return None
                prefill[o.column] = o.first_fill
                origins[f] = o.after_first_fill()
    cats = [o for o in origins.values() if isinstance(o, Category)]
    if cats and op.has_categorical and op.category_rounding != "exact":
        return None
    top = max((c for o in cats for c in o.table), default=-1.0)
    if cats and not 0 <= top < MAX_CODE:
        return None
    words = max(op.cat_words, int(top) // 32 + 1 if cats else 0)
    cuts = _thresholds(op, origins)
    trees = []
    for tree in op.trees:
        new = _fold_tree(op, tree, origins, words, cuts)
        if new is None:
            return None
        trees.append(new)
    folded = TreeEnsemble(
        trees=tuple(trees), n_features=graph.n_features, n_outputs=op.n_outputs, comparison="<=",
        compare_dtype="float64", base_score=op.base_score, tree_output=op.tree_output,
        aggregation=op.aggregation, post_transform=op.post_transform,
        category_rounding="exact" if (cats or op.category_rounding == "exact") else op.category_rounding,
    )
    front = [_replace_on_input(graph.n_features, {c: (np.nan, v) for c, v in prefill.items()}),
             _replace_on_input(graph.n_features, remap)]
    front = [op for op in front if op is not None]
    shift = len(front)
    nodes = [Node(op, (k - 1,)) for k, op in enumerate(front)]
    nodes += [Node(n.op, tuple(v if v == INPUT else v + shift for v in n.inputs)) for n in graph.nodes]
    nodes[index + shift] = Node(folded, (shift - 1,))
    return eliminate_dead(Graph(graph.n_features, tuple(nodes)))


def _replace_on_input(n_features: int, replace: dict[int, tuple[float, float]]) -> Imputer | None:
    """An imputer replacing, per input column, one value (NaN included) by another; None when there is none."""
    if not replace:
        return None
    markers, fill = np.full(n_features, np.nan), np.full(n_features, np.nan)
    for col, (value, replacement) in replace.items():
        markers[col], fill[col] = value, replacement
    return Imputer(fill=fill, keep=np.arange(n_features), missing_per_column=markers)


def _thresholds(op: TreeEnsemble, origins: dict[int, Origin]) -> dict[tuple[int, float], float]:
    """``(feature, t) -> u`` for every numeric split on a folded numeric column: one vectorised bisection
    per feature over its distinct thresholds (thresholds repeat across the trees of an ensemble)."""
    by_feature: dict[int, set[float]] = {}
    for tree in op.trees:
        numeric = tree.left >= 0
        if tree.is_categorical is not None:
            numeric &= ~tree.is_categorical
        for f, t in zip(tree.feature[numeric].tolist(), tree.threshold[numeric].tolist()):
            if isinstance(origins[f], Numeric):
                by_feature.setdefault(f, set()).add(t)
    out: dict[tuple[int, float], float] = {}
    for f, ts in by_feature.items():
        o, t = origins[f], np.array(sorted(ts))
        u = boundary(lambda x, o=o, t=t: _compare(op, o.apply(x), t), t.size)
        out.update(zip(((f, v) for v in t.tolist()), u.tolist()))
    return out


def _fold_tree(op: TreeEnsemble, tree: Tree, origins: dict[int, Origin], words: int,
               cuts: dict[tuple[int, float], float]) -> Tree | None:
    """One tree of ``op`` with its splits folded (categorical bitsets ``words`` wide; numeric thresholds
    from ``cuts``), or None."""
    n = tree.n_nodes
    internal = np.flatnonzero(tree.left >= 0)
    feature = tree.feature.copy()
    threshold = tree.threshold.copy()
    missing_left = tree.missing_left.copy()
    is_cat = np.zeros(n, bool) if tree.is_categorical is None else tree.is_categorical.copy()
    unknown_left = np.zeros(n, bool) if tree.cat_unknown_left is None else tree.cat_unknown_left.copy()
    zm = tree.zero_missing
    cat_rows: dict[int, np.ndarray] = {}
    for i in internal.tolist():
        o = origins[int(tree.feature[i])]
        zero_missing = zm is not None and bool(zm[i])
        if isinstance(o, Numeric):
            if is_cat[i]:
                if o.steps:
                    return None
                feature[i] = o.column
                continue
            if zero_missing:
                return None
            t = float(tree.threshold[i])
            u = cuts[(int(tree.feature[i]), t)]
            if np.isnan(u):  # no value goes left (not even -inf): no "x <= u" says that
                return None
            def goes_left(v: float) -> bool:
                return bool(tree.missing_left[i]) if np.isnan(v) else bool(_compare(op, np.array([v]), np.array([t]))[0])

            nan_left = goes_left(float(o.apply(np.array([np.nan]))[0]))
            if o.holes and nan_left != bool(tree.missing_left[i]):
                # a hole is made NaN before the tree and goes where missing values go: so must a NaN input
                return None
            missing_left[i] = nan_left
            feature[i], threshold[i] = o.column, u
        else:
            if is_cat[i]:
                return None
            codes = np.array(list(o.table), dtype=np.float64)
            if codes.size and (codes.min() < 0 or codes.max() >= 32 * words or np.any(codes != np.floor(codes))):
                return None
            # where each encoding value goes: the categories', then NaN's and an unknown value's
            w = np.array([*o.table.values(), o.nan_value, o.unknown], dtype=np.float64)
            missing = np.isnan(w) | (zero_missing & (np.abs(w) <= ZERO_MISSING_THRESHOLD))
            left = np.where(missing, bool(tree.missing_left[i]), _compare(op, w, np.float64(tree.threshold[i])))
            # every value in the bitset's range that is no category goes where unknown values go
            bits = np.full(32 * words, left[-1])
            bits[codes.astype(np.int64)] = left[:-2]
            cat_rows[i] = bits
            feature[i] = o.column
            is_cat[i] = True
            missing_left[i], unknown_left[i] = left[-2], left[-1]
            threshold[i] = 0.0
    if not is_cat.any():
        return Tree(feature=feature, threshold=threshold, left=tree.left, right=tree.right,
                    missing_left=missing_left, value=tree.value)
    bitset = np.zeros((n, words), np.uint32)
    if tree.cat_bitset is not None:
        bitset[:, : tree.cat_bitset.shape[1]] = tree.cat_bitset
    for i, bits in cat_rows.items():
        on = np.flatnonzero(bits)
        np.bitwise_or.at(bitset[i], on >> 5, np.left_shift(np.uint32(1), (on & 31).astype(np.uint32)))
    return Tree(feature=feature, threshold=threshold, left=tree.left, right=tree.right, missing_left=missing_left,
                value=tree.value, is_categorical=is_cat, cat_bitset=bitset, cat_unknown_left=unknown_left)


# --------------------------------------------------------------------------- linear models


def fold_one_hot_into_linear(graph: Graph, index: int) -> Graph | None:
    """Linear model ``index`` reading a ``concat`` with one-hot (``lookup``) parts: those parts become one
    lookup of summed weights per (input column, output), read by a linear model that adds them up."""
    node = graph.nodes[index]
    lin = node.op
    if not isinstance(lin, Linear) or index != len(graph.nodes) - 1:
        return None
    (src,) = node.inputs
    if src == INPUT:
        return None
    cnode = graph.nodes[src]
    parts = list(cnode.inputs) if isinstance(cnode.op, Concat) else [src]
    widths = list(cnode.op.widths) if isinstance(cnode.op, Concat) else [cnode.op.output_type().width]
    n_out = lin.coef.shape[0]
    keep_parts, keep_cols = [], []
    groups: dict[int, list[tuple[int, Category]]] = {}
    off = 0
    for v, w in zip(parts, widths):
        origins = [trace(graph, v, j) for j in range(w)] if v >= 0 and isinstance(graph.nodes[v].op, Lookup) else None
        if origins is not None and all(isinstance(o, Category) for o in origins):
            for j, o in enumerate(origins):
                groups.setdefault(o.column, []).append((off + j, o))
        else:
            keep_parts.append((v, w))
            keep_cols.extend(range(off, off + w))
        off += w
    if not groups:
        return None
    column, value, target, weight, source, unknown = [], [], [], [], [], []
    for k, (xcol, cols) in enumerate(sorted(groups.items())):
        codes = sorted(set().union(*(o.table for _, o in cols)))
        for cls in range(n_out):
            o_idx = k * n_out + cls
            source.append(xcol)
            unknown.append(sum(lin.coef[cls, j] * o.unknown for j, o in cols))
            for code in [*codes, np.nan]:  # every known code, and NaN
                column.append(xcol)
                value.append(code)
                target.append(o_idx)
                weight.append(sum(lin.coef[cls, j] * (o.nan_value if np.isnan(code) else o.table.get(code, o.unknown))
                                  for j, o in cols))
    look = Lookup(n_features=graph.n_features, column=np.array(column, np.int32), value=np.array(value),
                  target=np.array(target, np.int32), weight=np.array(weight), source=np.array(source, np.int32),
                  unknown=np.array(unknown))
    n_look = look.output_type().width
    nodes = list(graph.nodes[:-1])  # the linear model is last; its replacement comes last again
    nodes.append(Node(look, (INPUT,)))
    look_v = len(nodes) - 1
    if keep_parts:
        nodes.append(Node(Concat((n_look, *(w for _, w in keep_parts))), (look_v, *(v for v, _ in keep_parts))))
        new_src = len(nodes) - 1
    else:
        new_src = look_v
    sum_block = np.zeros((n_out, n_look))
    for k in range(len(groups)):
        sum_block[np.arange(n_out), k * n_out + np.arange(n_out)] = 1.0
    coef = np.concatenate([sum_block, lin.coef[:, keep_cols]], axis=1)
    nodes.append(Node(Linear(coef=coef, intercept=lin.intercept, post_transform=lin.post_transform), (new_src,)))
    return eliminate_dead(Graph(graph.n_features, tuple(nodes)))


def rewrites(graph: Graph) -> list[Graph]:
    """The exact rewrites of ``graph`` worth tuning (each differs from it)."""
    out = []
    last = len(graph.nodes) - 1
    for fold in (fold_into_tree, fold_one_hot_into_linear):
        g = fold(graph, last)
        if g is not None:
            out.append(g)
    return out


__all__ = ["boundary", "fold_into_tree", "fold_one_hot_into_linear", "rewrites", "trace"]
