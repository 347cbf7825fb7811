"""Cox proportional hazards: hazard ratios of the groups against a reference, crude or
covariate-adjusted, with the proportional-hazards check.

Ties are handled by Efron's method (lifelines, as R's ``coxph`` default). Variance:
model-based by default; robust (Lin-Wei sandwich) when weights are given (IPTW); robust
clustered on a column (the matched pair) when one is named. lifelines adds no
small-sample factor to the clustered sandwich, as R's ``coxph(cluster=)`` does not.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning, StatisticalWarning
from lifelines.statistics import proportional_hazard_test

from cohortlake.errors import UserError
from cohortlake.survival.design import (check_identifiable, covariate_design, covariate_of_term, finite_or_none,
                                       group_indicators, group_levels, group_term)
from cohortlake.survival.results import CoxFit, HazardRatio, PHCheck, PHTest

ALPHA = 0.05
PH_ALPHA = 0.05  # a term whose Schoenfeld test has p below this flags non-proportional hazards
# lifelines' own column names inside the fitting frame; user columns never clash with them
_TIME, _EVENT, _WEIGHT, _CLUSTER = "__time", "__event", "__weight", "__cluster"
_MAX_SE_PER_SD = 10.0
_FAILED = ("failed to converge", "norm(delta) is still high", "suspiciously close to 0")
_SEPARATING_COLUMN = re.compile(r"Column (.+?) (?:have very low variance when conditioned|has high sample correlation)")


def check_estimable(data: pd.DataFrame, event: str, group: str, levels: Sequence[str]) -> None:
    """Errors for data on which no hazard ratio exists: no events, one group, a group without events."""
    if int(data[event].sum()) == 0:
        raise UserError(f"column '{event}' has no events (every row is 0): there is no hazard ratio to estimate")
    if len(levels) < 2:
        raise UserError(f"column '{group}' has a single group ('{levels[0]}'): a hazard ratio needs two groups")
    labels = data[group].astype(str)
    for level in levels:
        if int(data.loc[labels == level, event].sum()) == 0:
            raise UserError(f"group '{level}' of column '{group}' has no events: its hazard ratio cannot be estimated")


def _variance_label(cluster: str | None, weights: str | None) -> str:
    if cluster is not None:
        return f"robust sandwich clustered on '{cluster}'"
    if weights is not None:
        return "robust sandwich (case weights)"
    return "model-based"


def _fit(frame: pd.DataFrame, model: str, terms: dict[str, list[str]], *, cluster: bool, weights: bool,
         robust: bool) -> CoxPHFitter:
    fitter = CoxPHFitter(alpha=ALPHA)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fitter.fit(frame, duration_col=_TIME, event_col=_EVENT, weights_col=_WEIGHT if weights else None,
                       cluster_col=_CLUSTER if cluster else None, robust=robust)
        except ConvergenceError as error:
            raise UserError(f"the {model} Cox model did not converge "
                            f"({_first_line(error)}){_suspects(caught, terms)}") from None
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    if any(marker in message for message in messages for marker in _FAILED):
        reason = next(m for m in messages if any(marker in m for marker in _FAILED))
        raise UserError(f"the {model} Cox model did not converge ({_first_line(reason)}){_suspects(caught, terms)}")
    if not np.all(np.isfinite(fitter.params_.to_numpy())) or not np.all(np.isfinite(fitter.standard_errors_.to_numpy())):
        raise UserError(f"the {model} Cox model did not converge (non-finite coefficients or standard errors)"
                        f"{_suspects(caught, terms)}")
    # A monotone likelihood (a covariate that separates events from non-events) can stop
    # lifelines' Newton-Raphson with "success" and a finite coefficient whose information
    # is nearly zero; R warns "beta may be infinite". Per SD of the column (and per unit of
    # mean weight, since the model-based variance scales as 1 / sum of weights), a real
    # estimate's SE stays far below this.
    model_based = np.sqrt(np.diag(fitter.variance_matrix_.to_numpy(dtype=float)))
    per_sd = model_based * frame[fitter.params_.index].std().to_numpy()
    if weights:
        per_sd = per_sd * np.sqrt(frame[_WEIGHT].mean())
    diverging = [covariate_of_term(term, terms) for term, value in zip(fitter.params_.index, per_sd)
                 if not value < _MAX_SE_PER_SD]
    if diverging:
        raise UserError(f"the {model} Cox model did not converge (the coefficient of {', '.join(dict.fromkeys(diverging))} "
                        f"heads to infinity: it separates events from non-events, complete separation)")
    return fitter


def _first_line(message) -> str:
    return str(message).strip().splitlines()[0].split(". Please see")[0].rstrip(".")


def _suspects(caught, terms: dict[str, list[str]]) -> str:
    """Which covariates lifelines blamed (complete separation, collinearity), in the user's names."""
    blamed = []
    for w in caught:
        match = _SEPARATING_COLUMN.search(str(w.message))
        if match:
            label = covariate_of_term(match.group(1).strip(), terms)
            if label not in blamed:
                blamed.append(label)
    if blamed:
        return f"; suspect: {', '.join(blamed)} (complete separation or collinearity)"
    if len(terms) > 1:  # more than the group
        return "; check the covariates for collinearity or a level that determines the outcome"
    return ""


