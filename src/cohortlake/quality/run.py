"""Validate lake tables with their suites, keep the results in the lake, build Data Docs, gate.

Every validation reads one Delta version of a table, runs its suite with Great
Expectations on Spark, and appends one row per expectation to the Delta table
``_quality/results`` (with the table's version). GX's own store and the Data Docs site
live beside it: ``_quality/gx/`` and ``_quality/docs/index.html``.

Cost: GX bundles the aggregate metrics of a suite into a handful of Spark jobs per
table (all column checks of a table share one aggregation). What GX's default result
format adds per expectation (an example-values query each, plus plan building on the
driver) roughly doubles the time of a wide raw table, so the first pass asks only
pass/fail (``BOOLEAN_ONLY``) and only the expectations that failed run a second time
for their counts and up to 20 example values. ``counts=True`` (``validate --counts``)
records counts for every expectation instead.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from concurrent.futures import ThreadPoolExecutor

from cohortlake.environment import whole_number
from cohortlake.errors import UserError
from cohortlake.lake.layout import QUALITY_DIR, RESULTS_TABLE
from cohortlake.lake.session import job_description, session_conf
from cohortlake.quality.suites import SuiteFile

DOCS_SITE = "cohortlake"
DOCS_INDEX_RUNS = 500
EXAMPLES = 20
PASS_FAIL = {"result_format": "BOOLEAN_ONLY"}
COUNTS_ONLY = {"result_format": "BASIC", "partial_unexpected_count": 0}
WITH_EXAMPLES = {"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES}
# GX bundles a table's row checks into one aggregation with a column per expectation;
# Spark's default gives up whole-stage code generation above 100 columns, and the
# interpreted aggregation over a wide claims table was the largest part of a gate.
WIDE_AGGREGATION_CONF = {"spark.sql.codegen.maxFields": "1000"}
VALIDATION_THREADS = 3  # COHORTLAKE_VALIDATION_THREADS overrides it, read when a gate runs


def validation_threads() -> int:
    """How many suites run at once (``COHORTLAKE_VALIDATION_THREADS``, default 3)."""
    return whole_number("COHORTLAKE_VALIDATION_THREADS", VALIDATION_THREADS, minimum=1)


def preload_great_expectations() -> threading.Thread:
    """Import GX in a background thread (about 5 s) so a gate later in the run finds it loaded."""
    def load() -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations  # noqa: F401

    thread = threading.Thread(target=load, name="preload-great-expectations", daemon=True)
    thread.start()
    return thread


class QualityGateError(UserError):
    """A critical expectation failed: the pipeline stops here."""

    def __init__(self, message: str, report: "GateReport"):
        super().__init__(message)
        self.report = report


@dataclass
class Target:
    """One suite against one lake table (its latest version)."""

    suite: SuiteFile
    table: str
    parameters: dict = field(default_factory=dict)
    views: dict[str, str] = field(default_factory=dict)
    """Spark temp views the suite's queries use: view name → lake table."""


@dataclass
class Outcome:
    """The result of one expectation."""

    expectation: str
    column: str | None
    severity: str
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    mostly: float | None = None
    observed: str | None = None
    examples: list = field(default_factory=list)
    notes: str | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.expectation}({self.column})" if self.column else self.expectation

    def failing(self) -> str:
        """How it failed, in words with the failing count."""
        if self.error:
            return f"could not be evaluated: {self.error}"
        if self.unexpected_count is not None:
            text = f"{self.unexpected_count:,} unexpected"
            if self.element_count is not None:
                text += f" of {self.element_count:,} rows"
            if self.unexpected_percent is not None:
                text += f" ({self.unexpected_percent:.3g}%"
                text += f"; at most {100 * (1 - self.mostly):.3g}% allowed)" if self.mostly is not None and self.mostly < 1 else ")"
            return text
        if self.expectation == "unexpected_rows_expectation":
            return f"{self.observed} unexpected rows"
        return f"observed {self.observed}"


@dataclass
class SuiteRun:
    suite: str
    table: str
    version: int | None
    outcomes: list[Outcome]
    seconds: float
    page: str | None = None

    @property
    def critical_failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "critical"]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "critical"]


