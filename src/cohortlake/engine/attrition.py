"""Attrition from one histogram: how many leading steps each person's best episode passes."""

from __future__ import annotations

from dataclasses import dataclass
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.engine import columns


def with_depth(episodes: DataFrame, flags: list[Column]) -> DataFrame:
    """Each step's flag as a column (``columns.step_flag``), and the depth: how many leading flags hold."""
    names = [columns.step_flag(number) for number in range(1, len(flags) + 1)]
    depth, passed = F.lit(0), F.lit(True)
    for name in names:
        passed = passed & F.col(name)
        depth = depth + F.when(passed, 1).otherwise(0)
    # two projections: the depth reads the flags by name
    flagged = episodes.withColumns({name: F.coalesce(flag, F.lit(False)) for name, flag in zip(names, flags)})
    return flagged.withColumn(columns.DEPTH, depth)


@dataclass(frozen=True)
class Attrition:
    """The step names and the histogram person count by depth (their deepest episode)."""

    names: tuple[str, ...]
    histogram: dict[int, int]

    @classmethod
    def of(cls, episodes: DataFrame, names: list[str]) -> Attrition:
        """One job: per person the deepest episode, then the count of persons per depth."""
        per_person = episodes.groupBy("person_id").agg(F.max(columns.DEPTH).alias("depth"))
        counts = per_person.groupBy("depth").agg(F.count("*").alias("n")).collect()
        return cls(tuple(names), {row["depth"]: row["n"] for row in counts})

    def rows(self) -> list[tuple[int, str, int, int]]:
        """(step, name, persons remaining, persons excluded): step 0 the population, then each step."""
        population = sum(self.histogram.values())
        rows = [(0, columns.POPULATION_STEP, population, 0)]
        previous = population
        for number, name in enumerate(self.names, 1):
            remaining = sum(n for depth, n in self.histogram.items() if depth >= number)
            rows.append((number, name, remaining, previous - remaining))
            previous = remaining
        return rows
