"""Quality gates on Spark: every suite fails on tables crafted to break each of its critical
expectations and passes on clean synthetic data; quarantine and validation counts agree;
corrupted raw files stop at the bronze gate; Data Docs render in a browser."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cohortlake.lake.delta import Lakehouse
from cohortlake.quality.gates import cohort_quality
from cohortlake.quality.run import QualityGateError, QualityRunner, Target
from cohortlake.quality.suites import SuiteFile, load_suites
from cohortlake.spec import load_definition

REFERENCE = "cohort_defs/hcc_sorafenib_landmark.yaml"
SUITES = load_suites()
BAD = "#bad#"
UNIQUE = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


def critical(suite):
    return [e for e in suite.expectations if e.get("severity", "critical") == "critical"]


def label(e) -> str:
    kwargs = e["kwargs"]
    column = kwargs.get("column") or (", ".join(kwargs["column_list"]) if "column_list" in kwargs else None)
    if column is None and "column_A" in kwargs:
        column = f"{kwargs['column_A']}, {kwargs['column_B']}"
    return f"{e['type']}({column or e.get('description') or kwargs.get('description')})"


def _resolve(value, params):
    return params[value["$PARAMETER"]] if isinstance(value, dict) else value


def bad_value(e, row, original, dtype: str, params):
    """A value that breaks expectation ``e`` in this row (None when no value can)."""
    kind, kwargs = e["type"], e["kwargs"]
    numeric = dtype in ("int", "bigint", "double", "float", "smallint")
    if kind == "expect_column_values_to_not_be_null":
        return None
    if kind in ("expect_column_values_to_be_null", "expect_column_values_to_match_regex"):
        return BAD
    if kind == "expect_column_values_to_be_in_set":
        return 987 if numeric else BAD
    if kind == "expect_column_values_to_be_between":
        low = _resolve(kwargs.get("min_value"), params)
        high = _resolve(kwargs.get("max_value"), params)
        if dtype == "date":
            return dt.date.fromisoformat(low) - dt.timedelta(days=3650) if low else dt.date.fromisoformat(high) + dt.timedelta(days=3650)
        return low - 1000 if low is not None else high + 1000
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        b = row[kwargs["column_B"]] if row[kwargs["column_B"]] is not None else original[kwargs["column_B"]]
        return b - (dt.timedelta(days=1) if isinstance(b, dt.date) else 1)
    if kind in UNIQUE:
        return row[kwargs["column"]]  # broken by repeating every row
    raise AssertionError(f"no crafted value for {kind}")


def crafted_rows(rows, types: dict[str, str], suite, params, special=None):
    """Rows in which every critical column expectation of ``suite`` fails.

    A column with k critical expectations has its rows split into k blocks, one broken per
    expectation, so each sees a share of bad rows far above any ``mostly``.
    """
    per_column: dict[str, list] = {}
    for e in critical(suite):
        kwargs = e["kwargs"]
        column = kwargs.get("column") or kwargs.get("column_A")
        if e["type"] == "expect_column_to_exist" or column is None:
            continue
        per_column.setdefault(column, []).append(e)
    out = [dict(r) for r in rows]
    for column, rules in per_column.items():
        for i, row in enumerate(out):
            rule = rules[i % len(rules)]
            row[column] = bad_value(rule, row, rows[i], types[column], params)
            other = rule["kwargs"].get("column_B")
            if other and row[other] is None:  # a pair with an empty side is skipped, so give it back
                row[other] = rows[i][other]
    if special:
        for i, row in enumerate(out):
            if i % 4 == 1:  # leaves some rows of every block above broken as they are
                special(row, rows[i])
    if any(e["type"] in UNIQUE for e in critical(suite)) or special is not None:
        out = out + [dict(r) for r in out]  # every key twice, every span overlapping itself
    return out


def write_rows(lake, name, rows, schema):
    lake.write(name, lake.spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema))


def assert_every_critical_failed(report, suites):
    """Each suite's critical expectations all failed (over its runs: crafted values, missing columns)."""
    failed: dict[str, set] = {}
    for run in report.runs:
        failed.setdefault(run.suite.removesuffix(".columns"), set()).update(o.label for o in run.critical_failures)
    for suite in suites:
        expected = {label(e) for e in critical(suite)}
        assert expected <= failed[suite.name], (suite.name, sorted(expected - failed[suite.name]))
    # what the user reads: the report lines name each one with its failing count
    text = "\n".join(report.lines())
    for run, outcome in report.critical_failures:
        assert f"critical: {run.suite}: {outcome.label}: " in text


