"""benchmarks/scale.py's arithmetic and README table, on hand-made figures (no Spark is started)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from paths import REPO

BENCHMARKS = REPO / "benchmarks"


@pytest.fixture(scope="module")
def scale():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling helpers by name
    try:
        spec = importlib.util.spec_from_file_location("bench_scale", BENCHMARKS / "scale.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def size(patients, ingest, warm, cold=None, **extra):
    return {"patients": patients, "raw_rows": patients * 100, "silver_rows": patients * 60, "synth_seconds": 1.0,
            "ingest_seconds": ingest, "build_cold_seconds": cold or warm * 2, "build_warm_seconds": warm,
            "population": patients, "floor_warm_seconds": warm / 4, "jvm_peak_rss": 3 * 1024**3,
            "python_peak_rss": 100 * 1024**2, "driver_memory": "8g", **extra}


def test_memory_settings_read_as_spark_reads_them(scale):
    assert scale.memory_bytes("8g") == 8 * 1024**3
    assert scale.memory_bytes("512m") == scale.memory_bytes("512") == 512 * 1024**2
    assert scale.memory_bytes("1536K") == 1536 * 1024
    assert scale.memory_bytes("2gb") == 2 * 1024**3
    with pytest.raises(ValueError):
        scale.memory_bytes("lots")


def test_growth_divides_the_bigger_size_by_the_smaller_and_checks_the_target(scale):
    small, big = size(10_000, 10.0, 2.0), size(100_000, 104.0, 22.0)
    step = scale.growth(small, big)
    assert step["size"] == pytest.approx(10.0) and step["limit"] == pytest.approx(10.5)
    assert step["raw_rows"] == pytest.approx(10.0)
    assert step["ingest"] == pytest.approx(10.4) and step["build_warm"] == pytest.approx(11.0)
    assert step["build_cold"] == pytest.approx(11.0)
    assert step["within"] == {"ingest": True, "build_warm": False}


def test_growths_pair_consecutive_finished_sizes_only(scale):
    results = [size(100_000, 100.0, 20.0), size(1_000, 1.0, 0.2), size(10_000, 10.0, 2.0),
               {"patients": 1_000_000, "failed_phase": "ingest", "error": "boom"}]
    steps = scale.growths(results)
    assert [(g["from"], g["to"]) for g in steps] == [(1_000, 10_000), (10_000, 100_000)]


def test_memory_verdict(scale):
    assert scale.within_memory(size(1_000, 1.0, 1.0)) is True
    assert scale.within_memory(size(1_000, 1.0, 1.0, jvm_peak_rss=9 * 1024**3)) is False
    assert scale.within_memory({"patients": 1, "failed_phase": "build"}) is False
    assert scale.within_memory({"patients": 1, "driver_memory": "8g"}) is None
    # Spark's default overhead: 10% of the driver's memory, at least 384 MiB
    assert scale.with_overhead(8 * 1024**3) == 8 * 1024**3 + 8 * 1024**3 // 10
    assert scale.with_overhead(2 * 1024**3) == (2 * 1024 + 384) * 1024**2
    over_heap = size(1_000, 1.0, 1.0, driver_memory="2g", jvm_peak_rss=2300 * 1024**2)
    assert scale.within_memory(over_heap) is False and scale.within_memory(over_heap, overhead=True) is True


def test_readme_table_has_a_row_per_size_and_one_per_step(scale):
    results = [size(10_000, 10.0, 2.0), size(1_000, 1.0, 0.25),
               {"patients": 100_000, "failed_phase": "build", "error": "OutOfMemoryError"}]
    lines = scale.markdown_table(results, scale.growths(results))
    header, rule, *rows = lines[:5]
    assert header.count("|") == rule.count("|") == 13
    assert rows[0].startswith("| 1,000 | 100,000 | 60,000 | 1.0 s | 1.0 s | 100,000 | 0.5 / 0.2 s | 4,000 | 0.06 s | 4.0x |")
    assert rows[1].startswith("| 10,000 |")
    assert rows[2].startswith("| 100,000 | failed in build |") and rows[2].count("|") == 13
    assert lines[-1] == "| 1,000 → 10,000 | 10.0x | 10.0x | 8.0x | ≤ 10.5x |"
    assert all(row.count("|") == 6 for row in lines[-3:])
