"""The quality page: one self-contained HTML file of a lake's data quality, as the study
report is (inline CSS, images as data URIs, no JavaScript, nothing fetched).

It shows, per stage (bronze, silver, cohort, matched) and suite, the latest validation:
pass/warn/fail, the Delta version validated and the seconds it took; every failed or
warned expectation with its count, share, threshold and example values; the quarantine
by raw table, column and reason with a few example rows; the ingest's rows in, duplicates,
quarantined and out; and, when the lake holds an earlier delivery, the comparison with it
(:mod:`cohortlake.quality.compare`).

Every gate writes its summary to ``_quality/runs/<run id>.json`` (:func:`record_gate`),
which is where the page takes the seconds and thresholds from; the counts of the
expectations are the same as in ``_quality/results``.

Two audiences, as for the study report (:data:`cohortlake.cells.AUDIENCES`): the *analyst*
page (``_quality/report.html`` in the lake, and ``OUT/analyst/quality.html``) shows every
count, the example values and the quarantined rows, and says it holds cells under 11 and
is not for release; the *release* page (``OUT/release/quality.html``) shows counts of 1-10
as ``<11`` (with complementary suppression where a reader could subtract) and no
example values or rows, which are patient-level data. The rule, the audiences and what the
page says of them are the small-cell rule's (:mod:`cohortlake.cells`), as the report's are.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from cohortlake.cells import (ANALYST, AUDIENCES, NOT_FOR_RELEASE, RELEASE, RELEASE_NOTE, RULE, SMALL_CELL_MAX, Cells,
                              is_small)
from cohortlake.lake import layout as lake_layout
from cohortlake.pagestyle import STYLESHEET

PAGE_FILE = "report.html"
"""The analyst page in the lake: ``_quality/report.html``."""
STUDY_PAGE_FILE = "quality.html"
"""The page beside a study's outputs: ``OUT/analyst/quality.html``, ``OUT/release/quality.html``."""
RUNS_DIR = "runs"
STAGES = ("bronze", "silver", "cohort", "matched")
EXAMPLE_ROWS = 3
"""Quarantined rows shown per table, column and reason (analyst page only)."""
EXAMPLE_VALUES = 5


# --- what each gate leaves for the page -----------------------------------------------

def _state(run) -> str:
    return "fail" if run.critical_failures else ("warn" if run.warnings else "pass")


