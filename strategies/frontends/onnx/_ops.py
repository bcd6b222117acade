"""One converter per ONNX operator type: node + its input values -> its output values (IR nodes appended)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from ...ground.errors import UnsupportedModelError
from ...ir import Imputer, Linear, Normalizer, PostTransform, Scaler
from ...ir.columns import Binarize, Concat, Gather, Lookup
from ._graph import Builder, Val, const_row

Arg = "Val | np.ndarray | None"
Converter = Callable[[Builder, Any, dict, list], list]

_FLOAT_TYPES = {1: "float", 10: "float", 11: "double", 16: "float"}
_INT_TYPES = {2, 3, 4, 5, 6, 7, 9, 12, 13}
_TRANSFORMS = {"NONE": "identity", "LOGISTIC": "sigmoid", "SOFTMAX": "softmax"}


def as_text(v: Any) -> str:
    """An attribute's bytes or str as str."""
    return v.decode() if isinstance(v, bytes) else str(v)


def what(node: Any) -> str:
    return f"ONNX node {node.name or '(unnamed)'!r} ({node.domain or 'ai.onnx'}.{node.op_type})"


def operand(node: Any, args: list, i: int = 0) -> Val:
    a = args[i] if i < len(args) else None
    if not isinstance(a, Val):
        raise UnsupportedModelError(f"{what(node)}: input {i} must be a computed value, not a constant")
    return a


def _const(node: Any, args: list, i: int) -> np.ndarray:
    a = args[i] if i < len(args) else None
    if not isinstance(a, np.ndarray):
        raise UnsupportedModelError(f"{what(node)}: input {i} must be a constant (an initializer)")
    return a


def numeric(node: Any, v: Val) -> Val:
    if v.label is not None:
        raise UnsupportedModelError(f"{what(node)}: computing on a classifier's label is not supported")
    if v.dtype == "string":
        raise UnsupportedModelError(f"{what(node)}: expects numbers, got a string tensor")
    return v


def post_transform(node: Any, attrs: dict, allowed: tuple[str, ...] = ("NONE", "LOGISTIC", "SOFTMAX")) -> PostTransform:
    name = as_text(attrs.get("post_transform", "NONE"))
    if name not in allowed:
        raise UnsupportedModelError(f"{what(node)}: post_transform {name!r} is not supported (supported: "
                                    f"{', '.join(allowed)})")
    return PostTransform(_TRANSFORMS[name])


def class_labels(node: Any, attrs: dict, prefix: str) -> np.ndarray:
    ints, strings = attrs.get(f"{prefix}_int64s") or attrs.get(f"{prefix}_ints"), attrs.get(f"{prefix}_strings")
    if strings:
        return np.asarray([as_text(s) for s in strings])
    if ints:
        return np.asarray(ints, dtype=np.int64)
    raise UnsupportedModelError(f"{what(node)}: no class labels")


# --------------------------------------------------------------------------- plumbing


def identity(b: Builder, node: Any, attrs: dict, args: list) -> list:
    return [operand(node, args)]


