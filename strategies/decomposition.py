"""Kernel PCA (``strategies.ir.decomposition``) as torch modules (float64).

``kernel_pca_tiles``: the kernel matrix against the fitted rows in tiles of ``fit_block`` rows.

* ``distance`` (rbf only): ``gemm`` is scikit-learn's own form, ``-2 x.s + |x|^2 + |s|^2`` clipped
  at 0 (one matmul per tile); ``direct`` subtracts every pair (``rows x fit_block x features``
  values per tile: small tiles only; exact to the rounding of the sum, where the expanded form
  loses about ``1e-16 * |x|^2`` to cancellation).
* ``center``: ``fold`` folds the centring into the projection (``K @ (alphas - colsum / S) + b``,
  one matmul per tile as soon as it is computed: the kernel matrix is never held); ``explicit``
  assembles the kernel matrix and centres it as ``KernelCenterer`` does, then projects (scikit-learn's
  order of operations, one ``(n, S)`` matrix per batch).

``kernel_pca_primal`` (linear and precomputed kernels): the fitted rows folded into the projection,
``x @ (basis^T weights) + b``: one ``(F, m)`` matmul instead of ``(F, S)`` then ``(S, m)``.

Only ops that ``torch.export`` -> TVM Relax imports are used (matmul, exp, tanh, pow, clamp, sum).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .base import Knob, Strategy, register
from .ir import Op
from .ir.decomposition import KernelPCA
from .torch_ops import direct_tile_reason, tile_redundant_reason


def _t(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float64, copy=True))


class KernelPCATiles(nn.Module):
    """``center(K(x, basis)) @ alphas`` over tiles of fitted rows."""

    def __init__(self, op: KernelPCA, fit_block: int, distance: str, center: str):
        super().__init__()
        S = op.n_fit
        step = S if fit_block <= 0 or fit_block >= S else fit_block
        self.bounds = [(a, min(a + step, S)) for a in range(0, S, step)]
        self.kernel, self.gamma, self.coef0, self.degree = op.kernel, op.gamma, op.coef0, op.degree
        self.direct = op.kernel == "rbf" and distance == "direct"
        self.fold = center == "fold"
        self.n_fit = float(S)
        weights, bias = op.centering()
        basis = op.basis
        for b, (a, z) in enumerate(self.bounds):
            if op.kernel != "precomputed":  # direct: (b, F); else (F, b)
                self.register_buffer(f"basis{b}", _t(basis[a:z] if self.direct else basis[a:z].T))
            self.register_buffer(f"sq{b}", _t(np.einsum("ij,ij->i", basis[a:z], basis[a:z])))
            self.register_buffer(f"w{b}", _t(weights[a:z]))
        self.register_buffer("bias", _t(bias))
        self.register_buffer("alphas", _t(op.alphas))
        self.register_buffer("fit_rows", _t(op.fit_rows))
        self.register_buffer("fit_all", _t(op.fit_all))

    def tile(self, x: torch.Tensor, xsq: torch.Tensor, b: int) -> torch.Tensor:
        if self.kernel == "precomputed":
            a, z = self.bounds[b]
            return x[:, a:z]
        basis = getattr(self, f"basis{b}")
        if self.direct:
            diff = x.unsqueeze(1) - basis.unsqueeze(0)
            return torch.exp((diff * diff).sum(2) * -self.gamma)
        dot = torch.matmul(x, basis)
        if self.kernel == "linear":
            return dot
        if self.kernel == "rbf":
            d2 = dot * -2.0 + xsq.unsqueeze(1) + getattr(self, f"sq{b}")
            return torch.exp(torch.clamp(d2, min=0.0) * -self.gamma)
        z = dot * self.gamma + self.coef0
        return torch.pow(z, self.degree) if self.kernel == "poly" else torch.tanh(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        xsq = (x * x).sum(1)
        if self.fold:
            out = self.bias
            for b in range(len(self.bounds)):
                out = out + torch.matmul(self.tile(x, xsq, b), getattr(self, f"w{b}"))
            return out
        tiles = [self.tile(x, xsq, b) for b in range(len(self.bounds))]
        K = tiles[0] if len(tiles) == 1 else torch.cat(tiles, dim=1)
        row_mean = (K.sum(1) / self.n_fit).unsqueeze(1)
        K = K - self.fit_rows - row_mean + self.fit_all
        return torch.matmul(K, self.alphas)


class KernelPCAPrimal(nn.Module):
    """Linear / precomputed kernel: ``x @ W + b`` with the basis and the centring folded into ``W``."""

    def __init__(self, op: KernelPCA):
        super().__init__()
        weights, bias = op.centering()
        if op.kernel == "linear":
            weights = op.basis.T @ weights
        self.register_buffer("weight", _t(weights))
        self.register_buffer("bias", _t(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x.to(torch.float64), self.weight) + self.bias


@register
class KernelPCATilesStrategy(Strategy):
    """The kernel matrix in tiles of fitted rows, centred and projected on the scaled eigenvectors."""

    name = "kernel_pca_tiles"
    op_kind = "kernel_pca"
    family = "torch"
    default_batch = 4096
    preferred = True
    knobs = (
        Knob("fit_block", (0, 64, 256, 1024), 0, "fitted rows per tile (0: all of them in one tile)"),
        Knob("distance", ("gemm", "direct"), "gemm",
             "rbf: gemm is scikit-learn's -2x.s + |x|^2 + |s|^2 (one matmul); direct subtracts every pair "
             "(memory rows x fit_block x features: small tiles only)"),
        Knob("center", ("fold", "explicit"), "fold",
             "fold: centring folded into the projection, each tile projected at once; explicit: the whole "
             "kernel matrix centred as KernelCenterer does, then projected"),
    )

    @classmethod
    def invalid_reason(cls, op: Op, knobs: Mapping[str, Any]) -> str | None:
        assert isinstance(op, KernelPCA)
        return direct_tile_reason(op.kernel, knobs.get("distance", "gemm"), knobs.get("fit_block", 0), op.n_fit,
                                  op.n_features, "fitted rows", "fit_block")

    @classmethod
    def redundant_reason(cls, op: Op, knobs: Mapping[str, Any], threads: int) -> str | None:
        assert isinstance(op, KernelPCA)
        return tile_redundant_reason(op.kernel, knobs.get("distance", "gemm"), knobs.get("fit_block", 0), op.n_fit,
                                     "fitted rows", "fit_block")

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        assert isinstance(op, KernelPCA)
        return KernelPCATiles(op, int(knobs.get("fit_block", 0)), knobs.get("distance", "gemm"),
                              knobs.get("center", "fold"))


@register
class KernelPCAPrimalStrategy(Strategy):
    """Linear and precomputed kernels only: basis and centring folded into one ``(F, m)`` matmul."""

    name = "kernel_pca_primal"
    op_kind = "kernel_pca"
    family = "torch"
    default_batch = 4096

    @classmethod
    def unsupported_reason(cls, op: Op) -> str | None:
        kernel = getattr(op, "kernel", None)
        if kernel in ("linear", "precomputed"):
            return None
        return f"kernel_pca_primal folds linear and precomputed kernels only, not {kernel!r}"

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return KernelPCAPrimal(op)  # type: ignore[arg-type]
