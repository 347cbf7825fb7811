"""Risk of the event by a horizon: 1 - Kaplan-Meier by group, the risk ratio by binomial
regression with a log link, and Aalen-Johansen cumulative incidence under competing risks.

Who enters the risk ratio: persons whose status at the horizon is known, i.e. with the
event by the horizon, or followed at least to it (censored on the horizon day counts as
known event-free). Persons censored earlier are left out, which is unbiased only when
early censoring is unrelated to the outcome; in a landmark cohort with administrative
censoring at a study end long after the horizon, nobody is left out. The count left out
is reported. The 1 - KM risks use everybody.

The log-binomial maximum likelihood often sits on the boundary (a fitted risk of 1) or
fails to converge, above all with continuous covariates. Then the risk ratio comes from
modified Poisson regression (Zou 2004: Poisson, log link, robust variance) and the
result's ``method`` says so, with the reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.stats import norm
from lifelines import AalenJohansenFitter

from cohortlake.errors import UserError
from cohortlake.survival.design import (check_identifiable, covariate_design, finite_or_none, group_indicators,
                                        group_levels, group_term)
from cohortlake.survival.km import ALL, fit_km, survival_at
from cohortlake.survival.results import (CumulativeIncidence, GroupIncidence, IncidencePoint, RiskAt, RiskRatio,
                                         RiskRatioFit)

ALPHA = 0.05
LOG_BINOMIAL = "log-binomial"
MODIFIED_POISSON = "modified Poisson (Zou 2004)"
_MAX_FITTED_RISK = 1 - 1e-6  # a log-binomial fit with a fitted risk this close to 1 is on the boundary


def risks_at(data: pd.DataFrame, time: str, event: str, group: str | None, horizon: float, *,
             weights: str | None = None, reference_group=None) -> dict[str, RiskAt]:
    """Risk by the horizon, 1 - KM(horizon), with its 95% CI, per group (reference first)."""
    labels = data[group].astype(str) if group is not None else pd.Series(ALL, index=data.index)
    levels = group_levels(data[group], reference_group) if group is not None else [ALL]
    results = {}
    for level in levels:
        rows = data[labels == level]
        fitter = fit_km(rows[time], rows[event], None if weights is None else rows[weights])
        at_horizon = survival_at(fitter, horizon)
        known = _status_known(rows[time], rows[event], horizon)
        counts = {"events_by_horizon": int(((rows[event] == 1) & (rows[time] <= horizon)).sum()),
                  "n_status_known": int(known.sum())}
        if at_horizon is None:
            estimate = {"risk": None, "ci_lower": None, "ci_upper": None,
                        "note": f"follow-up ends at day {rows[time].max():g}, before the horizon"}
        else:
            survival, lower, upper = at_horizon
            estimate = {"risk": 1 - survival, "ci_lower": 1 - upper, "ci_upper": 1 - lower}
        results[level] = RiskAt(horizon_days=float(horizon), method="1 - Kaplan-Meier", **counts, **estimate)
    return results


def _status_known(times: pd.Series, events: pd.Series, horizon: float) -> pd.Series:
    return ((events == 1) & (times <= horizon)) | (times >= horizon)


def _glm(y, X, family, weights, cov_type: str, cov_kwds: dict | None, start_params=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DomainWarning (log link on a binomial), IRLS chatter
        model = sm.GLM(y, X, family=family, var_weights=weights)
        return model.fit(start_params=start_params, maxiter=200, cov_type=cov_type,
                         cov_kwds=cov_kwds or {})


def _log_binomial_problem(result, X) -> str | None:
    """Why a log-binomial fit is not a usable maximum likelihood estimate, or None."""
    params = np.asarray(result.params)
    if not result.converged:
        return "IRLS did not converge"
    if not np.all(np.isfinite(params)) or not np.all(np.isfinite(np.asarray(result.bse))):
        return "non-finite estimates"
    if np.max(np.exp(X @ params)) > _MAX_FITTED_RISK:
        return "the maximum likelihood lies on the boundary (a fitted risk of 1)"
    model = result.model
    score = model.score(params)
    information = -model.hessian(params, observed=False)
    try:
        decrement = float(score @ np.linalg.solve(information, score))
    except np.linalg.LinAlgError:
        return "singular information matrix"
    if not np.isfinite(decrement) or decrement > 1e-6:
        return "the score is not zero at the reported estimate"
    return None


def risk_ratio_model(data: pd.DataFrame, time: str, event: str, group: str, horizon: float,
                     covariates: Sequence[str] = (), *, reference_group=None, cluster: str | None = None,
                     weights: str | None = None) -> RiskRatioFit:
    """Risk ratio by the horizon of every group against the reference, among persons with known status.

    Log-binomial GLM; modified Poisson when that fails (``method``/``fallback_reason`` say
    so). Variance: model-based; robust (HC0) with weights or under modified Poisson;
    clustered on ``cluster`` when given, with no small-sample factor (as SAS GENMOD's
    REPEATED and lifelines' clustered Cox).
    """
    known = _status_known(data[time], data[event], horizon)
    rows = data[known]
    levels = group_levels(data[group], reference_group)
    labels = rows[group].astype(str)
    outcome = ((rows[event] == 1) & (rows[time] <= horizon)).astype(float)
    if len(levels) < 2:
        raise UserError(f"column '{group}' has a single group ('{levels[0]}'): a risk ratio needs two groups")
    for level in levels:
        in_group = labels == level
        if not in_group.any():
            raise UserError(f"group '{level}' of column '{group}' has nobody whose status at day {horizon:g} is known: "
                            f"the risk ratio cannot be estimated")
        if outcome[in_group].sum() == 0:
            raise UserError(f"group '{level}' of column '{group}' has no events by day {horizon:g}: "
                            f"the risk ratio cannot be estimated (try a later --horizon)")
    covariate_columns, terms, references = covariate_design(rows, covariates)
    X = pd.concat([group_indicators(rows[group], levels), covariate_columns], axis=1)
    check_identifiable(X, {**{group_term(group, level): group for level in levels[1:]},
                           **{term: name for name, columns in terms.items() for term in columns}})
    X.insert(0, "intercept", 1.0)
    y = outcome.to_numpy()
    w = None if weights is None else rows[weights].astype(float).to_numpy()

    if cluster is not None:
        codes = pd.factorize(rows[cluster].astype(str))[0]
        robust, robust_kwds = "cluster", {"groups": codes, "use_correction": False}
        variance = f"robust sandwich clustered on '{cluster}'"
    else:
        robust, robust_kwds = "HC0", None
        variance = "robust sandwich (HC0)" if weights is not None else "model-based"

    poisson = _glm(y, X, sm.families.Poisson(), w, robust, robust_kwds)
    binomial = sm.families.Binomial(link=sm.families.links.Log())
    binomial_cov = (robust, robust_kwds) if (cluster is not None or weights is not None) else ("nonrobust", None)
    start = np.asarray(poisson.params, dtype=float)
    if np.max(X.to_numpy() @ start) >= 0:  # start inside the parameter space: every fitted risk below 1
        start = start.copy()
        start[0] -= np.max(X.to_numpy() @ start) + 0.1
    try:
        fitted = _glm(y, X, binomial, w, *binomial_cov, start_params=start)
        problem = _log_binomial_problem(fitted, X.to_numpy())
    except (ValueError, np.linalg.LinAlgError, FloatingPointError) as error:
        fitted, problem = None, f"fitting failed ({error})"
    if problem is None:
        method, reason = LOG_BINOMIAL, None
    else:
        fitted, method, reason = poisson, MODIFIED_POISSON, f"log-binomial regression failed: {problem}"
        variance = variance if cluster is not None else "robust sandwich (HC0)"

    z = float(norm.ppf(1 - ALPHA / 2))
    ratios = {}
    for level in levels[1:]:
        term = group_term(group, level)
        coef, se = float(fitted.params[term]), float(fitted.bse[term])
        with np.errstate(over="ignore"):
            ratios[level] = RiskRatio(rr=finite_or_none(np.exp(coef)), ci_lower=finite_or_none(np.exp(coef - z * se)),
                                      ci_upper=finite_or_none(np.exp(coef + z * se)),
                                      p=finite_or_none(fitted.pvalues[term]), coef=coef, se=se)
    return RiskRatioFit(
        model="adjusted" if covariates else "crude",
        horizon_days=float(horizon),
        method=method,
        fallback_reason=reason,
        variance=variance,
        population="persons with the event by the horizon or followed at least to it",
        n_status_known=int(len(rows)),
        n_status_unknown=int((~known).sum()),
        reference_group=levels[0],
        # the crude risks the ratio compares (weighted with weights)
        proportions={level: float(np.average(y[in_level], weights=None if w is None else w[in_level]))
                     for level in levels for in_level in [(labels == level).to_numpy()]},
        risk_ratios=ratios,
        covariates=list(covariates),
        covariate_reference_levels=references,
    )


def _untie(times: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, Callable[[float], float | None]]:
    """Times with events of different types at one time spread apart, without changing the estimate.

    lifelines' Aalen-Johansen jitters tied event times at random (not reproducible, and an
    event on the horizon day may land after it). Instead every time moves up by K steps of
    a fraction of the smallest gap between distinct times, and an event of the k-th type
    comes back down k steps: tied events of different types become consecutive, all still
    before the censorings of the same day, which is how the product-limit handles a tie.
    Returns the new times and where to read the estimate for an original time t: at the
    last original time <= t, moved up K steps (None before the first time: nothing yet).
    """
    kinds = sorted(int(k) for k in np.unique(types) if k != 0)
    distinct = np.unique(times)
    gap = float(np.min(np.diff(distinct))) if len(distinct) > 1 else 1.0
    step = gap / (len(kinds) + 1)
    shifted = times + len(kinds) * step
    for rank, kind in enumerate(kinds, start=1):
        shifted = np.where(types == kind, shifted - rank * step, shifted)

    def read_at(t: float) -> float | None:
        last = int(np.searchsorted(distinct, t, side="right")) - 1
        return None if last < 0 else float(distinct[last] + len(kinds) * step)

    return shifted, read_at


def aalen_johansen(data: pd.DataFrame, time: str, event_type: str, times: Sequence[float], *,
                   group: str | None = None, weights: str | None = None, reference_group=None) -> CumulativeIncidence:
    """Aalen-Johansen cumulative incidence of every event type, by group, at the given times.

    ``event_type`` holds 0 for censored and a positive integer per kind of event; each kind
    is in turn the event of interest and the others compete. An estimate past a group's
    last follow-up, with persons still event-free, is None.
    """
    kinds = sorted(int(k) for k in data[event_type].unique() if k != 0)
    labels = data[group].astype(str) if group is not None else pd.Series(ALL, index=data.index)
    levels = group_levels(data[group], reference_group) if group is not None else [ALL]
    by_group: dict[str, GroupIncidence] = {}
    for level in levels:
        rows = data[labels == level]
        durations = rows[time].astype(float).to_numpy()
        types = rows[event_type].astype(int).to_numpy()
        shifted, read_at = _untie(durations, types)
        w = None if weights is None else rows[weights].astype(float).to_numpy()
        # past the last follow-up the estimate is defined only if nobody is left event-free
        overall = fit_km(durations, types != 0, w).survival_function_.iloc[-1, 0]
        follow_up_end = np.inf if overall == 0 else durations.max()
        curves = {}
        for kind in kinds:
            entries = []
            if not (types == kind).any():
                entries = [IncidencePoint(time=float(t), cif=0.0, ci_lower=None, ci_upper=None) for t in times]
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fitter = AalenJohansenFitter(alpha=ALPHA, seed=0).fit(shifted, types, event_of_interest=kind,
                                                                          weights=w)
                curve = fitter.cumulative_density_.iloc[:, 0]
                band = fitter.confidence_interval_
                for t in times:
                    shifted_t = read_at(t)
                    position = 0 if shifted_t is None else curve.index.searchsorted(shifted_t, side="right") - 1
                    if t > follow_up_end:
                        entries.append(IncidencePoint(time=float(t), cif=None, ci_lower=None, ci_upper=None))
                        continue
                    # lifelines labels the two band columns the other way round; take them by value
                    bounds = band.iloc[position].to_numpy(dtype=float)
                    bounds = bounds[np.isfinite(bounds)]
                    entries.append(IncidencePoint(
                        time=float(t),
                        cif=float(curve.iloc[position]),
                        ci_lower=float(bounds.min()) if len(bounds) else None,
                        ci_upper=float(bounds.max()) if len(bounds) else None,
                    ))
            curves[str(kind)] = entries
        by_group[level] = GroupIncidence(n=int(len(rows)),
                                         events={str(kind): int((types == kind).sum()) for kind in kinds},
                                         cumulative_incidence=curves)
    return CumulativeIncidence(method="Aalen-Johansen", event_column=event_type,
                               event_types=[str(k) for k in kinds], by_group=by_group)