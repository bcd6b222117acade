"""XGBoost frontend: ``Booster``, ``XGBClassifier``, ``XGBRegressor``, ``XGBRanker`` (and the
random-forest wrappers) -> :class:`~strategies.model.ConvertedModel`.

Every source goes one way: take the Booster, serialise it with ``save_raw("json")`` and
parse that, so an object, a ``.json`` and a ``.ubj`` file give the same IR.

XGBoost semantics carried into the IR (see ``strategies.ir``):

* inputs are cast to float32 and a numeric split goes left iff ``x < threshold``
  (float32); NaN takes the node's default child;
* a categorical split sends the categories listed in the JSON RIGHT and everything
  else LEFT: unlisted, negative, ``>= 2**24`` and +-inf values
  (``common::Decision`` / ``InvalidCat``); a category is ``(int)x`` after the ``x < 0``
  check, which is ``floor(x)``;
* ``base_score`` is stored in output space (``"[5E-1]"``) and mapped to a margin by
  the objective's link in float32 arithmetic;
* dart scales tree ``i``'s leaves by ``weight_drop[i]`` at inference (a float32 product).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..ground.errors import SUPPORTED_MODELS_DOC, UnsupportedModelError
from ..head import Head, InputSpec
from ..ir import Graph, PostTransform, Tree, TreeEnsemble
from ..model import ConvertedModel
from . import InvalidModelFileError, short_reason

logger = logging.getLogger(__name__)

_F32 = np.float32


def _unsupported(what: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"{what} (see {SUPPORTED_MODELS_DOC}).")


def _f32(values: Any) -> np.ndarray:
    """JSON numbers (float32 values printed as decimals) -> their exact float32 values."""
    return np.asarray(values, dtype=np.float64).astype(_F32)


def _identity_link(p: np.ndarray) -> np.ndarray:
    return p


def _logit_link(p: np.ndarray) -> np.ndarray:
    # XGBoost: -logf(1.0f / p - 1.0f), every step in float32.
    if np.any((p <= 0) | (p >= 1)):
        raise _unsupported(f"base_score {p.tolist()} is outside (0, 1), invalid for a logistic objective")
    x = (_F32(1) / p - _F32(1)).astype(_F32)
    return (-np.log(x.astype(np.float64))).astype(_F32)


def _log_link(p: np.ndarray) -> np.ndarray:
    # XGBoost: logf(p) in float32 (correctly rounded float64 log, then rounded to float32).
    if np.any(p <= 0):
        raise _unsupported(f"base_score {p.tolist()} is not positive, invalid for a log-link objective")
    return np.log(p.astype(np.float64)).astype(_F32)


@dataclass(frozen=True)
class _Objective:
    post: PostTransform
    link: Callable[[np.ndarray], np.ndarray]  # output space -> margin, float32


_IDENTITY = PostTransform("identity")
_SIGMOID = PostTransform("sigmoid")
_EXP = PostTransform("exp")
_SOFTMAX = PostTransform("softmax")

OBJECTIVES: dict[str, _Objective] = {
    "binary:logistic": _Objective(_SIGMOID, _logit_link),
    "reg:logistic": _Objective(_SIGMOID, _logit_link),
    "binary:logitraw": _Objective(_IDENTITY, _identity_link),
    "reg:squarederror": _Objective(_IDENTITY, _identity_link),
    "count:poisson": _Objective(_EXP, _log_link),
    "reg:tweedie": _Objective(_EXP, _log_link),
    "reg:gamma": _Objective(_EXP, _log_link),
    "multi:softprob": _Objective(_SOFTMAX, _identity_link),
    "multi:softmax": _Objective(_SOFTMAX, _identity_link),
    "rank:pairwise": _Objective(_IDENTITY, _identity_link),
    "rank:ndcg": _Objective(_IDENTITY, _identity_link),
    "rank:map": _Objective(_IDENTITY, _identity_link),
}


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ParsedBooster:
    """What the frontend reads off a Booster's JSON: the ensemble and the facts heads need."""

    ensemble: TreeEnsemble
    objective: str
    n_features: int
    n_outputs: int
    n_targets: int
    feature_names: tuple[str, ...] | None


