"""The public DE-SynPUF files load as CMS published them: code-format faults are warnings.

Real DE-SynPUF inpatient files carry 5-character diagnosis-like values (``E8781``,
``V5866``, ``49121``) in ICD9_PRCDR_CD_2 … _5, in 39-59% of the filled values. Such a
value is set aside in quarantine with its column and reason, its claim lands, the gates
pass with warnings counted per column, and a data steward can still make the rule
critical by editing the suite file.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from cohortlake.lake.delta import Lakehouse

INPATIENT = "DE1_0_2008_to_2010_Inpatient_Claims_Sample_0.csv"
DX_LIKE = ["E8781", "V5866", "49121", "V4581", "42731", "E9320"]
PROCEDURES = ["9904", "3995", "8872", "4513"]
EXTRA_CLAIMS = 40
BAD_PER_CLAIM = [1, 2, 3, 2]  # of ICD9_PRCDR_CD_2 … _5: 50% of the filled values overall


def anomalous_inpatient(source, target) -> dict:
    """The fixture's inpatient file plus claims whose procedure columns 2-5 hold diagnosis-like values."""
    with open(source, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    persons = [r["DESYNPUF_ID"] for r in rows]
    bad = good = 0
    for i in range(EXTRA_CLAIMS):
        row = dict(rows[i % len(rows)])
        row.update({"CLM_ID": f"99{i:013d}", "CLM_FROM_DT": f"2009{i % 12 + 1:02d}05", "CLM_THRU_DT": f"2009{i % 12 + 1:02d}09",
                    "ICD9_PRCDR_CD_1": "3893"})
        n_bad = BAD_PER_CLAIM[i % len(BAD_PER_CLAIM)]
        for k in range(2, 6):
            if k - 2 < n_bad:
                row[f"ICD9_PRCDR_CD_{k}"] = DX_LIKE[(i + k) % len(DX_LIKE)]
                bad += 1
            else:
                row[f"ICD9_PRCDR_CD_{k}"] = PROCEDURES[(i + k) % len(PROCEDURES)]
                good += 1
        rows.append(row)
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, quoting=csv.QUOTE_MINIMAL)
        handle.write(",".join(f'"{c}"' for c in header) + "\n")
        writer.writerows(rows)
    return {"rows": len(rows), "bad": bad, "good": good, "persons": sorted(set(persons))}


@pytest.fixture(scope="module")
def anomalous(spark, desynpuf_fixture_dir, tmp_path_factory):
    from cohortlake.sources.ingest import ingest

    base = tmp_path_factory.mktemp("desynpuf_anomalies")
    raw = base / "raw"
    shutil.copytree(desynpuf_fixture_dir, raw, ignore=shutil.ignore_patterns("*.md"))
    facts = anomalous_inpatient(desynpuf_fixture_dir / INPATIENT, raw / INPATIENT)
    lake = Lakehouse(str(base / "lake"), spark)
    lake.report = ingest(spark, lake, "desynpuf", raw)  # gates on: a critical failure would raise here
    lake.facts = facts
    return lake


def test_the_rates_are_those_of_the_published_files(anomalous):
    share = anomalous.facts["bad"] / (anomalous.facts["bad"] + anomalous.facts["good"])
    assert 0.39 <= share <= 0.59


def test_loads_with_warnings_and_no_critical_failure(anomalous):
    bronze, silver = anomalous.report.quality
    assert bronze.passed and silver.passed and not bronze.critical_failures
    warned = {o.column: o for run, o in bronze.warnings if run.suite == "bronze.desynpuf.inpatient_claims"}
    counted = {c: warned[c].unexpected_count for c in warned if c.startswith("ICD9_PRCDR_CD_")}
    per_column = {f"ICD9_PRCDR_CD_{k}": sum(1 for i in range(EXTRA_CLAIMS) if BAD_PER_CLAIM[i % 4] >= k - 1)
                  for k in range(2, 6) if any(BAD_PER_CLAIM[i % 4] >= k - 1 for i in range(EXTRA_CLAIMS))}
    assert counted == per_column
    assert set(warned["ICD9_PRCDR_CD_2"].examples) <= set(DX_LIKE) and warned["ICD9_PRCDR_CD_2"].examples


