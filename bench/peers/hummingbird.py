"""Hummingbird (hummingbird-ml 0.4.12), run the way its users run it: from its own virtual environment.

Why a separate environment: hummingbird-ml 0.4.12 crashes at import when
apache-tvm 0.27 is importable (it looks for ``tvm._ffi``), and its XGBoost
converter gives wrong probabilities with XGBoost >= 2.  So the suite creates
``bench/.venv-hummingbird`` once (``xgboost<2``, no TVM, the local CPU build of
torch 2.13.0, and the same scikit-learn / LightGBM / NumPy as the main
environment so model pickles load) and runs ``hummingbird_worker.py`` there in a
subprocess, one per model.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from .base import Context, NotApplicable, System

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
VENV = HERE.parent / ".venv-hummingbird"
WORKER = HERE / "hummingbird_worker.py"
XGBOOST_1X = "1.7.6"


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def requirements() -> list[str]:
    """What the environment needs; torch==2.13.0 resolves to the local CPU wheel (any other spec pulls CUDA)."""
    same = [f"{name}=={metadata.version(name)}" for name in ("numpy", "scikit-learn", "lightgbm", "scipy")]
    return ["hummingbird-ml==0.4.12", "torch==2.13.0", f"xgboost=={XGBOOST_1X}", "onnx<=1.16.1", *same]


def create_venv(venv: Path = VENV, say: Callable[[str], None] = print) -> str | None:
    """Create the environment (minutes, once); None on success, else why it failed."""
    py = shutil.which("python3") or sys.executable
    say(f"creating Hummingbird's virtual environment {venv} (once; a few minutes)")
    steps = [[py, "-m", "venv", str(venv)],
             [str(venv_python(venv)), "-m", "pip", "install", "--quiet", *requirements()]]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = [ln for ln in (proc.stderr or proc.stdout).splitlines() if "is ignored" not in ln][-3:]
            return f"creating {venv} failed: {' '.join(cmd[:4])}...: {' | '.join(tail)}"
    return None


def check_venv(venv: Path = VENV) -> str | None:
    """None when the environment imports hummingbird with xgboost<2; else what is wrong."""
    if not venv_python(venv).exists():
        return f"its virtual environment {venv} does not exist"
    code = "import hummingbird.ml, xgboost, torch; print(hummingbird.__version__, xgboost.__version__, torch.__version__)"
    proc = subprocess.run([str(venv_python(venv)), "-W", "ignore", "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"{venv} is broken: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


def legacy_xgboost_json(model: Any, path: Path) -> tuple[Path, int]:
    """An XGBoost JSON file that xgboost 1.7 reads (the vector intercept folded to a scalar); and n_classes."""
    booster = model if type(model).__name__ == "Booster" else model.get_booster()
    raw = json.loads(booster.save_raw("json").decode())
    learner = raw["learner"]
    param = learner["learner_model_param"]
    values = param["base_score"].strip("[]").split(",")
    if len(set(values)) != 1:
        raise NotApplicable("unsupported", "per-class intercepts cannot be written for xgboost<2")
    param["base_score"] = values[0]
    learner.get("attributes", {}).pop("scikit_learn", None)
    raw["version"] = [1, 7, 6]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw))
    return path, max(int(param.get("num_class", "0")), 2)


class Hummingbird(System):
    name = "hummingbird"
    label = "Hummingbird 0.4.12"
    external = True

    def available(self) -> str | None:
        return check_venv()

    def job(self, model_name: str, ctx: Context) -> dict[str, Any]:
        """The worker's job (model file in a format its environment reads) for ``model_name``."""
        from .. import models

        spec = models.SPECS[model_name]
        if spec.frame:
            raise NotApplicable("unsupported", "not run on the DataFrame pipelines: the suite's Hummingbird worker "
                                "(its own environment) takes float32 arrays, and these pipelines take string columns "
                                "holding None/NaN and unseen categories")
        path = models.model_path(model_name, ctx.cache_dir)
        job: dict[str, Any] = {"method": ctx.method, "threads": ctx.threads, "task": "classification",
                               "n_classes": 2}
        if spec.family == "xgboost":
            native = models.load_native(model_name, ctx.cache_dir)
            objective = json.loads(native.save_config() if type(native).__name__ == "Booster"
                                   else native.get_booster().save_config())["learner"]["objective"]["name"]
            if objective.startswith("reg:"):
                job["task"] = "regression"
            if ctx.method == "predict" and not objective.startswith("reg:"):
                job["method"] = "predict_proba"  # a Booster's predict is the probability
            if path.suffix == ".json" and spec.train is None:
                job["model_file"], job["n_classes"] = str(path), 2  # the shared files predate XGBoost 1.6
            else:
                out, n = legacy_xgboost_json(native, Path(ctx.cache_dir) / "hummingbird" / f"{path.stem}.json")
                job["model_file"], job["n_classes"] = str(out), n
            job["kind"] = "xgboost-json"
        else:
            job["kind"], job["model_file"] = "joblib", str(path)
        return job

    def command(self, job_path: Path) -> list[str]:
        return [str(venv_python()), "-W", "ignore", str(WORKER), str(job_path)]

    def notes(self) -> str:
        return ("hummingbird-ml 0.4.12 in its own virtual environment (bench/.venv-hummingbird: xgboost "
                f"{XGBOOST_1X}, torch 2.13.0 CPU, no TVM), run in a subprocess: it cannot run next to apache-tvm "
                "0.27 (import crash) and its XGBoost converter is wrong with XGBoost >= 2; TorchScript backend "
                "(PyTorch when TorchScript fails), torch threads = threads")
