"""How the original model's methods are read off a graph's ``raw`` / ``out`` values (and ``kneighbors``' own
output)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

from .ir import _arr, register_dataclass
from .ir.neighbors import NEIGHBORS_OUTPUT, parallel_on_y

METHODS: tuple[str, ...] = ("predict", "predict_proba", "decision_function", "transform", "score_samples",
                            "kneighbors")
TASKS: tuple[str, ...] = ("classifier", "regressor", "transformer", "outlier", "booster", "cluster")
LABEL_RULES: tuple[str, ...] = ("argmax", "raw_gt0", "raw_ge0", "out_gt_half", "indicator_gt_half")


@register_dataclass
@dataclass(frozen=True, eq=False)
class Head:
    """The output contract of a converted model.

    task         classifier | regressor | transformer | outlier | booster | cluster (``predict``: ``classes`` at
                 the first arg-max of its view; ``score_samples``: column 0; other methods: the view as it is)
    methods      the methods the original model has
    classes      ``classes_`` of a classifier (a single class: ``predict`` is it, ``predict_proba`` one column)
    label_rule   how a classifier picks its label: ``argmax`` of the probabilities,
                 ``raw_gt0`` / ``raw_ge0`` (binary: raw score > 0 / >= 0, else argmax of raw),
                 ``out_gt_half`` (binary: probability > 0.5, else argmax),
                 ``indicator_gt_half`` (multilabel: ``predict`` is the int64 indicator matrix ``out > 0.5``)
    squeeze      one-column outputs come back 1-D, as the native methods return them
    offset       outlier detectors: ``decision_function = score_samples - offset``
    predict_argmax  a booster whose ``predict`` returns the arg-max index (XGBoost multi:softmax)
    views        ``(method, start, stop)``: the method reads only those columns of the graph's value (methods
                 not listed read all of it); a head with views reads every method from ``out`` (but those in
                 ``raw_methods`` from ``raw``).  An outlier head with ``label_rule="raw_gt0"`` predicts 1 only
                 when the decision is > 0 (libsvm)
    raw_methods  with views: the methods whose columns the last op's ``raw`` value holds as ``out`` does (they
                 skip its ``out``-only stage, ``Op.raw_op``: libsvm's pairwise coupling)
    splits       ``(method, bounds)``: the method returns a list of arrays, its (viewed) columns cut at ``bounds``
                 (``[v[:, bounds[i]:bounds[i + 1]]``; scikit-learn's ``MultiOutputClassifier.predict_proba``)
    fit_rows     with ``kneighbors``: the rows the model was fitted on.  That method reads the graph's own
                 ``kneighbors`` output (``(n, 3k)``, ``strategies.ir.neighbors``) and returns a tuple
                 ``(distances, int64 indices)``, the indices in the order scikit-learn leaves tied neighbours
                 in for ``n`` query rows against ``fit_rows`` (``parallel_on_y``)
    """

    task: Literal["classifier", "regressor", "transformer", "outlier", "booster", "cluster"]
    methods: tuple[str, ...]
    classes: np.ndarray | None = None
    label_rule: Literal["argmax", "raw_gt0", "raw_ge0", "out_gt_half"] = "argmax"
    squeeze: bool = True
    offset: float = 0.0
    predict_argmax: bool = False
    views: tuple[tuple[str, int, int], ...] = field(default=(), metadata={"hash_default": True})
    splits: tuple[tuple[str, tuple[int, ...]], ...] = field(default=(), metadata={"hash_default": True})
    raw_methods: tuple[str, ...] = field(default=(), metadata={"hash_default": True})
    fit_rows: int = field(default=0, metadata={"hash_default": True})

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        object.__setattr__(self, "methods", tuple(self.methods))
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"unknown methods {bad}; expected a subset of {METHODS}")
        if self.label_rule not in LABEL_RULES:
            raise ValueError(f"label_rule must be one of {LABEL_RULES}, got {self.label_rule!r}")
        if self.classes is not None:
            classes = np.asarray(self.classes)
            if classes.dtype == object:
                classes = classes.astype(str)
            object.__setattr__(self, "classes", _arr(classes, classes.dtype, 1, "classes"))
        elif self.task == "classifier":
            raise ValueError("a classifier head needs classes")
        object.__setattr__(self, "offset", float(self.offset))
        views = tuple((str(m), int(a), int(b)) for m, a, b in self.views)
        bad = [v for v in views if v[0] not in self.methods or not 0 <= v[1] <= v[2]]
        if bad:
            raise ValueError(f"views {bad} name no method of {self.methods} or no column range")
        object.__setattr__(self, "views", views)
        splits = tuple((str(m), tuple(int(i) for i in bounds)) for m, bounds in self.splits)
        bad = [sp for sp in splits if sp[0] not in self.methods or len(sp[1]) < 2 or sp[1][0] != 0
               or any(a >= b for a, b in zip(sp[1], sp[1][1:]))]
        if bad:
            raise ValueError(f"splits {bad} name no method of {self.methods} or no increasing bounds from 0")
        object.__setattr__(self, "splits", splits)
        object.__setattr__(self, "raw_methods", tuple(str(m) for m in self.raw_methods))
        bad = [m for m in self.raw_methods if m not in self.methods]
        if bad:
            raise ValueError(f"raw_methods {bad} name no method of {self.methods}")
        object.__setattr__(self, "fit_rows", int(self.fit_rows))
        if "kneighbors" in self.methods and self.fit_rows < 1:
            raise ValueError(f"a head with kneighbors needs fit_rows (the rows fitted on), got {self.fit_rows}")

    def source(self, method: str) -> str:
        """Which graph value ``method`` is computed from: ``raw``, ``out`` or (``kneighbors``) ``kneighbors``."""
        self.check_method(method)
        if method == "kneighbors":
            return NEIGHBORS_OUTPUT
        if self.views:
            return "raw" if method in self.raw_methods else "out"
        if method == "decision_function" and self.task in ("classifier", "booster"):
            return "raw"
        if method == "predict" and self.task == "classifier" and self.label_rule in ("raw_gt0", "raw_ge0"):
            return "raw"
        return "out"

    def check_method(self, method: str) -> None:
        if method not in self.methods:
            raise AttributeError(
                f"this model has no method {method!r}; it has {', '.join(self.methods)}"
            )

    def finish(self, method: str, value: np.ndarray) -> np.ndarray | list[np.ndarray] | tuple[np.ndarray, np.ndarray]:
        """Turn the graph value (2-D) into what the native ``method`` returns (a list of arrays for splits, a tuple
        ``(distances, indices)`` for ``kneighbors``)."""
        self.check_method(method)
        if method == "kneighbors":  # [distances | indices after parallel_on_Y | indices after parallel_on_X]
            k = value.shape[1] // 3
            idx = value[:, k : 2 * k] if parallel_on_y(value.shape[0], self.fit_rows) else value[:, 2 * k :]
            return np.ascontiguousarray(value[:, :k], dtype=np.float64), idx.astype(np.int64)
        for m, start, stop in self.views:
            if m == method:
                value = value[:, start:stop]
        for m, bounds in self.splits:
            if m == method:
                return [value[:, a:b] for a, b in zip(bounds, bounds[1:])]
        if method == "transform" and self.task != "transformer":  # a predictor's transform: 2-D, as it is
            return value
        k = value.shape[1]
        one = value[:, 0] if k == 1 else value
        if self.task == "classifier":
            if method == "predict_proba":
                return np.concatenate((1 - value, value), axis=1) if k == 1 and self.classes.size == 2 else value
            if method == "decision_function":
                return one
            if self.label_rule == "indicator_gt_half":
                return (value > 0.5).astype(np.int64)
            return self.classes[self._label_index(value)]
        if self.task == "outlier":
            scores = value[:, 0]
            if method == "score_samples":
                return scores
            decision = scores - self.offset
            if method == "decision_function":
                return decision
            if self.label_rule == "raw_gt0":
                return np.where(decision > 0, 1, -1)
            return np.where(decision < 0, -1, 1)
        if self.task == "cluster":  # clusterers and mixtures: predict is the first arg-max of its view
            if method == "predict":
                return self.classes[np.argmax(value, axis=1)]
            return value[:, 0] if method == "score_samples" else value
        if self.task == "booster" and method == "predict" and self.predict_argmax:
            return np.argmax(value, axis=1).astype(value.dtype)
        return one if (self.squeeze and k == 1) else value

    def finisher(self, method: str) -> Callable[[np.ndarray], Any]:
        """``finish`` for ``method`` as one function (the calls of single rows take the shortest way)."""
        self.check_method(method)
        if self.task == "classifier" and method == "predict_proba" and not self.views and not self.splits \
                and self.classes is not None and self.classes.size == 2:
            def pair(value: np.ndarray) -> np.ndarray:
                if value.shape == (1, 1):  # 1 - p in float64 rounds once to p's dtype, as 1 - value does
                    p = float(value[0, 0])
                    return np.array([[1.0 - p, p]], dtype=value.dtype)
                return self.finish(method, value)
            return pair
        if self.task == "classifier" and method == "predict" and not self.views and not self.splits \
                and self.classes is not None and self.classes.size == 2 and self.label_rule != "indicator_gt_half":
            rule, classes = self.label_rule, self.classes

            def label(value: np.ndarray) -> np.ndarray:
                if value.shape != (1, 1):
                    return self.finish(method, value)
                v = float(value[0, 0])  # NaN fails every comparison: class 0, as the arrays' rules give
                if rule == "raw_gt0":
                    j = v > 0
                elif rule == "raw_ge0":
                    j = v >= 0
                elif rule == "out_gt_half":
                    j = v > 0.5
                else:  # the arg-max of [1 - v, v]: 1 - v is exact wherever the comparison is close (v near 1/2)
                    j = v > 1.0 - v
                return classes[int(j): int(j) + 1].copy()
            return label
        return functools.partial(self.finish, method)

    def _label_index(self, value: np.ndarray) -> np.ndarray:
        if self.classes.size == 1:  # fitted on one class (a forest): always that class
            return np.zeros(value.shape[0], dtype=np.intp)
        if value.shape[1] == 1:
            v = value[:, 0]
            if self.label_rule == "raw_gt0":
                return (v > 0).astype(np.intp)
            if self.label_rule == "raw_ge0":
                return (v >= 0).astype(np.intp)
            if self.label_rule == "out_gt_half":
                return (v > 0.5).astype(np.intp)
            with np.errstate(invalid="ignore"):  # arg-max of [1 - v, v]: the first of equal maxima, 0 for NaN
                return (v > 1 - v).astype(np.intp)
        return np.argmax(value, axis=1)


# The code the input boundary gives a string cell (or None) that is not in its column's vocabulary
# (NaN stays NaN).
UNKNOWN_CODE = -1.0
COLUMN_KINDS = ("number", "string")


@register_dataclass
@dataclass(frozen=True, eq=False)
class ColumnSpec:
    """What one input column holds and what the original model refuses in it.

    kind        ``number``, or ``string``: the boundary turns each cell into its index in
                ``vocabulary`` (strings, and None when an encoder knows None as a category: scikit-learn
                keeps None apart from NaN); NaN stays NaN, anything else becomes ``UNKNOWN_CODE``
    allow_nan / allow_inf   whether the original model accepts NaN / +-inf here
    known       when set, the only values (codes for strings; NaN for missing) the model accepts
                (an encoder with ``handle_unknown='error'``); ``known_by`` names it for the message
    refused     values the model refuses here (a MissingIndicator's missing value in a column that had
                none at fit); ``refused_by`` names it
    """

    kind: Literal["number", "string"] = "number"
    vocabulary: tuple[str | None, ...] = ()
    allow_nan: bool = True
    allow_inf: bool = True
    known: np.ndarray | None = None
    known_by: str = ""
    refused: np.ndarray | None = None
    refused_by: str = ""

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_KINDS:
            raise ValueError(f"column kind must be one of {COLUMN_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "vocabulary", tuple(v if v is None else str(v) for v in self.vocabulary))
        if self.known is not None:
            object.__setattr__(self, "known", _arr(np.unique(np.asarray(self.known, np.float64)), np.float64, 1))
        if self.refused is not None:
            object.__setattr__(self, "refused", _arr(np.unique(np.asarray(self.refused, np.float64)), np.float64, 1))

    def lookup_index(self) -> tuple[Any, np.ndarray]:
        """``(index, codes)`` built once: a ``pandas.Index`` of the vocabulary's strings followed by None and
        NaN, and the code of each entry followed by ``UNKNOWN_CODE`` (so that position -1, "not found",
        reads it).  pandas' hash table tells None, NaN and every string apart."""
        cached = self.__dict__.get("_index")
        if cached is None:
            import pandas as pd

            strings = [v for v in self.vocabulary if v is not None]
            codes = [i for i, v in enumerate(self.vocabulary) if v is not None]
            cached = (pd.Index(strings + [None, np.nan], dtype=object),
                      np.array(codes + [self.none_code, np.nan, UNKNOWN_CODE], dtype=np.float64))
            object.__setattr__(self, "_index", cached)
        return cached

    @property
    def none_code(self) -> float:
        """The code of None (``UNKNOWN_CODE`` when no encoder knows None)."""
        return float(self.vocabulary.index(None)) if None in self.vocabulary else UNKNOWN_CODE

    def decode(self, code: float) -> object:
        """The cell value a code stands for (for error messages)."""
        if np.isnan(code):
            return np.nan
        if self.kind == "string":
            if 0 <= code < len(self.vocabulary) and code == int(code):
                return self.vocabulary[int(code)]
            return "<unknown>"
        return float(code)


@register_dataclass
@dataclass(frozen=True, eq=False)
class InputSpec:
    """What the original model accepts: feature count, names, and what each column may hold.

    ``allow_nan`` / ``allow_inf`` hold for every column when ``columns`` is None;
    otherwise each :class:`ColumnSpec` says it for its column.  ``ndim = 1``: the
    model takes a 1-D array (a ``LabelEncoder``), seen as one column.
    """

    n_features: int
    allow_nan: bool = True
    allow_inf: bool = True
    feature_names: tuple[str, ...] | None = None
    columns: tuple[ColumnSpec, ...] | None = None
    ndim: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_features", int(self.n_features))
        if self.feature_names is not None:
            object.__setattr__(self, "feature_names", tuple(str(n) for n in self.feature_names))
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(self.columns))
            if len(self.columns) != self.n_features:
                raise ValueError(f"{len(self.columns)} column specs for {self.n_features} features")
            object.__setattr__(self, "allow_nan", all(c.allow_nan for c in self.columns))
            object.__setattr__(self, "allow_inf", all(c.allow_inf for c in self.columns))
        if self.ndim not in (1, 2):
            raise ValueError(f"ndim must be 1 or 2, got {self.ndim}")

    @property
    def has_strings(self) -> bool:
        return self.columns is not None and any(c.kind == "string" for c in self.columns)

    def column(self, j: int) -> ColumnSpec:
        if self.columns is None:
            return ColumnSpec(allow_nan=self.allow_nan, allow_inf=self.allow_inf)
        return self.columns[j]

    def column_name(self, j: int) -> str:
        return repr(self.feature_names[j]) if self.feature_names is not None else str(j)
