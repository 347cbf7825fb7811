"""Follow-up that would start after the study end: the implied attrition step and check's warnings."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from cohortlake.spec import Definition, load_definition
from cohortlake.spec.followup import FOLLOWUP_STEP, implied_steps, latest_followup_start, needs_followup_step
from cohortlake.assure.timeline import frames_from_rows
from reference_evaluator import evaluate

from paths import REPO
DEFS = REPO / "cohort_defs"

LATE = {
    "cohort": "late", "title": "Landmark 90 days after an index allowed to the study end",
    "study_period": {"start": "2008-01-01", "end": "2013-12-31"},
    "codesets": {"hcc": {"icd9cm": ["155.0"]}},
    "index": {"event": {"codesets": ["hcc"], "tables": ["diagnosis"]}},
    "criteria": [{"name": "Has index", "index_exists": {}},
                 {"name": "Index 2008-2013", "index_period": {"start": "2008-01-01", "end": "2013-12-31"}}],
    "landmarks": [{"name": "day_90", "days": 90}],
    "followup": {"start": "day_90", "end": ["death", "study_end"]},
}


def _person(pid: str, index: date) -> list[tuple[str, dict]]:
    return [("person", {"person_id": pid, "birth_date": date(1940, 1, 1), "sex": "male", "race": "white"}),
            ("diagnosis", {"person_id": pid, "date": index, "code": "1550", "code_system": "icd9cm",
                           "setting": "inpatient", "source_table": "medpar", "claim_id": pid,
                           "source_column": "DGNS_1_CD"})]


# Index + 90 days: 2013-10-01 → 2013-12-30 (kept, 1 day), 2013-10-02 → 2013-12-31 (kept, 0 days),
# 2013-10-03 → 2014-01-01 (after the study end: removed at the implied step).
PEOPLE = {"in_91": date(2013, 10, 1), "in_90": date(2013, 10, 2), "out_89": date(2013, 10, 3), "early": date(2010, 5, 1)}


def _tables():
    tables: dict[str, list[dict]] = {}
    for pid, day in PEOPLE.items():
        for table, row in _person(pid, day):
            tables.setdefault(table, []).append(row)
    return tables


EXPECTED_ATTRITION = [(0, "Persons in the data", 4, 0), (1, "Has index", 4, 0), (2, "Index 2008-2013", 4, 0),
                      (3, "In landmark day_90 analysis", 4, 0), (4, FOLLOWUP_STEP, 3, 1)]
EXPECTED_TIME = {"in_91": 1, "in_90": 0, "early": (date(2013, 12, 31) - date(2010, 7, 30)).days}


def test_the_step_is_implied_only_when_the_criteria_allow_a_late_start():
    late = Definition.model_validate(LATE)
    assert needs_followup_step(late) and latest_followup_start(late) == date(2014, 3, 31)
    assert implied_steps(late) == ["In landmark day_90 analysis", FOLLOWUP_STEP]
    early = Definition.model_validate({**LATE, "criteria": [
        LATE["criteria"][0], {"name": "Index by 2013-10-02", "index_period": {"end": "2013-10-02"}}]})
    assert not needs_followup_step(early) and latest_followup_start(early) == date(2013, 12, 31)
    unbounded = Definition.model_validate({**LATE, "criteria": LATE["criteria"][:1]})
    assert needs_followup_step(unbounded) and latest_followup_start(unbounded) is None
    # follow-up from the index itself: an index found in claims can lie after the study end,
    # so without a bound the step is implied; an index period that ends by the study end bounds it
    at_index = Definition.model_validate({**LATE, "criteria": LATE["criteria"][:1],
                                          "followup": {"start": "index", "end": ["study_end"]}})
    assert needs_followup_step(at_index) and implied_steps(at_index) == [FOLLOWUP_STEP]
    bounded = Definition.model_validate({**LATE, "criteria": [
        LATE["criteria"][0], {"name": "Index by 2013-12-31", "index_period": {"end": "2013-12-31"}}],
        "followup": {"start": "index", "end": ["study_end"]}})
    assert not needs_followup_step(bounded) and implied_steps(bounded) == []
    # every shipped design keeps follow-up inside the study period by its own criteria
    for path in sorted(DEFS.glob("*.yaml")):
        assert not needs_followup_step(load_definition(path)), path.name
    # the reference study: diagnoses to 2011 (index 2011-12-15) + 60 days
    assert latest_followup_start(load_definition(DEFS / "hcc_sorafenib_landmark.yaml")) == date(2012, 2, 13)


def test_the_reference_evaluator_removes_follow_up_starting_after_the_study_end():
    result = evaluate(Definition.model_validate(LATE), _tables())
    assert result.attrition == EXPECTED_ATTRITION
    assert {r["person_id"]: r["time_days"] for r in result.cohort} == EXPECTED_TIME


@pytest.mark.spark
def test_the_engine_removes_follow_up_starting_after_the_study_end(spark):
    from cohortlake.engine import build_cohort

    built = build_cohort(Definition.model_validate(LATE), frames_from_rows(spark, _tables()))
    try:
        attrition = [(int(a), str(b), int(c), int(e)) for a, b, c, e in built.attrition]
        times = {r["person_id"]: r["time_days"] for r in built.cohort.select("person_id", "time_days").collect()}
    finally:
        built.release()
    assert attrition == EXPECTED_ATTRITION
    assert times == EXPECTED_TIME


def test_explain_lists_the_implied_step(tmp_path):
    from cohortlake.spec import explain

    text = explain(Definition.model_validate(LATE))
    assert (f"4. {FOLLOWUP_STEP} — implied: follow-up starts at the `day_90` landmark date, which the criteria "
            "do not keep on or before the study end (2013-12-31)") in text


def _check(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cohortlake", "check", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def test_check_warns_about_the_old_duration_groups_design(tmp_path):
    # the design as it was shipped: initiation to 2013-12-31, follow-up from a 90-day landmark,
    # and a washout on the fills whose first one is the index
    old = yaml.safe_load((DEFS / "sorafenib_duration_groups.yaml").read_text())
    old["criteria"][1] = {"name": "Initiated 2008-2013", "index_period": {"start": "2008-01-01", "end": "2013-12-31"}}
    old["criteria"].insert(2, {"name": "No sorafenib in the prior year",
                               "washout": {"codesets": ["sorafenib"], "tables": ["dispensing"], "days": 365}})
    (tmp_path / "codesets").symlink_to(DEFS / "codesets")
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    done = _check(path)
    assert done.returncode == 0, done.stderr          # warnings do not fail the file
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"{path}:") and ': warning: criteria[2] "Initiated 2008-2013".index_period: ' in lines[0]
    assert "index_period ends 2013-12-31 but follow-up starts 90 days after the index" in lines[0]
    assert "end the index period by 2013-10-02" in lines[0]
    assert ': warning: criteria[3] "No sorafenib in the prior year".washout: this washout can never exclude anyone' in lines[1]
    line = int(lines[0].split(":")[1])
    assert "index_period" in path.read_text().splitlines()[line - 1]
    # the shipped designs raise neither warning
    shipped = _check(*sorted(DEFS.glob("*.yaml")))
    assert shipped.returncode == 0 and "warning" not in shipped.stderr, shipped.stderr
