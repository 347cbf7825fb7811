"""Exact duplicates across a delivery's files: ``mapper.dedupe`` as ``type_bronze`` runs it.

Rows repeated within a file and across files collapse to one row with its number of
copies; the source file kept is the smallest name (Python's order of the names as
delivered, which is Spark's order of their UTF-8 bytes), whatever the names hold: blanks,
'+', '#', a percent sign, accented letters (Spark reports some of them URL-encoded). Rows
that differ in one field, a missing one included, are two rows.
"""

from __future__ import annotations

from pathlib import Path

from cohortlake.sources import ingest, mapper
from cohortlake.sources.mapping import load_mapping

HEADER = ["PATIENT_ID", "PDE_ID", "SRVC_DT", "PROD_SRVC_ID", "QTY_DSPNSD_NUM", "DAYS_SUPLY_NUM", "GNN", "BN"]
ONE = ["0000000001", "P1", "20090410", "50419048858", "120", "30", "SORAFENIB", "NEXAVAR"]
TWO = ["0000000002", "P2", "20090510", "00093505898", "30", "30", "METFORMIN", None]
TWO_BN = ["0000000002", "P2", "20090510", "00093505898", "30", "30", "METFORMIN", "Y"]
THREE = ["0000000003", "P3", "20100110", "00093505898", "30", "30", " METFORMIN ", "X"]

# name → rows. In Python's order of names:
# "pde 2009 (copy).csv" < "pde+2010#2.csv" < "pde_100%.csv" < "pde_2010.csv" < "pdé_2010.csv"
FILES = {
    "pdé_2010.csv": [ONE, TWO, THREE],
    "pde_2010.csv": [THREE, THREE],
    "pde+2010#2.csv": [THREE],
    "pde_100%.csv": [TWO_BN, ONE],
    "pde 2009 (copy).csv": [TWO],
}


def write(folder: Path) -> list[Path]:
    paths = []
    for name, rows in FILES.items():
        path = folder / name
        with open(path, "w", newline="", encoding="utf-8") as handle:
            handle.write(",".join(HEADER) + "\n")
            for row in rows:
                handle.write(",".join("" if v is None else v for v in row) + "\n")
        paths.append(path)
    return paths


def plain_dedupe(files: dict[str, list[list]]) -> dict[tuple, tuple[str, int]]:
    """Row → (smallest file name holding it, copies), by plain Python."""
    kept: dict[tuple, tuple[str, int]] = {}
    for name, rows in files.items():
        for row in rows:
            first, copies = kept.get(tuple(row), (name, 0))
            kept[tuple(row)] = (min(first, name), copies + 1)
    return kept


def test_duplicates_collapse_to_the_smallest_file_name_with_their_copies(spark, tmp_path):
    mapping = load_mapping("seer-medicare")
    groups = ingest.group_by_header("pde", write(tmp_path), mapping)
    bronze = ingest.read_raw(spark, "pde", groups, mapping)
    assert sorted({r._source_file for r in bronze.collect()}) == sorted(FILES)  # as Spark names them

    data_columns = [c for c in bronze.columns if c in HEADER]
    names = [p.name for paths in groups.values() for p in paths]
    deduped = mapper.dedupe(bronze, data_columns + [ingest.CORRUPT], names)
    got = {tuple(r[c] for c in HEADER): (r[mapper.SOURCE_FILE], r[mapper.COPIES]) for r in deduped.collect()}
    assert deduped.count() == len(got)  # one row per distinct row
    assert got == plain_dedupe(FILES)
    assert got[tuple(ONE)] == ("pde_100%.csv", 2)
    assert got[tuple(TWO)] == ("pde 2009 (copy).csv", 2) and got[tuple(TWO_BN)] == ("pde_100%.csv", 1)
    assert got[tuple(THREE)] == ("pde+2010#2.csv", 4)
    # the aggregation keeps fixed-width buffers: Spark hashes the groups instead of sorting the rows
    plan = deduped._jdf.queryExecution().executedPlan().toString()
    assert "HashAggregate" in plan and "SortAggregate" not in plan, plan


def test_the_typed_rows_keep_the_counts_and_files(spark, tmp_path):
    mapping = load_mapping("seer-medicare")
    groups = ingest.group_by_header("pde", write(tmp_path), mapping)
    bronze = ingest.read_raw(spark, "pde", groups, mapping)
    typed = ingest.type_bronze(bronze, "pde", mapping, groups)
    rows = typed.select("PDE_ID", "BN", mapper.SOURCE_FILE, mapper.COPIES).collect()
    assert sum(r[mapper.COPIES] for r in rows) == sum(len(file_rows) for file_rows in FILES.values())
    assert sorted((r.PDE_ID, r.BN or "", r[mapper.SOURCE_FILE], r[mapper.COPIES]) for r in rows) == [
        ("P1", "NEXAVAR", "pde_100%.csv", 2),
        ("P2", "", "pde 2009 (copy).csv", 2),
        ("P2", "Y", "pde_100%.csv", 1),
        ("P3", "X", "pde+2010#2.csv", 4),
    ]
