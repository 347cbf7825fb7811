"""Synthetic DE-SynPUF files (CMS 2008-2010 Data Entrepreneurs' Synthetic Public Use File).

The person model of ``synth.model`` (the one ``seer_medicare`` lays out) on a 2008-2010
calendar, with the claims and fills of ``synth.events``, laid out as the DE-SynPUF
sample files with sample number 1: yearly beneficiary summaries (month counts, chronic
condition flags, payments), inpatient, outpatient, carrier A/B and Part D event files.
There is no cancer registry here: cancers show only as claim diagnoses.
"""

from __future__ import annotations

import re

from pyspark.sql import DataFrame

from cohortlake.synth.anomalies import timing_columns, timing_counts
from cohortlake.synth.dirt import DirtySpec, inject_dirty, mbsf_dirty
from cohortlake.synth.events import claim_events, claim_id, fills, finish_events, stay_dates
from cohortlake.synth.model import SORAFENIB_HR, Calendar, build_persons, mbsf_death_date, month_status, person_years
from cohortlake.synth.random import RandomSource, Sql, lit, uniform_int
from cohortlake.synth.sql import case, materialize, project, release, stage, ymd
from cohortlake.synth.truth import person_counts, true_parameters
from cohortlake.synth.writer import OutputTable, parts_for, write_tables

LAYOUT = "desynpuf"
SAMPLE = 1
CALENDAR = Calendar(2008, 2010, ((2008, 1.0), (2009, 1.0), (2010, 1.0)))

