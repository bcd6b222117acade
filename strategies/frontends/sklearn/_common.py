"""Helpers every scikit-learn converter uses: names, errors, heads, and the step record."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ...ground.errors import SUPPORTED_MODELS_DOC, UnsupportedModelError
from ...head import Head
from ...ir import Op, PostTransform

logger = logging.getLogger("strategies.frontends.sklearn")

MAX_CATEGORY = 1 << 16

Flow = Literal["reject", "pass", "absorb"]


@dataclass(frozen=True)
class Step:
    """One converted estimator: its operators, its head (None for transformers) and input handling.

    ``nan`` / ``inf``: the step rejects such values (``reject``), accepts them and
    may pass them on (``pass``), or accepts them and never outputs them (``absorb``).
    """

    ops: tuple[Op, ...]
    head: Head | None
    nan: Flow
    inf: Flow


def name_of(model: Any) -> str:
    cls = type(model)
    public = []
    for part in cls.__module__.split("."):
        if part.startswith("_"):
            break
        public.append(part)
    return ".".join(public + [cls.__qualname__])


def unsupported(model: Any, reason: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"cannot convert {name_of(model)}: {reason} (see {SUPPORTED_MODELS_DOC}).")


def require(ok: bool, model: Any, reason: str) -> None:
    if not ok:
        raise unsupported(model, reason)


def nan_flow(model: Any) -> Flow:
    return "pass" if model.__sklearn_tags__().input_tags.allow_nan else "reject"


def post_from_link(model: Any) -> PostTransform:
    """The post-transform equal to ``model._loss.link.inverse``."""
    link = type(model._loss.link).__name__
    kinds = {
        "IdentityLink": PostTransform(),
        "LogLink": PostTransform("exp"),
        "LogitLink": PostTransform("sigmoid"),
        "HalfLogitLink": PostTransform("sigmoid", 2.0),
        "MultinomialLogit": PostTransform("softmax"),
    }
    if link not in kinds:
        raise unsupported(model, f"its loss {model.loss!r} has link {link}, which has no post-transform")
    return kinds[link]


def classifier_head(model: Any, methods: tuple[str, ...], label_rule: str) -> Head:
    classes = np.asarray(model.classes_)
    require(classes.ndim == 1 and classes.size >= 2, model, "it was fitted on fewer than two classes")
    return Head("classifier", methods, classes=classes, label_rule=label_rule)  # type: ignore[arg-type]


