"""Follow-up end reasons: each gives the date it ends follow-up; the earliest wins."""

from __future__ import annotations

from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.engine.coverage import CoverageCheck
from cohortlake.engine.rules.base import ERAS, Compiled, Context, Needs, first, rule
from cohortlake.spec.model import FollowupEnd


@rule(FollowupEnd, "death")
def death(context: Context, end: FollowupEnd) -> Compiled:
    return Compiled(F.col(columns.DEATH_DATE))


@rule(FollowupEnd, "study_end")
def study_end(context: Context, end: FollowupEnd) -> Compiled:
    return Compiled(F.lit(context.definition.study_period.end))


@rule(FollowupEnd, "coverage_end")
def coverage_end(context: Context, end: FollowupEnd) -> Compiled:
    spec = end.rule
    start = F.col(columns.FOLLOWUP_START)
    checks = tuple(
        CoverageCheck(columns.coverage_answer(context.scope, "run_end", kind.value), "run_end", kind,
                      gap=spec.allowed_gap_days, start=start)
        for kind in spec.require
    )
    return Compiled(first([F.col(check.column) for check in checks]), Needs(coverage=checks))


@rule(FollowupEnd, "exposure_end")
def exposure_end(context: Context, end: FollowupEnd) -> Compiled:
    spec = end.rule
    start = F.col(columns.FOLLOWUP_START)
    until = F.date_add(F.col("era_end"), spec.grace_days)
    current = (F.col("exposure") == spec.exposure) & (F.col("era_start") <= start) & (until >= start)
    last, needs = context.aggregated(ERAS, "until", F.max(F.when(current, until)))
    return Compiled(F.coalesce(last, start), needs)
