"""Exposure records → eras, and regimens, with window functions only (no UDFs).

Non-stockpiling eras: a record opens a new era when it starts more than ``grace_days``
after the largest end of all earlier records (earlier eras ended before the current
one began, so that maximum is the current era's end).

Stockpiling: record i really starts at ``max(date_i, end_{i-1} + 1)``, so
``end_i = max(date_i + days_i − 1, end_{i-1} + days_i)``. Unrolled, that max-plus
recurrence is ``end_i = S_i + max_{j ≤ i}(date_j − 1 − S_{j−1})`` with ``S`` the
running sum of days: a running sum and a running max, both plain window aggregates.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cohortlake.spec.model import Definition, Exposure, ExposureSource

ERA_COLUMNS = ("person_id", "exposure", "era_start", "era_end")


def regimen_label(name: str) -> str:
    """The ``exposure`` value of a regimen's eras."""
    return f"regimen:{name}"


def exposure_records(events: DataFrame, name: str, exposure: Exposure) -> DataFrame:
    """(person_id, exposure, date, days) records of one exposure from the tagged events."""
    sets = [str(s) for s in exposure.codesets]
    if exposure.source is ExposureSource.dispensing:
        supply = exposure.days_supply
        days = (
            F.when(F.col("days_supply").isNull() | (F.col("days_supply") < supply.min), F.lit(supply.default))
            .when(F.col("days_supply") > supply.max, F.lit(supply.max))
            .otherwise(F.col("days_supply"))
        )
        rows = events.where((F.col("table") == "dispensing") & F.col("codeset").isin(sets))
        rows = rows.select("person_id", "row_key", "date", days.cast("int").alias("days")).dropDuplicates(["person_id", "row_key"])
        return rows.select("person_id", F.lit(name).alias("exposure"), "date", "days", "row_key")
    settings = [str(s) for s in exposure.record_settings()]
    rows = events.where(
        (F.col("table") == "procedure") & F.col("codeset").isin(sets) & F.col("setting").isin(settings)
    ).select("person_id", "date").distinct()
    return rows.select(
        "person_id", F.lit(name).alias("exposure"), "date",
        F.lit(exposure.administration_days).cast("int").alias("days"), F.xxhash64("date").alias("row_key"),
    )


def eras_of(records: DataFrame, exposure: Exposure) -> DataFrame:
    """Collapse one exposure's records into eras (person_id, exposure, era_start, era_end)."""
    order = Window.partitionBy("person_id").orderBy("date", "days", "row_key")
    before = order.rowsBetween(Window.unboundedPreceding, -1)
    upto = order.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    grace = exposure.grace_days
    if exposure.stockpiling:
        # Days since the epoch keep the arithmetic in integers.
        rows = records.withColumn("_supply", F.sum("days").over(upto))
        rows = rows.withColumn("_offset", F.max(F.unix_date("date") - 1 - (F.col("_supply") - F.col("days"))).over(upto))
        rows = rows.withColumn("_end", F.date_from_unix_date((F.col("_supply") + F.col("_offset")).cast("int")))
        previous_end = F.lag("_end").over(order)
    else:
        rows = records.withColumn("_end", F.date_add("date", F.col("days") - 1))
        previous_end = F.max("_end").over(before)
    rows = rows.withColumn("_previous_end", previous_end)
    opens = F.col("_previous_end").isNull() | (F.col("date") > F.date_add("_previous_end", grace))
    rows = rows.withColumn("_opens", opens.cast("int"))
    rows = rows.withColumn("_era", F.sum("_opens").over(upto))
    return rows.groupBy("person_id", "exposure", "_era").agg(
        F.min("date").alias("era_start"), F.max("_end").alias("era_end")
    ).select(*ERA_COLUMNS)


def regimen_eras(eras: DataFrame, name: str, anchor: str, partners: tuple[str, ...], within_days: int) -> DataFrame:
    """Anchor eras with a partner era starting within ±within_days; labelled regimen:<name>."""
    anchor_eras = eras.where(F.col("exposure") == anchor).select("person_id", "era_start", "era_end")
    partner_starts = eras.where(F.col("exposure").isin(list(partners))).select(
        "person_id", F.col("era_start").alias("_partner_start")
    )
    joined = anchor_eras.join(partner_starts, "person_id").where(
        F.abs(F.datediff("_partner_start", "era_start")) <= within_days
    )
    return joined.select(
        "person_id", F.lit(regimen_label(name)).alias("exposure"), "era_start", "era_end"
    ).distinct()


def all_eras(definition: Definition, events: DataFrame) -> DataFrame | None:
    """Eras of every exposure, plus regimen eras (exposure = 'regimen:<name>')."""
    if not definition.exposures:
        return None
    frames = [
        eras_of(exposure_records(events, name, exposure), exposure)
        for name, exposure in definition.exposures.items()
    ]
    eras = frames[0]
    for frame in frames[1:]:
        eras = eras.unionByName(frame)
    for name, regimen in definition.regimens.items():
        eras = eras.unionByName(regimen_eras(eras, name, regimen.anchor, tuple(regimen.with_), regimen.within_days))
    return eras
