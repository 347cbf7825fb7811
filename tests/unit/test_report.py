"""The study report: small-cell suppression, Table 1 against hand computation, the HTML built
from a run's output folder (real matching and survival modules, no Spark), and the page as
headless Chromium renders it."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from cohortlake.errors import MissingInputError
from cohortlake.matching import balance_table, equipoise, fit_ps, love_plot, match_ps
from cohortlake.report import PUBLISHED, build_table1, write_report
from cohortlake.cells import (
    HIDDEN, SMALL, Cells, Group, Status, count_percent_text, grid_groups, small_cell, suppress, suppress_grid,
)
from cohortlake.survival import survival_analysis
from cohortlake.survival.plot import plot_km

# --------------------------------------------------------------------------- cells


def reader_can_pin(counts, groups, status) -> list:
    """Small cells a reader can pin to one value: an LP over what the page shows, written apart
    from cells.py. ``<11`` is 1-10, ``*`` is >= 11, unpublished cells are >= 0."""
    unknown = [k for k in counts if status[k] is not Status.shown]
    index = {k: i for i, k in enumerate(unknown)}
    a_eq, b_eq = [], []
    for group in groups:
        row, rhs = np.zeros(len(unknown)), 0.0
        terms = [(m, 1.0) for m in group.members] + ([(group.total, -1.0)] if group.total is not None else [])
        if group.total is None:
            rhs = float(sum(counts[m] for m in group.members))
        for key, sign in terms:
            if key in index:
                row[index[key]] += sign
            else:
                rhs -= sign * counts[key]
        if row.any():
            a_eq.append(row)
            b_eq.append(rhs)
    bounds = [(1, 10) if status[k] is Status.small else (11, None) if status[k] is Status.hidden else (0, None)
              for k in unknown]
    pinned = []
    for key in unknown:
        if status[key] not in (Status.small, Status.unpublished_small):
            continue
        c = np.zeros(len(unknown))
        c[index[key]] = 1
        kwargs = {"A_eq": np.array(a_eq), "b_eq": np.array(b_eq)} if a_eq else {}
        low = linprog(c, bounds=bounds, **kwargs).fun
        high = linprog(-c, bounds=bounds, **kwargs)
        if high.status == 0 and -high.fun - low < 0.5:
            pinned.append(key)
    return pinned


def texts(result, keys):
    return [result.text(k) for k in keys]


def test_small_cell_shows_1_to_10_as_less_than_11():
    assert [small_cell(n) for n in (0, 1, 10, 11, 1532)] == ["0", "<11", "<11", "11", "1,532"]


def test_naive_suppression_of_a_row_with_its_total_would_be_recoverable():
    row = [5, 40, 55]
    naive = [SMALL if 1 <= n <= 10 else n for n in row]
    assert 100 - naive[1] - naive[2] == 5  # what a reader does with the naive row and its total
    result = suppress_grid([row], column_totals=False)
    # the next-smallest non-zero cell goes too; the total stays
    assert texts(result, [(0, 0), (0, 1), (0, 2), ("row", 0)]) == ["<11", "*", "55", "100"]
    assert reader_can_pin(result.counts, grid_groups(1, 3, True, False)[1], result.status) == []


def test_complementary_suppression_runs_across_rows_and_columns_until_stable():
    result = suppress_grid([[5, 40, 55], [20, 30, 50]])
    # row 0 hides 40 beside the 5; column 0 then hides 20, column 1 hides 30; row 1 has two hidden
    assert texts(result, [(0, 0), (0, 1), (0, 2)]) == ["<11", "*", "55"]
    assert texts(result, [(1, 0), (1, 1), (1, 2)]) == ["*", "*", "50"]
    assert texts(result, [("row", 0), ("row", 1), ("column", 0), ("column", 1), ("total",)]) == \
        ["100", "100", "25", "70", "200"]
    assert reader_can_pin(result.counts, grid_groups(2, 3)[1], result.status) == []


def test_one_hidden_neighbour_is_not_enough_when_the_bounds_pin_the_small_cell():
    # <11 + * = 12 with * >= 11 gives 1 and 11: a third cell has to go
    result = suppress_grid([[1, 11, 50]], column_totals=False)
    assert texts(result, [(0, 0), (0, 1), (0, 2), ("row", 0)]) == ["<11", "*", "*", "62"]
    # two <11 adding up to 2 are both 1
    result = suppress_grid([[1, 1, 50]], column_totals=False)
    assert texts(result, [(0, 0), (0, 1), (0, 2), ("row", 0)]) == ["<11", "<11", "*", "52"]


def test_zero_stays_zero_and_is_never_the_complementary_cell():
    result = suppress_grid([[0, 7, 30]], column_totals=False)
    assert texts(result, [(0, 0), (0, 1), (0, 2), ("row", 0)]) == ["0", "<11", "*", "37"]


def test_an_unpublished_complement_that_is_small_hides_the_shown_count():
    # 95 of 100 persons have a flag: the 5 without it are N - n
    counts = {"n": 100, "with": 95, "without": 5}
    status = suppress(counts, [Group(["with", "without"], "n")], unpublished=["without"])
    assert status == {"n": Status.shown, "with": Status.hidden, "without": Status.unpublished_small}
    # 50 without it need no protection
    status = suppress({"n": 100, "with": 50, "without": 50}, [Group(["with", "without"], "n")], unpublished=["without"])
    assert status["with"] is Status.shown


def test_cells_to_keep_are_passed_over_while_the_group_offers_another():
    # 407 - 7 = 400: hiding the kept 400 would hide every percentage of the arms below it
    counts = {"before": 407, "after": 400, "excluded": 7, "earlier": 520, "excluded_earlier": 113}
    groups = [Group(["before", "excluded_earlier"], "earlier"), Group(["after", "excluded"], "before")]
    status = suppress(counts, groups, keep=["after"])
    assert {k: v.value for k, v in status.items()} == {
        "before": "hidden", "after": "shown", "excluded": "small", "earlier": "shown", "excluded_earlier": "hidden"}
    assert reader_can_pin(counts, groups, status) == []


def test_random_tables_leave_no_small_cell_a_reader_can_pin():
    rng = np.random.default_rng(5)
    for _ in range(40):
        rows, columns = rng.integers(2, 4, size=2)
        grid = rng.choice([0, 1, 2, 4, 7, 10, 11, 12, 15, 30, 80], size=(rows, columns)).tolist()
        result = suppress_grid(grid)
        groups = grid_groups(rows, columns)[1]
        assert reader_can_pin(result.counts, groups, result.status) == [], grid
        for group in groups:  # the brief's rule: never exactly one suppressed cell in a row or column
            suppressed = [c for c in group.cells if result.status[c].suppressed]
            assert len(suppressed) != 1 or result.counts[suppressed[0]] == 0 or \
                not any(result.counts[c] for c in group.cells if c != suppressed[0]), grid


def test_percentages_of_suppressed_counts_or_denominators_are_left_out():
    assert count_percent_text(25, 200) == "25 (12.5%)"
    assert count_percent_text(5, 200, Status.small) == SMALL
    assert count_percent_text(25, 200, Status.hidden) == HIDDEN
    assert count_percent_text(25, 200, Status.shown, Status.hidden) == "25"


def test_a_cell_registered_twice_must_keep_its_count():
    cells = Cells()
    cells.add("n", 12)
    cells.add("n", 12)
    with pytest.raises(ValueError, match="registered as 12 and as 13"):
        cells.add("n", 13)
    with pytest.raises(ValueError, match="whole number"):
        cells.add("m", 2.5)


# --------------------------------------------------------------------------- Table 1


@pytest.fixture()
def small_cohort():
    rng = np.random.default_rng(3)
    n = 40
    frame = pd.DataFrame({
        "person_id": [f"q{i}" for i in range(n)],
        "arm": ["drug"] * 16 + ["none"] * 24,
        "age": rng.integers(66, 90, n),
        "sex": rng.choice(["female", "male"], n),
        "dual": rng.binomial(1, 0.4, n),
        "score": rng.normal(2, 1, n).round(2),
    })
    # matched: 12 drug persons, 12 controls with weight 1, and one control counted twice (weight 2)
    matched_ids = [f"q{i}" for i in range(12)] + [f"q{i}" for i in range(16, 28)]
    weights = [1.0] * 23 + [2.0]
    matched = frame[frame.person_id.isin(matched_ids)].assign(weight=weights, match_id="m", ps=0.5)
    return frame, matched


def test_table1_numbers_match_hand_computation(small_cohort):
    frame, matched = small_cohort
    table = build_table1(frame, matched, ["age", "sex", "dual", "score"], ("drug", "none"))
    drug, none = frame[frame.arm == "drug"], frame[frame.arm == "none"]
    assert table.n == {("cohort", "drug"): 16, ("cohort", "none"): 24, ("matched", "drug"): 12,
                       ("matched", "none"): 12}
    age = table.row("age", kind="mean_sd").cell
    assert age[("cohort", "drug")].mean == pytest.approx(drug.age.mean())
    assert age[("cohort", "none")].sd == pytest.approx(none.age.std(ddof=1))
    median = table.row("age", kind="median_iqr").cell[("cohort", "none")]
    assert (median.q25, median.median, median.q75) == pytest.approx(tuple(np.percentile(none.age, [25, 50, 75])))
    male = table.row("sex", "male").cell[("cohort", "drug")]
    assert (male.persons, male.share) == ((drug.sex == "male").sum(), pytest.approx((drug.sex == "male").mean()))
    dual = table.row("dual").cell[("cohort", "none")]
    assert dual.persons == none.dual.sum()
    # after matching: weighted by the match weight
    controls = matched[matched.arm == "none"]
    after = table.row("score", kind="mean_sd").cell[("matched", "none")]
    assert after.mean == pytest.approx(np.average(controls.score, weights=controls.weight))
    after_dual = table.row("dual").cell[("matched", "none")]
    assert after_dual.weighted == pytest.approx(controls.weight[controls.dual == 1].sum())
    assert after_dual.share == pytest.approx(after_dual.weighted / 13.0)
    assert after_dual.persons == int((controls.dual == 1).sum())
    # SMD of a 0/1 column by hand: pooled SD before matching, in both phases
    p1, p0 = drug.dual.mean(), none.dual.mean()
    pooled = math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    assert table.row("dual").smd["cohort"] == pytest.approx((p1 - p0) / pooled)
    treated_after = matched[matched.arm == "drug"]
    assert table.row("dual").smd["matched"] == pytest.approx(
        (treated_after.dual.mean() - np.average(controls.dual, weights=controls.weight)) / pooled)
    assert table.weighted


def test_table1_text_suppresses_small_counts_and_their_percentages(small_cohort):
    frame, matched = small_cohort
    table = build_table1(frame, matched, ["sex", "dual"], ("drug", "none"))
    cells = Cells()
    table.register(cells)
    rows = {row["label"]: row for row in table.text_rows(cells)}
    for label in ("female", "male", "dual"):
        for phase, row_texts in rows[label]["phases"].items():
            for text in row_texts[:2]:
                number = re.match(r"[\d,.]+", text)
                assert text in (SMALL, HIDDEN) or number and float(number.group().replace(",", "")) >= 11, \
                    (label, phase, text)


# --------------------------------------------------------------------------- the report from an output folder

COVARIATES = ["age", "sex", "race", "diagnosis_year", "stage", "dual", "nci_index", "cirrhosis"]
ATTRITION = [(0, "persons with a SEER tumor", 1000, None), (1, "HCC tumor", 700, 300),
             (2, "advanced stage, age 66+", 520, 180), (3, "Parts A/B/D", 407, 113),
             (4, "alive at the landmark", 400, 7)]
OTHER_TREATED = 6  # the deliberately small subgroup: race "other" in the sorafenib arm


def synthetic_cohort(n: int = 400, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(66, 95, n)
    stage = rng.choice(["distant", "regional"], n, p=[0.45, 0.55])
    dual = rng.binomial(1, 0.25, n)
    cirrhosis = rng.binomial(1, 0.4, n)
    linear = -0.55 - 0.03 * (age - 78) + 0.35 * (stage == "distant") - 0.3 * dual
    treated = rng.random(n) < 1 / (1 + np.exp(-linear))
    race = np.where(rng.random(n) < 0.22, "black", "white").astype(object)
    race[np.flatnonzero(treated)[:OTHER_TREATED]] = "other"
    race[np.flatnonzero(~treated)[:20]] = "other"
    year = rng.integers(2008, 2012, n)
    index = pd.to_datetime([dt.date(int(y), int(m), 15) for y, m in zip(year, rng.integers(1, 13, n))])
    hazard = np.log(2) / 110 * np.exp(-0.15 * treated + 0.4 * (stage == "distant") + 0.2 * cirrhosis)
    death, censor = rng.exponential(1 / hazard), rng.uniform(60, 900, n)
    time, event = np.minimum(death, censor).astype(int), (death <= censor).astype(int)
    landmark = index + pd.Timedelta(days=60)
    end = landmark + pd.to_timedelta(time, unit="D")
    first_fill = index + pd.to_timedelta(rng.integers(0, 60, n), unit="D")
    return pd.DataFrame({
        "person_id": [f"p{i:04d}" for i in range(n)],
        "index_date": index.date, "landmark_date": landmark.date,
        "first_exposure_date": pd.Series(first_fill.date).where(treated, None),
        "followup_start": landmark.date, "followup_end": end.date,
        "death_date": pd.Series(end.date).where(event == 1, None),
        "arm": np.where(treated, "sorafenib", "untreated"), "event": event, "time_days": time,
        "age": age, "sex": rng.choice(["female", "male"], n, p=[0.3, 0.7]), "race": race.astype(str),
        "diagnosis_year": year, "stage": stage, "dual": dual, "nci_index": np.round(rng.gamma(2, 0.6, n), 3),
        "cirrhosis": cirrhosis, "sorafenib_days": np.where(treated, rng.integers(14, 200, n), np.nan),
    })


def write_out_folder(out: Path, cohort: pd.DataFrame, unmatched_treated: int | None = None,
                     covariates: list[str] = COVARIATES) -> dict:
    """The files the build, match and analyze steps leave in OUT, made with the real modules.

    ``unmatched_treated``: match without a caliper, then leave exactly that many treated
    persons (and their controls) out of the matched set."""
    out.mkdir(parents=True, exist_ok=True)
    cohort.to_parquet(out / "cohort.parquet", index=False)
    pd.DataFrame(ATTRITION, columns=["step", "name", "persons_remaining", "persons_excluded"]).to_csv(
        out / "attrition.csv", index=False)
    treated = (cohort["arm"] == "sorafenib").to_numpy()
    fit = fit_ps(cohort, treated, covariates, l2=0.05 if treated.sum() < 20 else 0.0)
    matches = match_ps(fit.ps, treated, score=fit.logit, caliper=None if unmatched_treated is not None else 0.2)
    if unmatched_treated is not None:
        weight = matches.weight.copy()
        dropped = matches.match_id[np.flatnonzero(treated & (weight > 0))[:unmatched_treated]]
        weight[np.isin(matches.match_id, dropped)] = 0.0
        matches = SimpleNamespace(weight=weight, match_id=matches.match_id,
                                  n_matched_treated=int(((weight > 0) & treated).sum()),
                                  n_matched_controls=int(((weight > 0) & ~treated).sum()))
    balance = balance_table(fit.design.balance, treated, matches.weight)
    balance[["covariate", "smd_before", "smd_after", "var_ratio_before", "var_ratio_after"]].to_csv(
        out / "balance.csv", index=False)
    love_plot(balance, out / "love_plot.png")
    keep = matches.weight > 0
    matched = cohort[keep].assign(ps=fit.ps[keep], match_id=matches.match_id[keep].astype(str),
                                  weight=matches.weight[keep])
    matched.to_parquet(out / "matched.parquet", index=False)
    survival = survival_analysis(matched, "time_days", "event", "arm", covariates, cluster="match_id", horizon=90,
                                 reference_group="untreated").to_json()
    plot_km(matched, "time_days", "event", out / "km.png", group="arm", reference_group="untreated")
    q25, median, q75 = np.percentile(cohort.loc[treated, "sorafenib_days"], [25, 50, 75])
    largest = float(balance["smd_after"].abs().max())
    results = {
        "cohort": "hcc_sorafenib_landmark", "title": "Initial sorafenib vs no treatment in advanced HCC",
        "treatment": {"arm": "sorafenib", "control": "untreated"}, "covariates": covariates, "horizon_days": 90,
        "reference_study": True,
        "matching": {"method": "greedy_nearest_neighbor", "scale": "logit", "caliper": 0.2, "ratio": 1,
                     "replacement": False, "order": "nearest", "smd_threshold": 0.1, "ps_method": fit.method,
                     "n_treated": int(treated.sum()), "n_control": int((~treated).sum()),
                     "matched_treated": matches.n_matched_treated, "matched_control": matches.n_matched_controls,
                     "equipoise": equipoise(fit.ps, treated), "max_abs_smd_after": largest,
                     "balance_passed": largest <= 0.1},
        "survival": survival,
        "descriptive": {"population": "cohort persons", "n": len(cohort), "treated_share": float(treated.mean()),
                        "duration_days": {"median": median, "q25": q25, "q75": q75},
                        "survival_from_first_rx_months": None},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False), encoding="utf-8")
    return results


class Page(HTMLParser):
    """Text of every element with class "count", the rows of every table (by each of its classes),
    section ids, and whether anything would be fetched."""

    def __init__(self, html: str):
        super().__init__()
        self.counts: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.ids: list[str] = []
        self.external: list[str] = []
        self._stack: list[tuple[str, bool]] = []
        self._count_text: list[str] | None = None
        self._table: list | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if "id" in attrs:
            self.ids.append(attrs["id"])
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag in ("script", "link", "iframe"):
            self.external.append(tag)
        if tag == "table":
            self._table = []
            for name in classes or [f"table{len(self.tables)}"]:
                self.tables[name] = self._table
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        if tag in ("br", "img", "meta"):
            return
        self._stack.append((tag, "count" in classes))
        if "count" in classes:
            self._count_text = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        while self._stack:
            opened, is_count = self._stack.pop()
            if is_count and self._count_text is not None:
                self.counts.append("".join(self._count_text).strip())
                self._count_text = None
            if opened == tag:
                break

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._count_text is not None:
            self._count_text.append(data)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "OUT"
    cohort = synthetic_cohort()
    results = write_out_folder(out, cohort)
    path = write_report(out, generated=dt.date(2024, 5, 17))
    html = path.read_text(encoding="utf-8")
    return {"out": out, "cohort": cohort, "results": results, "path": path, "html": html, "page": Page(html)}


def visible_text(html: str) -> str:
    text = re.sub(r"<style.*?</style>|<[^>]+>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def table1_row(page: Page, label: str) -> list[str]:
    return next(row for row in page.tables["table1"] if row and row[0] == label)


def test_report_is_one_self_contained_file(study):
    assert study["path"] == study["out"] / "report.html"
    assert study["page"].external == []
    assert study["html"].count("data:image/png;base64,") == 2
    assert "<script" not in study["html"]


def test_report_prints_the_arm_sizes_and_the_hazard_ratio(study):
    cohort, results, page = study["cohort"], study["results"], study["page"]
    n_treated, n_control = (cohort.arm == "sorafenib").sum(), (cohort.arm == "untreated").sum()
    matched = results["matching"]["matched_treated"]
    assert table1_row(page, "N (persons)")[1:] == [str(n_treated), str(n_control), "", str(matched), str(matched), ""]
    hr = results["survival"]["cox"]["adjusted"]["hazard_ratios"]["sorafenib"]
    text = visible_text(study["html"])
    assert f"{hr['hr']:.2f} ({hr['ci_lower']:.2f}-{hr['ci_upper']:.2f})" in text
    assert f"{hr['hr']:.2f} (95% CI {hr['ci_lower']:.2f}-{hr['ci_upper']:.2f})" in text  # the reference table
    assert "Generated 2024-05-17" in text and "hcc_sorafenib_landmark" in text


def test_small_subgroup_shows_less_than_11_and_its_neighbour_is_hidden(study):
    page, cohort = study["page"], study["cohort"]
    treated = cohort[cohort.arm == "sorafenib"]
    assert (treated.race == "other").sum() == OTHER_TREATED
    other = table1_row(page, "other")
    assert other[1] == SMALL and other[3] == "–"  # the count, and the SMD that would give it away
    black = table1_row(page, "black")
    assert black[1] == HIDDEN  # else N - white - black = other
    white = table1_row(page, "white")
    assert white[1].startswith(f"{(treated.race == 'white').sum()} (")
    # the balance table drops the same SMDs
    balance = {row[0]: row for row in page.tables["balance"]}
    assert balance["race=other"][1] == "–" and balance["race=white"][1] != "–"


def assert_no_small_count(page: Page) -> None:
    """Every count printed is 0, <11, * or at least 11; so is every n of Table 1's n (%) cells."""
    assert len(page.counts) > 60
    for text in page.counts:
        number = re.match(r"\d[\d,]*", text)
        assert text in (SMALL, HIDDEN, "0") or number and int(number.group().replace(",", "")) >= 11, text
    for row in page.tables["table1"][2:]:
        for cell in row[1:3] + row[4:6]:
            number = re.match(r"(\d[\d,]*)(?: \(|$)", cell)
            assert not number or not 1 <= int(number.group(1).replace(",", "")) <= 10, row


