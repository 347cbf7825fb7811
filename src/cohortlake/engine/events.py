"""The build's inputs and the tagged events: each claims table scanned once for every code set any rule reads."""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cohortlake.engine.codes import EVENT_SCHEMA, TableNeed, tag_events
from cohortlake.engine.rules.base import Read
from cohortlake.spec.model import Definition
from cohortlake.vocabulary import EventTable


class Inputs:
    """The canonical tables of a build (name → DataFrame; a missing one reads as empty) and what it persisted."""

    def __init__(self, frames: dict[str, DataFrame]):
        self.frames = frames
        self.spark: SparkSession = next(iter(frames.values())).sparkSession
        self.persisted: list[DataFrame] = []

    def table(self, name: str) -> DataFrame:
        from cohortlake.sources.canonical import SCHEMAS

        if name in self.frames:
            return self.frames[name]
        return self.spark.createDataFrame([], SCHEMAS[name])

    def persist(self, frame: DataFrame) -> DataFrame:
        frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        self.persisted.append(frame)
        return frame

    def release(self) -> None:
        """Drop everything this build persisted."""
        for frame in self.persisted:
            frame.unpersist()
        self.persisted.clear()


def tagged_events(inputs: Inputs, definition: Definition, reads: tuple[Read, ...],
                  persons: DataFrame | None = None) -> DataFrame:
    """Rows of the claims tables in any code set the rules read (one scan each), persisted.

    ``persons`` (a ``person_id`` column), when given, keeps only their rows: every rule reads
    the tagged events of an episode with an index date and nothing else, so when the index is
    known before tagging (``IndexRule.tables_only``) the other persons' rows are not persisted
    nor aggregated. The ids are broadcast to the scan's tasks (a hash lookup per tagged row;
    at 1,000,000 patients about 300,000 ids).
    """
    per_table: dict[EventTable, dict[str, object]] = {}
    for read in reads:
        for table in read.tables:
            for name in read.codesets:
                per_table.setdefault(table, {})[name] = definition.codeset(name)
    frames = [
        tag_events(inputs.table(table.value), TableNeed(table, tuple(sets.values())))
        for table, sets in sorted(per_table.items())
    ]
    if not frames:
        return inputs.spark.createDataFrame([], EVENT_SCHEMA)
    events = frames[0]
    for frame in frames[1:]:
        events = events.unionByName(frame)
    if persons is not None:
        events = events.join(F.broadcast(persons), "person_id", "left_semi")
    return inputs.persist(events)
