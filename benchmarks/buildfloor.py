"""The floor of a cohort build, shared by the benchmarks that time builds.

The floor is a bare scan of exactly the columns the build's plan reads from each silver
table (Spark's no-op sink, so every column is read and decoded), taken as often as the
builds in the same run; the figure is best warm build / best warm scan (issue 16's
target: at most 3). Imported by name from the scripts in this folder.
"""

from __future__ import annotations

import time

from cohortlake.engine.cohort import build_cohort
from cohortlake.engine.plan import columns_read
from cohortlake.engine.store import read_silver
from cohortlake.lake.delta import Lakehouse


def columns_to_scan(lake: Lakehouse, definition) -> dict[str, set[str]]:
    """The columns the build's plan reads, per silver table (the plan is built, not run)."""
    result = build_cohort(definition, read_silver(lake))
    try:
        return columns_read(result.cohort, lake.root)
    finally:
        result.release()


def bare_scans(lake: Lakehouse, read: dict[str, set[str]], rounds: int) -> list[float]:
    """Wall seconds of each of ``rounds`` bare scans of those columns."""
    scans = []
    for _ in range(rounds):
        started = time.perf_counter()
        for table, names in sorted(read.items()):
            lake.read(table).select(*sorted(names)).write.format("noop").mode("overwrite").save()
        scans.append(time.perf_counter() - started)
    return scans


def warm_ratio(builds: list[float], scans: list[float]) -> dict[str, float]:
    """Best warm build, best warm scan and their ratio, and the same for the first (cold) ones.

    The first of each is the cold one; with a single round it counts as warm too.
    """
    warm_build, warm_scan = min(builds[1:] or builds), min(scans[1:] or scans)
    return {"warm_build": warm_build, "warm_scan": warm_scan, "ratio": warm_build / warm_scan,
            "cold_build": builds[0], "cold_scan": scans[0], "cold_ratio": builds[0] / scans[0]}
