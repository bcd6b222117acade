"""The state of one ONNX graph's conversion: its values as IR values, and the IR nodes built so far."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...ground.errors import UnsupportedModelError
from ...ir import INPUT, IDENTITY, Linear, Node, Op, PostTransform, TreeEnsemble
from ...ir.ensembles import Activation


@dataclass(frozen=True)
class LabelInfo:
    """A classifier node's ``label`` output: the classes, how the label is read from the scores."""

    classes: np.ndarray
    label_rule: str
    scores: "Val"
    views: tuple[tuple[str, int, int], ...] = ()  # when set: each method's columns of ``scores`` (see Head)


@dataclass(frozen=True)
class Val:
    """One ONNX value as the IR sees it: IR value ``node`` (``-1``: the graph input) of ``width`` columns.

    ``pt`` is a row-wise map still to apply (a classifier's post-transform: it may fold into a later
    normalizer or the head); ``columns`` the graph-input columns the value is, when it is a plain
    selection of them; ``label`` marks a classifier's label output; ``role`` ``regressor`` /
    ``probabilities`` / ``""`` tells the head what the value is; ``scaled`` lets a tree ensemble read the
    Scaler's input instead, its splits moved onto it (exact float32 scaling).
    """

    node: int
    width: int
    dtype: str = "float"  # float (float32) | double | int | string
    pt: PostTransform = IDENTITY
    columns: tuple[int, ...] | None = None
    label: LabelInfo | None = None
    role: str = ""
    scaled: "tuple[Val, np.ndarray, np.ndarray] | None" = None  # (x, offset, scale): this is ONNX's Scaler of x


@dataclass
class Builder:
    """IR nodes in topological order, plus per-input-column facts the input spec needs."""

    n_features: int
    nodes: list[Node] = field(default_factory=list)
    vocab: dict[int, list[str]] = field(default_factory=dict)  # string input column -> vocabulary
    known: dict[int, set[float]] = field(default_factory=dict)  # input column -> the only values accepted
    known_by: dict[int, str] = field(default_factory=dict)
    finite_only: bool = False  # NaN / +-inf inputs refused: an op ONNX Runtime computes them differently for

    def add(self, op: Op, *inputs: Val) -> int:
        """Append ``op`` reading ``inputs`` (their pending maps applied first); return its value index."""
        ids = tuple(self.materialize(v).node for v in inputs)
        self.nodes.append(Node(op, ids))
        return len(self.nodes) - 1

    def materialize(self, v: Val) -> Val:
        """``v`` with its pending row-wise map applied as an op of its own."""
        if v.pt.is_identity:
            return v
        self.nodes.append(Node(Activation(v.width, v.pt), (v.node,)))
        return dataclasses.replace(v, node=len(self.nodes) - 1, pt=IDENTITY)

    def code(self, column: int, value: str) -> float:
        """The input code of string ``value`` in graph-input column ``column``."""
        words = self.vocab.setdefault(column, [])
        if value not in words:
            words.append(value)
        return float(words.index(value))

    def restrict(self, columns: tuple[int, ...], values: list[float], by: str) -> None:
        """Graph-input ``columns`` accept only ``values`` (ONNX Runtime fails on any other)."""
        for c in columns:
            now = set(values)
            self.known[c] = self.known[c] & now if c in self.known else now
            self.known_by[c] = by

    def finish(self, out: Val) -> tuple[list[Node], int]:
        """The nodes up to ``out`` with its pending map applied as the last op's post-transform."""
        if out.node == INPUT:
            from ...ir.columns import Gather

            self.nodes.append(Node(Gather(self.n_features, np.arange(self.n_features)), (INPUT,)))
            out = dataclasses.replace(out, node=len(self.nodes) - 1)
        nodes = self.nodes[: out.node + 1]
        last = nodes[-1].op
        if not out.pt.is_identity:
            if isinstance(last, (TreeEnsemble, Linear)) and last.post_transform.is_identity:
                nodes[-1] = Node(dataclasses.replace(last, post_transform=out.pt), nodes[-1].inputs)
            else:
                nodes.append(Node(Activation(out.width, out.pt), (out.node,)))
        return nodes, len(nodes) - 1


def const_row(c: np.ndarray, width: int, what: str) -> np.ndarray:
    """A constant broadcast along rows: ``()``, ``(width,)`` or ``(1, width)`` -> ``(width,)`` float64."""
    a = np.asarray(c, dtype=np.float64)
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim > 1 or (a.ndim == 1 and a.shape[0] not in (1, width)):
        raise UnsupportedModelError(f"{what}: a constant of shape {np.shape(c)} does not broadcast along rows "
                                    f"of {width} columns")
    return np.broadcast_to(a.reshape(-1) if a.ndim else a, (width,)).astype(np.float64)


def attr_values(node: Any) -> dict[str, Any]:
    """A node's attributes as Python values (tensors as NumPy arrays)."""
    import onnx
    from onnx import numpy_helper

    out: dict[str, Any] = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        out[a.name] = v
    return out
