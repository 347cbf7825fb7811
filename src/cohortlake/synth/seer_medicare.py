"""Synthetic SEER-Medicare extract: the person model, claims events, and the raw tables.

This module owns the person model (tumors, liver and comorbidity profile, enrollment,
sorafenib treatment, survival) because SEER-Medicare is the richer layout; the
DE-SynPUF generator reuses it with its own calendar and file layout.

Every value is a Spark SQL expression over ``spark.range(patients)`` with draws seeded per
(seed, person, stream, index) via ``synth.random``: no Python per row, nothing
patient-sized on the driver. Expressions are SQL text applied with ``selectExpr`` in
stages (one JVM call per stage, where the Column API would make one per operator).

Flow: ``build_persons`` (one row per person, the true model) -> ``claim_events`` /
``finish_events`` (one row per claim) and ``fills`` (one row per Part D fill) -> one
frame per raw table -> ``inject_dirty`` -> ``write_tables`` (all tables in one job).

Besides the dirt, the data has the timing anomalies of real deliveries, at fixed low
rates: fills and claims dated after death (auto-refills, late billing, a first sorafenib
or TKI fill shipped after the person died), SEER-only deaths whose imputed day 15 precedes
claims later that month, claims and fills in months the MBSF does not cover, and first
sorafenib fills on the study's last day. Every claim and fill carries ``timing`` bits
(``timing_bits``); ``timing_counts`` counts them in the tables as written into
truth.json's ``timing_anomalies`` (meanings: ``TIMING_COUNT_MEANINGS``).
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from cohortlake.synth.random import RandomSource, Sql, choice, indices, lit, pick, uniform_int
from cohortlake.synth.writer import csv_line, fixed_line, header_line, parts_for, sas_program, write_files

LAYOUT = "seer-medicare"


# --------------------------------------------------------------------------- calendar
@dataclass(frozen=True)
class Calendar:
    """Data years of a layout and how diagnosis years are spread over them."""

    first_year: int
    last_year: int
    dx_year_weights: tuple[tuple[int, float], ...]

    @property
    def study_end(self) -> date:
        return date(self.last_year, 12, 31)

    @property
    def study_end_sql(self) -> Sql:
        return Sql(f"DATE'{self.study_end.isoformat()}'")


SEER_CALENDAR = Calendar(
    2006, 2013,
    ((2006, 0.06), (2007, 0.07), (2008, 0.19), (2009, 0.19), (2010, 0.19), (2011, 0.19),
     (2012, 0.06), (2013, 0.05)),
)

# --------------------------------------------------------------------------- code lists
# Liver conditions use exactly the code lists of docs/reference-study.md's covariate table;
# NCI comorbidities one or two typical codes each. (name, kind, codes, P(other cancer),
# P(HCC), added probability when the person has cirrhosis).
CONDITIONS: list[tuple[str, str, list[str], float, float, float]] = [
    ("cirrhosis", "liver", ["5712", "5715", "5716"], 0.015, 0.55, 0.0),
    ("hepatitis_b", "liver", ["07020", "07021", "07022", "07023", "07030", "07031", "07032", "07033", "V0261"],
     0.004, 0.10, 0.0),
    ("hepatitis_c", "liver", ["07041", "07044", "07051", "07054", "07070", "07071", "V0262"], 0.01, 0.25, 0.0),
    ("alcoholic_liver_disease", "liver", ["5710", "5711", "5712", "5713"], 0.01, 0.18, 0.0),
    ("ascites", "liver", ["78959", "78951"], 0.01, 0.08, 0.22),
    ("hepatic_encephalopathy", "liver", ["5722"], 0.002, 0.03, 0.10),
    ("esophageal_varices", "liver", ["4560", "4561", "45620", "45621"], 0.002, 0.03, 0.18),
    ("jaundice", "liver", ["7824"], 0.01, 0.05, 0.08),
    ("diabetes", "nci", ["25000"], 0.26, 0.40, 0.0),
    ("congestive_heart_failure", "nci", ["4280"], 0.12, 0.12, 0.0),
    ("copd", "nci", ["496"], 0.14, 0.12, 0.0),
    ("renal_disease", "nci", ["5859"], 0.08, 0.10, 0.0),
    ("peripheral_vascular_disease", "nci", ["4439"], 0.07, 0.06, 0.0),
    ("cerebrovascular_disease", "nci", ["436"], 0.07, 0.06, 0.0),
    ("myocardial_infarction", "nci", ["41090"], 0.04, 0.04, 0.0),
    ("dementia", "nci", ["2900"], 0.04, 0.03, 0.0),
    ("paralysis", "nci", ["3441"], 0.01, 0.01, 0.0),
    ("rheumatologic_disease", "nci", ["7140"], 0.02, 0.02, 0.0),
    ("peptic_ulcer", "nci", ["53190"], 0.03, 0.04, 0.0),
]
CONDITION_NAMES = [c[0] for c in CONDITIONS]
NCI_CONDITIONS = [c[0] for c in CONDITIONS if c[1] == "nci"]
BACKGROUND_DX = ["4019", "2724", "V700", "78650", "7295"]

# index cancer: ICD-O-3 topography, histology weights, ICD-9-CM code on claims
SITES = {
    "lung": (["C340", "C341", "C342", "C343", "C348", "C349"],
             [("8140", 0.4), ("8070", 0.25), ("8041", 0.15), ("8046", 0.15), ("8012", 0.05)], "1629"),
    "colon": (["C180", "C182", "C183", "C184", "C185", "C186", "C187", "C189"],
              [("8140", 0.8), ("8480", 0.12), ("8210", 0.04), ("8263", 0.04)], "1539"),
    "prostate": (["C619"], [("8140", 0.95), ("8550", 0.05)], "185"),
    "breast": (["C500", "C501", "C502", "C503", "C504", "C505", "C508", "C509"],
               [("8500", 0.75), ("8520", 0.15), ("8522", 0.10)], "1749"),
}
HCC_SITE = "C220"
HCC_DX = "1550"
# ~5% 8160/8180: liver cancers that are not HCC by the study's histology rule
HCC_HISTOLOGY = [("8170", 0.80), ("8171", 0.04), ("8172", 0.02), ("8173", 0.03), ("8174", 0.03),
                 ("8175", 0.03), ("8160", 0.03), ("8180", 0.02)]
HCC_STAGES = [("1", 0.30), ("2", 0.30), ("4", 0.28), ("9", 0.12)]
OTHER_STAGES = [("0", 0.05), ("1", 0.38), ("2", 0.28), ("4", 0.18), ("8", 0.02), ("9", 0.09)]

# HCC-directed therapy: (setting, kind, code) routes per therapy, codes from the study sets
THERAPY_ROUTES = {
    "liver_resection": [("carrier", "hcpcs", "47120"), ("inpatient", "icd_proc", "5022")],
    "liver_transplant": [("carrier", "hcpcs", "47135"), ("inpatient", "icd_proc", "5051")],
    "ablation": [("carrier", "hcpcs", "47380"), ("outpatient", "icd_proc", "5023"), ("outpatient", "hcpcs", "47380")],
    "tace_embolization": [("carrier", "hcpcs", "37243"), ("outpatient", "hcpcs", "S2095"),
                          ("outpatient", "hcpcs", "37243")],
    "radiation": [("outpatient", "hcpcs", "77412"), ("outpatient", "icd_proc", "9223"),
                  ("outpatient", "dx", "V580"), ("carrier", "hcpcs", "77412")],
}
THERAPY_BY_STAGE = {  # P(any therapy), then which therapy
    "1": (0.45, [("liver_resection", 0.30), ("liver_transplant", 0.05), ("ablation", 0.30),
                 ("tace_embolization", 0.25), ("radiation", 0.10)]),
    "advanced": (0.10, [("liver_resection", 0.10), ("ablation", 0.15), ("tace_embolization", 0.50),
                        ("radiation", 0.25)]),
    "9": (0.08, [("liver_resection", 0.15), ("ablation", 0.25), ("tace_embolization", 0.40), ("radiation", 0.20)]),
}
# therapy day relative to diagnosis: the study window is [-30, +60]; put mass on its edges
# (day or None for "anywhere inside" / "late", weight)
THERAPY_DAYS = [(-31, 0.08), (61, 0.08), (-30, 0.04), (60, 0.04), ("inside", 0.66), ("late", 0.10)]

CARRIER_EM = [("99213", 0.35), ("99214", 0.30), ("99212", 0.10), ("99215", 0.10), ("99204", 0.08), ("99203", 0.07)]
CARRIER_OTHER = ["80053", "85025", "36415", "71020", "93000", "76700", "74177"]
OUTPATIENT_LINES = [("0300", "80053"), ("0300", "85025"), ("0320", "71020"), ("0350", "74177"),
                    ("0510", "99213"), ("0450", "99284"), ("0250", None), ("0402", "76700")]
INPATIENT_PROCS = ["3893", "9904", "8741", "4516", "5491", "8872", "4443"]  # none in a therapy set
OUTPATIENT_PROCS = ["8741", "4516", "8872", "5491"]

ICI = [("J9299", 14, "240", 0.40), ("J9271", 21, "200", 0.35), ("J9022", 21, "120", 0.15),
       ("J9173", 28, "150", 0.10)]  # HCPCS, interval days, units, weight

SORAFENIB_NDC = "50419048858"
SORAFENIB_BRANDED = (SORAFENIB_NDC, "SORAFENIB TOSYLATE", "NEXAVAR")
# an NDC outside the study's NDC set, found only by the case-insensitive generic-name rule
SORAFENIB_OTHER = ("50419048801", "Sorafenib Tosylate", "Nexavar")
TKI = [("regorafenib", "50419017103", "REGORAFENIB", "STIVARGA", 0.5),
       ("lenvatinib", "62856071030", "LENVATINIB MESYLATE", "LENVIMA", 0.3),
       ("cabozantinib", "42388002326", "CABOZANTINIB S-MALATE", "CABOMETYX", 0.2)]
# background drugs: key, NDC, generic name, brand name, units per day
DRUGS = [
    ("lisinopril", "68180051301", "LISINOPRIL", "LISINOPRIL", 1),
    ("metformin", "00093104801", "METFORMIN HCL", "METFORMIN HCL", 2),
    ("atorvastatin", "00071015523", "ATORVASTATIN CALCIUM", "LIPITOR", 1),
    ("furosemide", "00054429731", "FUROSEMIDE", "FUROSEMIDE", 1),
    ("spironolactone", "00378214601", "SPIRONOLACTONE", "SPIRONOLACTONE", 1),
    ("lactulose", "00121057716", "LACTULOSE", "LACTULOSE", 30),
]
PART_D_CONTRACTS = ["H1234", "S5678", "R0001", "E0002", "H0543", "S4802", "S5810", "H3312"]
NO_PART_D_VALUES = [("0", 0.45), ("N", 0.35), (None, 0.15), ("X", 0.03), ("*", 0.02)]

# --------------------------------------------------------------------------- true model
MEDIAN_DAYS = {  # untreated median survival at the reference covariates (age 75, no flags)
    "hcc": {"1": 760, "2": 120, "4": 75, "9": 180},
    "other": {"0": 5000, "1": 3600, "2": 1800, "4": 365, "8": 2500, "9": 1100},
}
BASELINE_HAZARD = {g: {s: math.log(2) / d for s, d in v.items()} for g, v in MEDIAN_DAYS.items()}
SURVIVAL_LOG_HR = {"age_per_10_years": 0.15, "ascites": 0.40, "hepatic_encephalopathy": 0.50,
                   "comorbidity_count": 0.10}
AGE_CENTRE = 75.0
SORAFENIB_HR = 0.80
TREATMENT_INTERCEPT = {"1": -2.5, "2": -0.5, "4": 0.5, "9": -2.0}
TREATMENT_COEF = {"age_per_10_years": -0.4, "ascites": -0.7, "hepatic_encephalopathy": -0.8, "dual": -0.5}
SORAFENIB_FILLS = {"extra_fills_geometric_p": 0.22, "max_fills": 15,
                   "days_supply": [(30, 0.8), (28, 0.1), (60, 0.1)],
                   "long_gap_probability": 0.12, "long_gap_days": [31, 75], "refill_gap_days": [-3, 10]}
SECOND_LINE = {"tki_probability": 0.20, "tki_start_days_after_era": [1, 60], "ici_probability": 0.55,
               "ici_first_days_after_tki": [0, 30]}
STALE_DEATH_PER_DIRTY_RATE = 10.0  # stale MBSF death dates for 10 x dirty_rate of decedents

# Timing anomalies of real deliveries. They come from how claims are posted and how
# deaths and enrollment are recorded, not from damaged fields, so unlike the dirt their
# rates do not scale with dirty_rate: every run has them, at the default rate too.
# Deaths in scope for post-death claims are those the MBSF dates exactly (so a reader
# can see the claim is after the death).
# auto-refills and late-posted pharmacy claims reach a small share of decedents' PDE
POST_DEATH_FILL_SHARE = 0.02
# each chronic drug such a decedent was on is refilled after the death with this chance
POST_DEATH_REFILL_PER_DRUG = 0.6
# physician, lab and DME services billed with a date after death: rarer than refills
POST_DEATH_CLAIM_SHARE = 0.015
# specialty pharmacies ship an oral oncolytic already ordered: a first sorafenib (or
# second-line TKI) fill after death, for this share of persons planned for it who died
# before their first fill (the planned fill was in process when they died)
POST_DEATH_FIRST_FILL_SHARE = 0.15
# of those first fills, dated on the day of death itself (dispensed, then the person died)
FIRST_FILL_ON_DEATH_DAY_SHARE = 0.25
POST_DEATH_DAYS = (1, 30)  # a late claim or fill is dated this many days after death
# A first sorafenib fill on the study's last day (alive, covered): a boundary case every
# builder meets, deliberately over-represented (a realistic daily start rate puts none
# there in a few thousand persons). Persons planned to start in the study's last 30 days
# or after it are few (about 1 in 1000); this share of them starts on the last day,
# about 1 in 1500 persons, so the 3000-person test set has one
STUDY_END_FIRST_FILL_WINDOW_DAYS = 30
STUDY_END_FIRST_FILL_SHARE = 0.7

TABLE_ORDER = ["seer_cancer", "mbsf", "medpar", "nch_base", "nch_line", "outpatient_base", "outpatient_revenue",
               "pde"]

# --------------------------------------------------------------------------- columns
# --------------------------------------------------------------------------- columns
def _numbered(template: str, n: int) -> list[str]:
    return [template.format(i) for i in range(1, n + 1)]


MONTHS = [f"{m:02d}" for m in range(1, 13)]
COLUMNS: dict[str, list[str]] = {
    "seer_cancer": ["PATIENT_ID", "SEQUENCE_NUMBER", "YEAR_OF_DIAGNOSIS", "MONTH_OF_DIAGNOSIS", "PRIMARY_SITE",
                    "HISTOLOGIC_TYPE_ICD_O_3", "BEHAVIOR_CODE_ICD_O_3", "SEER_HISTORIC_STAGE_A",
                    "TYPE_OF_REPORTING_SOURCE", "SEER_DOD_YEAR", "SEER_DOD_MONTH"],
    "mbsf": ["PATIENT_ID", "BENE_ENROLLMT_REF_YR", "BENE_BIRTH_DT", "BENE_DEATH_DT", "VALID_DEATH_DT_SW",
             "SEX_IDENT_CD", "BENE_RACE_CD"]
    + [f"MDCR_ENTLMT_BUYIN_IND_{m}" for m in MONTHS] + [f"HMO_IND_{m}" for m in MONTHS]
    + [f"PTD_CNTRCT_ID_{m}" for m in MONTHS] + [f"RDS_IND_{m}" for m in MONTHS]
    + [f"DUAL_STUS_CD_{m}" for m in MONTHS],
    "medpar": ["PATIENT_ID", "MEDPAR_ID", "ADMSN_DT", "DSCHRG_DT"] + _numbered("DGNS_{}_CD", 25)
    + _numbered("SRGCL_PRCDR_{}_CD", 25) + _numbered("SRGCL_PRCDR_PRFRM_{}_DT", 25),
    "nch_base": ["PATIENT_ID", "CLM_ID", "CLM_FROM_DT", "CLM_THRU_DT", "PRNCPAL_DGNS_CD"]
    + _numbered("ICD_DGNS_CD{}", 12),
    "nch_line": ["PATIENT_ID", "CLM_ID", "LINE_NUM", "LINE_1ST_EXPNS_DT", "LINE_LAST_EXPNS_DT", "HCPCS_CD",
                 "LINE_ICD_DGNS_CD", "LINE_SRVC_CNT"],
    "outpatient_base": ["PATIENT_ID", "CLM_ID", "CLM_FROM_DT", "CLM_THRU_DT", "PRNCPAL_DGNS_CD"]
    + _numbered("ICD_DGNS_CD{}", 25) + _numbered("ICD_PRCDR_CD{}", 25) + _numbered("PRCDR_DT{}", 25),
    "outpatient_revenue": ["PATIENT_ID", "CLM_ID", "CLM_LINE_NUM", "REV_CNTR", "REV_CNTR_DT", "HCPCS_CD"],
    "pde": ["PATIENT_ID", "PDE_ID", "SRVC_DT", "PROD_SRVC_ID", "QTY_DSPNSD_NUM", "DAYS_SUPLY_NUM", "GNN", "BN"],
}
# The fixed-width delivery (--format fixed-width): each column's informat in the SAS
# layout, first matching pattern wins. Widths hold every value the generator writes,
# the injected dirt included (a non-numeric quantity such as "thirty").
FIXED_WIDTH_INFORMATS: list[tuple[str, str]] = [
    (r"^PATIENT_ID$", "$char10."),
    (r"^(MEDPAR_ID|CLM_ID|PDE_ID)$", "$char15."),
    (r"(_DT|_DT\d+)$", "yymmdd8."),
    (r"^(BENE_ENROLLMT_REF_YR|YEAR_OF_DIAGNOSIS|SEER_DOD_YEAR)$", "4."),
    (r"^(MONTH_OF_DIAGNOSIS|SEER_DOD_MONTH)$", "2."),
    (r"^(LINE_NUM|CLM_LINE_NUM)$", "3."),
    (r"^LINE_SRVC_CNT$", "8."),
    (r"^QTY_DSPNSD_NUM$", "10."),
    (r"^DAYS_SUPLY_NUM$", "6."),
    (r"^(GNN|BN)$", "$char30."),
    (r"^PROD_SRVC_ID$", "$char11."),
    (r"^PTD_CNTRCT_ID_", "$char5."),
    (r"^(DUAL_STUS_CD_\d+|SEQUENCE_NUMBER)$", "$char2."),
    (r"^(SEX_IDENT_CD|BENE_RACE_CD)$", "$1."),
    (r"^(PRIMARY_SITE|HISTOLOGIC_TYPE_ICD_O_3|REV_CNTR)$", "$char4."),
    (r"^(VALID_DEATH_DT_SW|BEHAVIOR_CODE_ICD_O_3|SEER_HISTORIC_STAGE_A|TYPE_OF_REPORTING_SOURCE"
     r"|MDCR_ENTLMT_BUYIN_IND_\d+|HMO_IND_\d+|RDS_IND_\d+)$", "$char1."),
    (r"(DGNS|PRCDR|HCPCS)", "$char7."),
]
FIXED_WIDTH_LABELS: list[tuple[str, str]] = [
    (r"^PATIENT_ID$", "Patient ID (SEER-Medicare)"),
    (r"_ID$", "Record or claim ID"),
    (r"_DT\d*$", "Date (YYYYMMDD)"),
    (r"DGNS", "Diagnosis code (ICD-9-CM / ICD-10-CM, no decimal)"),
    (r"PRCDR", "Procedure code (ICD-9 / ICD-10-PCS, no decimal)"),
    (r"HCPCS", "HCPCS / CPT code"),
    (r"MDCR_ENTLMT_BUYIN_IND_(\d+)", "Medicare entitlement / buy-in indicator, month \\1"),
    (r"HMO_IND_(\d+)", "HMO indicator, month \\1"),
    (r"PTD_CNTRCT_ID_(\d+)", "Part D contract ID, month \\1"),
    (r"RDS_IND_(\d+)", "Retiree drug subsidy indicator, month \\1"),
    (r"DUAL_STUS_CD_(\d+)", "Dual status code, month \\1"),
]


def fixed_width_fields(columns: Sequence[str]) -> list[tuple[str, int, str, str]]:
    """(column, start, informat, label) of a table's fixed-width layout, columns in order."""
    import re

    fields, start = [], 1
    for column in columns:
        informat = next(i for pattern, i in FIXED_WIDTH_INFORMATS if re.search(pattern, column))
        label = next((re.sub(pattern, text, re.search(pattern, column).group(0))
                      for pattern, text in FIXED_WIDTH_LABELS if re.search(pattern, column)),
                     column.replace("_", " ").capitalize())
        fields.append((column, start, informat, label))
        start += int(re.search(r"(\d+)\.", informat).group(1))
    return fields