def cast(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v = operand(node, args)
    to = int(attrs["to"])
    if v.label is not None or v.role == "probabilities":
        return [v]
    if to in _FLOAT_TYPES:
        return [dataclasses.replace(numeric(node, v), dtype=_FLOAT_TYPES[to])]
    if to in _INT_TYPES and v.dtype == "int":
        return [v]
    raise UnsupportedModelError(f"{what(node)}: a cast from {v.dtype} to ONNX type {to} is not supported "
                                "(only casts to float, and integer-to-integer casts)")


def zipmap(b: Builder, node: Any, attrs: dict, args: list) -> list:
    return [dataclasses.replace(operand(node, args), role="probabilities")]


def reshape(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v, shape = operand(node, args), [int(s) for s in _const(node, args, 1).reshape(-1)]
    ok = (len(shape) == 2 and shape[0] in (-1, 0) and shape[1] in (-1, v.width)) or (shape == [-1] and v.width == 1)
    if not ok:
        raise UnsupportedModelError(f"{what(node)}: reshape to {shape} does not keep one row per sample")
    return [v]


def flatten(b: Builder, node: Any, attrs: dict, args: list) -> list:
    if int(attrs.get("axis", 1)) != 1:
        raise UnsupportedModelError(f"{what(node)}: only axis=1 is supported")
    return [operand(node, args)]


def _select(b: Builder, v: Val, columns: np.ndarray, node: Any) -> Val:
    columns = np.asarray(columns, dtype=np.int64).reshape(-1)
    columns = np.where(columns < 0, columns + v.width, columns)
    if columns.size and (columns.min() < 0 or columns.max() >= v.width):
        raise UnsupportedModelError(f"{what(node)}: column index out of range for {v.width} columns")
    src = tuple(v.columns[c] for c in columns) if v.columns is not None else None
    idx = b.add(Gather(v.width, columns), v)
    return Val(idx, int(columns.size), v.dtype, columns=src)


def gather(b: Builder, node: Any, attrs: dict, args: list) -> list:
    if int(attrs.get("axis", 0)) not in (1, -1):
        raise UnsupportedModelError(f"{what(node)}: only gathers of columns (axis=1) are supported")
    return [_select(b, operand(node, args), _const(node, args, 1), node)]


def array_feature_extractor(b: Builder, node: Any, attrs: dict, args: list) -> list:
    return [_select(b, operand(node, args), _const(node, args, 1), node)]


def concat(b: Builder, node: Any, attrs: dict, args: list) -> list:
    if int(attrs.get("axis", 1)) not in (1, -1):
        raise UnsupportedModelError(f"{what(node)}: only concatenation along columns (axis=1) is supported")
    vals = [operand(node, args, i) for i in range(len(args))]
    return [_join(b, vals)]


def _join(b: Builder, vals: list[Val]) -> Val:
    if len(vals) == 1:
        return vals[0]
    dtypes = {v.dtype for v in vals}
    cols = None
    if all(v.columns is not None for v in vals):
        cols = tuple(c for v in vals for c in v.columns)
    idx = b.add(Concat(tuple(v.width for v in vals)), *vals)
    return Val(idx, sum(v.width for v in vals), dtypes.pop() if len(dtypes) == 1 else "float", columns=cols)


def feature_vectorizer(b: Builder, node: Any, attrs: dict, args: list) -> list:
    vals = [numeric(node, operand(node, args, i)) for i in range(len(args))]
    dims = list(attrs.get("inputdimensions") or [v.width for v in vals])
    if dims != [v.width for v in vals]:
        raise UnsupportedModelError(f"{what(node)}: inputdimensions {dims} differ from the inputs' widths "
                                    f"{[v.width for v in vals]}")
    return [dataclasses.replace(_join(b, vals), dtype="float")]


# --------------------------------------------------------------------------- elementwise arithmetic


def _binary(kind: str) -> Converter:
    def convert(b: Builder, node: Any, attrs: dict, args: list) -> list:
        if isinstance(args[0], Val) and isinstance(args[1], np.ndarray):
            v, c, const_first = args[0], args[1], False
        elif isinstance(args[1], Val) and isinstance(args[0], np.ndarray):
            v, c, const_first = args[1], args[0], True
        else:
            raise UnsupportedModelError(f"{what(node)}: only arithmetic between a value and a constant is supported")
        v = numeric(node, v)
        c = const_row(c, v.width, what(node))
        zero, one = np.zeros(v.width), np.ones(v.width)
        if kind == "add":
            op = Scaler(-c, one, "sub_div")
        elif kind == "sub":
            op = Scaler(c - 0.0, -one, "mul_add") if const_first else Scaler(c, one, "sub_div")
        elif kind == "mul":
            op = Scaler(zero, c, "mul_add")
        elif const_first:
            raise UnsupportedModelError(f"{what(node)}: a constant divided by a value is not supported")
        else:
            op = Scaler(zero, c, "sub_div")
        return [Val(b.add(op, v), v.width, v.dtype)]

    return convert


def matmul(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v, w = numeric(node, operand(node, args)), _const(node, args, 1).astype(np.float64)
    if w.ndim != 2 or w.shape[0] != v.width:
        raise UnsupportedModelError(f"{what(node)}: a ({v.width} x K) weight matrix was expected, got {w.shape}")
    return [Val(b.add(Linear(w.T, np.zeros(w.shape[1])), v), int(w.shape[1]), v.dtype)]


def gemm(b: Builder, node: Any, attrs: dict, args: list) -> list:
    if int(attrs.get("transA", 0)):
        raise UnsupportedModelError(f"{what(node)}: transA=1 is not supported")
    v, w = numeric(node, operand(node, args)), _const(node, args, 1).astype(np.float64)
    coef = w if int(attrs.get("transB", 0)) else w.T
    if coef.ndim != 2 or coef.shape[1] != v.width:
        raise UnsupportedModelError(f"{what(node)}: weight of shape {w.shape} does not fit {v.width} columns")
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    bias = const_row(_const(node, args, 2), coef.shape[0], what(node)) * beta if len(args) > 2 and args[2] is not None \
        else np.zeros(coef.shape[0])
    return [Val(b.add(Linear(coef * alpha if alpha != 1.0 else coef, bias), v), int(coef.shape[0]), v.dtype)]


def _activation(kind: str) -> Converter:
    def convert(b: Builder, node: Any, attrs: dict, args: list) -> list:
        v = numeric(node, operand(node, args))
        if kind == "softmax" and int(attrs.get("axis", -1)) not in (1, -1):
            raise UnsupportedModelError(f"{what(node)}: only softmax over columns is supported")
        v = b.materialize(v)
        return [dataclasses.replace(v, pt=PostTransform(kind), columns=None)]

    return convert


# --------------------------------------------------------------------------- ai.onnx.ml preprocessing


def scaler(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v = numeric(node, operand(node, args))
    offset = const_row(np.asarray(attrs.get("offset", [0.0]), np.float32), v.width, what(node))
    scale = const_row(np.asarray(attrs.get("scale", [1.0]), np.float32), v.width, what(node))
    with np.errstate(divide="ignore"):
        op = Scaler(offset, 1.0 / scale, "sub_div")  # ONNX: (x - offset) * scale
    return [Val(b.add(op, v), v.width, scaled=(v, offset, scale))]


def normalizer(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v = numeric(node, operand(node, args))
    norm = as_text(attrs.get("norm", "MAX")).upper()
    if norm == "L1" and v.pt.kind == "softmax":
        return [v]  # softmax rows already sum to one
    if norm == "L1" and v.pt.kind == "sigmoid":
        return [dataclasses.replace(v, pt=PostTransform("ovr_normalize"))]
    if norm not in ("L1", "L2"):
        raise UnsupportedModelError(
            f"{what(node)}: norm {norm!r} is not supported (L1, L2 are; ONNX Runtime's MAX divides by the signed "
            "row maximum, which no tunebird operator computes)")
    out = dataclasses.replace(v, node=b.add(Normalizer(v.width, norm.lower()), v), pt=PostTransform(), columns=None,
                              label=None, dtype="float")
    return [out]


def imputer(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v = numeric(node, operand(node, args))
    fill = attrs.get("imputed_value_floats") or attrs.get("imputed_value_int64s")
    if not fill:
        raise UnsupportedModelError(f"{what(node)}: no imputed values")
    real = v.dtype in ("float", "double")
    fill = const_row(np.asarray(fill, np.float32 if real else np.float64), v.width, what(node))
    marker = attrs.get("replaced_value_float", 0.0) if real else attrs.get("replaced_value_int64", 0)
    op = Imputer(fill, np.arange(v.width), missing_value=float(np.float32(marker)))
    return [Val(b.add(op, v), v.width, v.dtype)]


def binarizer(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v = numeric(node, operand(node, args))
    t = float(np.float32(attrs.get("threshold", 0.0)))
    return [Val(b.add(Binarize(v.width, t), v), v.width, v.dtype)]


def _codes(b: Builder, node: Any, v: Val, keys: list, j: int) -> list[float]:
    """Category keys as the values the IR sees in column ``j`` of ``v`` (input codes for strings)."""
    if v.dtype != "string":
        return [float(k) for k in keys]
    if v.columns is None:
        raise UnsupportedModelError(f"{what(node)}: string categories must come straight from the graph input")
    return [b.code(v.columns[j], as_text(k)) for k in keys]


def one_hot_encoder(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v = operand(node, args)
    cats = attrs.get("cats_strings") if v.dtype == "string" else attrs.get("cats_int64s")
    if not cats:
        raise UnsupportedModelError(f"{what(node)}: no categories of the input's type ({v.dtype})")
    if v.dtype in ("float", "double"):
        raise UnsupportedModelError(f"{what(node)}: one-hot encoding of a float tensor (truncated to integers) "
                                    "is not supported; cast it to int64 first")
    k = len(cats)
    column, value, target, source = [], [], [], []
    for j in range(v.width):
        codes = _codes(b, node, v, list(cats), j)
        column += [j] * k
        value += codes
        target += list(range(j * k, (j + 1) * k))
        source += [j] * k
        if not int(attrs.get("zeros", 1)):
            if v.columns is None:
                raise UnsupportedModelError(f"{what(node)}: zeros=0 (fail on unknown categories) needs the input "
                                            "columns straight from the graph input")
            b.restrict((v.columns[j],), codes, what(node))
    op = Lookup(v.width, column, value, target, np.ones(len(value)), source, np.zeros(len(source)))
    return [Val(b.add(op, v), v.width * k)]


def label_encoder(b: Builder, node: Any, attrs: dict, args: list) -> list:
    v = operand(node, args)
    keys = attrs.get("keys_strings") or attrs.get("keys_int64s") or attrs.get("keys_floats")
    if "keys_tensor" in attrs or "values_tensor" in attrs:
        raise UnsupportedModelError(f"{what(node)}: keys_tensor / values_tensor are not supported")
    vals, out = attrs.get("values_int64s"), "int"
    default = attrs.get("default_int64", -1)
    if not vals:
        vals, out, default = attrs.get("values_floats"), "float", attrs.get("default_float", -0.0)
    if not keys or not vals or len(keys) != len(vals):
        raise UnsupportedModelError(f"{what(node)}: only numeric values for string or numeric keys are supported")
    column, value, target, weight = [], [], [], []
    for j in range(v.width):
        codes = _codes(b, node, v, list(keys), j)
        column += [j] * len(codes)
        value += codes
        target += [j] * len(codes)
        weight += [float(np.float32(w)) if out == "float" else float(w) for w in vals]
    op = Lookup(v.width, column, value, target, weight, np.arange(v.width),
                np.full(v.width, float(np.float32(default)) if out == "float" else float(default)))
    return [Val(b.add(op, v), v.width, out)]


CONVERTERS: dict[tuple[str, str], Converter] = {
    ("", "Identity"): identity,
    ("", "Cast"): cast,
    ("", "Reshape"): reshape,
    ("", "Flatten"): flatten,
    ("", "Gather"): gather,
    ("", "Concat"): concat,
    ("", "Add"): _binary("add"),
    ("", "Sub"): _binary("sub"),
    ("", "Mul"): _binary("mul"),
    ("", "Div"): _binary("div"),
    ("", "MatMul"): matmul,
    ("", "Gemm"): gemm,
    ("", "Sigmoid"): _activation("sigmoid"),
    ("", "Softmax"): _activation("softmax"),
    ("ai.onnx.ml", "ZipMap"): zipmap,
    ("ai.onnx.ml", "CastMap"): identity,
    ("ai.onnx.ml", "ArrayFeatureExtractor"): array_feature_extractor,
    ("ai.onnx.ml", "FeatureVectorizer"): feature_vectorizer,
    ("ai.onnx.ml", "Scaler"): scaler,
    ("ai.onnx.ml", "Normalizer"): normalizer,
    ("ai.onnx.ml", "Imputer"): imputer,
    ("ai.onnx.ml", "Binarizer"): binarizer,
    ("ai.onnx.ml", "OneHotEncoder"): one_hot_encoder,
    ("ai.onnx.ml", "LabelEncoder"): label_encoder,
}
