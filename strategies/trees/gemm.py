"""The GEMM formulation of tree ensembles (Hummingbird): decisions, path matrix, leaf values.

1. ``P`` for every internal node at once (the node's feature gathered from X:
   exact for NaN and inf, where a one-hot matmul would make ``0 * inf = NaN``).
2. Per tree, ``P @ C == D`` selects the leaf: ``C[n, l]`` is +1 if leaf ``l`` lies
   under node ``n``'s true child, -1 under its false child; ``D[l]`` counts the
   true-edges on the path to ``l``.  Sums of small integers: exact in float32.
3. The one-hot leaf indicator times the leaf values (one nonzero per row: exact).
Trees are padded to the largest node/leaf count within a group and batched with bmm.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..base import Knob, Strategy, register
from ..ir import Op, TreeEnsemble
from ..torch_ops import TORCH_DTYPES
from ._torch_common import Accumulate, Predicate, t64
from .common import ForestArrays, forest_arrays

# (trees x internal x leaves) entries of C above this are pruned: the matrices would not fit in cache or memory.
GEMM_MAX_ENTRIES = 1 << 27


def path_matrices(fa: ForestArrays) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per tree: internal node ids, C (internal x leaves), D (leaves,), leaf ids."""
    internals, Cs, Ds, leaves = [], [], [], []
    for t in range(fa.n_trees):
        lo, hi = fa.tree_start[t], fa.tree_start[t + 1]
        ids = np.arange(lo, hi)
        inner = ids[~fa.is_leaf[ids]]
        leaf = ids[fa.is_leaf[ids]]
        pos_i = {int(n): i for i, n in enumerate(inner)}
        pos_l = {int(n): i for i, n in enumerate(leaf)}
        C = np.zeros((len(inner), len(leaf)), np.float32)
        D = np.zeros(len(leaf), np.float32)
        # depth-first: carry the path (node, went_true) pairs
        stack = [(int(lo), [])]
        while stack:
            node, path = stack.pop()
            if fa.is_leaf[node]:
                li = pos_l[node]
                for n, went in path:
                    C[pos_i[n], li] = 1.0 if went else -1.0
                D[li] = sum(1 for _, went in path if went)
                continue
            stack.append((int(fa.true_child[node]), path + [(node, True)]))
            stack.append((int(fa.false_child[node]), path + [(node, False)]))
        internals.append(inner)
        Cs.append(C)
        Ds.append(D)
        leaves.append(leaf)
    return internals, Cs, Ds, leaves


class GemmGroup(nn.Module):
    """A group of trees padded to common sizes: returns per-tree leaf values ``(n, T_g, k)``."""

    def __init__(self, fa: ForestArrays, trees: range, mats, rounding: str, mm_dtype: torch.dtype):
        super().__init__()
        internals, Cs, Ds, leaves = (m[trees.start:trees.stop] for m in mats)
        T = len(internals)
        N = max(1, max(len(i) for i in internals))
        L = max(len(lf) for lf in leaves)
        k = fa.leaf_value.shape[1]
        node_ids = np.full((T, N), -1, np.int64)
        C = np.zeros((T, N, L), np.float32)
        D = np.full((T, 1, L), -1.0, np.float32)  # padded leaves never match
        V = np.zeros((T, L, k), np.float64)
        for t in range(T):
            ni, nl = len(internals[t]), len(leaves[t])
            node_ids[t, :ni] = internals[t]
            C[t, :ni, :nl] = Cs[t]
            D[t, 0, :nl] = Ds[t]
            V[t, :nl] = fa.leaf_value[leaves[t]]
        self.T, self.N = T, N
        flat = node_ids.reshape(-1)
        self.register_buffer("feature", t64(np.where(flat < 0, 0, fa.feature[np.maximum(flat, 0)])))
        self.predicate = Predicate(fa, flat, rounding)
        self.mm_dtype = mm_dtype
        self.register_buffer("C", torch.from_numpy(C).to(mm_dtype))
        self.register_buffer("D", torch.from_numpy(D).to(mm_dtype))
        self.register_buffer("V", torch.from_numpy(V).to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        xv = x.index_select(1, self.feature)  # (n, T*N)
        p = self.predicate(xv, None).to(self.mm_dtype)
        p = p.reshape(n, self.T, self.N).transpose(0, 1)  # (T, n, N)
        hit = (torch.bmm(p, self.C) == self.D).to(torch.float32)  # (T, n, L)
        return torch.bmm(hit, self.V).transpose(0, 1)  # (n, T, k)


class GemmModule(nn.Module):
    def __init__(self, op: TreeEnsemble, knobs: Mapping[str, Any]):
        super().__init__()
        fa = forest_arrays(op)
        self.dtype = TORCH_DTYPES[fa.dtype.name]
        mats = path_matrices(fa)
        group = knobs["tree_group"] or fa.n_trees
        mm = TORCH_DTYPES[knobs["mm_dtype"]]
        self.groups = nn.ModuleList(
            GemmGroup(fa, range(s, min(s + group, fa.n_trees)), mats, op.category_rounding, mm)
            for s in range(0, fa.n_trees, group)
        )
        self.accumulate = Accumulate(op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        parts = [g(x) for g in self.groups]
        vals = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return self.accumulate(vals)


@register
class Gemm(Strategy):
    """Three batched matrix products per group of trees (Hummingbird's GEMM strategy)."""

    name = "gemm"
    default_batch = 1024
    work_estimate = ("an.gemm_macs", "an.gemm_bytes")
    op_kind = "tree_ensemble"
    family = "torch"
    knobs = (
        Knob("tree_group", (0, 8, 32, 128), 0, "trees per batched matmul (0: all trees in one group)"),
        Knob("mm_dtype", ("float32", "float64"), "float32", "dtype of the path-matrix product (both exact)"),
    )

    @classmethod
    def unsupported_reason(cls, op: Op) -> str | None:
        assert isinstance(op, TreeEnsemble)
        # padded to the largest tree: trees x max internal nodes x max leaves
        entries = op.n_trees * max(int((~t.is_leaf).sum()) for t in op.trees) * max(t.n_leaves for t in op.trees)
        if entries > GEMM_MAX_ENTRIES:
            return f"path matrices would hold {entries} entries (limit {GEMM_MAX_ENTRIES}): trees too deep for gemm"
        return None

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return GemmModule(op, knobs)  # type: ignore[arg-type]
