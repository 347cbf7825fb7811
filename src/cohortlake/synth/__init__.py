"""Synthetic raw claims data with a known true model, in the project's raw layouts.

``generate(spark, layout, out_dir, patients, seed)`` writes the raw CSV files of one
layout plus ``truth.json`` (the generating parameters, counts of injected dirty rows and
of the timing anomalies real deliveries have: claims and fills after death or outside
enrollment, first fills on the study's last day), so that every later step can be
checked against what is known to be true.

Every value is a Spark SQL expression over ``spark.range(patients)`` with draws seeded
per (seed, person, stream, index) via ``random``: no Python per row, nothing
patient-sized on the driver. Expressions are SQL text applied with ``selectExpr`` in
stages (``sql``): one JVM call per stage, where the Column API would make one per
operator.

Flow, by module: ``model.build_persons`` (one row per person, the true model; code lists
in ``codes``) -> ``events.claim_events`` / ``finish_events`` (one row per claim) and
``events.fills`` (one row per Part D fill) -> one frame per raw table in a layout module
(``seer_medicare``, ``desynpuf``) -> ``dirt.inject_dirty`` -> ``writer.write_tables``
(all tables in one job, counting rows and injected dirt as it writes). truth.json:
``truth`` (the true parameters and person counts), the dirt counts, and the timing
anomalies counted in the written tables (``anomalies``).
"""

from __future__ import annotations

import json
import os
import time

from cohortlake.errors import UserError
from cohortlake.lake.session import INTERPRETED_CONF, session_conf
from cohortlake.synth import desynpuf, seer_medicare
from cohortlake.synth.model import CANCER_SITE_FILES
from cohortlake.synth.writer import TMP_DIR_NAME, remove_tmp

TRUTH_FILE = "truth.json"
FILE_FORMATS = ("csv", "fixed-width")
LAYOUTS = {seer_medicare.LAYOUT: seer_medicare, desynpuf.LAYOUT: desynpuf}
MAX_PATIENTS = 100_000_000  # ids, claim ids and PATIENT_ID's 10 digits stay in range below this


def _owned(module, name: str) -> bool:
    return name in (TRUTH_FILE, TMP_DIR_NAME) or module.owned_file(name)


# Session settings while generating (restored afterwards). Adaptive execution would
# only re-plan our fixed partitioning, at a real cost for plans this large.
GENERATOR_CONF = {"spark.sql.adaptive.enabled": "false"}
# Small runs are evaluated interpreted (lake.session.INTERPRETED_CONF): compiling the
# generated code for a model this size costs more than the compiled code saves (measured
# about a third of the time at a few thousand persons). Same results either way. The
# generator decides by persons: its rows are not known before it runs.
SMALL_RUN_PATIENTS = 5_000