# Headers copied verbatim from the real files in tests/fixtures/desynpuf/. They are
# written quoted like the originals (the writer adds the header line itself, so this
# is deterministic); data rows are unquoted, as in the originals.
BENEFICIARY_SUMMARY_COLUMNS = [
    "DESYNPUF_ID", "BENE_BIRTH_DT", "BENE_DEATH_DT", "BENE_SEX_IDENT_CD", "BENE_RACE_CD", "BENE_ESRD_IND",
    "SP_STATE_CODE", "BENE_COUNTY_CD", "BENE_HI_CVRAGE_TOT_MONS", "BENE_SMI_CVRAGE_TOT_MONS",
    "BENE_HMO_CVRAGE_TOT_MONS", "PLAN_CVRG_MOS_NUM", "SP_ALZHDMTA", "SP_CHF", "SP_CHRNKIDN", "SP_CNCR",
    "SP_COPD", "SP_DEPRESSN", "SP_DIABETES", "SP_ISCHMCHT", "SP_OSTEOPRS", "SP_RA_OA", "SP_STRKETIA",
    "MEDREIMB_IP", "BENRES_IP", "PPPYMT_IP", "MEDREIMB_OP", "BENRES_OP", "PPPYMT_OP", "MEDREIMB_CAR",
    "BENRES_CAR", "PPPYMT_CAR",
]
INPATIENT_COLUMNS = [
    "DESYNPUF_ID", "CLM_ID", "SEGMENT", "CLM_FROM_DT", "CLM_THRU_DT", "PRVDR_NUM", "CLM_PMT_AMT",
    "NCH_PRMRY_PYR_CLM_PD_AMT", "AT_PHYSN_NPI", "OP_PHYSN_NPI", "OT_PHYSN_NPI", "CLM_ADMSN_DT",
    "ADMTNG_ICD9_DGNS_CD", "CLM_PASS_THRU_PER_DIEM_AMT", "NCH_BENE_IP_DDCTBL_AMT",
    "NCH_BENE_PTA_COINSRNC_LBLTY_AM", "NCH_BENE_BLOOD_DDCTBL_LBLTY_AM", "CLM_UTLZTN_DAY_CNT",
    "NCH_BENE_DSCHRG_DT", "CLM_DRG_CD", "ICD9_DGNS_CD_1", "ICD9_DGNS_CD_2", "ICD9_DGNS_CD_3", "ICD9_DGNS_CD_4",
    "ICD9_DGNS_CD_5", "ICD9_DGNS_CD_6", "ICD9_DGNS_CD_7", "ICD9_DGNS_CD_8", "ICD9_DGNS_CD_9", "ICD9_DGNS_CD_10",
    "ICD9_PRCDR_CD_1", "ICD9_PRCDR_CD_2", "ICD9_PRCDR_CD_3", "ICD9_PRCDR_CD_4", "ICD9_PRCDR_CD_5",
    "ICD9_PRCDR_CD_6", "HCPCS_CD_1", "HCPCS_CD_2", "HCPCS_CD_3", "HCPCS_CD_4", "HCPCS_CD_5", "HCPCS_CD_6",
    "HCPCS_CD_7", "HCPCS_CD_8", "HCPCS_CD_9", "HCPCS_CD_10", "HCPCS_CD_11", "HCPCS_CD_12", "HCPCS_CD_13",
    "HCPCS_CD_14", "HCPCS_CD_15", "HCPCS_CD_16", "HCPCS_CD_17", "HCPCS_CD_18", "HCPCS_CD_19", "HCPCS_CD_20",
    "HCPCS_CD_21", "HCPCS_CD_22", "HCPCS_CD_23", "HCPCS_CD_24", "HCPCS_CD_25", "HCPCS_CD_26", "HCPCS_CD_27",
    "HCPCS_CD_28", "HCPCS_CD_29", "HCPCS_CD_30", "HCPCS_CD_31", "HCPCS_CD_32", "HCPCS_CD_33", "HCPCS_CD_34",
    "HCPCS_CD_35", "HCPCS_CD_36", "HCPCS_CD_37", "HCPCS_CD_38", "HCPCS_CD_39", "HCPCS_CD_40", "HCPCS_CD_41",
    "HCPCS_CD_42", "HCPCS_CD_43", "HCPCS_CD_44", "HCPCS_CD_45",
]
OUTPATIENT_COLUMNS = [
    "DESYNPUF_ID", "CLM_ID", "SEGMENT", "CLM_FROM_DT", "CLM_THRU_DT", "PRVDR_NUM", "CLM_PMT_AMT",
    "NCH_PRMRY_PYR_CLM_PD_AMT", "AT_PHYSN_NPI", "OP_PHYSN_NPI", "OT_PHYSN_NPI",
    "NCH_BENE_BLOOD_DDCTBL_LBLTY_AM", "ICD9_DGNS_CD_1", "ICD9_DGNS_CD_2", "ICD9_DGNS_CD_3", "ICD9_DGNS_CD_4",
    "ICD9_DGNS_CD_5", "ICD9_DGNS_CD_6", "ICD9_DGNS_CD_7", "ICD9_DGNS_CD_8", "ICD9_DGNS_CD_9", "ICD9_DGNS_CD_10",
    "ICD9_PRCDR_CD_1", "ICD9_PRCDR_CD_2", "ICD9_PRCDR_CD_3", "ICD9_PRCDR_CD_4", "ICD9_PRCDR_CD_5",
    "ICD9_PRCDR_CD_6", "NCH_BENE_PTB_DDCTBL_AMT", "NCH_BENE_PTB_COINSRNC_AMT", "ADMTNG_ICD9_DGNS_CD",
    "HCPCS_CD_1", "HCPCS_CD_2", "HCPCS_CD_3", "HCPCS_CD_4", "HCPCS_CD_5", "HCPCS_CD_6", "HCPCS_CD_7",
    "HCPCS_CD_8", "HCPCS_CD_9", "HCPCS_CD_10", "HCPCS_CD_11", "HCPCS_CD_12", "HCPCS_CD_13", "HCPCS_CD_14",
    "HCPCS_CD_15", "HCPCS_CD_16", "HCPCS_CD_17", "HCPCS_CD_18", "HCPCS_CD_19", "HCPCS_CD_20", "HCPCS_CD_21",
    "HCPCS_CD_22", "HCPCS_CD_23", "HCPCS_CD_24", "HCPCS_CD_25", "HCPCS_CD_26", "HCPCS_CD_27", "HCPCS_CD_28",
    "HCPCS_CD_29", "HCPCS_CD_30", "HCPCS_CD_31", "HCPCS_CD_32", "HCPCS_CD_33", "HCPCS_CD_34", "HCPCS_CD_35",
    "HCPCS_CD_36", "HCPCS_CD_37", "HCPCS_CD_38", "HCPCS_CD_39", "HCPCS_CD_40", "HCPCS_CD_41", "HCPCS_CD_42",
    "HCPCS_CD_43", "HCPCS_CD_44", "HCPCS_CD_45",
]
CARRIER_COLUMNS = [
    "DESYNPUF_ID", "CLM_ID", "CLM_FROM_DT", "CLM_THRU_DT", "ICD9_DGNS_CD_1", "ICD9_DGNS_CD_2", "ICD9_DGNS_CD_3",
    "ICD9_DGNS_CD_4", "ICD9_DGNS_CD_5", "ICD9_DGNS_CD_6", "ICD9_DGNS_CD_7", "ICD9_DGNS_CD_8", "PRF_PHYSN_NPI_1",
    "PRF_PHYSN_NPI_2", "PRF_PHYSN_NPI_3", "PRF_PHYSN_NPI_4", "PRF_PHYSN_NPI_5", "PRF_PHYSN_NPI_6",
    "PRF_PHYSN_NPI_7", "PRF_PHYSN_NPI_8", "PRF_PHYSN_NPI_9", "PRF_PHYSN_NPI_10", "PRF_PHYSN_NPI_11",
    "PRF_PHYSN_NPI_12", "PRF_PHYSN_NPI_13", "TAX_NUM_1", "TAX_NUM_2", "TAX_NUM_3", "TAX_NUM_4", "TAX_NUM_5",
    "TAX_NUM_6", "TAX_NUM_7", "TAX_NUM_8", "TAX_NUM_9", "TAX_NUM_10", "TAX_NUM_11", "TAX_NUM_12", "TAX_NUM_13",
    "HCPCS_CD_1", "HCPCS_CD_2", "HCPCS_CD_3", "HCPCS_CD_4", "HCPCS_CD_5", "HCPCS_CD_6", "HCPCS_CD_7",
    "HCPCS_CD_8", "HCPCS_CD_9", "HCPCS_CD_10", "HCPCS_CD_11", "HCPCS_CD_12", "HCPCS_CD_13",
    "LINE_NCH_PMT_AMT_1", "LINE_NCH_PMT_AMT_2", "LINE_NCH_PMT_AMT_3", "LINE_NCH_PMT_AMT_4",
    "LINE_NCH_PMT_AMT_5", "LINE_NCH_PMT_AMT_6", "LINE_NCH_PMT_AMT_7", "LINE_NCH_PMT_AMT_8",
    "LINE_NCH_PMT_AMT_9", "LINE_NCH_PMT_AMT_10", "LINE_NCH_PMT_AMT_11", "LINE_NCH_PMT_AMT_12",
    "LINE_NCH_PMT_AMT_13", "LINE_BENE_PTB_DDCTBL_AMT_1", "LINE_BENE_PTB_DDCTBL_AMT_2",
    "LINE_BENE_PTB_DDCTBL_AMT_3", "LINE_BENE_PTB_DDCTBL_AMT_4", "LINE_BENE_PTB_DDCTBL_AMT_5",
    "LINE_BENE_PTB_DDCTBL_AMT_6", "LINE_BENE_PTB_DDCTBL_AMT_7", "LINE_BENE_PTB_DDCTBL_AMT_8",
    "LINE_BENE_PTB_DDCTBL_AMT_9", "LINE_BENE_PTB_DDCTBL_AMT_10", "LINE_BENE_PTB_DDCTBL_AMT_11",
    "LINE_BENE_PTB_DDCTBL_AMT_12", "LINE_BENE_PTB_DDCTBL_AMT_13", "LINE_BENE_PRMRY_PYR_PD_AMT_1",
    "LINE_BENE_PRMRY_PYR_PD_AMT_2", "LINE_BENE_PRMRY_PYR_PD_AMT_3", "LINE_BENE_PRMRY_PYR_PD_AMT_4",
    "LINE_BENE_PRMRY_PYR_PD_AMT_5", "LINE_BENE_PRMRY_PYR_PD_AMT_6", "LINE_BENE_PRMRY_PYR_PD_AMT_7",
    "LINE_BENE_PRMRY_PYR_PD_AMT_8", "LINE_BENE_PRMRY_PYR_PD_AMT_9", "LINE_BENE_PRMRY_PYR_PD_AMT_10",
    "LINE_BENE_PRMRY_PYR_PD_AMT_11", "LINE_BENE_PRMRY_PYR_PD_AMT_12", "LINE_BENE_PRMRY_PYR_PD_AMT_13",
    "LINE_COINSRNC_AMT_1", "LINE_COINSRNC_AMT_2", "LINE_COINSRNC_AMT_3", "LINE_COINSRNC_AMT_4",
    "LINE_COINSRNC_AMT_5", "LINE_COINSRNC_AMT_6", "LINE_COINSRNC_AMT_7", "LINE_COINSRNC_AMT_8",
    "LINE_COINSRNC_AMT_9", "LINE_COINSRNC_AMT_10", "LINE_COINSRNC_AMT_11", "LINE_COINSRNC_AMT_12",
    "LINE_COINSRNC_AMT_13", "LINE_ALOWD_CHRG_AMT_1", "LINE_ALOWD_CHRG_AMT_2", "LINE_ALOWD_CHRG_AMT_3",
    "LINE_ALOWD_CHRG_AMT_4", "LINE_ALOWD_CHRG_AMT_5", "LINE_ALOWD_CHRG_AMT_6", "LINE_ALOWD_CHRG_AMT_7",
    "LINE_ALOWD_CHRG_AMT_8", "LINE_ALOWD_CHRG_AMT_9", "LINE_ALOWD_CHRG_AMT_10", "LINE_ALOWD_CHRG_AMT_11",
    "LINE_ALOWD_CHRG_AMT_12", "LINE_ALOWD_CHRG_AMT_13", "LINE_PRCSG_IND_CD_1", "LINE_PRCSG_IND_CD_2",
    "LINE_PRCSG_IND_CD_3", "LINE_PRCSG_IND_CD_4", "LINE_PRCSG_IND_CD_5", "LINE_PRCSG_IND_CD_6",
    "LINE_PRCSG_IND_CD_7", "LINE_PRCSG_IND_CD_8", "LINE_PRCSG_IND_CD_9", "LINE_PRCSG_IND_CD_10",
    "LINE_PRCSG_IND_CD_11", "LINE_PRCSG_IND_CD_12", "LINE_PRCSG_IND_CD_13", "LINE_ICD9_DGNS_CD_1",
    "LINE_ICD9_DGNS_CD_2", "LINE_ICD9_DGNS_CD_3", "LINE_ICD9_DGNS_CD_4", "LINE_ICD9_DGNS_CD_5",
    "LINE_ICD9_DGNS_CD_6", "LINE_ICD9_DGNS_CD_7", "LINE_ICD9_DGNS_CD_8", "LINE_ICD9_DGNS_CD_9",
    "LINE_ICD9_DGNS_CD_10", "LINE_ICD9_DGNS_CD_11", "LINE_ICD9_DGNS_CD_12", "LINE_ICD9_DGNS_CD_13",
]
PDE_COLUMNS = [
    "DESYNPUF_ID", "PDE_ID", "SRVC_DT", "PROD_SRVC_ID", "QTY_DSPNSD_NUM", "DAYS_SUPLY_NUM", "PTNT_PAY_AMT",
    "TOT_RX_CST_AMT",
]