@dataclass
class GateReport:
    stage: str
    run_id: str
    runs: list[SuiteRun]
    docs_index: str

    @property
    def critical_failures(self) -> list[tuple[SuiteRun, Outcome]]:
        return [(r, o) for r in self.runs for o in r.critical_failures]

    @property
    def warnings(self) -> list[tuple[SuiteRun, Outcome]]:
        return [(r, o) for r in self.runs for o in r.warnings]

    @property
    def passed(self) -> bool:
        return not self.critical_failures

    def lines(self) -> list[str]:
        """One line per suite, then every failure."""
        out = []
        for run in self.runs:
            state = "FAIL" if run.critical_failures else ("WARN" if run.warnings else "PASS")
            ok = sum(o.success for o in run.outcomes)
            version = f"v{run.version}" if run.version is not None else "-"
            out.append(f"{state}  {run.suite:<42} {run.table}@{version}  {ok}/{len(run.outcomes)} met  {run.seconds:.1f} s")
        for run, outcome in self.critical_failures + self.warnings:
            out.append(f"  {outcome.severity}: {run.suite}: {outcome.label}: {outcome.failing()}")
        return out

    def raise_for_critical(self) -> None:
        failures = self.critical_failures
        if not failures:
            return
        listed = "; ".join(f"{run.suite}: {outcome.label}: {outcome.failing()}" for run, outcome in failures[:5])
        more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
        raise QualityGateError(
            f"quality gate '{self.stage}' failed: {len(failures)} critical expectation"
            f"{'s' if len(failures) > 1 else ''} not met: {listed}{more}. Data Docs: {self.docs_index}", self)