# rough rows per person, only to size output partitions from the patient count
ROWS_PER_PERSON = {"seer_cancer": 1.2, "mbsf": 6.0, "medpar": 1.5, "nch_base": 20.0, "nch_line": 32.0,
                   "outpatient_base": 6.0, "outpatient_revenue": 14.0, "pde": 8.0}



# --------------------------------------------------------------------------- SQL helpers
def stage(df: DataFrame, columns: dict[str, str]) -> DataFrame:
    """Add columns given as SQL text in one call; an entry cannot refer to another of the same stage."""
    return df.selectExpr("*", *[f"{expr} AS `{name}`" for name, expr in columns.items()])


def project(df: DataFrame, columns: dict[str, str]) -> DataFrame:
    """Select exactly these columns, given as SQL text."""
    return df.selectExpr(*[f"{expr} AS `{name}`" for name, expr in columns.items()])


def case(key: str, mapping: dict, default=None) -> Sql:
    """CASE key WHEN k THEN v ... over a Python dict of literals."""
    branches = " ".join(f"WHEN {key} = {lit(k)} THEN {lit(v)}" for k, v in mapping.items())
    return Sql(f"(CASE {branches} ELSE {lit(default)} END)")


def str_array(values: Sequence) -> Sql:
    return Sql("array(" + ", ".join(lit(v) for v in values) + ")")


def ymd(d: str) -> Sql:
    return Sql(f"date_format({d}, 'yyyyMMdd')")


def add_days(d: str, n) -> Sql:
    return Sql(f"date_add({d}, CAST({n} AS INT))")


def month_index(d: str) -> Sql:
    return Sql(f"(year({d}) * 12 + month({d}) - 1)")


PERSONS_PER_PARTITION = 50_000


def source_partitions_for(patients: int) -> int:
    """Spark partitions of the person table: from the size (small runs: one task, little overhead)."""
    return max(1, math.ceil(patients / PERSONS_PER_PARTITION))


def materialize(df: DataFrame) -> DataFrame:
    """Compute a frame once and cut its lineage, so later plans stay small.

    Plans that carry the whole person model (hundreds of expressions) cost seconds of
    planning and task serialization each; a local checkpoint replaces them by a scan.
    """
    return df.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)


def release(df: DataFrame) -> None:
    """Free the blocks of a frame made by ``materialize`` now rather than at garbage collection."""
    df._jdf.queryExecution().analyzed().rdd().unpersist(False)


