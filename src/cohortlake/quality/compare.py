"""Delivery over delivery: the newest ingest of a lake against the one before it.

Each ingest writes one new Delta version of every ``bronze/``, ``quarantine/`` and
``silver/`` table, so the previous delivery is each table's version before its latest
write (time travel; a table whose latest commit is a RESTORE, put back after a failed
gate, is not compared). Measured with Spark aggregations whose results are a few rows
per table (nothing claim-sized reaches the driver):

* rows per raw table and service year (the year of the date the mapping takes a row's
  events from), and rows per table;
* persons (rows of ``silver/person``);
* share of missing values per key column (the mapping's key and required columns of a
  raw table; person, date and code of a canonical one);
* code-system mix of ``silver/diagnosis`` and ``silver/procedure``;
* the quarantine rate of each raw table;
* from ``_quality/results``: expectations of the bronze and silver suites that met on
  the previous delivery's versions and fail on the new one.

A change beyond the limits of ``expectations/delivery_comparison.yaml`` is a warning.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cohortlake.errors import UserError
from cohortlake.lake import layout as lake_layout
from cohortlake.quality.suites import suites_dir

THRESHOLDS_FILE = "delivery_comparison.yaml"
CACHE_FILE = "comparison.json"
SILVER_KEY_COLUMNS = ("person_id", "date", "code", "start_date", "birth_date")
CODE_SYSTEM_TABLES = (lake_layout.silver("diagnosis"), lake_layout.silver("procedure"))
UNKNOWN_YEAR = "unknown"
THREADS = 3


def load_thresholds(path: str | Path | None = None) -> dict:
    """The comparison's limits, from ``expectations/delivery_comparison.yaml`` (or ``path``)."""
    import yaml

    path = Path(path) if path else suites_dir() / THRESHOLDS_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"{path}: cannot read the delivery-comparison thresholds ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({error})") from None
    needed = {"rows_per_year": ("drop", "rise", "min_rows"), "table_rows": ("drop", "rise"),
              "persons": ("drop", "rise"), "missing_share": ("rise",), "code_system_share": ("change",),
              "quarantine_rate": ("rise",)}
    for section, keys in needed.items():
        values = (data or {}).get(section)
        if not isinstance(values, dict) or any(not isinstance(values.get(k), (int, float)) for k in keys):
            raise UserError(f"{path}: '{section}' must give {', '.join(keys)} as numbers")
    return data


def service_year_columns(mapping) -> dict[str, str]:
    """For each raw table, the column whose year is a row's service year (as the mapping reads it)."""
    from cohortlake.sources.mapping import is_template

    found: dict[str, str] = {}

    def offer(table: str, column: str | None) -> None:
        if column and not is_template(column):
            found.setdefault(table, column)

    for group in ("diagnosis", "procedure"):
        for feed in getattr(mapping, group):
            for column in feed.date:
                offer(feed.from_, column)
    for feed in mapping.dispensing:
        offer(feed.from_, feed.date)
    for block in mapping.enrollment:
        offer(block.from_, block.year)
    if mapping.person_year:
        offer(mapping.person_year.from_, mapping.person_year.year)
    if mapping.tumor:
        offer(mapping.tumor.from_, mapping.tumor.diagnosis_year)
    for source in mapping.death:
        offer(source.from_, source.date or source.year)
    offer(mapping.person.from_, mapping.person.latest_by)
    return found


def delivery_versions(lake, tables: list[str]) -> dict[str, tuple[int, int]]:
    """(previous, current) version of each table written more than once; RESTOREd tables left out."""
    versions = {}
    for table in tables:
        latest = lake.history(table)[0]  # newest commit: its version and operation from one log read
        current = latest["version"]
        if not current or str(latest.get("operation", "")).upper() == "RESTORE":
            continue
        versions[table] = (current - 1, current)
    return versions


def _missing(column):
    from pyspark.sql import functions as F

    value = F.col(column)
    return F.sum(F.when(value.isNull() | (F.trim(value.cast("string")) == ""), 1).otherwise(0)).alias(f"missing::{column}")


def _bronze_profile(lake, table: str, version: int, year_column: str | None, keys: list[str]) -> dict:
    from pyspark.sql import functions as F

    frame = lake.read(table, version)
    keys = [k for k in keys if k in frame.columns]
    year = (F.coalesce(F.nullif(F.regexp_extract(F.col(year_column).cast("string"), r"((?:18|19|20)\d\d)", 1), F.lit("")),
                       F.lit(UNKNOWN_YEAR)) if year_column in frame.columns else F.lit(UNKNOWN_YEAR))
    rows = frame.groupBy(year.alias("year")).agg(F.count(F.lit(1)).alias("rows"), *[_missing(k) for k in keys]).collect()
    years = {r["year"]: int(r["rows"]) for r in rows}
    missing = {k: sum(int(r[f"missing::{k}"] or 0) for r in rows) for k in keys}
    return {"rows": sum(years.values()), "years": years, "missing": missing}


