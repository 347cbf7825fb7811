"""The lakehouse: Delta versions, time travel, types, partitions, atomic overwrite, manifests.

Every table is also opened with the ``deltalake`` package, so the tests check that what
Spark reads back is a real Delta table any Delta reader sees the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import delta_rows

from cohortlake.errors import UserError
from cohortlake.lake.delta import Lakehouse
from cohortlake.lake.manifest import RunManifest

pytestmark = pytest.mark.spark

from paths import LIB

WRITER_PROC = LIB / "lake_writer_proc.py"


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    return Lakehouse(str(tmp_path_factory.mktemp("lake")), spark)


def delta_table(path, version=None):
    """deltalake's view of a table."""
    import deltalake

    return deltalake.DeltaTable(path, version=version)


def ordered(rows):
    """Rows in a fixed order that tolerates None values."""
    return sorted((tuple(r) for r in rows), key=repr)


def spark_rows(frame):
    return ordered(frame.collect())


def by_id(rows):
    return sorted(rows, key=lambda r: r["id"])


# --- versions, time travel, history -------------------------------------------------


def test_overwrite_append_versions_time_travel_and_history(lake, spark):
    name = "silver/diagnosis"
    first = [(1, "I10"), (2, "E11")]
    second = [(3, "C50"), (4, "C61"), (5, "Z00")]
    appended = [(6, None)]
    schema = "person_id long, code string"

    assert lake.write(name, spark.createDataFrame(first, schema)) == 0
    assert lake.write(name, spark.createDataFrame(second, schema), mode="overwrite") == 1
    assert lake.write(name, spark.createDataFrame(appended, schema), mode="append") == 2
    assert lake.version(name) == 2
    assert lake.writes[name] == 2

    expected = {0: first, 1: second, 2: second + appended}
    for version, rows in expected.items():
        assert spark_rows(lake.read(name, version=version)) == ordered(rows)
        assert lake.reads[name] == version
        assert ordered((r["person_id"], r["code"]) for r in delta_rows(lake.path(name), version)) == ordered(rows)
        assert lake.row_count(name, version) == len(rows)
    assert spark_rows(lake.read(name)) == ordered(second + appended)
    assert lake.reads[name] == 2

    # The overwrite replaced every file; the old snapshot keeps its own.
    v0, v1, v2 = (set(delta_table(lake.path(name), v).file_uris()) for v in (0, 1, 2))
    assert v0 and v1 and not (v0 & v1)
    assert v1 < v2
    assert all(Path(f).exists() for f in v0 | v2)

    history = lake.history(name)
    assert [h["version"] for h in history] == [2, 1, 0]
    assert [h["mode"] for h in history] == ["append", "overwrite", "overwrite"]
    assert [h["rows_written"] for h in history] == [1, 3, 2]
    assert [h["operation"] for h in history] == ["WRITE", "WRITE", "CREATE TABLE"]  # as delta-rs names them
    assert [h["timestamp"] for h in history] == sorted((h["timestamp"] for h in history), reverse=True)
    assert delta_table(lake.path(name)).version() == 2


# --- types ------------------------------------------------------------------------------


TYPES_SCHEMA = (
    "id int, name string, big long, small short, tiny byte, ratio double, weight float, "
    "flag boolean, service_date date, recorded_at timestamp, paid decimal(12,2), raw binary, "
    "codes array<string>, provider struct<npi:string,specialty:int>, counts map<string,long>"
)


def typed_rows():
    return [
        (
            1, "a", 2**40, 7, -3, 1.25, 0.5, True, dt.date(2019, 12, 31),
            dt.datetime(2020, 1, 2, 3, 4, 5, 123456), Decimal("1234567890.12"), b"\x00\xff",
            ["I10", None], ("1234567890", 8), {"visits": 3},
        ),
        (2, None, None, None, None, None, None, None, None, None, None, None, None, None, None),
        (
            3, "ü", -1, -32768, 127, -0.0, 3.5, False, dt.date(1900, 1, 1),
            dt.datetime(1999, 12, 31, 23, 59, 59), Decimal("-0.01"), b"", [], (None, None), {},
        ),
    ]


