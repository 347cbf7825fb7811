"""Ingest a raw layout: files → bronze (as delivered) → silver (canonical) + quarantine.

Each raw table is parsed once from its files into ``bronze/<raw table>`` (every value as
text, plus the source file name and load time). A table's files may be CSV (plain or
gzipped), Parquet, fixed-record-length text (``.txt``/``.dat``, plain or gzipped) whose
layout a SAS INFILE/INPUT program beside them gives, or SAS datasets (``.sas7bdat``,
``.xpt``); all reach bronze as the same text. The mapping then types the bronze rows;
rows that cannot be typed go to ``quarantine/<raw table>`` with the column and the
reason, never silently dropped, and the clean rows feed the ``silver/`` tables. A code
value that breaks its code's format is set aside the same way while the rest of its row
lands. Re-running on the same files replaces every table with the same rows.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import gzip
import hashlib
import io
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from cohortlake.environment import whole_number
from cohortlake.errors import MissingInputError, UserError
from cohortlake.lake import layout as lake_layout
from cohortlake.lake.delta import Lakehouse  # noqa: E402
from cohortlake.lake.manifest import RunManifest
from cohortlake.lake.session import UNCOMPRESSED_CACHE, code_generation, job_description, session_conf, size_conf
from cohortlake.progress import Progress
from cohortlake.quality import gates
from cohortlake.sources import fixed_width, mapper, sas_dataset
from cohortlake.sources.canonical import SILVER_TABLES, silver_name
from cohortlake.sources.mapping import Mapping, load_mapping
from cohortlake.sources.sas_layout import RecordLayout, parse_layout

CORRUPT = "_corrupt_record"
LOADED_AT = "_loaded_at"
SOURCE_ROW = sas_dataset.SOURCE_ROW
FORMATS = {
    "csv": (".csv", ".csv.gz"),
    "parquet": (".parquet",),
    "fixed-width": (".txt", ".txt.gz", ".dat", ".dat.gz"),
    "sas": (".sas7bdat", ".xpt"),
}
SUFFIXES = tuple(s for suffixes in FORMATS.values() for s in suffixes)
LAYOUT_SUFFIX = ".sas"
READ_PROBLEMS = "_read_problems"
INGEST_THREADS = 3  # COHORTLAKE_INGEST_THREADS overrides it, read when an ingest runs
# While typing, Spark runs a stage's operators apart when fusing them would give a
# method over 8,000 bytes of bytecode (its default limit is 65,535, Java's own cap),
# the JVM's limit for compiling a method well. Typing a wide table fuses its typed
# columns into the dedupe's aggregation: for the carrier base file one 35,765-byte
# method, 24-26 s warm on 100,000 patients; run apart, 8.5 s (MBSF 11.2 -> 8.3 s).
# Only here: the build's tagging scan is one such method too, and runs 2.5x slower apart.
# The typed rows are persisted uncompressed (lake.session.UNCOMPRESSED_CACHE).
TYPING_CONF = {"spark.sql.codegen.hugeMethodLimit": "8000", **UNCOMPRESSED_CACHE}


@dataclass
class RawTableCounts:
    raw_table: str
    files: list[str]
    rows_in: int = 0
    duplicates: int = 0
    quarantined: int = 0
    rows_out: int = 0
    values_set_aside: int = 0
    """code values set aside in quarantine while their rows landed"""


@dataclass
class IngestReport:
    layout: str
    raw: list[RawTableCounts] = field(default_factory=list)
    silver: dict[str, int] = field(default_factory=dict)
    manifest_path: str | None = None
    quality: list = field(default_factory=list)
    """Gate reports (bronze, silver) when validation ran."""

    def to_dict(self) -> dict:
        # The gate reports are summarised, not deep-copied with every expectation's outcome.
        return {**asdict(replace(self, quality=[])),
                "quality": [{"stage": q.stage, "passed": q.passed, "run_id": q.run_id} for q in self.quality]}


bronze_name = lake_layout.bronze
quarantine_name = lake_layout.quarantine


@dataclass(frozen=True)
class FileGroup:
    """Files of one raw table read together: same format, same columns (and layout)."""

    format: str
    header: tuple[str, ...]
    layout: RecordLayout | None = None


def file_format(path: Path) -> str:
    name = path.name.lower()
    return next(kind for kind, suffixes in FORMATS.items() if name.endswith(suffixes))


def discover_files(raw_dir: Path, mapping: Mapping) -> dict[str, list[Path]]:
    """Files of each raw table by name pattern; a table without files is an error."""
    if not raw_dir.is_dir():
        raise MissingInputError(f"raw folder not found: {raw_dir}")
    names = sorted(p.name for p in raw_dir.iterdir() if p.is_file() and p.name.lower().endswith(SUFFIXES))
    found: dict[str, list[Path]] = {}
    for table, spec in mapping.raw.items():
        matches = [n for n in names if any(fnmatch.fnmatchcase(n.lower(), spec.files.lower() + s) for s in SUFFIXES)]
        if not matches:
            raise MissingInputError(
                f"{raw_dir}: no file for raw table '{table}' of layout '{mapping.layout}' "
                f"(expected a name matching '{spec.files}' ending in {', '.join(SUFFIXES)})")
        found[table] = [raw_dir / n for n in matches]
    return found


def layout_path(table: str, data_file: Path, mapping: Mapping) -> Path:
    """The SAS program giving a fixed-width file's layout.

    The mapping's ``layout:`` for the table when given (relative to the raw folder);
    otherwise a ``.sas`` file beside the data named ``<table>*.sas`` or after the table's
    file pattern: the one whose name the data file's name starts with, or the only one.
    """
    spec = mapping.raw[table]
    raw_dir = data_file.parent
    if spec.layout:
        path = Path(spec.layout)
        path = path if path.is_absolute() else raw_dir / path
        if not path.is_file():
            raise MissingInputError(f"{path}: SAS layout named by the mapping for raw table '{table}' not found")
        return path
    candidates = sorted(p for p in raw_dir.iterdir() if p.is_file() and p.name.lower().endswith(LAYOUT_SUFFIX) and (
        fnmatch.fnmatchcase(p.name.lower(), f"{table.lower()}*{LAYOUT_SUFFIX}")
        or fnmatch.fnmatchcase(p.name.lower(), spec.files.lower() + LAYOUT_SUFFIX)))
    if not candidates:
        raise MissingInputError(
            f"{data_file}: fixed-width file without a record layout: expected a SAS program "
            f"'{table}*.sas' beside it (INFILE … LRECL=, INPUT @1 NAME $CHAR10. …) or 'layout:' for "
            f"raw table '{table}' in the mapping")
    stem = data_file.name.lower()
    prefixed = [p for p in candidates if stem.startswith(p.name.lower()[: -len(LAYOUT_SUFFIX)])]
    if prefixed:
        return max(prefixed, key=lambda p: len(p.name))
    if len(candidates) == 1:
        return candidates[0]
    raise UserError(f"{data_file}: several SAS layouts could describe it ({', '.join(p.name for p in candidates)}); "
                    "name the layout after the data file or give 'layout:' in the mapping")


def read_header(path: Path) -> list[str]:
    """Column names of a raw file (CSV header row, Parquet schema, SAS dataset metadata)."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if file_format(path) == "sas":
        return sas_dataset.read_columns(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
    if not first.strip():
        raise UserError(f"{path}: line 1: expected a header row with column names, found an empty line")
    return [name.strip() for name in next(csv.reader(io.StringIO(first)))]


def check_columns(table: str, path: Path, header: list[str], mapping: Mapping, where: str = "line 1") -> None:
    required, optional = mapping.columns_used(table)
    missing = sorted(required - set(header))
    if missing:
        raise MissingInputError(
            f"{path}: {where}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"required by the '{mapping.layout}' mapping for raw table '{table}'")
    if optional and not optional & set(header):
        raise MissingInputError(
            f"{path}: {where}: none of the repeated columns {', '.join(sorted(optional)[:4])}, … "
            f"that the '{mapping.layout}' mapping reads from raw table '{table}'")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise UserError(f"{path}: {where}: column{'s' if len(duplicated) > 1 else ''} {', '.join(duplicated)} appear twice")


def group_by_header(table: str, files: list[Path], mapping: Mapping) -> dict[FileGroup, list[Path]]:
    """Check every file's columns against the mapping and group the files by format and columns."""
    groups: dict[FileGroup, list[Path]] = {}
    layouts: dict[Path, RecordLayout] = {}
    for path in files:
        kind = file_format(path)
        if kind == "fixed-width":
            program = layout_path(table, path, mapping)
            if program not in layouts:
                layouts[program] = parse_layout(program)
                check_columns(table, program, layouts[program].names, mapping, where="INPUT statement")
            group = FileGroup(kind, tuple(layouts[program].names), layouts[program])
        else:
            header = read_header(path)
            check_columns(table, path, header, mapping, where="line 1" if kind == "csv" else "columns")
            group = FileGroup("csv" if kind == "csv" else kind, tuple(header))
        groups.setdefault(group, []).append(path)
    return groups


def read_raw(spark, table: str, groups: dict[FileGroup, list[Path]], mapping: Mapping,
             staging: Path | None = None) -> DataFrame:
    """All rows of a raw table as text, with the file each came from.

    Files are read per format and header so a delivery whose years differ in trailing
    columns still lines up by name; malformed CSV rows and fixed-width records of the
    wrong length keep their text in ``_corrupt_record``. SAS datasets are converted
    chunk by chunk to Parquet under ``staging`` first (see ``sas_dataset``).
    """
    spec = mapping.raw[table]
    frames = []
    for group, paths in groups.items():
        header = list(group.header)
        csvs = [str(p) for p in paths] if group.format == "csv" else []
        parquets = [str(p) for p in paths] if group.format == "parquet" else []
        if group.format == "fixed-width":
            frames.append(fixed_width.read_fixed_width(spark, [str(p) for p in paths], group.layout,
                                                       CORRUPT, mapper.delivered_file_name()))
        if group.format == "sas":
            if staging is None:
                raise ValueError("SAS datasets need a staging folder")
            staging.mkdir(parents=True, exist_ok=True)
            for path in paths:
                target = staging / f"{path.name}.parquet"
                sas_dataset.to_parquet(path, target)
                frame = spark.read.parquet(str(target))
                frames.append(frame.select(*header, F.lit(None).cast("string").alias(CORRUPT),
                                           F.lit(path.name).alias(mapper.SOURCE_FILE), SOURCE_ROW))
        if csvs:
            schema = StructType([StructField(c, StringType()) for c in header] + [StructField(CORRUPT, StringType())])
            frame = (spark.read.schema(schema)
                     .option("header", True).option("mode", "PERMISSIVE")
                     .option("columnNameOfCorruptRecord", CORRUPT)
                     .option("encoding", "UTF-8")
                     .csv(csvs))
            frames.append(frame.select(*header, CORRUPT, mapper.delivered_file_name()))
        if parquets:
            frame = spark.read.parquet(*parquets)
            frames.append(frame.select(*[F.col(c).cast("string").alias(c) for c in header],
                                       F.lit(None).cast("string").alias(CORRUPT),
                                       mapper.delivered_file_name()))
    raw = frames[0]
    for frame in frames[1:]:
        raw = raw.unionByName(frame, allowMissingColumns=True)
    if spec.file_year:
        raw = raw.withColumn("FILE_YEAR", F.regexp_extract(mapper.SOURCE_FILE, spec.file_year, 1))
    return raw.withColumn(LOADED_AT, F.current_timestamp())


def type_bronze(bronze: DataFrame, table: str, mapping: Mapping,
                groups: dict[FileGroup, list[Path]]) -> DataFrame:
    """Deduplicated, typed rows with their problems: what the reading found, then the mapping's.

    ``groups`` are the files ``bronze`` was read from (``group_by_header``).
    """
    meta = (CORRUPT, LOADED_AT, mapper.SOURCE_FILE, SOURCE_ROW)
    data_columns = [c for c in bronze.columns if c not in meta]
    spec = mapping.raw[table]
    deduped = mapper.dedupe(bronze, data_columns + [CORRUPT], [p.name for ps in groups.values() for p in ps])
    corrupt = F.col(CORRUPT)
    # Fixed-width files: records of the wrong length, and numeric and date fields their
    # informat cannot read (the columns the mapping types are left to the mapping).
    fixed = [(g, [p.name for p in ps]) for g, ps in groups.items() if g.format == "fixed-width"]
    fixed_names = [n for _, names in fixed for n in names]
    typed_columns = set(spec.column_types())
    text = {c: mapper.clean_text(c) for c in data_columns}
    read_problems = []
    for group, names in fixed:
        in_group = F.col(mapper.SOURCE_FILE).isin(names)
        for problem in fixed_width.informat_problems(group.layout, text, typed_columns, corrupt):
            read_problems.append((in_group & problem.isNotNull(), problem))
    csv_fields = len(data_columns) - (1 if spec.file_year else 0)
    malformed_csv = corrupt.isNotNull() & (~F.col(mapper.SOURCE_FILE).isin(fixed_names) if fixed_names else F.lit(True))
    read_problems.append((malformed_csv, mapper.problem(
        F.lit("(whole row)"), corrupt, F.lit(f"malformed CSV row: expected {csv_fields} fields"))))
    with_read = deduped.withColumn(READ_PROBLEMS, mapper.problem_list(read_problems))
    typed = mapper.type_rows(with_read, spec, data_columns, mapper.code_columns(mapping, table))
    return typed.withColumn(mapper.PROBLEMS, F.concat(F.col(READ_PROBLEMS), F.col(mapper.PROBLEMS))).drop(
        CORRUPT, READ_PROBLEMS)


def ingest(spark, lake: Lakehouse, layout: str, raw_dir: str | Path, mapping_path: str | None = None,
           progress: Progress | None = None, validate: bool = True, runner=None) -> IngestReport:
    """Load every raw table of a layout into bronze, quarantine and silver; return the counts.

    With ``validate`` the bronze suites gate the typing step and the silver suites gate
    the result (``QualityGateError`` on a critical failure).
    """
    progress = progress or Progress(quiet=True)
    mapping = load_mapping(mapping_path or layout)
    if mapping_path and mapping.layout != layout:
        raise UserError(f"{mapping_path}: layout '{mapping.layout}' does not match --layout {layout}")
    raw_dir = Path(raw_dir)
    manifest = RunManifest(step="ingest")
    manifest.extra["layout"] = layout
    manifest.extra["mapping_sha256"] = hashlib.sha256(mapping.model_dump_json().encode()).hexdigest()
    files = discover_files(raw_dir, mapping)
    # every header is checked before anything is written, so a bad delivery leaves the lake as it was
    headers = {table: group_by_header(table, paths, mapping) for table, paths in files.items()}
    manifest.extra["raw_files"] = {t: [{"name": p.name, "bytes": p.stat().st_size} for p in ps] for t, ps in files.items()}
    manifest.extra["layouts"] = {t: sorted({Path(g.layout.path).name for g in groups if g.layout})
                                 for t, groups in headers.items() if any(g.layout for g in groups)}
    threads = whole_number("COHORTLAKE_INGEST_THREADS", INGEST_THREADS, minimum=1)
    report = IngestReport(layout=layout)
    clean: dict[str, DataFrame] = {}
    persisted: list[DataFrame] = []

    counts = {table: RawTableCounts(raw_table=table, files=[p.name for p in files[table]]) for table in files}
    if validate:
        # Importing Great Expectations takes seconds of driver time; do it while Spark writes bronze.
        from cohortlake.quality.run import preload_great_expectations, validation_threads

        validation_threads()  # a bad setting stops here, before bronze is written
        preload_great_expectations()

    @contextlib.contextmanager
    def phase(name: str, recorded: str | None = None):
        """One phase of one table: its progress line, its manifest timing (under ``recorded``,
        default ``name``) and the label of the Spark jobs it starts (``ingest: <name>``)."""
        with progress.step(name) as step, manifest.phase(recorded or name), job_description(spark, f"ingest: {name}"):
            yield step

    def load_bronze(table: str) -> None:
        with phase(bronze_name(table)) as step:
            staging = Path(lake_layout.staging_dir(lake.root, table))
            try:
                lake.write(bronze_name(table), read_raw(spark, table, headers[table], mapping, staging))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                with contextlib.suppress(OSError):  # still in use by another table's SAS files
                    staging.parent.rmdir()
            counts[table].rows_in = lake.row_count(bronze_name(table))
            step["detail"] = f"{counts[table].rows_in:,} rows from {len(files[table])} file(s)"

    def type_raw_table(table: str) -> RawTableCounts:
        """Typing, quarantine write and counts for one raw table."""
        table_counts = counts[table]
        with phase(f"type {table}", f"type/{table}") as step:
            typed = type_bronze(lake.read(bronze_name(table)), table, mapping, headers[table]).persist(
                StorageLevel.MEMORY_AND_DISK)
            persisted.append(typed)
            rejected = mapper.row_rejected()
            totals = typed.agg(
                F.count(F.lit(1)).alias("distinct_rows"),
                F.sum(mapper.COPIES).alias("rows"),
                F.sum(rejected.cast("long")).alias("quarantined"),
                F.sum(F.when(~rejected, F.size(mapper.PROBLEMS))).alias("set_aside"),
            ).first()
            rows = int(totals["rows"] or 0)
            if rows != table_counts.rows_in:
                raise RuntimeError(f"{table}: typed {rows} rows of the {table_counts.rows_in} in bronze")
            table_counts.duplicates = rows - int(totals["distinct_rows"])
            table_counts.quarantined = int(totals["quarantined"] or 0)
            table_counts.values_set_aside = int(totals["set_aside"] or 0)
            # in = out + quarantined + duplicates, by construction (checked just above)
            table_counts.rows_out = int(totals["distinct_rows"]) - table_counts.quarantined
            data_columns = [c for c in typed.columns if c not in (mapper.PROBLEMS, mapper.SOURCE_FILE, mapper.COPIES)]
            lake.write(quarantine_name(table), mapper.quarantine_rows(typed, table, mapping.raw[table], data_columns))
            clean[table] = mapper.clean_rows(typed).drop(mapper.COPIES, mapper.SOURCE_FILE)
            step["detail"] = (f"in {table_counts.rows_in:,}, duplicates {table_counts.duplicates:,}, "
                              f"quarantined {table_counts.quarantined:,}, out {table_counts.rows_out:,}")
        return table_counts

    def write_silver(table: str, frame: DataFrame) -> int:
        with phase(silver_name(table)) as step:
            lake.write(silver_name(table), frame)
            rows = lake.row_count(silver_name(table))
            step["detail"] = f"{rows:,} rows"
        return rows

    # Tables are independent: submitting their Spark jobs from a few threads lets one
    # table's driver-side work (planning, code generation, Delta commits) overlap
    # another's tasks, which on small and medium inputs is most of the wall time.
    # The bronze gate sits between the raw copy and everything typed from it: a delivery
    # that fails a critical expectation stops here and silver keeps its last version.
    # The silver gate judges the canonical tables; on a critical failure they go back to
    # their last validated version (downstream steps read the latest) and nothing is recorded.
    # Once bronze holds the delivery, its largest table decides whether everything after it
    # (gates, typing, silver) runs interpreted or compiled (lake.session.size_conf), until
    # the ingest ends.
    with contextlib.ExitStack() as sized, gates.gated(lake, [silver_name(t) for t in SILVER_TABLES],
                                                      enabled=validate) as silver_gate:
        try:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingest") as pool:
                list(pool.map(load_bronze, files))
                engine = size_conf(max(c.rows_in for c in counts.values()), "ingest")
                manifest.extra["code_generation"] = code_generation(engine)
                sized.enter_context(session_conf(spark, engine))
                if validate:
                    with manifest.phase("validate/bronze"):
                        report.quality.append(gates.gate_bronze(lake, layout, progress, runner))
                with session_conf(spark, TYPING_CONF):
                    report.raw = list(pool.map(type_raw_table, files))
                canonical = mapper.build_canonical(mapping, clean)
                rows = pool.map(lambda t: write_silver(t, canonical[t]), SILVER_TABLES)
                report.silver = dict(zip(SILVER_TABLES, rows))
        finally:
            for frame in persisted:
                frame.unpersist()
        if validate:
            with manifest.phase("validate/silver"):
                report.quality.append(silver_gate.run(gates.gate_silver, lake, progress, runner))
    manifest.extra["raw_tables"] = {c.raw_table: asdict(c) for c in report.raw}
    manifest.finish(lake)
    report.manifest_path = str(manifest.write(lake_layout.ingest_manifest(lake.root)))
    return report
