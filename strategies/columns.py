"""Column routing and encoding operators as torch modules (float64, as scikit-learn computes).

``lookup`` has two formulations, a knob of the ``lookup`` strategy: ``compare``
matches every category at once (a boolean matrix times the weight table, the
way Hummingbird encodes one-hot) and ``index`` turns each value into a slot of
a per-column table and gathers (for categories that are small integers, such as
the codes of string columns: work per row grows with the outputs, not with
outputs x categories).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .base import Knob, Strategy, module_strategy, register
from .ir import Op
from .ir.columns import Binarize, Concat, Constant, Gather, Indicator, Lookup

# ``index`` lookups need every category of a column to be an integer in a range of at most this many values,
# all of magnitude below MAX_INDEX_VALUE (so that range +- 1 is exact in float64)
MAX_INDEX_RANGE = 1 << 16
MAX_INDEX_VALUE = 2.0**50


class GatherModule(nn.Module):
    def __init__(self, op: Gather):
        super().__init__()
        self.register_buffer("columns", torch.from_numpy(op.columns.astype(np.int64)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float64).index_select(1, self.columns)


class ConcatModule(nn.Module):
    def __init__(self, op: Concat | None = None):
        super().__init__()

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.to(torch.float64) for x in xs], dim=1)


class ConstantModule(nn.Module):
    def __init__(self, op: Constant):
        super().__init__()
        self.register_buffer("value", torch.from_numpy(op.value.copy())[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(x.shape[0], -1)


class IndicatorModule(nn.Module):
    def __init__(self, op: Indicator):
        super().__init__()
        self.register_buffer("columns", torch.from_numpy(op.columns.astype(np.int64)))
        markers = op.markers()
        self.all_nan = bool(np.isnan(markers).all())
        self.register_buffer("nan_marker", torch.from_numpy(np.isnan(markers)))
        self.register_buffer("marker", torch.from_numpy(np.where(np.isnan(markers), 0.0, markers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.to(torch.float64).index_select(1, self.columns)
        hit = torch.isnan(v) if self.all_nan else torch.where(self.nan_marker, torch.isnan(v), v == self.marker)
        return hit.to(torch.float64)


class BinarizeModule(nn.Module):
    def __init__(self, op: Binarize):
        super().__init__()
        self.register_buffer("threshold", torch.from_numpy(op.threshold.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(torch.float64) > self.threshold).to(torch.float64)


class LookupCompare(nn.Module):
    """Match every (column, category) entry, then one matrix product places the weights."""

    def __init__(self, op: Lookup):
        super().__init__()
        K, n_out = op.column.shape[0], op.source.shape[0]
        nan_key = np.isnan(op.value)
        hit = op.target >= 0
        finite_w = hit & np.isfinite(op.weight)
        W = np.zeros((K, n_out))
        W[np.flatnonzero(finite_w), op.target[finite_w]] = op.weight[finite_w]
        # entries whose weight is NaN or +-inf (a product with 0 would spread NaN): placed by a select
        odd = np.flatnonzero(hit & ~np.isfinite(op.weight))
        self.special = [(int(k), int(op.target[k])) for k in odd]
        self.register_buffer("special_w", torch.from_numpy(op.weight[odd].copy()))
        # S[k, o] = 1 when entry k belongs to the column that output o reads
        S = (op.column[:, None] == op.source[None, :]).astype(np.float32)
        self.register_buffer("column", torch.from_numpy(op.column.astype(np.int64)))
        self.register_buffer("value", torch.from_numpy(np.where(nan_key, 0.0, op.value)))
        self.register_buffer("nan_key", torch.from_numpy(nan_key))
        self.register_buffer("W", torch.from_numpy(W))
        self.register_buffer("S", torch.from_numpy(S))
        self.register_buffer("unknown", torch.from_numpy(op.unknown.copy()))
        self.has_nan_key = bool(nan_key.any())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.to(torch.float64).index_select(1, self.column)
        m = v == self.value
        if self.has_nan_key:
            m = torch.where(self.nan_key, torch.isnan(v), m)
        known = (m.to(torch.float32) @ self.S) > 0
        out = m.to(torch.float64) @ self.W
        if self.special:
            cols = list(out.unbind(1))
            for i, (k, t) in enumerate(self.special):  # (a buffer, not a fill value: TVM cannot fill NaN)
                cols[t] = torch.where(m[:, k], self.special_w[i], cols[t])
            out = torch.stack(cols, dim=1)
        return torch.where(known, out, self.unknown)


def index_ranges(op: Lookup) -> dict[int, tuple[int, int]] | None:
    """Per source column, the integer range ``[lo, hi]`` of its non-NaN categories; None when some
    category is not an integer or a range is too wide for an ``index`` table."""
    out = {}
    for c in np.unique(op.source).tolist():
        cats = op.value[(op.column == c) & ~np.isnan(op.value)]
        if cats.size == 0:
            out[c] = (0, 0)
            continue
        if not np.all(np.isfinite(cats)) or np.abs(cats).max() >= MAX_INDEX_VALUE:
            return None
        if not np.all(cats == np.floor(cats)) or cats.max() - cats.min() >= MAX_INDEX_RANGE:
            return None
        out[c] = (int(cats.min()), int(cats.max()))
    return out


class LookupIndex(nn.Module):
    """Each used column's value becomes a slot (its offset in the column's integer range, or the NaN or
    the unknown slot); every output then reads its own table at its column's slot."""

    def __init__(self, op: Lookup, ranges: dict[int, tuple[int, int]]):
        super().__init__()
        cols = sorted(ranges)
        pos = {c: i for i, c in enumerate(cols)}
        lo = np.array([ranges[c][0] for c in cols], np.float64)
        width = np.array([ranges[c][1] - ranges[c][0] + 1 for c in cols], np.int64)
        n_out = op.source.shape[0]
        size = width[[pos[c] for c in op.source.tolist()]] + 2  # per output: its range, NaN slot, unknown slot
        base = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
        table = np.repeat(op.unknown, size)
        # entries of columns that no output reads change nothing
        entries = [e for e in zip(op.column.tolist(), op.value.tolist(), op.target.tolist(), op.weight.tolist())
                   if e[0] in pos]

        def slot(c: int, v: float) -> int:
            return int(width[pos[c]]) if np.isnan(v) else int(v) - int(lo[pos[c]])

        for c, v, _, _ in entries:  # a known category writes 0 to its column's outputs ...
            table[base[op.source == c] + slot(c, v)] = 0.0
        for c, v, t, w in entries:  # ... and its weights to its targets
            if t >= 0:
                table[base[t] + slot(c, v)] = w
        self.register_buffer("cols", torch.from_numpy(np.array(cols, np.int64)))
        self.register_buffer("lo", torch.from_numpy(lo))
        self.register_buffer("hi", torch.from_numpy(lo + width - 1))
        self.register_buffer("nan_slot", torch.from_numpy(width.copy()))
        self.register_buffer("unknown_slot", torch.from_numpy(width + 1))
        self.register_buffer("src", torch.from_numpy(np.array([pos[c] for c in op.source.tolist()], np.int64)))
        self.register_buffer("base", torch.from_numpy(base))
        self.register_buffer("table", torch.from_numpy(table))
        self.n_out = n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.to(torch.float64).index_select(1, self.cols)
        nan = torch.isnan(v)
        c = torch.clamp(torch.where(nan, self.lo, v), self.lo - 1, self.hi + 1)
        inside = ~nan & (c == torch.floor(c)) & (c >= self.lo) & (c <= self.hi)
        slot = torch.where(inside, (c - self.lo).to(torch.int64),
                           torch.where(nan, self.nan_slot, self.unknown_slot))
        return self.table.take(slot.index_select(1, self.src) + self.base)