FILES = {
    "inpatient": f"DE1_0_2008_to_2010_Inpatient_Claims_Sample_{SAMPLE}.csv",
    "outpatient": f"DE1_0_2008_to_2010_Outpatient_Claims_Sample_{SAMPLE}.csv",
    "carrier_a": f"DE1_0_2008_to_2010_Carrier_Claims_Sample_{SAMPLE}A.csv",
    "carrier_b": f"DE1_0_2008_to_2010_Carrier_Claims_Sample_{SAMPLE}B.csv",
    "pde": f"DE1_0_2008_to_2010_Prescription_Drug_Events_Sample_{SAMPLE}.csv",
}
COLUMNS = {"beneficiary_summary": BENEFICIARY_SUMMARY_COLUMNS, "inpatient": INPATIENT_COLUMNS,
           "outpatient": OUTPATIENT_COLUMNS, "carrier_a": CARRIER_COLUMNS, "carrier_b": CARRIER_COLUMNS,
           "pde": PDE_COLUMNS}
ROWS_PER_PERSON = {"beneficiary_summary": 3.0, "inpatient": 1.0, "outpatient": 5.0, "carrier_a": 8.0,
                   "carrier_b": 8.0, "pde": 6.0}
DIRTY = {
    "inpatient": DirtySpec(code_cols=("ICD9_DGNS_CD_1",), date_cols=("CLM_FROM_DT", "CLM_THRU_DT")),
    "outpatient": DirtySpec(code_cols=("ICD9_DGNS_CD_1",), date_cols=("CLM_FROM_DT", "CLM_THRU_DT")),
    "carrier_a": DirtySpec(code_cols=("ICD9_DGNS_CD_1", "HCPCS_CD_1"), date_cols=("CLM_FROM_DT", "CLM_THRU_DT")),
    "carrier_b": DirtySpec(code_cols=("ICD9_DGNS_CD_1", "HCPCS_CD_1"), date_cols=("CLM_FROM_DT", "CLM_THRU_DT")),
    "pde": DirtySpec(code_cols=("PROD_SRVC_ID",), date_cols=("SRVC_DT",),
                     quantity_cols=("QTY_DSPNSD_NUM", "DAYS_SUPLY_NUM")),
}
IP_DEDUCTIBLE = {2008: "1024", 2009: "1068", 2010: "1100"}
DRG_CODES = ["189", "291", "292", "377", "392", "432", "433", "441", "442", "871", "872", "945"]
_OWNED = re.compile(r"^DE1_0_\d{4}(_to_\d{4})?_[A-Za-z_]+_Sample_\d+[AB]?\.csv$")


