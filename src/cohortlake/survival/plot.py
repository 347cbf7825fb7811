"""Kaplan-Meier curves by group with 95% bands and a numbers-at-risk table, as a PNG.

The at-risk table is drawn here rather than by lifelines' ``add_at_risk_counts``, which
prints every count as an integer: a figure that leaves the lakehouse must show counts
1-10 as ``<11`` (CMS / NCI cell-size rule, :mod:`cohortlake.cells`), which
``suppress_small=True`` does. The study report passes ``count_text`` instead, so the plot
prints each count exactly as the report's tables do (with complementary suppression), and
a ``notice`` written into the image for a figure that must not leave the secure environment.
Numbers at risk are persons (unweighted) still followed at each time, as in R.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cohortlake import cells as cell_rule
from cohortlake.survival.design import group_levels
from cohortlake.survival.km import ALL, fit_km, numbers_at_risk

UNSUPPRESSED_NOTICE = f"NOT FOR RELEASE: numbers at risk include counts under {cell_rule.SMALLEST_SHOWN}"
"""Written into a plot drawn with ``suppress_small=False``."""


def small_cell(count: int, suppress: bool = True) -> str:
    """A count as it may be published: 1-10 become ``<11``; 0 and 11+ stay as they are
    (:func:`cohortlake.cells.small_cell`); ``suppress=False`` prints every count as counted."""
    # whole=False: the plot prints a count as given, not as int(count) as the report's tables do;
    # its counts (len() of a group, numbers_at_risk()) are whole numbers already
    return cell_rule.small_cell(count, rule=suppress, whole=False)


def write_notice(figure: Figure, notice: str) -> None:
    """A notice across the top of a figure, in red on a pale band (kept by ``bbox_inches="tight"``)."""
    figure.suptitle(notice, color="#a61b1b", fontsize="small", fontweight="bold", wrap=True,
                    bbox={"facecolor": "#fbe4e4", "edgecolor": "#a61b1b", "boxstyle": "round,pad=0.4"})


def default_at_risk_times(max_time: float) -> list[float]:
    """Round times from 0 to the longest follow-up (about six), for the at-risk table."""
    if not np.isfinite(max_time) or max_time <= 0:
        return [0.0]
    ticks = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 3, 5, 10], integer=True).tick_values(0, max_time)
    return [float(t) for t in ticks if 0 <= t <= max_time]


CountText = Callable[[str, "float | None", int], str]
"""(group label, time or None for the group's persons, count) → the text printed."""


def at_risk_table(data: pd.DataFrame, time: str, at_risk_times: Sequence[float], *, group: str | None = None,
                  reference_group=None, suppress_small: bool = True,
                  count_text: CountText | None = None) -> dict[str, list[str]]:
    """The at-risk table as printed under the curves: one row of labels per group (reference first)."""
    def show(label, t, n):
        return count_text(label, t, n) if count_text is not None else small_cell(n, suppress_small)

    if group is None:
        return {ALL: [show(ALL, t, n) for t, n in zip(at_risk_times, numbers_at_risk(data[time], at_risk_times))]}
    labels = data[group].astype(str)
    return {level: [show(level, t, n) for t, n in
                    zip(at_risk_times, numbers_at_risk(data.loc[labels == level, time], at_risk_times))]
            for level in group_levels(data[group], reference_group)}


def plot_km(data: pd.DataFrame, time: str, event: str, path: str | Path, *, group: str | None = None,
            weights: str | None = None, reference_group=None, at_risk_times: Sequence[float] | None = None,
            suppress_small: bool = True, time_label: str = "Days since start of follow-up",
            title: str | None = None, count_text: CountText | None = None, notice: str | None = None) -> Path:
    """Draw KM curves (one per group, reference first) with 95% bands and an at-risk table; save a PNG.

    ``count_text`` prints each count (the legend's n, the numbers at risk) instead of the
    ``suppress_small`` rule; ``notice`` is written across the top of the image."""
    if at_risk_times is None:
        at_risk_times = default_at_risk_times(float(data[time].max()))
    at_risk_times = list(at_risk_times)
    if group is None:
        curves = [(ALL, data)]
    else:
        labels = data[group].astype(str)
        curves = [(level, data[labels == level]) for level in group_levels(data[group], reference_group)]

    table_height = 0.35 * (len(curves) + 1)
    figure = Figure(figsize=(8, 5 + table_height), dpi=120)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 1, height_ratios=[5, table_height], hspace=0.35)
    axes = figure.add_subplot(grid[0])
    table = figure.add_subplot(grid[1], sharex=axes)

    colors = [f"C{i}" for i in range(len(curves))]
    for (label, rows), color in zip(curves, colors):
        fitter = fit_km(rows[time], rows[event], None if weights is None else rows[weights], label=label)
        curve = fitter.survival_function_.iloc[:, 0]
        band = fitter.confidence_interval_
        n_text = count_text(label, None, len(rows)) if count_text is not None else small_cell(len(rows), suppress_small)
        axes.step(curve.index, curve.to_numpy(), where="post", color=color, label=f"{label} (n={n_text})")
        axes.fill_between(band.index, band.iloc[:, 0].to_numpy(), band.iloc[:, 1].to_numpy(), step="post",
                          color=color, alpha=0.2, linewidth=0)
    axes.set_ylim(0, 1.02)
    axes.set_xlim(0, max(at_risk_times[-1], float(data[time].max())) * 1.02 or 1)
    axes.set_xticks(at_risk_times)
    axes.set_ylabel("Survival probability")
    axes.set_xlabel(time_label)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", frameon=False, title=group)
    if title:
        axes.set_title(title)

    table.set_ylim(-0.5, len(curves) - 0.5)
    table.invert_yaxis()
    table.set_yticks(range(len(curves)), [label for label, _ in curves])
    for tick, color in zip(table.get_yticklabels(), colors):
        tick.set_color(color)
    # the pad keeps a row's label clear of its count at time 0, which is centred on the axis
    table.tick_params(axis="both", length=0, labelbottom=False)
    table.tick_params(axis="y", pad=28)
    for spine in table.spines.values():
        spine.set_visible(False)
    table.set_title("Number at risk", loc="left", fontsize="medium")
    counts = at_risk_table(data, time, at_risk_times, group=group, reference_group=reference_group,
                           suppress_small=suppress_small, count_text=count_text)
    for row, cells in enumerate(counts.values()):
        for t, cell in zip(at_risk_times, cells):
            table.text(t, row, cell, ha="center", va="center", fontsize="small")
    if notice is None and not suppress_small and count_text is None:
        notice = UNSUPPRESSED_NOTICE
    if notice:
        write_notice(figure, notice)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", bbox_inches="tight")
    return path