def test_types_round_trip_through_spark_and_deltalake(lake, spark):
    name = "silver/typed"
    source = spark.createDataFrame(typed_rows(), TYPES_SCHEMA)
    lake.write(name, source)

    back = lake.read(name)
    assert back.schema.simpleString() == source.schema.simpleString()
    assert sorted(back.collect()) == sorted(source.collect())

    stored = {f["name"]: f["type"] for f in json.loads(delta_table(lake.path(name)).schema().to_json())["fields"]}
    assert stored["small"] == "short" and stored["tiny"] == "byte"
    assert stored["paid"] == "decimal(12,2)" and stored["recorded_at"] == "timestamp"
    assert stored["counts"]["type"] == "map" and stored["codes"]["type"] == "array"

    rows = by_id(delta_rows(lake.path(name)))
    first, empty, last = rows
    assert first["name"] == "a" and first["big"] == 2**40 and first["small"] == 7 and first["tiny"] == -3
    assert first["ratio"] == 1.25 and first["weight"] == 0.5 and first["flag"] is True
    assert first["service_date"] == dt.date(2019, 12, 31)
    # Spark took the naive datetime as local time; Delta stores the UTC instant.
    assert first["recorded_at"] == dt.datetime(2020, 1, 2, 3, 4, 5, 123456).astimezone(dt.timezone.utc)
    assert first["paid"] == Decimal("1234567890.12") and first["raw"] == b"\x00\xff"
    assert first["codes"] == ["I10", None]
    assert first["provider"] == {"npi": "1234567890", "specialty": 8}
    assert dict(first["counts"]) == {"visits": 3}
    assert all(value is None for key, value in empty.items() if key != "id")
    assert last["name"] == "ü" and last["small"] == -32768 and last["service_date"] == dt.date(1900, 1, 1)
    assert last["paid"] == Decimal("-0.01") and last["codes"] == [] and last["raw"] == b""


# --- partitions -------------------------------------------------------------------------


def test_partitioned_table_keeps_partition_values(lake, spark):
    name = "bronze/pde"
    rows = [
        (1, "north east", dt.date(2020, 1, 1), 10),
        (2, "a:b%c/d", dt.date(2020, 1, 2), 20),
        (3, None, dt.date(2020, 1, 2), 30),
        (4, "north east", None, 40),
        (5, "00123", dt.date(2020, 1, 1), 50),  # stays a string, leading zeros and all
    ]
    frame = spark.createDataFrame(rows, "id long, region string, fill_date date, days int")
    assert lake.write(name, frame, partition_by=["region", "fill_date"]) == 0

    assert lake.read(name).columns == ["id", "region", "fill_date", "days"]
    assert spark_rows(lake.read(name)) == ordered(rows)
    assert [tuple(r.values()) for r in by_id(delta_rows(lake.path(name)))] == rows

    import pyarrow as pa

    actions = pa.table(delta_table(lake.path(name)).get_add_actions(flatten=True)).to_pylist()
    partitions = {(a["partition.region"], a["partition.fill_date"]) for a in actions}
    assert partitions == {
        ("north east", dt.date(2020, 1, 1)),
        ("a:b%c/d", dt.date(2020, 1, 2)),
        (None, dt.date(2020, 1, 2)),
        ("north east", None),
        ("00123", dt.date(2020, 1, 1)),
    }

    # A second write folder: reading unions both, partition values intact.
    assert lake.write(name, frame.limit(2), mode="append", partition_by=["region", "fill_date"]) == 1
    assert spark_rows(lake.read(name)) == ordered(rows + rows[:2])
    assert len(delta_rows(lake.path(name))) == 7
    assert lake.row_count(name) == 7

    # Appending with other partitioning is refused; overwriting may change it.
    with pytest.raises(UserError, match="partitioned by"):
        lake.write(name, frame, mode="append", partition_by=["region"])
    assert lake.write(name, frame, partition_by="fill_date") == 2
    assert list(delta_table(lake.path(name)).metadata().partition_columns) == ["fill_date"]
    assert spark_rows(lake.read(name)) == ordered(rows)
    assert spark_rows(lake.read(name, version=1)) == ordered(rows + rows[:2])
    assert [tuple(r.values()) for r in by_id(delta_rows(lake.path(name)))] == rows