def test_no_count_from_1_to_10_leaks_anywhere(study):
    assert_no_small_count(study["page"])


def test_attrition_hides_a_neighbour_of_a_small_exclusion_but_keeps_the_cohort_size(study):
    text = visible_text(study["html"])
    assert "Excluded: <11" in text  # the 7 at the last step
    assert "Parts A/B/D * persons" in text and "Excluded: *" in text  # 407 and the 113 before it
    assert "alive at the landmark 400 persons" in text and "407" not in text


def test_effect_estimates_and_reference_rows(study):
    page, survival = study["page"], study["results"]["survival"]
    comparisons = {row[0]: row for row in page.tables["comparisons"]}
    crude = survival["cox"]["crude"]["hazard_ratios"]["sorafenib"]
    assert comparisons["Hazard ratio, crude (95% CI)"][1] == f"{crude['hr']:.2f} ({crude['ci_lower']:.2f}-{crude['ci_upper']:.2f})"
    assert comparisons["Log-rank test"][2] == (f"{survival['logrank']['p']:.3f}" if survival["logrank"]["p"] >= 0.001
                                               else "<0.001")
    rr = survival["risk"]["rr_adjusted"]["risk_ratios"]["sorafenib"]
    assert comparisons["Risk ratio by day 90, adjusted (95% CI)"][1] == \
        f"{rr['rr']:.2f} ({rr['ci_lower']:.2f}-{rr['ci_upper']:.2f})"
    assert "Proportional hazards (scaled Schoenfeld test)" in comparisons
    reference = page.tables["reference"]
    assert [row[0] for row in reference[1:]] == [figure for figure, _ in PUBLISHED]
    assert [row[1] for row in reference[1:]] == [published for _, published in PUBLISHED]
    this_run = {row[0]: row[2] for row in reference[1:]}
    medians = [survival["groups"][arm]["median"]["months"]["estimate"] for arm in ("sorafenib", "untreated")]
    assert this_run["median survival from the 60-day landmark"] == f"{medians[0]:.1f} vs {medians[1]:.1f} months"
    matched = study["results"]["matching"]["matched_treated"]
    assert this_run["PS-matched sample"] == f"{matched} sorafenib vs {matched} untreated (1:1)"
    assert this_run["survival from first prescription, median (IQR)"].startswith("not available: ")
    risks = [survival["risk"]["by_group"][arm]["risk"] for arm in ("sorafenib", "untreated")]
    assert this_run["3-month mortality after landmark"].startswith(f"{100 * risks[0]:.1f}% vs {100 * risks[1]:.1f}%")


