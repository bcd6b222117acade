"""Gaussian mixtures (``gaussian_mixture``) as torch modules (float64).

Knob ``form``:

* ``per_type``: scikit-learn's own formula for the covariance type (``x L_k - mu_k L_k`` per component
  for full / tied; the expanded ``sum(mu^2 P) - 2 x.(mu P) + x^2.P`` for diag / spherical);
* ``batched``: every component's ``x L_k - mu_k L_k`` from one GEMM against the factors side by side
  (for diag / spherical a different rounding of the same value, within the score tolerance).

The log-sum-exp takes its maximum with ``topk`` (TVM imports it; not ``amax`` / ``logsumexp``).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .base import Knob, Strategy, register
from .ir import Op
from .ir.mixture import GaussianMixture


class GaussianMixtureModule(nn.Module):
    def __init__(self, op: GaussianMixture, form: str):
        super().__init__()
        K, F = op.n_components, op.n_features
        self.K, self.F, self.type = K, F, op.covariance_type
        self.form = form if op.covariance_type in ("diag", "spherical") or form == "batched" else "per_type"
        t = op.covariance_type
        if self.form == "batched" or t in ("full", "tied"):
            L = op.full_chol()  # (K, F, F)
            muL = np.einsum("kf,kfg->kg", op.means, L)
            self.register_buffer("Lcat", torch.from_numpy(np.ascontiguousarray(L.transpose(1, 0, 2).reshape(F, K * F))))
            self.register_buffer("muL", torch.from_numpy(muL.reshape(1, K * F).copy()))
        else:
            P = op.prec_chol**2
            mu = op.means
            if t == "diag":
                self.register_buffer("c0", torch.from_numpy(np.sum(mu**2 * P, 1)))
                self.register_buffer("w1", torch.from_numpy(np.ascontiguousarray((mu * P).T)))
                self.register_buffer("w2", torch.from_numpy(np.ascontiguousarray(P.T)))
            else:
                self.register_buffer("c0", torch.from_numpy(np.sum(mu**2, 1) * P))
                self.register_buffer("w1", torch.from_numpy(np.ascontiguousarray(mu.T)))
                self.register_buffer("w2", torch.from_numpy(P.copy()))
        self.register_buffer("log_det", torch.from_numpy(op.log_det.copy()))
        self.register_buffer("bias", torch.from_numpy(op.bias.copy()))
        self.const = op.n_features * math.log(2 * math.pi)

    def quadratic(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == "batched" or self.type in ("full", "tied"):
            y = x @ self.Lcat - self.muL  # (n, K * F)
            return (y * y).reshape(x.shape[0], self.K, self.F).sum(2)
        if self.type == "diag":
            return self.c0 - 2.0 * (x @ self.w1) + (x * x) @ self.w2
        xx = (x * x).sum(1, keepdim=True)
        return self.c0 - 2 * ((x @ self.w1) * self.w2) + xx * self.w2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        wlp = (-0.5 * (self.const + self.quadratic(x)) + self.log_det) + self.bias
        top = torch.topk(wlp, 1, dim=1).values
        lse = torch.log(torch.exp(wlp - top).sum(1, keepdim=True)) + top
        return torch.cat([wlp, lse, torch.exp(wlp - lse)], dim=1)


@register
class GaussianMixtureDensity(Strategy):
    """``gaussian_mixture``: component log-densities per scikit-learn's formula or from one batched GEMM."""

    name = "gaussian_mixture_density"
    op_kind = "gaussian_mixture"
    family = "torch"
    preferred = True
    knobs = (Knob("form", ("per_type", "batched"), "per_type",
                  "per_type: scikit-learn's formula for the covariance type; batched: one GEMM over all factors"),)

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return GaussianMixtureModule(op, knobs.get("form", "per_type"))  # type: ignore[arg-type]
