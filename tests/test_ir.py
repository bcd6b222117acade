"""IR normal form, serialisation, hashing and the reference evaluator on hand-built trees."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import reference
from strategies.head import Head, InputSpec
from strategies.ir import (
    Graph,
    Imputer,
    Linear,
    PostTransform,
    Scaler,
    Tree,
    TreeEnsemble,
    content_hash,
    from_bytes,
    to_bytes,
)
from strategies.model import ConvertedModel


def stump(threshold=0.5, missing_left=True, feature=0, values=(1.0, 2.0)):
    return Tree(
        feature=[feature, -1, -1],
        threshold=[threshold, 0, 0],
        left=[1, -1, -1],
        right=[2, -1, -1],
        missing_left=[missing_left, False, False],
        value=[0.0, values[0], values[1]],
    )


def ensemble(trees, comparison="<=", **kw):
    kw.setdefault("n_features", 2)
    kw.setdefault("n_outputs", 1)
    kw.setdefault("compare_dtype", "float32")
    kw.setdefault("base_score", 0.0)
    return TreeEnsemble(trees=tuple(trees), comparison=comparison, **kw)


def test_threshold_equality_follows_comparison():
    x = np.array([[0.5, 0], [np.nextafter(np.float32(0.5), 1), 0], [0.25, 0]])
    le = reference.evaluate_op(ensemble([stump()], "<="), x)[:, 0]
    lt = reference.evaluate_op(ensemble([stump()], "<"), x)[:, 0]
    assert le.tolist() == [1.0, 2.0, 1.0]
    assert lt.tolist() == [2.0, 2.0, 1.0]


def test_compare_dtype_rounds_input_first():
    # 0.1 as float32 is above 0.1 as float64: a float32 model sends float64 0.1 right of t=float32(0.1)? no: equal.
    t = float(np.float32(0.1))
    x = np.array([[0.1, 0.0]])  # float64 0.1 < float32(0.1)
    op32 = ensemble([stump(threshold=t)], "<", compare_dtype="float32")
    op64 = ensemble([stump(threshold=t)], "<", compare_dtype="float64")
    assert reference.evaluate_op(op32, x)[0, 0] == 2.0  # rounds to t: not < t
    assert reference.evaluate_op(op64, x)[0, 0] == 1.0  # 0.1 < float32(0.1) in float64


def test_missing_and_zero_missing():
    x = np.array([[np.nan, 0], [0.0, 0], [1e-36, 0], [-1.0, 0], [np.inf, 0], [-np.inf, 0]])
    op = ensemble([stump(threshold=-0.5, missing_left=False)])
    assert reference.evaluate_op(op, x)[:, 0].tolist() == [2, 2, 2, 1, 2, 1]
    zm = Tree(
        feature=[0, -1, -1], threshold=[-0.5, 0, 0], left=[1, -1, -1], right=[2, -1, -1],
        missing_left=[True, False, False], value=[0, 1.0, 2.0], zero_missing=[True, False, False],
    )
    out = reference.evaluate_op(ensemble([zm], compare_dtype="float64"), x)[:, 0]
    assert out.tolist() == [1, 1, 1, 1, 2, 1]


def test_categorical_split():
    bits = np.zeros((3, 1), np.uint32)
    bits[0, 0] = (1 << 1) | (1 << 3)  # categories 1 and 3 go left
    tree = Tree(
        feature=[1, -1, -1], threshold=[0, 0, 0], left=[1, -1, -1], right=[2, -1, -1],
        missing_left=[False, False, False], value=[0, 10.0, 20.0],
        is_categorical=[True, False, False], cat_bitset=bits, cat_unknown_left=[True, False, False],
    )
    x = np.array([[0, 1], [0, 3.7], [0, 2], [0, np.nan], [0, -0.5], [0, -3], [0, 40], [0, np.inf]])
    trunc = reference.evaluate_op(ensemble([tree], category_rounding="trunc"), x)[:, 0]
    floor = reference.evaluate_op(ensemble([tree], category_rounding="floor"), x)[:, 0]
    # -0.5 truncates to category 0 (not in set -> right) but floors to -1 (unknown -> left)
    assert trunc.tolist() == [10, 10, 20, 20, 20, 10, 10, 10]
    assert floor.tolist() == [10, 10, 20, 20, 10, 10, 10, 10]


def test_aggregation_base_score_and_tree_output():
    trees = [stump(values=(1, 2)), stump(values=(3, 5)), stump(values=(10, 20))]
    x = np.array([[0.0, 0.0], [1.0, 0.0]])
    op = ensemble(trees, n_outputs=2, tree_output=[0, 1, 0], base_score=[100, 200])
    np.testing.assert_array_equal(reference.evaluate_op(op, x), [[111, 203], [122, 205]])
    mean = ensemble(trees, n_outputs=2, tree_output=[0, 1, 0], base_score=[0, 0], aggregation="mean")
    np.testing.assert_array_equal(reference.evaluate_op(mean, x), [[5.5, 3], [11, 5]])


def test_normal_form_validation():
    with pytest.raises(ValueError, match="greater than its parent"):
        Tree(feature=[0, -1, -1, -1, 0], threshold=[0] * 5, left=[1, -1, -1, -1, 2], right=[4, -1, -1, -1, 3],
             missing_left=[0] * 5, value=[0] * 5)
    with pytest.raises(ValueError, match="splits on feature 5"):
        ensemble([stump(feature=5)])
    with pytest.raises(ValueError, match="values per leaf"):
        ensemble([stump()], n_outputs=3)


def test_normalisation_makes_equal_models_hash_alike():
    a = stump()
    # same tree with junk in leaf rows of feature/threshold and in internal value rows
    b = Tree(feature=[0, 7, 3], threshold=[0.5, 9, 9], left=[1, -1, -1], right=[2, -5, -1],
             missing_left=[True, True, True], value=[42.0, 1.0, 2.0])
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(stump(threshold=0.50001))
    assert content_hash(ensemble([a])) != content_hash(ensemble([a], "<"))


def test_serialisation_round_trip():
    bits = np.zeros((3, 2), np.uint32)
    bits[0] = [5, 1]
    cat = Tree(feature=[1, -1, -1], threshold=[0, 0, 0], left=[1, -1, -1], right=[2, -1, -1],
               missing_left=[True, 0, 0], value=[[0, 0], [1, 2], [3, 4]],
               is_categorical=[1, 0, 0], cat_bitset=bits, cat_unknown_left=[1, 0, 0])
    graph = Graph(2, (
        Imputer(fill=[1.0, 2.0], keep=[0, 1]),
        Scaler(offset=[0.5, 0.25], scale=[2.0, 4.0]),
        ensemble([cat], n_outputs=2, post_transform=PostTransform("softmax")),
    ))
    model = ConvertedModel(graph, Head("classifier", ("predict", "predict_proba"), classes=["a", "b"]),
                           InputSpec(2), "test.Model")
    back = ConvertedModel.from_bytes(model.to_bytes())
    assert back.content_hash() == model.content_hash()
    assert back.head.classes.tolist() == ["a", "b"]
    x = np.array([[np.nan, 1.0], [3.0, 2.0]])
    np.testing.assert_array_equal(reference.predict(back, x, "predict_proba"), reference.predict(model, x, "predict_proba"))
    assert isinstance(from_bytes(to_bytes(graph)), Graph)


def test_linear_head_and_input_checks():
    lin = Linear(coef=[[1.0, -1.0]], intercept=[0.0], post_transform=PostTransform("sigmoid"))
    model = ConvertedModel(Graph(2, (lin,)), Head("classifier", ("predict", "predict_proba", "decision_function"),
                                                   classes=[0, 1], label_rule="raw_gt0"),
                           InputSpec(2, allow_nan=False, allow_inf=False), "test.Logistic")
    x = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    assert reference.predict(model, x).tolist() == [1, 0, 0]
    np.testing.assert_allclose(reference.predict(model, x, "predict_proba")[:, 1], 1 / (1 + np.exp(-np.array([1, 0, -1]))))
    assert reference.predict(model, np.zeros((0, 2)), "predict_proba").shape == (0, 2)
    with pytest.raises(ValueError, match="X has 3 features, but test.Logistic is expecting 2"):
        reference.predict(model, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="2-D array"):
        reference.predict(model, np.zeros(2))
    with pytest.raises(TypeError, match="expects numbers"):
        reference.predict(model, np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="NaN"):
        reference.predict(model, np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="infinity"):
        reference.predict(model, np.array([[np.inf, 0.0]]))
    with pytest.raises(AttributeError, match="no method 'transform'"):
        reference.predict(model, x, "transform")


@pytest.mark.parametrize("rule", ["argmax", "raw_gt0", "raw_ge0", "out_gt_half"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_single_row_finishers_give_what_finish_gives(rule, dtype):
    """``Head.finisher`` takes a shorter way for one row of a binary classifier: same values, dtype, class."""
    head = Head("classifier", ("predict", "predict_proba"), classes=np.array(["no", "yes"]), label_rule=rule)
    near_half = [np.nextafter(dtype(0.5), dtype(d)) for d in (-1, 1)]
    values = [0.0, -0.0, 0.5, 1.0, -1.0, 1e-40, -1e-40, 0.25, 0.75, np.nan, np.inf, -np.inf, *near_half,
              *np.random.default_rng(0).random(200)]
    for method in ("predict", "predict_proba"):
        fast = head.finisher(method)
        for v in values:
            value = np.array([[v]], dtype=dtype)
            want, got = head.finish(method, value), fast(value)
            assert got.dtype == want.dtype and got.shape == want.shape, (method, v)
            np.testing.assert_array_equal(got, want, err_msg=f"{method} {rule} {v!r}")
        many = np.array([[0.2], [0.7], [np.nan]], dtype=dtype)  # more rows: the general way
        np.testing.assert_array_equal(fast(many), head.finish(method, many))
