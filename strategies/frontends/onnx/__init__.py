"""ONNX-ML frontend: an ``onnx.ModelProto`` or ``.onnx`` file -> :class:`~strategies.model.ConvertedModel`.

The graph is walked in order; each node becomes IR ops by its converter (``_ops.CONVERTERS``, one per
operator type).  The graph's outputs decide the head: a classifier's ``label`` (and ``probabilities``,
through ``ZipMap``) become ``predict`` (and ``predict_proba``) with the classes of ``classlabels_*``; a
regressor's output ``predict``; anything else ``transform``.

Matching ONNX Runtime on the same file: tree splits compare in the input's precision (float32 for a float
tensor) as ONNX Runtime does, and a ``Scaler`` feeding trees is folded into their splits (exact float32
scaling); other arithmetic runs in float64 where ONNX Runtime uses float32 (scores agree within the
project's tolerance; a value ONNX Runtime rounds onto the other side of a later split could differ).
Refused, with the node named: operators outside ``_ops.CONVERTERS`` / ``_models.CONVERTERS`` (e.g.
``ArgMax``, ``Abs``), ``SVMClassifier`` with more than two classes and no probabilities, ``Normalizer`` MAX, EQ / NEQ / MEMBER splits, MIN / MAX aggregation,
PROBIT / SOFTMAX_ZERO, graphs with several inputs.  ``onnx`` is imported only here, when a model of it
arrives.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...ground.errors import UnsupportedModelError
from ...head import ColumnSpec, Head, InputSpec
from ...ir import INPUT, Graph, eliminate_dead
from ...model import ConvertedModel
from .. import InvalidModelFileError, short_reason
from ._graph import Builder, Val, attr_values
from ._models import CONVERTERS as MODEL_CONVERTERS
from ._ops import CONVERTERS as OP_CONVERTERS

logger = logging.getLogger(__name__)

_ML = "ai.onnx.ml"
_STRING, _FLOATS, _INTS = 8, {1, 10, 11, 16}, {2, 3, 4, 5, 6, 7, 9, 12, 13}


def load_file(path: Path) -> Any:
    """An ``onnx.ModelProto`` from a ``.onnx`` file; :class:`InvalidModelFileError` when ONNX cannot read it."""
    import onnx

    try:
        return onnx.load(str(path))
    except OSError:
        raise
    except Exception as exc:  # protobuf decode errors come in several types
        raise InvalidModelFileError(f"{path} is not a valid ONNX model: {short_reason(exc)}") from exc


def _input(graph: Any, initializers: set[str]) -> tuple[str, int, int, int]:
    """``(name, width, ndim, elem_type)`` of the graph's one real input."""
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UnsupportedModelError(
            f"ONNX model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); one input tensor "
            "(n_samples, n_features) is supported")
    i = inputs[0]
    t = i.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
    if len(dims) == 1:
        return i.name, 1, 1, t.elem_type
    if len(dims) != 2 or dims[1] <= 0:
        raise UnsupportedModelError(f"ONNX input {i.name!r} has shape {dims}; (n_samples, n_features) with a "
                                    "fixed n_features is supported")
    return i.name, dims[1], 2, t.elem_type


def convert_model(model: Any) -> ConvertedModel:
    """Convert an ``onnx.ModelProto`` (ai.onnx and ai.onnx.ml operators) into the IR."""
    from onnx import numpy_helper

    graph = model.graph
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    name, width, ndim, elem = _input(graph, set(consts))
    if elem == _STRING:
        dtype = "string"
    elif elem in _FLOATS or elem in _INTS:
        dtype = ("double" if elem == 11 else "float") if elem in _FLOATS else "int"
    else:
        raise UnsupportedModelError(f"ONNX input {name!r} has element type {elem}; numbers or strings are supported")
    b = Builder(width)
    values: dict[str, Any] = {name: Val(INPUT, width, dtype, columns=tuple(range(width)))}
    values.update(consts)
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            consts[node.output[0]] = values[node.output[0]] = _constant(node)
            continue
        key = (node.domain if node.domain != "ai.onnx" else "", node.op_type)
        fn: Callable | None = OP_CONVERTERS.get(key) or MODEL_CONVERTERS.get(key)
        if fn is None:
            raise UnsupportedModelError(
                f"ONNX node {node.name or '(unnamed)'!r}: operator {node.op_type!r} of domain "
                f"{node.domain or 'ai.onnx'!r} is not supported")
        args = [values.get(i) if i else None for i in node.input]
        missing = [i for i, a in zip(node.input, args) if i and a is None]
        if missing:
            raise UnsupportedModelError(f"ONNX node {node.name!r} reads {missing}, which no earlier node computes")
        outs = fn(b, node, attr_values(node), args)
        for o, v in zip(node.output, outs):
            if o:
                values[o] = v
    return _assemble(model, graph, b, values, ndim)


