"""The reference evaluator on tiny hand-written patients whose results are worked out by hand.

Pure Python (no Spark): the boundaries the README pins down (window days -31/-30 and
+60/+61, age on the birthday, coverage gaps in the first and last month, death on the
landmark day, stockpiling, grace, competing outcomes, the comorbidity indices' shared terms and rule-out) and every shipped
definition on a couple of patients.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from cohortlake.spec import Definition, load_definition
from cohortlake.spec.followup import ALIVE_AT_INDEX, ALIVE_AT_START, FOLLOWUP_STEP
from reference_evaluator import Era, Record, age_on, build_eras, cohort_columns, event_columns, evaluate

from paths import REPO
DEFS = REPO / "cohort_defs"
SORAFENIB_NDC = "50419048858"

# --- rows ---------------------------------------------------------------------------------


def person(pid, birth=date(1940, 1, 1), sex="male", race="white"):
    return "person", {"person_id": pid, "birth_date": birth, "sex": sex, "race": race}


def death(pid, day):
    return "death", {"person_id": pid, "death_date": day, "source": "mbsf", "precision": "day"}


def enroll(pid, coverage, start, end):
    return "enrollment", {"person_id": pid, "coverage": coverage, "start_date": start, "end_date": end}


def covered(pid, start=date(2005, 1, 1), end=date(2015, 12, 31), types=("part_a", "part_b", "part_d")):
    return [enroll(pid, t, start, end) for t in types]


def tumor(pid, seq="00", year=2009, month=5, site="C220", histology="8170", behavior="3", stage="4", source="1"):
    return "tumor", {
        "person_id": pid, "sequence_number": seq, "diagnosis_year": year, "diagnosis_month": month,
        "primary_site": site, "histology": histology, "behavior": behavior, "historic_stage": stage,
        "reporting_source": source, "death_year": None, "death_month": None,
    }


_claims = iter(range(1, 10**6))


def dx(pid, day, code, system="icd9cm", setting="outpatient", claim=None, source_table="outpatient_base"):
    return "diagnosis", {
        "person_id": pid, "date": day, "code": code, "code_system": system, "setting": setting,
        "source_table": source_table, "claim_id": claim or f"c{next(_claims)}", "source_column": "ICD_DGNS_CD1",
    }


def px(pid, day, code, system="hcpcs", setting="carrier", claim=None, source_table="nch_line"):
    return "procedure", {
        "person_id": pid, "date": day, "code": code, "code_system": system, "setting": setting,
        "source_table": source_table, "claim_id": claim or f"c{next(_claims)}", "source_column": "HCPCS_CD",
    }


def fill(pid, day, days_supply=30, generic="sorafenib", ndc=SORAFENIB_NDC, claim=None):
    return "dispensing", {
        "person_id": pid, "date": day, "ndc": ndc, "generic_name": generic, "brand_name": None,
        "quantity": 60.0, "days_supply": days_supply, "source_table": "pde", "claim_id": claim or f"d{next(_claims)}",
    }


def tables(*items) -> dict[str, list[dict]]:
    """Rows (or lists of rows) → {table: rows}."""
    out: dict[str, list[dict]] = {}
    for item in items:
        for table, row in item if isinstance(item, list) else [item]:
            out.setdefault(table, []).append(row)
    return out


# --- definitions --------------------------------------------------------------------------

CODESETS = {
    "liver": {"icd9cm": ["571.5"]},
    "hcc": {"icd9cm": ["155.0"]},
    "bleed": {"icd9cm": ["578x"]},
    "resection": {"hcpcs": ["47120"]},
    "sorafenib": {"ndc": ["50419-488-58"], "generic_name": ["sorafenib"]},
    "tki": {"generic_name": ["regorafenib"]},
    "ici": {"hcpcs": ["J9299"]},
}


def definition(**parts) -> Definition:
    d = {
        "cohort": "t",
        "title": "t",
        "study_period": {"start": "2008-01-01", "end": "2013-12-31"},
        "codesets": CODESETS,
        "index": {"event": {"codesets": ["liver"], "tables": ["diagnosis"]}},
        "criteria": [{"name": "Has index", "index_exists": {}}],
        "followup": {"start": "index", "end": ["death", "study_end"]},
    }
    d.update(parts)
    return Definition.model_validate(d)


def loaded(tmp_path, **parts) -> Definition:
    """A definition written as YAML and loaded with the shipped code-set files (for NCI)."""
    d = definition(**parts).model_dump(mode="json", by_alias=True, exclude_defaults=True)
    path = tmp_path / "def.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return load_definition(path, codesets_dir=DEFS / "codesets")


def ids(result) -> list[str]:
    return [row["person_id"] for row in result.cohort]


def by_person(result) -> dict[str, dict]:
    return {row["person_id"]: row for row in result.cohort}


INDEX = date(2010, 6, 15)


def indexed(pid, day=INDEX, **person_kw):
    """A person with the index diagnosis (liver, 571.5) on `day`."""
    return [person(pid, **person_kw), dx(pid, day, "5715")]


# --- dates and ages -----------------------------------------------------------------------


def test_age_counts_on_the_birthday():
    assert age_on(date(1944, 6, 15), date(2010, 6, 15)) == 66
    assert age_on(date(1944, 6, 15), date(2010, 6, 14)) == 65
    assert age_on(date(1944, 6, 16), date(2010, 6, 15)) == 65
    assert age_on(None, date(2010, 6, 15)) is None


def test_age_of_a_29_february_birthday_counts_on_1_march():
    born = date(1944, 2, 29)
    assert age_on(born, date(2011, 2, 28)) == 66
    assert age_on(born, date(2011, 3, 1)) == 67
    assert age_on(born, date(2012, 2, 28)) == 67
    assert age_on(born, date(2012, 2, 29)) == 68


def test_age_criterion_65_66_on_the_birthday():
    d = definition(criteria=[{"name": "Has index", "index_exists": {}}, {"name": "66+", "age": {"min": 66}}])
    data = tables(
        indexed("turns66", birth=date(1944, 6, 15)),
        indexed("still65", birth=date(1944, 6, 16)),
        indexed("nobirth", birth=None),
    )
    result = evaluate(d, data)
    assert ids(result) == ["turns66"]
    assert result.attrition == [(0, "Persons in the data", 3, 0), (1, "Has index", 3, 0), (2, "66+", 1, 2),
                                (3, ALIVE_AT_INDEX, 1, 0), (4, FOLLOWUP_STEP, 1, 0)]
    assert result.cohort[0]["time_days"] == (date(2013, 12, 31) - INDEX).days


# --- windows ------------------------------------------------------------------------------


def test_day_window_is_inclusive_minus_30_and_plus_60():
    d = definition(criteria=[
        {"name": "Has index", "index_exists": {}},
        {"name": "No resection", "occurrence": {"codesets": ["resection"], "tables": ["procedure"],
                                                "window": {"from": -30, "to": 60}, "at_most": 0}},
    ])
    offset = {"m31": -31, "m30": -30, "p60": 60, "p61": 61}
    data = tables(*[indexed(pid) + [px(pid, date.fromordinal(INDEX.toordinal() + n), "47120")]
                    for pid, n in offset.items()])
    result = evaluate(d, data)
    assert ids(result) == ["m31", "p61"]
    assert result.attrition[2] == (2, "No resection", 2, 2)


def test_washout_is_days_minus_n_to_minus_1():
    d = definition(criteria=[
        {"name": "Has index", "index_exists": {}},
        {"name": "Washout", "washout": {"codesets": ["sorafenib"], "tables": ["dispensing"], "days": 365}},
    ])
    day = INDEX.toordinal()
    data = tables(
        indexed("m366") + [fill("m366", date.fromordinal(day - 366))],
        indexed("m365") + [fill("m365", date.fromordinal(day - 365))],
        indexed("m1") + [fill("m1", date.fromordinal(day - 1))],
        indexed("d0") + [fill("d0", INDEX)],
    )
    assert ids(evaluate(d, data)) == ["d0", "m366"]


def test_month_window_and_counting_modes():
    # Window months -1..0 around 2010-06-15: 2010-05-01..2010-06-30.
    window = {"from": -1, "to": 0, "unit": "months"}
    d = definition(covariates=[
        {"name": "dates", "count": {"codesets": ["bleed"], "tables": ["diagnosis"], "window": window}},
        {"name": "claims", "count": {"codesets": ["bleed"], "tables": ["diagnosis"], "window": window, "count": "claims"}},
        {"name": "events", "count": {"codesets": ["bleed"], "tables": ["diagnosis"], "window": window, "count": "events"}},
        {"name": "twice", "flag": {"codesets": ["bleed"], "tables": ["diagnosis"], "window": window, "at_least": 2}},
        {"name": "inpatient", "flag": {"codesets": ["bleed"], "tables": ["diagnosis"], "window": window,
                                       "settings": ["inpatient"]}},
    ])
    same = dx("p", date(2010, 5, 1), "5780", claim="k1")
    data = tables(
        indexed("p"),
        same, same,                                            # identical rows: one event
        dx("p", date(2010, 5, 1), "5781", claim="k1"),         # same claim, other code
        dx("p", date(2010, 6, 30), "5789", claim="k2"),
        dx("p", date(2010, 4, 30), "5780", claim="k3"),        # month -2: outside
        dx("p", date(2010, 7, 1), "5780", claim="k4"),         # month +1: outside
    )
    row = evaluate(d, data).cohort[0]
    assert (row["dates"], row["claims"], row["events"], row["twice"], row["inpatient"]) == (2, 2, 3, 1, 0)


def test_code_systems_belong_to_their_tables():
    # 571.5 written as an ICD-9-CM code matches diagnosis rows of icd9cm only.
    d = definition()
    data = tables(
        person("a"), dx("a", INDEX, "5715", system="icd10cm"),
        person("b"), dx("b", INDEX, "571.5"),                   # dots are ignored
    )
    assert ids(evaluate(d, data)) == ["b"]


# --- coverage -----------------------------------------------------------------------------

COVERAGE_DEF = dict(criteria=[
    {"name": "Has index", "index_exists": {}},
    {"name": "Covered", "coverage": {"require": ["part_a"], "window": {"from": -12, "to": 2, "unit": "months"},
                                     "allowed_gap_days": 0, "truncate_at_death": True}},
])


def test_coverage_months_window_gaps_at_month_minus_12_and_plus_2():
    # Months -12..2 around June 2010: 2009-06-01..2010-08-31.
    d = definition(**COVERAGE_DEF)
    data = tables(
        indexed("full"), enroll("full", "part_a", date(2009, 6, 1), date(2010, 8, 31)),
        indexed("late"), enroll("late", "part_a", date(2009, 6, 2), date(2010, 8, 31)),
        indexed("july"), enroll("july", "part_a", date(2009, 7, 1), date(2010, 8, 31)),
        indexed("early"), enroll("early", "part_a", date(2009, 6, 1), date(2010, 8, 30)),
        indexed("hole"), enroll("hole", "part_a", date(2009, 6, 1), date(2010, 1, 9)),
        enroll("hole", "part_a", date(2010, 1, 11), date(2010, 8, 31)),
        indexed("split"), enroll("split", "part_a", date(2009, 6, 1), date(2010, 1, 10)),  # adjacent spans
        enroll("split", "part_a", date(2010, 1, 11), date(2010, 8, 31)),
        indexed("other"), enroll("other", "part_b", date(2009, 6, 1), date(2010, 8, 31)),
    )
    assert ids(evaluate(d, data)) == ["full", "split"]


def test_coverage_allowed_gap_and_truncation_at_death_month():
    rule = dict(COVERAGE_DEF["criteria"][1]["coverage"], allowed_gap_days=1)
    d = definition(criteria=[COVERAGE_DEF["criteria"][0], {"name": "Covered", "coverage": rule}])
    data = tables(
        indexed("hole1"), enroll("hole1", "part_a", date(2009, 6, 1), date(2010, 1, 9)),
        enroll("hole1", "part_a", date(2010, 1, 11), date(2010, 8, 31)),
        indexed("hole2"), enroll("hole2", "part_a", date(2009, 6, 1), date(2010, 1, 9)),
        enroll("hole2", "part_a", date(2010, 1, 12), date(2010, 8, 31)),
        # Died 2010-07-20: the window ends 2010-07-31 (last day of the death month).
        indexed("died_ok"), death("died_ok", date(2010, 7, 20)),
        enroll("died_ok", "part_a", date(2009, 6, 1), date(2010, 7, 30)),  # 1-day gap at the end: allowed
        indexed("died_short"), death("died_short", date(2010, 7, 20)),
        enroll("died_short", "part_a", date(2009, 6, 1), date(2010, 7, 20)),
        # Died before the window: W2 < W1, the rule holds without any coverage; the death
        # before the index then removes the person at the implied step.
        indexed("died_before"), death("died_before", date(2009, 5, 1)),
    )
    result = evaluate(d, data)
    assert ids(result) == ["died_ok", "hole1"]
    assert result.attrition[2:] == [(2, "Covered", 3, 2), (3, ALIVE_AT_INDEX, 2, 1), (4, FOLLOWUP_STEP, 2, 0)]


def test_coverage_truncation_in_days_and_without_truncation():
    def rule(truncate):
        return {"require": ["part_a"], "window": {"from": 0, "to": 90}, "truncate_at_death": truncate}

    data = tables(
        indexed("died"), death("died", date(2010, 7, 1)),
        enroll("died", "part_a", INDEX, date(2010, 7, 1)),
        indexed("died_early_end"), death("died_early_end", date(2010, 7, 1)),
        enroll("died_early_end", "part_a", INDEX, date(2010, 6, 30)),
    )
    truncated = definition(criteria=[{"name": "c", "coverage": rule(True)}])
    assert ids(evaluate(truncated, data)) == ["died"]
    assert ids(evaluate(definition(criteria=[{"name": "c", "coverage": rule(False)}]), data)) == []


def test_fee_for_service_and_exclusions():
    window = {"from": -1, "to": 0, "unit": "months"}  # 2010-05-01..2010-06-30
    d = definition(criteria=[
        {"name": "FFS", "coverage": {"require": ["fee_for_service"], "window": window, "allowed_gap_days": 2}},
        {"name": "No RDS", "coverage": {"exclude": ["retiree_drug_subsidy"], "window": window}},
    ])
    d_hmo = definition(criteria=[{"name": "All HMO", "coverage": {"exclude": ["fee_for_service"], "window": window}}])
    data = tables(
        indexed("nohmo"),
        indexed("hmo2"), enroll("hmo2", "hmo", date(2010, 5, 10), date(2010, 5, 11)),   # 2 days: allowed
        indexed("hmo3"), enroll("hmo3", "hmo", date(2010, 5, 10), date(2010, 5, 12)),   # 3 days: too long
        indexed("hmo_out"), enroll("hmo_out", "hmo", date(2010, 1, 1), date(2010, 4, 30)),
        indexed("rds"), enroll("rds", "retiree_drug_subsidy", date(2010, 6, 30), date(2010, 12, 31)),
        indexed("allhmo"), enroll("allhmo", "hmo", date(2010, 5, 1), date(2010, 6, 30)),
    )
    result = evaluate(d, data)
    assert ids(result) == ["hmo2", "hmo_out", "nohmo"]
    assert result.attrition == [(0, "Persons in the data", 6, 0), (1, "FFS", 4, 2), (2, "No RDS", 3, 1),
                                (3, ALIVE_AT_INDEX, 3, 0), (4, FOLLOWUP_STEP, 3, 0)]
    assert ids(evaluate(d_hmo, data)) == ["allhmo"]


def test_coverage_flag_covariate():
    d = definition(covariates=[
        {"name": "dual", "coverage_flag": {"coverage": "dual", "window": {"from": 0, "to": 0, "unit": "months"}}},
        {"name": "ffs", "coverage_flag": {"coverage": "fee_for_service", "window": {"from": 0, "to": 0}}},
    ])
    data = tables(
        indexed("a"), enroll("a", "dual", date(2010, 6, 30), date(2010, 6, 30)), enroll("a", "hmo", INDEX, INDEX),
        indexed("b"), enroll("b", "dual", date(2010, 7, 1), date(2010, 8, 1)),
    )
    rows = by_person(evaluate(d, data))
    assert (rows["a"]["dual"], rows["a"]["ffs"], rows["b"]["dual"], rows["b"]["ffs"]) == (1, 0, 0, 1)


# --- index --------------------------------------------------------------------------------

TUMOR_INDEX = {"tumor": {"primary_site": ["C22.0"], "histology": ["8170-8175"], "behavior": ["malignant"]}}


def test_tumor_index_choice_and_unknown_month():
    lowest = definition(index=TUMOR_INDEX, criteria=[{"name": "HCC", "index_exists": {}}],
                        covariates=[{"name": "seq", "tumor_field": {"field": "sequence_number"}},
                                    {"name": "stage", "tumor_field": {"field": "stage"}},
                                    {"name": "source", "tumor_field": {"field": "reporting_source"}},
                                    {"name": "behavior", "tumor_field": {"field": "behavior"}}])
    earliest = definition(index={"tumor": dict(TUMOR_INDEX["tumor"], choose="earliest_diagnosis",
                                               date={"day_of_month": 1})},
                          criteria=[{"name": "HCC", "index_exists": {}}])
    data = tables(
        person("two"), tumor("two", seq="02", year=2007, month=5, stage="2"), tumor("two", seq="01", year=2008, month=3),
        tumor("two", seq="00", year=2006, month=1, site="C340"),            # lung: not allowed
        person("nomonth"), tumor("nomonth", seq="00", year=2009, month=99),
        tumor("nomonth", seq="01", year=2009, month=None), tumor("nomonth", seq="02", year=2009, month=12),
        person("benign"), tumor("benign", behavior="0"),
        person("tie"), tumor("tie", seq="00", histology="8175", stage="7"), tumor("tie", seq="00", histology="8170"),
        tumor("notinperson", seq="00", year=2010, month=2, histology="8175", source="7"),
    )
    result = evaluate(lowest, data)
    rows = by_person(result)
    assert sorted(rows) == ["nomonth", "notinperson", "tie", "two"]
    assert result.attrition[0] == (0, "Persons in the data", 5, 0)          # 4 persons + 1 found by the index
    assert rows["tie"]["stage"] == "distant"                                  # remaining ties: smallest histology
    assert (rows["two"]["index_date"], rows["two"]["seq"], rows["two"]["stage"]) == (date(2008, 3, 15), "01", "distant")
    assert rows["nomonth"]["index_date"] is None and rows["nomonth"]["followup_start"] is None
    assert (rows["notinperson"]["source"], rows["notinperson"]["behavior"]) == ("death_certificate_only", "malignant")
    unnamed = definition(index=TUMOR_INDEX, criteria=[{"name": "HCC", "index_exists": {}}],
                         covariates=[{"name": "stage", "tumor_field": {"field": "stage"}}])
    assert by_person(evaluate(unnamed, tables(person("x"), tumor("x", stage="7"))))["x"]["stage"] == "7"
    rows = by_person(evaluate(earliest, data))
    assert rows["two"]["index_date"] == date(2007, 5, 1)
    assert rows["nomonth"]["index_date"] == date(2009, 12, 1)                 # unknown months last


def test_tumor_criteria_and_missing_fields():
    d = definition(index=TUMOR_INDEX, criteria=[
        {"name": "HCC", "index_exists": {}},
        {"name": "Month known", "tumor": {"diagnosis_month_known": True, "diagnosis_year": {"min": 2008, "max": 2011}}},
        {"name": "Not DCO", "tumor": {"reporting_source": {"exclude": ["death_certificate_only"]}}},
        {"name": "Advanced", "tumor": {"stage": ["regional", "distant"], "sequence_number": ["00", "01"]}},
        {"name": "Age", "age": {"min": 66}},
    ])
    data = tables(
        person("ok"), tumor("ok"),
        person("month"), tumor("month", month=None),
        person("month99"), tumor("month99", month=99),
        person("year"), tumor("year", year=2012),
        person("dco"), tumor("dco", source="7"),
        person("nosource"), tumor("nosource", source=None),
        person("local"), tumor("local", stage="1"),
        person("second"), tumor("second", seq="02"),
        person("young", birth=date(1950, 1, 1)), tumor("young"),
        person("none"),
    )
    result = evaluate(d, data)
    assert ids(result) == ["ok"]
    assert [a[2:] for a in result.attrition] == [(10, 0), (9, 1), (6, 3), (4, 2), (2, 2), (1, 1), (1, 0)]

    unknown = definition(index=TUMOR_INDEX, criteria=[{"name": "Month unknown", "tumor": {"diagnosis_month_known": False}}])
    # A missing month fails any filter on it, even `diagnosis_month_known: false`.
    assert ids(evaluate(unknown, data)) == ["month99"]


def test_event_index_each_gives_episodes_and_attrition_counts_persons():
    d = definition(
        index={"event": {"codesets": ["liver"], "tables": ["diagnosis"], "occurrence": "each", "settings": ["outpatient"]}},
        criteria=[{"name": "Has index", "index_exists": {}},
                  {"name": "2010", "index_period": {"start": "2010-01-01", "end": "2010-12-31"}}],
    )
    data = tables(
        person("a"), dx("a", date(2009, 12, 31), "5715"), dx("a", date(2010, 1, 1), "5715"),
        dx("a", date(2010, 1, 1), "5715"), dx("a", date(2010, 12, 31), "5715"), dx("a", date(2011, 1, 1), "5715"),
        dx("a", date(2010, 5, 5), "5715", setting="inpatient"),
        person("b"), dx("b", date(2009, 5, 5), "5715"),
    )
    result = evaluate(d, data)
    assert [(r["person_id"], r["index_date"]) for r in result.cohort] == [
        ("a", date(2010, 1, 1)), ("a", date(2010, 12, 31))]
    assert result.attrition == [(0, "Persons in the data", 2, 0), (1, "Has index", 2, 0), (2, "2010", 1, 1),
                                (3, ALIVE_AT_INDEX, 1, 0)]


def test_person_without_index_is_in_the_population_only():
    result = evaluate(definition(), tables(person("x"), dx("y", INDEX, "5715")))
    assert result.attrition == [(0, "Persons in the data", 2, 0), (1, "Has index", 1, 1), (2, ALIVE_AT_INDEX, 1, 0),
                                (3, FOLLOWUP_STEP, 1, 0)]
    assert ids(result) == ["y"]


# --- exposures and eras -------------------------------------------------------------------


def test_eras_grace_boundary():
    first = Record(date(2010, 1, 1), 30)                          # covers to 2010-01-30
    assert build_eras([first, Record(date(2010, 3, 1), 30)], 30, False) == [Era(date(2010, 1, 1), date(2010, 3, 30))]
    assert build_eras([first, Record(date(2010, 3, 2), 30)], 30, False) == [
        Era(date(2010, 1, 1), date(2010, 1, 30)), Era(date(2010, 3, 2), date(2010, 3, 31))]
    # Grace 0: the day after the end is a new era; overlapping keeps the later end.
    assert build_eras([first, Record(date(2010, 1, 31), 5)], 0, False) == [
        Era(date(2010, 1, 1), date(2010, 1, 30)), Era(date(2010, 1, 31), date(2010, 2, 4))]
    assert build_eras([first, Record(date(2010, 1, 5), 5)], 0, False) == [Era(date(2010, 1, 1), date(2010, 1, 30))]


def test_eras_stockpiling():
    records = [Record(date(2010, 1, 1), 30), Record(date(2010, 1, 20), 30), Record(date(2010, 1, 20), 10)]
    # Without: the ends are 1-30, 2-18, 1-29 → one era to 2-18.
    assert build_eras(records, 0, False) == [Era(date(2010, 1, 1), date(2010, 2, 18))]
    # With: 1-01..1-30, then 1-31..3-01, then 3-02..3-11 (an early refill continues the era).
    assert build_eras(records, 0, True) == [Era(date(2010, 1, 1), date(2010, 3, 11))]
    # A refill after the supply ran out starts on its own date.
    assert build_eras([Record(date(2010, 1, 1), 10), Record(date(2010, 1, 15), 10)], 5, True) == [
        Era(date(2010, 1, 1), date(2010, 1, 24))]


def test_identical_fill_rows_are_one_fill_distinct_fills_stockpile():
    d = definition(
        index={"exposure": {"name": "sor"}},
        exposures={"sor": {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 0, "stockpiling": True}},
        covariates=[{"name": "days", "exposure_duration": {"exposure": "sor"}}],
    )
    same = fill("same", INDEX, 30, claim="x")
    data = tables(person("same"), same, same,
                  person("two"), fill("two", INDEX, 30, claim="x"), fill("two", INDEX, 30, claim="y"))
    assert {p: r["days"] for p, r in by_person(evaluate(d, data)).items()} == {"same": 30, "two": 60}


def test_days_supply_default_min_max_and_exposure_duration():
    exposure = {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 0,
                "days_supply": {"default": 30, "min": 5, "max": 90}}
    d = definition(
        index={"exposure": {"name": "sor"}},
        exposures={"sor": exposure, "sor_stock": dict(exposure, stockpiling=True)},
        covariates=[{"name": "days", "exposure_duration": {"exposure": "sor"}},
                    {"name": "stock_days", "exposure_duration": {"exposure": "sor_stock"}},
                    {"name": "prior", "exposure_duration": {"exposure": "sor", "era": "last_before_index"}}],
    )
    data = tables(
        person("none"), fill("none", INDEX, None),                   # default 30
        person("low"), fill("low", INDEX, 4),                        # below min: 30
        person("high"), fill("high", INDEX, 400),                    # capped: 90
        person("stock"), fill("stock", INDEX, 30), fill("stock", date(2010, 6, 20), 30),
        person("name"), fill("name", INDEX, 7, generic="SORAFENIB TOSYLATE", ndc="00000000000"),
        person("ndc"), fill("ndc", INDEX, 8, generic=None),
        person("other"), fill("other", INDEX, 8, generic="regorafenib", ndc="50419017103"),
    )
    rows = by_person(evaluate(d, data))
    assert sorted(rows) == ["high", "low", "name", "ndc", "none", "stock"]
    assert {p: r["days"] for p, r in rows.items()} == {"none": 30, "low": 30, "high": 90, "stock": 35, "name": 7, "ndc": 8}
    assert rows["stock"]["stock_days"] == 60 and rows["stock"]["prior"] is None


def test_exposure_index_each_end_and_last_before_index():
    d = definition(
        index={"exposure": {"name": "sor", "at": "end", "occurrence": "each"}},
        exposures={"sor": {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 10}},
        covariates=[{"name": "prior", "exposure_duration": {"exposure": "sor", "era": "last_before_index"}},
                    {"name": "next", "exposure_duration": {"exposure": "sor"}}],
    )
    data = tables(person("a"), fill("a", date(2010, 1, 1), 30), fill("a", date(2010, 2, 9), 30),   # era to 3-10
                  fill("a", date(2010, 6, 1), 30))                                                 # era 6-01..6-30
    result = evaluate(d, data)
    assert [(r["index_date"], r["prior"], r["next"]) for r in result.cohort] == [
        (date(2010, 3, 10), 69, 30), (date(2010, 6, 30), 30, None)]


def test_administration_records_use_settings():
    d = definition(
        index={"exposure": {"name": "ici"}},
        exposures={"ici": {"codesets": ["ici"], "source": "administration", "administration_days": 21, "grace_days": 1}},
        covariates=[{"name": "days", "exposure_duration": {"exposure": "ici"}}],
    )
    data = tables(
        person("a"), px("a", date(2010, 1, 1), "J9299", setting="inpatient"),          # not a default setting
        px("a", date(2010, 2, 1), "J9299", setting="outpatient"), px("a", date(2010, 2, 22), "J9299"),
        px("a", date(2010, 2, 22), "J9299", setting="outpatient"),                      # same date: one record
    )
    row = evaluate(d, data).cohort[0]
    assert (row["index_date"], row["days"]) == (date(2010, 2, 1), 42)


def test_regimen_index_and_arms():
    exposures = {
        "tki": {"codesets": ["tki"], "source": "dispensing", "grace_days": 0},
        "ici": {"codesets": ["ici"], "source": "administration", "administration_days": 21, "grace_days": 0},
        "sor": {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 0},
    }
    d = definition(
        index={"exposure": {"name": "tki"}},
        exposures=exposures,
        regimens={"combo": {"anchor": "tki", "with": ["ici"], "within_days": 30}},
        landmarks=[{"name": "lm", "days": 20}],
        arms=[
            {"name": "combo", "regimen": {"name": "combo", "window": {"from": 0, "to": 0}}},
            {"name": "sor_soon", "exposure_start": {"exposure": "sor", "window": {"from": -5, "to": 5}}},
            {"name": "long", "era_duration": {"exposure": "tki", "min_days": 60}},
            {"name": "on", "era_on_at": {"exposure": "tki", "landmark": "lm"}},
            {"name": "rest", "otherwise": True},
        ],
    )
    tki = dict(generic="regorafenib", ndc="50419017103")
    data = tables(
        person("combo"), fill("combo", INDEX, **tki), px("combo", date(2010, 7, 15), "J9299"),     # +30 days
        person("late"), fill("late", INDEX, **tki), px("late", date(2010, 7, 16), "J9299"),        # +31: no
        fill("late", date(2010, 6, 10), 10), fill("late", date(2010, 6, 20)),                      # sor at -5, +5
        person("long"), fill("long", INDEX, 60, **tki),
        person("on"), fill("on", INDEX, 21, **tki),                                                # to 7-05 = lm
        person("off"), fill("off", INDEX, 20, **tki),                                              # to 7-04
    )
    rows = by_person(evaluate(d, data))
    assert {p: (r["arm"], r["first_exposure_date"]) for p, r in rows.items()} == {
        "combo": ("combo", INDEX),
        "late": ("sor_soon", date(2010, 6, 10)),
        "long": ("long", INDEX),
        "on": ("on", INDEX),
        "off": ("rest", None),
    }
    assert rows["on"]["landmark_date"] == date(2010, 7, 5) and "lm_date" not in rows["on"]   # one landmark

    regimen_index = definition(index={"regimen": {"name": "combo", "at": "end"}}, exposures=exposures,
                               regimens={"combo": {"anchor": "tki", "with": ["ici"], "within_days": 30}})
    data = tables(person("a"), fill("a", date(2010, 1, 1), **tki),                      # no ici near: not a regimen
                  fill("a", INDEX, **tki), px("a", date(2010, 5, 20), "J9299"))          # ici 26 days before
    assert [r["index_date"] for r in evaluate(regimen_index, data).cohort] == [date(2010, 7, 14)]


# --- landmarks ----------------------------------------------------------------------------


def test_death_on_the_landmark_day():
    landmark = [{"name": "lm", "days": 60}]
    lm_day = date(2010, 8, 14)
    data = tables(
        indexed("on_day"), death("on_day", lm_day),
        indexed("day_after"), death("day_after", date(2010, 8, 15)),
        indexed("alive"),
    )
    with_criterion = definition(
        criteria=[{"name": "Has index", "index_exists": {}}, {"name": "Alive at lm", "alive": {"through": "lm"}}],
        landmarks=landmark, followup={"start": "lm", "end": ["death", "study_end"]},
    )
    result = evaluate(with_criterion, data)
    assert ids(result) == ["alive", "day_after"]
    # the criterion guarantees the landmark (no landmark step); nothing bounds the index, so
    # the implied follow-up step is there (it removes nobody here)
    assert [a[1] for a in result.attrition[1:]] == ["Has index", "Alive at lm", FOLLOWUP_STEP]
    row = by_person(result)["day_after"]
    assert (row["followup_start"], row["followup_end"], row["event"], row["time_days"]) == (lm_day, date(2010, 8, 15), 1, 1)

    extra_step = definition(landmarks=landmark, followup={"start": "lm", "end": ["death", "study_end"]})
    result = evaluate(extra_step, data)
    assert ids(result) == ["alive", "day_after"]
    assert result.attrition[-2:] == [(2, "In landmark lm analysis", 2, 1), (3, FOLLOWUP_STEP, 2, 0)]

    from_index = definition(landmarks=landmark,
                            criteria=[{"name": "Has index", "index_exists": {}},
                                      {"name": "Alive day 59", "alive": {"through": {"days": 59}}}])
    rows = by_person(evaluate(from_index, data))
    assert {p: r["in_lm"] for p, r in rows.items()} == {"on_day": 0, "day_after": 1, "alive": 1}
    assert rows["on_day"]["event"] == 1 and rows["on_day"]["time_days"] == 60


def test_landmark_step_without_requirements_still_removes_missing_landmark_dates():
    # README: the extra step is skipped only when "an alive criterion through that
    # landmark, and no coverage requirement" guarantee it. Here nothing does: the step is
    # there, and a person without a landmark date (no sorafenib era) leaves at it.
    d = definition(
        exposures={"sor": {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 0}},
        landmarks=[{"name": "lm", "days": 30, "from": {"exposure": "sor", "at": "start"}, "require_alive": False}],
        followup={"start": "lm", "end": ["death", "study_end"]},
    )
    data = tables(indexed("era"), fill("era", INDEX), indexed("no_era"), indexed("dead"), fill("dead", INDEX),
                  death("dead", INDEX))
    result = evaluate(d, data)
    # Dead at index, but require_alive is false: in the landmark's analysis; the death before
    # follow-up starts then removes the person at the implied step instead of follow-up of -30 days.
    assert result.attrition[-3:] == [(2, "In landmark lm analysis", 2, 1), (3, ALIVE_AT_START, 1, 1),
                                     (4, FOLLOWUP_STEP, 1, 0)]
    row = result.cohort[0]
    assert (row["person_id"], row["in_lm"], row["followup_start"], row["followup_end"], row["event"]) == (
        "era", 1, date(2010, 7, 15), date(2013, 12, 31), 0)


def test_landmark_require_coverage_and_exposure_anchor():
    d = definition(
        index={"exposure": {"name": "sor"}},
        exposures={"sor": {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 0}},
        landmarks=[
            {"name": "lm", "days": 30, "from": {"exposure": "sor", "at": "end"}, "require_alive": False,
             "require_coverage": {"require": ["part_d"], "window": {"from": -30, "to": 0}}},
            {"name": "lm2", "days": 10, "require_coverage": {
                "require": ["part_d"], "window": {"from": 0, "to": 0, "relative_to": "index"}}},
        ],
        followup={"start": "lm", "end": ["study_end"]},
    )
    # Era 2010-06-15..2010-07-14; lm = 2010-08-13; its coverage window 2010-07-14..2010-08-13.
    data = tables(
        person("ok"), fill("ok", INDEX), enroll("ok", "part_d", date(2010, 7, 14), date(2010, 8, 13)),
        death("ok", date(2010, 8, 13)),                                # require_alive false
        person("short"), fill("short", INDEX), enroll("short", "part_d", date(2010, 7, 15), date(2010, 8, 13)),
    )
    result = evaluate(d, data)
    assert result.attrition[-2:] == [(2, "In landmark lm analysis", 1, 1), (3, FOLLOWUP_STEP, 1, 0)]
    row = result.cohort[0]
    assert (row["person_id"], row["landmark_date"], row["lm_date"], row["in_lm"], row["lm2_date"], row["in_lm2"]) == (
        "ok", date(2010, 8, 13), date(2010, 8, 13), 1, date(2010, 6, 25), 0)
    # Died on the landmark day (require_alive: false): the death outcome on day 0.
    assert (row["followup_start"], row["followup_end"], row["event"], row["time_days"]) == (
        date(2010, 8, 13), date(2013, 12, 31), 1, 0)


# --- follow-up and outcomes ---------------------------------------------------------------


def test_followup_coverage_end_and_exposure_end():
    d = definition(
        exposures={"sor": {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 30}},
        followup={"start": "index", "end": [
            "death", "study_end",
            {"coverage_end": {"require": ["part_a", "part_b"], "allowed_gap_days": 3}},
        ]},
    )
    d_exp = definition(
        exposures={"sor": {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 30}},
        followup={"start": "index", "end": ["study_end", {"exposure_end": {"exposure": "sor", "grace_days": 10}}]},
    )
    data = tables(
        # part_a gap of 3 days (bridged), part_b ends first.
        indexed("a"), enroll("a", "part_a", date(2010, 1, 1), date(2010, 7, 1)),
        enroll("a", "part_a", date(2010, 7, 5), date(2010, 9, 30)),
        enroll("a", "part_b", date(2010, 1, 1), date(2010, 9, 1)),
        # part_b gap of 4 days: not bridged; part_a missing entirely → ends at the start.
        indexed("b"), enroll("b", "part_b", date(2010, 1, 1), date(2010, 7, 1)),
        enroll("b", "part_b", date(2010, 7, 6), date(2010, 9, 30)),
        indexed("c"), *covered("c", types=("part_a",)), enroll("c", "part_b", date(2010, 1, 1), date(2010, 7, 1)),
        enroll("c", "part_b", date(2010, 7, 6), date(2010, 9, 30)), death("c", date(2010, 6, 20)),
        # exposure: era 2010-05-20..2010-06-18 covers the start; ends + 10.
        fill("a", date(2010, 5, 20)),
        # era ended 2010-06-04, + 10 grace = 06-14 < index: no era covers → start.
        fill("b", date(2010, 5, 6)),
        fill("c", date(2010, 5, 6)), fill("c", date(2010, 7, 5)),     # eras 05-06..06-04 and 07-05..08-03
    )
    ends = {p: r["followup_end"] for p, r in by_person(evaluate(d, data)).items()}
    assert ends == {"a": date(2010, 9, 1), "b": INDEX, "c": date(2010, 6, 20)}
    ends = {p: (r["followup_end"], r["time_days"], r["event"]) for p, r in by_person(evaluate(d_exp, data)).items()}
    assert ends == {"a": (date(2010, 6, 28), 13, 0), "b": (INDEX, 0, 0), "c": (INDEX, 0, 0)}


def test_missing_followup_start():
    # Follow-up from the first sorafenib era on or after index; "none" has no such era.
    d = definition(
        exposures={"sor": {"codesets": ["sorafenib"], "source": "dispensing", "grace_days": 0}},
        followup={"start": {"exposure": "sor", "at": "start"},
                  "end": ["death", "study_end", {"exposure_end": {"exposure": "sor"}}]},
        outcomes=[{"name": "death", "death": {}}, {"name": "bleed", "event": {"codesets": ["bleed"], "tables": ["diagnosis"]}}],
        time_varying=[{"name": "tv", "event": {"codesets": ["bleed"], "tables": ["diagnosis"]}}],
    )
    data = tables(indexed("none"), death("none", date(2011, 1, 1)), dx("none", date(2010, 7, 1), "578"),
                  indexed("some"), fill("some", date(2010, 7, 1)))
    result = evaluate(d, data)
    rows = by_person(result)
    none, some = rows["none"], rows["some"]
    assert (none["followup_start"], none["followup_end"], none["event"], none["time_days"]) == (
        None, date(2011, 1, 1), 0, None)
    assert (none["bleed_date"], none["bleed_event"], none["bleed_time_days"]) == (None, 0, None)
    assert (some["followup_start"], some["followup_end"], some["time_days"]) == (date(2010, 7, 1), date(2010, 7, 30), 29)
    assert [r["person_id"] for r in result.events] == ["some"]


def test_outcomes_with_competing_death():
    d = definition(outcomes=[
        {"name": "bleed", "event": {"codesets": ["bleed"], "tables": ["diagnosis"]}, "competing": ["death"]},
        {"name": "death", "death": {}},
    ])
    day = INDEX.toordinal()

    def at(n):
        return date.fromordinal(day + n)

    data = tables(
        indexed("first"), dx("first", at(10), "578"), death("first", at(20)),
        indexed("dead"), dx("dead", at(10), "578"), death("dead", at(5)),
        indexed("same"), dx("same", at(7), "578"), death("same", at(7)),
        indexed("day0"), dx("day0", INDEX, "578"),
        indexed("none"),
        indexed("twice"), dx("twice", at(3), "5789"), dx("twice", at(2), "5780"),
    )
    d_mi = definition(outcomes=[
        {"name": "bleed", "event": {"codesets": ["bleed"], "tables": ["diagnosis"]}, "competing": ["resected"]},
        {"name": "resected", "event": {"codesets": ["resection"], "tables": ["procedure"]}},
    ])
    later = tables(indexed("later"), px("later", at(3), "47120"), dx("later", at(10), "578"))
    row = evaluate(d_mi, later).cohort[0]
    # bleed occurs (day 10) after its competitor (day 3): its date stays, event 2 at day 3.
    assert (row["bleed_date"], row["bleed_event"], row["bleed_time_days"]) == (at(10), 2, 3)
    assert (row["resected_date"], row["resected_event"], row["resected_time_days"]) == (at(3), 1, 3)
    rows = by_person(evaluate(d, data))
    out = {p: (r["bleed_date"], r["bleed_event"], r["bleed_time_days"], r["death_event"], r["death_time_days"],
               r["event"], r["time_days"]) for p, r in rows.items()}
    study = (date(2013, 12, 31) - INDEX).days
    assert out == {
        "first": (at(10), 1, 10, 1, 20, 1, 10),
        "dead": (None, 2, 5, 1, 5, 2, 5),
        "same": (at(7), 1, 7, 1, 7, 1, 7),
        "day0": (None, 0, study, 0, study, 0, study),
        "none": (None, 0, study, 0, study, 0, study),
        "twice": (at(2), 1, 2, 0, study, 1, 2),
    }
    assert rows["dead"]["death_date"] == at(5) and rows["first"]["followup_end"] == at(20)


def test_time_varying_rows():
    d = definition(
        exposures={"tki": {"codesets": ["tki"], "source": "dispensing", "grace_days": 0}},
        time_varying=[{"name": "tki", "exposure": {"name": "tki"}},
                      {"name": "bleed", "event": {"codesets": ["bleed"], "tables": ["diagnosis"], "settings": ["inpatient"]}}],
    )
    day = INDEX.toordinal()

    def at(n):
        return date.fromordinal(day + n)

    tki = dict(generic="regorafenib", ndc="50419017103")
    data = tables(
        indexed("two"), fill("two", at(10), **tki), dx("two", at(25), "578", setting="inpatient"),
        dx("two", at(5), "578", setting="outpatient"), death("two", at(40)),
        indexed("same"), fill("same", at(10), **tki), dx("same", at(10), "578", setting="inpatient"),
        death("same", at(30)),
        indexed("late"), fill("late", at(30), **tki), death("late", at(30)),     # switch = time: ignored
        indexed("zero"), death("zero", INDEX),
        indexed("before"), fill("before", INDEX, **tki), death("before", at(3)),    # on day 0: not after
    )
    result = evaluate(d, data)
    assert event_columns(d) == ["person_id", "index_date", "start_day", "stop_day", "event", "tki", "bleed"]
    got = [(r["person_id"], r["start_day"], r["stop_day"], r["event"], r["tki"], r["bleed"]) for r in result.events]
    assert got == [
        ("before", 0, 3, 1, 0, 0),
        ("late", 0, 30, 1, 0, 0),
        ("same", 0, 10, 0, 0, 0), ("same", 10, 30, 1, 1, 1),
        ("two", 0, 10, 0, 0, 0), ("two", 10, 25, 0, 1, 0), ("two", 25, 40, 1, 1, 1),
    ]  # "zero" (death on the index day) has time_days 0 and so no rows: every row has stop_day > start_day
    assert by_person(result)["zero"]["time_days"] == 0
    assert evaluate(definition(), data).events is None


# --- covariates ---------------------------------------------------------------------------


def test_comorbidity_indices_terms_and_rule_out(tmp_path):
    window = {"from": -365, "to": -1}
    d = loaded(tmp_path, covariates=[
        {"name": "nci", "nci_comorbidity": {"window": window, "rule_out": False}},
        {"name": "nci_ro", "nci_comorbidity": {"window": window, "rule_out": True}},
        {"name": "cci", "charlson": {"window": window, "rule_out": False}},
        {"name": "cci_ro", "charlson": {"window": window}},
    ])
    day = INDEX.toordinal()

    def at(n):
        return date.fromordinal(day + n)

    data = tables(
        # acute MI (410.1) and history of MI (412): both weights in the NCI index, one Charlson point.
        indexed("mi"), dx("mi", at(-10), "4101", setting="inpatient"), dx("mi", at(-20), "412", setting="inpatient"),
        # moderate/severe liver (572.2) and mild (571.6): one NCI term, Charlson 3 not 4; diabetes with
        # complications (250.4) and without (250.0): one NCI term, Charlson 2 not 3; CHF (428.0).
        indexed("many"), dx("many", at(-100), "5722", setting="inpatient"), dx("many", at(-30), "5716"),
        dx("many", at(-50), "2504", setting="inpatient"), dx("many", at(-50), "2500", setting="inpatient"),
        dx("many", at(-5), "4280", setting="inpatient"),
        # outpatient/carrier CHF 30 days apart: ruled out; 31 days apart: counts.
        indexed("out30"), dx("out30", at(-40), "4280"), dx("out30", at(-10), "4280", setting="carrier"),
        indexed("out31"), dx("out31", at(-41), "4280"), dx("out31", at(-10), "4280", setting="carrier"),
        # Charlson: diabetes with complications ruled out leaves diabetes (1 point).
        indexed("ro_sup"), dx("ro_sup", at(-50), "2504"), dx("ro_sup", at(-50), "2500", setting="inpatient"),
        # outside the window: the day of index and day -366.
        indexed("outside"), dx("outside", INDEX, "4280", setting="inpatient"),
        dx("outside", at(-366), "4280", setting="inpatient"),
    )
    rows = by_person(evaluate(d, data))
    got = {p: (r["nci"], r["nci_ro"], r["cci"], r["cci_ro"]) for p, r in rows.items()}
    assert got == {
        "mi": (0.20623, 0.20623, 1.0, 1.0),             # 0.12624 + 0.07999
        "many": (1.67652, 1.67652, 6.0, 6.0),           # 0.73803 + 0.29408 + 0.64441; 3 + 2 + 1
        "out30": (0.64441, 0.0, 1.0, 0.0),
        "out31": (0.64441, 0.64441, 1.0, 1.0),
        "ro_sup": (0.29408, 0.29408, 2.0, 1.0),
        "outside": (0.0, 0.0, 0.0, 0.0),
    }
    assert all(isinstance(v, float) for values in got.values() for v in values)


def test_demographics_and_score():
    d = definition(covariates=[
        {"name": "age", "age": {}},
        {"name": "sex", "sex": {}},
        {"name": "race", "race": {}},
        {"name": "race_group", "race": {"groups": {"white": ["white"], "black": ["black"]}}},
        {"name": "year", "index_year": {}},
        {"name": "bleed", "flag": {"codesets": ["bleed"], "tables": ["diagnosis"], "window": {"from": -365, "to": 0}}},
        {"name": "score", "score": {"terms": [
            {"covariate": "age", "at_least": 75, "points": 2},
            {"covariate": "sex", "equals": "female", "points": 0.5},
            {"covariate": "race_group", "equals": "black"},
            {"covariate": "bleed"},
        ]}},
        {"name": "band", "score": {"terms": [{"covariate": "age", "at_least": 75}, {"covariate": "bleed"}],
                                   "groups": [{"name": "low", "max": 0}, {"name": "high", "min": 2}]}},
    ])
    data = tables(
        indexed("old", birth=date(1935, 6, 15), sex="female", race="black"), dx("old", INDEX, "578"),
        indexed("young", birth=date(1935, 6, 16), race="asian"),
        indexed("mid", birth=date(1935, 6, 16), race="asian"), dx("mid", INDEX, "578"),
        dx("nobody", INDEX, "5715"),
    )
    rows = by_person(evaluate(d, data))
    got = {p: tuple(r[c] for c in ("age", "sex", "race", "race_group", "year", "bleed", "score", "band"))
           for p, r in rows.items()}
    assert got == {
        "old": (75, "female", "black", "black", 2010, 1, 4.5, "high"),
        "young": (74, "male", "asian", None, 2010, 0, 0.0, "low"),
        "mid": (74, "male", "asian", None, 2010, 1, 1.0, None),
        "nobody": (None, None, None, None, 2010, 0, 0.0, "low"),
    }


def test_columns_in_order():
    d = definition(
        landmarks=[{"name": "lm", "days": 30}],
        outcomes=[{"name": "death", "death": {}}],
        covariates=[{"name": "sex", "sex": {}}],
    )
    assert cohort_columns(d) == [
        "person_id", "index_date", "arm", "landmark_date", "first_exposure_date", "followup_start", "followup_end",
        "event", "time_days", "sex", "in_lm", "death_date", "death_event", "death_time_days"]
    two = definition(landmarks=[{"name": "lm", "days": 30}, {"name": "lm2", "days": 60}])
    assert cohort_columns(two)[9:] == ["lm_date", "in_lm", "lm2_date", "in_lm2"]
    row = evaluate(d, tables(indexed("a"))).cohort[0]
    assert list(row) == cohort_columns(d)
    assert (row["arm"], row["landmark_date"], row["first_exposure_date"]) == ("all", date(2010, 7, 15), None)


# --- shipped definitions ------------------------------------------------------------------


def sorafenib_patient(pid, start=date(2010, 3, 1), birth=date(1940, 1, 1), **kw):
    """A sorafenib initiator with HCC on a claim and full A/B/D coverage."""
    return [
        person(pid, birth=birth),
        *covered(pid),
        dx(pid, date(2010, 1, 10), "1550", setting="inpatient"),
        dx(pid, date(2009, 12, 1), "5715", setting="inpatient"),            # cirrhosis, mild liver
        fill(pid, start, 30), fill(pid, date.fromordinal(start.toordinal() + 40), 30),
    ]


def test_shipped_hcc_sorafenib_landmark():
    d = load_definition(DEFS / "hcc_sorafenib_landmark.yaml")
    data = tables(
        person("treated", birth=date(1940, 5, 1)), tumor("treated", year=2009, month=5), *covered("treated"),
        fill("treated", date(2009, 7, 14)), death("treated", date(2010, 5, 15)),
        dx("treated", date(2008, 12, 1), "5715", setting="inpatient"),
        person("untreated", birth=date(1940, 5, 1)), tumor("untreated", year=2010, month=1, stage="2"),
        *covered("untreated"), fill("untreated", date(2010, 3, 17)),
        person("young", birth=date(1944, 1, 16)), tumor("young", year=2010, month=1), *covered("young"),
        person("died_at_lm", birth=date(1940, 5, 1)), tumor("died_at_lm", year=2009, month=5), *covered("died_at_lm"),
        death("died_at_lm", date(2009, 7, 14)),
        person("resected", birth=date(1940, 5, 1)), tumor("resected", year=2009, month=5), *covered("resected"),
        px("resected", date(2009, 4, 15), "47120"),
    )
    result = evaluate(d, data)
    rows = by_person(result)
    assert sorted(rows) == ["treated", "untreated"]
    assert [a[3] for a in result.attrition] == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1]
    t = rows["treated"]
    assert (t["index_date"], t["arm"], t["first_exposure_date"], t["landmark_date"]) == (
        date(2009, 5, 15), "sorafenib", date(2009, 7, 14), date(2009, 7, 14))
    assert (t["followup_start"], t["followup_end"], t["event"], t["time_days"]) == (
        date(2009, 7, 14), date(2010, 5, 15), 1, 305)
    assert (t["age"], t["stage"], t["nci_index"], t["cirrhosis"], t["race"], t["in_landmark"]) == (
        69, "distant", 0.73803, 1, "white", 1)
    u = rows["untreated"]
    assert (u["arm"], u["first_exposure_date"], u["stage"], u["event"], u["followup_end"]) == (
        "untreated", None, "regional", 0, date(2013, 12, 31))
    assert list(t) == cohort_columns(d)


def test_shipped_second_line_tki_ici():
    d = load_definition(DEFS / "second_line_tki_ici.yaml")
    tki = dict(generic="LENVATINIB", ndc="62856071030")
    data = tables(
        sorafenib_patient("combo"), fill("combo", date(2010, 6, 1), **tki), px("combo", date(2010, 6, 20), "J9271"),
        sorafenib_patient("alone"), fill("alone", date(2010, 6, 1), **tki),
        sorafenib_patient("gap"), fill("gap", date(2010, 7, 9), **tki),    # sorafenib era ended 2010-05-09: 61 days
    )
    result = evaluate(d, data)
    rows = by_person(result)
    assert {p: (r["arm"], r["first_exposure_date"], r["prior_sorafenib_days"]) for p, r in rows.items()} == {
        "combo": ("tki_ici", date(2010, 6, 1), 70), "alone": ("tki", None, 70)}
    assert result.attrition[4] == (4, "Sorafenib era ended within 60 days before second line", 2, 1)


def test_shipped_sorafenib_bleeding_thromboembolism():
    d = load_definition(DEFS / "sorafenib_bleeding_thromboembolism.yaml")
    data = tables(
        sorafenib_patient("a", birth=date(1930, 1, 1)), dx("a", date(2010, 2, 1), "4011"),
        dx("a", date(2010, 4, 1), "4151"), death("a", date(2010, 5, 1)),
        sorafenib_patient("b"), dx("b", date(2010, 4, 1), "5780"),
        enroll("b", "hmo", date(2009, 6, 1), date(2009, 6, 1)),                 # not fee-for-service
    )
    result = evaluate(d, data)
    assert ids(result) == ["a"]
    a = result.cohort[0]
    # Era 2010-03-01..2010-05-09, + 30 → 2010-06-08; death 2010-05-01 comes first.
    assert (a["followup_end"], a["event"], a["time_days"]) == (date(2010, 5, 1), 1, 61)
    assert (a["venous_thromboembolism_event"], a["venous_thromboembolism_time_days"]) == (1, 31)
    assert (a["bleeding_event"], a["bleeding_time_days"], a["arterial_thromboembolism_event"]) == (2, 61, 2)
    assert (a["hypertension"], a["cv_risk_group"]) == (1, "intermediate")   # age 80, male, hypertension = 3


def test_shipped_sorafenib_duration_groups():
    d = load_definition(DEFS / "sorafenib_duration_groups.yaml")
    data = tables(
        sorafenib_patient("on"), fill("on", date(2010, 5, 20), 30),            # era to 2010-06-18 ≥ lm 2010-05-30
        sorafenib_patient("off"),                                              # era to 2010-05-09
        sorafenib_patient("died"), death("died", date(2010, 5, 30)),           # on the landmark day
    )
    result = evaluate(d, data)
    rows = by_person(result)
    assert {p: (r["arm"], r["first_exposure_date"], r["sorafenib_days"], r["landmark_date"]) for p, r in rows.items()} == {
        "on": ("continued", date(2010, 3, 1), 110, date(2010, 5, 30)),
        "off": ("stopped", None, 70, date(2010, 5, 30)),
    }
    assert result.attrition[6] == (6, "Alive at the 90-day landmark", 2, 1)
    assert len(result.attrition) == 8          # no implied step: the criteria keep the landmark in the study


def test_shipped_sorafenib_time_varying_response():
    d = load_definition(DEFS / "sorafenib_time_varying_response.yaml")
    data = tables(
        sorafenib_patient("a"), fill("a", date(2010, 6, 1), generic="regorafenib", ndc="50419017103"),
        px("a", date(2010, 7, 1), "J9299", setting="outpatient"), dx("a", date(2010, 8, 1), "5780", setting="inpatient"),
        death("a", date(2010, 9, 1)),
        sorafenib_patient("b"),
    )
    result = evaluate(d, data)
    assert ids(result) == ["a", "b"]
    a = [(r["start_day"], r["stop_day"], r["event"], r["second_line_tki"], r["second_line_ici"],
          r["gi_bleeding_hospitalisation"]) for r in result.events if r["person_id"] == "a"]
    assert a == [(0, 92, 0, 0, 0, 0), (92, 122, 0, 1, 0, 0), (122, 153, 0, 1, 1, 0), (153, 184, 1, 1, 1, 1)]
    b = [r for r in result.events if r["person_id"] == "b"]
    assert [(r["start_day"], r["stop_day"], r["event"]) for r in b] == [(0, (date(2019, 12, 31) - date(2010, 3, 1)).days, 0)]
    row = by_person(result)["a"]
    assert (row["landmark_30_date"], row["in_landmark_90"], row["nci_index"]) == (date(2010, 3, 31), 1, 0.73803)


@pytest.mark.parametrize("path", sorted(DEFS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_definition_runs(path):
    d = load_definition(path)
    data = tables(
        sorafenib_patient("s1"), tumor("s1", year=2009, month=3),
        sorafenib_patient("s2", birth=None), fill("s2", date(2010, 6, 1), generic="cabozantinib", ndc="42388002326"),
        person("empty"),
    )
    result = evaluate(d, data)
    assert result.attrition[0] == (0, "Persons in the data", 3, 0)
    assert len(result.attrition) >= len(d.criteria) + 1
    for row in result.cohort:
        assert list(row) == cohort_columns(d)
    assert (result.events is None) == (not d.time_varying)
