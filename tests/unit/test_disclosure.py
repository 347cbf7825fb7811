"""The two audiences of the report and the disclosure checker: release sets of studies with 1,
5 and 10 unmatched treated persons and with a small treated arm pass the checker and keep the
matched N; the analyst view shows every count and says on every file it is not for release;
hand-edited, leaky release sets fail the checker. No Spark: the study folders come from
test_report's write_out_folder (real matching and survival modules)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from test_report import ATTRITION, COVARIATES, Page, synthetic_cohort, table1_row, visible_text, write_out_folder

from cohortlake.cli import main
from cohortlake.report import check_release, formats, write_reports
from cohortlake.cells import HIDDEN, SMALL, percent_text
from cohortlake.report.disclosure import Reader, smd_relation
from cohortlake.report.html import NOT_FOR_RELEASE

CASES = {"1 unmatched": 1, "5 unmatched": 5, "10 unmatched": 10, "small arm": None}


def small_arm_cohort():
    """The synthetic cohort with only 9 treated persons: every treated count is under 11."""
    cohort = synthetic_cohort()
    treated = np.flatnonzero(cohort.arm == "sorafenib")
    return cohort.drop(index=treated[9:]).reset_index(drop=True)


_BUILT: dict[str, dict] = {}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    return _case(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def one_unmatched(tmp_path_factory):
    """The 1-unmatched case alone (built once, shared with `case`)."""
    return _case("1 unmatched", tmp_path_factory)


def _case(name, tmp_path_factory):
    if name not in _BUILT:
        _BUILT[name] = _write_case(name, tmp_path_factory)
    return _BUILT[name]


def _write_case(name, tmp_path_factory):
    out = tmp_path_factory.mktemp(name.replace(" ", "_")) / "OUT"
    if name == "small arm":
        cohort = small_arm_cohort()
        results = write_out_folder(out, cohort, covariates=["age", "sex", "nci_index"])
        # the attrition of this smaller cohort: its last step is the two arms together
        steps = [list(step) for step in ATTRITION]
        steps[-1][2] = len(cohort)
        steps[-1][3] = steps[-2][2] - len(cohort)
        pd.DataFrame(steps, columns=["step", "name", "persons_remaining", "persons_excluded"]).to_csv(
            out / "attrition.csv", index=False)
    else:
        results = write_out_folder(out, synthetic_cohort(), unmatched_treated=CASES[name])
    reports = write_reports(out, generated=dt.date(2024, 5, 17))
    return {"name": name, "out": out, "results": results, "reports": reports}


def read_csv(path):
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
        return first, list(csv.DictReader(handle))


def test_release_set_passes_the_checker_and_keeps_the_matched_sizes(case):
    release = case["out"] / "release"
    assert check_release(release) == []
    assert main(["disclosure-check", str(case["out"])]) == 0
    matching = case["results"]["matching"]
    if case["name"] != "small arm":
        assert matching["n_treated"] - matching["matched_treated"] == CASES[case["name"]]
        page = Page(case["reports"]["release"].read_text())
        matched = str(matching["matched_treated"])
        assert table1_row(page, "N (persons)")[4:6] == [matched, matched]
        rows = {row["arm"]: row for row in read_csv(release / "survival.csv")[1]}
        assert rows["sorafenib"]["persons"] == matched and rows["untreated"]["persons"] == matched
    else:
        assert table1_row(Page(case["reports"]["release"].read_text()), "N (persons)")[1] == SMALL
    for name in ("report.html", "km.png", "love_plot.png", "table1.csv", "balance.csv", "at_risk.csv",
                 "attrition.csv", "survival.csv", "study.json"):
        assert (release / name).is_file(), name
    assert (case["out"] / "report.html").read_bytes() == (release / "report.html").read_bytes()


def test_one_unmatched_person_keeps_every_smd_after_matching(one_unmatched):
    case = one_unmatched
    first, rows = read_csv(case["out"] / "release" / "table1.csv")
    after = [row for row in rows if row["kind"] == "count" and row["phase"] == "after"]
    assert after and all(row["smd"] not in ("–", "") for row in after), after
    balance = read_csv(case["out"] / "release" / "balance.csv")[1]
    assert all(row["smd_after"] not in ("–", "") for row in balance)
    n_before = next(row for row in rows if row["kind"] == "n" and row["phase"] == "before")
    assert n_before["treated"] == HIDDEN  # the least informative cell that protects the one person
    text = visible_text(case["reports"]["release"].read_text())
    assert "largest |SMD| after matching –" not in text


def test_analyst_view_shows_every_count_and_says_it_is_not_for_release(case):
    analyst = case["out"] / "analyst"
    html = case["reports"]["analyst"].read_text()
    title = html[html.index("<title>"):html.index("</title>")]
    assert "NOT FOR RELEASE" in title and NOT_FOR_RELEASE in visible_text(html)
    for path in analyst.glob("*.csv"):
        assert NOT_FOR_RELEASE in read_csv(path)[0], path.name
    assert json.loads((analyst / "study.json").read_text())["audience"] == "analyst"
    cohort = case["results"]["matching"]
    n_row = table1_row(Page(html), "N (persons)")
    assert n_row[1:3] == [str(cohort["n_treated"]), str(cohort["n_control"])]
    assert SMALL not in Page(html).counts and HIDDEN not in Page(html).counts
    assert all("–" not in row[3::3] for row in Page(html).tables["table1"][2:])
    leaks = check_release(analyst)
    assert any(leak.file == "study.json" for leak in leaks)
    assert main(["disclosure-check", str(analyst)]) == 1


def test_plots_of_the_analyst_view_carry_the_notice_and_the_release_plots_do_not(case):
    # the notice band is drawn in the plot's red: the analyst images have it at the top, the release ones not
    from PIL import Image

    def red_share_at_top(path):
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))[:60].reshape(-1, 3).astype(int)
        return float(np.mean((pixels[:, 0] > 150) & (pixels[:, 1] < 60) & (pixels[:, 2] < 60)))

    for name in ("km.png", "love_plot.png"):
        assert red_share_at_top(case["out"] / "analyst" / name) > 0.002, name
        assert red_share_at_top(case["out"] / "release" / name) == 0.0, name


# --------------------------------------------------------------------------- the checker can fail


@pytest.fixture()
def leaky(one_unmatched, tmp_path):
    """An editable copy of the 1-unmatched release set."""
    folder = tmp_path / "release"
    shutil.copytree(one_unmatched["out"] / "release", folder)
    return folder


def edit_csv(path, change):
    first, rows = read_csv(path)
    change(rows)
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(first)
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_checker_fails_on_a_printed_small_count(leaky):
    def print_seven(rows):
        row = next(r for r in rows if r["column"] == "race=other" and r["phase"] == "before")
        row["treated"] = "7"

    edit_csv(leaky / "table1.csv", print_seven)
    leaks = check_release(leaky)
    assert any(leak.file == "table1.csv" and "race=other before" in leak.cell and "prints 7" in leak.detail
               for leak in leaks), leaks
    assert main(["disclosure-check", str(leaky)]) == 1


def test_checker_fails_on_a_total_shown_with_all_but_one_member(one_unmatched, leaky):
    case = one_unmatched
    # the arm's N before matching printed beside the matched N gives the one unmatched person
    n_treated = str(case["results"]["matching"]["n_treated"])

    def show_total(rows):
        next(r for r in rows if r["kind"] == "n" and r["phase"] == "before")["treated"] = n_treated

    edit_csv(leaky / "table1.csv", show_total)
    leaks = check_release(leaky)
    assert any("not matched" in leak.cell and "it is 1" in leak.detail for leak in leaks), leaks


def analyst_table1(case) -> dict:
    return {(r["label"], r["phase"]): r for r in read_csv(case["out"] / "analyst" / "table1.csv")[1]}


def test_checker_fails_when_the_complementary_cells_are_shown(one_unmatched, leaky):
    case = one_unmatched
    # every * of Table 1 printed as counted: the <11 beside them follow from the totals
    analyst = analyst_table1(case)

    def reveal(rows):
        for row in rows:
            for arm in ("treated", "control"):
                if row[arm] == HIDDEN:
                    row[arm] = analyst[(row["label"], row["phase"])][arm]

    edit_csv(leaky / "table1.csv", reveal)
    leaks = check_release(leaky)
    assert leaks and all(leak.detail.startswith("a reader can work out") for leak in leaks), leaks


def test_checker_fails_on_an_smd_that_pins_a_hidden_size(one_unmatched, leaky):
    case = one_unmatched
    # the release leaves out the before-matching SMDs of 0/1 rows: with the arm's N before matching hidden
    # and its counts shown, each pins that N, and so the one unmatched person. Print the analyst's.
    first, rows = read_csv(leaky / "table1.csv")
    assert any(r["smd"] == "–" for r in rows if r["phase"] == "before" and r["kind"] == "count")
    analyst = analyst_table1(case)
    edit_csv(leaky / "table1.csv", lambda rows: [r.update(smd=analyst[(r["label"], r["phase"])]["smd"])
                                                 for r in rows if r["phase"] == "before"])
    leaks = check_release(leaky)
    assert any("not matched" in leak.cell and "it is 1" in leak.detail for leak in leaks), leaks


def test_checker_fails_on_a_small_count_in_the_page_only(leaky):
    html = (leaky / "report.html").read_text()
    html = html.replace('<span class="count">&lt;11</span>', '<span class="count">7</span>', 1)
    (leaky / "report.html").write_text(html)
    assert any(leak.file == "report.html" for leak in check_release(leaky))


# --------------------------------------------------------------------------- the reader and formatting


def test_a_binary_smd_with_known_sizes_pins_the_other_count():
    # n1 = 30 of N1 = 100, N0 = 200 known; the printed SMD gives n0
    n1, big1, big0, n0 = 30, 100, 200, 7
    p1, p0 = n1 / big1, n0 / big0
    value = (p1 - p0) / np.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    relation = smd_relation("x", round(value, 3), ("n1", "n0", "N1", "N0"))
    reader = Reader({"n1": n1, "N1": big1, "N0": big0}, {"n0": (1, 10)}, relations=[relation])
    assert reader.small_pinned(["n0"]) == {"n0": 7}
    # with one decimal, 0.8 fits n0 = 4 to 7
    relation = smd_relation("x", round(value, 1), ("n1", "n0", "N1", "N0"), digits=1)
    reader = Reader({"n1": n1, "N1": big1, "N0": big0}, {"n0": (1, 10)}, relations=[relation])
    assert reader.small_pinned(["n0"]) == {} and reader.ranges(["n0"]) == {"n0": (4.0, 7.0)}


def test_numbers_are_written_without_negative_zero_nan_or_separators_in_years(case):
    assert formats.smd(-0.0002) == "0.000" and formats.number(-0.04, 1) == "0.0" and formats.number(-0.06, 1) == "-0.1"
    assert formats.number(float("nan")) == "n/a" and formats.smd(float("nan")) == "" and formats.percent(None) == "n/a"
    assert formats.number(2009.5, 1, grouping=False) == "2009.5" and formats.number(2009.5, 1) == "2,009.5"
    assert formats.year_like("diagnosis_year") and formats.year_like("index_year") and not formats.year_like("age")
    assert percent_text(0, 0) == "" and formats.plain(1000.0) == "1000"
    if case["name"] != "1 unmatched":
        return
    page = Page(case["reports"]["analyst"].read_text())
    year = table1_row(page, "diagnosis_year, mean (SD)")
    assert re.fullmatch(r"20\d\d\.\d \(\d\.\d\)", year[1]), year
    assert not any(text.startswith("-0.000") or text == "nan" for row in page.tables["table1"] for text in row)
    assert COVARIATES  # the study's covariates include diagnosis_year

