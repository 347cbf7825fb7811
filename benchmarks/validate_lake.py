"""Validation cost of an ingested lakehouse against its ingest time.

    python benchmarks/validate_lake.py --lake DIR [--repeat N] [--counts]

Runs the bronze suites (of the layout the lake was ingested from) and the silver suites
as the ingest gates do, and prints per table: rows, expectations, Spark jobs and seconds;
then the totals and the ratio to the ingest's wall time from `_runs/ingest/manifest.json`.
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
        print(f"  {'table':<28}{'rows':>12}{'expectations':>14}{'jobs':>7}{'seconds':>9}")
        for stage, targets in stages:
            for target in targets:
                group = f"validate-{round_number}-{target.table}"
                spark.sparkContext.setJobGroup(group, group)
                started = time.monotonic()
                report = runner.validate(stage, [target], gate=False)
                seconds = time.monotonic() - started
                jobs = len(tracker.getJobIdsForGroup(group))
                total_jobs += jobs
                run = report.runs[0]
                print(f"  {target.table:<28}{lake.row_count(target.table):>12,}{len(run.outcomes):>14}{jobs:>7}{seconds:>9.1f}")
        spark.sparkContext.setJobGroup("idle", "idle")
        total = time.monotonic() - total_started
        print(f"  total {total:.1f} s, {total_jobs} Spark jobs")
        ingest = ingest_seconds(args.lake)
        if ingest:
            print(f"  ingest wall time {ingest:.1f} s → validation is {100 * total / ingest:.1f}% of it")


if __name__ == "__main__":
    main()
