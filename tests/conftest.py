"""Session fixtures: one local Spark session for the whole run, the repository's own data fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The tests' shared helpers (tests/lib) import by name from every test folder.
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))

from paths import FIXTURES, REPO  # noqa: E402
# Public CMS DE-SynPUF rows kept in the repository (tests/fixtures/desynpuf/PROVENANCE.md);
# COHORTLAKE_DESYNPUF_FIXTURES may point the tests at another folder of DE-SynPUF files.
DESYNPUF_FIXTURES = Path(os.environ.get("COHORTLAKE_DESYNPUF_FIXTURES", FIXTURES / "desynpuf"))
# The tests' JVMs neither map nor write a class archive (lake/class_archive.py): what a test
# measures or sees does not depend on what a user's cache holds. The installed copy's demo
# writes one in a folder of its own, and test_packaging maps it.
os.environ["COHORTLAKE_CLASS_ARCHIVE"] = "off"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # Generative tests draw from a fresh seed each run, printed in the header, so that a
    # failure can be replayed with --hypothesis-seed=N.
    if getattr(config.option, "hypothesis_seed", None) is None:
        import random

        config.option.hypothesis_seed = str(random.SystemRandom().randrange(2**32))


def pytest_report_header(config):
    return f"generative tests: --hypothesis-seed={config.option.hypothesis_seed} replays this run's examples"


UNIT = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(config, items):
    """Mark `spark` every test that uses a Spark session, directly or through another fixture.

    tests/unit holds only tests that need no Spark and start no process: one that does is
    refused there, so `tests/unit` alone stays the fast lane. Its tests run first: they keep
    one core busy, and the processes the session starts in the background (the installed
    copy's demo, the standalone cluster's JVMs) get the other.
    """
    misplaced = []
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)
        if Path(str(item.path)).is_relative_to(UNIT) and any(item.get_closest_marker(m) for m in ("spark", "slow", "cluster")):
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError("tests/unit is for tests without Spark or extra processes; move these to "
                                "tests/integration (or another folder): " + ", ".join(misplaced))
    items.sort(key=lambda item: not Path(str(item.path)).is_relative_to(UNIT))  # stable: the rest keep their order


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A test that starts Spark without the `spark` marker fails: the fast lane must stay Spark-free."""
    from pyspark import SparkContext

    before = SparkContext._active_spark_context
    yield
    if before is None and SparkContext._active_spark_context is not None and item.get_closest_marker("spark") is None:
        raise AssertionError(f"{item.nodeid} started Spark but is not marked spark (use the `spark` fixture)")


@pytest.fixture(scope="session")
def spark():
    """One local[2] session for every Spark test; small shuffles keep tiny tests fast."""
    from cohortlake.lake.session import get_spark

    session = get_spark(
        "cohortlake-tests",
        master="local[2]",
        conf={"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"},
    )
    yield session
    session.stop()


@pytest.fixture(scope="session", autouse=True)
def standalone_cluster(request, tmp_path_factory):
    """The standalone cluster of the `cluster` tests (tests/lib/standalone.py), launched when the
    session starts so that its master and workers boot while other tests run; the cluster tests
    wait for its workers at their first submit and stop it when their module ends. None when no
    `cluster` test is selected."""
    if not any(item.get_closest_marker("cluster") for item in request.session.items):
        yield None
        return
    from standalone import StandaloneCluster

    cluster = StandaloneCluster(tmp_path_factory.mktemp("standalone"), workers=2, cores=1, memory="2g")
    try:
        yield cluster.launch()
    finally:
        cluster.stop()


def _requested(request, fixture: str) -> bool:
    return any(fixture in getattr(item, "fixturenames", ()) for item in request.session.items)


@pytest.fixture(scope="session", autouse=True)
def _installed_copy_job(request, tmp_path_factory):
    """Started with the session when a selected test asks for `installed_copy`; None otherwise."""
    if not _requested(request, "installed_copy"):
        yield None
        return
    from installed_copy import InstalledCopy

    job = InstalledCopy(tmp_path_factory.mktemp("installed_copy"), demo=_requested(request, "installed_demo"))
    try:
        yield job.start()
    finally:
        job.stop()


