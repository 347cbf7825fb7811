"""The study as a spark-submit job on a real standalone cluster, and the faults clusters have.

A master and two one-core workers run from the installed pyspark on 127.0.0.1
(tests/lib/standalone.py). The package reaches the driver and the executors only as the zip
that `cohortlake bundle` writes, passed with --py-files. The outputs must equal the
session's local[2] run of the same definition on the same lake (conftest.small_study_run).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

import cohortlake
from cohortlake.bundle import DRIVER_LOG_CONFIG
from cohortlake.lake.session import HUGE_METHODS_FLAG
from helpers import delta_rows
from standalone import HOST, SPARK_HOME, free_port, get_json, tail

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.spark]

from paths import REPO
COHORT_TABLE = "cohorts/demo_study/cohort"
SUBMIT_TIMEOUT = 600
# A Java property only the first submit gives its executors (see its test).
SUBMITTED_PROPERTY = "cohortlake.test.submitted"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from cohortlake.cli import main

    out = tmp_path_factory.mktemp("dist") / "cohortlake.zip"
    assert main(["bundle", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def cluster(standalone_cluster):
    """The session's cluster (conftest.standalone_cluster: launched at the session's start, so its
    JVMs have booted by now); stopped when this module ends rather than left idle."""
    try:
        yield standalone_cluster
    finally:
        standalone_cluster.stop()


@pytest.fixture(scope="module")
def cluster_lake(demo_run, tmp_path_factory) -> Path:
    """A copy of the demo lake (raw files left out) for the cluster's jobs to write into."""
    lake, _ = demo_run
    copy = tmp_path_factory.mktemp("cluster") / "lakehouse"
    shutil.copytree(lake, copy, ignore=shutil.ignore_patterns("_raw"))
    return copy


def submit_argv(cluster, bundle, job, args, ui_port, conf=None):
    """The documented command (README, "spark-submit"), with this cluster's master and a known UI port."""
    settings = [part for key, value in {"spark.ui.port": ui_port, **(conf or {})}.items()
                for part in ("--conf", f"{key}={value}")]
    return [str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster.master_url, "--py-files", str(bundle),
            "--driver-java-options", f"-Dlog4j2.configurationFile={bundle.parent / DRIVER_LOG_CONFIG}",
            "--driver-memory", "1g", "--executor-memory", "1g", *settings,
            str(REPO / "jobs" / job), *map(str, args)]


def submit(cluster, bundle, name, args, job="run_study.py", conf=None):
    cluster.wait_ready()
    ui_port = free_port()
    proc = cluster.spawn(name, submit_argv(cluster, bundle, job, args, ui_port, conf))
    return proc, ui_port


def executor_logs(cluster) -> set[Path]:
    """Every executor's stderr, one per executor a worker has started."""
    return set(cluster.workdir.glob("worker-*/app-*/*/stderr"))


def executor_commands(cluster, earlier: set[Path]) -> list[str]:
    """The java command line of each executor started since ``earlier`` was listed, as its
    worker wrote it atop the executor's stderr."""
    return [path.read_text(errors="replace").partition("\n")[0] for path in sorted(executor_logs(cluster) - earlier)]


def finish(cluster, proc) -> str:
    try:
        proc.wait(timeout=SUBMIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"job did not end in {SUBMIT_TIMEOUT}s:\n{tail(cluster.logs[proc.pid])}")
    return cluster.logs[proc.pid].read_text(errors="replace")


# --- comparing two runs' outputs -------------------------------------------------------------


def _sorted_frame(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys).reset_index(drop=True)[sorted(frame.columns)]