def owned_file(name: str) -> bool:
    """True for a file name this layout's generator writes."""
    return bool(_OWNED.match(name))


def _beneficiary_name(year: str) -> str:
    return f"DE1_0_{year}_Beneficiary_Summary_File_Sample_{SAMPLE}.csv"


def _money(u: str, p_any: float, mean: float) -> Sql:
    """Payment field: 0, or a multiple of 10 drawn around ``mean`` (DE-SynPUF rounds to tens)."""
    return Sql(f"CAST(CASE WHEN {u} < {p_any!r}D THEN CAST(round(-log1p(-{u}) * {mean / 10.0!r}D) AS BIGINT) * 10 "
               f"ELSE 0 END AS STRING)")


def _flag(cond: str) -> Sql:
    return Sql(f"CASE WHEN {cond} THEN '1' ELSE '2' END")


def beneficiary_summary(p: DataFrame, seed: int) -> DataFrame:
    """One row per person and year alive in it: month counts, chronic conditions, payments."""
    rng = RandomSource(seed, "id")
    u = rng.uniform
    status = [month_status(f"year * 12 + {k}") for k in range(12)]

    def months(cond):
        return "CAST(" + " + ".join(f"CAST({cond(s)} AS INT)" for s in status) + " AS STRING)"

    y = stage(person_years(p), {"death_shown": mbsf_death_date()})

    def pay(stream, p_any, mean):
        return _money(u(stream, "year"), p_any, mean)

    return project(y, {
        "DESYNPUF_ID": "pid", "BENE_BIRTH_DT": ymd("birth_date"), "BENE_DEATH_DT": ymd("death_shown"),
        "BENE_SEX_IDENT_CD": "sex",
        # DE-SynPUF race codes: 1 white, 2 black, 3 other, 5 Hispanic
        "BENE_RACE_CD": "CASE WHEN race IN ('1', '2', '5') THEN race ELSE '3' END",
        "BENE_ESRD_IND": f"CASE WHEN f_renal_disease AND {u('esrd')} < 0.3D THEN 'Y' ELSE '0' END",
        "SP_STATE_CODE": f"CAST({rng.uniform_int('state', 1, 54)} AS STRING)",
        "BENE_COUNTY_CD": f"CAST({rng.uniform_int('county', 10, 999)} AS STRING)",
        "BENE_HI_CVRAGE_TOT_MONS": months(lambda s: f"{s['buyin']} IN ('1', '3', 'A', 'C')"),
        "BENE_SMI_CVRAGE_TOT_MONS": months(lambda s: f"{s['buyin']} IN ('2', '3', 'B', 'C')"),
        "BENE_HMO_CVRAGE_TOT_MONS": months(lambda s: f"{s['hmo']} NOT IN ('0', '4')"),
        "PLAN_CVRG_MOS_NUM": months(lambda s: s["partd_covered"]),
        "SP_ALZHDMTA": _flag("f_dementia"), "SP_CHF": _flag("f_congestive_heart_failure"),
        "SP_CHRNKIDN": _flag("f_renal_disease"), "SP_CNCR": _flag("year(dx_date) <= year"),
        "SP_COPD": _flag("f_copd"), "SP_DEPRESSN": _flag(f"{u('depression')} < 0.18D"),
        "SP_DIABETES": _flag("f_diabetes"),
        "SP_ISCHMCHT": _flag(f"f_myocardial_infarction OR {u('ischemic')} < 0.3D"),
        "SP_OSTEOPRS": _flag(f"{u('osteoporosis')} < 0.2D"),
        "SP_RA_OA": _flag(f"f_rheumatologic_disease OR {u('ra_oa')} < 0.25D"),
        "SP_STRKETIA": _flag("f_cerebrovascular_disease"),
        "MEDREIMB_IP": pay("pay_ip", 0.2, 9000), "BENRES_IP": pay("pay_ip_bene", 0.2, 1000),
        "PPPYMT_IP": pay("pay_ip_ppp", 0.05, 500), "MEDREIMB_OP": pay("pay_op", 0.7, 1500),
        "BENRES_OP": pay("pay_op_bene", 0.6, 400), "PPPYMT_OP": pay("pay_op_ppp", 0.1, 200),
        "MEDREIMB_CAR": pay("pay_car", 0.85, 1800), "BENRES_CAR": pay("pay_car_bene", 0.8, 500),
        "PPPYMT_CAR": pay("pay_car_ppp", 0.1, 100),
        "__file_year": "CAST(year AS STRING)",  # the year is in the file name, not a column
    })