# --------------------------------------------------------------------------- persons
def build_persons(spark, patients: int, seed: int, calendar: Calendar, dirty_rate: float,
                  sorafenib_hr: float = SORAFENIB_HR, source_partitions: int | None = None) -> DataFrame:
    """One row per person with every person-level attribute of the true model (column ``id``)."""
    rng = RandomSource(seed, "id")
    u = rng.uniform
    first_idx = calendar.first_year * 12
    last_idx = calendar.last_year * 12 + 11
    end = calendar.study_end_sql
    p = spark.range(0, patients, 1, source_partitions or source_partitions_for(patients))

    p = stage(p, {
        "is_hcc": f"{u('hcc')} < 0.35D",
        "other_site": rng.choice("site", [("lung", 0.30), ("colon", 0.25), ("prostate", 0.25), ("breast", 0.20)]),
        "dx_year": f"CAST({rng.choice('dx_year', list(calendar.dx_year_weights))} AS INT)",
        "dx_month": rng.uniform_int("dx_month", 1, 12),
        "race": rng.choice("race", [("1", 0.70), ("2", 0.10), ("3", 0.03), ("4", 0.09), ("5", 0.06),
                                    ("6", 0.01), ("0", 0.01)]),
        "report_src": rng.choice("report_src", [("1", 0.96), ("2", 0.01), ("3", 0.01), ("6", 0.01), ("7", 0.01)]),
        "month_unknown": f"{u('month_unknown')} < 0.02D",
        "age_group": rng.choice("age_group", [("young", 0.12), ("near66", 0.04), ("old", 0.84)]),
        "u_age": u("age"), "u_topo": u("topography"), "u_hist": u("histology"), "u_stage": u("stage"),
        "u_sex": u("sex"),
        "dual": f"{u('dual')} < 0.20D",
        "dual_code": rng.choice("dual_code", [("02", 0.3), ("08", 0.3), ("01", 0.1), ("03", 0.1), ("04", 0.05),
                                              ("05", 0.05), ("06", 0.05), ("07", 0.05)]),
        "nondual_code": rng.choice("nondual_code", [("00", 0.97), ("09", 0.01), ("99", 0.01), ("NA", 0.01)]),
        "rds": f"{u('rds')} < 0.03D",
        "rds_contract": f"CASE WHEN {u('rds_contract')} < 0.5D THEN 'E0002' ELSE 'N' END",
        "has_partd_draw": f"{u('partd')} < 0.72D",
        "contract": rng.pick("contract", PART_D_CONTRACTS),
        "nopd_value": rng.choice("nopd_value", NO_PART_D_VALUES),
        "partd_late": f"{u('partd_late')} < 0.15D",
        "hmo_kind": rng.choice("hmo_kind", [("none", 0.85), ("hmo", 0.12), ("ffs_demo", 0.03)]),
        "hmo_value_draw": rng.choice("hmo_value", [("1", 0.4), ("2", 0.2), ("C", 0.3), ("A", 0.1)]),
        "parta_only": f"{u('parta_only')} < 0.05D",
        "gap": f"{u('gap')} < 0.04D",
        # single-month gaps, often at months -12 and +2 (the edges of the study's window)
        "gap_offset": rng.choice("gap_offset", [(-13, 0.10), (-12, 0.25), (-6, 0.10), (0, 0.10), (1, 0.10),
                                                (2, 0.25), (3, 0.10)]),
        "death_where": rng.choice("death_where", [("both", 0.95), ("seer_only", 0.03), ("mbsf_only", 0.02)]),
        "no_mbsf": f"{u('no_mbsf')} < 0.005D",
    })
    p = stage(p, {
        "site_group": "CASE WHEN is_hcc THEN 'hcc' ELSE other_site END",
        "dx_date": "make_date(dx_year, dx_month, 15)",
        "dx_idx": "dx_year * 12 + dx_month - 1",
        "dco": "report_src IN ('6', '7')",
        "has_partd": "has_partd_draw AND NOT rds",
    })
    p_male = case("site_group", {"hcc": 0.72, "lung": 0.5, "colon": 0.48, "prostate": 1.0, "breast": 0.01})
    topo = " ".join(f"WHEN site_group = {lit(n)} THEN {pick('u_topo', t)}" for n, (t, _h, _c) in SITES.items())
    hist = " ".join(f"WHEN site_group = {lit(n)} THEN {choice('u_hist', h)}" for n, (_t, h, _c) in SITES.items())
    # 12% aged 60-65 (they fail the age rule); 4% turn 66 within 25 days of diagnosis
    age_years = "CASE WHEN age_group = 'young' THEN 60.0D + 6.0D * u_age ELSE 66.0D + 29.0D * power(u_age, 1.6D) END"
    p = stage(p, {
        "sex": f"CASE WHEN u_sex < {p_male} THEN '1' ELSE '2' END",
        "primary_site": f"CASE WHEN is_hcc THEN {lit(HCC_SITE)} {topo} END",
        "histology": f"CASE WHEN is_hcc THEN {choice('u_hist', HCC_HISTOLOGY)} {hist} END",
        "stage": f"CASE WHEN is_hcc THEN {choice('u_stage', HCC_STAGES)} ELSE {choice('u_stage', OTHER_STAGES)} END",
        "cancer_dx": case("site_group", {"hcc": HCC_DX, **{n: c for n, (_t, _h, c) in SITES.items()}}),
        "birth_date": f"CASE WHEN age_group = 'near66' "
                      f"THEN {add_days('add_months(dx_date, -792)', rng.uniform_int('near66', -25, 25))} "
                      f"ELSE {add_days('dx_date', f'-floor(({age_years}) * 365.25D)')} END",
        "partd_start_idx": f"CASE WHEN partd_late THEN dx_idx + {rng.uniform_int('partd_start', -24, 4)} "
                           f"ELSE {first_idx} END",
        "hmo_value": "CASE WHEN hmo_kind = 'hmo' THEN hmo_value_draw WHEN hmo_kind = 'ffs_demo' THEN '4' END",
        "hmo_start": f"dx_idx + {rng.uniform_int('hmo_start', -40, 10)}",
        "hmo_len": rng.uniform_int("hmo_len", 2, 60),
        "parta_start": f"CASE WHEN parta_only THEN dx_idx + {rng.uniform_int('parta_start', -30, 6)} END",
        "parta_len": rng.uniform_int("parta_len", 1, 18),
        "gap_idx": "CASE WHEN gap THEN dx_idx + gap_offset END",
    })
    p = stage(p, {
        "behavior": f"CASE WHEN is_hcc THEN (CASE WHEN {u('behavior')} < 0.02D THEN '2' ELSE '3' END) "
                    "WHEN stage = '0' THEN '2' ELSE '3' END",
        "age": "datediff(dx_date, birth_date) / 365.25D",
        "f_cirrhosis": f"{u('condition', 0)} < "
                       f"CASE WHEN is_hcc THEN {CONDITIONS[0][4]!r}D ELSE {CONDITIONS[0][3]!r}D END",
    })
    flags = {}
    for i, (name, _kind, _codes, p_other, p_hcc, p_cirr) in enumerate(CONDITIONS[1:], start=1):
        prob = (f"(CASE WHEN is_hcc THEN {p_hcc!r}D ELSE {p_other!r}D END"
                f" + CASE WHEN f_cirrhosis THEN {p_cirr!r}D ELSE 0.0D END)")
        flags[f"f_{name}"] = f"{u('condition', i)} < {prob}"
    p = stage(p, flags)
    cond_codes = ", ".join(f"CASE WHEN f_{name} THEN {pick(u('pool_code', i), codes)} END"
                           for i, (name, _k, codes, *_r) in enumerate(CONDITIONS))
    flag_array = ", ".join(f"f_{n}" for n in CONDITION_NAMES)
    p = stage(p, {
        "comorbidity_count": " + ".join(f"CAST(f_{n} AS INT)" for n in NCI_CONDITIONS),
        "active_conditions": f"filter(sequence(0, {len(CONDITIONS) - 1}), "
                             f"xc -> element_at(array({flag_array}), xc + 1))",
        # the codes a person's claims may carry as secondary diagnoses
        "pool": f"concat({str_array(BACKGROUND_DX)}, array(cancer_dx), array_compact(array({cond_codes})))",
    })

    # sorafenib treatment model (confounding by indication) and survival
    c = TREATMENT_COEF
    logit = (f"({case('stage', TREATMENT_INTERCEPT, -9.0)}"
             f" + {c['age_per_10_years']!r}D * (age - {AGE_CENTRE!r}D) / 10.0D"
             f" + {c['ascites']!r}D * CAST(f_ascites AS DOUBLE)"
             f" + {c['hepatic_encephalopathy']!r}D * CAST(f_hepatic_encephalopathy AS DOUBLE)"
             f" + {c['dual']!r}D * CAST(dual AS DOUBLE))")
    b = SURVIVAL_LOG_HR
    lp = (f"({b['age_per_10_years']!r}D * (age - {AGE_CENTRE!r}D) / 10.0D"
          f" + {b['ascites']!r}D * CAST(f_ascites AS DOUBLE)"
          f" + {b['hepatic_encephalopathy']!r}D * CAST(f_hepatic_encephalopathy AS DOUBLE)"
          f" + {b['comorbidity_count']!r}D * CAST(comorbidity_count AS DOUBLE))")
    baseline = (f"CASE WHEN is_hcc THEN {case('stage', BASELINE_HAZARD['hcc'])} "
                f"ELSE {case('stage', BASELINE_HAZARD['other'])} END")
    p = stage(p, {
        "treat_prob": f"CASE WHEN is_hcc AND NOT dco AND has_partd AND partd_start_idx <= dx_idx "
                      f"THEN 1.0D / (1.0D + exp(-{logit})) ELSE 0.0D END",
        "first_fill_raw": f"CAST(floor(121.0D * power({u('first_fill')}, 1.5D)) AS INT)",
        "t_untreated": f"{rng.exponential('death')} / (({baseline}) * exp({lp}))",
        "days_to_end": f"datediff({end}, dx_date)",
    })
    p = stage(p, {"planned": f"{u('treat')} < treat_prob"})
    # a planned start at or after the study's end moves to its last day for some persons
    # alive then (untreated time beyond it, so also after the hazard ratio applies) and
    # covered in its last month
    at_end = (f"planned AND first_fill_raw >= days_to_end - {STUDY_END_FIRST_FILL_WINDOW_DAYS} "
              f"AND t_untreated > days_to_end + {float(sorafenib_hr)!r}D "
              f"AND NOT no_mbsf AND {covered(str(last_idx), 'abd', alive='TRUE')} "
              f"AND {u('study_end_fill')} < {STUDY_END_FIRST_FILL_SHARE!r}D")
    p = stage(p, {"first_fill_day": f"CASE WHEN {at_end} THEN days_to_end ELSE first_fill_raw END"})
    # piecewise-exponential inversion: the hazard is multiplied by the HR from the first fill day
    t_days = (f"CASE WHEN dco THEN CAST({rng.uniform_int('dco_death', -14, 14)} AS DOUBLE) "
              f"WHEN planned AND t_untreated > first_fill_day "
              f"THEN first_fill_day + (t_untreated - first_fill_day) / {float(sorafenib_hr)!r}D "
              f"ELSE t_untreated END")
    p = stage(p, {"death_day": f"CAST(floor(least({t_days}, 60000.0D)) AS INT)"})
    p = stage(p, {
        "death_true": add_days("dx_date", "death_day"),
        "treated": f"planned AND death_day > first_fill_day AND {add_days('dx_date', 'first_fill_day')} <= {end}",
    })
    p = stage(p, {
        "death_idx": month_index("death_true"),
        "death_observed": f"death_true <= {end}",
        "obs_end": f"least(death_true, {end})",
        "first_year": f"greatest(dx_year - 2, {calendar.first_year})",
    })
    p = stage(p, {
        "death_date": "CASE WHEN death_observed THEN death_true END",
        "obs_start": "make_date(first_year, 1, 1)",
        "last_year": f"CASE WHEN death_observed THEN year(death_true) ELSE {calendar.last_year} END",
    })
    p = stage(p, {"n_years": "last_year - first_year + 1"})
    stale_p = min(1.0, STALE_DEATH_PER_DIRTY_RATE * dirty_rate)
    p = stage(p, {
        # only interior years go missing, so the hole shows between a person's rows
        "missing_year": f"CASE WHEN {u('missing_year')} < 0.02D AND n_years >= 3 "
                        f"THEN first_year + 1 + {uniform_int(u('missing_which'), 0, 'n_years - 3')} END",
        "stale_death": f"death_observed AND death_where <> 'seer_only' AND n_years >= 2 "
                       f"AND {u('stale_death')} < {stale_p!r}D",
        "stale_death_date": add_days("death_true", f"-{rng.uniform_int('stale_days', 30, 400)}"),
        # second tumor (15%); for HCC persons it is sometimes the earlier one
        "b_first": f"is_hcc AND {u('b_first')} < 0.3D",
        "b_site": f"CASE WHEN sex = '1' "
                  f"THEN {rng.choice('b_site', [('lung', 0.4), ('colon', 0.35), ('prostate', 0.25)])} "
                  f"ELSE {rng.choice('b_site', [('lung', 0.35), ('colon', 0.35), ('breast', 0.30)])} END",
        "b_months": rng.uniform_int("b_months", 6, 60),
    })
    p = stage(p, {
        # the MBSF dates a death exactly (and wins over SEER's month in the mapping) when
        # its death year row exists; persons with a death year before their first MBSF
        # year (a death certificate before the diagnosis month) have none
        "death_in_mbsf": "death_observed AND death_where <> 'seer_only' AND NOT no_mbsf AND n_years >= 1",
        "covered_at_end": f"NOT death_observed AND {mbsf_row(str(calendar.last_year))} "
                          f"AND {covered(str(last_idx), 'abd')}",
    })
    p = stage(p, {
        # a death known only from SEER is recorded as day 15 of its month, as the mapping imputes
        "death_seer_imputed": "CASE WHEN death_observed AND death_where <> 'mbsf_only' AND NOT death_in_mbsf "
                              "THEN make_date(year(death_true), month(death_true), 15) END",
        "late_claims": f"death_in_mbsf AND {u('late_claims')} < {POST_DEATH_CLAIM_SHARE!r}D",
        "late_fills": f"death_in_mbsf AND has_partd AND NOT rds AND partd_start_idx <= death_idx "
                      f"AND {u('late_fills')} < {POST_DEATH_FILL_SHARE!r}D",
    })
    p = stage(p, {"b_idx": f"CASE WHEN b_first THEN greatest(dx_idx - b_months, {first_idx}) "
                           f"ELSE dx_idx + least(b_months, 48) END"})
    p = stage(p, {"b_date": "make_date(CAST(floor(b_idx / 12) AS INT), CAST(pmod(b_idx, 12) + 1 AS INT), 15)"})
    b_topo = " ".join(f"WHEN b_site = {lit(n)} THEN {pick(u('b_topography'), t)}" for n, (t, _h, _c) in SITES.items())
    b_hist = " ".join(f"WHEN b_site = {lit(n)} THEN {choice(u('b_histology'), h)}" for n, (_t, h, _c) in SITES.items())
    p = stage(p, {
        "has_b": f"{u('two_tumors')} < 0.15D AND (b_first OR (b_date <= obs_end AND b_idx <= {last_idx}))",
        "b_topography": f"CASE {b_topo} END",
        "b_histology": f"CASE {b_hist} END",
        "b_stage": rng.choice("b_stage", [s for s in OTHER_STAGES if s[0] != "0"]),
        "b_month_unknown": f"{u('b_month_unknown')} < 0.02D",
    })

    # HCC-directed therapy (mostly localized), dated around the study's [-30, +60] window
    therapy_key = "CASE WHEN stage = '1' THEN '1' WHEN stage IN ('2', '4') THEN 'advanced' ELSE '9' END"
    therapy_type = " ".join(f"WHEN ({therapy_key}) = {lit(k)} THEN {rng.choice('therapy_type', types)}"
                            for k, (_p, types) in THERAPY_BY_STAGE.items())
    therapy_p = case(f"({therapy_key})", {k: v[0] for k, v in THERAPY_BY_STAGE.items()}, 0.0)
    day_kind = "u_therapy_day_kind"
    cuts, total, cumulative = [], sum(w for _, w in THERAPY_DAYS), 0.0
    for d, w in THERAPY_DAYS:
        cumulative += w / total
        cuts.append((d, cumulative))
    day_branches = " ".join(
        f"WHEN {day_kind} < {cut!r}D THEN "
        + (str(d) if isinstance(d, int) else rng.uniform_int("therapy_day", -30, 60) if d == "inside"
           else rng.uniform_int("therapy_day", 62, 180))
        for d, cut in cuts[:-1])
    last = cuts[-1][0]
    last_expr = str(last) if isinstance(last, int) else rng.uniform_int("therapy_day", 62, 180)
    p = stage(p, {"u_therapy_day_kind": u("therapy_day_kind")})
    p = stage(p, {
        "therapy_raw": f"CASE WHEN is_hcc AND NOT dco AND {u('therapy')} < {therapy_p} "
                       f"THEN CASE {therapy_type} END END",
        "therapy_day": f"CASE {day_branches} ELSE {last_expr} END",
    })
    p = stage(p, {"therapy": f"CASE WHEN therapy_day < death_day AND {add_days('dx_date', 'therapy_day')} <= {end} "
                             f"AND {add_days('dx_date', 'therapy_day')} >= obs_start THEN therapy_raw END"})
    p = _sorafenib_course(p, rng, calendar)
    return p.drop(*[c for c in p.columns if c in _INTERMEDIATE or c.startswith("u_")])


