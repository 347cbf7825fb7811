"""Test patients ("assure"): every shipped definition's patients pass, failures and file errors read well."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from cohortlake.cli import main
from cohortlake.assure import (
    AssureFileError,
    EngineRows,
    compare,
    default_tests_path,
    engine_rows,
    load_suite,
    patient_rows,
)
from cohortlake.errors import UserError
from cohortlake.spec import load_definition

from paths import REPO
DEFS = REPO / "cohort_defs"
SHIPPED = sorted(p.name for p in DEFS.glob("*.yaml"))
HCC = DEFS / "hcc_sorafenib_landmark.yaml"


# ---------------------------------------------------------------------------------------
# Every shipped definition against its test patients (one engine run per definition)
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built(spark):
    """name → (suite, engine rows) of a shipped definition, each built once per module."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            definition = load_definition(DEFS / name)
            suite = load_suite(default_tests_path(DEFS / name), definition, definition_path=DEFS / name)
            cache[name] = (suite, engine_rows(spark, suite))
        return cache[name]

    return get


def test_every_shipped_definition_has_test_patients():
    assert SHIPPED, "no definitions found"
    for name in SHIPPED:
        assert (DEFS / "tests" / name).is_file(), f"cohort_defs/tests/{name} is missing"


@pytest.mark.spark
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_test_patients_pass(built, name):
    suite, rows = built(name)
    report = compare(suite, rows)
    assert report.passed, "\n" + report.render()
    # Every criterion has a patient excluded at it, and every arm an included patient.
    expected_steps = {p.expect.excluded_at for p in suite.patients if p.expect and not p.expect.included}
    arms = {p.expect.columns.get("arm") for p in suite.patients if p.expect and p.expect.included}
    washout = {c.name for c in suite.definition.criteria if c.kind == "washout"}
    index_kind = suite.definition.index.kind
    for criterion in suite.definition.criteria:
        if criterion.name in washout and index_kind == "exposure":
            continue  # the index is the first fill there is: nobody can have one before it
        assert criterion.name in expected_steps, f"no test patient excluded at '{criterion.name}'"
    for arm in suite.definition.arms:
        assert arm.name in arms, f"no included test patient in arm '{arm.name}'"


@pytest.mark.spark
def test_compiled_and_interpreted_builds_give_the_same_rows(built, spark, monkeypatch):
    """Test patients build interpreted (lake.session.size_conf); compiled, every row is the same."""
    import cohortlake.engine
    import cohortlake.lake.session as session

    suite, interpreted = built("sorafenib_time_varying_response.yaml")  # the module's build
    build, modes = cohortlake.engine.build_cohort, []

    class Seen(Exception):
        pass

    def spy(*args, **kwargs):
        modes.append(spark.conf.get("spark.sql.codegen.factoryMode", None))
        if len(modes) == 1:
            raise Seen  # the settings the module's build had; no need to build again
        return build(*args, **kwargs)

    monkeypatch.setattr(cohortlake.engine, "build_cohort", spy)
    before = {key: spark.conf.get(key, None) for key in session.INTERPRETED_CONF}
    with pytest.raises(Seen):
        engine_rows(spark, suite)
    monkeypatch.setattr(session, "BUILD_INTERPRETED_BELOW_ROWS", 0)
    compiled = engine_rows(spark, suite)
    assert modes[0] == "NO_CODEGEN" and modes[1] != "NO_CODEGEN", modes
    assert {key: spark.conf.get(key, None) for key in session.INTERPRETED_CONF} == before
    assert interpreted.events, "the time-varying rows are part of what is compared"

    def row_key(row):
        return sorted((k, repr(v)) for k, v in row.items())

    for part in ("cohort", "flags", "events"):
        assert sorted(getattr(compiled, part), key=row_key) == sorted(getattr(interpreted, part), key=row_key), part
    assert compiled.steps == interpreted.steps


