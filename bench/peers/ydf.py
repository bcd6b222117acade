"""ydf (Yggdrasil Decision Forests): scikit-learn tree models converted by ``ydf.from_sklearn``.

``ydf.from_sklearn`` converts scikit-learn decision trees, RandomForest and ExtraTrees (classifiers and regressors),
GradientBoostingRegressor and IsolationForest; anything else (GradientBoostingClassifier, HistGradientBoosting,
pipelines, XGBoost, LightGBM) says "unsupported".  ``predict({"features": X}, num_threads=threads)`` returns the
probability of class 1 for a binary classifier (aligned to ``predict_proba``'s ``[1-p, p]`` by ``base.align``),
``(n, classes)`` probabilities otherwise, or the regression value.

The conversion rebuilds a forest classifier as a ydf RandomForest with ``winner_take_all`` (ydf's default): each tree
votes for its leaf's most probable class, where scikit-learn averages the leaves' class probabilities.  Its
probabilities therefore differ from the native model's; the runner's per-cell check marks those cells ✗ and the report
never counts them as the best correct peer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Context, Fn, NotApplicable, System

FEATURE = "features"  # the one multi-dimensional input column from_sklearn creates


def convert(model: Any) -> Any:
    """The ydf model of a scikit-learn tree model (NotApplicable for anything ``ydf.from_sklearn`` refuses)."""
    import ydf

    mod, name = type(model).__module__.split(".")[0], type(model).__name__
    if mod != "sklearn":
        raise NotApplicable("unsupported", f"ydf.from_sklearn converts scikit-learn tree models, not {mod} {name}")
    if hasattr(model, "steps"):
        final = type(model.steps[-1][1]).__name__
        raise NotApplicable("unsupported", f"ydf.from_sklearn converts single scikit-learn tree models, not a "
                                           f"Pipeline (ending in {final})")
    try:
        return ydf.from_sklearn(model, feature_name=FEATURE)
    except NotImplementedError as exc:  # ydf's own words: "Can't build a YDF model for <class ...>"
        raise NotApplicable("unsupported", f"ydf.from_sklearn: {str(exc).splitlines()[0][:150]}") from exc


def voting(ydf_model: Any) -> str:
    """How a converted classifier's trees vote, in words ('' for regressors and models without the notion)."""
    winner = getattr(ydf_model, "winner_takes_all", None)
    if winner is None or "CLASSIFICATION" not in str(ydf_model.task()):
        return ""
    return ("winner_takes_all: one vote per tree for its leaf's top class (scikit-learn averages leaf probabilities)"
            if winner() else "trees' leaf probabilities averaged, as scikit-learn does")


class Ydf(System):
    name = "ydf"
    label = "ydf"
    requires = ("ydf",)
    imports = ("sklearn.ensemble",)

    def prepare(self, model_name: str, ctx: Context) -> tuple[Fn, str]:
        from .. import models

        if models.SPECS[model_name].frame:
            raise NotApplicable("unsupported", "ydf.from_sklearn converts single scikit-learn tree models over float "
                                               "arrays, not a pipeline over a DataFrame")
        model = models.load_native(model_name, ctx.cache_dir)
        ym = convert(model)
        threads = ctx.threads

        def run(X: np.ndarray) -> np.ndarray:
            return np.asarray(ym.predict({FEATURE: X}, num_threads=threads)).reshape(X.shape[0], -1)

        how = voting(ym)
        return run, f"ydf.from_sklearn of {type(model).__name__}" + (f"; {how}" if how else "")

    def notes(self) -> str:
        if self.available():
            return ""
        from importlib.metadata import version as dist_version

        return (f"ydf {dist_version('ydf')}: ydf.from_sklearn(model) of scikit-learn RandomForest/ExtraTrees "
                "(classifiers and regressors) and GradientBoostingRegressor, predict({'features': X float32}, "
                "num_threads = threads); compared per cell with scikit-learn's predict_proba/predict: converted "
                "forest classifiers vote one class per tree (winner_takes_all), so their probabilities differ and "
                "are shown as ✗, never counted as the best correct peer")
