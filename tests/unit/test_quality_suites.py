"""The suite files themselves (no Spark): they load, agree with the mappings, and their
format rules accept exactly what ingest's typing accepts."""

from __future__ import annotations

import json
import re

import pytest

from cohortlake.errors import UserError
from cohortlake.quality.suites import (
    STAGES, definition_expectations, cohort_parameters, load_suites, read_suite, suites_dir,
)
from cohortlake.sources.mapping import load_mapping
from cohortlake.spec import load_definition

SUITES = load_suites()


def suite_regex(suite_name: str, column: str, word: str) -> re.Pattern:
    for e in SUITES[suite_name].expectations:
        if e["type"] == "expect_column_values_to_match_regex" and e["kwargs"]["column"] == column and word in e.get("notes", ""):
            return re.compile(e["kwargs"]["regex"])
    raise AssertionError(f"{suite_name} has no {word!r} rule on {column}")


def test_every_file_is_a_gx_suite_with_stage_table_and_severity():
    import great_expectations as gx

    assert len(SUITES) == len(list(suites_dir().glob("*.json")))
    assert {s.stage for s in SUITES.values()} == set(STAGES)
    for suite in SUITES.values():
        # GX itself reads each file (the format is GX 1.x, not ours)
        data = json.loads(open(suite.path).read())
        gx_suite = gx.ExpectationSuite(name=data["name"], expectations=data["expectations"])
        assert len(gx_suite.expectations) == len(data["expectations"]), suite.name
        assert all(e.get("severity") in ("critical", "warning") for e in suite.expectations), suite.name


@pytest.mark.parametrize("layout", ["seer-medicare", "desynpuf"])
def test_bronze_suites_cover_every_raw_table_key_and_typed_column(layout):
    mapping = load_mapping(layout)
    for table, spec in mapping.raw.items():
        suite = SUITES[f"bronze.{layout}.{table}"]
        assert suite.table == f"bronze/{table}" and suite.layout == layout
        not_null = {e["kwargs"]["column"] for e in suite.expectations if e["type"] == "expect_column_values_to_not_be_null"}
        assert set(spec.key + spec.not_null) <= not_null, table
        typed = {e["kwargs"]["column"] for e in suite.expectations
                 if e["type"] == "expect_column_values_to_match_regex" and "quarantines" in e.get("notes", "")}
        assert set(spec.column_types()) == typed, table
        required, _ = mapping.columns_used(table)
        exist = {e["kwargs"]["column"] for e in suite.expectations if e["type"] == "expect_column_to_exist"}
        assert exist == required, table


DATES = {
    "20080101": True, "20081231": True, " 20100615 ": True, "20080229": True, "20000229": True,
    "20080231": False, "20090229": False, "19000229": False, "20081301": False, "20080100": False,
    "2008-01-01": False, "2008011": False, "200801011": False, "abcdefgh": False, "20080431": False,
    "20080430": True, "": True, "   ": True,  # blank is missing, not malformed (as ingest treats it)
}


def test_date_rule_accepts_exactly_the_calendar_dates_ingest_parses():
    import datetime as dt

    rule = suite_regex("bronze.seer-medicare.pde", "SRVC_DT", "calendar date")
    for text, expected in DATES.items():
        assert bool(rule.match(text)) is expected, text
        stripped = text.strip()
        if stripped and re.fullmatch(r"[0-9]{8}", stripped):
            try:
                dt.datetime.strptime(stripped, "%Y%m%d")
                parses = True
            except ValueError:
                parses = False
            assert parses is expected, text


def test_number_days_and_code_rules():
    number = suite_regex("bronze.seer-medicare.pde", "QTY_DSPNSD_NUM", "a number")
    assert all(number.match(t) for t in ["30", "30.5", ".5", "+2", "-1", " 7 "])
    assert not any(number.match(t) for t in ["3O", "1,000", "1e5", "30 tablets"])
    days = suite_regex("bronze.seer-medicare.pde", "DAYS_SUPLY_NUM", "between 1 and 365")
    assert [bool(days.match(t)) for t in ["1", "30", "90", "365", "366", "0", "400", "-5"]] == [True] * 4 + [False] * 4
    ndc = suite_regex("bronze.seer-medicare.pde", "PROD_SRVC_ID", "11-digit NDC")
    assert ndc.match("50419048858") and not ndc.match("50419-0488-58") and not ndc.match("5041904885")
    dx = suite_regex("bronze.seer-medicare.medpar", "DGNS_1_CD", "diagnosis code")
    assert all(dx.match(t) for t in ["1550", "V5811", "E8497", "C220", "K7031", "Z515 "])
    assert not any(dx.match(t) for t in ["155.0", "U071", "12", "C22.0"])
    hcpcs = suite_regex("bronze.seer-medicare.nch_line", "HCPCS_CD", "CPT")
    assert all(hcpcs.match(t) for t in ["99213", "J9999", "0001F", "37243"])
    assert not any(hcpcs.match(t) for t in ["9921", "J99999", "992135"])