# --- empty frames, counts, listings -----------------------------------------------------


def test_empty_dataframe_makes_an_empty_table_with_its_schema(lake, spark):
    schema = "person_id long, code string, service_date date"
    empty = spark.createDataFrame([], schema)
    for name, partition_by in (("quarantine/pde", None), ("quarantine/partitioned", ["service_date"])):
        assert lake.write(name, empty, partition_by=partition_by) == 0
        back = lake.read(name)
        assert back.count() == 0
        assert back.schema.simpleString() == empty.schema.simpleString()
        assert lake.row_count(name) == 0
        table = delta_table(lake.path(name))
        assert table.version() == 0
        assert [f.name for f in table.schema().fields] == ["person_id", "code", "service_date"]
        assert delta_rows(lake.path(name)) == []
    # and an empty table can take rows afterwards
    lake.write("quarantine/pde", spark.createDataFrame([(1, "x", None)], schema), mode="append")
    assert spark_rows(lake.read("quarantine/pde")) == [(1, "x", None)]


def test_row_count_comes_from_the_log_and_matches_the_data(lake, spark):
    name = "silver/dispensing"
    frame = spark.range(0, 12345, 1, numPartitions=3).selectExpr("id", "id % 7 as days_supply")
    lake.write(name, frame)
    lake.write(name, frame.limit(100), mode="append")
    assert lake.row_count(name) == 12445 == lake.read(name).count()
    assert lake.row_count(name, version=0) == 12345
    assert len(delta_table(lake.path(name), 0).file_uris()) >= 3


def test_tables_exists_and_reads_writes_bookkeeping(spark, tmp_path):
    lake = Lakehouse(f"file://{tmp_path}", spark)
    assert lake.root == str(tmp_path)
    assert lake.tables() == []
    frame = spark.createDataFrame([(1,)], "id int")
    lake.write("cohorts/af_new_users/cohort", frame)
    lake.write("silver/person", frame)
    lake.write("silver/person", frame, mode="append")
    (tmp_path / "silver" / "stray").mkdir()
    (tmp_path / "silver" / "stray" / "part-0.parquet").write_bytes(b"")
    assert lake.tables() == ["cohorts/af_new_users/cohort", "silver/person"]
    assert lake.exists("silver/person") and not lake.exists("silver/stray") and not lake.exists("gold/none")
    assert lake.writes == {"cohorts/af_new_users/cohort": 0, "silver/person": 1}
    assert lake.reads == {}
    lake.read("silver/person", version=0)
    assert lake.reads == {"silver/person": 0}
    assert lake.backend == "delta-rs"
    assert lake.path("silver/person") == f"{tmp_path}/silver/person"

    # A table inside another table's folder (or around one) would be lost to listings and VACUUM.
    with pytest.raises(UserError, match="inside table 'silver/person'"):
        lake.write("silver/person/extra", frame)
    with pytest.raises(UserError, match="holds tables cohorts/af_new_users/cohort"):
        lake.write("cohorts", frame)


def test_overwrite_may_read_the_table_it_replaces(lake, spark):
    name = "quarantine/dispensing"
    lake.write(name, spark.createDataFrame([(1, 30), (2, -5), (3, 90)], "id long, days_supply int"))
    assert lake.write(name, lake.read(name).where("days_supply > 0")) == 1
    assert spark_rows(lake.read(name)) == [(1, 30), (3, 90)]
    assert lake.row_count(name, version=0) == 3


# --- user mistakes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["Silver/diagnosis", "silver//diagnosis", "/silver", "silver/", "../silver", "silver/dx-2", "", "silver dx",
     "silver/_delta_log", "_staging/pde", None],
)
def test_bad_table_names_are_user_errors(lake, bad):
    with pytest.raises(UserError, match="bad table name"):
        lake.path(bad)


