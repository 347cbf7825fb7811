"""The ``cohortlake`` command line.

Exit codes scripts can rely on: 0 done, 1 a problem with the input or the environment
(one message on stderr, no trace), 2 a usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cohortlake import __version__
from cohortlake.errors import UserError

DEFAULT_LAKE = "./lakehouse"
FORMATS = ("text", "json", "github")
CODESETS_ENV_NAME = "COHORTLAKE_CODESETS"
TIME_UNIT_DAYS = {"days": 1.0, "weeks": 7.0, "months": 365.25 / 12, "years": 365.25}
DEFAULT_STUDY_OUT = "./study"
DEMO_PATIENTS = 50000
LAYOUTS = ("seer-medicare", "desynpuf")


def __getattr__(name: str):
    # REFERENCE_DEFINITION: the reference study's definition, package data (cohortlake.resources),
    # looked up when asked for, so importing the CLI from a --py-files zip copies nothing out.
    if name == "REFERENCE_DEFINITION":
        from cohortlake.resources import reference_definition

        return str(reference_definition())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _out_folder(value: str) -> str:
    """--out: a local folder or a ``file://`` URI; the driver writes these files itself."""
    from urllib.parse import unquote, urlparse

    if value.startswith("file:"):
        return unquote(urlparse(value).path) or "/"
    if "://" in value:
        raise argparse.ArgumentTypeError(
            f"{value!r}: --out is a folder the driver writes (a local path or file:// URI); the lake "
            "(--lake) may be an object store, the hand-off files are copied from OUT after the run")
    return value


def _spark(args):
    from cohortlake.lake.session import get_spark

    return get_spark(f"cohortlake-{args.command}", master=getattr(args, "master", None))


def _lake(args, spark):
    from cohortlake.lake.delta import Lakehouse

    return Lakehouse(args.lake, spark)


def cmd_synth(args, progress) -> int:
    from cohortlake.synth import generate

    spark = _spark(args)
    with progress.step(f"synth {args.layout}") as step:
        summary = generate(spark, args.layout, args.out, args.patients, args.seed, dirty_rate=args.dirty_rate,
                           file_format=args.format)
        total = sum(t["rows"] for t in summary["files"].values())
        step["detail"] = f"{args.patients:,} patients, {total:,} rows in {len(summary['files'])} tables"
    for table, info in summary["files"].items():
        progress.info(f"  {table:<28} {info['rows']:>12,} rows  {len(info['files'])} file(s)")
    progress.info(f"raw files and truth.json written to {args.out}")
    return 0


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


def write_quality_page(lake, progress, study=None) -> dict:
    """The quality page of the lake (and the analyst and release ones beside a study's outputs);
    prints the lake's page as ``Quality page: …``."""
    from cohortlake.quality.page import write_quality_pages

    with progress.step("quality page") as step:
        pages = write_quality_pages(lake, study)
        step["detail"] = ", ".join(str(path) for path in pages.values())
    progress.info(f"Quality page: {pages['lake']}")
    return pages


def run_ingest(spark, lake, layout, raw, progress, mapping=None, validate: bool = True):
    """Ingest raw files and print the counts and every gate; returns the IngestReport."""
    from cohortlake.sources.ingest import ingest

    report = ingest(spark, lake, layout, raw, mapping_path=mapping, progress=progress, validate=validate)
    print_ingest_report(report, progress)
    for gate in report.quality:
        print_quality(gate, progress)
    return report


def cmd_ingest(args, progress) -> int:
    spark = _spark(args)
    lake = _lake(args, spark)
    report = run_ingest(spark, lake, args.layout, args.raw, progress, args.mapping, validate=not args.no_validate)
    progress.info(f"manifest: {report.manifest_path}")
    write_quality_page(lake, progress)
    return 0


def cmd_validate(args, progress) -> int:
    from cohortlake.quality.gates import validate_lake

    spark = _spark(args)
    lake = _lake(args, spark)
    reports = validate_lake(lake, args.suite, progress, counts=args.counts)
    for report in reports:
        print_quality(report, progress)
    failed = [r.stage for r in reports if not r.passed]
    if failed:
        print(f"cohortlake validate: critical expectations not met at {', '.join(failed)}; see Data Docs: "
              f"{reports[0].docs_index}", file=sys.stderr)
    write_quality_page(lake, progress)
    return 1 if failed else 0


def cmd_tables(args, progress) -> int:
    spark = _spark(args)
    lake = _lake(args, spark)
    names = lake.tables()
    if not names:
        progress.info(f"no Delta tables under {args.lake}")
        return 0
    progress.info(f"{'table':<40}{'version':>9}{'rows':>14}")
    for name in names:
        progress.info(f"{name:<40}{lake.version(name):>9}{lake.row_count(name):>14,}")
    return 0


def cmd_history(args, progress) -> int:
    spark = _spark(args)
    lake = _lake(args, spark)
    for entry in lake.history(args.table):
        progress.info("  ".join(f"{k}={v}" for k, v in entry.items()))
    return 0


