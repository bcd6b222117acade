"""Deploy-time ``load``: the tuned predictor for a model on this device, from the records database.

At the end of a tuning run the tuner stores a *model index* per model: the
model's IR and, per tuned batch size, the tasks of the winning plan (their
graphs and the keys of their compiled artifacts).  It is keyed by the SHA-256
of the model file (when the model was given as a path) and by the IR's content
hash, so ``load("model.json")`` finds it by hashing the file: the model is not
parsed (no XGBoost, LightGBM or scikit-learn import), no partition is
enumerated, and only the backends of the chosen plans are imported.  Without an
index (a database written by an older tunebird) the model is converted and the
best stored artifacts are looked up per partition, as before.
"""

from __future__ import annotations

import hashlib
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Sequence

from strategies.ground.device import Device, current_device
from strategies.ground.errors import ArtifactIntegrityError, NotTunedError
from strategies.ir import Graph, content_hash, from_bytes, to_bytes
from strategies.model import ConvertedModel

from .artifact import ARTIFACT_FORMAT, _pack, _unpack, load_task_artifact
from .plan import Plan, chain_sources
from .predictor import Predictor

log = logging.getLogger(__name__)

INDEX_FORMAT = "tunebird-model-index"
INDEX_CONFIG = {"model_index": 1}  # the index's (constant) config in the artifact store
INDEX_BATCH = 1
MODEL_GRAPH = "model"  # an index task whose graph is the model's whole graph


def file_digest(path: str | Path) -> str:
    """SHA-256 of a model file's bytes: the index key of a model given as a path."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_keys(model: Any, conv: ConvertedModel) -> list[str]:
    """The keys a model's index is stored under: its file's digest (for a path) and its IR's hash."""
    keys = [conv.content_hash()]
    if isinstance(model, (str, Path)) and Path(model).is_file():
        keys.insert(0, file_digest(model))
    return keys


def index_bytes(conv: ConvertedModel, plans: Sequence[tuple[int, Sequence[tuple[Graph, str, str]], Any, bool]]) -> bytes:
    """A model index: the IR and, per tuned plan, its batch size, its tasks as (graph, workload hash, config
    hash), what each task reads (None: a chain) and whether it serves float32 inputs only."""
    files = {"model.ir": conv.to_bytes()}
    names = {content_hash(conv.graph): MODEL_GRAPH}  # each distinct graph stored (and decoded) once
    infos = []
    for batch, tasks, sources, float32_input in plans:
        entries = []
        for graph, workload, config_hash in tasks:
            h = content_hash(graph)
            if h not in names:
                names[h] = f"g{len(files)}.ir"
                files[names[h]] = to_bytes(graph)
            entries.append({"graph": names[h], "workload_hash": workload, "config_hash": config_hash})
        info = {"tuned_batch": int(batch), "tasks": entries}
        if sources is not None and tuple(map(tuple, sources)) != chain_sources(len(tasks)):
            info["sources"] = [list(s) for s in sources]
        if float32_input:
            info["float32_input"] = True
        infos.append(info)
    return _pack("index", {"model": {"source": conv.source, "hash": conv.content_hash()}, "plans": infos}, files)


def store_index(db: Any, device: Device, keys: Sequence[str], summary: str, payload: bytes) -> None:
    """Store a model index under each key (replacing an older one)."""
    from records import WorkloadRecord

    for key in keys:
        db.register_workload(WorkloadRecord(key, f"model index: {summary}"[:200], ("model",)))
        db.store_artifact(workload_hash=key, device_fingerprint=device.fingerprint, batch_size=INDEX_BATCH,
                          config=INDEX_CONFIG, format=INDEX_FORMAT, payload=payload)


def _from_index(db: Any, key: str, fp: str, what: str) -> Predictor | None:
    from records import config_hash

    art = db.get_artifact(key, fp, INDEX_BATCH, config_hash(INDEX_CONFIG), INDEX_FORMAT)
    if art is None:
        return None
    manifest, payload = _unpack(db.fetch_artifact(art), f"model index of {what}", None)
    model = ConvertedModel.from_bytes(payload["model.ir"])
    if model.content_hash() != manifest["model"]["hash"]:
        raise ArtifactIntegrityError(f"model index of {what}: the model IR does not match its hash")
    graphs: dict[str, Graph] = {MODEL_GRAPH: model.graph}
    plans = []
    for info in manifest["plans"]:
        b = int(info["tuned_batch"])
        tasks = []
        for t in info["tasks"]:
            if t["graph"] not in graphs:
                graphs[t["graph"]] = from_bytes(payload[t["graph"]])
            graph = graphs[t["graph"]]
            task_art = db.get_artifact(t["workload_hash"], fp, b, t["config_hash"], ARTIFACT_FORMAT)
            if task_art is None:  # pruned from the database since: fall back to the full lookup
                log.info("model index of %s names an artifact that is gone; looking up the records", what)
                return None
            tasks.append(load_task_artifact(db.fetch_artifact(task_art), graph,
                                            what=f"artifact for {graph.summary()[:40]} at batch {b}"))
        plans.append(Plan(tuple(tasks), tuned_batch=b, sources=info.get("sources"),
                          float32_input=bool(info.get("float32_input"))))
    return Predictor(model, plans, tuned=True, origin="records") if plans else None