class QualityRunner:
    """Runs suites for one lakehouse; one GX file context per runner, reused for every suite."""

    def __init__(self, lake, progress=None, counts: bool = False, examples: bool = True):
        from cohortlake.progress import Progress

        self.lake = lake
        self.counts = counts
        self.examples = examples
        self.progress = progress or Progress(quiet=True)
        self.root = Path(lake.root) / QUALITY_DIR  # the lake normalises file:// roots to paths
        self._context = None
        self._source = None

    @property
    def docs_index(self) -> str:
        return str(self.root / "docs" / "index.html")

    def context(self):
        if self._context is None:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            self.root.mkdir(parents=True, exist_ok=True)
            context = gx.get_context(mode="file", project_root_dir=str(self.root))
            context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            context.variables.analytics_enabled = False
            site = {"class_name": "SiteBuilder", "show_how_to_buttons": False,
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": "../docs/"},
                    # The index links the latest runs; every run's page stays on disk and every
                    # result in _quality/results. Unbounded, each build re-read all past results.
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                           "validation_results_limit": DOCS_INDEX_RUNS}}
            sites = context.list_data_docs_sites()
            for name in [n for n in sites if n != DOCS_SITE]:
                context.delete_data_docs_site(name)
            if DOCS_SITE in sites:
                context.update_data_docs_site(DOCS_SITE, site)
            else:
                context.add_data_docs_site(DOCS_SITE, site)
            # The project uses no config variables. Left configured, GX re-parses that
            # YAML file through one shared, thread-unsafe parser every time a validator
            # is made, and suites validate from several threads.
            reopen = context.variables.config_variables_file_path is not None
            context.variables.config_variables_file_path = None
            context.variables.save()
            if reopen:
                context = gx.get_context(mode="file", project_root_dir=str(self.root))
            self._context = context
        return self._context

    def validate(self, stage: str, targets: list[Target], gate: bool = True) -> GateReport:
        """Run every target, store the results, rebuild the docs; raise when a critical one failed.

        Suites are prepared one after the other (GX's project files are not written
        concurrently), then run from a few threads so one table's driver-side work (GX's
        metric graph, Spark planning) overlaps another's Spark jobs. Suites with SQL row
        queries run one after another in a single worker: GX registers every such batch
        under the same temp view name.
        """
        run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        prepared = [self._prepare(stage, target) for target in targets]

        def execute(item) -> tuple[SuiteRun, object]:
            with self.progress.step(f"validate {item['target'].table}") as step:
                run, identifier = self._execute(stage, item, run_id)
                state = "FAIL" if run.critical_failures else ("WARN" if run.warnings else "PASS")
                step["detail"] = f"{state}: {sum(o.success for o in run.outcomes)}/{len(run.outcomes)} met ({run.suite})"
            return run, identifier

        done: dict[int, tuple[SuiteRun, object]] = {}
        alone = [i for i, item in enumerate(prepared) if item["queries"]]
        shared = [i for i in range(len(prepared)) if i not in alone]
        def execute_alone() -> None:
            for i in alone:
                done[i] = execute(prepared[i])

        with session_conf(self.lake.spark, WIDE_AGGREGATION_CONF):
            with ThreadPoolExecutor(max_workers=validation_threads(), thread_name_prefix="validate") as pool:
                # The suites with SQL queries run one after another in one worker, beside the others.
                sequence = pool.submit(execute_alone) if alone else None
                for i, result in zip(shared, pool.map(lambda i: execute(prepared[i]), shared)):
                    done[i] = result
                if sequence is not None:
                    sequence.result()
        runs = [done[i][0] for i in range(len(prepared))]
        identifiers = [done[i][1] for i in range(len(prepared))]
        report = GateReport(stage, run_id, runs, self.docs_index)
        if runs:
            self._store(report)
            self._build_docs(report, identifiers)
        if gate:
            report.raise_for_critical()
        return report

    # --- one suite ---------------------------------------------------------------------

    def _prepare(self, stage: str, target: Target) -> dict:
        """Read the table's latest version, put the suite and batch definition in GX."""
        import great_expectations as gx

        lake = self.lake
        version = lake.version(target.table)
        if version is None:
            raise UserError(f"{lake.root}: no table {target.table} to validate with suite {target.suite.name}")
        # Not cached on purpose: each of GX's jobs reads only the columns it checks from
        # Parquet, which measured cheaper than materialising a wide text table in memory.
        frame = lake.read(target.table, version)
        expectations, skipped = self._expectations(target.suite, frame.columns)
        suite = self._store_suite(gx.ExpectationSuite(
            name=target.suite.name, expectations=expectations, notes=target.suite.notes,
            meta={"cohortlake": {"stage": stage, "table": target.table, "file": Path(target.suite.path).name}}))
        queries = any(e.type == "unexpected_rows_expectation" for e in suite.expectation_configurations)
        return {"target": target, "version": version, "frame": frame, "suite": suite, "skipped": skipped,
                "batch": self._batch_definition(target.table), "queries": queries}

    def _store_suite(self, suite):
        """The project's copy of a suite, replaced only when the suite file changed.

        GX's own add_or_update compares expectations pairwise (quadratic: 2.4 s for the
        75 expectations of the MBSF suite); one comparison of their plain content is enough.
        """
        from great_expectations.exceptions import DataContextError

        context = self.context()
        try:
            stored = context.suites.get(suite.name)
        except DataContextError:
            stored = None
        if stored is not None and _suite_content(stored) == _suite_content(suite):
            return stored
        if stored is not None:
            context.suites.delete(suite.name)
        return context.suites.add(suite)

    def _execute(self, stage: str, item: dict, run_id: str):
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        started = time.monotonic()
        target, version, suite = item["target"], item["version"], item["suite"]
        spark = self.lake.spark
        # Only SQL queries read views, and those suites run one at a time: registering here
        # (not in _prepare) keeps two cohorts' `cohort_rows` from replacing each other.
        for view, table in (target.views.items() if item["queries"] else ()):
            self.lake.read(table).createOrReplaceTempView(view)
        with job_description(spark, f"validate {target.table} with {target.suite.name}"):
            results, batch_id = self._validate_suite(suite, item["batch"], item["frame"], target.parameters)
        run_time = datetime.now(timezone.utc)
        run_name = f"{target.table.replace('/', '.')}.v{version}"
        results.meta.update({
            "run_id": RunIdentifier(run_name=run_name, run_time=run_time), "validation_time": run_time,
            "cohortlake": {"run_id": run_id, "stage": stage, "table": target.table, "delta_version": version,
                           "skipped_missing_optional_columns": item["skipped"]},
        })
        identifier = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
            run_id=results.meta["run_id"], batch_identifier=batch_id)
        self.context().validation_results_store.set(identifier, results)
        outcomes = [_outcome(r) for r in results.results]
        return SuiteRun(target.suite.name, target.table, version, outcomes, time.monotonic() - started), identifier

    def _validate_suite(self, suite, batch, frame, parameters):
        """The suite's validation result, computing each metric as few times as possible.

        Row-by-row (map) expectations are asked pass/fail first and, when they failed, again
        for counts and examples; the others (SQL row queries, aggregates) cost the same
        whatever the format, so they are asked for their full result once.
        """
        import great_expectations as gx
        from great_expectations.expectations.expectation import (
            ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation,
        )
        from great_expectations.validator.v1_validator import Validator
        from great_expectations.validator.validation_statistics import calc_validation_statistics

        map_types = (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)

        def run(expectations, result_format):
            if not expectations:
                return None, []
            validator = Validator(batch_definition=batch, batch_parameters={"dataframe": frame}, result_format=result_format)
            configurations = [e if not hasattr(e, "configuration") else e.configuration for e in expectations]
            part = validator.validate_expectation_suite(gx.ExpectationSuite(name=suite.name, expectations=configurations), parameters)
            return validator, part

        row_checks = [e for e in suite.expectations if isinstance(e, map_types)]
        others = [e for e in suite.expectations if not isinstance(e, map_types)]
        first, row_part = run(row_checks, COUNTS_ONLY if self.counts else PASS_FAIL)
        second, other_part = run(others, COUNTS_ONLY)
        by_id = {r.expectation_config.id: r for part in (row_part, other_part) if part for r in part.results}
        failed = [r.expectation_config for r in (row_part.results if row_part else []) if not r.success and not _error(r)]
        if failed and (self.examples or not self.counts):
            # Second pass, failed row checks only: counts and example values for the message and the report.
            _, detail = run(failed, WITH_EXAMPLES)
            by_id.update({r.expectation_config.id: r for r in detail.results})
        ordered = [by_id[e.id] for e in suite.expectations]
        results = row_part or other_part
        statistics = calc_validation_statistics(ordered)
        results.results = ordered
        results.success = statistics.success
        results.statistics = {
            "evaluated_expectations": statistics.evaluated_expectations,
            "successful_expectations": statistics.successful_expectations,
            "unsuccessful_expectations": statistics.unsuccessful_expectations,
            "success_percent": statistics.success_percent,
        }
        return results, (first or second).active_batch_id

    def _expectations(self, suite: SuiteFile, columns: list[str]):
        """GX expectation objects of a suite file; optional columns absent from the table are skipped."""
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        present = set(columns)
        chosen, skipped = [], []
        for i, spec in enumerate(suite.expectations):
            kwargs = dict(spec.get("kwargs", {}))
            meta = dict(spec.get("meta") or {})
            column = kwargs.get("column")
            if column is not None and column not in present and meta.get("optional_column"):
                skipped.append(column)
                continue
            try:
                configuration = ExpectationConfiguration(
                    type=spec["type"], kwargs=kwargs, meta=meta, notes=spec.get("notes"),
                    severity=spec.get("severity", "critical"),
                    description=spec.get("description"))
                chosen.append(configuration.to_domain_obj())
            except Exception as error:  # GX raises several kinds for a bad expectation
                raise UserError(f"{suite.path}: expectations[{i}] ({spec['type']}): {error}") from None
        return chosen, skipped

    def _batch_definition(self, table: str):
        context = self.context()
        # One data source per runner: re-adding it would drop the assets other suites are using.
        if self._source is None:
            try:
                source = context.data_sources.get("lakehouse")
            except (KeyError, LookupError, ValueError):
                source = None
            # GX persists every batch by default: caching a whole wide raw table costs
            # more than all its checks (measured: 48 of 73 s on the 100k MBSF table),
            # while uncached each bundled query reads just the columns it checks.
            if source is not None and source.persist:
                context.data_sources.delete("lakehouse")
                source = None
            if source is None:
                source = context.data_sources.add_spark("lakehouse", persist=False)
            self._source = source
        source = self._source
        asset_name = table.replace("/", ".")
        try:
            asset = source.get_asset(asset_name)
        except LookupError:
            asset = source.add_dataframe_asset(asset_name)
        try:
            return asset.get_batch_definition("whole table")
        except KeyError:
            return asset.add_batch_definition_whole_dataframe("whole table")

    # --- results and docs --------------------------------------------------------------

    def _store(self, report: GateReport) -> None:
        from pyspark.sql.types import (
            BooleanType, DoubleType, LongType, StringType, StructField, StructType, TimestampType,
        )

        schema = StructType([
            StructField("run_id", StringType(), False), StructField("validated_at", TimestampType(), False),
            StructField("stage", StringType(), False), StructField("suite", StringType(), False),
            StructField("table", StringType(), False), StructField("table_version", LongType(), True),
            StructField("expectation", StringType(), False), StructField("column", StringType(), True),
            StructField("severity", StringType(), False), StructField("success", BooleanType(), False),
            StructField("element_count", LongType(), True), StructField("unexpected_count", LongType(), True),
            StructField("unexpected_percent", DoubleType(), True), StructField("observed", StringType(), True),
            StructField("examples", StringType(), True), StructField("error", StringType(), True),
        ])
        now = datetime.now(timezone.utc)
        rows = [
            (report.run_id, now, report.stage, run.suite, run.table, run.version, o.expectation, o.column, o.severity,
             bool(o.success), o.element_count, o.unexpected_count, o.unexpected_percent, o.observed,
             json.dumps(o.examples, default=str) if o.examples else None, o.error)
            for run in report.runs for o in run.outcomes
        ]
        self.lake.write(RESULTS_TABLE, self.lake.spark.createDataFrame(rows, schema),
                        mode="append" if self.lake.exists(RESULTS_TABLE) else "overwrite")

    def _build_docs(self, report: GateReport, identifiers) -> None:
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

        from cohortlake.quality.offline import make_offline
        from cohortlake.quality.page import record_gate

        context = self.context()
        # Only this run's pages (and their suites' pages) are rendered; the index lists every run.
        suites = {ExpectationSuiteIdentifier(name=run.suite) for run in report.runs}
        started = time.time()
        context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=[*identifiers, *suites])
        # GX's pages load scripts, styles and a logo from public hosts: point them at local copies.
        make_offline(self.root / "docs", since=started - 1)
        for run, identifier in zip(report.runs, identifiers):
            urls = context.get_docs_sites_urls(resource_identifier=identifier, site_name=DOCS_SITE, only_if_exists=False)
            if urls and urls[0].get("site_url"):
                run.page = os.path.normpath(urls[0]["site_url"].removeprefix("file://"))
        record_gate(self.root, report)  # the gate's summary, read by the quality page


