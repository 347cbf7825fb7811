"""Fixed-record-length text (plain or gzipped) cut into fields by a SAS record layout.

Spark reads the files as lines (in parallel, one task per gzipped file or per split of a
plain one) and every field is a ``substring`` column expression: no Python per record.
Values reach bronze as text, the way the same delivery as CSV would hold them:

- character fields lose the blanks that pad them to their width (a fixed-width record
  cannot tell padding from data), ``$w.`` and column ranges also leading blanks as SAS
  does, ``$CHARw.`` keeps them; an all-blank field is missing, like an empty CSV field;
- numeric fields (``w.``, ``w.d``) are trimmed; ``.`` is SAS's missing value; ``w.d``
  puts in the implied decimal point of a value written without one (``12345`` read with
  ``7.2`` is ``123.45``), as SAS does;
- dates become ``YYYYMMDD`` text, the form the mapping types: ``YYMMDD8.`` is already
  that; ``MMDDYY10.`` (``01/31/2009``), ``MMDDYY8.`` (``01312009``) and ``DATE9.``
  (``31JAN2009``) are reordered as text. Whether the date exists is the mapping's
  check, as for CSV.

A record whose length is not the layout's keeps its text in ``_corrupt_record`` (like a
malformed CSV row); a numeric or date field whose text its informat cannot read is
reported by ``informat_problems`` at typing time. Both go to quarantine with the reason.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.sources.sas_layout import Field, RecordLayout

RECORD = "value"
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
NUMBER = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)$"


def _missing_if_empty(text: Column) -> Column:
    return F.when(text != "", text)


def field_text(record: Column, field: Field) -> Column:
    """The bronze text of one field of a record (null when blank)."""
    raw = F.substring(record, field.start, field.width)
    if field.kind == "char":
        return _missing_if_empty(F.rtrim(raw))
    text = F.trim(raw)
    if field.kind == "char_left" or field.kind == "yymmdd":
        return _missing_if_empty(text)
    if field.kind == "numeric":
        text = F.when(text != ".", text)
        if field.decimals:
            digits = F.regexp_extract(text, r"^([+-]?)([0-9]+)$", 2)
            sign = F.regexp_extract(text, r"^([+-]?)([0-9]+)$", 1)
            padded = F.lpad(digits, F.greatest(F.length(digits), F.lit(field.decimals + 1)), "0")
            whole = padded.substr(F.lit(1), F.length(padded) - field.decimals)
            fraction = padded.substr(F.length(padded) - field.decimals + 1, F.lit(field.decimals))
            text = F.when(digits != "", F.concat(sign, whole, F.lit("."), fraction)).otherwise(text)
        return _missing_if_empty(text)
    if field.kind == "mmddyy":
        pattern = r"^([0-9]{2})[/.: -]([0-9]{2})[/.: -]([0-9]{4})$" if field.width == 10 else r"^([0-9]{2})([0-9]{2})([0-9]{4})$"
        converted = F.concat(F.regexp_extract(text, pattern, 3), F.regexp_extract(text, pattern, 1),
                             F.regexp_extract(text, pattern, 2))
        return _missing_if_empty(F.when(text.rlike(pattern), converted).otherwise(text))
    if field.kind == "date":
        pattern = r"^([0-9]{1,2})([A-Za-z]{3})([0-9]{4})$"
        months = F.create_map(*[x for i, m in enumerate(MONTHS) for x in (F.lit(m), F.lit(f"{i + 1:02d}"))])
        month = F.element_at(months, F.upper(F.regexp_extract(text, pattern, 2)))
        converted = F.concat(F.regexp_extract(text, pattern, 3), month, F.lpad(F.regexp_extract(text, pattern, 1), 2, "0"))
        return _missing_if_empty(F.when(text.rlike(pattern) & month.isNotNull(), converted).otherwise(text))
    raise ValueError(f"unknown field kind {field.kind}")


def read_fixed_width(spark, paths: list[str], layout: RecordLayout, corrupt: str, file_name: Column) -> DataFrame:
    """Every record of the files as one text column per field, plus the corrupt-record and file columns.

    ``file_name`` is the named column of the file a record came from (``mapper.delivered_file_name``).
    """
    lines = spark.read.text(paths)
    record = F.col(RECORD)
    wrong_length = F.length(record) != F.lit(layout.record_length)
    return lines.select(
        *[field_text(record, f).alias(f.name) for f in layout.fields],
        F.when(wrong_length, record).alias(corrupt),
        file_name,
    )


def informat_problems(layout: RecordLayout, columns: dict[str, Column], typed: set[str], corrupt: Column) -> list[Column]:
    """Problem structs (column, value, reason) for one layout's records.

    Numeric and date fields whose text the informat cannot read; columns the mapping
    types itself are left to the mapping (one reason per value, the same as for CSV).
    """
    from cohortlake.sources.mapper import problem

    problems = [F.when(corrupt.isNotNull(), problem(
        F.lit("(whole row)"), corrupt,
        F.concat(F.lit("record of "), F.length(corrupt).cast("string"),
                 F.lit(f" characters, expected {layout.record_length} (the layout's record length)"))))]
    for field in layout.fields:
        if field.name in typed or field.name not in columns or field.kind in ("char", "char_left"):
            continue
        text = columns[field.name]
        if field.kind == "numeric":
            bad, expected = ~text.rlike(NUMBER), "a number"
        else:
            bad, expected = ~text.rlike(r"^[0-9]{8}$"), "a date"
        problems.append(F.when(text.isNotNull() & bad, problem(
            F.lit(field.name), text, F.lit(f"expected {expected} (informat {field.informat})"))))
    return problems