def _same_numbers(a, b, where="") -> list[str]:
    """Differences between two JSON values; floats may differ in the last bits (summation order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        problems = [f"{where}: keys {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
        for key in sorted(set(a) & set(b)):
            problems += _same_numbers(a[key], b[key], f"{where}.{key}")
        return problems
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in _same_numbers(x, y, f"{where}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
        if both_nan or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)):
            return []
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def assert_same_study(local: Path, clustered: Path) -> None:
    """Every hand-off file equal after sorting: cohort, attrition, matched set, balance, results."""
    for name, keys in (("cohort.parquet", ["person_id"]), ("matched.parquet", ["match_id", "person_id"])):
        pd.testing.assert_frame_equal(_sorted_frame(pd.read_parquet(local / name), keys),
                                      _sorted_frame(pd.read_parquet(clustered / name), keys),
                                      check_exact=False, rtol=1e-9, obj=name)
    assert sorted((local / "attrition.csv").read_text().splitlines()) == \
        sorted((clustered / "attrition.csv").read_text().splitlines())
    balance = [pd.read_csv(folder / "balance.csv") for folder in (local, clustered)]
    keys = ["covariate", "level"] if "level" in balance[0] else ["covariate"]
    pd.testing.assert_frame_equal(*(_sorted_frame(b, keys) for b in balance), check_exact=False, rtol=1e-9)
    results = [json.loads((folder / "results.json").read_text()) for folder in (local, clustered)]
    for result in results:  # where each run read its matched set is the one thing allowed to differ
        result["survival"]["input"].pop("source")
    for part in ("matching", "survival"):
        assert not _same_numbers(results[0][part], results[1][part], part), _same_numbers(
            results[0][part], results[1][part], part)


# --- the tests ---------------------------------------------------------------------------------

STEP_LINE = re.compile(r"^(build demo_study|match demo_study|analyze demo_study|report): \d+\.\ds\b", re.M)


def test_run_study_on_a_standalone_cluster_equals_local(cluster, bundle, cluster_lake, small_study_definition,
                                                         small_study_run, tmp_path):
    local_out, _ = small_study_run
    out = tmp_path / "study"
    earlier = executor_logs(cluster)
    # A setting the submit gives wins over the job's default for that key (lake.session.CLUSTER_DEFAULTS).
    mine = f"{HUGE_METHODS_FLAG} -D{SUBMITTED_PROPERTY}=yes"
    proc, _ = submit(cluster, bundle, "run-study", [small_study_definition, "--lake", f"file://{cluster_lake}",
                                                     "--out", out], conf={"spark.executor.extraJavaOptions": mine})
    log = finish(cluster, proc)
    assert proc.returncode == 0, log[-6000:]
    commands = executor_commands(cluster, earlier)
    assert commands and all(line.startswith("Spark Executor Command:") for line in commands), commands
    assert all(f"-D{SUBMITTED_PROPERTY}=yes" in line for line in commands), commands

    # The log a scheduler keeps: which package ran, one line per step with seconds, the outcome.
    assert f"job run_study: cohortlake {cohortlake.__version__} from {bundle}," in log
    assert sorted(set(m.group(1) for m in STEP_LINE.finditer(log))) == [
        "analyze demo_study", "build demo_study", "match demo_study", "report"]
    assert re.search(r"^build demo_study: [\d.]+s  55 in the cohort \(sorafenib 6, untreated 49\)$", log, re.M)
    assert "quality gate 'cohort': passed" in log and "quality gate 'matched': passed" in log
    assert re.search(r"^job run_study: ok \(exit 0\) in [\d.]+s$", log, re.M)
    assert "\x1b[" not in log  # no spinner or colour codes off a terminal

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spark_master"] == cluster.master_url and manifest["backend"] == "delta-rs"
    build = json.loads(Path(manifest["manifests"]["build"]).read_text())
    assert build["spark_master"] == cluster.master_url
    assert_same_study(local_out, out)


def _wait_for(predicate, proc, cluster, what: str, timeout: float = SUBMIT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the job ended (exit {proc.returncode}) before {what}:\n{tail(cluster.logs[proc.pid])}")
        found = predicate()
        if found:
            return found
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}:\n{tail(cluster.logs[proc.pid])}")


def _busy_executor(ui_port):
    """(app id, executor id) of an executor running a task, once the build has run a few jobs."""
    try:
        app = get_json(f"http://{HOST}:{ui_port}/api/v1/applications", timeout=1)[0]["id"]
        jobs = get_json(f"http://{HOST}:{ui_port}/api/v1/applications/{app}/jobs", timeout=1)
        if sum(job["status"] == "SUCCEEDED" for job in jobs) < 5:
            return None
        executors = get_json(f"http://{HOST}:{ui_port}/api/v1/applications/{app}/executors", timeout=1)
    except (OSError, ValueError, IndexError, KeyError):
        return None
    busy = [e["id"] for e in executors if e["id"] != "driver" and e.get("activeTasks", 0) > 0]
    return (app, busy[0]) if busy else None


def test_killed_driver_keeps_the_previous_version_and_a_rerun_survives_a_lost_worker(
        cluster, bundle, cluster_lake, small_study_definition, small_study_run, tmp_path):
    local_out, _ = small_study_run
    table = cluster_lake / COHORT_TABLE
    args = [small_study_definition, "--lake", cluster_lake, "--out", tmp_path / "killed", "--no-validate"]
    if not (table / "_delta_log").is_dir():  # this test alone: make the version to keep first
        proc, _ = submit(cluster, bundle, "first-build", args[:3] + ["--no-validate"], job="build_cohort.py")
        assert finish(cluster, proc) and proc.returncode == 0
    before_version = max(int(p.stem) for p in (table / "_delta_log").glob("*.json"))
    before_rows = sorted(map(repr, delta_rows(table)))
    before_folders = {p.name for p in table.iterdir()}

    # 1. The driver (spark-submit, its JVM and Python) is killed while it writes the cohort table.
    proc, _ = submit(cluster, bundle, "killed-driver", args)
    fresh = _wait_for(lambda: [p for p in table.iterdir() if p.name.startswith("w-") and p.name not in before_folders],
                      proc, cluster, "the cohort table's write began")
    cluster.kill_group(proc)
    assert max(int(p.stem) for p in (table / "_delta_log").glob("*.json")) == before_version, \
        "the kill came after the commit; the write folder appeared too late to test a kill mid-write"
    assert fresh[0].exists()  # the half-written folder is there and must not count
    assert sorted(map(repr, delta_rows(table))) == before_rows

    # 2. Re-run; one worker (its JVM and its executor) dies while the build runs tasks.
    out = tmp_path / "rerun"
    earlier = executor_logs(cluster)
    proc, ui_port = submit(cluster, bundle, "lost-worker", [*args[:3], "--out", out, "--no-validate"])
    app, executor = _wait_for(lambda: _busy_executor(ui_port), proc, cluster, "an executor ran a build task")
    worker = cluster.worker_of_executor(app, executor)
    assert worker is not None, f"executor {executor} of {app} not found on any worker"
    cluster.kill_worker(worker)
    log = finish(cluster, proc)
    assert proc.returncode == 0, log[-6000:]
    assert f"Lost executor {executor}" in log  # the driver saw the loss and re-ran that work elsewhere
    # This submit sets no executor options: the job's default reaches every executor (CLUSTER_DEFAULTS).
    commands = executor_commands(cluster, earlier)
    assert commands and all(HUGE_METHODS_FLAG in line and SUBMITTED_PROPERTY not in line
                            for line in commands), commands
    assert cluster.state()["aliveworkers"] == 1
    assert max(int(p.stem) for p in (table / "_delta_log").glob("*.json")) == before_version + 1
    assert_same_study(local_out, out)