# person columns only the model itself needs: dropped before the persons are stored
_INTERMEDIATE = {"other_site", "dx_month", "age_group", "has_partd_draw", "partd_late", "hmo_kind", "hmo_value_draw",
                 "parta_only", "gap", "gap_offset", "site_group", "t_untreated", "treat_prob", "planned", "b_months",
                 "first_fill_raw", "days_to_end", "late_lag",
                 "b_idx", "b_site", "therapy_raw", "sor_n", "sor_all", "era1", "era1_last", "era1_end",
                 "tki_offset", "tki_candidate", "ici_candidate"}


def _sorafenib_course(p: DataFrame, rng: RandomSource, calendar: Calendar) -> DataFrame:
    """Sorafenib fills (array of structs i/day/supply/gap), second-line TKI and ICI starts."""
    end = calendar.study_end_sql
    cfg = SORAFENIB_FILLS
    u = rng.uniform

    def supply(i):
        return f"CAST({rng.choice('sor_supply', cfg['days_supply'], i)} AS INT)"

    def gap(i):
        return (f"(CASE WHEN {u('sor_long_gap', i)} < {cfg['long_gap_probability']!r}D "
                f"THEN {rng.uniform_int('sor_gap', *cfg['long_gap_days'], i)} "
                f"ELSE {rng.uniform_int('sor_gap', *cfg['refill_gap_days'], i)} END)")

    def step(i):
        return f"({supply(i)} + {gap(i)})"

    # day of fill i = first fill day + the (supply + gap) of every fill before it
    day = (f"first_fill_day + aggregate(transform(sequence(0, xi), xj -> {step('xj')}), 0, (acc, xv) -> acc + xv)"
           f" - {step('xi')}")
    fill = f"named_struct('i', xi, 'day', {day}, 'supply', {supply('xi')}, 'gap', {gap('xi')})"
    p = stage(p, {"sor_n": f"1 + {rng.geometric('sor_n', cfg['extra_fills_geometric_p'], max_k=cfg['max_fills'] - 1)}",
                  "prior_sorafenib_day": f"CASE WHEN is_hcc AND {u('prior_sorafenib')} < 0.02D "
                                         f"THEN -{rng.uniform_int('prior_sorafenib_day', 1, 365)} END"})
    p = stage(p, {"sor_all": f"CASE WHEN treated THEN filter(transform(sequence(0, sor_n - 1), xi -> {fill}), "
                             f"xf -> xf.day < death_day AND {add_days('dx_date', 'xf.day')} <= {end}) END"})
    # the first era ends at the first refill gap longer than the study's 30-day grace
    p = stage(p, {"era1_last": f"coalesce(array_min(transform(filter(sor_all, xf -> xf.gap > 30), xf -> xf.i)), "
                               f"{cfg['max_fills']})"})
    p = stage(p, {"era1": "filter(sor_all, xf -> xf.i <= era1_last)"})
    p = stage(p, {"era1_end": "aggregate(era1, -100000, (acc, xf) -> greatest(acc, xf.day + xf.supply - 1))",
                  "u_tki": u("tki"),
                  "tki_offset": rng.uniform_int("tki_day", *SECOND_LINE["tki_start_days_after_era"])})
    p = stage(p, {"tki_candidate": "era1_end + tki_offset",
                  "late_lag": f"CASE WHEN {u('late_first_fill_on_death_day')} < {FIRST_FILL_ON_DEATH_DAY_SHARE!r}D "
                              f"THEN 0 ELSE {rng.uniform_int('late_first_fill_lag', *POST_DEATH_DAYS)} END"})
    # persons planned for a drug who died before its first fill: sometimes it is filled anyway
    late_first = (f"death_in_mbsf AND {u('late_first_fill')} < {POST_DEATH_FIRST_FILL_SHARE!r}D "
                  f"AND {add_days('dx_date', 'death_day + late_lag')} <= {end}")
    p = stage(p, {
        "tki_day": f"CASE WHEN treated AND u_tki < {SECOND_LINE['tki_probability']!r}D "
                   f"AND tki_candidate < death_day AND {add_days('dx_date', 'tki_candidate')} <= {end} "
                   f"THEN tki_candidate END",
        "tki_late_day": f"CASE WHEN treated AND u_tki < {SECOND_LINE['tki_probability']!r}D "
                        f"AND tki_candidate >= death_day AND {late_first} THEN death_day + late_lag END",
        # no sorafenib before the diagnosis either, so this fill is the person's first
        "sor_late_day": f"CASE WHEN planned AND death_day <= first_fill_day AND prior_sorafenib_day IS NULL "
                        f"AND {late_first} THEN death_day + late_lag END",
    })
    p = stage(p, {"ici_candidate": f"tki_day + {rng.uniform_int('ici_day', *SECOND_LINE['ici_first_days_after_tki'])}"})
    return stage(p, {
        # a person moving on to a second-line TKI stops sorafenib after the first era
        "sor_fills": "CASE WHEN tki_day IS NOT NULL THEN era1 ELSE sor_all END",
        "ici_day": f"CASE WHEN tki_day IS NOT NULL AND {u('ici')} < {SECOND_LINE['ici_probability']!r}D "
                   f"AND ici_candidate < death_day AND {add_days('dx_date', 'ici_candidate')} <= {end} "
                   f"THEN ici_candidate END",
        "tki_drug": rng.choice("tki_drug", [(i, t[4]) for i, t in enumerate(TKI)]),
        "tki_gap": rng.uniform_int("tki_gap", 0, 6),
        "tki_n": f"1 + {rng.geometric('tki_n', 0.4, max_k=8)}",
        "ici_drug": rng.choice("ici_drug", [(i, t[3]) for i, t in enumerate(ICI)]),
        "ici_n": f"1 + {rng.geometric('ici_n', 0.3, max_k=9)}",
        "ici_setting": f"CASE WHEN {u('ici_setting')} < 0.5D THEN 'carrier' ELSE 'outpatient' END",
        "sor_branded": f"{u('sor_branded')} < 0.7D",
        "sor_tabs_per_day": f"CASE WHEN {u('sor_tabs')} < 0.8D THEN 4 ELSE 2 END",
    })


# --------------------------------------------------------------------------- month status
def month_status(m: str, alive: str | None = None) -> dict[str, Sql]:
    """Enrollment codes of a person for month index m (year*12 + month-1), as SQL over person columns.

    ``alive``: SQL for "alive in month m" when ``death_idx`` is not known yet.
    """
    m = f"({m})"
    alive = f"({alive or f'{m} <= death_idx'})"
    in_parta = f"(parta_start IS NOT NULL AND {m} >= parta_start AND {m} < parta_start + parta_len)"
    in_hmo = f"(hmo_value IS NOT NULL AND {m} >= hmo_start AND {m} < hmo_start + hmo_len)"
    partd_on = f"(has_partd AND {m} >= partd_start_idx)"
    return {
        "buyin": Sql(f"CASE WHEN NOT {alive} THEN '0' WHEN {m} = gap_idx THEN '0' WHEN {in_parta} THEN '1' "
                     f"WHEN dual THEN 'C' ELSE '3' END"),
        "hmo": Sql(f"CASE WHEN {alive} AND {in_hmo} THEN hmo_value ELSE '0' END"),
        "ptd": Sql(f"CASE WHEN NOT {alive} THEN '0' WHEN rds THEN rds_contract WHEN {partd_on} THEN contract "
                   f"ELSE nopd_value END"),
        "rds": Sql(f"CASE WHEN {alive} AND rds THEN 'Y' ELSE 'N' END"),
        "dual": Sql(f"CASE WHEN NOT {alive} THEN '00' WHEN dual THEN dual_code ELSE nondual_code END"),
        "partd_covered": Sql(f"({alive} AND {partd_on} AND NOT rds)"),
    }


# entitlement codes that cover a Part, as the seer-medicare mapping reads them
PART_CODES = {"a": ("1", "3", "A", "C"), "b": ("2", "3", "B", "C")}


def covered(m: str, parts: str, alive: str | None = None) -> Sql:
    """SQL: the MBSF codes of month m cover every Part in ``parts`` ("a", "b", "d", e.g. "abd").

    Part D counts as covered when a Part D contract holds and no retiree drug subsidy
    (then PDE has the claims). Whether the person has an MBSF row that year is ``mbsf_row``.
    """
    status = month_status(m, alive)
    tests = [f"({status['buyin']} IN ({', '.join(lit(c) for c in PART_CODES[x])}))" if x in PART_CODES
             else f"({status['partd_covered']})" for x in parts]
    return Sql("(" + " AND ".join(tests) + ")")


def mbsf_row(y: str) -> Sql:
    """SQL: the person has an MBSF row for year y (see ``person_years``)."""
    return Sql(f"(NOT no_mbsf AND ({y}) BETWEEN first_year AND last_year "
               f"AND (missing_year IS NULL OR ({y}) <> missing_year))")


# --------------------------------------------------------------------------- seer_cancer
def seer_cancer(p: DataFrame) -> DataFrame:
    """One row per tumor: the index tumor and, for some, a second primary."""
    def tumor(seq, d, month_unknown, topo, hist, behavior, stage_, src):
        return (f"named_struct('seq', {seq}, 'year', CAST(year({d}) AS STRING), "
                f"'month', CASE WHEN {month_unknown} THEN '99' ELSE CAST(month({d}) AS STRING) END, "
                f"'topo', {topo}, 'hist', {hist}, 'behavior', {behavior}, 'stage', {stage_}, 'src', {src})")

    index_seq = "CASE WHEN NOT has_b THEN '00' WHEN b_first THEN '02' ELSE '01' END"
    index = tumor(index_seq, "dx_date", "month_unknown", "primary_site", "histology", "behavior", "stage", "report_src")
    second = tumor("CASE WHEN b_first THEN '01' ELSE '02' END", "b_date", "b_month_unknown", "b_topography",
                   "b_histology", "'3'", "b_stage", "'1'")
    rows = p.selectExpr(
        "pid", "CASE WHEN death_observed AND death_where <> 'mbsf_only' THEN death_true END AS seer_dod",
        f"explode(CASE WHEN has_b THEN array({index}, {second}) ELSE array({index}) END) AS t")
    return project(rows, {
        "PATIENT_ID": "pid", "SEQUENCE_NUMBER": "t.seq", "YEAR_OF_DIAGNOSIS": "t.year", "MONTH_OF_DIAGNOSIS": "t.month",
        "PRIMARY_SITE": "t.topo", "HISTOLOGIC_TYPE_ICD_O_3": "t.hist", "BEHAVIOR_CODE_ICD_O_3": "t.behavior",
        "SEER_HISTORIC_STAGE_A": "t.stage", "TYPE_OF_REPORTING_SOURCE": "t.src",
        "SEER_DOD_YEAR": "CAST(year(seer_dod) AS STRING)", "SEER_DOD_MONTH": "CAST(month(seer_dod) AS STRING)",
    })


# --------------------------------------------------------------------------- mbsf
def person_years(p: DataFrame) -> DataFrame:
    """Person x enrollment year rows (missing years and persons without MBSF already removed)."""
    years = p.filter("NOT no_mbsf").selectExpr("*", f"explode({indices('n_years')}) AS yi")
    years = stage(years, {"year": "first_year + yi"})
    return years.filter("missing_year IS NULL OR year <> missing_year")


def mbsf_death_date() -> Sql:
    """The death date an MBSF (or DE-SynPUF summary) row of ``year`` shows, stale ones included."""
    return Sql("CASE WHEN death_observed AND death_where <> 'seer_only' AND year = year(death_true) THEN death_true "
               "WHEN stale_death AND year = first_year THEN stale_death_date END")


def mbsf(p: DataFrame) -> DataFrame:
    """One row per person and enrollment year, monthly entitlement, HMO, Part D, dual codes."""
    y = stage(person_years(p), {"mbsf_death": mbsf_death_date()})
    cols = {"PATIENT_ID": "pid", "BENE_ENROLLMT_REF_YR": "CAST(year AS STRING)",
            "BENE_BIRTH_DT": ymd("birth_date"), "BENE_DEATH_DT": ymd("mbsf_death"),
            "VALID_DEATH_DT_SW": "CASE WHEN mbsf_death IS NOT NULL THEN 'V' END",
            "SEX_IDENT_CD": "sex", "BENE_RACE_CD": "race"}
    status = [month_status(f"year * 12 + {k}") for k in range(12)]
    for field, prefix in [("buyin", "MDCR_ENTLMT_BUYIN_IND"), ("hmo", "HMO_IND"), ("ptd", "PTD_CNTRCT_ID"),
                          ("rds", "RDS_IND"), ("dual", "DUAL_STUS_CD")]:
        cols.update({f"{prefix}_{MONTHS[k]}": status[k][field] for k in range(12)})
    return project(y, cols)


