"""Feature expansions: binning (KBinsDiscretizer), polynomial features, B-splines (SplineTransformer).

* ``bucketize``   per-column bin index: ``np.searchsorted(edges_j, x_j, side="right")``;
* ``polynomial``  products of powers of the input columns (one output per row of ``powers``);
* ``spline``      per-column B-spline basis values, with scikit-learn's extrapolation modes.

All compute in float64 and follow the installed scikit-learn's own arithmetic
(operation order included), so results agree with it to the last bit or so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .core import DTYPES, Op, TensorType, _arr, register_op


def _pad_rows(rows: list[np.ndarray], fill: float) -> np.ndarray:
    width = max((r.shape[0] for r in rows), default=0)
    out = np.full((len(rows), width), fill, dtype=np.float64)
    for j, r in enumerate(rows):
        out[j, : r.shape[0]] = r
    return out


@register_op
@dataclass(frozen=True, eq=False)
class Bucketize(Op):
    """``y[:, j] = np.searchsorted(edges[j, :n_edges[j]], x[:, j], side="right")``.

    That is the number of column ``j``'s edges that are ``<= x`` (NaN counts as
    above every edge, as NumPy sorts NaN last).  ``x`` is first rounded to
    ``compare_dtype`` (scikit-learn's ``KBinsDiscretizer(dtype=np.float32)``
    casts its input); the comparison itself is exact (in float64).  Rows of
    ``edges`` are sorted; entries past ``n_edges[j]`` are padding (+inf).
    """

    kind: ClassVar[str] = "bucketize"
    n_features: int
    edges: np.ndarray  # float64 (F, E), row j: n_edges[j] sorted edges, then +inf
    n_edges: np.ndarray  # int32 (F,)
    compare_dtype: str = "float64"

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "n_features", int(self.n_features))
        s(self, "n_edges", _arr(self.n_edges, np.int32, 1, "n_edges"))
        edges = np.asarray(self.edges, dtype=np.float64)
        if edges.ndim == 1 and edges.size == 0:
            edges = edges.reshape(self.n_features, 0)
        if edges.ndim != 2 or edges.shape[0] != self.n_features or self.n_edges.shape[0] != self.n_features:
            raise ValueError(f"bucketize: edges must be ({self.n_features}, E) and n_edges ({self.n_features},), "
                             f"got {edges.shape} and {self.n_edges.shape}")
        if self.n_edges.size and (self.n_edges.min() < 0 or self.n_edges.max() > edges.shape[1]):
            raise ValueError(f"bucketize: n_edges must lie in [0, {edges.shape[1]}]")
        rows = [edges[j, : self.n_edges[j]] for j in range(self.n_features)]
        for j, r in enumerate(rows):
            if np.isnan(r).any() or np.any(np.diff(r) < 0):
                raise ValueError(f"bucketize: the edges of column {j} must be sorted numbers")
        width = int(self.n_edges.max()) if self.n_features else 0
        s(self, "edges", _arr(_pad_rows(rows, np.inf)[:, :width].reshape(self.n_features, width), np.float64, 2,
                              "edges"))
        if self.compare_dtype not in DTYPES:
            raise ValueError(f"bucketize: compare_dtype must be one of {DTYPES}, got {self.compare_dtype!r}")

    @classmethod
    def from_edges(cls, edges: list[np.ndarray], compare_dtype: str = "float64") -> "Bucketize":
        """From one 1-D array of sorted edges per column."""
        rows = [np.asarray(e, dtype=np.float64).reshape(-1) for e in edges]
        return cls(len(rows), _pad_rows(rows, np.inf), np.array([r.shape[0] for r in rows], np.int32),
                   compare_dtype)

    def column_edges(self, j: int) -> np.ndarray:
        return self.edges[j, : self.n_edges[j]]

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def summary(self) -> str:
        return f"bucketize: {self.n_features} columns, up to {self.edges.shape[1]} edges"


@register_op
@dataclass(frozen=True, eq=False)
class Polynomial(Op):
    """Output ``o`` is the product over input columns ``j`` of ``x_j ** powers[o, j]``.

    The product is formed as scikit-learn's dense ``PolynomialFeatures`` forms it:
    the factors (column ``j`` repeated ``powers[o, j]`` times) in descending
    column order, multiplied left to right, ``((x_jd * x_jd-1) * ...) * x_j1``;
    an all-zero row is the constant 1.
    """

    kind: ClassVar[str] = "polynomial"
    powers: np.ndarray  # int32 (n_out, F), >= 0

    def __post_init__(self) -> None:
        p = _arr(self.powers, np.int32, 2, "powers")
        if p.size and p.min() < 0:
            raise ValueError("polynomial: powers must be >= 0")
        object.__setattr__(self, "powers", p)

    @property
    def n_features(self) -> int:
        return int(self.powers.shape[1])

    @property
    def max_degree(self) -> int:
        return int(self.powers.sum(axis=1).max()) if self.powers.shape[0] else 0

    def factors(self) -> list[list[int]]:
        """Per output, its factor columns in multiplication order (descending column index)."""
        return [[j for j in range(self.n_features - 1, -1, -1) for _ in range(int(row[j]))] for row in self.powers]

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(int(self.powers.shape[0]), "float64")

    def summary(self) -> str:
        return f"polynomial: {self.n_features} -> {self.powers.shape[0]} columns, degree <= {self.max_degree}"


SPLINE_EXTRAPOLATIONS = ("error", "constant", "linear", "continue", "periodic")


@register_op
@dataclass(frozen=True, eq=False)
class Spline(Op):
    """Per input column, the values of a B-spline basis (scikit-learn's ``SplineTransformer``).

    Column ``f`` has knots ``t = knots[f]`` (``m`` of them, non-decreasing) and
    degree ``k``: ``n = m - k - 1`` basis functions on the base interval
    ``[t[k], t[n]]``.  It writes ``S`` outputs: ``S = n``, or ``S = n - k`` for
    ``periodic`` (basis ``b`` adds into output ``b mod S``); with
    ``include_bias=False`` the last of each column's ``S`` outputs is dropped.

    For a value ``x``:

    * NaN: every output of the column is 0.
    * The basis at a point ``u`` is SciPy's ``BSpline`` evaluation: the interval
      ``l = max(k, min(n - 1, largest i with t[i] <= u))``, the ``k + 1`` non-zero
      values ``w`` by de Boor's recursion (``_deBoor_D``; a zero-length knot span
      contributes 0), and output ``c = sum_a C[l - k + a, c] * w[a]`` accumulated
      from 0 for ``a = 0..k`` (``C`` the identity, or the periodic wrap), so a
      non-finite ``w`` makes the whole row non-finite.  ``u`` NaN gives NaN.
    * ``continue``: the basis at ``x`` (extrapolating the end polynomials).
    * ``periodic``: the basis at ``u = t[k] + ((x - t[k]) mod (t[n] - t[k]))``, mod
      as NumPy's ``%`` (``fmod``, plus the period when the signs differ).
    * ``error``, ``constant``, ``linear``: inside ``[lo, hi] = bounds[f]`` the basis
      at ``x``.  Below ``lo`` (side 0) / above ``hi`` (side 1): ``error`` gives NaN
      (scikit-learn raises); ``constant`` gives ``edge_value[f, side]``;
      ``linear`` gives ``edge_value + (x - bound) * edge_slope`` on the edge
      columns and 0 on the others.

    ``bounds`` default to the base interval (always so for ``error``).  The edge
    columns are the first (below) / last (above) ``edge_width[f]`` outputs;
    by default ``k`` for ``constant``, ``k`` or, for ``k <= 1``, ``k + 1`` for
    ``linear``.  Edge values and slopes are normalised to 0 outside the edge
    columns (slopes everywhere unless linear, both unless constant / linear).
    (scikit-learn 1.9's ``linear`` extrapolation with degree <= 1 widens the
    bounds and edges of every column after the first: its frontend says so here.)
    """

    kind: ClassVar[str] = "spline"
    n_features: int
    degree: int
    extrapolation: str
    knots: np.ndarray  # float64 (F, m)
    include_bias: bool = True
    edge_value: np.ndarray | None = None  # float64 (F, 2, S): the basis at lo / hi
    edge_slope: np.ndarray | None = None  # float64 (F, 2, S): its derivative at lo / hi
    bounds: np.ndarray | None = None  # float64 (F, 2): [lo, hi] for error / constant / linear
    edge_width: np.ndarray | None = None  # int32 (F,): outputs set at each end outside [lo, hi]

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "n_features", int(self.n_features))
        s(self, "degree", int(self.degree))
        s(self, "include_bias", bool(self.include_bias))
        if self.extrapolation not in SPLINE_EXTRAPOLATIONS:
            raise ValueError(f"spline: extrapolation must be one of {SPLINE_EXTRAPOLATIONS}, "
                             f"got {self.extrapolation!r}")
        t = _arr(self.knots, np.float64, 2, "knots")
        s(self, "knots", t)
        k, F = self.degree, self.n_features
        if k < 0 or t.shape[0] != F:
            raise ValueError(f"spline: needs degree >= 0 and one row of knots per column, got degree {k}, "
                             f"knots {t.shape} for {F} columns")
        if t.shape[1] < 2 * k + 2:
            raise ValueError(f"spline: {t.shape[1]} knots are too few for degree {k}")
        if not np.all(np.isfinite(t)) or np.any(np.diff(t, axis=1) < 0):
            raise ValueError("spline: knots must be finite and non-decreasing")
        if self.extrapolation == "periodic":
            if self.n_basis - k < max(k, 1):
                raise ValueError("spline: periodic splines need at least as many outputs as the degree (and one)")
            if np.any(self.upper <= self.lower):
                raise ValueError("spline: periodic splines need a base interval of positive length")
        S = self.n_splines
        base = np.stack([self.lower, self.upper], axis=1)
        if self.bounds is None or self.extrapolation not in ("constant", "linear"):
            bounds = base
        else:
            bounds = np.asarray(self.bounds, dtype=np.float64)
            if bounds.shape != (F, 2):
                raise ValueError(f"spline: bounds must have shape {(F, 2)}, got {bounds.shape}")
            if np.any(bounds[:, 0] < base[:, 0]) or np.any(bounds[:, 1] > base[:, 1]) or \
                    np.any(bounds[:, 0] > bounds[:, 1]):
                raise ValueError("spline: bounds must be an interval inside the base interval")
        s(self, "bounds", _arr(bounds, np.float64, 2, "bounds"))
        if self.extrapolation == "constant":
            default = k
        elif self.extrapolation == "linear":
            default = k if k >= 2 else k + 1
        else:
            default = 0
        if self.edge_width is None or self.extrapolation not in ("constant", "linear"):
            width = np.full(F, min(default, S))
        else:
            width = np.asarray(self.edge_width, dtype=np.int64)
            if width.shape != (F,) or (F and (width.min() < 0 or width.max() > S)):
                raise ValueError(f"spline: edge_width must be {F} counts in [0, {S}]")
        s(self, "edge_width", _arr(width, np.int32, 1, "edge_width"))
        mask = self.edge_mask()  # (F, 2, S)
        for name, used in (("edge_value", self.extrapolation in ("constant", "linear")),
                           ("edge_slope", self.extrapolation == "linear")):
            a = getattr(self, name)
            a = np.zeros((F, 2, S)) if a is None else np.asarray(a, dtype=np.float64)
            if a.shape != (F, 2, S):
                raise ValueError(f"spline: {name} must have shape {(F, 2, S)}, got {a.shape}")
            s(self, name, _arr(np.where(mask & used, a, 0.0), np.float64, 3, name))

    # ---- derived facts
    @property
    def n_basis(self) -> int:
        """B-spline basis functions per column."""
        return int(self.knots.shape[1]) - self.degree - 1

    @property
    def n_splines(self) -> int:
        """Outputs per column before the bias column is dropped."""
        return self.n_basis - (self.degree if self.extrapolation == "periodic" else 0)

    @property
    def lower(self) -> np.ndarray:
        return self.knots[:, self.degree]

    @property
    def upper(self) -> np.ndarray:
        return self.knots[:, self.n_basis]

    def edge_mask(self) -> np.ndarray:
        """bool (F, 2, S): the outputs a value below (side 0) / above (side 1) the bounds sets."""
        S = self.n_splines
        j = np.arange(S)
        w = self.edge_width[:, None]
        return np.stack([j[None, :] < w, j[None, :] >= S - w], axis=1)

    def combination(self) -> np.ndarray:
        """float64 (n_basis, S): how basis functions add into the outputs (identity or periodic wrap)."""
        C = np.zeros((self.n_basis, self.n_splines))
        b = np.arange(self.n_basis)
        C[b, b % self.n_splines] = 1.0
        return C

    def kept(self) -> np.ndarray:
        """int64: the kept output columns among ``F * S`` (all, or all but each column's last)."""
        idx = np.arange(self.n_features * self.n_splines)
        return idx if self.include_bias else idx[(idx + 1) % self.n_splines != 0]

    def input_type(self) -> TensorType:
        return TensorType(self.n_features, "float64")

    def output_type(self) -> TensorType:
        return TensorType(self.n_features * (self.n_splines - (0 if self.include_bias else 1)), "float64")

    def summary(self) -> str:
        return (f"spline: {self.n_features} columns x {self.n_splines} {self.extrapolation} splines "
                f"of degree {self.degree}")
