"""Frontends: trained model (object or file) -> :class:`~strategies.model.ConvertedModel`.

Each library has one module (``sklearn``, ``xgboost``, ``lightgbm``) with a
``CONVERTERS`` table from class name to converter function; the table is looked
up along the model class's MRO, and a library's module is imported only when a
model of that library arrives.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import SUPPORTED_MODELS_DOC, UnsupportedModelError
from ..model import ConvertedModel

_LIBRARIES = {"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm"}

MODEL_SUFFIXES = {
    ".json": "xgboost",
    ".ubj": "xgboost",
    ".txt": "lightgbm",
    ".joblib": "pickle",
    ".pkl": "pickle",
    ".pickle": "pickle",
}


def _converter_for(model: Any) -> Callable[[Any], ConvertedModel] | None:
    for cls in type(model).__mro__:
        lib = cls.__module__.split(".")[0]
        if lib not in _LIBRARIES:
            continue
        module = importlib.import_module(f"{__name__}.{_LIBRARIES[lib]}")
        fn = module.CONVERTERS.get(cls.__name__)
        if fn is not None:
            return fn
    return None


def convert(model: Any) -> ConvertedModel:
    """Convert a trained model object, or a model file path, into the IR."""
    if isinstance(model, ConvertedModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    fn = _converter_for(model)
    if fn is None:
        cls = type(model)
        raise UnsupportedModelError(
            f"cannot convert {cls.__module__}.{cls.__qualname__}: it is not a supported model type "
            f"(see {SUPPORTED_MODELS_DOC})."
        )
    return fn(model)


def load_model(path: str | os.PathLike) -> Any:
    """Load a native model from a file: XGBoost .json/.ubj, LightGBM .txt, scikit-learn .joblib/.pkl.

    Unpickling runs code: only load .joblib/.pkl files you trust.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model file {str(p)!r} does not exist")
    kind = MODEL_SUFFIXES.get(p.suffix.lower())
    if kind is None:
        raise UnsupportedModelError(
            f"cannot tell the model format of {p.name!r}: expected one of "
            f"{', '.join(sorted(MODEL_SUFFIXES))} (XGBoost .json/.ubj, LightGBM .txt, scikit-learn .joblib/.pkl)"
        )
    if kind == "xgboost":
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(str(p))
        return booster
    if kind == "lightgbm":
        import lightgbm

        return lightgbm.Booster(model_file=str(p))
    import joblib

    return joblib.load(p)