@pytest.fixture(scope="module")
def quality_lake(spark, demo_run, tmp_path_factory):
    """A scratch lake for crafted tables, with the demo lake as the source of clean rows."""
    source = Lakehouse(str(demo_run[0]), spark)
    scratch = Lakehouse(str(tmp_path_factory.mktemp("quality") / "lake"), spark)
    return source, scratch


def _crafted_stage(source, scratch, suites, params=None, special=None, views=None):
    """Write one crafted table per suite plus one without the required columns; run them all."""
    params = params or {}
    targets = []
    for suite in suites:
        clean = source.read(suite.table).limit(12)
        schema = clean.schema
        types = {f.name: f.dataType.simpleString() for f in schema.fields}
        rows = [r.asDict() for r in clean.collect()]
        assert rows, suite.table
        table = suite.table
        write_rows(scratch, table, crafted_rows(rows, types, suite, params, (special or {}).get(suite.name)), schema)
        targets.append(Target(suite, table, params, views or {}))
        exist = [e for e in suite.expectations if e["type"] == "expect_column_to_exist"]
        if exist:
            missing = [e["kwargs"]["column"] for e in exist]
            scratch.write(f"{table}_missing_columns", source.read(suite.table).limit(3).drop(*missing))
            only_exist = SuiteFile(f"{suite.name}.columns", suite.stage, f"{table}_missing_columns", exist, suite.path)
            targets.append(Target(only_exist, f"{table}_missing_columns"))
    # one pass with counts (everything fails here, so a second pass for examples would double the time)
    report = QualityRunner(scratch, counts=True, examples=False).validate(suites[0].stage, targets, gate=False)
    assert_every_critical_failed(report, suites)
    assert not report.passed
    return report


def test_clean_synthetic_data_passes_every_gate(demo_run):
    lake, log = demo_run
    assert "quality gate 'bronze': passed" in log
    assert "quality gate 'silver': passed" in log
    assert "quality gate 'cohort': passed" in log
    assert f"Data Docs: {lake}/_quality/docs/index.html" in log
    assert (lake / "_quality" / "docs" / "index.html").is_file()


def test_bronze_suites_fail_on_crafted_tables(quality_lake):
    source, scratch = quality_lake
    suites = [s for s in SUITES.values() if s.stage == "bronze" and s.layout == "seer-medicare"]
    _crafted_stage(source, scratch, suites)


def test_desynpuf_bronze_suites_pass_on_real_files_and_fail_on_crafted(desynpuf_lake, tmp_path):
    assert [q.stage for q in desynpuf_lake.report.quality] == ["bronze", "silver"]
    assert all(q.passed for q in desynpuf_lake.report.quality)
    scratch = Lakehouse(str(tmp_path / "lake"), desynpuf_lake.spark)
    suites = [s for s in SUITES.values() if s.stage == "bronze" and s.layout == "desynpuf"]
    _crafted_stage(desynpuf_lake, scratch, suites)


def test_silver_suites_fail_on_crafted_tables(quality_lake):
    source, scratch = quality_lake

    def code_system_after_switch(system):
        def mutate(row, original):
            row["date"], row["code_system"] = dt.date(2020, 1, 1), system
        return mutate

    def span_as_delivered(row, original):  # with the table repeated, each such span overlaps its copy
        row.update({c: original[c] for c in ("person_id", "coverage", "start_date", "end_date")})

    special = {"silver.diagnosis": code_system_after_switch("icd9cm"),
               "silver.procedure": code_system_after_switch("icd9pcs"),
               "silver.enrollment": span_as_delivered}
    scratch.write("silver/person", source.read("silver/person"))
    suites = [s for s in SUITES.values() if s.stage == "silver" and s.name != "silver.person_year"]
    _crafted_stage(source, scratch, suites, special=special, views={"silver_person": "silver/person"})


