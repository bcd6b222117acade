"""scikit-learn frontend: fitted estimators and pipelines -> :class:`~strategies.model.ConvertedModel`.

Semantics follow the installed scikit-learn's prediction code (checked against 1.9):

* ``tree_``-based trees (decision trees, forests, gradient boosting, isolation
  forests) cast ``X`` to float32 and test ``x32 <= threshold64``; NaN follows
  ``missing_go_to_left``.  Classifier leaves already hold the class fractions
  that ``predict_proba`` returns.
* HistGradientBoosting compares in float64.  With categorical features its
  input first goes through an ``OrdinalEncoder``: a value that is not exactly
  one of the training categories is *unknown* and takes the missing-value
  branch, and inf in a categorical column is rejected.
* Linear models compute ``X @ coef.T + intercept`` in float64.

Private attributes are read where scikit-learn keeps the fitted state there
(``_predictors``, ``_loss``, ``_raw_predict_init``, ...).  A model or option the
IR cannot reproduce raises :class:`~strategies.errors.UnsupportedModelError`.
Inputs on which the IR still differs (each logged or documented where it arises):
a non-integer value in a HistGradientBoosting categorical column (the IR floors
it); float32 input to transformers or to linear models fitted on float32 data
(scikit-learn then computes in float32, the IR in float64); Normalizer rows with
a norm below ``10 * eps``; one-vs-rest rows whose probabilities all underflow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
from sklearn.ensemble._iforest import _average_path_length
from sklearn.utils.validation import check_is_fitted

from ..errors import SUPPORTED_MODELS_DOC, UnsupportedModelError
from ..head import Head, InputSpec
from ..ir import Graph, Imputer, Linear, Normalizer, Op, PostTransform, Scaler, Tree, TreeEnsemble
from ..model import ConvertedModel

logger = logging.getLogger(__name__)

# Largest raw category value a categorical split may have (sets the bitset width).
MAX_CATEGORY = 1 << 16

Flow = Literal["reject", "pass", "absorb"]


@dataclass(frozen=True)
class _Step:
    """One converted estimator: its operators, its head (None for transformers) and input handling.

    ``nan`` / ``inf``: the step rejects such values (``reject``), accepts them and
    may pass them on (``pass``), or accepts them and never outputs them (``absorb``).
    """

    ops: tuple[Op, ...]
    head: Head | None
    nan: Flow
    inf: Flow


def _name(model: Any) -> str:
    cls = type(model)
    public = []
    for part in cls.__module__.split("."):
        if part.startswith("_"):
            break
        public.append(part)
    return ".".join(public + [cls.__qualname__])


def _unsupported(model: Any, reason: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"cannot convert {_name(model)}: {reason} (see {SUPPORTED_MODELS_DOC}).")


def _require(ok: bool, model: Any, reason: str) -> None:
    if not ok:
        raise _unsupported(model, reason)


def _nan_flow(model: Any) -> Flow:
    return "pass" if model.__sklearn_tags__().input_tags.allow_nan else "reject"


def _post_from_link(model: Any) -> PostTransform:
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
        raise _unsupported(model, f"its loss {model.loss!r} has link {link}, which has no post-transform")
    return kinds[link]


def _classifier_head(model: Any, methods: tuple[str, ...], label_rule: str) -> Head:
    classes = np.asarray(model.classes_)
    _require(classes.ndim == 1 and classes.size >= 2, model, "it was fitted on fewer than two classes")
    return Head("classifier", methods, classes=classes, label_rule=label_rule)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- trees


def _preorder(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Node ids in depth-first preorder from root 0 (every child after its parent)."""
    order, stack = [], [0]
    while stack:
        i = stack.pop()
        order.append(i)
        if left[i] >= 0:
            stack.extend((int(right[i]), int(left[i])))
    return np.asarray(order, dtype=np.int64)


