"""Candidate -> fixed-length numeric vector: subgraph, analytic, config and device features.

A :class:`Candidate` is one config of one task (a short chain of IR operators)
served at ``batch_size`` rows on a device.  Its vector is the concatenation of

* subgraph features read off the IR (operator kinds, tree counts, depths, node
  and leaf counts, feature and output counts, fractions of default-left /
  zero-as-missing / categorical splits, linear matrix shapes, post-transform);
* analytic features (node visits per row, multiply-adds per row, bytes of the
  model, of its padded layouts and of one input batch, and the work per row of
  the chosen strategy);
* config features: strategy, family and backend one-hot, every declared knob
  of every registered strategy and backend, threads, chunk size, fusion;
* device features: cores, cache sizes, ISA flags.

The config columns come from the strategies' and backends' declared knobs
(:meth:`FeatureSchema.from_registry`), so a new strategy or knob needs no code
here; it changes the column names and therefore :attr:`FeatureSchema.hash`,
which is how a persisted model notices that it must be retrained.  A knob that
does not apply to a candidate is NaN (XGBoost's "missing").
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from strategies.base import Knob
from strategies.ir import Linear, Op, PostTransform, TreeEnsemble, content_hash
from strategies.ir import main_op_index
from strategies.ground.device import ISA_FLAGS, ISA_PREFIXES

# Bump when the meaning of an existing column changes (names alone would not show it).
FEATURE_VERSION = 2  # 2: multiply-adds per row for kernel machines, KernelPCA, neighbours, centroids, mixtures

NAN = float("nan")
CACHE_LEVELS = ("L1d", "L2", "L3")

# Which analytic quantity stands for a strategy's work per row, and for the bytes it streams per row:
# the strategy's own ``work_estimate`` declaration, else its operator kind's entry here.
DEFAULT_WORK: dict[str, tuple[str, str]] = {
    "tree_ensemble": ("an.visits_expected", "an.model_bytes"),
    **{kind: ("an.linear_macs", "an.model_bytes") for kind in (
        "linear", "mlp", "gaussian_nb", "kernel_machine", "kernel_pca", "kneighbors", "centroids",
        "gaussian_mixture")},
}
ELEMENTWISE_WORK = ("an.elementwise", "an.model_bytes")

_TREE_NAMES = (
    "te.n_trees", "te.max_depth", "te.mean_depth", "te.mean_leaf_depth", "te.internal_nodes", "te.leaves",
    "te.max_internal", "te.max_leaves", "te.n_features", "te.features_used", "te.n_outputs", "te.fill",
    "te.frac_missing_left", "te.frac_zero_missing", "te.frac_categorical", "te.float64", "te.mean_agg",
    "te.vector_leaves",
)
# operator kinds counted by family, so the schema does not change whenever an operator is added
OP_FAMILIES = ("tree_ensemble", "linear", "elementwise", "routing", "encoding", "expansion")
_FAMILY_OF = {"tree_ensemble": "tree_ensemble", "linear": "linear", "gather": "routing", "concat": "routing",
              "constant": "routing", "lookup": "encoding", "bucketize": "expansion", "polynomial": "expansion",
              "spline": "expansion", "average": "routing", "label": "encoding", "activation": "elementwise",
              "kernel_machine": "linear", "kneighbors": "linear",
              "centroids": "linear", "gaussian_mixture": "linear", "mlp": "linear",
              "gaussian_nb": "linear", "kernel_pca": "linear"}


def op_family(kind: str) -> str:
    """The family an operator kind is counted in (scalers, imputers and the like: ``elementwise``)."""
    return _FAMILY_OF.get(kind, "elementwise")


SUBGRAPH_NAMES: tuple[str, ...] = (
    "sg.n_ops", *(f"sg.ops.{k}" for k in OP_FAMILIES), "sg.in_width", "sg.out_width", "sg.input_itemsize",
    *_TREE_NAMES, "lin.in", "lin.out", *(f"sg.post={k}" for k in PostTransform.KINDS),
    "an.visits_expected", "an.visits_padded", "an.gemm_macs", "an.linear_macs", "an.elementwise",
    "an.model_bytes", "an.gemm_bytes", "an.perfect_bytes",
)
RUN_NAMES: tuple[str, ...] = (
    "run.batch", "run.chunk", "run.n_chunks", "run.threads", "run.rows_per_thread", "run.fuse_post",
    "an.work", "an.work_bytes", "an.work_x_batch", "an.work_x_chunk_per_thread", "an.input_bytes_batch",
    "an.input_bytes_chunk", "an.work_bytes_per_l2", "an.chunk_bytes_per_l2",
)
DEVICE_NAMES: tuple[str, ...] = (
    "dev.n_cores", *(f"dev.cache.{c}" for c in CACHE_LEVELS),
    *(f"dev.isa.{f}" for f in sorted(ISA_FLAGS)), *(f"dev.isa.{p}*" for p in ISA_PREFIXES),
)


@dataclass(frozen=True, eq=False)
class Candidate:
    """One config of one task served at ``batch_size`` rows (the trial's tuned batch size).

    ``device`` is a ``tuner.device.Device``, a ``records.DeviceRecord``, the dict
    of either's ``to_dict()``, or None (device features are then NaN).
    ``config`` is a resolved config (``strategies.compile.resolve_config``).
    ``workload_hash`` (``tuner.partition.Task.workload_hash``) is computed when not given.
    """

    ops: tuple[Op, ...]
    config: Mapping[str, Any]
    batch_size: int
    device: Any = None
    workload_hash: str | None = None

    def __repr__(self) -> str:
        cfg = self.config
        knobs = ",".join(f"{k}={v}" for k, v in sorted((cfg.get("knobs") or {}).items()))
        return (f"Candidate({' -> '.join(op.kind for op in self.ops)}, {cfg.get('strategy')}@{cfg.get('backend')} "
                f"threads={cfg.get('threads')} chunk={cfg.get('batch_size')} [{knobs}], batch={self.batch_size})")

    @property
    def task_hash(self) -> str:
        """The workload hash of ``ops`` (given, or computed once per ops tuple)."""
        return self.workload_hash or workload_hash(self.ops)

    @property
    def group(self) -> str:
        """``workload/batch/device``: candidates whose latencies are ranked against each other."""
        return f"{self.task_hash}/{int(self.batch_size)}/{device_fingerprint(self.device) or '-'}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


@dataclass(frozen=True)
class KnobColumns:
    """The columns of one declared knob of one strategy or backend."""

    owner: str  # "strategy:<name>" or "backend:<name>"
    knob: Knob

    @property
    def numeric(self) -> bool:
        return all(_is_number(v) for v in self.knob.values)

    @property
    def names(self) -> tuple[str, ...]:
        base = f"knob.{self.owner}.{self.knob.name}"
        if self.numeric:
            return (base,)
        return tuple(f"{base}={v}" for v in self.knob.values)

    def values(self, value: Any) -> list[float]:
        if self.numeric:
            return [float(value)]
        return [1.0 if value == v and type(value) is type(v) else 0.0 for v in self.knob.values]


@dataclass(frozen=True)
class FeatureSchema:
    """The column layout: fixed blocks plus one block per registered strategy, backend and knob."""

    strategies: tuple[tuple[str, str], ...]  # (name, family), sorted
    backends: tuple[tuple[str, str], ...]  # (name, family), sorted
    knobs: tuple[KnobColumns, ...]

    @classmethod
    def from_registry(cls) -> FeatureSchema:
        """The schema of every strategy and backend registered in this process."""
        from strategies.backends.registry import all_backends
        from strategies.registry import all_strategies

        strategies = all_strategies()
        backends = all_backends()
        knobs = [KnobColumns(f"strategy:{n}", k) for n in sorted(strategies) for k in strategies[n].knobs]
        knobs += [KnobColumns(f"backend:{n}", k) for n in sorted(backends) for k in backends[n].knobs]
        return cls(
            tuple((n, strategies[n].family) for n in sorted(strategies)),
            tuple((n, backends[n].family) for n in sorted(backends)),
            tuple(knobs),
        )

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(sorted({f for _, f in self.strategies} | {f for _, f in self.backends}))

    @property
    def config_names(self) -> tuple[str, ...]:
        return (
            *(f"strategy={s}" for s, _ in self.strategies),
            *(f"family={f}" for f in self.families),
            *(f"backend={b}" for b, _ in self.backends),
            *(n for k in self.knobs for n in k.names),
        )

    @property
    def names(self) -> tuple[str, ...]:
        """Every column name, in order."""
        return (*SUBGRAPH_NAMES, *RUN_NAMES, *self.config_names, *DEVICE_NAMES)

    @property
    def hash(self) -> str:
        """SHA-256 of the column names and :data:`FEATURE_VERSION`: a persisted model's compatibility key."""
        text = f"tunebird-features-v{FEATURE_VERSION}\n" + "\n".join(self.names)
        return hashlib.sha256(text.encode()).hexdigest()

    def __len__(self) -> int:
        return len(self.names)


_CACHE_LOCK = threading.Lock()
_CACHE: OrderedDict[tuple, tuple[tuple[Op, ...], dict[str, Any]]] = OrderedDict()
_CACHE_SIZE = 256


def current_schema() -> FeatureSchema:
    """:meth:`FeatureSchema.from_registry` (cheap: the registries are loaded once)."""
    return FeatureSchema.from_registry()


# ---------------------------------------------------------------- subgraph features


def _cached(ops: Sequence[Op], slot: str, compute: Any) -> Any:
    key = tuple(id(op) for op in ops)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            if slot in hit[1]:
                return hit[1][slot]
    value = compute(tuple(ops))
    with _CACHE_LOCK:
        entry = _CACHE.setdefault(key, (tuple(ops), {}))  # the ops are kept so their ids are not reused
        entry[1][slot] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def workload_hash(ops: Sequence[Op]) -> str:
    """``tuner.partition.Task(...).workload_hash`` of a task's ops (cached per ops tuple)."""
    return _cached(ops, "hash", lambda o: content_hash(("task", o)))


def device_fingerprint(device: Any) -> str | None:
    """The device's fingerprint, or None for None or a plain dict."""
    return getattr(device, "fingerprint", None)


def _tree_stats(op: TreeEnsemble) -> dict[str, float]:
    depths, leaf_depths, internal, leaves = [], [], [], []
    missing_left = zero_missing = categorical = 0
    used: set[int] = set()
    for t in op.trees:
        d = t.node_depths()
        leaf = t.is_leaf
        depths.append(int(d.max()))
        leaf_depths.append(float(d[leaf].mean()))
        internal.append(int((~leaf).sum()))
        leaves.append(int(leaf.sum()))
        missing_left += int(t.missing_left.sum())
        zero_missing += 0 if t.zero_missing is None else int(t.zero_missing.sum())
        categorical += 0 if t.is_categorical is None else int(t.is_categorical.sum())
        used.update(np.unique(t.feature[~leaf]).tolist())
    T, D = op.n_trees, max(depths)
    n_int = max(1, sum(internal))
    k = 1 if op.tree_output is not None else op.n_outputs
    max_int, max_leaves = max(1, max(internal)), max(leaves)
    return {
        "te.n_trees": T, "te.max_depth": D, "te.mean_depth": float(np.mean(depths)),
        "te.mean_leaf_depth": float(np.mean(leaf_depths)), "te.internal_nodes": sum(internal),
        "te.leaves": sum(leaves), "te.max_internal": max_int, "te.max_leaves": max_leaves,
        "te.n_features": op.n_features, "te.features_used": len(used), "te.n_outputs": op.n_outputs,
        "te.fill": sum(internal) / (T * (2.0 ** D - 1)) if D > 0 else 1.0,
        "te.frac_missing_left": missing_left / n_int, "te.frac_zero_missing": zero_missing / n_int,
        "te.frac_categorical": categorical / n_int, "te.float64": float(op.compare_dtype == "float64"),
        "te.mean_agg": float(op.aggregation == "mean"), "te.vector_leaves": float(op.tree_output is None),
        # analytic: a walk of every tree to its leaf, the torch walk of max_depth steps per tree,
        # Hummingbird's three products (padded to the largest tree), and the node / padded layouts' bytes
        "an.visits_expected": float(sum(leaf_depths)), "an.visits_padded": float(T * D),
        "an.gemm_macs": float(T * max_int * (1 + max_leaves) + T * max_leaves * k),
        "an.model_bytes": float(20 * (sum(internal) + sum(leaves)) + 8 * k * sum(leaves)),
        "an.gemm_bytes": float(4 * T * max_int * max_leaves + 8 * T * max_leaves * k + 8 * T * max_int),
        "an.perfect_bytes": float(12 * T * (2.0 ** D) + 8 * k * T * (2.0 ** D)),
    }


MAC_KINDS = ("mlp", "gaussian_nb", "kernel_machine", "kernel_pca", "kneighbors", "centroids", "gaussian_mixture")


def _macs_per_row(op: Op) -> tuple[float, float]:
    """(multiply-adds per row, weights read) of the dense operators: a GEMM per layer, a kernel row against
    the support vectors / fitted rows then the dual coefficients, a distance to every training row or
    centre, a quadratic form per class or mixture component."""
    kind = op.kind
    if kind == "mlp":
        n = float(sum(w.size for w in op.weights))
        return n, n
    if kind == "gaussian_nb":
        n = float(op.theta.size + op.var.size)
        return n, n
    if kind == "kernel_machine":
        n = float(op.support_vectors.size + op.coef.size)
        return n, n
    if kind == "kernel_pca":
        n = float(op.basis.size + op.alphas.size)
        return n, n
    if kind == "kneighbors":
        return float(op.train.size), float(op.train.size + op.target.size)
    if kind == "centroids":
        return float(op.centers.size), float(op.centers.size)
    if kind == "gaussian_mixture":  # the precision factor of each component (shared when tied) per centred row
        k, f = op.means.shape
        per = {"full": k * f * f, "tied": k * f * f, "diag": k * f, "spherical": k * f}[op.covariance_type]
        return float(per + k * f), float(op.prec_chol.size + op.means.size)
    raise ValueError(f"no multiply-add count for operator kind {kind!r}")


def subgraph_features(ops: Sequence[Op]) -> dict[str, float]:
    """The IR-derived columns (:data:`SUBGRAPH_NAMES`) of a task; cached per ops tuple."""
    return _cached(ops, "features", _subgraph_features)


def _subgraph_features(ops: tuple[Op, ...]) -> dict[str, float]:
    out = {name: 0.0 for name in SUBGRAPH_NAMES}
    out.update({n: NAN for n in _TREE_NAMES})
    out["lin.in"] = out["lin.out"] = NAN
    out["sg.n_ops"] = len(ops)
    for op in ops:
        out[f"sg.ops.{op_family(op.kind)}"] += 1
    out["sg.in_width"] = ops[0].input_type().width
    out["sg.out_width"] = ops[-1].output_type().width
    main = ops[main_op_index(ops)]
    out["sg.input_itemsize"] = np.dtype(main.input_type().dtype).itemsize
    out[f"sg.post={ops[-1].post_transform.kind}"] = 1.0
    model_bytes = 0.0
    for op in ops:
        if isinstance(op, TreeEnsemble):
            stats = _tree_stats(op)
            out.update(stats)
            model_bytes += stats["an.model_bytes"]
        elif isinstance(op, Linear):
            n_out, n_in = op.coef.shape
            out["lin.in"], out["lin.out"] = n_in, n_out
            out["an.linear_macs"] += float(n_in * n_out)
            model_bytes += 8.0 * (n_in + 1) * n_out
        elif op.kind in MAC_KINDS:
            macs, weights = _macs_per_row(op)
            out["an.linear_macs"] += macs
            model_bytes += 8.0 * weights
        else:
            width = op.input_type().width
            out["an.elementwise"] += float(width)
            model_bytes += 16.0 * width
    out["an.model_bytes"] = model_bytes
    return out


# ---------------------------------------------------------------- device and run features


def _device_dict(device: Any) -> dict[str, Any]:
    if device is None:
        return {}
    if isinstance(device, Mapping):
        return dict(device)
    if hasattr(device, "to_dict"):
        return dict(device.to_dict())
    raise TypeError(f"device must be a tuner.device.Device, records.DeviceRecord, dict or None, got {type(device).__name__}")


def device_features(device: Any) -> dict[str, float]:
    """:data:`DEVICE_NAMES` columns; NaN where the device (or None) does not say."""
    d = _device_dict(device)
    if not d:
        return {name: NAN for name in DEVICE_NAMES}
    caches = dict(d.get("cache_sizes") or {})
    flags = set(d.get("isa_flags") or ())
    out: dict[str, float] = {"dev.n_cores": float(d.get("n_cores") or NAN)}
    for c in CACHE_LEVELS:
        out[f"dev.cache.{c}"] = float(caches[c]) if c in caches else NAN
    for f in sorted(ISA_FLAGS):
        out[f"dev.isa.{f}"] = float(f in flags)
    for p in ISA_PREFIXES:
        out[f"dev.isa.{p}*"] = float(sum(1 for f in flags if f.startswith(p)))
    return out


def work_columns(strategy: str, ops: Sequence[Op]) -> tuple[str, str]:
    """The analytic columns standing for ``strategy``'s work and bytes per row on this task."""
    from strategies.registry import all_strategies

    declared = getattr(all_strategies().get(strategy), "work_estimate", None)
    if declared is not None:
        return declared
    return DEFAULT_WORK.get(ops[main_op_index(ops)].kind, ELEMENTWISE_WORK)


def run_features(sub: Mapping[str, float], ops: Sequence[Op], config: Mapping[str, Any], batch_size: int,
                 dev: Mapping[str, float]) -> dict[str, float]:
    """:data:`RUN_NAMES` columns: rows, chunks, threads and the strategy's analytic work."""
    batch = int(batch_size)
    chunk = max(1, min(int(config.get("batch_size") or batch), batch))
    threads = max(1, int(config.get("threads") or 1))
    work_col, bytes_col = work_columns(str(config.get("strategy")), ops)
    # elementwise ops around the main one cost a pass over their input each
    work = sub[work_col] + (sub["an.elementwise"] if work_col != "an.elementwise" else 0.0)
    work_bytes = sub[bytes_col]
    row_bytes = sub["sg.in_width"] * sub["sg.input_itemsize"]
    l2 = dev.get("dev.cache.L2", NAN)
    return {
        "run.batch": float(batch), "run.chunk": float(chunk), "run.n_chunks": float(math.ceil(batch / chunk)),
        "run.threads": float(threads), "run.rows_per_thread": chunk / threads,
        "run.fuse_post": float(bool(config.get("fuse_post", True))),
        "an.work": work, "an.work_bytes": work_bytes, "an.work_x_batch": work * batch,
        "an.work_x_chunk_per_thread": work * chunk / threads, "an.input_bytes_batch": row_bytes * batch,
        "an.input_bytes_chunk": row_bytes * chunk, "an.work_bytes_per_l2": work_bytes / l2,
        "an.chunk_bytes_per_l2": row_bytes * chunk / l2,
    }


def config_features(config: Mapping[str, Any], schema: FeatureSchema) -> list[float]:
    """The schema's config columns: strategy / family / backend one-hot and every knob (NaN if not its own)."""
    strategy, backend = config.get("strategy"), config.get("backend")
    families = {f for s, f in schema.strategies if s == strategy} | {f for b, f in schema.backends if b == backend}
    out = [float(strategy == s) for s, _ in schema.strategies]
    out += [float(f in families) for f in schema.families]
    out += [float(backend == b) for b, _ in schema.backends]
    knobs = config.get("knobs") or {}
    for col in schema.knobs:
        kind, _, owner = col.owner.partition(":")
        mine = owner == (strategy if kind == "strategy" else backend)
        if mine and col.knob.name in knobs:
            out += col.values(knobs[col.knob.name])
        else:
            out += [NAN] * len(col.names)
    return out


def featurize(candidates: Sequence[Candidate], schema: FeatureSchema | None = None) -> np.ndarray:
    """The ``(len(candidates), len(schema))`` float32 matrix of the candidates' features.

    Deterministic: the same candidate always gives the same row.
    """
    schema = schema or current_schema()
    out = np.empty((len(candidates), len(schema)), dtype=np.float32)
    dev_cache: dict[int, dict[str, float]] = {}
    for i, c in enumerate(candidates):
        sub = subgraph_features(c.ops)
        dev = dev_cache.get(id(c.device))
        if dev is None:
            dev = dev_cache[id(c.device)] = device_features(c.device)
        run = run_features(sub, c.ops, c.config, c.batch_size, dev)
        row = [sub[n] for n in SUBGRAPH_NAMES] + [run[n] for n in RUN_NAMES]
        row += config_features(c.config, schema) + [dev[n] for n in DEVICE_NAMES]
        out[i] = row
    return out


def analytic_seconds(candidate: Candidate) -> float:
    """A rough latency estimate in seconds from the analytic work (the baseline's ranking).

    Work units cost a nanosecond per node visit or elementwise step, 50 ps per
    multiply-add; each chunk pays 20 microseconds of dispatch; threads help only
    with at least 64 rows each.
    """
    sub = subgraph_features(candidate.ops)
    work_col, _ = work_columns(str(candidate.config.get("strategy")), candidate.ops)
    unit = 5e-11 if work_col.endswith("macs") else 1e-9
    work = sub[work_col] * unit + sub["an.elementwise"] * 1e-9
    batch = int(candidate.batch_size)
    chunk = max(1, min(int(candidate.config.get("batch_size") or batch), batch))
    threads = max(1, int(candidate.config.get("threads") or 1))
    speedup = max(1.0, min(threads, chunk / 64))
    return work * batch / speedup + 2e-5 * math.ceil(batch / chunk)