# --------------------------------------------------------------------------- claim events
EVENT_PERSON_COLS = ["id", "pid", "dx_date", "obs_start", "obs_end", "pool", "cancer_dx"]
# what the timing bits of a claim or fill read of its person (deaths, MBSF coverage)
TIMING_PERSON_COLS = ["death_true", "death_in_mbsf", "death_seer_imputed", "no_mbsf", "first_year", "last_year",
                      "missing_year", "death_idx", "gap_idx", "parta_start", "parta_len", "dual", "has_partd",
                      "partd_start_idx", "rds", "covered_at_end"]
SRC_CONDITION, SRC_CANCER, SRC_BACKGROUND, SRC_THERAPY, SRC_ICI, SRC_AFTER_DEATH = 1, 2, 3, 4, 5, 6
LINE_TYPE = "ARRAY<STRUCT<hcpcs: STRING, rev: STRING, units: STRING>>"
PROC_TYPE = "ARRAY<STRUCT<code: STRING, shift_days: INT, no_date: BOOLEAN>>"

# Bits of the ``timing`` column of a claim (event) or fill, set from its date (a claim's
# first date: admission, from-date; a fill's service date); ``timing_counts`` counts them.
AFTER_DEATH = 1        # after a death the MBSF dates exactly
AFTER_SEER_DEATH = 2   # after day 15 of the month of a death known only from SEER
OUTSIDE_COVERAGE = 4   # no MBSF row that year, or the month does not cover the table's Part
ON_DEATH_DAY = 8       # on the day of a death the MBSF dates
ON_STUDY_END = 16      # on the study's last day
COVERED_AT_END = 32    # (the person's) alive and covered by Parts A, B and D in the study's last month


def timing_bits(d: str, parts: str, study_end: Sql) -> Sql:
    """SQL: the ``timing`` bits of a claim or fill dated ``d`` whose table implies coverage ``parts``.

    ``parts`` is SQL giving "a", "b" or "d" (the Part the claim is paid by).
    """
    d = f"({d})"
    m = month_index(d)
    uncovered = (f"NOT coalesce({mbsf_row(f'year({d})')} AND CASE {parts} "
                 + " ".join(f"WHEN {lit(x)} THEN {covered(m, x)}" for x in "abd") + " END, FALSE)")
    bits = [(AFTER_DEATH, f"death_in_mbsf AND {d} > death_true"), (AFTER_SEER_DEATH, f"{d} > death_seer_imputed"),
            (OUTSIDE_COVERAGE, uncovered), (ON_DEATH_DAY, f"death_in_mbsf AND {d} = death_true"),
            (ON_STUDY_END, f"{d} = {study_end}"), (COVERED_AT_END, "covered_at_end")]
    return Sql("(" + " + ".join(f"CASE WHEN {cond} THEN {bit} ELSE 0 END" for bit, cond in bits) + ")")


def _event(df: DataFrame, src: int, k: str, setting: str, clm_date: str, principal: str,
           procs: str = "NULL", lines: str = "NULL", admit_shift: str = "0") -> DataFrame:
    return df.selectExpr(*EVENT_PERSON_COLS, *TIMING_PERSON_COLS, f"{src} AS src", f"CAST({k} AS INT) AS k",
                         f"{setting} AS setting", f"{clm_date} AS clm_date", f"CAST({principal} AS STRING) AS principal",
                         f"CAST({procs} AS {PROC_TYPE}) AS procs_given", f"CAST({lines} AS {LINE_TYPE}) AS lines_given",
                         f"CAST({admit_shift} AS INT) AS admit_shift")


def _setting(u: str, carrier: float, outpatient: float, inpatient: float) -> Sql:
    return choice(u, [("carrier", carrier), ("outpatient", outpatient), ("inpatient", inpatient)])


def claim_events(p: DataFrame, seed: int, calendar: Calendar) -> DataFrame:
    """Every claim a person has, one row per claim, before it is laid out in a table.

    Columns: person columns, src/k (claim key within the person), setting (carrier,
    outpatient, inpatient), clm_date, principal, procs_given, lines_given, admit_shift,
    timing (bits: ``timing_bits``); ``finish_events`` adds secondary diagnoses, default
    lines and procedures.
    """
    rng = RandomSource(seed, "id")
    u = rng.uniform
    end = calendar.study_end_sql
    partitions = p.rdd.getNumPartitions()
    base = p.select(*EVENT_PERSON_COLS, *TIMING_PERSON_COLS, "active_conditions", "therapy", "therapy_day", "ici_day",
                    "ici_drug", "ici_n", "ici_setting", "death_day", "late_claims")

    # 1. conditions: the first occurrence falls in months -12..-1 before the diagnosis
    # month ([-350, -15] days from the 15th), later ones anywhere in the year around it
    cond = base.selectExpr("*", "explode(active_conditions) AS ci")
    cond = cond.selectExpr("*", f"explode(sequence(0, {rng.poisson('cond_n', 0.9, 'ci', max_k=4)})) AS occ")
    codes = f"element_at(array({', '.join(str_array(c[2]) for c in CONDITIONS)}), ci + 1)"
    day = (f"CASE WHEN occ = 0 THEN {rng.uniform_int('cond_day0', -350, -15, 'ci')} "
           f"ELSE {rng.uniform_int('cond_day', -365, 365, 'ci', 'occ')} END")
    cond = _event(cond, SRC_CONDITION, "ci * 10 + occ", _setting(u("cond_setting", "ci", "occ"), 0.6, 0.3, 0.1),
                  add_days("dx_date", day),
                  f"element_at({codes}, {uniform_int(u('cond_code', 'ci', 'occ'), 1, f'size({codes})')})")

    # 2. the index cancer's own diagnosis code around diagnosis (work-up, follow-up)
    can = base.selectExpr("*", f"explode({indices(rng.uniform_int('cancer_n', 2, 6))}) AS j")
    imaging = (f"CASE WHEN {u('cancer_img_p', 'j')} < 0.5D THEN array(named_struct('hcpcs', "
               f"{rng.pick('cancer_img', ['74177', '74160', '76700', '71250'], 'j')}, 'rev', '0350', 'units', '1')) END")
    can = _event(can, SRC_CANCER, "j", _setting(u("cancer_setting", "j"), 0.6, 0.3, 0.1),
                 add_days("dx_date", rng.uniform_int("cancer_day", -40, 180, "j")), "cancer_dx", lines=imaging)

    # 3. background visits: about 2.5 a year of observation, at least one
    mean = f"(datediff(obs_end, obs_start) * {2.5 / 365.25!r}D)"
    n_bg = f"greatest(1, least(400, round({rng.normal('bg_n', mean=mean, sd=f'sqrt({mean} + 1.0D)')})))"
    bg = base.selectExpr("*", f"explode({indices(n_bg)}) AS j")
    bg_principal = (f"CASE WHEN {u('bg_pool', 'j')} < 0.7D THEN {rng.pick('bg_code', BACKGROUND_DX, 'j')} "
                    f"ELSE element_at(pool, {uniform_int(u('bg_pool_code', 'j'), 1, 'size(pool)')}) END")
    bg = _event(bg, SRC_BACKGROUND, "j", _setting(u("bg_setting", "j"), 0.75, 0.2, 0.05),
                add_days("obs_start", uniform_int(u("bg_day", "j"), 0, "datediff(obs_end, obs_start)")), bg_principal)

    # 4. HCC-directed therapy: one or two claims, each by one of the therapy's routes
    routes = "map(" + ", ".join(
        f"{lit(t)}, array(" + ", ".join(f"named_struct('setting', {lit(s)}, 'kind', {lit(kd)}, 'code', {lit(cd)})"
                                        for s, kd, cd in r) + ")"
        for t, r in THERAPY_ROUTES.items()) + ")"
    th = base.filter("therapy IS NOT NULL")
    n_claims = f"1 + CAST({u('therapy_claims')} < 0.5D AS INT)"
    th = th.selectExpr("*", f"explode({indices(n_claims)}) AS j")
    th = stage(th, {"route_list": f"{routes}[therapy]",
                    "no_date": f"{u('therapy_proc_no_date', 'j')} < 0.10D"})
    th = stage(th, {"route": f"element_at(route_list, {uniform_int(u('therapy_route', 'j'), 1, 'size(route_list)')})"})
    th = _event(
        th, SRC_THERAPY, "j", "route.setting", add_days("dx_date", "therapy_day"),
        f"CASE WHEN route.kind = 'dx' THEN route.code ELSE {lit(HCC_DX)} END",
        procs="CASE WHEN route.kind = 'icd_proc' THEN array(named_struct('code', route.code, 'shift_days', 0, "
              "'no_date', no_date)) END",
        lines="CASE WHEN route.kind = 'hcpcs' THEN array(named_struct('hcpcs', route.code, 'rev', "
              "CASE WHEN route.code = '77412' THEN '0333' ELSE '0360' END, 'units', '1')) END",
        # the stay starts a day or two before the surgery, unless the surgery date is
        # missing: then the admission date (the study's fallback) is the surgery day
        admit_shift=f"CASE WHEN route.kind = 'icd_proc' AND NOT no_date "
                    f"THEN {rng.uniform_int('therapy_admit_shift', 0, 2, 'j')} ELSE 0 END")

    # 5. immune checkpoint inhibitor administrations (second line with a TKI)
    ici = base.filter("ici_day IS NOT NULL").selectExpr("*", f"explode({indices('ici_n')}) AS j")
    ici = stage(ici, {"ici_d": f"ici_day + j * element_at(array({', '.join(str(t[1]) for t in ICI)}), ici_drug + 1)"})
    ici = ici.filter("ici_d < death_day")
    ici = _event(ici, SRC_ICI, "j", "ici_setting", add_days("dx_date", "ici_d"), lit(HCC_DX),
                 lines=f"array(named_struct('hcpcs', element_at({str_array([t[0] for t in ICI])}, ici_drug + 1), "
                       f"'rev', '0636', 'units', element_at({str_array([t[2] for t in ICI])}, ici_drug + 1)))")

    # 6. physician, outpatient and lab services billed with a date after death (one or two)
    n_late = f"1 + CAST({u('late_claim_n')} < 0.3D AS INT)"
    late = base.filter("late_claims").selectExpr("*", f"explode({indices(n_late)}) AS j")
    late = _event(late, SRC_AFTER_DEATH, "j",
                  choice(u("late_claim_setting", "j"), [("carrier", 0.7), ("outpatient", 0.3)]),
                  add_days("death_true", rng.uniform_int("late_claim_day", *POST_DEATH_DAYS, "j")),
                  f"element_at(pool, {uniform_int(u('late_claim_code', 'j'), 1, 'size(pool)')})")

    events = cond.unionByName(can).unionByName(bg).unionByName(th).unionByName(ici).unionByName(late)
    # back to the person table's partition count: fewer, fuller tasks downstream
    events = events.filter(f"(clm_date >= obs_start AND clm_date <= obs_end) "
                           f"OR (src = {SRC_AFTER_DEATH} AND clm_date <= {end})")
    # a stay's first date is its admission; Part A pays stays, Part B the rest
    events = stage(events, {"first_date": "CASE WHEN setting = 'inpatient' THEN date_sub(clm_date, admit_shift) "
                                          "ELSE clm_date END",
                            "part": "CASE WHEN setting = 'inpatient' THEN 'a' ELSE 'b' END"})
    events = stage(events, {"timing": timing_bits("first_date", "part", end)})
    events = events.drop(*TIMING_PERSON_COLS, "first_date", "part")
    return events.coalesce(partitions)


