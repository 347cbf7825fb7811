"""Spark session factory: Java check, settings sized for the machine (no Spark started here)."""

from __future__ import annotations

import os
import stat

import pytest

from cohortlake.errors import EnvironmentProblem
from cohortlake.lake import session


def fake_java(tmp_path, version_text: str) -> str:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_text}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return str(home)


@pytest.fixture(autouse=True)
def fresh_java_check():
    session.check_java.cache_clear()
    session.java_version_text.cache_clear()
    yield
    session.check_java.cache_clear()
    session.java_version_text.cache_clear()


def test_java_8_is_refused_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", fake_java(tmp_path, 'openjdk version "1.8.0_392"'))
    with pytest.raises(EnvironmentProblem) as err:
        session.check_java()
    message = str(err.value)
    assert "\n" not in message
    assert "Java 17+ is needed" in message and "version 8" in message


def test_java_17_is_accepted(tmp_path, monkeypatch):
    home = fake_java(tmp_path, 'openjdk version "17.0.15" 2025-04-15')
    monkeypatch.setenv("JAVA_HOME", home)
    assert session.check_java() == os.path.join(home, "bin", "java")


def test_no_java_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "missing"))
    with pytest.raises(EnvironmentProblem, match="no java was found"):
        session.check_java()


def test_local_settings_follow_cores_and_memory(monkeypatch):
    monkeypatch.setattr(session, "_total_memory_bytes", lambda: 24 * 1024**3)
    monkeypatch.delenv("COHORTLAKE_DRIVER_MEMORY", raising=False)
    conf = session.local_conf(cores=2)
    assert conf["spark.driver.memory"] == "8g"
    assert conf["spark.sql.shuffle.partitions"] == "8"
    monkeypatch.setattr(session, "_total_memory_bytes", lambda: 2 * 1024**3)
    assert session.local_conf(cores=16)["spark.driver.memory"] == "1g"
    assert session.local_conf(cores=16)["spark.sql.shuffle.partitions"] == "64"


def test_plans_are_built_without_recording_python_call_sites():
    # PySpark's per-call origin capture costs JVM round trips on every function call
    # (session.TUNING_CONF); local sessions and spark-submit runs (unless the submit says
    # otherwise) both turn it off.
    key = "spark.python.sql.dataFrameDebugging.enabled"
    assert session.local_conf(cores=2)[key] == "false"
    assert session.CLUSTER_DEFAULTS[key] == "false"


def test_the_generated_classes_of_several_builds_stay_cached():
    # Spark's default cache of 100 generated classes is smaller than one reference build
    # (157); session.TUNING_CONF holds 1,000 for local sessions and spark-submit runs.
    # test_engine checks that a second build in one session reuses the first's classes.
    key = "spark.sql.codegen.cache.maxEntries"
    assert int(session.local_conf(cores=2)[key]) >= 1000
    assert session.CLUSTER_DEFAULTS[key] == session.local_conf(cores=2)[key]


def test_local_sessions_cap_the_optimising_compiler_and_executors_compile_huge_methods():
    # session.JIT_OPTIONS: huge methods compiled, the optimising compiler capped on Spark's
    # generated classes, for a local session's JVM (test_engine checks that it took them);
    # executors, unless the submit sets their options, compile huge methods uncapped.
    assert session.JIT_OPTIONS in session.local_conf(cores=2)["spark.driver.extraJavaOptions"]
    assert session.CLUSTER_DEFAULTS["spark.executor.extraJavaOptions"] == session.HUGE_METHODS_FLAG
    options = session.JIT_OPTIONS.split()
    assert session.HUGE_METHODS_FLAG in options
    # "quiet" first, or the JVM prints each command on standard output when it starts
    assert options.index("-XX:CompileCommand=quiet") < options.index(
        next(o for o in options if o.startswith("-XX:CompileCommand=MaxNodeLimit,")))


def test_persisting_plans_in_the_session_itself():
    # Spark's CacheManager clones the session for every persist while auto bucketed scans
    # are on (with canChangeCachedPlanOutputPartitioning on, that is the one setting it
    # turns off); a lakehouse of Delta tables has no bucketed tables for it to act on.
    for settings in (session.local_conf(cores=2), session.CLUSTER_DEFAULTS):
        assert settings["spark.sql.optimizer.canChangeCachedPlanOutputPartitioning"] == "true"
        assert settings["spark.sql.sources.bucketing.autoBucketedScan.enabled"] == "false"


