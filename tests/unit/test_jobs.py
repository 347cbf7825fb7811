"""The spark-submit entry points and the zip they ship, without a cluster (test_cluster.py has one)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import cohortlake
from cohortlake.cli import build_parser, main
from cohortlake.job import JOBS

from paths import REPO


def run_script(*argv, cwd=REPO):
    return subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_every_step_has_a_job_that_runs_its_cli_command():
    commands = {name: parser for name, parser in _subcommands().items()}
    assert sorted(p.stem for p in (REPO / "jobs").glob("*.py")) == sorted(JOBS)
    for job, command in JOBS.items():
        assert command in commands, job
        text = (REPO / "jobs" / f"{job}.py").read_text()
        assert f'run_job("{job}", sys.argv[1:], __file__)' in text
        assert f"`cohortlake {command}`" in text


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_a_job_takes_the_cli_options_and_logs_its_outcome_and_exit_code(tmp_path):
    shown = run_script(REPO / "jobs" / "run_study.py", "--help")
    assert shown.returncode == 0
    assert "--lake" in shown.stdout and "--raw DIR" in shown.stdout and "--no-validate" in shown.stdout
    assert "job run_study: ok (exit 0)" in shown.stderr

    missing = run_script(REPO / "jobs" / "build_cohort.py", tmp_path / "missing.yaml", "--lake", tmp_path / "lake")
    assert missing.returncode == 1
    lines = missing.stderr.strip().splitlines()
    assert lines[0].startswith(f"job build_cohort: cohortlake {cohortlake.__version__} from ")
    assert lines[1] == f"cohortlake build: error: {tmp_path / 'missing.yaml'}: file not found"
    assert lines[2].startswith("job build_cohort: FAILED (exit 1) in ")
    assert len(lines) == 3  # one clear message, no trace

    usage = run_script(REPO / "jobs" / "match.py", "--lake", tmp_path)
    assert usage.returncode == 2 and "job match: FAILED (exit 2)" in usage.stderr


def test_run_takes_raw_and_layout_together_and_out_must_be_a_local_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run", "x.yaml", "--lake", str(tmp_path), "--out", "s3a://bucket/study"])
    assert stop.value.code == 2
    assert "--out is a folder the driver writes (a local path or file:// URI)" in capsys.readouterr().err
    assert build_parser().parse_args(["run", "x.yaml", "--out", "file:///srv/a%20study"]).out == "/srv/a study"
    definition = REPO / "cohort_defs" / "hcc_sorafenib_landmark.yaml"
    assert main(["run", str(definition), "--out", str(tmp_path), "--raw", str(tmp_path)]) == 1
    assert "--raw and --layout go together" in capsys.readouterr().err


def test_the_bundle_is_reproducible_and_the_package_runs_from_it(tmp_path):
    first, second = tmp_path / "a" / "cohortlake.zip", tmp_path / "b" / "cohortlake.zip"
    assert main(["bundle", "--out", str(first)]) == 0
    assert main(["bundle", "--out", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    assert "cohortlake/sources/mappings/seer-medicare.yaml" in names
    assert "cohortlake/report/templates/report.html.j2" in names
    shipped = REPO / "src" / "cohortlake"
    for folder in ("cohort_defs", "expectations"):  # the shipped definitions, code sets, test patients, suites
        files = {f"cohortlake/{p.relative_to(shipped).as_posix()}" for p in (shipped / folder).rglob("*") if p.is_file()}
        assert files and files <= set(names), sorted(files - set(names))
    assert "cohortlake/cohort_defs/codesets/nci_comorbidity.yaml" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    # Beside the zip, the driver's log settings for --driver-java-options, as the package has them.
    assert (first.parent / "cohortlake-log4j2.properties").read_bytes() == \
        (shipped / "lake" / "log4j2.properties").read_bytes()

    # From the zip alone (first on the path, as --py-files puts it): code, mappings, templates.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import cohortlake; from cohortlake.job import package_origin;"
        "from cohortlake.sources.mapping import load_mapping, known_layouts;"
        "from cohortlake.report.html import _environment;"
        "print(package_origin()); print(known_layouts());"
        "print(len(load_mapping('seer-medicare').raw)); print(_environment().get_template('report.html.j2').name)"
    )
    shown = run_script("-c", probe, first, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [str(first), "['desynpuf', 'seer-medicare']", "8", "report.html.j2"]

    # The shipped files, copied out of the zip: the reference definition with its includes, the suites.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from cohortlake.resources import reference_definition, shipped_codesets;"
        "from cohortlake.spec import load_definition; from cohortlake.quality.suites import load_suites;"
        "print(load_definition(reference_definition()).cohort); print(len(load_suites()));"
        "print(sorted(p.name for p in shipped_codesets().glob('*.yaml')) == sys.argv[2].split(','));"
        "print(reference_definition())"
    )
    library = ",".join(sorted(p.name for p in (shipped / "cohort_defs" / "codesets").glob("*.yaml")))
    shown = run_script("-c", probe, first, library, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    *found, copied = shown.stdout.splitlines()
    assert found == ["hcc_sorafenib_landmark", str(len(list((shipped / "expectations").glob("*.json")))), "True"]
    assert not Path(copied).is_relative_to(REPO) and not Path(copied).exists()  # a copy, removed at exit

    assert main(["bundle", "--out", str(tmp_path / "cohortlake.whl")]) == 1


def test_the_bundle_zips_the_files_a_link_in_the_package_points_to(tmp_path, monkeypatch):
    import cohortlake.bundle
    from cohortlake.bundle import write_bundle

    package, shared = tmp_path / "cohortlake", tmp_path / "shared"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    (shared / "nested").mkdir(parents=True)
    (shared / "a.yaml").write_text("a: 1\n")
    (shared / "nested" / "b.yaml").write_text("b: 1\n")
    (package / "codesets").symlink_to(shared, target_is_directory=True)
    monkeypatch.setattr(cohortlake.bundle, "package_root", lambda: package)
    path, count = write_bundle(tmp_path / "out" / "bundle.zip")
    assert zipfile.ZipFile(path).namelist() == ["cohortlake/__init__.py", "cohortlake/codesets/a.yaml",
                                                "cohortlake/codesets/nested/b.yaml"]
    assert count == 3