def cmd_demo(args, progress) -> int:
    from cohortlake.resources import reference_definition
    from cohortlake.synth import generate

    spark = _spark(args)
    lake = _lake(args, spark)
    raw = Path(args.lake).resolve() / "_raw" / "seer-medicare"
    with progress.step("synth seer-medicare") as step:
        generate(spark, "seer-medicare", str(raw), args.patients, args.seed)
        step["detail"] = f"{args.patients:,} synthetic patients → {raw}"
    report = run_ingest(spark, lake, "seer-medicare", raw, progress)
    progress.info("")
    study = None if args.no_study else str(Path(args.out).resolve())
    reference = str(reference_definition())
    built = run_build(reference, lake, study, progress)
    reports = {}
    if study is not None:
        from cohortlake.spec import load_definition

        definition = load_definition(reference)
        progress.info("")
        run_match(definition, lake, study, progress)
        progress.info("")
        _, reports = run_analysis(definition, study, progress, horizon=90)
    progress.info("")
    progress.info("outputs:")
    progress.info(f"  raw files (seer-medicare layout) and truth.json  {raw}")
    progress.info(f"  lakehouse (Delta tables)                          {Path(args.lake).resolve()}")
    progress.info(f"    bronze/<raw table>, quarantine/<raw table>, silver/<canonical table>")
    progress.info(f"  ingest manifest                                   {report.manifest_path}")
    progress.info(f"  reference cohort                                  {Path(built.manifest_path).parent}")
    progress.info(f"  data-quality results (Delta) and Data Docs        {Path(args.lake).resolve() / '_quality'}")
    if study is not None:
        progress.info(f"  study outputs (matched dataset, results, plots)  {study}")
        progress.info(f"  analyst view (every count; not for release)       {Path(study) / 'analyst'}")
        progress.info(f"  release set (small-cell rule applied)             {Path(study) / 'release'}")
    progress.info(f"Data Docs: {built.quality.docs_index}")
    write_quality_page(lake, progress, study)
    print_reports(reports, progress)
    return 0


def run_build(definition_path, lake, out, progress, validate: bool = True):
    """Build one definition and print its attrition; returns the BuildReport."""
    from cohortlake.engine.build import build, render_attrition
    from cohortlake.spec import load_definition

    definition = load_definition(definition_path)
    report = build(definition, lake, out=out, progress=progress, validate=validate)
    for line in render_attrition(report.attrition):
        progress.info(line)
    if report.quality is not None:
        print_quality(report.quality, progress)
    progress.info(f"cohort tables: {lake.root}/cohorts/{definition.cohort}/ (cohort, attrition"
                  f"{', events' if report.event_rows is not None else ''}); manifest {report.manifest_path}")
    for path in report.exported:
        progress.info(f"exported {path}")
    return report


def cmd_build(args, progress) -> int:
    from cohortlake.spec import load_definition

    load_definition(args.definition)  # a bad definition fails before Spark starts
    spark = _spark(args)
    lake = _lake(args, spark)
    run_build(args.definition, lake, args.out, progress, validate=not args.no_validate)
    return 0


def run_match(definition, lake, out, progress, validate: bool = True):
    """Match a built cohort into OUT and print what came of it; returns the MatchReport."""
    from cohortlake.matching.landmark import match_cohort
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


def run_analysis(definition, out, progress, horizon: float, audiences=("analyst", "release")):
    """Survival analysis of OUT's matched dataset, results.json, km.png and the report of each
    audience in its own folder (OUT/analyst, OUT/release); the release set is checked for small
    cells. Returns the results and {audience: report path}."""
    from cohortlake.report import write_reports
    from cohortlake.report.disclosure import check_release
    from cohortlake.survival import render_summary
    from cohortlake.survival.study import analyze_study

    results = analyze_study(definition, out, horizon=horizon, progress=progress)
    for line in render_summary(results["survival"]):
        progress.info(line)
    with progress.step("report") as step:
        reports = write_reports(out, audiences)
        step["detail"] = ", ".join(str(path.parent) for path in reports.values())
    if "release" in reports:
        leaks = check_release(reports["release"].parent)
        progress.info(f"disclosure check of {reports['release'].parent}: "
                      + ("no count of 1-10 can be derived" if not leaks else f"{len(leaks)} leak(s)"))
        for leak in leaks:
            progress.info(f"  {leak}")
    return results, reports


def print_reports(reports: dict, progress) -> None:
    """The report paths, the release one last as ``Report: …``."""
    if "analyst" in reports:
        progress.info(f"Analyst report (cells under 11, not for release): {reports['analyst']}")
    if "release" in reports:
        progress.info(f"Report: {reports['release']}")


def cmd_match(args, progress) -> int:
    from cohortlake.spec import load_definition

    definition = load_definition(args.definition)
    spark = _spark(args)
    run_match(definition, _lake(args, spark), args.out, progress, validate=not args.no_validate)
    return 0