def test_cohort_suite_fails_on_crafted_cohort_and_attrition(quality_lake, spark):
    source, scratch = quality_lake
    definition = load_definition(REFERENCE)
    params = cohort_quality(definition)["parameters"]
    name = f"cohorts/{definition.cohort}"
    cohort_suite = SUITES["cohort.cohort"].for_table(f"{name}/cohort")
    _crafted_stage(source, scratch, [cohort_suite], params=params)
    attrition = source.read(f"{name}/attrition")
    rows = [(0, "Persons in the data", 100, 0), (1, "a", 120, 5), (2, "b", 50, 70)]
    scratch.write(f"{name}/attrition", spark.createDataFrame(rows, attrition.schema))
    suite = SUITES["cohort.attrition"].for_table(f"{name}/attrition")
    report = QualityRunner(scratch).validate("cohort", [Target(suite, f"{name}/attrition", params,
                                                               {"cohort_rows": f"{name}/cohort"})], gate=False)
    assert_every_critical_failed(report, [suite])


def test_matched_suites_fail_on_crafted_tables(spark, tmp_path):
    lake = Lakehouse(str(tmp_path / "lake"), spark)
    good = [("p1", "treated", "m1", 0.4, 10, 1), ("p2", "comparator", "m1", 0.45, 20, 0)]
    columns = "person_id string, arm string, match_id string, ps double, time_days int, event int"
    lake.write("matched/x/dataset", spark.createDataFrame(good, columns))
    suite = SUITES["matched.dataset"].for_table("matched/x/dataset")
    assert QualityRunner(lake).validate("matched", [Target(suite, "matched/x/dataset")]).passed
    bad = [("p1", "treated", "m1", 1.0, -1, 3), ("p1", "treated", "m1", 0.0, -5, 2), (None, "treated", "m2", 1.2, 1, 9)]
    lake.write("matched/x/dataset", spark.createDataFrame(bad, columns))
    balance = SUITES["matched.balance"].for_table("matched/x/balance")
    lake.write("matched/x/balance", spark.createDataFrame([("age", 0.5, 0.25, 1.0, 3.0)],
                                                         "covariate string, smd_before double, smd_after double, var_ratio_before double, var_ratio_after double"))
    params = {"smd_low": -0.1, "smd_high": 0.1}
    with pytest.raises(QualityGateError) as error:
        QualityRunner(lake).validate("matched", [Target(suite, "matched/x/dataset"), Target(balance, "matched/x/balance", params)])
    assert_every_critical_failed(error.value.report, [suite, balance])
    assert "quality gate 'matched' failed" in str(error.value)


def test_gx_project_parses_no_config_variables_file(tmp_path):
    # Suites validate from threads; GX re-reads a configured config-variables file through
    # one shared YAML parser for every validator, which broke a CI run with a parser error.
    class Lake:
        root = tmp_path / "lake"

    assert QualityRunner(Lake()).context().variables.config_variables_file_path is None
    config = Lake.root / "_quality" / "gx" / "great_expectations.yml"
    config.write_text(config.read_text().replace("config_variables_file_path:", "config_variables_file_path: uncommitted/config_variables.yml", 1))
    assert "uncommitted/config_variables.yml" in config.read_text()
    context = QualityRunner(Lake()).context()
    assert context.variables.config_variables_file_path is None
    assert "uncommitted/config_variables.yml" not in config.read_text()


