"""Nearest neighbours and nearest centres: KNeighbors{Classifier,Regressor}, KMeans, MeanShift.

* ``kneighbors``  the k nearest training rows of each query, and the (weighted) mean of their targets; its
                  output ``kneighbors`` (:func:`neighbors_output`) is the neighbours themselves (the
                  estimators' ``kneighbors`` method);
* ``centroids``   distances to cluster centres (``transform``) and the scores ``predict`` takes the
                  arg-min of.

Both follow the installed scikit-learn's brute-force arithmetic (checked against 1.9); their
``reference`` methods are the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, List, Tuple

import numpy as np

from .core import DTYPES, Op, TensorType, _arr, register_op

KNN_METRICS = ("euclidean", "manhattan", "chebyshev", "minkowski", "cosine")
KNN_WEIGHTS = ("uniform", "distance")
# Below this many features OpenBLAS computes scikit-learn's dot products (dgemm, and ddot's scalar tail) as
# one fused multiply-add chain over the features, which the IR reproduces exactly (checked on its Haswell and
# SkylakeX kernels); from 16 on ddot sums in vector lanes whose order is the CPU kernel's own.
BLAS_CHAIN_MAX = 15
# scikit-learn's ``ArgKmin`` works through the training rows in chunks of this many (``pairwise_dist_chunk_size``)
ARGKMIN_CHUNK = 256
# scikit-learn's ``simultaneous_sort`` insertion-sorts up to this many values (stable), partitions longer runs
INSERTION_MAX = 15
# the graph output of a ``kneighbors`` op holding its neighbours (``kneighbors:<k>`` for another k than the fitted)
NEIGHBORS_OUTPUT = "kneighbors"


def neighbors_output(k: int | None = None) -> str:
    """The output key of the neighbours (``KNeighbors.neighbors_reference``): the fitted ``n_neighbors``, or ``k``."""
    return NEIGHBORS_OUTPUT if k is None else f"{NEIGHBORS_OUTPUT}:{int(k)}"


def is_neighbors_output(output: str) -> bool:
    return output == NEIGHBORS_OUTPUT or output.startswith(NEIGHBORS_OUTPUT + ":")


def parallel_on_y(n_queries: int, n_fit: int) -> bool:
    """Whether scikit-learn's ``ArgKmin`` (one thread) takes its ``parallel_on_Y`` path for ``n_queries`` rows
    against ``n_fit`` fitted rows: its heap's entries are then pushed once more into a fresh heap before
    the sort, which changes the order of tied neighbours (``parallel_on_X`` sorts the heap as it is)."""
    return n_fit >= n_queries and n_queries <= 4 * ARGKMIN_CHUNK


def two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """``(s, err)`` with ``s + err == a + b`` exactly (Knuth); NumPy arrays or torch tensors."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def split(a: Any) -> tuple[Any, Any]:
    """``(hi, lo)``, ``hi + lo == a``, each half 26 bits (Veltkamp); NumPy arrays or torch tensors."""
    g = 134217729.0 * a  # 2**27 + 1: Veltkamp's split into two 26-bit halves
    hi = g - (g - a)
    return hi, a - hi


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a * b + c`` rounded once, from float64 operations only (no bit tricks, so torch ports it as is).

    The exact product ``p + e`` (Veltkamp / Dekker), the exact sum ``th + tl`` of ``c + p``, then
    ``z = RN(th + RN(tl + e))``; ``z`` is off only when ``th + RN(tl + e)`` falls exactly half-way between
    two floats while the dropped part ``w`` pushes the exact value past it: then the other neighbour.
    Exact unless a product over- or underflows (``|a|``, ``|b|`` beyond ~1e150 or their product below ~1e-290).
    """
    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    th, tl = two_sum(c, p)
    v, w = two_sum(tl, e)
    z, r = two_sum(th, v)
    other = z + 2.0 * r
    half_way = (r != 0) & ((other - z) == 2.0 * r)
    return np.where(half_way & (w != 0) & ((w > 0) == (r > 0)), other, z)


def fma_dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(n, m)``: ``x_i . y_j`` as one fused multiply-add chain over the features, from 0 (OpenBLAS's order)."""
    acc = np.zeros((x.shape[0], y.shape[0]))
    with np.errstate(over="ignore", invalid="ignore"):
        for f in range(x.shape[1]):
            acc = fma(x[:, f : f + 1], y[None, :, f], acc)
    return acc


