"""Members of meta-estimators: each converted by its own converter, read as scikit-learn reads it.

A member's post-transform moves into an ``activation`` op so that a meta-estimator can read both its scores
and its probabilities; its label is a ``label`` op; members are combined by ``average`` ops.  Members that
are plain tree ensembles can instead be merged into one ensemble (bagged trees on feature subsets, one
regressor per target), with the same arithmetic, so that the tree strategies compete on all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from ...head import Head
from ...ir import IDENTITY, INPUT, Linear, Node, PostTransform, Tree, TreeEnsemble
from ...ir.ensembles import Activation, Average, Label
from ._common import require
from ._compose import _step
from ._graph import Builder, Col, Value, union_taint

RULES = {"argmax": "argmax", "raw_gt0": "gt0", "raw_ge0": "ge0", "out_gt_half": "gt_half"}


def derived(b: Builder, op: Any, inputs: list[Value]) -> Value:
    """A value computed from ``inputs`` (every output column tainted by all of theirs)."""
    t = union_taint(c for v in inputs for c in v.cols)
    return b.add(op, inputs, [Col(taint=t)] * op.output_type().width)


@dataclass
class Member:
    """One converted member: its value before its post-transform, that post-transform and its head."""

    model: Any
    b: Builder
    raw: Value
    post: PostTransform
    head: Head
    _out: Value | None = field(default=None, repr=False)
    source: Value | None = field(default=None, repr=False)  # the value it reads (bagging: its features)

    @classmethod
    def convert(cls, model: Any, b: Builder, x: Value, where: str, task: str) -> "Member":
        v, head = _step(model, b, x, where)
        require(head is not None and head.task == task, model,
                f"{where} is a {head.task if head else 'transformer'}, a {task} was expected")
        post = IDENTITY
        if v.index != INPUT:
            node = b.nodes[v.index]
            post = node.op.post_transform
            if not post.is_identity:
                require(any(f.name == "post_transform" for f in fields(node.op)), model,
                        f"{where}: its {node.op.kind} operator's post-transform cannot be separated from it")
                b.nodes[v.index] = Node(replace(node.op, post_transform=IDENTITY), node.inputs)
        return cls(model, b, v, post, head)

    def out(self) -> Value:
        if self._out is None:
            self._out = self.raw if self.post.is_identity else derived(
                self.b, Activation(self.raw.width, self.post), [self.raw])
        return self._out

    def value(self, method: str) -> Value:
        """The graph value the member's ``method`` is read from (its view of it, when it has views)."""
        require(method in self.head.methods, self.model, f"it has no {method} here")
        v = self.raw if self.head.source(method) == "raw" else self.out()
        for m, start, stop in self.head.views:
            if m == method:
                v = self.b.gather(v, range(start, stop))
        return v

    def proba(self) -> Value:
        """``predict_proba`` with one column per class (a one-column binary value becomes ``[1 - p, p]``)."""
        v = self.value("predict_proba")
        return derived(self.b, Activation(1, pair=True), [v]) if v.width == 1 else v

    def label(self, targets: Any, values: Any, n_outputs: int) -> Value:
        """The predicted label's index ``j`` written as ``values[j]`` into column ``targets[j]``."""
        require(self.head.label_rule != "indicator_gt_half", self.model,
                "a multilabel member has an indicator matrix, not one label per row")
        v = self.value("predict")
        n = len(self.head.classes)
        require(max(v.width, 2) == n, self.model, f"its scores have {v.width} columns for {n} classes")
        rule = RULES[self.head.label_rule] if v.width == 1 else "argmax"
        return derived(self.b, Label(v.width, rule, targets, values, n_outputs), [v])


def numeric(model: Any, classes: Any, what: str) -> np.ndarray:
    classes = np.asarray(classes)
    require(classes.dtype.kind in "biuf", model, f"{what} are {classes.dtype} labels; only numeric labels can be "
            "computed as values")
    return classes.astype(np.float64)


def average(b: Builder, parts: list[Value], targets: list[Any], weights: Any, n_out: int, divisor: float) -> Value:
    op = Average(tuple(p.width for p in parts), np.concatenate([np.asarray(t, np.int64) for t in targets]),
                 np.asarray(weights, np.float64), n_out, divisor)
    return derived(b, op, parts)


def voting_weights(model: Any, n: int) -> tuple[np.ndarray, float]:
    """Voting weights of the members that are not dropped, and ``np.average``'s divisor."""
    w = model._weights_not_none
    if w is None:
        return np.ones(n), float(n)
    w = np.asarray(w, dtype=np.float64)
    require(bool(np.all(w >= 0)), model, f"its weights {w.tolist()} include negative ones")
    return w, float(w.sum())


