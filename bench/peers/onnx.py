"""ONNX Runtime: scikit-learn models through skl2onnx, XGBoost and LightGBM through onnxmltools.

ONNX's tree-ensemble operators compute in float32; where that changes an
output beyond tunebird's tolerance the table shows a mismatch.

The DataFrame pipelines (``bench/pipelines.py``) are converted with one
``[N, 1]`` input per column, as skl2onnx's ColumnTransformer examples do: a
string tensor per string column, a float tensor per float column (ONNX-ML's
Imputer has no double kernel in ONNX Runtime).  Each DataFrame batch becomes
that dict of arrays inside the timed call.  ONNX string tensors cannot hold a
missing value: None and NaN are fed as ``"None"`` and ``"nan"``, the strings
skl2onnx writes for those categories (``str(category)``), which reproduces
scikit-learn's encoding of them (a fitted category of that spelling would be
confused with them; the generated data have none).
"""

from __future__ import annotations

from typing import Any, Callable

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


FRAME_OPSET = {"": 17, "ai.onnx.ml": 3}  # skl2onnx's XGBoost conversion refuses ai.onnx.ml 5 (shared notes/peers.md)


def frame_columns(model: Any) -> list[tuple[str, str]]:
    """A DataFrame pipeline's input columns in fit order, each "string" (an encoder fitted object categories on it)
    or "float"."""
    prep = model.steps[0][1]
    strings: set[str] = set()
    for _, transformer, columns in getattr(prep, "transformers_", ()):
        cats = getattr(transformer, "categories_", None)
        if cats is not None and any(np.asarray(c).dtype == object for c in cats):
            strings.update(columns)
    return [(c, "string" if c in strings else "float") for c in model.feature_names_in_]


def _register_xgboost() -> None:
    """skl2onnx converts an XGBClassifier inside a pipeline with onnxmltools' converter once it is registered."""
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from xgboost import XGBClassifier

    update_registered_converter(XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes,
                                convert_xgboost, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})


def frame_to_onnx(model: Any, columns: list[tuple[str, str]]) -> Any:
    """The ONNX graph of a DataFrame pipeline: one [N, 1] input per column, no ZipMap."""
    from skl2onnx import to_onnx as skl_to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    last = model.steps[-1][1]
    if type(last).__module__.split(".")[0] == "xgboost":
        _register_xgboost()
    types = [(c, (StringTensorType if kind == "string" else FloatTensorType)([None, 1])) for c, kind in columns]
    options = {id(last): {"zipmap": False}} if hasattr(last, "predict_proba") else None
    return skl_to_onnx(model, initial_types=types, options=options, target_opset=FRAME_OPSET)


def frame_feed(columns: list[tuple[str, str]]) -> Callable[[Any], dict[str, np.ndarray]]:
    """DataFrame batch -> ONNX Runtime's input dict: string columns as object arrays of str (None -> "None",
    NaN -> "nan", the spellings of those categories in the graph), float columns as float32."""
    import pandas as pd

    def feed(X: Any) -> dict[str, np.ndarray]:
        out = {}
        for c, kind in columns:
            if kind == "string":
                a = X[c].to_numpy(dtype=object, copy=True)
                missing = pd.isna(a)
                if missing.any():
                    a[missing] = [str(v) for v in a[missing]]
                out[c] = a.reshape(-1, 1)
            else:
                out[c] = X[c].to_numpy(dtype=np.float32).reshape(-1, 1)
        return out

    return feed


def frame_caveats(model: Any) -> list[str]:
    """What keeps this pipeline's ONNX outputs from matching scikit-learn's, known before running it."""
    prep, last = model.steps[0][1], model.steps[-1][1]
    out = []
    if type(last).__module__.split(".")[0] == "xgboost" and getattr(prep, "sparse_output_", False):
        out.append("XGBoost was fitted on the ColumnTransformer's sparse (CSR) output, where absent entries (the "
                   "one-hot zeros) are missing values; ONNX feeds it dense zeros")
    if type(last).__module__.split(".")[0] == "xgboost":
        out.append("imputing and scaling run in float32 in ONNX (float64 in scikit-learn), which moves values that "
                   "sit on XGBoost's split points (integer-valued columns) to the other side")
    return out


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
        frame = models.SPECS[model_name].frame
        if frame:
            columns = frame_columns(model)
            onx = frame_to_onnx(model, columns)
        else:
            n_features = model.num_features() if booster else model.n_features_in_
            onx = to_onnx(model, int(n_features))
        so = ort.SessionOptions()
        so.intra_op_num_threads = ctx.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
        name, out = sess.get_inputs()[0].name, output_index(sess, ctx.method, booster)
        out_name = sess.get_outputs()[out].name
        if frame:
            feed = frame_feed(columns)
            n_str = sum(kind == "string" for _, kind in columns)

            def run_frame(X: Any) -> np.ndarray:
                return sess.run([out_name], feed(X))[0]

            note = (f"output {out_name!r}; inputs: one [N,1] tensor per column ({n_str} string, "
                    f"{len(columns) - n_str} float32), None/NaN fed as 'None'/'nan'; DataFrame-to-tensor conversion "
                    f"timed in each call")
            return run_frame, "; ".join([note, *(f"known cause of differences: {c}" for c in frame_caveats(model))])

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
