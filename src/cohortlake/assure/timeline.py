"""Timelines → canonical (silver) rows → Spark frames: one path for test patients and the tests.

A test patient's timeline (see :mod:`cohortlake.assure`) becomes rows of the canonical
tables here, and any such rows become Spark frames with the canonical schemas through
:func:`frames_from_rows`, which the engine tests' frame builders use as well. Every row
has exactly its table's columns (``cohortlake.vocabulary.TABLES``); no Spark is imported
until frames are made.
"""

from __future__ import annotations

from typing import Any

from cohortlake.vocabulary import TABLES, columns

SOURCE_TABLE = "assure"
"""The ``source_table`` of every claim row a test patient has."""

CODED = (("diagnosis", "diagnoses", "dx"), ("procedure", "procedures", "px"))
"""Canonical table, timeline key and claim-id tag of the coded events."""


def _row(table: str, values: dict[str, Any]) -> dict[str, Any]:
    return {name: values.get(name) for name in columns(table)}


def timeline_rows(person_id: str, timeline: dict[str, Any]) -> dict[str, list[dict]]:
    """One person's canonical rows; claim ids and source columns keep every row distinct.

    ``timeline`` holds ``person`` (a row without person_id), ``death`` (a date or None),
    and the lists ``tumors``, ``enrollment`` (one row per coverage type), ``diagnoses``,
    ``procedures`` and ``fills``, as a test file's patient resolves to.
    """
    tables: dict[str, list[dict]] = {name: [] for name in TABLES}
    key = {"person_id": person_id}
    tables["person"].append(_row("person", {**key, **timeline["person"]}))
    if timeline["death"] is not None:
        tables["death"].append(_row("death", {**key, "death_date": timeline["death"], "source": "test",
                                              "precision": "day"}))
    for span in timeline["enrollment"]:
        tables["enrollment"].append(_row("enrollment", {**key, **span}))
    for tumor in timeline["tumors"]:
        tables["tumor"].append(_row("tumor", {**key, **tumor}))
    for table, name, short in CODED:
        for n, event in enumerate(timeline[name], 1):
            tables[table].append(_row(table, {
                **key, **event, "source_table": SOURCE_TABLE,
                "claim_id": event["claim_id"] or f"{person_id}-{short}{n}", "source_column": f"{name}.{n}",
            }))
    for n, fill in enumerate(timeline["fills"], 1):
        tables["dispensing"].append(_row("dispensing", {
            **key, **fill, "source_table": SOURCE_TABLE, "claim_id": fill["claim_id"] or f"{person_id}-fill{n}",
        }))
    return tables


def tables_of(people: list[tuple[str, dict[str, Any]]]) -> dict[str, list[dict]]:
    """Canonical rows of several (person id, timeline) pairs, table by table."""
    tables: dict[str, list[dict]] = {name: [] for name in TABLES}
    for person_id, timeline in people:
        for name, rows in timeline_rows(person_id, timeline).items():
            tables[name].extend(rows)
    return tables


def frames_from_rows(spark, tables: dict[str, list[dict]]) -> dict:
    """Spark DataFrames with the canonical schemas holding the rows (a missing table is empty).

    The rows travel as Arrow tables, so the frames are plain JVM data: scanning them
    starts no Python workers.
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from cohortlake.sources.canonical import SCHEMAS

    frames = {}
    for name in TABLES:
        schema = SCHEMAS[name]
        rows = [{f.name: row.get(f.name) for f in schema.fields} for row in tables.get(name, [])]
        table = pa.Table.from_pylist(rows, schema=to_arrow_schema(schema))
        frames[name] = spark.createDataFrame(table, schema=schema).coalesce(1)
    return frames