def _constant(node: Any) -> np.ndarray:
    from onnx import numpy_helper

    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name in ("value_float", "value_int"):
            return np.asarray(a.f if a.name == "value_float" else a.i)
        if a.name in ("value_floats", "value_ints"):
            return np.asarray(list(a.floats) or list(a.ints))
    raise UnsupportedModelError(f"ONNX Constant node {node.name!r}: only numeric constants are supported")


def _assemble(model: Any, graph: Any, b: Builder, values: dict[str, Any], ndim: int) -> ConvertedModel:
    outs = []
    for o in graph.output:
        v = values.get(o.name)
        if not isinstance(v, Val):
            raise UnsupportedModelError(f"ONNX output {o.name!r} is a constant or is not computed")
        outs.append(v)
    labels = [v for v in outs if v.label is not None]
    source = f"onnx.{model.producer_name or 'model'}"
    if labels:
        info = labels[0].label
        probs = [v for v in outs if v.label is None]
        if len(labels) > 1 or len(probs) > 1:
            raise UnsupportedModelError("ONNX model has several classifier outputs; one label (and one "
                                        "probabilities output) is supported")
        if probs and probs[0].node != info.scores.node:
            raise UnsupportedModelError("ONNX model's probabilities output does not come from its classifier")
        final = probs[0] if probs else info.scores
        if info.views:
            methods = tuple(m for m, _, _ in info.views)
            head = Head("classifier", methods, classes=info.classes, views=info.views)
        else:
            methods = ("predict", "predict_proba") if probs else ("predict",)
            head = Head("classifier", methods, classes=info.classes, label_rule=info.label_rule)
        if probs and probs[0].pt != info.scores.pt and info.label_rule != "argmax":
            raise UnsupportedModelError("ONNX model's probabilities are transformed after its classifier")
    elif len(outs) == 1:
        final = outs[0]
        if final.role == "regressor":
            head = Head("regressor", ("predict",))
        else:
            head = Head("transformer", ("transform",), squeeze=ndim == 1 and final.width == 1)
    else:
        raise UnsupportedModelError(f"ONNX model has {len(outs)} outputs and no classifier label; one output "
                                    "is supported")
    nodes, _ = b.finish(final)
    g = eliminate_dead(Graph(b.n_features, tuple(nodes)))
    spec = _input_spec(b, ndim)
    converted = ConvertedModel(g, head, spec, source)
    logger.debug("converted %s", converted.summary())
    return converted


def _input_spec(b: Builder, ndim: int) -> InputSpec:
    """Feature count, string vocabularies, refused values; kernel SVMs refuse NaN / +-inf (as scikit-learn)."""
    ok = not b.finite_only
    if not b.vocab and not b.known:
        return InputSpec(b.n_features, allow_nan=ok, allow_inf=ok, ndim=ndim)
    cols = []
    for j in range(b.n_features):
        known = b.known.get(j)
        kw: dict[str, Any] = {"known": np.asarray(sorted(known)), "known_by": b.known_by[j]} if known else {}
        kw.update(allow_nan=ok, allow_inf=ok)
        if j in b.vocab:
            cols.append(ColumnSpec("string", tuple(b.vocab[j]), **kw))
        else:
            cols.append(ColumnSpec(**kw))
    return InputSpec(b.n_features, columns=tuple(cols), ndim=ndim)


CONVERTERS: dict[str, Callable[[Any], ConvertedModel]] = {"ModelProto": convert_model}

__all__ = ["CONVERTERS", "convert_model", "load_file"]
