"""``Predictor.kneighbors``: the nearest training rows of query rows, as the fitted KNN estimator returns them.

The compiled program computes the ``kneighbors`` output of the model's ``kneighbors`` op (its fitted
``n_neighbors``, or ``kneighbors:<k>`` for another ``k``: one more program, built on first use and kept with
the others); the head finishes it into ``(distances, indices)``, the indices of tied neighbours in the order
scikit-learn's brute-force search leaves them for that many query rows (``strategies.ir.neighbors``).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from strategies.inputs import as_2d_float
from strategies.ir.neighbors import KNeighbors, neighbors_output


def kneighbors(predictor: Any, X: Any = None, n_neighbors: int | None = None,
               return_distance: bool = True) -> Any:
    """The ``n_neighbors`` (default: the fitted number) nearest training rows of each row of ``X``, like the
    original estimator's ``kneighbors``: ``(distances, indices)``, float64 and int64 arrays ``(n, n_neighbors)``,
    nearest first, or ``indices`` alone when ``return_distance`` is false.

    ``X=None`` (scikit-learn: the training rows, each without itself) is refused: a compiled model has no
    training set to query, only the query rows it is given.
    """
    model = predictor.model
    op = model.graph.ops[-1]
    if not isinstance(op, KNeighbors):  # the head offers kneighbors only for a model ending in one
        raise AttributeError(f"{model.source} has no method 'kneighbors'; it has {', '.join(model.head.methods)}")
    if X is None:
        raise ValueError(f"kneighbors(X=None) asks {model.source} for the neighbours of its training rows (each "
                         "without itself), but a compiled model holds no training set input: pass the query rows "
                         "as X (the training rows themselves, if that is what you want; then each row is its own "
                         "nearest neighbour)")
    k = op.n_neighbors if n_neighbors is None else n_neighbors
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
        raise TypeError(f"n_neighbors must be an integer, got {n_neighbors!r} ({type(n_neighbors).__name__})")
    if not 1 <= k <= op.n_train:
        raise ValueError(f"n_neighbors must lie in [1, {op.n_train}] ({model.source} was fitted on {op.n_train} "
                         f"rows), got {k}")
    k = int(k)
    X = as_2d_float(X, model.input, what=model.source)
    if X.shape[0] == 0:
        dist, idx = np.zeros((0, k)), np.zeros((0, k), dtype=np.int64)
    else:
        value = predictor.run(X, neighbors_output(None if k == op.n_neighbors else k))
        dist, idx = model.head.finish("kneighbors", value)
    return (dist, idx) if return_distance else idx
