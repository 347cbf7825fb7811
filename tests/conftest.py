"""Shared fixtures: one local Spark session for the whole run, paths to shared/ fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COHORTLAKE_SHARED", REPO.parent / "shared"))
DESYNPUF_FIXTURES = SHARED / "fixtures" / "desynpuf-de0"


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


@pytest.fixture(scope="session")
def desynpuf_fixture_dir() -> Path:
    if not DESYNPUF_FIXTURES.is_dir():
        pytest.fail(f"shared fixtures not found at {DESYNPUF_FIXTURES}; clone with ../shared beside the repo")
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
        code = main(["demo", "--lake", str(lake), "--patients", str(DEMO_PATIENTS), "--seed", str(DEMO_SEED),
                     "--no-study"])
    assert code == 0, err.getvalue()
    return lake, err.getvalue()
