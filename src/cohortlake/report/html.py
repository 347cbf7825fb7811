"""The study report: one self-contained HTML file (inline CSS, images as data URIs, no
JavaScript, nothing fetched) written into the run's output folder.

Inputs, all in OUT: ``results.json`` and ``cohort.parquet`` (required); ``attrition.csv``,
``matched.parquet``, ``balance.csv``, ``love_plot.png`` and ``km.png`` (a section says so
when one is absent). Every count printed goes through one :class:`~cohortlake.report.cells.Cells`,
so the small-cell rule holds across tables: the arms add up to the cohort's last
attrition step, and each arm's matched and unmatched persons to its size.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from cohortlake.errors import MissingInputError, UserError
from cohortlake.report import formats
from cohortlake.report.attrition import AttritionStep, flow_rows, read_attrition, register_attrition
from cohortlake.report.cells import HIDDEN, RULE, SMALL, Cells
from cohortlake.report.estimates import SurvivalFigures
from cohortlake.report.reference import CITATION, ReferenceTable
from cohortlake.report.table1 import NOT_SHOWN, Table1, arm_n_key, build_table1

REPORT_FILE = "report.html"
SMD_TOLERANCE = 1e-6
"""Table 1's recomputed SMDs and balance.csv must agree to this."""


def _environment() -> Environment:
    # templates are package data (never the working directory); PackageLoader also reads
    # them from a zip shipped with spark-submit --py-files
    return Environment(loader=PackageLoader("cohortlake.report", "templates"),
                       autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _read_results(out: Path) -> dict:
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
    return results


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


def _balance_section(out: Path, table1: Table1, matching: dict, cells: Cells) -> dict:
    threshold = float(matching.get("smd_threshold") or 0.1)
    path = out / "balance.csv"
    balance = pd.read_csv(path) if path.is_file() else table1.balance
    after = balance["smd_after"].abs()
    imbalanced = balance.loc[after > threshold, "covariate"].tolist()
    computed_max = float(after.max()) if after.notna().any() else None
    # the SMD of a 0/1 column whose count is suppressed would let a reader solve for that count
    masked = balance.copy()
    for phase, column in (("cohort", "smd_before"), ("matched", "smd_after")):
        hide = masked["covariate"].map(lambda name: table1.smd_suppressed(cells, name, phase))
        masked.loc[hide, column] = np.nan
    any_masked = bool(masked[["smd_before", "smd_after"]].isna().to_numpy().sum()
                      > balance[["smd_before", "smd_after"]].isna().to_numpy().sum())
    rows = []
    for row, shown in zip(balance.itertuples(index=False), masked.itertuples(index=False)):
        rows.append({
            "covariate": row.covariate,
            "smd_before": _smd_text(row.smd_before, shown.smd_before),
            "smd_after": _smd_text(row.smd_after, shown.smd_after),
            "vr_before": formats.smd(row.var_ratio_before), "vr_after": formats.smd(row.var_ratio_after),
            "over_before": _over(shown.smd_before, threshold), "over_after": _over(shown.smd_after, threshold)})
    passed = matching.get("balance_passed")
    if passed is None:
        passed = computed_max is not None and not imbalanced
    largest = _finite(matching.get("max_abs_smd_after"))
    largest = largest if largest is not None else computed_max
    shown_after = masked["smd_after"].abs()
    if largest is not None and not (shown_after.notna().any() and abs(shown_after.max() - largest) < 1e-9):
        max_after = f"{NOT_SHOWN} (its row has a suppressed count)"
    else:
        max_after = formats.smd(largest)
    section = {"threshold": f"{threshold:g}", "rows": rows, "file": path.is_file(), "mismatch": None,
               "passed": bool(passed), "imbalanced": imbalanced, "max_after": max_after,
               "love_plot": _love_plot(out, masked, threshold) if any_masked else _data_uri(out / "love_plot.png"),
               "love_plot_masked": any_masked}
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


def _smd_text(value, shown) -> str:
    if _finite(value) is not None and _finite(shown) is None:
        return NOT_SHOWN
    return formats.smd(value)


def _over(value, threshold: float) -> bool:
    value = _finite(value)
    return value is not None and abs(value) > threshold


def _love_plot(out: Path, masked: pd.DataFrame, threshold: float) -> str | None:
    """The Love plot drawn again without the SMDs that would uncover a suppressed count."""
    if not (out / "love_plot.png").is_file():
        return None
    from cohortlake.matching.balance import love_plot

    with tempfile.TemporaryDirectory() as folder:
        return _data_uri(love_plot(masked, Path(folder) / "love_plot.png", threshold=threshold))


def _matching_lines(matching: dict, table1: Table1, cells: Cells) -> list[str]:
    lines = []
    if matching.get("method"):
        caliper = matching.get("caliper")
        parts = [f"method {matching['method']}"]
        if matching.get("ps_method"):
            parts.append(f"propensity model {matching['ps_method']}")
        if matching.get("ratio") is not None:
            parts.append(f"1:{matching['ratio']} {'with' if matching.get('replacement') else 'without'} replacement")
        if caliper is not None:
            parts.append(f"caliper {formats.number(_finite(caliper), 4).rstrip('0').rstrip('.')} "
                         f"on the {matching.get('scale', 'logit')} scale")
        elif "caliper" in matching:
            parts.append("no caliper")
        if matching.get("order"):
            parts.append(f"order {matching['order']}")
        lines.append("; ".join(parts) + ".")
    if matching.get("equipoise") is not None:
        lines.append(f"Equipoise (share of persons with preference score in [0.3, 0.7]): "
                     f"{formats.percent(_finite(matching['equipoise']))}.")
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


def _register_links(cells: Cells, table1: Table1, steps: list[AttritionStep], matching: dict) -> None:
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
        paired = matching.get("ratio") == 1 and not matching.get("replacement") \
            and matching.get("method", "greedy_nearest_neighbor") == "greedy_nearest_neighbor"
        if paired and table1.n[("matched", treated)] == table1.n[("matched", control)]:
            cells.group([arm_n_key("matched", treated)], arm_n_key("matched", control))


def build_context(out_dir: str | Path, generated: dt.date | str | None = None) -> dict:
    """Everything the template prints, as text, small cells already suppressed."""
    out = Path(out_dir)
    if not out.is_dir():
        raise MissingInputError(f"{out}: no such folder")
    results = _read_results(out)
    treatment = results["treatment"]
    matching = results.get("matching") or {}
    cohort = _read_parquet(out / "cohort.parquet", required=True)
    matched = _read_parquet(out / "matched.parquet", required=False)
    table1 = build_table1(cohort, matched, results["covariates"], (treatment["arm"], treatment["control"]),
                          denominator=matching.get("smd_denominator") or "pooled")
    steps = read_attrition(out / "attrition.csv") if (out / "attrition.csv").is_file() else []

    cells = Cells()
    register_attrition(steps, cells)
    table1.register(cells)
    _register_links(cells, table1, steps, matching)
    matched_n = {arm: table1.n[("matched", arm)] for arm in table1.arms} if table1.matched else None
    survival = SurvivalFigures(results.get("survival"), treatment, cells, matched_n)
    reference = (ReferenceTable(results, cells, survival, {s.remaining: s.remaining_key for s in steps})
                 if results.get("reference_study") else None)

    threshold = float(matching.get("smd_threshold") or 0.1)
    arms = list(table1.arms)
    arm_boxes = [{"label": arm, "n": cells.text(arm_n_key("cohort", arm)),
                  "matched": cells.text(arm_n_key("matched", arm)) if table1.matched else None} for arm in arms]
    if isinstance(generated, dt.date):
        generated = generated.isoformat()
    horizon = (survival.horizon if survival.horizon is not None else results.get("horizon_days"))
    sections = [("attrition", "Cohort attrition"), ("table1", "Table 1: baseline characteristics"),
                ("balance", "Covariate balance"), ("km", "Kaplan-Meier curves"),
                ("effects", "Effect estimates")]
    if reference is not None:
        sections.append(("reference", "Reference study comparison"))
    sections.append(("small-cells", "Small-cell rules"))
    return {
        "title": results.get("title") or results.get("cohort") or "Study report",
        "cohort": results.get("cohort") or "",
        "generated": generated or dt.date.today().isoformat(),
        "treated": treatment["arm"], "control": treatment["control"],
        "sections": sections,
        "attrition": {"steps": flow_rows(steps, cells), "arms": arm_boxes, "available": bool(steps)},
        "table1": {"arms": arms, "rows": _flag_smd(table1.text_rows(cells), threshold), "matched": table1.matched,
                   "weighted": table1.weighted, "not_shown": NOT_SHOWN},
        "balance": _balance_section(out, table1, matching, cells),
        "matching_lines": _matching_lines(matching, table1, cells),
        "km": {"image": None if survival.plot_counts_hidden() else _data_uri(out / "km.png"),
               "file": (out / "km.png").is_file(), "withheld": survival.plot_counts_hidden(),
               "at_risk": survival.at_risk()},
        "effects": {"available": survival.available, "arms": survival.arm_rows(),
                    "comparisons": survival.comparison_rows() if survival.available else [],
                    "notes": survival.notes(),
                    "horizon": formats.weighted_count(horizon) if horizon is not None else None},
        "reference": None if reference is None else {"rows": reference.rows(), "citation": CITATION,
                                                     "notes": list((results.get("descriptive") or {}).get("notes") or [])},
        "rule": RULE, "small": SMALL, "hidden": HIDDEN,
    }


def render_report(context: dict) -> str:
    return _environment().get_template("report.html.j2").render(**context)


def write_report(out_dir: str | Path, *, generated: dt.date | str | None = None) -> Path:
    """Write ``report.html`` into ``out_dir`` from the files there; returns its path."""
    out = Path(out_dir)
    html = render_report(build_context(out, generated))
    path = out / REPORT_FILE
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path}: cannot write the report ({error.strerror})") from None
    return path
