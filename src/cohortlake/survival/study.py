"""A definition's study analysis: survival from the landmark in the matched (or weighted)
dataset, the unmatched descriptive figures, and ``results.json`` for the report.

Reads the hand-off files the earlier steps wrote into OUT (``cohort.parquet`` from the
build, ``matched.parquet`` from ``match``), so it can be re-run alone and on another
machine. Outcome analysis follows the reference study: Kaplan-Meier by arm, Cox with a
variance clustered on the matched set (crude and adjusted for the PS covariates), risk by
the horizon with risk ratios from log-binomial regression.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cohortlake.errors import UserError
from cohortlake.spec.matching import Method, matching_settings
from cohortlake.survival.analyze import survival_analysis
from cohortlake.survival.design import DAYS_PER_MONTH
from cohortlake.survival.km import fit_km, survival_quantile
from cohortlake.survival.plot import plot_km
from cohortlake.survival.results import (Descriptive, Duration, MatchingSummary, Quartiles, StudyFiles, StudyResults,
                                         Treatment)

RESULTS_FILE = "results.json"
DEFAULT_HORIZON_DAYS = 90
REFERENCE_COHORT = "hcc_sorafenib_landmark"


def _read(out: str, name: str, step: str) -> pd.DataFrame:
    path = os.path.join(out, name)
    if not os.path.exists(path):
        raise UserError(f"{path} not found; run `cohortlake {step}` with --out {out} first")
    return pd.read_parquet(path)


def _quartiles_months(times, events) -> Quartiles | None:
    """Median and IQR (Kaplan-Meier) of a time in days, reported in months; None without persons."""
    times = np.asarray(times, dtype=float)
    if len(times) == 0:
        return None
    fitter = fit_km(times, np.asarray(events, dtype=int))
    days = {key: survival_quantile(fitter, q)[0] for key, q in (("median", 0.5), ("q25", 0.25), ("q75", 0.75))}
    clean = {k: (None if v is None or not np.isfinite(v) else float(v)) for k, v in days.items()}
    return Quartiles(**{k: (None if v is None else v / DAYS_PER_MONTH) for k, v in clean.items()})


def descriptive_figures(definition, cohort: pd.DataFrame) -> Descriptive:
    """The unmatched figures of the reference table, from the built cohort."""
    settings = matching_settings(definition)
    arm = settings.treatment.arm
    treated = cohort[cohort["arm"] == arm]
    duration = first_rx = None
    notes = []
    durations = [c.name for c in definition.covariates if c.kind == "exposure_duration" and c.name in cohort]
    if durations and len(treated):
        values = treated[durations[0]].dropna().to_numpy(dtype=float)
        if len(values):
            q25, median, q75 = np.percentile(values, [25, 50, 75])
            duration = Duration(median=float(median), q25=float(q25), q75=float(q75), covariate=durations[0])
    else:
        notes.append("exposure duration: the definition has no exposure_duration covariate")
    with_fill = treated[treated["first_exposure_date"].notna()]
    if len(with_fill):
        start = pd.to_datetime(with_fill["first_exposure_date"])
        end = pd.to_datetime(with_fill["followup_end"])
        times = (end - start).dt.days.clip(lower=0)
        first_rx = _quartiles_months(times, with_fill["event"])
        notes.append(f"survival from first prescription: {len(with_fill):,} persons of arm '{arm}' "
                     "(alive at the landmark, as the cohort requires), Kaplan-Meier quartiles")
    return Descriptive(
        population=(f"cohort '{definition.cohort}' ({len(cohort):,} persons who passed every criterion, "
                    f"classified at the landmark)"),
        n=int(len(cohort)),
        treated_share=float((cohort["arm"] == arm).mean()) if len(cohort) else None,
        duration_days=duration, survival_from_first_rx_months=first_rx, notes=notes)


def study_analysis(definition, out: str, horizon: float = DEFAULT_HORIZON_DAYS, progress=None) -> StudyResults:
    """Analyse OUT's matched dataset; write ``results.json`` and ``km.png``; return the results."""
    from cohortlake.progress import Progress

    progress = progress or Progress(quiet=True)
    settings = matching_settings(definition)
    if settings.treatment is None:
        raise UserError(f"{definition.path or definition.cohort}: no `matching:` section naming the compared arms")
    matched = _read(out, "matched.parquet", "match")
    cohort = _read(out, "cohort.parquet", "build")
    treated_arm, control_arm = settings.treatment.arm, settings.treatment.control
    greedy = settings.method is Method.greedy_nearest_neighbor
    weighted = not greedy or not np.allclose(matched["weight"].to_numpy(dtype=float), 1.0)
    data = matched.copy()
    if greedy:
        data["match_id"] = data["match_id"].astype(str)
    with progress.step(f"analyze {definition.cohort}") as step:
        survival = survival_analysis(
            data, "time_days", "event", group="arm", covariates=list(settings.ps_covariates),
            cluster="match_id" if greedy else None, weights="weight" if weighted else None, horizon=horizon,
            reference_group=control_arm, source=os.path.join(out, "matched.parquet"))
        km_path = plot_km(data, "time_days", "event", Path(out) / "km.png", group="arm",
                          weights="weight" if weighted else None, reference_group=control_arm,
                          time_label="Days since the landmark", title=f"{definition.cohort}: survival from the landmark")
        hr = survival.primary_cox
        estimate = hr.hazard_ratios.get(treated_arm) if hr else None
        step["detail"] = (f"{survival.n:,} persons, {survival.events:,} events; adjusted HR "
                          f"{estimate.hr:.2f}" if estimate else f"{survival.n:,} persons")
    balance = pd.read_csv(os.path.join(out, "balance.csv")) if os.path.exists(os.path.join(out, "balance.csv")) else None
    max_smd = float(balance["smd_after"].abs().max()) if balance is not None and len(balance) else None
    summary = _match_summary(out)
    n_treated = int((cohort["arm"] == treated_arm).sum())
    n_control = int((cohort["arm"] == control_arm).sum())
    results = StudyResults(
        cohort=definition.cohort,
        title=definition.title,
        treatment=Treatment(arm=treated_arm, control=control_arm),
        covariates=list(settings.ps_covariates),
        horizon_days=horizon,
        reference_study=definition.cohort == REFERENCE_COHORT,
        matching=MatchingSummary(
            method=settings.method.value, scale=settings.scale.value, caliper=settings.caliper,
            ratio=settings.ratio, replacement=settings.replacement, order=settings.order.value,
            smd_threshold=settings.smd_threshold,
            ps_method=summary.get("ps_method"),
            n_treated=n_treated, n_control=n_control,
            matched_treated=int((matched["arm"] == treated_arm).sum()),
            matched_control=int((matched["arm"] == control_arm).sum()),
            equipoise=summary.get("equipoise"),
            max_abs_smd_after=max_smd,
            balance_passed=None if max_smd is None else bool(max_smd <= settings.smd_threshold),
        ),
        survival=survival,
        descriptive=descriptive_figures(definition, cohort),
        files=StudyFiles(km_plot=str(km_path)),
    )
    path = Path(out) / RESULTS_FILE
    path.write_text(json.dumps(results.to_json(), indent=2, allow_nan=False, default=_json_default) + "\n",
                    encoding="utf-8")
    return results


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if not np.isfinite(value) else float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _match_summary(out: str) -> dict:
    """What the match step recorded (matching.json); empty when OUT has none."""
    path = Path(out) / "matching.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
