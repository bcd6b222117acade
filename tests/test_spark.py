"""Batch scoring with the pandas UDF on Spark in local[2] mode (Java 17 needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pyspark", reason="needs the spark extra: pip install -e '.[spark]'")

import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import tuner  # noqa: E402
from tests import scale_out_model as so  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() == "true"
COLUMNS = [f"f{i}" for i in range(so.N_FEATURES)]
N_PARTS, PART_ROWS = 1, 100_000


def _java() -> None:
    """Java for Spark: installed from Debian under CI=true when missing, else the tests skip."""
    if shutil.which("java"):
        return
    if not IN_CI:
        pytest.skip("Spark needs Java 17 and `java` is not on PATH (apt-get install openjdk-17-jre-headless)")
    subprocess.run(["sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                    "apt-get install -y -qq openjdk-17-jre-headless"], check=True, stdout=sys.stderr)
    assert shutil.which("java"), "openjdk-17-jre-headless was installed but `java` is not on PATH"


@pytest.fixture(scope="module")
def spark():
    _java()
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYSPARK_PYTHON", sys.executable)  # the workers run this virtualenv's Python
        session = (SparkSession.builder.master("local[2]").appName("tunebird-test")
                   .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
                   .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
        session.sparkContext.setLogLevel("ERROR")
        yield session
        session.stop()


@pytest.fixture(scope="module")
def rows(spark, tmp_path_factory):
    """The rows as a Spark DataFrame read from Parquet, and as one NumPy array (the same values)."""
    X = so.all_rows(N_PARTS, PART_ROWS)
    frame = pd.DataFrame(X, columns=COLUMNS)
    frame.insert(0, "id", np.arange(len(X)))
    path = tmp_path_factory.mktemp("spark") / "rows.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return spark.read.parquet(str(path)), X


def test_udf_scores_a_spark_frame_like_one_process(spark, rows):
    import tuner.spark as tspark
    from pyspark.sql import functions as F

    df, X = rows
    p = tuner.load_artifact(so.artifact())
    proba = tspark.predict_udf(artifact=so.artifact(), method="predict_proba", spark=spark)
    label = tspark.predict_udf(artifact=so.artifact(), method="predict", spark=spark)
    out = (df.select("id", proba(*COLUMNS).alias("p"), label(*COLUMNS).alias("y"),
                     label(F.array(*COLUMNS)).alias("y_from_array"))
           .select("id", "p.*", "y", "y_from_array").toPandas().sort_values("id"))
    assert len(out) == len(X)
    want = p.predict_proba(X)
    assert out[["0", "1", "2"]].dtypes.tolist() == [want.dtype] * 3
    assert np.array_equal(out[["0", "1", "2"]].to_numpy(), want)
    assert out["y"].dtype == so.model().classes_.dtype
    assert np.array_equal(out["y"].to_numpy(), p.predict(X))
    assert np.array_equal(out["y_from_array"].to_numpy(), p.predict(X))


def test_refusals(spark, rows, tmp_path):
    import tuner.spark as tspark
    from pyspark.errors import PythonException

    df, _ = rows
    with pytest.raises(tuner.ArtifactIntegrityError, match="SHA-256"):
        tspark.predict_udf(artifact=so.artifact(), sha256="0" * 64, spark=spark)
    other = so.with_device(so.artifact(), tmp_path / "other.tb", cpu_model="Another CPU", n_cores=64)
    refuse = tspark.predict_udf(artifact=other, method="predict", spark=spark)
    with pytest.raises(PythonException, match="DeviceMismatchError"):
        df.limit(100).select(refuse(*COLUMNS)).collect()