def heap_select(d: np.ndarray, k: int) -> np.ndarray:
    """Indices ``(n, k)`` of the neighbours scikit-learn's bounded max-heap keeps (``sklearn.utils._heap``).

    Training rows are pushed in index order; a row enters only when strictly nearer than the heap's
    root and sifts down preferring the left child on ties: among rows tied with the k-th distance, the
    survivors are the heap's, not always the lowest indices.
    """
    return heap_push(d, k)[1]


def heap_push(d: np.ndarray, k: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The heap ``(values, ids)``, ``(n, k)`` in heap order, after pushing every column of ``d`` in order
    (column ``j`` of row ``i`` carries ``ids[i, j]``, default ``j``) into an empty one."""
    n, m = d.shape
    vals = np.full((n, k), np.inf)
    idx = np.full((n, k), -1, dtype=np.int64)
    rows = np.arange(n)
    for j in range(m):
        v = d[:, j]
        act = v < vals[:, 0]
        if not act.any():
            continue
        r, vv = rows[act], v[act]
        c = np.zeros(r.size, dtype=np.int64)
        moving = np.ones(r.size, dtype=bool)
        while moving.any():
            left, right = 2 * c + 1, 2 * c + 2
            lv = np.where(left < k, vals[r, np.minimum(left, k - 1)], -np.inf)
            rv = np.where(right < k, vals[r, np.minimum(right, k - 1)], -np.inf)
            only_left = (left < k) & (right >= k)
            s = np.where(only_left, np.where(lv > vv, left, -1),
                         np.where(lv >= rv, np.where(vv < lv, left, -1), np.where(vv < rv, right, -1)))
            go = moving & (s >= 0) & (left < k)
            vals[r[go], c[go]] = vals[r[go], s[go]]
            idx[r[go], c[go]] = idx[r[go], s[go]]
            c = np.where(go, s, c)
            moving = go
        vals[r, c] = vv
        idx[r, c] = j if ids is None else ids[r, j]
    return vals, idx


def introsort(values: List[float], indices: List[int], small: int = INSERTION_MAX) -> None:
    """scikit-learn's ``simultaneous_sort`` (``sklearn/utils/_sorting.pyx``: introsort, median-of-three 2-way
    partitions, insertion sort below ``INSERTION_MAX + 1`` values, heapsort past its depth limit) of ``values``
    and ``indices`` together, in place: its order among equal values, which is neither stable nor by index.

    Plain Python on lists, its recursion an explicit stack, so that ``torch.jit.script`` compiles it too
    (``small``: ``INSERTION_MAX``, an argument because a script reads no global).
    """
    n = len(values)
    if n == 0:
        return
    depth = 0
    while (2 << depth) <= n:  # floor(log2 n)
        depth += 1
    stack: List[Tuple[int, int, int]] = [(0, n, 2 * depth)]
    while len(stack) > 0:
        lo, size, maxd = stack.pop()
        while size > small:
            if maxd <= 0:
                _heapsort(values, indices, lo, size)
                size = 0
                break
            maxd -= 1
            mid, last = lo + size // 2, lo + size - 1
            # median of three: the smallest to the front, the pivot to the end, the largest to the middle
            if values[lo] > values[last]:
                _swap(values, indices, lo, last)
            if values[last] > values[mid]:
                _swap(values, indices, last, mid)
                if values[lo] > values[last]:
                    _swap(values, indices, lo, last)
            pivot = values[last]
            i, j = lo + 1, last - 1
            while True:
                while i <= j and values[i] < pivot:
                    i += 1
                while i <= j and values[j] > pivot:
                    j -= 1
                if i >= j:
                    break
                _swap(values, indices, i, j)
                i += 1
                j -= 1
            _swap(values, indices, i, last)
            stack.append((lo, i - lo, maxd))  # the left part (scikit-learn recurses); the loop goes on right
            size = lo + size - i - 1
            lo = i + 1
        for a in range(lo + 1, lo + size):  # insertion sort
            v, t, b = values[a], indices[a], a
            while b > lo and values[b - 1] > v:
                values[b] = values[b - 1]
                indices[b] = indices[b - 1]
                b -= 1
            values[b] = v
            indices[b] = t


def _swap(values: List[float], indices: List[int], i: int, j: int) -> None:
    values[i], values[j] = values[j], values[i]
    indices[i], indices[j] = indices[j], indices[i]


def _heapsort(values: List[float], indices: List[int], lo: int, n: int) -> None:
    start = (n - 2) // 2
    while True:
        _sift_down(values, indices, lo, start, n)
        if start == 0:
            break
        start -= 1
    end = n - 1
    while end > 0:
        _swap(values, indices, lo, lo + end)
        _sift_down(values, indices, lo, 0, end)
        end -= 1


def _sift_down(values: List[float], indices: List[int], lo: int, start: int, end: int) -> None:
    root = start
    while True:
        child = 2 * root + 1
        top = root
        if child < end and values[lo + top] < values[lo + child]:
            top = child
        if child + 1 < end and values[lo + top] < values[lo + child + 1]:
            top = child + 1
        if top == root:
            break
        _swap(values, indices, lo + root, lo + top)
        root = top


def simultaneous_sort(vals: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``(vals, idx)`` sorted by :func:`introsort` (a stable sort up to ``INSERTION_MAX`` columns)."""
    if vals.shape[1] <= INSERTION_MAX:
        order = np.argsort(vals, axis=1, kind="stable")
        return np.take_along_axis(vals, order, 1), np.take_along_axis(idx, order, 1)
    vals, idx = vals.copy(), idx.copy()
    for r in range(vals.shape[0]):
        v, i = vals[r].tolist(), idx[r].tolist()
        introsort(v, i)
        vals[r], idx[r] = v, i
    return vals, idx


