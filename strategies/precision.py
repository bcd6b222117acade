"""Rewrites that are exact when the model's input holds float32 values only.

LightGBM and scikit-learn's HistGradientBoosting compare in float64 (and so does a
tree ensemble a scaler was folded into), so their kernels gather and compare
64-bit words: half the SIMD lanes of a float32 kernel.  When every input value is
a float32 value (a float32 array: what most serving stacks pass), comparing in
float32 against thresholds rounded the right way gives every comparison the
float64 one gives: for a float32 ``x``, ``x <= t`` iff ``x <= u`` where ``u`` is
the largest float32 ``<= t`` (and ``x < t`` iff ``x <=`` the largest float32
below ``t``), NaN and +-inf included (``trees.common.le_thresholds``).
Categorical and zero-as-missing nodes read the same values either way.

The rewritten graph is only correct for such inputs: plans built from it are
marked ``float32_input`` and the Predictor uses them for float32 arrays only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .ir import INPUT, Graph, Node, TreeEnsemble
from .trees.common import le_thresholds

F32 = np.dtype(np.float32)


def float32_ensemble(op: TreeEnsemble) -> TreeEnsemble:
    """``op`` comparing in float32, exact for float32 inputs (``op`` itself when it already does)."""
    if op.compare_dtype == "float32":
        return op
    trees = []
    for tree in op.trees:
        u = le_thresholds(tree.threshold, op.comparison, F32).astype(np.float64)
        trees.append(dataclasses.replace(tree, threshold=u))  # leaves and categorical nodes: zeroed again
    return dataclasses.replace(op, trees=tuple(trees), comparison="<=", compare_dtype="float32")


def float32_input_graph(graph: Graph) -> Graph | None:
    """``graph`` with every float64-comparing tree ensemble that reads the input directly comparing in
    float32 (exact for inputs of float32 values only), or None when it has none."""
    nodes = list(graph.nodes)
    changed = False
    for i, node in enumerate(nodes):
        op = node.op
        if isinstance(op, TreeEnsemble) and op.compare_dtype == "float64" and node.inputs == (INPUT,):
            nodes[i] = Node(float32_ensemble(op), node.inputs)
            changed = True
    return Graph(graph.n_features, tuple(nodes)) if changed else None