def _silver_profile(lake, table: str, version: int) -> dict:
    from pyspark.sql import functions as F

    frame = lake.read(table, version)
    keys = [k for k in SILVER_KEY_COLUMNS if k in frame.columns]
    by = [F.col("code_system")] if table in CODE_SYSTEM_TABLES and "code_system" in frame.columns else []
    rows = frame.groupBy(*by).agg(F.count(F.lit(1)).alias("rows"), *[_missing(k) for k in keys]).collect()
    profile = {"rows": sum(int(r["rows"]) for r in rows),
               "missing": {k: sum(int(r[f"missing::{k}"] or 0) for r in rows) for k in keys}}
    if by:
        profile["code_systems"] = {str(r["code_system"]): int(r["rows"]) for r in rows}
    return profile


def _quarantined(lake, table: str, version: int) -> int:
    # one quarantine row per problem: a record with two problems is one quarantined row; values set
    # aside while their row landed (scope "value") are not quarantined rows
    frame = lake.read(table, version)
    if "scope" in frame.columns:
        frame = frame.where("scope = 'row'")
    return frame.select("source_file", "record").distinct().count()


def _newly_failing(lake, versions: dict[str, tuple[int, int]]) -> list[dict]:
    from pyspark.sql import functions as F

    from cohortlake.lake.layout import RESULTS_TABLE

    if not lake.exists(RESULTS_TABLE) or not versions:
        return []
    wanted = F.lit(False)
    for table, (previous, current) in versions.items():
        wanted = wanted | ((F.col("table") == table) & F.col("table_version").isin(previous, current))
    rows = (lake.read(RESULTS_TABLE).where(wanted)
            .groupBy("table", "table_version", "suite", "expectation", "column")
            .agg(F.max(F.col("success").cast("int")).alias("met"), F.min(F.col("success").cast("int")).alias("all_met"),
                 F.first("severity").alias("severity"))
            .collect())
    state: dict[tuple, dict[int, bool]] = {}
    for r in rows:
        previous, current = versions[r["table"]]
        which = "previous" if r["table_version"] == previous else "current"
        # the latest validation of a version is what counts; a version validated twice keeps failing if it ever did
        state.setdefault((r["table"], r["suite"], r["expectation"], r["column"], r["severity"]), {})[which] = bool(r["all_met"])
    return [{"table": t, "suite": s, "expectation": e, "column": c, "severity": sev}
            for (t, s, e, c, sev), seen in sorted(state.items(), key=lambda i: tuple(str(x) for x in i[0]))
            if seen.get("previous") is True and seen.get("current") is False]


def compare_deliveries(lake, layout: str | None, thresholds: dict | None = None) -> dict:
    """The comparison of the newest delivery with the previous one (JSON-ready), with its warnings."""
    from cohortlake.sources.mapping import load_mapping

    tables = lake.tables()
    bronze = [t for t in tables if lake_layout.in_layer(t, lake_layout.BRONZE)]
    silver = [t for t in tables if lake_layout.in_layer(t, lake_layout.SILVER)]
    quarantines = [t for t in tables if lake_layout.in_layer(t, lake_layout.QUARANTINE)]
    versions = delivery_versions(lake, bronze + silver + quarantines)
    if layout is None or not any(t in versions for t in bronze):
        return {"compared": False, "reason": "this lake holds one delivery: nothing to compare with yet"}
    thresholds = thresholds or load_thresholds()
    mapping = load_mapping(layout)
    years = service_year_columns(mapping)
    jobs = []
    for raw in mapping.raw:
        table = lake_layout.bronze(raw)
        if table in versions:
            keys = list(dict.fromkeys([*mapping.raw[raw].key, *mapping.raw[raw].not_null]))
            for side, version in zip(("previous", "current"), versions[table]):
                jobs.append((table, side, lambda v=version, t=table, r=raw, k=keys: _bronze_profile(lake, t, v, years.get(r), k)))
        quarantine = lake_layout.quarantine(raw)
        if quarantine in versions:
            for side, version in zip(("previous", "current"), versions[quarantine]):
                jobs.append((quarantine, side, lambda v=version, t=quarantine: _quarantined(lake, t, v)))
    for table in silver:
        if table in versions:
            for side, version in zip(("previous", "current"), versions[table]):
                jobs.append((table, side, lambda v=version, t=table: _silver_profile(lake, t, v)))
    with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="compare") as pool:
        results = list(pool.map(lambda job: job[2](), jobs))
    profiles: dict[str, dict] = {}
    for (table, side, _), result in zip(jobs, results):
        profiles.setdefault(table, {})[side] = result
    comparison = {"compared": True, "reason": None, "layout": layout,
                  "versions": {t: list(v) for t, v in sorted(versions.items())},
                  "profiles": profiles, "service_year_columns": years,
                  "newly_failing": _newly_failing(lake, {t: versions[t] for t in bronze + silver if t in versions})}
    comparison["flags"] = flags(comparison, thresholds)
    comparison["thresholds"] = thresholds
    return comparison


