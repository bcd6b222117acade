"""Preprocessing operators as elementwise tensor ops, in float64 like scikit-learn."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import Knob, module_strategy
from .ir import NORM_TINY, Imputer, Normalizer, Scaler


class ScalerModule(nn.Module):
    def __init__(self, op: Scaler):
        super().__init__()
        self.mul_add = op.mode == "mul_add"
        self.register_buffer("offset", torch.from_numpy(op.offset.copy()))
        self.register_buffer("scale", torch.from_numpy(op.scale.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        if self.mul_add:
            return x * self.scale + self.offset
        return (x - self.offset) / self.scale


class NormalizerModule(nn.Module):
    def __init__(self, op: Normalizer):
        super().__init__()
        self.norm = op.norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        if self.norm == "l1":
            n = x.abs().sum(dim=1, keepdim=True)
        elif self.norm == "l2":
            n = torch.sqrt((x * x).sum(dim=1, keepdim=True))
        else:
            n = x.abs().amax(dim=1, keepdim=True)
        return x / torch.where(n < NORM_TINY, torch.ones_like(n), n)


class ImputerModule(nn.Module):
    def __init__(self, op: Imputer):
        super().__init__()
        markers = op.markers()
        self.all_nan = bool(np.isnan(markers).all())
        self.register_buffer("nan_marker", torch.from_numpy(np.isnan(markers)))
        self.register_buffer("marker", torch.from_numpy(np.where(np.isnan(markers), 0.0, markers)))
        self.register_buffer("fill", torch.from_numpy(op.fill.copy()))
        self.register_buffer("keep", torch.from_numpy(op.keep.astype(np.int64)))
        self.keep_all = bool(np.array_equal(op.keep, np.arange(op.fill.shape[0])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        missing = torch.isnan(x) if self.all_nan else torch.where(self.nan_marker, torch.isnan(x), x == self.marker)
        y = torch.where(missing, self.fill, x)
        return y if self.keep_all else y.index_select(1, self.keep)


Elementwise = module_strategy("elementwise", "scaler", ScalerModule,
                              "Scaler as one broadcast elementwise expression (float64).")

ImputeWhere = module_strategy("impute_where", "imputer", ImputerModule)
RowNorm = module_strategy("row_norm", "normalizer", NormalizerModule)


__all__ = ["Elementwise", "ImputeWhere", "RowNorm", "Knob"]