def test_quarantine_and_validation_counts_agree(demo_run, spark):
    """Every quarantine reason of the demo's dirty synthetic rows equals the count of the
    bronze expectation that checks the same thing (copies of a duplicated row included)."""
    lake = Lakehouse(str(demo_run[0]), spark)
    dirty = {r.raw_table for t in lake.tables() if t.startswith("quarantine/") for r in lake.read(t).select("raw_table").distinct().collect()}
    # the raw tables the synthetic dirt reached (the clean ones' gates passed in the demo)
    suites = [s for s in SUITES.values() if s.stage == "bronze" and s.layout == "seer-medicare"
              and s.table.split("/")[1] in dirty]
    assert len(suites) >= 4
    report = QualityRunner(lake, counts=True, examples=False).validate("bronze", [Target(s, s.table) for s in suites], gate=False)
    validated = {}
    for run in report.runs:
        for o in run.outcomes:
            if o.expectation == "expect_column_values_to_not_be_null" or (
                    o.expectation == "expect_column_values_to_match_regex" and "quarantines" in (o.notes or "")):
                validated[(run.table.split("/")[1], o.column, o.expectation)] = o.unexpected_count
            if o.expectation == "expect_column_values_to_be_null":
                validated[(run.table.split("/")[1], "(whole row)", o.expectation)] = o.unexpected_count
    quarantined = {}
    for table in (t for t in lake.tables() if t.startswith("quarantine/")):
        for row in lake.read(table).groupBy("raw_table", "column", "reason").sum("copies").collect():
            kind = ("expect_column_values_to_not_be_null" if row["reason"] == "missing required value" else
                    "expect_column_values_to_be_null" if row["column"] == "(whole row)" else "expect_column_values_to_match_regex")
            quarantined[(row["raw_table"], row["column"], kind)] = row["sum(copies)"]
    assert quarantined, "the demo's synthetic data has dirty rows"
    assert {k: validated.get(k) for k in quarantined} == quarantined
    assert {k: v for k, v in validated.items() if v} == quarantined


