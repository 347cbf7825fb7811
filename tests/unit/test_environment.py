"""Settings from the environment, --master and the demo's numbers: one line naming what was wrong, before any JVM starts."""

from __future__ import annotations

import contextlib
import io

import pytest

from cohortlake import environment
from cohortlake.errors import EnvironmentProblem
from paths import REPO


def test_whole_numbers(monkeypatch):
    monkeypatch.delenv("COHORTLAKE_X", raising=False)
    assert environment.whole_number("COHORTLAKE_X", 3, minimum=1) == 3
    monkeypatch.setenv("COHORTLAKE_X", " 5 ")
    assert environment.whole_number("COHORTLAKE_X", 3, minimum=1) == 5
    for text in ("0", "-1", "2.5", "three", "٣"):
        monkeypatch.setenv("COHORTLAKE_X", text)
        with pytest.raises(EnvironmentProblem) as error:
            environment.whole_number("COHORTLAKE_X", 3, minimum=1)
        assert str(error.value) == f"COHORTLAKE_X={text!r}: expected a whole number of at least 1 (unset: 3)"


def test_choices_are_case_insensitive_and_come_back_as_spelled(monkeypatch):
    monkeypatch.setenv("COHORTLAKE_SPARK_LOG_LEVEL", "info")
    assert environment.one_of("COHORTLAKE_SPARK_LOG_LEVEL", "WARN", environment.SPARK_LOG_LEVELS) == "INFO"
    monkeypatch.setenv("COHORTLAKE_SPARK_LOG_LEVEL", "LOUD")
    with pytest.raises(EnvironmentProblem, match=r"^COHORTLAKE_SPARK_LOG_LEVEL='LOUD': expected one of ALL, DEBUG, "
                                                 r"ERROR, FATAL, INFO, OFF, TRACE, WARN \(unset: WARN\)$"):
        environment.one_of("COHORTLAKE_SPARK_LOG_LEVEL", "WARN", environment.SPARK_LOG_LEVELS)


def test_memory_sizes(monkeypatch):
    for text in ("8g", "8G", "4096m", "1t", "2048"):
        monkeypatch.setenv("COHORTLAKE_DRIVER_MEMORY", text)
        assert environment.memory_size("COHORTLAKE_DRIVER_MEMORY", "8g") == text
    for text in ("lots", "8 gb", "0g", "8gb", "-1g"):
        monkeypatch.setenv("COHORTLAKE_DRIVER_MEMORY", text)
        with pytest.raises(EnvironmentProblem, match=r"^COHORTLAKE_DRIVER_MEMORY=.*: expected a memory size"):
            environment.memory_size("COHORTLAKE_DRIVER_MEMORY", "8g")


@pytest.mark.parametrize("master", ["local", "local[2]", "local[*]", "local[4,3]", "local[*,2]", "local-cluster[2,1,1024]",
                                    "yarn", "spark://127.0.0.1:7077", "spark://a:7077,b:7077", "k8s://https://h:6443"])
def test_master_urls_spark_starts_on(master):
    assert environment.check_master(master, "--master") == master


@pytest.mark.parametrize("master", ["foo", "local[0]", "local[two]", "mesos://h:5050", "spark://", "spark:// h:1",
                                    "Local[2]", "yarn-client"])
def test_other_masters_are_refused(master):
    with pytest.raises(EnvironmentProblem) as error:
        environment.check_master(master, "COHORTLAKE_SPARK_MASTER")
    assert str(error.value) == (f"COHORTLAKE_SPARK_MASTER {master!r}: expected a Spark master URL: local, local[N], "
                                "local[*], spark://HOST:PORT, yarn or k8s://URL")


def _cli(argv) -> tuple[int, list[str]]:
    from cohortlake.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, [line for line in err.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize("variable, value, where", [
    (None, None, "--master 'foo': expected a Spark master URL"),
    ("COHORTLAKE_SPARK_LOG_LEVEL", "LOUD", "COHORTLAKE_SPARK_LOG_LEVEL='LOUD': expected one of"),
    ("COHORTLAKE_SPARK_MASTER", "spark:/h:7077", "COHORTLAKE_SPARK_MASTER 'spark:/h:7077': expected a Spark master"),
    ("COHORTLAKE_DRIVER_MEMORY", "lots", "COHORTLAKE_DRIVER_MEMORY='lots': expected a memory size"),
    ("COHORTLAKE_SPARK_UI", "yes", "COHORTLAKE_SPARK_UI='yes': expected one of true, false"),
])
def test_the_cli_says_which_setting_is_wrong_in_one_line(monkeypatch, tmp_path, variable, value, where):
    """Before: --master foo printed Spark's Java stack and a Python traceback (42 lines)."""
    if variable:
        monkeypatch.setenv(variable, value)
    argv = ["tables", "--lake", str(tmp_path / "lake")] + (["--master", "foo"] if variable is None else [])
    code, lines = _cli(argv)
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"cohortlake tables: error: {where}"), lines


def test_thread_counts_are_checked_before_an_ingest_writes(monkeypatch, tmp_path):
    from cohortlake.sources.ingest import ingest

    raw = REPO / "tests" / "fixtures" / "desynpuf"
    monkeypatch.setenv("COHORTLAKE_INGEST_THREADS", "0")
    with pytest.raises(EnvironmentProblem, match=r"^COHORTLAKE_INGEST_THREADS='0': expected a whole number of at least 1"):
        ingest(None, None, "desynpuf", raw)  # no Spark and no lake: nothing is touched before the check
    monkeypatch.delenv("COHORTLAKE_INGEST_THREADS")
    monkeypatch.setenv("COHORTLAKE_VALIDATION_THREADS", "many")
    with pytest.raises(EnvironmentProblem, match=r"^COHORTLAKE_VALIDATION_THREADS='many': expected a whole number"):
        ingest(None, None, "desynpuf", raw)


def test_the_demo_checks_its_numbers_before_spark_starts(tmp_path):
    """Before: the demo started a Spark session (about 10 s) and only then refused --patients 0."""
    from pyspark import SparkContext

    before = SparkContext._active_spark_context
    code, lines = _cli(["demo", "--patients", "0", "--lake", str(tmp_path / "lake"), "--out", str(tmp_path / "study")])
    assert (code, lines) == (1, ["cohortlake demo: error: --patients must be a whole number from 1 to 100,000,000, got 0"])
    assert SparkContext._active_spark_context is before and not (tmp_path / "lake").exists()