@register_op
@dataclass(frozen=True, eq=False)
class KNeighbors(Op):
    """``out[i] = sum_j w_ij * target[j] / sum_j w_ij`` over the ``k`` nearest training rows ``j`` of row ``i``.

    Distances are scikit-learn's brute-force ones.  The *reduced* distance, which selects the neighbours:

    * ``euclidean``: ``max(0, (|x|^2 + (-2 x.y)) + |y|^2)`` (its GEMM form, as ``EuclideanArgKmin``), each dot
      product a fused multiply-add chain over the features as OpenBLAS forms it (up to ``BLAS_CHAIN_MAX``
      features; beyond, NumPy's product, which may differ from scikit-learn's in the last bit), or
      with ``euclidean_gemm=False`` ``sum (x - y)^2`` (the KD / ball tree searches);
    * ``manhattan``: ``sum |x - y|``; ``chebyshev``: ``max |x - y|``; ``minkowski``: ``sum |x - y|^p``;
      with ``fit_dtype="float32"`` each difference ``x - y`` is rounded to float32, as scikit-learn's
      32-bit ``DistanceMetric`` computes it;
    * ``cosine``: ``clip(1 - (x/|x|).(y/|y|), 0, 2)`` in ``fit_dtype`` (``pairwise_distances``).

    Neighbours: for every metric but cosine, those :func:`heap_select` keeps (``ArgKmin``); for cosine,
    NumPy's ``argpartition`` (scikit-learn's fallback path).  The distance is ``sqrt`` (euclidean) or
    ``^(1/p)`` (minkowski) of the reduced one.  Weights: 1 (``uniform``), or ``1/distance``; a row with a
    zero distance among its neighbours weighs those neighbours 1 and the others 0.  Queries are rounded
    to ``fit_dtype`` first (scikit-learn computes on float32 queries against float32 training data).
    Classifiers have one-hot ``target`` rows (``out`` is ``predict_proba``).  The output ``kneighbors``
    (``kneighbors:<k>``) holds the neighbours themselves: :meth:`neighbors_reference`.
    """

    kind: ClassVar[str] = "kneighbors"
    train: np.ndarray  # float64 (m, F)
    target: np.ndarray  # float64 (m, T)
    n_neighbors: int
    metric: str = "euclidean"
    p: float = 2.0
    weights: str = "uniform"
    fit_dtype: str = "float64"
    euclidean_gemm: bool = True  # False: sum (x - y)^2 directly, as scikit-learn's KD / ball trees compute it

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "train", _arr(self.train, np.float64, 2, "train"))
        t = np.asarray(self.target, dtype=np.float64)
        s(self, "target", _arr(t[:, None] if t.ndim == 1 else t, np.float64, 2, "target"))
        s(self, "n_neighbors", int(self.n_neighbors))
        s(self, "p", float(self.p))
        s(self, "euclidean_gemm", bool(self.euclidean_gemm))
        m = self.train.shape[0]
        if self.target.shape[0] != m:
            raise ValueError(f"kneighbors: {self.target.shape[0]} targets for {m} training rows")
        if not 1 <= self.n_neighbors <= m:
            raise ValueError(f"kneighbors: n_neighbors must lie in [1, {m}], got {self.n_neighbors}")
        if self.metric not in KNN_METRICS or self.weights not in KNN_WEIGHTS or self.fit_dtype not in DTYPES:
            raise ValueError(f"kneighbors: metric in {KNN_METRICS}, weights in {KNN_WEIGHTS}, fit_dtype in "
                             f"{DTYPES}; got {self.metric!r}, {self.weights!r}, {self.fit_dtype!r}")
        if self.metric == "minkowski" and not (self.p >= 1 and np.isfinite(self.p)):
            raise ValueError(f"kneighbors: minkowski needs a finite p >= 1, got {self.p}")
        if not np.all(np.isfinite(self.train)):
            raise ValueError("kneighbors: training rows must be finite")

    @property
    def n_features(self) -> int:
        return int(self.train.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.train.shape[0])

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, self.fit_dtype)

    def output_type(self) -> TensorType:
        return TensorType(int(self.target.shape[1]), "float64")

    def summary(self) -> str:
        p = f"(p={self.p:g})" if self.metric == "minkowski" else ""
        return (f"kneighbors: k={self.n_neighbors} of {self.n_train} rows, {self.metric}{p}, {self.weights}, "
                f"{self.n_features} features -> {self.target.shape[1]}")

    # ---- the oracle
    def reduced_distances(self, x: np.ndarray) -> np.ndarray:
        """float64 ``(n, m)``: what scikit-learn ranks neighbours by."""
        x = np.asarray(x, dtype=np.float64)
        y = self.train
        if self.fit_dtype == "float32":
            x = x.astype(np.float32).astype(np.float64)
        if self.metric == "euclidean" and self.euclidean_gemm:
            if self.n_features <= BLAS_CHAIN_MAX:
                xx = np.array([fma_dot(r[None], r[None])[0, 0] for r in x]) if x.shape[0] else np.zeros(0)
                yy = np.array([fma_dot(r[None], r[None])[0, 0] for r in y])
                mid = -2.0 * fma_dot(x, y)
            else:
                xx, yy, mid = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y), -2.0 * (x @ y.T)
            return np.maximum((xx[:, None] + mid) + yy[None, :], 0.0)
        if self.metric == "cosine":
            dt = np.dtype(self.fit_dtype)
            xn, yn = _unit_rows(x.astype(dt)), _unit_rows(y.astype(dt))
            return np.clip(1 - xn @ yn.T, 0, 2).astype(np.float64)
        out = np.empty((x.shape[0], y.shape[0]))
        for j in range(y.shape[0]):
            diff = np.abs(x - y[j])
            if self.fit_dtype == "float32":
                diff = np.abs((x - y[j]).astype(np.float32)).astype(np.float64)
            if self.metric == "manhattan":
                out[:, j] = diff.sum(axis=1)
            elif self.metric == "euclidean":
                out[:, j] = (diff * diff).sum(axis=1)
            elif self.metric == "chebyshev":
                out[:, j] = diff.max(axis=1) if diff.shape[1] else 0.0
            else:
                out[:, j] = (diff ** self.p).sum(axis=1)
        return out

    def distances_from_reduced(self, r: np.ndarray) -> np.ndarray:
        if self.metric == "euclidean":
            return np.sqrt(r)
        if self.metric == "minkowski":
            return r ** (1.0 / self.p)
        return r

    def neighbours(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)``, each ``(n, k)``, nearest first (ties by index)."""
        r = self.reduced_distances(x)
        k = self.n_neighbors
        if self.metric == "cosine":
            idx = np.argpartition(r, k - 1, axis=1)[:, :k]
        else:
            idx = heap_select(r, k)
        rows = np.arange(r.shape[0])[:, None]
        order = np.lexsort((idx, r[rows, idx]), axis=1)
        idx = idx[rows, order]
        return self.distances_from_reduced(r[rows, idx]), idx

    def neighbors_k(self, output: str) -> int:
        """The ``k`` of a neighbours output key (:func:`neighbors_output`), checked against the training rows."""
        if output == NEIGHBORS_OUTPUT:
            return self.n_neighbors
        name, _, k = output.partition(":")
        if name != NEIGHBORS_OUTPUT or not k.isdigit() or not 1 <= int(k) <= self.n_train:
            raise ValueError(f"kneighbors: output {output!r} is neither {NEIGHBORS_OUTPUT!r} nor "
                             f"'{NEIGHBORS_OUTPUT}:<k>' with k in [1, {self.n_train}]")
        return int(k)

    def neighbors_reference(self, x: np.ndarray, k: int | None = None) -> np.ndarray:
        """The output ``kneighbors``: float64 ``(n, 3k)``, ``[distances | indices | indices]``: the ``k`` (default
        ``n_neighbors``) nearest training rows, nearest first, as scikit-learn's brute-force ``kneighbors``
        returns them.  The indices come in the two orders it leaves tied neighbours in: after its
        ``parallel_on_Y`` path (the heap pushed again into a fresh one, then sorted), and after
        ``parallel_on_X`` (the heap sorted as it is); :func:`parallel_on_y` tells which a call takes.  Both
        sort by :func:`introsort`.  Cosine: NumPy's ``argpartition``, then ``argsort`` (scikit-learn's
        fallback path; the two index blocks alike).
        """
        k = self.n_neighbors if k is None else int(k)
        r = self.reduced_distances(x)
        rows = np.arange(r.shape[0])[:, None]
        if self.metric == "cosine":
            idx = np.argpartition(r, k - 1, axis=1)[:, :k]
            idx = idx[rows, np.argsort(r[rows, idx], axis=1)]
            return np.concatenate([r[rows, idx], idx, idx], axis=1).astype(np.float64)
        vals, idx = heap_push(r, k)
        sorted_vals, on_x = simultaneous_sort(vals, idx)
        _, on_y = simultaneous_sort(*heap_push(vals, k, idx))
        return np.concatenate([self.distances_from_reduced(sorted_vals), on_y, on_x], axis=1).astype(np.float64)

    def reference_output(self, output: str, x: np.ndarray) -> np.ndarray:
        """The named output ``output`` (:func:`neighbors_output`) for rows ``x``."""
        return self.neighbors_reference(x, self.neighbors_k(output))

    def reference(self, x: np.ndarray) -> np.ndarray:
        dist, idx = self.neighbours(x)
        if self.weights == "uniform":
            w = np.ones_like(dist)
        else:
            with np.errstate(divide="ignore"):
                w = 1.0 / dist
            inf = np.isinf(w)
            hit = inf.any(axis=1)
            w[hit] = inf[hit]
        num = np.zeros((x.shape[0], self.target.shape[1]))
        for j in range(idx.shape[1]):  # in rank order, as scikit-learn accumulates
            num += w[:, j : j + 1] * self.target[idx[:, j]]
        return num / w.sum(axis=1, keepdims=True)


def _unit_rows(a: np.ndarray) -> np.ndarray:
    """scikit-learn's ``normalize`` (l2): rows divided by their norm, zero norms left as 1."""
    norms = np.sqrt(np.einsum("ij,ij->i", a, a))
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    return a / norms[:, None]