def _error(result) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return info.get("exception_message") or "error"
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return value.get("exception_message") or "error"
    return None


def _outcome(result) -> Outcome:
    config = result.expectation_config
    kwargs = config.kwargs
    details = result.result or {}
    column = kwargs.get("column") or (", ".join(kwargs["column_list"]) if kwargs.get("column_list") else None)
    if column is None and kwargs.get("column_A"):
        column = f"{kwargs['column_A']}, {kwargs['column_B']}"
    if column is None and config.description:
        column = config.description
    observed = details.get("observed_value")
    examples = details.get("partial_unexpected_list") or []
    if not examples and isinstance(details.get("details"), dict):
        examples = (details["details"].get("unexpected_rows") or [])[:EXAMPLES]
    severity = config.severity.value if hasattr(config.severity, "value") else str(config.severity)
    return Outcome(
        expectation=config.type, column=column, severity=severity, success=bool(result.success),
        element_count=details.get("element_count"), unexpected_count=details.get("unexpected_count"),
        unexpected_percent=details.get("unexpected_percent"), mostly=kwargs.get("mostly"),
        observed=None if observed is None else str(observed), examples=list(examples)[:EXAMPLES],
        notes=config.notes if isinstance(config.notes, str) else None, error=_error(result))


def _suite_content(suite) -> str:
    """A suite's meaning without GX's generated ids, for comparing two versions of it."""
    def plain(expectation):
        configuration = expectation.configuration.to_json_dict()
        configuration.pop("id", None)
        return configuration

    return json.dumps({"meta": suite.meta, "notes": suite.notes,
                       "expectations": [plain(e) for e in suite.expectations]}, sort_keys=True, default=str)
