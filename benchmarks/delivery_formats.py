"""Ingest throughput of one synthetic SEER-Medicare set delivered as CSV and as NCI ships it.

    python benchmarks/delivery_formats.py --patients 20000 [--work DIR [--reuse-raw]] [--validate]

Writes the same set (same seed) twice, as CSV and as gzipped fixed-width text with a SAS
layout per table, ingests each into a fresh lakehouse in the same Spark session, checks
that the silver tables agree row for row, and prints per format the raw size, the ingest
wall time, raw rows per second and the fixed-width/CSV ratios. The quality gates are off
by default (they cost the same for either format; ``--validate`` turns them on).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from pyspark.sql import functions as F

from cohortlake.lake.delta import Lakehouse
from cohortlake.lake.session import get_spark
from cohortlake.progress import Progress
from cohortlake.sources.canonical import SILVER_TABLES, silver_name
from cohortlake.sources.ingest import ingest
from cohortlake.synth import generate

FORMATS = ("csv", "fixed-width")


def silver_fingerprint(lake, table: str) -> tuple[int, int]:
    """(rows, order-free hash sum) of a silver table, for an equality check without collecting."""
    frame = lake.read(silver_name(table))
    row = frame.select(F.count(F.lit(1)), F.sum(F.xxhash64(F.to_json(F.struct(*frame.columns))).cast("decimal(38,0)"))).first()
    return int(row[0]), int(row[1] or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", help="folder for raw files and lakes (default: a temporary folder)")
    parser.add_argument("--master", default=None)
    parser.add_argument("--reuse-raw", action="store_true", help="with --work: reuse raw files of an earlier run")
    parser.add_argument("--validate", action="store_true", help="run the bronze and silver gates too")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="cohortlake-formats-"))
    spark = get_spark("cohortlake-bench-formats", master=args.master)
    results = {}
    try:
        for file_format in FORMATS:
            raw, lake_root = work / f"raw-{file_format}", work / f"lake-{file_format}"
            started = time.perf_counter()
            if not (args.reuse_raw and (raw / "truth.json").exists()):
                generate(spark, "seer-medicare", str(raw), args.patients, args.seed, file_format=file_format)
            synth_seconds = time.perf_counter() - started
            raw_bytes = sum(p.stat().st_size for p in raw.iterdir() if p.is_file() and p.name != "truth.json")
            if lake_root.exists():
                shutil.rmtree(lake_root)
            lake = Lakehouse(str(lake_root), spark)
            started = time.perf_counter()
            report = ingest(spark, lake, "seer-medicare", raw, progress=Progress(quiet=True), validate=args.validate)
            seconds = time.perf_counter() - started
            results[file_format] = {
                "synth": synth_seconds, "bytes": raw_bytes, "seconds": seconds,
                "rows": sum(c.rows_in for c in report.raw), "report": report,
                "silver": {t: silver_fingerprint(lake, t) for t in SILVER_TABLES},
            }
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)

    csv, fixed = results["csv"], results["fixed-width"]
    print(f"synthetic seer-medicare set: {args.patients:,} patients, seed {args.seed}, Spark {spark.version}, "
          f"parallelism {spark.sparkContext.defaultParallelism}, gates {'on' if args.validate else 'off'}")
    print(f"{'format':<14}{'raw MB':>10}{'raw rows':>12}{'synth s':>10}{'ingest s':>10}{'rows/s':>10}{'MB/s':>8}")
    for name, r in results.items():
        print(f"{name:<14}{r['bytes'] / 1e6:>10,.1f}{r['rows']:>12,}{r['synth']:>10.1f}{r['seconds']:>10.1f}"
              f"{r['rows'] / r['seconds']:>10,.0f}{r['bytes'] / 1e6 / r['seconds']:>8.1f}")
    print(f"fixed-width / CSV: ingest time {fixed['seconds'] / csv['seconds']:.2f}x, "
          f"rows/s {(fixed['rows'] / fixed['seconds']) / (csv['rows'] / csv['seconds']):.2f}x, "
          f"raw bytes {fixed['bytes'] / csv['bytes']:.2f}x")
    same = csv["silver"] == fixed["silver"] and csv["rows"] == fixed["rows"]
    print(f"silver tables equal: {'yes' if same else 'NO'} "
          f"({sum(n for n, _ in csv['silver'].values()):,} silver rows)")


if __name__ == "__main__":
    main()
