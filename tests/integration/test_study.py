"""The landmark hand-off (match), the study analysis (analyze) and their gate, on a cohort
table written straight into a lake from a known generating model, so the true hazard
ratio is known and the sample is large enough to estimate it (6,000 persons, about
1,600 treated; the 95% CI of the adjusted HR is about ±0.1 wide around it)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohortlake.errors import UserError
from cohortlake.lake.delta import Lakehouse
from cohortlake.matching.step import match_cohort
from cohortlake.quality.run import QualityGateError
from cohortlake.spec import load_definition
from cohortlake.survival.study import study_analysis

pytestmark = pytest.mark.spark

TRUE_HR = 0.8
PERSONS = 6000
STUDY_END = date(2013, 12, 31)
FLAGS = ("cirrhosis", "hepatitis_b", "hepatitis_c", "alcoholic_liver_disease", "ascites",
         "hepatic_encephalopathy", "esophageal_varices", "jaundice")


def synthetic_cohort(n: int, seed: int = 3) -> pd.DataFrame:
    """Persons classified at a 60-day landmark: treatment depends on age, ascites and dual;
    death hazard from the landmark on depends on stage and ascites, times TRUE_HR if treated."""
    rng = np.random.default_rng(seed)
    age = rng.integers(66, 95, n)
    stage = np.where(rng.random(n) < 0.6, "distant", "regional")
    flags = {name: (rng.random(n) < p).astype("int32") for name, p in zip(FLAGS, (0.5, 0.1, 0.25, 0.18, 0.15, 0.06, 0.08, 0.07))}
    dual = (rng.random(n) < 0.25).astype("int32")
    lp = -0.6 - 0.4 * (age - 75) / 10 - 0.7 * flags["ascites"] - 0.5 * dual
    treated = rng.random(n) < 1 / (1 + np.exp(-lp))
    hazard = 0.006 * np.exp(0.45 * (stage == "distant") + 0.5 * flags["ascites"] + 0.02 * (age - 75))
    hazard = hazard * np.where(treated, TRUE_HR, 1.0)
    death_after = np.ceil(rng.exponential(1 / hazard)).astype(int)
    index = [date(2008, 1, 15) + timedelta(days=int(d)) for d in rng.integers(0, 4 * 365, n)]
    rows = []
    for i in range(n):
        landmark = index[i] + timedelta(days=60)
        death = landmark + timedelta(days=int(death_after[i]))
        end = min(death, STUDY_END)
        rows.append({
            "person_id": f"{i:010d}", "index_date": index[i], "arm": "sorafenib" if treated[i] else "untreated",
            "landmark_date": landmark,
            "first_exposure_date": index[i] + timedelta(days=int(rng.integers(0, 61))) if treated[i] else None,
            "followup_start": landmark, "followup_end": end, "event": int(death <= STUDY_END),
            "time_days": (end - landmark).days, "age": int(age[i]), "sex": "male" if rng.random() < 0.7 else "female",
            "race": rng.choice(["white", "black", "other"], p=[0.7, 0.12, 0.18]), "diagnosis_year": index[i].year,
            "stage": stage[i], "dual": int(dual[i]), "nci_index": float(rng.poisson(1.5)),
            **{name: int(flags[name][i]) for name in FLAGS}, "in_landmark": 1,
            "death_date": death if death <= STUDY_END else None,
        })
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def study_lake(spark, tmp_path_factory):
    from pyspark.sql import functions as F

    root = tmp_path_factory.mktemp("study")
    lake = Lakehouse(str(root / "lake"), spark)
    cohort = synthetic_cohort(PERSONS)
    frame = spark.createDataFrame(cohort)
    for column in ("index_date", "landmark_date", "first_exposure_date", "followup_start", "followup_end", "death_date"):
        frame = frame.withColumn(column, F.col(column).cast("date"))
    for column in ("event", "time_days", "age", "diagnosis_year", "dual", "in_landmark", *FLAGS):
        frame = frame.withColumn(column, F.col(column).cast("int"))
    lake.write("cohorts/hcc_sorafenib_landmark/cohort", frame)
    out = root / "out"
    out.mkdir()
    cohort.to_parquet(out / "cohort.parquet", index=False)
    return lake, out, cohort


def test_match_writes_the_handoff_and_passes_the_balance_gate(study_lake, reference_definition):
    lake, out, cohort = study_lake
    report = match_cohort(reference_definition, lake, str(out))
    assert report.quality is not None and report.quality.passed
    matched = pd.read_parquet(out / "matched.parquet")
    # 1:1 without replacement: every matched set one treated + one untreated person
    sizes = matched.groupby("match_id")["arm"].agg(["count", "nunique"])
    assert (sizes["count"] == 2).all() and (sizes["nunique"] == 2).all()
    assert len(matched) == 2 * report.psmatch.n_matched_treated
    assert matched["person_id"].is_unique and set(matched["person_id"]) <= set(cohort["person_id"])
    assert list(matched.columns[:12]) == ["person_id", "arm", "match_id", "weight", "ps", "index_date", "landmark_date",
                                          "first_exposure_date", "followup_start", "followup_end", "time_days", "event"]
    # dates stay dates for R and pandas, no index column, ids keep their leading zeros
    import pyarrow.parquet as pq

    schema = pq.read_schema(out / "matched.parquet")
    assert str(schema.field("landmark_date").type) == "date32[day]"
    assert "__index_level_0__" not in schema.names
    csv = pd.read_csv(out / "matched.csv", dtype={"person_id": str})
    assert csv["person_id"].str.len().eq(10).all() and list(csv.columns) == list(matched.columns)
    assert csv["landmark_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    balance = pd.read_csv(out / "balance.csv")
    assert list(balance.columns) == ["covariate", "smd_before", "smd_after", "var_ratio_before", "var_ratio_after"]
    # ascites and age drive treatment: imbalanced before, balanced after
    ascites = balance.set_index("covariate").loc["ascites"]
    assert abs(ascites.smd_before) > 0.1 and abs(ascites.smd_after) < 0.1
    assert balance["smd_after"].abs().max() <= 0.1
    dictionary = (out / "data_dictionary.md").read_text()
    for column in matched.columns:
        assert f"`{column}`" in dictionary
    assert lake.row_count("matched/hcc_sorafenib_landmark/dataset") == len(matched)
    summary = json.loads((out / "matching.json").read_text())
    assert summary["matched_treated"] == report.psmatch.n_matched_treated and 0 < summary["equipoise"] <= 1


def test_analyze_recovers_the_true_hazard_ratio(study_lake, reference_definition):
    lake, out, _ = study_lake
    if not (out / "matched.parquet").exists():
        match_cohort(reference_definition, lake, str(out))
    results = study_analysis(reference_definition, str(out)).to_json()
    assert json.loads((out / "results.json").read_text())["cohort"] == "hcc_sorafenib_landmark"
    adjusted = results["survival"]["cox"]["adjusted"]["hazard_ratios"]["sorafenib"]
    assert adjusted["ci_lower"] < TRUE_HR < adjusted["ci_upper"], adjusted
    assert adjusted["ci_upper"] < 1.0  # the effect is found, not only covered by a wide interval
    assert results["survival"]["cox"]["crude"]["variance"].startswith("robust")
    risk = results["survival"]["risk"]["by_group"]
    assert risk["sorafenib"]["risk"] < risk["untreated"]["risk"]
    assert results["matching"]["matched_treated"] == results["matching"]["matched_control"]
    assert results["descriptive"]["n"] == PERSONS
    assert (out / "km.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_balance_gate_failure_hands_nothing_off_and_restores_the_lake(study_lake, reference_definition, tmp_path):
    lake, _, _ = study_lake
    strict = reference_definition.model_copy(update={"matching": reference_definition.matching.model_copy(
        update={"smd_threshold": 0.0001})})
    before = lake.version("matched/hcc_sorafenib_landmark/dataset")
    out = tmp_path / "strict"
    with pytest.raises(QualityGateError) as error:
        match_cohort(strict, lake, str(out))
    assert "matched.hcc_sorafenib_landmark.balance" in str(error.value)
    assert "smd_after" in str(error.value)
    assert (out / "balance.csv").exists() and (out / "love_plot.png").exists()
    assert not (out / "matched.parquet").exists()
    failed = json.loads((Path(lake.root) / "matched" / "hcc_sorafenib_landmark" / "manifest.failed.json").read_text())
    assert failed["extra"]["quality_gate"]["passed"] is False
    assert failed["extra"]["matching"]["smd_threshold"] == 0.0001
    if before is not None:
        history = lake.version("matched/hcc_sorafenib_landmark/dataset")
        assert lake.row_count("matched/hcc_sorafenib_landmark/dataset", history) == lake.row_count(
            "matched/hcc_sorafenib_landmark/dataset", before)


def test_validate_reruns_the_matched_suites_with_the_recorded_threshold(study_lake, reference_definition):
    from cohortlake.quality.gates import validate_lake

    lake, out, _ = study_lake
    if lake.version("matched/hcc_sorafenib_landmark/dataset") is None:
        match_cohort(reference_definition, lake, str(out))
    reports = validate_lake(lake, names=["matched.balance", "matched.hcc_sorafenib_landmark.dataset"])
    assert [r.stage for r in reports] == ["matched"]
    runs = {run.suite: run for run in reports[0].runs}
    assert set(runs) == {"matched.hcc_sorafenib_landmark.balance", "matched.hcc_sorafenib_landmark.dataset"}
    assert reports[0].passed
    smd = next(o for o in runs["matched.hcc_sorafenib_landmark.balance"].outcomes if o.column == "smd_after")
    assert smd.success and smd.error is None


def test_match_needs_a_built_cohort(spark, tmp_path, reference_definition):
    lake = Lakehouse(str(tmp_path / "empty"), spark)
    with pytest.raises(UserError, match="cohort 'hcc_sorafenib_landmark' is not built"):
        match_cohort(reference_definition, lake, str(tmp_path / "out"))


@pytest.fixture(scope="module")
def reference_definition():
    from cohortlake.resources import reference_definition

    return load_definition(reference_definition())