def test_corrupted_raw_stops_at_bronze_gate_and_keeps_earlier_versions(demo_run, spark, tmp_path):
    from cohortlake.sources.ingest import ingest

    demo_lake = demo_run[0]
    root = tmp_path / "lake"
    shutil.copytree(demo_lake, root, ignore=shutil.ignore_patterns("_quality", "_raw"))
    raw = tmp_path / "raw"
    shutil.copytree(demo_lake / "_raw" / "seer-medicare", raw)
    import csv
    import re

    date_rule = re.compile(next(e["kwargs"]["regex"] for e in SUITES["bronze.seer-medicare.pde"].expectations
                                if e["kwargs"].get("column") == "SRVC_DT" and "calendar date" in e.get("notes", "")))
    injected = 0
    first = sorted(raw.glob("pde*.csv"))[0]
    with open(first, newline="") as handle:
        rows = list(csv.reader(handle))
    date_at = rows[0].index("SRVC_DT")
    for i, fields in enumerate(rows[1:]):
        if i % 3 == 0 and len(fields) > date_at:
            fields[date_at] = "2010-13-45"
            injected += 1
    with open(first, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    lake = Lakehouse(str(root), spark)
    silver_before = {t: lake.version(t) for t in lake.tables() if t.startswith("silver/")}
    pde_rows = lake.row_count("bronze/pde")
    with pytest.raises(QualityGateError) as error:
        ingest(spark, lake, "seer-medicare", raw)
    message = str(error.value)
    from pyspark.sql import functions as F

    srvc_dt = lake.read("bronze/pde", version=1).select(F.trim("SRVC_DT").alias("d")).where("d <> ''")
    expected_bad = srvc_dt.where(~F.col("d").rlike(date_rule.pattern)).count()
    assert expected_bad >= injected > 1000
    assert "quality gate 'bronze' failed" in message
    assert "bronze.seer-medicare.pde: expect_column_values_to_match_regex(SRVC_DT): " in message
    assert f"{expected_bad:,} unexpected of " in message and "at most 1% allowed" in message
    assert {t: lake.version(t) for t in silver_before} == silver_before  # silver untouched
    assert lake.version("bronze/pde") == 1 and lake.row_count("bronze/pde", version=0) == pde_rows
    assert lake.read("bronze/pde", version=0).where("SRVC_DT = '2010-13-45'").count() == 0
    failed = lake.read("_quality/results").where(
        "suite = 'bronze.seer-medicare.pde' AND NOT success AND severity = 'critical'").collect()
    assert [(r.column, r.table_version, r.unexpected_count) for r in failed] == [("SRVC_DT", 1, expected_bad)]


def test_definition_expectation_gates_build_and_restores_previous_cohort(demo_run, spark, tmp_path):
    from cohortlake.engine.store import build_and_store as build

    lake = Lakehouse(str(demo_run[0]), spark)
    text = Path(REFERENCE).read_text().replace("cohort: hcc_sorafenib_landmark", "cohort: hcc_gate_check")
    text += "\nexpectations:\n  - {covariate: age, mean_between: [20, 30], severity: critical}\n"
    path = tmp_path / "gate_check.yaml"
    path.write_text(text)
    shutil.copytree("cohort_defs/codesets", tmp_path / "codesets")
    definition = load_definition(str(path))
    lake.write("cohorts/hcc_gate_check/cohort", lake.read("cohorts/hcc_sorafenib_landmark/cohort"))
    with pytest.raises(QualityGateError) as error:
        build(definition, lake, out=str(tmp_path / "out"))
    assert "cohorts.hcc_gate_check.cohort: expect_column_mean_to_be_between(age): observed " in str(error.value)
    # the failed build's version is kept in the history, and the previous one is current again
    assert lake.version("cohorts/hcc_gate_check/cohort") == 2
    assert lake.history("cohorts/hcc_gate_check/cohort")[0]["operation"].upper() == "RESTORE"
    assert lake.read("cohorts/hcc_gate_check/cohort").count() == lake.read("cohorts/hcc_sorafenib_landmark/cohort").count()
    manifest = json.loads((Path(demo_run[0]) / "cohorts" / "hcc_gate_check" / "manifest.json").read_text())
    assert manifest["extra"]["quality_gate"]["passed"] is False
    assert not (tmp_path / "out").exists()  # nothing exported from a failed gate


def test_validate_command(demo_run, capsys):
    from cohortlake.cli import main

    lake = str(demo_run[0])
    assert main(["validate", "--lake", lake, "--suite", "silver.person", "--suite", "cohort.attrition"]) == 0
    err = capsys.readouterr().err
    assert "PASS  silver.person" in err and "PASS  cohorts.hcc_sorafenib_landmark.attrition" in err
    assert "bronze." not in err
    assert main(["validate", "--lake", lake, "--suite", "silver.nope"]) == 1
    assert "no suite named silver.nope; the suites are: " in capsys.readouterr().err


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_data_docs_render_in_headless_chromium(spark, tmp_path):
    """Data Docs of a passing and a failing suite, rendered by a real browser from disk."""
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it")
        pytest.skip("chromium not installed (CI installs it)")
    lake = Lakehouse(str(tmp_path / "lake"), spark)
    lake.write("silver/person", spark.createDataFrame(
        [("p1", dt.date(1940, 1, 1), "male", "white")], "person_id string, birth_date date, sex string, race string"))
    lake.write("silver/death", spark.createDataFrame(
        [("p1", dt.date(2010, 1, 1), "mbsf", "day")] * 3, "person_id string, death_date date, source string, precision string"))
    report = QualityRunner(lake).validate("silver", [
        Target(SUITES["silver.person"], "silver/person", views={"silver_person": "silver/person"}),
        Target(SUITES["silver.death"], "silver/death")], gate=False)
    failing = report.runs[1]
    assert [o.label for o in failing.critical_failures] == ["expect_column_values_to_be_unique(person_id)"]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]

    def render(path: str) -> str:
        run = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom", Path(path).as_uri()],
                             capture_output=True, text=True, timeout=120)
        return run.stdout

    index = render(report.docs_index)
    assert "silver.person" in index and "silver.death" in index
    shot = tmp_path / "index.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1400,1000", Path(report.docs_index).as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 5_000
    page = render(failing.page)
    assert "silver/death" in page.replace("silver.death", "silver/death")
    assert "values must be unique" in page and "Failed" in page