def test_each_step_runs_interpreted_below_its_own_threshold(monkeypatch):
    # An ingest counts the rows of its largest raw table, a build those of its largest
    # canonical table; the thresholds are measured per step (comment above size_conf).
    assert session.INTERPRETED_BELOW_ROWS == 50_000 and session.BUILD_INTERPRETED_BELOW_ROWS == 500_000
    interpreted = session.INTERPRETED_CONF
    assert session.size_conf(49_999, "ingest") == interpreted and session.size_conf(50_000, "ingest") == {}
    # the demo lake of the tests: 1,500 patients, 111,139 diagnosis rows
    assert session.size_conf(111_139, "build") == interpreted and session.size_conf(500_000, "build") == {}
    assert session.code_generation(session.size_conf(0, "build")) == "interpreted"
    assert session.code_generation(session.size_conf(10**9, "build")) == "compiled"
    monkeypatch.setattr(session, "BUILD_INTERPRETED_BELOW_ROWS", 0)  # read when called, as the tests rely on
    assert session.size_conf(0, "build") == {}
    with pytest.raises(ValueError, match="'match' is not one of"):
        session.size_conf(1, "match")
    monkeypatch.setenv("COHORTLAKE_BUILD_INTERPRETED_BELOW_ROWS", "5e5")
    with pytest.raises(EnvironmentProblem, match=r"COHORTLAKE_BUILD_INTERPRETED_BELOW_ROWS='5e5': expected a whole"):
        session._rows_setting("COHORTLAKE_BUILD_INTERPRETED_BELOW_ROWS", 500_000)
    monkeypatch.setenv("COHORTLAKE_BUILD_INTERPRETED_BELOW_ROWS", " 1000 ")
    assert session._rows_setting("COHORTLAKE_BUILD_INTERPRETED_BELOW_ROWS", 500_000) == 1000


def test_spark_submit_is_detected_by_its_gateway(monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert not session.launched_by_spark_submit()
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40000")
    assert session.launched_by_spark_submit()


def test_correctness_settings_delta_can_read():
    assert session.CORRECTNESS_CONF["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert session.CORRECTNESS_CONF["spark.sql.session.timeZone"] == "UTC"


def log4j_properties(path) -> dict[str, str]:
    """A log4j2 .properties file as its key = value pairs."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


# What the driver's log settings may hold back, and the real Spark 4.2 / Hadoop lines they stand for.
QUIETED = {
    "org.apache.hadoop.util.NativeCodeLoader":
        "Unable to load native-hadoop library for your platform... using builtin-java classes where applicable",
    "org.apache.spark.util.SparkStringUtils":
        "Truncated the string representation of a plan since it was too large. This behavior can be adjusted "
        "by setting 'spark.sql.debug.maxToStringFields'.",
}
FILTERED = {
    "org.apache.spark.rdd": "RDD 146 was locally checkpointed, its lineage has been truncated and cannot be "
                            "recomputed after unpersisting",
    "org.apache.spark.scheduler.DAGScheduler": "Broadcasting large task binary with size 1439.0 KiB",
}


def test_the_driver_log_settings_keep_sparks_warnings_and_hold_back_only_its_notices():
    """Root at WARN; only named notice-only loggers raised; filters deny exactly the notices, nothing near them."""
    import re

    from cohortlake.resources import SPARK_LOG_CONFIG, package_data

    path = package_data(SPARK_LOG_CONFIG)
    settings = log4j_properties(path)
    assert settings["rootLogger.level"] == "warn"
    assert settings["appender.console.target"] == "SYSTEM_ERR"
    loggers = {key.split(".")[1]: settings[key] for key in settings if key.startswith("logger.") and key.endswith(".name")}
    raised = {name for ref, name in loggers.items() if settings.get(f"logger.{ref}.level", "warn") not in ("warn", "")}
    # Spark's defaults' Jetty lifecycle and Parquet statistics notices, and the two notice-only loggers.
    assert raised == {*QUIETED, "org.sparkproject.jetty.util.component.AbstractLifeCycle",
                      "org.apache.parquet.CorruptStatistics"}
    assert not any(name in ("org.apache.spark", "org.apache.spark.sql", "org") for name in raised)
    for ref, name in loggers.items():
        filters = {key.split(".")[3] for key in settings if key.startswith(f"logger.{ref}.filter.")}
        assert bool(filters) == (name in FILTERED), name
        for f in filters:
            prefix = f"logger.{ref}.filter.{f}"
            assert (settings[f"{prefix}.type"], settings[f"{prefix}.onMatch"], settings[f"{prefix}.onMismatch"]) == \
                ("RegexFilter", "DENY", "NEUTRAL")
            assert f"logger.{ref}.level" not in settings  # the level follows the root (setLogLevel)
            regex = settings[f"{prefix}.regex"]
            assert re.fullmatch(regex, FILTERED[name])  # log4j's RegexFilter matches the whole message
            for kept in ("No Partition Defined for Window operation! Moving all data to a single partition, this "
                         "can cause serious performance degradation.", "Job 3 failed: count at <stdin>:1",
                         "RDD 5 was checkpointed, but its checkpoint files are missing"):
                assert not re.fullmatch(regex, kept), (name, kept)


def test_local_sessions_pass_the_log_settings_to_the_driver_jvm():
    from pathlib import Path
    from urllib.parse import urlparse

    option = next(o for o in session.local_conf(cores=2)["spark.driver.extraJavaOptions"].split()
                  if o.startswith("-Dlog4j2.configurationFile="))
    location = Path(urlparse(option.split("=", 1)[1]).path)
    assert location.name == "log4j2.properties" and "rootLogger.level = warn" in location.read_text()
