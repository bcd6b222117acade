"""Feature-expansion operators (``strategies.ir.expansions``) as torch modules (float64).

Only operators that ``torch.export`` -> TVM Relax imports are used: comparisons,
``where``, sums, ``take`` / ``index_select`` gathers, multiplications and
``fmod``; no ``searchsorted``.

* ``bucketize``: ``compare`` counts the edges ``<= x`` with one comparison per
  (value, edge); ``binary_search`` finds the count in ``ceil(log2(E + 1))``
  gathered comparisons (for many bins).
* ``polynomial``: every output is a chain of gathered columns multiplied in the
  operator's (scikit-learn's) order; padding factors are exact ones.
* ``spline``: the knot interval by comparisons, then de Boor's recursion on the
  ``k + 1`` non-zero basis values, unrolled for the fixed degree, as SciPy
  evaluates it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .base import Knob, Strategy, module_strategy, register
from .ir import Op
from .ir.expansions import Bucketize, Polynomial, Spline


def _round(x: torch.Tensor, compare_dtype: str) -> torch.Tensor:
    x = x.to(torch.float64)
    return x.to(torch.float32).to(torch.float64) if compare_dtype == "float32" else x


class BucketizeCompare(nn.Module):
    """``count = sum_e (x >= edge_e)`` over the column's (+inf padded) edges."""

    def __init__(self, op: Bucketize):
        super().__init__()
        self.register_buffer("edges", torch.from_numpy(op.edges.copy()))  # (F, E)
        self.register_buffer("n_edges", torch.from_numpy(op.n_edges.astype(np.float64)))
        self.compare_dtype = op.compare_dtype
        self.empty = op.edges.shape[1] == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _round(x, self.compare_dtype)
        if self.empty:
            return torch.zeros_like(x)
        count = (x.unsqueeze(2) >= self.edges).to(torch.float64).sum(2)
        count = torch.minimum(count, self.n_edges)  # x = +inf passes the padding
        return torch.where(torch.isnan(x), self.n_edges, count)


class BucketizeBinarySearch(nn.Module):
    """Branch-free binary search: ``pos += s`` while ``edges[pos + s - 1] <= x``, for s = 2^(p-1) .. 1."""

    def __init__(self, op: Bucketize):
        super().__init__()
        F, E = op.edges.shape
        steps = []
        while (1 << len(steps)) <= E:
            steps.append(1 << len(steps))
        self.steps = steps[::-1]
        width = (1 << len(steps)) - 1  # >= E
        padded = np.full((F, max(width, 1)), np.inf)
        padded[:, :E] = op.edges
        self.width = padded.shape[1]
        self.register_buffer("table", torch.from_numpy(padded.reshape(-1).copy()))
        self.register_buffer("base", torch.from_numpy(np.arange(F, dtype=np.int64) * self.width))
        self.register_buffer("n_edges", torch.from_numpy(op.n_edges.astype(np.float64)))
        self.compare_dtype = op.compare_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _round(x, self.compare_dtype)
        pos = torch.zeros_like(x, dtype=torch.int64)
        for s in self.steps:
            e = self.table.take(pos + (self.base + (s - 1)))
            pos = torch.where(e <= x, pos + s, pos)
        count = torch.minimum(pos.to(torch.float64), self.n_edges)
        return torch.where(torch.isnan(x), self.n_edges, count)