def finish_events(events: DataFrame, seed: int) -> DataFrame:
    """Add ``dx`` (principal first, then secondary codes), ``line_list``, ``proc_list``, ``los``, ``claim_no``."""
    rng = RandomSource(seed, "id")
    u = rng.uniform
    key = ("src", "k")
    e = stage(events, {"u_ndx": u("n_dx", *key), "u_nlines": u("n_lines", *key), "u_proc": u("has_proc", *key),
                       "los": f"1 + {rng.geometric('los', 0.25, *key, max_k=29)}"})
    n_extra = (f"CASE WHEN setting = 'inpatient' THEN 3 + CAST(floor(22.0D * power(u_ndx, 2.0D)) AS INT) "
               f"WHEN setting = 'outpatient' THEN "
               f"{choice('u_ndx', [(0, 0.3), (1, 0.25), (2, 0.2), (3, 0.1), (5, 0.08), (8, 0.05), (24, 0.02)])} "
               f"ELSE {choice('u_ndx', [(0, 0.4), (1, 0.3), (2, 0.15), (3, 0.1), (11, 0.05)])} END")
    n_lines = (f"CASE WHEN setting = 'carrier' THEN {choice('u_nlines', [(1, 0.55), (2, 0.3), (3, 0.15)])} "
               f"ELSE {choice('u_nlines', [(1, 0.35), (2, 0.3), (3, 0.2), (4, 0.15)])} END")
    n_proc = (f"CASE WHEN setting = 'inpatient' AND u_proc < 0.4D THEN {rng.uniform_int('n_proc', 1, 3, *key)} "
              f"WHEN setting = 'outpatient' AND u_proc < 0.03D THEN {rng.uniform_int('n_proc', 1, 3, *key)} "
              f"ELSE 0 END")
    e = stage(e, {"n_extra": n_extra, "n_lines": n_lines, "n_proc": n_proc})
    extra_code = f"element_at(pool, {uniform_int(u('dx_extra', *key, 'xe'), 1, 'size(pool)')})"
    extras = f"transform({indices('n_extra')}, xe -> {extra_code})"
    carrier_line = (f"named_struct('hcpcs', CASE WHEN xl = 0 THEN {rng.choice('em', CARRIER_EM, *key)} "
                    f"ELSE {rng.pick('line_code', CARRIER_OTHER, *key, 'xl')} END, "
                    f"'rev', CAST(NULL AS STRING), 'units', '1')")
    op_pairs = "array(" + ", ".join(
        f"named_struct('hcpcs', CAST({lit(h)} AS STRING), 'rev', {lit(r)}, 'units', '1')" for r, h in OUTPATIENT_LINES) + ")"
    outpatient_line = f"element_at({op_pairs}, {uniform_int(u('rev_line', *key, 'xl'), 1, len(OUTPATIENT_LINES))})"
    default_lines = (f"CAST(CASE WHEN setting = 'carrier' THEN transform({indices('n_lines')}, xl -> {carrier_line}) "
                     f"WHEN setting = 'outpatient' THEN transform({indices('n_lines')}, xl -> {outpatient_line}) END "
                     f"AS {LINE_TYPE})")
    bg_proc = (f"named_struct('code', CASE WHEN setting = 'inpatient' "
               f"THEN {rng.pick('proc_code', INPATIENT_PROCS, *key, 'xp')} "
               f"ELSE {rng.pick('proc_code', OUTPATIENT_PROCS, *key, 'xp')} END, "
               f"'shift_days', CASE WHEN setting = 'inpatient' "
               f"THEN {rng.uniform_int('proc_day', 0, 'los - 1', *key, 'xp')} ELSE 0 END, "
               f"'no_date', {u('proc_no_date', *key, 'xp')} < 0.10D)")
    return events_columns(stage(e, {
        "dx": f"array_distinct(concat(array(principal), {extras}))",
        "line_list": f"coalesce(lines_given, {default_lines})",
        "proc_list": f"coalesce(procs_given, CAST(transform({indices('n_proc')}, xp -> {bg_proc}) AS {PROC_TYPE}))",
        "claim_no": "id * 10000 + src * 1000 + k",
    }))


def events_columns(e: DataFrame) -> DataFrame:
    """What the claim tables read of an event (the person's code pool is no longer needed)."""
    return e.select("id", "pid", "obs_end", "src", "k", "setting", "clm_date", "principal", "admit_shift", "los", "dx",
                    "line_list", "proc_list", "claim_no", "timing")


def claim_id(prefix: int) -> Sql:
    """Claim id text, unique per table: a table digit, then person, source and index."""
    return Sql(f"CAST({prefix * 10**14}L + claim_no AS STRING)")


def stay_dates(e: DataFrame) -> DataFrame:
    """Admission and discharge dates of inpatient events."""
    return stage(e, {"admission": add_days("clm_date", "-admit_shift"),
                     "discharge": f"least({add_days('clm_date', 'los')}, obs_end)"})


# --------------------------------------------------------------------------- claim tables
def _internal(row: str = "claim_no", year: str = "clm_date") -> dict[str, str]:
    # __row keys the dirty-row draws; __year gives an impossible date a plausible year
    return {"__row": row, "__year": f"year({year})"}


def timing_columns(drug: str = "CAST(NULL AS STRING)") -> dict[str, str]:
    """Internal columns ``timing_counts`` reads of a claim or fill table (not written)."""
    return {"__id": "id", "__timing": "timing", "__drug": drug}


def medpar(events: DataFrame) -> DataFrame:
    """Inpatient stays: admission, discharge, 25 diagnoses, 25 surgical procedures with dates."""
    e = stay_dates(events.filter("setting = 'inpatient'"))
    cols = {"PATIENT_ID": "pid", "MEDPAR_ID": claim_id(1), "ADMSN_DT": ymd("admission"), "DSCHRG_DT": ymd("discharge")}
    cols.update({f"DGNS_{i + 1}_CD": f"get(dx, {i})" for i in range(25)})
    cols.update({f"SRGCL_PRCDR_{i + 1}_CD": f"(get(proc_list, {i})).code" for i in range(25)})
    for i in range(25):
        proc = f"(get(proc_list, {i}))"
        performed = f"least({add_days('clm_date', proc + '.shift_days')}, discharge)"
        cols[f"SRGCL_PRCDR_PRFRM_{i + 1}_DT"] = (f"CASE WHEN {proc} IS NOT NULL AND NOT {proc}.no_date "
                                                f"THEN {ymd(performed)} END")
    return project(e, {**cols, **_internal(), **timing_columns()})


def nch_base(events: DataFrame) -> DataFrame:
    """Carrier claim headers: dates and up to 12 diagnoses (ICD_DGNS_CD1 repeats the principal)."""
    e = events.filter("setting = 'carrier'")
    cols = {"PATIENT_ID": "pid", "CLM_ID": claim_id(2), "CLM_FROM_DT": ymd("clm_date"), "CLM_THRU_DT": ymd("clm_date"),
            "PRNCPAL_DGNS_CD": "get(dx, 0)"}
    cols.update({f"ICD_DGNS_CD{i + 1}": f"get(dx, {i})" for i in range(12)})
    return project(e, {**cols, **_internal(), **timing_columns()})


def nch_line(events: DataFrame) -> DataFrame:
    """Carrier claim lines: HCPCS, line diagnosis, service count."""
    e = events.filter("setting = 'carrier'").selectExpr("*", "posexplode(line_list) AS (ln, line)")
    return project(e, {
        "PATIENT_ID": "pid", "CLM_ID": claim_id(2), "LINE_NUM": "CAST(ln + 1 AS STRING)",
        "LINE_1ST_EXPNS_DT": ymd("clm_date"), "LINE_LAST_EXPNS_DT": ymd("clm_date"), "HCPCS_CD": "line.hcpcs",
        "LINE_ICD_DGNS_CD": "element_at(dx, CAST(pmod(ln, size(dx)) + 1 AS INT))", "LINE_SRVC_CNT": "line.units",
        **_internal("claim_no * 100 + ln")})


def outpatient_base(events: DataFrame) -> DataFrame:
    """Outpatient claim headers: 25 diagnoses, 25 ICD-9 procedures with dates."""
    e = events.filter("setting = 'outpatient'")
    cols = {"PATIENT_ID": "pid", "CLM_ID": claim_id(3), "CLM_FROM_DT": ymd("clm_date"), "CLM_THRU_DT": ymd("clm_date"),
            "PRNCPAL_DGNS_CD": "get(dx, 0)"}
    cols.update({f"ICD_DGNS_CD{i + 1}": f"get(dx, {i})" for i in range(25)})
    cols.update({f"ICD_PRCDR_CD{i + 1}": f"(get(proc_list, {i})).code" for i in range(25)})
    cols.update({f"PRCDR_DT{i + 1}": f"CASE WHEN (get(proc_list, {i})) IS NOT NULL AND NOT (get(proc_list, {i})).no_date "
                                     f"THEN {ymd('clm_date')} END" for i in range(25)})
    return project(e, {**cols, **_internal(), **timing_columns()})


def outpatient_revenue(events: DataFrame, seed: int) -> DataFrame:
    """Outpatient revenue-center lines; about 10% without a line date (the claim date applies)."""
    rng = RandomSource(seed, "id")
    e = events.filter("setting = 'outpatient'").selectExpr("*", "posexplode(line_list) AS (ln, line)")
    return project(e, {
        "PATIENT_ID": "pid", "CLM_ID": claim_id(3), "CLM_LINE_NUM": "CAST(ln + 1 AS STRING)", "REV_CNTR": "line.rev",
        "REV_CNTR_DT": f"CASE WHEN {rng.uniform('rev_no_date', 'src', 'k', 'ln')} >= 0.10D THEN {ymd('clm_date')} END",
        "HCPCS_CD": "line.hcpcs", **_internal("claim_no * 100 + ln")})


# --------------------------------------------------------------------------- pde
FILL_PERSON_COLS = ["id", "pid", "dx_date", "obs_start", "obs_end", "death_day", "late_fills",
                    *TIMING_PERSON_COLS]
FILL_COLS = ["id", "pid", "fill_no", "fill_date", "ndc", "gnn", "bn", "qty", "days", "drug", "timing"]


def _fill(df: DataFrame, src: int, k: str, fill_date: str, ndc: str, gnn: str, bn: str, qty: str,
          days: str, drug: str | None = None) -> DataFrame:
    return df.selectExpr(*FILL_PERSON_COLS, f"CAST({src * 1000} + {k} AS BIGINT) AS fill_no",
                         f"{fill_date} AS fill_date", f"{ndc} AS ndc", f"{gnn} AS gnn", f"{bn} AS bn",
                         f"CAST({qty} AS STRING) AS qty", f"CAST({days} AS STRING) AS days",
                         f"CAST({lit(drug)} AS STRING) AS drug")


def fills(p: DataFrame, seed: int, calendar: Calendar) -> DataFrame:
    """Every Part D fill (background drugs, sorafenib, second-line TKIs), in covered months,
    plus the fills dated after death (auto-refills, first fills of a drug ordered before it).

    Columns ``FILL_COLS``: id, pid, fill_no (unique per person), fill_date, ndc, gnn, bn,
    qty, days, drug ('sorafenib', 'tki' or null), timing (bits: ``timing_bits``).
    """
    rng = RandomSource(seed, "id")
    u = rng.uniform
    end = calendar.study_end_sql
    partitions = p.rdd.getNumPartitions()

    def flag(name):
        return f"CAST(f_{name} AS DOUBLE)"

    use_p = [f"0.30D + 0.15D * {flag('diabetes')} + 0.10D * {flag('congestive_heart_failure')}",
             f"0.02D + 0.65D * {flag('diabetes')}", "0.30D",
             f"0.04D + 0.5D * {flag('congestive_heart_failure')} + 0.35D * {flag('ascites')}",
             f"0.02D + 0.5D * {flag('ascites')} + 0.15D * {flag('cirrhosis')}",
             f"0.01D + 0.7D * {flag('hepatic_encephalopathy')} + 0.05D * {flag('cirrhosis')}"]
    uses = ", ".join(f"{u('drug_use', i)} < ({prob})" for i, prob in enumerate(use_p))

    # background chronic drugs: a few fills each, anywhere in the observed years
    used = f"explode(filter(sequence(0, {len(DRUGS) - 1}), xd -> element_at(array({uses}), xd + 1))) AS d"
    bg = p.selectExpr(*FILL_PERSON_COLS, used)
    bg = bg.selectExpr("*", f"explode(sequence(0, 1 + {rng.poisson('drug_n', 3.0, 'd', max_k=10)})) AS j")
    bg = stage(bg, {"days_supply": f"CAST({rng.choice('drug_days', [(30, 0.6), (90, 0.4)], 'd', 'j')} AS INT)"})

    def drug(i):
        return f"element_at({str_array([x[i] for x in DRUGS])}, d + 1)"

    per_day = f"element_at(array({', '.join(str(x[4]) for x in DRUGS)}), d + 1)"
    bg = _fill(bg, 1, "d * 100 + j",
               add_days("obs_start", uniform_int(u("drug_day", "d", "j"), 0, "datediff(obs_end, obs_start)")),
               drug(1), drug(2), drug(3), f"days_supply * {per_day}", "days_supply")
    # auto-refills after death: some of the chronic drugs of a few decedents
    late_bg = p.filter("late_fills").selectExpr(*FILL_PERSON_COLS, used)
    late_bg = late_bg.filter(f"{u('late_refill', 'd')} < {POST_DEATH_REFILL_PER_DRUG!r}D")
    late_bg = _fill(late_bg, 5, "d", add_days("death_true", rng.uniform_int("late_refill_day", *POST_DEATH_DAYS, "d")),
                    drug(1), drug(2), drug(3), f"30 * {per_day}", "30")

    sor_cols = [*FILL_PERSON_COLS, "sor_branded", "sor_tabs_per_day"]
    ndc = f"CASE WHEN sor_branded THEN {lit(SORAFENIB_BRANDED[0])} ELSE {lit(SORAFENIB_OTHER[0])} END"
    gnn = f"CASE WHEN sor_branded THEN {lit(SORAFENIB_BRANDED[1])} ELSE {lit(SORAFENIB_OTHER[1])} END"
    bn = f"CASE WHEN sor_branded THEN {lit(SORAFENIB_BRANDED[2])} ELSE {lit(SORAFENIB_OTHER[2])} END"
    sor = p.filter("sor_fills IS NOT NULL").selectExpr(*sor_cols, "explode(sor_fills) AS fill")
    sor = _fill(sor, 2, "fill.i", add_days("dx_date", "fill.day"), ndc, gnn, bn, "fill.supply * sor_tabs_per_day",
                "fill.supply", "sorafenib")
    prior = p.filter("prior_sorafenib_day IS NOT NULL").selectExpr(*sor_cols, "prior_sorafenib_day")
    prior = _fill(prior, 3, "0", add_days("dx_date", "prior_sorafenib_day"), ndc, gnn, bn,
                  "30 * sor_tabs_per_day", "30", "sorafenib")
    late_sor = p.filter("sor_late_day IS NOT NULL").selectExpr(*sor_cols, "sor_late_day")
    late_sor = _fill(late_sor, 6, "0", add_days("dx_date", "sor_late_day"), ndc, gnn, bn,
                     "30 * sor_tabs_per_day", "30", "sorafenib")

    tki = p.filter("tki_day IS NOT NULL").selectExpr(*FILL_PERSON_COLS, "tki_day", "tki_drug", "tki_gap",
                                                     f"explode({indices('tki_n')}) AS j")
    tki = stage(tki, {"tki_fill_day": "tki_day + j * (30 + tki_gap)"}).filter("tki_fill_day < death_day")

    def tki_attr(i):
        return f"element_at({str_array([t[i] for t in TKI])}, tki_drug + 1)"

    tki = _fill(tki, 4, "j", add_days("dx_date", "tki_fill_day"), tki_attr(1), tki_attr(2), tki_attr(3), "30", "30",
                "tki")
    late_tki = p.filter("tki_late_day IS NOT NULL").selectExpr(*FILL_PERSON_COLS, "tki_late_day", "tki_drug")
    late_tki = _fill(late_tki, 7, "0", add_days("dx_date", "tki_late_day"), tki_attr(1), tki_attr(2), tki_attr(3),
                     "30", "30", "tki")

    allf = bg.unionByName(sor).unionByName(prior).unionByName(tki)
    m = month_index("fill_date")
    allf = allf.filter(f"has_partd AND NOT rds AND {m} >= partd_start_idx AND {m} <= death_idx "
                       f"AND fill_date >= obs_start AND fill_date <= obs_end")
    # fills after death bypass the coverage rule (they may fall after coverage ended) but
    # not the extract's end
    late = late_bg.unionByName(late_sor).unionByName(late_tki).filter(f"fill_date <= {end}")
    allf = stage(allf.unionByName(late), {"timing": timing_bits("fill_date", "'d'", end)})
    return allf.select(*FILL_COLS).coalesce(partitions)


