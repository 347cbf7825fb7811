"""Synthetic SEER-Medicare extract: the raw tables as NCI delivers them.

The SEER cancer file (one row per tumor), the MBSF by year, MEDPAR, carrier claims (NCH
base and lines), outpatient claims (base and revenue centers) and PDE, as CSV files or
(``file_format="fixed-width"``) as gzipped fixed-record-length text with a SAS layout
program per table. The rows come from the shared modules (see the ``synth`` package):
the persons of ``synth.model`` on ``SEER_CALENDAR``, the claims and fills of
``synth.events``, the dirt of ``synth.dirt``. This module lays them out as the tables,
names the files and puts truth.json's counts together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from pyspark.sql import DataFrame

from cohortlake.synth.anomalies import timing_columns, timing_counts
from cohortlake.synth.dirt import DirtySpec, inject_dirty, mbsf_dirty
from cohortlake.synth.events import claim_events, claim_id, fills, finish_events, stay_dates
from cohortlake.synth.model import (
    CANCER_SITE_FILES, SEER_CALENDAR, SORAFENIB_HR, build_persons, mbsf_death_date, month_status, person_years,
)
from cohortlake.synth.random import RandomSource, lit
from cohortlake.synth.sql import add_days, materialize, project, release, stage, ymd
from cohortlake.synth.truth import person_counts, true_parameters
from cohortlake.synth.writer import FIXED_WIDTH_SUFFIX, OutputTable, parts_for, sas_program, write_tables

LAYOUT = "seer-medicare"

TABLE_ORDER = ["seer_cancer", "mbsf", "medpar", "nch_base", "nch_line", "outpatient_base", "outpatient_revenue",
               "pde"]


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


# --------------------------------------------------------------------------- claim tables
def _internal(row: str = "claim_no", year: str = "clm_date") -> dict[str, str]:
    # __row keys the dirty-row draws; __year gives an impossible date a plausible year
    return {"__row": row, "__year": f"year({year})"}


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
def pde(f: DataFrame) -> DataFrame:
    """Part D events in the contract layout, from ``fills``."""
    return project(f, {
        "PATIENT_ID": "pid", "PDE_ID": f"CAST({4 * 10**14}L + id * 10000 + fill_no AS STRING)",
        "SRVC_DT": ymd("fill_date"), "PROD_SRVC_ID": "ndc", "QTY_DSPNSD_NUM": "qty", "DAYS_SUPLY_NUM": "days",
        "GNN": "gnn", "BN": "bn", **_internal("id * 10000 + fill_no", "fill_date"), **timing_columns("drug")})


# --------------------------------------------------------------------------- dirt and timing anomalies
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
TIMING_TABLES = ("medpar", "nch_base", "outpatient_base", "pde")


# --------------------------------------------------------------------------- files
def numbered_file(table: str, n: int, person_col: str = "PATIENT_ID") -> tuple[str, list[str]]:
    """SQL naming ``{table}_0000.csv`` ... by a hash of the person (a person stays in one file)."""
    if n == 1:
        return lit(f"{table}_0000.csv"), [f"{table}_0000.csv"]
    sql = f"concat('{table}_', lpad(CAST(pmod(xxhash64(`{person_col}`), {n}) AS STRING), 4, '0'), '.csv')"
    return sql, [f"{table}_{i:04d}.csv" for i in range(n)]


def write_sas_programs(out_dir: str, layouts: dict[str, list[tuple[str, int, str, str]]]) -> None:
    """One SAS layout program ``<table>.sas`` per table of a fixed-width delivery, as NCI ships them."""
    for name, fields in layouts.items():
        program = sas_program(name, f"{name}_*{FIXED_WIDTH_SUFFIX}", fields,
                              "written by cohortlake synth (synthetic data, seer-medicare layout)")
        with open(os.path.join(out_dir, f"{name}.sas"), "w", encoding="ascii") as handle:
            handle.write(program)


# --------------------------------------------------------------------------- generate
def generate(spark, out_dir: str, patients: int, seed: int, dirty_rate: float = 0.002, *,
             sorafenib_hazard_ratio: float = SORAFENIB_HR, source_partitions: int | None = None,
             file_format: str = "csv", cancer_site: str = "all") -> dict:
    """Write the SEER-Medicare tables into ``out_dir``; return ``{"files", "truth"}``.

    ``file_format``: ``csv`` or ``fixed-width`` (gzipped text + a SAS layout per table);
    the same seed gives the same rows in either.

    ``cancer_site``: ``all`` (five sites, a third liver) or ``liver`` (the liver cancer
    file: every person has a liver tumor), as NCI ships the data by cancer site.

    ``source_partitions`` only changes how Spark splits the work (tests use it to show
    that the output does not depend on it).
    """
    calendar = SEER_CALENDAR
    persons = build_persons(spark, patients, seed, calendar, dirty_rate, sorafenib_hazard_ratio, source_partitions,
                            cancer_site)
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
        layouts = {t.name: fixed_width_fields(t.columns) for t in tables} if file_format == "fixed-width" else None
        files, dirty = write_tables(out_dir, tables, partitions, fixed_width=layouts)
        if layouts:
            write_sas_programs(out_dir, layouts)
        counts = person_counts(persons)
        timing = timing_counts({t.name: t.rows for t in tables if t.name in TIMING_TABLES})
    finally:
        release(pde_fills)
        release(events)
        release(persons)
    dirty["mbsf"] = mbsf_dirty(counts)
    truth = true_parameters(dirty_rate, sorafenib_hazard_ratio, calendar)
    truth["cancer_site_file"] = {"site": cancer_site, "liver_share": CANCER_SITE_FILES[cancer_site]}
    truth["person_counts"] = counts
    truth["dirty_counts"] = dirty
    truth["timing_anomalies"] = timing  # meanings: truth["timing_anomalies_model"]["counts"]
    return {"files": {t.name: files[t.name] for t in sorted(tables, key=lambda t: TABLE_ORDER.index(t.name))},
            "truth": truth}


def owned_file(name: str) -> bool:
    """True for a file name this layout's generator writes."""
    return (name.endswith((".csv", FIXED_WIDTH_SUFFIX, ".sas")) and any(name.startswith(t) for t in COLUMNS)
            and os.sep not in name)
