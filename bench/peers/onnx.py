"""ONNX Runtime: scikit-learn models through skl2onnx, XGBoost and LightGBM through onnxmltools.

ONNX's tree-ensemble operators compute in float32; where that changes an
output beyond tunebird's tolerance the table shows a mismatch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Context, Fn, NotApplicable, System


def to_onnx(model: Any, n_features: int) -> Any:
    """The ONNX graph of ``model`` with one float32 input of ``n_features`` columns and no ZipMap."""
    mod = type(model).__module__.split(".")[0]
    if mod in ("xgboost", "lightgbm"):
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        types = [("input", FloatTensorType([None, n_features]))]
        if mod == "xgboost":
            return onnxmltools.convert_xgboost(model, initial_types=types)
        return onnxmltools.convert_lightgbm(model, initial_types=types, zipmap=False)
    if mod == "sklearn":
        from skl2onnx import to_onnx as skl_to_onnx
        from skl2onnx.common.data_types import FloatTensorType

        last = model.steps[-1][1] if hasattr(model, "steps") else model
        options = {id(last): {"zipmap": False}} if hasattr(last, "predict_proba") else None
        return skl_to_onnx(model, initial_types=[("input", FloatTensorType([None, n_features]))], options=options)
    raise NotApplicable("unsupported", f"no ONNX converter for {type(model).__name__}")


def output_index(sess: Any, method: str, booster: bool) -> int:
    """Which session output holds what ``method`` returns: probabilities for ``predict_proba`` and for an
    XGBoost Booster's ``predict`` (its "value" is the probability)."""
    outs = sess.get_outputs()
    if method == "predict_proba" or booster or len(outs) == 1:
        for i, o in enumerate(outs):
            if "prob" in o.name.lower():
                return i
        return len(outs) - 1
    return 0


class OnnxRuntime(System):
    name = "onnxruntime"
    label = "ONNX Runtime"
    requires = ("onnxruntime", "onnxmltools", "skl2onnx")
    imports = ("xgboost",)

    def prepare(self, model_name: str, ctx: Context) -> tuple[Fn, str]:
        import onnxruntime as ort

        from .. import models

        model = models.load_native(model_name, ctx.cache_dir)
        booster = type(model).__name__ == "Booster"
        n_features = model.num_features() if booster else model.n_features_in_
        onx = to_onnx(model, int(n_features))
        so = ort.SessionOptions()
        so.intra_op_num_threads = ctx.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
        name, out = sess.get_inputs()[0].name, output_index(sess, ctx.method, booster)
        out_name = sess.get_outputs()[out].name

        def run(X: np.ndarray) -> np.ndarray:
            return sess.run([out_name], {name: X if X.dtype == np.float32 else X.astype(np.float32)})[0]

        return run, f"output {out_name!r}"

    def notes(self) -> str:
        if self.available():
            return ""
        import onnxmltools
        import onnxruntime
        import skl2onnx
        return (f"ONNX Runtime {onnxruntime.__version__} (CPU provider, intra_op threads = threads), models converted "
                f"with skl2onnx {skl2onnx.__version__} / onnxmltools {onnxmltools.__version__}")
