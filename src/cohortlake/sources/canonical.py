"""The canonical (silver) tables, modelled on the Sentinel Common Data Model.

Every raw layout reaches these schemas through its mapping file; everything downstream
(cohort engine, quality suites) reads only these.
"""

from __future__ import annotations

from pyspark.sql.types import (
    DateType,
    DoubleType,
    IntegerType,
    MapType,
    StringType,
    StructField,
    StructType,
)


def _schema(*fields: tuple[str, object, bool]) -> StructType:
    return StructType([StructField(name, dtype, nullable) for name, dtype, nullable in fields])


S, D, I = StringType(), DateType(), IntegerType()

EVENT = _schema(
    ("person_id", S, False),
    ("date", D, False),
    ("code", S, False),
    ("code_system", S, False),
    ("setting", S, False),
    ("source_table", S, False),
    ("claim_id", S, True),
    ("source_column", S, False),
)

SCHEMAS: dict[str, StructType] = {
    "person": _schema(("person_id", S, False), ("birth_date", D, True), ("sex", S, False), ("race", S, False)),
    "person_year": _schema(
        ("person_id", S, False), ("year", I, False), ("attributes", MapType(S, S, True), False)
    ),
    "enrollment": _schema(
        ("person_id", S, False), ("coverage", S, False), ("start_date", D, False), ("end_date", D, False)
    ),
    "tumor": _schema(
        ("person_id", S, False),
        ("sequence_number", S, False),
        ("diagnosis_year", I, True),
        ("diagnosis_month", I, True),
        ("primary_site", S, True),
        ("histology", S, True),
        ("behavior", S, True),
        ("historic_stage", S, True),
        ("reporting_source", S, True),
        ("death_year", I, True),
        ("death_month", I, True),
    ),
    "diagnosis": EVENT,
    "procedure": EVENT,
    "dispensing": _schema(
        ("person_id", S, False),
        ("date", D, False),
        ("ndc", S, False),
        ("generic_name", S, True),
        ("brand_name", S, True),
        ("quantity", DoubleType(), True),
        ("days_supply", I, True),
        ("source_table", S, False),
        ("claim_id", S, True),
    ),
    "death": _schema(("person_id", S, False), ("death_date", D, False), ("source", S, False), ("precision", S, False)),
}

SILVER_TABLES = tuple(SCHEMAS)


def silver_name(table: str) -> str:
    """Lakehouse name of a canonical table."""
    return f"silver/{table}"
