"""Column-routing and encoding ops (gather, concat, constant, imputer, lookup, indicator, binarize) built by
hand into small random DAGs, compiled with ``CompiledTask`` on every torch-family backend and compared with
the NumPy oracle (``strategies.reference.evaluate``).

Inputs are hostile on purpose: NaN, the boundary's codes -1 (unknown string) and -2 (None), -0.0,
non-integer values, values outside every category range, huge values and +-inf.  Column ops must match the
reference bit for bit (``assert_array_equal``, NaN == NaN); graphs ending in a linear model within the
project's score tolerance.  ``torch`` and ``torchscript`` run every case; ``tvm`` and ``inductor`` one
combined graph each (a build costs seconds).

Also: ``Graph`` validation, IR serialisation of a DAG (``to_bytes`` / ``from_bytes`` / ``content_hash``),
``eliminate_dead`` and ``prune``.
"""

from __future__ import annotations

import numpy as np
import pytest

from strategies import reference
from strategies.backends.registry import get_backend
from strategies.compile import CompiledTask, resolve_config
from strategies.ground.errors import InvalidConfigError
from strategies.ir import (
    INPUT,
    Graph,
    Imputer,
    Linear,
    Node,
    PostTransform,
    Scaler,
    content_hash,
    eliminate_dead,
    from_bytes,
    prune,
    to_bytes,
)
from strategies.ir.columns import Binarize, Concat, Constant, Gather, Indicator, Lookup
from tolerances import assert_scores

NAN = float("nan")
N_IN = 8
EVERY_CASE_BACKENDS = ("torch", "torchscript")
METHODS = ("index", "compare")

# values every input column draws from: small integer codes (categories), the boundary's codes,
# non-integers, out-of-range integers, huge values and infinities
POOL = np.array([0, 1, 2, 3, 4, 5, 7, -1, -2, NAN, NAN, -0.0, 0.5, 2.5, -1.5, 1 + 2**-52, 3 - 2**-51,
                 9, 40, 65535, 70000, -65537, 1e9, 1e300, -1e300, np.inf, -np.inf])


def hostile_input(n: int = 300, seed: int = 0, width: int = N_IN) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.choice(POOL, size=(n, width))
    noise = rng.random((n, width)) < 0.1  # and a few plain normals
    x[noise] = rng.normal(0, 3, noise.sum())
    x[:len(POOL), 0] = POOL  # every pool value at least once in column 0
    return x


def run(graph: Graph, X: np.ndarray, backend: str = "torch", output: str = "out", **knobs) -> np.ndarray:
    task = CompiledTask(graph, resolve_config(graph, {"backend": backend, "threads": 1, "knobs": knobs}))
    return task(X, output)


def skip_unless_available(backend: str) -> None:
    reason = get_backend(backend).unavailable_reason()
    if reason:
        pytest.skip(f"backend {backend!r} unavailable: {reason}")


# --------------------------------------------------------------------------- lookup tables


class LookupBuilder:
    """Collects per-column encodings into one ``Lookup`` (entries and outputs in the op's own terms)."""

    def __init__(self, n_features: int):
        self.n_features = n_features
        self.column, self.value, self.targets, self.weight = [], [], [], []
        self.source, self.unknown = [], []

    def _out(self, col: int, unknown: float) -> int:
        self.source.append(col)
        self.unknown.append(unknown)
        return len(self.source) - 1

    def _entry(self, col: int, value: float, target: int, weight: float) -> None:
        self.column.append(col); self.value.append(value)  # noqa: E702
        self.targets.append(target); self.weight.append(weight)  # noqa: E702

    def one_hot(self, col: int, cats, *, drop_first: bool = False, infrequent=()) -> "LookupBuilder":
        """One output per kept category (weight 1); ``drop_first``: the first category writes nothing;
        ``infrequent``: these categories (and unknown values) share one extra output."""
        rare = [c in infrequent for c in cats]
        outs = {i: self._out(col, 0.0) for i in range(len(cats)) if not (drop_first and i == 0) and not rare[i]}
        inf_out = self._out(col, 1.0) if infrequent else None
        for i, c in enumerate(cats):
            if i in outs:
                self._entry(col, c, outs[i], 1.0)
            elif rare[i]:
                self._entry(col, c, inf_out, 1.0)
            else:
                self._entry(col, c, -1, 0.0)
        return self

    def ordinal(self, col: int, cats, codes=None, *, unknown: float = -1.0) -> "LookupBuilder":
        """One output: category ``cats[i]`` -> ``codes[i]`` (default ``i``; may be NaN)."""
        codes = list(range(len(cats))) if codes is None else codes
        o = self._out(col, unknown)
        for c, w in zip(cats, codes):
            self._entry(col, c, o, w)
        return self

    def target(self, col: int, cats, weights, unknown) -> "LookupBuilder":
        """``len(unknown)`` outputs (classes); ``weights[i][k]`` is category ``i``'s weight for class ``k``."""
        outs = [self._out(col, u) for u in unknown]
        for c, ws in zip(cats, weights):
            for o, w in zip(outs, ws):
                self._entry(col, c, o, w)
        return self

    def empty(self, col: int, unknown: float) -> "LookupBuilder":
        """An output whose column has no category at all: always ``unknown``."""
        self._out(col, unknown)
        return self

    def op(self) -> Lookup:
        return Lookup(n_features=self.n_features, column=np.array(self.column, np.int32), value=self.value,
                      target=np.array(self.targets, np.int32), weight=self.weight,
                      source=np.array(self.source, np.int32), unknown=self.unknown)