def _make_tree(left, right, feature, threshold, missing_left, value, **categorical: Any) -> Tree:
    """A :class:`Tree` from per-node arrays, renumbered when a child precedes its parent."""
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    internal = np.flatnonzero(left >= 0)
    if np.any(left[internal] <= internal) or np.any(right[internal] <= internal):
        order = _preorder(left, right)
        new_id = np.full(left.shape[0], -1, dtype=np.int64)
        new_id[order] = np.arange(order.size)

        def pick(a: Any) -> Any:
            return None if a is None else np.asarray(a)[order]

        left = np.where(left[order] >= 0, new_id[np.maximum(left[order], 0)], -1)
        right = np.where(right[order] >= 0, new_id[np.maximum(right[order], 0)], -1)
        feature, threshold, missing_left, value = map(pick, (feature, threshold, missing_left, value))
        categorical = {k: pick(v) for k, v in categorical.items()}
    return Tree(feature=feature, threshold=threshold, left=left, right=right,
                missing_left=missing_left, value=value, **categorical)


def _sk_tree(tree: Any, value: np.ndarray, features: np.ndarray | None = None) -> Tree:
    """Convert a ``sklearn.tree._tree.Tree`` with the given per-node values."""
    feature = tree.feature.astype(np.int64)
    if features is not None:
        feature = np.where(feature >= 0, np.asarray(features)[np.maximum(feature, 0)], -1)
    return _make_tree(tree.children_left, tree.children_right, feature, tree.threshold,
                      tree.missing_go_to_left.astype(bool), value)


def _check_single_output(model: Any) -> None:
    _require(getattr(model, "n_outputs_", 1) == 1, model,
             f"it has {model.n_outputs_} outputs; multi-output trees are not supported")


def _tree_values(model: Any, tree: Any) -> np.ndarray:
    """Per-node output vector: class fractions (classifier) or the regression value."""
    value = tree.value[:, 0, :]
    return value if hasattr(model, "classes_") else value[:, :1]


def _tree_step(model: Any, estimators: list[Any]) -> _Step:
    _check_single_output(model)
    trees = tuple(_sk_tree(e.tree_, _tree_values(model, e.tree_)) for e in estimators)
    if hasattr(model, "classes_"):
        head = _classifier_head(model, ("predict", "predict_proba"), "argmax")
        n_out = head.classes.size
    else:
        head, n_out = Head("regressor", ("predict",)), 1
    op = TreeEnsemble(trees=trees, n_features=model.n_features_in_, n_outputs=n_out, comparison="<=",
                      compare_dtype="float32", base_score=0.0,
                      aggregation="mean" if len(trees) > 1 else "sum")
    return _Step((op,), head, _nan_flow(model), "reject")


def _decision_tree(model: Any) -> _Step:
    return _tree_step(model, [model])


def _forest(model: Any) -> _Step:
    return _tree_step(model, list(model.estimators_))


def _gradient_boosting(model: Any) -> _Step:
    init = model.init_
    if isinstance(init, str):
        _require(init == "zero", model, f"init={init!r} is not supported")
    else:
        strategy = getattr(init, "strategy", None)
        constant = (type(init).__name__ == "DummyClassifier" and strategy != "stratified") or (
            type(init).__name__ == "DummyRegressor"
        )
        _require(constant, model, f"its init estimator {_name(init)}(strategy={strategy!r}) is not a constant "
                 "(only 'zero', DummyClassifier without 'stratified', and DummyRegressor are supported)")
    # The init prediction does not depend on X: evaluate sklearn's own code on one row.
    base = model._raw_predict_init(np.zeros((1, model.n_features_in_), dtype=np.float32))[0]
    lr = float(model.learning_rate)
    trees, outputs = [], []
    for stage in model.estimators_:
        for k, est in enumerate(stage):
            trees.append(_sk_tree(est.tree_, lr * est.tree_.value[:, 0, 0]))
            outputs.append(k)
    if hasattr(model, "classes_"):
        head = _classifier_head(model, ("predict", "predict_proba", "decision_function"), "raw_ge0")
        post = _post_from_link(model)
    else:
        head, post = Head("regressor", ("predict",)), PostTransform()
    op = TreeEnsemble(trees=tuple(trees), n_features=model.n_features_in_, n_outputs=base.size,
                      comparison="<=", compare_dtype="float32", base_score=base, tree_output=outputs,
                      post_transform=post)
    return _Step((op,), head, "reject", "reject")


