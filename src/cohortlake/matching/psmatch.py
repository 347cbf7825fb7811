"""The matching stage end to end: read persons, fit the PS, match or weight, check balance, write.

Outputs in the chosen folder:

* ``matched.csv`` — every input row, in input order, plus ``ps``, ``match_id`` (empty
  when unmatched or when weighting) and ``weight`` (match or IPTW/overlap weight),
* ``pairs.csv`` — one row per (treated, control) pair: match_id, treated_row,
  control_row (0-based data rows of matched.csv), distance, round,
* ``balance.csv`` — covariate, smd_before, smd_after, var_ratio_before, var_ratio_after,
  one row per numeric covariate and per level of a categorical one,
* ``love_plot.png``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cohortlake.errors import UserError
from cohortlake.matching.balance import BALANCE_COLUMNS, balance_table, equipoise, love_plot
from cohortlake.matching.match import MatchResult, caliper_width, exact_strata, match_on_score
from cohortlake.matching.ps import PsFit, fit_ps
from cohortlake.spec.matching import MatchingSettings, Method, Scale
from cohortlake.matching.weights import iptw, overlap_weights

OUTPUT_COLUMNS = ("ps", "match_id", "weight")
TRUE_WORDS = {"true", "t", "yes", "y", "1"}
FALSE_WORDS = {"false", "f", "no", "n", "0"}


def read_persons(path) -> pd.DataFrame:
    """A person-level table from .csv or .parquet."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    try:
        if suffix in (".csv", ".csv.gz"):
            return pd.read_csv(path, low_memory=False)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise UserError(f"{path}: cannot be read as {suffix[1:]}: {error}") from None
    raise UserError(f"{path}: unknown file type '{path.suffix}' (use .csv or .parquet)")


def treated_indicator(series: pd.Series, treated_value: str | None = None) -> np.ndarray:
    """Booleans from a 0/1, true/false or two-valued text arm column (``treated_value`` names the treated arm)."""
    name = series.name
    missing = int(series.isna().sum())
    if missing:
        raise UserError(f"treatment column '{name}' has {missing:,} missing value(s)")
    if treated_value is not None:
        text = series.astype(str)
        values = sorted(text.unique())
        if str(treated_value) not in values:
            raise UserError(f"treatment column '{name}' has no value '{treated_value}' (values: {', '.join(values)})")
        if len(values) != 2:
            raise UserError(f"treatment column '{name}' must have exactly two values, has {len(values)}: "
                            f"{', '.join(values[:10])}")
        return (text == str(treated_value)).to_numpy()
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(series):
        values = set(np.unique(series.to_numpy(dtype=float)).tolist())
        if values <= {0.0, 1.0}:
            return series.to_numpy(dtype=float) == 1.0
        raise UserError(f"treatment column '{name}' must be 0/1, true/false or two text values; it has "
                        f"{', '.join(f'{v:g}' for v in sorted(values)[:10])}")
    text = series.astype(str).str.strip()
    values = sorted(text.unique())
    if {v.lower() for v in values} <= TRUE_WORDS | FALSE_WORDS:
        return text.str.lower().isin(TRUE_WORDS).to_numpy()
    if len(values) == 2:
        raise UserError(f"treatment column '{name}' has two text values ({values[0]}, {values[1]}); "
                        f"say which is the treated arm (CLI: --treated {values[0]})")
    raise UserError(f"treatment column '{name}' must have exactly two values, has {len(values)}: "
                    f"{', '.join(values[:10])}")


@dataclass
class PsMatchReport:
    """What one psmatch run produced."""

    data: pd.DataFrame
    """The input plus ps, match_id (nullable Int64) and weight."""
    balance: pd.DataFrame
    """The full balance table (means too); balance.csv keeps BALANCE_COLUMNS."""
    fit: PsFit
    settings: MatchingSettings
    n_treated: int
    n_controls: int
    matched: MatchResult | None = None
    caliper: float | None = None
    equipoise: float = float("nan")
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def n_matched_treated(self) -> int:
        return self.matched.n_matched_treated if self.matched else 0

    @property
    def n_matched_controls(self) -> int:
        return self.matched.n_matched_controls if self.matched else 0

    @property
    def imbalanced(self) -> list[str]:
        """Balance columns whose |SMD| after exceeds the threshold."""
        after = self.balance["smd_after"].abs()
        return self.balance.loc[after > self.settings.smd_threshold, "covariate"].tolist()

    def lines(self) -> list[str]:
        """The counts and the balance table, as printed by the CLI."""
        s = self.settings
        out = [f"propensity model: {self.fit.method}; equipoise (preference score in "
               f"[{s.equipoise[0]:g}, {s.equipoise[1]:g}]): {self.equipoise:.1%}"]
        if self.matched is not None:
            caliper = "none" if self.caliper is None else f"{self.caliper:.4g} on the {s.scale.value} scale"
            out.append(f"matching: 1:{s.ratio}, {'with' if s.replacement else 'without'} replacement, order "
                       f"{s.order.value}, caliper {caliper}")
            out.append(f"treated {self.n_treated:,}, controls {self.n_controls:,}; matched treated "
                       f"{self.n_matched_treated:,}, matched controls {self.n_matched_controls:,}")
        else:
            out.append(f"weighting: {s.method.value}; treated {self.n_treated:,}, controls {self.n_controls:,}")
        width = max([len("covariate")] + [len(c) for c in self.balance["covariate"]])
        out.append(f"{'covariate':<{width}}  {'smd_before':>10}  {'smd_after':>10}  {'vr_before':>9}  {'vr_after':>9}")
        for row in self.balance.itertuples():
            out.append(f"{row.covariate:<{width}}  {_num(row.smd_before, 10)}  {_num(row.smd_after, 10)}  "
                       f"{_num(row.var_ratio_before, 9)}  {_num(row.var_ratio_after, 9)}")
        bad = self.imbalanced
        out.append(f"|SMD| after > {s.smd_threshold:g}: " + (", ".join(bad) if bad else "none"))
        return out


