"""SQL-text building blocks of the synthetic generator.

Every value the generator makes is SQL text: the helpers here build it (``case``,
``str_array``, dates as ``ymd``, ``add_days``, ``month_index``) and apply it with
``selectExpr`` in stages (``stage`` adds columns, ``project`` selects exactly these), one
JVM call per stage where the Column API would make one per operator. ``materialize`` and
``release`` compute a frame once and cut its lineage, so the plans of later stages stay
small. Seeded draws are in ``synth.random``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark import StorageLevel
from pyspark.sql import DataFrame

from cohortlake.synth.random import Sql, lit


def stage(df: DataFrame, columns: dict[str, str]) -> DataFrame:
    """Add columns given as SQL text in one call; an entry cannot refer to another of the same stage."""
    return df.selectExpr("*", *[f"{expr} AS `{name}`" for name, expr in columns.items()])


def project(df: DataFrame, columns: dict[str, str]) -> DataFrame:
    """Select exactly these columns, given as SQL text."""
    return df.selectExpr(*[f"{expr} AS `{name}`" for name, expr in columns.items()])


def case(key: str, mapping: dict, default=None) -> Sql:
    """CASE key WHEN k THEN v ... over a Python dict of literals."""
    branches = " ".join(f"WHEN {key} = {lit(k)} THEN {lit(v)}" for k, v in mapping.items())
    return Sql(f"(CASE {branches} ELSE {lit(default)} END)")


def str_array(values: Sequence) -> Sql:
    return Sql("array(" + ", ".join(lit(v) for v in values) + ")")


def ymd(d: str) -> Sql:
    return Sql(f"date_format({d}, 'yyyyMMdd')")


def add_days(d: str, n) -> Sql:
    return Sql(f"date_add({d}, CAST({n} AS INT))")


def month_index(d: str) -> Sql:
    return Sql(f"(year({d}) * 12 + month({d}) - 1)")


def materialize(df: DataFrame) -> DataFrame:
    """Compute a frame once and cut its lineage, so later plans stay small.

    Plans that carry the whole person model (hundreds of expressions) cost seconds of
    planning and task serialization each; a local checkpoint replaces them by a scan.
    """
    return df.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)


def release(df: DataFrame) -> None:
    """Free the blocks of a frame made by ``materialize`` now rather than at garbage collection."""
    df._jdf.queryExecution().analyzed().rdd().unpersist(False)
