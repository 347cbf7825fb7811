"""Stockpiled eras and follow-up cut at the end of fee-for-service, on hand-written patients.

No shipped definition uses ``stockpiling: true`` or ``coverage_end`` with
``fee_for_service``, so this test-only definition does, and every expected value below is
worked out by hand from cohort_defs/README.md ("Exposures and eras", "Follow-up"). The
reference evaluator and the Spark engine must both give exactly these values.
"""

from __future__ import annotations

from datetime import date

import pytest

from cohortlake.spec import Definition
from cohortlake.assure.timeline import frames_from_rows
from reference_evaluator import evaluate

SORAFENIB = "50419048858"

DEFINITION = {
    "cohort": "boundaries", "title": "Stockpiling and fee-for-service boundaries",
    "study_period": {"start": "2008-01-01", "end": "2013-12-31"},
    "codesets": {"sorafenib": {"ndc": ["50419-488-58"]}},
    "exposures": {
        "stockpiled": {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 10, "stockpiling": True},
        "plain": {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 10},
    },
    "index": {"exposure": {"name": "stockpiled", "at": "start", "occurrence": "first"}},
    "criteria": [{"name": "Has index", "index_exists": {}}],
    "followup": {"start": "index", "end": ["study_end", {"coverage_end": {"require": ["fee_for_service"]}}]},
    "covariates": [
        {"name": "stockpiled_days", "exposure_duration": {"exposure": "stockpiled", "era": "first_from_index"}},
        {"name": "plain_days", "exposure_duration": {"exposure": "plain", "era": "first_from_index"}},
    ],
}


def _fills(pid, *fills):
    return [("dispensing", {"person_id": pid, "date": day, "ndc": SORAFENIB, "generic_name": "sorafenib",
                            "brand_name": None, "quantity": 60.0, "days_supply": days, "source_table": "pde",
                            "claim_id": f"{pid}-{n}"}) for n, (day, days) in enumerate(fills)]


def _enrolled(pid, *hmo):
    spans = [(c, date(2008, 1, 1), date(2013, 12, 31)) for c in ("part_a", "part_b", "part_d")] + [("hmo", *s) for s in hmo]
    return [("enrollment", {"person_id": pid, "coverage": c, "start_date": a, "end_date": b}) for c, a, b in spans]


def _person(pid):
    return [("person", {"person_id": pid, "birth_date": date(1940, 1, 1), "sex": "male", "race": "white"})]


JAN1 = date(2010, 1, 1)
THREE_FILLS = ((JAN1, 30), (date(2010, 1, 20), 30), (date(2010, 3, 5), 30))

PATIENTS = {
    # Stockpiling: fill 2 (01-20, 30 days) starts the day after fill 1 runs out (01-30): 01-31 .. 03-01;
    # fill 3 (03-05) is within the 10-day grace of 03-01: era 01-01 .. 04-03 = 93 days. Without
    # stockpiling fill 2 ends 02-18 and fill 3 (03-05 > 02-28) starts a new era: 01-01 .. 02-18 = 49.
    # No HMO: fee-for-service all along, follow-up to the study end (1,460 days).
    "three_fills": (_fills("three_fills", *THREE_FILLS) + _enrolled("three_fills"), (93, 49, 1460)),
    # Fill 3 dated before the stockpiled end: 01-10 → 01-31 .. 03-01, then 01-15 (10 days) → 03-02 .. 03-11:
    # 70 days; plain: 01-01 .. 02-08 (fill 2's end) = 39.
    # An HMO span from 2010-06-01 ends fee-for-service on 05-31: 150 days of follow-up.
    "early_refills": (_fills("early_refills", (JAN1, 30), (date(2010, 1, 10), 30), (date(2010, 1, 15), 10))
                      + _enrolled("early_refills", (date(2010, 6, 1), date(2010, 6, 30))), (70, 39, 150)),
    # One HMO day on 2010-03-10: fee-for-service ends 03-09 (67 days).
    "hmo_one_day": (_fills("hmo_one_day", (JAN1, 30)) + _enrolled("hmo_one_day", (date(2010, 3, 10), date(2010, 3, 10))),
                    (30, 30, 67)),
    # HMO on the index day: not in fee-for-service at follow-up start, follow-up ends that day (0).
    "hmo_at_index": (_fills("hmo_at_index", (JAN1, 30)) + _enrolled("hmo_at_index", (date(2009, 12, 1), JAN1)),
                     (30, 30, 0)),
    # HMO ending the day before the index: fee-for-service from the index on, to the study end.
    "hmo_before": (_fills("hmo_before", (JAN1, 30)) + _enrolled("hmo_before", (date(2009, 6, 1), date(2009, 12, 31))),
                   (30, 30, 1460)),
    # HMO starting the day after the index: follow-up ends on the index day + 0 (day 0 is fee-for-service).
    "hmo_next_day": (_fills("hmo_next_day", (JAN1, 30)) + _enrolled("hmo_next_day", (date(2010, 1, 2), date(2010, 2, 1))),
                     (30, 30, 0)),
}


def _tables():
    tables: dict[str, list[dict]] = {}
    for pid, (rows, _) in PATIENTS.items():
        for table, row in _person(pid) + rows:
            tables.setdefault(table, []).append(row)
    return tables


def _want():
    return {pid: dict(zip(("stockpiled_days", "plain_days", "time_days"), values))
            for pid, (_, values) in PATIENTS.items()}


COLUMNS = ("stockpiled_days", "plain_days", "time_days")


def test_hand_values_by_the_reference_evaluator():
    got = {r["person_id"]: {c: r[c] for c in COLUMNS} for r in evaluate(Definition.model_validate(DEFINITION), _tables()).cohort}
    assert got == _want()


@pytest.mark.spark
def test_hand_values_by_the_spark_engine(spark):
    from cohortlake.engine import build_cohort

    built = build_cohort(Definition.model_validate(DEFINITION), frames_from_rows(spark, _tables()))
    try:
        got = {r["person_id"]: {c: r[c] for c in COLUMNS} for r in built.cohort.select("person_id", *COLUMNS).collect()}
    finally:
        built.release()
    assert got == _want()
