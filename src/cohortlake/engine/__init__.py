"""The cohort engine: a definition compiled to Spark plans over the canonical tables.

``build_cohort(definition, frames)`` returns lazy frames (cohort, events, per-episode
flags) and the attrition; ``build.py`` reads the silver tables from a lakehouse and
writes the cohort's tables back. Semantics: ``cohort_defs/README.md``.
"""

from cohortlake.engine.compile import FIXED_COLUMNS, NO_ARMS, POPULATION_STEP, BuildResult, build_cohort

__all__ = ["FIXED_COLUMNS", "NO_ARMS", "POPULATION_STEP", "BuildResult", "build_cohort"]
