"""The study report: one self-contained HTML file (inline CSS, images as data URIs, no
JavaScript, nothing fetched) written into the run's output folder.

Two audiences (:data:`AUDIENCES`). The *analyst* view, for inside the secure
environment, prints every count, and its page, its plots and its tables say on each
that they hold cells under 11 and are not for release. The *release* set applies the
small-cell rule (:mod:`cohortlake.cells`) to every count, in the tables and in the
plots alike. :func:`write_reports` writes each into its own folder (``OUT/analyst``,
``OUT/release``): ``report.html``, ``km.png``, ``love_plot.png``, the tables the page
shows as CSV and ``study.json``, from which :func:`cohortlake.report.disclosure.check_release`
proves that the release set shows no small count.

Inputs, all in OUT: ``results.json`` and ``cohort.parquet`` (required); ``attrition.csv``,
``matched.parquet``, ``balance.csv``, ``love_plot.png`` and ``km.png`` (a section says so
when one is absent). Every count printed goes through one :class:`~cohortlake.cells.Cells`,
so the small-cell rule holds across tables: the arms add up to the cohort's last
attrition step, and each arm's matched and unmatched persons to its size.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import csv
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from cohortlake.cells import (ANALYST, AUDIENCES, HIDDEN, NOT_FOR_RELEASE, RELEASE, RELEASE_NOTE, RULE, SMALL,
                              SMALL_CELL_MAX, SMALLEST_SHOWN, Cells)
from cohortlake.errors import MissingInputError, UserError
from cohortlake.pagestyle import STYLESHEET
from cohortlake.report import formats
from cohortlake.report.attrition import AttritionStep, flow_rows, read_attrition, register_attrition
from cohortlake.report.estimates import SurvivalFigures
from cohortlake.report.reference import CITATION, ReferenceTable
from cohortlake.report.table1 import NOT_SHOWN, Table1, arm_n_key, build_table1
from cohortlake.survival.results import MatchingSummary, StudyResults

REPORT_FILE = "report.html"
STUDY_FILE = "study.json"
TABLE_FILES = ("attrition.csv", "table1.csv", "balance.csv", "at_risk.csv", "survival.csv", "estimates.csv",
               "reference.csv")
SMD_TOLERANCE = 1e-6
"""Table 1's recomputed SMDs and balance.csv must agree to this."""


