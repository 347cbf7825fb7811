"""The matching stage: propensity scores, greedy matching or weighting, balance diagnostics.

Imports no Spark (``fit_ps_spark`` imports pyspark when called). Defaults follow OHDSI
CohortMethod: logistic PS, 1:1 greedy nearest-neighbour matching without replacement on
the logit of the PS, caliper 0.2 SD of that logit, SMD threshold 0.1.
"""

from cohortlake.matching.balance import balance_table, equipoise, love_plot, preference_score
from cohortlake.matching.match import MatchResult, caliper_width, exact_strata, logit, match_on_score, match_ps
from cohortlake.matching.ps import Design, PsFit, design_matrix, estimate_ps, fit_ps, fit_ps_spark
from cohortlake.matching.psmatch import PsMatchReport, read_persons, run_psmatch, treated_indicator
from cohortlake.spec.matching import MatchingSettings, matching_settings, parse_matching
from cohortlake.matching.weights import iptw, overlap_weights

__all__ = [
    "Design", "MatchResult", "MatchingSettings", "PsFit", "PsMatchReport", "balance_table", "caliper_width",
    "design_matrix", "equipoise", "estimate_ps", "exact_strata", "fit_ps", "fit_ps_spark", "iptw", "logit",
    "love_plot", "match_on_score", "match_ps", "matching_settings", "overlap_weights", "parse_matching",
    "preference_score", "read_persons", "run_psmatch", "treated_indicator",
]