@pytest.fixture(scope="session")
def installed_copy(_installed_copy_job):
    """The wheel built from the repository, installed into a fresh virtual environment, and its
    demo (tests/lib/installed_copy.py): made in the background from the session's start, so
    the demo's process runs beside the unit tests; ``result(step)`` waits for a step."""
    return _installed_copy_job


@pytest.fixture(scope="session")
def installed_demo(installed_copy):
    """The installed copy's `cohortlake demo` (installed_copy.DEMO_ARGS), as a CompletedProcess."""
    return installed_copy.result("demo")


@pytest.fixture(scope="session")
def desynpuf_fixture_dir() -> Path:
    if not DESYNPUF_FIXTURES.is_dir():
        pytest.fail(f"DE-SynPUF fixtures not found at {DESYNPUF_FIXTURES} (COHORTLAKE_DESYNPUF_FIXTURES)")
    return DESYNPUF_FIXTURES


@pytest.fixture(scope="session")
def desynpuf_lake(spark, desynpuf_fixture_dir, tmp_path_factory):
    """The two real DE-SynPUF beneficiaries ingested once, with the quality gates on."""
    from cohortlake.lake.delta import Lakehouse
    from cohortlake.sources.ingest import ingest

    lake = Lakehouse(str(tmp_path_factory.mktemp("desynpuf") / "lake"), spark)
    lake.report = ingest(spark, lake, "desynpuf", desynpuf_fixture_dir)
    return lake


DEMO_PATIENTS = 1500
DEMO_SEED = 11


@pytest.fixture(scope="session")
def demo_run(spark, tmp_path_factory):
    """`cohortlake demo` once for the session (synth → ingest → reference cohort); its lake and stderr."""
    import contextlib
    import io

    from cohortlake.cli import main

    lake = tmp_path_factory.mktemp("demo") / "lakehouse"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        # The study steps need a cohort the size of the default demo's; tests run them on this
        # lake through `cohortlake run` with a definition fit for its small cohort (test_cli).
        # The mixed file of five cancer sites: its other cancers are what many rules exclude.
        code = main(["demo", "--lake", str(lake), "--patients", str(DEMO_PATIENTS), "--seed", str(DEMO_SEED),
                     "--cancer-site", "all", "--no-study"])
    assert code == 0, err.getvalue()
    return lake, err.getvalue()


@pytest.fixture(scope="session")
def small_study_definition(tmp_path_factory) -> Path:
    """The reference definition with matching settings fit for the demo lake's small cohort.

    Its cohort rules are the reference study's; with six treated persons the shipped PS model
    cannot be fitted, so this variant matches on four covariates with a ridge penalty and a
    balance threshold no real study would use (balance is not the point of the tests that use
    it; the balance gate and the study-size estimate are checked in test_study.py).
    """
    import re

    defs = tmp_path_factory.mktemp("defs")
    (defs / "codesets").symlink_to(REPO / "cohort_defs" / "codesets")
    text = (REPO / "cohort_defs" / "hcc_sorafenib_landmark.yaml").read_text()
    text = text.replace("cohort: hcc_sorafenib_landmark", "cohort: demo_study", 1)
    text = re.sub(r"\nmatching:.*", "\nmatching:\n  treatment: {arm: sorafenib, control: untreated}\n"
                  "  ps_covariates: [age, sex, stage, nci_index]\n  l2: 0.05\n  caliper: none\n  smd_threshold: 10\n",
                  text, flags=re.S)
    definition = defs / "demo_study.yaml"
    definition.write_text(text)
    return definition


@pytest.fixture(scope="session")
def small_study_run(demo_run, small_study_definition, tmp_path_factory):
    """`cohortlake run` of the small study on the demo lake, in this session's local[2] Spark: (out, stderr).

    The gates of build and match have their own tests (test_quality, test_study); the cluster
    test runs them on the standalone cluster. Skipping them here keeps the suite in its budget.
    """
    import contextlib
    import io

    from cohortlake.cli import main

    lake, _ = demo_run
    out = tmp_path_factory.mktemp("small_study") / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", str(small_study_definition), "--lake", str(lake), "--out", str(out), "--no-validate"])
    assert code == 0, err.getvalue()
    return out, err.getvalue()
