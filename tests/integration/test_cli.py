"""The command line as users and schedulers see it: exit codes, one-line errors, the demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cohortlake.cli import main


def test_demo_runs_end_to_end_and_says_where_outputs_are(demo_run):
    lake, err = demo_run
    assert str(lake / "_raw" / "seer-medicare") in err
    assert str(lake / "_runs" / "ingest" / "manifest.json") in err
    assert "silver/diagnosis" in err
    assert (lake / "silver" / "diagnosis" / "_delta_log").is_dir()
    # the reference cohort is built and its attrition printed, rule by rule
    assert str(lake / "cohorts" / "hcc_sorafenib_landmark") in err
    assert (lake / "cohorts" / "hcc_sorafenib_landmark" / "cohort" / "_delta_log").is_dir()
    for rule in ("HCC tumor", "Parts A and B, fee-for-service", "Alive at landmark"):
        assert rule in err

    # every dirty row the generator injected is accounted for by ingest, none more
    import json

    truth = json.loads((lake / "_raw" / "seer-medicare" / "truth.json").read_text())
    manifest = json.loads((lake / "_runs" / "ingest" / "manifest.json").read_text())
    for table, dirt in truth["dirty_counts"].items():
        if table == "mbsf":
            continue  # structural gaps, not row defects
        counts = manifest["extra"]["raw_tables"][table]
        assert counts["duplicates"] == dirt["duplicate_row"], table
        assert counts["quarantined"] == dirt["impossible_date"] + dirt["non_numeric_quantity"], table


def test_tables_lists_versions_and_rows(spark, tmp_path, capsys):
    from cohortlake.lake.delta import Lakehouse

    lake = Lakehouse(str(tmp_path / "lake"), spark)
    lake.write("silver/person", spark.createDataFrame([("1",), ("2",)], "person_id string"))
    lake.write("silver/person", spark.createDataFrame([("1",), ("2",), ("3",)], "person_id string"))
    assert main(["tables", "--lake", str(tmp_path / "lake")]) == 0
    line = next(l for l in capsys.readouterr().err.splitlines() if l.startswith("silver/person"))
    assert line.split() == ["silver/person", "1", "3"]


def test_missing_raw_folder_is_one_line_and_exit_1(spark, tmp_path, capsys):
    code = main(["ingest", "--layout", "seer-medicare", "--raw", str(tmp_path / "nope"), "--lake", str(tmp_path / "l")])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == f"cohortlake ingest: error: raw folder not found: {tmp_path / 'nope'}"


@pytest.mark.parametrize("argv, message", [
    (["--layout", "desynpuf", "--cancer-site", "liver"],
     "--cancer-site liver is for seer-medicare (NCI ships it by cancer site); desynpuf is a sample of all beneficiaries"),
    (["--layout", "desynpuf", "--format", "fixed-width"],
     "--format fixed-width is for seer-medicare (NCI's delivery); CMS publishes desynpuf as CSV"),
    (["--layout", "seer-medicare", "--patients", "0"], "--patients must be a whole number from 1 to 100,000,000, got 0"),
])
def test_synth_refuses_what_it_cannot_write_before_spark_starts(tmp_path, capsys, monkeypatch, argv, message):
    import cohortlake.cli

    def no_spark(args):
        raise AssertionError("Spark was started")

    monkeypatch.setattr(cohortlake.cli, "_spark", no_spark)
    code = main(["synth", "--patients", "5", *argv, "--out", str(tmp_path / "raw")])
    assert code == 1 and capsys.readouterr().err.strip() == f"cohortlake synth: error: {message}"
    assert not (tmp_path / "raw").exists()


def test_usage_error_exit_2():
    result = subprocess.run([sys.executable, "-m", "cohortlake.cli", "ingest", "--layout", "optum"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "invalid choice: 'optum'" in result.stderr


def test_help_lists_commands():
    result = subprocess.run([sys.executable, "-m", "cohortlake.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("demo", "synth", "ingest", "tables", "history"):
        assert command in result.stdout


REFERENCE = "cohort_defs/hcc_sorafenib_landmark.yaml"


def test_check_reference_definition(capsys, monkeypatch):
    from conftest import REPO

    monkeypatch.chdir(REPO)
    assert main(["check", REFERENCE]) == 0
    assert "ok: cohort 'hcc_sorafenib_landmark', 12 criteria" in capsys.readouterr().out


def test_check_reports_file_line_and_exit_1(tmp_path, capsys):
    from conftest import REPO

    text = (REPO / REFERENCE).read_text().replace("    age: {at: index, min: 66}", "    age: {at: index, minimum: 66}")
    (tmp_path / "codesets").symlink_to(REPO / "cohort_defs" / "codesets")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "minimum: 66" in l)
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:{line}:" in err and "minimum" in err


def test_explain_and_schema(capsys, monkeypatch):
    import json

    from conftest import REPO

    monkeypatch.chdir(REPO)
    assert main(["explain", REFERENCE]) == 0
    out = capsys.readouterr().out
    assert "1. HCC tumor" in out and "12. Alive at landmark" in out
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "criteria" in schema["properties"]


def test_run_builds_matches_analyzes_and_reports(demo_run, small_study_run):
    """`cohortlake run` end to end on the demo's lake, for the small-cohort variant of the
    reference definition (conftest.small_study_definition)."""
    import json

    import pandas as pd

    out, _ = small_study_run
    for name in ("cohort.parquet", "attrition.csv", "matched.parquet", "matched.csv", "balance.csv", "results.json",
                 "report.html", "manifest.json", "km.png", "love_plot.png", "data_dictionary.md", "matching.json"):
        assert (out / name).is_file(), name
    cohort = pd.read_parquet(out / "cohort.parquet")
    matched = pd.read_parquet(out / "matched.parquet")
    results = json.loads((out / "results.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(matched["person_id"]) <= set(cohort["person_id"])
    assert results["survival"]["n"] == len(matched)
    assert results["matching"]["matched_treated"] == (matched["arm"] == "sorafenib").sum()
    assert manifest["cohort"] == "demo_study" and set(manifest["step_seconds"]) == {"build", "match", "analyze"}
    assert "report.html" in manifest["outputs"]
    html = (out / "report.html").read_text()
    assert "demo_study" in html
    # Both audiences; the release set of this real run passes the disclosure checker, and
    # the run says so.
    from cohortlake.report.disclosure import check_release

    _, stderr = small_study_run
    assert (out / "analyst" / "report.html").is_file() and (out / "release" / "report.html").is_file()
    assert check_release(out / "release") == []
    assert f"disclosure check of {out / 'release'}: no count of 1-10 can be derived" in stderr
    assert "not for release" in (out / "analyst" / "report.html").read_text().lower()
    # Whether the estimate recovers the generator's hazard ratio is test_study.py's claim, on a
    # cohort whose interval excludes 1; this cohort's handful of treated persons cannot
    # test it. Here: the adjusted model was fitted on every matched person.
    adjusted = results["survival"]["cox"]["adjusted"]
    assert adjusted["n"] == len(matched) and 0 < adjusted["hazard_ratios"]["sorafenib"]["hr"]