def _bit(bitset: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bit ``v`` of a uint32 bitset row, for an array of ``v``."""
    return ((bitset[v >> 5] >> (v & 31).astype(np.uint32)) & 1).astype(bool)


def _hgb_columns(model: Any) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Original column of each predictor column, and the raw categories of each categorical one."""
    pre = model._preprocessor
    n = model.n_features_in_
    if pre is None:
        return np.arange(n), {}
    is_cat = np.asarray(model.is_categorical_, dtype=bool)
    n_cat = int(is_cat.sum())
    layout = pre.output_indices_
    _require(layout["encoder"] == slice(0, n_cat) and layout["numerical"] == slice(n_cat, n), model,
             "its categorical preprocessor has an unexpected column layout")
    columns = np.concatenate([np.flatnonzero(is_cat), np.flatnonzero(~is_cat)])
    categories = {}
    for j, cats in enumerate(pre.named_transformers_["encoder"].categories_):
        cats = np.asarray(cats)
        _require(cats.dtype.kind in "fiub", model,
                 f"categorical feature {columns[j]} has non-numeric categories ({cats.dtype}); "
                 "encode categories as integer codes before fitting")
        cats = cats.astype(np.float64)
        cats = cats[~np.isnan(cats)]
        ok = np.all((cats >= 0) & (cats < MAX_CATEGORY) & (cats == np.floor(cats)))
        _require(bool(ok), model, f"categorical feature {columns[j]} has categories that are not integers "
                 f"in [0, {MAX_CATEGORY}): {cats[:8].tolist()}")
        categories[j] = cats.astype(np.int64)
    return columns, categories


def _hgb_tree(pred: Any, columns: np.ndarray, categories: dict[int, np.ndarray],
              known: np.ndarray, f_idx_map: np.ndarray, words: int) -> Tree:
    nodes = pred.nodes
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, -1, nodes["left"].astype(np.int64))
    right = np.where(leaf, -1, nodes["right"].astype(np.int64))
    feature = nodes["feature_idx"].astype(np.int64)
    missing_left = nodes["missing_go_to_left"].astype(bool)
    is_cat = nodes["is_categorical"].astype(bool) & ~leaf
    bits = np.zeros((len(nodes), words), dtype=np.uint32)
    for i in np.flatnonzero(is_cat):
        f = int(feature[i])
        codes = np.arange(categories[f].size)
        # sklearn: code in the left set -> left; other known code -> right; unknown -> missing branch.
        goes_left = _bit(pred.raw_left_cat_bitsets[nodes["bitset_idx"][i]], codes)
        is_known = _bit(known[f_idx_map[f]], codes)
        goes_left |= ~is_known & missing_left[i]
        # Values that are no training category are unknown: start from the missing branch.
        table = np.full(32 * words, missing_left[i])
        table[categories[f]] = goes_left
        on = np.flatnonzero(table)
        np.bitwise_or.at(bits[i], on >> 5, np.left_shift(np.uint32(1), (on & 31).astype(np.uint32)))
    cat = {}
    if is_cat.any():
        cat = dict(is_categorical=is_cat, cat_bitset=bits, cat_unknown_left=missing_left)
    return _make_tree(left, right, columns[feature], nodes["num_threshold"], missing_left,
                      nodes["value"], **cat)


def _hist_gradient_boosting(model: Any) -> _Step:
    columns, categories = _hgb_columns(model)
    top = max((int(c.max()) for c in categories.values() if c.size), default=0)
    words = top // 32 + 1
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    trees, outputs = [], []
    for iteration in model._predictors:
        for k, pred in enumerate(iteration):
            trees.append(_hgb_tree(pred, columns, categories, known, f_idx_map, words))
            outputs.append(k)
    base = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    post = _post_from_link(model)
    if hasattr(model, "classes_"):
        head = _classifier_head(model, ("predict", "predict_proba", "decision_function"), "raw_gt0")
    else:
        head = Head("regressor", ("predict",))
    op = TreeEnsemble(trees=tuple(trees), n_features=model.n_features_in_, n_outputs=base.size,
                      comparison="<=", compare_dtype="float64", base_score=base, tree_output=outputs,
                      post_transform=post, category_rounding="exact")
    # The categorical encoder rejects inf in categorical columns (numeric columns accept it).
    return _Step((op,), head, "pass", "reject" if categories else "pass")


