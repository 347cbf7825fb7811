"""Code sets as hash-set predicates, and the one scan per claims table that tags events.

Every entry of a code set is a test on a claims row's code (``spec.codes.matches`` is
the rule; the tests' reference evaluator calls it):

* exact entries of a system are one ``code IN (...)`` set;
* prefixes of one length ``n`` are one ``head_n IN (...)`` set, where ``head_n`` is the
  code's first ``n`` characters, computed once per row for every length in use;
* a range compares ``head_n`` (``n = len(low)``, and the code at least that long) with
  its bounds as text.

Spark evaluates an ``IN`` of many literals as a hash-set lookup (``InSet``): the code
sets travel with the plan to every task, as a broadcast table would. A claims row is
first sieved by the union of all the sets' entries, a few lookups; only the rows that
pass are tested set by set. No row is compared entry by entry or multiplied before a
join, and a row becomes one tagged row per code set it is in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, LongType, StringType, StructField, StructType

from cohortlake.spec.codes import NormalisedCodeSet
from cohortlake.sqltext import lit
from cohortlake.vocabulary import TABLE_SYSTEMS, EventTable

# Columns of the tagged-event frame every rule reads.
EVENT_COLUMNS = ("person_id", "date", "codeset", "table", "setting", "claim_key", "row_key", "days_supply")
EVENT_SCHEMA = StructType([
    StructField(c, {"date": DateType(), "days_supply": IntegerType(), "claim_key": LongType(),
                    "row_key": LongType()}.get(c, StringType()))
    for c in EVENT_COLUMNS
])


@dataclass(frozen=True)
class TableNeed:
    """The code sets one claims table is searched for in a build."""

    table: EventTable
    codesets: tuple[NormalisedCodeSet, ...]

    def entries(self, codeset: NormalisedCodeSet):
        systems = {str(s) for s in TABLE_SYSTEMS[self.table]}
        return [e for e in codeset.entries if e.system.value in systems]

    def head_lengths(self) -> list[int]:
        """Lengths of the code heads prefixes and ranges compare (each computed once per row)."""
        return sorted({len(e.value if e.kind == "prefix" else e.low)
                       for c in self.codesets for e in self.entries(c) if e.kind != "exact"})

    def generic_patterns(self, codeset: NormalisedCodeSet) -> list[str]:
        if self.table is not EventTable.dispensing:
            return []
        return sorted(set(codeset.generic_names))


def _head(length: int) -> str:
    return f"_head{length}"


# The tests are written as Spark SQL text and parsed once per code set: the same
# expressions (``In``, then ``InSet``; comparisons; ``OR``) as built from Column calls,
# which cost one JVM round trip per value and operator (a code set of 400 codes, 400).
def _any_of(tests: list[str]) -> str:
    return tests[0] if len(tests) == 1 else "(" + " OR ".join(tests) + ")"


def _entry_tests(entries) -> list[str]:
    """The tests of some entries (any system): one set per kind and prefix length, one comparison per range."""
    exact = sorted({e.value for e in entries if e.kind == "exact"})
    prefixes: dict[int, set[str]] = defaultdict(set)
    for e in entries:
        if e.kind == "prefix":
            prefixes[len(e.value)].add(e.value)
    tests = [f"_code IN ({', '.join(map(lit, exact))})"] if exact else []
    tests.extend(f"{_head(length)} IN ({', '.join(map(lit, sorted(values)))})"
                 for length, values in sorted(prefixes.items()))
    for low, high in sorted({(e.low, e.high) for e in entries if e.kind == "range"}):
        head = _head(len(low))
        tests.append(f"(length({head}) = {len(low)} AND {head} BETWEEN {lit(low)} AND {lit(high)})")
    return tests


def _generic_tests(patterns: list[str]) -> list[str]:
    return [f"contains(lower(generic_name), {lit(p)})" for p in patterns]


def _in_codeset(need: TableNeed, codeset: NormalisedCodeSet) -> Column | None:
    """Whether the row (with ``_code``, ``_system`` and the ``_headN`` columns) is in the code set."""
    by_system: dict[str, list] = defaultdict(list)
    for entry in need.entries(codeset):
        by_system[entry.system.value].append(entry)
    tests = [f"(_system = {lit(system)} AND {_any_of(_entry_tests(entries))})"
             for system, entries in sorted(by_system.items())]
    tests.extend(_generic_tests(need.generic_patterns(codeset)))
    return F.expr(_any_of(tests)) if tests else None


def _in_any_codeset(need: TableNeed) -> Column | None:
    """A first, cheap sieve: the code is in the union of every set's entries (whatever the system)."""
    entries = [e for codeset in need.codesets for e in need.entries(codeset)]
    tests = _entry_tests(entries)
    tests.extend(_generic_tests(sorted({p for codeset in need.codesets for p in need.generic_patterns(codeset)})))
    return F.expr(_any_of(tests)) if tests else None