def _npi(rng: RandomSource, stream: str, *idx) -> Sql:
    return Sql(f"CAST(1000000000L + CAST(floor({rng.uniform(stream, *idx)} * 8999999999.0D) AS BIGINT) AS STRING)")


def _institutional(rng: RandomSource, prefix: int) -> dict[str, str]:
    key = ("src", "k")
    return {
        "DESYNPUF_ID": "pid", "CLM_ID": claim_id(prefix), "SEGMENT": "'1'",
        "PRVDR_NUM": f"concat(lpad(CAST({rng.uniform_int('prvdr_state', 1, 54)} AS STRING), 2, '0'), "
                     f"lpad(CAST({rng.uniform_int('prvdr_num', 0, 99, *key)} AS STRING), 2, '0'), "
                     f"{rng.pick('prvdr_suffix', ['QQ', 'GC', 'NA', 'WQ', 'XJ', 'PT'], *key)})",
        "NCH_PRMRY_PYR_CLM_PD_AMT": "'0'",
        "AT_PHYSN_NPI": _npi(rng, "at_npi", *key),
        "OP_PHYSN_NPI": f"CASE WHEN size(proc_list) > 0 THEN {_npi(rng, 'op_npi', *key)} END",
        "OT_PHYSN_NPI": "CAST(NULL AS STRING)",
        "NCH_BENE_BLOOD_DDCTBL_LBLTY_AM": "'0'",
    }


