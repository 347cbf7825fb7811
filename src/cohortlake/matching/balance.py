"""Covariate balance before and after matching or weighting; Love plot; equipoise.

Standardized mean difference (SMD) = (mean_treated - mean_control) / denominator, the
means weighted after matching (match weights) or weighting. The denominator always
comes from the sample *before* matching, so that before and after share one yardstick
and a change in SMD is a change in means (MatchIt/cobalt do this; CohortMethod instead
divides the after-matching difference by the after-matching SDs):

* ``pooled``: sqrt((s1² + s0²) / 2), the two groups' variances averaged with equal
  weight (CohortMethod's formula; MatchIt's for the ATE),
* ``treated``: s1, the treated group's SD (MatchIt's default for the ATT).

If the chosen denominator is 0 (a covariate constant among the treated) the pooled SD
is used instead, as MatchIt does. Variances: p(1-p) for a 0/1 column (as MatchIt);
otherwise the weighted sample variance Σw(x-m)² / (Σw - Σw²/Σw), which is the usual
n-1 variance when all weights are 1 (CohortMethod divides by n).

Variance ratio = variance treated / variance control (weighted after), reported for
non-binary columns only: for a 0/1 column it is a function of the means (MatchIt and
cobalt leave it blank too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cohortlake.spec.matching import SmdDenominator

BALANCE_COLUMNS = ["covariate", "smd_before", "smd_after", "var_ratio_before", "var_ratio_after"]


def _binary(x: np.ndarray) -> bool:
    return bool(np.isin(x, (0.0, 1.0)).all())


def weighted_mean(x: np.ndarray, w: np.ndarray) -> float:
    total = w.sum()
    return float((w * x).sum() / total) if total > 0 else float("nan")


def weighted_variance(x: np.ndarray, w: np.ndarray, binary: bool | None = None) -> float:
    """p(1-p) for a 0/1 column, else the reliability-weighted sample variance."""
    w = np.asarray(w, dtype=float)
    x = np.asarray(x, dtype=float)
    keep = w > 0
    x, w = x[keep], w[keep]
    total = w.sum()
    if total <= 0:
        return float("nan")
    mean = (w * x).sum() / total
    if binary if binary is not None else _binary(x):
        return float(mean * (1.0 - mean))
    effective = total - (w ** 2).sum() / total
    if effective <= 0:
        return float("nan")
    return float((w * (x - mean) ** 2).sum() / effective)


def balance_table(columns: pd.DataFrame, treated, weight=None,
                  denominator: SmdDenominator | str = SmdDenominator.pooled) -> pd.DataFrame:
    """One row per balance column: means, SMD and variance ratio before and after.

    ``columns`` are numeric (``Design.balance``: one column per numeric covariate, one per
    level of a categorical one); ``weight`` is the match or IPTW weight of each row
    (0 = not in the matched sample); None gives only the "before" figures (after = NaN).
    """
    denominator = SmdDenominator(denominator)
    treated = np.asarray(treated, dtype=bool)
    ones = np.ones(len(treated))
    after = None if weight is None else np.asarray(weight, dtype=float)
    rows = []
    for name in columns.columns:
        x = columns[name].to_numpy(dtype=float)
        binary = _binary(x)
        xt, xc = x[treated], x[~treated]
        var_t = weighted_variance(xt, ones[treated], binary)
        var_c = weighted_variance(xc, ones[~treated], binary)
        pooled = np.sqrt((var_t + var_c) / 2.0)
        scale = np.sqrt(var_t) if denominator is SmdDenominator.treated else pooled
        if not scale > 0:
            scale = pooled
        mean_t, mean_c = xt.mean() if len(xt) else np.nan, xc.mean() if len(xc) else np.nan
        row = {
            "covariate": name,
            "mean_treated_before": mean_t, "mean_control_before": mean_c,
            "smd_before": _smd(mean_t - mean_c, scale),
            "var_ratio_before": np.nan if binary else _ratio(var_t, var_c),
            "mean_treated_after": np.nan, "mean_control_after": np.nan,
            "smd_after": np.nan, "var_ratio_after": np.nan, "sd_denominator": scale,
        }
        if after is not None:
            wt, wc = after[treated], after[~treated]
            mean_ta, mean_ca = weighted_mean(xt, wt), weighted_mean(xc, wc)
            row.update(mean_treated_after=mean_ta, mean_control_after=mean_ca,
                       smd_after=_smd(mean_ta - mean_ca, scale),
                       var_ratio_after=np.nan if binary else _ratio(weighted_variance(xt, wt, binary),
                                                                    weighted_variance(xc, wc, binary)))
        rows.append(row)
    return pd.DataFrame(rows, columns=["covariate", "mean_treated_before", "mean_control_before",
                                       "mean_treated_after", "mean_control_after", "smd_before", "smd_after",
                                       "var_ratio_before", "var_ratio_after", "sd_denominator"])


def _smd(difference: float, scale: float) -> float:
    if np.isnan(difference):
        return float("nan")
    if scale > 0:
        return float(difference / scale)
    return 0.0 if difference == 0 else float("nan")


def _ratio(var_t: float, var_c: float) -> float:
    return float(var_t / var_c) if var_c > 0 else float("nan")


def preference_score(ps, treated) -> np.ndarray:
    """Walker et al. (2013): logit(F) = logit(ps) - logit(P), P = the share treated."""
    ps = np.asarray(ps, dtype=float)
    share = float(np.mean(np.asarray(treated, dtype=bool)))
    with np.errstate(divide="ignore"):
        shifted = np.log(ps) - np.log1p(-ps) - (np.log(share) - np.log1p(-share))
    return 1.0 / (1.0 + np.exp(-shifted))


def equipoise(ps, treated, bounds=(0.3, 0.7)) -> float:
    """Share of persons whose preference score lies in [low, high] (bounds inclusive, as CohortMethod)."""
    score = preference_score(ps, treated)
    low, high = bounds
    return float(np.mean((score >= low) & (score <= high)))


def love_plot(table: pd.DataFrame, path, threshold: float = 0.1, title: str | None = None,
              notice: str | None = None) -> Path:
    """Absolute SMD of each covariate before (open) and after (filled), largest-before at the top.

    A missing SMD (NaN) draws no point; ``notice`` is written across the top of the image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ordered = table.assign(_before=table["smd_before"].abs()).sort_values("_before", kind="stable")
    labels = ordered["covariate"].tolist()
    positions = np.arange(len(labels))
    figure = Figure(figsize=(7, max(2.5, 0.28 * len(labels) + 1.2)))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.scatter(ordered["smd_before"].abs(), positions, facecolors="none", edgecolors="#b2182b",
                 label="before", zorder=3)
    if ordered["smd_after"].notna().any():
        axes.scatter(ordered["smd_after"].abs(), positions, color="#2166ac", label="after", zorder=3)
    axes.axvline(threshold, color="grey", linestyle="--", linewidth=1, label=f"|SMD| = {threshold:g}")
    axes.set_yticks(positions)
    axes.set_yticklabels(labels, fontsize=8)
    axes.set_xlabel("absolute standardized mean difference")
    axes.set_xlim(left=0)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    if notice:
        from cohortlake.survival.plot import write_notice

        write_notice(figure, notice)
    path = Path(path)
    figure.savefig(path, dpi=120, bbox_inches="tight" if notice else None)
    return path
