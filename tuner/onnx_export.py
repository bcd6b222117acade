"""A predictor's compiled program as an ONNX model (``Predictor.to_onnx``, ``tunebird export``).

Every task of the plan becomes the torch module its strategy builds from the
task's config (so plans on every torch-family backend export: torch,
torchscript, inductor, tvm, onnxruntime); the tasks are composed in one module,
exported with ``torch.onnx``, and the head's finishing for each method (labels
from ``classes_``, squeezing, outlier decisions) is appended as ONNX nodes.
Imported only when exporting: it imports onnx and torch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from strategies.backends.onnx_runtime import export_module
from strategies.backends.registry import get_backend
from strategies.backends.torch_backends import TORCH_OPS, input_dtype_of
from strategies.compile import CompiledTask, resolve_config
from strategies.ground.errors import InvalidConfigError, UnsupportedModelError
from strategies.head import Head
from strategies.task_module import build_task_module
from strategies.torch_ops import PostTransformModule

from .plan import INPUT, Sources, chain_sources

log = logging.getLogger(__name__)

FALLBACKS = ("error", "default")
CLASSIFIER_LIKE = ("classifier", "cluster", "outlier")


def output_name(head: Head, method: str) -> str:
    """The ONNX output that holds ``method``'s result."""
    if method == "predict":
        return "label" if head.task in CLASSIFIER_LIKE else "predictions"
    return {"predict_proba": "probabilities", "decision_function": "scores"}.get(method, method)


def default_methods(head: Head) -> tuple[str, ...]:
    """What a ``method=None`` export holds: a classifier's label and probabilities (or scores), else the
    model's first method of predict, transform, score_samples."""
    have = head.methods
    if head.task == "classifier" and "predict" in have:
        second = next((m for m in ("predict_proba", "decision_function") if m in have), None)
        return ("predict",) + ((second,) if second else ())
    return (next((m for m in ("predict", "transform", "score_samples") if m in have), have[0]),)


