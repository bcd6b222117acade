"""Treelite + TL2cgen: the model imported by Treelite, compiled to C by TL2cgen and gcc, run with ``nthread``.

Compiled libraries are cached under ``<models cache>/treelite/`` (compiling a
large forest takes minutes); the first run's build time says whether it compiled.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from .base import Context, Fn, NotApplicable, System


def import_model(model: Any) -> Any:
    """The Treelite model of a native XGBoost / LightGBM / scikit-learn model."""
    import treelite

    mod, name = type(model).__module__.split(".")[0], type(model).__name__
    if mod == "xgboost":
        return treelite.frontend.from_xgboost(model if name == "Booster" else model.get_booster())
    if mod == "lightgbm":
        return treelite.frontend.from_lightgbm(model if name == "Booster" else model.booster_)
    if mod == "sklearn":
        if hasattr(model, "steps"):
            raise NotApplicable("unsupported", "Treelite compiles tree ensembles, not pipelines or linear models")
        try:
            return treelite.sklearn.import_model(model)
        except Exception as exc:  # noqa: BLE001 - Treelite's own words on what it does not support
            raise NotApplicable("unsupported", f"Treelite: {str(exc).splitlines()[0][:150]}") from exc
    raise NotApplicable("unsupported", f"Treelite has no importer for {type(model).__name__}")


def library_path(model_file: Path, cache_dir: Path) -> Path:
    import tl2cgen
    import treelite

    st = model_file.stat()
    key = hashlib.sha256(f"{model_file.name}|{st.st_size}|{treelite.__version__}|{tl2cgen.__version__}".encode())
    return Path(cache_dir) / "treelite" / f"{model_file.stem}-{key.hexdigest()[:10]}.so"


class Treelite(System):
    name = "treelite"
    label = "Treelite/TL2cgen"
    requires = ("tl2cgen", "treelite")
    imports = ("xgboost",)

    def prepare(self, model_name: str, ctx: Context) -> tuple[Fn, str]:
        import tl2cgen

        from .. import models

        if models.SPECS[model_name].frame:
            raise NotApplicable("unsupported", "Treelite imports tree ensembles over float arrays: it has no "
                                "importer for a pipeline over a DataFrame with string columns (ColumnTransformer, "
                                "OneHotEncoder)")
        lib = library_path(models.model_path(model_name, ctx.cache_dir), ctx.cache_dir)
        note = "cached library"
        if not lib.exists():
            model = models.load_native(model_name, ctx.cache_dir)
            tm = import_model(model)
            lib.parent.mkdir(parents=True, exist_ok=True)
            tmp = lib.with_name(lib.stem + ".tmp.so")
            tl2cgen.export_lib(tm, toolchain="gcc", libpath=str(tmp), params={"parallel_comp": 4 * ctx.threads},
                               nthread=ctx.threads)
            tmp.replace(lib)
            note = "compiled with gcc in this run"
        pred = tl2cgen.Predictor(str(lib), nthread=ctx.threads)
        dtype = pred.threshold_type
        np_dtype = np.float32 if dtype == "float32" else np.float64

        def run(X: np.ndarray) -> np.ndarray:
            out = pred.predict(tl2cgen.DMatrix(X if X.dtype == np_dtype else X.astype(np_dtype), dtype=dtype))
            return out.reshape(X.shape[0], -1)

        return run, f"{note}; {dtype} thresholds"

    def notes(self) -> str:
        if self.available():
            return ""
        import tl2cgen
        import treelite
        return (f"Treelite {treelite.__version__} import + TL2cgen {tl2cgen.__version__} export_lib (gcc), "
                "Predictor(nthread = threads); compiled libraries cached, so build time excludes gcc on reruns")
