"""The class archive's life in its folder (lake/class_archive.py): when a driver JVM writes
one, when a write is taken in, when one is mapped, and when none is tried. A real JVM writing
and mapping one is tests/integration/test_packaging.py's claim."""

from __future__ import annotations

import json
import os

import pytest

from cohortlake.errors import EnvironmentProblem
from cohortlake.lake import class_archive as ca

VERSION = 'openjdk version "17.0.15" 2025-04-15\nOpenJDK 64-Bit Server VM (build 17.0.15+6, mixed mode, sharing)\n'


@pytest.fixture
def spark_home(tmp_path):
    jars = tmp_path / "spark" / "jars"
    jars.mkdir(parents=True)
    for name in ("spark-core_2.13-4.0.1.jar", "scala-library-2.13.16.jar"):
        (jars / name).write_bytes(b"PK" + name.encode())
    return tmp_path / "spark"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    path = tmp_path / "archives"
    monkeypatch.setenv(ca.VARIABLE, str(path))
    return path


def archive(folder, spark_home) -> ca.ClassArchive:
    folder.mkdir(exist_ok=True)
    return ca.ClassArchive(folder, ca.installation("/usr/bin/java", VERSION, str(spark_home)))


def dead_pid() -> int:
    for pid in range(4_194_000, 4_000_000, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no free pid found")


def finished_write(store: ca.ClassArchive, pid: int, size: int = 4096) -> None:
    (store.folder / f"{store.key}.{pid}.partial").write_bytes(b"\0" * size)
    (store.folder / f"{store.key}.{pid}.log").write_text(
        "[9.1s][info][cds,dynamic] Archiving hidden java.util.stream.Collectors$$Lambda$8\n"
        f"[9.2s][info][cds,dynamic] {ca.DONE_LINE} 0x0000000800bc7000 - 0x0000000809523b10 [984 bytes header, "
        "144034576 bytes total]\n[9.2s][info][cds,dynamic] 12485 klasses; 280789 symbols\n")


def unfinished_write(store: ca.ClassArchive, pid: int, jvm: str | None = None) -> None:
    (store.folder / f"{store.key}.{pid}.partial").write_bytes(b"\0" * 1000)
    (store.folder / f"{store.key}.{pid}.log").write_text("[9.1s][info][cds,dynamic] Archiving hidden x$$Lambda$8\n")
    if jvm is not None:
        (store.folder / f"{store.key}.{pid}.jvm").write_text(jvm)


def test_the_folder_is_the_users_cache_unless_named_or_off(tmp_path, monkeypatch):
    monkeypatch.delenv(ca.VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert ca.archive_folder() == tmp_path / "cache" / "cohortlake" / "class-archive"
    monkeypatch.setenv(ca.VARIABLE, str(tmp_path / "mine"))
    assert ca.archive_folder() == tmp_path / "mine"
    for off in ("off", "OFF", " off "):
        monkeypatch.setenv(ca.VARIABLE, off)
        assert ca.archive_folder() is None


@pytest.mark.parametrize("value", ["relative/folder", "/with space/x", "/a:b", "/a,b"])
def test_a_folder_the_jvm_cannot_be_handed_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(ca.VARIABLE, value)
    with pytest.raises(EnvironmentProblem) as error:
        ca.archive_folder()
    assert str(error.value).startswith(f"{ca.VARIABLE}={value!r}: expected 'off' or an absolute folder")
    assert "\n" not in str(error.value)


def test_the_key_follows_the_java_and_every_jar(spark_home):
    key = ca.installation_key(ca.installation("/usr/bin/java", VERSION, str(spark_home)))
    assert key == ca.installation_key(ca.installation("/usr/bin/java", VERSION, str(spark_home)))
    assert key != ca.installation_key(ca.installation("/usr/bin/java", VERSION.replace("17.0.15", "17.0.16"),
                                                      str(spark_home)))
    for picked_up in ("Picked up JAVA_TOOL_OPTIONS", "Picked up _JAVA_OPTIONS", "NOTE: Picked up JDK_JAVA_OPTIONS"):
        picked = f"{picked_up}: -Xlog:class+load=info\n{VERSION}"  # options, not another java
        assert key == ca.installation_key(ca.installation("/usr/bin/java", picked, str(spark_home)))
    jar = spark_home / "jars" / "spark-core_2.13-4.0.1.jar"
    jar.write_bytes(jar.read_bytes() + b"changed")
    assert key != ca.installation_key(ca.installation("/usr/bin/java", VERSION, str(spark_home)))


def test_without_an_archive_the_jvm_writes_one_as_it_exits(folder, spark_home):
    store = archive(folder, spark_home)
    options, note = store.java_options()
    pid = os.getpid()
    assert options.split() == [f"-XX:ArchiveClassesAtExit={folder}/{store.key}.{pid}.partial", "-Xlog:cds=off",
                               "-Xlog:cds+dynamic=off", f"-Xlog:cds+dynamic=info:file={folder}/{store.key}.{pid}.log"]
    assert note == folder / f"{store.key}.{pid}.jvm"


def test_a_finished_write_is_recorded_renamed_and_mapped(folder, spark_home):
    store = archive(folder, spark_home)
    writer = dead_pid()
    finished_write(store, writer, size=8192)
    options, note = store.java_options()
    assert options.split() == [f"-XX:SharedArchiveFile={store.archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    assert note is None
    assert sorted(p.name for p in folder.iterdir()) == [f"{store.key}.jsa", f"{store.key}.json"]
    record = json.loads(store.record.read_text())
    assert record["bytes"] == 8192 == store.archive.stat().st_size
    assert record["java_version"] == VERSION.strip() and record["spark_jars"] == str((spark_home / "jars").resolve())
    assert store.java_options() == (options, None)  # and mapped again next time


def test_a_write_another_process_took_in_first_is_no_error(folder, spark_home):
    store = archive(folder, spark_home)
    writer = dead_pid()
    finished_write(store, writer)
    (folder / f"{store.key}.{writer}.partial").unlink()  # renamed by the other process a moment ago
    assert store.settle_writes() is False
    assert list(folder.iterdir()) == []


def test_while_a_writer_lives_no_second_one_starts(folder, spark_home):
    store = archive(folder, spark_home)
    unfinished_write(store, os.getpid())  # its command still runs
    assert store.java_options() == ("", None)
    writer = dead_pid()  # its command ended, its JVM (this process, same start time) still writes
    unfinished_write(store, writer, jvm=f"{os.getpid()} {ca._start_time(os.getpid())}\n")
    assert store.java_options() == ("", None)
    assert len(list(folder.glob("*.partial"))) == 2 and store.attempts() == 0


def test_a_writer_that_died_first_is_cleared_counted_and_after_three_none_is_tried(folder, spark_home):
    store = archive(folder, spark_home)
    for attempt in (1, 2, 3):
        # its command and its JVM are gone; a reused JVM pid (another start time) does not count as alive
        unfinished_write(store, dead_pid(), jvm=f"{os.getpid()} 1\n" if attempt == 2 else f"{dead_pid()} -\n")
        options, _ = store.java_options()
        assert store.attempts() == attempt
        assert list(folder.glob("*.partial")) == [] and list(folder.glob("*.log")) == []
        assert options.startswith("-XX:ArchiveClassesAtExit=") == (attempt < 3)
    assert store.java_options() == ("", None)


def test_an_archive_changed_since_it_was_written_is_deleted_not_mapped(folder, spark_home):
    store = archive(folder, spark_home)
    finished_write(store, dead_pid(), size=8192)
    assert store.java_options()[0].startswith("-XX:SharedArchiveFile=")
    with open(store.archive, "r+b") as handle:  # truncated: mapping it would crash the JVM
        handle.truncate(4096)
    options, _ = store.java_options()
    assert options.startswith("-XX:ArchiveClassesAtExit=")
    assert not store.archive.exists() and not store.record.exists()


def test_driver_options_off_default_unwritable_and_named_unwritable(tmp_path, monkeypatch, spark_home):
    monkeypatch.setenv(ca.VARIABLE, "off")
    assert ca.driver_options("/usr/bin/java", VERSION, str(spark_home)) == ("", None)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.delenv(ca.VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # the default folder cannot be made: quietly none
    assert ca.driver_options("/usr/bin/java", VERSION, str(spark_home)) == ("", None)
    monkeypatch.setenv(ca.VARIABLE, str(blocker / "archives"))  # a named one: said, on one line
    with pytest.raises(EnvironmentProblem) as error:
        ca.driver_options("/usr/bin/java", VERSION, str(spark_home))
    assert str(error.value).startswith(f"{ca.VARIABLE}={blocker / 'archives'}: cannot write class archives there")
    assert "\n" not in str(error.value)
    monkeypatch.setenv(ca.VARIABLE, str(tmp_path / "fine"))
    options, note = ca.driver_options("/usr/bin/java", VERSION, str(spark_home))
    assert options.startswith(f"-XX:ArchiveClassesAtExit={tmp_path / 'fine'}/") and note.parent == tmp_path / "fine"


def test_the_jvm_is_named_with_its_start_time(tmp_path):
    note = tmp_path / "k.1.jvm"
    ca.note_jvm(note, os.getpid())
    assert note.read_text().split() == [str(os.getpid()), ca._start_time(os.getpid())]
    ca.note_jvm(None, os.getpid())  # nothing to name: nothing written
    ca.note_jvm(tmp_path / "k.2.jvm", None)
    assert not (tmp_path / "k.2.jvm").exists()