def _groups(template: str, n: int, expr) -> dict[str, str]:
    return {template.format(i + 1): expr(i) for i in range(n)}


def inpatient(events: DataFrame, seed: int) -> DataFrame:
    """Inpatient claims: admission/discharge, DRG, 10 diagnoses, 6 procedures (HCPCS columns empty)."""
    rng = RandomSource(seed, "id")
    key = ("src", "k")
    e = stay_dates(events.filter("setting = 'inpatient'"))
    values = {
        **_institutional(rng, 1), "CLM_FROM_DT": ymd("admission"), "CLM_THRU_DT": ymd("discharge"),
        "CLM_PMT_AMT": f"CAST(1000 * {rng.uniform_int('ip_pmt', 2, 30, *key)} AS STRING)",
        "CLM_ADMSN_DT": ymd("admission"), "ADMTNG_ICD9_DGNS_CD": "principal", "CLM_PASS_THRU_PER_DIEM_AMT": "'0'",
        "NCH_BENE_IP_DDCTBL_AMT": case("year(admission)", IP_DEDUCTIBLE, "1100"),
        "NCH_BENE_PTA_COINSRNC_LBLTY_AM": "'0'",
        "CLM_UTLZTN_DAY_CNT": "CAST(datediff(discharge, admission) AS STRING)",
        "NCH_BENE_DSCHRG_DT": ymd("discharge"), "CLM_DRG_CD": rng.pick("drg", DRG_CODES, *key),
        **_groups("ICD9_DGNS_CD_{}", 10, lambda i: f"get(dx, {i})"),
        **_groups("ICD9_PRCDR_CD_{}", 6, lambda i: f"(get(proc_list, {i})).code"),
        **_groups("HCPCS_CD_{}", 45, lambda i: "CAST(NULL AS STRING)"),
    }
    return project(e, {**{c: values[c] for c in INPATIENT_COLUMNS}, "__row": "claim_no", "__year": "year(clm_date)",
                       **timing_columns()})


