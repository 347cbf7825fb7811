"""The lakehouse: named Delta tables under one root, written and read through Spark.

Two backends write the same Delta protocol:

* ``delta-spark`` where its JVM classes are in the session (clusters, Databricks,
  ``--packages io.delta:…``): plain ``format("delta")`` reads and writes.
* ``delta-rs`` everywhere else: Spark writes Parquet into a fresh, uniquely named
  folder inside the table folder, then the ``deltalake`` package commits exactly those
  files as one Delta transaction. Until that commit lands the files are invisible to
  every Delta reader, so a writer killed mid-way leaves the previous version intact
  (the orphaned folder is what ``VACUUM`` is for). Reads ask ``deltalake`` for the
  snapshot's file list and hand it to Spark.

Table names are lake-relative (``silver/diagnosis``); every version read or written
through a :class:`Lakehouse` is recorded so a run manifest can pin its inputs.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from urllib.parse import unquote

from cohortlake.errors import UserError
from cohortlake.lake.layout import QUALITY_DIR
from cohortlake.lake.schemas import delta_to_spark_schema, schema_differences, spark_to_delta_schema
from cohortlake.lake.storage import arrow_filesystem, normalise_root, rust_uri, storage_options_from_config

BACKEND_DELTA_SPARK = "delta-spark"
BACKEND_DELTA_RS = "delta-rs"
BACKENDS = (BACKEND_DELTA_SPARK, BACKEND_DELTA_RS)
WRITE_MODES = ("overwrite", "append")

# No leading '_': Hadoop hides such paths and _delta_log is Delta's own folder.
_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_]*$")
# `_quality/…` is the one reserved area: validation results live beside the data they judge.
_NAME = re.compile(rf"^({QUALITY_DIR}/)?[a-z0-9][a-z0-9_]*(/[a-z0-9][a-z0-9_]*)*$")
_COMMIT_FILE = re.compile(r"^\d{20}\.(json|checkpoint(\.\d+\.\d+)?\.parquet)$")
# Spark writes a null (or empty-string) partition value as this directory name.
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
# Spark's own session conf for Parquet timestamps; Delta readers (delta-rs included)
# expect INT64 microseconds, not the legacy INT96 that Spark writes by default.
_PARQUET_WRITE_CONF = {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}
# How many write commits to look back through to find our own commit's version.
_HISTORY_LOOKBACK = 50
_FOOTER_READERS = 16


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def detect_backend(spark) -> str:
    """``delta-spark`` when the session has Delta's SQL extension and catalog (or runs on
    Databricks), else ``delta-rs``; ``COHORTLAKE_DELTA_BACKEND`` overrides."""
    forced = os.environ.get("COHORTLAKE_DELTA_BACKEND")
    if forced:
        if forced not in BACKENDS:
            raise UserError(f"COHORTLAKE_DELTA_BACKEND={forced!r} is not one of {', '.join(BACKENDS)}")
        return forced
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):  # Delta is built into the runtime
        return BACKEND_DELTA_SPARK
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    catalog = spark.conf.get("spark.sql.catalog.spark_catalog", "") or ""
    if "io.delta.sql.DeltaSparkSessionExtension" in extensions and catalog.endswith("DeltaCatalog"):
        return BACKEND_DELTA_SPARK
    return BACKEND_DELTA_RS


# --- the lakehouse ---------------------------------------------------------------------


class Lakehouse:
    """Named Delta tables under ``root``; records every version it reads and writes."""

    def __init__(self, root: str, spark, *, backend: str | None = None,
                 storage_options: dict[str, str] | None = None):
        self.root = normalise_root(root)
        # Object-store credentials and endpoints for delta-rs and pyarrow; local roots need none.
        self.storage_options = (
            None if "://" not in self.root
            else dict(storage_options) if storage_options is not None
            else storage_options_from_config()
        )
        self.spark = spark
        self.backend = backend or detect_backend(spark)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {self.backend!r}")
        self.reads: dict[str, int] = {}
        self.writes: dict[str, int] = {}
        self._fs = None
        # Set once for the session rather than around each write: writes run from
        # several threads, and restoring a setting mid-way would race another write.
        for key, value in _PARQUET_WRITE_CONF.items():
            spark.conf.set(key, value)

    def __repr__(self) -> str:
        return f"Lakehouse({self.root!r}, backend={self.backend!r})"

    # names and places

    def path(self, name: str) -> str:
        """Where table ``name`` lives (``silver/diagnosis`` → ``<root>/silver/diagnosis``)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise UserError(
                f"bad table name {name!r}: use segments of lowercase letters, digits and '_' "
                "(not starting with '_'; only '_quality/' is reserved) separated by '/', e.g. 'silver/diagnosis'"
            )
        return f"{self.root}/{name}"

    def exists(self, name: str) -> bool:
        """True when ``name`` is a Delta table with at least one commit."""
        return self._has_commit(self.path(name))

    def tables(self) -> list[str]:
        """Names of all Delta tables under the root, sorted."""
        return self._tables_under("")

    def _tables_under(self, start: str) -> list[str]:
        """Tables at or below the folder ``start`` (a lake-relative name, '' for the root)."""
        fs, base = self._filesystem()
        found: list[str] = []

        def visit(prefix: str) -> None:
            from pyarrow import fs as pafs

            infos = fs.get_file_info(pafs.FileSelector(f"{base}/{prefix}".rstrip("/"), allow_not_found=True))
            folders = sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)
            for folder in folders:
                # Write folders (w-…) and partition folders (col=value) are not valid
                # names, so the walk never descends into a table's data.
                if not (_SEGMENT.match(folder) or (not prefix and folder == QUALITY_DIR)):
                    continue
                name = f"{prefix}/{folder}" if prefix else folder
                if self._has_commit(f"{self.root}/{name}"):
                    found.append(name)
                else:
                    visit(name)

        visit(start)
        return found

    # versions and history

    def version(self, name: str) -> int | None:
        """Latest version of ``name``, or None when there is no such table."""
        path = self.path(name)
        if not self._has_commit(path):
            return None
        if self.backend == BACKEND_DELTA_SPARK:
            rows = self.spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").select("version").collect()
            return int(rows[0][0])
        return self._delta(path).version()

    def history(self, name: str) -> list[dict]:
        """Commits of ``name``, newest first: version, timestamp (UTC ISO), operation, mode, rows_written."""
        path = self._require_table(name)
        if self.backend == BACKEND_DELTA_SPARK:
            rows = self.spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
            commits = []
            for row in rows:
                commit = row.asDict()
                # PySpark hands timestamps back as naive local time; .timestamp() undoes that.
                commit["timestamp"] = int(commit["timestamp"].timestamp() * 1000)
                commits.append(commit)
        else:
            commits = self._delta(path).history()
        return sorted((_history_entry(c) for c in commits), key=lambda e: e["version"], reverse=True)

    def row_count(self, name: str, version: int | None = None) -> int:
        """Rows in a snapshot, from the log's per-file ``numRecords`` (no data files read)."""
        path = self._require_table(name)
        self._check_version(name, path, version)
        if self.backend == BACKEND_DELTA_SPARK:
            # delta-spark answers a bare count from the same log statistics.
            return self._reader(path, version).count()
        import pyarrow as pa

        table = self._rust_table(name, path, version)
        counts = pa.table(table.get_add_actions(flatten=True)).column("num_records").to_pylist()
        if any(c is None for c in counts):
            # A file committed without stats (another writer): only a scan can tell.
            return self._spark_frame(table).count()
        return int(sum(counts))

    # reading and writing

    def read(self, name: str, version: int | None = None):
        """The Spark DataFrame of ``name`` at ``version`` (latest when None)."""
        path = self._require_table(name)
        self._check_version(name, path, version)
        if self.backend == BACKEND_DELTA_SPARK:
            frame = self._reader(path, version)
            read_version = version if version is not None else self.version(name)
        else:
            table = self._rust_table(name, path, version)
            frame = self._spark_frame(table)
            read_version = table.version()
        self.reads[name] = int(read_version)
        return frame

    def write(self, name: str, df, mode: str = "overwrite", partition_by: list[str] | str | None = None) -> int:
        """Write ``df`` as the next version of ``name`` and return that version.

        ``overwrite`` replaces the whole snapshot (schema and partitioning included);
        ``append`` adds rows and requires the table's columns and types.
        """
        path = self.path(name)
        if mode not in WRITE_MODES:
            raise ValueError(f"mode must be one of {WRITE_MODES}, not {mode!r}")
        partition_by = [partition_by] if isinstance(partition_by, str) else list(partition_by or [])
        missing = [c for c in partition_by if c not in df.columns]
        if missing:
            raise UserError(f"cannot partition {name} by {missing}: the DataFrame has columns {df.columns}")
        if not self._has_commit(path):
            self._check_not_nested(name)
        write_id = f"w-{_utc_now():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
        if self.backend == BACKEND_DELTA_SPARK:
            self._write_native(path, df, mode, partition_by, write_id)
        else:
            self._write_rust(name, path, df, mode, partition_by, write_id)
        version = self._version_of_write(path, write_id)
        self.writes[name] = version
        return version

    def restore(self, name: str, version: int) -> int:
        """Make ``version`` the latest again (Delta RESTORE: a new commit; nothing is deleted)."""
        path = self._require_table(name)
        self._check_version(name, path, version)
        if self.backend == BACKEND_DELTA_SPARK:
            self.spark.sql(f"RESTORE TABLE delta.`{path}` TO VERSION AS OF {int(version)}")
        else:
            self._delta(path).restore(int(version))
        latest = self.version(name)
        self.writes[name] = latest
        return latest

    # --- internals ---------------------------------------------------------------------

    def _filesystem(self):
        """(pyarrow filesystem, root as that filesystem spells it), made once per lakehouse."""
        if self._fs is None:
            self._fs = arrow_filesystem(self.root, self.storage_options)
        return self._fs

    def _delta(self, path: str, version: int | None = None):
        """deltalake's handle on the table at ``path`` (with the lake's storage options)."""
        import deltalake

        return deltalake.DeltaTable(rust_uri(path), version=version, storage_options=self.storage_options)

    def _fs_path(self, path: str) -> str:
        """``path`` (under root) as the filesystem from :meth:`_filesystem` spells it."""
        _, base = self._filesystem()
        return base + path[len(self.root):]

    def _has_commit(self, path: str) -> bool:
        if self.backend == BACKEND_DELTA_SPARK:
            from delta.tables import DeltaTable

            return bool(DeltaTable.isDeltaTable(self.spark, path))
        from pyarrow import fs as pafs

        fs, _ = self._filesystem()
        infos = fs.get_file_info(pafs.FileSelector(self._fs_path(path) + "/_delta_log", allow_not_found=True))
        return any(i.type == pafs.FileType.File and _COMMIT_FILE.match(i.base_name) for i in infos)

    def _require_table(self, name: str) -> str:
        path = self.path(name)
        if not self._has_commit(path):
            try:
                known = self.tables()
                listing = ", ".join(known[:20]) + (" …" if len(known) > 20 else "") if known else "none"
            except Exception as error:  # a root we cannot list must not hide the real message
                listing = f"cannot list: {error}"
            raise UserError(f"no Delta table {name!r} at {path} (tables under {self.root}: {listing})")
        return path

    def _check_version(self, name: str, path: str, version) -> None:
        """UserError unless ``version`` is None or a version the table has."""
        if version is None:
            return
        latest = self.version(name)
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= latest:
            raise self._missing_version(name, path, version, latest)

    def _missing_version(self, name: str, path: str, version, latest: int | None = None) -> UserError:
        latest = self.version(name) if latest is None else latest
        return UserError(f"table {name!r} at {path} has no version {version!r} (latest is {latest})")

    def _check_not_nested(self, name: str) -> None:
        """A new table may not sit inside another table's folder, nor hold tables itself."""
        segments = name.split("/")
        for end in range(1, len(segments)):
            outer = "/".join(segments[:end])
            if self._has_commit(f"{self.root}/{outer}"):
                raise UserError(
                    f"cannot create table {name!r}: it would sit inside table {outer!r} at {self.path(outer)}"
                )
        inner = self._tables_under(name)
        if inner:
            raise UserError(
                f"cannot create table {name!r} at {self.path(name)}: it holds tables {', '.join(inner[:5])}"
            )

    def _version_of_write(self, path: str, write_id: str) -> int:
        """The version our commit got: found by its write id, so a concurrent commit can't fool us."""
        if self.backend == BACKEND_DELTA_SPARK:
            rows = self.spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT {_HISTORY_LOOKBACK}").collect()
            commits = [r.asDict() for r in rows]
        else:
            commits = self._delta(path).history(limit=_HISTORY_LOOKBACK)
        for commit in commits:
            if _our_metadata(commit.get("userMetadata")).get("write_id") == write_id:
                return int(commit["version"])
        raise RuntimeError(f"commit of write {write_id} not found in the last {_HISTORY_LOOKBACK} commits of {path}")

    # delta-spark

    def _reader(self, path: str, version: int | None):
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(path)

    def _write_native(self, path, df, mode, partition_by, write_id) -> None:
        writer = (
            df.write.format("delta")
            .mode(mode)
            .option("userMetadata", _user_metadata(write_id, mode))
        )
        if mode == "overwrite":
            # Same meaning as the delta-rs path: an overwrite replaces schema and partitioning too.
            writer = writer.option("overwriteSchema", "true")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(path)

    # delta-rs

    def _rust_table(self, name: str, path: str, version: int | None):
        from deltalake.exceptions import DeltaError

        try:
            return self._delta(path, version)
        except DeltaError as error:
            # e.g. a version whose log file was cleaned up after the retention period
            if version is not None:
                raise self._missing_version(name, path, version) from error
            raise

    def _spark_path(self, uri: str) -> str:
        """A file URI from deltalake as Spark spells it (``s3://`` back to the root's ``s3a://``)."""
        if self.root.startswith("s3a://") and uri.startswith("s3://"):
            return "s3a://" + uri[len("s3://"):]
        return uri

    def _spark_frame(self, table):
        """Spark DataFrame over one deltalake snapshot."""
        schema = delta_to_spark_schema(table.schema())
        partition_columns = list(table.metadata().partition_columns)
        files = [self._spark_path(u) for u in table.file_uris()]
        if not files:
            return self.spark.createDataFrame([], schema)
        reader = self.spark.read.schema(schema)
        if not partition_columns:
            return reader.parquet(*files)
        # Partition values live in the folder names (col=value/) below each write
        # folder. Spark recovers them, typed by the schema, when told where the
        # partition folders start; one basePath per write folder, hence the union.
        by_base: dict[str, list[str]] = {}
        for file in files:
            base = file.rsplit("/", 1 + len(partition_columns))[0]
            by_base.setdefault(base, []).append(file)
        frames = [
            reader.option("basePath", base).parquet(*group).select(*schema.fieldNames())
            for base, group in sorted(by_base.items())
        ]
        frame = frames[0]
        for other in frames[1:]:
            frame = frame.unionByName(other)
        return frame

    def _write_rust(self, name, path, df, mode, partition_by, write_id) -> None:
        from deltalake.transaction import CommitProperties, create_table_with_add_actions

        schema = spark_to_delta_schema(df.schema)
        uri = rust_uri(path)
        table = self._delta(path) if self._has_commit(path) else None
        table_partitions = list(table.metadata().partition_columns) if table is not None else None
        if table is not None and mode == "append":
            # Checked before any data is written: delta-rs would commit mismatched files silently.
            problems = schema_differences(json.loads(table.schema().to_json()), json.loads(schema.to_json()))
            if table_partitions != partition_by:
                problems.append(f"partitioned by {partition_by} but the table is partitioned by {table_partitions}")
            if problems:
                raise UserError(f"cannot append to {name} at {path}: " + "; ".join(problems))

        folder = f"{path}/{write_id}"
        writer = df.write.mode("errorifexists")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        try:
            writer.parquet(folder)
        except BaseException:
            self._remove_folder(folder)
            raise
        actions = self._add_actions(path, write_id, partition_by)
        rows = sum(json.loads(a.stats)["numRecords"] for a in actions)
        commit = CommitProperties(
            custom_metadata={
                "userMetadata": _user_metadata(write_id, mode),
                # Same key and string values as delta-spark, so history reads alike.
                "operationMetrics": {"numFiles": str(len(actions)), "numOutputRows": str(rows)},
            }
        )
        if table is None:
            create_table_with_add_actions(
                uri, schema, actions, mode="error", partition_by=partition_by, commit_properties=commit,
                storage_options=self.storage_options,
            )
        elif mode == "append":
            table.create_write_transaction(
                actions, "append", table.schema(), table_partitions, commit_properties=commit
            )
        elif table_partitions == partition_by:
            table.create_write_transaction(actions, "overwrite", schema, partition_by, commit_properties=commit)
        else:
            # create_write_transaction keeps the old partition columns; only a
            # create-or-replace commit changes them (old files removed, old versions kept).
            create_table_with_add_actions(
                uri, schema, actions, mode="overwrite", partition_by=partition_by, commit_properties=commit,
                storage_options=self.storage_options,
            )

    def _add_actions(self, path: str, write_id: str, partition_by: list[str]):
        """One AddAction per Parquet file Spark left in the write folder, row count from its footer."""
        from deltalake.transaction import AddAction
        from pyarrow import fs as pafs
        from pyarrow import parquet as pq

        fs, _ = self._filesystem()
        table_base = self._fs_path(path)
        infos = fs.get_file_info(pafs.FileSelector(f"{table_base}/{write_id}", allow_not_found=True, recursive=True))
        # _SUCCESS, _temporary and .crc checksums are Spark/Hadoop bookkeeping, not data.
        data_files = [
            i
            for i in infos
            if i.type == pafs.FileType.File
            and not any(part.startswith(("_", ".")) for part in i.path[len(table_base) + 1 :].split("/"))
        ]

        def action(info):
            relative = info.path[len(table_base) + 1 :]
            with fs.open_input_file(info.path) as handle:
                records = pq.ParquetFile(handle).metadata.num_rows
            values = _partition_values(relative, partition_by)
            # Only numRecords: it is all row_count needs, and min/max derived by hand
            # for every type would, if ever wrong, make readers skip files silently.
            return AddAction(
                path=relative,
                size=info.size,
                partition_values=values,
                modification_time=info.mtime_ns // 1_000_000,
                data_change=True,
                stats=json.dumps({"numRecords": records}),
            )

        if not data_files:
            return []
        with ThreadPoolExecutor(max_workers=min(_FOOTER_READERS, len(data_files))) as pool:
            return sorted(pool.map(action, data_files), key=lambda a: a.path)

    def _remove_folder(self, folder: str) -> None:
        try:
            fs, _ = self._filesystem()
            fs.delete_dir(self._fs_path(folder))
        except Exception:  # nothing references the folder; leaving it is harmless
            pass