def integer_lookup(n_features: int, seed: int, nan_unknown: bool = True) -> Lookup:
    """One-hot (with NaN / None / unknown codes as categories, drop, infrequent), ordinal (NaN code, NaN
    unknown) and target-like (NaN weights, NaN key, several classes) encodings of integer categories.
    ``nan_unknown`` false: unknown values encode as numbers (NaN weights of some categories remain)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_features)
    c = [perm[k % n_features] for k in range(7)]
    u = NAN if nan_unknown else 0.75
    w = rng.normal(size=(4, 3)).round(3)
    w[1, 1] = NAN
    return (LookupBuilder(n_features)
            .one_hot(int(c[0]), [0.0, 1.0, 2.0, NAN])
            .one_hot(int(c[1]), [3.0, 0.0, -2.0, 5.0], drop_first=True, infrequent=(5.0,))
            .ordinal(int(c[2]), [0.0, 1.0, 3.0, 4.0, NAN], codes=[0, 1, 2, 3, NAN], unknown=u)
            .ordinal(int(c[3]), [-1.0, 2.0, 7.0], unknown=-1.0)
            .target(int(c[4]), [0.0, 1.0, 2.0, NAN], w, unknown=[0.25, u, -0.5])
            .target(int(c[5]), [1.0, 65535.0, 4.0], [[0.5], [NAN], [-3.0]], unknown=[0.125])
            .empty(int(c[6]), 9.0)
            .one_hot(int(c[0]), [2.0, 0.0])  # a second encoding of column c[0] (two encoders read it)
            .op())


def float_lookup(n_features: int, nan_unknown: bool = True) -> Lookup:
    """Categories that are no integers (the ``index`` method cannot serve them: ``compare`` does)."""
    return (LookupBuilder(n_features)
            .one_hot(0, [0.5, 2.5, -1.5, NAN])
            .ordinal(1, [1 + 2**-52, 0.0, 1e300], unknown=-7.0)
            .target(2, [-0.0, 3 - 2**-51, NAN], [[1.0, NAN], [2.0, 3.0], [NAN, 4.0]],
                    unknown=[NAN if nan_unknown else -0.25, 0.5])
            .op())


LOOKUPS = {
    "one_hot": lambda: LookupBuilder(N_IN).one_hot(0, [0.0, 1.0, 2.0, 3.0]).one_hot(3, [NAN, -2.0, -1.0, 4.0])
    .op(),
    "one_hot_drop_infrequent": lambda: LookupBuilder(N_IN).one_hot(1, [2.0, 0.0, 1.0, 3.0], drop_first=True,
                                                                   infrequent=(1.0, 3.0)).op(),
    "ordinal": lambda: LookupBuilder(N_IN).ordinal(2, [0.0, 1.0, 2.0, NAN], [0, 1, 2, NAN], unknown=NAN)
    .ordinal(5, [7.0, 3.0, -2.0], unknown=-1.0).op(),
    "target": lambda: LookupBuilder(N_IN).target(4, [0.0, 1.0, 9.0, NAN],
                                                 [[0.1, 0.2], [NAN, 0.4], [0.5, NAN], [0.7, 0.8]],
                                                 unknown=[0.3, NAN]).op(),
    "empty_column": lambda: LookupBuilder(N_IN).empty(6, 2.5).one_hot(6, []).ordinal(7, [40.0]).op(),
    "mixed": lambda: integer_lookup(N_IN, seed=3),
    "wide_range": lambda: LookupBuilder(N_IN).ordinal(0, [-65535.0 / 2 + 0.5, 0.0, 32767.0], unknown=NAN)
    .one_hot(1, [65535.0, 0.0]).op(),
}


# --------------------------------------------------------------------------- graphs


def column_ops_graph(seed: int, lookup_last: bool = False, compare_lookup: bool = True) -> Graph:
    """X(8) -> gather -> imputer (per-column markers, NaN and -2) -> lookup(s); concatenated with a
    binarize, an indicator and a constant; then a linear model with a post-transform (unless
    ``lookup_last``: then the integer lookup is the task's main op and its ``method`` knob applies).
    ``compare_lookup``: include a lookup of non-integer categories (always served by ``compare``)."""
    rng = np.random.default_rng(seed)
    cols = rng.permutation(N_IN)[:6].tolist() + [int(rng.integers(N_IN))]  # one column twice
    nodes = [Node(Gather(N_IN, cols), (INPUT,))]  # 0: 7 columns
    markers = [NAN, -2.0, NAN, -2.0, 3.0, NAN, -1.0]
    fill = [1.0, 0.0, -7.0, 5.0, NAN, 2.0, 4.0]  # a NaN fill keeps the column missing
    nodes.append(Node(Imputer(fill=fill, keep=[0, 1, 2, 3, 4, 5, 6], missing_per_column=markers), (0,)))  # 1
    nodes.append(Node(Binarize(N_IN, rng.choice([0.0, 1.5, -2.0, 4.0, -np.inf, np.inf], N_IN)), (INPUT,)))  # 2
    nodes.append(Node(Indicator(N_IN, [7, 0, 3, 3], missing_per_column=[NAN, -2.0, -1.0, NAN]), (INPUT,)))  # 3
    nodes.append(Node(Constant(N_IN, [1.5, -2.0, 0.0]), (INPUT,)))  # 4
    flt = float_lookup(7, nan_unknown=lookup_last) if compare_lookup else integer_lookup(7, seed + 1, False)
    nodes.append(Node(flt, (1,)))  # 5: compare only (or a second index lookup)
    nodes.append(Node(Indicator(7, [0, 1, 2], missing_value=-2.0), (1,)))  # 6: after the imputer
    parts = [5, 2, 3, 4, 6]
    if not lookup_last:
        nodes.append(Node(integer_lookup(7, seed, nan_unknown=False), (1,)))
        parts.insert(0, len(nodes) - 1)
    widths = tuple(nodes[p].op.output_type().width for p in parts)
    nodes.append(Node(Concat(widths), tuple(parts)))
    if lookup_last:
        cat = len(nodes) - 1
        nodes.append(Node(Gather(sum(widths), [0, 2, 4, 6, 9, 12, sum(widths) - 1]), (cat,)))
        nodes.append(Node(integer_lookup(7, seed), (len(nodes) - 1,)))
        return Graph(N_IN, tuple(nodes))
    width = sum(widths)
    n_out = 3
    coef = rng.normal(size=(n_out, width))
    post = PostTransform("softmax") if seed % 2 == 0 else PostTransform("ovr_normalize")
    nodes.append(Node(Linear(coef=coef, intercept=rng.normal(size=n_out), post_transform=post),
                      (len(nodes) - 1,)))
    return Graph(N_IN, tuple(nodes))


def single_op_graphs() -> dict[str, Graph]:
    g = {
        "gather_repeat": Graph(N_IN, (Gather(N_IN, [7, 0, 0, 3]),)),
        "gather_empty_concat": Graph(N_IN, (
            Node(Gather(N_IN, []), (INPUT,)), Node(Gather(N_IN, [2, 1]), (INPUT,)),
            Node(Concat((0, 2, N_IN)), (0, 1, INPUT)))),
        "concat_same_value_twice": Graph(N_IN, (Node(Concat((N_IN, N_IN)), (INPUT, INPUT)),)),
        "constant": Graph(N_IN, (Constant(N_IN, [1.0, NAN, -np.inf, 0.0]),)),
        "imputer_per_column": Graph(N_IN, (Imputer(
            fill=[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], keep=[0, 1, 2, 3, 5, 6, 7],
            missing_per_column=[NAN, -2.0, -1.0, 0.0, np.inf, NAN, -np.inf, 2.5]),)),
        "imputer_none_code": Graph(N_IN, (Imputer(fill=np.arange(N_IN) * 1.0, keep=np.arange(N_IN),
                                                   missing_value=-2.0),)),
        "indicator_per_column": Graph(N_IN, (Indicator(N_IN, [0, 1, 2, 5, 5, 7],
                                                       missing_per_column=[NAN, -2.0, -1.0, np.inf, NAN, 0.0]),)),
        "indicator_nan": Graph(N_IN, (Indicator(N_IN, [6, 4, 2]),)),
        "indicator_none_code": Graph(N_IN, (Indicator(N_IN, [1, 3], missing_value=-2.0),)),
        "binarize": Graph(N_IN, (Binarize(N_IN, [0.0, -0.0, 1.0, -2.0, 0.5, np.inf, -np.inf, 1e300]),)),
        "binarize_scalar": Graph(N_IN, (Binarize(N_IN, 2.0),)),
    }
    return g


SINGLE = single_op_graphs()


@pytest.mark.parametrize("backend", EVERY_CASE_BACKENDS)
@pytest.mark.parametrize("case", sorted(SINGLE))
def test_single_column_op_matches_reference(case, backend):
    graph = SINGLE[case]
    X = hostile_input(seed=len(case))
    np.testing.assert_array_equal(run(graph, X, backend), reference.evaluate(graph, X), err_msg=case)


@pytest.mark.parametrize("backend", EVERY_CASE_BACKENDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", sorted(LOOKUPS))
def test_lookup_matches_reference(case, method, backend):
    graph = Graph(N_IN, (LOOKUPS[case](),))
    X = hostile_input(seed=7)
    np.testing.assert_array_equal(run(graph, X, backend, method=method), reference.evaluate(graph, X),
                                  err_msg=f"{case} with method={method}")


@pytest.mark.parametrize("backend", EVERY_CASE_BACKENDS)
def test_non_integer_categories_need_compare(backend):
    graph = Graph(N_IN, (float_lookup(N_IN),))
    X = hostile_input(seed=11)
    with pytest.raises(InvalidConfigError, match="method='index' needs integer categories"):
        run(graph, X, backend, method="index")
    np.testing.assert_array_equal(run(graph, X, backend, method="compare"), reference.evaluate(graph, X))


@pytest.mark.parametrize("backend", EVERY_CASE_BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_dag_with_linear_head(seed, backend):
    graph = column_ops_graph(seed)
    assert not graph.is_chain
    X = hostile_input(seed=100 + seed)
    for output in ("out", "raw"):
        got, want = run(graph, X, backend, output), reference.evaluate(graph, X, output=output)
        assert np.isnan(want).any() and not np.isnan(want).all()  # NaN weights reach the linear model
        assert_scores(got, want, what=f"seed {seed} {output} on {backend}")


@pytest.mark.parametrize("backend", EVERY_CASE_BACKENDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [0, 1])
def test_random_dag_ending_in_lookup(seed, method, backend):
    graph = column_ops_graph(seed, lookup_last=True)
    X = hostile_input(seed=200 + seed)
    np.testing.assert_array_equal(run(graph, X, backend, method=method), reference.evaluate(graph, X))


@pytest.mark.slow
@pytest.mark.parametrize("backend,compare_lookup", [("tvm", False), ("inductor", True)])
def test_combined_graph_on_compiled_backends(backend, compare_lookup):
    """The whole DAG (gather, imputer, lookups by ``index`` and by ``compare``, binarize, indicators,
    constant, concat, linear + softmax) as one compiled program.  On tvm the non-integer lookup is swapped
    for a second integer one: ``compare`` lookups do not import into tvm (``test_compare_lookup_on_tvm``)."""
    skip_unless_available(backend)
    graph = column_ops_graph(0, compare_lookup=compare_lookup)
    X = hostile_input(n=257, seed=300)  # not the example batch size: the batch dimension is dynamic
    task = CompiledTask(graph, resolve_config(graph, {"backend": backend, "threads": 1}))
    assert_scores(task(X), reference.evaluate(graph, X), what=backend)
    assert_scores(task(X[:1]), reference.evaluate(graph, X[:1]), what=f"{backend}, one row")


@pytest.mark.slow
def test_compare_lookup_on_tvm():
    """BUG (tvm backend): ``LookupCompare`` computes ``m.to(float64) @ W``; TVM's exported-program importer
    maps ``aten.matmul`` to ``relax.matmul(..., out_dtype="float32")``, so the following
    ``torch.where(known, out, unknown)`` mixes float32 and float64 and the import fails with
    "Binary operators must have the same datatype".  Any lookup with non-integer categories (or
    ``method='compare'``) cannot be built on ``tvm``."""
    skip_unless_available("tvm")
    graph = Graph(N_IN, (float_lookup(N_IN),))
    X = hostile_input(n=64, seed=301)
    np.testing.assert_array_equal(run(graph, X, "tvm", method="compare"), reference.evaluate(graph, X))


@pytest.mark.slow
def test_linear_stays_float64_on_tvm():
    """BUG (tvm backend): the same ``out_dtype="float32"`` makes the ``matmul`` strategy's float64 linear
    model float32 on ``tvm``: ``[1e8 + 1, 1e8] @ [1, -1]`` gives 0 instead of 1."""
    skip_unless_available("tvm")
    graph = Graph(2, (Linear(coef=[[1.0, -1.0]], intercept=[0.0]),))
    X = np.array([[1e8 + 1.0, 1e8], [3.0, 1.0]])
    assert_scores(run(graph, X, "tvm", dtype="float64"), reference.evaluate(graph, X))


# --------------------------------------------------------------------------- lookups the IR allows


@pytest.mark.parametrize("method", METHODS)
def test_lookup_entry_of_a_column_no_output_reads(method):
    """A known category of a column that no output reads (target -1) is legal IR (a dropped one-hot column
    of an encoder whose other outputs were all dropped too) and must not break either method."""
    op = Lookup(n_features=2, column=[0, 0, 1], value=[0.0, 1.0, 5.0], target=[0, -1, -1],
                weight=[1.0, 0.0, 0.0], source=[0], unknown=[7.0])
    graph = Graph(2, (op,))
    X = np.array([[0, 5], [1, 3], [2, 5], [NAN, 1]], float)
    np.testing.assert_array_equal(run(graph, X, method=method), reference.evaluate(graph, X))


@pytest.mark.parametrize("method", METHODS)
def test_lookup_infinite_weights(method):
    op = Lookup(n_features=1, column=[0, 0, 0], value=[0.0, 1.0, 2.0], target=[0, 0, 0],
                weight=[np.inf, -np.inf, NAN], source=[0], unknown=[np.inf])
    graph = Graph(1, (op,))
    X = np.array([[0.0], [1.0], [2.0], [3.0], [NAN]])
    np.testing.assert_array_equal(run(graph, X, method=method), reference.evaluate(graph, X))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cats", [[2.0**53 + 2, 2.0**53 + 4], [1e300], [-(2.0**62)]],
                         ids=["above_2**53", "1e300", "-2**62"])
def test_lookup_huge_integer_categories(cats, method):
    """Integer categories where x +- 1 is not representable: only exact matches may hit them (``index``
    refuses such categories with InvalidConfigError rather than give a wrong slot)."""
    k = len(cats)
    op = Lookup(n_features=1, column=[0] * k, value=cats, target=[0] * k, weight=np.arange(1.0, k + 1),
                source=[0], unknown=[-5.0])
    graph = Graph(1, (op,))
    X = np.array([[c] for c in cats] + [[0.0], [NAN], [np.inf], [-np.inf], [np.nextafter(cats[0], 0)]])
    try:
        got = run(graph, X, method=method)
    except InvalidConfigError:
        assert method == "index"
        return
    np.testing.assert_array_equal(got, reference.evaluate(graph, X))


def test_lookup_infinite_category():
    """An infinite category is legal IR (Lookup takes any float64 value): ``compare`` must serve it, and
    ``index`` must serve it or refuse it with InvalidConfigError (not crash while sizing its table)."""
    op = Lookup(n_features=2, column=[0, 1, 1], value=[np.inf, np.inf, 1.0], target=[0, 1, 1],
                weight=[2.0, 3.0, 4.0], source=[0, 1], unknown=[-5.0, -6.0])  # column 0: inf its only category
    graph = Graph(2, (op,))
    X = np.array([[np.inf, np.inf], [-np.inf, -np.inf], [1.0, 1.0], [0.0, 0.0], [NAN, NAN]])
    np.testing.assert_array_equal(run(graph, X, method="compare"), reference.evaluate(graph, X))
    try:
        got = run(graph, X, method="index")
    except InvalidConfigError:
        return
    np.testing.assert_array_equal(got, reference.evaluate(graph, X))


# --------------------------------------------------------------------------- validation


def test_graph_rejects_wrong_widths():
    with pytest.raises(ValueError, match=r"operator 1 \(linear\) expects 3 columns at input 0, but value 0 has 2"):
        Graph(N_IN, (Gather(N_IN, [0, 1]), Linear(coef=np.ones((1, 3)), intercept=0.0)))
    with pytest.raises(ValueError, match=r"operator 0 \(lookup\) expects 4 columns at input 0, but value -1 has"):
        Graph(N_IN, (LookupBuilder(4).one_hot(0, [1.0]).op(),))
    with pytest.raises(ValueError, match=r"operator 2 \(concat\) expects 3 columns at input 1"):
        Graph(N_IN, (Node(Gather(N_IN, [0]), (INPUT,)), Node(Gather(N_IN, [0, 1]), (INPUT,)),
                     Node(Concat((1, 3)), (0, 1))))


def test_graph_rejects_wrong_input_count():
    with pytest.raises(ValueError, match=r"node 1 \(concat\) takes 2 input\(s\), got 1"):
        Graph(N_IN, (Node(Gather(N_IN, [0]), (INPUT,)), Node(Concat((1, 1)), (0,))))
    with pytest.raises(ValueError, match=r"node 0 \(gather\) takes 1 input\(s\), got 2"):
        Graph(N_IN, (Node(Gather(N_IN, [0]), (INPUT, INPUT)),))


@pytest.mark.parametrize("bad", [1, 2, -2])
def test_graph_rejects_reading_a_later_value(bad):
    with pytest.raises(ValueError, match=rf"node 1 \(gather\) reads value {bad}, which is not an earlier value"):
        Graph(N_IN, (Node(Gather(N_IN, [0, 1]), (INPUT,)), Node(Gather(2, [0]), (bad,)),
                     Node(Gather(1, [0]), (1,))))


def test_graph_rejects_two_post_transforms():
    with pytest.raises(ValueError, match="only the last operator may have a post-transform"):
        Graph(2, (Linear(coef=np.ones((2, 2)), intercept=0.0, post_transform=PostTransform("sigmoid")),
                  Linear(coef=np.ones((1, 2)), intercept=0.0, post_transform=PostTransform("sigmoid"))))
    with pytest.raises(ValueError, match="only the last operator may have a post-transform"):  # in a DAG too
        Graph(2, (Node(Linear(coef=np.ones((1, 2)), intercept=0.0, post_transform=PostTransform("exp")), (INPUT,)),
                  Node(Gather(2, [0]), (INPUT,)), Node(Concat((1, 1)), (0, 1))))
    # one post-transform, on the last op, is fine
    Graph(2, (Linear(coef=np.ones((2, 2)), intercept=0.0),
              Linear(coef=np.ones((1, 2)), intercept=0.0, post_transform=PostTransform("sigmoid"))))


def test_empty_graph_rejected():
    with pytest.raises(ValueError, match="at least one operator"):
        Graph(N_IN, ())


def test_op_validation():
    with pytest.raises(ValueError, match=r"gather: column indices must lie in \[0, 8\)"):
        Gather(N_IN, [0, 8])
    with pytest.raises(ValueError, match="indicator: column indices"):
        Indicator(N_IN, [-1])
    with pytest.raises(ValueError, match="missing_per_column needs one marker per output column"):
        Indicator(N_IN, [0, 1], missing_per_column=[NAN])
    with pytest.raises(ValueError, match="concat needs one or more non-negative widths"):
        Concat(())
    with pytest.raises(ValueError, match="lists category"):
        Lookup(n_features=1, column=[0, 0], value=[NAN, NAN], target=[0, 0], weight=[1.0, 2.0], source=[0],
               unknown=[0.0])
    with pytest.raises(ValueError, match="reads another input column"):
        Lookup(n_features=2, column=[1], value=[0.0], target=[0], weight=[1.0], source=[0], unknown=[0.0])
    with pytest.raises(ValueError, match=r"targets must lie in \[-1, 1\)"):
        Lookup(n_features=1, column=[0], value=[0.0], target=[1], weight=[1.0], source=[0], unknown=[0.0])
    with pytest.raises(ValueError, match="unknown has 2 entries for 1 outputs"):
        Lookup(n_features=1, column=[0], value=[0.0], target=[0], weight=[1.0], source=[0], unknown=[0.0, 1.0])
    with pytest.raises(ValueError, match="missing_per_column needs one marker per column"):
        Imputer(fill=[0.0, 1.0], keep=[0, 1], missing_per_column=[NAN])


def test_imputer_rejects_keep_out_of_range():
    # Imputer.__post_init__ does not check ``keep``; the check sits after the ``return`` in ``markers()``
    # (unreachable), so a bad index is only found at evaluation time.
    with pytest.raises(ValueError, match="keep"):
        Imputer(fill=[0.0, 1.0], keep=[0, 5])


# --------------------------------------------------------------------------- serialisation and dead code


def test_dag_serialisation_round_trip():
    graph = column_ops_graph(1)
    back = from_bytes(to_bytes(graph))
    assert isinstance(back, Graph) and not back.is_chain
    assert content_hash(back) == content_hash(graph)
    assert [n.inputs for n in back.nodes] == [n.inputs for n in graph.nodes]
    assert [type(n.op) for n in back.nodes] == [type(n.op) for n in graph.nodes]
    assert to_bytes(back) == to_bytes(graph)
    X = hostile_input(seed=5)
    np.testing.assert_array_equal(reference.evaluate(back, X), reference.evaluate(graph, X))
    imp = back.nodes[1].op
    assert np.isnan(imp.missing_value) and np.array_equal(imp.markers(), graph.nodes[1].op.markers(),
                                                          equal_nan=True)
    # a different weight or a different wiring hashes differently
    nodes = list(graph.nodes)
    lin = nodes[-1].op
    nodes[-1] = Node(Linear(coef=lin.coef + 1e-12, intercept=lin.intercept, post_transform=lin.post_transform),
                     nodes[-1].inputs)
    assert content_hash(Graph(N_IN, tuple(nodes))) != content_hash(graph)
    nodes = list(graph.nodes)
    cat = next(i for i, n in enumerate(nodes) if isinstance(n.op, Concat))
    widths = nodes[cat].op.widths  # the constant and the second indicator both have 3 columns: swap them
    i, j = [k for k, w in enumerate(widths) if w == 3]
    ins = list(nodes[cat].inputs)
    ins[i], ins[j] = ins[j], ins[i]
    nodes[cat] = Node(nodes[cat].op, tuple(ins))
    assert content_hash(Graph(N_IN, tuple(nodes))) != content_hash(graph)


def test_serialised_graph_runs_compiled():
    graph = column_ops_graph(2, lookup_last=True)
    back = from_bytes(to_bytes(graph))
    X = hostile_input(seed=9)
    np.testing.assert_array_equal(run(back, X, method="compare"), run(graph, X, method="index"))


def test_eliminate_dead():
    dead_scaler = Node(Scaler(offset=np.zeros(N_IN), scale=np.ones(N_IN)), (INPUT,))  # 0: dead
    nodes = (
        dead_scaler,
        Node(Gather(N_IN, [0, 1, 2]), (INPUT,)),  # 1
        Node(Binarize(3, 0.5), (1,)),  # 2: dead (nothing reads it)
        Node(Indicator(N_IN, [4]), (INPUT,)),  # 3
        Node(Constant(3, [2.0]), (2,)),  # 4: dead, reads dead 2
        Node(Concat((3, 1)), (1, 3)),  # 5
        Node(Linear(coef=np.arange(8.0).reshape(2, 4), intercept=[0.5, -1.0],
                    post_transform=PostTransform("sigmoid")), (5,)),  # 6
    )
    graph = Graph(N_IN, nodes)
    live = eliminate_dead(graph)
    assert [n.op.kind for n in live.nodes] == ["gather", "indicator", "concat", "linear"]
    assert [n.inputs for n in live.nodes] == [(INPUT,), (INPUT,), (0, 1), (2,)]
    X = hostile_input(seed=2)
    np.testing.assert_array_equal(reference.evaluate(live, X), reference.evaluate(graph, X))
    assert_scores(run(live, X, "torch"), reference.evaluate(graph, X))
    assert eliminate_dead(live) is live  # nothing dead: the same graph
    assert live.ancestors(3) == {0, 1, 2}

    # prune with ``keep``: the kept node's new index
    pruned, k = prune(graph, {0, 2, 4}, keep=5)
    assert k == 2 and content_hash(pruned) == content_hash(live)