def test_missing_images_and_no_reference_study_are_said_plainly(study, tmp_path):
    out = tmp_path / "OUT"
    shutil.copytree(study["out"], out)
    (out / "km.png").unlink()
    (out / "love_plot.png").unlink()
    results = json.loads((out / "results.json").read_text())
    results["reference_study"] = False
    (out / "results.json").write_text(json.dumps(results))
    html = write_report(out).read_text()
    text = visible_text(html)
    assert "km.png is not in the output folder" in text and "love_plot.png is not in the output folder" in text
    assert "reference" not in Page(html).ids and "Reference study" not in text
    (out / "matched.parquet").unlink()
    page = Page(write_report(out).read_text())
    assert "No matched sample" in visible_text(write_report(out).read_text())
    assert table1_row(page, "N (persons)")[1:3] == [str((study["cohort"].arm == arm).sum())
                                                   for arm in ("sorafenib", "untreated")]


def test_a_few_unmatched_treated_keep_the_matched_sizes_and_every_smd_after_matching(tmp_path):
    # seed 12: the caliper leaves 1-10 treated persons unmatched; N treated - matched treated would show them.
    # The release hides the arm's N before matching instead of the matched N the results stand on.
    results = write_out_folder(tmp_path / "OUT", synthetic_cohort(seed=12))
    unmatched = results["matching"]["n_treated"] - results["matching"]["matched_treated"]
    assert 1 <= unmatched <= 10
    html = write_report(tmp_path / "OUT").read_text()
    page, text = Page(html), visible_text(html)
    matched = str(results["matching"]["matched_treated"])
    n_row = table1_row(page, "N (persons)")
    assert n_row[1:3] == [HIDDEN, str(results["matching"]["n_control"])]
    assert n_row[4:6] == [matched, matched]
    for row in page.tables["table1"][2:]:
        if row[0] in ("N (persons)", "sex", "race", "stage") or "median" in row[0]:
            continue
        assert row[6] not in ("–", ""), row  # every SMD after matching is printed
    assert all(row[2] != "–" for row in page.tables["balance"][1:])
    assert "largest |SMD| after matching 0.16" in text
    assert f"{matched} sorafenib vs {matched} untreated" in text
    assert "The Kaplan-Meier plot is not shown" not in text and html.count("data:image/png") == 2
    assert_no_small_count(page)


def test_missing_results_is_one_clear_error(tmp_path):
    with pytest.raises(MissingInputError, match="results.json: no such file"):
        write_report(tmp_path)


# --------------------------------------------------------------------------- a real browser


def test_report_renders_in_headless_chromium(study, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it")
        pytest.skip("chromium not installed (CI installs it)")
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    url = study["path"].as_uri()
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1280,4000", url],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 50_000
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 4000)
        colours = image.convert("L").resize((128, 400)).getextrema()
        assert colours[1] - colours[0] > 100  # not a blank page
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    text = visible_text(dom)
    for title in ("Cohort attrition", "Table 1: baseline characteristics", "Covariate balance",
                  "Kaplan-Meier curves", "Effect estimates", "Reference study comparison", "Small-cell rules"):
        assert title in text
    hr = study["results"]["survival"]["cox"]["adjusted"]["hazard_ratios"]["sorafenib"]
    assert f"{hr['hr']:.2f} ({hr['ci_lower']:.2f}-{hr['ci_upper']:.2f})" in text
    n_treated = int((study["cohort"].arm == "sorafenib").sum())
    assert f"sorafenib {n_treated} persons" in text and "Excluded: <11" in text
    assert "FAIL" in text or "PASS" in text
