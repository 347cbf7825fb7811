"""Index rules: the (person_id, index_date, ...) rows of every index, several per person with ``each``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import Window as W
from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.engine.eras import regimen_label
from cohortlake.engine.rules.base import Context, Needs, boundary_column, event_condition, reads, rule
from cohortlake.spec.codes import normalise
from cohortlake.spec.model import Index, Occurrence, TumorChoice
from cohortlake.vocabulary import seer_code

TUMOR_FIELDS = ("sequence_number", "diagnosis_year", "diagnosis_month", "primary_site", "histology",
                "behavior", "historic_stage", "reporting_source")
"""The index tumor's fields carried on the episode frame (``columns.tumor_field``)."""


@dataclass(frozen=True)
class Inputs:
    """What an index rule reads: a canonical table by name, the tagged events, the eras (None without exposures)."""

    table: Callable[[str], DataFrame]
    events: DataFrame
    eras: DataFrame | None


@dataclass(frozen=True)
class IndexRule:
    """The code sets the index reads, and how its rows come from the inputs."""

    rows: Callable[[Inputs], DataFrame]
    needs: Needs = Needs()
    tables_only: bool = False
    """The rows come from canonical tables alone (``Inputs.events`` and ``eras`` unread), so a
    build can make them before it tags any claims row."""


@rule(Index, "tumor")
def tumor(context: Context, index: Index) -> IndexRule:
    return IndexRule(lambda inputs: tumor_rows(context, index.rule, inputs.table("tumor")), tables_only=True)


@rule(Index, "event")
def event(context: Context, index: Index) -> IndexRule:
    spec = index.rule

    def rows(inputs: Inputs) -> DataFrame:
        found = inputs.events.where(event_condition(spec.codesets, spec.tables, spec.settings))
        return _dates(found.select("person_id", F.col("date").alias("index_date")), spec.occurrence)

    return IndexRule(rows, reads(spec))


@rule(Index, "exposure")
def exposure(context: Context, index: Index) -> IndexRule:
    return IndexRule(lambda inputs: _era_rows(inputs.eras, index.rule.name, index.rule))


@rule(Index, "regimen")
def regimen(context: Context, index: Index) -> IndexRule:
    return IndexRule(lambda inputs: _era_rows(inputs.eras, regimen_label(index.rule.name), index.rule))


def _era_rows(eras: DataFrame, label: str, spec) -> DataFrame:
    rows = eras.where(F.col("exposure") == label).select("person_id", F.col(boundary_column(spec.at)).alias("index_date"))
    return _dates(rows, spec.occurrence)


def _dates(rows: DataFrame, occurrence: Occurrence) -> DataFrame:
    if occurrence is Occurrence.first:
        return rows.groupBy("person_id").agg(F.min("index_date").alias("index_date"))
    return rows.distinct()


def tumor_rows(context: Context, spec, tumors: DataFrame) -> DataFrame:
    """The index tumor of each person (README "Index": ordering, ties, the index day of the month)."""
    condition = F.lit(True)
    for column, written, system in (("primary_site", spec.primary_site, "icdo3_site"),
                                    ("histology", spec.histology, "icdo3_histology")):
        if written:
            condition = condition & _tumor_code_matches(context, column, written, system)
    if spec.behavior:
        condition = condition & F.col("behavior").isin([seer_code(b) for b in spec.behavior])
    known_month = F.col("diagnosis_month").between(1, 12)
    year_key = F.coalesce(F.col("diagnosis_year"), F.lit(10**6))
    month_key = F.when(known_month, F.col("diagnosis_month")).otherwise(F.lit(99))
    tail = [F.col(c).asc_nulls_last() for c in ("histology", "primary_site", "behavior", "historic_stage", "reporting_source")]
    if spec.choose is TumorChoice.lowest_sequence_number:
        order = [F.col("sequence_number").asc_nulls_last(), year_key, month_key, *tail]
    else:
        order = [year_key, month_key, F.col("sequence_number").asc_nulls_last(), *tail]
    ranked = tumors.where(condition).withColumn(columns.RANK, F.row_number().over(W.partitionBy("person_id").orderBy(*order)))
    chosen = ranked.where(F.col(columns.RANK) == 1)
    index_date = F.when(
        F.col("diagnosis_year").isNotNull() & known_month,
        F.make_date(F.col("diagnosis_year"), F.col("diagnosis_month"), F.lit(spec.date.day_of_month)),
    )
    return chosen.select("person_id", index_date.alias("index_date"),
                         *[F.col(f).alias(columns.tumor_field(f)) for f in TUMOR_FIELDS])


def _tumor_code_matches(context: Context, column: str, written, system: str) -> Column:
    entries = []
    for item in written:
        if re.fullmatch(r"[a-z][a-z0-9_]*", item):
            entries.extend(context.definition.codeset(item).for_system(system))
        else:
            entries.append(normalise(system, item))
    code = F.upper(F.regexp_replace(F.col(column), r"\.", ""))
    condition = F.lit(False)
    for entry in entries:
        if entry.kind == "exact":
            condition = condition | (code == entry.value)
        elif entry.kind == "prefix":
            condition = condition | code.startswith(entry.value)
        else:
            head = F.substring(code, 1, len(entry.low))
            condition = condition | ((F.length(head) == len(entry.low)) & head.between(entry.low, entry.high))
    return condition
