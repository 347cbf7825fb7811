"""A wheel built from the repository runs on its own: the shipped definitions, code sets and
expectation suites come with it (package data, cohortlake/resources.py), so `cohortlake
check` and `cohortlake demo` work from an installed copy with the source tree out of sight.

The wheel is built offline from a copy of the build's inputs (pyproject.toml, README.md,
src/), so a stale build/ folder in the checkout can add nothing to it, and installed into a
fresh virtual environment whose only other packages are the project environment's
(reached by a .pth line, which does not read that environment's .pth files: the editable
install's path to src/ stays out).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

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


def run(*argv, cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    setuptools = tuple(int(p) for p in version("setuptools").split(".")[:2])
    assert setuptools >= (77, 0), f"setuptools {version('setuptools')}: the dev extras need >= 77 (pip install -e '.[dev]')"
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                "-w", root / "dist", source, cwd=root, env=_clean_env())
    assert built.returncode == 0, built.stdout + built.stderr
    [path] = (root / "dist").glob("cohortlake-*.whl")
    return path


def _clean_env() -> dict:
    """The environment without anything that points at the source tree or overrides the shipped files."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV",
                        "COHORTLAKE_EXPECTATIONS", "COHORTLAKE_CODESETS")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(the new environment's bin folder, a working folder outside the source tree, the environment)."""
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    env = _clean_env()
    made = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root, env=env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                    cwd=root, env=env).stdout.strip())
    project = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (site / "_project_environment.pth").write_text("".join(f"{p}\n" for p in sorted(project)))
    done = run(python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel, cwd=root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    work = root / "work"
    work.mkdir()
    assert REPO not in work.parents and REPO.resolve() not in work.resolve().parents
    return venv / "bin", work, env


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
def test_the_demo_runs_from_the_installed_package(installed):
    bin_, work, env = installed
    demo = run(bin_ / "cohortlake", "demo", "--no-study", "--patients", "1", "--seed", "7", "--lake", "lake",
               "--master", "local[2]", cwd=work, env=env, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    lake = work / "lake"
    assert "quality gate 'cohort': passed" in demo.stdout + demo.stderr
    # The installed copy's log settings reach the driver JVM: the project's lines, not Spark's
    # start-up notices (that Spark's warnings are kept is tests/unit/test_session.py's claim).
    notices = [line for line in demo.stderr.splitlines() if any(notice in line for notice in SPARK_NOTICES)]
    assert notices == [], notices
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
