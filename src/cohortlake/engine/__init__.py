"""The cohort engine: a definition compiled to Spark plans over the canonical tables.

``build_cohort(definition, frames)`` (``cohort.py``) returns lazy frames (cohort, events,
per-episode flags) and the attrition; ``rules/`` holds one function per rule kind;
``store.py`` reads the silver tables from a lakehouse and writes the cohort's tables
back. Semantics: ``cohort_defs/README.md``.
"""

from cohortlake.engine.cohort import BuildResult, build_cohort
from cohortlake.engine.columns import FIXED_COLUMNS, NO_ARMS, POPULATION_STEP

__all__ = ["FIXED_COLUMNS", "NO_ARMS", "POPULATION_STEP", "BuildResult", "build_cohort"]