def export_onnx(predictor: Any, path: str | Path | None = None, *, method: str | Sequence[str] | None = None,
                batch_size: int | None = None, fallback: str = "error") -> onnx.ModelProto:
    """Write (when ``path`` is given) and return ``predictor``'s program as an ONNX model; see
    ``Predictor.to_onnx``."""
    model = predictor.model
    head, spec = model.head, model.input
    methods = default_methods(head) if method is None else ((method,) if isinstance(method, str) else tuple(method))
    missing = [m for m in methods if m not in head.methods]
    if missing:
        raise ValueError(f"{model.source} has no method {missing[0]!r} to export; it has {', '.join(head.methods)}")
    split = [m for m, _ in head.splits if m in methods]
    if split:
        raise UnsupportedModelError(
            f"{model.source}'s {split[0]} returns a list of arrays (one per output); an ONNX export holds one "
            f"tensor per method, so it cannot be exported (export {', '.join(m for m in head.methods if m not in split)})")
    if "kneighbors" in methods:
        raise UnsupportedModelError(
            f"{model.source}'s kneighbors returns two arrays (distances and indices); an ONNX export holds one "
            f"tensor per method, so it cannot be exported (export {', '.join(m for m in head.methods if m != 'kneighbors')})")
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    if spec.has_strings:
        cols = [spec.column_name(j) for j, c in enumerate(spec.columns) if c.kind == "string"]
        raise UnsupportedModelError(
            f"{model.source} reads string column(s) {', '.join(cols[:8])}; an ONNX export takes one float tensor X "
            "of numbers only, so models with string inputs cannot be exported")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    exact = [p for p in predictor.plans if not p.float32_input]  # the graph takes any float X
    plan = exact[-1] if batch_size is None else predictor.plan_for(int(batch_size))
    tasks, configs = list(plan.tasks), [dict(t.config.to_json()) for t in plan.tasks]
    task_sources = plan.task_sources()
    not_torch = [c for c in configs if get_backend(c["backend"]).family != "torch"]
    if not_torch:
        what = ", ".join(f"{c['strategy']}@{c['backend']}" for c in not_torch)
        if fallback != "default":
            raise UnsupportedModelError(
                f"the plan for batch {plan.tuned_batch or 'any'} of {model.source} runs {what}: a "
                f"{not_torch[0]['backend']} program has no ONNX form; ONNX export needs a plan on a torch-family "
                f"backend ({', '.join(_torch_backends())}); pass fallback='default' (tunebird export --fallback "
                "default) to export the untuned torch default instead")
        log.warning("the plan of %s runs %s, which has no ONNX form; exporting the untuned torch default instead",
                    model.source, what)
        tasks = _default_tasks(model, configs[0])
        configs = [dict(t.config.to_json()) for t in tasks]
        task_sources = chain_sources(len(tasks))
    bad = sorted({op.kind for t in tasks for op in t.ops if op.kind not in TORCH_OPS})
    if bad:
        raise UnsupportedModelError(
            f"{model.source} has operator(s) {bad} that only eager torch runs (e.g. a loop until the data "
            f"converge; traced, it would keep one fixed count); it cannot be exported to ONNX")
    last = tasks[-1].graph.nodes[-1].op
    if last.raw_op() is not last:  # the module below computes ``out`` as post(raw): not so for this op
        raise UnsupportedModelError(f"{model.source} ends in {last.kind}, whose raw value skips a stage its output "
                                    "computes; it cannot be exported to ONNX")

    sources = tuple(dict.fromkeys(head.source(m) for m in methods))
    module = _PlanModule(tasks, sources, task_sources).eval()
    example = torch.randn((8, spec.n_features), generator=torch.Generator().manual_seed(0),
                          dtype=getattr(torch, module.input_dtype))
    with torch.no_grad():
        values = module(example)
    proto = _export(module, example, [f"value_{s}" for s in sources])
    finisher = _Finisher(proto, values, sources)
    names = [finisher.finish(head, m, output_name(head, m)) for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"methods {methods} would share an output name")
    _describe(proto, predictor, configs, np.dtype(module.input_dtype), dict(zip(methods, names)))
    onnx.checker.check_model(proto)
    if path is not None:
        onnx.save_model(proto, str(path))
        log.info("wrote %s (%s: %s) to %s", model.source, ", ".join(methods), ", ".join(names), path)
    return proto


def _torch_backends() -> list[str]:
    from strategies.backends.registry import all_backends

    return sorted(n for n, b in all_backends().items() if b.family == "torch")


def _default_tasks(model: Any, config: dict[str, Any]) -> list[CompiledTask]:
    """The untuned default plan's tasks (torch), with the tuned plan's threads and batch size."""
    from .partition import main_task_index, side_config, tasks_for_backend

    given = {"threads": config["threads"], "batch_size": config["batch_size"]}
    probe = resolve_config(model.graph, given)
    parts = tasks_for_backend(model.graph, probe["backend"])
    main = main_task_index(parts)
    return [CompiledTask(t.graph, resolve_config(t.graph, probe if i == main else
                                                 side_config(probe["threads"], probe["batch_size"])))
            for i, t in enumerate(parts)]


class _PlanModule(nn.Module):
    """Every task's torch module in order (each reading its sources' ``out`` values side by side, in the dtype
    it takes); the last one's ``raw`` and/or ``out`` values."""

    def __init__(self, tasks: Sequence[CompiledTask], sources: Sequence[str], task_sources: Sequence[Sources]):
        super().__init__()
        self.task_sources = tuple(tuple(s) for s in task_sources)
        mods = []
        for i, task in enumerate(tasks):
            out = "raw" if i == len(tasks) - 1 else "out"
            try:
                mods.append(build_task_module(task.graph, task.config, out))
            except InvalidConfigError as e:
                raise UnsupportedModelError(f"task {i} ({task.config['strategy']}@{task.config['backend']}) has no "
                                            f"torch module to export: {e}") from e
        self.tasks = nn.ModuleList(mods)
        self.dtypes = [getattr(torch, input_dtype_of(m).name) for m in mods]
        self.post = PostTransformModule(tasks[-1].graph.post_transform)
        self.sources = tuple(sources)

    @property
    def input_dtype(self) -> str:
        """float32 only when every task reading ``X`` computes in float32."""
        readers = {input_dtype_of(m).name for m, s in zip(self.tasks, self.task_sources) if INPUT in s}
        return "float32" if readers == {"float32"} else "float64"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values: list[torch.Tensor] = []
        for task, dtype, src in zip(self.tasks, self.dtypes, self.task_sources):
            if len(src) == 1:
                v = x if src[0] == INPUT else values[src[0]]
                values.append(task(v.to(dtype)))
            else:
                parts = [(x if j == INPUT else values[j]).to(dtype) for j in src]
                values.append(task(torch.cat(parts, dim=1)))
        y = values[-1]
        return tuple(y if s == "raw" else self.post(y) for s in self.sources)