def _term(fitter: CoxPHFitter, column: str) -> HazardRatio:
    coef = float(fitter.params_[column])
    se = float(fitter.standard_errors_[column])
    lower, upper = fitter.confidence_intervals_.loc[column]
    with np.errstate(over="ignore"):
        return HazardRatio(hr=finite_or_none(np.exp(coef)), ci_lower=finite_or_none(np.exp(lower)),
                           ci_upper=finite_or_none(np.exp(upper)), p=finite_or_none(fitter.summary.loc[column, "p"]),
                           coef=coef, se=se)


def proportional_hazards_check(frame: pd.DataFrame, *, weights: bool, fitted: CoxPHFitter | None = None) -> PHCheck:
    """Scaled-Schoenfeld test per term (lifelines, rank time transform) on a model-based fit.

    lifelines' test divides by the fit's standard errors; a robust fit would mix its
    sandwich SEs with model-based scaled residuals, so the check refits without them
    (same coefficients); ``fitted`` reuses a model-based fit of ``frame``. ``any_violation``
    is True when some term has p < 0.05: a flag to read with the per-term p values, not R's
    cox.zph GLOBAL test.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitter = fitted
        if fitter is None:
            fitter = CoxPHFitter(alpha=ALPHA).fit(frame, duration_col=_TIME, event_col=_EVENT,
                                                  weights_col=_WEIGHT if weights else None)
        result = proportional_hazard_test(fitter, frame, time_transform="rank")
    terms = {str(column): PHTest(chi2=float(row["test_statistic"]), p=finite_or_none(row["p"]))
             for column, row in result.summary.iterrows()}
    flagged = [name for name, test in terms.items() if test.p is not None and test.p < PH_ALPHA]
    return PHCheck(test="scaled Schoenfeld residuals vs rank of time (lifelines proportional_hazard_test)",
                   alpha=PH_ALPHA, terms=terms, any_violation=bool(flagged), violating_terms=flagged)


def cox_model(data: pd.DataFrame, time: str, event: str, group: str, covariates: Sequence[str] = (), *,
              reference_group=None, cluster: str | None = None, weights: str | None = None) -> CoxFit:
    """Hazard ratio of every group against the reference, crude (no covariates) or adjusted."""
    model = "adjusted" if covariates else "crude"
    levels = group_levels(data[group], reference_group)
    check_estimable(data, event, group, levels)
    covariate_columns, terms, references = covariate_design(data, covariates)
    frame = pd.concat([group_indicators(data[group], levels), covariate_columns], axis=1)
    group_terms = [group_term(group, level) for level in levels[1:]]
    check_identifiable(frame, {**{term: group for term in group_terms},
                               **{term: name for name, columns in terms.items() for term in columns}})
    frame[_TIME] = data[time].astype(float).to_numpy()
    frame[_EVENT] = data[event].astype(int).to_numpy()
    if weights is not None:
        frame[_WEIGHT] = data[weights].astype(float).to_numpy()
    model_frame = frame.copy()
    if cluster is not None:
        frame[_CLUSTER] = data[cluster].astype(str).to_numpy()
    robust = cluster is not None or weights is not None
    fitter = _fit(frame, model, {group: group_terms, **terms},
                  cluster=cluster is not None, weights=weights is not None, robust=robust)
    return CoxFit(
        model=model,
        n=int(len(frame)),
        events=int(frame[_EVENT].sum()),
        reference_group=levels[0],
        hazard_ratios={level: _term(fitter, group_term(group, level)) for level in levels[1:]},
        covariates=list(covariates),
        covariate_terms={term: _term(fitter, term) for columns in terms.values() for term in columns},
        covariate_reference_levels=references,
        variance=_variance_label(cluster, weights),
        ties="efron",
        ph_check=proportional_hazards_check(model_frame, weights=weights is not None,
                                            fitted=None if robust else fitter),
    )