def _environment() -> Environment:
    # templates are package data (never the working directory); PackageLoader also reads
    # them from a zip shipped with spark-submit --py-files
    return Environment(loader=PackageLoader("cohortlake.report", "templates"),
                       autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _read_results(out: Path) -> StudyResults:
    path = out / "results.json"
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file (the analysis step writes it)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    treatment = results.get("treatment") or {}
    if not treatment.get("arm") or not treatment.get("control"):
        raise UserError(f"{path}: 'treatment' must give the treated 'arm' and the 'control' arm")
    if not isinstance(results.get("covariates"), list):
        raise UserError(f"{path}: 'covariates' must list the propensity-score covariates")
    return StudyResults.from_json(results)


def _read_parquet(path: Path, required: bool) -> pd.DataFrame | None:
    if not path.is_file():
        if required:
            raise MissingInputError(f"{path}: no such file")
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot be read as Parquet ({str(error).splitlines()[0]})") from None


def _data_uri(path: Path) -> str | None:
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _balance_section(out: Path, table1: Table1, matching: MatchingSummary, cells: Cells) -> dict:
    threshold = float(matching.smd_threshold or 0.1)
    path = out / "balance.csv"
    balance = pd.read_csv(path) if path.is_file() else table1.balance
    after = balance["smd_after"].abs()
    imbalanced = balance.loc[after > threshold, "covariate"].tolist()
    computed_max = float(after.max()) if after.notna().any() else None
    # the SMD of a 0/1 column that would let a reader pin a small count is left out
    display = table1.smd_display(cells)
    count_columns = {row.balance_column for row in table1.rows if row.kind == "count"}
    masked = balance.copy()
    for phase, column in (("cohort", "smd_before"), ("matched", "smd_after")):
        hide = masked["covariate"].map(lambda name: name in count_columns and not display.shows(phase, name))
        masked.loc[hide, column] = np.nan
    any_masked = bool(masked[["smd_before", "smd_after"]].isna().to_numpy().sum()
                      > balance[["smd_before", "smd_after"]].isna().to_numpy().sum())
    rows = []
    for row, shown in zip(balance.itertuples(index=False), masked.itertuples(index=False)):
        rows.append({
            "covariate": row.covariate,
            "smd_before": _smd_text(row.smd_before, shown.smd_before, display.text("cohort", shown.smd_before)),
            "smd_after": _smd_text(row.smd_after, shown.smd_after, display.text("matched", shown.smd_after)),
            "vr_before": formats.smd(row.var_ratio_before), "vr_after": formats.smd(row.var_ratio_after),
            "over_before": _over(shown.smd_before, threshold), "over_after": _over(shown.smd_after, threshold)})
    passed = matching.balance_passed
    if passed is None:
        passed = computed_max is not None and not imbalanced
    largest = _finite(matching.max_abs_smd_after)
    largest = largest if largest is not None else computed_max
    shown_after = masked["smd_after"].abs()
    if largest is not None and not (shown_after.notna().any() and abs(shown_after.max() - largest) < 1e-9):
        max_after = f"{NOT_SHOWN} (its row has a suppressed count)"
    else:
        max_after = display.text("matched", largest)
    section = {"threshold": f"{threshold:g}", "rows": rows, "file": path.is_file(), "mismatch": None,
               "passed": bool(passed), "imbalanced": imbalanced, "max_after": max_after,
               "table": masked, "love_plot": None, "love_plot_masked": any_masked,
               "digits": {phase: digits for phase, digits in display.digits.items()}}
    if path.is_file():
        merged = balance.merge(table1.balance, on="covariate", suffixes=("", "_table1"), how="outer")
        worst = 0.0
        for column in ("smd_before", "smd_after"):
            gap = (merged[column] - merged[f"{column}_table1"]).abs()
            both_missing = merged[column].isna() & merged[f"{column}_table1"].isna()
            worst = max(worst, float(gap.where(~both_missing, 0.0).fillna(np.inf).max()))
        if worst > SMD_TOLERANCE:
            section["mismatch"] = (f"Table 1's SMDs, recomputed from cohort.parquet and matched.parquet, differ from "
                                   f"balance.csv by up to {worst:.3g}: the files may not come from the same run, or "
                                   f"balance.csv used another SMD denominator.")
    return section


def _smd_text(value, shown, text: str) -> str:
    if _finite(value) is not None and _finite(shown) is None:
        return NOT_SHOWN
    return text


def _over(value, threshold: float) -> bool:
    value = _finite(value)
    return value is not None and abs(value) > threshold


def _draw_love_plot(out: Path, balance: dict, notice: str | None, path: Path) -> Path | None:
    """The Love plot of the SMDs this report prints (a missing one draws no point), with its notice;
    None when the run wrote no Love plot."""
    if not (out / "love_plot.png").is_file():
        return None
    from cohortlake.matching.balance import love_plot

    return love_plot(balance["table"], path, threshold=float(balance["threshold"]), notice=notice)


def _draw_km(out: Path, results: StudyResults, survival: SurvivalFigures, notice: str | None,
             path: Path) -> Path | None:
    """The KM plot drawn again from matched.parquet, every count as this report prints it; None
    when the run wrote no KM plot or the plot cannot be drawn again (no matched data)."""
    inputs = results.survival.input if results.survival is not None else None
    data_path = out / "matched.parquet"
    if not (out / "km.png").is_file() or not survival.available or not data_path.is_file():
        return None
    data = pd.read_parquet(data_path)
    time, event, group, weights = ((inputs.time, inputs.event, inputs.group, inputs.weights) if inputs is not None
                                   else (None, None, None, None))
    if not time or not event or any(c and c not in data.columns for c in (time, event, group, weights)):
        return None
    from cohortlake.survival.plot import plot_km

    if group:
        data = data[data[group].astype(str).isin(survival.groups)]
    return plot_km(data, time, event, path, group=group, weights=weights,
                   reference_group=results.survival.reference_group, at_risk_times=survival.at_risk_times() or None,
                   time_label="Days since the landmark", count_text=survival.count_text, notice=notice,
                   title=f"{results.cohort or 'study'}: survival from the landmark")


def _matching_lines(matching: MatchingSummary, table1: Table1, cells: Cells) -> list[str]:
    lines = []
    if matching.method:
        caliper = matching.caliper
        parts = [f"method {matching.method}"]
        if matching.ps_method:
            parts.append(f"propensity model {matching.ps_method}")
        if matching.ratio is not None:
            parts.append(f"1:{matching.ratio} {'with' if matching.replacement else 'without'} replacement")
        if caliper is not None:
            parts.append(f"caliper {formats.number(_finite(caliper), 4).rstrip('0').rstrip('.')} "
                         f"on the {matching.scale or 'logit'} scale")
        else:
            parts.append("no caliper")
        if matching.order:
            parts.append(f"order {matching.order}")
        lines.append("; ".join(parts) + ".")
    if matching.equipoise is not None:
        lines.append(f"Equipoise (share of persons with preference score in [0.3, 0.7]): "
                     f"{formats.percent(_finite(matching.equipoise))}.")
    if table1.matched:
        treated, control = table1.arms
        lines.append(f"{treated}: {cells.text(arm_n_key('cohort', treated))} persons, "
                     f"{cells.text(arm_n_key('matched', treated))} matched; "
                     f"{control}: {cells.text(arm_n_key('cohort', control))} persons, "
                     f"{cells.text(arm_n_key('matched', control))} matched.")
    return lines


def _flag_smd(rows: list[dict], threshold: float) -> list[dict]:
    for row in rows:
        values = row.get("smd_values", {})
        row["over"] = {phase: _finite(values.get(phase)) is not None and abs(values[phase]) > threshold
                       for phase in row["phases"]}
    return rows


def _register_links(cells: Cells, table1: Table1, steps: list[AttritionStep], matching: MatchingSummary) -> None:
    """Sums that run across tables: arms → the last attrition step; matched + unmatched → each arm;
    and 1:1 matching without replacement pairs persons, so one arm's matched N gives the other's."""
    treated, control = table1.arms
    if steps and steps[-1].remaining == table1.n[("cohort", treated)] + table1.n[("cohort", control)]:
        cells.add(steps[-1].remaining_key, steps[-1].remaining, keep=True)
        cells.group([arm_n_key("cohort", treated), arm_n_key("cohort", control)], steps[-1].remaining_key)
    if table1.matched:
        for arm in table1.arms:
            unmatched = cells.add(("unmatched", arm), table1.n[("cohort", arm)] - table1.n[("matched", arm)],
                                  published=False)
            cells.group([arm_n_key("matched", arm), unmatched], arm_n_key("cohort", arm))
        paired = matching.ratio == 1 and not matching.replacement \
            and matching.method in (None, "greedy_nearest_neighbor")
        if paired and table1.n[("matched", treated)] == table1.n[("matched", control)]:
            cells.group([arm_n_key("matched", treated)], arm_n_key("matched", control))


def build_context(out_dir: str | Path, generated: dt.date | str | None = None, audience: str = RELEASE,
                  images: str | Path | None = None) -> dict:
    """Everything the template prints, as text: for the ``release`` audience with small cells
    suppressed, for the ``analyst`` every count with the not-for-release notice. The plots
    are drawn for the audience into ``images`` (default: a scratch folder) and embedded."""
    if audience not in AUDIENCES:
        raise UserError(f"audience must be one of {', '.join(AUDIENCES)}, not {audience!r}")
    out = Path(out_dir)
    if not out.is_dir():
        raise MissingInputError(f"{out}: no such folder")
    results = _read_results(out)
    treatment, matching = results.treatment, results.matching
    cohort = _read_parquet(out / "cohort.parquet", required=True)
    matched = _read_parquet(out / "matched.parquet", required=False)
    table1 = build_table1(cohort, matched, results.covariates, (treatment.arm, treatment.control),
                          denominator=matching.smd_denominator or "pooled")
    steps = read_attrition(out / "attrition.csv") if (out / "attrition.csv").is_file() else []

    cells = Cells(rule=audience == RELEASE)
    register_attrition(steps, cells)
    table1.register(cells)
    _register_links(cells, table1, steps, matching)
    matched_n = {arm: table1.n[("matched", arm)] for arm in table1.arms} if table1.matched else None
    survival = SurvivalFigures(results.survival, treatment, cells, matched_n)
    reference = (ReferenceTable(results, cells, survival, {s.remaining: s.remaining_key for s in steps})
                 if results.reference_study else None)

    notice = NOT_FOR_RELEASE if audience == ANALYST else None
    threshold = float(matching.smd_threshold or 0.1)
    arms = list(table1.arms)
    arm_boxes = [{"label": arm, "n": cells.text(arm_n_key("cohort", arm)),
                  "matched": cells.text(arm_n_key("matched", arm)) if table1.matched else None} for arm in arms]
    if isinstance(generated, dt.date):
        generated = generated.isoformat()
    horizon = (survival.horizon if survival.horizon is not None else results.horizon_days)
    sections = [("attrition", "Cohort attrition"), ("table1", "Table 1: baseline characteristics"),
                ("balance", "Covariate balance"), ("km", "Kaplan-Meier curves"),
                ("effects", "Effect estimates")]
    if reference is not None:
        sections.append(("reference", "Reference study comparison"))
    sections.append(("small-cells", "Small-cell rules"))
    balance = _balance_section(out, table1, matching, cells)
    km = {"image": None, "file": (out / "km.png").is_file(), "withheld": False, "at_risk": survival.at_risk(),
          "redrawn": False}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(images) if images is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        love = _draw_love_plot(out, balance, notice, folder / "love_plot.png")
        balance["love_plot"] = _data_uri(love) if love is not None else None
        drawn = _draw_km(out, results, survival, notice, folder / "km.png")
        if drawn is not None:
            km.update(image=_data_uri(drawn), redrawn=True)
        elif km["file"] and (audience == ANALYST or not survival.plot_counts_hidden()):
            # the run's own plot (primary rule only): shown when it prints nothing this report hides
            km["image"] = _data_uri(out / "km.png")
            if images is not None:
                shutil.copyfile(out / "km.png", folder / "km.png")
        else:
            km["withheld"] = km["file"]
    table1_rows = _flag_smd(table1.text_rows(cells, table1.smd_display(cells)), threshold)
    return {
        "title": results.title or results.cohort or "Study report",
        "cohort": results.cohort or "",
        "generated": generated or dt.date.today().isoformat(),
        "audience": audience, "notice": notice, "release_note": RELEASE_NOTE,
        "treated": treatment.arm, "control": treatment.control,
        "sections": sections,
        "attrition": {"steps": flow_rows(steps, cells), "arms": arm_boxes, "available": bool(steps)},
        "table1": {"arms": arms, "rows": table1_rows, "matched": table1.matched,
                   "weighted": table1.weighted, "not_shown": NOT_SHOWN},
        "balance": balance,
        "matching_lines": _matching_lines(matching, table1, cells),
        "km": km,
        "effects": {"available": survival.available, "arms": survival.arm_rows(),
                    "comparisons": survival.comparison_rows() if survival.available else [],
                    "notes": survival.notes(),
                    "horizon": formats.weighted_count(horizon) if horizon is not None else None},
        "reference": None if reference is None else {"rows": reference.rows(), "citation": CITATION,
                                                     "notes": list(results.descriptive.notes if results.descriptive
                                                                   else [])},
        "rule": RULE, "small": SMALL, "hidden": HIDDEN,
        "small_cell_max": SMALL_CELL_MAX, "smallest_shown": SMALLEST_SHOWN,  # the rule's prose, from the rule
        "study": {"audience": audience, "notice": notice or RELEASE_NOTE,
                  "title": results.title or "", "cohort": results.cohort or "",
                  "treated": treatment.arm, "control": treatment.control,
                  "matching": {"method": matching.method, "ratio": matching.ratio, "replacement": matching.replacement},
                  "smd_denominator": table1.denominator, "matched": table1.matched, "weighted": table1.weighted,
                  "horizon_days": horizon,
                  "at_risk_days": survival.at_risk_times()},
    }


def render_report(context: dict) -> str:
    return _environment().get_template("report.html.j2").render(style=STYLESHEET, **context)


def write_report(out_dir: str | Path, *, generated: dt.date | str | None = None, audience: str = RELEASE,
                 folder: str | Path | None = None) -> Path:
    """Write ``report.html`` for ``audience`` from the files in ``out_dir``; returns its path.

    Without ``folder`` the page alone goes into ``out_dir`` (the release report, images
    embedded). With a ``folder``, the audience's whole set goes there: the page, ``km.png``,
    ``love_plot.png``, the tables it shows as CSV and ``study.json``.
    """
    out = Path(out_dir)
    target = Path(folder) if folder is not None else out
    if folder is not None:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"{target}: cannot create the report folder ({error.strerror})") from None
    context = build_context(out, generated, audience, images=target if folder is not None else None)
    html = render_report(context)
    path = target / REPORT_FILE
    try:
        path.write_text(html, encoding="utf-8")
        if folder is not None:
            write_tables(context, target)
    except OSError as error:
        raise UserError(f"{path}: cannot write the report ({error.strerror})") from None
    return path


