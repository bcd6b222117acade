"""Tree-based scikit-learn estimators: decision trees, forests, gradient boosting, HistGradientBoosting,
isolation forests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np
from sklearn.ensemble._iforest import _average_path_length

from ...head import Head
from ...ir import PostTransform, Tree, TreeEnsemble
from ...ir.ensembles import Label
from ._common import MAX_CATEGORY, Step, classifier_head, logger, name_of, nan_flow, post_from_link, require
from ._compose import _concat
from ._graph import Builder, Col, Converter, Value, apply_step, union_taint


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


def _tree_values(model: Any, tree: Any) -> np.ndarray:
    """Per-node output vector: the regression value of every output, or the class fractions of every output
    side by side (output ``k``'s first ``n_classes_[k]`` columns of ``tree.value[:, k]``)."""
    if not hasattr(model, "classes_"):
        return tree.value[:, :, 0]
    counts = np.atleast_1d(model.n_classes_)
    return np.concatenate([tree.value[:, k, :int(c)] for k, c in enumerate(counts)], axis=1)


def _tree_ensemble(model: Any, estimators: list[Any]) -> TreeEnsemble:
    """The trees' mean (a forest's ``predict`` / ``predict_proba`` before the per-output split)."""
    trees = tuple(_sk_tree(e.tree_, _tree_values(model, e.tree_)) for e in estimators)
    return TreeEnsemble(trees=trees, n_features=model.n_features_in_, n_outputs=trees[0].n_values,
                        comparison="<=", compare_dtype="float32", base_score=0.0,
                        aggregation="mean" if len(trees) > 1 else "sum")


def _tree_step(model: Any, estimators: list[Any]) -> Step:
    """One-output classifiers (one class included) and regressors with any number of outputs."""
    op = _tree_ensemble(model, estimators)
    if not hasattr(model, "classes_"):
        return Step((op,), Head("regressor", ("predict",)), nan_flow(model), "reject")
    classes = np.asarray(model.classes_)
    if classes.size == 1:  # fitted on one class: predict is that class, predict_proba one column of ones
        head = Head("classifier", ("predict", "predict_proba"), classes=classes)
    else:
        head = classifier_head(model, ("predict", "predict_proba"), "argmax")
    return Step((op,), head, nan_flow(model), "reject")


def _multi_output_classifier(model: Any, estimators: list[Any], b: Builder, x: Value) -> tuple[Value, Head | None]:
    """``predict`` of a classifier fitted on a 2-D ``y``: per output, the first arg-max of its class
    fractions, as that output's class value in the array type of ``classes_[0]`` (as scikit-learn fills
    its result).  ``predict_proba`` (a list of one array per output) has no single-array form: refused."""
    first = np.asarray(model.classes_[0])
    parts = []
    proba, _ = apply_step(b, x, Step((_tree_ensemble(model, estimators),), None, nan_flow(model), "reject"), model)
    start = 0
    for k, cls in enumerate(model.classes_):
        cls = np.asarray(cls)
        require(cls.dtype.kind in "biuf" and first.dtype.kind in "biuf", model,
                f"output {k} has {cls.dtype} classes; multi-output classifiers need numeric classes")
        values = cls.astype(first.dtype).astype(np.float64)
        block = b.gather(proba, range(start, start + cls.size))
        if cls.size == 1:  # one class: both label indices of a one-column input write it
            values = np.repeat(values, 2)
        label = Label(block.width, "argmax", np.zeros(values.size, np.int32), values)
        parts.append(b.add(label, [block], [Col(taint=union_taint(block.cols))]))
        start += cls.size
    logger.info("%s: predict_proba is not converted (scikit-learn returns one array per output)", name_of(model))
    return _concat(b, parts, x, False), Head("regressor", ("predict",), squeeze=False)


def _trees_converter(estimators: Callable[[Any], list[Any]]) -> Converter:
    def convert(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
        if hasattr(model, "classes_") and model.n_outputs_ > 1:
            return _multi_output_classifier(model, estimators(model), b, x)
        return apply_step(b, x, _tree_step(model, estimators(model)), model)

    return convert


decision_tree = _trees_converter(lambda m: [m])
forest = _trees_converter(lambda m: list(m.estimators_))


def _gradient_boosting(model: Any) -> Step:
    init = model.init_
    if isinstance(init, str):
        require(init == "zero", model, f"init={init!r} is not supported")
    else:
        strategy = getattr(init, "strategy", None)
        constant = (type(init).__name__ == "DummyClassifier" and strategy != "stratified") or (
            type(init).__name__ == "DummyRegressor"
        )
        require(constant, model, f"its init estimator {name_of(init)}(strategy={strategy!r}) is not a constant "
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
        head = classifier_head(model, ("predict", "predict_proba", "decision_function"), "raw_ge0")
        post = post_from_link(model)
    else:
        head, post = Head("regressor", ("predict",)), PostTransform()
    op = TreeEnsemble(trees=tuple(trees), n_features=model.n_features_in_, n_outputs=base.size,
                      comparison="<=", compare_dtype="float32", base_score=base, tree_output=outputs,
                      post_transform=post)
    return Step((op,), head, "reject", "reject")


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
    require(layout["encoder"] == slice(0, n_cat) and layout["numerical"] == slice(n_cat, n), model,
             "its categorical preprocessor has an unexpected column layout")
    columns = np.concatenate([np.flatnonzero(is_cat), np.flatnonzero(~is_cat)])
    categories = {}
    for j, cats in enumerate(pre.named_transformers_["encoder"].categories_):
        cats = np.asarray(cats)
        require(cats.dtype.kind in "fiub", model,
                 f"categorical feature {columns[j]} has non-numeric categories ({cats.dtype}); "
                 "encode categories as integer codes before fitting")
        cats = cats.astype(np.float64)
        cats = cats[~np.isnan(cats)]
        ok = np.all((cats >= 0) & (cats < MAX_CATEGORY) & (cats == np.floor(cats)))
        require(bool(ok), model, f"categorical feature {columns[j]} has categories that are not integers "
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


def _hist_gradient_boosting(model: Any) -> Step:
    """The ensemble as one :class:`Step`.  Its flows are per step, not per column: with categorical
    features it refuses inf in every column.  :func:`hist_gradient_boosting` refuses it in the
    categorical columns only, as scikit-learn does."""
    step, categorical = _hgb_step(model)
    return replace(step, inf="reject") if categorical else step


def hist_gradient_boosting(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """HistGradientBoosting as a graph converter.

    scikit-learn sends the categorical columns through an ``OrdinalEncoder``, which refuses +-inf;
    the numeric columns go to the trees as they are, where +-inf is compared like any number
    (``x <= threshold``, float64; a split of NaN from all numbers has threshold +inf).  So only
    the input columns that reach a categorical column refuse inf; NaN passes everywhere.
    """
    step, categorical = _hgb_step(model)
    if categorical:
        b.refuse([x.cols[j] for j in categorical], ("inf",), model)
    return apply_step(b, x, step, model)


def _hgb_step(model: Any) -> tuple[Step, list[int]]:
    """The ensemble's step (accepting NaN and inf everywhere) and the model's categorical columns."""
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
    post = post_from_link(model)
    if hasattr(model, "classes_"):
        head = classifier_head(model, ("predict", "predict_proba", "decision_function"), "raw_gt0")
    else:
        head = Head("regressor", ("predict",))
    op = TreeEnsemble(trees=tuple(trees), n_features=model.n_features_in_, n_outputs=base.size,
                      comparison="<=", compare_dtype="float64", base_score=base, tree_output=outputs,
                      post_transform=post, category_rounding="exact")
    return Step((op,), head, "pass", "pass"), sorted(int(columns[j]) for j in categories)


def _isolation_forest(model: Any) -> Step:
    subsample = model._max_features != model.n_features_in_
    trees = []
    for est, feats, depths, avg in zip(model.estimators_, model.estimators_features_,
                                       model._decision_path_lengths, model._average_path_length_per_tree):
        trees.append(_sk_tree(est.tree_, depths + avg - 1.0, feats if subsample else None))
    denominator = len(model.estimators_) * _average_path_length([model.max_samples_])[0]
    require(denominator != 0, model, "its average path length is 0 (max_samples=1)")
    op = TreeEnsemble(trees=tuple(trees), n_features=model.n_features_in_, n_outputs=1, comparison="<=",
                      compare_dtype="float32", base_score=0.0,
                      post_transform=PostTransform("isolation", float(denominator)))
    head = Head("outlier", ("predict", "decision_function", "score_samples"), offset=float(model.offset_))
    return Step((op,), head, "pass", "pass")


STEPS: dict = {  # class name -> converter(model, b, x): decision trees and forests (the rest: ``__init__``)
    **dict.fromkeys(["DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier",
                     "ExtraTreeRegressor"], decision_tree),
    **dict.fromkeys(["RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
                     "ExtraTreesRegressor"], forest),
}
