"""oneDAL (scikit-learn-intelex's ``daal4py``): gradient-boosted models rebuilt by ``daal4py.mb.convert_model``.

Converts XGBoost (Booster or scikit-learn wrapper) and LightGBM models; threads are set once per worker with
``daal4py.daalinit(threads)``.  Classifiers are served by ``predict_proba`` (aligned to the native layout by
``base.align``), regressors by ``predict``.  oneDAL's model builders do not support categorical splits, and it has no
builder for scikit-learn models: those say "unsupported".

A pipeline whose final step is an XGBoost or LightGBM model (``pipe_xgb``) is served as the pipeline's own
preprocessing (``pipeline[:-1].transform``, timed with the call, as the native pipeline's is) followed by oneDAL on
the booster.  oneDAL takes dense arrays, so a sparse transform output is densified the way the booster reads sparse
input: XGBoost treats an entry a CSR matrix does not store as missing (NaN), LightGBM as zero.
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


def dense(Z: Any, absent: float) -> np.ndarray:
    """A float32 array of a (sparse or dense) matrix; entries a sparse matrix does not store become ``absent``."""
    import scipy.sparse as sp

    if not sp.issparse(Z):
        return np.ascontiguousarray(Z, dtype=np.float32)
    csr = sp.csr_matrix(Z)
    out = np.full(csr.shape, absent, dtype=np.float32)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    out[rows, csr.indices] = csr.data
    return out


class OneDAL(System):
    name = "onedal"
    label = "oneDAL"
    requires = ("daal4py",)
    imports = ("xgboost", "lightgbm")

    def prepare(self, model_name: str, ctx: Context) -> tuple[Fn, str]:
        import warnings

        import daal4py as d4p

        from .. import models

        model = models.load_native(model_name, ctx.cache_dir)
        prep = None
        if models.SPECS[model_name].frame:
            prep, model = model[:-1], model.steps[-1][1]
            if type(model).__module__.split(".")[0] not in ("xgboost", "lightgbm"):
                raise NotApplicable("unsupported", f"oneDAL's model builders convert XGBoost, LightGBM and CatBoost "
                                                   f"boosters, not the pipeline's final {type(model).__name__}")
        d4p.daalinit(ctx.threads)
        with warnings.catch_warnings():  # "overflow encountered in cast" on LightGBM's infinite thresholds
            warnings.simplefilter("ignore", RuntimeWarning)
            dm = convert(model)
        proba = bool(getattr(dm, "is_classifier_", False))
        predict = dm.predict_proba if proba else dm.predict
        library = "LightGBM" if dm.model_type == "lightgbm" else "XGBoost"
        how = f"daal4py.mb.convert_model of the {library} booster, {'predict_proba' if proba else 'predict'} on float32"

        def run(X: np.ndarray) -> np.ndarray:
            return np.asarray(predict(X if X.dtype == np.float32 else X.astype(np.float32))).reshape(X.shape[0], -1)

        if prep is None:
            return run, how
        absent = 0.0 if library == "LightGBM" else np.nan

        def run_pipeline(frame: Any) -> np.ndarray:
            return run(dense(prep.transform(frame), absent))

        return run_pipeline, (f"the pipeline's {type(prep[-1]).__name__}.transform, then {how} (a sparse output "
                              f"densified with its unstored entries as {'0' if absent == 0 else 'NaN'}, as {library} "
                              "reads them)")

    def notes(self) -> str:
        if self.available():
            return ""
        from importlib.metadata import version as dist_version

        version = dist_version("scikit-learn-intelex")
        return (f"oneDAL via scikit-learn-intelex {version} (daal4py): daal4py.mb.convert_model (XGBoost, LightGBM), "
                "daalinit(threads), predict_proba/predict on float32 (pipe_xgb: after the pipeline's ColumnTransformer, "
                "its sparse output densified with NaN for XGBoost's missing entries); no categorical splits, "
                "no scikit-learn models")
