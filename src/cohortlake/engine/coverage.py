"""Coverage rules over enrollment spans, per episode, with window functions.

Each check turns into a small join of episodes with one coverage type's spans and a
window over the spans in date order; enrollment is a few rows per person, so these
stay cheap next to the claims scans. ``fee_for_service`` is the complement of ``hmo``:
its uncovered stretches are the (merged) hmo stretches.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.vocabulary import Coverage

EPISODE = list(columns.EPISODE)


@dataclass(frozen=True)
class CoverageCheck:
    """One coverage question per episode, answered into column ``column``.

    mode: ``require`` (no uncovered stretch in [lo, hi] longer than gap; holds when
    hi < lo), ``exclude`` (no day of the type in [lo, hi]), ``any`` (1 if a day of the
    type in [lo, hi], else 0) or ``run_end`` (last day of the gap-bridged run of the
    type containing ``start``; ``start`` itself when not covered then).
    """

    column: str
    mode: str
    coverage: Coverage
    lo: Column | None = None
    hi: Column | None = None
    gap: int = 0
    start: Column | None = None


def _spans(enrollment: DataFrame, coverage: str) -> DataFrame:
    return enrollment.where(F.col("coverage") == coverage).select(
        "person_id", F.col("start_date").alias("_s"), F.col("end_date").alias("_e")
    )


def _window_checks(checks: list[CoverageCheck], episodes: DataFrame, enrollment: DataFrame) -> DataFrame:
    """All window checks in one join of episodes with enrollment and one window pass.

    Per (episode, check): the spans of the check's type (hmo for fee_for_service)
    overlapping [lo, hi], clipped; from them the longest uncovered stretch, the number
    of overlapping spans and the longest run of consecutive covered days.
    """
    specs = F.array(*[
        F.struct(
            F.lit(check.column).alias("check"),
            F.lit("hmo" if check.coverage is Coverage.fee_for_service else check.coverage.value).alias("type"),
            check.lo.alias("lo"), check.hi.alias("hi"),
        )
        for check in checks
    ])
    windows = episodes.select(*EPISODE, F.explode(specs).alias("_c")).select(
        *EPISODE, "_c.check", "_c.type", F.col("_c.lo").alias("_lo"), F.col("_c.hi").alias("_hi")
    ).where(F.col("_lo").isNotNull() & F.col("_hi").isNotNull())
    spans = enrollment.select(
        F.col("person_id").alias("_pid"), F.col("coverage").alias("_type"),
        F.col("start_date").alias("_s"), F.col("end_date").alias("_e"),
    )
    rows = windows.join(
        spans,
        (F.col("person_id") == F.col("_pid")) & (F.col("type") == F.col("_type"))
        & (F.col("_s") <= F.col("_hi")) & (F.col("_e") >= F.col("_lo")),
        "left",
    )
    # greatest/least skip nulls: keep the no-span row's clipped bounds null.
    matched = F.col("_s").isNotNull()
    rows = rows.withColumn("_cs", F.when(matched, F.greatest("_s", "_lo"))).withColumn(
        "_ce", F.when(matched, F.least("_e", "_hi"))
    )
    key = [*EPISODE, "check", "_lo", "_hi"]
    order = Window.partitionBy(*EPISODE, "check").orderBy("_cs", "_ce")
    rows = rows.withColumn("_prev", F.max("_ce").over(order.rowsBetween(Window.unboundedPreceding, -1)))
    rows = rows.withColumn("_before", F.datediff("_cs", F.coalesce("_prev", F.date_sub("_lo", 1))) - 1)
    opens = (F.col("_prev").isNull() | (F.col("_cs") > F.date_add("_prev", 1))).cast("int")
    rows = rows.withColumn("_run_id", F.sum(opens).over(order.rowsBetween(Window.unboundedPreceding, 0)))
    runs = rows.groupBy(*key, "_run_id").agg(
        (F.datediff(F.max("_ce"), F.min("_cs")) + 1).alias("_length"), F.max("_before").alias("_before"),
        F.max("_ce").alias("_last"), F.count("_cs").alias("_n"),
    )
    summary = runs.groupBy(*key).agg(
        F.max("_length").alias("_run"), F.max("_before").alias("_inner"),
        F.max("_last").alias("_last"), F.sum("_n").alias("_n"),
    )
    uncovered = F.when(F.col("_n") == 0, F.datediff("_hi", "_lo") + 1).otherwise(
        F.greatest("_inner", F.datediff("_hi", "_last"))
    )
    summary = summary.select(
        *EPISODE, "check", (F.col("_hi") < F.col("_lo")).alias("_empty"), uncovered.alias("_uncovered"),
        F.coalesce("_run", F.lit(0)).alias("_run"), F.col("_n"),
    )
    answers = []
    for check in checks:
        empty, uncovered, run, n = F.col("_empty"), F.col("_uncovered"), F.col("_run"), F.col("_n")
        ffs = check.coverage is Coverage.fee_for_service
        if check.mode == "require":
            answer = empty | ((run <= check.gap) if ffs else (uncovered <= check.gap))
        elif check.mode == "exclude":  # fee_for_service excluded: every day is an hmo day
            answer = empty | ((uncovered <= 0) if ffs else (n == 0))
        elif check.mode == "any":  # fee_for_service: some day outside hmo
            answer = F.when(empty, 0).when((uncovered > 0) if ffs else (n > 0), 1).otherwise(0)
        else:
            raise ValueError(f"unknown coverage mode {check.mode}")
        answers.append(F.max(F.when(F.col("check") == check.column, answer)).alias(check.column))
    return summary.groupBy(*EPISODE).agg(*answers)


def _run_end(check: CoverageCheck, episodes: DataFrame, enrollment: DataFrame) -> DataFrame:
    starts = episodes.select(*EPISODE, check.start.alias("_fs")).where(F.col("_fs").isNotNull())
    ffs = check.coverage is Coverage.fee_for_service
    spans = _spans(enrollment, "hmo" if ffs else check.coverage.value)
    order = Window.partitionBy("person_id").orderBy("_s", "_e")
    previous = F.max("_e").over(order.rowsBetween(Window.unboundedPreceding, -1))
    # Runs of the type: spans joined while the uncovered days between them are <= gap
    # (for hmo, the uncovered side of fee-for-service: contiguous hmo days).
    bridge = 0 if ffs else check.gap
    spans = spans.withColumn("_prev", previous)
    opens = (F.col("_prev").isNull() | (F.datediff("_s", "_prev") - 1 > bridge)).cast("int")
    spans = spans.withColumn("_run_id", F.sum(opens).over(order.rowsBetween(Window.unboundedPreceding, 0)))
    runs = spans.groupBy("person_id", "_run_id").agg(F.min("_s").alias("_rs"), F.max("_e").alias("_re"))
    runs = runs.withColumnRenamed("person_id", "_pid")
    if not ffs:
        joined = starts.join(
            runs, (F.col("person_id") == F.col("_pid")) & (F.col("_rs") <= F.col("_fs")) & (F.col("_re") >= F.col("_fs")), "left"
        )
        return joined.groupBy(*EPISODE, "_fs").agg(F.max("_re").alias("_re")).select(
            *EPISODE, F.coalesce("_re", "_fs").alias(check.column)
        )
    # Fee-for-service ends before the first hmo run longer than the gap that ends on or
    # after the start; such a run covering the start means not covered at the start.
    long_runs = runs.where(F.datediff("_re", "_rs") + 1 > check.gap)
    joined = starts.join(long_runs, (F.col("person_id") == F.col("_pid")) & (F.col("_re") >= F.col("_fs")), "left")
    first = joined.groupBy(*EPISODE, "_fs").agg(F.min("_rs").alias("_rs"))
    end = F.when(F.col("_rs").isNull(), F.lit(None).cast("date")).when(F.col("_rs") <= F.col("_fs"), F.col("_fs")).otherwise(
        F.date_sub("_rs", 1)
    )
    return first.select(*EPISODE, end.alias(check.column))


def answer_checks(episodes: DataFrame, enrollment: DataFrame, checks: list[CoverageCheck]) -> DataFrame | None:
    """One row per episode with index, one column per check (left to be joined back)."""
    if not checks:
        return None
    window_checks = [c for c in checks if c.mode != "run_end"]
    result = _window_checks(window_checks, episodes, enrollment) if window_checks else None
    for check in checks:
        if check.mode == "run_end":
            frame = _run_end(check, episodes, enrollment)
            result = frame if result is None else result.join(frame, EPISODE, "full")
    return result
