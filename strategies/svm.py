"""Kernel SVM operators (``strategies.ir.svm``) as torch modules (float64).

``kernel_machine``: the kernel matrix against the support vectors, then the dual-coefficient
reduction ``K @ coef + intercept``.

* ``kernel_tiles`` computes the kernel matrix in tiles of ``sv_block`` support vectors.
  ``distance`` (rbf only): ``gemm`` expands ``||x - s||^2 = ||x||^2 - 2 x.s + ||s||^2`` around the
  support vectors' mean (one matmul per tile; centring keeps the cancellation small: the error
  of ``gamma * d2`` is about ``1e-16 * gamma * ||x - mean||^2``, far inside 1e-5 unless the data
  sit ~1e10 spreads from their mean), ``direct`` subtracts every pair as libsvm does (exact to the
  rounding of the sum, but it holds ``rows x sv_block x features`` values: only small tiles).
  ``reduce``: ``fused`` multiplies each tile by its coefficients as soon as it is computed (the
  whole kernel matrix is never held), ``concat`` assembles the kernel matrix and reduces it in
  one matmul.
* ``kernel_primal`` (linear and precomputed kernels): folds the support vectors into primal weights,
  ``x @ (S^T coef)``: one ``(F, m)`` matmul instead of ``(F, S)`` then ``(S, m)``.

A ``precomputed`` kernel's input is the kernel matrix itself: ``kernel_tiles`` reads its tiles as
column slices, ``kernel_primal`` is the one matmul ``x @ coef``.

``one_vs_one``: the decision function and libsvm's votes.  ``votes``: ``matmul`` (wins times
pair-class incidence matrices) or ``gather`` (per class, its pairs' columns summed).

``pairwise_coupling``: libsvm's ``multiclass_probability``.  ``loop``: run until every row of the
batch has met libsvm's stopping rule (``early_exit``; when traced it becomes ``unrolled``) or
always ``max(100, k)`` masked rounds (``unrolled``).  Rows that stopped keep their
probabilities, as libsvm's loop does.  ``matvec``: ``Q @ p`` as a broadcast product and sum or
a batched matmul.  Its loop depends on the data: only eager torch serves it (an exported
program would unroll 100 rounds, thousands of ops: minutes of inductor / TVM compilation),
so other backends leave it to a torch side task.  It carries the one-vs-one columns in front of the
probabilities; built for the ``raw`` value (``couple=False``) it only appends zeros: ``predict``
and ``decision_function`` run no coupling.

Only ops that ``torch.export`` -> TVM Relax imports are used (no ``amax``, ``cdist``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .base import Knob, Strategy, register
from .ir import Op
from .ir.svm import MIN_PROB, KernelMachine, OneVsOne, PairwiseCoupling, pairs
from .torch_ops import direct_tile_reason, tile_redundant_reason



def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float64, copy=True))


def _powi(base: torch.Tensor, times: int) -> torch.Tensor:
    """libsvm's ``powi`` (repeated squaring, its multiplication order), unrolled for a fixed exponent."""
    ret = None
    tmp, t = base, times
    while t > 0:
        if t % 2 == 1:
            ret = tmp if ret is None else ret * tmp
        t //= 2
        if t > 0:
            tmp = tmp * tmp
    return torch.ones_like(base) if ret is None else ret


def _tracing() -> bool:
    return bool(torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting())