def pde(f: DataFrame) -> DataFrame:
    """Part D events in the contract layout, from ``fills``."""
    return project(f, {
        "PATIENT_ID": "pid", "PDE_ID": f"CAST({4 * 10**14}L + id * 10000 + fill_no AS STRING)",
        "SRVC_DT": ymd("fill_date"), "PROD_SRVC_ID": "ndc", "QTY_DSPNSD_NUM": "qty", "DAYS_SUPLY_NUM": "days",
        "GNN": "gnn", "BN": "bn", **_internal("id * 10000 + fill_no", "fill_date"), **timing_columns("drug")})


# --------------------------------------------------------------------------- dirty rows
@dataclass(frozen=True)
class DirtySpec:
    """Which fields of a table may carry each kind of injected error."""

    code_cols: tuple[str, ...] = ()
    date_cols: tuple[str, ...] = ()
    quantity_cols: tuple[str, ...] = ()
    duplicates: bool = True


DIRTY_KINDS = ("duplicate_row", "trailing_blank_code", "impossible_date", "non_numeric_quantity")
DIRTY_FLAGS = ("__dup", "__tb", "__bad_date", "__non_numeric")
BAD_MONTH_DAYS = ["0231", "0230", "0431", "0631", "0931", "1131"]
NON_NUMERIC = ["3O", "thirty", "1O", "N/A"]


def inject_dirty(df: DataFrame, spec: DirtySpec, rate: float, seed: int, table: str) -> DataFrame:
    """Corrupt about ``rate`` of rows per kind, flagging them in __tb, __bad_date, __non_numeric, __dup.

    Needs ``__row`` (unique row key) and ``__year`` (a plausible year for bad dates).
    Duplicates are made last, so a duplicated row repeats its other corruptions too.
    """
    rng = RandomSource(seed, "__row")
    u = rng.uniform

    def which(kind, n):
        return uniform_int(u(f"dirty/{table}/{kind}/col"), 0, n - 1)

    def hit(kind, cols):
        return f"{u(f'dirty/{table}/{kind}')} < {float(rate)!r}D" if cols and rate > 0 else "FALSE"

    # a blank appended to an empty field would not show in the file: count only real changes
    tb_present = " OR ".join(f"({which('trailing', len(spec.code_cols))} = {i} AND `{c}` IS NOT NULL)"
                             for i, c in enumerate(spec.code_cols)) or "FALSE"
    df = stage(df, {"__tb": f"{hit('trailing', spec.code_cols)} AND ({tb_present})",
                    "__bad_date": hit("date", spec.date_cols), "__non_numeric": hit("quantity", spec.quantity_cols)})
    updates = {}
    for i, c in enumerate(spec.code_cols):
        updates[c] = (f"CASE WHEN __tb AND {which('trailing', len(spec.code_cols))} = {i} "
                      f"THEN concat(`{c}`, '  ') ELSE `{c}` END")
    bad_date = f"concat(CAST(__year AS STRING), {rng.pick(f'dirty/{table}/date/value', BAD_MONTH_DAYS)})"
    for i, c in enumerate(spec.date_cols):
        updates[c] = (f"CASE WHEN __bad_date AND {which('date', len(spec.date_cols))} = {i} "
                      f"THEN {bad_date} ELSE `{c}` END")
    bad_qty = rng.pick(f"dirty/{table}/quantity/value", NON_NUMERIC)
    for i, c in enumerate(spec.quantity_cols):
        updates[c] = (f"CASE WHEN __non_numeric AND {which('quantity', len(spec.quantity_cols))} = {i} "
                      f"THEN {bad_qty} ELSE `{c}` END")
    if updates:
        df = df.withColumns({c: F.expr(e) for c, e in updates.items()})
    copies = (f"CASE WHEN {u(f'dirty/{table}/duplicate')} < {float(rate)!r}D "
              f"THEN array(FALSE, TRUE) ELSE array(FALSE) END"
              if spec.duplicates and rate > 0 else "array(FALSE)")
    return df.selectExpr("*", f"explode({copies}) AS __dup")


SEER_DIRTY = {
    "medpar": DirtySpec(code_cols=("DGNS_1_CD",), date_cols=("ADMSN_DT", "DSCHRG_DT")),
    "nch_base": DirtySpec(code_cols=("PRNCPAL_DGNS_CD",), date_cols=("CLM_FROM_DT", "CLM_THRU_DT")),
    "nch_line": DirtySpec(code_cols=("LINE_ICD_DGNS_CD", "HCPCS_CD"),
                          date_cols=("LINE_1ST_EXPNS_DT", "LINE_LAST_EXPNS_DT"), quantity_cols=("LINE_SRVC_CNT",)),
    "outpatient_base": DirtySpec(code_cols=("PRNCPAL_DGNS_CD", "ICD_DGNS_CD1"),
                                 date_cols=("CLM_FROM_DT", "CLM_THRU_DT")),
    "outpatient_revenue": DirtySpec(code_cols=("REV_CNTR",), date_cols=("REV_CNTR_DT",)),
    "pde": DirtySpec(code_cols=("PROD_SRVC_ID",), date_cols=("SRVC_DT",),
                     quantity_cols=("QTY_DSPNSD_NUM", "DAYS_SUPLY_NUM")),
}


# --------------------------------------------------------------------------- truth
def true_parameters(dirty_rate: float, sorafenib_hr: float, calendar: Calendar) -> dict:
    """The generating model's parameters, as written to truth.json."""
    return {
        "study_end": calendar.study_end.isoformat(),
        "data_years": [calendar.first_year, calendar.last_year],
        "survival_model": {
            "form": "exponential proportional hazards from the index diagnosis date (the 15th of the month): "
                    "hazard = baseline_hazard_per_day[site][stage] * exp(lp), times sorafenib_hazard_ratio "
                    "from the first sorafenib fill day on",
            "baseline_hazard_per_day": BASELINE_HAZARD,
            "median_days_at_reference": MEDIAN_DAYS,
            "reference": {"age_years": AGE_CENTRE, "flags": "none", "comorbidity_count": 0},
            "log_hazard_ratios": SURVIVAL_LOG_HR,
            "hcc_distant_vs_regional_log_hr": math.log(MEDIAN_DAYS["hcc"]["2"] / MEDIAN_DAYS["hcc"]["4"]),
            "autopsy_or_death_certificate_only": "death within 14 days of the diagnosis date, untreated",
        },
        "sorafenib_hazard_ratio": sorafenib_hr,
        "treatment_model": {
            "form": "logistic; eligible = HCC index tumor, reporting source not 6/7, Part D (not RDS) in the "
                    "diagnosis month; a person who dies on or before the planned first fill day gets no fill",
            "intercept_by_stage": TREATMENT_INTERCEPT,
            "coefficients": TREATMENT_COEF,
            "covariates": "age_per_10_years = (age - 75) / 10; flags 0/1; dual = dual eligible",
            "first_fill_day": "floor(121 * u**1.5) days after diagnosis (0-120; about 63% by day 60); for a few "
                              "persons the study's last day (timing_anomalies_model)",
            "fills": SORAFENIB_FILLS,
            "branded_ndc_share_of_persons": 0.7,
            "sorafenib_in_year_before_diagnosis_share_of_hcc": 0.02,
            "second_line": SECOND_LINE,
        },
        "condition_prevalence": {name: {"other_cancer": po, "hcc": ph, "added_with_cirrhosis": pc}
                                 for name, _k, _c, po, ph, pc in CONDITIONS},
        "dirty_rate": dirty_rate,
        "structural": {"persons_without_mbsf": 0.005, "persons_missing_one_interior_mbsf_year": 0.02,
                       "stale_death_date_share_of_decedents": min(1.0, STALE_DEATH_PER_DIRTY_RATE * dirty_rate),
                       "death_only_in_seer": 0.03, "death_only_in_mbsf": 0.02},
        "timing_anomalies_model": {
            "note": "real features of deliveries, not dirt: the rates do not depend on dirty_rate",
            "post_death_fill_share_of_decedents_with_part_d": POST_DEATH_FILL_SHARE,
            "post_death_refill_per_chronic_drug": POST_DEATH_REFILL_PER_DRUG,
            "post_death_claim_share_of_decedents": POST_DEATH_CLAIM_SHARE,
            "post_death_claims_per_person": "1, or 2 with probability 0.3; carrier 70%, outpatient 30%",
            "decedents_in_scope": "deaths the MBSF dates (death observed, not SEER-only, with an MBSF row); "
                                  "in DE-SynPUF, read the beneficiary summary for the MBSF throughout",
            "post_death_first_fill_share": POST_DEATH_FIRST_FILL_SHARE,
            "post_death_first_fill_applies_to": "persons planned for sorafenib (no pre-diagnosis fill) or a "
                                                "second-line TKI who died on or before its first fill day",
            "first_fill_on_death_day_share": FIRST_FILL_ON_DEATH_DAY_SHARE,
            "days_after_death": list(POST_DEATH_DAYS),
            "study_end_first_fill_share": STUDY_END_FIRST_FILL_SHARE,
            "study_end_first_fill_applies_to": f"persons planned for sorafenib whose planned first fill is at most "
                                               f"{STUDY_END_FIRST_FILL_WINDOW_DAYS} days before the study end or "
                                               f"after it, alive after it and covered by Parts A, B and D in its "
                                               f"last month: their first fill is on its last day",
            "seer_only_deaths": "recorded as day 15 of the month, so claims later in the month follow the "
                                "recorded death; no extra mechanism",
            "counts": {k: v for k, v in TIMING_COUNT_MEANINGS.items()
                       if calendar is SEER_CALENDAR or k not in SEER_ONLY_TIMING},
        },
    }


def person_counts(p: DataFrame) -> dict:
    """Small person-level totals for truth.json (one aggregate over the cached persons)."""
    qualifying = "is_hcc AND histology BETWEEN '8170' AND '8175' AND behavior = '3'"
    row = p.selectExpr(
        "count(1) AS persons",
        "count_if(is_hcc) AS hcc_persons",
        f"count_if({qualifying} AND stage IN ('2', '4')) AS advanced_hcc_persons",
        "count_if(death_observed) AS deaths_observed",
        "count_if(treated) AS sorafenib_treated",
        "count_if(treated AND first_fill_day <= 60) AS sorafenib_first_fill_by_day_60",
        "count_if(tki_day IS NOT NULL) AS second_line_tki",
        "count_if(ici_day IS NOT NULL) AS second_line_tki_with_ici",
        "count_if(therapy IS NOT NULL) AS hcc_directed_therapy",
        "count_if(no_mbsf) AS persons_without_mbsf",
        "count_if(NOT no_mbsf AND missing_year IS NOT NULL) AS missing_mbsf_years",
        "count_if(NOT no_mbsf AND stale_death) AS stale_death_rows",
    ).collect()[0]
    return {k: int(v) for k, v in row.asDict().items()}


