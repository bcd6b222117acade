"""The Predictor: a compiled model with the original model's methods."""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from strategies.compile import CompiledTask
from strategies.inputs import as_2d_float
from strategies.model import ConvertedModel

from .plan import Plan

log = logging.getLogger(__name__)


class _Method:
    """Descriptor: the method exists on a predictor only when the original model has it."""

    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc

    def __get__(self, obj: "Predictor | None", owner: type) -> Any:
        if obj is None:
            return self
        if self.name not in obj.model.head.methods:
            raise AttributeError(f"{obj.model.source} has no method {self.name!r}; it has {', '.join(obj.model.head.methods)}")
        bound = functools.partial(obj._call, self.name)
        obj.__dict__[self.name] = bound  # cache: later lookups skip the descriptor
        return bound


class _KNeighbors(_Method):
    """``kneighbors(X, n_neighbors=None, return_distance=True)`` (``tuner.neighbors``), present only when the
    original model has it."""

    def __get__(self, obj: "Predictor | None", owner: type) -> Any:
        if obj is None or self.name not in obj.model.head.methods:
            return super().__get__(obj, owner)  # the descriptor, or the AttributeError naming the methods
        from .neighbors import kneighbors

        bound = functools.partial(kneighbors, obj)
        obj.__dict__[self.name] = bound
        return bound