def _export(module: nn.Module, example: torch.Tensor, outputs: list[str]) -> onnx.ModelProto:
    return onnx.load_model_from_string(export_module(module, example, outputs))


_ELEM = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("float64"): TensorProto.DOUBLE}


class _Finisher:
    """Appends the head's finishing nodes to an exported graph, one method at a time."""

    def __init__(self, proto: onnx.ModelProto, values: Sequence[torch.Tensor], sources: Sequence[str]):
        self.graph = proto.graph
        self.values = {s: (f"value_{s}", v.detach().numpy().dtype, v.shape[1]) for s, v in zip(sources, values)}
        self.batch = self.graph.input[0].type.tensor_type.shape.dim[0].dim_param or "N"
        self._count = 0
        del self.graph.output[:]

    def _name(self, base: str) -> str:
        self._count += 1
        return f"head_{base}_{self._count}"

    def const(self, array: Any, base: str = "c") -> str:
        a = np.asarray(array)
        name = self._name(base)
        if a.dtype.kind in "OU":
            t = helper.make_tensor(name, TensorProto.STRING, a.shape, [str(s).encode() for s in a.ravel()])
        else:
            t = numpy_helper.from_array(a, name)
        self.graph.initializer.append(t)
        return name

    def op(self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs: Any) -> str:
        out = out or self._name(op_type.lower())
        self.graph.node.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def finish(self, head: Head, method: str, name: str) -> str:
        """Nodes turning the graph value into ``method``'s output ``name`` (as ``Head.finish`` does)."""
        value, dtype, k = self.values[head.source(method)]
        for m, start, stop in head.views:
            if m == method:
                value = self.op("Slice", [value, self.const(np.array([start])), self.const(np.array([stop])),
                                          self.const(np.array([1]))])
                k = stop - start
        result, out_dtype, cols = self._finish(head, method, value, dtype, k)
        self.op("Identity", [result], name)
        elem = helper.np_dtype_to_tensor_dtype(out_dtype) if out_dtype.kind not in "OU" else TensorProto.STRING
        shape = [self.batch] if cols is None else [self.batch, cols]
        self.graph.output.append(helper.make_tensor_value_info(name, elem, shape))
        return name

    def _finish(self, head: Head, method: str, value: str, dtype: np.dtype, k: int) -> tuple[str, np.dtype, int | None]:
        """(output value, its dtype, its number of columns; None: 1-D)."""
        col0 = lambda: self.op("Gather", [value, self.const(np.array(0))], axis=1)  # noqa: E731 - value[:, 0]
        task = head.task
        if task == "classifier":
            if method == "predict_proba":
                if k == 1 and head.classes.size == 2:
                    return self.op("Concat", [self._one_minus(value, dtype), value], axis=1), dtype, 2
                return value, dtype, k
            if method == "decision_function":
                return (col0(), dtype, None) if k == 1 else (value, dtype, k)
            if head.label_rule == "indicator_gt_half":
                hit = self.op("Greater", [value, self.const(np.array(0.5, dtype))])
                return self.op("Cast", [hit], to=TensorProto.INT64), np.dtype(np.int64), k
            return self._labels(head, self._label_index(head, value, dtype, k)), head.classes.dtype, None
        if task == "outlier":
            scores = col0()
            if method == "score_samples":
                return scores, dtype, None
            decision = self.op("Sub", [scores, self.const(np.array(head.offset, dtype))])
            if method == "decision_function":
                return decision, dtype, None
            zero = self.const(np.array(0, dtype))
            one, minus = self.const(np.array(1)), self.const(np.array(-1))
            if head.label_rule == "raw_gt0":
                return self.op("Where", [self.op("Greater", [decision, zero]), one, minus]), np.dtype(np.int64), None
            return self.op("Where", [self.op("Less", [decision, zero]), minus, one]), np.dtype(np.int64), None
        if task == "cluster":
            if method == "predict":
                return self._labels(head, self.op("ArgMax", [value], axis=1, keepdims=0)), head.classes.dtype, None
            return (col0(), dtype, None) if method == "score_samples" else (value, dtype, k)
        if task == "booster" and method == "predict" and head.predict_argmax:
            idx = self.op("ArgMax", [value], axis=1, keepdims=0)
            return self.op("Cast", [idx], to=_ELEM[np.dtype(dtype)]), dtype, None
        return (col0(), dtype, None) if (head.squeeze and k == 1) else (value, dtype, k)

    def _one_minus(self, value: str, dtype: np.dtype) -> str:
        return self.op("Sub", [self.const(np.array(1, dtype)), value])

    def _label_index(self, head: Head, value: str, dtype: np.dtype, k: int) -> str:
        if head.classes.size == 1:
            rows = self.op("Shape", [value], start=0, end=1)
            return self.op("ConstantOfShape", [rows], value=numpy_helper.from_array(np.array([0], np.int64)))
        if k == 1:
            rule = head.label_rule
            if rule in ("raw_gt0", "raw_ge0", "out_gt_half"):
                cmp = "GreaterOrEqual" if rule == "raw_ge0" else "Greater"
                cut = self.const(np.array([0.5 if rule == "out_gt_half" else 0.0], dtype))
                hit = self.op(cmp, [self.op("Gather", [value, self.const(np.array(0))], axis=1), cut])
                return self.op("Cast", [hit], to=TensorProto.INT64)
            value = self.op("Concat", [self._one_minus(value, dtype), value], axis=1)
        return self.op("ArgMax", [value], axis=1, keepdims=0)

    def _labels(self, head: Head, index: str) -> str:
        classes = head.classes
        return self.op("Gather", [self.const(classes.astype(object) if classes.dtype.kind == "U" else classes,
                                             "classes"), index], axis=0)


