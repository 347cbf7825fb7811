"""A recorded death before follow-up starts: the implied step "Alive at index" (cohort_defs/README.md).

Claims data date fills and claims after death, and SEER deaths known only by month are
imputed to the 15th, so an index can fall after the recorded death. When death ends
follow-up, such persons leave at an implied step instead of getting follow-up that runs
backwards; a death on the start day stays with 0 days.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from cohortlake.spec import Definition, explain, load_definition
from cohortlake.spec.followup import ALIVE_AT_INDEX, ALIVE_AT_START, FOLLOWUP_STEP, alive_step, implied_steps
from cohortlake.assure.timeline import frames_from_rows
from reference_evaluator import evaluate

from paths import REPO

DEFS = REPO / "cohort_defs"

INDEX = date(2011, 1, 11)
BASE = {
    "cohort": "fills", "title": "First sorafenib fill, follow-up to death",
    "study_period": {"start": "2008-01-01", "end": "2013-12-31"},
    "codesets": {"sorafenib": {"ndc": ["50419048858"]}},
    "index": {"exposure": {"name": "sorafenib", "at": "start", "occurrence": "first"}},
    "criteria": [{"name": "Initiator", "index_exists": {}}],
    "exposures": {"sorafenib": {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 30}},
    "followup": {"start": "index", "end": ["death", "study_end"]},
}

# death relative to the first fill (None: alive): the fill the day after death leaves,
# the fill on the day of death stays with 0 days, the day before with 1
DEATHS = {"long_before": -400, "day_before": -1, "same_day": 0, "day_after": 1, "alive": None}


def _tables() -> dict[str, list[dict]]:
    tables: dict[str, list[dict]] = {"person": [], "dispensing": [], "death": []}
    for pid, offset in DEATHS.items():
        tables["person"].append({"person_id": pid, "birth_date": date(1940, 1, 1), "sex": "male", "race": "white"})
        tables["dispensing"].append({"person_id": pid, "date": INDEX, "ndc": "50419048858", "days_supply": 30,
                                     "quantity": 120.0, "source_table": "pde", "claim_id": pid})
        if offset is not None:
            tables["death"].append({"person_id": pid, "death_date": INDEX + timedelta(days=offset),
                                    "source": "mbsf", "precision": "day"})
    return tables


# nothing bounds the first fill, so the study-end step follows (it removes no one here)
EXPECTED_ATTRITION = [(0, "Persons in the data", 5, 0), (1, "Initiator", 5, 0), (2, ALIVE_AT_INDEX, 3, 2),
                      (3, FOLLOWUP_STEP, 3, 0)]
EXPECTED = {"same_day": (0, 1), "day_after": (1, 1), "alive": ((date(2013, 12, 31) - INDEX).days, 0)}


def _definition(**changes) -> Definition:
    return Definition.model_validate({**BASE, **changes})


def test_the_step_is_implied_when_death_ends_follow_up_and_nothing_excludes_an_earlier_death():
    assert alive_step(_definition()) == ALIVE_AT_INDEX
    assert implied_steps(_definition()) == [ALIVE_AT_INDEX, FOLLOWUP_STEP]
    # death does not end follow-up: no step (a death before the start is then no outcome either)
    assert alive_step(_definition(followup={"start": "index", "end": ["study_end"]})) is None

    def with_alive(through) -> Definition:
        return _definition(criteria=[*BASE["criteria"], {"name": "Alive", "alive": {"through": through}}],
                           landmarks=[{"name": "day_30", "days": 30}, {"name": "day_before", "days": -2}])

    # no death on or before index - 1 = no death before the index: the analyst's rule covers it
    assert alive_step(with_alive({"days": -1})) is None
    assert alive_step(with_alive({"days": 0})) is None
    assert alive_step(with_alive("day_30")) is None
    # index - 2 leaves a death on index - 1 possible
    assert alive_step(with_alive({"days": -2})) == ALIVE_AT_INDEX
    assert alive_step(with_alive("day_before")) == ALIVE_AT_INDEX


def test_a_later_follow_up_start_names_the_step_after_it():
    no_alive = _definition(landmarks=[{"name": "day_60", "days": 60, "require_alive": False}],
                           followup={"start": "day_60", "end": ["death", "study_end"]})
    assert alive_step(no_alive) == ALIVE_AT_START
    # the order: the landmark's analysis, alive at the start, then the start within the study
    assert implied_steps(no_alive) == ["In landmark day_60 analysis", ALIVE_AT_START, FOLLOWUP_STEP]
    # the landmark's own analysis needs no death on or before it: nothing more to imply
    alive = _definition(landmarks=[{"name": "day_60", "days": 60}], followup={"start": "day_60", "end": ["death"]})
    assert alive_step(alive) is None and implied_steps(alive) == ["In landmark day_60 analysis", FOLLOWUP_STEP]
    # an alive rule through the day before the landmark covers it; through an earlier day does not
    for days, step in ((59, None), (58, ALIVE_AT_START)):
        covered = _definition(criteria=[*BASE["criteria"], {"name": "Alive", "alive": {"through": {"days": days}}}],
                              landmarks=[{"name": "day_60", "days": 60, "require_alive": False}],
                              followup={"start": "day_60", "end": ["death", "study_end"]})
        assert alive_step(covered) == step, days


def test_shipped_designs_imply_the_step_where_no_criterion_covers_it():
    steps = {path.stem: alive_step(load_definition(path)) for path in sorted(DEFS.glob("*.yaml"))}
    assert steps == {"hcc_sorafenib_landmark": None,            # rule 7 (alive through day -1) and rule 12
                     "second_line_tki_ici": ALIVE_AT_INDEX,
                     "sorafenib_bleeding_thromboembolism": ALIVE_AT_INDEX,
                     "sorafenib_duration_groups": None,         # alive at the 90-day landmark where follow-up starts
                     "sorafenib_time_varying_response": ALIVE_AT_INDEX}


def test_the_reference_evaluator_removes_a_death_before_the_index():
    result = evaluate(_definition(), _tables())
    assert result.attrition == EXPECTED_ATTRITION
    assert {r["person_id"]: (r["time_days"], r["event"]) for r in result.cohort} == EXPECTED


@pytest.mark.spark
def test_the_engine_removes_a_death_before_the_index(spark):
    from cohortlake.engine import build_cohort

    built = build_cohort(_definition(), frames_from_rows(spark, _tables()))
    try:
        attrition = [(int(a), str(b), int(c), int(e)) for a, b, c, e in built.attrition]
        rows = {r["person_id"]: (r["time_days"], r["event"])
                for r in built.cohort.select("person_id", "time_days", "event").collect()}
    finally:
        built.release()
    assert attrition == EXPECTED_ATTRITION
    assert rows == EXPECTED


def test_explain_says_why_the_step_is_there():
    text = explain(_definition())
    assert (f"2. {ALIVE_AT_INDEX} — implied: follow-up ends at death and starts at index, and no criterion "
            "excludes a recorded death before that day") in text
