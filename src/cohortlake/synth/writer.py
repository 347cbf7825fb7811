"""Write generated tables as CSV files (or fixed-width text with a SAS layout) with their
final names, byte-identical per seed.

All tables of a layout go out in one Spark job: every row becomes one CSV line (built
in SQL), tagged with the table, the final file name and a bucket; Spark writes the lines
as text partitioned by (table, file, bucket) into a temporary directory under
``out_dir``. We then assemble each final file from our header line and its part files
in bucket order, and delete the temporary directory (with ``_SUCCESS`` and ``.crc``
files). One job instead of one per table matters: on small data Spark's fixed cost per
job dominates. Rows are hash-partitioned on (file, bucket) into a partition count that
the caller derives from the table sizes (never from the cores) and sorted within
partitions by a stable key, so the bytes depend only on the data.

A layout hands ``write_tables`` its tables as ``OutputTable`` (rows, columns, and the
SQL naming each row's file, bucket and sort key); the rows per table and the injected
dirt (``synth.dirt``'s flags) are counted while the files are written, with no second
pass over the data.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from cohortlake.synth.dirt import DIRTY_FLAGS, DIRTY_KINDS
from cohortlake.synth.random import lit

TMP_DIR_NAME = "_synth_tmp"
ROWS_PER_PART = 400_000  # target rows per output file (or per bucket of a single big file)
LINE_COLUMNS = ("__table", "__file", "__bucket", "__sort", "line")
FIXED_WIDTH_SUFFIX = ".txt.gz"  # a fixed-width file is named as its CSV would be, with this for ".csv"
_COPY_BUFFER = 8 * 1024 * 1024


def parts_for(expected_rows: float) -> int:
    """Files (or buckets) for a table of about this many rows: from the table size, not the cores."""
    return max(1, math.ceil(expected_rows / ROWS_PER_PART))


def header_line(columns: Sequence[str], quoted: bool = False) -> str:
    """The CSV header line, with every name in double quotes when ``quoted``."""
    names = [f'"{c}"' for c in columns] if quoted else list(columns)
    return ",".join(names) + "\n"


def csv_line(columns: Sequence[str], text_columns: Sequence[str] = ()) -> str:
    """SQL for one CSV line of string columns: null -> empty field, no quoting.

    Codes, dates and numbers never contain a comma, quote or line break, so they are
    written as they are (trailing blanks included); only ``text_columns`` (free text
    such as drug names) are quoted when they need it.
    """
    fields = []
    for c in columns:
        value = f"coalesce(`{c}`, '')"
        if c in text_columns:
            value = (f"CASE WHEN `{c}` RLIKE '[,\"\\\\r\\\\n]' "
                     f"THEN concat('\"', replace(`{c}`, '\"', '\"\"'), '\"') ELSE {value} END")
        fields.append(value)
    return f"concat_ws(',', {', '.join(fields)})"


def fixed_line(fields: Sequence[tuple[str, int, bool]]) -> str:
    """SQL for one fixed-width record: each (column, width, numeric) padded to its width.

    Character fields are left-aligned and padded with blanks (their own trailing blanks
    cannot be told from padding, so they are dropped), numeric fields right-aligned as in
    NCI's files. A value longer than its field is a generator bug and fails the job.
    """
    parts = []
    for column, width, numeric in fields:
        value = f"rtrim(coalesce(`{column}`, ''))"
        padded = f"lpad(trim({value}), {width}, ' ')" if numeric else f"rpad({value}, {width}, ' ')"
        parts.append(f"CASE WHEN length({value}) > {width} THEN "
                     f"raise_error(concat('{column} longer than its {width} positions: ', {value})) "
                     f"ELSE {padded} END")
    return f"concat({', '.join(parts)})"


def sas_program(table: str, files: str, fields: Sequence[tuple[str, int, str, str]], note: str) -> str:
    """A SAS program reading one table's fixed-width files, in the style of NCI's layouts.

    ``fields``: (column, start position, informat, label). INFILE gives the record length,
    INPUT a column pointer and informat per field, LABEL the meaning of each column.
    """
    lrecl = max(start + _informat_width(informat) - 1 for _, start, informat, _ in fields)
    name_width = max(len(c) for c, *_ in fields)
    lines = [
        "/*" + "-" * 76 + "*/",
        f"/* {table}: fixed-record-length layout".ljust(78) + " */",
        f"/* {note}".ljust(78) + " */",
        f"/* Files: {files} (gzipped ASCII, one record per line)".ljust(78) + " */",
        "/*" + "-" * 76 + "*/",
        "",
        f"filename {table[:8]} '{files}';",
        "",
        f"data {table};",
        f"  infile {table[:8]} lrecl={lrecl} missover pad;",
        "  input",
    ]
    lines += [f"    @{start:05d} {column.ljust(name_width)} {informat}" for column, start, informat, _ in fields]
    lines += ["  ;", "", "  label"]
    lines += [f"    {column.ljust(name_width)} = \"{label}\"" for column, _, _, label in fields]
    lines += ["  ;", "run;", ""]
    return "\n".join(lines)


def _informat_width(informat: str) -> int:
    return int(re.search(r"(\d+)\.", informat).group(1))


def _part_files(directory: str) -> list[str]:
    # part-00003-<uuid>.c000.txt: order by the partition number Spark put in the name
    found = []
    for name in os.listdir(directory):
        match = re.match(r"part-(\d+)", name)
        if match and not name.endswith(".crc"):
            found.append((int(match.group(1)), name))
    return [os.path.join(directory, name) for _, name in sorted(found)]


def _partition_dirs(directory: str, column: str) -> dict[str, str]:
    prefix = f"{column}="
    return {unquote(d[len(prefix):]): os.path.join(directory, d)
            for d in os.listdir(directory) if d.startswith(prefix)}


def _concatenate(target: str, header: str, sources: Sequence[str]) -> None:
    opener = (lambda path: gzip.GzipFile(path, "wb", compresslevel=6, mtime=0)) if target.endswith(".gz") else \
        (lambda path: open(path, "wb"))
    with opener(target) as out:
        out.write(header.encode("utf-8"))
        for source in sources:
            with open(source, "rb") as part:
                shutil.copyfileobj(part, out, _COPY_BUFFER)


def write_files(lines: DataFrame, out_dir: str, headers: Mapping[str, str],
                expected_files: Mapping[str, Sequence[str]], partitions: int) -> dict[str, list[str]]:
    """Write a frame of CSV lines (columns ``LINE_COLUMNS``) as final files in ``out_dir``.

    ``headers`` maps each table to its header line; ``expected_files`` lists, per table,
    files that must exist even without rows (written with the header only). Returns
    each table's file names, sorted.
    """
    tmp = os.path.join(out_dir, TMP_DIR_NAME, "lines")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    (lines.select(*LINE_COLUMNS)
     .repartition(partitions, "__file", "__bucket")
     .sortWithinPartitions("__table", "__file", "__bucket", "__sort", "line")
     .drop("__sort")
     .write.mode("overwrite").option("lineSep", "\n").option("encoding", "UTF-8")
     .partitionBy("__table", "__file", "__bucket").text(tmp))

    written: dict[str, list[str]] = {table: [] for table in headers}
    if os.path.isdir(tmp):
        for table, table_dir in _partition_dirs(tmp, "__table").items():
            for name, file_dir in _partition_dirs(table_dir, "__file").items():
                buckets = _partition_dirs(file_dir, "__bucket")
                parts = [p for b in sorted(buckets, key=int) for p in _part_files(buckets[b])]
                _concatenate(os.path.join(out_dir, name), headers[table], parts)
                written[table].append(name)
    for table, names in expected_files.items():
        for name in names:
            if name not in written[table]:
                _concatenate(os.path.join(out_dir, name), headers[table], [])
                written[table].append(name)
    shutil.rmtree(tmp)
    return {table: sorted(names) for table, names in written.items()}


@dataclass(frozen=True)
class OutputTable:
    """How one table becomes files: its rows, columns, file/bucket/sort keys as SQL."""

    name: str
    rows: DataFrame
    columns: Sequence[str]
    file: str            # SQL giving the final file name of a row
    sort: str            # SQL giving a row's stable sort key within its file
    expected_files: Sequence[str]
    bucket: str = "0"    # SQL giving the bucket of a row within its file (files split for speed)
    text_columns: Sequence[str] = ()


def write_tables(out_dir: str, tables: Sequence[OutputTable], partitions: int, quoted_header: bool = False,
                 fixed_width: Mapping[str, Sequence[tuple[str, int, str, str]]] | None = None) -> tuple[dict, dict]:
    """Write all tables in one Spark job; return ``files`` (names, rows) and injected-dirt counts.

    ``fixed_width``: each table's fields (column, start, informat, label) as ``sas_program``
    takes them; given, the tables are written as gzipped fixed-record-length text without
    a header (``.txt.gz`` for ``.csv``), as NCI ships them. The SAS layout programs are
    the layout's to write.
    """
    fixed = fixed_width is not None
    layouts = fixed_width or {}
    if fixed:
        tables = [OutputTable(t.name, t.rows, t.columns, f"regexp_replace({t.file}, '[.]csv$', '{FIXED_WIDTH_SUFFIX}')",
                              t.sort, [n.removesuffix(".csv") + FIXED_WIDTH_SUFFIX for n in t.expected_files],
                              t.bucket, t.text_columns) for t in tables]

    def line_sql(t: OutputTable) -> str:
        if fixed:
            return fixed_line([(c, _informat_width(i), not i.startswith("$") and "yymmdd" not in i)
                               for c, _, i, _ in layouts[t.name]])
        return csv_line(t.columns, t.text_columns)

    branches, observations = [], {}
    for t in tables:
        flags = {f: (f if f in t.rows.columns else "FALSE") for f in DIRTY_FLAGS}
        rows = t.rows.selectExpr("*", *[f"{expr} AS {flag}" for flag, expr in flags.items() if expr == "FALSE"])
        # counters that fill in while the files are written: no second pass over the data
        observations[t.name] = Observation(f"{t.name}-{uuid.uuid4().hex[:8]}")
        rows = rows.observe(observations[t.name], F.count(F.lit(1)).alias("rows"),
                            *[F.count_if(F.col(flag)).alias(kind) for kind, flag in zip(DIRTY_KINDS, DIRTY_FLAGS)])
        branches.append(rows.selectExpr(
            f"{lit(t.name)} AS __table", f"{t.file} AS __file", f"CAST({t.bucket} AS INT) AS __bucket",
            f"{t.sort} AS __sort", f"{line_sql(t)} AS line"))
    lines = branches[0]
    for branch in branches[1:]:
        lines = lines.unionByName(branch)
    headers = {t.name: "" if fixed else header_line(t.columns, quoted_header) for t in tables}
    names = write_files(lines, out_dir, headers, {t.name: t.expected_files for t in tables}, partitions)
    counts = {name: obs.get for name, obs in observations.items()}
    files = {t.name: {"files": names[t.name], "rows": int(counts[t.name]["rows"])} for t in tables}
    dirty = {t.name: {kind: int(counts[t.name][kind]) for kind in DIRTY_KINDS}
             for t in tables if any(f in t.rows.columns for f in DIRTY_FLAGS)}
    return files, dirty


def remove_tmp(out_dir: str) -> None:
    """Delete the temporary Spark output directory if a run left one."""
    shutil.rmtree(os.path.join(out_dir, TMP_DIR_NAME), ignore_errors=True)
