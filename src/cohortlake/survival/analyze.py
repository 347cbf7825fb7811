"""The whole survival analysis of one analysis-ready table, as :class:`SurvivalResults`
(``to_json()``: the dict ``results.json`` holds).

Kaplan-Meier by group (median and IQR in days and months), log-rank, Cox hazard ratios
(crude and covariate-adjusted, with the proportional-hazards check), risk by a horizon
with risk ratios, and competing-risk cumulative incidence when an event-type column has
more than one kind of event. :func:`run_survival` reads a CSV or Parquet file and writes
``results.json`` and ``km.png``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cohortlake.errors import MissingInputError, UserError
from cohortlake.survival.cox import cox_model
from cohortlake.survival.design import DAYS_PER_MONTH, group_levels
from cohortlake.survival.km import kaplan_meier_by_group, log_rank
from cohortlake.survival.plot import default_at_risk_times, plot_km
from cohortlake.survival.results import (CoxModels, Estimate, HazardRatio, RiskRatio, RiskSummary, SurvivalInput,
                                         SurvivalResults)
from cohortlake.survival.risk import aalen_johansen, risk_ratio_model, risks_at

RESULTS_FILE = "results.json"
PLOT_FILE = "km.png"


def load_table(path: str | Path) -> pd.DataFrame:
    """A CSV (header row) or Parquet file as a DataFrame; a missing or unreadable file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, low_memory=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise UserError(f"{path}: cannot be read as {suffix[1:].upper()} ({str(error).splitlines()[0]})") from None
    raise UserError(f"{path}: unknown file type '{suffix or '(none)'}'; give a .csv or .parquet file")


def _first_bad(column: pd.Series, bad: pd.Series) -> tuple[int, object]:
    """The 1-based data row and raw value of the first row flagged bad."""
    position = int(np.flatnonzero(bad.to_numpy())[0])
    return position + 1, column.iloc[position]


def _fail(name: str, column: pd.Series, bad: pd.Series, problem: str) -> None:
    if bad.any():
        row, value = _first_bad(column, bad)
        shown = "empty" if pd.isna(value) else repr(value)
        raise UserError(f"column '{name}', data row {row}: {problem} (value {shown}); "
                        f"{int(bad.sum())} row(s) like this")


def _numbers(frame: pd.DataFrame, name: str) -> pd.Series:
    column = frame[name]
    values = pd.to_numeric(column, errors="coerce")
    _fail(name, column, column.isna(), "missing value")
    _fail(name, column, values.isna(), "not a number")
    _fail(name, column, ~np.isfinite(values.astype(float)), "not a finite number")
    return values.astype(float)


