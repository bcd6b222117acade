"""Gaussian naive Bayes (``strategies.ir.naive_bayes``) as a torch module (float64).

``gaussian_nb_quadratic`` has the ``form`` knob:

* ``direct``: ``sum_j (x_j - theta_cj) ** 2 / var_cj`` from the differences, as scikit-learn
  computes it (an ``(n, classes, features)`` intermediate);
* ``gemm``: the expanded form ``x**2 @ (1/var).T - 2 x @ (theta/var).T + sum(theta**2/var)``, two
  GEMMs and no 3-D intermediate; the cancellation in the expansion costs digits when ``|x|`` is
  large against ``sqrt(var)`` (the tuner checks every candidate against the reference).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .base import Knob, Strategy, register
from .ir import Op
from .ir.naive_bayes import GaussianNB


class GaussianDirect(nn.Module):
    def __init__(self, op: GaussianNB):
        super().__init__()
        self.register_buffer("theta", torch.from_numpy(op.theta.copy()))
        self.register_buffer("var", torch.from_numpy(op.var.copy()))
        self.register_buffer("log_prior", torch.from_numpy(op.log_prior.copy()))
        self.register_buffer("norm", torch.from_numpy(op.norm.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.to(torch.float64).unsqueeze(1) - self.theta
        q = (d * d / self.var).sum(2)
        return self.log_prior + (self.norm - 0.5 * q)


class GaussianGemm(nn.Module):
    def __init__(self, op: GaussianNB):
        super().__init__()
        inv = 1.0 / op.var
        self.register_buffer("inv_t", torch.from_numpy(np.ascontiguousarray(inv.T)))
        self.register_buffer("m_t", torch.from_numpy(np.ascontiguousarray((-2.0 * op.theta * inv).T)))
        self.register_buffer("c", torch.from_numpy(np.sum(op.theta**2 * inv, axis=1)))
        self.register_buffer("log_prior", torch.from_numpy(op.log_prior.copy()))
        self.register_buffer("norm", torch.from_numpy(op.norm.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        q = torch.matmul(x * x, self.inv_t) + (torch.matmul(x, self.m_t) + self.c)
        return self.log_prior + (self.norm - 0.5 * q)


@register
class GaussianQuadratic(Strategy):
    """The per-class quadratic form of Gaussian naive Bayes: ``direct`` differences or ``gemm``."""

    name = "gaussian_nb_quadratic"
    op_kind = "gaussian_nb"
    family = "torch"
    preferred = True
    knobs = (Knob("form", ("direct", "gemm"), "direct",
                  "direct: (x - theta)^2 / var as scikit-learn; gemm: expanded into two GEMMs (fewer bytes, "
                  "less exact for |x| large against the spread)"),)

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        if knobs.get("form", "direct") == "gemm":
            return GaussianGemm(op)  # type: ignore[arg-type]
        return GaussianDirect(op)  # type: ignore[arg-type]
