"""Nearest neighbours (``kneighbors``) and nearest centres (``centroids``) as torch modules (float64).

``kneighbors``: the reduced distances to every training row, in blocks of ``tile`` training rows, then
the neighbour selection, then the weighted mean of the neighbours' targets.  Knobs:

* ``form`` (euclidean): ``exact`` computes as scikit-learn does: its brute-force form
  ``(|x|^2 + (-2 x.y)) + |y|^2`` with every dot product the fused multiply-add chain OpenBLAS computes
  (bit-identical up to ``BLAS_CHAIN_MAX`` features, emulated with error-free transformations; beyond, a
  GEMM), or differences for models fitted with a KD / ball tree; ``gemm``: that form by torch's GEMM
  (equal up to the last bits, so ties that are exact in the data may break otherwise); ``direct``:
  differences (as every other metric computes).  Only ``exact`` is searched: the others may break ties
  that are exact in the data otherwise than scikit-learn;
* ``tile``: training rows per distance block (0: all at once);
* ``selection``: ``heap`` keeps the neighbours scikit-learn's bounded max-heap keeps (training rows pushed
  in index order): top-k, then, only for query rows where more training rows lie at or below the k-th
  distance than ``k`` (the rows tied with it are then kept in the heap's order, not by index), a replay
  of the heap over the training rows that may enter it.  That branch depends on the data: eager torch
  runs it as Python, the ``torchscript`` backend keeps it as a scripted function inside its trace; other
  backends cannot express it (``backend_reason``: not built there).  ``sort`` / ``topk`` find the k-th
  distance by a full sort / ``topk``, keep every nearer row and the tied rows of lowest index (a
  cumulative sum), and average through a weight matrix x targets GEMM: they equal scikit-learn whenever
  the k-th and (k+1)-th distances differ, and are built only when asked for.

Exactness per backend: ``torch`` and ``torchscript`` build the exact default; ``inductor``, ``tvm`` and
``onnxruntime`` only the tie-inexact selections, so the search leaves them out for this op and an explicit
request for them must name ``selection`` (inductor also ``form="gemm"`` when ``exact`` would compile the
FMA chains: minutes; and neither inductor nor tvm builds more than ``COMPILED_MAX_BLOCKS`` tiles).

The ``kneighbors`` output (the estimators' ``kneighbors`` method, :meth:`KNeighbors.neighbors_reference`): the
same distances and selection, the neighbours themselves returned.  ``heap``: top-k, and for the query rows with
any tie among their k + 1 nearest distances a replay of scikit-learn's heap, pushed again into a fresh one for
its ``parallel_on_Y`` order, each sorted as its ``simultaneous_sort`` sorts (:func:`heap_neighbors`);
``sort`` / ``topk``: the rows they select, by distance and then index, from ops every backend exports.

``centroids``: ``form`` ``gemm`` (scikit-learn's ``|c|^2 - 2 x.c`` and ``euclidean_distances``) or
``direct`` (``sum (x - c)^2``: the same values up to rounding).
"""

from __future__ import annotations

import warnings
from typing import Any, List, Mapping, Tuple

import numpy as np
import torch
from torch import nn

from .base import Knob, Strategy, register
from .ground.errors import InvalidConfigError
from .ir import Op
from .ir.neighbors import BLAS_CHAIN_MAX, INSERTION_MAX, Centroids, KNeighbors, introsort, is_neighbors_output
from .ir.neighbors import fma as ir_fma
from .ir.neighbors import split as _split
from .ir.neighbors import two_sum as _two_sum

TILES = (0, 64, 256, 1024)
# backends that build selection="heap": eager torch runs its branch as Python, a torch.jit.trace keeps it as
# a scripted function; torch.export (inductor, tvm) and the ONNX exporter (onnxruntime) cannot express it
HEAP_BACKENDS = ("torch", "torchscript")
# inductor and tvm compile every distance block as its own kernels: at most this many blocks there
COMPILED_MAX_BLOCKS = 8


def fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a * b + c`` rounded once: :func:`strategies.ir.neighbors.fma` in torch ops."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    th, tl = _two_sum(c, p)
    v, w = _two_sum(tl, e)
    z, r = _two_sum(th, v)
    other = z + 2.0 * r
    half_way = (r != 0) & ((other - z) == 2.0 * r)
    same_sign = ((w > 0) & (r > 0)) | ((w < 0) & (r < 0))  # (not bool == bool: TVM emits an fcmp on i1)
    return torch.where(half_way & same_sign, other, z)


def fma_dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(n, m)``: row dot products as one fused multiply-add chain over the features (OpenBLAS's order)."""
    acc = torch.zeros_like(x[:, :1]) * y[:, 0]
    for f in range(x.shape[1]):
        acc = fma(x[:, f : f + 1], y[:, f], acc)
    return acc


def _tracing() -> bool:
    return bool(torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting())


def _round(x: torch.Tensor, fit_dtype: str) -> torch.Tensor:
    x = x.to(torch.float64)
    return x.to(torch.float32).to(torch.float64) if fit_dtype == "float32" else x


def heap_push_all(d: torch.Tensor, k: int, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's ``heap_push`` (``sklearn.utils._heap``) for every column of ``d`` in order: ``(vals, idx)``,
    ``(n, k)``, ``idx`` indexing ``d``'s columns (``d`` has at least ``k``; ``levels`` = floor(log2 k))."""
    vals = torch.zeros_like(d[:, :k]) + float("inf")
    idx = torch.zeros_like(vals, dtype=torch.int64)
    ninf = torch.zeros_like(vals[:, :1]) - float("inf")
    for j in range(d.shape[1]):
        v = d[:, j : j + 1]
        act = v < vals[:, :1]
        c = torch.zeros_like(idx[:, :1])
        moving = act
        for _ in range(levels):
            left, right = 2 * c + 1, 2 * c + 2
            has_right = right < k
            lv = vals.gather(1, torch.clamp(left, 0, k - 1))
            rv = torch.where(has_right, vals.gather(1, torch.clamp(right, 0, k - 1)), ninf)
            go_left = (lv >= rv) & (v < lv)
            go_right = (lv < rv) & (v < rv)
            go = moving & (left < k) & (go_left | go_right)
            s = torch.where(go_left, left, right)
            s = torch.where(go, s, c)
            vals = vals.scatter(1, c, vals.gather(1, s))
            idx = idx.scatter(1, c, idx.gather(1, s))
            c = s
            moving = go
        vals = vals.scatter(1, c, torch.where(act, v, vals.gather(1, c)))
        idx = idx.scatter(1, c, torch.where(act, torch.zeros_like(c) + j, idx.gather(1, c)))
    return vals, idx


def heap_candidates(d: torch.Tensor, k: int) -> torch.Tensor:
    """``(n, c)``, ``c >= k``: in increasing order, the columns of ``d`` that may enter scikit-learn's heap
    (padded with ``m``).  Column ``j`` enters only when strictly below the heap's root, the k-th smallest
    of the columns before it: checked per block against the root at the block's start (a superset of the
    rows that enter, so a replay over it is exact), the blocks doubling from ``k`` columns."""
    n, m = d.shape[0], d.shape[1]
    best = torch.zeros_like(d[:, :k]) + float("inf")
    may = torch.zeros_like(d, dtype=torch.bool)
    a = 0
    while a < m:
        b = min(m, a + max(a, k))
        block = d[:, a:b]
        may[:, a:b] = block < best[:, k - 1 :]
        best = torch.topk(torch.cat([best, block], dim=1), k, dim=1, largest=False).values
        a = b
    pos = torch.where(may, torch.arange(m).expand(n, m), torch.zeros_like(d, dtype=torch.int64) + m)
    c = max(int(may.sum(1).max()), k)
    return torch.sort(pos, dim=1).values[:, :c]


def heap_select(d: torch.Tensor, k: int, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(vals, idx)``, ``(n, k)``: the neighbours scikit-learn's heap keeps, replaying it only where its
    order matters.

    A row strictly nearer than the k-th distance is always kept, so top-k is the heap's answer unless
    the (k+1)-th distance equals the k-th (an ambiguous tie; or the k-th is infinite, where the heap
    keeps its sentinels).  Those rows alone replay the heap (:func:`heap_push_all`) over the training
    rows that may enter it (:func:`heap_candidates`), in order.
    """
    m = d.shape[1]
    vals, idx = torch.topk(d, min(k + 1, m), dim=1, largest=False)  # sorted: the (k+1)-th tells a tie
    ambiguous = torch.isinf(vals[:, k - 1])
    if m > k:
        ambiguous = ambiguous | (vals[:, k] == vals[:, k - 1])
        vals, idx = vals[:, :k], idx[:, :k]
    if bool(ambiguous.any()):
        rows = ambiguous.nonzero().squeeze(1)
        hv, hi = replay_heap(d.index_select(0, rows), k, levels)
        vals = vals.index_copy(0, rows, hv)
        idx = idx.index_copy(0, rows, hi)
    return vals, idx


def replay_heap(da: torch.Tensor, k: int, levels: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(vals, idx)``: scikit-learn's heap replayed over the rows ``da`` of reduced distances (the training
    rows that may enter it, :func:`heap_candidates`, pushed in order); ``idx`` are training-row indices."""
    m = da.shape[1]
    order = heap_candidates(da, k)
    inf = torch.zeros_like(da[:, :1]) + float("inf")
    cd = torch.where(order < m, da.gather(1, order.clamp(max=m - 1)), inf)
    hv, hi = heap_push_all(cd, k, levels)
    return hv, order.gather(1, hi).clamp(max=m - 1)


def sort_rows(vals: torch.Tensor, idx: torch.Tensor,
              small: int = INSERTION_MAX) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each row of ``(vals, idx)`` sorted as scikit-learn's ``simultaneous_sort`` sorts it: a stable sort up to
    ``INSERTION_MAX`` columns (its insertion sort), else :func:`strategies.ir.neighbors.introsort` row by row
    (``small``: ``INSERTION_MAX``, an argument because a script reads no global)."""
    if vals.shape[1] <= small:
        v, order = torch.sort(vals, dim=1, stable=True)
        return v, idx.gather(1, order)
    v, i = vals.clone(), idx.clone()
    for r in range(vals.shape[0]):
        vl: List[float] = vals[r].tolist()
        il: List[int] = idx[r].tolist()
        introsort(vl, il, small)
        v[r] = torch.tensor(vl, dtype=vals.dtype)
        i[r] = torch.tensor(il, dtype=idx.dtype)
    return v, i


def heap_neighbors(d: torch.Tensor, k: int, levels: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(vals, on_y, on_x)``, ``(n, k)``: the reduced distances of the neighbours scikit-learn's brute-force
    ``kneighbors`` returns, nearest first, and their indices in its ``parallel_on_Y`` and ``parallel_on_X``
    orders (:meth:`strategies.ir.neighbors.KNeighbors.neighbors_reference`).

    Rows whose k + 1 nearest distances all differ (and are finite) have one answer, top-k's.  The others
    replay the heap (:func:`heap_push_all` over :func:`heap_candidates`), push its entries again into a fresh
    heap for ``parallel_on_Y``, and sort both as scikit-learn does (:func:`sort_rows`).
    """
    m = d.shape[1]
    vals, idx = torch.topk(d, min(k + 1, m), dim=1, largest=False)
    tied = torch.isinf(vals[:, k - 1])
    if vals.shape[1] > 1:
        tied = tied | (vals[:, 1:] == vals[:, :-1]).any(1)
    vals, idx = vals[:, :k], idx[:, :k]
    on_y, on_x = idx, idx.clone()  # distinct tensors: a trace tells a script's outputs apart by identity
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        hv, hi = replay_heap(d.index_select(0, rows), k, levels)
        rv, ri = heap_push_all(hv, k, levels)
        xv, xi = sort_rows(hv, hi)
        _, yi = sort_rows(rv, hi.gather(1, ri))
        vals = vals.index_copy(0, rows, xv)
        on_x = idx.index_copy(0, rows, xi)
        on_y = idx.index_copy(0, rows, yi)
    return vals, on_y, on_x


_SCRIPTED: dict[str, Any] = {}


def _scripted(fn: Any) -> Any:
    """``fn`` compiled by ``torch.jit.script`` (once), for ``torch.jit.trace`` to keep its branches."""
    if fn.__name__ not in _SCRIPTED:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*")
            _SCRIPTED[fn.__name__] = torch.jit.script(fn)
    return _SCRIPTED[fn.__name__]


def _scripted_heap_select() -> Any:
    """:func:`heap_select` compiled by ``torch.jit.script`` (once), for ``torch.jit.trace`` to keep its branch."""
    return _scripted(heap_select)


class KNeighborsModule(nn.Module):
    """The op's ``out`` value, or with ``neighbors`` > 0 its ``kneighbors`` output for that many neighbours:
    ``(n, 3 * neighbors)``, distances then the indices in scikit-learn's two orders (as float64)."""

    def __init__(self, op: KNeighbors, form: str, tile: int, selection: str, neighbors: int = 0):
        super().__init__()
        self.metric, self.p, self.k = op.metric, op.p, neighbors or op.n_neighbors
        self.neighbors = neighbors > 0
        self.fit_dtype, self.form, self.selection = op.fit_dtype, form, selection
        self.distance_weights = op.weights == "distance"
        m = op.n_train
        self.blocks = [(a, min(a + tile, m)) for a in range(0, m, tile)] if tile else [(0, m)]
        y = op.train
        if op.metric == "cosine":
            n = np.sqrt(np.einsum("ij,ij->i", y.astype(op.fit_dtype), y.astype(op.fit_dtype)))
            n[n < 10 * np.finfo(n.dtype).eps] = 1.0
            y = y.astype(op.fit_dtype) / n[:, None]
        self.register_buffer("rows", torch.from_numpy(np.array(y, order="C")))
        self.register_buffer("train_t", torch.from_numpy(np.ascontiguousarray(op.train.T)))
        self.register_buffer("yy", torch.from_numpy(np.einsum("ij,ij->i", op.train, op.train)))
        yy = np.zeros(m)
        for f in range(op.n_features):
            yy = ir_fma(op.train[:, f], op.train[:, f], yy)
        self.register_buffer("yy_chain", torch.from_numpy(yy))
        self.register_buffer("target", torch.from_numpy(op.target.copy()))
        self.levels = int(np.floor(np.log2(self.k))) if self.k > 1 else 0

    def reduced(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self._block(x, a, b) for a, b in self.blocks]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def _block(self, x: torch.Tensor, a: int, b: int) -> torch.Tensor:
        if self.metric == "cosine":
            dt = torch.float32 if self.fit_dtype == "float32" else torch.float64
            xd = x.to(dt)
            n = torch.sqrt((xd * xd).sum(1, keepdim=True))
            n = torch.where(n < 10 * torch.finfo(dt).eps, torch.ones_like(n), n)
            s = (xd / n) @ self.rows[a:b].T
            return torch.clamp(1 - s, 0, 2).to(torch.float64)
        if self.metric == "euclidean" and self.form == "chain":
            xx = torch.zeros_like(x[:, :1])
            for f in range(x.shape[1]):
                xx = fma(x[:, f : f + 1], x[:, f : f + 1], xx)
            return torch.clamp((xx + -2.0 * fma_dot(x, self.rows[a:b])) + self.yy_chain[a:b], min=0.0)
        if self.metric == "euclidean" and self.form == "gemm":
            xx = (x * x).sum(1, keepdim=True)
            return torch.clamp((xx + -2.0 * (x @ self.train_t[:, a:b])) + self.yy[a:b], min=0.0)
        diff = x.unsqueeze(1) - self.rows[a:b].unsqueeze(0)  # (n, tile, F)
        if self.fit_dtype == "float32":
            diff = diff.to(torch.float32).to(torch.float64)
        diff = diff.abs()
        if self.metric == "euclidean":
            return (diff * diff).sum(2)
        if self.metric == "manhattan":
            return diff.sum(2)
        if self.metric == "chebyshev":
            return diff.amax(2) if diff.shape[2] else diff.sum(2)
        return torch.pow(diff, self.p).sum(2)

    def distances(self, r: torch.Tensor) -> torch.Tensor:
        if self.metric == "euclidean":
            return torch.sqrt(r)
        if self.metric == "minkowski":
            return torch.pow(r, 1.0 / self.p)
        return r

    def weights(self, dist: torch.Tensor, selected: torch.Tensor | None = None) -> torch.Tensor:
        one = torch.ones_like(dist)
        if not self.distance_weights:
            return one if selected is None else selected.to(torch.float64)
        zero = dist == 0
        if selected is not None:
            zero = zero & selected
        w = torch.where(zero.any(1, keepdim=True), zero.to(torch.float64), one / dist)
        return w if selected is None else torch.where(selected, w, torch.zeros_like(w))

    def heap(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """scikit-learn's heap over every training row (:func:`heap_push_all`): traced, one step per row."""
        return heap_push_all(d, self.k, self.levels)

    def heap_select(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The neighbours scikit-learn's heap keeps (:func:`heap_select`).  Its data-dependent branch runs
        as Python in eager torch, as a scripted function inside a ``torch.jit.trace``; a program exported
        otherwise (``torch.export``, ONNX) replays the heap for every training row instead."""
        if torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            return _scripted_heap_select()(d, self.k, self.levels)
        if _tracing():
            return self.heap(d)
        return heap_select(d, self.k, self.levels)

    def mean_of(self, vals: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        w = self.weights(self.distances(vals))
        t = self.target.index_select(0, idx.reshape(-1)).reshape(idx.shape[0], idx.shape[1], -1)
        return (t * w.unsqueeze(2)).sum(1) / w.sum(1, keepdim=True)

    def selected(self, d: torch.Tensor) -> torch.Tensor:
        """``sort`` / ``topk``: the rows nearer than the k-th distance, and the lowest-index ones tied with it."""
        if self.selection == "sort":
            kth = torch.sort(d, dim=1).values[:, self.k - 1 : self.k]
        else:
            kth = torch.topk(d, self.k, dim=1, largest=False).values[:, self.k - 1 :]
        less = d < kth
        tied = d == kth
        need = self.k - less.to(torch.int64).sum(1, keepdim=True)
        return less | (tied & (torch.cumsum(tied.to(torch.int64), dim=1) <= need))

    def lowest(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sort`` / ``topk``: the selected rows' ``(reduced distances, indices)`` by distance, then index, from
        ops every backend exports: their indices ascending (top-k of unique keys), then each one's rank."""
        m, k = d.shape[1], self.k
        cols = torch.arange(m, dtype=torch.float64).unsqueeze(0)
        idx = torch.topk(torch.where(self.selected(d), cols, cols + m), k, dim=1, largest=False).indices
        vals = d.gather(1, idx)
        a, b = vals.unsqueeze(2), vals.unsqueeze(1)  # a[:, i], b[:, :, j]
        pos = torch.arange(k)
        before = (b < a) | ((b == a) & (pos.view(1, 1, k) < pos.view(1, k, 1)))
        place = before.sum(2).unsqueeze(2) == pos.view(1, 1, k)  # place[:, i, r]: row i goes to rank r
        zero = torch.zeros_like(place, dtype=torch.float64)
        ordered = torch.where(place, a, zero).sum(1)
        ordered_idx = torch.where(place, idx.to(torch.float64).unsqueeze(2), zero).sum(1)
        return ordered, ordered_idx.to(torch.int64)

    def neighbors_of(self, d: torch.Tensor) -> torch.Tensor:
        if self.selection != "heap":
            vals, idx = self.lowest(d)
            on_y = on_x = idx
        elif torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            vals, on_y, on_x = _scripted(heap_neighbors)(d, self.k, self.levels)
        elif _tracing():
            raise InvalidConfigError("the kneighbors output with selection='heap' has a data-dependent branch "
                                     "only eager torch and torchscript build; use selection='topk' or 'sort'")
        else:
            vals, on_y, on_x = heap_neighbors(d, self.k, self.levels)
        return torch.cat([self.distances(vals), on_y.to(torch.float64), on_x.to(torch.float64)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _round(x, self.fit_dtype)
        d = self.reduced(x)
        if self.neighbors:
            return self.neighbors_of(d)
        if self.selection == "heap":
            return self.mean_of(*self.heap_select(d))
        w = self.weights(self.distances(d), self.selected(d))
        return (w @ self.target) / w.sum(1, keepdim=True)


def _exact_form(op: Any) -> str:
    """How scikit-learn computes this op's euclidean distances: FMA chains, differences, or (beyond
    ``BLAS_CHAIN_MAX`` features) a GEMM whose summation order is its CPU kernel's."""
    if not getattr(op, "euclidean_gemm", True):
        return "direct"
    return "chain" if getattr(op, "n_features", 0) <= BLAS_CHAIN_MAX else "gemm"


@register
class KNeighborsSearch(Strategy):
    """``kneighbors``: blocked distances (GEMM form or differences), then a heap, a sort or top-k."""

    name = "kneighbors_search"
    op_kind = "kneighbors"
    family = "torch"
    preferred = True
    knobs = (
        Knob("form", ("exact", "gemm", "direct"), "exact",
             "euclidean distances as scikit-learn computes them (OpenBLAS's fused multiply-add chains, or "
             "differences for tree searches), as |x|^2 - 2xy + |y|^2 by torch's GEMM, or from differences",
             searched=("exact",)),
        Knob("tile", TILES, 0, "training rows per distance block (0: all)"),
        Knob("selection", ("heap", "sort", "topk"), "heap",
             "heap: scikit-learn's tie order (top-k, its heap replayed only for rows with ambiguous ties; "
             "torch and torchscript only); sort / topk: ties by index",
             searched=("heap",)),
    )

    @classmethod
    def redundant_reason(cls, op: Op, knobs: Mapping[str, Any], threads: int) -> str | None:
        form = knobs.get("form")
        if form in ("gemm", "direct") and getattr(op, "metric", "") != "euclidean":
            return f"only euclidean distances have a GEMM form: form={form!r} builds the program of 'exact'"
        if form in ("gemm", "direct") and _exact_form(op) == form:
            return f"for this model form={form!r} builds the program of form='exact'"
        if knobs.get("tile", 0) and knobs["tile"] >= getattr(op, "n_train", 0):
            return "a tile at least as large as the training set builds the program of tile=0"
        return None

    @classmethod
    def backend_reason(cls, op: Op, knobs: Mapping[str, Any], backend: str) -> str | None:
        """``heap`` on ``HEAP_BACKENDS`` only; on inductor not the FMA chains of ``form="exact"``; on inductor
        and tvm at most ``COMPILED_MAX_BLOCKS`` distance blocks."""
        if knobs.get("selection", "heap") == "heap" and backend not in HEAP_BACKENDS:
            return (f"selection='heap' replays scikit-learn's heap where ties make its order matter, a "
                    f"data-dependent branch {backend!r} cannot trace (unrolled, the replay is one step per "
                    f"training row: minutes to build); selection='topk' or 'sort' builds there, but keeps the "
                    f"lowest-index rows among those tied with the k-th distance, not scikit-learn's: ask for "
                    f"it explicitly to accept that, or use backend 'torch' or 'torchscript'")
        if backend == "inductor" and knobs.get("form", "exact") == "exact" and _exact_form(op) == "chain" \
                and getattr(op, "metric", "") == "euclidean":
            return ("form='exact' (fused multiply-add chains emulated elementwise) takes inductor minutes to "
                    "compile; form='gemm' builds there, equal up to the last bits")
        tile, m = knobs.get("tile", 0), getattr(op, "n_train", 0)
        if backend in ("inductor", "tvm") and tile and -(-m // tile) > COMPILED_MAX_BLOCKS:
            return (f"tile={tile} splits the {m} training rows into {-(-m // tile)} distance blocks, each its own "
                    f"kernels: {backend!r} compiles more than {COMPILED_MAX_BLOCKS} in minutes (tvm: 80 s for 16 "
                    f"blocks of 64 rows); a larger tile or 0 builds there")
        return None

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any], neighbors: int = 0) -> nn.Module:
        form = knobs.get("form", "exact")
        if op.metric != "euclidean":  # type: ignore[attr-defined]
            form = "direct"
        elif form == "exact":
            form = _exact_form(op)
        return KNeighborsModule(op, form, knobs.get("tile", 0), knobs.get("selection", "heap"),  # type: ignore
                                neighbors)

    @classmethod
    def build_output_module(cls, op: Op, knobs: Mapping[str, Any], output: str) -> nn.Module:
        """The ``kneighbors`` output (``kneighbors:<k>``: for ``k`` neighbours)."""
        if not is_neighbors_output(output):
            return super().build_output_module(op, knobs, output)
        return cls.build_module(op, knobs, op.neighbors_k(output))  # type: ignore[attr-defined]


class CentroidsModule(nn.Module):
    def __init__(self, op: Centroids, form: str):
        super().__init__()
        self.form, self.fit_dtype = form, op.fit_dtype
        self.kmeans, self.with_transform = op.score == "kmeans", op.with_transform
        c = op.centers
        self.register_buffer("centers", torch.from_numpy(c.copy()))
        self.register_buffer("centers_t", torch.from_numpy(np.ascontiguousarray(c.T)))
        self.register_buffer("cc", torch.from_numpy(np.einsum("ij,ij->i", c, c)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _round(x, self.fit_dtype)
        xx = (x * x).sum(1, keepdim=True)
        if self.form == "gemm":
            mid = -2.0 * (x @ self.centers_t)
            sq = (mid + xx) + self.cc
            scores = self.cc + mid if self.kmeans else torch.clamp((xx + mid) + self.cc, min=0.0)
        else:
            diff = x.unsqueeze(1) - self.centers.unsqueeze(0)
            sq = (diff * diff).sum(2)
            scores = sq - xx if self.kmeans else sq
        if not self.with_transform:
            return -scores
        return torch.cat([torch.sqrt(torch.clamp(sq, min=0.0)), -scores], dim=1)


@register
class CentroidDistances(Strategy):
    """``centroids``: distances to the centres by GEMM (scikit-learn's form) or from differences."""

    name = "centroid_distances"
    op_kind = "centroids"
    family = "torch"
    preferred = True
    knobs = (Knob("form", ("gemm", "direct"), "gemm", "|c|^2 - 2xc (+ |x|^2) or sum (x - c)^2"),)

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return CentroidsModule(op, knobs.get("form", "gemm"))  # type: ignore[arg-type]