def where(model: Any, what: Any) -> str:
    return f"{type(model).__name__} {what}"


def merged_trees(b: Builder, x: Value, members: list[Member], features: list[Any], n_out: int,
                 targets: list[np.ndarray]) -> Value | None:
    """Members that are single trees reading their feature subsets, as one tree ensemble on ``x``: its mean
    (the leaves summed in member order, divided by their number) is the bagging's sum divided by
    ``n_estimators``, rounding included; the tree strategies then compete on the whole bag.  None when some
    member is not such a tree."""
    trees = []
    for m, f, t in zip(members, features, targets):
        node = b.nodes[m.raw.index] if m.raw.index != INPUT else None
        op = node.op if node is not None else None
        if not (isinstance(op, TreeEnsemble) and op.n_trees == 1 and op.tree_output is None
                and op.post_transform.is_identity and not op.base_score.any() and node.inputs == (m.source.index,)
                and not op.has_categorical):
            return None
        tree = op.trees[0]
        feats = np.asarray(f, dtype=np.int64)
        value = np.zeros((tree.n_nodes, n_out))
        value[:, t] = tree.value
        trees.append(Tree(np.where(tree.feature >= 0, feats[np.maximum(tree.feature, 0)], -1), tree.threshold,
                          tree.left, tree.right, tree.missing_left, value, tree.zero_missing))
    ops = [b.nodes[m.raw.index].op for m in members]
    if len({(op.comparison, op.compare_dtype) for op in ops}) > 1:
        return None
    merged = TreeEnsemble(trees=tuple(trees), n_features=x.width, n_outputs=n_out, comparison=ops[0].comparison,
                          compare_dtype=ops[0].compare_dtype, base_score=0.0, aggregation="mean")
    return _in_place_of(b, merged, x, members)


def _in_place_of(b: Builder, op: Any, x: Value, members: list[Member]) -> Value:
    """``op`` reading ``x``, its columns tainted as the members' outputs it replaces were."""
    t = union_taint(c for m in members for c in m.raw.cols)
    return b.add(op, [x], [Col(taint=t)] * op.output_type().width)


def side_by_side_trees(b: Builder, x: Value, members: list[Member]) -> Value | None:
    """Members that are one-output tree ensembles reading ``x`` (all summed, or all averaged), as one ensemble
    whose output ``o`` is member ``o``'s trees (``tree_output``): the same sum (or mean over that member's trees)
    in the same order.  None when some member is not such an ensemble."""
    ops = []
    for m in members:
        node = b.nodes[m.raw.index] if m.raw.index != INPUT else None
        op = node.op if node is not None else None
        if not (isinstance(op, TreeEnsemble) and op.n_outputs == 1 and node.inputs == (x.index,)
                and op.post_transform.is_identity):
            return None
        ops.append(op)
    aggs = {op.aggregation if op.n_trees > 1 else "single" for op in ops} - {"single"}
    same = {(op.comparison, op.compare_dtype, op.category_rounding) for op in ops}
    if len(aggs) > 1 or len(same) > 1:
        return None
    if aggs == {"mean"} and any(op.base_score.any() for op in ops if op.n_trees == 1):
        return None  # a single tree's base is added before, a mean's after: keep them apart
    trees = tuple(t for op in ops for t in op.trees)
    outputs = np.concatenate([np.full(op.n_trees, o) for o, op in enumerate(ops)])
    merged = TreeEnsemble(trees=trees, n_features=x.width, n_outputs=len(ops), comparison=ops[0].comparison,
                          compare_dtype=ops[0].compare_dtype, base_score=[float(op.base_score[0]) for op in ops],
                          tree_output=outputs, aggregation=aggs.pop() if aggs else "sum",
                          category_rounding=ops[0].category_rounding)
    return _in_place_of(b, merged, x, members)


def side_by_side_linear(b: Builder, x: Value, members: list[Member]) -> Value | None:
    """Members that are linear models reading ``x`` (no post-transform), as one linear model whose outputs are
    theirs side by side (each output the same dot product).  None when some member is not one."""
    ops = []
    for m in members:
        node = b.nodes[m.raw.index] if m.raw.index != INPUT else None
        if node is None or not isinstance(node.op, Linear) or node.inputs != (x.index,) or not m.post.is_identity:
            return None
        ops.append(node.op)
    merged = Linear(coef=np.vstack([op.coef for op in ops]), intercept=np.concatenate([op.intercept for op in ops]))
    return _in_place_of(b, merged, x, members)