@pytest.mark.spark
def test_assure_command_exit_codes_and_lines(built, tmp_path, capsys, monkeypatch):
    import cohortlake.assure.run as assure

    definition = DEFS / "sorafenib_time_varying_response.yaml"
    shipped, rows = built(definition.name)
    # The command's own path (files, Spark session, report, exit code) with the build the
    # parametrized test already ran for these same patients.
    monkeypatch.setattr(assure, "engine_rows", lambda spark, suite: rows)
    assert main(["assure", str(definition)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out[:-1]] == [["PASS", p.id] for p in shipped.patients]
    assert out[-1].endswith(f"{len(shipped.patients)} test patients, all pass")

    text = default_tests_path(definition).read_text(encoding="utf-8")
    assert text.count("      time_days: 183\n") == 1
    text = text.replace("      time_days: 183\n", "      time_days: 184\n")
    text = text.replace("definition: ../sorafenib_time_varying_response.yaml", f"definition: {definition}")
    assert main(["assure", str(definition), "--tests", str(_write(tmp_path, text))]) == 1
    out = capsys.readouterr().out.splitlines()
    fails = [line for line in out if line.startswith("FAIL")]
    assert len(fails) == 1 and fails[0].split()[:2] == ["FAIL", "no_switch"], out
    assert fails[0].endswith("No second line, no bleeding; one row from day 0 to death on day 183"
                             "  ->  time_days: expected 184, got 183")
    assert out[-1].endswith(f"{len(shipped.patients)} test patients, 1 failed")


# ---------------------------------------------------------------------------------------
# A wrong expectation is a FAIL naming the patient, the field, expected and actual
# ---------------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "patients.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.spark
def test_wrong_expectations_are_reported_per_patient(built, tmp_path):
    shipped, rows = built(HCC.name)
    text = (DEFS / "tests" / HCC.name).read_text(encoding="utf-8")
    text = text.replace("definition: ../hcc_sorafenib_landmark.yaml", f"definition: {HCC}")

    def change(old: str, new: str) -> None:
        nonlocal text
        assert text.count(old) == 1, old
        text = text.replace(old, new)

    # diagnosed_december_2011 really has time_days 109; part_d_gap_month_0 leaves at Part D.
    change("time_days: 109, age: 76", "time_days: 108, age: 76")
    change("""    description: No Part D in 2009-03 (month 0)
    like: base
    set:
      enrollment:
        - {coverage: [part_a, part_b], start: 2007-01-01, end: 2013-12-31}
        - {coverage: part_d, start: 2007-01-01, end: 2009-02-28}
        - {coverage: part_d, start: 2009-04-01, end: 2013-12-31}
    expect: {excluded_at: Part D}""", """    description: No Part D in 2009-03 (month 0)
    like: base
    set:
      enrollment:
        - {coverage: [part_a, part_b], start: 2007-01-01, end: 2013-12-31}
        - {coverage: part_d, start: 2007-01-01, end: 2009-02-28}
        - {coverage: part_d, start: 2009-04-01, end: 2013-12-31}
    expect: {included: true, arm: untreated}""")
    change("expect: {included: true, arm: sorafenib, first_exposure_date: 2009-05-14,",
           "expect: {included: true, arm: untreated, first_exposure_date: 2009-05-15,")
    suite = load_suite(_write(tmp_path, text))
    assert suite.tables() == shipped.tables()  # same patients, so the same build applies

    report = compare(suite, rows)
    assert not report.passed
    failures = {r.id: r.differences for r in report.failures}
    assert failures == {
        "diagnosed_december_2011": ["time_days: expected 108, got 109"],
        "part_d_gap_month_0": ["included: expected included, got excluded at 'Part D'"],
        "sorafenib_fill_day_60": ["arm: expected 'untreated', got 'sorafenib'",
                                  "first_exposure_date: expected 2009-05-15, got 2009-05-14"],
    }
    lines = report.render().splitlines()
    fail = next(line for line in lines if line.startswith("FAIL  diagnosed_december_2011"))
    assert "Last month of the period" in fail and "time_days: expected 108, got 109" in fail
    assert sum(line.startswith("PASS") for line in lines) == len(suite.patients) - 3
    assert lines[-1].endswith(f"{len(suite.patients)} test patients, 3 failed")


def test_comparison_of_excluded_and_missing_people(tmp_path):
    """No Spark: plain engine rows; a person absent from the flags has no index (step 1)."""
    suite = load_suite(_write(tmp_path, _MINIMAL.format(definition=HCC)), load_definition(HCC))
    rows = EngineRows(
        cohort=[{"person_id": "in_cohort", "index_date": date(2009, 3, 15), "arm": "untreated", "time_days": 251}],
        flags=[{"person_id": "in_cohort", "index_date": date(2009, 3, 15), "step_1": True, "step_2": True},
               {"person_id": "out_at_2", "index_date": date(2009, 3, 15), "step_1": True, "step_2": False}],
        events=None,
        steps={0: "Population", 1: "HCC tumor", 2: "First primary"},
    )
    results = {r.id: r for r in compare(suite, rows).results}
    assert results["in_cohort"].passed
    assert results["out_at_2"].passed
    assert results["no_index"].passed
    assert results["wrongly_in"].differences == ["included: expected included, got excluded at 'HCC tumor'"]


_MINIMAL = """\
definition: {definition}
templates:
  base:
    person: {{birth_date: 1935-06-01, sex: male, race: white}}
patients:
  - {{id: in_cohort, like: base, expect: {{included: true, arm: untreated, time_days: 251}}}}
  - {{id: out_at_2, like: base, expect: {{excluded_at: First primary}}}}
  - {{id: no_index, like: base, expect: {{excluded_at: HCC tumor}}}}
  - {{id: wrongly_in, like: base, expect: {{included: true}}}}
"""


def test_rows_compare_episode_by_episode(tmp_path):
    """`rows:` for an `each` index: every episode matched by index date."""
    definition = _write(tmp_path, """\
cohort: each_visit
title: Every HCC claim is an episode
study_period: {start: 2008-01-01, end: 2013-12-31}
codesets:
  hcc: {icd9cm: ["155.0"]}
index:
  event: {codesets: [hcc], tables: [diagnosis], occurrence: each}
criteria:
  - {name: HCC claim, index_exists: {}}
  - {name: Age 66+, age: {at: index, min: 66}}
followup: {start: index, end: [death, study_end]}
""", "each_visit.yaml")
    tests = _write(tmp_path, """\
patients:
  - id: two_visits
    person: {birth_date: 1943-03-15, sex: male, race: white}
    diagnoses: [{date: 2009-03-14, code: "155.0"}, {date: 2009-03-15, code: "155.0"}]
    expect:
      rows:
        - {index_date: 2009-03-14, excluded_at: Age 66+}
        - {index_date: 2009-03-15, included: true, time_days: 10}
""", "tests_each.yaml")
    suite = load_suite(tests, load_definition(definition))
    assert [r.index_date for r in suite.patients[0].rows] == [date(2009, 3, 14), date(2009, 3, 15)]
    flags = [{"person_id": "two_visits", "index_date": date(2009, 3, 14), "step_1": True, "step_2": False},
             {"person_id": "two_visits", "index_date": date(2009, 3, 15), "step_1": True, "step_2": True}]
    cohort = [{"person_id": "two_visits", "index_date": date(2009, 3, 15), "time_days": 11}]
    report = compare(suite, EngineRows(cohort, flags, None, {1: "HCC claim", 2: "Age 66+"}))
    assert report.failures[0].differences == ["episode 2009-03-15: time_days: expected 10, got 11"]


# ---------------------------------------------------------------------------------------
# Loader errors: file:line: field: what is wrong
# ---------------------------------------------------------------------------------------

BASE = """\
definition: {definition}
templates:
  base:
    person: {{birth_date: 1935-06-01, sex: male, race: white}}
    tumors:
      - {{sequence_number: "00", diagnosis_year: 2009, diagnosis_month: 3, primary_site: C22.0, histology: "8170",
         behavior: malignant, historic_stage: distant, reporting_source: hospital_inpatient}}
    enrollment: [{{coverage: [part_a, part_b, part_d], start: 2007-01-01, end: 2013-12-31}}]
patients:
"""


def _problems(tmp_path: Path, patients: str) -> list[str]:
    path = _write(tmp_path, BASE.format(definition=HCC) + patients)
    with pytest.raises(AssureFileError) as error:
        load_suite(path)
    lines = str(error.value).splitlines()
    for line in lines:
        assert re.match(rf"{re.escape(str(path))}:\d+: ", line), line
    return [line.removeprefix(f"{path}:") for line in lines]


def test_a_valid_file_loads_and_becomes_canonical_rows(tmp_path):
    path = _write(tmp_path, BASE.format(definition=HCC) + """\
  - id: p1
    description: ok
    like: base
    add:
      diagnoses: [{date: 2009-03-01, code: "571.5"}, {date: 2016-01-01, code: "K74.60", setting: inpatient}]
      procedures: [{date: 2009-03-20, code: "47120"}, {date: 2009-03-21, code: "50.22", setting: inpatient}]
      fills: [{date: 2009-03-20, ndc: "50419-488-58", generic_name: SORAFENIB}]
      enrollment: [{coverage: hmo, start: 2008-01-01, end: 2008-01-31}]
    set: {death: 2010-01-20}
    expect: {excluded_at: HCC tumor}
""")
    suite = load_suite(path)
    rows = patient_rows(suite.patients[0])
    assert rows["person"] == [{"person_id": "p1", "birth_date": date(1935, 6, 1), "sex": "male", "race": "white"}]
    assert rows["death"] == [{"person_id": "p1", "death_date": date(2010, 1, 20), "source": "test", "precision": "day"}]
    assert [(r["coverage"], r["start_date"], r["end_date"]) for r in rows["enrollment"]] == [
        ("part_a", date(2007, 1, 1), date(2013, 12, 31)), ("part_b", date(2007, 1, 1), date(2013, 12, 31)),
        ("part_d", date(2007, 1, 1), date(2013, 12, 31)), ("hmo", date(2008, 1, 1), date(2008, 1, 31))]
    tumor = rows["tumor"][0]
    assert (tumor["primary_site"], tumor["histology"], tumor["behavior"], tumor["historic_stage"],
            tumor["reporting_source"], tumor["death_year"]) == ("C220", "8170", "3", "4", "1", None)
    assert [(r["code"], r["code_system"], r["setting"]) for r in rows["diagnosis"]] == [
        ("5715", "icd9cm", "carrier"), ("K7460", "icd10cm", "inpatient")]
    assert [(r["code"], r["code_system"]) for r in rows["procedure"]] == [("47120", "hcpcs"), ("5022", "icd9pcs")]
    assert rows["dispensing"][0]["ndc"] == "50419048858" and rows["dispensing"][0]["days_supply"] is None
    claims = [(r["source_table"], r["claim_id"], r["source_column"]) for r in rows["diagnosis"] + rows["procedure"]]
    assert len(set(claims)) == len(claims)


def test_unknown_keys_name_file_and_line(tmp_path):
    problems = _problems(tmp_path, """\
  - id: p1
    like: base
    expct: {excluded_at: HCC tumor}
  - id: p2
    like: base
    add: {fils: []}
    expect: {excluded_at: HCC tumor}
""")
    assert problems[0].startswith("10: patients.0: the patient needs expect: {excluded_at: ...}")
    assert problems[1].startswith("12: patients.0.expct: unknown key 'expct'; allowed: id, description, like")
    assert problems[2].startswith("15: patients.1.add.fils: unknown key 'fils'; allowed: tumors, enrollment")
    assert len(problems) == 3


def test_unknown_criterion_and_column_in_expect(tmp_path):
    problems = _problems(tmp_path, """\
  - id: p1
    like: base
    expect: {excluded_at: Age 65+}
  - id: p2
    like: base
    expect: {included: true, time_day: 3, arm: treated}
""")
    assert problems[0].startswith("12: patients.0.expect.excluded_at: 'Age 65+' is not an attrition step of this "
                                  "definition; use one of: HCC tumor; First primary;")
    assert problems[1].startswith("15: patients.1.expect.time_day: unknown column 'time_day'; the cohort has: "
                                  "index_date, landmark_date")
    assert problems[2] == "15: patients.1.expect.arm: 'treated' is not allowed; use one of: sorafenib, untreated"


def test_bad_dates_name_their_line(tmp_path):
    problems = _problems(tmp_path, """\
  - id: p1
    like: base
    set: {death: "2009-02-30"}
    expect: {excluded_at: HCC tumor}
  - id: p2
    like: base
    add: {fills: [{date: 2009/03/01, ndc: "50419-488-58"}]}
    expect: {included: true, followup_end: March 2010}
""")
    assert problems == [
        "12: patients.0.set.death: '2009-02-30' is not a real date (day is out of range for month)",
        "16: patients.1.add.fills.0.date: expected a date written YYYY-MM-DD, got str '2009/03/01'",
        "17: patients.1.expect.followup_end: expected a date written YYYY-MM-DD, got str 'March 2010'",
    ]
    path = _write(tmp_path, BASE.format(definition=HCC) + """\
  - id: p1
    like: base
    set: {death: 2009-02-30}
    expect: {excluded_at: HCC tumor}
""", "unquoted.yaml")
    with pytest.raises(AssureFileError, match=rf"^{re.escape(str(path))}:12: '2009-02-30' is not a real date"):
        load_suite(path)


def test_timeline_mistakes(tmp_path):
    problems = _problems(tmp_path, """\
  - id: p1
    like: basis
    expect: {excluded_at: HCC tumor}
  - id: p1
    person: {birth_date: 1935-06-01, sex: man, race: white}
    tumors: [{sequence_number: 0, histology: 8170, historic_stage: far}]
    diagnoses: [{date: 2009-03-01, code: "57.15"}, {date: 2009-03-02, code: "070.2x"}]
    expect: {excluded_at: HCC tumor}
  - id: p3
    set: {death: 2010-01-01}
    expect: {included: true, excluded_at: HCC tumor}
""")
    text = "\n".join(problems)
    assert "11: patients.0.like: unknown template 'basis'; defined: base" in text
    assert "13: patients.1.id: id 'p1' is already used by the patient at line 10" in text
    assert "14: patients.1.person.sex: 'man' is not allowed; use one of: male, female, unknown" in text
    assert "15: patients.1.tumors.0.sequence_number: expected two digits in quotes such as '00', got int 0" in text
    assert "15: patients.1.tumors.0.histology: expected a four-digit ICD-O-3 histology in quotes" in text
    assert "15: patients.1.tumors.0.historic_stage: 'far' is not allowed; use one of: in_situ, localized" in text
    assert "16: patients.1.diagnoses.0.code: '57.15' does not fit icd9cm: misplaced dot" in text
    assert "16: patients.1.diagnoses.1.code: '070.2x' is a prefix of icd9cm codes; a claim row holds one exact code" in text
    assert "19: patients.2.set: set: changes a template; give like: <template name> first" in text
    assert "20: patients.2.expect: give exactly one of excluded_at: <criterion name>, included: true" in text


def test_events_and_rows_need_a_definition_that_has_them(tmp_path):
    problems = _problems(tmp_path, """\
  - id: p1
    like: base
    expect: {included: true, events: [{start_day: 0, stop_day: 3, event: 1}]}
  - id: p2
    like: base
    expect: {rows: [{index_date: 2009-03-15, included: true}]}
""")
    assert problems == [
        "12: patients.0.expect.events: this definition has no time_varying covariates, so it has no events rows",
        "15: patients.1.expect.rows: rows: is for definitions whose index is `occurrence: each`; this one has one "
        "episode per person: write excluded_at or included: true directly",
    ]


def test_tests_file_must_match_the_definition(tmp_path):
    path = _write(tmp_path, BASE.format(definition=HCC) + "  - {id: p1, like: base, expect: {excluded_at: HCC tumor}}\n")
    other = DEFS / "second_line_tki_ici.yaml"
    with pytest.raises(AssureFileError, match=r":1: definition: this file tests .*hcc_sorafenib_landmark.yaml, not "):
        load_suite(path, definition_path=other)
    with pytest.raises(UserError, match="no test patients for"):
        from cohortlake.assure import run_assure

        run_assure(None, tmp_path / "nothing.yaml")


def test_assure_command_reports_file_errors_without_spark(tmp_path, capsys):
    path = _write(tmp_path, BASE.format(definition=HCC) + "  - {id: p1, like: base, expect: {excluded_at: Age 65}}\n")
    assert main(["assure", str(HCC), "--tests", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"cohortlake assure: error: {path}:10: patients.0.expect.excluded_at: 'Age 65' is not")


def test_templates_build_on_each_other_without_cycles(tmp_path):
    path = _write(tmp_path, f"""\
definition: {HCC}
templates:
  person_only:
    person: {{birth_date: 1935-06-01, sex: male, race: white}}
  with_death: {{like: person_only, set: {{death: 2010-01-20}}}}
  loop_a: {{like: loop_b}}
  loop_b: {{like: loop_a}}
patients:
  - {{id: p1, like: with_death, add: {{fills: [{{date: 2009-03-20, ndc: "50419048858"}}]}}, expect: {{excluded_at: HCC tumor}}}}
""")
    with pytest.raises(AssureFileError) as error:
        load_suite(path)
    assert str(error.value) == (f"{path}:6: templates.loop_a.like: templates start from each other in a circle: "
                                "loop_a → loop_b → loop_a")
    text = path.read_text().replace("  loop_a: {like: loop_b}\n  loop_b: {like: loop_a}\n", "")
    suite = load_suite(_write(tmp_path, text, "no_loop.yaml"))
    timeline = suite.patients[0].timeline
    assert timeline["death"] == date(2010, 1, 20) and timeline["person"]["sex"] == "male"
    assert [fill["ndc"] for fill in timeline["fills"]] == ["50419048858"]


@pytest.mark.spark
@pytest.mark.slow
def test_init_scaffold_passes_assure(tmp_path, capsys, spark):
    from cohortlake.assure import load_suite, run_suite

    main(["init", "liver_first", "--dir", str(tmp_path)])
    report = run_suite(spark, load_suite(tmp_path / "tests" / "liver_first.yaml"))
    assert report.passed, report.render()
