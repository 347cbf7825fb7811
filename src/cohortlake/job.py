"""What the spark-submit entry points in ``jobs/`` share (the zip they ship is ``bundle.py``'s).

A job is a CLI command run under ``spark-submit``: the same options, the same exit codes
(0 done, 1 a problem with the input or environment, 2 usage, 130 interrupted), and a log
a scheduler can keep: plain lines, one per step with its rows and seconds, a first line
saying which package runs where and a last line with the outcome and the wall time.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from cohortlake import __version__
from cohortlake.bundle import package_origin

# Each job (jobs/<name>.py) and the CLI command it runs.
JOBS = {
    "ingest": "ingest",
    "build_cohort": "build",
    "validate": "validate",
    "match": "match",
    "analyze": "analyze",
    "run_study": "run",
}


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
