"""Kaplan-Meier by group: median and quartiles with 95% CIs, numbers at risk, survival at a
horizon; the log-rank test across groups.

Times are in days. Quantiles follow R's ``quantile.survfit`` (package survival), which is
what a statistician will hold them against: the q-th quantile of survival time is the
first time at which S(t) <= 1 - q, except where the curve sits exactly on 1 - q (within
R's tolerance, the square root of the machine epsilon) over an interval: then it is the
midpoint of that interval, from the time S reaches the level to the time of the next
drop (deaths on days 1..8 give a median of 4.5, not 4), or to the last follow-up time
when the curve stays on the level to its end. The tolerance also absorbs the
floating-point noise of a product-limit estimate that lands on the level. The 95% CI
comes from the same rule applied to the pointwise log-log (exponential Greenwood) band,
the Brookmeyer-Crowley construction; a bound the band never reaches is ``None`` ("not
reached").
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.exceptions import StatisticalWarning
from lifelines.statistics import multivariate_logrank_test

from cohortlake.survival.design import DAYS_PER_MONTH, finite_or_none, group_levels
from cohortlake.survival.results import AtRisk, Estimate, KaplanMeierCurve, LogRank, Quantile, SurvivalAt

ALPHA = 0.05  # every interval is a 95% CI
ALL = "all"  # the label of the single curve when there is no group column


def fit_km(times, events, weights=None, label: str = "KM_estimate") -> KaplanMeierFitter:
    """A lifelines Kaplan-Meier fit; case weights (IPTW) are used as given."""
    with warnings.catch_warnings():
        # non-integer weights: lifelines warns that the Greenwood CI is naive; results say so once
        warnings.simplefilter("ignore", StatisticalWarning)
        return KaplanMeierFitter(alpha=ALPHA).fit(
            np.asarray(times, dtype=float), np.asarray(events, dtype=int),
            weights=None if weights is None else np.asarray(weights, dtype=float), label=label)


def numbers_at_risk(times, at: Sequence[float]) -> list[int]:
    """Persons still followed at each time t (time >= t): R's ``n.risk`` at ``times=``; unweighted."""
    times = np.sort(np.asarray(times, dtype=float))
    return [int(len(times) - np.searchsorted(times, t, side="left")) for t in at]


def _estimate(point, lower, upper, scale: float = 1.0) -> Estimate:
    value = lambda x: None if finite_or_none(x) is None else float(x) / scale  # noqa: E731
    return Estimate(estimate=value(point), ci_lower=value(lower), ci_upper=value(upper))


QUANTILE_TOLERANCE = float(np.sqrt(np.finfo(float).eps))
"""R's default ``tolerance`` of ``quantile.survfit``: a curve this close to a level is on it."""


def curve_quantile(curve: pd.Series, q: float) -> float:
    """The time at which a survival curve (index: time, values: S) reaches 1 - q, by R's rule (module docstring).

    ``inf`` when it never does ("not reached").
    """
    times = np.concatenate([[0.0], curve.index.to_numpy(dtype=float)])
    failed = np.concatenate([[0.0], 1.0 - curve.to_numpy(dtype=float)])  # F = 1 - S, from F(0) = 0
    last_time = times[-1]
    # one point per level: a censoring time repeats the level before it and is not a jump
    first_of_level = np.concatenate([[True], failed[1:] != failed[:-1]])
    times, failed = times[first_of_level], failed[first_of_level]
    if q <= 0:
        return float(times[0])
    reached = np.flatnonzero(failed + QUANTILE_TOLERANCE >= q)
    if len(reached) == 0:
        return float("inf")
    on_level = reached[0]
    if abs(failed[on_level] - q) >= QUANTILE_TOLERANCE:
        return float(times[on_level])  # the curve jumps past the level
    beyond = np.flatnonzero(failed - QUANTILE_TOLERANCE >= q)
    # flat exactly on the level: the midpoint to the next drop, or to the end of follow-up
    return float((times[on_level] + (times[beyond[0]] if len(beyond) else last_time)) / 2)