def outpatient(events: DataFrame, seed: int) -> DataFrame:
    """Outpatient claims: 10 diagnoses, 6 procedures, the revenue lines' HCPCS in HCPCS_CD_1..45."""
    rng = RandomSource(seed, "id")
    key = ("src", "k")
    e = stage(events.filter("setting = 'outpatient'"),
              {"hcpcs": "array_compact(transform(line_list, xl -> xl.hcpcs))"})
    values = {
        **_institutional(rng, 3), "CLM_FROM_DT": ymd("clm_date"), "CLM_THRU_DT": ymd("clm_date"),
        "CLM_PMT_AMT": f"CAST(10 * {rng.uniform_int('op_pmt', 1, 80, *key)} AS STRING)",
        "NCH_BENE_PTB_DDCTBL_AMT": "'0'",
        "NCH_BENE_PTB_COINSRNC_AMT": f"CAST(10 * {rng.uniform_int('op_coins', 0, 10, *key)} AS STRING)",
        "ADMTNG_ICD9_DGNS_CD": f"CASE WHEN {rng.uniform('op_admtng', *key)} < 0.3D THEN principal END",
        **_groups("ICD9_DGNS_CD_{}", 10, lambda i: f"get(dx, {i})"),
        **_groups("ICD9_PRCDR_CD_{}", 6, lambda i: f"(get(proc_list, {i})).code"),
        **_groups("HCPCS_CD_{}", 45, lambda i: f"get(hcpcs, {i})"),
    }
    return project(e, {**{c: values[c] for c in OUTPATIENT_COLUMNS}, "__row": "claim_no", "__year": "year(clm_date)",
                       **timing_columns()})


def carrier(events: DataFrame, seed: int, file_b: bool) -> DataFrame:
    """Carrier claims of the persons assigned to file A (or B): 8 diagnoses, 13 lines as column groups."""
    rng = RandomSource(seed, "id")
    u = rng.uniform
    key = ("src", "k")
    in_b = f"{u('carrier_file')} < 0.5D"
    e = events.filter(f"setting = 'carrier' AND {'' if file_b else 'NOT '}({in_b})")
    e = stage(e, {"npi": _npi(rng, "prf_npi", *key),
                  "tax": f"CAST(100000000L + CAST(floor({u('tax_num', *key)} * 899999999.0D) AS BIGINT) AS STRING)"})

    def line(i):
        return f"(get(line_list, {i}))"

    def amount(stream, mean):
        # unused line slots carry 0 amounts, as in the original files
        return lambda i: (f"CASE WHEN {line(i)} IS NOT NULL THEN CAST(10 * CAST(round(-log1p(-{u(stream, *key, i)})"
                          f" * {mean / 10.0!r}D) AS BIGINT) AS STRING) ELSE '0' END")

    values = {
        "DESYNPUF_ID": "pid", "CLM_ID": claim_id(2), "CLM_FROM_DT": ymd("clm_date"), "CLM_THRU_DT": ymd("clm_date"),
        **_groups("ICD9_DGNS_CD_{}", 8, lambda i: f"get(dx, {i})"),
        **_groups("PRF_PHYSN_NPI_{}", 13, lambda i: f"CASE WHEN {line(i)} IS NOT NULL THEN npi END"),
        **_groups("TAX_NUM_{}", 13, lambda i: f"CASE WHEN {line(i)} IS NOT NULL THEN tax END"),
        **_groups("HCPCS_CD_{}", 13, lambda i: f"{line(i)}.hcpcs"),
        **_groups("LINE_NCH_PMT_AMT_{}", 13, amount("line_pmt", 60.0)),
        **_groups("LINE_BENE_PTB_DDCTBL_AMT_{}", 13, lambda i: "'0'"),
        **_groups("LINE_BENE_PRMRY_PYR_PD_AMT_{}", 13, lambda i: "'0'"),
        **_groups("LINE_COINSRNC_AMT_{}", 13, amount("line_coins", 15.0)),
        **_groups("LINE_ALOWD_CHRG_AMT_{}", 13, amount("line_allowed", 80.0)),
        **_groups("LINE_PRCSG_IND_CD_{}", 13, lambda i: f"CASE WHEN {line(i)} IS NOT NULL THEN 'A' END"),
        **_groups("LINE_ICD9_DGNS_CD_{}", 13, lambda i: f"CASE WHEN {line(i)} IS NOT NULL "
                                                        f"THEN element_at(dx, CAST(pmod({i}, size(dx)) + 1 AS INT)) END"),
    }
    return project(e, {**{c: values[c] for c in CARRIER_COLUMNS}, "__row": "claim_no", "__year": "year(clm_date)",
                       **timing_columns()})