def _isolation_forest(model: Any) -> _Step:
    subsample = model._max_features != model.n_features_in_
    trees = []
    for est, feats, depths, avg in zip(model.estimators_, model.estimators_features_,
                                       model._decision_path_lengths, model._average_path_length_per_tree):
        trees.append(_sk_tree(est.tree_, depths + avg - 1.0, feats if subsample else None))
    denominator = len(model.estimators_) * _average_path_length([model.max_samples_])[0]
    _require(denominator != 0, model, "its average path length is 0 (max_samples=1)")
    op = TreeEnsemble(trees=tuple(trees), n_features=model.n_features_in_, n_outputs=1, comparison="<=",
                      compare_dtype="float32", base_score=0.0,
                      post_transform=PostTransform("isolation", float(denominator)))
    head = Head("outlier", ("predict", "decision_function", "score_samples"), offset=float(model.offset_))
    return _Step((op,), head, "pass", "pass")


# --------------------------------------------------------------------------- linear models


def _linear_op(model: Any, post: PostTransform = PostTransform()) -> Linear:
    if np.asarray(model.coef_).dtype == np.float32:
        logger.warning("%s was fitted on float32 data: for float32 input scikit-learn computes in float32, "
                       "the converted model in float64", _name(model))
    coef = np.asarray(model.coef_, dtype=np.float64)
    return Linear(coef=np.atleast_2d(coef), intercept=model.intercept_, post_transform=post)


def _linear_classifier(model: Any) -> _Step:
    methods: tuple[str, ...] = ("predict", "decision_function")
    binary = len(model.classes_) == 2
    post = PostTransform()
    kind = type(model).__name__
    if kind == "LogisticRegression":
        methods += ("predict_proba",)
        post = PostTransform("sigmoid" if binary else "softmax")
    elif kind == "SGDClassifier":
        _require(model.loss != "modified_huber", model,
                 "loss='modified_huber' has clipped probabilities, which the IR cannot express")
        if model.loss == "log_loss":
            methods += ("predict_proba",)
            post = PostTransform("sigmoid" if binary else "ovr_normalize")
    head = _classifier_head(model, methods, "raw_gt0")
    return _Step((_linear_op(model, post),), head, "reject", "reject")


def _linear_regressor(model: Any) -> _Step:
    squeeze = np.ndim(model.coef_) == 1
    return _Step((_linear_op(model),), Head("regressor", ("predict",), squeeze=squeeze), "reject", "reject")


# --------------------------------------------------------------------------- transformers


def _scaler(model: Any) -> _Step:
    n = model.n_features_in_
    zeros, ones = np.zeros(n), np.ones(n)
    kind = type(model).__name__
    _require(not getattr(model, "clip", False), model, "clip=True is not supported")
    if kind == "MinMaxScaler":
        op: Op = Scaler(offset=model.min_, scale=model.scale_, mode="mul_add")
    elif kind == "StandardScaler":
        op = Scaler(offset=model.mean_ if model.with_mean else zeros,
                    scale=model.scale_ if model.with_std else ones)
    elif kind == "RobustScaler":
        op = Scaler(offset=model.center_ if model.with_centering else zeros,
                    scale=model.scale_ if model.with_scaling else ones)
    else:
        op = Scaler(offset=zeros, scale=model.scale_)
    return _Step((op,), None, "pass", "reject")


def _normalizer(model: Any) -> _Step:
    return _Step((Normalizer(n_features=model.n_features_in_, norm=model.norm),), None, "reject", "reject")


def _simple_imputer(model: Any) -> _Step:
    _require(not model.add_indicator, model, "add_indicator=True is not supported")
    fill_dtype = np.dtype(model._fill_dtype)
    _require(fill_dtype.kind in "fiub", model, f"it was fitted on non-numeric data ({fill_dtype})")
    fill = np.asarray(model.statistics_).astype(fill_dtype).astype(np.float64)
    missing = model.missing_values
    _require(isinstance(missing, (int, float, np.number)) and not isinstance(missing, bool), model,
             f"missing_values={missing!r} is not a number")
    keep = np.arange(fill.size) if model.keep_empty_features else np.flatnonzero(~np.isnan(fill))
    op = Imputer(fill=fill, keep=keep, missing_value=float(missing))
    if np.isnan(float(missing)):
        nan: Flow = "pass" if np.isnan(fill[keep]).any() else "absorb"
    else:
        nan = "reject"
    return _Step((op,), None, nan, "reject")