def _num(value: float, width: int) -> str:
    return f"{'':>{width}}" if pd.isna(value) else f"{value:>{width}.3f}"


def run_psmatch(data: pd.DataFrame, treatment: str, covariates, settings: MatchingSettings | None = None,
                out: str | Path | None = None, treated_value: str | None = None,
                fit: PsFit | None = None) -> PsMatchReport:
    """Fit the PS of ``treatment`` on ``covariates``, match (or weight), compute balance, write to ``out``.

    ``fit`` passes a propensity model fitted elsewhere (Spark ML for very large cohorts).
    """
    settings = settings or MatchingSettings()
    if treatment not in data.columns:
        raise UserError(f"treatment column '{treatment}' not in the data (columns: {', '.join(map(str, data.columns))})")
    if treatment in covariates:
        raise UserError(f"'{treatment}' is the treatment column; it cannot be a covariate too")
    taken = [c for c in OUTPUT_COLUMNS if c in data.columns]
    if taken:
        raise UserError(f"the data already have column(s) {', '.join(taken)}, which psmatch writes; rename them")
    if treated_value is None and settings.treatment is not None:
        treated_value = settings.treatment.arm
    treated = treated_indicator(data[treatment], treated_value)
    if fit is None:
        fit = fit_ps(data, treated, covariates, l2=settings.l2)
    strata = exact_strata(data, settings.exact)
    result, caliper = None, None
    if settings.method is Method.greedy_nearest_neighbor:
        score = fit.logit if settings.scale is Scale.logit else fit.ps
        caliper = caliper_width(score, settings.caliper, settings.caliper_in_sd)
        result = match_on_score(score, treated, caliper=caliper, ratio=settings.ratio,
                                replacement=settings.replacement, order=settings.order, seed=settings.seed,
                                strata=strata)
        weight = result.weight
        match_id = pd.Series(result.match_id, index=data.index, dtype="Int64").where(result.match_id > 0)
    elif settings.method is Method.iptw:
        weight = iptw(fit.ps, treated, settings.estimand, settings.stabilized)
        match_id = pd.Series(pd.NA, index=data.index, dtype="Int64")
    else:
        weight = overlap_weights(fit.ps, treated)
        match_id = pd.Series(pd.NA, index=data.index, dtype="Int64")
    balance = balance_table(fit.design.balance, treated, weight, settings.smd_denominator)
    output = data.copy()
    output["ps"] = fit.ps
    output["match_id"] = match_id
    output["weight"] = weight
    report = PsMatchReport(data=output, balance=balance, fit=fit, settings=settings,
                           n_treated=int(treated.sum()), n_controls=int((~treated).sum()), matched=result,
                           caliper=caliper, equipoise=equipoise(fit.ps, treated, settings.equipoise))
    if out is not None:
        report.files = write_outputs(report, out)
    return report


def write_outputs(report: PsMatchReport, out) -> dict[str, Path]:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{out}: cannot create the output folder ({error.strerror})") from None
    files = {name: out / name for name in ("matched.csv", "pairs.csv", "balance.csv", "love_plot.png")}
    report.data.to_csv(files["matched.csv"], index=False)
    pairs = report.matched.pairs if report.matched is not None else pd.DataFrame(
        columns=["match_id", "treated_row", "control_row", "distance", "round"])
    pairs.to_csv(files["pairs.csv"], index=False)
    report.balance[BALANCE_COLUMNS].to_csv(files["balance.csv"], index=False)
    love_plot(report.balance, files["love_plot.png"], threshold=report.settings.smd_threshold)
    return files
