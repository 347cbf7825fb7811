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
    yield
    session.check_java.cache_clear()


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


def test_spark_submit_is_detected_by_its_gateway(monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert not session.launched_by_spark_submit()
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40000")
    assert session.launched_by_spark_submit()


def test_correctness_settings_delta_can_read():
    assert session.CORRECTNESS_CONF["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert session.CORRECTNESS_CONF["spark.sql.session.timeZone"] == "UTC"
