"""Splink's Spark backend, run for real on a local Spark (Java and pyspark come from
``make spark-prerequisites``): it links a simulated population into the same persons as DuckDB,
and a Spark it cannot start, reach or import is a one-line LinkageError."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

from srs.pipeline.ingest import load_dictionary
from srs.pipeline.linkage import (
    SPARK_MASTER_VARIABLE,
    LinkageError,
    LinkageResult,
    database_api,
    link_tables,
    load_linkage_settings,
    mapping_from_dictionary,
)
from srs.pipeline.simulation import simulate

PERSONS, SEED = 300, 5


def persons(result: LinkageResult) -> set[frozenset[str]]:
    """The clusters as a partition of the records: cluster ids may differ, the sets may not."""
    return set(result.clusters.groupby("cluster_id")["unique_id"].agg(frozenset))


def test_spark_links_the_same_persons_as_duckdb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPARK_MASTER_VARIABLE, raising=False)
    simulation = simulate(PERSONS, SEED)
    mappings = {s: mapping_from_dictionary(load_dictionary(s)) for s in simulation.extracts}
    # Each source its own table (Splink's link_and_dedupe), so sources that leave a column
    # empty go to Spark as tables of their own.
    settings = load_linkage_settings().model_copy(update={"link_type": "link_and_dedupe"})
    runs = {
        backend: link_tables(
            simulation.extracts, mappings, settings.model_copy(update={"backend": backend})
        )
        for backend in ("duckdb", "spark")
    }
    duckdb, spark = persons(runs["duckdb"]), persons(runs["spark"])
    records = sum(len(t) for t in simulation.extracts.values())
    assert sum(len(p) for p in spark) == records
    assert len(duckdb) < records * 0.5  # most persons have several records: a real linkage
    assert spark == duckdb, (
        f"{len(spark ^ duckdb)} clusters differ, e.g. {sorted(spark - duckdb, key=len)[-1:]}"
    )


def closed_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


@pytest.mark.parametrize(
    ("master", "message"),
    [
        ("nonsense://nowhere", "'nonsense://nowhere', which names no Spark master: use spark:"),
        ("local[two]", "'local\\[two\\]', which names no Spark master"),
        ("yarn", "yarn, but neither HADOOP_CONF_DIR nor YARN_CONF_DIR is set"),
        (f"spark://127.0.0.1:{closed_port()}", "cannot reach the Spark master at 127.0.0.1"),
        ("spark://no-port", "'spark://no-port', which names no Spark master: .* spark://HOST:PORT"),
    ],
)
def test_a_bad_master_url_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, master: str, message: str
) -> None:
    monkeypatch.setenv(SPARK_MASTER_VARIABLE, master)
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("YARN_CONF_DIR", raising=False)
    with pytest.raises(LinkageError, match=message) as error:
        database_api("spark")
    assert SPARK_MASTER_VARIABLE in str(error.value) and "\n" not in str(error.value)


def run_python(code: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_no_java_runtime_is_a_clear_error() -> None:
    # An empty PATH and no JAVA_HOME: there is no java to start Spark with.
    done = run_python(
        """
        from srs.pipeline.linkage import LinkageError, database_api
        try:
            database_api("spark")
        except LinkageError as exc:
            print(exc)
        """,
        PATH="",
    )
    assert done.returncode == 0, done.stderr
    assert "needs a Java runtime (17 or later) and finds none" in done.stdout
    assert "default-jre-headless" in done.stdout


def test_no_pyspark_is_a_clear_error() -> None:
    done = run_python(
        """
        import sys
        sys.modules["pyspark"] = None  # as if pyspark were not installed
        from srs.pipeline.linkage import LinkageError, database_api
        try:
            database_api("spark")
        except LinkageError as exc:
            print(exc)
        """,
        PATH="",
    )
    assert done.returncode == 0, done.stderr
    assert "needs pyspark, which is not installed" in done.stdout