# A claim and a claims row are told apart by 64-bit hashes of their fields: exact
# enough to count and deduplicate them (rules compare keys of one person only, and for a
# person with 10,000 tagged rows the chance that any two distinct rows share a key is
# about 3 in 10^12), and a tenth of the size of the fields themselves in the persisted
# tagged rows and in every collect_set that counts them.
_KEY_FIELDS = {
    EventTable.dispensing: (("source_table", "claim_id"),
                            ("source_table", "claim_id", "ndc", "date", "days_supply", "generic_name")),
    EventTable.diagnosis: (("source_table", "claim_id"),
                           ("source_table", "claim_id", "source_column", "code", "date", "setting")),
    EventTable.procedure: (("source_table", "claim_id"),
                           ("source_table", "claim_id", "source_column", "code", "date", "setting")),
}


def _key(fields: tuple[str, ...]) -> Column:
    # A hash passes over a null field; the null flags keep (x, null) apart from (null, x).
    return F.xxhash64(*fields, *[F.isnull(f) for f in fields])


def _tagged_columns(table: EventTable) -> list[Column]:
    claim, row = _KEY_FIELDS[table]
    dispensing = table is EventTable.dispensing
    return [
        F.col("person_id"), F.col("date"), F.lit(table.value).alias("table"),
        (F.lit(None).cast("string") if dispensing else F.col("setting")).alias("setting"),
        _key(claim).alias("claim_key"), _key(row).alias("row_key"),
        (F.col("days_supply") if dispensing else F.lit(None).cast("int")).alias("days_supply"),
    ]


def tag_events(frame: DataFrame, need: TableNeed) -> DataFrame:
    """One scan of a claims table: its rows in any needed code set, one row per (row, set).

    Rows are first sieved by the union of all the sets' entries (a few hash-set lookups
    per row); only the rows that pass are tested set by set. Every expression here is
    one Spark compiles to code (no higher-order functions, which it would interpret).
    """
    code, system = (("ndc", F.lit("ndc")) if need.table is EventTable.dispensing
                    else ("code", F.col("code_system")))
    rows = frame.select("*", F.col(code).alias("_code"), system.alias("_system"),
                        *[F.substring(F.col(code), 1, n).alias(_head(n)) for n in need.head_lengths()])
    sieve = _in_any_codeset(need)
    sets = [(codeset.name, _in_codeset(need, codeset)) for codeset in need.codesets]
    sets = [F.when(test, F.lit(name)) for name, test in sets if test is not None]
    if sieve is None or not sets:
        return frame.sparkSession.createDataFrame([], EVENT_SCHEMA)
    tagged = rows.where(sieve).select(*_tagged_columns(need.table), F.explode(F.array(*sets)).alias("codeset"))
    # Identical claims rows stay as they are: every rule counts distinct dates, claims or
    # row keys, so a repeated row is one event wherever it is read.
    return tagged.where(F.col("codeset").isNotNull()).select(*EVENT_COLUMNS)
