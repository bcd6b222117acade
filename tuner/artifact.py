"""Artifact files: zips with a versioned JSON manifest and named payload files, each SHA-256 checked.

Two kinds share one layout and one loader:

* a *task artifact* holds one task's compiled programs and config (what the
  records database stores per tuned task and batch size);
* a *model artifact* (``Predictor.save``, ``tuner.load_artifact``) holds the
  model IR and every plan's task artifacts.

Every payload file's SHA-256 is listed in the manifest, and the manifest's
``sha256`` digests that list; loading checks all of them before any program is
loaded.  An artifact holds compiled code (shared libraries, TorchScript):
loading one runs it, so only load artifacts from a trusted source.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Sequence

from strategies.backends.registry import get_backend
from strategies.compile import CompiledTask
from strategies.ground.errors import ArtifactIntegrityError
from strategies.ir import Graph, Op, as_graph, content_hash, from_bytes, to_bytes
from strategies.model import ConvertedModel

from .partition import task_hash
from .plan import Plan

log = logging.getLogger(__name__)

FORMAT = "tunebird-artifact"
# 4: a plan's tasks may read several values ("sources": parallel branches), a plan may serve float32
#    inputs only ("float32_input"); written only then, so other plans stay readable by tunebirds that read 3.  3: a task graph equal to the model's graph is not stored
#    twice ("graph": "model"); identical graphs share one file.  2: model artifacts hold each task's graph.
#    1: a slice of the model's chain.
FORMAT_VERSION = 4
CHAIN_FORMAT_VERSION = 3
MODEL_GRAPH = "model"
ARTIFACT_FORMAT = "tunebird-task"  # the records artifact store's format name of task artifacts


def _digest(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\n")
    return h.hexdigest()


def _device_json() -> dict[str, Any]:
    from strategies.ground.device import current_device

    return current_device().to_dict()


def _pack(kind: str, meta: dict[str, Any], files: dict[str, bytes]) -> bytes:
    from . import __version__

    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    branched = any("sources" in p or p.get("float32_input") for p in meta.get("plans", ()))
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION if branched else CHAIN_FORMAT_VERSION, "kind": kind, "tunebird_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "device": _device_json(), **meta,
        "files": hashes, "sha256": _digest(hashes),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _unpack(data: bytes, what: str, expected_sha256: str | None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Manifest and payload files, after every integrity check."""
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise ArtifactIntegrityError(f"{what}: SHA-256 is {actual}, expected {expected_sha256}; refusing to load it")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        manifest = json.loads(zf.read("manifest.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
        raise ArtifactIntegrityError(f"{what} is not a tunebird artifact (a zip with manifest.json): {e}") from None
    with zf:
        if manifest.get("format") != FORMAT:
            raise ArtifactIntegrityError(f"{what}: format {manifest.get('format')!r}, expected {FORMAT!r}")
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise ArtifactIntegrityError(
                f"{what} has format version {manifest['format_version']}; this tunebird reads up to "
                f"{FORMAT_VERSION}: upgrade tunebird"
            )
        listed = manifest.get("files", {})
        if _digest(listed) != manifest.get("sha256"):
            raise ArtifactIntegrityError(f"{what}: the manifest's file list does not match its SHA-256")
        present = {n for n in zf.namelist() if n != "manifest.json"}
        if present != set(listed):
            raise ArtifactIntegrityError(f"{what}: payload files {sorted(present ^ set(listed))[:5]} missing or unlisted")
        payload = {}
        for name, want in listed.items():
            try:
                blob = zf.read(name)
            except zipfile.BadZipFile as e:  # the zip's own CRC caught the damage first
                raise ArtifactIntegrityError(f"{what}: payload {name} is damaged ({e}); refusing to load it") from None
            got = hashlib.sha256(blob).hexdigest()
            if got != want:
                raise ArtifactIntegrityError(f"{what}: payload {name} has SHA-256 {got}, the manifest says {want}")
            payload[name] = blob
    return manifest, payload


# --------------------------------------------------------------------------- tasks


def _task_files(task: CompiledTask, prefix: str, tmp: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    files: dict[str, bytes] = {}
    progs = {}
    for out, prog in task.programs.items():
        d = tmp / f"{prefix}{out}"
        d.mkdir()
        meta = prog.save(d)
        names = []
        for f in sorted(d.iterdir()):
            files[f"{d.name}/{f.name}"] = f.read_bytes()
            names.append(f.name)
        progs[out] = {"dir": d.name, "files": names, "meta": meta}
    return {"config": dict(task.config), "programs": progs, "ops_hash": task_hash(task.graph)}, files


def _load_task(info: dict[str, Any], payload: dict[str, bytes], graph: Graph | Sequence[Op], workdir: Path,
               what: str) -> CompiledTask:
    graph = as_graph(graph)
    if info.get("ops_hash") not in (None, task_hash(graph)):
        raise ArtifactIntegrityError(f"{what}: it was built for other operators than the ones given")
    programs = {}
    cls = get_backend(info["config"]["backend"]).program_class()
    for out, p in info["programs"].items():
        d = workdir / p["dir"]
        d.mkdir(exist_ok=True)
        for f in p["files"]:
            (d / f).write_bytes(payload[f"{p['dir']}/{f}"])
        programs[out] = cls.load(d, p["meta"])
    return CompiledTask(graph, info["config"], programs)


def task_artifact_bytes(task: CompiledTask) -> bytes:
    """One task's built programs and config as artifact bytes."""
    with tempfile.TemporaryDirectory(prefix="tunebird-save-") as tmp:
        info, files = _task_files(task, "t", Path(tmp))
    return _pack("task", {"task": info}, files)


def load_task_artifact(data: bytes, graph: Graph | Sequence[Op], *, expected_sha256: str | None = None,
                       what: str = "task artifact") -> CompiledTask:
    """Rebuild a task from artifact bytes (integrity checked) for the task ``graph``."""
    manifest, payload = _unpack(data, what, expected_sha256)
    if manifest.get("kind") != "task":
        raise ArtifactIntegrityError(f"{what}: a {manifest.get('kind')!r} artifact, expected a task artifact")
    with tempfile.TemporaryDirectory(prefix="tunebird-artifact-") as tmp:
        return _load_task(manifest["task"], payload, graph, Path(tmp), what)


# --------------------------------------------------------------------------- whole predictors


def model_artifact_bytes(model: ConvertedModel, plans: Sequence[Plan], *, tuned: bool) -> bytes:
    """A model and its plans (their programs built) as model-artifact bytes."""
    files: dict[str, bytes] = {"model.ir": model.to_bytes()}
    graph_files = {content_hash(model.graph): MODEL_GRAPH}
    plan_infos = []
    with tempfile.TemporaryDirectory(prefix="tunebird-save-") as tmp:
        for p, plan in enumerate(plans):
            tasks = []
            for t, task in enumerate(plan.tasks):
                info, task_files = _task_files(task, f"p{p}t{t}", Path(tmp))
                h = content_hash(task.graph)
                if h not in graph_files:
                    graph_files[h] = f"p{p}t{t}.ir"
                    files[graph_files[h]] = to_bytes(task.graph)
                info["graph"] = graph_files[h]
                files.update(task_files)
                tasks.append(info)
            info = {"tuned_batch": plan.tuned_batch, "tasks": tasks}
            if not plan.is_chain:
                info["sources"] = [list(s) for s in plan.task_sources()]
            if plan.float32_input:
                info["float32_input"] = True
            plan_infos.append(info)
    meta = {
        "model": {"source": model.source, "hash": model.content_hash(), "methods": list(model.head.methods)},
        "tuned": tuned, "plans": plan_infos,
    }
    return _pack("model", meta, files)


def _task_graph(info: dict[str, Any], payload: dict[str, bytes], model: ConvertedModel,
                cache: dict[str, Graph]) -> Graph:
    name = info.get("graph")
    if name == MODEL_GRAPH:
        return model.graph
    if name in cache:
        return cache[name]
    if "graph" in info:
        graph = from_bytes(payload[info["graph"]])
        if not isinstance(graph, Graph):
            raise ArtifactIntegrityError(f"payload {info['graph']} is not a task graph")
        cache[name] = graph
        return graph
    start, stop = info["ops"]  # format version 1: a slice of the model's chain
    return as_graph(model.graph.ops[start:stop])


def write_model_artifact(path: str | Path, model: ConvertedModel, plans: Sequence[Plan], *, tuned: bool) -> str:
    """Write a model artifact file; returns its SHA-256."""
    data = model_artifact_bytes(model, plans, tuned=tuned)
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def read_model_artifact(data: bytes, *, expected_sha256: str | None = None,
                        what: str = "artifact") -> tuple[ConvertedModel, list[Plan], bool]:
    """The model, its plans (programs loaded) and whether it was tuned, from model-artifact bytes;
    every payload hash is checked first."""
    manifest, payload = _unpack(data, what, expected_sha256)
    if manifest.get("kind", "model") != "model":
        raise ArtifactIntegrityError(f"{what}: a {manifest.get('kind')!r} artifact, expected a model artifact")
    model = ConvertedModel.from_bytes(payload["model.ir"])
    if model.content_hash() != manifest["model"]["hash"]:
        raise ArtifactIntegrityError(f"{what}: model IR hash does not match the manifest")
    # Programs are loaded into memory (dlopen, TorchScript, AOTI) before the files are removed.
    graphs: dict[str, Graph] = {}
    with tempfile.TemporaryDirectory(prefix="tunebird-artifact-") as tmp:
        plans = []
        for plan in manifest["plans"]:
            tasks = tuple(_load_task(info, payload, _task_graph(info, payload, model, graphs), Path(tmp), what)
                          for info in plan["tasks"])
            plans.append(Plan(tasks, plan.get("tuned_batch"), sources=plan.get("sources"),
                              float32_input=bool(plan.get("float32_input"))))
    log.debug("loaded %s (%d plans) built on %s", what, len(plans), manifest.get("device", {}).get("cpu_model"))
    return model, plans, bool(manifest.get("tuned"))