# --------------------------------------------------------------------------- assembly

_STEPS: dict[str, Callable[[Any], _Step]] = {
    **dict.fromkeys(["DecisionTreeClassifier", "DecisionTreeRegressor",
                     "ExtraTreeClassifier", "ExtraTreeRegressor"], _decision_tree),
    **dict.fromkeys(["RandomForestClassifier", "RandomForestRegressor",
                     "ExtraTreesClassifier", "ExtraTreesRegressor"], _forest),
    **dict.fromkeys(["GradientBoostingClassifier", "GradientBoostingRegressor"], _gradient_boosting),
    **dict.fromkeys(["HistGradientBoostingClassifier", "HistGradientBoostingRegressor"],
                    _hist_gradient_boosting),
    "IsolationForest": _isolation_forest,
    **dict.fromkeys(["LogisticRegression", "SGDClassifier", "LinearSVC"], _linear_classifier),
    **dict.fromkeys(["LinearRegression", "Ridge", "Lasso", "ElasticNet", "SGDRegressor", "LinearSVR"],
                    _linear_regressor),
    **dict.fromkeys(["StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler"], _scaler),
    "Normalizer": _normalizer,
    "SimpleImputer": _simple_imputer,
}


def _step(model: Any) -> _Step:
    cls = type(model)
    fn = _STEPS.get(cls.__name__) if cls.__module__.startswith("sklearn.") else None
    if fn is None:
        raise _unsupported(model, "it is not a supported estimator type (subclasses of supported "
                           "types are not accepted either, as they may change how they predict)")
    check_is_fitted(model)
    return fn(model)


def _accepts(flows: list[Flow]) -> bool:
    """Whether a value kind is accepted at the input of a chain of steps."""
    for flow in flows:
        if flow == "reject":
            return False
        if flow == "absorb":
            return True
    return True


def _assemble(model: Any, first: Any, steps: list[_Step]) -> ConvertedModel:
    """Chain the steps' operators; ``first`` is the estimator that sees the raw input."""
    ops = tuple(op for s in steps for op in s.ops)
    head = steps[-1].head or Head("transformer", ("transform",), squeeze=False)
    names = getattr(first, "feature_names_in_", None)
    spec = InputSpec(
        n_features=first.n_features_in_,
        allow_nan=_accepts([s.nan for s in steps]),
        allow_inf=_accepts([s.inf for s in steps]),
        feature_names=None if names is None else tuple(names),
    )
    converted = ConvertedModel(Graph(first.n_features_in_, ops), head, spec, _name(model))
    logger.debug("converted %s", converted.summary())
    return converted


def convert_estimator(model: Any) -> ConvertedModel:
    """Convert one fitted scikit-learn estimator or transformer."""
    return _assemble(model, model, [_step(model)])


def _pipeline_steps(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """The active ``(name, estimator)`` steps of a pipeline, nested pipelines flattened."""
    _require(type(model).__name__ == "Pipeline" and type(model).__module__.startswith("sklearn."), model,
             "subclasses of Pipeline are not supported")
    out = []
    for name, est in model.steps:
        if est is None or (isinstance(est, str) and est == "passthrough"):
            continue
        if type(est).__name__ == "Pipeline":
            out.extend(_pipeline_steps(est, f"{prefix}{name}__"))
        else:
            out.append((prefix + name, est))
    return out


def convert_pipeline(model: Any) -> ConvertedModel:
    """Convert a fitted ``Pipeline`` of transformers followed by an optional final estimator."""
    active = _pipeline_steps(model)
    _require(bool(active), model, "it has no steps")
    steps = []
    for i, (name, est) in enumerate(active):
        try:
            step = _step(est)
        except UnsupportedModelError as e:
            raise UnsupportedModelError(f"pipeline step {name!r}: {e}") from None
        _require(i == len(active) - 1 or step.head is None, model,
                 f"step {name!r} ({_name(est)}) is an estimator but is not the last step")
        steps.append(step)
    return _assemble(model, active[0][1], steps)


CONVERTERS: dict[str, Callable[[Any], ConvertedModel]] = {
    **dict.fromkeys(_STEPS, convert_estimator),
    "Pipeline": convert_pipeline,
}
