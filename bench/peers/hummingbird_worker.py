"""Hummingbird's worker: runs inside bench/.venv-hummingbird (hummingbird-ml 0.4.12, xgboost<2, no TVM).

    python hummingbird_worker.py JOB.json

JOB names the model file (XGBoost JSON that xgboost<2 reads, or a joblib
pickle), the method, threads, the inputs (.npz) and where to write the outputs
and the result.  It converts with Hummingbird's TorchScript backend, or its
PyTorch backend when TorchScript conversion fails, then measures like every
other system (``bench.measure.run_job``).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

# Run as a script, this folder would come first on sys.path and its hummingbird.py would shadow the real
# package: put the repository there instead (for bench.measure).
sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.measure import load_inputs, run_job, short_error, write_result  # noqa: E402

NOTE: list[str] = []


def load_model(job: dict[str, Any]) -> Any:
    if job["kind"] == "xgboost-json":
        import xgboost as xgb

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if job["task"] == "regression":
                model = xgb.XGBRegressor()
                model.load_model(job["model_file"])
            else:
                model = xgb.XGBClassifier()
                model.load_model(job["model_file"])
                model.n_classes_ = job["n_classes"]  # xgboost<2 reads it from sklearn metadata the file lacks
        return model
    import joblib

    return joblib.load(job["model_file"])


def build(job: dict[str, Any], sample: np.ndarray) -> Callable[[np.ndarray], Any]:
    import hummingbird.ml as hb
    from hummingbird.ml import constants

    model = load_model(job)
    extra = {constants.N_THREADS: job["threads"]}
    errors = []
    for backend in ("torch.jit", "torch"):
        try:
            converted = hb.convert(model, backend, sample, extra_config=extra)
        except Exception as exc:  # noqa: BLE001 - try the next backend, report both if neither works
            errors.append(f"{backend}: {short_error(exc)}")
            continue
        NOTE.append(("TorchScript" if backend == "torch.jit" else "PyTorch") + " backend"
                    + (f" (TorchScript failed: {errors[0]})" if errors else ""))
        return getattr(converted, job["method"])
    raise RuntimeError("; ".join(errors))


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    import hummingbird.ml  # noqa: F401 - imports before the memory baseline
    import torch  # noqa: F401

    inputs = load_inputs(job["inputs"])
    sample = inputs[min(inputs)][0]
    result = run_job(lambda: build(job, sample), inputs, job["outputs"], job["max_call_s"],
                     job.get("min_seconds"))
    result["note"] = "; ".join(NOTE) or result.get("note", "")
    write_result(job["result"], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
