"""seer-medicare mapping on small hand-written files, bad rows from the contract included.

Persons: A (0000000001) has MBSF 2008-2009 only, death dates that differ between MBSF
years, an HCC tumor and claims with blanks, dots and bad dates; B (0000000002) has two
tumors, MBSF 2010 with HMO/RDS/dual months and a SEER-only death; C (0000000003) is in
claims but not in MBSF or SEER.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from helpers import CONTRACT, delta_rows, spark_jobs

from cohortlake.errors import MissingInputError
from cohortlake.lake.delta import Lakehouse
from cohortlake.lake import session
from cohortlake.lake.session import INTERPRETED_CONF
from cohortlake.sources.canonical import SILVER_TABLES
from cohortlake.sources.ingest import TYPING_CONF, ingest

A, B, C = "0000000001", "0000000002", "0000000003"
D = dt.date


def monthly(prefix: str, values: list[str]) -> dict[str, str]:
    return {f"{prefix}{m:02d}": v for m, v in enumerate(values, start=1)}


MBSF_A_2008 = {
    "PATIENT_ID": A, "BENE_ENROLLMT_REF_YR": "2008", "BENE_BIRTH_DT": "19400315",
    "BENE_DEATH_DT": "20090101", "SEX_IDENT_CD": "1", "BENE_RACE_CD": "2",  # stale death date
    **monthly("MDCR_ENTLMT_BUYIN_IND_", ["3"] * 11 + ["1"]),  # December: Part A only
    **monthly("HMO_IND_", ["0"] * 12),
    **monthly("PTD_CNTRCT_ID_", ["H1234"] * 6 + ["0"] * 6),
    **monthly("DUAL_STUS_CD_", ["00"] * 12),
}
MBSF_A_2009 = {
    "PATIENT_ID": A, "BENE_ENROLLMT_REF_YR": "2009", "BENE_BIRTH_DT": "19400315",
    "BENE_DEATH_DT": "20091120", "VALID_DEATH_DT_SW": "V", "SEX_IDENT_CD": "1", "BENE_RACE_CD": "2",
    **monthly("MDCR_ENTLMT_BUYIN_IND_", ["3"] * 12),
    **monthly("HMO_IND_", ["4"] * 12),  # fee-for-service demonstration: not HMO
    **monthly("PTD_CNTRCT_ID_", ["S5678"] * 12),
    **monthly("DUAL_STUS_CD_", ["00", "00", "02", "02"] + ["00"] * 8),
}
MBSF_B_2010 = {
    "PATIENT_ID": B, "BENE_ENROLLMT_REF_YR": "2010", "BENE_BIRTH_DT": "19300704",
    "SEX_IDENT_CD": "2", "BENE_RACE_CD": "1",
    **monthly("MDCR_ENTLMT_BUYIN_IND_", ["C"] * 12),
    **monthly("HMO_IND_", ["1", "1"] + ["0"] * 10),
    **monthly("PTD_CNTRCT_ID_", ["E0002"] * 12),
    **monthly("RDS_IND_", ["Y"] * 12),
    **monthly("DUAL_STUS_CD_", ["01"] * 12),
}

ROWS = {
    "seer_cancer": [
        dict(PATIENT_ID=A, SEQUENCE_NUMBER="00", YEAR_OF_DIAGNOSIS="2009", MONTH_OF_DIAGNOSIS="3", PRIMARY_SITE="C220",
             HISTOLOGIC_TYPE_ICD_O_3="8170", BEHAVIOR_CODE_ICD_O_3="3", SEER_HISTORIC_STAGE_A="4",
             TYPE_OF_REPORTING_SOURCE="1", SEER_DOD_YEAR="2009", SEER_DOD_MONTH="11"),
        dict(PATIENT_ID=B, SEQUENCE_NUMBER="01", YEAR_OF_DIAGNOSIS="2008", MONTH_OF_DIAGNOSIS="07", PRIMARY_SITE="C340",
             HISTOLOGIC_TYPE_ICD_O_3="8140", BEHAVIOR_CODE_ICD_O_3="3", SEER_HISTORIC_STAGE_A="2",
             TYPE_OF_REPORTING_SOURCE="1", SEER_DOD_YEAR="2011", SEER_DOD_MONTH="2"),
        dict(PATIENT_ID=B, SEQUENCE_NUMBER="02", YEAR_OF_DIAGNOSIS="2010", MONTH_OF_DIAGNOSIS="99", PRIMARY_SITE="C220",
             HISTOLOGIC_TYPE_ICD_O_3="8171", BEHAVIOR_CODE_ICD_O_3="3", SEER_HISTORIC_STAGE_A="2",
             TYPE_OF_REPORTING_SOURCE="1", SEER_DOD_YEAR="2011", SEER_DOD_MONTH="2"),
        dict(PATIENT_ID="0000000004", SEQUENCE_NUMBER="00", YEAR_OF_DIAGNOSIS="20X9", MONTH_OF_DIAGNOSIS="1",
             PRIMARY_SITE="C220", HISTOLOGIC_TYPE_ICD_O_3="8170", BEHAVIOR_CODE_ICD_O_3="3"),
    ],
    "mbsf": [MBSF_A_2008, MBSF_A_2009, MBSF_B_2010],  # A has no 2010 row: a missing MBSF year
    "medpar": [
        {"PATIENT_ID": A, "MEDPAR_ID": "M1", "ADMSN_DT": "20090405", "DSCHRG_DT": "20090410",
         "DGNS_1_CD": "5712  ", "DGNS_2_CD": "155.0", "SRGCL_PRCDR_1_CD": "5022", "SRGCL_PRCDR_PRFRM_1_DT": "20090406",
         "SRGCL_PRCDR_2_CD": "9925"},
        {"PATIENT_ID": A, "MEDPAR_ID": "M1", "ADMSN_DT": "20090405", "DSCHRG_DT": "20090410",
         "DGNS_1_CD": "5712  ", "DGNS_2_CD": "155.0", "SRGCL_PRCDR_1_CD": "5022", "SRGCL_PRCDR_PRFRM_1_DT": "20090406",
         "SRGCL_PRCDR_2_CD": "9925"},  # exact duplicate
        {"PATIENT_ID": A, "MEDPAR_ID": "M2", "ADMSN_DT": "20080231", "DGNS_1_CD": "5715"},  # impossible date
    ],
    "nch_base": [
        {"PATIENT_ID": A, "CLM_ID": "C1", "CLM_FROM_DT": "20090301", "PRNCPAL_DGNS_CD": "1550", "ICD_DGNS_CD1": "5715"},
        {"PATIENT_ID": C, "CLM_ID": "C3", "CLM_FROM_DT": "20100105", "PRNCPAL_DGNS_CD": "V58.11"},
    ],
    "nch_line": [
        {"PATIENT_ID": A, "CLM_ID": "C1", "LINE_NUM": "1", "LINE_1ST_EXPNS_DT": "20090301", "HCPCS_CD": "99213",
         "LINE_ICD_DGNS_CD": "1550", "LINE_SRVC_CNT": "1"},
        {"PATIENT_ID": A, "CLM_ID": "C1", "LINE_NUM": "2", "LINE_1ST_EXPNS_DT": "20090302", "HCPCS_CD": "47380"},
        {"PATIENT_ID": C, "CLM_ID": "C3", "LINE_NUM": "1", "LINE_1ST_EXPNS_DT": "20100105", "HCPCS_CD": "J9299",
         "LINE_SRVC_CNT": "two"},  # non-numeric count
    ],
    "outpatient_base": [
        {"PATIENT_ID": B, "CLM_ID": "O0", "CLM_FROM_DT": "20150930", "PRNCPAL_DGNS_CD": "5715"},
        {"PATIENT_ID": B, "CLM_ID": "O1", "CLM_FROM_DT": "20151001", "PRNCPAL_DGNS_CD": "K7469",
         "ICD_PRCDR_CD1": "0FT00ZZ"},  # ICD-10 era from 2015-10-01; procedure dated by the claim
    ],
    "outpatient_revenue": [
        {"PATIENT_ID": B, "CLM_ID": "O1", "CLM_LINE_NUM": "1", "REV_CNTR": "0450", "HCPCS_CD": "37243"},
        {"PATIENT_ID": B, "CLM_ID": "O1", "CLM_LINE_NUM": "2", "REV_CNTR": "0360", "REV_CNTR_DT": "20151003",
         "HCPCS_CD": "S2095 "},
    ],
    "pde": [
        {"PATIENT_ID": A, "PDE_ID": "P1", "SRVC_DT": "20090410", "PROD_SRVC_ID": "50419048858", "QTY_DSPNSD_NUM": "120",
         "DAYS_SUPLY_NUM": "30", "GNN": "SORAFENIB TOSYLATE", "BN": "NEXAVAR"},
        {"PATIENT_ID": A, "PDE_ID": "P2", "SRVC_DT": "20090510", "PROD_SRVC_ID": "50419048858", "QTY_DSPNSD_NUM": "3O",
         "DAYS_SUPLY_NUM": "30"},  # letter O in the quantity
        {"PATIENT_ID": C, "PDE_ID": "P3", "SRVC_DT": "20100110", "PROD_SRVC_ID": "00093505898", "QTY_DSPNSD_NUM": "30",
         "DAYS_SUPLY_NUM": "30", "GNN": "METFORMIN HCL"},
        {"PATIENT_ID": C, "PDE_ID": "P3", "SRVC_DT": "20100110", "PROD_SRVC_ID": "00093505898", "QTY_DSPNSD_NUM": "30",
         "DAYS_SUPLY_NUM": "30", "GNN": "METFORMIN HCL"},  # exact duplicate
        {"PATIENT_ID": A, "PDE_ID": "P4", "SRVC_DT": "20090230", "PROD_SRVC_ID": "50419048858", "QTY_DSPNSD_NUM": "120",
         "DAYS_SUPLY_NUM": "30"},  # impossible date
    ],
}
MALFORMED_PDE_LINE = f"{A},P9,20090601,50419048858,120"  # 5 of 8 fields


def write_raw(folder: Path, rows=ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for table, table_rows in rows.items():
        with open(folder / f"{table}_2009.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CONTRACT[table], restval="")
            writer.writeheader()
            writer.writerows(table_rows)
            if table == "pde":
                handle.write(MALFORMED_PDE_LINE + "\n")
    return folder


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("seer")
    lake = Lakehouse(str(base / "lake"), spark)
    lake.raw_dir = write_raw(base / "raw")
    # Hand-written rows with deliberate faults in tables of a few rows: far above the gates'
    # thresholds by design, so this module tests typing and quarantine with the gates off.
    before = set(spark_jobs(spark))
    lake.report = ingest(spark, lake, "seer-medicare", lake.raw_dir, validate=False)
    lake.jobs = {job: label for job, label in spark_jobs(spark).items() if job not in before}
    return lake


def rows(lake, table, columns=None):
    df = lake.read(f"silver/{table}")
    return sorted(tuple(r) for r in (df.select(*columns) if columns else df).collect())


def test_counts_in_duplicates_quarantined_out(lake):
    counts = {c.raw_table: (c.rows_in, c.duplicates, c.quarantined, c.rows_out) for c in lake.report.raw}
    assert counts == {
        "seer_cancer": (4, 0, 1, 3),
        "mbsf": (3, 0, 0, 3),
        "medpar": (3, 1, 1, 1),
        "nch_base": (2, 0, 0, 2),
        "nch_line": (3, 0, 1, 2),
        "outpatient_base": (2, 0, 0, 2),
        "outpatient_revenue": (2, 0, 0, 2),
        "pde": (6, 1, 3, 2),
    }


def test_every_spark_job_of_the_ingest_names_its_phase_and_table(lake):
    """What the Spark UI, an event log or the REST API shows: each job says what it is for."""
    labels = set(lake.jobs.values())
    assert lake.jobs and None not in labels, sorted(j for j, label in lake.jobs.items() if label is None)
    raw = {c.raw_table for c in lake.report.raw}
    expected = {f"ingest: bronze/{t}" for t in raw} | {f"ingest: type {t}" for t in raw} | {
        f"ingest: silver/{t}" for t in SILVER_TABLES}
    assert labels <= expected, labels - expected
    assert {f"ingest: type {t}" for t in raw} <= labels


def test_quarantine_names_column_value_and_reason(lake):
    got = []
    for table in ("seer_cancer", "medpar", "nch_line", "pde", "mbsf"):
        for r in lake.read(f"quarantine/{table}").collect():
            got.append((r.raw_table, r.row_key, r.column, r.value, r.reason, r.source_file))
    assert sorted(got) == [
        ("medpar", f"PATIENT_ID={A}, MEDPAR_ID=M2", "ADMSN_DT", "20080231", "expected a date YYYYMMDD", "medpar_2009.csv"),
        ("nch_line", f"PATIENT_ID={C}, CLM_ID=C3, LINE_NUM=1", "LINE_SRVC_CNT", "two", "expected a number", "nch_line_2009.csv"),
        ("pde", f"PATIENT_ID={A}, PDE_ID=P2", "QTY_DSPNSD_NUM", "3O", "expected a number", "pde_2009.csv"),
        ("pde", f"PATIENT_ID={A}, PDE_ID=P4", "SRVC_DT", "20090230", "expected a date YYYYMMDD", "pde_2009.csv"),
        ("pde", f"PATIENT_ID={A}, PDE_ID=P9", "(whole row)", MALFORMED_PDE_LINE,
         "malformed CSV row: expected 8 fields", "pde_2009.csv"),
        ("seer_cancer", "PATIENT_ID=0000000004, SEQUENCE_NUMBER=00", "YEAR_OF_DIAGNOSIS", "20X9",
         "expected a year YYYY", "seer_cancer_2009.csv"),
    ]


def test_bronze_keeps_every_row_as_delivered(lake):
    medpar = lake.read("bronze/medpar")
    assert medpar.count() == 3  # the duplicate and the bad row are still there
    assert {r.DGNS_1_CD for r in medpar.collect()} == {"5712  ", "5715"}  # blanks as delivered
    assert set(medpar.columns) >= {"_source_file", "_loaded_at"}


def test_person_from_latest_mbsf_year(lake):
    assert rows(lake, "person") == [(A, D(1940, 3, 15), "male", "black"), (B, D(1930, 7, 4), "female", "white")]


def test_enrollment_spans_from_monthly_indicators(lake):
    assert rows(lake, "enrollment") == [
        (A, "dual", D(2009, 3, 1), D(2009, 4, 30)),
        (A, "part_a", D(2008, 1, 1), D(2009, 12, 31)),  # buy-in 1 and 3 both give Part A
        (A, "part_b", D(2008, 1, 1), D(2008, 11, 30)),
        (A, "part_b", D(2009, 1, 1), D(2009, 12, 31)),
        (A, "part_d", D(2008, 1, 1), D(2008, 6, 30)),
        (A, "part_d", D(2009, 1, 1), D(2009, 12, 31)),
        (B, "dual", D(2010, 1, 1), D(2010, 12, 31)),
        (B, "hmo", D(2010, 1, 1), D(2010, 2, 28)),
        (B, "part_a", D(2010, 1, 1), D(2010, 12, 31)),
        (B, "part_b", D(2010, 1, 1), D(2010, 12, 31)),
        (B, "part_d", D(2010, 1, 1), D(2010, 12, 31)),
        (B, "retiree_drug_subsidy", D(2010, 1, 1), D(2010, 12, 31)),
    ]


def test_tumors_with_unknown_month_missing(lake):
    assert rows(lake, "tumor") == [
        (A, "00", 2009, 3, "C220", "8170", "3", "4", "1", 2009, 11),
        (B, "01", 2008, 7, "C340", "8140", "3", "2", "1", 2011, 2),
        (B, "02", 2010, None, "C220", "8171", "3", "2", "1", 2011, 2),
    ]


def test_death_latest_mbsf_year_then_seer_month(lake):
    assert rows(lake, "death") == [(A, D(2009, 11, 20), "mbsf", "day"), (B, D(2011, 2, 15), "seer", "month")]


def test_diagnoses_trimmed_undotted_and_coded_by_date(lake):
    cols = ["person_id", "date", "code", "code_system", "setting", "source_table", "claim_id", "source_column"]
    assert rows(lake, "diagnosis", cols) == [
        (A, D(2009, 3, 1), "1550", "icd9cm", "carrier", "nch_base", "C1", "PRNCPAL_DGNS_CD"),
        (A, D(2009, 3, 1), "1550", "icd9cm", "carrier", "nch_line", "C1", "LINE_ICD_DGNS_CD"),
        (A, D(2009, 3, 1), "5715", "icd9cm", "carrier", "nch_base", "C1", "ICD_DGNS_CD1"),
        (A, D(2009, 4, 5), "1550", "icd9cm", "inpatient", "medpar", "M1", "DGNS_2_CD"),
        (A, D(2009, 4, 5), "5712", "icd9cm", "inpatient", "medpar", "M1", "DGNS_1_CD"),
        (B, D(2015, 9, 30), "5715", "icd9cm", "outpatient", "outpatient_base", "O0", "PRNCPAL_DGNS_CD"),
        (B, D(2015, 10, 1), "K7469", "icd10cm", "outpatient", "outpatient_base", "O1", "PRNCPAL_DGNS_CD"),
        (C, D(2010, 1, 5), "V5811", "icd9cm", "carrier", "nch_base", "C3", "PRNCPAL_DGNS_CD"),
    ]


def test_procedures_with_date_fallbacks(lake):
    cols = ["person_id", "date", "code", "code_system", "source_table", "claim_id", "source_column"]
    assert rows(lake, "procedure", cols) == [
        (A, D(2009, 3, 1), "99213", "hcpcs", "nch_line", "C1", "HCPCS_CD"),
        (A, D(2009, 3, 2), "47380", "hcpcs", "nch_line", "C1", "HCPCS_CD"),
        (A, D(2009, 4, 5), "9925", "icd9pcs", "medpar", "M1", "SRGCL_PRCDR_2_CD"),  # no date: admission date
        (A, D(2009, 4, 6), "5022", "icd9pcs", "medpar", "M1", "SRGCL_PRCDR_1_CD"),
        (B, D(2015, 10, 1), "0FT00ZZ", "icd10pcs", "outpatient_base", "O1", "ICD_PRCDR_CD1"),
        (B, D(2015, 10, 1), "37243", "hcpcs", "outpatient_revenue", "O1", "HCPCS_CD"),  # header CLM_FROM_DT
        (B, D(2015, 10, 3), "S2095", "hcpcs", "outpatient_revenue", "O1", "HCPCS_CD"),
    ]


def test_dispensing_clean_rows_only(lake):
    assert rows(lake, "dispensing") == [
        (A, D(2009, 4, 10), "50419048858", "SORAFENIB TOSYLATE", "NEXAVAR", 120.0, 30, "pde", "P1"),
        (C, D(2010, 1, 10), "00093505898", "METFORMIN HCL", None, 30.0, 30, "pde", "P3"),
    ]


def test_rerun_replaces_tables_without_duplicates(lake, spark, monkeypatch):
    tables = [f"{kind}/{t}" for kind in ("bronze", "quarantine") for t in ROWS] + [f"silver/{t}" for t in SILVER_TABLES]
    before = {t: lake.version(t) for t in tables}
    keys = [*TYPING_CONF, *INTERPRETED_CONF]
    settings = {key: spark.conf.get(key, None) for key in keys}
    assert all(settings[key] != value for key, value in {**TYPING_CONF, **INTERPRETED_CONF}.items())
    # The first ingest ran interpreted (tables of a few rows); this one compiles Spark's
    # generated code, as a delivery of 50,000 rows and more does: the same rows either way.
    first = json.loads(Path(lake.report.manifest_path).read_text())["extra"]["code_generation"]
    monkeypatch.setattr(session, "INTERPRETED_BELOW_ROWS", 0)
    report = ingest(spark, lake, "seer-medicare", lake.raw_dir, validate=False)
    assert (first, json.loads(Path(report.manifest_path).read_text())["extra"]["code_generation"]) == (
        "interpreted", "compiled")
    # Typing's and the size's settings end with the ingest (the build's tagging scan runs
    # 2.5x slower under typing's).
    assert {key: spark.conf.get(key, None) for key in keys} == settings
    assert report.silver == lake.report.silver
    def snapshot(table, version):  # bronze's rows differ in their load time only
        return sorted(repr({k: v for k, v in sorted(row.items()) if k != "_loaded_at"})
                      for row in delta_rows(lake.path(table), version))

    for table, version in before.items():
        assert lake.version(table) == version + 1
        assert snapshot(table, version + 1) == snapshot(table, version), table
    assert lake.read("quarantine/pde").count() == 3


def test_manifest_records_versions_read_and_written(lake):
    manifest = json.loads(Path(lake.report.manifest_path).read_text())
    assert manifest["step"] == "ingest"
    assert "bronze/pde" in json.dumps(manifest)
    assert manifest["row_counts"]["silver/diagnosis"] == 8


def test_missing_file_names_table_and_pattern(spark, tmp_path):
    raw = write_raw(tmp_path / "raw")
    (raw / "pde_2009.csv").unlink()
    with pytest.raises(MissingInputError, match=r"no file for raw table 'pde'.*'pde\*'"):
        ingest(spark, Lakehouse(str(tmp_path / "lake"), spark), "seer-medicare", raw)
