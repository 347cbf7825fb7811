"""SAS datasets (``.sas7bdat``, ``.xpt`` transport files) as text, chunk by chunk.

pyreadstat reads a bounded number of rows at a time; each chunk becomes text the way a
CSV of the same data would hold it and is appended to a Parquet file that Spark then
reads into bronze. A file is never whole in memory.

- character values as stored (leading zeros kept); an empty value is missing;
- numbers as their shortest text (``30``, not ``30.0``; ``2.5``); SAS missing values
  (``.``, ``.A`` … ``.Z``) are missing;
- numbers with a SAS date format (``DATE9.``, ``YYMMDD8.``, ``MMDDYY10.``, …) become
  ``YYYYMMDD`` text, datetimes their date, so the mapping reads them as it reads CSV
  (a value no calendar holds keeps its number, so typing quarantines it with a reason);
- ``_source_row`` is the record's number in its file (from 1).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from cohortlake.errors import UserError

SOURCE_ROW = "_source_row"
CHUNK_ROWS = 50_000
SAS_EPOCH = "1960-01-01"
# Beyond pandas' nanosecond range (1677-2262) either way: such values are not sent to pandas.
DATE_REACH_DAYS = 200_000
DATE_FORMATS = re.compile(r"^(DATE|YYMMDD|MMDDYY|DDMMYY|E8601DA|B8601DA|MINGUO|WEEKDATE|WORDDATE|NLDATE|YYMMN|MONYY"
                          r"|YYQ|JULIAN|DAY|EURDF)", re.I)
DATETIME_FORMATS = re.compile(r"^(DATETIME|E8601DT|B8601DT|DTDATE|NLDATM)", re.I)


def _reader(path: Path):
    import pyreadstat

    return pyreadstat.read_sas7bdat if path.name.lower().endswith(".sas7bdat") else pyreadstat.read_xport


def read_columns(path: Path) -> list[str]:
    """Column names of a SAS dataset (its metadata only)."""
    import pyreadstat

    try:
        _, meta = _reader(path)(str(path), metadataonly=True)
    except pyreadstat.PyreadstatError as error:
        raise UserError(f"{path}: not a readable SAS dataset ({error})") from None
    return list(meta.column_names)


def _number_text(value: float) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if float(value).is_integer() and abs(value) < 2**63:
        return str(int(value))
    return repr(float(value))


def text_column(values, sas_format: str | None, numeric: bool) -> list[str | None]:
    """One chunk's column as text (see the module docstring)."""
    import pandas as pd

    if not numeric:
        return [None if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else str(v) for v in values]
    fmt = (sas_format or "").lstrip("$")
    if DATE_FORMATS.match(fmt) or DATETIME_FORMATS.match(fmt):
        unit = "s" if DATETIME_FORMATS.match(fmt) else "D"
        series = pd.Series(values, dtype="float64")
        # Only present values within reach go to pandas. A missing value among them makes
        # pandas 2.x round uninitialised memory, which raised FloatingPointError at random
        # (pandas-dev/pandas#58419, fixed in pandas 3), and values far out of range raise
        # OverflowError before errors="coerce" applies.
        reach = series.abs() < (DATE_REACH_DAYS if unit == "D" else DATE_REACH_DAYS * 86_400)
        dates = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
        if reach.any():
            dates[reach] = pd.to_datetime(series[reach], unit=unit, origin=pd.Timestamp(SAS_EPOCH), errors="coerce")
        # A present value that is no date keeps its number, so typing quarantines it with
        # the reason instead of it turning into a missing date.
        return [_number_text(v) if pd.isna(d) else d for v, d in zip(series, dates.dt.strftime("%Y%m%d"))]
    return [_number_text(v) for v in values]


def to_parquet(path: Path, target: Path, chunk_rows: int = CHUNK_ROWS) -> list[str]:
    """Write a SAS dataset's rows as text columns (+ ``_source_row``) to ``target``; return its columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyreadstat

    reader = _reader(path)
    writer = None
    row = 0
    columns: list[str] = []
    try:
        chunks = pyreadstat.read_file_in_chunks(reader, str(path), chunksize=chunk_rows,
                                                disable_datetime_conversion=True)
        for frame, meta in chunks:
            columns = list(meta.column_names)
            kinds = meta.readstat_variable_types
            formats = meta.original_variable_types
            data = {c: pa.array(text_column(frame[c].tolist(), formats.get(c), kinds.get(c) != "string"), pa.string())
                    for c in columns}
            data[SOURCE_ROW] = pa.array(range(row + 1, row + len(frame) + 1), pa.int64())
            row += len(frame)
            table = pa.table(data)
            if writer is None:
                writer = pq.ParquetWriter(str(target), table.schema)
            writer.write_table(table)
    except pyreadstat.PyreadstatError as error:
        raise UserError(f"{path}: not a readable SAS dataset ({error})") from None
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # no rows: an empty file with the columns
        columns = read_columns(path)
        schema = pa.schema([(c, pa.string()) for c in columns] + [(SOURCE_ROW, pa.int64())])
        pq.write_table(schema.empty_table(), str(target))
    return columns