def _partition_values(relative: str, partition_by: list[str]) -> dict[str, str | None]:
    """Partition values from ``<write folder>/col=value/…/file`` (Spark escapes values with %XX)."""
    segments = relative.split("/")[1:-1]
    found = {}
    for segment in segments:
        key, sep, value = segment.partition("=")
        if sep:
            found[unquote(key)] = None if value == _HIVE_NULL else unquote(value)
    if list(found) != partition_by:
        raise RuntimeError(f"file {relative} is not laid out as partitions {partition_by}")
    return found


def _user_metadata(write_id: str, mode: str) -> str:
    return json.dumps({"writer": "cohortlake", "write_id": write_id, "mode": mode}, sort_keys=True)


def _our_metadata(value) -> dict:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) and parsed.get("writer") == "cohortlake" else {}


def _history_entry(commit: dict) -> dict:
    """One commit as both backends report it, in the shape history() promises."""
    params = commit.get("operationParameters") or {}
    metrics = commit.get("operationMetrics") or {}
    ours = _our_metadata(commit.get("userMetadata"))
    rows = metrics.get("numOutputRows")
    mode = ours.get("mode") or (str(params["mode"]).lower() if params.get("mode") else None)
    timestamp = datetime.fromtimestamp(int(commit["timestamp"]) / 1000, tz=timezone.utc)
    return {
        "version": int(commit["version"]),
        "timestamp": timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "operation": commit.get("operation"),
        "mode": mode,
        "rows_written": int(rows) if rows is not None else None,
    }
