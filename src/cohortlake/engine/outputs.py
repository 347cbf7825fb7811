"""The cohort's output columns built from the compiled rules: landmarks, outcomes, the counting-process rows."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.spec.model import Definition


def landmark_date(definition: Definition) -> Column:
    """The follow-up's landmark (or the first landmark) date; empty without landmarks."""
    start = definition.followup.start
    if isinstance(start, str) and start != "index":
        return F.col(columns.landmark_day(start))
    if definition.landmarks:
        return F.col(columns.landmark_day(definition.landmarks[0].name))
    return F.lit(None).cast("date")


def outcome_columns(definition: Definition, dates: dict[str, Column]) -> tuple[list[tuple[str, Column]], Column, Column]:
    """(name, column) of each outcome's date, event and time, and the cohort's event and time_days."""
    start, end = F.col("followup_start"), F.col("followup_end")
    out: list[tuple[str, Column]] = []
    for outcome in definition.outcomes:
        own = dates[outcome.name]
        competitors = [dates[name] for name in outcome.competing]
        rival = (F.least(*competitors) if len(competitors) > 1 else competitors[0]) if competitors else F.lit(None).cast("date")
        status = F.when(own.isNotNull() & (rival.isNull() | (own <= rival)), 1).when(rival.isNotNull(), 2).otherwise(0)
        until = F.when(status == 1, own).when(status == 2, rival).otherwise(end)
        date_name, event_name, time_name = columns.outcome_columns(outcome.name)
        out += [(date_name, own), (event_name, status.cast("int")), (time_name, F.datediff(until, start).cast("int"))]
    if definition.outcomes:
        _, event_name, time_name = columns.outcome_columns(definition.outcomes[0].name)
        return out, F.col(event_name), F.col(time_name)
    death = F.col(columns.DEATH_DATE)
    died = death.between(start, end)
    event = F.when(died, 1).otherwise(0).cast("int")
    return out, event, F.datediff(F.when(died, death).otherwise(end), start).cast("int")


def time_varying_rows(cohort: DataFrame, names: list[str]) -> DataFrame:
    """Counting-process rows: follow-up cut at each covariate's switch day."""
    time = F.col("time_days")
    day = {n: F.col(columns.switch_day(n)) for n in names}
    switch_days = [
        F.when(F.col(columns.switch_date(n)).isNotNull()
               & (F.datediff(F.col(columns.switch_date(n)), F.col("followup_start")) < time),
               F.datediff(F.col(columns.switch_date(n)), F.col("followup_start")))
        for n in names
    ]
    # Counting-process rows need stop_day > start_day (R's survival and lifelines reject anything
    # else), so an episode with no follow-up, or 0 days of it, has no rows.
    rows = cohort.where(time.isNotNull() & (time > 0)).select(
        "person_id", "index_date", "event", "time_days",
        *[switch.alias(columns.switch_day(n)) for n, switch in zip(names, switch_days)],
    )
    cuts = F.array_sort(F.array_distinct(F.filter(F.array(*day.values()), lambda x: x.isNotNull())))
    rows = rows.withColumn(columns.CUTS, F.concat(F.array(F.lit(0)), cuts, F.array(time)))
    intervals = F.transform(
        F.sequence(F.lit(0), F.greatest(F.size(columns.CUTS) - 2, F.lit(0))),
        lambda i: F.struct(F.element_at(columns.CUTS, i + 1).alias("start_day"),
                           F.element_at(columns.CUTS, i + 2).alias("stop_day")),
    )
    rows = rows.withColumn(columns.INTERVAL, F.explode(intervals)).select(
        "person_id", "index_date", "event", "time_days", *day.values(),
        F.col(f"{columns.INTERVAL}.start_day").alias("start_day"), F.col(f"{columns.INTERVAL}.stop_day").alias("stop_day"),
    )
    last = F.col("stop_day") == F.col("time_days")
    return rows.select(
        "person_id", "index_date", "start_day", "stop_day",
        F.when(last, F.col("event")).otherwise(0).cast("int").alias("event"),
        *[F.when(day[n].isNotNull() & (day[n] <= F.col("start_day")), 1).otherwise(0).alias(n) for n in names],
    )
