"""The study pipeline: ingest → build → match → analyze, each step printing what it did.

``cohortlake run`` (and ``jobs/run_study.py``, which runs it under spark-submit) is
:func:`run_study`; ``cohortlake demo`` is :func:`demo`; the one-step commands call the
step functions. Each step writes its own manifest in the lake (:mod:`cohortlake.lake.layout`
says where); :func:`run_study` adds one :class:`~cohortlake.lake.manifest.RunManifest` for
the run in OUT that points at them. The CLI (``cli.py``) only parses and calls these.

Everything heavy is imported inside the functions, so importing this module starts
nothing and copies nothing out of a ``--py-files`` zip.
"""

from __future__ import annotations

import time
from pathlib import Path

from cohortlake.lake import layout
from cohortlake.resources import reference_definition

DEMO_LAYOUT = "seer-medicare"
AUDIENCES = ("analyst", "release")


# --- what the steps print --------------------------------------------------------------


def print_ingest_report(report, progress) -> None:
    progress.info(f"{'raw table':<26}{'rows in':>12}{'duplicates':>12}{'quarantined':>13}{'rows out':>12}"
                  f"{'values set aside':>18}")
    for c in report.raw:
        progress.info(f"{c.raw_table:<26}{c.rows_in:>12,}{c.duplicates:>12,}{c.quarantined:>13,}{c.rows_out:>12,}"
                      f"{c.values_set_aside:>18,}")
    progress.info("(rows in = rows out + quarantined + duplicates; a value set aside is in quarantine, its row landed)")
    progress.info(f"{'silver table':<26}{'rows':>12}")
    for table, rows in report.silver.items():
        progress.info(f"{table:<26}{rows:>12,}")


def print_quality(report, progress) -> None:
    """A gate's result: one line per suite, then every failed expectation, then the docs."""
    progress.info(f"quality gate '{report.stage}': {'passed' if report.passed else 'FAILED'}"
                  f" ({len(report.critical_failures)} critical, {len(report.warnings)} warning)")
    for line in report.lines():
        progress.info(f"  {line}")
    progress.info(f"  Data Docs: {report.docs_index}")


def print_reports(reports: dict, progress) -> None:
    """The report paths, the release one last as ``Report: …``."""
    if "analyst" in reports:
        progress.info(f"Analyst report (cells under 11, not for release): {reports['analyst']}")
    if "release" in reports:
        progress.info(f"Report: {reports['release']}")


def write_quality_page(lake, progress, study=None) -> dict:
    """The quality page of the lake (and the analyst and release ones beside a study's outputs);
    prints the lake's page as ``Quality page: …``."""
    from cohortlake.quality.page import write_quality_pages

    with progress.step("quality page") as step:
        pages = write_quality_pages(lake, study)
        step["detail"] = ", ".join(str(path) for path in pages.values())
    progress.info(f"Quality page: {pages['lake']}")
    return pages


# --- the steps -------------------------------------------------------------------------


def ingest(lake, layout_name: str, raw, progress, mapping=None, validate: bool = True):
    """Ingest raw files and print the counts and every gate; returns the IngestReport."""
    from cohortlake.sources.ingest import ingest as ingest_raw

    report = ingest_raw(lake.spark, lake, layout_name, raw, mapping_path=mapping, progress=progress,
                        validate=validate)
    print_ingest_report(report, progress)
    for gate in report.quality:
        print_quality(gate, progress)
    return report


def build(definition_path, lake, out, progress, validate: bool = True):
    """Build one definition, store its tables and print its attrition; returns the BuildReport."""
    from cohortlake.engine.store import build_and_store, render_attrition
    from cohortlake.spec import load_definition

    definition = load_definition(definition_path)
    report = build_and_store(definition, lake, out=out, progress=progress, validate=validate)
    for line in render_attrition(report.attrition):
        progress.info(line)
    if report.quality is not None:
        print_quality(report.quality, progress)
    progress.info(f"cohort tables: {layout.cohort_dir(lake.root, definition.cohort)}/ (cohort, attrition"
                  f"{', events' if report.event_rows is not None else ''}); manifest {report.manifest_path}")
    for path in report.exported:
        progress.info(f"exported {path}")
    return report


def match(definition, lake, out, progress, validate: bool = True):
    """Match a built cohort into OUT and print what came of it; returns the MatchReport."""
    from cohortlake.matching.step import match_cohort
    from cohortlake.quality.run import QualityGateError

    try:
        report = match_cohort(definition, lake, out, progress=progress, validate=validate)
    except QualityGateError as error:
        print_quality(error.report, progress)
        progress.info(f"balance diagnostics written to {out} (balance.csv, love_plot.png); nothing handed off")
        raise
    for line in report.psmatch.lines():
        progress.info(line)
    if report.quality is not None:
        print_quality(report.quality, progress)
    for name, path in report.files.items():
        progress.info(f"wrote {path}")
    return report


