"""Apply a mapping file: raw text rows → typed rows (+ quarantine) → canonical tables.

Pure DataFrame transformations, no I/O: ``ingest.py`` reads files and writes tables.
Everything is column expressions, so Spark plans it without Python UDFs. Row paths avoid
higher-order functions (``filter``, ``exists``, ``aggregate``): Spark generates no code for
them and interprets the whole operator that holds one.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cohortlake.sources.canonical import SCHEMAS
from cohortlake.sources.mapping import (
    ColumnType,
    DeathSource,
    DispensingFeed,
    EnrollmentBlock,
    EventFeed,
    Mapping,
    MonthlyRule,
    PersonBlock,
    PersonYearBlock,
    RawTable,
    TumorBlock,
    expand,
)
from cohortlake.vocabulary import BY_DATE_SYSTEMS, FEED_CODE_SYSTEMS

PROBLEMS = "_problems"
SOURCE_FILE = "_source_file"
COPIES = "_copies"


def delivered_file_name() -> Column:
    """``_source_file``: the name of the file a row was read from, as delivered.

    Spark's ``_metadata.file_name`` is the name as a URI path: a blank reads %20, a
    percent sign %25, a '#' %23 (letters outside ASCII stay). Decoded here, so that
    quarantine rows, file years and the order of files in ``dedupe`` see the names the
    files have. A '+' is escaped first: URL decoding would read it as a blank.
    """
    name = F.regexp_replace(F.col("_metadata.file_name"), r"\+", "%2B")
    return F.url_decode(name).alias(SOURCE_FILE)


CODE_FORMATS = {
    # (pattern on the code as stored, see code_value; reason); the bronze suites' code rules
    # say the same of the text as delivered
    "diagnosis": (r"^(?:[0-9]{3,5}|V[0-9]{2,4}|E[0-9]{3,4}|[A-TV-Z][0-9][0-9A-Z]{1,5})$",
                  "expected an ICD-9-CM or ICD-10-CM diagnosis code"),
    "procedure": (r"^(?:[0-9]{2,4}|[0-9A-HJ-NP-Z]{7})$", "expected an ICD-9 procedure code (2-4 digits) or ICD-10-PCS code"),
    "hcpcs": (r"^(?:[0-9]{4}[0-9FTU]|[A-V][0-9]{4})$", "expected a CPT or HCPCS level II code"),
    "ndc": (r"^[0-9]{11}$", "expected an 11-digit NDC"),
}
CODE_KIND = FEED_CODE_SYSTEMS  # a feed's code_system → its kind in CODE_FORMATS

EXPECTED = {
    "date": "expected a date YYYYMMDD",
    "integer": "expected a whole number",
    "number": "expected a number",
    "year": "expected a year YYYY",
    "month": "expected a month 1-12",
}


def problem(column: Column, value: Column, reason: Column, scope: str = "row") -> Column:
    """One problem of a row: ``scope`` ``row`` quarantines the row, ``value`` only sets the value aside."""
    return F.struct(column.alias("column"), value.cast("string").alias("value"), reason.alias("reason"),
                    F.lit(scope).alias("scope"))


PROBLEM_TYPE = "struct<column:string,value:string,reason:string,scope:string>"
# Above this many checks a row's problem list stays one lambda (see problem_list): fused
# into one generated method, the checks of the widest claim tables (80 on MedPAR) pass
# Java's 64 KB method limit and Spark falls back, with a compile error in the log.
GENERATED_CHECKS = 40


def problem_list(checks: list[tuple[Column, Column]]) -> Column:
    """The problems of a row, in order, from (condition, problem) pairs: those whose condition holds.

    Built from plain array functions where the table has up to ``GENERATED_CHECKS`` checks:
    Spark generates no code for higher-order functions, so ``filter`` over the problems
    made it interpret every check of the row (measured on the 20,000-patient carrier
    line table: 9.5 s of CPU typed with the lambda, 5.6 s without).
    """
    none = F.array().cast(f"array<{PROBLEM_TYPE}>")
    if not checks:
        return none
    if len(checks) > GENERATED_CHECKS:
        return F.filter(F.array(*[F.when(condition, found) for condition, found in checks]), lambda p: p.isNotNull())
    return F.flatten(F.array(*[F.when(condition, F.array(found)).otherwise(none) for condition, found in checks]))


def row_rejected() -> Column:
    """True for a typed row that goes to quarantine (a problem of row scope)."""
    return F.array_contains(F.col(PROBLEMS)["scope"], "row")


def code_columns(mapping: Mapping, table: str) -> dict[str, str]:
    """Code columns of a raw table that feed events, with their code kind (``CODE_FORMATS``)."""
    found = {}
    for feed in [*mapping.diagnosis, *mapping.procedure]:
        if feed.from_ == table:
            for column, _ in feed.positions():
                found[column] = CODE_KIND[feed.code_system]
    for feed in mapping.dispensing:
        if feed.from_ == table:
            found[feed.ndc] = "ndc"
    return found


def clean_text(column: str) -> Column:
    """Trimmed text; empty means missing."""
    trimmed = F.trim(F.col(column))
    return F.when(trimmed != "", trimmed)


def parse_value(text: Column, spec: ColumnType) -> Column:
    """Typed value of trimmed text, or null when it does not parse."""
    if spec.type == "date":
        return F.when(text.rlike(r"^[0-9]{8}$"), F.try_to_date(text, "yyyyMMdd"))
    if spec.type == "integer":
        return F.when(text.rlike(r"^[+-]?[0-9]+$"), text.try_cast("int"))
    if spec.type == "number":
        return F.when(text.rlike(r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)$"), text.try_cast("double"))
    if spec.type == "year":
        value = F.when(text.rlike(r"^[0-9]{4}$"), text.cast("int"))
        return F.when(value.between(1800, 2200), value)
    value = F.when(text.rlike(r"^[0-9]{1,2}$"), text.cast("int"))  # month
    return F.when(value.between(1, 12), value)


def dedupe(raw: DataFrame, data_columns: list[str], files: list[str]) -> DataFrame:
    """Collapse exact duplicate rows (same values in every raw column), counting copies.

    ``files`` are the names of the files the rows came from (their ``_source_file``). The
    source file kept is the smallest name, so re-runs pick the same one. It travels
    through the aggregation as its rank among the sorted names, an integer: with every
    aggregation buffer of fixed width, Spark hashes the groups. A text buffer (the name
    itself, or the row as a struct) makes it sort every row first, and that sort was most
    of the typing of narrow claim tables.
    """
    names = F.array(*(F.lit(name) for name in sorted(set(files))))
    rank = F.array_position(names, F.col(SOURCE_FILE))
    known = F.when(rank > 0, rank).otherwise(F.raise_error(F.concat(
        F.lit("dedupe: a row from a file not among the table's files: "), F.col(SOURCE_FILE))))
    grouped = raw.groupBy(*data_columns).agg(F.min(known).alias("_file_rank"), F.count(F.lit(1)).alias(COPIES))
    return grouped.select(*data_columns, F.element_at(names, F.col("_file_rank").cast("int")).alias(SOURCE_FILE),
                          COPIES)


def type_rows(raw: DataFrame, spec: RawTable, data_columns: list[str], codes: dict[str, str] | None = None) -> DataFrame:
    """Trim every value, type the declared columns, check the codes, and list each row's problems.

    Adds ``_problems``: array of (column, value, reason, scope); an empty array means the
    row is clean. A value that cannot be typed or a missing required value has scope
    ``row`` (the row goes to quarantine); a code that breaks its code's format has scope
    ``value``: it is set aside (null in the row) and the row lands, unless the column is
    required. Typed columns keep their raw names with the typed values.
    """
    types = {c: t for c, t in spec.column_types().items() if c in data_columns}
    codes = {c: kind for c, kind in (codes or {}).items() if c in data_columns and c not in types}
    required = set(spec.key) | set(spec.not_null)
    text = {c: clean_text(c) for c in data_columns}
    problems = []
    for column in spec.not_null:
        problems.append((text[column].isNull(), problem(F.lit(column), F.lit(None), F.lit("missing required value"))))
    for column, column_type in types.items():
        unknown = text[column].isin(column_type.unknown) if column_type.unknown else F.lit(False)
        bad = text[column].isNotNull() & ~unknown & parse_value(text[column], column_type).isNull()
        problems.append((bad, problem(F.lit(column), text[column], F.lit(EXPECTED[column_type.type]))))
    bad_code = {}
    for column, kind in codes.items():
        pattern, reason = CODE_FORMATS[kind]
        # judged as stored: without dots, dashes or blanks, upper case
        bad_code[column] = text[column].isNotNull() & ~code_value(text[column]).rlike(pattern)
        problems.append((bad_code[column], problem(
            F.lit(column), text[column], F.lit(reason), "row" if column in required else "value")))
    selected = []
    for column in data_columns:
        if column in bad_code:
            selected.append(F.when(~bad_code[column], text[column]).alias(column))
        elif column in types:
            column_type = types[column]
            value = parse_value(text[column], column_type)
            if column_type.unknown:
                value = F.when(~text[column].isin(column_type.unknown), value)
            selected.append(value.alias(column))
        else:
            selected.append(text[column].alias(column))
    problem_array = problem_list(problems)
    others = [c for c in raw.columns if c not in data_columns]
    return raw.select(*selected, *others, problem_array.alias(PROBLEMS))


def quarantine_rows(typed: DataFrame, raw_table: str, spec: RawTable, data_columns: list[str]) -> DataFrame:
    """One row per problem, with the whole raw record.

    ``scope`` is ``row`` when the row went to quarantine, ``value`` when only this value
    was set aside and the rest of the row landed. ``copies`` says how many identical raw
    rows arrived (exact duplicates are one row here), so quarantine counts reconcile with
    row counts of the raw table.
    """
    key = F.concat_ws(", ", *[F.concat(F.lit(f"{k}="), F.coalesce(F.col(k).cast("string"), F.lit(""))) for k in spec.key])
    record = F.to_json(F.struct(*[F.col(c).cast("string").alias(c) for c in data_columns]))
    return (
        typed.where(F.size(PROBLEMS) > 0)
        .select(
            F.lit(raw_table).alias("raw_table"),
            F.col(SOURCE_FILE).alias("source_file"),
            key.alias("row_key"),
            record.alias("record"),
            F.col(COPIES).cast("int").alias("copies"),
            F.when(row_rejected(), "row").otherwise("value").alias("scope"),
            F.explode(PROBLEMS).alias("problem"),
        )
        .select("raw_table", "source_file", "row_key", "problem.column", "problem.value", "problem.reason", "record",
                "copies", "scope")
    )


def clean_rows(typed: DataFrame) -> DataFrame:
    """Rows that land: no problem of row scope (values set aside are already null)."""
    return typed.where(~row_rejected()).drop(PROBLEMS)


# ---------------------------------------------------------------------------------
# canonical tables

def code_value(column: Column) -> Column:
    """Codes are stored without dots, dashes or blanks, upper case."""
    return F.upper(F.regexp_replace(column, r"[.\s-]", ""))


def conform(df: DataFrame, table: str) -> DataFrame:
    """Select the canonical columns in order with their canonical types."""
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in SCHEMAS[table].fields])


def first_per_key(df: DataFrame, keys: list[str], order: list[Column]) -> DataFrame:
    """The first row of each key group in the given order (ties broken by the caller's order)."""
    window = Window.partitionBy(*keys).orderBy(*order)
    return df.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")


def recode(rule) -> Column:
    mapping = F.create_map(*[x for code, name in rule.values.items() for x in (F.lit(code), F.lit(name))])
    return F.coalesce(F.element_at(mapping, F.col(rule.column)), F.lit(rule.default))


def person(block: PersonBlock, rows: DataFrame) -> DataFrame:
    tie_break = [F.col(c).desc_nulls_last() for c in (block.birth_date, block.sex.column, block.race.column)]
    latest = first_per_key(rows, [block.person_id], [F.col(block.latest_by).desc(), *tie_break])
    return conform(latest.select(
        F.col(block.person_id).alias("person_id"),
        F.col(block.birth_date).alias("birth_date"),
        recode(block.sex).alias("sex"),
        recode(block.race).alias("race"),
    ), "person")


def person_year(block: PersonYearBlock, rows: DataFrame) -> DataFrame:
    present = [c for c in block.attributes if c in rows.columns]
    attributes = F.map_from_arrays(F.array(*[F.lit(c) for c in present]), F.array(*[F.col(c).cast("string") for c in present]))
    per_year = rows.select(F.col(block.person_id).alias("person_id"), F.col(block.year).alias("year"), attributes.alias("attributes"))
    # conflicting rows for one person-year: keep the first by attribute text, so re-runs agree
    return conform(first_per_key(per_year, ["person_id", "year"], [F.to_json("attributes")]), "person_year")


def _monthly_test(rule: MonthlyRule, value: Column) -> Column:
    tests = []
    if rule.in_:
        tests.append(value.isin(rule.in_))
    if rule.not_in:
        tests.append(value.isNotNull() & ~value.isin(rule.not_in))
    if rule.starts_with:
        tests.append(reduce(lambda a, b: a | b, [value.startswith(p) for p in rule.starts_with]))
    return F.coalesce(reduce(lambda a, b: a & b, tests), F.lit(False))


def month_mask(covered: list[Column]) -> Column:
    """One covered flag per month (January first) → an int with bit m-1 set for each covered month m."""
    return reduce(lambda a, b: a + b, [F.when(flag, F.lit(1 << bit)).otherwise(F.lit(0)) for bit, flag in enumerate(covered)])


def mask_runs(spark) -> DataFrame:
    """Every non-empty 12-month mask with its runs of consecutive covered months: (mask, first, last).

    4,095 masks, 13,312 runs, computed by Spark from two ranges (nothing on the driver).
    ``enrollment`` joins a year's mask to it: plain integer arithmetic that Spark compiles,
    where the runs built with ``aggregate`` over the months were interpreted row by row,
    and building them from per-month flags zipped together made a generated method over
    Java's 64 KB limit.
    """
    masks = spark.range(1, 1 << 12).select(F.col("id").cast("int").alias("mask"))
    months = spark.range(1, 13).select(F.col("id").cast("int").alias("m"))
    bounds = (months.select(F.col("m").alias("first")).crossJoin(months.select(F.col("m").alias("last")))
              .where("first <= last").selectExpr("first", "last", "shiftleft(1, last) - shiftleft(1, first - 1) AS bits"))
    is_run = F.expr(
        "mask & bits = bits"  # months first..last are covered
        " AND (first = 1 OR mask & shiftleft(1, first - 2) = 0)"  # the month before is not
        " AND (last = 12 OR mask & shiftleft(1, last) = 0)"  # nor the month after
    )
    return masks.crossJoin(bounds).where(is_run).drop("bits")


def enrollment(block: EnrollmentBlock, rows: DataFrame) -> DataFrame:
    """Coverage spans, consecutive months merged, across calendar years too."""
    per_coverage = []
    if block.monthly:
        for coverage, rule in block.monthly.items():
            values = [F.col(c) if c in rows.columns else F.lit(None).cast("string") for c in expand(rule.column)]
            covered = [_monthly_test(rule, value) for value in values[:12]]
            per_coverage.append(F.struct(F.lit(coverage).alias("coverage"), month_mask(covered).alias("mask")))
    else:
        for coverage, column in block.month_counts.items():
            # a count of n months covers January through month n
            count = F.least(F.coalesce(F.col(column).cast("int"), F.lit(0)), F.lit(12))
            mask = F.pow(F.lit(2), count).cast("int") - 1  # exact: 2^n for n <= 12
            per_coverage.append(F.struct(F.lit(coverage).alias("coverage"), mask.alias("mask")))
    year = F.col(block.year).cast("int")
    masks = (
        rows.select(F.col(block.person_id).alias("person_id"), year.alias("year"), F.explode(F.array(*per_coverage)).alias("c"))
        .select("person_id", "year", "c.coverage", "c.mask")
        .where(F.col("mask") > 0)
    )
    runs = masks.join(F.broadcast(mask_runs(rows.sparkSession)), "mask").select(
        "person_id", "coverage",
        (F.col("year") * 12 + F.col("first") - 1).alias("first_month"),
        (F.col("year") * 12 + F.col("last") - 1).alias("last_month"),
    )
    return merge_month_runs(runs)


def merge_month_runs(runs: DataFrame) -> DataFrame:
    """Merge overlapping or adjacent month runs per person and coverage into spans."""
    ordered = Window.partitionBy("person_id", "coverage").orderBy("first_month", "last_month")
    reach = F.max("last_month").over(ordered.rowsBetween(Window.unboundedPreceding, -1))
    starts = F.when(reach.isNull() | (F.col("first_month") > reach + 1), 1).otherwise(0)
    grouped = runs.withColumn("_new", starts).withColumn("_span", F.sum("_new").over(ordered))
    spans = grouped.groupBy("person_id", "coverage", "_span").agg(
        F.min("first_month").alias("first_month"), F.max("last_month").alias("last_month"))

    def first_day(month_index: Column) -> Column:
        return F.make_date(F.floor(month_index / 12).cast("int"), (month_index % 12 + 1).cast("int"), F.lit(1))

    return conform(spans.select(
        "person_id", "coverage",
        first_day(F.col("first_month")).alias("start_date"),
        F.last_day(first_day(F.col("last_month"))).alias("end_date"),
    ), "enrollment")


def tumor(block: TumorBlock, rows: DataFrame) -> DataFrame:
    columns = {name: value for name, value in block if name != "from_"}
    selected = [
        (F.col(raw) if raw and raw in rows.columns else F.lit(None)).alias(name)
        for name, raw in columns.items()
    ]
    df = rows.select(*selected)
    # conflicting rows for one person's tumor sequence: keep one deterministically
    return conform(first_per_key(df, ["person_id", "sequence_number"], [F.to_json(F.struct(*df.columns))]), "tumor")


def code_system(feed: EventFeed, date: Column, icd10_from) -> Column:
    if feed.code_system in BY_DATE_SYSTEMS:
        before, since = BY_DATE_SYSTEMS[feed.code_system]
        return F.when(date < F.lit(icd10_from), before.value).otherwise(since.value)
    return F.lit(feed.code_system)


def events(feed: EventFeed, rows: DataFrame, raw_table: str, icd10_from, lookup_rows: DataFrame | None) -> DataFrame:
    """One row per non-empty code column of each raw row, dated by the first present date."""
    if feed.lookup is not None:
        lookup = lookup_rows.groupBy(*feed.lookup.match_on).agg(
            *[F.min(c).alias(c) for c in feed.lookup.columns])
        rows = rows.drop(*[c for c in feed.lookup.columns if c in rows.columns]).join(
            lookup, on=feed.lookup.match_on, how="left")
    present = set(rows.columns)
    positions = []
    for code_column, date_columns in feed.positions():
        if code_column not in present:
            continue  # trimmed trailing repeated group
        dates = [F.col(d) for d in date_columns if d in present]
        positions.append(F.struct(
            F.lit(code_column).alias("source_column"),
            F.col(code_column).alias("code"),
            (F.coalesce(*dates) if len(dates) > 1 else dates[0]).alias("date"),
        ))
    exploded = rows.select(
        F.col(feed.person_id).alias("person_id"),
        F.col(feed.claim_id).alias("claim_id"),
        F.inline(F.array(*positions)),
    ).where(F.col("code").isNotNull() & F.col("date").isNotNull())
    return conform(exploded.select(
        "person_id", "date",
        code_value(F.col("code")).alias("code"),
        code_system(feed, F.col("date"), icd10_from).alias("code_system"),
        F.lit(feed.setting).alias("setting"),
        F.lit(raw_table).alias("source_table"),
        "claim_id", "source_column",
    ), "diagnosis")


def dispensing(feed: DispensingFeed, rows: DataFrame, raw_table: str) -> DataFrame:
    def optional(name):
        return F.col(name) if name and name in rows.columns else F.lit(None).cast("string")

    return conform(rows.select(
        F.col(feed.person_id).alias("person_id"),
        F.col(feed.date).alias("date"),
        code_value(F.col(feed.ndc)).alias("ndc"),
        optional(feed.generic_name).alias("generic_name"),
        optional(feed.brand_name).alias("brand_name"),
        F.col(feed.quantity).alias("quantity"),
        F.col(feed.days_supply).alias("days_supply"),
        F.lit(raw_table).alias("source_table"),
        F.col(feed.claim_id).alias("claim_id"),
    ), "dispensing")


def death_candidates(source: DeathSource, rows: DataFrame, priority: int) -> DataFrame:
    """Death dates from one source, one per person, tagged with the source's priority."""
    if source.date:
        dated = rows.select(F.col(source.person_id).alias("person_id"), F.col(source.date).alias("death_date"),
                            (F.col(source.latest_by) if source.latest_by else F.lit(0)).alias("_order"))
        precision = "day"
    else:
        dated = rows.select(
            F.col(source.person_id).alias("person_id"),
            F.make_date(F.col(source.year).cast("int"), F.col(source.month).cast("int"), F.lit(source.day_of_month)).alias("death_date"),
            F.lit(0).alias("_order"),
        )
        precision = "month"
    dated = dated.where(F.col("death_date").isNotNull())
    latest = first_per_key(dated, ["person_id"], [F.col("_order").desc(), F.col("death_date").desc()])
    return latest.select("person_id", "death_date", F.lit(source.name).alias("source"),
                         F.lit(precision).alias("precision"), F.lit(priority).alias("_priority"))


def death(candidates: list[DataFrame]) -> DataFrame:
    union = reduce(lambda a, b: a.unionByName(b), candidates)
    return conform(first_per_key(union, ["person_id"], [F.col("_priority")]), "death")


def build_canonical(mapping: Mapping, clean: dict[str, DataFrame]) -> dict[str, DataFrame]:
    """Every canonical table as a DataFrame over the clean typed rows of each raw table."""
    spark = next(iter(clean.values())).sparkSession
    tables: dict[str, DataFrame] = {"person": person(mapping.person, clean[mapping.person.from_])}
    tables["person_year"] = (
        person_year(mapping.person_year, clean[mapping.person_year.from_])
        if mapping.person_year else spark.createDataFrame([], SCHEMAS["person_year"]))
    tables["enrollment"] = _union([enrollment(b, clean[b.from_]) for b in mapping.enrollment], "enrollment", spark)
    tables["tumor"] = (tumor(mapping.tumor, clean[mapping.tumor.from_]) if mapping.tumor
                       else spark.createDataFrame([], SCHEMAS["tumor"]))
    for group in ("diagnosis", "procedure"):
        feeds = [events(f, clean[f.from_], f.from_, mapping.icd10_from,
                        clean[f.lookup.from_] if f.lookup else None) for f in getattr(mapping, group)]
        tables[group] = _union(feeds, group, spark)
    tables["dispensing"] = _union([dispensing(f, clean[f.from_], f.from_) for f in mapping.dispensing], "dispensing", spark)
    tables["death"] = death([death_candidates(s, clean[s.from_], i) for i, s in enumerate(mapping.death)]) \
        if mapping.death else spark.createDataFrame([], SCHEMAS["death"])
    return tables


def _union(frames: list[DataFrame], table: str, spark) -> DataFrame:
    if not frames:
        return spark.createDataFrame([], SCHEMAS[table])
    return reduce(lambda a, b: a.unionByName(b), frames)
