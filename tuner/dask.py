"""Batch scoring on Dask: a tuned model's predictions over a Dask DataFrame or Array.

Needs the ``dask`` extra (``pip install tunebird[dask]``).  The artifact's bytes
go to each worker once (broadcast with ``client.scatter`` when a distributed
client is running, else one graph key); each worker process checks their
SHA-256, checks that the artifact was built for its device, loads the
predictor once and scores every partition it gets in chunks of the tuned batch
size.  Loading an artifact runs its code: ship only artifacts you trust.

Example (a model tuned with ``tunebird tune model.json`` into ``tunebird.db``)::

    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster
    import tuner.dask

    client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    ddf = dd.read_parquet("rows/*.parquet", columns=[f"f{i}" for i in range(28)])

    # the model's tuned predictor from the records database ...
    proba = tuner.dask.predict(ddf, "model.json", db="tunebird.db", method="predict_proba")
    # ... or an artifact file written by Predictor.save (optionally pinned by its SHA-256)
    labels = tuner.dask.predict(ddf, artifact="model.tb", method="predict")

    proba.to_parquet("scores/")          # one column per class, named by the class
    labels["predict"].value_counts().compute()

    # a Dask Array (chunked by rows) gives a Dask Array
    import dask.array as da
    X = da.from_zarr("rows.zarr")
    y = tuner.dask.predict(X, artifact="model.tb", method="predict_proba")   # (n, n_classes)

A DataFrame's columns are the model's input columns: by name for a model fitted
on a pandas DataFrame (a pipeline with string columns, say), else all columns in
order.  The output is a DataFrame (same index and divisions) with one column
named after the method for 1-D results (``predict``: the classes' dtype), or
one column per class for ``predict_proba``.  A worker on another device refuses
the artifact (``tuner.scoring.DeviceMismatchError``), or with
``on_device_mismatch="default"`` scores with the model's untuned default and a
warning.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .scoring import OnMismatch, OutputLayout, artifact_for, check_on_mismatch, output_layout, worker_predictor

log = logging.getLogger(__name__)

__all__ = ["predict"]


def predict(
    data: Any,
    model: Any = None,
    *,
    db: Any = None,
    artifact: Any = None,
    method: str = "predict",
    sha256: str | None = None,
    strict: bool = False,
    on_device_mismatch: OnMismatch = "raise",
    client: Any = None,
) -> Any:
    """``method`` of the tuned model over ``data`` (a ``dask.dataframe.DataFrame`` or a ``dask.array.Array``).

    ``model`` (estimator, model file or Predictor) with ``db`` and ``strict`` as in
    ``tuner.load``, or ``artifact`` (a ``Predictor.save`` file or its bytes);
    ``sha256`` pins the artifact's digest.  ``client``: the ``dask.distributed``
    client to broadcast the artifact with (default: the current one, if any).
    Returns a lazy Dask DataFrame (for a DataFrame) or Array (for an Array).
    """
    import dask.array as da
    import dask.dataframe as dd

    check_on_mismatch(on_device_mismatch)
    if isinstance(data, dd.DataFrame):
        kind = "frame"
    elif isinstance(data, da.Array):
        kind = "array"
    else:
        raise TypeError(f"data must be a dask.dataframe.DataFrame or a dask.array.Array, got {type(data).__name__}")
    blob, digest, predictor = artifact_for(model, db=db, artifact=artifact, sha256=sha256, strict=strict)
    shipped = _ship(blob, client)
    if kind == "frame":
        layout = output_layout(predictor, method, _frame_sample(data))
        meta = layout.frame(np.empty((0, len(layout.columns)), dtype=layout.dtypes[0]) if not layout.one_d
                            else np.empty(0, dtype=layout.dtypes[0]), index=data._meta.index)
        return data.map_partitions(_score_frame, shipped, digest, on_device_mismatch, layout, meta=meta,
                                   enforce_metadata=False, align_dataframes=False)
    if data.ndim != 2:
        raise ValueError(f"data must be a 2-D array (rows, features), got {data.ndim} dimensions")
    if data.numblocks[1] != 1:
        data = data.rechunk({1: -1})
    layout = output_layout(predictor, method, np.zeros((2, data.shape[1]), dtype=data.dtype))
    dtype = layout.dtypes[0]
    if layout.one_d:
        return data.map_blocks(_score_block, shipped, digest, on_device_mismatch, method, drop_axis=1,
                               chunks=(data.chunks[0],), dtype=dtype, meta=np.empty((0,), dtype=dtype))
    return data.map_blocks(_score_block, shipped, digest, on_device_mismatch, method,
                           chunks=(data.chunks[0], (len(layout.columns),)), dtype=dtype,
                           meta=np.empty((0, 0), dtype=dtype))


def _ship(blob: bytes, client: Any) -> Any:
    """The artifact as a graph argument every task shares: a broadcast future, or one delayed key."""
    import dask

    if client is None:
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):  # no distributed client: the local schedulers share memory
            client = None
    if client is not None:
        future = client.scatter(blob, broadcast=True, hash=True)
        log.debug("artifact (%d bytes) broadcast to %d workers", len(blob), len(client.scheduler_info()["workers"]))
        return dask.delayed(future)
    return dask.delayed(blob, pure=True)


def _frame_sample(data: Any) -> Any:
    """Two rows typed like ``data``'s partitions, for the output layout (no partition is computed)."""
    sample = data._meta_nonempty.iloc[:2]
    numeric = [c for c, dt in sample.dtypes.items() if getattr(dt, "kind", "O") in "biuf"]
    sample = sample.copy()
    sample[numeric] = 0
    return sample


def _score_frame(part: Any, blob: bytes, digest: str, on_device_mismatch: OnMismatch, layout: OutputLayout) -> Any:
    predictor = worker_predictor(blob, digest, on_device_mismatch)
    values = getattr(predictor, layout.method)(part) if len(part) else np.empty(
        (0,) if layout.one_d else (0, len(layout.columns)), dtype=layout.dtypes[0])
    return layout.frame(values, index=part.index)


def _score_block(block: np.ndarray, blob: bytes, digest: str, on_device_mismatch: OnMismatch, method: str) -> np.ndarray:
    predictor = worker_predictor(blob, digest, on_device_mismatch)
    return getattr(predictor, method)(np.ascontiguousarray(block))
