"""What the spark-submit entry points in ``jobs/`` share.

A job is a CLI command run under ``spark-submit``: the same options, the same exit codes
(0 done, 1 a problem with the input or environment, 2 usage, 130 interrupted), and a log
a scheduler can keep: plain lines, one per step with its rows and seconds, a first line
saying which package runs where and a last line with the outcome and the wall time.
"""

from __future__ import annotations

import os
import sys
import time
import zipfile
from pathlib import Path

from cohortlake import __version__
from cohortlake.resources import package_root

# Each job (jobs/<name>.py) and the CLI command it runs.
JOBS = {
    "ingest": "ingest",
    "build_cohort": "build",
    "validate": "validate",
    "match": "match",
    "analyze": "analyze",
    "run_study": "run",
}


def package_origin() -> str:
    """Where the running cohortlake was imported from: a zip given to --py-files, or a folder."""
    text = str(package_root())
    marker = ".zip" + os.sep
    return text[: text.index(marker) + 4] if marker in text else text


def _default_expectations(project: Path) -> None:
    """Suites come from $COHORTLAKE_EXPECTATIONS, else an ``expectations/`` folder beside ``jobs/``
    (in a clone, the link to the package's own), else the package's (the zip's under --py-files)."""
    from cohortlake.quality.suites import SUITES_ENV

    if not os.environ.get(SUITES_ENV) and (project / "expectations").is_dir():
        os.environ[SUITES_ENV] = str(project / "expectations")


def run_job(job: str, argv: list[str], script: str) -> int:
    """Run job ``job`` (a key of :data:`JOBS`) with the CLI options in ``argv``; returns the exit code."""
    from cohortlake.cli import main

    command = JOBS[job]
    _default_expectations(Path(script).resolve().parent.parent)
    started = time.monotonic()
    print(f"job {job}: cohortlake {__version__} from {package_origin()}, python {sys.version.split()[0]}, "
          f"command 'cohortlake {command}'", file=sys.stderr, flush=True)
    code = 1
    try:
        code = main([command, *argv])
    except SystemExit as exit_:  # argparse: usage errors and --help
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    finally:
        _stop_spark()
        outcome = "ok" if code == 0 else "FAILED"
        print(f"job {job}: {outcome} (exit {code}) in {time.monotonic() - started:.1f}s",
              file=sys.stderr, flush=True)
    return code


def _stop_spark() -> None:
    """Stop the session so the event log is complete for the history server."""
    if "pyspark" not in sys.modules:
        return
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


def write_bundle(out: str | os.PathLike) -> tuple[Path, int]:
    """Zip the importable package (code and package data, no bytecode) for --py-files.

    Entries are sorted and dated 1980-01-01, so the same source gives the same bytes; a
    link in the package is zipped as the files it points to. Returns the zip's path and
    the number of files in it.
    """
    package = package_root()
    if not package.is_dir():
        raise RuntimeError(f"cohortlake runs from {package_origin()}, not a folder; bundle from an installed copy")
    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"{out}: the bundle must be a .zip (Spark puts .zip, .egg and .jar files on executors' "
                         "Python path; a .whl it ships but does not import from)")
    out.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(
        Path(folder, name).relative_to(package)
        for folder, subfolders, names in os.walk(package, followlinks=True)
        if "__pycache__" not in Path(folder).parts
        for name in names if Path(name).suffix not in (".pyc", ".pyo")
    )
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for path in files:
            info = zipfile.ZipInfo((Path("cohortlake") / path).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            bundle.writestr(info, (package / path).read_bytes())
    partial.replace(out)
    return out, len(files)