def cmd_analyze(args, progress) -> int:
    from cohortlake.spec import load_definition

    definition = load_definition(args.definition)
    audiences = ("analyst", "release") if args.audience == "both" else (args.audience,)
    _, reports = run_analysis(definition, args.out, progress, args.horizon, audiences)
    print_reports(reports, progress)
    return 0


def cmd_disclosure_check(args, progress) -> int:
    from cohortlake.report.disclosure import check_release

    folder = Path(args.folder)
    if not (folder / "study.json").is_file() and (folder / "release" / "study.json").is_file():
        folder = folder / "release"
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    leaks = check_release(folder)
    for leak in leaks:
        print(f"{folder / leak.file if leak.file[0] != '(' else folder}: {leak.cell}: {leak.detail}", file=sys.stderr)
    if leaks:
        print(f"cohortlake disclosure-check: {len(leaks)} way(s) to a count of 1-10 in {folder}: not for release",
              file=sys.stderr)
        return 1
    print(f"{folder}: no count of 1-10 is printed or can be derived (totals, differences, percentages, SMDs)")
    return 0


def cmd_run(args, progress) -> int:
    """build → validate → match → analyze, every output in OUT and a manifest of the run."""
    import json
    import time

    from cohortlake.spec import load_definition

    if bool(args.raw) != bool(args.layout):
        raise UserError("--raw and --layout go together: the raw files to ingest first, and their layout")
    definition = load_definition(args.definition)
    spark = _spark(args)
    lake = _lake(args, spark)
    started = time.monotonic()
    steps = {}
    manifests = {}
    if args.raw:
        mark = time.monotonic()
        ingested = run_ingest(spark, lake, args.layout, args.raw, progress, args.mapping,
                              validate=not args.no_validate)
        steps["ingest"] = time.monotonic() - mark
        manifests["ingest"] = ingested.manifest_path
    mark = time.monotonic()
    built = run_build(args.definition, lake, args.out, progress, validate=not args.no_validate)
    steps["build"] = time.monotonic() - mark
    mark = time.monotonic()
    run_match(definition, lake, args.out, progress, validate=not args.no_validate)
    steps["match"] = time.monotonic() - mark
    mark = time.monotonic()
    _, reports = run_analysis(definition, args.out, progress, args.horizon)
    steps["analyze"] = time.monotonic() - mark
    manifest = {"step": "run", "cohort": definition.cohort, "definition": definition.path,
                "definition_sha256_with_includes": definition.sha256, "package_version": __version__,
                "spark_version": spark.version, "spark_master": spark.sparkContext.master,
                "backend": lake.backend, "lake": str(lake.root), "seconds": round(time.monotonic() - started, 1),
                "step_seconds": {k: round(v, 1) for k, v in steps.items()},
                "manifests": {**manifests, "build": built.manifest_path,
                              "match": f"{lake.root}/matched/{definition.cohort}/manifest.json"},
                "outputs": sorted(p.name for p in Path(args.out).iterdir() if p.is_file())}
    (Path(args.out) / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    write_quality_page(lake, progress, args.out)
    print_reports(reports, progress)
    return 0


def cmd_bundle(args, progress) -> int:
    from cohortlake.job import write_bundle

    try:
        path, count = write_bundle(args.out)
    except ValueError as error:
        raise UserError(str(error)) from None
    progress.info(f"wrote {path} ({count} files, {path.stat().st_size:,} bytes)")
    progress.info(f"submit with: spark-submit --py-files {path} jobs/run_study.py DEF.yaml --lake URI --out DIR")
    return 0


def cmd_check(args, progress) -> int:
    import os

    from cohortlake.spec.check import check_paths, render
    from cohortlake.spec.load import CODESETS_ENV

    saved = os.environ.get(CODESETS_ENV)
    if args.codesets:
        # Test-patient files load their definitions themselves: they find the library here.
        os.environ[CODESETS_ENV] = os.pathsep.join(args.codesets)
    try:
        results = check_paths(args.paths, codesets_dir=args.codesets or None)
    finally:
        if saved is None:
            os.environ.pop(CODESETS_ENV, None)
        else:
            os.environ[CODESETS_ENV] = saved
    out, err = render(results, args.format)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return 1 if any(not r.ok for r in results) else 0


def cmd_init(args, progress) -> int:
    from cohortlake.spec.scaffold import scaffold

    written = scaffold(args.name, args.dir)
    for path in written:
        print(f"wrote {path}")
    definition = written[0]
    print(f"next: cohortlake check {definition} && cohortlake explain {definition} && cohortlake assure {definition}")
    return 0


def cmd_explain(args, progress) -> int:
    from cohortlake.spec import explain, load_definition

    print(explain(load_definition(args.definition, codesets_dir=args.codesets or None)))
    return 0


def cmd_schema(args, progress) -> int:
    import json

    from cohortlake.spec import json_schema

    print(json.dumps(json_schema(args.kind), indent=2, sort_keys=True))
    return 0


def cmd_assure(args, progress) -> int:
    from cohortlake.engine.assure import default_tests_path, load_suite, run_suite
    from cohortlake.spec import load_definition

    # Read and check both files before starting Spark: a typo fails in a second.
    definition = load_definition(args.definition)
    tests = args.tests or default_tests_path(args.definition)
    if not Path(tests).is_file():
        raise UserError(f"{tests}: no test patients for {args.definition} (write them there, or give --tests FILE)")
    suite = load_suite(tests, definition, definition_path=args.definition)
    spark = _spark(args)
    with progress.step(f"assure {definition.cohort}") as step:
        report = run_suite(spark, suite)
        step["detail"] = f"{len(report.results)} test patients, {len(report.failures)} failed"
    print(report.render())
    return 0 if report.passed else 1


def cmd_survival(args, progress) -> int:
    from cohortlake.survival import render_summary, run_survival

    covariates = _column_list(args.covariates)
    with progress.step("survival") as step:
        results, results_path, plot_path = run_survival(
            args.data, args.out, args.time, args.event, args.group, covariates, cluster=args.cluster,
            weights=args.weights, horizon=args.horizon, event_type=args.event_type, reference_group=args.reference,
            suppress_small=not args.show_small_counts, time_unit=args.time_unit)
        step["detail"] = f"{results['n']:,} persons, {results['events']:,} events"
    left_out = results["input"]["left_out_unmatched"]
    if left_out:
        print(f"left out {left_out:,} unmatched row(s) (empty {args.cluster or args.weights}"
              f"{' or weight 0' if args.weights else ''}), as psmatch writes them")
    if args.time_unit != "days":
        print(f"times read in {args.time_unit} and analysed in days ({TIME_UNIT_DAYS[args.time_unit]:g} per "
              f"{args.time_unit.removesuffix('s')})")
    for line in render_summary(results):
        print(line)
    print(f"wrote {results_path} and {plot_path}")
    return 0


def _column_list(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def _caliper(text: str):
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number or 'none'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (got {text}); write 'none' for no caliper")
    return value


def _ratio(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100 (got {value})")
    return value


def cmd_psmatch(args, progress) -> int:
    from pydantic import ValidationError

    from cohortlake.matching import MatchingSettings, read_persons, run_psmatch

    covariates = _column_list(args.covariates)
    if not covariates:
        raise UserError("--covariates names no column")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"{args.out}: --out must be a folder; a file of that name exists")
    options = {"scale": args.scale, "caliper": args.caliper, "ratio": args.ratio, "replacement": args.replace,
               "order": args.order, "seed": args.seed, "exact": tuple(_column_list(args.exact)),
               "smd_denominator": args.smd_denominator, "l2": args.l2}
    if args.method != "greedy_nearest_neighbor":  # matching options left at their defaults do not apply
        defaults = {"caliper": 0.2, "ratio": 1, "replacement": False, "order": "nearest", "exact": ()}
        options = {k: v for k, v in options.items() if k not in defaults or v != defaults[k]}
    try:
        settings = MatchingSettings(method=args.method, ps_covariates=tuple(covariates), **options)
    except ValidationError as error:
        raise UserError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
                                  for e in error.errors())) from None
    data = read_persons(args.data)
    with progress.step("psmatch") as step:
        report = run_psmatch(data, args.treatment, covariates, settings, out=args.out, treated_value=args.treated)
        step["detail"] = (f"{len(data):,} persons, {report.n_matched_treated:,} treated matched"
                          if report.matched is not None else f"{len(data):,} persons weighted ({args.method})")
    for line in report.lines():
        print(line)
    print(f"wrote {', '.join(str(path) for path in report.files.values())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cohortlake",
        description="Declarative cohorts over Medicare claims: raw files → Delta lakehouse → cohorts, "
                    "built with Spark. Start with 'cohortlake demo'.",
    )
    parser.add_argument("--version", action="version", version=f"cohortlake {__version__}")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def spark_options(p):
        p.add_argument("--master", help="Spark master URL (default: local[*], or the one spark-submit gives)")

    p = commands.add_parser("synth", help="write synthetic raw files in a layout",
                            description="Write synthetic raw claims files exactly in a raw layout, plus truth.json "
                                        "with the true parameters (treatment model, hazard ratio) and the counts of the "
                                        "injected dirt and of the timing anomalies real deliveries have (fills and "
                                        "claims after death, claims outside coverage, first fills on the study's "
                                        "last day).")
    p.add_argument("--layout", choices=LAYOUTS, required=True)
    p.add_argument("--patients", type=int, required=True, help="number of synthetic persons")
    p.add_argument("--seed", type=int, default=42, help="same seed, same files (default 42)")
    p.add_argument("--out", required=True, help="folder for the raw files")
    p.add_argument("--dirty-rate", type=float, default=0.002,
                   help="share of rows made dirty like real extracts (duplicates, bad dates, …); default 0.002")
    p.add_argument("--format", choices=("csv", "fixed-width"), default="csv",
                   help="csv (default), or fixed-width: gzipped fixed-record-length text plus a SAS layout "
                        "(INFILE/INPUT) per table, as NCI ships SEER-Medicare")
    spark_options(p)
    p.set_defaults(handler=cmd_synth)

    p = commands.add_parser("ingest", help="load raw files into the lakehouse (bronze, quarantine, silver)",
                            description="Load a folder of raw files of one layout into Delta tables: bronze/<raw table> "
                                        "as delivered, quarantine/<raw table> for rows that cannot be typed, and the "
                                        "canonical silver/ tables. Prints counts in/out/quarantined per table.")
    p.add_argument("--layout", choices=LAYOUTS, required=True)
    p.add_argument("--raw", required=True,
                   help="folder with the raw files: CSV (.csv, .csv.gz), Parquet, fixed-width text (.txt, .dat, "
                        "gzipped or not) with a SAS layout <table>*.sas beside it, or SAS datasets (.sas7bdat, .xpt)")
    p.add_argument("--lake", default=DEFAULT_LAKE, help=f"lakehouse root (default {DEFAULT_LAKE})")
    p.add_argument("--mapping", help="a mapping YAML to use instead of the shipped one for the layout")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the bronze and silver quality gates (not for production runs)")
    spark_options(p)
    p.set_defaults(handler=cmd_ingest)

    p = commands.add_parser("tables", help="list the lakehouse's Delta tables with version and rows")
    p.add_argument("--lake", default=DEFAULT_LAKE)
    spark_options(p)
    p.set_defaults(handler=cmd_tables)

    p = commands.add_parser("history", help="show the versions of one table")
    p.add_argument("table", help="table name, e.g. silver/diagnosis")
    p.add_argument("--lake", default=DEFAULT_LAKE)
    spark_options(p)
    p.set_defaults(handler=cmd_history)

    p = commands.add_parser("build", help="build a cohort from the lakehouse's canonical tables",
                            description="Apply a cohort definition to the silver tables of a lakehouse and write "
                                        "cohorts/<cohort>/cohort, attrition (and events for time-varying designs) as "
                                        "Delta tables plus manifest.json; print the attrition. --out also exports "
                                        "cohort.parquet and attrition.csv.")
    p.add_argument("definition", metavar="DEF.yaml")
    p.add_argument("--lake", default=DEFAULT_LAKE, help=f"lakehouse root (default {DEFAULT_LAKE})")
    p.add_argument("--out", type=_out_folder, metavar="DIR", help="also export cohort.parquet and attrition.csv here")
    p.add_argument("--no-validate", action="store_true", help="skip the cohort quality gate")
    spark_options(p)
    p.set_defaults(handler=cmd_build)

    p = commands.add_parser("match", help="propensity-score match a built cohort: the landmark hand-off",
                            description="Fit the definition's propensity model on a built cohort, match (or weight) "
                                        "as its matching: section says, check balance (the 'matched' quality gate) "
                                        "and write matched.parquet, matched.csv, matched_events.parquet (time-varying "
                                        "designs), balance.csv, love_plot.png, matching.json and data_dictionary.md.")
    p.add_argument("definition", metavar="DEF.yaml")
    p.add_argument("--lake", default=DEFAULT_LAKE, help=f"lakehouse root (default {DEFAULT_LAKE})")
    p.add_argument("--out", type=_out_folder, required=True, metavar="DIR", help="folder for the hand-off files")
    p.add_argument("--no-validate", action="store_true", help="skip the matched quality gate (balance)")
    spark_options(p)
    p.set_defaults(handler=cmd_match)

    p = commands.add_parser("analyze", help="survival analysis and report of a matched cohort (no Spark)",
                            description="Read OUT's cohort.parquet and matched.parquet (from build --out and match) "
                                        "and write results.json, km.png and the report: OUT/analyst (every count, "
                                        "marked not for release) and OUT/release (small-cell rule applied, checked "
                                        "by disclosure-check), each with report.html, km.png, love_plot.png, the "
                                        "tables as CSV and study.json; OUT/report.html is the release report.")
    p.add_argument("definition", metavar="DEF.yaml")
    p.add_argument("--out", type=_out_folder, required=True, metavar="DIR", help="the folder build and match wrote")
    p.add_argument("--horizon", type=float, default=90, metavar="DAYS", help="risk horizon in days (default 90)")
    p.add_argument("--audience", choices=("analyst", "release", "both"), default="both",
                   help="the analyst view inside the secure environment, the release set, or both (default)")
    p.set_defaults(handler=cmd_analyze)

    p = commands.add_parser("disclosure-check", help="prove a release set shows no count of 1-10 (no Spark)",
                            description="Read a release folder (OUT/release, or OUT) as a reader would: its CSV "
                                        "tables, study.json and report.html. Exit 1 naming each file and cell that "
                                        "prints a count of 1-10 or lets a reader work one out through totals, "
                                        "differences, percentages or SMDs of 0/1 covariates; 0 when none does.")
    p.add_argument("folder", metavar="DIR", help="the release folder, or the study's OUT holding release/")
    p.set_defaults(handler=cmd_disclosure_check)

    p = commands.add_parser("run", help="build, validate, match and analyze one definition",
                            description="The whole study: build the cohort (with its quality gate), match "
                                        "(with the balance gate), analyze and write the report. OUT receives "
                                        "cohort.parquet, attrition.csv, matched.parquet, matched.csv, balance.csv, "
                                        "results.json, report.html (the release report), manifest.json and the "
                                        "plots, and the report's two sets: OUT/analyst (not for release) and "
                                        "OUT/release.")
    p.add_argument("definition", metavar="DEF.yaml")
    p.add_argument("--lake", default=DEFAULT_LAKE, help=f"lakehouse root (default {DEFAULT_LAKE})")
    p.add_argument("--out", type=_out_folder, required=True, metavar="DIR")
    p.add_argument("--horizon", type=float, default=90, metavar="DAYS", help="risk horizon in days (default 90)")
    p.add_argument("--raw", metavar="DIR", help="ingest these raw files first (with --layout)")
    p.add_argument("--layout", choices=LAYOUTS, help="the raw files' layout (with --raw)")
    p.add_argument("--mapping", help="a mapping YAML to use instead of the shipped one for the layout")
    p.add_argument("--no-validate", action="store_true", help="skip the quality gates (not for production runs)")
    spark_options(p)
    p.set_defaults(handler=cmd_run)

    p = commands.add_parser("validate", help="validate the lakehouse's tables with the expectation suites",
                            description="Run the Great Expectations suites of expectations/ against what the "
                                        "lakehouse holds: bronze (the ingested layout), silver, and every built "
                                        "cohort. Results go to _quality/results (Delta, with the table version "
                                        "validated); Data Docs to _quality/docs/index.html. Exit 1 when a "
                                        "critical expectation fails; warnings are reported.")
    p.add_argument("--lake", default=DEFAULT_LAKE, help=f"lakehouse root (default {DEFAULT_LAKE})")
    p.add_argument("--suite", action="append", metavar="NAME",
                   help="only this suite (repeatable), e.g. silver.enrollment or cohorts.<cohort>.cohort")
    p.add_argument("--counts", action="store_true",
                   help="record counts for every expectation, not only the failing ones (slower)")
    spark_options(p)
    p.set_defaults(handler=cmd_validate)

    p = commands.add_parser("bundle", help="zip the package for spark-submit --py-files",
                            description="Write the cohortlake package (code and package data) as one zip that "
                                        "spark-submit ships to the driver and the executors with --py-files. "
                                        "Its dependencies (pyproject.toml) must be installed on the cluster's Python.")
    p.add_argument("--out", default="dist/cohortlake.zip", metavar="FILE.zip", help="default dist/cohortlake.zip")
    p.set_defaults(handler=cmd_bundle)

    p = commands.add_parser("check", help="validate definitions, code-set and test-patient files (no Spark)",
                            description="Check cohort files without Spark, in about a second: definitions, shared "
                                        "code-set files and test-patient files, recognised by their keys. A folder "
                                        "means every .yaml file in it. Every problem of every file is reported as "
                                        "file:line: field: what is allowed (criteria numbered from 1 and named, "
                                        "as explain numbers them). Exit 1 when any file has a problem.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a definition, code-set or test-patient file, or a folder")
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (default), json (one object: files and problems), or github (workflow annotations)")
    p.add_argument("--codesets", action="append", metavar="DIR",
                   help="a code-set library searched after codesets/ beside each definition and before the shipped "
                        f"library (repeatable; default ${CODESETS_ENV_NAME})")
    p.set_defaults(handler=cmd_check)

    p = commands.add_parser("explain", help="print a cohort definition as readable Markdown (no Spark)",
                            description="Render a definition as Markdown a reader checks against the protocol: "
                                        "the code sets as tables, the index, the criteria numbered as attrition "
                                        "steps (check's messages number them the same way), exposures, arms, "
                                        "landmarks, follow-up, outcomes, covariates and matching, each rule in "
                                        "plain English with its defaults shown. A definition with problems is "
                                        "reported as check reports it.")
    p.add_argument("definition", metavar="DEF.yaml")
    p.add_argument("--codesets", action="append", metavar="DIR",
                   help="a code-set library searched after codesets/ beside the definition (repeatable)")
    p.set_defaults(handler=cmd_explain)

    p = commands.add_parser("schema", help="print the JSON Schema of cohort files, for editor completion",
                            description="Print the JSON Schema (draft 2020-12) of cohort definitions (default), "
                                        "shared code-set files or test-patient files. Save it and point your editor's "
                                        "YAML support at it (README: Editor completion) to get completion, hover "
                                        "help and red underlines while typing; check remains the authority.")
    p.add_argument("--kind", choices=("definition", "codesets", "tests"), default="definition",
                   help="which file's schema (default definition)")
    p.set_defaults(handler=cmd_schema)

    p = commands.add_parser("init", help="write a first definition, its code sets and test patients",
                            description="Scaffold NAME.yaml (a small cohort: first diagnosis, age, coverage, "
                                        "follow-up to death), codesets/NAME.yaml and tests/NAME.yaml in DIR. The "
                                        "three pass check and assure as written; edit them one rule at a time. "
                                        "Existing files are never overwritten.")
    p.add_argument("name", metavar="NAME", help="the cohort's name: lower-case letters, digits and _")
    p.add_argument("--dir", default=".", metavar="DIR", help="folder to write into (default: the current one)")
    p.set_defaults(handler=cmd_init)

    p = commands.add_parser("assure", help="run a definition's test patients and compare with their expected results",
                            description="Build the cohort over the test patients of a definition (default: "
                                        "tests/<definition file name> beside it) and print one line per patient: "
                                        "PASS or FAIL, its id and description, and for a failure the expected and "
                                        "actual values. Exit 0 when all pass, 1 when any fails or a file has a problem.")
    p.add_argument("definition", metavar="DEF.yaml")
    p.add_argument("--tests", metavar="FILE", help="the test-patient file (default: tests/<DEF file name> beside DEF)")
    spark_options(p)
    p.set_defaults(handler=cmd_assure)

    p = commands.add_parser("demo", help="run the pipeline end to end on synthetic data",
                            description="Generate synthetic SEER-Medicare files, ingest them into a local lakehouse, "
                                        "build the reference cohort (cohort_defs/hcc_sorafenib_landmark.yaml), "
                                        "match it, analyse survival, write the study report and print where each "
                                        "output is. The default size gives a cohort large enough for the balance "
                                        "gate (about 1,700 persons, 470 treated); small sets stop at matching.")
    p.add_argument("--lake", default=DEFAULT_LAKE, help=f"lakehouse root (default {DEFAULT_LAKE})")
    p.add_argument("--out", default=DEFAULT_STUDY_OUT, help=f"study outputs and report (default {DEFAULT_STUDY_OUT})")
    p.add_argument("--patients", type=int, default=DEMO_PATIENTS, help=f"synthetic persons (default {DEMO_PATIENTS:,})")
    p.add_argument("--no-study", action="store_true", help="stop after building the cohort (no matching or report)")
    p.add_argument("--seed", type=int, default=42)
    spark_options(p)
    p.set_defaults(handler=cmd_demo)

    p = commands.add_parser("survival", help="survival analysis of an analysis-ready CSV/Parquet file (no Spark)",
                            description="Kaplan-Meier by group (median and IQR, days and months), log-rank test, Cox "
                                        "hazard ratios (crude and adjusted, proportional-hazards check), risk by a "
                                        "horizon with risk ratios, and competing-risk cumulative incidence. Writes "
                                        "results.json and km.png (at-risk counts 1-10 shown as <11) to --out.")
    p.add_argument("--data", required=True, metavar="FILE", help="a .csv (with header) or .parquet file, one row a person")
    p.add_argument("--time", required=True, metavar="COL", help="follow-up time (>= 0), in --time-unit units")
    p.add_argument("--time-unit", choices=tuple(TIME_UNIT_DAYS), default="days",
                   help="unit of --time and --horizon: days (default), weeks, months (365.25/12 days) or years "
                        "(365.25 days); results are reported in days and months")
    p.add_argument("--event", required=True, metavar="COL", help="1 event, 0 censored")
    p.add_argument("--group", metavar="COL", help="the arms to compare (e.g. arm)")
    p.add_argument("--reference", metavar="LEVEL",
                   help="the group hazard and risk ratios compare against (default: first in sorted order)")
    p.add_argument("--covariates", metavar="A,B,C", help="adjust Cox and risk ratio for these columns; text columns "
                                                         "become indicators against their first level")
    p.add_argument("--horizon", type=float, metavar="T",
                   help="report risk by this time (in --time-unit units) with risk ratios (e.g. 90)")
    p.add_argument("--cluster", metavar="COL", help="cluster-robust variance on this column (the matched pair id); "
                                                    "rows where it is empty (psmatch's unmatched) are left out and counted")
    p.add_argument("--weights", metavar="COL", help="case weights (e.g. IPTW); robust variance for Cox and risk ratio; "
                                                    "rows of weight 0 (psmatch's unmatched) are left out and counted")
    p.add_argument("--event-type", metavar="COL",
                   help="0 censored, 1, 2, ... kinds of event: Aalen-Johansen cumulative incidence per kind")
    p.add_argument("--show-small-counts", action="store_true",
                   help="print at-risk counts 1-10 in km.png instead of <11 (not for anything leaving the lake)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for results.json and km.png")
    p.set_defaults(handler=cmd_survival)

    p = commands.add_parser("psmatch", help="propensity-score matching of a person-level CSV/Parquet file (no Spark)",
                            description="Fit a logistic propensity score of the treatment on the covariates, match "
                                        "treated to control persons greedily (default, as OHDSI CohortMethod: 1:1, "
                                        "no replacement, globally nearest pair first, caliper 0.2 SD of the logit) "
                                        "or weight them, and check balance. Writes matched.csv (every row + ps, "
                                        "match_id, weight), pairs.csv, balance.csv and love_plot.png to --out.")
    p.add_argument("--data", required=True, metavar="FILE", help="a .csv (with header) or .parquet file, one row a person")
    p.add_argument("--treatment", required=True, metavar="COL", help="the arm: 0/1, true/false or two text values")
    p.add_argument("--treated", metavar="VALUE", help="which value of a text treatment column is the treated arm")
    p.add_argument("--covariates", required=True, metavar="A,B,C",
                   help="propensity-model covariates; text columns become one indicator per level")
    p.add_argument("--method", choices=("greedy_nearest_neighbor", "iptw", "overlap_weights"),
                   default="greedy_nearest_neighbor", help="match (default) or weight")
    p.add_argument("--scale", choices=("logit", "probability"), default="logit",
                   help="match on logit(ps) (default) or ps")
    p.add_argument("--caliper", type=_caliper, default=0.2, metavar="SD|none",
                   help="largest distance, in SDs of the matching scale over all persons (default 0.2; inclusive)")
    p.add_argument("--ratio", type=_ratio, default=1, metavar="K", help="up to K controls per treated person (default 1)")
    p.add_argument("--replace", action="store_true", help="match with replacement")
    p.add_argument("--order", choices=("nearest", "largest", "smallest", "random", "data"), default="nearest",
                   help="who picks first: globally nearest pair (default, CohortMethod), largest/smallest PS, "
                        "random (needs --seed), data order")
    p.add_argument("--seed", type=int, metavar="S", help="seed of --order random")
    p.add_argument("--exact", metavar="A,B", help="match only within equal values of these columns")
    p.add_argument("--smd-denominator", choices=("pooled", "treated"), default="pooled",
                   help="SD dividing mean differences, from before matching (default pooled)")
    p.add_argument("--l2", type=float, default=0.0, metavar="LAMBDA", help="L2 penalty of the PS model (default 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    p.set_defaults(handler=cmd_psmatch)
    _add_examples(parser)
    return parser


EXAMPLES = {
    "synth": "cohortlake synth --layout seer-medicare --patients 1000 --out ./raw",
    "ingest": "cohortlake ingest --layout seer-medicare --raw ./raw --lake ./lakehouse",
    "tables": "cohortlake tables --lake ./lakehouse",
    "history": "cohortlake history silver/diagnosis --lake ./lakehouse",
    "build": "cohortlake build cohort_defs/hcc_sorafenib_landmark.yaml --lake ./lakehouse --out ./study",
    "match": "cohortlake match cohort_defs/hcc_sorafenib_landmark.yaml --lake ./lakehouse --out ./study",
    "analyze": "cohortlake analyze cohort_defs/hcc_sorafenib_landmark.yaml --out ./study",
    "disclosure-check": "cohortlake disclosure-check ./study",
    "run": "cohortlake run cohort_defs/hcc_sorafenib_landmark.yaml --lake ./lakehouse --out ./study",
    "validate": "cohortlake validate --lake ./lakehouse --suite silver.enrollment",
    "bundle": "cohortlake bundle --out dist/cohortlake.zip",
    "check": "cohortlake check cohort_defs/                  # every definition, code-set and test file\n"
             "  cohortlake check my_cohort.yaml --format github --codesets ~/shared/codesets",
    "explain": "cohortlake explain cohort_defs/hcc_sorafenib_landmark.yaml > hcc.md",
    "schema": "cohortlake schema > cohortlake.schema.json\n"
              "  cohortlake schema --kind codesets > cohortlake-codesets.schema.json",
    "init": "cohortlake init liver_first && cohortlake check liver_first.yaml",
    "assure": "cohortlake assure cohort_defs/hcc_sorafenib_landmark.yaml",
    "demo": "cohortlake demo --patients 50000",
    "survival": "cohortlake psmatch --data persons.csv --treatment treated --covariates age,sex --out ./ps\n"
                "  cohortlake survival --data ./ps/matched.csv --time time --event event --group treated "
                "--cluster match_id --weights weight --out ./km",
    "psmatch": "cohortlake psmatch --data persons.csv --treatment treated --covariates age,sex --out ./ps\n"
               "  cohortlake survival --data ./ps/matched.csv --time time --event event --group treated "
               "--cluster match_id --weights weight --out ./km   # the unmatched rows are left out",
}


def _add_examples(parser: argparse.ArgumentParser) -> None:
    """Every command's --help ends with an example."""
    for action in parser._subparsers._group_actions:
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            if not sub.description and helps.get(name):
                sub.description = helps[name][0].upper() + helps[name][1:] + "."
            if name in EXAMPLES:
                sub.formatter_class = argparse.RawDescriptionHelpFormatter
                sub.epilog = "example:\n  " + EXAMPLES[name]
                if sub.description:
                    import textwrap

                    sub.description = textwrap.fill(sub.description, 88)


def main(argv: list[str] | None = None) -> int:
    from cohortlake.progress import Progress

    args = build_parser().parse_args(argv)
    progress = Progress(quiet=args.quiet)
    try:
        return args.handler(args, progress)
    except UserError as error:
        report = getattr(error, "report", None)
        if report is not None:  # a quality gate: its table first, then the one-line reason
            print_quality(report, progress)
        print(f"cohortlake {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
