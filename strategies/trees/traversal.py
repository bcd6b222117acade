"""Gather-based tree walks in torch: ``tree_traversal`` (sparse nodes) and ``perfect_tree_traversal``."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..base import Knob, Strategy, register
from ..ir import Op, TreeEnsemble
from ..torch_ops import TORCH_DTYPES
from ._torch_common import Accumulate, Predicate, t64
from .common import forest_arrays, perfect_forest

X_LAYOUT = Knob(
    "x_layout", ("gather", "take"), "gather",
    "read feature values with gather on (n, F) rows, or take on the flattened input",
)

# 2**depth padding per tree: above this the perfect layout is pruned.
PERFECT_MAX_DEPTH = 14
PERFECT_MAX_NODES = 1 << 25


def _feature_values(x: torch.Tensor, f: torch.Tensor, take: bool) -> torch.Tensor:
    if take:
        n, F = x.shape
        rows = torch.arange(n, dtype=torch.int64).unsqueeze(1) * F
        return x.reshape(-1).take(rows + f)
    return torch.gather(x, 1, f)


class TreeTraversalModule(nn.Module):
    def __init__(self, op: TreeEnsemble, knobs: Mapping[str, Any]):
        super().__init__()
        fa = forest_arrays(op)
        self.dtype = TORCH_DTYPES[fa.dtype.name]
        self.depth = fa.depth
        self.take = knobs["x_layout"] == "take"
        self.register_buffer("roots", t64(fa.roots).unsqueeze(0))
        self.register_buffer("feature", t64(fa.feature))
        self.register_buffer("true_child", t64(fa.true_child))
        self.register_buffer("false_child", t64(fa.false_child))
        self.register_buffer("leaf_value", torch.from_numpy(fa.leaf_value).to(torch.float32))
        self.predicate = Predicate(fa, np.arange(fa.n_nodes), op.category_rounding)
        self.accumulate = Accumulate(op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        idx = self.roots.expand(x.shape[0], -1)
        for _ in range(self.depth):
            xv = _feature_values(x, self.feature.take(idx), self.take)
            p = self.predicate(xv, idx)
            idx = torch.where(p, self.true_child.take(idx), self.false_child.take(idx))
        k = self.leaf_value.shape[1]
        vals = self.leaf_value.index_select(0, idx.reshape(-1)).reshape(x.shape[0], -1, k)
        return self.accumulate(vals)


class PerfectTraversalModule(nn.Module):
    def __init__(self, op: TreeEnsemble, knobs: Mapping[str, Any]):
        super().__init__()
        fa = forest_arrays(op)
        pf = perfect_forest(fa)
        self.dtype = TORCH_DTYPES[fa.dtype.name]
        self.depth = pf.depth
        self.take = knobs["x_layout"] == "take"
        T, I = pf.feature.shape
        self.n_internal = I
        self.register_buffer("tree_base", t64(np.arange(T) * I).unsqueeze(0))
        self.register_buffer("leaf_base", t64(np.arange(T) * (I + 1) - I).unsqueeze(0))
        self.register_buffer("feature", t64(pf.feature.reshape(-1)))
        k = pf.leaf_value.shape[2]
        self.register_buffer("leaf_value", torch.from_numpy(pf.leaf_value.reshape(-1, k)).to(torch.float32))
        self.predicate = Predicate(fa, pf.node_id.reshape(-1), op.category_rounding)
        self.accumulate = Accumulate(op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        n = x.shape[0]
        g = self.tree_base.expand(n, -1)  # flat index of the current node, starting at each root
        pos = torch.zeros_like(g)
        for _ in range(self.depth):
            xv = _feature_values(x, self.feature.take(g), self.take)
            p = self.predicate(xv, g)
            pos = 2 * pos + 2 - p.to(torch.int64)
            g = pos + self.tree_base
        k = self.leaf_value.shape[1]
        vals = self.leaf_value.index_select(0, (pos + self.leaf_base).reshape(-1)).reshape(n, -1, k)
        return self.accumulate(vals)


@register
class TreeTraversal(Strategy):
    """Iterative gather over (feature, threshold, true/false child) arrays, ``depth`` steps."""

    name = "tree_traversal"
    default_batch = 4096
    work_estimate = ("an.visits_padded", "an.model_bytes")
    op_kind = "tree_ensemble"
    family = "torch"
    knobs = (X_LAYOUT,)

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return TreeTraversalModule(op, knobs)  # type: ignore[arg-type]


@register
class PerfectTreeTraversal(Strategy):
    """Trees padded to perfect trees; the walk is index arithmetic ``2i + 2 - P``."""

    name = "perfect_tree_traversal"
    default_batch = 4096
    work_estimate = ("an.visits_padded", "an.perfect_bytes")
    op_kind = "tree_ensemble"
    family = "torch"
    knobs = (X_LAYOUT,)

    @classmethod
    def unsupported_reason(cls, op: Op) -> str | None:
        assert isinstance(op, TreeEnsemble)
        if op.max_depth > PERFECT_MAX_DEPTH or op.n_trees * (2 ** op.max_depth) > PERFECT_MAX_NODES:
            return (
                f"perfect padding of {op.n_trees} trees of depth {op.max_depth} needs "
                f"{op.n_trees * 2 ** op.max_depth} nodes (limit depth {PERFECT_MAX_DEPTH}, {PERFECT_MAX_NODES} nodes)"
            )
        return None

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return PerfectTraversalModule(op, knobs)  # type: ignore[arg-type]
