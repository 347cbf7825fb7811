"""The canonical (silver) tables as Spark schemas.

The tables themselves (columns, type words, nullability) are plain data in
``cohortlake.vocabulary``; this module only turns them into ``StructType``s. Every raw
layout reaches these schemas through its mapping file; everything downstream (cohort
engine, quality suites) reads only these.
"""

from __future__ import annotations

from pyspark.sql.types import (
    DataType,
    DateType,
    DoubleType,
    IntegerType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from cohortlake import vocabulary as v
from cohortlake.lake import layout
from cohortlake.vocabulary import SILVER_TABLES

SPARK_TYPES: dict[str, DataType] = {
    v.STRING: StringType(),
    v.DATE: DateType(),
    v.INTEGER: IntegerType(),
    v.DOUBLE: DoubleType(),
    v.STRING_MAP: MapType(StringType(), StringType(), True),
}


def _schema(columns: tuple[v.Column, ...]) -> StructType:
    return StructType([StructField(c.name, SPARK_TYPES[c.type], c.nullable) for c in columns])


SCHEMAS: dict[str, StructType] = {table: _schema(columns) for table, columns in v.TABLES.items()}

__all__ = ["SCHEMAS", "SILVER_TABLES", "silver_name"]


def silver_name(table: str) -> str:
    """Lakehouse name of a canonical table."""
    return layout.silver(table)
