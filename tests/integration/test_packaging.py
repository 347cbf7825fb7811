"""A wheel built from the repository runs on its own: the shipped definitions, code sets and
expectation suites come with it (package data, cohortlake/resources.py), so `cohortlake
check` and `cohortlake demo` work from an installed copy with the source tree out of sight.

The wheel, its installation into a fresh virtual environment and the installed copy's demo
are made by tests/lib/installed_copy.py, in the background from the session's start
(conftest.installed_copy); these tests check what they gave.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

from cohortlake.lake.class_archive import DONE_LINE
from installed_copy import run
from paths import REPO
PACKAGE = REPO / "src" / "cohortlake"
REFERENCE = "hcc_sorafenib_landmark"


# What a user saw before the driver got cohortlake's log4j2.properties (and, for a local
# master, SPARK_LOCAL_IP): the log4j banners, Spark's hints and notices, a log4j that cannot
# read the file ("StatusLogger").
SPARK_NOTICES = ("Using Spark's default log4j profile", "Setting default log level", "To adjust logging level",
                 "resolves to a loopback address", "Set SPARK_LOCAL_IP", "Unable to load native-hadoop library",
                 "Truncated the string representation of a plan", "was locally checkpointed",
                 "Broadcasting large task binary", "StatusLogger")


@pytest.fixture(scope="module")
def wheel(installed_copy) -> Path:
    return installed_copy.result("wheel")


@pytest.fixture(scope="module")
def installed(installed_copy):
    """(the new environment's bin folder, a working folder outside the source tree, the environment)."""
    return installed_copy.result("installed")


def test_the_wheel_carries_the_shipped_definitions_code_sets_and_suites(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, patterns in (("cohort_defs", ("*.yaml", "README.md", "codesets/*.yaml", "tests/*.yaml")),
                             ("expectations", ("*.json", "*.yaml"))):
        shipped = {f"cohortlake/{p.relative_to(PACKAGE).as_posix()}"
                   for pattern in patterns for p in (PACKAGE / folder).glob(pattern)}
        assert shipped and shipped <= names, sorted(shipped - names)
    assert f"cohortlake/cohort_defs/{REFERENCE}.yaml" in names
    assert "cohortlake/cohort_defs/codesets/nci_comorbidity.yaml" in names
    assert "cohortlake/quality/docs_assets/NOTICE.md" in names
    assert "cohortlake/lake/log4j2.properties" in names  # the Spark driver's log settings (lake/session.py)
    assert not any(n.startswith("cohortlake/codesets/") for n in names)  # the old link into the source tree


def test_the_installed_package_is_imported_and_checks_its_reference_definition(installed):
    bin_, work, env = installed
    venv = bin_.parent
    probe = run(bin_ / "python", "-c",
                "import json, cohortlake, cohortlake.resources as r, cohortlake.quality.suites as s;"
                "print(json.dumps({'module': cohortlake.__file__, 'reference': str(r.reference_definition()),"
                "'codesets': str(r.shipped_codesets()), 'suites': str(s.suites_dir()), 'n': len(s.load_suites())}))",
                cwd=work, env=env)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    for key in ("module", "reference", "codesets", "suites"):
        assert Path(found[key]).resolve().is_relative_to(venv.resolve()), (key, found[key])
    assert found["n"] == len(list((PACKAGE / "expectations").glob("*.json")))

    checked = run(bin_ / "cohortlake", "check", found["reference"], cwd=work, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"ok: cohort '{REFERENCE}', 12 criteria" in checked.stdout

    # Every shipped definition, code-set file and test-patient file, as installed.
    everything = run(bin_ / "cohortlake", "check", Path(found["reference"]).parent, cwd=work, env=env)
    assert everything.returncode == 0, everything.stdout + everything.stderr


@pytest.mark.spark  # it runs Spark (in the installed copy's own process): out of the Spark-free lane
def test_the_demo_runs_from_the_installed_package(installed, installed_demo):
    bin_, work, _ = installed
    demo = installed_demo  # installed_copy.DEMO_ARGS: one patient, seed 7, into ./lake, local[2]
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    lake = work / "lake"
    assert "quality gate 'cohort': passed" in demo.stdout + demo.stderr
    # The installed copy's log settings reach the driver JVM: the project's lines, not Spark's
    # start-up notices (that Spark's warnings are kept is tests/unit/test_session.py's claim).
    notices = [line for line in demo.stderr.splitlines() if any(notice in line for notice in SPARK_NOTICES)]
    assert notices == [], notices
    # The JVM options of lake/session.py (JIT_OPTIONS) are taken without a word from the JVM.
    assert "CompileCommand" not in demo.stdout + demo.stderr
    # Nor does Spark warn or fail anything of ours on a clean run: no compile-error trace from
    # generated code Java cannot hold, no window that moves a table to one partition.
    spark_log = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d (WARN|ERROR) ")
    assert [line for line in demo.stderr.splitlines() if spark_log.match(line)] == []
    for path in ("_raw/seer-medicare/truth.json", "_runs/ingest/manifest.json", "silver/person/_delta_log",
                 f"cohorts/{REFERENCE}/cohort/_delta_log", f"cohorts/{REFERENCE}/attrition/_delta_log",
                 "_quality/docs/index.html", "_quality/docs/static/vendor/NOTICE.md", "_quality/report.html"):
        assert (lake / path).exists(), path
    manifest = json.loads((lake / "cohorts" / REFERENCE / "manifest.json").read_text())
    assert Path(manifest["extra"]["definition"]).resolve().is_relative_to(bin_.parent.resolve())  # the installed copy's


@pytest.mark.spark
def test_the_demos_jvm_archives_its_classes_and_the_next_jvm_maps_them(installed, installed_demo):
    """lake/class_archive.py on a first run, as on a user's machine: the demo's JVM writes the
    archive as it exits (the demo's output closes only after that), silently; the next local
    session takes it in and its JVM loads Spark's classes from it."""
    bin_, work, env = installed
    folder = Path(env["COHORTLAKE_CLASS_ARCHIVE"])
    assert installed_demo.returncode == 0, installed_demo.stderr[-3000:]
    [log] = folder.glob("*.log")
    assert DONE_LINE in log.read_text()
    [partial] = folder.glob("*.partial")
    assert not list(folder.glob("*.jsa"))
    said = (installed_demo.stdout + installed_demo.stderr).splitlines()
    assert [line for line in said if "cds" in line or "archive" in line.lower()] == []

    # The next session: JAVA_TOOL_OPTIONS reaches every JVM; each logs where its classes came from.
    probe_env = dict(env, JAVA_TOOL_OPTIONS=f"-Xlog:class+load=info:file={work}/class-load-%p.log")
    probe = run(bin_ / "python", "-c", "from cohortlake.lake.session import get_spark; "
                "print(get_spark('probe', master='local[1]').range(5).count())", cwd=work, env=probe_env)
    assert probe.returncode == 0 and probe.stdout.split()[-1] == "5", probe.stdout + probe.stderr
    [archive] = folder.glob("*.jsa")
    assert sorted(p.suffix for p in folder.iterdir()) == [".jsa", ".json"]  # the write taken in, nothing left over
    assert json.loads(archive.with_suffix(".json").read_text())["bytes"] == archive.stat().st_size
    [driver] = [text for text in map(Path.read_text, work.glob("class-load-*.log"))
                if "org.apache.spark.SparkContext " in text]
    assert re.search(r"\] org\.apache\.spark\.SparkContext source: shared objects file \(top\)$", driver, re.M)
    # Of the classes it loaded from Spark's jars or the archive, nearly all came from the archive
    # (left to the jars: the few the demo did not load, and signed jars, which CDS skips).
    from_archive = len(re.findall(r"source: shared objects file \(top\)$", driver, re.M))
    from_jars = len(re.findall(r"source: file:\S+/jars/[^/\s]+\.jar$", driver, re.M))
    assert from_archive > 0.9 * (from_archive + from_jars), (from_archive, from_jars)