def analyze(definition, out, progress, horizon: float, audiences=AUDIENCES):
    """Survival analysis of OUT's matched dataset, results.json, km.png and the report of each
    audience in its own folder (OUT/analyst, OUT/release); the release set is checked for small
    cells. Returns the :class:`StudyResults` and {audience: report path}."""
    from cohortlake.cells import SMALL_CELL_MAX
    from cohortlake.report import write_reports
    from cohortlake.report.disclosure import check_release
    from cohortlake.survival import render_summary
    from cohortlake.survival.study import study_analysis

    results = study_analysis(definition, out, horizon=horizon, progress=progress)
    for line in render_summary(results.survival):
        progress.info(line)
    with progress.step("report") as step:
        reports = write_reports(out, audiences)
        step["detail"] = ", ".join(str(path.parent) for path in reports.values())
    if "release" in reports:
        leaks = check_release(reports["release"].parent)
        progress.info(f"disclosure check of {reports['release'].parent}: "
                      + (f"no count of 1-{SMALL_CELL_MAX} can be derived" if not leaks else f"{len(leaks)} leak(s)"))
        for leak in leaks:
            progress.info(f"  {leak}")
    return results, reports


# --- the whole study -------------------------------------------------------------------


def run_study(definition, lake, out, progress, *, horizon: float, raw=None, layout_name: str | None = None,
              mapping=None, validate: bool = True) -> dict:
    """(ingest →) build → match → analyze one definition, every output in OUT, the run's
    manifest as ``OUT/manifest.json``, then the quality pages. Returns {audience: report path}."""
    from cohortlake.lake.manifest import RunManifest

    started = time.monotonic()
    text = Path(definition.path).read_text(encoding="utf-8") if definition.path else None
    manifest = RunManifest("run", definition_text=text)
    manifests = {}
    if raw:
        with manifest.phase("ingest"):
            manifests["ingest"] = ingest(lake, layout_name, raw, progress, mapping, validate=validate).manifest_path
    with manifest.phase("build"):
        manifests["build"] = build(definition.path, lake, out, progress, validate=validate).manifest_path
    with manifest.phase("match"):
        match(definition, lake, out, progress, validate=validate)
    manifests["match"] = layout.match_manifest(lake.root, definition.cohort)
    with manifest.phase("analyze"):
        _, reports = analyze(definition, out, progress, horizon)
    # What a reader of a run looks up first, at the top level beside the standard fields.
    manifest.headline.update({
        "cohort": definition.cohort, "definition": definition.path,
        "definition_sha256_with_includes": definition.sha256, "lake": str(lake.root),
        "seconds": round(time.monotonic() - started, 1),
        "step_seconds": {step: round(seconds, 1) for step, seconds in manifest.timings_seconds.items()},
        "manifests": manifests,
        "outputs": sorted(p.name for p in Path(out).iterdir() if p.is_file()),
    })
    manifest.record_lake(lake, count_rows=False)  # the steps' own manifests hold the row counts
    manifest.write(Path(out) / layout.MANIFEST)
    write_quality_page(lake, progress, out)
    print_reports(reports, progress)
    return reports


def demo(lake, lake_dir: Path, progress, *, patients: int, seed: int, study: str | None,
         cancer_site: str) -> None:
    """Synthetic SEER-Medicare files (the ``cancer_site`` file) → the lake → the reference
    cohort (→ match, analyze and report into ``study`` unless it is None), printing where
    each output is."""
    from cohortlake.spec import load_definition
    from cohortlake.synth import generate

    raw = Path(layout.raw_dir(str(lake_dir), DEMO_LAYOUT))
    with progress.step(f"synth {DEMO_LAYOUT}") as step:
        generate(lake.spark, DEMO_LAYOUT, str(raw), patients, seed, cancer_site=cancer_site)
        step["detail"] = f"{patients:,} synthetic patients (cancer site file: {cancer_site}) → {raw}"
    report = ingest(lake, DEMO_LAYOUT, raw, progress)
    progress.info("")
    reference = str(reference_definition())
    built = build(reference, lake, study, progress)
    reports = {}
    if study is not None:
        definition = load_definition(reference)
        progress.info("")
        match(definition, lake, study, progress)
        progress.info("")
        _, reports = analyze(definition, study, progress, horizon=90)
    progress.info("")
    progress.info("outputs:")
    progress.info(f"  raw files ({DEMO_LAYOUT} layout) and truth.json  {raw}")
    progress.info(f"  lakehouse (Delta tables)                          {lake_dir}")
    progress.info(f"    {layout.bronze('<raw table>')}, {layout.quarantine('<raw table>')}, "
                  f"{layout.silver('<canonical table>')}")
    progress.info(f"  ingest manifest                                   {report.manifest_path}")
    progress.info(f"  reference cohort                                  {Path(built.manifest_path).parent}")
    progress.info(f"  data-quality results (Delta) and Data Docs        {layout.quality_dir(str(lake_dir))}")
    if study is not None:
        progress.info(f"  study outputs (matched dataset, results, plots)  {study}")
        progress.info(f"  analyst view (every count; not for release)       {Path(study) / 'analyst'}")
        progress.info(f"  release set (small-cell rule applied)             {Path(study) / 'release'}")
    progress.info(f"Data Docs: {built.quality.docs_index}")
    write_quality_page(lake, progress, study)
    print_reports(reports, progress)