class KernelTiles(nn.Module):
    """``K(x, S) @ coef + intercept`` over tiles of support vectors."""

    def __init__(self, op: KernelMachine, sv_block: int, distance: str, reduce: str):
        super().__init__()
        S = op.n_support
        step = S if sv_block <= 0 or sv_block >= S else sv_block
        self.bounds = [(a, min(a + step, S)) for a in range(0, max(S, 1), max(step, 1))] if S else []
        self.kernel, self.gamma, self.coef0, self.degree = op.kernel, op.gamma, op.coef0, op.degree
        self.direct = op.kernel == "rbf" and distance == "direct"
        self.expand = op.kernel == "rbf" and not self.direct  # ||x-c||^2 - 2 (x-c).(s-c) + ||s-c||^2
        self.fused = reduce == "fused"
        self.precomputed = op.kernel == "precomputed"
        sv = op.support_vectors
        center = sv.mean(axis=0) if (self.expand and S) else np.zeros(sv.shape[1])
        svc = sv - center
        self.register_buffer("center", _t(center))
        self.register_buffer("inf", torch.tensor(float("inf"), dtype=torch.float64))
        for b, (a, z) in enumerate(self.bounds):
            if not self.precomputed:  # direct: (b, F); else (F, b)
                self.register_buffer(f"sv{b}", _t(sv[a:z] if self.direct else svc[a:z].T))
            if self.expand:
                self.register_buffer(f"sq{b}", _t(np.einsum("ij,ij->i", svc[a:z], svc[a:z])))
            self.register_buffer(f"w{b}", _t(op.coef[a:z]))
        self.register_buffer("coef", _t(op.coef))
        self.register_buffer("intercept", _t(op.intercept))

    def tile(self, x: torch.Tensor, xsq: torch.Tensor, b: int) -> torch.Tensor:
        """The kernel values of tile ``b``: ``(n, sv_block)``; ``x`` is centred (and ``xsq`` its squared norms)
        for the expanded rbf form; a precomputed kernel's tile is its columns."""
        if self.precomputed:
            a, z = self.bounds[b]
            return x[:, a:z]
        sv = getattr(self, f"sv{b}")
        if self.direct:
            diff = x.unsqueeze(1) - sv.unsqueeze(0)
            return torch.exp((diff * diff).sum(2) * -self.gamma)
        if self.expand:
            d2 = xsq.unsqueeze(1) - 2.0 * torch.matmul(x, sv) + getattr(self, f"sq{b}")
            d2 = torch.where(torch.isnan(d2), self.inf, d2)  # inf - inf: a row so far out that ||x||^2 overflows
            return torch.exp(torch.clamp(d2, min=0.0) * -self.gamma)
        dot = torch.matmul(x, sv)
        if self.kernel == "linear":
            return dot
        z = dot * self.gamma + self.coef0
        return _powi(z, self.degree) if self.kernel == "poly" else torch.tanh(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        if not self.bounds:
            return torch.zeros_like(x[:, :1]) + self.intercept
        xsq = x
        if self.expand:
            x = x - self.center
            xsq = (x * x).sum(1)
        if self.fused:
            out = self.intercept
            for b in range(len(self.bounds)):
                out = out + torch.matmul(self.tile(x, xsq, b), getattr(self, f"w{b}"))
            return out
        K = torch.cat([self.tile(x, xsq, b) for b in range(len(self.bounds))], dim=1)
        return torch.matmul(K, self.coef) + self.intercept


class KernelPrimal(nn.Module):
    """Linear kernel: ``x @ (S^T coef) + intercept``; precomputed: ``x @ coef + intercept``."""

    def __init__(self, op: KernelMachine):
        super().__init__()
        self.register_buffer("weight", _t(op.coef if op.kernel == "precomputed" else op.support_vectors.T @ op.coef))
        self.register_buffer("intercept", _t(op.intercept))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x.to(torch.float64), self.weight) + self.intercept


@register
class KernelTilesStrategy(Strategy):
    """The kernel matrix in tiles of support vectors, reduced by the dual coefficients."""

    name = "kernel_tiles"
    op_kind = "kernel_machine"
    family = "torch"
    default_batch = 1024  # rows x support vectors of kernel values per call (x features for direct tiles)
    preferred = True
    knobs = (
        Knob("sv_block", (0, 16, 64, 256, 1024), 0, "support vectors per tile (0: all of them in one tile)"),
        Knob("distance", ("gemm", "direct"), "gemm",
             "rbf: gemm expands ||x-s||^2 around the support vectors' mean (one matmul); direct subtracts "
             "every pair as libsvm does (memory rows x sv_block x features: small tiles only)"),
        Knob("reduce", ("fused", "concat"), "fused",
             "fused: each tile times its dual coefficients at once; concat: the whole kernel matrix, one matmul"),
    )

    @classmethod
    def invalid_reason(cls, op: Op, knobs: Mapping[str, Any]) -> str | None:
        assert isinstance(op, KernelMachine)
        return direct_tile_reason(op.kernel, knobs.get("distance", "gemm"), knobs.get("sv_block", 0), op.n_support,
                                  op.n_features, "support vectors", "sv_block")

    @classmethod
    def redundant_reason(cls, op: Op, knobs: Mapping[str, Any], threads: int) -> str | None:
        assert isinstance(op, KernelMachine)
        S, block = op.n_support, knobs.get("sv_block", 0)
        reason = tile_redundant_reason(op.kernel, knobs.get("distance", "gemm"), block, S, "support vectors",
                                       "sv_block")
        if reason:
            return reason
        if knobs.get("reduce") == "concat" and not (block and block < S):
            return "one tile: reduce='concat' builds the same program as 'fused'"
        return None

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return KernelTiles(op, int(knobs.get("sv_block", 0)), knobs.get("distance", "gemm"),  # type: ignore[arg-type]
                           knobs.get("reduce", "fused"))


