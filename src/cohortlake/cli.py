"""The ``cohortlake`` command line: the parser and one short handler per command.

The work is done elsewhere: the pipeline's steps in :mod:`cohortlake.pipeline`, the
``--py-files`` zip in :mod:`cohortlake.bundle`, the option types and examples in
:mod:`cohortlake.cli_options`. Every other import is inside a handler, so ``--help`` and
``check`` start no Spark.

Exit codes scripts can rely on: 0 done, 1 a problem with the input or the environment
(one message on stderr, no trace), 2 a usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cohortlake import __version__
from cohortlake.cli_options import (
    CANCER_SITES, CODESETS_ENV_NAME, DEFAULT_LAKE, DEFAULT_STUDY_OUT, DEMO_CANCER_SITE, DEMO_PATIENTS, FORMATS,
    LAYOUTS, TIME_UNIT_DAYS, add_examples, caliper, column_list, matching_default, out_folder, ratio, values,
)
from cohortlake.errors import UserError


def _spark(args):
    from cohortlake.lake.session import get_spark

    return get_spark(f"cohortlake-{args.command}", master=getattr(args, "master", None))


def _lake(args, spark):
    from cohortlake.lake.delta import Lakehouse

    return Lakehouse(args.lake, spark)


def cmd_synth(args, progress) -> int:
    from cohortlake.synth import check_arguments, generate, layout_options

    # what the user typed is checked before Spark starts (generate checks it again)
    check_arguments(args.layout, args.out, args.patients, args.seed, args.dirty_rate)
    layout_options(args.layout, args.format, args.cancer_site)
    spark = _spark(args)
    with progress.step(f"synth {args.layout}") as step:
        summary = generate(spark, args.layout, args.out, args.patients, args.seed, dirty_rate=args.dirty_rate,
                           file_format=args.format, cancer_site=args.cancer_site)
        total = sum(t["rows"] for t in summary["files"].values())
        step["detail"] = f"{args.patients:,} patients, {total:,} rows in {len(summary['files'])} tables"
    for table, info in summary["files"].items():
        progress.info(f"  {table:<28} {info['rows']:>12,} rows  {len(info['files'])} file(s)")
    progress.info(f"raw files and truth.json written to {args.out}")
    return 0


def cmd_ingest(args, progress) -> int:
    from cohortlake import pipeline

    lake = _lake(args, _spark(args))
    report = pipeline.ingest(lake, args.layout, args.raw, progress, args.mapping, validate=not args.no_validate)
    progress.info(f"manifest: {report.manifest_path}")
    pipeline.write_quality_page(lake, progress)
    return 0


def cmd_validate(args, progress) -> int:
    from cohortlake.pipeline import print_quality, write_quality_page
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
    from cohortlake.lake.layout import raw_dir
    from cohortlake.pipeline import DEMO_LAYOUT, demo
    from cohortlake.synth import check_arguments

    lake_dir = Path(args.lake).resolve()
    # what the user typed is checked before Spark starts, as for `synth` (generate checks it
    # again); the dirty rate is the generator's own, not the user's, so any valid one will do
    check_arguments(DEMO_LAYOUT, raw_dir(str(lake_dir), DEMO_LAYOUT), args.patients, args.seed, dirty_rate=0.0)
    lake = _lake(args, _spark(args))
    demo(lake, lake_dir, progress, patients=args.patients, seed=args.seed,
         study=None if args.no_study else str(Path(args.out).resolve()), cancer_site=args.cancer_site)
    return 0


def cmd_build(args, progress) -> int:
    from cohortlake.spec import load_definition

    from cohortlake.pipeline import build

    load_definition(args.definition)  # a bad definition fails before Spark starts
    build(args.definition, _lake(args, _spark(args)), args.out, progress, validate=not args.no_validate)
    return 0


def cmd_match(args, progress) -> int:
    from cohortlake.pipeline import match
    from cohortlake.spec import load_definition

    definition = load_definition(args.definition)
    match(definition, _lake(args, _spark(args)), args.out, progress, validate=not args.no_validate)
    return 0


def cmd_analyze(args, progress) -> int:
    from cohortlake.pipeline import AUDIENCES, analyze, print_reports
    from cohortlake.spec import load_definition

    definition = load_definition(args.definition)
    audiences = AUDIENCES if args.audience == "both" else (args.audience,)
    _, reports = analyze(definition, args.out, progress, args.horizon, audiences)
    print_reports(reports, progress)
    return 0


def cmd_disclosure_check(args, progress) -> int:
    from cohortlake.cells import SMALL_CELL_MAX
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
        print(f"cohortlake disclosure-check: {len(leaks)} way(s) to a count of 1-{SMALL_CELL_MAX} in {folder}: "
              "not for release", file=sys.stderr)
        return 1
    print(f"{folder}: no count of 1-{SMALL_CELL_MAX} is printed or can be derived "
          "(totals, differences, percentages, SMDs)")
    return 0


def cmd_run(args, progress) -> int:
    """build → validate → match → analyze, every output in OUT and a manifest of the run."""
    from cohortlake.pipeline import run_study
    from cohortlake.spec import load_definition

    if bool(args.raw) != bool(args.layout):
        raise UserError("--raw and --layout go together: the raw files to ingest first, and their layout")
    definition = load_definition(args.definition)
    run_study(definition, _lake(args, _spark(args)), args.out, progress, horizon=args.horizon, raw=args.raw,
              layout_name=args.layout, mapping=args.mapping, validate=not args.no_validate)
    return 0


def cmd_bundle(args, progress) -> int:
    from cohortlake.bundle import write_bundle, write_driver_log_config

    try:
        path, count = write_bundle(args.out)
    except ValueError as error:
        raise UserError(str(error)) from None
    log_config = write_driver_log_config(path.parent)
    progress.info(f"wrote {path} ({count} files, {path.stat().st_size:,} bytes) and {log_config}")
    progress.info(f"submit with: spark-submit --py-files {path} --driver-java-options "
                  f"-Dlog4j2.configurationFile={log_config} jobs/run_study.py DEF.yaml --lake URI --out DIR")
    return 0


def cmd_check(args, progress) -> int:
    import os

    from cohortlake.spec.check import check_paths, render
    from cohortlake.spec.library import CODESETS_ENV

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
    from cohortlake.assure import load, run_suite

    suite = load(args.definition, args.tests)  # both files read and checked before Spark starts
    spark = _spark(args)
    with progress.step(f"assure {suite.definition.cohort}") as step:
        report = run_suite(spark, suite)
        step["detail"] = f"{len(report.results)} test patients, {len(report.failures)} failed"
    print(report.render())
    return 0 if report.passed else 1


def cmd_survival(args, progress) -> int:
    from cohortlake.survival import render_summary, run_survival

    covariates = column_list(args.covariates)
    with progress.step("survival") as step:
        results, results_path, plot_path = run_survival(
            args.data, args.out, args.time, args.event, args.group, covariates, cluster=args.cluster,
            weights=args.weights, horizon=args.horizon, event_type=args.event_type, reference_group=args.reference,
            suppress_small=not args.show_small_counts, time_unit=args.time_unit)
        step["detail"] = f"{results.n:,} persons, {results.events:,} events"
    left_out = results.input.left_out_unmatched
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


def cmd_psmatch(args, progress) -> int:
    from pydantic import ValidationError

    from cohortlake.matching import MatchingSettings, read_persons, run_psmatch
    from cohortlake.spec.matching import MATCHING_ONLY

    covariates = column_list(args.covariates)
    if not covariates:
        raise UserError("--covariates names no column")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"{args.out}: --out must be a folder; a file of that name exists")
    options = {"scale": args.scale, "caliper": args.caliper, "ratio": args.ratio, "replacement": args.replace,
               "order": args.order, "seed": args.seed, "exact": tuple(column_list(args.exact)),
               "smd_denominator": args.smd_denominator, "l2": args.l2}
    if args.method != "greedy_nearest_neighbor":  # matching options left at their defaults do not apply
        defaults = {k: matching_default(k) for k in MATCHING_ONLY}
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
    from cohortlake.cells import SMALL, SMALL_CELL_MAX
    from cohortlake.spec.matching import Method, Order, Scale, SmdDenominator

    parser = argparse.ArgumentParser(
        prog="cohortlake",
        description="Declarative cohorts over Medicare claims: raw files → Delta lakehouse → cohorts, "
                    "built with Spark. Start with 'cohortlake demo'.",
    )
    parser.add_argument("--version", action="version", version=f"cohortlake {__version__}")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # Options several commands share, each spelled once.
    lake_option = argparse.ArgumentParser(add_help=False)
    lake_option.add_argument("--lake", default=DEFAULT_LAKE, help=f"lakehouse root (default {DEFAULT_LAKE})")
    spark_option = argparse.ArgumentParser(add_help=False)
    spark_option.add_argument("--master", help="Spark master URL (default: local[*], or the one spark-submit gives)")

    p = commands.add_parser("synth", parents=[spark_option], help="write synthetic raw files in a layout",
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
    p.add_argument("--cancer-site", choices=CANCER_SITES, default=CANCER_SITES[0],
                   help="seer-medicare: all (default; five cancer sites, a third of persons with liver cancer) or "
                        "liver (the liver cancer file: every person has a liver tumor), as NCI ships the data by "
                        "cancer site")
    p.set_defaults(handler=cmd_synth)

    p = commands.add_parser("ingest", parents=[lake_option, spark_option],
                            help="load raw files into the lakehouse (bronze, quarantine, silver)",
                            description="Load a folder of raw files of one layout into Delta tables: bronze/<raw table> "
                                        "as delivered, quarantine/<raw table> for rows that cannot be typed, and the "
                                        "canonical silver/ tables. Prints counts in/out/quarantined per table.")
    p.add_argument("--layout", choices=LAYOUTS, required=True)
    p.add_argument("--raw", required=True,
                   help="folder with the raw files: CSV (.csv, .csv.gz), Parquet, fixed-width text (.txt, .dat, "
                        "gzipped or not) with a SAS layout <table>*.sas beside it, or SAS datasets (.sas7bdat, .xpt)")
    p.add_argument("--mapping", help="a mapping YAML to use instead of the shipped one for the layout")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the bronze and silver quality gates (not for production runs)")
    p.set_defaults(handler=cmd_ingest)

    p = commands.add_parser("tables", parents=[lake_option, spark_option],
                            help="list the lakehouse's Delta tables with version and rows")
    p.set_defaults(handler=cmd_tables)

    p = commands.add_parser("history", parents=[lake_option, spark_option], help="show the versions of one table")
    p.add_argument("table", help="table name, e.g. silver/diagnosis")
    p.set_defaults(handler=cmd_history)

    p = commands.add_parser("build", parents=[lake_option, spark_option],
                            help="build a cohort from the lakehouse's canonical tables",
                            description="Apply a cohort definition to the silver tables of a lakehouse and write "
                                        "cohorts/<cohort>/cohort, attrition (and events for time-varying designs) as "
                                        "Delta tables plus manifest.json; print the attrition. --out also exports "
                                        "cohort.parquet and attrition.csv.")
    p.add_argument("definition", metavar="DEF.yaml")
    p.add_argument("--out", type=out_folder, metavar="DIR", help="also export cohort.parquet and attrition.csv here")
    p.add_argument("--no-validate", action="store_true", help="skip the cohort quality gate")
    p.set_defaults(handler=cmd_build)

    p = commands.add_parser("match", parents=[lake_option, spark_option],
                            help="propensity-score match a built cohort: the landmark hand-off",
                            description="Fit the definition's propensity model on a built cohort, match (or weight) "
                                        "as its matching: section says, check balance (the 'matched' quality gate) "
                                        "and write matched.parquet, matched.csv, matched_events.parquet (time-varying "
                                        "designs), balance.csv, love_plot.png, matching.json and data_dictionary.md.")
    p.add_argument("definition", metavar="DEF.yaml")
    p.add_argument("--out", type=out_folder, required=True, metavar="DIR", help="folder for the hand-off files")
    p.add_argument("--no-validate", action="store_true", help="skip the matched quality gate (balance)")
    p.set_defaults(handler=cmd_match)

    p = commands.add_parser("analyze", help="survival analysis and report of a matched cohort (no Spark)",
                            description="Read OUT's cohort.parquet and matched.parquet (from build --out and match) "
                                        "and write results.json, km.png and the report: OUT/analyst (every count, "
                                        "marked not for release) and OUT/release (small-cell rule applied, checked "
                                        "by disclosure-check), each with report.html, km.png, love_plot.png, the "
                                        "tables as CSV and study.json; OUT/report.html is the release report.")
    p.add_argument("definition", metavar="DEF.yaml")
    p.add_argument("--out", type=out_folder, required=True, metavar="DIR", help="the folder build and match wrote")
    p.add_argument("--horizon", type=float, default=90, metavar="DAYS", help="risk horizon in days (default 90)")
    p.add_argument("--audience", choices=("analyst", "release", "both"), default="both",
                   help="the analyst view inside the secure environment, the release set, or both (default)")
    p.set_defaults(handler=cmd_analyze)

    p = commands.add_parser("disclosure-check",
                            help=f"prove a release set shows no count of 1-{SMALL_CELL_MAX} (no Spark)",
                            description="Read a release folder (OUT/release, or OUT) as a reader would: its CSV "
                                        "tables, study.json and report.html. Exit 1 naming each file and cell that "
                                        f"prints a count of 1-{SMALL_CELL_MAX} or lets a reader work one out through "
                                        "totals, "
                                        "differences, percentages or SMDs of 0/1 covariates; 0 when none does.")
    p.add_argument("folder", metavar="DIR", help="the release folder, or the study's OUT holding release/")
    p.set_defaults(handler=cmd_disclosure_check)

    p = commands.add_parser("run", parents=[lake_option, spark_option],
                            help="build, validate, match and analyze one definition",
                            description="The whole study: build the cohort (with its quality gate), match "
                                        "(with the balance gate), analyze and write the report. OUT receives "
                                        "cohort.parquet, attrition.csv, matched.parquet, matched.csv, balance.csv, "
                                        "results.json, report.html (the release report), manifest.json and the "
                                        "plots, and the report's two sets: OUT/analyst (not for release) and "
                                        "OUT/release.")
    p.add_argument("definition", metavar="DEF.yaml")
    p.add_argument("--out", type=out_folder, required=True, metavar="DIR")
    p.add_argument("--horizon", type=float, default=90, metavar="DAYS", help="risk horizon in days (default 90)")
    p.add_argument("--raw", metavar="DIR", help="ingest these raw files first (with --layout)")
    p.add_argument("--layout", choices=LAYOUTS, help="the raw files' layout (with --raw)")
    p.add_argument("--mapping", help="a mapping YAML to use instead of the shipped one for the layout")
    p.add_argument("--no-validate", action="store_true", help="skip the quality gates (not for production runs)")
    p.set_defaults(handler=cmd_run)

    p = commands.add_parser("validate", parents=[lake_option, spark_option],
                            help="validate the lakehouse's tables with the expectation suites",
                            description="Run the Great Expectations suites of expectations/ against what the "
                                        "lakehouse holds: bronze (the ingested layout), silver, and every built "
                                        "cohort. Results go to _quality/results (Delta, with the table version "
                                        "validated); Data Docs to _quality/docs/index.html. Exit 1 when a "
                                        "critical expectation fails; warnings are reported.")
    p.add_argument("--suite", action="append", metavar="NAME",
                   help="only this suite (repeatable), e.g. silver.enrollment or cohorts.<cohort>.cohort")
    p.add_argument("--counts", action="store_true",
                   help="record counts for every expectation, not only the failing ones (slower)")
    p.set_defaults(handler=cmd_validate)

    p = commands.add_parser("bundle", help="zip the package for spark-submit --py-files",
                            description="Write the cohortlake package (code and package data) as one zip that "
                                        "spark-submit ships to the driver and the executors with --py-files. "
                                        "Its dependencies (pyproject.toml) must be installed on the cluster's Python. "
                                        "Beside it goes cohortlake-log4j2.properties, the driver's log settings "
                                        "(Spark's warnings without its start-up notices), for --driver-java-options.")
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

    p = commands.add_parser("assure", parents=[spark_option],
                            help="run a definition's test patients and compare with their expected results",
                            description="Build the cohort over the test patients of a definition (default: "
                                        "tests/<definition file name> beside it) and print one line per patient: "
                                        "PASS or FAIL, its id and description, and for a failure the expected and "
                                        "actual values. Exit 0 when all pass, 1 when any fails or a file has a problem.")
    p.add_argument("definition", metavar="DEF.yaml")
    p.add_argument("--tests", metavar="FILE", help="the test-patient file (default: tests/<DEF file name> beside DEF)")
    p.set_defaults(handler=cmd_assure)

    p = commands.add_parser("demo", parents=[lake_option, spark_option],
                            help="run the pipeline end to end on synthetic data",
                            description="Generate synthetic SEER-Medicare files, ingest them into a local lakehouse, "
                                        "build the reference cohort (cohort_defs/hcc_sorafenib_landmark.yaml), "
                                        "match it, analyse survival, write the study report and print where each "
                                        "output is. The default, the liver cancer file of 10,000 persons, gives a "
                                        "study the size of the published one (a cohort of about 950 persons, 250 "
                                        "treated, matched and balanced); small sets stop at matching.")
    p.add_argument("--out", default=DEFAULT_STUDY_OUT, help=f"study outputs and report (default {DEFAULT_STUDY_OUT})")
    p.add_argument("--patients", type=int, default=DEMO_PATIENTS, help=f"synthetic persons (default {DEMO_PATIENTS:,})")
    p.add_argument("--no-study", action="store_true", help="stop after building the cohort (no matching or report)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--cancer-site", choices=CANCER_SITES, default=DEMO_CANCER_SITE,
                   help=f"which SEER-Medicare file to generate (default {DEMO_CANCER_SITE}: the liver cancer file, "
                        "as a liver cancer study requests it; all: five cancer sites)")
    p.set_defaults(handler=cmd_demo)

    p = commands.add_parser("survival", help="survival analysis of an analysis-ready CSV/Parquet file (no Spark)",
                            description="Kaplan-Meier by group (median and IQR, days and months), log-rank test, Cox "
                                        "hazard ratios (crude and adjusted, proportional-hazards check), risk by a "
                                        "horizon with risk ratios, and competing-risk cumulative incidence. Writes "
                                        f"results.json and km.png (at-risk counts 1-{SMALL_CELL_MAX} shown as "
                                        f"{SMALL}) to --out.")
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
                   help=f"print at-risk counts 1-{SMALL_CELL_MAX} in km.png instead of {SMALL} "
                        "(not for anything leaving the lake)")
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
    p.add_argument("--method", choices=values(Method), default=matching_default("method"),
                   help="match (default) or weight")
    p.add_argument("--scale", choices=values(Scale), default=matching_default("scale"),
                   help="match on logit(ps) (default) or ps")
    p.add_argument("--caliper", type=caliper, default=matching_default("caliper"), metavar="SD|none",
                   help="largest distance, in SDs of the matching scale over all persons "
                        f"(default {matching_default('caliper')}; inclusive)")
    p.add_argument("--ratio", type=ratio, default=matching_default("ratio"), metavar="K",
                   help=f"up to K controls per treated person (default {matching_default('ratio')})")
    p.add_argument("--replace", action="store_true", help="match with replacement")
    p.add_argument("--order", choices=values(Order), default=matching_default("order"),
                   help="who picks first: globally nearest pair (default, CohortMethod), largest/smallest PS, "
                        "random (needs --seed), data order")
    p.add_argument("--seed", type=int, metavar="S", help="seed of --order random")
    p.add_argument("--exact", metavar="A,B", help="match only within equal values of these columns")
    p.add_argument("--smd-denominator", choices=values(SmdDenominator), default=matching_default("smd_denominator"),
                   help="SD dividing mean differences, from before matching (default pooled)")
    p.add_argument("--l2", type=float, default=matching_default("l2"), metavar="LAMBDA",
                   help=f"L2 penalty of the PS model (default {matching_default('l2'):g})")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    p.set_defaults(handler=cmd_psmatch)
    add_examples(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cohortlake.progress import Progress

    args = build_parser().parse_args(argv)
    progress = Progress(quiet=args.quiet)
    try:
        return args.handler(args, progress)
    except UserError as error:
        report = getattr(error, "report", None)
        if report is not None:  # a quality gate: its table first, then the one-line reason
            from cohortlake.pipeline import print_quality

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