class PolynomialModule(nn.Module):
    """``out = ((x[:, f0] * x[:, f1]) * ...)`` with each output's factors gathered per step (column F is 1)."""

    def __init__(self, op: Polynomial):
        super().__init__()
        F, n_out = op.n_features, op.powers.shape[0]
        factors = op.factors()
        D = max((len(f) for f in factors), default=0)
        idx = np.full((max(D, 1), n_out), F, dtype=np.int64)
        for o, f in enumerate(factors):
            idx[: len(f), o] = f
        self.steps = max(D, 1)
        self.n_out = n_out
        for d in range(self.steps):
            self.register_buffer(f"idx{d}", torch.from_numpy(idx[d].copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        xa = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        out = xa.index_select(1, self.idx0)
        for d in range(1, self.steps):
            out = out * xa.index_select(1, getattr(self, f"idx{d}"))
        return out


class SplineModule(nn.Module):
    """All columns at once: interval by comparisons, knots by ``take``, de Boor unrolled for the degree."""

    def __init__(self, op: Spline):
        super().__init__()
        F, m = op.knots.shape
        k, n = op.degree, op.n_basis
        self.k, self.F, self.S, self.mode = k, F, op.n_splines, op.extrapolation
        self.register_buffer("inner", torch.from_numpy(op.knots[:, k + 1:n].copy()))  # (F, n - k - 1)
        self.has_inner = n - k - 1 > 0
        self.register_buffer("knots", torch.from_numpy(op.knots.reshape(-1).copy()))
        self.register_buffer("base", torch.from_numpy(np.arange(F, dtype=np.int64) * m))
        self.register_buffer("base_lo", torch.from_numpy(op.lower.copy()))
        self.register_buffer("period", torch.from_numpy(op.upper - op.lower))
        self.register_buffer("lo", torch.from_numpy(op.bounds[:, 0].copy()))
        self.register_buffer("hi", torch.from_numpy(op.bounds[:, 1].copy()))
        self.register_buffer("C", torch.from_numpy(op.combination()))  # (n, S)
        self.register_buffer("value_lo", torch.from_numpy(op.edge_value[:, 0].copy()))  # (F, S)
        self.register_buffer("value_hi", torch.from_numpy(op.edge_value[:, 1].copy()))
        self.register_buffer("slope_lo", torch.from_numpy(op.edge_slope[:, 0].copy()))
        self.register_buffer("slope_hi", torch.from_numpy(op.edge_slope[:, 1].copy()))
        mask = op.edge_mask()  # (F, 2, S)
        self.register_buffer("mask_lo", torch.from_numpy(mask[:, 0].copy()))
        self.register_buffer("mask_hi", torch.from_numpy(mask[:, 1].copy()))
        self.register_buffer("zero", torch.zeros((), dtype=torch.float64))
        self.register_buffer("nan", torch.full((), float("nan"), dtype=torch.float64))
        kept = op.kept()
        self.all_kept = kept.shape[0] == F * op.n_splines
        self.register_buffer("kept", torch.from_numpy(kept.astype(np.int64)))

    def _knot(self, ell: torch.Tensor, offset: int) -> torch.Tensor:
        return self.knots.take(ell + (self.base + offset))

    def basis(self, u: torch.Tensor) -> torch.Tensor:
        """(N, F, S): SciPy's BSpline evaluation at ``u`` (N, F), extrapolating; NaN u gives NaN."""
        k = self.k
        if self.has_inner:
            ell = (u.unsqueeze(2) >= self.inner).to(torch.int64).sum(2) + k
        else:
            ell = torch.zeros_like(u, dtype=torch.int64) + k
        zero = torch.zeros_like(u)
        h = [torch.ones_like(u)] + [zero] * k
        for j in range(1, k + 1):
            hh = h[:j]
            h = list(h)
            h[0] = zero
            for m in range(1, j + 1):
                xb, xa = self._knot(ell, m), self._knot(ell, m - j)
                same = xb == xa
                w = hh[m - 1] / (xb - xa)
                h[m - 1] = torch.where(same, h[m - 1], h[m - 1] + w * (xb - u))
                h[m] = torch.where(same, zero, w * (u - xa))
        out = self.zero  # SciPy sums from 0.0 (constant buffers: TVM cannot legalize full / full_like)
        for a in range(k + 1):
            rows = (ell + (a - k)).reshape(-1)
            c = self.C.index_select(0, rows).reshape(u.shape[0], self.F, self.S)
            out = out + c * h[a].unsqueeze(2)
        return torch.where(torch.isnan(u).unsqueeze(2), self.nan, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        if self.mode == "periodic":
            r = torch.fmod(x - self.base_lo, self.period)
            r = torch.where(r < 0, r + self.period, r)  # NumPy's %: the sign of the (positive) period
            u = self.base_lo + r
        else:
            u = x
        y = self.basis(u)
        x3 = x.unsqueeze(2)
        if self.mode != "continue" and self.mode != "periodic":
            below = (x < self.lo).unsqueeze(2)
            above = (x > self.hi).unsqueeze(2)
            if self.mode == "error":
                y = torch.where(below | above, self.nan, y)
            elif self.mode == "constant":
                y = torch.where(below, self.value_lo, torch.where(above, self.value_hi, y))
            else:
                ext_lo = self.value_lo + (x3 - self.lo.unsqueeze(1)) * self.slope_lo
                ext_hi = self.value_hi + (x3 - self.hi.unsqueeze(1)) * self.slope_hi
                y = torch.where(below, torch.where(self.mask_lo, ext_lo, self.zero),
                                torch.where(above, torch.where(self.mask_hi, ext_hi, self.zero), y))
        y = torch.where(torch.isnan(x3), self.zero, y)
        y = y.reshape(y.shape[0], self.F * self.S)
        return y if self.all_kept else y.index_select(1, self.kept)


@register
class BucketizeColumns(Strategy):
    """Bin index per column (``bucketize``): ``compare`` (all edges at once) or ``binary_search``."""

    name = "bucketize_columns"
    op_kind = "bucketize"
    family = "torch"
    knobs = (Knob("method", ("compare", "binary_search"), "compare",
                  "compare: one comparison per edge, summed; binary_search: log2(edges) gathered comparisons"),)

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        if knobs.get("method", "compare") == "binary_search":
            return BucketizeBinarySearch(op)  # type: ignore[arg-type]
        return BucketizeCompare(op)  # type: ignore[arg-type]


PolynomialProducts = module_strategy("polynomial_products", "polynomial", PolynomialModule)
SplineDeBoor = module_strategy("spline_de_boor", "spline", SplineModule)