def test_each_bad_value_is_set_aside_with_column_and_reason_and_its_claim_lands(anomalous):
    counts = {c.raw_table: c for c in anomalous.report.raw}
    inpatient = counts["inpatient_claims"]
    assert (inpatient.rows_in, inpatient.quarantined, inpatient.rows_out) == (anomalous.facts["rows"], 0, anomalous.facts["rows"])
    assert inpatient.values_set_aside == anomalous.facts["bad"]
    quarantine = anomalous.read("quarantine/inpatient_claims").collect()
    assert len(quarantine) == anomalous.facts["bad"]
    assert {(q.scope, q.reason) for q in quarantine} == {
        ("value", "expected an ICD-9 procedure code (2-4 digits) or ICD-10-PCS code")}
    assert {q.value for q in quarantine} <= set(DX_LIKE) and {q.column for q in quarantine} <= {
        f"ICD9_PRCDR_CD_{k}" for k in range(2, 6)}
    procedures = anomalous.read("silver/procedure").where("source_table = 'inpatient_claims'").collect()
    from_columns_2_to_5 = [p for p in procedures if p.source_column in {f"ICD9_PRCDR_CD_{k}" for k in range(2, 6)}]
    assert len(from_columns_2_to_5) == anomalous.facts["good"]
    assert not {p.code for p in procedures} & set(DX_LIKE)


def test_every_person_and_event_row_is_in_silver_or_quarantine_and_counts_add_up(anomalous):
    for c in anomalous.report.raw:
        assert c.rows_in == c.rows_out + c.quarantined + c.duplicates, c.raw_table
    with open(anomalous.report.manifest_path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    stored = manifest["extra"]["raw_tables"]["inpatient_claims"]
    assert stored["values_set_aside"] == anomalous.facts["bad"] and stored["rows_out"] == anomalous.facts["rows"]
    assert sorted(r.person_id for r in anomalous.read("silver/person").collect()) == anomalous.facts["persons"]
    pde = {c.raw_table: c for c in anomalous.report.raw}["prescription_drug_events"]
    assert anomalous.read("silver/dispensing").count() == pde.rows_out and pde.quarantined == 0


def test_a_steward_makes_the_warning_critical_by_editing_the_suite(anomalous, tmp_path, monkeypatch):
    from cohortlake.quality.gates import bronze_targets
    from cohortlake.quality.run import QualityRunner
    from cohortlake.quality.suites import SUITES_ENV, load_suites, suites_dir

    suites = tmp_path / "expectations"
    shutil.copytree(suites_dir(), suites)
    path = suites / "bronze.desynpuf.inpatient_claims.json"
    data = json.loads(path.read_text())
    for e in data["expectations"]:
        if e["kwargs"].get("column") == "ICD9_PRCDR_CD_2" and e["type"] == "expect_column_values_to_match_regex":
            e["severity"] = "critical"
            e["kwargs"]["mostly"] = 0.95
    path.write_text(json.dumps(data, indent=2))
    monkeypatch.setenv(SUITES_ENV, str(suites))
    targets = bronze_targets(anomalous, "desynpuf", load_suites(), names=["bronze.desynpuf.inpatient_claims"])
    report = QualityRunner(anomalous).validate("bronze", targets, gate=False)
    assert not report.passed
    assert [o.column for _, o in report.critical_failures] == ["ICD9_PRCDR_CD_2"]


def test_the_real_fixture_loads_with_no_critical_failure(desynpuf_lake):
    bronze, silver = desynpuf_lake.report.quality
    assert bronze.passed and silver.passed
    for c in desynpuf_lake.report.raw:
        assert c.rows_in == c.rows_out + c.quarantined + c.duplicates
