"""oneDAL (scikit-learn-intelex's ``daal4py``): gradient-boosted models rebuilt by ``daal4py.mb.convert_model``.

Converts XGBoost (Booster or scikit-learn wrapper) and LightGBM models; threads are set once per worker with
``daal4py.daalinit(threads)``.  Classifiers are served by ``predict_proba`` (aligned to the native layout by
``base.align``), regressors by ``predict``.  oneDAL's model builders do not support categorical splits, and it has no
builder for scikit-learn forests or pipelines: those say "unsupported".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Context, Fn, NotApplicable, System


def convert(model: Any) -> Any:
    """The oneDAL model of a native XGBoost / LightGBM model (NotApplicable for anything else)."""
    import daal4py as d4p

    mod, name = type(model).__module__.split(".")[0], type(model).__name__
    if mod not in ("xgboost", "lightgbm"):
        raise NotApplicable("unsupported", f"oneDAL's model builders convert XGBoost, LightGBM and CatBoost "
                                           f"boosters, not {name}")
    source = model
    if mod == "xgboost" and name != "Booster":
        source = model.get_booster()
    elif mod == "lightgbm" and name != "Booster":
        source = model.booster_
    try:
        return d4p.mb.convert_model(source)
    except Exception as exc:  # noqa: BLE001 - daal4py's own words on what it cannot convert (categorical splits, ...)
        raise NotApplicable("unsupported", f"daal4py.mb.convert_model: {str(exc).splitlines()[0][:150]}") from exc


class OneDAL(System):
    name = "onedal"
    label = "oneDAL"
    requires = ("daal4py",)
    imports = ("xgboost", "lightgbm")

    def prepare(self, model_name: str, ctx: Context) -> tuple[Fn, str]:
        import warnings

        import daal4py as d4p

        from .. import models

        if models.SPECS[model_name].frame:
            raise NotApplicable("unsupported", "oneDAL's model builders convert boosters over float arrays, not a "
                                               "pipeline over a DataFrame")
        model = models.load_native(model_name, ctx.cache_dir)
        d4p.daalinit(ctx.threads)
        with warnings.catch_warnings():  # "overflow encountered in cast" on LightGBM's infinite thresholds
            warnings.simplefilter("ignore", RuntimeWarning)
            dm = convert(model)
        proba = bool(getattr(dm, "is_classifier_", False))
        predict = dm.predict_proba if proba else dm.predict

        def run(X: np.ndarray) -> np.ndarray:
            return np.asarray(predict(X if X.dtype == np.float32 else X.astype(np.float32))).reshape(X.shape[0], -1)

        return run, (f"daal4py.mb.convert_model of the {'LightGBM' if dm.model_type == 'lightgbm' else 'XGBoost'} "
                     f"booster, {'predict_proba' if proba else 'predict'} on float32")

    def notes(self) -> str:
        if self.available():
            return ""
        from importlib.metadata import version as dist_version

        version = dist_version("scikit-learn-intelex")
        return (f"oneDAL via scikit-learn-intelex {version} (daal4py): daal4py.mb.convert_model (XGBoost, LightGBM), "
                "daalinit(threads), predict_proba/predict on float32; no categorical splits, no scikit-learn forests")