def pde(f: DataFrame, seed: int) -> DataFrame:
    """Part D events from ``fills``: NDC, quantity, days supply, patient pay and total cost."""
    rng = RandomSource(seed, "id")
    cost = rng.uniform("rx_cost", "fill_no")
    return project(f, {
        "DESYNPUF_ID": "pid", "PDE_ID": f"CAST({4 * 10**14}L + id * 10000 + fill_no AS STRING)",
        "SRVC_DT": ymd("fill_date"), "PROD_SRVC_ID": "ndc", "QTY_DSPNSD_NUM": "qty", "DAYS_SUPLY_NUM": "days",
        "PTNT_PAY_AMT": f"CAST(10 * {uniform_int(cost, 0, 5)} AS STRING)",
        "TOT_RX_CST_AMT": f"CAST(10 * {uniform_int(cost, 1, 40)} AS STRING)",
        "__row": "id * 10000 + fill_no", "__year": "year(fill_date)", **timing_columns("drug")})


def generate(spark, out_dir: str, patients: int, seed: int, dirty_rate: float = 0.002, *,
             sorafenib_hazard_ratio: float = SORAFENIB_HR, source_partitions: int | None = None) -> dict:
    """Write the DE-SynPUF sample-1 files into ``out_dir``; return ``{"files", "truth"}``."""
    persons = build_persons(spark, patients, seed, CALENDAR, dirty_rate, sorafenib_hazard_ratio, source_partitions)
    # 16 hex digits like the originals; the low half is the row number, so ids are unique
    hashed = f"lpad(hex(xxhash64({int(seed)}L, id, {lit('desynpuf_id')})), 16, '0')"
    persons = stage(persons, {"pid": f"upper(concat(substring({hashed}, 1, 8), lpad(hex(id), 8, '0')))"})
    persons = materialize(persons)
    events = materialize(finish_events(claim_events(persons, seed, CALENDAR), seed))
    pde_fills = materialize(fills(persons, seed, CALENDAR))
    try:
        years = range(CALENDAR.first_year, CALENDAR.last_year + 1)
        per_year = parts_for(patients * ROWS_PER_PERSON["beneficiary_summary"] / len(years))
        tables = [OutputTable(
            "beneficiary_summary", beneficiary_summary(persons, seed), BENEFICIARY_SUMMARY_COLUMNS,
            f"concat('DE1_0_', __file_year, '_Beneficiary_Summary_File_Sample_{SAMPLE}.csv')", "DESYNPUF_ID",
            [_beneficiary_name(str(y)) for y in years], bucket=f"pmod(xxhash64(DESYNPUF_ID), {per_year})")]
        claims = {"inpatient": inpatient(events, seed), "outpatient": outpatient(events, seed),
                  "carrier_a": carrier(events, seed, file_b=False), "carrier_b": carrier(events, seed, file_b=True),
                  "pde": pde(pde_fills, seed)}
        for name, df in claims.items():
            buckets = parts_for(patients * ROWS_PER_PERSON[name])
            # a big file is written in hash buckets by several tasks, then concatenated
            tables.append(OutputTable(
                name, inject_dirty(df, DIRTY[name], dirty_rate, seed, name), COLUMNS[name], lit(FILES[name]),
                f"concat_ws('|', DESYNPUF_ID, lpad(`{COLUMNS[name][1]}`, 20, '0'))", [FILES[name]],
                bucket=f"pmod(xxhash64(DESYNPUF_ID), {buckets})"))
        partitions = per_year * len(years) + sum(parts_for(patients * ROWS_PER_PERSON[n]) for n in claims)
        files, dirty = write_tables(out_dir, tables, partitions, quoted_header=True)
        counts = person_counts(persons)
        # DE-SynPUF has no SEER file and only yearly coverage month counts: the deaths and
        # study-end counts apply, the SEER-only and monthly-coverage ones do not
        timing = timing_counts({t.name: t.rows for t in tables if t.name in claims}, seer=False)
    finally:
        release(pde_fills)
        release(events)
        release(persons)
    dirty["beneficiary_summary"] = mbsf_dirty(counts)
    truth = true_parameters(dirty_rate, sorafenib_hazard_ratio, CALENDAR)
    truth["person_counts"] = counts
    truth["dirty_counts"] = dirty
    truth["timing_anomalies"] = timing  # meanings: truth["timing_anomalies_model"]["counts"]
    return {"files": files, "truth": truth}