class Predictor:
    """Runs a converted model through compiled programs; same methods and outputs as the original.

    ``plans`` holds one or more plans; a call uses the plan tuned for the batch
    size nearest (in log scale) to its number of rows.  Inputs: NumPy arrays
    (float32/float64/int), pandas DataFrames, torch tensors.  Large inputs run in
    chunks of each task's ``batch_size``.
    """

    predict = _Method("predict", "Predict labels or values, like the original model's ``predict``.")
    predict_proba = _Method("predict_proba", "Class probabilities, like the original's ``predict_proba``.")
    decision_function = _Method("decision_function", "Raw scores, like the original's ``decision_function``.")
    transform = _Method("transform", "Transformed features, like the original's ``transform``.")
    score_samples = _Method("score_samples", "Anomaly scores, like the original's ``score_samples``.")
    kneighbors = _KNeighbors("kneighbors", "Nearest training rows ``(distances, indices)``, like the original's "
                             "``kneighbors``.")

    def __init__(self, model: ConvertedModel, plans: Sequence[Plan], *, tuned: bool = False, origin: str = "compile"):
        if not plans:
            raise ValueError("a predictor needs at least one plan")
        self.model = model
        self.plans = sorted(plans, key=lambda p: p.tuned_batch or 0)
        self._exact = [p for p in self.plans if not p.float32_input]
        if not self._exact:
            raise ValueError("a predictor needs a plan exact for every input, not only plans for float32 inputs")
        self.tuned = tuned
        self.origin = origin
        self._fast: dict[str, Any] = {}
        self._fast32: dict[str, Any] = {}

    # ---- sklearn-like surface
    @property
    def classes_(self) -> np.ndarray:
        if self.model.head.classes is None:
            raise AttributeError(f"{self.model.source} has no classes_")
        return self.model.head.classes

    @property
    def n_features_in_(self) -> int:
        return self.model.input.n_features

    @property
    def methods(self) -> tuple[str, ...]:
        return self.model.head.methods

    def __repr__(self) -> str:
        cfgs = "; ".join(
            f"batch {p.tuned_batch or 'any'}{' (float32 inputs)' if p.float32_input else ''}: " + " + ".join(f"{c['strategy']}@{c['backend']}" for c in p.configs())
            for p in self.plans
        )
        return f"<Predictor {self.model.source} ({'tuned' if self.tuned else 'untuned'}) {cfgs}>"

    # ---- running
    def plan_for(self, n: int, float32: bool = False) -> Plan:
        """The plan for a call of ``n`` rows: tuned for the nearest batch size (log scale); with ``float32``
        (the rows are float32 values), plans exact for those only count too, and win a tie."""
        plans = self.plans if float32 else self._exact
        if len(plans) == 1 or n <= 0:
            return plans[0]
        return min(plans, key=lambda p: (abs(math.log(max(n, 1)) - math.log(p.tuned_batch or n)), not p.float32_input))

    def _call(self, method: str, X: Any) -> np.ndarray:
        if type(X) is np.ndarray:
            dt = X.dtype
            if dt is _F32 or dt is _F64:
                cache = self._fast32 if dt is _F32 else self._fast
                fast = cache.get(method)
                if fast is None:
                    fast = cache[method] = self._fast_path(method, dt is _F32)
                if fast is not False:
                    y = fast(X)
                    if y is not None:
                        return y
        float32 = _is_float32(X)
        X = as_2d_float(X, self.model.input, what=self.model.source)
        source = self.model.head.source(method)
        return self.model.head.finish(method, self.run(X, source, float32=float32))

    def _fast_path(self, method: str, float32: bool = False) -> Any:
        """For arrays of one dtype (float32 with ``float32``, else float64): a function that runs a small
        call (up to ``FAST_ROWS`` rows) as the one program of the plan for its row count (cast to the
        program's dtype, as the validated path would) and finishes its value, or returns None when the
        array needs the validated path (another width, a plan of several tasks or an unfused
        post-transform, more rows than the plan's batch size, not C-contiguous, NaN / inf the model
        refuses); False when the model's input is not one plain array."""
        spec, head = self.model.input, self.model.head
        if spec.ndim != 2 or spec.columns is not None:
            return False
        source = head.source(method)
        width = spec.n_features
        finish = head.finisher(method)
        any_float = spec.allow_nan and spec.allow_inf
        wanted = _F32 if float32 else _F64
        programs: dict[int, Any] = {}  # rows -> the program call for them, or None

        def program_for(n: int) -> Any:
            plan = self.plan_for(n, float32)
            if len(plan.tasks) != 1:
                return None
            task = plan.tasks[0]
            chunk = int(task.config.get("batch_size") or 0)  # as run_chunked reads it (0: no chunks)
            if task.program_key(source) != source or (chunk and n > chunk):
                return None  # an unfused post-transform runs after the program; larger calls are chunked
            program = task.program(source)
            if getattr(program, "n_features", width) != width:
                return None
            dtype = np.dtype(program.input_dtype)
            if dtype == wanted:
                return program
            return lambda X: program(X.astype(dtype))  # what the validated path's conversion does too

        def run(X: np.ndarray) -> Any:
            shape = X.shape
            if len(shape) != 2 or shape[1] != width or not 0 < shape[0] <= FAST_ROWS or not X.flags.c_contiguous:
                return None
            n = shape[0]
            program = programs.get(n, _UNSET)
            if program is _UNSET:
                program = programs[n] = program_for(n)
            if program is None or not (any_float or _all_finite(X)):
                return None
            return finish(program(X))

        return run

    def run(self, X: np.ndarray, output: str = "out", *, float32: bool = False) -> np.ndarray:
        """The graph's ``out`` (or ``raw``) value for a validated 2-D float array; ``float32``: every value of
        ``X`` is a float32 value (then plans exact for those only may run it)."""
        n = X.shape[0]
        if n == 0:
            return np.zeros((0, self.model.graph.n_outputs), dtype=np.float64)
        return self.plan_for(n, float32).run(X, output)

    def warm_up(self) -> "Predictor":
        """Build every program the model's methods need (compilation happens lazily otherwise)."""
        for plan in self.plans:
            for i, task in enumerate(plan.tasks):
                outs = {self.model.head.source(m) for m in self.methods} if i == len(plan.tasks) - 1 else {"out"}
                for out in outs:
                    task.program(out)
        return self

    def save(self, path: str) -> str:
        """Write a self-contained artifact file (see ``tuner.artifact``); returns its SHA-256."""
        from .artifact import write_model_artifact

        self.warm_up()
        return write_model_artifact(path, self.model, self.plans, tuned=self.tuned)

    def to_onnx(self, path: str | Path | None = None, method: str | Sequence[str] | None = None, *,
                batch_size: int | None = None, fallback: str = "error") -> Any:
        """Write the compiled program as an ONNX model that ONNX Runtime runs; returns the ``onnx.ModelProto``.

        Input ``X``: one float tensor ``(n, n_features)`` with a dynamic ``n``, float32 or float64 as the
        program computes (the model's ``metadata_props["input_dtype"]`` says which).  Outputs: ``method``'s
        result (``label`` for ``predict`` of classifiers, clusterers and outlier detectors, ``predictions``
        for other ``predict``, ``probabilities``, ``scores`` for ``decision_function``, ``transform``,
        ``score_samples``); several methods for a list; ``method=None``: a classifier's ``label`` and
        ``probabilities``, else its first method.  The plan is the one tuned for the batch size nearest
        ``batch_size`` (default: the largest).  Plans on torch-family backends (torch, torchscript, inductor,
        tvm, onnxruntime) export; a tvm-tir plan raises ``UnsupportedModelError`` unless
        ``fallback="default"`` (then the untuned torch default is exported).
        Models reading string columns are refused.  The graph does not refuse inputs as the Predictor does
        (NaN / inf or categories the original model refuses): the doc_string says when that matters.
        """
        from .onnx_export import export_onnx

        return export_onnx(self, path, method=method, batch_size=batch_size, fallback=fallback)

    @classmethod
    def from_artifact(cls, data: bytes, *, expected_sha256: str | None = None, what: str = "artifact") -> "Predictor":
        """The predictor in model-artifact bytes (every payload's SHA-256 checked before any code loads)."""
        from .artifact import read_model_artifact

        model, plans, tuned = read_model_artifact(data, expected_sha256=expected_sha256, what=what)
        return cls(model, plans, tuned=tuned, origin="artifact")


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_UNSET = object()
FAST_ROWS = 4096  # calls of at most this many rows of a plain array take the fast path (one program per size)


def _is_float32(X: Any) -> bool:
    """Whether ``X`` holds float32 values only: a float32 array or tensor (not a frame: its columns convert
    one by one)."""
    return str(getattr(X, "dtype", "")) in ("float32", "torch.float32")


def _all_finite(x: np.ndarray) -> bool:
    """No NaN or inf in ``x`` (small arrays: an exact sum of the values is finite, the cheapest check)."""
    if x.size <= 256:
        try:
            return math.isfinite(math.fsum(x.ravel().tolist()))
        except (OverflowError, ValueError):  # finite values past the float range, or inf - inf
            return False
    with np.errstate(over="ignore", invalid="ignore"):  # a finite sum says "no NaN, no inf"; else look closer
        if np.isfinite(np.sum(x, dtype=np.float64)):
            return True
    return bool(np.isfinite(x).all())