# What each count under truth.json's "timing_anomalies" means. Rows are counted in the
# files as written: a row with an injected impossible date is left out (its date cannot
# be read), an injected duplicate counts twice. A claim's date is its first date
# (ADMSN_DT, CLM_FROM_DT), a fill's SRVC_DT. The MBSF death is the latest dated
# BENE_DEATH_DT; a SEER-only death is SEER_DOD's month with day 15 (the mapping's rule).
TIMING_COUNT_MEANINGS = {
    "fills_after_death": "persons with a PDE fill dated after their MBSF death date, and those fills",
    "claims_after_death": "persons with a claim dated after their MBSF death date, and those claims by table",
    "first_sorafenib_fill_after_death": "persons whose first sorafenib fill (by NDC or generic name, "
                                        "pre-diagnosis fills included) is after their MBSF death date",
    "first_sorafenib_fill_on_death_day": "persons whose first sorafenib fill is on their MBSF death date",
    "first_tki_fill_after_death": "persons whose first second-line TKI fill (regorafenib, lenvatinib, "
                                  "cabozantinib) is after their MBSF death date",
    "after_seer_imputed_death": "persons whose death is known only from SEER (no MBSF death date) with a claim "
                                "or fill after day 15 of the death month, and those rows by table",
    "outside_mbsf_coverage": "persons with a claim or fill in a month the MBSF does not cover for the table's "
                             "Part (no row that year, or medpar: Part A, nch and outpatient: Part B entitlement, "
                             "pde: a Part D contract without retiree drug subsidy), and those rows by table",
    "first_sorafenib_fill_on_study_end": "persons whose first sorafenib fill is on the study's last day, with no "
                                         "death recorded and Parts A, B and D covered in its last month",
}
SEER_ONLY_TIMING = ("after_seer_imputed_death", "outside_mbsf_coverage")
TIMING_TABLES = ("medpar", "nch_base", "outpatient_base", "pde")


def timing_counts(tables: dict[str, DataFrame], seer: bool = True) -> dict:
    """The timing anomalies of ``TIMING_COUNT_MEANINGS`` in claim and fill tables as written.

    ``tables``: claim header tables and ``pde`` by name, dirt injected, with the internal
    columns of ``timing_columns``. Only the few rows with a timing bit or a drug of
    interest are read on, grouped per person, then summed: one small Spark job.
    """
    anomaly = AFTER_DEATH | AFTER_SEER_DEATH | OUTSIDE_COVERAGE
    rows = None
    for i, df in enumerate(tables.values()):
        part = df.filter(f"NOT __bad_date AND ((__timing & {anomaly}) <> 0 OR __drug IS NOT NULL)").selectExpr(
            f"{i} AS t", "__id AS id", "__timing AS bits", "__drug AS drug")
        rows = part if rows is None else rows.unionByName(part)

    def has(bit):
        return f"(bits & {bit}) <> 0"

    kinds = {"after_death": AFTER_DEATH, "after_seer": AFTER_SEER_DEATH, "uncovered": OUTSIDE_COVERAGE}
    per_person = [f"count_if(t = {i} AND {has(bit)}) AS `{kind}/{name}`"
                  for kind, bit in kinds.items() for i, name in enumerate(tables)]
    per_person += [
        "count_if(drug = 'sorafenib') AS sor", f"count_if(drug = 'sorafenib' AND {has(AFTER_DEATH)}) AS sor_after",
        f"count_if(drug = 'sorafenib' AND {has(ON_DEATH_DAY)}) AS sor_on_death_day",
        f"count_if(drug = 'sorafenib' AND {has(ON_STUDY_END)}) AS sor_on_end",
        "count_if(drug = 'tki') AS tki", f"count_if(drug = 'tki' AND {has(AFTER_DEATH)}) AS tki_after",
        f"bool_or({has(COVERED_AT_END)}) AS covered_at_end"]
    grouped = rows.groupBy("id").agg(*[F.expr(e) for e in per_person])
    claims = [n for n in tables if n != "pde"]

    def persons(kind, names):
        return f"count_if({' + '.join(f'`{kind}/{n}`' for n in names)} > 0)"

    totals = {f"{kind}/{name}": f"CAST(coalesce(sum(`{kind}/{name}`), 0) AS BIGINT)"
              for kind in kinds for name in tables}
    totals.update({
        "fills_after_death/persons": persons("after_death", ["pde"]),
        "claims_after_death/persons": persons("after_death", claims),
        "after_seer_imputed_death/persons": persons("after_seer", tables),
        "outside_mbsf_coverage/persons": persons("uncovered", tables),
        "first_sorafenib_fill_after_death": "count_if(sor > 0 AND sor_after = sor)",
        "first_sorafenib_fill_on_death_day": "count_if(sor_on_death_day > 0 AND sor_on_death_day + sor_after = sor)",
        "first_tki_fill_after_death": "count_if(tki > 0 AND tki_after = tki)",
        "first_sorafenib_fill_on_study_end": "count_if(sor_on_end > 0 AND sor_on_end = sor AND covered_at_end)",
    })
    row = grouped.selectExpr(*[f"{e} AS `{k}`" for k, e in totals.items()]).collect()[0].asDict()
    n = {k: int(v or 0) for k, v in row.items()}
    out = {
        "fills_after_death": {"persons": n["fills_after_death/persons"], "fills": n["after_death/pde"]},
        "claims_after_death": {"persons": n["claims_after_death/persons"],
                               **{name: n[f"after_death/{name}"] for name in claims}},
        **{k: n[k] for k in ("first_sorafenib_fill_after_death", "first_sorafenib_fill_on_death_day",
                             "first_tki_fill_after_death", "first_sorafenib_fill_on_study_end")},
        "after_seer_imputed_death": {"persons": n["after_seer_imputed_death/persons"],
                                     **{name: n[f"after_seer/{name}"] for name in tables}},
        "outside_mbsf_coverage": {"persons": n["outside_mbsf_coverage/persons"],
                                  **{name: n[f"uncovered/{name}"] for name in tables}},
    }
    return {k: v for k, v in out.items() if seer or k not in SEER_ONLY_TIMING}


def mbsf_dirty(counts: dict) -> dict:
    """The structural dirt of the enrollment file, from the person counts."""
    return {"person_not_in_mbsf": counts["persons_without_mbsf"], "missing_mbsf_year": counts["missing_mbsf_years"],
            "differing_death_date": counts["stale_death_rows"]}


@dataclass(frozen=True)
class OutputTable:
    """How one table becomes files: its rows, columns, file/bucket/sort keys as SQL."""

    name: str
    rows: DataFrame
    columns: Sequence[str]
    file: str            # SQL giving the final file name of a row
    sort: str            # SQL giving a row's stable sort key within its file
    expected_files: Sequence[str]
    bucket: str = "0"    # SQL giving the bucket of a row within its file (files split for speed)
    text_columns: Sequence[str] = ()


def numbered_file(table: str, n: int, person_col: str = "PATIENT_ID") -> tuple[str, list[str]]:
    """SQL naming ``{table}_0000.csv`` ... by a hash of the person (a person stays in one file)."""
    if n == 1:
        return lit(f"{table}_0000.csv"), [f"{table}_0000.csv"]
    sql = f"concat('{table}_', lpad(CAST(pmod(xxhash64(`{person_col}`), {n}) AS STRING), 4, '0'), '.csv')"
    return sql, [f"{table}_{i:04d}.csv" for i in range(n)]


FIXED_WIDTH_SUFFIX = ".txt.gz"


def write_tables(out_dir: str, tables: Sequence[OutputTable], partitions: int, quoted_header: bool = False,
                 file_format: str = "csv") -> tuple[dict, dict]:
    """Write all tables in one Spark job; return ``files`` (names, rows) and injected-dirt counts.

    ``file_format`` ``fixed-width``: gzipped fixed-record-length text (``.txt.gz`` for
    ``.csv``) and one SAS layout program ``<table>.sas`` per table, as NCI ships them.
    """
    fixed = file_format == "fixed-width"
    layouts = {t.name: fixed_width_fields(t.columns) for t in tables} if fixed else {}
    if fixed:
        tables = [OutputTable(t.name, t.rows, t.columns, f"regexp_replace({t.file}, '[.]csv$', '{FIXED_WIDTH_SUFFIX}')",
                              t.sort, [n.removesuffix(".csv") + FIXED_WIDTH_SUFFIX for n in t.expected_files],
                              t.bucket, t.text_columns) for t in tables]
    def line_sql(t: OutputTable) -> str:
        if fixed:
            return fixed_line([(c, int(re.search(r"(\d+)\.", i).group(1)), not i.startswith("$") and "yymmdd" not in i)
                               for c, _, i, _ in layouts[t.name]])
        return csv_line(t.columns, t.text_columns)

    branches, observations = [], {}
    for t in tables:
        flags = {f: (f if f in t.rows.columns else "FALSE") for f in DIRTY_FLAGS}
        rows = t.rows.selectExpr("*", *[f"{expr} AS {flag}" for flag, expr in flags.items() if expr == "FALSE"])
        # counters that fill in while the files are written: no second pass over the data
        observations[t.name] = Observation(f"{t.name}-{uuid.uuid4().hex[:8]}")
        rows = rows.observe(observations[t.name], F.count(F.lit(1)).alias("rows"),
                            *[F.count_if(F.col(flag)).alias(kind) for kind, flag in zip(DIRTY_KINDS, DIRTY_FLAGS)])
        branches.append(rows.selectExpr(
            f"{lit(t.name)} AS __table", f"{t.file} AS __file", f"CAST({t.bucket} AS INT) AS __bucket",
            f"{t.sort} AS __sort", f"{line_sql(t)} AS line"))
    lines = branches[0]
    for branch in branches[1:]:
        lines = lines.unionByName(branch)
    headers = {t.name: "" if fixed else header_line(t.columns, quoted_header) for t in tables}
    names = write_files(lines, out_dir, headers, {t.name: t.expected_files for t in tables}, partitions)
    for t in tables:
        if fixed:
            program = sas_program(t.name, f"{t.name}_*{FIXED_WIDTH_SUFFIX}", layouts[t.name],
                                  "written by cohortlake synth (synthetic data, seer-medicare layout)")
            with open(os.path.join(out_dir, f"{t.name}.sas"), "w", encoding="ascii") as handle:
                handle.write(program)
    counts = {name: obs.get for name, obs in observations.items()}
    files = {t.name: {"files": names[t.name], "rows": int(counts[t.name]["rows"])} for t in tables}
    dirty = {t.name: {kind: int(counts[t.name][kind]) for kind in DIRTY_KINDS}
             for t in tables if any(f in t.rows.columns for f in DIRTY_FLAGS)}
    return files, dirty


# --------------------------------------------------------------------------- generate
def generate(spark, out_dir: str, patients: int, seed: int, dirty_rate: float = 0.002, *,
             sorafenib_hazard_ratio: float = SORAFENIB_HR, source_partitions: int | None = None,
             file_format: str = "csv") -> dict:
    """Write the SEER-Medicare tables into ``out_dir``; return ``{"files", "truth"}``.

    ``file_format``: ``csv`` or ``fixed-width`` (gzipped text + a SAS layout per table);
    the same seed gives the same rows in either.

    ``source_partitions`` only changes how Spark splits the work (tests use it to show
    that the output does not depend on it).
    """
    calendar = SEER_CALENDAR
    persons = build_persons(spark, patients, seed, calendar, dirty_rate, sorafenib_hazard_ratio, source_partitions)
    persons = stage(persons, {"pid": "lpad(CAST(id + 1 AS STRING), 10, '0')"})
    persons = materialize(persons)
    # every claim table reads the events: build them once
    events = materialize(finish_events(claim_events(persons, seed, calendar), seed))
    # PDE is written and its timing anomalies counted: build the fills once too
    pde_fills = materialize(fills(persons, seed, calendar))
    try:
        claims = {"medpar": (medpar(events), "MEDPAR_ID"), "nch_base": (nch_base(events), "CLM_ID"),
                  "nch_line": (nch_line(events), "CLM_ID", "LINE_NUM"),
                  "outpatient_base": (outpatient_base(events), "CLM_ID"),
                  "outpatient_revenue": (outpatient_revenue(events, seed), "CLM_ID", "CLM_LINE_NUM"),
                  "pde": (pde(pde_fills), "PDE_ID")}
        tables = [OutputTable("mbsf", mbsf(persons), COLUMNS["mbsf"], "concat('mbsf_', BENE_ENROLLMT_REF_YR, '.csv')",
                              "PATIENT_ID", [f"mbsf_{y}.csv" for y in range(calendar.first_year, calendar.last_year + 1)])]
        for name, rows, *keys in [("seer_cancer", seer_cancer(persons), "SEQUENCE_NUMBER")] + \
                [(n, inject_dirty(df, SEER_DIRTY[n], dirty_rate, seed, n), *k) for n, (df, *k) in claims.items()]:
            file_sql, expected = numbered_file(name, parts_for(patients * ROWS_PER_PERSON[name]))
            sort = "concat_ws('|', PATIENT_ID, " + ", ".join(f"lpad(`{k}`, 20, '0')" for k in keys) + ")"
            tables.append(OutputTable(name, rows, COLUMNS[name], file_sql, sort, expected,
                                      text_columns=("GNN", "BN") if name == "pde" else ()))
        partitions = sum(len(t.expected_files) for t in tables)
        files, dirty = write_tables(out_dir, tables, partitions, file_format=file_format)
        counts = person_counts(persons)
        timing = timing_counts({t.name: t.rows for t in tables if t.name in TIMING_TABLES})
    finally:
        release(pde_fills)
        release(events)
        release(persons)
    dirty["mbsf"] = mbsf_dirty(counts)
    truth = true_parameters(dirty_rate, sorafenib_hazard_ratio, calendar)
    truth["person_counts"] = counts
    truth["dirty_counts"] = dirty
    truth["timing_anomalies"] = timing  # meanings: truth["timing_anomalies_model"]["counts"]
    return {"files": {t.name: files[t.name] for t in sorted(tables, key=lambda t: TABLE_ORDER.index(t.name))},
            "truth": truth}


def owned_file(name: str) -> bool:
    """True for a file name this layout's generator writes."""
    return (name.endswith((".csv", FIXED_WIDTH_SUFFIX, ".sas")) and any(name.startswith(t) for t in COLUMNS)
            and os.sep not in name)
