"""The ``activation``, ``label`` and ``average`` operators: every strategy knob against the reference.

Graphs here end in the operator under test, so it is the task's main op and the knob takes effect; the
scores include exact ties (the first of equal maxima wins), zeros, +-inf and NaN.
"""

from __future__ import annotations

import numpy as np
import pytest

import tuner
from strategies import reference
from strategies.head import Head, InputSpec
from strategies.ir import Graph, Node, PostTransform, content_hash, from_bytes, to_bytes
from strategies.ir.columns import Gather
from strategies.ir.ensembles import Activation, Average, Label
from strategies.model import ConvertedModel
from tolerances import assert_same_labels, assert_scores


def scores(n: int = 200, width: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(n, width)), 1)  # many exact ties
    X[:5] = 0.0
    X[5, 0], X[6, 1], X[7, 0] = np.inf, -np.inf, np.nan
    X[8:12, 0] = [0.5, np.nextafter(0.5, 1), np.nextafter(0.5, 0), -0.0]
    return X


def model_of(graph: Graph) -> ConvertedModel:
    return ConvertedModel(graph, Head("regressor", ("predict",), squeeze=False), InputSpec(graph.n_features), "test")


def run(graph: Graph, X: np.ndarray, backend: str, **knobs) -> tuple[np.ndarray, np.ndarray]:
    model = model_of(graph)
    return tuner.compile(model, backend=backend, **knobs).predict(X), reference.predict(model, X)


@pytest.mark.parametrize("method", ["fused", "explicit"])
@pytest.mark.parametrize("kind", ["sigmoid", "softmax", "exp", "ovr_normalize"])
def test_activation(kind, method):
    X = np.nan_to_num(scores(), posinf=30.0, neginf=-30.0)
    got, want = run(Graph(3, (Activation(3, PostTransform(kind)),)), X, "torch", method=method)
    assert_scores(got, want, what=f"{kind} {method}")
    pair = Graph(3, (Gather(3, np.array([0])), Activation(1, PostTransform("sigmoid", 2.0), pair=True)))
    got, want = run(pair, X, "torchscript", method=method)
    assert_scores(got, want, what=f"pair {method}")


@pytest.mark.parametrize("method", ["gather", "onehot"])
@pytest.mark.parametrize("rule", ["argmax", "gt0", "ge0", "gt_half"])
def test_label_binary(rule, method):
    X = scores()[:, :1]
    op = Label(1, rule, [1, 0], [-2.0, 7.5], 2)
    got, want = run(Graph(1, (op,)), X, "torch", method=method)
    assert_same_labels(got, want, f"{rule} {method}")
    if rule == "argmax":
        want_idx = np.argmax(np.column_stack([1 - X[:, 0], X[:, 0]]), axis=1)
        np.testing.assert_array_equal(want, op.table()[want_idx])


@pytest.mark.parametrize("method", ["gather", "onehot"])
def test_label_argmax_ties(method):
    X = np.nan_to_num(scores(), nan=0.0)
    op = Label(3, "argmax", [2, 0, 1], [1.0, 1.0, 1.0], 3)
    got, want = run(Graph(3, (op,)), X, "torch", method=method)
    np.testing.assert_array_equal(np.argmax(want, axis=1), np.array([2, 0, 1])[np.argmax(X, 1)])
    assert_same_labels(got, want, method)


def average_graph() -> Graph:
    """Three members reading columns of the input, one writing only some of the outputs."""
    nodes = (Node(Gather(4, np.array([0, 1, 2])), (-1,)), Node(Gather(4, np.array([3, 1])), (-1,)),
             Node(Gather(4, np.array([2, 3, 0])), (-1,)),
             Node(Average((3, 2, 3), [0, 1, 2, 2, 0, 1, 2, 0], [1.0, 0.5, 2.0], 3, 3.5), (0, 1, 2)))
    return Graph(4, nodes)


@pytest.mark.parametrize("backend", ["torch", "torchscript"])
@pytest.mark.parametrize("method", ["sequential", "gemm"])
def test_average(method, backend):
    X = np.nan_to_num(scores(width=4), nan=0.0, posinf=1e3, neginf=-1e3)
    got, want = run(average_graph(), X, backend, method=method)
    assert_scores(got, want, what=method)
    if method == "sequential":
        np.testing.assert_array_equal(got, want)  # the same adds in the same order


def test_average_sequential_keeps_inf():
    """``sequential`` places by gathers: an infinite member output stays infinite (as scikit-learn's sum)."""
    X = np.array([[np.inf, 1.0, 2.0, 3.0]])
    got, want = run(average_graph(), X, "torch", method="sequential")
    np.testing.assert_array_equal(got, want)
    assert np.isinf(got).any()


def test_all_ops_tvm_and_codec():
    """A graph with all three operators (knobs off their defaults on the main one) through TVM Relax; each
    operator round-trips through the byte encoding with its content hash."""
    X = np.nan_to_num(scores(60, 4), nan=0.0, posinf=5.0, neginf=-5.0)
    nodes = (Node(Activation(4, PostTransform("softmax")), (-1,)),
             Node(Label(4, "argmax", [0, 1, 2, 0], [1.0, 1.0, 1.0, 2.0], 3), (0,)),
             Node(Gather(4, np.array([1, 3, 0])), (0,)),
             Node(Average((3, 3), [0, 1, 2, 0, 1, 2], [1.0, 1.0], 3, 2.0), (1, 2)))
    graph = Graph(4, nodes)
    got, want = run(graph, X, "tvm", method="gemm")
    assert_scores(got, want, what="tvm")
    got, want = run(Graph(4, (Activation(4, PostTransform("softmax")),)), X, "tvm", method="explicit")
    assert_scores(got, want, what="tvm explicit softmax")
    got, want = run(Graph(4, (nodes[1].op,)), X, "tvm", method="onehot")
    assert_same_labels(got, want, "tvm onehot label")
    for node in graph.nodes:
        back = from_bytes(to_bytes(node.op))
        assert type(back) is type(node.op) and content_hash(back) == content_hash(node.op)
