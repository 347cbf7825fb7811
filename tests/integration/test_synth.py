"""Synthetic raw data: determinism, exact layouts, injected dirt as counted, and the true model's direction."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from cohortlake.errors import UserError
from cohortlake.synth import generate
from helpers import CONTRACT

CLAIM_TABLES = ["medpar", "nch_base", "nch_line", "outpatient_base", "outpatient_revenue", "pde"]
QUANTITY_COLUMNS = {"QTY_DSPNSD_NUM", "DAYS_SUPLY_NUM", "LINE_SRVC_CNT"}
DATE_COLUMN = re.compile(r"(_DT|_DT\d+|PRCDR_DT\d+)$")


def is_date_column(name: str) -> bool:
    return bool(DATE_COLUMN.search(name))


def read_table(out: Path, table: str) -> pd.DataFrame:
    files = sorted(p for p in out.glob(f"{table}_*.csv") if re.fullmatch(rf"{table}_\d{{4}}\.csv", p.name))
    return pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in files], ignore_index=True)


def csv_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def seer(spark, tmp_path_factory):
    """One 3000-person SEER-Medicare extract with a high dirty rate, so every kind of dirt occurs."""
    out = tmp_path_factory.mktemp("seer")
    result = generate(spark, "seer-medicare", str(out), 3000, 11, dirty_rate=0.01)
    tables = {t: read_table(out, t) for t in CONTRACT if t != "mbsf"}
    tables["mbsf"] = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False)
                                for p in sorted(out.glob("mbsf_*.csv"))], ignore_index=True)
    truth = json.loads((out / "truth.json").read_text())
    return {"out": out, "result": result, "tables": tables, "truth": truth}


@pytest.fixture(scope="module")
def mixed300(spark, tmp_path_factory) -> Path:
    """300 persons of the mixed file, seed 5: the reference of the determinism and cancer-site tests."""
    out = tmp_path_factory.mktemp("mixed300")
    generate(spark, "seer-medicare", str(out), 300, 5)
    return out


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs, message", [
    ({"patients": 0}, "--patients"),
    ({"layout": "omop"}, "unknown layout"),
    ({"seed": -1}, "--seed"),
    ({"dirty_rate": 0.5}, "dirty rate"),
    ({"file_format": "sas"}, "unknown format 'sas'"),
    ({"layout": "desynpuf", "file_format": "fixed-width"}, "CMS publishes desynpuf as CSV"),
    ({"cancer_site": "lung"}, "unknown cancer site file 'lung'; choose one of: all, liver"),
    ({"layout": "desynpuf", "cancer_site": "liver"}, "desynpuf is a sample of all beneficiaries"),
])
def test_bad_arguments_raise_one_clear_user_error(tmp_path, kwargs, message):
    args = {"layout": "seer-medicare", "out_dir": str(tmp_path / "out"), "patients": 10, "seed": 1, **kwargs}
    with pytest.raises(UserError, match=message):
        generate(None, args.pop("layout"), args.pop("out_dir"), **args)


def test_out_dir_with_foreign_files_is_refused_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="notes.txt"):
        generate(None, "seer-medicare", str(tmp_path), 10, 1)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_whatever_the_partitioning_other_seed_other_bytes(spark, mixed300, tmp_path):
    first, again, other = mixed300, tmp_path / "b", tmp_path / "c"
    again.mkdir()
    (again / "medpar_0007.csv").write_bytes(b"stale")  # left by an earlier, bigger run: replaced
    generate(spark, "seer-medicare", str(again), 300, 5, source_partitions=3)
    generate(spark, "seer-medicare", str(other), 300, 6)
    a, b, c = csv_bytes(first), csv_bytes(again), csv_bytes(other)
    assert a == b
    assert not any(p.name.startswith(("_", ".")) or "part-" in p.name for p in first.iterdir())
    data = [n for n in a if n.endswith(".csv")]
    assert data and all(a[n] != c.get(n) for n in data)


def test_the_cli_offers_the_cancer_site_files_the_model_has():
    from cohortlake.cli_options import CANCER_SITES, DEMO_CANCER_SITE
    from cohortlake.synth.model import CANCER_SITE_FILES

    assert CANCER_SITES == tuple(CANCER_SITE_FILES) and DEMO_CANCER_SITE in CANCER_SITES


def test_the_liver_cancer_file_is_the_mixed_files_liver_persons_and_more_like_them(spark, mixed300, tmp_path):
    """NCI ships SEER-Medicare by cancer site. The liver file holds only persons with a liver
    tumor; a person with one in the mixed file is, with the same seed, the same person with the
    same rows in every table of the liver file."""
    mixed, liver = mixed300, tmp_path / "liver"
    generate(spark, "seer-medicare", str(liver), 300, 5, cancer_site="liver")
    truths = [json.loads((out / "truth.json").read_text()) for out in (mixed, liver)]
    assert [t["cancer_site_file"] for t in truths] == [{"site": "all", "liver_share": 0.35},
                                                     {"site": "liver", "liver_share": 1.0}]
    hcc_persons = [t["person_counts"]["hcc_persons"] for t in truths]
    assert 60 < hcc_persons[0] < 150 and hcc_persons[1] == 300

    def lines(out: Path) -> dict[str, list[str]]:  # file name -> data lines (header checked, then left out)
        found = {}
        for path in sorted(out.glob("*.csv")):
            header, *rows = path.read_text(encoding="utf-8").splitlines()
            assert header.split(",") == CONTRACT[path.name.rsplit("_", 1)[0]], path.name
            found[path.name] = rows
        return found

    def persons(files: dict[str, list[str]], liver_only: bool) -> set[str]:
        tumors = [row.split(",") for name, rows in files.items() if name.startswith("seer_cancer_") for row in rows]
        site = CONTRACT["seer_cancer"].index("PRIMARY_SITE")
        return {t[0] for t in tumors if not liver_only or t[site].startswith("C22")}

    a, b = lines(mixed), lines(liver)
    assert set(a) == set(b)
    with_liver_tumor = persons(a, liver_only=True)
    assert persons(b, liver_only=True) == persons(b, liver_only=False) and len(persons(b, False)) == 300
    assert len(with_liver_tumor) == hcc_persons[0] and with_liver_tumor < persons(b, liver_only=True)
    compared = 0
    for name in a:
        kept = [row for row in a[name] if row.split(",")[0] in with_liver_tumor]
        assert kept == [row for row in b[name] if row.split(",")[0] in with_liver_tumor], name
        compared += len(kept)
    assert compared > 20 * len(with_liver_tumor)  # their tumors, enrollment years, claims and fills


# --------------------------------------------------------------------------- seer-medicare layout
def test_file_names_and_headers_follow_the_contract(seer):
    out, files = seer["out"], seer["result"]["files"]
    assert list(files) == list(CONTRACT)
    for table, info in files.items():
        assert info["files"], table
        for name in info["files"]:
            assert name.startswith(table) and name.endswith(".csv")
            header = (out / name).open(encoding="utf-8").readline().rstrip("\n")
            assert header.split(",") == CONTRACT[table], name
    assert [f"mbsf_{y}.csv" for y in range(2006, 2014)] == files["mbsf"]["files"]
    for table, df in seer["tables"].items():
        assert len(df) == files[table]["rows"], table


def test_patient_ids_keep_leading_zeros(seer):
    ids = seer["tables"]["seer_cancer"]["PATIENT_ID"]
    assert ids.str.fullmatch(r"\d{10}").all()
    assert ids.str.startswith("000").all() and ids.nunique() == 3000


def test_dates_are_empty_or_eight_digits_and_in_the_icd9_era(seer):
    for table, df in seer["tables"].items():
        for col in (c for c in df.columns if is_date_column(c)):
            values = df[col].str.strip()
            assert values.str.fullmatch(r"(\d{8})?").all(), (table, col)
            valid = pd.to_datetime(values[values != ""], format="%Y%m%d", errors="coerce").dropna()
            assert (valid <= pd.Timestamp("2013-12-31")).all() and (valid >= pd.Timestamp("1900-01-01")).all()
    claims = seer["tables"]["nch_base"]["CLM_FROM_DT"]
    assert claims[claims.str.fullmatch(r"\d{8}")].min() >= "20060101"


def test_tumors_mix_qualifying_and_near_miss_hcc(seer):
    tumors = seer["tables"]["seer_cancer"]
    hcc = tumors[tumors.PRIMARY_SITE == "C220"]
    share = hcc.PATIENT_ID.nunique() / tumors.PATIENT_ID.nunique()
    assert 0.30 < share < 0.40
    assert {"8160", "8180"} & set(hcc.HISTOLOGIC_TYPE_ICD_O_3) and "2" in set(hcc.BEHAVIOR_CODE_ICD_O_3)
    assert "02" in set(hcc.SEQUENCE_NUMBER)  # HCC as a second primary fails the first-primary rule
    assert {"00", "01", "02"} == set(tumors.SEQUENCE_NUMBER)
    assert "99" in set(tumors.MONTH_OF_DIAGNOSIS) and {"6", "7"} & set(tumors.TYPE_OF_REPORTING_SOURCE)
    assert set(hcc.SEER_HISTORIC_STAGE_A) == {"1", "2", "4", "9"}


def test_sorafenib_is_found_by_ndc_and_by_generic_name_only(seer):
    pde = seer["tables"]["pde"]
    by_ndc = pde.PROD_SRVC_ID.str.strip() == "50419048858"
    by_name_only = ~by_ndc & pde.GNN.str.contains("sorafenib", case=False)
    assert by_ndc.sum() > 0 and by_name_only.sum() > 0
    assert not pde.loc[by_name_only, "GNN"].str.contains("SORAFENIB").any()  # only a case-insensitive match finds them
    assert pde.PROD_SRVC_ID.str.strip().str.fullmatch(r"\d{11}").all()


def test_injected_dirt_in_the_files_matches_truth(seer):
    truth, tables = seer["truth"]["dirty_counts"], seer["tables"]
    seen = {"duplicate_row": 0, "trailing_blank_code": 0, "impossible_date": 0, "non_numeric_quantity": 0}
    for table in CLAIM_TABLES:
        df = tables[table]
        bad_date = pd.Series(False, index=df.index)
        for col in (c for c in df.columns if is_date_column(c)):
            filled = df[col] != ""
            bad_date |= filled & pd.to_datetime(df[col].where(filled), format="%Y%m%d", errors="coerce").isna()
        not_a_number = pd.Series(False, index=df.index)
        for col in (c for c in df.columns if c in QUANTITY_COLUMNS):
            not_a_number |= (df[col] != "") & ~df[col].str.fullmatch(r"\d+")
        found = {
            "duplicate_row": int(df.duplicated().sum()),
            "trailing_blank_code": int(df.apply(lambda col: col.str.endswith(" ")).any(axis=1).sum()),
            "impossible_date": int(bad_date.sum()),
            "non_numeric_quantity": int(not_a_number.sum()),
        }
        assert found == truth[table], table
        for kind, n in found.items():
            seen[kind] += n
    assert all(n > 0 for n in seen.values()), seen


def test_enrollment_dirt_matches_truth(seer):
    truth, tables = seer["truth"]["dirty_counts"]["mbsf"], seer["tables"]
    mbsf, tumors = tables["mbsf"], tables["seer_cancer"]
    not_in_mbsf = set(tumors.PATIENT_ID) - set(mbsf.PATIENT_ID)
    assert len(not_in_mbsf) == truth["person_not_in_mbsf"] > 0
    assert not_in_mbsf <= set(tables["nch_base"].PATIENT_ID) | set(tables["outpatient_base"].PATIENT_ID) \
        | set(tables["medpar"].PATIENT_ID)
    years = mbsf.assign(year=mbsf.BENE_ENROLLMT_REF_YR.astype(int)).groupby("PATIENT_ID").year
    holes = int((years.max() - years.min() + 1 - years.count()).sum())
    assert holes == truth["missing_mbsf_year"] > 0
    deaths = mbsf[mbsf.BENE_DEATH_DT != ""].assign(year=lambda d: d.BENE_ENROLLMT_REF_YR.astype(int))
    latest = deaths.sort_values("year").groupby("PATIENT_ID").BENE_DEATH_DT.last()
    differing = int((deaths.BENE_DEATH_DT != deaths.PATIENT_ID.map(latest)).sum())
    assert differing == truth["differing_death_date"] > 0


# --------------------------------------------------------------------------- timing anomalies
# Recomputed from the files alone, by the rules the seer-medicare mapping applies: a claim's
# first date, the latest dated MBSF death, SEER's month with day 15, monthly MBSF codes.
FIRST_DATE = {"medpar": "ADMSN_DT", "nch_base": "CLM_FROM_DT", "outpatient_base": "CLM_FROM_DT", "pde": "SRVC_DT"}
CLAIM_HEADERS = ["medpar", "nch_base", "outpatient_base"]
TKI_NAMES = {"REGORAFENIB", "LENVATINIB MESYLATE", "CABOZANTINIB S-MALATE"}
STUDY_END = pd.Timestamp("2013-12-31")


def to_date(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.where(values != ""), format="%Y%m%d", errors="coerce")


@pytest.fixture(scope="module")
def dated(seer):
    """Claim headers and fills with a readable date: ``date`` (first date), PATIENT_ID, GNN.

    A row with an impossible date anywhere is left out, as truth.json's counts do.
    """
    out = {}
    for table, col in FIRST_DATE.items():
        df = seer["tables"][table]
        bad = pd.Series(False, index=df.index)
        for c in (c for c in df.columns if is_date_column(c)):
            bad |= (df[c] != "") & to_date(df[c]).isna()
        rows = df.loc[~bad, ["PATIENT_ID"] + (["GNN"] if table == "pde" else [])].copy()
        rows["date"] = to_date(df.loc[~bad, col])
        out[table] = rows
    return out


@pytest.fixture(scope="module")
def deaths(seer):
    """(death date in the MBSF by person, imputed death of persons known dead only from SEER)."""
    mbsf, tumors = seer["tables"]["mbsf"], seer["tables"]["seer_cancer"]
    dated_rows = mbsf[mbsf.BENE_DEATH_DT != ""].sort_values(["BENE_ENROLLMT_REF_YR", "BENE_DEATH_DT"])
    in_mbsf = to_date(dated_rows.groupby("PATIENT_ID").BENE_DEATH_DT.last())
    seer_dod = tumors[tumors.SEER_DOD_YEAR != ""]
    imputed = to_date(seer_dod.SEER_DOD_YEAR + seer_dod.SEER_DOD_MONTH.str.zfill(2) + "15")
    imputed = imputed.groupby(seer_dod.PATIENT_ID).max()
    return in_mbsf, imputed[~imputed.index.isin(in_mbsf.index)]


def counts_by_table(rows: dict[str, pd.DataFrame]) -> dict[str, int]:
    return {"persons": pd.concat([r.PATIENT_ID for r in rows.values()]).nunique(),
            **{table: len(r) for table, r in rows.items()}}


def test_fills_and_claims_after_death_match_truth(seer, dated, deaths):
    truth, in_mbsf = seer["truth"]["timing_anomalies"], deaths[0]
    after = {t: r[r.date > r.PATIENT_ID.map(in_mbsf)] for t, r in dated.items()}
    fills = after["pde"]
    assert {"persons": fills.PATIENT_ID.nunique(), "fills": len(fills)} == truth["fills_after_death"]
    assert counts_by_table({t: after[t] for t in CLAIM_HEADERS}) == truth["claims_after_death"]
    assert len(fills) > fills.PATIENT_ID.nunique() > 0  # auto-refills: some decedents have several
    assert truth["claims_after_death"]["nch_base"] > 0 and truth["claims_after_death"]["outpatient_base"] > 0
    # late-posted: within a month of the death, some in a month after the death month
    late = pd.concat([after[t] for t in after])
    days = (late.date - late.PATIENT_ID.map(in_mbsf)).dt.days
    assert days.between(1, 30).all()
    assert (late.date.dt.to_period("M") > late.PATIENT_ID.map(in_mbsf).dt.to_period("M")).any()


def test_some_first_sorafenib_and_tki_fills_come_after_death(seer, dated, deaths):
    truth, in_mbsf = seer["truth"]["timing_anomalies"], deaths[0]
    fills = dated["pde"]

    def first(rows):
        first_fill = rows.groupby("PATIENT_ID").date.min()
        return first_fill, in_mbsf.reindex(first_fill.index)

    sorafenib, death = first(fills[fills.GNN.str.contains("sorafenib", case=False)])
    assert int((sorafenib > death).sum()) == truth["first_sorafenib_fill_after_death"]
    assert int((sorafenib == death).sum()) == truth["first_sorafenib_fill_on_death_day"]
    # rare by design (a few per 1,000 sorafenib starts): at least one of the two in 3,000 persons
    assert truth["first_sorafenib_fill_after_death"] + truth["first_sorafenib_fill_on_death_day"] > 0
    tki, death = first(fills[fills.GNN.isin(TKI_NAMES)])
    assert int((tki > death).sum()) == truth["first_tki_fill_after_death"]


def test_seer_only_deaths_imputed_mid_month_precede_claims_later_that_month(seer, dated, deaths):
    truth, seer_only = seer["truth"]["timing_anomalies"], deaths[1]
    after = {t: r[r.date > r.PATIENT_ID.map(seer_only)] for t, r in dated.items()}
    assert counts_by_table(after) == truth["after_seer_imputed_death"]
    assert truth["after_seer_imputed_death"]["persons"] > 0
    # the person was alive then: the claims fall in the death month, after its imputed 15th
    late = pd.concat(after.values())
    assert (late.date.dt.to_period("M") == late.PATIENT_ID.map(seer_only).dt.to_period("M")).all()


def test_claims_and_fills_outside_mbsf_coverage_match_truth(seer, dated):
    truth, mbsf = seer["truth"]["timing_anomalies"], seer["tables"]["mbsf"]
    months = pd.concat([pd.DataFrame({
        "PATIENT_ID": mbsf.PATIENT_ID, "year": mbsf.BENE_ENROLLMT_REF_YR.astype(int), "month": m,
        "a": mbsf[f"MDCR_ENTLMT_BUYIN_IND_{m:02d}"].isin(["1", "3", "A", "C"]),
        "b": mbsf[f"MDCR_ENTLMT_BUYIN_IND_{m:02d}"].isin(["2", "3", "B", "C"]),
        "d": mbsf[f"PTD_CNTRCT_ID_{m:02d}"].str[:1].isin(list("HRSE")) & (mbsf[f"RDS_IND_{m:02d}"] != "Y"),
    }) for m in range(1, 13)])
    part = {"medpar": "a", "nch_base": "b", "outpatient_base": "b", "pde": "d"}
    outside = {}
    for table, rows in dated.items():
        keyed = rows.assign(year=rows.date.dt.year, month=rows.date.dt.month)
        coverage = keyed.merge(months, on=["PATIENT_ID", "year", "month"], how="left")[part[table]]
        outside[table] = keyed[~coverage.eq(True).to_numpy()]  # no MBSF row: not covered
    assert counts_by_table(outside) == truth["outside_mbsf_coverage"]
    assert all(n > 0 for n in truth["outside_mbsf_coverage"].values())
    # run-out: fills dated after the last month whose MBSF covered the person's Part D
    covered = months[months.d].assign(idx=lambda m: m.year * 12 + m.month)
    last = covered.groupby("PATIENT_ID").idx.max()
    fills = outside["pde"]
    assert (fills.date.dt.year * 12 + fills.date.dt.month > fills.PATIENT_ID.map(last)).any()


def test_some_first_sorafenib_fills_are_on_the_study_end_alive_and_covered(seer, dated, deaths):
    truth, mbsf = seer["truth"]["timing_anomalies"], seer["tables"]["mbsf"]
    fills = dated["pde"]
    first = fills[fills.GNN.str.contains("sorafenib", case=False)].groupby("PATIENT_ID").date.min()
    on_end = set(first[first == STUDY_END].index) - set(deaths[0].index) - set(deaths[1].index)
    december = mbsf[(mbsf.BENE_ENROLLMT_REF_YR == "2013") & mbsf.PATIENT_ID.isin(on_end)]
    covered = december[december.MDCR_ENTLMT_BUYIN_IND_12.isin(["3", "C"])
                       & december.PTD_CNTRCT_ID_12.str[:1].isin(list("HRSE")) & (december.RDS_IND_12 != "Y")]
    assert covered.PATIENT_ID.nunique() == truth["first_sorafenib_fill_on_study_end"] > 0


def test_timing_anomalies_do_not_depend_on_the_dirty_rate(spark):
    """Real features of deliveries, not dirt: the same persons carry them at any dirty rate."""
    from cohortlake.synth import model

    def mechanisms(rate):
        persons = model.build_persons(spark, 3000, 11, model.SEER_CALENDAR, rate)
        return persons.selectExpr(
            "count_if(late_fills)", "count_if(late_claims)", "count(sor_late_day)", "count(tki_late_day)",
            "sum(hash(id, late_fills, late_claims, sor_late_day, tki_late_day, first_fill_day))").collect()[0]

    default, dirty = mechanisms(0.002), mechanisms(0.01)
    assert default == dirty and all(n > 0 for n in list(default)[:3])


def test_hcc_directed_therapy_straddles_the_study_window(seer):
    tables = seer["tables"]
    tumors = tables["seer_cancer"]
    hcc = tumors[(tumors.PRIMARY_SITE == "C220") & (tumors.MONTH_OF_DIAGNOSIS != "99")]
    dx = pd.to_datetime(hcc.YEAR_OF_DIAGNOSIS + hcc.MONTH_OF_DIAGNOSIS.str.zfill(2) + "15", format="%Y%m%d")
    dx = pd.Series(dx.values, index=hcc.PATIENT_ID)
    lines = tables["nch_line"]
    surgery = lines[lines.HCPCS_CD.str.strip().isin({"47120", "47135", "47380", "37243", "77412"})]
    days = (pd.to_datetime(surgery.LINE_1ST_EXPNS_DT, format="%Y%m%d", errors="coerce")
            - surgery.PATIENT_ID.map(dx)).dt.days.dropna()
    assert days.between(-30, 60).any() and days.isin([-31, 61]).any()


def test_treatment_is_confounded_as_the_truth_says(seer):
    """Advanced HCC with Part D, alive at day 60: the stage treated more often is the one the truth favours."""
    tables, truth = seer["tables"], seer["truth"]
    tumors, mbsf, pde = tables["seer_cancer"], tables["mbsf"], tables["pde"]
    hcc = tumors[(tumors.PRIMARY_SITE == "C220") & tumors.HISTOLOGIC_TYPE_ICD_O_3.between("8170", "8175")
                 & (tumors.BEHAVIOR_CODE_ICD_O_3 == "3") & tumors.SEER_HISTORIC_STAGE_A.isin(["2", "4"])
                 & (tumors.MONTH_OF_DIAGNOSIS != "99")].drop_duplicates("PATIENT_ID").copy()
    hcc["dx"] = pd.to_datetime(hcc.YEAR_OF_DIAGNOSIS + hcc.MONTH_OF_DIAGNOSIS.str.zfill(2) + "15", format="%Y%m%d")
    # Part D contract in the diagnosis month
    rows = hcc.merge(mbsf, left_on=["PATIENT_ID", "YEAR_OF_DIAGNOSIS"], right_on=["PATIENT_ID", "BENE_ENROLLMT_REF_YR"])
    contract = rows.apply(lambda r: r[f"PTD_CNTRCT_ID_{int(r.MONTH_OF_DIAGNOSIS):02d}"], axis=1)
    with_part_d = set(rows.loc[contract.str[:1].isin(list("HRSE")) & (rows.RDS_IND_01 != "Y"), "PATIENT_ID"])
    death = pd.to_datetime(mbsf.loc[mbsf.BENE_DEATH_DT.str.fullmatch(r"\d{8}"), ["PATIENT_ID", "BENE_DEATH_DT"]]
                           .drop_duplicates("PATIENT_ID", keep="last").set_index("PATIENT_ID").BENE_DEATH_DT,
                           format="%Y%m%d", errors="coerce")
    hcc["death"] = hcc.PATIENT_ID.map(death)
    cohort = hcc[hcc.PATIENT_ID.isin(with_part_d) & ~((hcc.death - hcc.dx).dt.days <= 60)]
    sor = pde[(pde.PROD_SRVC_ID.str.strip() == "50419048858") | pde.GNN.str.contains("sorafenib", case=False)]
    fills = sor.merge(cohort[["PATIENT_ID", "dx"]], on="PATIENT_ID")
    fill_day = (pd.to_datetime(fills.SRVC_DT, format="%Y%m%d", errors="coerce") - fills.dx).dt.days
    treated = set(fills.loc[fill_day.between(0, 60), "PATIENT_ID"])
    share = cohort.assign(treated=cohort.PATIENT_ID.isin(treated)).groupby("SEER_HISTORIC_STAGE_A").treated.mean()
    intercepts = truth["treatment_model"]["intercept_by_stage"]
    assert len(cohort) > 150 and 0.15 < cohort.PATIENT_ID.isin(treated).mean() < 0.45
    assert (share["4"] > share["2"]) == (intercepts["4"] > intercepts["2"])


def test_truth_json_holds_the_true_parameters(seer):
    truth = seer["truth"]
    assert truth["sorafenib_hazard_ratio"] == 0.8 and truth["seed"] == 11 and truth["patients"] == 3000
    assert truth["dirty_rate"] == 0.01
    assert set(truth["survival_model"]["log_hazard_ratios"]) >= {"age_per_10_years", "ascites", "comorbidity_count"}
    assert truth["survival_model"]["median_days_at_reference"]["hcc"]["4"] < 100  # untreated advanced HCC: months
    assert truth["files"] == seer["result"]["files"]


# --------------------------------------------------------------------------- desynpuf layout
def test_desynpuf_files_have_exactly_the_original_headers(spark, tmp_path, desynpuf_fixture_dir):
    out = tmp_path / "de"
    result = generate(spark, "desynpuf", str(out), 200, 3)
    written = {name for info in result["files"].values() for name in info["files"]}
    assert len(written) == 8
    # no SEER file and no monthly coverage: only the death and study-end timing counts
    timing = json.loads((out / "truth.json").read_text())["timing_anomalies"]
    assert set(timing) == {"fills_after_death", "claims_after_death", "first_sorafenib_fill_after_death",
                           "first_sorafenib_fill_on_death_day", "first_tki_fill_after_death",
                           "first_sorafenib_fill_on_study_end"}
    assert set(timing["claims_after_death"]) == {"persons", "inpatient", "outpatient", "carrier_a", "carrier_b"}
    for fixture in sorted(desynpuf_fixture_dir.glob("*.csv")):
        name = fixture.name.replace("_Sample_0", "_Sample_1")
        assert name in written
        with fixture.open("rb") as a, (out / name).open("rb") as b:
            original = a.readline()
            assert b.readline() == original, name
            n_fields = original.count(b",") + 1
            assert all(line.count(b",") + 1 == n_fields for line in b), name
