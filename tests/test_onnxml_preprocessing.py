"""ONNX-ML preprocessing operators in, checked against ONNX Runtime on the same file.

Re-expresses Hummingbird's ``tests/test_onnxml_binarizer_converter.py``, ``test_onnxml_imputer_converter.py``,
``test_onnxml_normalizer_converter.py``, ``test_onnxml_scaler_converter.py``,
``test_onnxml_one_hot_encoder_converter.py`` and ``test_onnxml_label_encoder_converter.py`` (same models,
data and parameters).  Left out: the ``*_raises_rt*`` cases (Hummingbird-specific errors on its own
``convert`` arguments; tunebird's equivalents are the unsupported-node tests below); the float64-input
scaler case (tree-free float64 graphs compile, but Hummingbird's case tests its ONNX backend's input
casting); ``StandardScaler(with_mean=False, with_std=False)`` is compiled here (skl2onnx writes an identity
Scaler) where Hummingbird expects an error.  ``Normalizer(norm="max")`` is refused (see its test).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from onnxml_helpers import check, ort_outputs

skl2onnx = pytest.importorskip("skl2onnx")
from skl2onnx import convert_sklearn  # noqa: E402
from skl2onnx.common.data_types import (  # noqa: E402
    FloatTensorType,
    Int32TensorType,
    Int64TensorType,
    StringTensorType,
)
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.preprocessing import (  # noqa: E402
    Binarizer,
    LabelEncoder,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    RobustScaler,
    StandardScaler,
)

import tuner  # noqa: E402

X_SMALL = np.array([[1, 2, 3], [4, 3, 0], [0, 1, 4], [0, 5, 6]], dtype=np.float32)


def _onnx(model, X, types=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_sklearn(model, initial_types=types or [("float_input", FloatTensorType([None, X.shape[1]]))])


@pytest.mark.parametrize("threshold", [0.0, 3.0, -3.0])
def test_binarizer(threshold):
    model = Binarizer(threshold=threshold).fit(X_SMALL)
    check(_onnx(model, X_SMALL), X_SMALL)


@pytest.mark.parametrize("model", [
    SimpleImputer(strategy="constant"),
    SimpleImputer(strategy="constant", fill_value=0),
    SimpleImputer(strategy="mean"),
], ids=["const", "const_nan0", "mean"])
def test_imputer(model):
    X = np.array([[1, 2], [np.nan, 3], [7, 6]], dtype=np.float32)
    model.fit(X)
    check(_onnx(model, X), X)


def test_normalizer_max_refused():
    # ONNX Runtime's MAX divides by the signed row maximum (rows of negatives flip sign), not scikit-learn's
    # maximum absolute value: refused rather than computed differently
    onx = _onnx(Normalizer(norm="max").fit(X_SMALL), X_SMALL)
    with pytest.raises(tuner.UnsupportedModelError, match="MAX"):
        tuner.compile(onx, backend="torch")


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_normalizer(norm):
    model = Normalizer(norm=norm).fit(X_SMALL)
    check(_onnx(model, X_SMALL), X_SMALL)
    X = np.array([[-1, 2, 3], [4, -3, 0], [0, 0, 0], [-5, -1, -4]], dtype=np.float32)
    check(_onnx(model, X), X)


@pytest.mark.parametrize("model", [
    StandardScaler(with_mean=True, with_std=True),
    StandardScaler(with_mean=True, with_std=False),
    StandardScaler(with_mean=False, with_std=False),
    RobustScaler(with_centering=True),
    RobustScaler(with_centering=False),
    MaxAbsScaler(),
    MinMaxScaler(),
], ids=["std_tt", "std_tf", "std_ff", "robust_t", "robust_f", "maxabs", "minmax"])
def test_scaler(model):
    X = np.array([[0.0, 0.0, 3.0], [1.0, -1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, -2.0]], dtype=np.float32)
    model.fit(X)
    check(_onnx(model, X), X)


@pytest.mark.parametrize("X, kind", [
    (np.array([[1, 2, 3]], dtype=np.int32), Int32TensorType),
    (np.array([[1, 2, 3], [2, 1, 3]], dtype=np.int32), Int32TensorType),
    (np.array([[1, 2, 3]], dtype=np.int64), Int64TensorType),
], ids=["int", "int2", "int64"])
def test_one_hot_encoder_int(X, kind):
    model = OneHotEncoder().fit(X)
    onx = _onnx(model, X, [("int_input", kind([None, X.shape[1]]))])
    check(onx, X)


def test_one_hot_encoder_unknown_category_refused_like_onnxruntime():
    X = np.array([[1, 2, 3], [2, 1, 3]], dtype=np.int64)
    onx = _onnx(OneHotEncoder().fit(X), X, [("int_input", Int64TensorType([None, 3]))])
    p = tuner.compile(onx, backend="torch")
    with pytest.raises(Exception):
        ort_outputs(onx, np.array([[9, 2, 3]], dtype=np.int64))
    with pytest.raises(ValueError, match="unknown categor"):
        p.transform(np.array([[9, 2, 3]], dtype=np.int64))


def test_one_hot_encoder_string():
    data = np.array([["a", "r", "x"], ["a", "r", "x"], ["aaaa", "r", "x"], ["a", "r", "xx"]])
    model = OneHotEncoder().fit(data)
    onx = _onnx(model, data, [("input", StringTensorType([None, 3]))])
    check(onx, data)


def test_one_hot_encoder_ignore_unknown():
    data = np.array([["a", "r", "x"], ["b", "r", "y"], ["a", "s", "x"]])
    model = OneHotEncoder(handle_unknown="ignore").fit(data)
    onx = _onnx(model, data, [("input", StringTensorType([None, 3]))])
    check(onx, np.array([["a", "q", "x"], ["zz", "s", "y"]]))


def test_label_encoder_int():
    X = np.array([1, 4, 5, 2, 0, 2], dtype=np.int64)
    model = LabelEncoder().fit(X)
    onx = _onnx(model, X, [("input", Int64TensorType([None]))])
    check(onx, X)
    check(onx, np.array([3, 4, 7], dtype=np.int64))  # unknown keys: the default -1, as ONNX Runtime


def test_label_encoder_str():
    data = np.array(["paris", "milan", "amsterdam", "tokyo"])
    model = LabelEncoder().fit(data)
    onx = _onnx(model, data, [("input", StringTensorType([None]))])
    check(onx, data)
    check(onx, np.array(["tokyo", "rome", "paris"]))


def test_unsupported_node_is_named():
    from onnx import TensorProto, helper

    node = helper.make_node("Erf", ["X"], ["Y"], name="my_erf")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 3])])
    onx = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)
    with pytest.raises(tuner.UnsupportedModelError, match=r"my_erf.*'Erf'.*ai\.onnx"):
        tuner.compile(onx, backend="torch")


def test_arithmetic_graph():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.RandomState(0)
    W = rng.randn(3, 2).astype(np.float32)
    inits = [numpy_helper.from_array(np.array([1.5, -2.0, 0.25], np.float32), "a"),
             numpy_helper.from_array(np.array([2.0], np.float32), "d"),
             numpy_helper.from_array(W, "W"), numpy_helper.from_array(np.array([0.5, -1.0], np.float32), "c")]
    nodes = [helper.make_node("Sub", ["X", "a"], ["s"]), helper.make_node("Div", ["s", "d"], ["q"]),
             helper.make_node("Mul", ["q", "a"], ["m"]), helper.make_node("Gemm", ["m", "W", "c"], ["g"]),
             helper.make_node("Add", ["g", "c"], ["h"]), helper.make_node("Softmax", ["h"], ["Y"], axis=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])], inits)
    onx = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)
    check(onx, rng.randn(20, 3).astype(np.float32))


def test_activation_mid_graph_and_concat():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.RandomState(1)
    inits = [numpy_helper.from_array(np.array([0, 2], np.int64), "cols"),
             numpy_helper.from_array(np.array([[3.0], [-1.0]], np.float32), "W")]
    nodes = [helper.make_node("Sigmoid", ["X"], ["s"]),
             helper.make_node("ArrayFeatureExtractor", ["s", "cols"], ["a"], domain="ai.onnx.ml"),
             helper.make_node("MatMul", ["a", "W"], ["m"]),
             helper.make_node("Concat", ["m", "X"], ["c"], axis=1),
             helper.make_node("Identity", ["c"], ["Y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])], inits)
    onx = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 3)],
                            ir_version=8)
    check(onx, rng.randn(30, 3).astype(np.float32) * 4)
