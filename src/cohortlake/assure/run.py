"""The one Spark runner of test patients: build the definition over them and compare."""

from __future__ import annotations

from pathlib import Path

from cohortlake.assure.compare import AssureReport, EngineRows, compare
from cohortlake.assure.load import AssureSuite, default_tests_path, load_suite
from cohortlake.assure.timeline import frames_from_rows
from cohortlake.errors import UserError


def _plain(row) -> dict:
    return row.asDict(recursive=True) if hasattr(row, "asDict") else dict(row)


def engine_rows(spark, suite: AssureSuite) -> EngineRows:
    """Build the suite's definition over all its patients at once (one engine run)."""
    from cohortlake.engine import build_cohort
    from cohortlake.lake.session import session_conf, size_conf

    # A few hundred rows: one shuffle partition instead of many near-empty tasks, and no
    # adaptive re-planning (on data this small it costs more than it saves: about 40%);
    # interpreted below the size rule's threshold, as a build from a lake.
    tables = suite.tables()
    largest = max((len(rows) for rows in tables.values()), default=0)
    with session_conf(spark, {"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false",
                              **size_conf(largest, "build")}):
        result = build_cohort(suite.definition, frames_from_rows(spark, tables))
        try:
            return EngineRows(
                cohort=[_plain(r) for r in result.cohort.collect()],
                flags=[_plain(r) for r in result.flags.collect()],
                events=[_plain(r) for r in result.events.collect()] if result.events is not None else None,
                steps={int(step): str(name) for step, name, *_ in result.attrition},
            )
        finally:
            release = getattr(result, "release", None)
            if release is not None:
                release()


def run_suite(spark, suite: AssureSuite) -> AssureReport:
    """Build the suite's definition over its patients and compare with their expectations."""
    return compare(suite, engine_rows(spark, suite))


def load(definition_path: str | Path, tests_path: str | Path | None = None) -> AssureSuite:
    """Read and check a definition and its test patients (default: tests/<same file name>); no Spark."""
    from cohortlake.spec.load import load_definition

    definition_path = Path(definition_path)
    tests_path = Path(tests_path) if tests_path else default_tests_path(definition_path)
    if not tests_path.is_file():
        raise UserError(f"{tests_path}: no test patients for {definition_path} (write them in "
                        f"{default_tests_path(definition_path)}, or give --tests FILE)")
    definition = load_definition(definition_path)
    return load_suite(tests_path, definition, definition_path=definition_path)


def run_assure(spark, definition_path: str | Path, tests_path: str | Path | None = None) -> AssureReport:
    """Run the test patients of a definition (default: cohort_defs/tests/<same file name>)."""
    return run_suite(spark, load(definition_path, tests_path))