@register_op
@dataclass(frozen=True, eq=False)
class Centroids(Op):
    """Distances of each row to ``K`` centres: ``[transform (K columns, when with_transform), -scores (K)]``.

    ``transform``: euclidean distances ``sqrt(max(0, (-2 x.c + |x|^2) + |c|^2))`` (``euclidean_distances``).
    ``scores``: what ``predict`` takes the first arg-min of (negated, so that it is the first arg-max):
    ``|c|^2 + (-2 x.c)`` (``score="kmeans"``, the Lloyd step without ``|x|^2``) or
    ``max(0, (|x|^2 + (-2 x.c)) + |c|^2)`` (``score="euclidean"``, ``pairwise_distances_argmin``).
    Queries are rounded to ``fit_dtype`` first.
    """

    kind: ClassVar[str] = "centroids"
    centers: np.ndarray  # float64 (K, F)
    score: str = "kmeans"
    with_transform: bool = True
    fit_dtype: str = "float64"

    def __post_init__(self) -> None:
        object.__setattr__(self, "centers", _arr(self.centers, np.float64, 2, "centers"))
        object.__setattr__(self, "with_transform", bool(self.with_transform))
        if self.score not in ("kmeans", "euclidean") or self.fit_dtype not in DTYPES:
            raise ValueError(f"centroids: score must be 'kmeans' or 'euclidean' and fit_dtype one of {DTYPES}, "
                             f"got {self.score!r}, {self.fit_dtype!r}")
        if self.centers.shape[0] < 1:
            raise ValueError("centroids: needs at least one centre")

    @property
    def n_clusters(self) -> int:
        return int(self.centers.shape[0])

    def input_type(self) -> TensorType:
        return TensorType(int(self.centers.shape[1]), self.fit_dtype)

    def output_type(self) -> TensorType:
        return TensorType(self.n_clusters * (2 if self.with_transform else 1), "float64")

    def summary(self) -> str:
        return (f"centroids: {self.n_clusters} centres of {self.centers.shape[1]} features, {self.score} scores"
                + (", distances" if self.with_transform else ""))

    def reference(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.fit_dtype == "float32":
            x = x.astype(np.float32).astype(np.float64)
        c = self.centers
        xx = np.einsum("ij,ij->i", x, x)[:, None]
        cc = np.einsum("ij,ij->i", c, c)[None, :]
        mid = -2.0 * (x @ c.T)
        if self.score == "kmeans":
            scores = cc + mid
        else:
            scores = np.maximum((xx + mid) + cc, 0.0)
        if not self.with_transform:
            return -scores
        return np.concatenate([np.sqrt(np.maximum((mid + xx) + cc, 0.0)), -scores], axis=1)

