"""Spark schemas ⇄ Delta schemas, and how a DataFrame's schema differs from a table's."""

from __future__ import annotations

import json

from cohortlake.errors import UserError

# Delta's schemaString *is* Spark's StructType JSON (the Delta protocol adopted Spark's
# serialisation), so converting through it is lossless: short/byte, decimal precision,
# timestamp vs timestamp_ntz, nested arrays/structs/maps all keep their exact type.


def _as_nullable(type_json):
    """Every field, element and map value nullable: Spark writes Parquet files that way,
    and a NOT NULL column in the log would be a constraint nobody enforces on append."""
    if not isinstance(type_json, dict):
        return type_json
    kind = type_json.get("type")
    if kind == "struct":
        return {
            **type_json,
            "fields": [{**f, "nullable": True, "type": _as_nullable(f["type"])} for f in type_json["fields"]],
        }
    if kind == "array":
        return {**type_json, "containsNull": True, "elementType": _as_nullable(type_json["elementType"])}
    if kind == "map":
        return {
            **type_json,
            "valueContainsNull": True,
            "keyType": _as_nullable(type_json["keyType"]),
            "valueType": _as_nullable(type_json["valueType"]),
        }
    return type_json


def _shape(type_json):
    """A type with nullability and metadata stripped, for comparing two schemas."""
    if not isinstance(type_json, dict):
        return type_json
    kind = type_json.get("type")
    if kind == "struct":
        return ("struct", tuple((f["name"], _shape(f["type"])) for f in type_json["fields"]))
    if kind == "array":
        return ("array", _shape(type_json["elementType"]))
    if kind == "map":
        return ("map", _shape(type_json["keyType"]), _shape(type_json["valueType"]))
    return json.dumps(type_json, sort_keys=True)


def spark_to_delta_schema(spark_schema):
    """A ``deltalake.Schema`` for a Spark ``StructType`` (all fields nullable)."""
    import deltalake

    schema_json = _as_nullable(json.loads(spark_schema.json()))
    try:
        return deltalake.Schema.from_json(json.dumps(schema_json))
    except Exception as error:  # delta-rs names the offending type; interval types land here
        raise UserError(
            f"cannot store this DataFrame as a Delta table: {error} (schema {spark_schema.simpleString()})"
        ) from error


def delta_to_spark_schema(delta_schema):
    """The Spark ``StructType`` of a ``deltalake.Schema``."""
    from pyspark.sql.types import StructType

    return StructType.fromJson(json.loads(delta_schema.to_json()))


def schema_differences(table_json: dict, frame_json: dict) -> list[str]:
    table = {f["name"]: f["type"] for f in table_json["fields"]}
    frame = {f["name"]: f["type"] for f in frame_json["fields"]}
    problems = [f"column {n!r} is missing" for n in table if n not in frame]
    problems += [f"column {n!r} is not in the table" for n in frame if n not in table]
    problems += [
        f"column {n!r} is {json.dumps(frame[n])} but the table has {json.dumps(table[n])}"
        for n in table
        if n in frame and _shape(table[n]) != _shape(frame[n])
    ]
    return problems
