"""Small helpers shared by test modules."""

from __future__ import annotations

# The seer-medicare contract's column lists (data-contracts/seer-medicare.md), written out
# here rather than taken from the generator or the mapping, so a drift on any side fails.
MONTHS = [f"{m:02d}" for m in range(1, 13)]
CONTRACT = {
    "seer_cancer": ["PATIENT_ID", "SEQUENCE_NUMBER", "YEAR_OF_DIAGNOSIS", "MONTH_OF_DIAGNOSIS", "PRIMARY_SITE",
                    "HISTOLOGIC_TYPE_ICD_O_3", "BEHAVIOR_CODE_ICD_O_3", "SEER_HISTORIC_STAGE_A",
                    "TYPE_OF_REPORTING_SOURCE", "SEER_DOD_YEAR", "SEER_DOD_MONTH"],
    "mbsf": ["PATIENT_ID", "BENE_ENROLLMT_REF_YR", "BENE_BIRTH_DT", "BENE_DEATH_DT", "VALID_DEATH_DT_SW",
             "SEX_IDENT_CD", "BENE_RACE_CD"]
    + [f"{p}_{m}" for p in ("MDCR_ENTLMT_BUYIN_IND", "HMO_IND", "PTD_CNTRCT_ID", "RDS_IND", "DUAL_STUS_CD")
       for m in MONTHS],
    "medpar": ["PATIENT_ID", "MEDPAR_ID", "ADMSN_DT", "DSCHRG_DT"] + [f"DGNS_{i}_CD" for i in range(1, 26)]
    + [f"SRGCL_PRCDR_{i}_CD" for i in range(1, 26)] + [f"SRGCL_PRCDR_PRFRM_{i}_DT" for i in range(1, 26)],
    "nch_base": ["PATIENT_ID", "CLM_ID", "CLM_FROM_DT", "CLM_THRU_DT", "PRNCPAL_DGNS_CD"]
    + [f"ICD_DGNS_CD{i}" for i in range(1, 13)],
    "nch_line": ["PATIENT_ID", "CLM_ID", "LINE_NUM", "LINE_1ST_EXPNS_DT", "LINE_LAST_EXPNS_DT", "HCPCS_CD",
                 "LINE_ICD_DGNS_CD", "LINE_SRVC_CNT"],
    "outpatient_base": ["PATIENT_ID", "CLM_ID", "CLM_FROM_DT", "CLM_THRU_DT", "PRNCPAL_DGNS_CD"]
    + [f"ICD_DGNS_CD{i}" for i in range(1, 26)] + [f"ICD_PRCDR_CD{i}" for i in range(1, 26)]
    + [f"PRCDR_DT{i}" for i in range(1, 26)],
    "outpatient_revenue": ["PATIENT_ID", "CLM_ID", "CLM_LINE_NUM", "REV_CNTR", "REV_CNTR_DT", "HCPCS_CD"],
    "pde": ["PATIENT_ID", "PDE_ID", "SRVC_DT", "PROD_SRVC_ID", "QTY_DSPNSD_NUM", "DAYS_SUPLY_NUM", "GNN", "BN"],
}


def delta_rows(path, version=None) -> list[dict]:
    """Rows of a Delta table as the deltalake package reads them (its own reader, not Spark's)."""
    import deltalake
    from pyarrow import fs as pafs

    # A pyarrow filesystem instead of deltalake's default Python-wrapped object store:
    # the latter aborts the interpreter at exit now and then (delta-io/delta-rs#2184).
    local = pafs.SubTreeFileSystem(str(path), pafs.LocalFileSystem())
    return deltalake.DeltaTable(str(path), version=version).to_pyarrow_table(filesystem=local).to_pylist()


def spark_jobs(spark) -> dict[int, str | None]:
    """Every job the session's status store still holds (the latest 1,000): id → its description."""
    jobs = spark.sparkContext._jsc.sc().statusStore().jobsList(None)
    found = {}
    for i in range(jobs.length()):
        job = jobs.apply(i)
        description = job.description()
        found[job.jobId()] = description.get() if description.isDefined() else None
    return found