def test_missing_tables_and_versions_are_user_errors_naming_the_path(lake, spark):
    with pytest.raises(UserError) as missing:
        lake.read("silver/no_such_table")
    assert lake.path("silver/no_such_table") in str(missing.value)
    for call in (lambda: lake.history("silver/no_such_table"), lambda: lake.row_count("silver/no_such_table")):
        with pytest.raises(UserError, match="no Delta table"):
            call()
    assert lake.version("silver/no_such_table") is None

    name = "silver/procedure"
    lake.write(name, spark.createDataFrame([(1, "99213")], "person_id long, code string"))
    for version in (1, 99, -1):
        with pytest.raises(UserError) as no_version:
            lake.read(name, version=version)
        message = str(no_version.value)
        assert lake.path(name) in message and f"no version {version}" in message and "latest is 0" in message
    with pytest.raises(UserError, match="no version 5"):
        lake.row_count(name, version=5)
    with pytest.raises(UserError, match="column 'code' is missing"):
        lake.write(name, spark.createDataFrame([(1,)], "person_id long"), mode="append")
    with pytest.raises(UserError, match="'code' is .*integer"):
        lake.write(name, spark.createDataFrame([(1, 2)], "person_id long, code int"), mode="append")
    assert lake.version(name) == 0


# --- atomic overwrite under a kill ------------------------------------------------------


def _data_files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.parquet")] if folder.exists() else []


def _run_writer(root, name, rows, log: Path):
    """The writer script in its own process group, so one killpg takes its JVM too.

    Output goes to a file: a pipe nobody drains could stall the writer before it writes.
    """
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, str(WRITER_PROC), str(root), name, str(rows)],
            start_new_session=True, stdout=out, stderr=subprocess.STDOUT,
        )


def _kill_group(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


@pytest.mark.slow
def test_overwrite_is_atomic_when_the_writer_is_killed(spark, tmp_path):
    lake = Lakehouse(str(tmp_path), spark)
    name = "silver/claims"
    original = [(i, i % 3, f"code{i}") for i in range(5)]
    lake.write(name, spark.createDataFrame(original, "claim_id long, person_id long, code string"))
    table_dir = Path(lake.path(name))
    before = {p.name for p in table_dir.iterdir()}

    log = tmp_path / "writer.log"
    proc = _run_writer(tmp_path, name, 3_000_000, log)
    try:
        deadline = time.monotonic() + 90
        new_folder = None
        while time.monotonic() < deadline and proc.poll() is None:
            fresh = [p for p in table_dir.iterdir() if p.name not in before and p.name.startswith("w-")]
            # Wait for Parquet bytes on disk too, so the kill lands mid-write, not before it.
            if fresh and _data_files_under(fresh[0]):
                new_folder = fresh[0]
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"writer ended before it could be killed:\n{log.read_text()[-3000:]}"
        assert new_folder is not None, f"the writer never started writing:\n{log.read_text()[-3000:]}"
    finally:
        _kill_group(proc)

    assert new_folder.exists()  # the half-written files are there, and must not count
    assert lake.version(name) == 0
    assert spark_rows(lake.read(name)) == ordered(original)
    assert ordered(r.values() for r in delta_rows(lake.path(name))) == ordered(original)
    assert not any(str(new_folder) in f for f in delta_table(lake.path(name)).file_uris())
    assert lake.row_count(name) == 5

    # The next writer (here in-process, same code path) commits as version 1.
    from lake_writer_proc import generated_claims

    assert lake.write(name, generated_claims(spark, 1000)) == 1
    assert lake.version(name) == 1
    assert lake.read(name).count() == 1000 == lake.row_count(name)
    assert spark_rows(lake.read(name, version=0)) == ordered(original)


# --- run manifests ----------------------------------------------------------------------


def test_run_manifest_records_lake_versions_phases_and_round_trips(spark, tmp_path):
    import cohortlake

    lake = Lakehouse(str(tmp_path / "lake"), spark)
    frame = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], "id long, code string")
    lake.write("silver/person", frame)
    lake.write("silver/person", frame, mode="append")
    reader = Lakehouse(str(tmp_path / "lake"), spark)
    definition = "cohort: af_new_users\nentry: first_fill\n"
    manifest = RunManifest("build", seed=42, definition_text=definition, extra={"cohort": "af_new_users"})
    with manifest.phase("read"):
        reader.read("silver/person", version=0)
        time.sleep(0.05)
    with manifest.phase("write"):
        reader.write("cohorts/af_new_users/cohort", reader.read("silver/person").where("id > 1"))
    with manifest.phase("read"):
        time.sleep(0.02)
    manifest.finish(reader)

    assert manifest.timings_seconds["read"] >= 0.07
    assert manifest.timings_seconds["write"] > 0
    assert manifest.tables_read == {"silver/person": 1}
    assert manifest.tables_written == {"cohorts/af_new_users/cohort": 0}
    assert manifest.row_counts == {"cohorts/af_new_users/cohort": 4}
    assert manifest.definition_sha256 == hashlib.sha256(definition.encode()).hexdigest()
    assert manifest.package_version == cohortlake.__version__
    assert manifest.spark_version == spark.version and manifest.backend == "delta-rs"
    assert manifest.started_utc <= manifest.finished_utc

    path = tmp_path / "runs" / "manifest.json"
    manifest.write(path)
    text = path.read_text()
    data = json.loads(text)
    assert list(data) == sorted(data) and text.startswith("{\n  ")
    assert data["seed"] == 42 and data["extra"] == {"cohort": "af_new_users"}
    assert os.listdir(path.parent) == ["manifest.json"]  # no temp file left behind
    again = RunManifest.read(path)
    assert again == manifest and again.to_dict() == data

    with pytest.raises(UserError, match="no run manifest"):
        RunManifest.read(tmp_path / "missing.json")


