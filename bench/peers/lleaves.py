"""lleaves: LightGBM models compiled to native code through LLVM (``llvmlite``).

The model's text dump is compiled once by ``lleaves.Model.compile(cache=...)`` (seconds to minutes, growing with
the model) and cached under ``<models cache>/lleaves/``, keyed by the dump's content hash and the lleaves / llvmlite
versions.  ``predict(X_float64, n_jobs=threads)`` returns the objective-transformed score (the probability of class
1 for a binary model), aligned to LightGBM's ``predict_proba`` columns ``[1-p, p]`` by ``base.align``.
lleaves 1.3 needs ``llvmlite<0.44`` (newer bindings lost ``PassManagerBuilder``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from .base import Context, Fn, NotApplicable, System


def model_text(model: Any) -> str:
    """The LightGBM text dump of a native LightGBM model (NotApplicable for anything else)."""
    mod, name = type(model).__module__.split(".")[0], type(model).__name__
    if mod != "lightgbm":
        raise NotApplicable("unsupported", f"lleaves compiles LightGBM models only, not {name}")
    booster = model if name == "Booster" else model.booster_
    return booster.model_to_string()


def cache_paths(text: str, model_name: str, cache_dir: Path) -> tuple[Path, Path]:
    """``(model text file, compiled library)`` for this dump, keyed by its content and the compiler versions."""
    import llvmlite

    from importlib.metadata import version as dist_version

    version = dist_version("lleaves")
    key = hashlib.sha256(f"{text}|lleaves {version}|llvmlite {llvmlite.__version__}".encode()).hexdigest()[:12]
    folder = Path(cache_dir) / "lleaves"
    return folder / f"{model_name}-{key}.txt", folder / f"{model_name}-{key}.so"


class Lleaves(System):
    name = "lleaves"
    label = "lleaves"
    requires = ("lleaves", "llvmlite")
    imports = ("lightgbm",)

    def available(self) -> str | None:
        why = super().available()
        if why:
            return why
        import llvmlite.binding as llvm

        if not hasattr(llvm, "PassManagerBuilder"):
            import llvmlite
            return (f"not installed (llvmlite<0.44): lleaves cannot compile with llvmlite {llvmlite.__version__}; "
                    "pip install 'llvmlite<0.44'")
        return None

    def prepare(self, model_name: str, ctx: Context) -> tuple[Fn, str]:
        import lleaves

        from .. import models

        if models.SPECS[model_name].frame:
            raise NotApplicable("unsupported", "lleaves compiles LightGBM models over float arrays, not a pipeline "
                                               "over a DataFrame")
        if models.SPECS[model_name].family != "lightgbm":
            raise NotApplicable("unsupported", "lleaves compiles LightGBM models only")
        text = model_text(models.load_native(model_name, ctx.cache_dir))
        txt, lib = cache_paths(text, model_name, ctx.cache_dir)
        note = "cached library"
        if not txt.exists():
            txt.parent.mkdir(parents=True, exist_ok=True)
            tmp = txt.with_name(txt.stem + ".tmp.txt")
            tmp.write_text(text)
            tmp.replace(txt)
        m = lleaves.Model(model_file=str(txt))
        if lib.exists():
            m.compile(cache=str(lib))
        else:
            tmp = lib.with_name(lib.stem + ".tmp.so")
            m.compile(cache=str(tmp))
            tmp.replace(lib)
            note = "compiled with LLVM in this run"
        threads = ctx.threads

        def run(X: np.ndarray) -> np.ndarray:
            out = m.predict(X if X.dtype == np.float64 else X.astype(np.float64), n_jobs=threads)
            return np.asarray(out).reshape(X.shape[0], -1)

        return run, f"{note}; predict on float64 (the float32 batch converted inside the timed call)"

    def notes(self) -> str:
        if self.available():
            return ""
        from importlib.metadata import version as dist_version

        import llvmlite

        return (f"lleaves {dist_version('lleaves')} (llvmlite {llvmlite.__version__}): "
                "Model(model_file).compile(cache) once, cached by the model's content hash; "
                "predict(float64, n_jobs = threads)")
