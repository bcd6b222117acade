"""The native library's own prediction: XGBoost ``inplace_predict``, LightGBM, scikit-learn."""

from __future__ import annotations

from .base import Context, Fn, System


def library_of(model: object) -> str:
    mod = type(model).__module__.split(".")[0]
    return {"xgboost": "XGBoost", "lightgbm": "LightGBM", "sklearn": "scikit-learn"}.get(mod, mod)


class Native(System):
    name = "native"
    label = "native"

    def warm_imports(self) -> None:
        import lightgbm  # noqa: F401
        import sklearn.ensemble  # noqa: F401
        import xgboost  # noqa: F401

    def prepare(self, model_name: str, ctx: Context) -> tuple[Fn, str]:
        from tuner.native import native_function

        from .. import models

        model = models.load_native(model_name, ctx.cache_dir)
        how = "inplace_predict" if type(model).__name__ == "Booster" else ctx.method
        if models.SPECS[model_name].frame:  # a pipeline: its final estimator gets the threads (XGBoost's n_jobs)
            final = model.steps[-1][1]
            if "n_jobs" in final.get_params():
                final.set_params(n_jobs=ctx.threads)
            how = f"Pipeline.{ctx.method} on the DataFrame ({library_of(final)} {type(final).__name__})"
        return native_function(model, ctx.method, ctx.threads), f"{library_of(model)} {how}"

    def notes(self) -> str:
        import lightgbm
        import sklearn
        import xgboost

        return (f"the model's own library: XGBoost {xgboost.__version__} (Booster.inplace_predict / predict_proba), "
                f"LightGBM {lightgbm.__version__}, scikit-learn {sklearn.__version__}; n_jobs/nthread = threads")
