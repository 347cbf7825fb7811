"""Survival analysis of an analysis-ready (matched or weighted) dataset: Kaplan-Meier,
log-rank, Cox, risk at a horizon with risk ratios, competing risks; results as small
frozen dataclasses (:mod:`cohortlake.survival.results`, ``to_json()`` for ``results.json``)
and a KM plot. Times are in days. No Spark: the input is one table in memory.
"""

from cohortlake.survival.analyze import load_table, prepare, render_summary, run_survival, survival_analysis
from cohortlake.survival.results import StudyResults, SurvivalResults

__all__ = ["StudyResults", "SurvivalResults", "load_table", "prepare", "render_summary", "run_survival",
           "survival_analysis"]
