"""Cohort build time over an ingested lakehouse, with the plan's table scans.

    python benchmarks/build_cohort.py --lake DIR [--definition cohort_defs/X.yaml ...] [--repeat N]

Builds each definition (written to the lake as `cohort build` does) and prints the
silver row counts it read, the wall time of each build, persons per second of
population, the table scans of the plan and the attrition. Then the floor, measured in
the same run: a bare scan of exactly the columns the build's plan reads from each silver
table (Spark's no-op sink, so every column is read and decoded), as often as the builds,
and the ratio of the best warm build to the best warm scan (issue 16's target: at most 3).
Make the lake with `python benchmarks/ingest_throughput.py --patients 100000 --work DIR`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from buildfloor import bare_scans, columns_to_scan, warm_ratio
from cohortlake.engine.store import build_and_store as build, render_attrition
from cohortlake.lake.delta import Lakehouse
from cohortlake.lake.session import get_spark
from cohortlake.sources.canonical import SILVER_TABLES, silver_name
from cohortlake.spec import load_definition

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", required=True, help="an ingested lakehouse")
    parser.add_argument("--definition", action="append",
                        help="definition YAML (repeatable; default the reference study)")
    parser.add_argument("--repeat", type=int, default=1, help="builds per definition (the first includes JVM warm-up)")
    parser.add_argument("--master", default=None)
    args = parser.parse_args()

    spark = get_spark("cohortlake-bench-build", master=args.master)
    lake = Lakehouse(args.lake, spark)
    print(f"spark {spark.version}, master {spark.sparkContext.master}, {spark.sparkContext.defaultParallelism} cores")
    for table in SILVER_TABLES:
        print(f"  silver/{table:<14}{lake.row_count(silver_name(table)):>14,} rows")
    definitions = args.definition or [str(REPO / "cohort_defs" / "hcc_sorafenib_landmark.yaml")]
    for path in definitions:
        definition = load_definition(path)
        builds = []
        for attempt in range(1, args.repeat + 1):
            started = time.perf_counter()
            report = build(definition, lake)
            seconds = time.perf_counter() - started
            builds.append(seconds)
            population = report.attrition[0][2]
            print(f"\n{definition.cohort} build {attempt}: {seconds:.1f} s wall, {report.cohort_rows:,} in the cohort, "
                  f"{population / seconds:,.0f} persons/s of population")
        import json

        manifest = json.loads(Path(report.manifest_path).read_text())
        print("  table scans in the plan:", ", ".join(f"{t} ×{n}" for t, n in manifest["extra"]["table_scans"].items()))
        print("  phases:", ", ".join(f"{k} {v:.1f} s" for k, v in manifest["timings_seconds"].items()))
        for line in render_attrition(report.attrition):
            print("  " + line)
        floor(lake, definition, builds)


def floor(lake: Lakehouse, definition, builds: list[float]) -> None:
    """Bare scans of the columns the build reads, as many as the builds; the ratio of the best warm ones."""
    read = columns_to_scan(lake, definition)
    print("  columns the plan reads:", "; ".join(f"{t} {len(c)}" for t, c in sorted(read.items())))
    scans = bare_scans(lake, read, len(builds))
    print("  bare scan of those columns:", ", ".join(f"{s:.2f} s" for s in scans))
    r = warm_ratio(builds, scans)
    print(f"  best warm build {r['warm_build']:.1f} s / best warm scan {r['warm_scan']:.2f} s = {r['ratio']:.1f}x "
          f"(cold: {r['cold_build']:.1f} s / {r['cold_scan']:.2f} s = {r['cold_ratio']:.1f}x)")


if __name__ == "__main__":
    main()
