"""Where everything lives in a lake: every table name and every manifest path, in one place.

Table names are lake-relative, as :class:`cohortlake.lake.delta.Lakehouse` takes them
(``silver/diagnosis``); manifest and folder paths are given the lake's root (a local
folder: manifests, staging and Data Docs are files the driver writes). No module
spells a layer's folder itself; it asks this one. Imports nothing, so everything may.

::

    bronze/<raw table>              raw rows as delivered, as text           (ingest)
    quarantine/<raw table>          rows and values that could not be typed  (ingest)
    silver/<canonical table>        the canonical tables                     (ingest)
    cohorts/<cohort>/<part>         cohort, attrition, events                (build)
    cohorts/<cohort>/manifest.json
    matched/<cohort>/<part>         dataset, balance                         (match)
    matched/<cohort>/manifest.json  (manifest.failed.json when its gate failed)
    _runs/ingest/manifest.json
    _quality/results                every expectation's outcome (Delta)
    _quality/gx, _quality/docs      GX's store and the Data Docs site
    _raw/<layout>                   the demo's synthetic raw files
    _staging/<raw table>            SAS datasets converted while ingesting
"""

from __future__ import annotations

import os

BRONZE = "bronze"
QUARANTINE = "quarantine"
SILVER = "silver"
COHORTS = "cohorts"
MATCHED = "matched"
# Ingest replaces one version of each of these layers per delivery.
DELIVERY_LAYERS = (BRONZE, SILVER, QUARANTINE)

QUALITY_DIR = "_quality"
RESULTS_TABLE = f"{QUALITY_DIR}/results"
RUNS_DIR = "_runs"
RAW_DIR = "_raw"
STAGING_DIR = "_staging"
MANIFEST = "manifest.json"
FAILED_MANIFEST = "manifest.failed.json"

COHORT_PARTS = ("attrition", "cohort", "events")
MATCHED_PARTS = ("dataset", "balance")


# --- tables --------------------------------------------------------------------------


def bronze(raw_table: str) -> str:
    """A raw table as delivered."""
    return f"{BRONZE}/{raw_table}"


def quarantine(raw_table: str) -> str:
    """The rows and values of a raw table that could not be typed."""
    return f"{QUARANTINE}/{raw_table}"


def silver(table: str) -> str:
    """A canonical table."""
    return f"{SILVER}/{table}"


def cohort_table(cohort: str, part: str) -> str:
    """One of a built cohort's tables (``cohort``, ``attrition``, ``events``)."""
    return f"{COHORTS}/{cohort}/{part}"


def matched_table(cohort: str, part: str) -> str:
    """One of a matched cohort's tables (``dataset``, ``balance``)."""
    return f"{MATCHED}/{cohort}/{part}"


def layer(name: str) -> str:
    """The layer (first segment) of a table name: ``silver/person`` → ``silver``."""
    return name.split("/", 1)[0]


def in_layer(name: str, layer_name: str) -> bool:
    return layer(name) == layer_name


def raw_table_of(name: str) -> str:
    """The raw or canonical table a layer's table is named after: ``quarantine/pde`` → ``pde``."""
    return name.split("/", 1)[1]


# --- manifests and folders (given the lake's root) -----------------------------------


def ingest_manifest(root: str) -> str:
    return os.path.join(root, RUNS_DIR, "ingest", MANIFEST)


def cohort_dir(root: str, cohort: str) -> str:
    return os.path.join(root, COHORTS, cohort)


def build_manifest(root: str, cohort: str) -> str:
    return os.path.join(cohort_dir(root, cohort), MANIFEST)


def match_manifest(root: str, cohort: str, failed: bool = False) -> str:
    """The matched tables' manifest; a run whose gate failed (and was rolled back) is kept beside it."""
    return os.path.join(root, MATCHED, cohort, FAILED_MANIFEST if failed else MANIFEST)


def build_manifests(root: str) -> dict[str, str]:
    """Every built cohort's manifest, by cohort, sorted."""
    return _manifests(root, COHORTS)


def match_manifests(root: str) -> dict[str, str]:
    """Every matched cohort's manifest, by cohort, sorted."""
    return _manifests(root, MATCHED)


def _manifests(root: str, folder: str) -> dict[str, str]:
    from pathlib import Path

    return {path.parent.name: str(path) for path in sorted((Path(root) / folder).glob(f"*/{MANIFEST}"))}


def quality_dir(root: str) -> str:
    return os.path.join(root, QUALITY_DIR)


def raw_dir(root: str, layout: str) -> str:
    return os.path.join(root, RAW_DIR, layout)


def staging_dir(root: str, raw_table: str) -> str:
    return os.path.join(root, STAGING_DIR, raw_table)
