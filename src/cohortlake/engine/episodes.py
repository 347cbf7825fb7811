"""Episodes: the population with its index date(s), the person's fields, anchors and follow-up start."""

from __future__ import annotations

from pydantic import BaseModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.engine.columns import EPISODE
from cohortlake.engine.events import Inputs
from cohortlake.engine.rules.base import anchor_column
from cohortlake.spec.model import Definition, ExposurePoint


def population(inputs: Inputs, index_rows: DataFrame) -> DataFrame:
    """The population (person table ∪ indexed persons), one row per episode, with birth, sex, race and death."""
    persons = inputs.table("person").select("person_id").unionByName(index_rows.select("person_id")).distinct()
    indexed = index_rows.withColumn(columns.HAS_INDEX, F.lit(True))
    episodes = persons.join(indexed, "person_id", "left").withColumn(
        columns.HAS_INDEX, F.coalesce(F.col(columns.HAS_INDEX), F.lit(False))
    )
    person = inputs.table("person").groupBy("person_id").agg(
        F.first("birth_date").alias(columns.BIRTH_DATE), F.first("sex").alias(columns.SEX),
        F.first("race").alias(columns.RACE),
    )
    death = inputs.table("death").groupBy("person_id").agg(F.min("death_date").alias(columns.DEATH_DATE))
    return episodes.join(person, "person_id", "left").join(death, "person_id", "left")


def exposure_points(definition: Definition) -> set[str]:
    """Exposures used as anchors (landmark from, window relative_to, follow-up start)."""
    points: set[str] = set()

    def visit(value) -> None:
        if isinstance(value, ExposurePoint):
            points.add(value.exposure)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                visit(getattr(value, name))

    visit(definition)
    return points


def with_anchors(definition: Definition, episodes: DataFrame, eras: DataFrame | None) -> DataFrame:
    """Exposure points (first era on or after index), landmark dates and the follow-up start."""
    points = sorted(exposure_points(definition))
    if points:
        aggregates = []
        for name in points:
            first_from_index = (F.col("exposure") == name) & (F.col("era_start") >= F.col("index_date"))
            start, end = (ExposurePoint(exposure=name, at=at) for at in ("start", "end"))
            aggregates.append(F.min(F.when(first_from_index, F.col("era_start"))).alias(columns.exposure_point(start)))
            aggregates.append(F.min_by(F.col("era_end"), F.when(first_from_index, F.col("era_start")))
                              .alias(columns.exposure_point(end)))
        joined = episodes.where(F.col("index_date").isNotNull()).select(*EPISODE).join(eras, "person_id")
        episodes = episodes.join(joined.groupBy(*EPISODE).agg(*aggregates), list(EPISODE), "left")
    # One projection: a follow-up that starts at a landmark takes the landmark's expression
    # (a landmark's own anchor is never another landmark: spec/references.py).
    days = {landmark.name: F.date_add(anchor_column(landmark.from_), landmark.days)
            for landmark in definition.landmarks}
    start = definition.followup.start
    start_day = days[start] if isinstance(start, str) and start != "index" else anchor_column(start)
    return episodes.withColumns({**{columns.landmark_day(name): day for name, day in days.items()},
                                 columns.FOLLOWUP_START: start_day})