def prepare(frame: pd.DataFrame, time: str, event: str, group: str | None = None, covariates: Sequence[str] = (),
            *, cluster: str | None = None, weights: str | None = None, event_type: str | None = None,
            source: str = "the data") -> pd.DataFrame:
    """The analysis columns, checked and typed; every problem is a UserError naming the column and the first bad row.

    Times are numbers of days >= 0; the event is 0/1 (or true/false); weights are > 0; the
    event type is a whole number >= 0 (0 censored); no analysis column may be empty.
    Rows are numbered from 1, the first data row (line 2 of a CSV).
    """
    roles = {"--time": time, "--event": event, "--group": group, "--cluster": cluster, "--weights": weights,
             "--event-type": event_type}
    wanted = [c for c in [time, event, group, *covariates, cluster, weights, event_type] if c is not None]
    missing = [c for c in dict.fromkeys(wanted) if c not in frame.columns]
    if missing:
        raise MissingInputError(f"{source} has no column {', '.join(repr(c) for c in missing)} "
                                f"(columns: {', '.join(map(str, frame.columns))})")
    for option, column in roles.items():
        if column is not None and column in covariates:
            raise UserError(f"column '{column}' is given both as {option} and as a covariate")
    if len(frame) == 0:
        raise UserError(f"{source} has no rows")
    frame = frame.reset_index(drop=True)
    prepared = pd.DataFrame(index=frame.index)

    times = _numbers(frame, time)
    _fail(time, frame[time], times < 0, "negative time (times are days from the start of follow-up, >= 0)")
    prepared[time] = times

    column = frame[event]
    as_text = column.astype(str).str.strip().str.lower()
    coded = as_text.map({"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1})
    _fail(event, column, column.isna(), "missing value")
    _fail(event, column, coded.isna(), "the event must be 0 (censored) or 1 (event)")
    prepared[event] = coded.astype(int)

    for name in [group, *covariates, cluster]:
        if name is not None:
            _fail(name, frame[name], frame[name].isna(), "missing value")
            prepared[name] = frame[name]

    if weights is not None:
        values = _numbers(frame, weights)
        _fail(weights, frame[weights], values <= 0, "weights must be > 0")
        prepared[weights] = values

    if event_type is not None:
        values = _numbers(frame, event_type)
        _fail(event_type, frame[event_type], (values < 0) | (values != np.round(values)),
              "the event type must be a whole number: 0 censored, 1, 2, ... a kind of event")
        prepared[event_type] = values.astype(int)
    return prepared


def survival_analysis(frame: pd.DataFrame, time: str, event: str, group: str | None = None,
                      covariates: Sequence[str] = (), *, cluster: str | None = None, weights: str | None = None,
                      horizon: float | None = None, event_type: str | None = None, reference_group=None,
                      at_risk_times: Sequence[float] | None = None, source: str = "the data") -> SurvivalResults:
    """Run every step on one table: Kaplan-Meier per group, log-rank, Cox (crude and adjusted),
    risk by the horizon with risk ratios, competing risks; steps that do not apply are None.
    Times are days."""
    covariates = list(covariates)
    data = prepare(frame, time, event, group, covariates, cluster=cluster, weights=weights,
                   event_type=event_type, source=source)
    if horizon is not None and not (np.isfinite(horizon) and horizon > 0):
        raise UserError(f"the horizon must be a number of days > 0, not {horizon:g}")
    if at_risk_times is None:
        at_risk_times = default_at_risk_times(float(data[time].max()))
    at_risk_times = [float(t) for t in at_risk_times]
    levels = group_levels(data[group], reference_group) if group is not None else None
    reference = levels[0] if levels else None
    notes: list[str] = []
    compared = {"reference_group": reference, "cluster": cluster, "weights": weights}
    groups = kaplan_meier_by_group(data, time, event, group, weights=weights, horizon=horizon,
                                   at_risk_times=at_risk_times, reference_group=reference)

    logrank = cox = None
    if group is not None:
        logrank = log_rank(data, time, event, group, weights)
        cox = CoxModels(crude=cox_model(data, time, event, group, **compared),
                        adjusted=cox_model(data, time, event, group, covariates, **compared) if covariates else None)
    else:
        notes.append("no group column: one Kaplan-Meier curve; no log-rank test, hazard ratio or risk ratio")

    risk = None
    if horizon is not None:
        ratios = {}
        if group is not None:
            ratios["rr_crude"] = risk_ratio_model(data, time, event, group, horizon, **compared)
            if covariates:
                ratios["rr_adjusted"] = risk_ratio_model(data, time, event, group, horizon, covariates, **compared)
        risk = RiskSummary(horizon_days=float(horizon),
                           by_group=risks_at(data, time, event, group, horizon, weights=weights,
                                             reference_group=reference), **ratios)

    competing = None
    if event_type is not None:
        kinds = sorted(int(k) for k in data[event_type].unique() if k != 0)
        if len(kinds) > 1:
            times = [float(horizon)] if horizon is not None else at_risk_times
            competing = aalen_johansen(data, time, event_type, times, group=group, weights=weights,
                                       reference_group=reference)
        else:
            notes.append(f"column '{event_type}' has {len(kinds)} kind(s) of event: no competing risks, "
                         f"so the cumulative incidence is 1 - Kaplan-Meier")

    if weights is not None:
        notes.append(f"case weights '{weights}': Kaplan-Meier and Aalen-Johansen CIs and the log-rank test treat "
                     "them as frequency weights (lifelines' Greenwood variance even rounds weighted numbers at risk "
                     "down to integers), which is not valid inference for IPTW: bootstrap those if they matter. "
                     "Cox and risk-ratio CIs use a robust sandwich variance. Numbers at risk are persons.")
    if cluster is not None:
        notes.append(f"cluster '{cluster}': Kaplan-Meier, the log-rank test and the 1 - KM risks ignore the "
                     "clustering; Cox and risk-ratio CIs use a sandwich variance clustered on it.")
    return SurvivalResults(
        input=SurvivalInput(source=source, time=time, event=event, group=group, covariates=covariates,
                            cluster=cluster, weights=weights, event_type=event_type, horizon_days=horizon,
                            time_unit="days", days_per_month=DAYS_PER_MONTH),
        n=int(len(data)),
        events=int(data[event].sum()),
        reference_group=reference,
        groups=groups, logrank=logrank, cox=cox, risk=risk, competing_risks=competing, notes=notes)


TIME_UNITS = {"days": 1.0, "weeks": 7.0, "months": DAYS_PER_MONTH, "years": 12 * DAYS_PER_MONTH}
"""Days in one unit of a --time column: months and years are average calendar ones."""


def leave_out_unmatched(frame: pd.DataFrame, cluster: str | None, weights: str | None) -> tuple[pd.DataFrame, int]:
    """The rows psmatch matched: its matched.csv keeps every input row, the unmatched ones with
    an empty match_id and weight 0. Those rows are left out (and counted) when clustering on
    the match id or weighting by the match weight."""
    keep = pd.Series(True, index=frame.index)
    if cluster is not None and cluster in frame.columns:
        keep &= frame[cluster].notna() & (frame[cluster].astype(str).str.strip() != "")
    if weights is not None and weights in frame.columns:
        keep &= pd.to_numeric(frame[weights], errors="coerce").ne(0) | frame[weights].isna()
    return frame[keep].reset_index(drop=True), int((~keep).sum())


def in_days(frame: pd.DataFrame, time: str, unit: str) -> pd.DataFrame:
    """The time column converted from ``unit`` to days (values that are not numbers stay, to be reported)."""
    if unit not in TIME_UNITS:
        raise UserError(f"unknown time unit '{unit}'; use one of: {', '.join(TIME_UNITS)}")
    if unit == "days" or time not in frame.columns:
        return frame
    numeric = pd.to_numeric(frame[time], errors="coerce")
    frame = frame.copy()
    frame[time] = (numeric * TIME_UNITS[unit]).where(numeric.notna(), frame[time])
    return frame


def run_survival(data_path: str | Path, out_dir: str | Path, time: str, event: str, group: str | None = None,
                 covariates: Sequence[str] = (), *, cluster: str | None = None, weights: str | None = None,
                 horizon: float | None = None, event_type: str | None = None, reference_group=None,
                 suppress_small: bool = True, time_unit: str = "days") -> tuple[SurvivalResults, Path, Path]:
    """Read a CSV/Parquet file, analyse it, write ``results.json`` and ``km.png`` to ``out_dir``;
    return the results and the two paths.

    ``time`` (and ``horizon``) count ``time_unit``s; the analysis and its results are in days.
    Rows psmatch left unmatched are left out when clustering or weighting (see leave_out_unmatched).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out must be a folder; a file of that name exists")
    frame, left_out = leave_out_unmatched(load_table(data_path), cluster, weights)
    if left_out and frame.empty:
        raise UserError(f"{data_path}: every row has an empty '{cluster or weights}' or weight 0 (none was matched)")
    frame = in_days(frame, time, time_unit)
    if horizon is not None:
        horizon = horizon * TIME_UNITS[time_unit]
    data = prepare(frame, time, event, group, covariates, cluster=cluster, weights=weights,
                   event_type=event_type, source=str(data_path))
    analysis = survival_analysis(data, time, event, group, covariates, cluster=cluster, weights=weights,
                                 horizon=horizon, event_type=event_type, reference_group=reference_group,
                                 source=str(data_path))
    analysis = dataclasses.replace(analysis, input=dataclasses.replace(analysis.input, time_unit=time_unit,
                                                                       left_out_unmatched=left_out))
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS_FILE
    results_path.write_text(json.dumps(analysis.to_json(), indent=2, allow_nan=False) + "\n")
    plot_path = plot_km(data, time, event, out / PLOT_FILE, group=group, weights=weights,
                        reference_group=analysis.reference_group,
                        at_risk_times=[row.time for row in next(iter(analysis.groups.values())).at_risk],
                        suppress_small=suppress_small)
    return analysis, results_path, plot_path


def _with_ci(estimate: Estimate, fmt: str = "{:.1f}") -> str:
    show = lambda x: "NR" if x is None else fmt.format(x)  # noqa: E731  NR: not reached
    return f"{show(estimate.estimate)} ({show(estimate.ci_lower)}-{show(estimate.ci_upper)})"


def _ratio(entry: HazardRatio | RiskRatio, value: float | None) -> str:
    show = lambda x, fmt=".2f": "n/a" if x is None else format(x, fmt)  # noqa: E731
    return f"{show(value)} ({show(entry.ci_lower)}-{show(entry.ci_upper)}), p={show(entry.p, '.3g')}"


def render_summary(results: SurvivalResults) -> list[str]:
    """A few readable lines: medians and IQR in months, log-rank, hazard ratios, risks and risk ratios."""
    inputs = results.input
    lines = [f"{results.n:,} persons, {results.events:,} events"
             + (f"; groups by '{inputs.group}', reference '{results.reference_group}'" if inputs.group else "")]
    width = max(len("group"), *(len(label) for label in results.groups))
    lines.append(f"  {'group':<{width}}  {'n':>7}  {'events':>7}  {'median months (95% CI)':<24}  IQR months")
    for label, km in results.groups.items():
        q25, q75 = km.q25.months.estimate, km.q75.months.estimate
        iqr = f"{'NR' if q25 is None else f'{q25:.1f}'}-{'NR' if q75 is None else f'{q75:.1f}'}"
        lines.append(f"  {label:<{width}}  {km.n:>7,}  {km.events:>7,}  {_with_ci(km.median.months):<24}  {iqr}")
    if results.logrank:
        test = results.logrank
        lines.append(f"  log-rank chi2={test.chi2} on {test.df} df, p={test.p}" if test.p is None else
                     f"  log-rank chi2={test.chi2:.2f} on {test.df} df, p={test.p:.3g}")
    for model, cox in (("crude", results.cox and results.cox.crude), ("adjusted", results.cox and results.cox.adjusted)):
        if cox:
            for level, hr in cox.hazard_ratios.items():
                lines.append(f"  HR {level} vs {cox.reference_group} ({model}): {_ratio(hr, hr.hr)}  [{cox.variance}]")
    if results.cox:
        check = results.primary_cox.ph_check
        lines.append("  proportional hazards: " + (f"p < {check.alpha} for {', '.join(check.violating_terms)}"
                                                   if check.any_violation else f"no term with p < {check.alpha}"))
    if results.risk:
        risk = results.risk
        percent = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
        parts = [f"{label} {percent(r.risk)} ({percent(r.ci_lower)}-{percent(r.ci_upper)})"
                 for label, r in risk.by_group.items()]
        lines.append(f"  risk by day {risk.horizon_days:g} (1 - KM): {', '.join(parts)}")
        for rr in risk.ratios().values():
            if rr:
                for level, entry in rr.risk_ratios.items():
                    lines.append(f"  RR {level} vs {rr.reference_group} ({rr.model}): {_ratio(entry, entry.rr)}  "
                                 f"[{rr.method}; {rr.n_status_known:,} with known status]")
                if rr.fallback_reason:
                    lines.append(f"    ({rr.fallback_reason})")
    if results.competing_risks:
        cr = results.competing_risks
        lines.append(f"  competing risks ({cr.method}) on '{cr.event_column}': "
                     f"event types {', '.join(cr.event_types)}")
    for note in results.notes:
        lines.append(f"  note: {note}")
    return lines