def _relative(previous: float, current: float) -> float | None:
    return None if previous == 0 else (current - previous) / previous


def flags(comparison: dict, thresholds: dict) -> list[dict]:
    """Every change beyond a threshold, one dict each: table, measure, key, previous, current, text."""
    out = []
    profiles = comparison["profiles"]

    def flag(table, measure, key, previous, current, text):
        out.append({"table": table, "measure": measure, "key": key, "previous": previous, "current": current,
                    "text": text})

    per_year, per_table = thresholds["rows_per_year"], thresholds["table_rows"]
    for table, sides in sorted(profiles.items()):
        if "previous" not in sides or "current" not in sides or lake_layout.in_layer(table, lake_layout.QUARANTINE):
            continue
        previous, current = sides["previous"], sides["current"]
        change = _relative(previous["rows"], current["rows"])
        if change is not None and (change <= -per_table["drop"] or change >= per_table["rise"]):
            flag(table, "rows", None, previous["rows"], current["rows"], f"rows {change:+.0%}")
        for year in sorted(set(previous.get("years", {})) | set(current.get("years", {}))):
            before, after = previous["years"].get(year, 0), current["years"].get(year, 0)
            if max(before, after) < per_year["min_rows"] or before == 0:
                continue  # a small year, or a year new in this delivery
            change = _relative(before, after)
            if change <= -per_year["drop"] or change >= per_year["rise"]:
                flag(table, "rows_per_year", year, before, after, f"service year {year}: rows {change:+.0%}")
        rows_before, rows_after = previous["rows"], current["rows"]
        for column in sorted(set(previous["missing"]) & set(current["missing"])):
            share_before = previous["missing"][column] / rows_before if rows_before else 0.0
            share_after = current["missing"][column] / rows_after if rows_after else 0.0
            if share_after - share_before >= thresholds["missing_share"]["rise"]:
                flag(table, "missing_share", column, share_before, share_after,
                     f"{column}: missing in {share_after:.1%} of rows (was {share_before:.1%})")
        if "code_systems" in previous and "code_systems" in current:
            for system in sorted(set(previous["code_systems"]) | set(current["code_systems"])):
                share_before = previous["code_systems"].get(system, 0) / rows_before if rows_before else 0.0
                share_after = current["code_systems"].get(system, 0) / rows_after if rows_after else 0.0
                if abs(share_after - share_before) >= thresholds["code_system_share"]["change"]:
                    flag(table, "code_system_share", system, share_before, share_after,
                         f"{system}: {share_after:.1%} of codes (was {share_before:.1%})")
    for table, sides in sorted(profiles.items()):
        if not lake_layout.in_layer(table, lake_layout.QUARANTINE) or len(sides) < 2:
            continue
        bronze = profiles.get(lake_layout.bronze(lake_layout.raw_table_of(table)), {})
        if "previous" not in bronze or "current" not in bronze:
            continue
        rate_before = sides["previous"] / bronze["previous"]["rows"] if bronze["previous"]["rows"] else 0.0
        rate_after = sides["current"] / bronze["current"]["rows"] if bronze["current"]["rows"] else 0.0
        if rate_after - rate_before >= thresholds["quarantine_rate"]["rise"]:
            flag(table, "quarantine_rate", None, rate_before, rate_after,
                 f"quarantined {rate_after:.2%} of rows (was {rate_before:.2%})")
    person = profiles.get(lake_layout.silver("person"), {})
    if "previous" in person and "current" in person:
        change = _relative(person["previous"]["rows"], person["current"]["rows"])
        limits = thresholds["persons"]
        if change is not None and (change <= -limits["drop"] or change >= limits["rise"]):
            flag(lake_layout.silver("person"), "persons", None, person["previous"]["rows"], person["current"]["rows"],
                 f"persons {change:+.0%}")
    for failing in comparison.get("newly_failing", []):
        flag(failing["table"], "expectation", f"{failing['expectation']}({failing['column'] or ''})", True, False,
             f"{failing['suite']}: {failing['expectation']}({failing['column'] or ''}) met before, not met now")
    return out


def cached_comparison(lake, layout: str | None, quality_root: Path) -> dict:
    """The comparison of the lake's current tables, computed once per set of versions."""
    path = Path(quality_root) / CACHE_FILE
    tables = lake.tables()
    current = {t: lake.version(t) for t in tables if lake_layout.layer(t) in lake_layout.DELIVERY_LAYERS}
    key = {"layout": layout, "versions": current}
    if path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            cached = None
        if cached and cached.get("key") == key:
            return cached["comparison"]
    comparison = compare_deliveries(lake, layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "comparison": comparison}, default=str), encoding="utf-8")
    return comparison
