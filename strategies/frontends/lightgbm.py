"""LightGBM frontend: ``Booster``, ``LGBMClassifier`` / ``LGBMRegressor`` / ``LGBMRanker`` and .txt files -> IR.

Everything is read from the model text (``Booster.model_to_string()``, which
holds thresholds and leaf values at full double precision and, by default,
only the iterations up to ``best_iteration``, as ``predict`` uses them).  A
model file is loaded into a Booster first, so objects and files take one path.

Split semantics follow ``Tree::NumericalDecision`` / ``Tree::CategoricalDecision``
in LightGBM's ``include/LightGBM/tree.h``, and the input handling of
``src/c_api.cpp`` (dense rows drop entries with ``|x| <= kZeroThreshold``, so
such values reach the trees as exactly 0.0):

* numeric, missing type NaN:  NaN goes the default way; otherwise ``x <= t``.
* numeric, missing type Zero: NaN and ``|x| <= kZeroThreshold`` go the default way.
* numeric, missing type None: NaN is replaced by 0.0, then ``x <= t``.
* categorical: NaN and negative ``int(x)`` (C truncation) go right; otherwise
  left iff bit ``int(x)`` is set in the node's bitset (beyond the bitset: right).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import ir
from ..ground.errors import SUPPORTED_MODELS_DOC, UnsupportedModelError
from ..head import Head, InputSpec
from ..ir import Graph, PostTransform, Tree, TreeEnsemble
from ..model import ConvertedModel
from . import InvalidModelFileError, short_reason

logger = logging.getLogger(__name__)

# LightGBM's kZeroThreshold is the float literal 1e-35f widened to double.
K_ZERO_THRESHOLD = float(np.float32(1e-35))

_MISSING_NONE, _MISSING_ZERO, _MISSING_NAN = 0, 1, 2
_CATEGORICAL_MASK, _DEFAULT_LEFT_MASK = 1, 2

_IDENTITY_OBJECTIVES = frozenset(
    {"regression", "regression_l1", "huber", "fair", "quantile", "mape", "lambdarank", "rank_xendcg"}
)
_EXP_OBJECTIVES = frozenset({"poisson", "gamma", "tweedie"})


def _unsupported(what: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"cannot convert this LightGBM model: {what} (see {SUPPORTED_MODELS_DOC}).")


# --------------------------------------------------------------------------- model files

_HEADER_KEYS = ("num_class", "label_index", "max_feature_idx", "feature_names", "feature_infos")
_SPLIT_KEYS = ("split_feature", "threshold", "decision_type", "left_child", "right_child")


def load_file(path: Path) -> Any:
    """A ``lightgbm.Booster`` from a model text file (``Booster.save_model``).

    The text is checked here before LightGBM reads it: LightGBM prints its errors to stderr, and it
    trusts the ``tree_sizes`` offsets, reading past the end of a truncated file (which can abort the
    process).  Raises :class:`~strategies.frontends.InvalidModelFileError` (one line).
    """
    data = path.read_bytes()
    problem = model_text_problem(data)
    if problem is None:
        import lightgbm

        try:
            return lightgbm.Booster(model_str=data.decode("utf-8"))
        except lightgbm.basic.LightGBMError as exc:
            raise InvalidModelFileError(f"{path} is not a valid LightGBM text model: {short_reason(exc)}") from exc
    raise InvalidModelFileError(f"{path} is not a valid LightGBM text model: {problem}")


def model_text_problem(data: bytes) -> str | None:
    """Why ``data`` is no LightGBM model text LightGBM can safely read, or None.

    Checks what ``GBDT::LoadModelFromString`` and ``Tree::Tree(const char*)`` rely on: the header keys,
    every tree block complete (``key=value`` lines closed by a blank line) with its arrays' lengths,
    and ``tree_sizes`` (byte sizes of the tree blocks) matching where the blocks are.
    """
    if not data.strip():
        return "the file is empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not UTF-8 text (binary data?)"
    raw = text.split("\n")
    lines = [line.rstrip("\r") for line in raw]
    first = next((line.strip() for line in lines if line.strip()), "")
    if first != "tree":
        return f"its first line is {first[:40]!r}, not 'tree' (as LightGBM's save_model writes)"
    header: dict[str, str] = {}
    offsets, offset, tree_lines = [], 0, []
    for i, line in enumerate(lines):
        if line.startswith("Tree="):
            tree_lines.append(i)
            offsets.append(offset)
        elif not tree_lines and line:
            key, eq, value = line.partition("=")
            if eq and "=" in value and key != "feature_names":
                return f"header line {i + 1} is not a key=value line: {line[:60]!r}"
            header[key] = value
        offset += len(raw[i].encode("utf-8")) + 1  # LightGBM's offsets count every byte, "\r" too
    missing = [k for k in _HEADER_KEYS if k not in header]
    if missing:
        return f"its header has no {', '.join(missing)} (is the file truncated?)"
    try:
        n_features = int(header["max_feature_idx"]) + 1
    except ValueError:
        return f"max_feature_idx is not an integer: {header['max_feature_idx'][:40]!r}"
    for key in ("feature_names", "feature_infos"):
        n = len([v for v in header[key].split(" ") if v])
        if n != n_features:
            return f"{key} has {n} entries for max_feature_idx={n_features - 1}"
    for t, start in enumerate(tree_lines):
        problem = _tree_block_problem(lines, start + 1)
        if problem:
            return f"tree {t}: {problem}"
    ends = [i for i, line in enumerate(lines) if line == "end of trees"]
    if not ends or (tree_lines and ends[-1] < tree_lines[-1]):
        return "it has no 'end of trees' line after the trees (is the file truncated?)"
    if "parameters:" in lines[ends[-1]:] and "end of parameters" not in lines[ends[-1]:]:
        return "its parameters section has no 'end of parameters' line (is the file truncated?)"
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    if last.startswith("pandas_categorical:"):
        try:
            json.loads(last[len("pandas_categorical:"):])
        except ValueError:
            return "its pandas_categorical line is not JSON (is the file truncated?)"
    if "tree_sizes" in header:
        try:
            sizes = [int(v) for v in header["tree_sizes"].split(" ") if v]
        except ValueError:
            return "tree_sizes is not a list of integers"
        ends = np.cumsum(sizes, dtype=np.int64)
        starts = [o - offsets[0] for o in offsets] if offsets else []
        if len(sizes) != len(starts) or starts != [0, *ends[:-1].tolist()] or (
                sizes and offsets[0] + int(ends[-1]) > len(data)):
            return (f"tree_sizes does not match the {len(starts)} tree blocks in the file "
                    "(is it truncated or edited?)")
    return None


def _tree_block_problem(lines: list[str], i: int) -> str | None:
    """What is wrong with the tree block whose ``key=value`` lines start at ``lines[i]``, or None."""
    block: dict[str, str] = {}
    while i < len(lines) and lines[i]:
        key, eq, value = lines[i].partition("=")
        if not eq:
            return f"line {i + 1} is not a key=value line: {lines[i][:60]!r}"
        block[key] = value
        i += 1
    if i >= len(lines):
        return "its block is cut off (is the file truncated?)"
    try:
        n_leaves, n_cat = int(block["num_leaves"]), int(block["num_cat"])
    except KeyError as e:
        return f"no {e.args[0]} line"
    except ValueError:
        return "num_leaves or num_cat is not an integer"
    lengths = {"leaf_value": n_leaves}
    if n_leaves > 1:
        lengths.update(dict.fromkeys(_SPLIT_KEYS, n_leaves - 1))
    if n_cat > 0:
        lengths["cat_boundaries"] = n_cat + 1
    if n_leaves < 1 or n_cat < 0:
        return f"num_leaves={n_leaves}, num_cat={n_cat}"
    for key, n in lengths.items():
        if key not in block:
            return f"no {key} line"
        got = len(block[key].split())
        if got != n:
            return f"{key} has {got} entries, expected {n}"
    if n_cat > 0 and "cat_threshold" not in block:
        return "no cat_threshold line"
    return None


# --------------------------------------------------------------------------- model text


@dataclass(frozen=True)
class ModelText:
    """The parts of a LightGBM model text the converter reads."""

    header: dict[str, str]  # key=value lines before the first tree ("average_output" maps to "")
    trees: tuple[dict[str, str], ...]  # one key=value block per tree
    parameters: dict[str, str]  # the "[name: value]" lines of the parameters section


def parse_model_text(text: str) -> ModelText:
    """Split a LightGBM model text into header, tree blocks and training parameters."""
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    parameters: dict[str, str] = {}
    section = "header"
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("Tree="):
            section = "tree"
            trees.append({})
        elif line == "end of trees":
            section = "after"
        elif line == "parameters:":
            section = "parameters"
        elif line == "end of parameters":
            section = "after"
        elif section == "parameters" and line.startswith("[") and line.endswith("]"):
            key, _, value = line[1:-1].partition(": ")
            parameters[key] = value
        elif section in ("header", "tree"):
            key, _, value = line.partition("=")
            (header if section == "header" else trees[-1])[key] = value
    if "max_feature_idx" not in header:
        raise ValueError("not a LightGBM model text: no 'max_feature_idx' line before the trees")
    return ModelText(header, tuple(trees), parameters)


def _ints(block: dict[str, str], key: str, n: int, tree: int) -> list[int]:
    values = [int(v) for v in block.get(key, "").split()]
    if len(values) != n:
        raise ValueError(f"LightGBM tree {tree}: '{key}' has {len(values)} entries, expected {n}")
    return values


def _floats(block: dict[str, str], key: str, n: int, tree: int) -> list[float]:
    values = [float(v) for v in block.get(key, "").split()]
    if len(values) != n:
        raise ValueError(f"LightGBM tree {tree}: '{key}' has {len(values)} entries, expected {n}")
    return values


def _numeric_threshold(t: float) -> float:
    """The threshold that gives ``x <= t'`` the result LightGBM gets for ``squash(x) <= t``.

    LightGBM turns ``|x| <= kZeroThreshold`` into 0.0 before any tree sees it;
    that only matters for thresholds in ``[-kZeroThreshold, kZeroThreshold)``.
    """
    if 0.0 <= t < K_ZERO_THRESHOLD:
        return K_ZERO_THRESHOLD
    if -K_ZERO_THRESHOLD <= t < 0.0:
        return float(np.nextafter(-K_ZERO_THRESHOLD, -np.inf))
    return t


def tree_from_block(block: dict[str, str], index: int = 0) -> Tree:
    """One LightGBM tree (a ``Tree=`` block of the model text) in IR normal form."""
    if int(block.get("is_linear", "0")):
        raise _unsupported(f"tree {index} is a linear tree (linear_tree=true); only constant leaves are supported")
    n_leaves = int(block["num_leaves"])
    leaf_value = _floats(block, "leaf_value", n_leaves, index)
    if n_leaves <= 1:
        return Tree(feature=[-1], threshold=[0.0], left=[-1], right=[-1], missing_left=[False], value=leaf_value[:1])
    m = n_leaves - 1
    lc, rc = _ints(block, "left_child", m, index), _ints(block, "right_child", m, index)
    feature = _ints(block, "split_feature", m, index)
    threshold = _floats(block, "threshold", m, index)
    decision = _ints(block, "decision_type", m, index) if "decision_type" in block else [0] * m
    num_cat = int(block.get("num_cat", "0"))
    if num_cat:
        bounds = _ints(block, "cat_boundaries", num_cat + 1, index)
        cat_words = [int(v) for v in block.get("cat_threshold", "").split()]
        if len(cat_words) != bounds[-1]:
            raise ValueError(
                f"LightGBM tree {index}: 'cat_threshold' has {len(cat_words)} words, expected {bounds[-1]}"
            )
        width = max(b - a for a, b in zip(bounds, bounds[1:]))

    # Internal nodes are 0..m-1, leaf j is ~j; number them together in pre-order (children after parents).
    order: list[int] = []
    stack = [0]
    while stack:
        node = stack.pop()
        order.append(node)
        if node >= 0:
            stack += [rc[node], lc[node]]
    if len(order) != 2 * n_leaves - 1 or len(set(order)) != len(order):
        raise ValueError(f"LightGBM tree {index}: child arrays do not form a tree of {n_leaves} leaves")
    pos = {node: i for i, node in enumerate(order)}
    n = len(order)
    f_, t_, l_, r_ = np.full(n, -1), np.zeros(n), np.full(n, -1), np.full(n, -1)
    ml, zm, cat, unk = (np.zeros(n, bool) for _ in range(4))
    value = np.zeros(n)
    bits = np.zeros((n, width), np.uint32) if num_cat else None
    for i, node in enumerate(order):
        if node < 0:
            value[i] = leaf_value[~node]
            continue
        f_[i], l_[i], r_[i] = feature[node], pos[lc[node]], pos[rc[node]]
        dt = decision[node]
        missing_type = (dt >> 2) & 3
        default_left = bool(dt & _DEFAULT_LEFT_MASK)
        if dt & _CATEGORICAL_MASK:
            if not num_cat:
                raise ValueError(f"LightGBM tree {index}: categorical split but num_cat=0")
            k = int(threshold[node])
            words = cat_words[bounds[k]:bounds[k + 1]]
            cat[i] = True
            bits[i, : len(words)] = words
            # NaN, negative and out-of-range categories all go right: missing_left / cat_unknown_left stay False.
            continue
        if missing_type == _MISSING_ZERO:
            t_[i], zm[i], ml[i] = threshold[node], True, default_left
        elif missing_type == _MISSING_NAN:
            t_[i], ml[i] = _numeric_threshold(threshold[node]), default_left
        elif missing_type == _MISSING_NONE:
            t_[i] = _numeric_threshold(threshold[node])
            ml[i] = 0.0 <= t_[i]  # NaN is compared as 0.0
        else:
            raise ValueError(f"LightGBM tree {index}: unknown missing type {missing_type} in decision_type {dt}")
    return Tree(
        feature=f_, threshold=t_, left=l_, right=r_, missing_left=ml, value=value,
        zero_missing=zm if zm.any() else None,
        is_categorical=cat if num_cat else None,
        cat_bitset=bits, cat_unknown_left=unk if num_cat else None,
    )


# --------------------------------------------------------------------------- objective


def _objective(header: dict[str, str], sigmoid_override: float | None) -> tuple[str, PostTransform, int]:
    """Objective name, post-transform and number of outputs from the ``objective=`` line."""
    tokens = header.get("objective", "").split()
    name = tokens[0] if tokens else "custom"
    options = dict(tok.split(":", 1) for tok in tokens[1:] if ":" in tok)
    flags = {tok for tok in tokens[1:] if ":" not in tok}
    per_iteration = int(header.get("num_tree_per_iteration", "1"))
    sigmoid = sigmoid_override if sigmoid_override is not None else float(options.get("sigmoid", "1"))
    if name == "binary":
        pt, k = PostTransform("sigmoid", sigmoid), 1
    elif name == "cross_entropy":
        pt, k = PostTransform("sigmoid"), 1
    elif name == "multiclass":
        pt, k = PostTransform("softmax"), int(options.get("num_class", header.get("num_class", "1")))
    elif name == "multiclassova":
        # per-class sigmoid, not normalised across classes
        pt, k = PostTransform("sigmoid", sigmoid), int(options.get("num_class", header.get("num_class", "1")))
    elif name in _IDENTITY_OBJECTIVES:
        if "sqrt" in flags:
            raise _unsupported(f"objective '{name}' with reg_sqrt=true (output sign(x)*x^2) has no IR post-transform")
        pt, k = PostTransform("identity"), 1
    elif name in _EXP_OBJECTIVES:
        pt, k = PostTransform("exp"), 1
    elif name == "custom":  # trained with a custom objective: predict returns raw scores
        pt, k = PostTransform("identity"), per_iteration
    else:
        raise _unsupported(f"objective '{name}' is not supported")
    if k != per_iteration:
        raise ValueError(f"objective '{name}' implies {k} trees per iteration, the model text says {per_iteration}")
    return name, pt, k


# --------------------------------------------------------------------------- booster


@dataclass(frozen=True)
class _Converted:
    ensemble: TreeEnsemble
    objective: str
    average_output: bool
    feature_names: tuple[str, ...]


def _live_sigmoid(booster: Any) -> float | None:
    """The ``sigmoid`` a Booster still holding its training objective (keep_training_booster=True) uses.

    The model text prints it with 6 significant digits; a reloaded booster uses
    that, a live training booster the full configured value.
    """
    if "train_set" not in vars(booster):
        return None
    value = (booster.params or {}).get("sigmoid")
    return None if value is None else float(value)


def _ensemble(booster: Any) -> _Converted:
    text = parse_model_text(booster.model_to_string())
    h = text.header
    if text.parameters.get("linear_tree", "0") not in ("0", "false"):
        raise _unsupported("linear_tree=true (leaves hold linear models)")
    name, pt, k = _objective(h, _live_sigmoid(booster))
    n_features = int(h["max_feature_idx"]) + 1
    average = "average_output" in h
    trees = [tree_from_block(b, i) for i, b in enumerate(text.trees)]
    if len(trees) % k:
        raise ValueError(f"{len(trees)} trees is not a multiple of {k} trees per iteration")
    if not trees:
        if average:
            raise _unsupported("a random forest (average_output) with no trees predicts 0/0")
        trees = [Tree(feature=[-1], threshold=[0.0], left=[-1], right=[-1], missing_left=[False], value=[0.0])] * k
    ensemble = TreeEnsemble(
        trees=tuple(trees),
        n_features=n_features,
        n_outputs=k,
        comparison="<=",
        compare_dtype="float64",
        base_score=np.zeros(k),
        tree_output=np.arange(len(trees)) % k,
        aggregation="mean" if average else "sum",
        post_transform=pt,
        category_rounding="trunc",
    )
    if getattr(booster, "pandas_categorical", None):
        logger.info("the model was fitted on pandas categories: pass their integer codes (in training order) as floats")
    names = tuple(h.get("feature_names", "").split())
    return _Converted(ensemble, name, average, names)


def _input_spec(n_features: int, names: tuple[str, ...] | None) -> InputSpec:
    # LightGBM names unnamed columns Column_0.. and never checks names at predict time.
    if names is not None and (len(names) != n_features or names == tuple(f"Column_{i}" for i in range(n_features))):
        names = None
    return InputSpec(n_features, allow_nan=True, allow_inf=True, feature_names=names)


def _raw_methods(conv: _Converted, methods: tuple[str, ...], what: str) -> tuple[str, ...]:
    """Drop ``decision_function`` for random forests: LightGBM's raw score there is the un-averaged sum."""
    if conv.average_output and "decision_function" in methods:
        logger.warning(
            "%s: boosting=rf; decision_function (raw_score=True) is the sum of the trees while predict "
            "uses their mean, which the IR cannot give from one ensemble, so it is left out", what,
        )
        return tuple(m for m in methods if m != "decision_function")
    return methods