def survival_quantile(fitter: KaplanMeierFitter, q: float) -> tuple[float, float, float]:
    """The q-th quantile of survival time (q=0.5: median) and its 95% CI, in the fit's time unit."""
    band = fitter.confidence_interval_
    lower_column, upper_column = band.columns  # lifelines: lower band first
    point = curve_quantile(fitter.survival_function_.iloc[:, 0], q)
    # the lower survival band crosses first, so it gives the lower time bound
    return point, curve_quantile(band[lower_column], q), curve_quantile(band[upper_column], q)


def survival_at(fitter: KaplanMeierFitter, t: float) -> tuple[float, float, float] | None:
    """S(t) with its 95% CI; None when t is past the last follow-up and S has not reached 0."""
    curve = fitter.survival_function_.iloc[:, 0]
    if t > float(np.max(fitter.durations)) and curve.iloc[-1] > 0:
        return None
    position = curve.index.searchsorted(t, side="right") - 1  # the step in force at t
    band = fitter.confidence_interval_.iloc[position]
    return float(curve.iloc[position]), float(band.iloc[0]), float(band.iloc[1])


def kaplan_meier(times, events, weights=None, horizon: float | None = None,
                 at_risk_times: Sequence[float] = ()) -> KaplanMeierCurve:
    """One curve's figures: n, events, median and quartiles (days and months), at-risk, S(horizon)."""
    times = np.asarray(times, dtype=float)
    events = np.asarray(events, dtype=int)
    fitter = fit_km(times, events, weights)
    weighted = {}
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        weighted = {"weighted_n": float(weights.sum()), "weighted_events": float(weights[events == 1].sum())}
    quantiles = {}
    for key, q in (("median", 0.5), ("q25", 0.25), ("q75", 0.75)):
        point, lower, upper = survival_quantile(fitter, q)
        quantiles[key] = Quantile(days=_estimate(point, lower, upper),
                                  months=_estimate(point, lower, upper, scale=DAYS_PER_MONTH))
    at_horizon = None
    if horizon is not None:
        estimate = survival_at(fitter, horizon)
        at_horizon = (SurvivalAt(horizon_days=float(horizon), estimate=None, ci_lower=None, ci_upper=None,
                                 note=f"follow-up ends at day {times.max():g}, before the horizon")
                      if estimate is None else
                      SurvivalAt(horizon_days=float(horizon), **dict(zip(("estimate", "ci_lower", "ci_upper"), estimate))))
    return KaplanMeierCurve(
        n=int(len(times)), events=int(events.sum()), **weighted, **quantiles,
        at_risk=tuple(AtRisk(time=float(t), n=n) for t, n in zip(at_risk_times, numbers_at_risk(times, at_risk_times))),
        survival_at_horizon=at_horizon)


def kaplan_meier_by_group(data: pd.DataFrame, time: str, event: str, group: str | None = None, *,
                          weights: str | None = None, horizon: float | None = None,
                          at_risk_times: Sequence[float] = (), reference_group=None) -> dict[str, KaplanMeierCurve]:
    """:func:`kaplan_meier` per group, keyed by group label (reference first); one ``"all"`` curve without a group."""
    if group is None:
        return {ALL: kaplan_meier(data[time], data[event], None if weights is None else data[weights],
                                  horizon, at_risk_times)}
    labels = data[group].astype(str)
    results = {}
    for level in group_levels(data[group], reference_group):
        rows = data[labels == level]
        results[level] = kaplan_meier(rows[time], rows[event], None if weights is None else rows[weights],
                                      horizon, at_risk_times)
    return results


def log_rank(data: pd.DataFrame, time: str, event: str, group: str, weights: str | None = None) -> LogRank | None:
    """Log-rank test of equal survival across all groups: chi2 on (groups - 1) df; None for one group."""
    labels = data[group].astype(str)
    n_groups = labels.nunique()
    if n_groups < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        result = multivariate_logrank_test(
            data[time].astype(float).to_numpy(), labels.to_numpy(), data[event].astype(int).to_numpy(),
            weights=None if weights is None else data[weights].astype(float).to_numpy())
    return LogRank(test="log-rank" if weights is None else "weighted log-rank (case weights)",
                   chi2=finite_or_none(result.test_statistic), df=n_groups - 1, p=finite_or_none(result.p_value))