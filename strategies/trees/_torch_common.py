"""Torch pieces shared by the gather/matmul tree strategies."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..ir import ZERO_MISSING_THRESHOLD, TreeEnsemble
from ..torch_ops import TORCH_DTYPES
from .common import CATEGORICAL, ZERO_MISSING, ForestArrays


def t64(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a).astype(np.int64))


class Predicate(nn.Module):
    """``P`` (go to the true child) for nodes ``g`` given their feature values ``xv``.

    Built from node tables indexed by the same ids as ``g`` (ForestArrays ids or a
    perfect layout's flat ids); the special-node path exists only when needed.
    """

    def __init__(self, fa: ForestArrays, node_ids: np.ndarray, rounding: str):
        super().__init__()
        ids = np.asarray(node_ids)
        pad = ids < 0
        safe = np.where(pad, 0, ids)
        dtype = TORCH_DTYPES[fa.dtype.name]
        sign = np.where(pad, 1, fa.sign[safe]).astype(fa.dtype)
        thr = np.where(pad, np.inf, fa.threshold[safe]).astype(fa.dtype)
        self.register_buffer("sign", torch.from_numpy(sign))
        self.register_buffer("threshold", torch.from_numpy(thr))
        self.flips = bool((sign < 0).any())
        self.special = fa.has_special and bool((fa.kind[safe][~pad] != 0).any())
        self.floor = rounding == "floor"
        self.exact = rounding == "exact"
        if self.special:
            kind = np.where(pad, 0, fa.kind[safe])
            self.register_buffer("is_cat", torch.from_numpy(kind == CATEGORICAL))
            self.register_buffer("is_zm", torch.from_numpy(kind == ZERO_MISSING))
            self.register_buffer("missing_left", torch.from_numpy(np.where(pad, False, fa.missing_left[safe])))
            self.register_buffer("le", torch.from_numpy(np.where(pad, np.inf, fa.le_threshold[safe]).astype(fa.dtype)))
            self.has_cat = fa.cat_table is not None
            if self.has_cat:
                C = fa.n_categories
                self.n_cat = C
                self.register_buffer("cat_base", t64(np.where(pad, 0, fa.cat_row[safe]) * C))
                self.register_buffer("cat_table", torch.from_numpy(fa.cat_table.reshape(-1).astype(bool)))
                self.register_buffer("unknown_left", torch.from_numpy(np.where(pad, False, fa.cat_unknown_left[safe])))
        self.dtype = dtype

    def forward(self, xv: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """``g`` None means ``xv``'s last axis already enumerates every node in table order."""
        take = (lambda b: b) if g is None else (lambda b: b.take(g))
        if self.flips:
            p = take(self.sign) * xv <= take(self.threshold)
        else:
            p = xv <= take(self.threshold)
        if not self.special:
            return p
        nan = torch.isnan(xv)
        ml = take(self.missing_left)
        zm = torch.where(nan | (xv.abs() <= ZERO_MISSING_THRESHOLD), ml, xv <= take(self.le))
        p = torch.where(take(self.is_zm), zm, p)
        if self.has_cat:
            c = torch.floor(xv) if self.floor else torch.trunc(xv)
            valid = (c >= 0) & (c < self.n_cat)  # False for NaN and +-inf
            if self.exact:
                valid = valid & (c == xv)
            ci = torch.where(valid, c, torch.zeros_like(c)).to(torch.int64)
            bit = self.cat_table.take(take(self.cat_base) + ci)
            cat = torch.where(nan, ml, torch.where(valid, bit, take(self.unknown_left)))
            p = torch.where(take(self.is_cat), cat, p)
        return p


class Accumulate(nn.Module):
    """Per-tree leaf values ``(n, T, k)`` -> raw scores ``(n, K)``: combine, average, add base score."""

    def __init__(self, op: TreeEnsemble, acc_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.acc = acc_dtype
        self.vector = op.tree_output is None
        K = op.n_outputs
        if not self.vector and K > 1:
            onehot = np.zeros((op.n_trees, K))
            onehot[np.arange(op.n_trees), op.tree_output] = 1.0
            self.register_buffer("onehot", torch.from_numpy(onehot).to(acc_dtype))
        self.multi = not self.vector and K > 1
        self.mean = op.aggregation == "mean"
        if self.mean:
            self.register_buffer("count", torch.from_numpy(op.trees_per_output().astype(np.float64)).to(acc_dtype))
        self.register_buffer("base", torch.from_numpy(op.base_score.copy()).to(acc_dtype))
        self.has_base = bool(np.any(op.base_score != 0))

    def forward(self, vals: torch.Tensor) -> torch.Tensor:
        if self.vector:
            s = vals.sum(dim=1)
        elif self.multi:
            s = vals[:, :, 0] @ self.onehot
        else:
            s = vals.sum(dim=1)
        if self.mean:
            s = s / self.count
        return s + self.base if self.has_base else s