def load_file(path: Path) -> Any:
    """An ``xgboost.Booster`` from a .json / .ubj model file.

    Raises :class:`~strategies.frontends.InvalidModelFileError` (one line) when XGBoost cannot read it.
    """
    import xgboost

    booster = xgboost.Booster()
    if path.suffix.lower() == ".ubj":
        # XGBoost's UBJSON reader trusts the lengths in the file: a truncated one makes it read past the
        # end of the buffer (and crash), so the structure is checked here first.
        data = path.read_bytes()
        problem = "the file is empty" if not data else ubjson_problem(data)
        if problem is not None:
            raise InvalidModelFileError(f"{path} is not a valid XGBoost UBJSON model: {problem}")
        source: Any = bytearray(data)
    else:
        source = os.fspath(path)
    try:
        booster.load_model(source)
    except (xgboost.core.XGBoostError, UnicodeDecodeError) as exc:
        what = "XGBoost UBJSON model" if path.suffix.lower() == ".ubj" else "XGBoost JSON model"
        raise InvalidModelFileError(f"{path} is not a valid {what}: {_load_failure(path, exc)}") from exc
    return booster


_UBJ_SIZES = {b"Z": 0, b"N": 0, b"T": 0, b"F": 0, b"i": 1, b"U": 1, b"C": 1, b"I": 2, b"l": 4, b"L": 8, b"d": 4,
              b"D": 8}
_UBJ_INTS = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q"}


