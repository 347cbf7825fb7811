"""Code sets as broadcast join keys, and the one scan per claims table that tags events.

Every entry of a code set becomes keys ``(system, length, key, exact)``: a claims row
matches when ``substring(code, 1, length) = key`` (and, for exact entries, the code is
exactly ``length`` long). Prefixes are such keys as written; a range is enumerated into
the keys between its bounds (text order), which keeps the join an equi-join: each
claims row is repeated once per distinct key length and hash-joined against the small
broadcast key table, never compared row by row against every entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, IntegerType, StringType, StructField, StructType

from cohortlake.spec.codes import CodeEntry, NormalisedCodeSet
from cohortlake.vocabulary import TABLE_SYSTEMS, EventTable

# Characters codes are made of, in text order; ranges enumerate over them.
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MAX_RANGE_KEYS = 200_000

KEY_SCHEMA = StructType(
    [
        StructField("key_system", StringType(), False),
        StructField("key_length", IntegerType(), False),
        StructField("key", StringType(), False),
        StructField("key_exact", BooleanType(), False),
        StructField("codeset", StringType(), False),
    ]
)

# Columns of the tagged-event frame every rule reads.
EVENT_COLUMNS = ("person_id", "date", "codeset", "table", "setting", "claim_key", "row_key", "days_supply")


class RangeTooWide(ValueError):
    """A range entry that would enumerate into too many keys."""


def range_keys(low: str, high: str) -> list[str]:
    """Every string of len(low) between low and high (inclusive, text order) over the code alphabet."""
    if len(low) != len(high):
        raise ValueError("range bounds differ in length")
    common = 0
    while common < len(low) and low[common] == high[common]:
        common += 1
    head = low[:common]
    if common == len(low):
        return [low]
    # Odometer from low to high over the alphabet; characters outside it (none in
    # normalised codes) would be skipped by text order anyway.
    digits = [_ALPHABET.index(c) if c in _ALPHABET else 0 for c in low[common:]]
    stop = high[common:]
    keys = []
    while True:
        tail = "".join(_ALPHABET[d] for d in digits)
        if tail > stop:
            break
        if tail >= low[common:]:
            keys.append(head + tail)
            if len(keys) > _MAX_RANGE_KEYS:
                raise RangeTooWide(f"range {low}-{high} covers more than {_MAX_RANGE_KEYS} codes")
        position = len(digits) - 1
        while position >= 0 and digits[position] == len(_ALPHABET) - 1:
            digits[position] = 0
            position -= 1
        if position < 0:
            break
        digits[position] += 1
    return keys


def entry_keys(entry: CodeEntry) -> list[tuple[int, str, bool]]:
    """(length, key, exact) rows of one normalised entry."""
    if entry.kind == "exact":
        return [(len(entry.value), entry.value, True)]
    if entry.kind == "prefix":
        return [(len(entry.value), entry.value, False)]
    return [(len(entry.low), key, False) for key in range_keys(entry.low, entry.high)]


@dataclass(frozen=True)
class TableNeed:
    """The code sets one claims table is searched for in a build."""

    table: EventTable
    codesets: tuple[NormalisedCodeSet, ...]

    def key_rows(self) -> list[tuple[str, int, str, bool, str]]:
        systems = {str(s) for s in TABLE_SYSTEMS[self.table]}
        rows = set()
        for codeset in self.codesets:
            for entry in codeset.entries:
                if entry.system.value in systems:
                    for length, key, exact in entry_keys(entry):
                        rows.add((entry.system.value, length, key, exact, codeset.name))
        return sorted(rows)

    def generic_patterns(self) -> list[tuple[str, str]]:
        if self.table is not EventTable.dispensing:
            return []
        return sorted({(codeset.name, pattern) for codeset in self.codesets for pattern in codeset.generic_names})


# The claims columns a tagged row is made from (``_tagged_columns``): carried through the
# key join as they are, so the keys are built for matched rows only, not for every row.
_RAW_COLUMNS = {
    EventTable.dispensing: ("person_id", "date", "source_table", "claim_id", "ndc", "days_supply", "generic_name"),
    EventTable.diagnosis: ("person_id", "date", "source_table", "claim_id", "source_column", "code", "setting"),
    EventTable.procedure: ("person_id", "date", "source_table", "claim_id", "source_column", "code", "setting"),
}


def _tagged_columns(table: EventTable) -> list[Column]:
    if table is EventTable.dispensing:
        row_key = F.concat_ws("|", "source_table", "claim_id", "ndc", F.col("date").cast("string"),
                              F.col("days_supply").cast("string"), "generic_name")
        return [
            F.col("person_id"), F.col("date"), F.lit(table.value).alias("table"),
            F.lit(None).cast("string").alias("setting"),
            F.concat_ws("|", "source_table", "claim_id").alias("claim_key"),
            row_key.alias("row_key"), F.col("days_supply"),
        ]
    row_key = F.concat_ws("|", "source_table", "claim_id", "source_column", "code", F.col("date").cast("string"), "setting")
    return [
        F.col("person_id"), F.col("date"), F.lit(table.value).alias("table"), F.col("setting"),
        F.concat_ws("|", "source_table", "claim_id").alias("claim_key"),
        row_key.alias("row_key"), F.lit(None).cast("int").alias("days_supply"),
    ]


def tag_events(spark: SparkSession, frame: DataFrame, need: TableNeed) -> DataFrame:
    """One scan of a claims table: its rows in any needed code set, one row per (row, set)."""
    keys = need.key_rows()
    patterns = need.generic_patterns()
    if need.table is EventTable.dispensing:
        rows = frame.withColumn("_code", F.col("ndc")).withColumn("_system", F.lit("ndc"))
    else:
        rows = frame.withColumn("_code", F.col("code")).withColumn("_system", F.col("code_system"))

    # Generic-name patterns are substring tests, evaluated per row before the key join.
    generic_sets = F.array_compact(
        F.array(*[
            F.when(F.lower(F.col("generic_name")).contains(pattern), F.lit(name))
            for name, pattern in patterns
        ])
    ) if patterns else F.array().cast("array<string>")
    base = rows.select(*_RAW_COLUMNS[need.table], "_code", "_system", generic_sets.alias("_generic"))

    if keys:
        key_frame = F.broadcast(spark.createDataFrame(keys, KEY_SCHEMA))
        lengths = sorted({row[1] for row in keys})
        exploded = base
        if not patterns:
            # Without generic-name patterns (which keep every row for the left join), only
            # rows of a code system some key is in, and codes at least a key's length long,
            # can match: the others never reach the join.
            exploded = exploded.where(F.col("_system").isin(sorted({row[0] for row in keys})))
        exploded = exploded.withColumn("_length", F.explode(F.array(*[F.lit(n) for n in lengths])))
        if not patterns:
            exploded = exploded.where(F.length("_code") >= F.col("_length"))
        exploded = exploded.withColumn("_head", F.expr("substring(_code, 1, _length)"))
        condition = [
            exploded["_system"] == key_frame["key_system"],
            exploded["_length"] == key_frame["key_length"],
            exploded["_head"] == key_frame["key"],
        ]
        how = "left" if patterns else "inner"
        joined = exploded.join(key_frame, condition, how).where(
            F.col("key").isNull() | ~F.col("key_exact") | (F.length("_code") == F.col("key_length"))
        )
        matched = F.when(F.col("codeset").isNotNull(), F.array(F.col("codeset"))).otherwise(F.array().cast("array<string>"))
        sets = F.array_union(matched, F.col("_generic"))
        source = joined
    else:
        sets = F.col("_generic")
        source = base
    tagged = source.select(*_tagged_columns(need.table), F.explode(sets).alias("codeset"))
    # One row per (claims row, set): several keys of one set can match the same code.
    return tagged.select(*EVENT_COLUMNS).distinct()
