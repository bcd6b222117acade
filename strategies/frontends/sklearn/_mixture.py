"""GaussianMixture and BayesianGaussianMixture (every ``covariance_type``): one ``gaussian_mixture`` op.

The per-component constants are computed here with scikit-learn's own helpers
(``_compute_log_det_cholesky``, ``_estimate_log_weights``) and, for the Bayesian mixture, the
degrees-of-freedom terms of its ``_estimate_log_prob``.  ``predict`` / ``predict_proba`` /
``score_samples`` are read off the op's output (see :mod:`strategies.ir.mixture`).  scikit-learn computes
float32 input in float32; the op computes in float64 (within the score tolerance).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import digamma

from ...head import Head
from ...ir.mixture import GaussianMixture
from ._common import require
from ._graph import Builder, Col, Value


def gaussian_mixture(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    from sklearn.mixture._gaussian_mixture import _compute_log_det_cholesky

    n = int(model.n_features_in_)
    require(x.width == n, model, f"it reads {n} features, its input has {x.width}")
    ct = model.covariance_type
    require(ct in ("full", "tied", "diag", "spherical"), model, f"covariance_type={ct!r} is not known")
    b.refuse(x, ["nan", "inf"], model)
    chol = np.asarray(model.precisions_cholesky_, dtype=np.float64)
    means = np.asarray(model.means_, dtype=np.float64)
    k = means.shape[0]
    log_det = np.broadcast_to(np.asarray(_compute_log_det_cholesky(chol, ct, n), dtype=np.float64), (k,))
    bias = np.asarray(model._estimate_log_weights(), dtype=np.float64)
    if type(model).__name__ == "BayesianGaussianMixture":
        dof = np.asarray(model.degrees_of_freedom_, dtype=np.float64)
        log_lambda = n * np.log(2.0) + np.sum(digamma(0.5 * (dof - np.arange(0, n)[:, np.newaxis])), 0)
        bias = (-0.5 * n * np.log(dof) + 0.5 * (log_lambda - n / model.mean_precision_)) + bias
    op = GaussianMixture(ct, means, chol, log_det, np.broadcast_to(bias, (k,)))
    out = b.add(op, [x], [Col() for _ in range(2 * k + 1)])
    views = (("predict", 0, k), ("score_samples", k, k + 1), ("predict_proba", k + 1, 2 * k + 1))
    return out, Head("cluster", ("predict", "predict_proba", "score_samples"), classes=np.arange(k), squeeze=False,
                     views=views)


STEPS: dict = {  # class name -> converter(model, b, x) -> (Value, Head)
    "GaussianMixture": gaussian_mixture,
    "BayesianGaussianMixture": gaussian_mixture,
}
