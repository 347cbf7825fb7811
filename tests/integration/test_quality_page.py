"""The quality page: one self-contained page per run for the analyst and the release
audience, opened offline; and the comparison of two deliveries, which flags exactly the
service year whose carrier claims went missing."""

from __future__ import annotations

import csv
import re
import shutil

import pytest
from offline_browser import only_local, visit

from cohortlake.lake.delta import Lakehouse
from cohortlake.quality.page import RELEASE, build_context, quarantine_summary, render_page

SMALL_NUMBER = re.compile(r'class="num count">([1-9]|10)<')


def test_demo_quality_page_offline(demo_run, spark):
    lake_root, log = demo_run
    page = lake_root / "_quality" / "report.html"
    assert f"Quality page: {page}" in log
    visited = visit(page, budget_ms=2000)
    assert visited.outbound == [] and only_local(visited.connections)
    html = visited.dom
    assert "ANALYST VIEW - NOT FOR RELEASE" in html and "<script" not in page.read_text()
    for stage in ("bronze", "silver", "cohort"):
        assert f"<h3>{stage}</h3>" in html
    assert "silver.person" in html and "cohorts.hcc_sorafenib_landmark.cohort" in html
    gates = re.findall(r'<span class="badge (pass|warn|fail)">', html.split('id="expectations"')[0])
    # a badge per suite: 8 bronze tables, 8 silver, the cohort and its attrition (tests that run the
    # study on this shared lake before this one add the matched stage), and the legend's three
    assert len(gates) >= 8 + 8 + 2 + 3
    # the demo's dirty rows: quarantined by reason, with example rows, and the ingest table
    assert "expected a date YYYYMMDD" in html and "Example rows" in html
    assert re.search(r"<td>nch_line</td><td class=\"num\">1</td>", html)
    assert "this lake holds one delivery" in html

    lake = Lakehouse(str(lake_root), spark)
    release = render_page(build_context(lake, RELEASE, {"compared": False, "reason": "first delivery"},
                                        quarantine_summary(lake, examples=True)))
    assert "NOT FOR RELEASE" not in release and "Release set" in release
    assert "quarantine-examples" not in release and "<th>Example values</th>" not in release
    assert not SMALL_NUMBER.findall(release), SMALL_NUMBER.findall(release)
    assert "&lt;11" in release  # the demo's handful of dirty rows per reason


def test_validate_prints_the_quality_page_last(demo_run, capsys):
    from cohortlake.cli import main

    lake = demo_run[0]
    assert main(["validate", "--lake", str(lake), "--suite", "silver.death"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"Quality page: {lake / '_quality' / 'report.html'}"
    assert (lake / "_quality" / "report.html").is_file()


CARRIER_YEAR = "2009"


def _drop_half_of_year(path, year: str) -> int:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    at = rows[0].index("CLM_FROM_DT")
    kept, seen, dropped = [rows[0]], 0, 0
    for fields in rows[1:]:
        if len(fields) > at and fields[at].startswith(year):
            seen += 1
            if seen % 2 == 0:
                dropped += 1
                continue
        kept.append(fields)
    with open(path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(kept)
    return dropped


def test_second_delivery_missing_half_a_year_of_carrier_claims_is_flagged(spark, tmp_path):
    from cohortlake.quality.compare import compare_deliveries, load_thresholds
    from cohortlake.quality.page import ANALYST, _comparison_section
    from cohortlake.cells import Cells
    from cohortlake.sources.ingest import ingest
    from cohortlake.synth import generate

    first, second = tmp_path / "delivery1", tmp_path / "delivery2"
    generate(spark, "desynpuf", str(first), 300, 5)
    shutil.copytree(first, second)
    carrier = sorted(second.glob("*Carrier_Claims*.csv"))
    assert carrier
    dropped = sum(_drop_half_of_year(path, CARRIER_YEAR) for path in carrier)
    assert dropped > 100
    lake = Lakehouse(str(tmp_path / "lake"), spark)
    ingest(spark, lake, "desynpuf", first, validate=False)
    assert compare_deliveries(lake, "desynpuf")["compared"] is False
    ingest(spark, lake, "desynpuf", second, validate=False)

    comparison = compare_deliveries(lake, "desynpuf", load_thresholds())
    flagged = [(f["table"], f["measure"], f["key"]) for f in comparison["flags"]]
    assert flagged == [("bronze/carrier_claims", "rows_per_year", CARRIER_YEAR)]
    years = comparison["profiles"]["bronze/carrier_claims"]
    assert years["previous"]["years"][CARRIER_YEAR] - years["current"]["years"][CARRIER_YEAR] == dropped
    assert comparison["versions"]["bronze/carrier_claims"] == [0, 1]

    section = _comparison_section(comparison, Cells(rule=False), ANALYST)
    assert section["plot"].startswith("data:image/png;base64,") and len(section["plot"]) > 10_000
    assert {r["table"] for r in section["quarantine"]} >= {"carrier_claims"}