# --- backend choice ---------------------------------------------------------------------


class _FakeConf(dict):
    def get(self, key, default=None):
        return super().get(key, default)


class _FakeSession:
    def __init__(self, conf):
        self.conf = _FakeConf(conf)


def test_backend_is_delta_spark_only_when_the_session_has_delta(monkeypatch):
    from cohortlake.lake.delta import detect_backend

    monkeypatch.delenv("COHORTLAKE_DELTA_BACKEND", raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    with_delta = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    }
    assert detect_backend(_FakeSession(with_delta)) == "delta-spark"
    assert detect_backend(_FakeSession({"spark.sql.extensions": with_delta["spark.sql.extensions"]})) == "delta-rs"
    assert detect_backend(_FakeSession({})) == "delta-rs"
    monkeypatch.setenv("COHORTLAKE_DELTA_BACKEND", "delta-rs")
    assert detect_backend(_FakeSession(with_delta)) == "delta-rs"
    monkeypatch.setenv("COHORTLAKE_DELTA_BACKEND", "parquet")
    with pytest.raises(UserError, match="COHORTLAKE_DELTA_BACKEND"):
        detect_backend(_FakeSession({}))


def test_restore_makes_an_earlier_version_current_and_keeps_history(spark, tmp_path):
    lake = Lakehouse(str(tmp_path), spark)
    lake.write("cohorts/x/cohort", spark.createDataFrame([(1,), (2,)], "id int"))
    lake.write("cohorts/x/cohort", spark.createDataFrame([(3,)], "id int"))
    assert lake.restore("cohorts/x/cohort", 0) == 2
    assert sorted(r.id for r in lake.read("cohorts/x/cohort").collect()) == [1, 2]
    assert [r.id for r in lake.read("cohorts/x/cohort", version=1).collect()] == [3]
    assert lake.history("cohorts/x/cohort")[0]["operation"].upper() == "RESTORE"
    with pytest.raises(UserError, match="version 7"):
        lake.restore("cohorts/x/cohort", 7)


