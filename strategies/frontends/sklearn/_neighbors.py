"""KNeighborsClassifier / KNeighborsRegressor, KMeans / MiniBatchKMeans and MeanShift.

* KNN: one ``kneighbors`` op holding the training rows (``_fit_X``) and their targets (one-hot class
  indices for a classifier: its output is ``predict_proba``).  The metric is the one scikit-learn's
  prediction uses: ``effective_metric_`` (minkowski with p = 1 / 2 / inf becomes manhattan / euclidean /
  chebyshev), except for a uniform single-output classifier, whose ``predict_proba`` reads the metric
  through ``_adjusted_metric`` (``p`` from the constructor).  Refused: callable weights or metrics, other
  metrics, ``metric_params`` beyond ``p``, multi-output classifiers, sparse training data.  The ``kneighbors``
  method reads the op's ``kneighbors`` output; it is left out when ``predict_proba``'s metric is not the one
  ``kneighbors`` computes with (``metric_params={"p": ...}`` and another constructor ``p``).
* KMeans, MiniBatchKMeans: ``transform`` (euclidean distances) and ``predict`` (the Lloyd step's
  ``|c|^2 - 2 x.c`` arg-min) from one ``centroids`` op.  MeanShift: ``predict`` only
  (``pairwise_distances_argmin``).

Known to differ from scikit-learn, documented on the ops: neighbour sets when two candidates' distances
differ only in their last bits (scikit-learn's BLAS sums in another order); KD / ball tree searches
(``algorithm``) break exact ties at the k-th distance in tree order, the op in the brute-force heap's
order, which it also uses for them; cosine ties at the k-th distance (NumPy's ``argpartition``).  With
``kneighbors`` the same holds for the order of tied neighbours (KD / ball trees sort ties in their own order),
and scikit-learn's brute force follows the op only on one OpenMP thread past 256 fitted rows (it merges
per-thread heaps) and only for queries of the fitted dtype (float32 fits queried with float64 rows take its
``argpartition`` path; ``predict`` too).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ...head import Head
from ...ir.neighbors import Centroids, KNeighbors
from ._common import classifier_head, require
from ._graph import Builder, Col, Value


def _width(model: Any, x: Value) -> None:
    n = int(model.n_features_in_)
    require(x.width == n, model, f"it reads {n} features, its input has {x.width}")


def _fit_dtype(a: np.ndarray) -> str:
    return "float32" if np.asarray(a).dtype == np.float32 else "float64"


_METRICS = ("euclidean", "manhattan", "cityblock", "l1", "l2", "chebyshev", "infinity", "minkowski", "cosine")


def _metric(model: Any, classifier: bool) -> tuple[str, float]:
    """The metric and p that scikit-learn's predictions compute with."""
    metric = model.effective_metric_
    params = dict(model.effective_metric_params_ or {})
    require(isinstance(metric, str), model, "its metric is a callable or DistanceMetric object, not a name")
    require(metric in _METRICS, model, f"metric {metric!r} is not supported (euclidean, manhattan, chebyshev, "
            "minkowski, cosine)")
    p = float(params.pop("p", 2.0))
    if params.get("w", 0) is None:
        params.pop("w")
    require(not params, model, f"metric_params {sorted(params)} are not supported (only p)")
    outputs_2d = getattr(model, "outputs_2d_", False)
    if classifier and model.weights == "uniform" and not outputs_2d and model.metric == "minkowski" and \
            model._fit_method == "brute" and model.p != 2:
        metric, p = "minkowski", float(model.p)  # predict_proba's _adjusted_metric: p from the constructor
        if p == 1:
            metric = "manhattan"
        elif p == np.inf:
            metric = "chebyshev"
    if metric == "minkowski" and p == 2:
        metric = "euclidean"
    metric = {"cityblock": "manhattan", "l1": "manhattan", "l2": "euclidean", "infinity": "chebyshev"}.get(metric,
                                                                                                         metric)
    require(metric != "minkowski" or (np.isfinite(p) and p >= 1), model, f"minkowski p must be finite and >= 1, "
            f"got {p}")
    return metric, p


def kneighbors(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    _width(model, x)
    classifier = type(model).__name__ == "KNeighborsClassifier"
    require(model.weights in ("uniform", "distance"), model,
            f"weights={model.weights!r} is not supported (uniform, distance)")
    fit_x = model._fit_X
    require(isinstance(fit_x, np.ndarray), model, "it was fitted on a sparse matrix")
    metric, p = _metric(model, classifier)
    b.refuse(x, ["nan", "inf"], model)
    y = np.asarray(model._y)
    if classifier:
        require(not model.outputs_2d_, model, "multi-output classifiers are not supported")
        target = np.eye(len(model.classes_))[y.astype(np.int64)]
    else:
        target = y.astype(np.float64)
    op = KNeighbors(train=fit_x, target=target, n_neighbors=model.n_neighbors, metric=metric, p=p,
                    weights=model.weights, fit_dtype=_fit_dtype(fit_x),
                    euclidean_gemm=model._fit_method == "brute")
    out = b.add(op, [x], [Col() for _ in range(op.output_type().width)])
    # kneighbors computes with the effective metric, which predict_proba's adjusted one may not be
    own = ("kneighbors",) if _metric(model, False) == (metric, p) else ()
    if classifier:
        head = classifier_head(model, ("predict", "predict_proba"), "argmax")
        return out, replace(head, methods=head.methods + own, fit_rows=op.n_train)
    return out, Head("regressor", ("predict",) + own, squeeze=y.ndim == 1, fit_rows=op.n_train)


def _cluster_head(k: int, methods: tuple[str, ...], views: tuple) -> Head:
    return Head("cluster", methods, classes=np.arange(k), squeeze=False, views=views)


def kmeans(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    _width(model, x)
    b.refuse(x, ["nan", "inf"], model)
    centers = np.asarray(model.cluster_centers_)
    k = centers.shape[0]
    op = Centroids(centers, score="kmeans", with_transform=True, fit_dtype=_fit_dtype(centers))
    out = b.add(op, [x], [Col() for _ in range(2 * k)])
    return out, _cluster_head(k, ("predict", "transform"), (("transform", 0, k), ("predict", k, 2 * k)))


def mean_shift(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    _width(model, x)
    b.refuse(x, ["nan", "inf"], model)
    centers = np.asarray(model.cluster_centers_)
    k = centers.shape[0]
    op = Centroids(centers, score="euclidean", with_transform=False, fit_dtype=_fit_dtype(centers))
    out = b.add(op, [x], [Col() for _ in range(k)])
    return out, _cluster_head(k, ("predict",), (("predict", 0, k),))


STEPS: dict = {  # class name -> converter(model, b, x) -> (Value, Head)
    "KNeighborsClassifier": kneighbors,
    "KNeighborsRegressor": kneighbors,
    "KMeans": kmeans,
    "MiniBatchKMeans": kmeans,
    "MeanShift": mean_shift,
}
