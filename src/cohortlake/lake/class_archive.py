"""Spark's classes archived once per installation, so that later driver JVMs map them instead of loading them.

A fresh driver JVM loads, parses and verifies some 12,000 classes from Spark's jars before
its first job. Java's class-data sharing (CDS, dynamic archives, Java 13 and later) lets a
JVM write the classes it loaded to an archive as it exits (``-XX:ArchiveClassesAtExit``)
and a later JVM map that archive (``-XX:SharedArchiveFile``). Measured in README
("A fresh process's fixed cost").

Per installation (the java that Spark runs and Spark's jars, hashed into a key), in the
folder ``COHORTLAKE_CLASS_ARCHIVE`` names (default ``$XDG_CACHE_HOME/cohortlake/class-archive``,
``off`` for none):

1. No archive yet: the first local session's JVM is started with
   ``-XX:ArchiveClassesAtExit=<key>.<pid>.partial`` and logs the dump to ``<key>.<pid>.log``.
   It writes the archive as it exits, after the command has ended (10-15 s of one core, in
   the background). ``<key>.<pid>.jvm`` names the JVM, so a later process knows whether a
   writer is still alive.
2. The next session finds the log's closing line (the JVM logs it after closing the
   archive), records the archive's size in ``<key>.json`` and renames it to ``<key>.jsa``.
   A writer that died first (killed) leaves no closing line; its files are deleted and
   the attempt counted; after three no more are made for that key.
3. Every later session maps ``<key>.jsa`` if it still has the recorded size: a truncated
   archive crashes the JVM that maps it, so one that changed is deleted instead.

A JVM that cannot use an archive (another JVM build, another class path) ignores it and
loads classes as usual. CDS's own log lines are off, so none reaches the user's console.
Only a driver JVM that cohortlake starts takes part (a local session, or the driver of a
remote ``--master``); under spark-submit the JVM is already running, and executors load
their classes as usual.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from cohortlake.errors import EnvironmentProblem

VARIABLE = "COHORTLAKE_CLASS_ARCHIVE"
OFF = "off"
# What HotSpot logs (cds+dynamic, info) once the archive file is written and closed.
DONE_LINE = "Written dynamic archive"
MAX_ATTEMPTS = 3
# -Xlog paths end at ':' or ','; Spark's launcher splits options at white space.
PLAIN_PATH = re.compile(r"^[A-Za-z0-9_./@+~-]+$")
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
PICKED_UP = re.compile(r"^(NOTE: )?Picked up [A-Z_]+:")


def archive_folder() -> Path | None:
    """The folder for archives, or None when archives are off."""
    text = os.environ.get(VARIABLE, "").strip()
    if text.lower() == OFF:
        return None
    if text:
        folder = Path(text)
        if not folder.is_absolute() or not PLAIN_PATH.match(text):
            raise EnvironmentProblem(f"{VARIABLE}={text!r}: expected '{OFF}' or an absolute folder path of letters, "
                                     "digits and ._/@+~- (it is passed to the JVM unquoted)")
        return folder
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(cache) / "cohortlake" / "class-archive"
    return folder if PLAIN_PATH.match(str(folder)) else None  # an unusual home: quietly without


def installation(java: str, java_version_text: str, spark_home: str) -> dict:
    """What an archive belongs to: the JVM that Spark runs and the jars on its class path."""
    jars = Path(spark_home, "jars").resolve()
    try:
        listing = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in jars.glob("*.jar"))
    except OSError:
        listing = []
    # A JVM prints "Picked up JAVA_TOOL_OPTIONS: ..." (and the like) before its version: options, not the JVM.
    version = "\n".join(line for line in java_version_text.strip().splitlines() if not PICKED_UP.match(line))
    return {"java": os.path.realpath(java), "java_version": version, "spark_jars": str(jars),
            "jar_files": listing}


def installation_key(found: dict) -> str:
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:20]


def _alive(pid: int, started: str | None = None) -> bool:
    """Whether process ``pid`` runs (and, given its start time from /proc, is the same process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return started is None or _start_time(pid) in (None, started)


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]  # field 22, starttime


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _recorded_size(record: Path) -> int | None:
    try:
        return int(json.loads(record.read_text())["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class ClassArchive:
    """The archive of one installation in one folder."""

    def __init__(self, folder: Path, found: dict):
        self.folder, self.found = folder, found
        self.key = installation_key(found)
        self.archive = folder / f"{self.key}.jsa"
        self.record = folder / f"{self.key}.json"
        self.attempts_file = folder / f"{self.key}.attempts"

    def _writer(self, pid: int, suffix: str) -> Path:
        return self.folder / f"{self.key}.{pid}.{suffix}"

    def attempts(self) -> int:
        try:
            return int(self.attempts_file.read_text())
        except (OSError, ValueError):
            return 0

    def _writer_alive(self, pid: int) -> bool:
        try:
            jvm_pid, started = self._writer(pid, "jvm").read_text().split()
        except (OSError, ValueError):  # not named yet: its command is still starting the JVM
            return _alive(pid)
        return _alive(int(jvm_pid), None if started == "-" else started)

    def settle_writes(self) -> bool:
        """Take in every finished write, clear away dead ones; True while one is still being written."""
        writing = False
        for log in self.folder.glob(f"{self.key}.*.log"):
            try:
                pid = int(log.name.split(".")[1])
            except ValueError:
                continue
            partial, jvm = self._writer(pid, "partial"), self._writer(pid, "jvm")
            try:
                done = DONE_LINE in log.read_text(errors="replace")
            except OSError:
                continue
            if done:
                try:
                    self._take_in(partial, self._writer(pid, "json"))
                except FileNotFoundError:  # another process took it in first
                    pass
                _remove(log, jvm)
            elif self._writer_alive(pid):
                writing = True
            else:  # its JVM ended (killed) before the archive was complete
                _remove(partial, log, jvm)
                self.attempts_file.write_text(f"{self.attempts() + 1}\n")
        return writing

    def _take_in(self, partial: Path, staged: Path) -> None:
        """Record a finished archive's size, then give it the installation's name."""
        made = dict(self.found, bytes=partial.stat().st_size, made=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        made.pop("jar_files")
        staged.write_text(json.dumps(made, indent=1) + "\n")
        os.replace(staged, self.record)
        os.replace(partial, self.archive)

    def java_options(self) -> tuple[str, Path | None]:
        """(the driver JVM's options, the file to name the JVM in once it runs, or None)."""
        writing = self.settle_writes()
        if self.archive.exists():
            if _recorded_size(self.record) == self.archive.stat().st_size:
                return f"-XX:SharedArchiveFile={self.archive} {QUIET}", None
            _remove(self.archive, self.record)  # changed since it was written
        if writing or self.attempts() >= MAX_ATTEMPTS:
            return "", None
        pid = os.getpid()
        return (f"-XX:ArchiveClassesAtExit={self._writer(pid, 'partial')} {QUIET} "
                f"-Xlog:cds+dynamic=info:file={self._writer(pid, 'log')}"), self._writer(pid, "jvm")


def driver_options(java: str, java_version_text: str, spark_home: str) -> tuple[str, Path | None]:
    """The class-archive options for a driver JVM about to start, and where to name it once started
    (see ``note_jvm``). Empty when archives are off or the folder cannot be written."""
    folder = archive_folder()
    if folder is None:
        return "", None
    explicit = bool(os.environ.get(VARIABLE, "").strip())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return ClassArchive(folder, installation(java, java_version_text, spark_home)).java_options()
    except OSError as error:
        if explicit:
            raise EnvironmentProblem(f"{VARIABLE}={folder}: cannot write class archives there ({error.strerror})")
        return "", None


def note_jvm(path: Path | None, jvm_pid: int | None) -> None:
    """Name the JVM that writes an archive as it exits, so later processes see it is alive."""
    if path is None or jvm_pid is None:
        return
    try:
        path.write_text(f"{jvm_pid} {_start_time(jvm_pid) or '-'}\n")
    except OSError:
        pass
