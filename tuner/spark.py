"""Batch scoring on Spark: a pandas UDF (Arrow batches) that runs a tuned model.

Needs the ``spark`` extra (``pip install tunebird[spark]``; Spark needs Java 17).
The artifact's bytes are broadcast (``SparkContext.broadcast``); each Python
worker checks their SHA-256, checks that the artifact was built for its
device, loads the predictor once (cached by SHA-256 while the worker is reused)
and scores each Arrow batch.  Loading an artifact runs its code: ship only
artifacts you trust.

Example (a model tuned with ``tunebird tune model.json`` into ``tunebird.db``)::

    from pyspark.sql import SparkSession
    import tuner.spark

    # the Python workers must run an interpreter with tunebird installed (PYSPARK_PYTHON, or
    # spark.pyspark.python on a cluster); Arrow batches as large as the tuned batch size suit the plans
    spark = (SparkSession.builder.master("local[2]")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", "65536").getOrCreate())
    df = spark.read.parquet("rows.parquet")                  # columns f0 .. f27
    features = [f"f{i}" for i in range(28)]

    # labels, from the tuned predictor in the records database ...
    predict = tuner.spark.predict_udf("model.json", db="tunebird.db", method="predict")
    scored = df.withColumn("label", predict(*features))

    # ... or probabilities from an artifact file (Predictor.save): a struct, one field per class
    proba = tuner.spark.predict_udf(artifact="model.tb", method="predict_proba")
    scored = scored.withColumn("p", proba(*features)).select("*", "p.*")
    scored.write.parquet("scores.parquet")

    # the features as one array<float> or array<double> column work too
    from pyspark.sql import functions as F
    scored = df.select(predict(F.array(*features)).alias("label"))

The UDF's arguments are the model's input columns, in the model's order: for a
model fitted on a pandas DataFrame (a pipeline with string columns, say) the
named columns, which the UDF passes on under the model's feature names; for a
model fitted on an array, the feature columns in order, or one array column
holding each row's features.  The result is one column typed like the original
model's output for 1-D results (``predict``: the classes' type), or a struct
with one field per class for ``predict_proba``.  A worker on another device
refuses the artifact (``tuner.scoring.DeviceMismatchError``), or with
``on_device_mismatch="default"`` scores with the model's untuned default and a
warning.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .scoring import OnMismatch, OutputLayout, artifact_for, check_on_mismatch, output_layout, worker_predictor

log = logging.getLogger(__name__)

__all__ = ["predict_udf", "spark_type"]


def predict_udf(
    model: Any = None,
    *,
    db: Any = None,
    artifact: Any = None,
    method: str = "predict",
    sha256: str | None = None,
    strict: bool = False,
    on_device_mismatch: OnMismatch = "raise",
    spark: Any = None,
) -> Any:
    """A pandas UDF computing ``method`` of the tuned model on its input columns.

    ``model`` (estimator, model file or Predictor) with ``db`` and ``strict`` as in
    ``tuner.load``, or ``artifact`` (a ``Predictor.save`` file or its bytes);
    ``sha256`` pins the artifact's digest.  ``spark``: the session whose context
    broadcasts the artifact (default: the active one).
    """
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import pandas_udf

    check_on_mismatch(on_device_mismatch)
    session = spark or SparkSession.getActiveSession()
    if session is None:
        raise RuntimeError("predict_udf needs a running SparkSession (pass spark= or create one first)")
    blob, digest, predictor = artifact_for(model, db=db, artifact=artifact, sha256=sha256, strict=strict)
    spec = predictor.model.input
    layout = output_layout(predictor, method, _sample(spec))
    broadcast = session.sparkContext.broadcast(blob)
    names = list(spec.feature_names) if spec.feature_names is not None else None
    n_features = spec.n_features

    def score(*columns: Any) -> Any:
        predictor = worker_predictor(broadcast.value, digest, on_device_mismatch)
        values = getattr(predictor, method)(_features(columns, names, n_features))
        return _result(values, layout)

    return pandas_udf(score, returnType=_return_type(layout), functionType=_scalar())


def _scalar() -> int:
    from pyspark.util import PythonEvalType

    return PythonEvalType.SQL_SCALAR_PANDAS_UDF


def _sample(spec: Any) -> Any:
    """Two rows the model accepts, typed as a worker will see them (float64 columns, string vocabularies)."""
    if spec.columns is None and spec.feature_names is None:
        return np.zeros((2, spec.n_features))
    import pandas as pd

    names = list(spec.feature_names) if spec.feature_names is not None else list(range(spec.n_features))
    data = {}
    for j, name in enumerate(names):
        col = spec.column(j)
        if col.kind == "string":
            vocab = col.lookup_index()[0]
            first = next(iter(vocab)) if len(vocab) else None
            data[name] = pd.Series([first, first], dtype=object)
        else:
            data[name] = np.zeros(2)
    return pd.DataFrame(data)


def _features(columns: tuple[Any, ...], names: list[str] | None, n_features: int) -> Any:
    """The model's input from a batch's columns: a frame under the model's names, or a 2-D array."""
    import pandas as pd

    if len(columns) == 1 and n_features > 1 and columns[0].dtype == object:  # one array column
        return np.stack(columns[0].to_numpy())
    if names is not None:
        if len(columns) != len(names):
            raise ValueError(f"the UDF takes the model's {len(names)} input columns {names[:8]}, got {len(columns)}")
        return pd.DataFrame({name: col.reset_index(drop=True) for name, col in zip(names, columns)})
    if len(columns) != n_features:
        raise ValueError(f"the UDF takes the model's {n_features} feature columns (or one array column), "
                         f"got {len(columns)} columns")
    return np.column_stack([c.to_numpy() for c in columns])


def _result(values: np.ndarray, layout: OutputLayout) -> Any:
    import pandas as pd

    if layout.one_d:
        return pd.Series(values)
    return pd.DataFrame(values, columns=list(layout.columns))


def spark_type(dtype: np.dtype) -> Any:
    """The Spark SQL type holding a NumPy dtype's values exactly."""
    from pyspark.sql import types as T

    dtype = np.dtype(dtype)
    table = {"f4": T.FloatType(), "f8": T.DoubleType(), "i1": T.ByteType(), "i2": T.ShortType(),
             "i4": T.IntegerType(), "i8": T.LongType(), "b1": T.BooleanType()}
    key = f"{dtype.kind}{dtype.itemsize}"
    if key in table:
        return table[key]
    if dtype.kind in "US":
        return T.StringType()
    if dtype.kind == "u" and dtype.itemsize < 8:
        return T.LongType()
    raise TypeError(f"no Spark type holds {dtype} exactly; expected a float, int, bool or string output")


def _return_type(layout: OutputLayout) -> Any:
    from pyspark.sql import types as T

    if layout.one_d:
        return spark_type(layout.dtypes[0])
    return T.StructType([T.StructField(name, spark_type(dt))
                         for name, dt in zip(layout.columns, layout.dtypes)])
