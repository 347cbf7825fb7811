"""Arms: whether an episode's arm rule holds and its first exposure date (first rule that holds wins)."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.engine.eras import regimen_label
from cohortlake.engine.rules.base import ERAS, EVENTS, Context, Needs, in_window, record_condition, rule, window_bounds
from cohortlake.spec.model import Arm


@dataclass(frozen=True)
class ArmRule:
    """An arm's test, the first exposure date it gives, and its needs."""

    holds: Column
    first_date: Column
    needs: Needs = Needs()


@rule(Arm, "otherwise")
def otherwise(context: Context, arm: Arm) -> ArmRule:
    return ArmRule(F.lit(True), F.lit(None).cast("date"))


@rule(Arm, "exposure_start")
def exposure_start(context: Context, arm: Arm) -> ArmRule:
    spec = arm.rule
    exposure = context.definition.exposures[spec.exposure]
    _, _, inside = in_window(spec.window)
    first, needs = context.aggregated(EVENTS, "record", F.min(F.when(record_condition(exposure) & inside, F.col("date"))))
    return ArmRule(first.isNotNull(), first, needs)


@rule(Arm, "era_duration")
def era_duration(context: Context, arm: Arm) -> ArmRule:
    spec = arm.rule
    first = (F.col("exposure") == spec.exposure) & (F.col("era_start") >= F.col("index_date"))
    start, starts = context.aggregated(ERAS, "start", F.min(F.when(first, F.col("era_start"))))
    end, ends = context.aggregated(ERAS, "end", F.min_by(F.col("era_end"), F.when(first, F.col("era_start"))))
    duration = F.datediff(end, start) + 1
    holds = start.isNotNull()
    if spec.min_days is not None:
        holds = holds & (duration >= spec.min_days)
    if spec.max_days is not None:
        holds = holds & (duration <= spec.max_days)
    return ArmRule(holds, start, starts + ends)


@rule(Arm, "era_on_at")
def era_on_at(context: Context, arm: Arm) -> ArmRule:
    spec = arm.rule
    day = F.col(columns.landmark_day(spec.landmark))
    covering = (F.col("exposure") == spec.exposure) & (F.col("era_start") <= day) & (F.col("era_end") >= day)
    start, needs = context.aggregated(ERAS, "start", F.min(F.when(covering, F.col("era_start"))))
    return ArmRule(start.isNotNull(), start, needs)


@rule(Arm, "regimen")
def regimen(context: Context, arm: Arm) -> ArmRule:
    spec = arm.rule
    lo, hi = window_bounds(spec.window)
    starts = (F.col("exposure") == regimen_label(spec.name)) & F.col("era_start").between(lo, hi)
    start, needs = context.aggregated(ERAS, "start", F.min(F.when(starts, F.col("era_start"))))
    return ArmRule(start.isNotNull(), start, needs)