def check_arguments(layout: str, out_dir: str, patients: int, seed: int, dirty_rate: float) -> None:
    """Raise UserError with one clear message for arguments the generator cannot use."""
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}; choose one of: {', '.join(sorted(LAYOUTS))}")
    if isinstance(patients, bool) or not isinstance(patients, int) or not 1 <= patients <= MAX_PATIENTS:
        raise UserError(f"--patients must be a whole number from 1 to {MAX_PATIENTS:,}, got {patients!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise UserError(f"--seed must be a whole number from 0 to 2**63-1, got {seed!r}")
    if not isinstance(dirty_rate, (int, float)) or not 0.0 <= dirty_rate <= 0.1:
        raise UserError(f"dirty rate must be between 0 and 0.1, got {dirty_rate!r}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"--out {out_dir} exists and is not a directory")
    if os.path.isdir(out_dir):
        foreign = sorted(n for n in os.listdir(out_dir) if not _owned(LAYOUTS[layout], n))
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise UserError(
                f"--out {out_dir} holds files the {layout} generator does not write ({shown}); "
                "choose an empty or new directory")


def layout_options(layout: str, file_format: str, cancer_site: str) -> dict:
    """The layout's own options from the formats and files only seer-medicare has (a UserError
    for a value no layout knows, or one the layout does not ship)."""
    return {
        **_seer_medicare_choice(layout, "format", "format", "file_format", file_format, FILE_FORMATS,
                                why="NCI's delivery", elsewhere=f"CMS publishes {layout} as CSV"),
        **_seer_medicare_choice(layout, "cancer-site", "cancer site file", "cancer_site", cancer_site,
                                tuple(CANCER_SITE_FILES), why="NCI ships it by cancer site",
                                elsewhere=f"{layout} is a sample of all beneficiaries"),
    }


def _seer_medicare_choice(layout: str, flag: str, what: str, key: str, value: str, choices: tuple[str, ...], *,
                          why: str, elsewhere: str) -> dict:
    """An option only the seer-medicare layout has, checked: ``{key: value}`` for the layout, or
    nothing for its default (the first choice, which every layout writes)."""
    if value not in choices:
        raise UserError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    if value == choices[0]:
        return {}
    if layout != seer_medicare.LAYOUT:
        raise UserError(f"--{flag} {value} is for seer-medicare ({why}); {elsewhere}")
    return {key: value}


def generate(spark, layout: str, out_dir: str, patients: int, seed: int, dirty_rate: float = 0.002,
             file_format: str = "csv", cancer_site: str = "all", **options) -> dict:
    """Write ``patients`` synthetic persons in ``layout`` as CSV files into ``out_dir``.

    ``file_format="fixed-width"`` (seer-medicare only) writes the same rows as NCI ships
    them: gzipped fixed-record-length text plus one SAS layout program per table.

    ``cancer_site="liver"`` (seer-medicare only) writes the liver cancer file, every
    person with a liver tumor, as NCI ships the data by cancer site; ``all`` (default)
    mixes five sites.

    ``out_dir`` is created if needed. It may already hold files of the same layout (from
    an earlier run): those and ``truth.json`` are deleted first, so no stale part file
    survives. Any other file in it is refused with a UserError and nothing is touched.
    Same seed, same arguments: byte-identical files on any machine. ``options`` are
    passed to the layout (``sorafenib_hazard_ratio``, default 0.80).

    Returns ``{"layout", "patients", "seed", "dirty_rate", "seconds",
    "files": {table: {"files": [...], "rows": n}}}``.
    """
    check_arguments(layout, out_dir, patients, seed, dirty_rate)
    options.update(layout_options(layout, file_format, cancer_site))
    module = LAYOUTS[layout]
    hr = options.get("sorafenib_hazard_ratio")
    if hr is not None and not (isinstance(hr, (int, float)) and 0 < hr <= 10):
        raise UserError(f"sorafenib hazard ratio must be a positive number up to 10, got {hr!r}")
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):  # only our own files are here (checked above)
        if name != TMP_DIR_NAME:
            os.remove(os.path.join(out_dir, name))
    remove_tmp(out_dir)

    started = time.monotonic()
    try:
        conf = {**GENERATOR_CONF, **(INTERPRETED_CONF if patients <= SMALL_RUN_PATIENTS else {})}
        with session_conf(spark, conf):
            result = module.generate(spark, out_dir, patients, seed, dirty_rate, **options)
    finally:
        remove_tmp(out_dir)
    summary = {"layout": layout, "patients": patients, "seed": seed, "dirty_rate": dirty_rate,
               "format": file_format, "files": result["files"]}
    truth = {"layout": layout, "patients": patients, "seed": seed, **result["truth"], "files": result["files"]}
    with open(os.path.join(out_dir, TRUTH_FILE), "w", encoding="utf-8") as fh:
        json.dump(truth, fh, indent=2, sort_keys=True)
        fh.write("\n")
    summary["seconds"] = round(time.monotonic() - started, 1)
    return summary