def load(model_or_path: Any, *, db: Any = None, device: Device | str | None = None, strict: bool = False) -> Predictor:
    """The predictor tuned for this model on this device (or ``device``), from the records database.

    Per call it uses the plan tuned for the nearest batch size.  When nothing is
    tuned for this model and device it returns the untuned default with a
    warning, or raises ``NotTunedError`` when ``strict``.
    """
    import records

    fp = device if isinstance(device, str) else (device or current_device()).fingerprint
    if isinstance(model_or_path, (str, Path)) and Path(model_or_path).is_file() and not isinstance(db, records.Database):
        reader = records.open_reader(db)  # the light read-only path: no SQLAlchemy for a SQLite log
        try:
            found = _from_index(reader, file_digest(model_or_path), fp, str(model_or_path))
        finally:
            reader.close()
        if found is not None:
            return found
    database = db if isinstance(db, records.Database) else records.open_database(db)
    try:
        if isinstance(model_or_path, (str, Path)) and Path(model_or_path).is_file() and database is db:
            found = _from_index(database, file_digest(model_or_path), fp, str(model_or_path))
            if found is not None:
                return found
        import strategies

        conv = strategies.convert(model_or_path)
        found = _from_index(database, conv.content_hash(), fp, conv.source)
        if found is not None:
            return found
        plans = _plans_from_records(conv, database, fp)
    finally:
        if not isinstance(db, records.Database):
            database.close()
    if not plans:
        msg = (f"nothing is tuned for {conv.source} on device {fp[:12]} in {database.url}; "
               "using the untuned default (run tunebird tune first)")
        if strict:
            raise NotTunedError(msg)
        warnings.warn(msg, stacklevel=2)
        from .api import compile as compile_default

        return compile_default(conv)
    return Predictor(conv, plans, tuned=True, origin="records")


def best_plans(conv: ConvertedModel, db: Any, fp: str) -> dict[tuple[int, bool], tuple[float, list[tuple[Any, Any]]]]:
    """Per batch size with a complete plan in the records, ``(batch, False)``: the fastest plan exact for every
    input, and ``(batch, True)``: the fastest for float32 inputs only, when it is faster still; each as
    (summed latency, [(task, artifact record)])."""
    from .partition import enumerate_partitions, needs_float32

    options: dict[tuple[int, bool], tuple[float, list[tuple[Any, Any]]]] = {}
    for part in enumerate_partitions(conv.graph, float32_input=True):
        per_task = []
        for t in part:
            best: dict[int, tuple[float, Any]] = {}
            for art in db.artifacts(t.workload_hash, fp):
                if art.format != ARTIFACT_FORMAT:
                    continue
                trial = db.get_trial(t.workload_hash, fp, art.batch_size, art.config_hash)
                lat = trial.latency_median_s if trial is not None and trial.latency_median_s else math.inf
                if art.batch_size not in best or lat < best[art.batch_size][0]:
                    best[art.batch_size] = (lat, art)
            per_task.append(best)
        f32 = needs_float32(part)
        for b in set.intersection(*(set(d) for d in per_task)) if per_task else ():
            total = sum(d[b][0] for d in per_task)
            if (b, f32) not in options or total < options[(b, f32)][0]:
                options[(b, f32)] = (total, [(t, d[b][1]) for t, d in zip(part, per_task)])
    for b, f32 in list(options):
        if f32 and ((b, False) not in options or options[(b, True)][0] >= options[(b, False)][0]):
            del options[(b, True)]  # kept only beside an exact plan, and only when faster
    return options


def _plans_from_records(conv: ConvertedModel, db: Any, fp: str) -> list[Plan]:
    from .partition import sources_of

    plans = []
    for (b, f32), (_, picks) in sorted(best_plans(conv, db, fp).items()):
        tasks = tuple(
            load_task_artifact(db.fetch_artifact(art), t.graph, what=f"artifact for {t.summary()[:40]} at batch {b}")
            for t, art in picks
        )
        plans.append(Plan(tasks, tuned_batch=b, sources=sources_of([t for t, _ in picks]), float32_input=f32))
    return plans
