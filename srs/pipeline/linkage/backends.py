"""The databases Splink runs on (DuckDB in this process, or Spark, local or on a cluster), and
the records registered with them as tables of text."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import pandas as pd

from srs.pipeline.linkage.errors import LinkageError


def database_api(backend: str):
    """The Splink database API for ``backend``.

    ``spark`` runs on the Spark session already running in this process when there is one;
    otherwise on a session started on the master named by ``SRS_SPARK_MASTER`` (a cluster:
    ``spark://host:7077``, ``yarn``, ``k8s://https://host:443``; or ``local[8]``), or on a
    small local session (``local[2]``) when that is unset. On a cluster, Splink writes its
    intermediate tables under ``SRS_SPARK_CHECKPOINT_DIR``, a folder every executor reaches.
    """
    if backend == "duckdb":
        import duckdb
        from splink import DuckDBAPI

        # DuckDB spills what does not fit in memory to `.tmp` in the working folder by default:
        # names and dates of birth, unencrypted, wherever the steward happened to run the
        # command. A private folder (mode 0700) of the system's temporary area instead.
        spill = tempfile.mkdtemp(prefix="srs-linkage-")
        return DuckDBAPI(connection=duckdb.connect(config={"temp_directory": spill}))
    if backend == "spark":
        return _spark_api()
    raise LinkageError(f"unknown linkage backend {backend!r}; use duckdb or spark")


SPARK_MASTER_VARIABLE = "SRS_SPARK_MASTER"
SPARK_CHECKPOINT_VARIABLE = "SRS_SPARK_CHECKPOINT_DIR"
_LOCAL_SPARK_MASTER = "local[2]"
# The master URLs Spark takes; checked first, since spark-submit answers any other with a Java
# stack trace and PySpark with "Java gateway process exited".
_SPARK_MASTER_URL = re.compile(r"local(\[(\d+|\*)(,\d+)?\])?|yarn|(spark|k8s)://.+")
# Shuffles of a local session: Spark's 200 partitions would make thousands of tiny tasks.
_LOCAL_SHUFFLE_PARTITIONS = 8
# Spark sessions database_api started itself; only those it may stop to start another.
_STARTED_SPARK_SESSIONS: list = []
# Spark's own logging above errors only: its start-up warnings are not the steward's concern.
# (PySpark's gateway logger at the root's level too, or Spark announces a level of its own.)
_QUIET_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = error
"""


def _spark_api():
    try:
        from pyspark.sql import SparkSession
        from splink.backends.spark import SparkAPI
    except ImportError:
        raise LinkageError(
            "the spark backend needs pyspark, which is not installed: pip install "
            "'srs-toolkit[spark]' (or run `make spark-prerequisites`), or use backend: duckdb"
        ) from None
    if os.environ.get("SPARK_REMOTE"):
        raise LinkageError(
            "SPARK_REMOTE is set, but Splink's Spark backend cannot run over Spark Connect; "
            f"unset it and set {SPARK_MASTER_VARIABLE} to the cluster's master URL "
            "(spark://host:7077, yarn, k8s://https://host:443)"
        )
    requested = os.environ.get(SPARK_MASTER_VARIABLE, "").strip() or None
    session = SparkSession.getActiveSession()
    if session is not None and requested not in (None, session.sparkContext.master):
        if not any(session is started for started in _STARTED_SPARK_SESSIONS):
            raise LinkageError(
                f"a Spark session on {session.sparkContext.master} is already running in this "
                f"process, but {SPARK_MASTER_VARIABLE} asks for {requested}; stop that "
                f"session or unset {SPARK_MASTER_VARIABLE} to link on it"
            )
        session.stop()
        session = None
    if session is None:
        session = _start_spark_session(SparkSession, requested or _LOCAL_SPARK_MASTER)
        _STARTED_SPARK_SESSIONS.append(session)
    _set_checkpoint_dir(session)
    return SparkAPI(spark_session=session)


def _start_spark_session(builder_class, master: str):  # noqa: ANN001 - pyspark's SparkSession
    from splink.backends.spark import similarity_jar_location

    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").exists()) and not shutil.which("java"):
        raise LinkageError(
            "the spark backend needs a Java runtime (17 or later) and finds none: install one "
            "(Debian: apt-get install default-jre-headless; `make spark-prerequisites` does) or "
            "set JAVA_HOME to it, or use backend: duckdb"
        )
    if not _SPARK_MASTER_URL.fullmatch(master):
        raise LinkageError(
            f"{SPARK_MASTER_VARIABLE} is {master!r}, which names no Spark master: use "
            "spark://HOST:PORT, yarn, k8s://https://HOST:PORT or local[CORES]"
        )
    if master == "yarn" and not (
        os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")
    ):
        raise LinkageError(
            f"{SPARK_MASTER_VARIABLE} is yarn, but neither HADOOP_CONF_DIR nor YARN_CONF_DIR "
            "is set: point one at the cluster's Hadoop configuration folder"
        )
    if master.startswith("spark://"):
        _check_spark_master_reachable(master)
    local = master.startswith("local")
    folder = Path(tempfile.mkdtemp(prefix="srs-spark-"))
    atexit.register(shutil.rmtree, folder, True)
    log4j = folder / "log4j2.properties"
    log4j.write_text(_QUIET_LOG4J, encoding="utf-8")
    builder = (
        builder_class.builder.master(master)
        .appName("srs-linkage")
        # Splink's string similarity functions (Jaro-Winkler, Damerau-Levenshtein) for Spark.
        .config("spark.jars", similarity_jar_location())
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log4j}")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if local:
        builder = (
            builder.config("spark.sql.shuffle.partitions", str(_LOCAL_SHUFFLE_PARTITIONS))
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.pyspark.python", sys.executable)
        )
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - Spark raises Py4J and PySpark errors alike
        raise LinkageError(
            f"cannot start Spark on master {master!r}: {_spark_reason(exc)}; check "
            f"{SPARK_MASTER_VARIABLE} and the Java runtime (java -version)"
        ) from None
    session.sparkContext.setLogLevel("ERROR")
    return session


def _check_spark_master_reachable(master: str) -> None:
    """Refuse at once a standalone master no one answers at (Spark would retry for a minute)."""
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise LinkageError(
                f"{SPARK_MASTER_VARIABLE} is {master!r}, which names no Spark master: a "
                "standalone master is spark://HOST:PORT (several: spark://HOST:PORT,HOST:PORT)"
            )
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise LinkageError(
                f"cannot reach the Spark master at {address} ({exc}); check "
                f"{SPARK_MASTER_VARIABLE} ({master})"
            ) from None


def _set_checkpoint_dir(session) -> None:  # noqa: ANN001 - pyspark's SparkSession
    """Give Splink the checkpoint folder it writes intermediate tables to, when none is set."""
    context = session.sparkContext
    if context.getCheckpointDir() is not None:
        return
    folder = os.environ.get(SPARK_CHECKPOINT_VARIABLE, "").strip()
    if not folder:
        if not context.master.startswith("local"):
            raise LinkageError(
                f"Splink writes its intermediate tables to Spark's checkpoint folder, and on "
                f"the cluster {context.master} it must be one every executor reaches: set "
                f"{SPARK_CHECKPOINT_VARIABLE} (e.g. hdfs:///tmp/srs-linkage or "
                "s3a://bucket/srs-linkage)"
            )
        folder = tempfile.mkdtemp(prefix="srs-spark-checkpoints-")
        atexit.register(shutil.rmtree, folder, True)
    context.setCheckpointDir(folder)


def _spark_reason(exc: Exception) -> str:
    """The first line of what Spark said, without the Java stack trace."""
    java = getattr(exc, "java_exception", None)
    text = str(java.getMessage()) if java is not None else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def input_tables(db_api, records: pd.DataFrame, link_type: str) -> list:  # noqa: ANN001
    """The records registered with Splink: one table per source when linking sources, else one.

    Every column goes in as text (standardise makes them text), so a column one source leaves
    empty is still a text column, not one of no type that Spark cannot read.
    """
    parts = (
        [part for _, part in records.groupby("source_dataset", sort=False)]
        if link_type != "dedupe_only"
        else [records]
    )
    return [db_api.register(_as_text_table(db_api, part)) for part in parts]


def _as_text_table(db_api, frame: pd.DataFrame):  # noqa: ANN001
    text = frame.reset_index(drop=True)
    # A column already of text (standardise makes them so) goes in as it is; mapping str over
    # every value is most of the time spent here.
    text = text.apply(
        lambda column: (
            column
            if column.dtype == object and pd.api.types.infer_dtype(column) in ("string", "empty")
            else column.astype(object).where(column.notna(), None).map(str, na_action="ignore")
        )
    )
    if getattr(db_api, "spark", None) is not None:
        text = text.where(text.notna(), None)  # Spark takes None, not NaN, as missing text
        from pyspark.sql.types import StringType, StructField, StructType

        schema = StructType([StructField(str(c), StringType(), True) for c in text.columns])
        return db_api.spark.createDataFrame(text, schema=schema)
    import pyarrow as pa

    schema = pa.schema([(str(c), pa.string()) for c in text.columns])
    return pa.Table.from_pandas(text, schema=schema, preserve_index=False)