def write_reports(out_dir: str | Path, audiences=AUDIENCES, *, generated: dt.date | str | None = None
                  ) -> dict[str, Path]:
    """Each audience's set in its own folder, ``OUT/analyst`` and ``OUT/release``; the release
    report also as ``OUT/report.html``. Returns each audience's report path."""
    out = Path(out_dir)
    paths = {}
    for audience in audiences:
        paths[audience] = write_report(out, generated=generated, audience=audience, folder=out / audience)
    if RELEASE in paths:
        shutil.copyfile(paths[RELEASE], out / REPORT_FILE)
    return paths


def _csv(path: Path, notice: str, header: list[str], rows: list[list]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(f"# {notice}\n")
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_tables(context: dict, folder: Path) -> list[Path]:
    """The tables a report shows, as printed, as CSV (a first ``#`` line says which audience),
    and ``study.json`` (the audience, the arms, the design a reader knows)."""
    notice = context["study"]["notice"]
    written = []

    def table(name, header, rows):
        _csv(folder / name, notice, header, rows)
        written.append(folder / name)

    table("attrition.csv", ["step", "name", "persons_remaining", "persons_excluded"],
          [[s["step"], s["name"], s["remaining"], s["excluded"] or ""] for s in context["attrition"]["steps"]])
    phases = {"cohort": "before", "matched": "after"}
    rows = []
    for row in context["table1"]["rows"]:
        for phase, texts in row["phases"].items():
            rows.append([row["label"], row.get("covariate", ""), row.get("balance_column") or "", row["kind"],
                         phases[phase], texts[0], texts[1], texts[2]])
    table("table1.csv", ["label", "covariate", "column", "kind", "phase", "treated", "control", "smd"], rows)
    table("balance.csv", ["covariate", "smd_before", "smd_after", "var_ratio_before", "var_ratio_after"],
          [[r["covariate"], r["smd_before"], r["smd_after"], r["vr_before"], r["vr_after"]]
           for r in context["balance"]["rows"]])
    days = context["study"]["at_risk_days"]
    table("at_risk.csv", ["arm", "day", "at_risk"],
          [[r["label"], formats.plain(day), n] for r in context["km"]["at_risk"]["rows"]
           for day, n in zip(days, r["counts"])])
    table("survival.csv", ["arm", "persons", "deaths", "median_months", "iqr_months", "risk", "deaths_by_horizon"],
          [[r["label"], r["n"], r["events"], r["median"], r["iqr"], r["risk"], r["events_by_horizon"]]
           for r in context["effects"]["arms"]])
    table("estimates.csv", ["estimate", "value", "p", "method"],
          [[r["label"], r["value"], r["p"], r["detail"]] for r in context["effects"]["comparisons"]])
    reference = context["reference"]
    table("reference.csv", ["figure", "published", "this_run"],
          [[r.figure, r.published, r.this_run] for r in reference["rows"]] if reference else [])
    study = dict(context["study"], files=[REPORT_FILE, *TABLE_FILES])
    (folder / STUDY_FILE).write_text(json.dumps(study, indent=2, default=str) + "\n", encoding="utf-8")
    written.append(folder / STUDY_FILE)
    return written