def _describe(proto: onnx.ModelProto, predictor: Any, configs: list[dict[str, Any]], dtype: np.dtype,
              outputs: dict[str, str]) -> None:
    from . import __version__

    model, spec = predictor.model, predictor.model.input
    proto.producer_name, proto.producer_version = "tunebird", __version__
    proto.graph.name = model.source
    checks = []
    if not spec.allow_nan or not spec.allow_inf:
        checks.append("NaN / inf that the original model refuses")
    if spec.columns is not None and any(c.known is not None or c.refused is not None for c in spec.columns):
        checks.append("category values the original model refuses")
    proto.doc_string = (
        f"{model.source} compiled by tunebird {__version__}. Input X: {dtype.name} (n, {spec.n_features}), any "
        f"number of rows. Outputs: " + ", ".join(f"{o} = {m}" for m, o in outputs.items()) + ". "
        + (f"Not checked in this graph (the tunebird Predictor refuses it): {'; '.join(checks)}." if checks else ""))
    meta = {"source": model.source, "tunebird_version": __version__, "input_dtype": dtype.name,
            "n_features": str(spec.n_features), "outputs": json.dumps(outputs),
            "plan": json.dumps(configs, sort_keys=True), "tuned": str(predictor.tuned).lower()}
    if spec.feature_names is not None:
        meta["feature_names"] = json.dumps(list(spec.feature_names))
    if predictor.model.head.classes is not None:
        meta["classes"] = json.dumps(predictor.model.head.classes.tolist())
    onnx.helper.set_model_props(proto, meta)