def test_quality_results_live_in_the_reserved_quality_area(spark, tmp_path):
    lake = Lakehouse(str(tmp_path), spark)
    lake.write("_quality/results", spark.createDataFrame([(1,)], "id int"))
    lake.write("silver/person", spark.createDataFrame([(1,)], "id int"))
    assert lake.tables() == ["_quality/results", "silver/person"]
    with pytest.raises(UserError, match="bad table name"):
        lake.path("_other/results")


# --- remote lakes: storage options ------------------------------------------------------


def test_storage_options_come_from_json_or_a_file_and_bad_ones_say_where(tmp_path):
    from cohortlake.lake.storage import STORAGE_OPTIONS_ENV, storage_options_from_config

    assert storage_options_from_config({}) is None
    given = {STORAGE_OPTIONS_ENV: '{"AWS_REGION": "eu-west-1", "AWS_ALLOW_HTTP": true, "timeout": 30}'}
    assert storage_options_from_config(given) == {"AWS_REGION": "eu-west-1", "AWS_ALLOW_HTTP": "true",
                                                  "timeout": "30"}
    file = tmp_path / "store.yaml"
    file.write_text("AZURE_STORAGE_ACCOUNT_NAME: claimslake\nAZURE_STORAGE_ACCOUNT_KEY: c2VjcmV0\n")
    assert storage_options_from_config({STORAGE_OPTIONS_ENV: f"@{file}"}) == {
        "AZURE_STORAGE_ACCOUNT_NAME": "claimslake", "AZURE_STORAGE_ACCOUNT_KEY": "c2VjcmV0"}
    with pytest.raises(UserError, match=r"COHORTLAKE_STORAGE_OPTIONS: not a JSON object \(Expecting"):
        storage_options_from_config({STORAGE_OPTIONS_ENV: "AWS_REGION=eu-west-1"})
    with pytest.raises(UserError, match=r"cannot read .*missing\.json"):
        storage_options_from_config({STORAGE_OPTIONS_ENV: f"@{tmp_path / 'missing.json'}"})
    with pytest.raises(UserError, match=r"option 'nested' must be a text, number or true/false value"):
        storage_options_from_config({STORAGE_OPTIONS_ENV: '{"nested": {"a": 1}}'})


def test_s3_options_reach_pyarrow_as_delta_rs_reads_them():
    from pyarrow import fs as pafs

    from cohortlake.lake.storage import arrow_filesystem

    filesystem, base = arrow_filesystem("s3a://claims-bucket/lake", {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://minio:9000"})
    assert isinstance(filesystem, pafs.S3FileSystem) and base == "claims-bucket/lake"
    assert filesystem.region == "eu-west-1"
    # pyarrow keeps the endpoint in the filesystem's pickled arguments
    assert "minio:9000" in repr(filesystem.__reduce__())
    local, path = arrow_filesystem("/data/lake", None)
    assert isinstance(local, pafs.LocalFileSystem) and path == "/data/lake"


def test_a_remote_lake_passes_its_uri_and_options_to_delta_rs(spark, monkeypatch):
    """Not reachable here (no object store); checks what the lake hands delta-rs."""
    import deltalake

    from cohortlake.lake.storage import STORAGE_OPTIONS_ENV

    opened = []

    class Table:
        def __init__(self, uri, version=None, storage_options=None):
            opened.append((uri, version, storage_options))

        def version(self):
            return 7

    monkeypatch.setattr(deltalake, "DeltaTable", Table)
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, '{"AWS_REGION": "eu-west-1"}')
    lake = Lakehouse("s3a://claims-bucket/lake/", spark, backend="delta-rs")
    monkeypatch.setattr(lake, "_has_commit", lambda path: True)
    assert lake.path("silver/person") == "s3a://claims-bucket/lake/silver/person"
    assert lake.version("silver/person") == 7
    assert opened == [("s3://claims-bucket/lake/silver/person", None, {"AWS_REGION": "eu-west-1"})]
    assert Lakehouse("file:///tmp/lake", spark, backend="delta-rs").storage_options is None