def convert_booster(booster: Any) -> ConvertedModel:
    """``lightgbm.Booster`` (trained, or loaded from a .txt file)."""
    conv = _ensemble(booster)
    methods = _raw_methods(conv, ("predict", "decision_function"), "lightgbm.Booster")
    head = Head("booster", methods)
    spec = _input_spec(conv.ensemble.n_features, conv.feature_names)
    logger.debug("lightgbm.Booster: objective %s, %s", conv.objective, conv.ensemble.summary())
    return ConvertedModel(Graph(conv.ensemble.n_features, (conv.ensemble,)), head, spec, "lightgbm.Booster")


def _wrapper_names(model: Any) -> tuple[str, ...] | None:
    try:
        return tuple(str(n) for n in model.feature_names_in_)
    except AttributeError:
        return None


def convert_classifier(model: Any) -> ConvertedModel:
    """``lightgbm.LGBMClassifier``: labels are ``classes_[argmax(predict_proba)]``."""
    if callable(model.objective):
        raise _unsupported("LGBMClassifier with a custom objective function returns raw scores from predict")
    conv = _ensemble(model.booster_)
    classes = np.asarray(model.classes_)
    k = conv.ensemble.n_outputs
    if not (k == len(classes) or (k == 1 and len(classes) == 2)):
        raise _unsupported(f"LGBMClassifier with {len(classes)} classes but {k} outputs per iteration")
    methods = ("predict", "predict_proba") + (("decision_function",) if hasattr(model, "decision_function") else ())
    methods = _raw_methods(conv, methods, "lightgbm.LGBMClassifier")
    head = Head("classifier", methods, classes=classes, label_rule="argmax")
    spec = _input_spec(conv.ensemble.n_features, _wrapper_names(model))
    return ConvertedModel(Graph(conv.ensemble.n_features, (conv.ensemble,)), head, spec, "lightgbm.LGBMClassifier")


def convert_regressor(model: Any) -> ConvertedModel:
    """``lightgbm.LGBMRegressor`` (also ``LGBMRanker`` and the ``LGBMModel`` base): ``predict`` only."""
    conv = _ensemble(model.booster_)
    spec = _input_spec(conv.ensemble.n_features, _wrapper_names(model))
    graph = Graph(conv.ensemble.n_features, (conv.ensemble,))
    return ConvertedModel(graph, Head("regressor", ("predict",)), spec, f"lightgbm.{type(model).__name__}")


CONVERTERS = {
    "Booster": convert_booster,
    "LGBMClassifier": convert_classifier,
    "LGBMRegressor": convert_regressor,
    "LGBMRanker": convert_regressor,
    "LGBMModel": convert_regressor,
}
