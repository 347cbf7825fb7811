"""One place that creates the Spark session, sized for the machine it runs on.

Local runs get ``local[*]`` with settings chosen here; under ``spark-submit`` the
session that the launcher configured is reused and only correctness settings are
applied (the cluster's operator owns memory and parallelism).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from functools import lru_cache

from cohortlake import environment
from cohortlake.errors import EnvironmentProblem
from cohortlake.lake import class_archive

MIN_JAVA = 17
LOOPBACK = "127.0.0.1"

# Settings that affect results or the files we write; applied on every session,
# local or cluster, so outputs do not depend on where a job ran.
CORRECTNESS_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # Delta readers (delta-rs included) expect INT64 microsecond timestamps, not INT96.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
}


# How the JVM compiles the code Spark generates. It leaves methods over 8,000 bytecodes to
# the interpreter by default; the wide aggregations Spark generates for validation (one
# count per expectation) are such methods and ran 2-3x slower interpreted, so driver and
# executors compile huge methods.
HUGE_METHODS_FLAG = "-XX:-DontCompileHugeMethods"
# A local session's JVM also caps its optimising compiler (C2) on Spark's generated
# classes. On a few cores C2 spent more on them than it gave back: up to 7 s on one method
# of a typing stage (then abandoned), 48 s of the 118 s C2 took in a 20,000-patient demo
# (Java Flight Recorder). C2 now gives up on a generated method beyond 5,000 nodes of its
# graph, early and cheaply; the method keeps the first-tier compiler's (C1) code. Spark's
# own classes are compiled as before. 100,000 patients, a process each, alternated: ingest
# 169.5/170.5 s to 141.1/144.6 s (C2's CPU 95-97 s to 49-50 s, tasks 176 s to 165-171 s,
# the same rows); the reference build cold 38.0/38.1 s to 32.2/33.9 s, best warm
# 17.1/17.1 s to 15.6/14.6 s (tasks 70-72 s of CPU either way); limits of 1,000 and 20,000
# did as well. At 1,000,000 patients C2's code pays for itself: the cold build 106.3 s to
# 100.1 s, but the warm one 71.4 s to 78.8 s (tasks 435 s to 486 s of CPU). Executors on a
# cluster, where one JVM sees such volumes, keep HUGE_METHODS_FLAG alone (CLUSTER_DEFAULTS).
# "quiet" keeps the JVM from printing the command at start-up.
JIT_OPTIONS = (f"{HUGE_METHODS_FLAG} -XX:CompileCommand=quiet "
               "-XX:CompileCommand=MaxNodeLimit,org/apache/spark/sql/catalyst/expressions/GeneratedClass*.*,5000")

# Under spark-submit the operator owns resources; these performance settings are applied
# only where the submit (or spark-defaults.conf) leaves them unset.
TUNING_CONF = {
    # A build persists its tagged events and episodes; by default Spark freezes a cached
    # plan's shuffle partitions at spark.sql.shuffle.partitions (200 unless set), so every
    # later stage over it ran 200-600 tiny tasks. Letting AQE coalesce them took the
    # reference build on a 2-worker standalone cluster from 205 s to 69 s (1,500 patients).
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
    # PySpark 4 records the Python call site of every DataFrame function it is handed, for
    # error messages: several JVM round trips and a walk of the Python stack per call. Our
    # plans are built from thousands of such calls (a wide claim table's typing: 19,000
    # round trips), so this halved the driver time of planning them (MedPAR's typing
    # 2.8 s -> 1.2 s); Spark's errors still name the failing expression.
    "spark.python.sql.dataFrameDebugging.enabled": "false",
    # Spark keeps the classes it generates for a plan's operators in a cache keyed by
    # their source, 100 by default. The reference build generates 157 (215 with its gate),
    # so every later build in a process generated, compiled and JIT-compiled them all
    # again: 100,000 patients, warm builds 33-46 s and 64-88 s of JVM CPU, of which the
    # JIT's compiler 26-35 s. Holding 1,000, a warm build generates 2-16 and takes 16-28 s
    # (29-54 s of CPU); the classes cost about 50 MB of metaspace and 75 MB of code cache.
    "spark.sql.codegen.cache.maxEntries": "1000",
    # Every persist (a build's inputs and tagged events, ingest's typed rows) went through
    # Spark's CacheManager, which cloned the whole session (its state, conf and extensions)
    # to plan the cached query with this setting off, whenever it is on. It only concerns
    # tables bucketed by Spark's own writers, which a lakehouse of Delta tables never holds,
    # so it is off and the session is used as it is.
    "spark.sql.sources.bucketing.autoBucketedScan.enabled": "false",
}
# Small inputs run interpreted. Spark compiles the code it generates for every operator
# of a plan (Janino, then the JVM's JIT); on a few thousand rows that compiling costs more
# than the compiled code saves, and our plans are wide (typing checks every column of a
# claims table). Measured on whole ingests with their gates, back to back on 2 cores:
# 300 synthetic patients (largest raw table 5,521 rows) 75.5/79.1 s compiled vs 55.5/63.2 s
# interpreted; the two DE-SynPUF beneficiaries of tests/fixtures 59.1/53.8 vs 48.0/44.4 s;
# 1,500 patients (27,000 rows) 76.8/70.4 vs 73.4/64.3 s; 5,000 patients (90,000 rows)
# 94.8/84.1 vs 96.7/80.7 s, even. Same rows either way (test_ingest_seer_medicare runs
# both). A build decides from its largest input table the same way, with its own threshold:
# canonical tables are narrow and long (per patient, about 74 diagnosis rows against 18 rows
# of the largest raw table), so the crossing lies elsewhere. Reference builds with their
# gate (build_cohort.py --repeat 3, modes alternated, first build cold / best warm):
# 1,500 patients (111,139 diagnosis rows) 44.6, 36.2 / 12.8, 16.1 s compiled vs 30.9, 35.9
# / 12.1, 14.7 s interpreted; 5,000 (364,889) 43.4, 37.0 / 13.4, 14.1 vs 33.6, 35.7 / 13.3, 12.8 s;
# 20,000 (1,456,643) 45.3, 41.3 / 19.7, 17.6 vs 51.7, 44.8 / 27.9, 25.8 s. Hand-written
# test patients build interpreted (the 145 spec cases 112.6/107.4 s compiled vs 90.3/83.4 s;
# test_assure builds them both ways and compares). The setting is session-wide, so a step
# decides once, from its largest input.
INTERPRETED_CONF = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}

# Frames a step persists in memory (ingest's typed rows, the build's tagged events, eras
# and episodes) are kept without Spark's columnar compression. It took a large share of
# persisting for little memory (100,000 patients, warm: the build's tagged events 7.6-8.0 s
# to 5.5-5.6 s for 7% more; typing the carrier line file 7.5-8.2 s to 6.3-6.5 s, MBSF
# 7.6-7.9 s to 5.8-6.1 s, for 14% more over the eight raw tables, 338 against 296 MiB).
UNCOMPRESSED_CACHE = {"spark.sql.inMemoryColumnarStorage.compressed": "false"}


def _rows_setting(variable: str, default: int) -> int:
    """A row-count threshold from the environment: a whole number, or ``default`` when unset."""
    return environment.whole_number(variable, default, unit="rows")


# Defaults; the environment variables beside them override them, read when a step decides,
# so a bad value is a step's one-line error rather than a failed import.
INTERPRETED_BELOW_ROWS = 50_000  # COHORTLAKE_INTERPRETED_BELOW_ROWS
BUILD_INTERPRETED_BELOW_ROWS = 500_000  # COHORTLAKE_BUILD_INTERPRETED_BELOW_ROWS


def size_conf(largest_input_rows: int, step: str) -> dict[str, str]:
    """The settings for a step whose largest input has this many rows: interpreted below the
    step's threshold (``INTERPRETED_BELOW_ROWS`` of raw rows for an ingest,
    ``BUILD_INTERPRETED_BELOW_ROWS`` of canonical rows for a build), otherwise none
    (compiled, Spark's default)."""
    thresholds = {"ingest": ("COHORTLAKE_INTERPRETED_BELOW_ROWS", INTERPRETED_BELOW_ROWS),
                  "build": ("COHORTLAKE_BUILD_INTERPRETED_BELOW_ROWS", BUILD_INTERPRETED_BELOW_ROWS)}
    if step not in thresholds:
        raise ValueError(f"size_conf: step {step!r} is not one of {sorted(thresholds)}")
    return dict(INTERPRETED_CONF) if largest_input_rows < _rows_setting(*thresholds[step]) else {}


def code_generation(settings: dict[str, str]) -> str:
    """How a step with these ``size_conf`` settings runs, as its manifest records it."""
    return "interpreted" if settings.get("spark.sql.codegen.factoryMode") == "NO_CODEGEN" else "compiled"


CLUSTER_DEFAULTS = {
    **TUNING_CONF,
    # Executors run the wide generated aggregations of builds and validation: huge methods
    # compiled, without the cap a local session puts on C2 (see JIT_OPTIONS).
    "spark.executor.extraJavaOptions": HUGE_METHODS_FLAG,
    "spark.ui.showConsoleProgress": "false",
}


def _total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def local_conf(cores: int | None = None) -> dict[str, str]:
    """Settings for a single-machine session: driver heap and shuffle width from the hardware."""
    cores = cores or os.cpu_count() or 2
    total_gib = _total_memory_bytes() / 1024**3
    # The driver is also the only executor in local mode; leave room for Python
    # workers, pandas on the driver and the OS.
    driver_gib = max(1, min(16, int(total_gib * 0.35)))
    return {
        **TUNING_CONF,
        "spark.driver.memory": environment.memory_size("COHORTLAKE_DRIVER_MEMORY", f"{driver_gib}g"),
        "spark.sql.shuffle.partitions": str(max(4, cores * 4)),
        "spark.default.parallelism": str(max(2, cores * 2)),
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": environment.one_of("COHORTLAKE_SPARK_UI", "false", ("true", "false")),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home=/tmp {JIT_OPTIONS} {log_config_option()}",
        "spark.sql.warehouse.dir": os.path.join(os.environ.get("TMPDIR", "/tmp"), "cohortlake-warehouse"),
    }


def log_config_option() -> str:
    """The driver JVM option that loads cohortlake's log4j2.properties (quiet start-up, Spark's warnings kept).

    Only a JVM being started reads it: local sessions pass it here; under spark-submit it
    belongs on the command line (``--driver-java-options``).
    """
    from cohortlake.resources import SPARK_LOG_CONFIG, package_data

    return f"-Dlog4j2.configurationFile={package_data(SPARK_LOG_CONFIG).as_uri()}"


@lru_cache(maxsize=4)
def java_version_text(java: str) -> str:
    """What ``java -version`` prints ("" when it cannot run)."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stderr + out.stdout


def java_version(java: str) -> int | None:
    """Major version printed by ``java -version`` (``1.8`` counts as 8)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', java_version_text(java))
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


@lru_cache(maxsize=1)
def check_java() -> str:
    """Return the java executable Spark will use, or raise one clear message."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise EnvironmentProblem(
            f"Java {MIN_JAVA}+ is needed to run Spark but no java was found "
            "(set JAVA_HOME or install a JDK/JRE 17, e.g. the openjdk-17-jre-headless package)."
        )
    version = java_version(java)
    if version is None or version < MIN_JAVA:
        raise EnvironmentProblem(
            f"Java {MIN_JAVA}+ is needed to run Spark; {java} is version {version or 'unknown'} "
            "(set JAVA_HOME to a Java 17 or newer installation)."
        )
    return java


def launched_by_spark_submit() -> bool:
    """True inside a Python driver started by spark-submit (the JVM is already up)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(app_name: str = "cohortlake", master: str | None = None, conf: dict[str, str] | None = None):
    """The session for this process: reused if one is running, else created.

    ``master`` overrides the default ``local[*]``; under spark-submit the launcher's
    master and resources are kept.
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    # What a user can set is checked first, whether or not a session runs already: one line
    # naming the option or variable, before Spark could fail on it with a Java stack. Under
    # spark-submit the launcher's master and memory apply, so their variables are not read.
    submitted = launched_by_spark_submit()
    if master:
        environment.check_master(master, "--master")
    master_variable = "" if submitted else os.environ.get("COHORTLAKE_SPARK_MASTER", "").strip()
    if master_variable:
        environment.check_master(master_variable, "COHORTLAKE_SPARK_MASTER")
    log_level = environment.one_of("COHORTLAKE_SPARK_LOG_LEVEL", "WARN", environment.SPARK_LOG_LEVELS)
    settings = {} if submitted else local_conf()
    active = SparkSession.getActiveSession()
    if active is not None:
        resolve_jvm_names(active.sparkContext._jvm)
        return active
    builder = SparkSession.builder.appName(app_name)
    jvm_note = None
    if not submitted:
        java = check_java()
        master = master or master_variable or "local[*]"
        if master.startswith("local"):
            # Driver and executors share this machine: bind to loopback instead of letting
            # Spark warn that the hostname resolves to it and pick the first interface
            # (the Spark UI, when enabled, then listens on 127.0.0.1 too). A remote master
            # must reach the driver, so only local masters get this; an explicit
            # SPARK_LOCAL_IP wins.
            os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
        builder = builder.master(master)
        # This call starts the JVM (unless the caller sets its options): it may map, or write, the class archive.
        if SparkContext._gateway is None and "spark.driver.extraJavaOptions" not in (conf or {}):
            from pyspark.find_spark_home import _find_spark_home

            archive, jvm_note = class_archive.driver_options(java, java_version_text(java), _find_spark_home())
            if archive:
                settings["spark.driver.extraJavaOptions"] += " " + archive
        for key, value in settings.items():
            builder = builder.config(key, value)
    else:
        from pyspark import SparkConf

        # What spark-submit and spark-defaults.conf set lives in the running JVM. Until
        # PySpark has connected to it, SparkConf() is an empty Python dict: every default
        # here then replaced the user's --conf (their executors' JVM options among them).
        SparkContext._ensure_initialized()
        launcher_conf = SparkConf()
        for key, value in CLUSTER_DEFAULTS.items():
            if not launcher_conf.contains(key):
                builder = builder.config(key, value)
    for key, value in {**CORRECTNESS_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    resolve_jvm_names(spark.sparkContext._jvm)
    if jvm_note is not None:
        jvm = getattr(SparkContext._gateway, "proc", None)
        class_archive.note_jvm(jvm_note, jvm.pid if jvm is not None else None)
    spark.sparkContext.setLogLevel(log_level)
    return spark


# The JVM classes PySpark names on every DataFrame call, as PySpark names them. PySpark
# reaches a class through an attribute of its py4j view of the JVM, and py4j looks the
# name up in the JVM on every access: a short name is tried as a class of the default
# package first, then under each of PySpark's wildcard imports in turn, every miss a
# search of Spark's 277 jars. A build of a spec case's few patients asked for
# `functions` 84 times, `PythonUtils` 43 times and `PythonSQLUtils` 16 times (0.08, 0.14
# and 0.38 ms each); by Java Flight Recorder those lookups were 7% of the JVM's work
# planning the spec cases. Resolved once per session and kept on the view, later accesses
# are plain Python attributes. With the session no longer cloned per persist (above), the
# spec cases' builds in one process, the old and new ways alternated batch by batch: 97.8 s
# against 109.4 s.
JVM_NAMES = ("functions", "PythonUtils", "PythonSQLUtils", "org.apache.spark.sql.functions",
             "org.apache.spark.sql.classic.SparkSession", "org.apache.spark.storage.StorageLevel",
             "org.apache.spark.sql.expressions.Window")


def resolve_jvm_names(jvm) -> None:
    """Keep the classes of ``JVM_NAMES`` on py4j's view ``jvm`` (a class, constant for the
    JVM's life), so that PySpark's accesses to them stop being JVM round trips; each keeps
    the static methods it has looked up (``static_methods_class``)."""
    keeping = static_methods_class()
    by_class = {}  # one object per class: `functions` and its full name share their methods
    for name in JVM_NAMES:
        if not isinstance(vars(jvm).get(name), keeping):
            found = getattr(jvm, name)
            if found._fqn not in by_class:
                by_class[found._fqn] = keeping(found._fqn, found._gateway_client)
            vars(jvm)[name] = by_class[found._fqn]


@lru_cache(maxsize=1)
def static_methods_class() -> type:
    """A py4j ``JavaClass`` that keeps each static method it has looked up.

    py4j asks the JVM what a name of a class is at every access (``JavaClass.__getattr__``,
    a round trip), and PySpark reaches every function of ``functions`` that way, so each
    ``F.col`` or ``F.when`` cost two round trips: the lookup, then the call. A method of a
    loaded class is constant for the JVM's life, and its py4j handle (``JavaMember``) holds
    only its name and class, as the handles py4j keeps for an object's methods do. Fields
    and nested classes are asked for every time. The spec cases' builds, kept and not kept
    alternated batch by batch in one process: 173.7 s against 188.7 s, with 17% fewer round
    trips to the JVM (411,806 against 498,115).
    """
    from py4j.java_gateway import JavaClass, JavaMember

    class StaticMethods(JavaClass):
        def __getattr__(self, name):
            member = super().__getattr__(name)
            if isinstance(member, JavaMember):
                self.__dict__[name] = member  # found without asking from now on
            return member

    return StaticMethods


@contextmanager
def session_conf(spark, settings: dict[str, str]):
    """Apply session settings for one block, then put back what was there."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


JOB_DESCRIPTION = "spark.job.description"


@contextmanager
def job_description(spark, text: str):
    """Label the Spark jobs this thread starts in the block (Spark UI, event log, REST API).

    The label is a thread-local property: steps that run from several threads (ingest's
    tables, the gates' suites) each name their own jobs. The previous label comes back after.
    """
    context = spark.sparkContext
    previous = context.getLocalProperty(JOB_DESCRIPTION)
    context.setLocalProperty(JOB_DESCRIPTION, text)
    try:
        yield
    finally:
        context.setLocalProperty(JOB_DESCRIPTION, previous)