def ubjson_problem(data: bytes, max_depth: int = 64) -> str | None:
    """Why ``data`` is not one complete UBJSON value with every length inside the data, or None."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if n < 0 or pos + n > len(data):
            raise _Cut(f"it is cut off at byte {len(data)} (is the file truncated?)")
        pos += n
        return data[pos - n:pos]

    def length() -> int:
        marker = take(1)
        if marker not in _UBJ_INTS:
            raise _Cut(f"byte {pos - 1}: expected a UBJSON length marker, found {marker!r}")
        n = int(struct.unpack(_UBJ_INTS[marker], take(struct.calcsize(_UBJ_INTS[marker])))[0])
        if n < 0:
            raise _Cut(f"byte {pos}: a negative length ({n})")
        if n > len(data) - pos:  # every element or byte it counts takes at least a byte
            take(n)
        return n

    def value(marker: bytes, depth: int) -> None:
        if depth > max_depth:
            raise _Cut(f"it nests deeper than {max_depth} levels")
        if marker in _UBJ_SIZES:
            take(_UBJ_SIZES[marker])
        elif marker in (b"S", b"H"):
            take(length())
        elif marker in (b"[", b"{"):
            container(marker == b"{", depth + 1)
        else:
            raise _Cut(f"byte {pos - 1}: {marker!r} is no UBJSON type marker")

    def container(is_object: bool, depth: int) -> None:
        typed = count = None
        if data[pos:pos + 1] == b"$":
            take(1)
            typed = take(1)
            if data[pos:pos + 1] != b"#":
                raise _Cut(f"byte {pos}: a typed container without a count")
        if data[pos:pos + 1] == b"#":
            take(1)
            count = length()
        if count is not None and typed in _UBJ_SIZES and not is_object:
            take(count * _UBJ_SIZES[typed])  # a typed array of numbers: one bounds check
            return
        end = b"}" if is_object else b"]"
        i = 0
        while count is None or i < count:
            if count is None and data[pos:pos + 1] == end:
                take(1)
                return
            if is_object:
                take(length())  # the key
            value(typed if typed is not None else take(1), depth)
            i += 1

    try:
        if take(1) != b"{":
            return "it does not start with a UBJSON object ('{')"
        container(True, 1)
    except _Cut as e:
        return str(e)
    if pos != len(data):
        return f"{len(data) - pos} bytes follow the model"
    return None


class _Cut(Exception):
    """Where a UBJSON document stops making sense."""


def _load_failure(path: Path, exc: Exception) -> str:
    """Why XGBoost could not load ``path``, in a few words (its own message has a native stack trace)."""
    with contextlib.suppress(OSError):
        if path.stat().st_size == 0:
            return "the file is empty"
    if path.suffix.lower() == ".json":
        try:
            with open(path, "rb") as f:
                doc = json.load(f)
        except UnicodeDecodeError:
            return "it is not UTF-8 text (binary data?)"
        except json.JSONDecodeError as e:
            return f"invalid JSON ({e})"
        except (OSError, ValueError, RecursionError):
            pass
        else:
            if not isinstance(doc, dict):
                return "its top level is not a JSON object"
            if not isinstance(doc.get("learner"), dict):
                return "it has no 'learner' object (XGBoost's save_model writes one)"
    reason = short_reason(exc)
    if isinstance(exc, UnicodeDecodeError):  # XGBoost's message quotes the file's bytes: read it leniently
        try:
            from xgboost.core import _LIB

            reason = short_reason(_LIB.XGBGetLastError().decode("utf-8", "replace"))
        except Exception:  # a private hook; without it the message only has less detail
            reason = ""
    return f"XGBoost cannot parse it ({reason})" if reason else "XGBoost cannot parse it"


def booster_json(booster: Any) -> dict:
    """The Booster's model as XGBoost's own JSON document."""
    return json.loads(bytes(booster.save_raw("json")))


def parse_booster(doc: dict, n_iterations: int | None = None) -> ParsedBooster:
    """Build the tree ensemble from a Booster's JSON document.

    ``n_iterations`` keeps only the first that many boosting rounds (the sklearn
    wrappers' ``best_iteration + 1`` after early stopping); None keeps all.
    """
    learner = doc["learner"]
    objective = learner["objective"]["name"]
    spec = OBJECTIVES.get(objective)
    if spec is None:
        raise _unsupported(
            f"XGBoost objective {objective!r} is not supported; supported objectives are "
            f"{', '.join(OBJECTIVES)}"
        )
    gbm = learner["gradient_booster"]
    weight_drop = None
    if gbm["name"] == "dart":
        weight_drop = _f32(gbm["weight_drop"])
        gbm = gbm["gbtree"]
    elif gbm["name"] != "gbtree":
        raise _unsupported(f"XGBoost booster {gbm['name']!r} is not supported; only 'gbtree' and 'dart' are")
    model = gbm["model"]

    mp = learner["learner_model_param"]
    n_features = int(mp["num_feature"])
    n_class = int(mp.get("num_class", 0))
    n_targets = int(mp.get("num_target", 1))
    n_outputs = max(n_class, n_targets, 1)

    trees_json = model["trees"]
    tree_info = np.asarray(model["tree_info"], dtype=np.int64)
    indptr = model.get("iteration_indptr")
    if n_iterations is not None:
        if indptr is None:
            raise _unsupported("this XGBoost model stores no iteration_indptr, so best_iteration cannot be applied")
        end = int(indptr[min(int(n_iterations), len(indptr) - 1)])
        trees_json, tree_info = trees_json[:end], tree_info[:end]
        if weight_drop is not None:
            weight_drop = weight_drop[:end]

    if weight_drop is not None and weight_drop.size != len(trees_json):
        raise _unsupported(f"this dart model has {weight_drop.size} tree weights for {len(trees_json)} trees")
    trees = []
    vector = []
    for i, tj in enumerate(trees_json):
        scale = None if weight_drop is None else weight_drop[i]
        tree, k = _parse_tree(tj, scale)
        trees.append(tree)
        vector.append(k > 1)
        if k > 1 and k != n_outputs:
            raise _unsupported(f"XGBoost tree {i} has {k} values per leaf but the model has {n_outputs} outputs")
    if any(vector) and not all(vector):
        raise _unsupported("an XGBoost model mixing scalar-leaf and vector-leaf trees is not supported")
    tree_output = None if (trees and all(vector)) else tree_info
    if not trees:  # no boosting rounds: the prediction is the base score
        trees = [Tree(feature=[-1], threshold=[0.0], left=[-1], right=[-1], missing_left=[False], value=[0.0])]
        tree_output = np.zeros(1, dtype=np.int32)

    base = _base_margin(mp["base_score"], n_outputs, spec)
    ensemble = TreeEnsemble(
        trees=tuple(trees),
        n_features=n_features,
        n_outputs=n_outputs,
        comparison="<",
        compare_dtype="float32",
        base_score=base,
        tree_output=tree_output,
        aggregation="sum",
        post_transform=spec.post,
        category_rounding="floor",
    )
    names = learner.get("feature_names") or None
    return ParsedBooster(ensemble, objective, n_features, n_outputs, n_targets, tuple(names) if names else None)


def _base_margin(text: Any, n_outputs: int, spec: _Objective) -> np.ndarray:
    """``base_score`` ("5E-1", "[4.55E-1]" or "[a,b,c]", output space) -> float32 margins."""
    parts = [p for p in str(text).strip().strip("[]").split(",") if p.strip()]
    values = _f32([float(p) for p in parts])
    if values.size == 1:
        values = np.full(n_outputs, values[0], dtype=_F32)
    if values.size != n_outputs:
        raise _unsupported(f"XGBoost base_score {text!r} has {values.size} entries for {n_outputs} outputs")
    return spec.link(values).astype(np.float64)


def _parse_tree(t: dict, scale: np.float32 | None) -> tuple[Tree, int]:
    """One tree of XGBoost's JSON -> IR tree (renumbered when needed); also its leaf width."""
    left = np.asarray(t["left_children"], dtype=np.int64)
    right = np.asarray(t["right_children"], dtype=np.int64)
    n = left.shape[0]
    k = max(int(t["tree_param"].get("size_leaf_vector", "1")), 1)
    leaf = left < 0
    internal = np.flatnonzero(~leaf)
    if np.any(right[internal] != left[internal] + 1):
        # XGBoost's predictor goes to LeftChild() + 1 for "right"; a file that says otherwise is corrupt.
        raise _unsupported("an XGBoost tree whose right child is not left child + 1 cannot be predicted reliably")
    feature = np.asarray(t["split_indices"], dtype=np.int64)
    cond = _f32(t["split_conditions"])
    default_left = np.asarray(t["default_left"], dtype=bool)

    if k == 1:
        value = np.where(leaf, cond, _F32(0)).astype(_F32)[:, None]
    elif "leaf_weights" in t:  # vector leaves: right_children holds the leaf's row in leaf_weights
        weights = _f32(t["leaf_weights"]).reshape(-1, k)
        value = np.zeros((n, k), dtype=_F32)
        value[leaf] = weights[right[leaf]]
    else:
        value = np.where(leaf[:, None], _f32(t["base_weights"]).reshape(n, k), _F32(0)).astype(_F32)
    if scale is not None:
        value = (value * scale).astype(_F32)  # dart: float32 product, as XGBoost computes it

    split_type = np.asarray(t.get("split_type") or np.zeros(n), dtype=np.int64)
    is_cat = (split_type == 1) & ~leaf
    cat_kw: dict[str, Any] = {}
    if is_cat.any():
        cat_kw = _categorical(t, n, is_cat)

    order = _node_order(left, right)
    if order is not None:
        new = np.full(n, -1, dtype=np.int64)
        new[order] = np.arange(order.size)
        left = np.where(left[order] >= 0, new[np.maximum(left[order], 0)], -1)
        right = np.where(left >= 0, new[np.maximum(right[order], 0)], -1)
        feature, cond, default_left, value = feature[order], cond[order], default_left[order], value[order]
        cat_kw = {key: arr[order] for key, arr in cat_kw.items()}

    tree = Tree(
        feature=feature,
        threshold=cond.astype(np.float64),
        left=left,
        right=right,
        missing_left=default_left,
        value=value.astype(np.float64),
        **cat_kw,
    )
    return tree, k


def _categorical(t: dict, n: int, is_cat: np.ndarray) -> dict[str, np.ndarray]:
    """Bitsets of the categories going LEFT: all but the ones XGBoost lists (which go right)."""
    nodes = np.asarray(t["categories_nodes"], dtype=np.int64)
    segments = np.asarray(t["categories_segments"], dtype=np.int64)
    sizes = np.asarray(t["categories_sizes"], dtype=np.int64)
    cats = np.asarray(t["categories"], dtype=np.int64)
    listed = {int(nd): cats[s : s + z] for nd, s, z in zip(nodes, segments, sizes)}
    missing = set(np.flatnonzero(is_cat).tolist()) - set(listed)
    if missing:
        raise _unsupported(f"XGBoost categorical nodes {sorted(missing)[:5]} have no category list")
    top = max((int(c.max()) for c in listed.values() if c.size), default=0)
    if top >= 1 << 24:
        raise _unsupported(f"XGBoost category {top} is beyond XGBoost's own limit of 2**24")
    words = top // 32 + 1
    bits = np.zeros((n, words), dtype=np.uint32)
    for node, c in listed.items():
        if not is_cat[node]:
            continue
        go_left = np.ones(words * 32, dtype=np.uint64)
        go_left[c] = 0
        bits[node] = (go_left.reshape(words, 32) << np.arange(32, dtype=np.uint64)).sum(axis=1).astype(np.uint32)
    return {"is_categorical": is_cat, "cat_bitset": bits, "cat_unknown_left": is_cat.copy()}


def _node_order(left: np.ndarray, right: np.ndarray) -> np.ndarray | None:
    """None when the tree already satisfies the IR (all nodes reachable, children after parents);
    else the reachable nodes in pre-order."""
    n = left.shape[0]
    internal = np.flatnonzero(left >= 0)
    kids = np.concatenate([left[internal], right[internal]])
    if (
        np.all(left[internal] > internal)
        and np.all(right[internal] > internal)
        and kids.size == n - 1
        and np.unique(kids).size == kids.size
    ):
        return None
    order, stack, seen = [], [0], set()
    while stack:
        i = stack.pop()
        if i in seen:
            raise _unsupported("an XGBoost tree is not a tree (a node is reached twice)")
        seen.add(i)
        order.append(i)
        if left[i] >= 0:
            stack.extend((int(right[i]), int(left[i])))
    return np.asarray(order, dtype=np.int64)


# --------------------------------------------------------------------------- converters


def _model(parsed: ParsedBooster, head: Head, source: str) -> ConvertedModel:
    graph = Graph(parsed.n_features, (parsed.ensemble,))
    spec = InputSpec(parsed.n_features, allow_nan=True, allow_inf=True, feature_names=parsed.feature_names)
    converted = ConvertedModel(graph, head, spec, source)
    logger.debug("converted %s", converted.summary())
    return converted


def convert_booster(booster: Any, n_iterations: int | None = None) -> ConvertedModel:
    """``xgboost.Booster`` -> task "booster": ``predict`` (output space) and ``decision_function``
    (``predict(output_margin=True)``).  A Booster predicts with all its trees, even with a
    ``best_iteration`` attribute."""
    parsed = parse_booster(booster_json(booster), n_iterations)
    head = Head(
        "booster",
        ("predict", "decision_function"),
        predict_argmax=parsed.objective == "multi:softmax",
    )
    return _model(parsed, head, "xgboost.Booster")


def _wrapper_iterations(model: Any) -> int | None:
    """Rounds the sklearn wrapper predicts with: ``best_iteration + 1`` after early stopping."""
    try:
        return int(model.best_iteration) + 1
    except AttributeError:
        return None


def _check_wrapper(model: Any) -> None:
    name = type(model).__name__
    if callable(getattr(model, "objective", None)):
        raise _unsupported(f"{name} with a custom (callable) objective is not supported: its output transform is unknown")
    missing = getattr(model, "missing", np.nan)
    try:
        nan_missing = math.isnan(float(missing))
    except (TypeError, ValueError):
        nan_missing = False
    if not nan_missing:
        raise _unsupported(f"{name}(missing={missing!r}) is not supported; only missing=NaN is")
    if getattr(model, "booster", None) == "gblinear":
        raise _unsupported(f"{name}(booster='gblinear') is not supported; only 'gbtree' and 'dart' are")


def convert_classifier(model: Any) -> ConvertedModel:
    """``XGBClassifier`` / ``XGBRFClassifier``: ``predict`` and ``predict_proba``."""
    _check_wrapper(model)
    parsed = parse_booster(booster_json(model.get_booster()), _wrapper_iterations(model))
    classes = np.asarray(model.classes_)
    name = type(model).__name__
    if parsed.n_targets > 1:
        raise _unsupported(f"multi-label {name} (num_target={parsed.n_targets}) is not supported")
    if parsed.n_outputs == 1:
        if classes.size != 2:
            raise _unsupported(f"{name} with one output column but {classes.size} classes is not supported")
        rule = "out_gt_half"  # the wrapper labels 1-D output as `output > 0.5`
    elif parsed.n_outputs == classes.size and classes.size > 2:
        rule = "argmax"
    else:
        raise _unsupported(
            f"{name} with {parsed.n_outputs} output columns for {classes.size} classes "
            f"(objective {parsed.objective!r}) is not supported"
        )
    head = Head("classifier", ("predict", "predict_proba"), classes=classes, label_rule=rule)
    return _model(parsed, head, f"xgboost.{name}")


def convert_regressor(model: Any) -> ConvertedModel:
    """``XGBRegressor`` / ``XGBRFRegressor`` / ``XGBRanker``: ``predict``."""
    _check_wrapper(model)
    parsed = parse_booster(booster_json(model.get_booster()), _wrapper_iterations(model))
    if parsed.objective == "multi:softmax":
        raise _unsupported(f"{type(model).__name__} with objective 'multi:softmax' is not supported")
    head = Head("regressor", ("predict",))
    return _model(parsed, head, f"xgboost.{type(model).__name__}")


CONVERTERS: dict[str, Callable[[Any], ConvertedModel]] = {
    "Booster": convert_booster,
    "XGBClassifier": convert_classifier,
    "XGBRegressor": convert_regressor,
    "XGBRanker": convert_regressor,
}
