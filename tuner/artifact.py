"""Artifact files: a zip with a versioned JSON manifest, the model IR and each program's payload files.

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
from typing import Any

from strategies.backends.base import get_backend
from strategies.compile import CompiledTask
from strategies.errors import ArtifactIntegrityError
from strategies.model import ConvertedModel

from .predictor import Plan, Predictor

log = logging.getLogger(__name__)

FORMAT = "tunebird-artifact"
FORMAT_VERSION = 1


def _digest(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\n")
    return h.hexdigest()


def _device_json() -> dict[str, Any]:
    from .device import current_device

    return current_device().to_dict()


def artifact_bytes(pred: Predictor) -> bytes:
    """Serialise a predictor (its built programs, building the ones its methods need first)."""
    from . import __version__

    pred.warm_up()
    files: dict[str, bytes] = {"model.ir": pred.model.to_bytes()}
    plans = []
    with tempfile.TemporaryDirectory(prefix="tunebird-save-") as tmp:
        for p, plan in enumerate(pred.plans):
            tasks = []
            for t, task in enumerate(plan.tasks):
                progs = {}
                for out, prog in task.programs.items():
                    d = Path(tmp) / f"p{p}t{t}{out}"
                    d.mkdir()
                    meta = prog.save(d)
                    names = []
                    for f in sorted(d.iterdir()):
                        files[f"{d.name}/{f.name}"] = f.read_bytes()
                        names.append(f.name)
                    progs[out] = {"dir": d.name, "files": names, "meta": meta}
                tasks.append({"ops": _op_range(pred.model, task), "config": task.config, "programs": progs})
            plans.append({"tuned_batch": plan.tuned_batch, "tasks": tasks})
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tunebird_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": _device_json(),
        "model": {"source": pred.model.source, "hash": pred.model.content_hash(), "methods": list(pred.methods)},
        "tuned": pred.tuned,
        "plans": plans,
        "files": hashes,
        "sha256": _digest(hashes),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _op_range(model: ConvertedModel, task: CompiledTask) -> list[int]:
    ops = model.graph.ops
    for s in range(len(ops)):
        if ops[s : s + len(task.ops)] == task.ops:
            return [s, s + len(task.ops)]
    # folded or rewritten ops: store them with the task
    raise ValueError("task ops are not a slice of the model graph")


def save_predictor(pred: Predictor, path: str | Path) -> str:
    data = artifact_bytes(pred)
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def read_manifest(data: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read("manifest.json"))


def load_artifact_bytes(data: bytes, *, expected_sha256: str | None = None, what: str = "artifact") -> Predictor:
    """Rebuild a predictor from artifact bytes, checking every payload hash first."""
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
                f"{what} has format version {manifest['format_version']}; this tunebird reads up to {FORMAT_VERSION}: upgrade tunebird"
            )
        listed = manifest.get("files", {})
        if _digest(listed) != manifest.get("sha256"):
            raise ArtifactIntegrityError(f"{what}: the manifest's file list does not match its SHA-256")
        present = {n for n in zf.namelist() if n != "manifest.json"}
        if present != set(listed):
            raise ArtifactIntegrityError(f"{what}: payload files {sorted(present ^ set(listed))[:5]} missing or unlisted")
        payload = {}
        for name, want in listed.items():
            blob = zf.read(name)
            got = hashlib.sha256(blob).hexdigest()
            if got != want:
                raise ArtifactIntegrityError(f"{what}: payload {name} has SHA-256 {got}, the manifest says {want}")
            payload[name] = blob
    model = ConvertedModel.from_bytes(payload["model.ir"])
    if model.content_hash() != manifest["model"]["hash"]:
        raise ArtifactIntegrityError(f"{what}: model IR hash does not match the manifest")
    with tempfile.TemporaryDirectory(prefix="tunebird-artifact-") as tmp:
        plans = _load_plans(manifest, payload, model, Path(tmp))
    log.debug("loaded %s (%d plans) built on %s", what, len(plans), manifest.get("device", {}).get("cpu_model"))
    return Predictor(model, plans, tuned=bool(manifest.get("tuned")), origin="artifact")


def _load_plans(manifest: dict[str, Any], payload: dict[str, bytes], model: ConvertedModel, workdir: Path) -> list[Plan]:
    # Programs are loaded into memory (dlopen, TorchScript, AOTI) before the files are removed.
    plans = []
    for plan in manifest["plans"]:
        tasks = []
        for task in plan["tasks"]:
            s, e = task["ops"]
            programs = {}
            for out, info in task["programs"].items():
                d = workdir / info["dir"]
                d.mkdir(exist_ok=True)
                for f in info["files"]:
                    (d / f).write_bytes(payload[f"{info['dir']}/{f}"])
                cls = get_backend(task["config"]["backend"]).program_class()
                programs[out] = cls.load(d, info["meta"])
            tasks.append(CompiledTask(model.graph.ops[s:e], task["config"], programs))
        plans.append(Plan(tuple(tasks), plan.get("tuned_batch")))
    return plans