def test_bad_suite_files_name_file_and_place(tmp_path):
    bad_json = tmp_path / "a.json"
    bad_json.write_text('{"name": "x",\n "expectations": [}\n')
    with pytest.raises(UserError, match=r"a\.json: line 2: not valid JSON"):
        read_suite(bad_json)
    bad_severity = tmp_path / "b.json"
    bad_severity.write_text(json.dumps({"name": "b", "meta": {"cohortlake": {"stage": "silver", "table": "silver/person"}},
                                        "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "x"},
                                                          "severity": "fatal"}]}))
    with pytest.raises(UserError, match=r"b\.json: expectations\[0\]\.severity: expected one of critical, warning, info, found 'fatal'"):
        read_suite(bad_severity)
    no_stage = tmp_path / "c.json"
    no_stage.write_text(json.dumps({"name": "c", "expectations": []}))
    with pytest.raises(UserError, match=r"c\.json: meta\.cohortlake\.stage: expected one of bronze, silver, cohort, matched"):
        read_suite(no_stage)


def test_definition_expectations_and_parameters():
    definition = load_definition("cohort_defs/sorafenib_bleeding_thromboembolism.yaml")
    rules = definition_expectations(definition)
    assert [(r["type"], r["kwargs"], r["severity"]) for r in rules] == [
        ("expect_column_mean_to_be_between", {"column": "hypertension", "min_value": 0.3, "max_value": 0.95}, "warning"),
        ("expect_column_values_to_not_be_null", {"column": "age"}, "warning"),
    ]
    reference = load_definition("cohort_defs/hcc_sorafenib_landmark.yaml")
    params = cohort_parameters(reference)
    assert params["arms"] == ["sorafenib", "untreated"]
    assert params["study_start"] < params["study_end"]


CODE_SAMPLES = {
    "diagnosis": ("DGNS_1_CD", "bronze.seer-medicare.medpar",
                  ["1550", "V5811", "E8497", "C220", "K7031", "Z515", "U071", "12", "E8781X", "49121"]),
    "procedure": ("SRGCL_PRCDR_1_CD", "bronze.seer-medicare.medpar",
                  ["5022", "99", "0DTJ0ZZ", "E8781", "V5866", "49121", "1", "0DTJ0Z"]),
    "hcpcs": ("HCPCS_CD", "bronze.seer-medicare.nch_line", ["99213", "J9999", "0001F", "9921", "J99999", "W1234"]),
    "ndc": ("PROD_SRVC_ID", "bronze.seer-medicare.pde", ["50419048858", "5041904885", "504190488580", "ABCDEFGHIJK"]),
}


@pytest.mark.parametrize("kind", sorted(CODE_SAMPLES))
def test_code_rules_are_warnings_and_say_what_ingest_sets_aside(kind):
    """The suites' code rules warn on exactly the codes ingest sets aside (mapper.CODE_FORMATS)."""
    from cohortlake.sources.mapper import CODE_FORMATS

    column, suite_name, samples = CODE_SAMPLES[kind]
    rule = next(e for e in SUITES[suite_name].expectations
                if e["type"] == "expect_column_values_to_match_regex" and e["kwargs"]["column"] == column
                and "should be" in e.get("notes", ""))
    assert rule["severity"] == "warning" and "mostly" not in rule["kwargs"]
    ingest_pattern = re.compile(CODE_FORMATS[kind][0])
    for value in samples:
        assert bool(re.match(rule["kwargs"]["regex"], value)) is bool(ingest_pattern.match(value)), (kind, value)


def test_every_bronze_suite_states_what_is_critical_and_what_warns():
    for suite in SUITES.values():
        if suite.stage == "bronze":
            assert "critical: the delivery cannot be trusted" in suite.notes and "warning:" in suite.notes, suite.name
            corrupt = [e for e in suite.expectations if e["kwargs"].get("column") == "_corrupt_record"]
            assert corrupt and corrupt[0]["severity"] == "critical" and "record length" in corrupt[0]["notes"]