@register
class KernelPrimalStrategy(Strategy):
    """Linear kernel: the support vectors folded into primal weights, one matmul (precomputed: the kernel
    matrix times the dual coefficients)."""

    name = "kernel_primal"
    op_kind = "kernel_machine"
    family = "torch"
    default_batch = 4096

    @classmethod
    def unsupported_reason(cls, op: Op) -> str | None:
        kernel = getattr(op, "kernel", None)
        return None if kernel in ("linear", "precomputed") else \
            f"kernel_primal folds linear kernels only (or reads a precomputed one), not {kernel!r}"

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return KernelPrimal(op)  # type: ignore[arg-type]


class OneVsOneModule(nn.Module):
    """``[decision | votes]`` from libsvm's pairwise decision values."""

    def __init__(self, op: OneVsOne, votes: str):
        super().__init__()
        k, m = op.n_classes, op.n_pairs
        self.k, self.shape, self.gather = k, op.decision_shape, votes == "gather"
        first, second = np.zeros((m, k)), np.zeros((m, k))
        for p, (i, j) in enumerate(pairs(k)):
            first[p, i] = 1.0
            second[p, j] = 1.0
        self.register_buffer("first", _t(first))
        self.register_buffer("second", _t(second))
        # gather form: class c's wins are columns of [win, 1 - win, 0] (its pairs, padded by the zero column)
        cols = [[p for p, (i, _) in enumerate(pairs(k)) if i == c] + [m + p for p, (_, j) in enumerate(pairs(k))
                if j == c] for c in range(k)]
        self.vote_width = max(len(c) for c in cols)
        self.register_buffer("vote_index", torch.tensor([c + [2 * m] * (self.vote_width - len(c)) for c in cols],
                                                        dtype=torch.int64).reshape(-1))

    def _count(self, win: torch.Tensor) -> torch.Tensor:
        """Votes per class, ``win[:, p]`` (0 / 1) crediting the pair's first class and ``1 - win`` its second."""
        if not self.gather:
            return torch.matmul(win, self.first) + torch.matmul(1.0 - win, self.second)
        table = torch.cat([win, 1.0 - win, torch.zeros_like(win[:, :1])], dim=1)
        return table.index_select(1, self.vote_index).reshape(win.shape[0], self.k, self.vote_width).sum(2)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        d = d.to(torch.float64)
        votes = self._count((d > 0).to(torch.float64))
        if self.k == 2:
            decision = -d
        elif self.shape == "ovo":
            decision = d
        else:  # scikit-learn's _ovr_decision_function(d < 0, -d, k)
            conf = torch.matmul(d, self.first) - torch.matmul(d, self.second)
            decision = self._count(1.0 - (d < 0).to(torch.float64)) + conf / ((torch.abs(conf) + 1.0) * 3.0)
        return torch.cat([decision, votes], dim=1)