GatherColumns = module_strategy("gather_columns", "gather", GatherModule)
ConcatColumns = module_strategy("concat_columns", "concat", ConcatModule)
ConstantRows = module_strategy("constant_rows", "constant", ConstantModule)
MissingIndicator = module_strategy("missing_indicator", "indicator", IndicatorModule)
Threshold = module_strategy("threshold", "binarize", BinarizeModule)


@register
class CategoryTable(Strategy):
    """Encoders (``lookup``): ``compare`` (match matrix x weight table) or ``index`` (slot + gather)."""

    name = "category_table"
    op_kind = "lookup"
    family = "torch"
    knobs = (Knob("method", ("index", "compare"), "index",
                  "index: per-column slot and one gather per output (integer categories); "
                  "compare: match every category, then a matrix product"),)

    @classmethod
    def invalid_reason(cls, op: Op, knobs: Mapping[str, Any]) -> str | None:
        if knobs.get("method", "index") == "index" and index_ranges(op) is None:  # type: ignore[arg-type]
            return "method='index' needs integer categories in ranges narrower than 65,536"
        return None

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        # (the default is ``index``; an op whose categories cannot be indexed is served by ``compare``)
        ranges = index_ranges(op) if knobs.get("method", "index") == "index" else None  # type: ignore[arg-type]
        if ranges is not None:
            return LookupIndex(op, ranges)  # type: ignore[arg-type]
        return LookupCompare(op)  # type: ignore[arg-type]