def record_gate(quality_root, report) -> Path:
    """Write one gate's summary (``_quality/runs/<run id>.json``): per suite its state, version,
    seconds, and every expectation not met with its counts, threshold and examples."""
    suites = []
    for run in report.runs:
        problems = [{"expectation": o.expectation, "column": o.column, "severity": o.severity,
                     "element_count": o.element_count, "unexpected_count": o.unexpected_count,
                     "unexpected_percent": o.unexpected_percent, "mostly": o.mostly, "observed": o.observed,
                     "examples": [str(e) for e in o.examples[:EXAMPLE_VALUES]], "error": o.error}
                    for o in run.outcomes if not o.success]
        suites.append({"suite": run.suite, "table": run.table, "version": run.version,
                       "seconds": round(run.seconds, 2), "state": _state(run), "page": run.page,
                       "expectations": len(run.outcomes), "met": sum(bool(o.success) for o in run.outcomes),
                       "problems": problems})
    summary = {"run_id": report.run_id, "stage": report.stage,
               "validated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "suites": suites}
    path = Path(quality_root) / RUNS_DIR / f"{report.run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def latest_validations(quality_root) -> list[dict]:
    """The latest validation of every suite, in stage order (each with its run id and time)."""
    latest: dict[str, dict] = {}
    for path in sorted((Path(quality_root) / RUNS_DIR).glob("*.json")):  # run ids start with their UTC time
        summary = json.loads(path.read_text(encoding="utf-8"))
        for suite in summary["suites"]:
            latest[suite["suite"]] = {**suite, "stage": summary["stage"], "run_id": summary["run_id"],
                                      "validated_at": summary["validated_at"]}
    order = {stage: i for i, stage in enumerate(STAGES)}
    return sorted(latest.values(), key=lambda s: (order.get(s["stage"], len(order)), s["suite"]))


# --- what the lake holds ---------------------------------------------------------------

def ingest_counts(lake) -> dict | None:
    """The last ingest's layout, time and rows in/duplicates/quarantined/out per raw table."""
    path = Path(lake_layout.ingest_manifest(lake.root))
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    extra = manifest.get("extra", {})
    return {"layout": extra.get("layout"), "finished": manifest.get("finished_utc"),
            "raw": list((extra.get("raw_tables") or {}).values())}


def quarantine_summary(lake, examples: bool) -> dict:
    """Quarantined rows by raw table, column and reason (copies included), and a few rows of each."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    tables = [t for t in lake.tables() if lake_layout.in_layer(t, lake_layout.QUARANTINE)]
    if not tables:
        return {"reasons": [], "examples": []}
    def scoped(frame):  # quarantines written before values could be set aside hold whole rows only
        return frame if "scope" in frame.columns else frame.withColumn("scope", F.lit("row"))

    frames = [scoped(lake.read(t)).select("raw_table", "source_file", "row_key", "column", "value", "reason",
                                          "scope", "copies")
              for t in tables]
    quarantine = frames[0]
    for frame in frames[1:]:
        quarantine = quarantine.unionByName(frame)
    group = ("raw_table", "column", "reason", "scope")
    if not examples:
        reasons = quarantine.groupBy(*group).agg(F.sum("copies").alias("rows")).orderBy(*group).collect()
        return {"reasons": [r.asDict() for r in reasons], "examples": []}
    # one scan for both: each group's total rides on its first EXAMPLE_ROWS rows, and the
    # first row of each group (n = 1, in group order) is its reason
    rows = (quarantine.withColumn("rows", F.sum("copies").over(Window.partitionBy(*group)))
            .withColumn("n", F.row_number().over(Window.partitionBy(*group).orderBy("source_file", "row_key")))
            .where(F.col("n") <= EXAMPLE_ROWS)
            .orderBy("raw_table", "column", "reason", "n", "scope").collect())
    return {"reasons": [{k: r[k] for k in (*group, "rows")} for r in rows if r["n"] == 1],
            "examples": [{k: r[k] for k in ("raw_table", "source_file", "row_key", "column", "value", "reason", "scope")}
                         for r in rows]}


# --- the page ----------------------------------------------------------------------------

def _threshold(problem: dict) -> str:
    mostly = problem.get("mostly")
    if mostly is not None and mostly < 1:
        return f"at most {100 * (1 - mostly):.3g}% of rows"
    if problem.get("unexpected_count") is not None:
        return "no row"
    return ""


def _problem_rows(validations: list[dict], cells: Cells, audience: str) -> list[dict]:
    rows = []
    for i, suite in enumerate(validations):
        for j, problem in enumerate(suite["problems"]):
            unexpected, element = problem.get("unexpected_count"), problem.get("element_count")
            count = share = ""
            if unexpected is not None and element is not None:
                key, total = ("unexpected", i, j), ("checked", i, j)
                count, share = (key, total), True
                cells.add(key, unexpected)
                cells.add(total, element, keep=True)
                cells.group([key, cells.add(("expected", i, j), element - unexpected, published=False)], total)
            rows.append({"stage": suite["stage"], "suite": suite["suite"], "severity": problem["severity"],
                         "label": f"{problem['expectation']}({problem['column']})" if problem.get("column")
                         else problem["expectation"],
                         "count": count, "share": share, "threshold": _threshold(problem),
                         "observed": problem.get("observed") if unexpected is None else None,
                         "error": problem.get("error"),
                         "examples": ", ".join(problem.get("examples") or []) if audience == ANALYST else None})
    return rows


def _finish_rows(rows: list[dict], cells: Cells) -> None:
    """Count keys become text once every cell is registered."""
    for row in rows:
        if row["count"]:
            key, total = row["count"]
            row["count"] = f"{cells.text(key)} of {cells.text(total)}"
            row["share"] = cells.percent(key, total, digits=2) or ""


def _ingest_rows(ingest: dict | None, cells: Cells) -> list[dict]:
    if not ingest:
        return []
    rows = []
    for counts in ingest["raw"]:
        name = counts["raw_table"]
        keys = {field: cells.add(("ingest", name, field), counts[field], keep=field == "rows_in")
                for field in ("rows_in", "duplicates", "quarantined", "rows_out")}
        cells.group([keys["duplicates"], keys["quarantined"], keys["rows_out"]], keys["rows_in"])
        set_aside = cells.add(("ingest", name, "values_set_aside"), counts.get("values_set_aside") or 0)
        rows.append({"table": name, "files": len(counts.get("files") or []), **keys, "values_set_aside": set_aside})
    return rows


def _plot_years(comparison: dict, audience: str) -> str | None:
    """Rows per service year of every raw table, this delivery beside the previous one (PNG data URI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = [(t, p) for t, p in sorted(comparison["profiles"].items())
              if lake_layout.in_layer(t, lake_layout.BRONZE) and "previous" in p and "current" in p]
    if not tables:
        return None
    columns = 2
    lines = (len(tables) + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(10, 2.6 * lines), squeeze=False)
    flagged = {(f["table"], f["key"]) for f in comparison["flags"] if f["measure"] == "rows_per_year"}
    for axis, (table, sides) in zip(axes.flat, tables):
        years = sorted(set(sides["previous"]["years"]) | set(sides["current"]["years"]))
        positions = range(len(years))
        for offset, side, colour in ((-0.2, "previous", "#9aa5b1"), (0.2, "current", "#1f4e79")):
            values = [sides[side]["years"].get(y, 0) for y in years]
            # the release page draws no bar of 1-10 rows (the small-cell rule)
            shown = [0 if audience == RELEASE and is_small(v) else v for v in values]
            axis.bar([p + offset for p in positions], shown, width=0.4, color=colour,
                     label="previous delivery" if side == "previous" else "this delivery")
        for p, year in zip(positions, years):
            if (table, year) in flagged:
                axis.annotate("!", (p, 0), xytext=(0, -2), textcoords="offset points", ha="center", va="top",
                              color="#a61b1b", fontweight="bold", annotation_clip=False)
        axis.set_title(table.split("/", 1)[1], fontsize=10)
        axis.set_xticks(list(positions), years, fontsize=8)
        axis.tick_params(axis="y", labelsize=8)
        axis.set_ylabel("rows", fontsize=8)
    for axis in list(axes.flat)[len(tables):]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    title = "Rows per service year: this delivery against the previous one"
    if audience == ANALYST:
        title += "\n" + NOT_FOR_RELEASE
    figure.suptitle(title, fontsize=10 if audience == RELEASE else 8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _comparison_section(comparison: dict | None, cells: Cells, audience: str) -> dict | None:
    if comparison is None:
        return None
    if not comparison.get("compared"):
        return {"compared": False, "reason": comparison.get("reason")}
    profiles = comparison["profiles"]
    tables = []
    for table, sides in sorted(profiles.items()):
        if lake_layout.in_layer(table, lake_layout.QUARANTINE) or "previous" not in sides or "current" not in sides:
            continue
        keys = {}
        for side in ("previous", "current"):
            years = sides[side].get("years") or {}
            total = cells.add(("delivery", table, side), sides[side]["rows"], keep=True)
            if years:
                cells.group([cells.add(("delivery", table, side, y), n) for y, n in years.items()], total)
            keys[side] = total
        before, after = sides["previous"]["rows"], sides["current"]["rows"]
        tables.append({"table": table, "previous": keys["previous"], "current": keys["current"],
                       "change": f"{(after - before) / before:+.1%}" if before else "",
                       "missing": [{"column": c, "previous": sides["previous"]["missing"][c] / before if before else 0.0,
                                    "current": sides["current"]["missing"].get(c, 0) / after if after else 0.0}
                                   for c in sides["previous"]["missing"]]})
    years = []
    for table, sides in sorted(profiles.items()):
        if lake_layout.in_layer(table, lake_layout.BRONZE) and "previous" in sides and "current" in sides:
            for year in sorted(set(sides["previous"]["years"]) | set(sides["current"]["years"])):
                years.append({"table": table, "year": year,
                              "previous": ("delivery", table, "previous", year) if year in sides["previous"]["years"] else None,
                              "current": ("delivery", table, "current", year) if year in sides["current"]["years"] else None})
    code_systems = []
    for table in (lake_layout.silver("diagnosis"), lake_layout.silver("procedure")):
        sides = profiles.get(table, {})
        if "code_systems" in sides.get("previous", {}) and "code_systems" in sides.get("current", {}):
            for system in sorted(set(sides["previous"]["code_systems"]) | set(sides["current"]["code_systems"])):
                shares = {s: sides[s]["code_systems"].get(system, 0) / sides[s]["rows"] if sides[s]["rows"] else 0.0
                          for s in ("previous", "current")}
                code_systems.append({"table": table, "code_system": system, **shares})
    quarantine = []
    for table, sides in sorted(profiles.items()):
        bronze = profiles.get(lake_layout.bronze(lake_layout.raw_table_of(table)), {})
        if lake_layout.in_layer(table, lake_layout.QUARANTINE) and len(sides) == 2 and "previous" in bronze and "current" in bronze:
            quarantine.append({"table": table.split("/", 1)[1],
                               **{s: sides[s] / bronze[s]["rows"] if bronze[s]["rows"] else 0.0
                                  for s in ("previous", "current")}})
    return {"compared": True, "flags": comparison["flags"], "tables": tables, "years": years,
            "code_systems": code_systems, "quarantine": quarantine,
            "newly_failing": comparison.get("newly_failing", []),
            "versions": comparison["versions"], "thresholds": comparison["thresholds"],
            "plot": _plot_years(comparison, audience)}


def build_context(lake, audience: str = ANALYST, comparison: dict | None = None, quarantine: dict | None = None,
                  docs_links: bool = False) -> dict:
    """Everything the quality page prints, as text for ``audience``."""
    from cohortlake.lake.layout import QUALITY_DIR

    quality_root = Path(lake.root) / QUALITY_DIR
    validations = latest_validations(quality_root)
    cells = Cells(rule=audience == RELEASE)
    problems = _problem_rows(validations, cells, audience)
    ingest = ingest_counts(lake)
    ingest_rows = _ingest_rows(ingest, cells)
    quarantine = quarantine or {"reasons": [], "examples": []}
    reasons = []
    for r in quarantine["reasons"]:
        reasons.append({**r, "rows": cells.add(("quarantine", r["raw_table"], r["column"], r["reason"], r["scope"]),
                                               r["rows"])})
    delivery = _comparison_section(comparison, cells, audience)
    # every count is registered: read them as text
    _finish_rows(problems, cells)
    for row in ingest_rows:
        for field in ("rows_in", "duplicates", "quarantined", "rows_out", "values_set_aside"):
            row[field] = cells.text(row[field])
    for row in reasons:
        row["rows"] = cells.text(row["rows"])
    if delivery and delivery["compared"]:
        for row in delivery["tables"]:
            row["previous"], row["current"] = cells.text(row["previous"]), cells.text(row["current"])
        for row in delivery["years"]:
            for side in ("previous", "current"):
                row[side] = cells.text(row[side]) if row[side] is not None else "0"
    stages = []
    for stage in STAGES:
        suites = [s for s in validations if s["stage"] == stage]
        if suites:
            stages.append({"stage": stage, "suites": [
                {**s, "page": (Path(s["page"]).relative_to(quality_root).as_posix()
                               if docs_links and s.get("page") and Path(s["page"]).is_relative_to(quality_root) else None)}
                for s in suites]})
    notice = NOT_FOR_RELEASE if audience == ANALYST else None
    return {"title": "Data quality", "lake": str(lake.root), "audience": audience, "notice": notice,
            "release_note": RELEASE_NOTE, "rule": RULE, "small_cell_max": SMALL_CELL_MAX,
            "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "stages": stages, "problems": problems, "ingest": ingest, "ingest_rows": ingest_rows,
            "reasons": reasons, "examples": quarantine["examples"] if audience == ANALYST else [],
            "delivery": delivery, "docs_index": "docs/index.html" if docs_links else None}


def _environment() -> Environment:
    return Environment(loader=PackageLoader("cohortlake.quality", "templates"),
                       autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render_page(context: dict) -> str:
    return _environment().get_template("quality.html.j2").render(style=STYLESHEET, **context)


def write_quality_pages(lake, study_out: str | Path | None = None) -> dict[str, Path]:
    """The analyst page ``_quality/report.html`` and, with ``study_out``, ``OUT/analyst/quality.html``
    and ``OUT/release/quality.html``. Returns {"lake": path, "analyst": path, "release": path}."""
    from cohortlake.quality.compare import cached_comparison
    from cohortlake.lake.manifest import ingested_layout
    from cohortlake.lake.layout import QUALITY_DIR

    quality_root = Path(lake.root) / QUALITY_DIR
    quality_root.mkdir(parents=True, exist_ok=True)
    comparison = cached_comparison(lake, ingested_layout(lake), quality_root)
    quarantine = quarantine_summary(lake, examples=True)
    paths = {}
    page = quality_root / PAGE_FILE
    page.write_text(render_page(build_context(lake, ANALYST, comparison, quarantine, docs_links=True)),
                    encoding="utf-8")
    paths["lake"] = page
    if study_out is not None:
        for audience in AUDIENCES:
            folder = Path(study_out) / audience
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / STUDY_PAGE_FILE
            path.write_text(render_page(build_context(lake, audience, comparison, quarantine)), encoding="utf-8")
            paths[audience] = path
    return paths
