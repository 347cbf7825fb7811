"""Every shipped design builds with its quality gates on, by default, over synthetic data whose
sorafenib initiations reach the last months of the study period."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from cohortlake.cli import main
from cohortlake.spec import load_definition

from paths import REPO
DESIGNS = ["second_line_tki_ici", "sorafenib_bleeding_thromboembolism", "sorafenib_duration_groups",
           "sorafenib_time_varying_response"]  # the reference study is built with its gates by test_quality


@pytest.fixture(scope="module")
def lake_copy(demo_run, tmp_path_factory) -> Path:
    lake, _ = demo_run
    copy = tmp_path_factory.mktemp("shipped") / "lakehouse"
    shutil.copytree(lake, copy, ignore=shutil.ignore_patterns("cohorts", "matched"))
    return copy


def test_the_synthetic_initiations_reach_the_study_end(lake_copy):
    fills = DeltaTable(str(lake_copy / "silver" / "dispensing")).to_pyarrow_table(columns=["date", "generic_name"])
    sorafenib = fills.filter(pc.match_substring(pc.utf8_lower(fills["generic_name"]), "sorafenib"))
    assert len(sorafenib.filter(pc.greater_equal(sorafenib["date"], dt.date(2013, 10, 1)))) > 0


@pytest.mark.parametrize("design", DESIGNS)
def test_design_builds_with_its_gates_on(lake_copy, design):
    path = REPO / "cohort_defs" / f"{design}.yaml"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["build", str(path), "--lake", str(lake_copy)])
    assert code == 0, err.getvalue()
    assert "quality gate 'cohort': passed" in err.getvalue()
    cohort = DeltaTable(str(lake_copy / "cohorts" / design / "cohort")).to_pyarrow_table(
        columns=["followup_start", "time_days"])
    end = load_definition(path).study_period.end
    assert len(cohort) > 0
    assert pc.all(pc.less_equal(cohort["followup_start"], end)).as_py() is not False
    assert pc.min(cohort["time_days"]).as_py() >= 0