class CouplingModule(nn.Module):
    """``[carried | probabilities]``: libsvm's ``sigmoid_predict`` per pair, clipped, then ``multiclass_probability``
    on every row (not coupled: zeros)."""

    def __init__(self, op: PairwiseCoupling, loop: str, matvec: str):
        super().__init__()
        k, m = op.n_classes, op.n_pairs
        self.k, self.early, self.bmm = k, loop == "early_exit", matvec == "bmm"
        self.carry, self.couple = op.carry, op.couple
        self.max_iter, self.eps = op.max_iter, 0.005 / k
        self.register_buffer("prob_a", _t(op.prob_a))
        self.register_buffer("prob_b", _t(op.prob_b))
        # R[:, a, b] = column of [r, 1 - r, 0]: r of pair (a, b) when a < b, 1 - r when a > b, 0 on the diagonal
        idx = np.full((k, k), 2 * m, dtype=np.int64)
        for p, (i, j) in enumerate(pairs(k)):
            idx[i, j], idx[j, i] = p, m + p
        self.register_buffer("r_index", torch.from_numpy(idx.reshape(-1)))
        self.register_buffer("eye", torch.eye(k, dtype=torch.bool))
        self.register_buffer("min_prob", torch.tensor(MIN_PROB, dtype=torch.float64))
        self.register_buffer("max_prob", torch.tensor(1 - MIN_PROB, dtype=torch.float64))
        self.register_buffer("columns", torch.arange(k))
        self.register_buffer("start", torch.full((k,), 1.0 / k, dtype=torch.float64))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        d = xs[-1].to(torch.float64)
        p = self.coupling(d) if self.couple else torch.zeros_like(d[:, :1]).expand(-1, self.k)
        return torch.cat([xs[0].to(torch.float64), p], dim=1) if self.carry else p

    def coupling(self, d: torch.Tensor) -> torch.Tensor:
        n, k = d.shape[0], self.k
        f = d * self.prob_a + self.prob_b
        pos = f >= 0
        e = torch.exp(torch.where(pos, -f, f))
        r = torch.where(pos, e / (e + 1.0), 1.0 / (e + 1.0))
        r = torch.where(r > self.min_prob, r, self.min_prob)  # libsvm's max / min: NaN becomes min_prob
        r = torch.where(r < self.max_prob, r, self.max_prob)
        R = torch.cat([r, 1.0 - r, torch.zeros_like(r[:, :1])], dim=1).index_select(1, self.r_index).reshape(n, k, k)
        diag = (R * R).sum(1)  # Q[t][t] = sum_j r[j][t]^2
        Q = torch.where(self.eye, diag.unsqueeze(1), -(R.transpose(1, 2) * R))  # Q[t][j] = -r[j][t] r[t][j]
        p = torch.zeros_like(d[:, :1]) + self.start
        done = torch.zeros_like(d[:, 0], dtype=torch.bool)
        early = self.early and not _tracing()
        for _ in range(self.max_iter):
            Qp = torch.bmm(Q, p.unsqueeze(2)).squeeze(2) if self.bmm else (Q * p.unsqueeze(1)).sum(2)
            pQp = (p * Qp).sum(1)
            err = torch.abs(Qp - pQp.unsqueeze(1))
            max_error = err[:, 0]
            for t in range(1, k):
                max_error = torch.maximum(max_error, err[:, t])
            done = done | (max_error < self.eps)
            if early and bool(done.all()):
                break
            new = p
            for t in range(k):
                qtt, qpt = Q[:, t, t], Qp[:, t]
                diff = (pQp - qpt) / qtt
                new = torch.where(self.columns == t, new + diff.unsqueeze(1), new)
                scale = diff + 1.0
                pQp = (pQp + diff * (diff * qtt + qpt * 2.0)) / scale / scale
                Qp = (Qp + diff.unsqueeze(1) * Q[:, t, :]) / scale.unsqueeze(1)
                new = new / scale.unsqueeze(1)
            p = torch.where(done.unsqueeze(1), p, new)
        return p


@register
class OneVsOneStrategy(Strategy):
    """libsvm's one-vs-one head: decision function and votes."""

    name = "one_vs_one_votes"
    op_kind = "one_vs_one"
    family = "torch"
    preferred = True
    knobs = (Knob("votes", ("matmul", "gather"), "matmul",
                  "matmul: wins times the pair-class incidence matrices; gather: each class's pair columns summed"),)

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return OneVsOneModule(op, knobs.get("votes", "matmul"))  # type: ignore[arg-type]


@register
class CouplingStrategy(Strategy):
    """libsvm's pairwise coupling of Platt probabilities (eager torch: its loop stops on the data)."""

    name = "coupling_iteration"
    op_kind = "pairwise_coupling"
    family = "torch"
    preferred = True
    knobs = (
        Knob("loop", ("early_exit", "unrolled"), "early_exit",
             "early_exit: stop once every row of the batch met libsvm's stopping rule (traced: unrolled); "
             "unrolled: always max(100, k) masked rounds"),
        Knob("matvec", ("broadcast", "bmm"), "broadcast", "Q @ p per row: broadcast multiply + sum, or bmm"),
    )

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return CouplingModule(op, knobs.get("loop", "early_exit"), knobs.get("matvec", "broadcast"))  # type: ignore[arg-type]
