"""KBinsDiscretizer, PolynomialFeatures and SplineTransformer.

* ``KBinsDiscretizer`` (every strategy: they differ only in ``bin_edges_``):
  ``transform`` is ``np.searchsorted(bin_edges_[j][1:-1], x, side="right")``, a
  ``bucketize``; ``encode="onehot"`` / ``"onehot-dense"`` add the one-hot
  ``lookup`` of its internal encoder (categories ``0 .. n_bins_[j] - 1``),
  sparse output read as dense.  ``dtype=np.float32`` rounds the input to float32
  first, as scikit-learn's cast does.
* ``PolynomialFeatures``: one ``polynomial`` with ``powers_``, products formed in
  the dense ``transform``'s order.
* ``SplineTransformer``: one ``spline`` with each feature's ``bsplines_[j].t``;
  the boundary values and slopes that ``constant`` / ``linear`` extrapolation use
  are SciPy's, computed here exactly as ``transform`` computes them.
  ``sparse_output`` is read as dense.

All three refuse NaN and inf as scikit-learn's input check does, except
``SplineTransformer(handle_missing="zeros")``, which encodes NaN as zeros and
accepts inf (its outputs are then what scikit-learn's dense path computes:
finite for ``constant``, inf / NaN for ``linear``, NaN for ``continue`` and
``periodic``; ``error`` and, with ``sparse_output``, ``continue`` / ``periodic``
refuse inf, as scikit-learn does).  ``extrapolation="error"``: a finite value
beyond the knots, which scikit-learn rejects, gives NaN outputs.

scikit-learn 1.9 quirks: with ``linear`` extrapolation and degree <= 1 its
``transform`` increments its loop variable ``degree``, so every feature after
the first reads wider bounds (``t[2]``, ``t[-3]``) and sets two edge columns:
reproduced (the op's ``bounds`` / ``edge_width``).  Not reproduced, as they are
failures rather than results: ``constant`` with degree 0 fails on values above
the range (the IR gives 0 there), and the sparse path of ``continue`` /
``periodic`` / ``error`` zeroes a NaN only in feature 0 (later features get the
basis at the batch's smallest value); the IR gives 0, as the dense path does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...head import Head
from ...ir.columns import Lookup
from ...ir.expansions import Bucketize, Polynomial, Spline
from ._common import require
from ._graph import Builder, Col, Value


def _width(model: Any, x: Value) -> None:
    n = int(model.n_features_in_)
    require(x.width == n, model, f"it reads {n} features, its input has {x.width}")


def kbins_discretizer(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    _width(model, x)
    require(model.encode in ("ordinal", "onehot", "onehot-dense"), model, f"encode={model.encode!r} is not known")
    b.refuse(x, ["nan", "inf"], model)
    edges = [np.asarray(e, dtype=np.float64)[1:-1] for e in model.bin_edges_]
    compare = "float32" if model.dtype is not None and np.dtype(model.dtype) == np.float32 else "float64"
    out = b.add(Bucketize.from_edges(edges, compare), [x], [Col() for _ in edges])
    if model.encode == "ordinal":
        return out, None
    enc = model._encoder
    require(enc.drop is None, model, "its one-hot encoder drops categories")
    column, value, target = [], [], []
    for j, cats in enumerate(enc.categories_):
        cats = np.asarray(cats, dtype=np.float64)
        require(np.array_equal(cats, np.arange(len(edges[j]) + 1)), model,
                f"its one-hot categories for feature {j} are not its bins 0..{len(edges[j])}")
        column += [j] * cats.size
        value += cats.tolist()
        target += list(range(len(target), len(target) + cats.size))
    n_out = len(target)
    op = Lookup(n_features=len(edges), column=np.array(column, np.int32), value=np.array(value),
                target=np.array(target, np.int32), weight=np.ones(n_out), source=np.array(column, np.int32),
                unknown=np.zeros(n_out))
    return b.add(op, [out], [Col() for _ in range(n_out)]), None


def polynomial_features(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    _width(model, x)
    b.refuse(x, ["nan", "inf"], model)
    powers = np.asarray(model.powers_, dtype=np.int64)
    return b.add(Polynomial(powers), [x], [Col() for _ in range(powers.shape[0])]), None


def spline_transformer(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    _width(model, x)
    ext = model.extrapolation
    zeros = model.handle_missing == "zeros"
    refuse_inf = not zeros or ext == "error" or (model.sparse_output and ext in ("continue", "periodic"))
    b.refuse(x, ([] if zeros else ["nan"]) + (["inf"] if refuse_inf else []), model)
    splines = model.bsplines_
    k = int(model.degree)
    knots = np.vstack([np.asarray(s.t, dtype=np.float64) for s in splines])
    S = int(splines[0].c.shape[1])
    value = np.zeros((len(splines), 2, S))
    slope = np.zeros((len(splines), 2, S))
    bounds = np.zeros((len(splines), 2))
    width = np.zeros(len(splines), dtype=np.int64)
    if ext in ("constant", "linear"):
        d = k  # transform's loop variable: with linear extrapolation and degree <= 1 it grows feature by feature
        for f, spl in enumerate(splines):
            require(2 * d + 1 <= spl.t.size, model, f"with {ext} extrapolation feature {f} reads knots {d} and "
                    f"{-d - 1} of {spl.t.size} (scikit-learn fails or crosses its bounds there)")
            xmin, xmax = spl.t[d], spl.t[-d - 1]  # as transform reads them
            bounds[f] = xmin, xmax
            value[f] = [spl(xmin), spl(xmax)]
            if ext == "linear":
                slope[f] = [spl(xmin, nu=1), spl(xmax, nu=1)]
                if d <= 1:
                    d += 1
            width[f] = min(d, S)
    op = Spline(n_features=len(splines), degree=k, extrapolation=ext, knots=knots,
                include_bias=bool(model.include_bias), edge_value=value, edge_slope=slope,
                bounds=bounds if ext in ("constant", "linear") else None,
                edge_width=width if ext in ("constant", "linear") else None)
    require(op.n_splines == S, model, f"its splines have {S} coefficients, expected {op.n_splines}")
    per = op.output_type().width // max(len(splines), 1)
    passes_inf = not refuse_inf and ext in ("linear", "continue", "periodic")
    cols = []
    for c in x.cols:
        taint = frozenset(t for t in c.taint if t[0] == "inf") if passes_inf else frozenset()
        cols += [Col(taint=taint)] * per
    return b.add(op, [x], cols), None


STEPS: dict = {  # class name -> converter(model, b, x) -> (Value, None)
    "KBinsDiscretizer": kbins_discretizer,
    "PolynomialFeatures": polynomial_features,
    "SplineTransformer": spline_transformer,
}
