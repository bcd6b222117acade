"""Frontends: trained model (object or file) -> :class:`~strategies.model.ConvertedModel`.

Each library has one module (``sklearn``, ``xgboost``, ``lightgbm``, ``onnx``) with a
``CONVERTERS`` table from class name to converter function; the table is looked
up along the model class's MRO, and a library's module is imported only when a
model of that library arrives.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from ..ground.errors import SUPPORTED_MODELS_DOC, UnsupportedModelError
from ..model import ConvertedModel

logger = logging.getLogger(__name__)

_LIBRARIES = {"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm", "onnx": "onnx"}

MODEL_SUFFIXES = {
    ".json": "xgboost",
    ".ubj": "xgboost",
    ".txt": "lightgbm",
    ".joblib": "pickle",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".onnx": "onnx",
}
SUPPORTED_FILES = "XGBoost .json/.ubj, LightGBM .txt, scikit-learn .joblib/.pkl/.pickle, ONNX-ML .onnx"


class InvalidModelFileError(UnsupportedModelError, ValueError):
    """A model file its library cannot read: damaged, truncated, or not the format its extension names.

    The message is one line: ``FILE is not a valid <format>: <reason>``.
    """


@contextlib.contextmanager
def quiet_warnings(source: str) -> Iterator[None]:
    """Warnings raised inside the block (by the libraries parsing a model file) go to this module's
    log at DEBUG instead of the user's terminal.  Scoped: the warning filters are restored on exit."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                logger.debug("%s: %s: %s", source, w.category.__name__, w.message)


def short_reason(message: object, limit: int = 200) -> str:
    """The first line of a library's error message, without a native ``[hh:mm:ss] file.cc:123:`` prefix,
    control characters or a stack trace; at most ``limit`` characters."""
    text = str(message).strip()
    line = text.splitlines()[0] if text else ""
    line = re.sub(r"^\[[0-9:]+\]\s+\S+:\d+:\s*", "", line)
    line = "".join(c if c.isprintable() else "?" for c in line).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


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
    """Load a native model from a file: XGBoost .json/.ubj, LightGBM .txt, scikit-learn .joblib/.pkl, ONNX .onnx.

    A file its library cannot read raises :class:`InvalidModelFileError` (one line, naming the file);
    warnings the libraries raise while reading it are logged at DEBUG.
    Unpickling runs code: only load .joblib/.pkl files you trust.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model file {str(p)!r} does not exist")
    kind = MODEL_SUFFIXES.get(p.suffix.lower())
    if kind is None:
        raise UnsupportedModelError(
            f"cannot tell the model format of {p.name!r}: expected one of "
            f"{', '.join(sorted(MODEL_SUFFIXES))} ({SUPPORTED_FILES})"
        )
    if p.is_dir():
        raise IsADirectoryError(f"model file {str(p)!r} is a directory")
    with quiet_warnings(str(p)):
        if kind == "pickle":
            return _load_pickle(p)
        return importlib.import_module(f"{__name__}.{kind}").load_file(p)


def _load_pickle(p: Path) -> Any:
    import joblib

    try:
        return joblib.load(p)
    except OSError:
        raise
    except (ImportError, AttributeError) as exc:  # a class the pickle names is not importable here
        raise InvalidModelFileError(
            f"{p} cannot be unpickled here: {short_reason(exc)} (it refers to code this environment does not have)"
        ) from exc
    except Exception as exc:  # unpickling damaged bytes fails in many ways
        reason = short_reason(exc) or type(exc).__name__
        raise InvalidModelFileError(
            f"{p} is not a valid scikit-learn joblib/pickle file: unpickling failed ({reason})"
        ) from exc
