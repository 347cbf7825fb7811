"""Validation cost of an ingested lakehouse against its ingest time.

    python benchmarks/validate_lake.py --lake DIR [--repeat N] [--counts]

Runs the bronze suites (of the layout the lake was ingested from) and the silver suites
as the ingest gates do, and prints per table: rows, expectations and seconds; per gate
its wall time and Spark jobs; then the total and its ratio to the ingest's wall time
from `_runs/ingest/manifest.json`.
Make the lake with `python benchmarks/ingest_throughput.py --patients 100000 --work DIR`.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path

from cohortlake.lake.delta import Lakehouse
from cohortlake.lake.session import get_spark
from cohortlake.quality.gates import bronze_targets, ingested_layout, silver_targets
from cohortlake.quality.run import QualityRunner
from cohortlake.quality.suites import load_suites


def ingest_seconds(root: str) -> float | None:
    path = Path(root) / "_runs" / "ingest" / "manifest.json"
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    started, finished = (datetime.fromisoformat(manifest[k].replace("Z", "+00:00")) for k in ("started_utc", "finished_utc"))
    return (finished - started).total_seconds()


def _jobs_so_far(tracker) -> int:
    """Spark jobs started in this application so far (job ids count up from 0)."""
    ids = tracker.getJobIdsForGroup(None) + tracker.getActiveJobsIds()
    return max(ids, default=-1) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", required=True, help="an ingested lakehouse")
    parser.add_argument("--repeat", type=int, default=1, help="validation rounds (the first includes warm-up)")
    parser.add_argument("--counts", action="store_true", help="counts for every expectation (slower)")
    parser.add_argument("--master", default=None)
    args = parser.parse_args()

    spark = get_spark("cohortlake-bench-validate", master=args.master)
    lake = Lakehouse(args.lake, spark)
    layout = ingested_layout(lake)
    suites = load_suites()
    stages = [("bronze", bronze_targets(lake, layout, suites)), ("silver", silver_targets(lake, suites))]
    runner = QualityRunner(lake, counts=args.counts)
    tracker = spark.sparkContext.statusTracker()
    print(f"spark {spark.version}, master {spark.sparkContext.master}, layout {layout}")
    for round_number in range(1, args.repeat + 1):
        total_started = time.monotonic()
        total_jobs = 0
        print(f"round {round_number}")
        print(f"  {'table':<28}{'rows':>12}{'expectations':>14}{'seconds':>9}")
        for stage, targets in stages:
            # one call per stage, as the ingest gates make it (results stored, docs built once);
            # suites run from a few threads, so per-table seconds overlap
            jobs_before = _jobs_so_far(tracker)
            started = time.monotonic()
            report = runner.validate(stage, targets, gate=False)
            seconds = time.monotonic() - started
            jobs = _jobs_so_far(tracker) - jobs_before
            total_jobs += jobs
            for run in report.runs:
                print(f"  {run.table:<28}{lake.row_count(run.table):>12,}{len(run.outcomes):>14}{run.seconds:>9.1f}")
            print(f"  {stage} gate: {seconds:.1f} s wall, {jobs} Spark jobs (storing results and Data Docs included)")
        total = time.monotonic() - total_started
        print(f"  total {total:.1f} s, {total_jobs} Spark jobs")
        ingest = ingest_seconds(args.lake)
        if ingest:
            print(f"  ingest wall time {ingest:.1f} s → validation is {100 * total / ingest:.1f}% of it")

if __name__ == "__main__":
    main()
