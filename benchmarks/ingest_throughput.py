"""Ingest throughput on a synthetic SEER-Medicare set: rows per table and rows per second.

    python benchmarks/ingest_throughput.py --patients 100000 [--work DIR] [--keep]

Generates the raw files (timed separately), ingests them into a fresh lakehouse and
prints the size of the set per raw table, the silver row counts, the wall time of each
phase and the throughput (raw rows in per second of ingest).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from cohortlake.lake.delta import Lakehouse
from cohortlake.lake.session import get_spark
from cohortlake.progress import Progress
from cohortlake.sources.ingest import ingest
from cohortlake.synth import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", help="folder for raw files and lake (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--master", default=None)
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="cohortlake-bench-"))
    raw, lake_root = work / "raw", work / "lake"
    spark = get_spark("cohortlake-bench", master=args.master)
    cores = spark.sparkContext.defaultParallelism
    try:
        started = time.perf_counter()
        summary = generate(spark, "seer-medicare", str(raw), args.patients, args.seed)
        synth_seconds = time.perf_counter() - started
        raw_bytes = sum(p.stat().st_size for p in raw.iterdir() if p.is_file())

        if lake_root.exists():
            shutil.rmtree(lake_root)
        lake = Lakehouse(str(lake_root), spark)
        started = time.perf_counter()
        report = ingest(spark, lake, "seer-medicare", raw, progress=Progress(quiet=True))
        ingest_seconds = time.perf_counter() - started
        timings = json.loads(Path(report.manifest_path).read_text())["timings_seconds"]
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)

    rows_in = sum(c.rows_in for c in report.raw)
    print(f"synthetic seer-medicare set: {args.patients:,} patients, seed {args.seed}, "
          f"{raw_bytes / 1e6:,.1f} MB raw CSV, Spark {spark.version}, parallelism {cores}")
    print(f"{'raw table':<22}{'rows in':>13}{'duplicates':>12}{'quarantined':>13}{'rows out':>13}")
    for c in report.raw:
        print(f"{c.raw_table:<22}{c.rows_in:>13,}{c.duplicates:>12,}{c.quarantined:>13,}{c.rows_out:>13,}")
    print(f"{'total':<22}{rows_in:>13,}")
    print(f"{'silver table':<22}{'rows':>13}")
    for table, rows in report.silver.items():
        print(f"{table:<22}{rows:>13,}")
    print(f"synth:  {synth_seconds:8.1f} s")
    print(f"ingest: {ingest_seconds:8.1f} s   {rows_in / ingest_seconds:,.0f} raw rows/s   "
          f"{raw_bytes / 1e6 / ingest_seconds:,.1f} MB/s")
    for phase, seconds in sorted(timings.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {phase:<32}{seconds:8.1f} s")


if __name__ == "__main__":
    main()
