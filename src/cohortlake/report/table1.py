"""Table 1: baseline covariates by arm, before matching (all cohort persons, unweighted) and
after matching (matched persons, weighted by their match weight).

Continuous covariates: mean (SD), and median [IQR] for those asked (age); 0/1 covariates
and each level of a categorical one: n (%). The SMD of every row comes from
``matching.balance_table`` over the whole cohort with the match weights (0 for persons
not matched), exactly as the matching step computes ``balance.csv``, so the two agree.

Counts are numbers of persons and go through :mod:`cohortlake.cells`: each
categorical covariate's levels add up to the arm's N, and a 0/1 covariate's persons
without it (N - n, never printed but derivable) are registered as unpublished cells.
After matching with weights other than 1 the printed n is the sum of weights, while
suppression is decided on the persons behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cohortlake.cells import Cells, Priority, Status, group_equations, reader_bounds
from cohortlake.errors import UserError
from cohortlake.matching.balance import balance_table, weighted_variance
from cohortlake.matching.ps import design_matrix
from cohortlake.report import formats
from cohortlake.report.disclosure import SMD_DIGITS, Reader, smd_relation

PHASES = ("cohort", "matched")
"""Before matching (every cohort person) and after matching (matched persons, weighted)."""
NOT_SHOWN = "–"
"""A mean or median of an arm of 1-10 persons; the SMD of a row with a suppressed count."""


def arm_n_key(phase: str, arm: str) -> tuple:
    """The cell of an arm's number of persons, shared by every table that prints it."""
    return ("arm_n", phase, arm)


@dataclass
class SmdDisplay:
    """Which SMDs of count rows a report prints, and with how many decimals per phase."""

    visible: set = field(default_factory=set)
    """(phase, balance column) of the count rows whose SMD is printed."""
    digits: dict = field(default_factory=dict)
    """phase → decimals, when not :data:`SMD_DIGITS`."""

    def shows(self, phase: str, column: str) -> bool:
        return (phase, column) in self.visible

    def text(self, phase: str, value) -> str:
        return formats.smd(value, self.digits.get(phase, SMD_DIGITS))


@dataclass
class Summary:
    """One covariate row's figures in one arm and phase."""

    persons: int | None = None
    """Persons with the level / value 1 (count rows)."""
    weighted: float | None = None
    """Sum of weights of those persons (count rows; = persons before matching)."""
    denominator: float | None = None
    """Sum of weights of the arm (count rows' percentage denominator)."""
    mean: float | None = None
    sd: float | None = None
    median: float | None = None
    q25: float | None = None
    q75: float | None = None

    @property
    def share(self) -> float | None:
        return None if not self.denominator else self.weighted / self.denominator


@dataclass
class Table1Row:
    """A row: a categorical covariate's heading, a level, a 0/1 covariate, or a continuous statistic."""

    label: str
    covariate: str
    kind: str
    """``heading``, ``count`` (n (%)), ``mean_sd`` or ``median_iqr``."""
    balance_column: str | None = None
    indent: bool = False
    cell: dict[tuple[str, str], Summary] = field(default_factory=dict)
    """(phase, arm) → figures."""
    smd: dict[str, float | None] = field(default_factory=dict)
    """phase → SMD of the row (mean rows and count rows)."""


@dataclass
class Table1:
    """Table 1 of one cohort: rows, arm sizes and SMDs, before and after matching."""

    arms: tuple[str, str]
    """(treated, control), in column order."""
    rows: list[Table1Row]
    n: dict[tuple[str, str], int]
    """(phase, arm) → persons."""
    weighted_n: dict[tuple[str, str], float]
    balance: pd.DataFrame
    """``balance_table`` output over the whole cohort with the match weights."""
    matched: bool
    """False when there is no matched sample (then only the "cohort" phase is filled)."""
    weighted: bool
    """True when some matched person's weight is not 1 (printed n are then sums of weights)."""
    phases: tuple[str, ...] = PHASES
    denominator: str = "pooled"
    """The SMD denominator (``pooled`` or ``treated``), as balance_table was given it."""

    def row(self, covariate: str, level: str | None = None, kind: str | None = None) -> Table1Row:
        """The row of a covariate (a level of it, or one statistic), for tests and readers."""
        for row in self.rows:
            if row.covariate != covariate or row.kind == "heading":
                continue
            if level is not None and row.balance_column != f"{covariate}={level}":
                continue
            if kind is not None and row.kind != kind:
                continue
            return row
        raise KeyError((covariate, level, kind))

    def register(self, cells: Cells) -> None:
        """Register every count of the table and the sums a reader can form from it."""
        for phase in self._phases():
            for arm in self.arms:
                # the matched N is a headline figure; the N before matching goes first when one must
                priority = Priority.headline if phase == "matched" else Priority.denominator
                cells.add(arm_n_key(phase, arm), self.n[(phase, arm)], keep=priority)
        for row_group in self._count_groups():
            for phase in self._phases():
                for arm in self.arms:
                    members = []
                    for row in row_group:
                        key = _count_key(phase, arm, row.balance_column)
                        cells.add(key, row.cell[(phase, arm)].persons)
                        members.append(key)
                    if len(row_group) == 1:  # a 0/1 covariate: the persons without it are derivable
                        row = row_group[0]
                        without = _count_key(phase, arm, row.balance_column, without=True)
                        cells.add(without, self.n[(phase, arm)] - row.cell[(phase, arm)].persons, published=False)
                        members.append(without)
                    cells.group(members, arm_n_key(phase, arm))

    def _phases(self) -> tuple[str, ...]:
        return self.phases if self.matched else self.phases[:1]

    def _count_groups(self) -> list[list[Table1Row]]:
        groups: dict[str, list[Table1Row]] = {}
        for row in self.rows:
            if row.kind == "count":
                groups.setdefault(row.covariate, []).append(row)
        return list(groups.values())

    def text_rows(self, cells: Cells, display: SmdDisplay | None = None) -> list[dict]:
        """The rows as printed: label, indent, and per phase the treated, control and SMD text.

        ``display``: which SMDs of count rows are printed and with how many decimals
        (:meth:`smd_display`); worked out here when not given."""
        if display is None:
            display = self.smd_display(cells)
        out = [{"label": "N (persons)", "indent": False, "kind": "n",
                "phases": {phase: [self._n_text(cells, phase, arm) for arm in self.arms] + [""]
                           for phase in self._phases()}}]
        for row in self.rows:
            phases, smd_values = {}, {}
            for phase in self._phases():
                texts = [self._cell_text(cells, row, phase, arm) for arm in self.arms]
                value = row.smd.get(phase)
                hide = row.kind == "count" and not display.shows(phase, row.balance_column) and _finite(value)
                smd_values[phase] = None if hide else value
                phases[phase] = texts + [NOT_SHOWN if hide else display.text(phase, value)]
            out.append({"label": row.label, "indent": row.indent, "kind": row.kind, "phases": phases,
                        "covariate": row.covariate, "balance_column": row.balance_column,
                        "smd_values": smd_values})
        return out

    def smd_suppressed(self, cells: Cells, column: str, phase: str) -> bool:
        """True when the SMD of a count row must not be printed (see :meth:`smd_display`)."""
        keys = [_count_key(phase, arm, column) for arm in self.arms]
        if not any(key in cells for key in keys):
            return False  # not a count row
        return not self.smd_display(cells).shows(phase, column)

    def smd_relation(self, phase: str, column: str, value: float, digits: int = SMD_DIGITS):
        """The SMD of a count row, printed with ``digits`` decimals, as a reader's equation in its
        counts and arm sizes."""
        treated, control = self.arms
        before = (_count_key("cohort", treated, column), _count_key("cohort", control, column),
                  arm_n_key("cohort", treated), arm_n_key("cohort", control))
        after = None
        if phase == "matched":
            after = (_count_key("matched", treated, column), _count_key("matched", control, column),
                     arm_n_key("matched", treated), arm_n_key("matched", control))
        return smd_relation(f"SMD {'after' if after else 'before'} matching of {column}",
                            float(formats.smd(value, digits)), before, after, str(self.denominator), digits)

    def smd_display(self, cells: Cells) -> SmdDisplay:
        """Which SMDs of count rows are printed, and with how many decimals in each phase.

        A 0/1 column's SMD is a function of the two arms' counts and sizes (its denominator
        comes from the shares before matching): printed, it narrows a suppressed count among
        them, to within a person or two with three decimals. The release set prints an SMD
        unless a reader who knows every other printed figure could then pin a small count
        (or one never printed, such as the unmatched persons) to one number; when three
        decimals would, a phase's SMDs are printed with two, and only those that would give
        a count away even then are left out. After-matching SMDs are tried first, so they
        stay when only one phase can. Weighted after-matching SMDs are not counts over
        sizes: they are printed when all their counts are shown.
        """
        cached = getattr(self, "_display", None)
        if cached is not None and cached[0] is cells:
            return cached[1]
        display = SmdDisplay()
        trials = {"matched": [], "cohort": []}
        for row in self.rows:
            if row.kind != "count":
                continue
            for phase in self._phases():
                if _finite(row.smd.get(phase)) is None:
                    continue
                relation = self.smd_relation(phase, row.balance_column, row.smd[phase])
                if not cells.rule or all(not cells.suppressed(cell) for cell in relation.cells):
                    display.visible.add((phase, row.balance_column))
                elif not (phase == "matched" and self.weighted):
                    trials[phase].append(row)
        if trials["matched"] or trials["cohort"]:
            status = cells.status
            known = {cell: count for cell, count in cells.counts.items() if not status[cell].suppressed}
            bounds = {cell: reader_bounds(status[cell]) for cell in cells.counts if status[cell].suppressed}
            equations = group_equations(cells.groups, cells.counts)
            protected = [cell for cell in bounds if status[cell] in (Status.small, Status.unpublished_small)]
            accepted: list = []

            def safe(relations) -> bool:
                return not Reader(known, bounds, equations, accepted + relations).small_pinned(protected)

            for phase in ("matched", "cohort"):
                rows = trials[phase]
                if not rows:
                    continue
                chosen = None
                for digits in (SMD_DIGITS, SMD_DIGITS - 1):
                    relations = [self.smd_relation(phase, row.balance_column, row.smd[phase], digits) for row in rows]
                    if safe(relations):
                        chosen = list(zip(rows, relations))
                        break
                if chosen is None:
                    chosen = []
                    for row in rows:
                        relation = self.smd_relation(phase, row.balance_column, row.smd[phase], digits)
                        if safe([r for _, r in chosen] + [relation]):
                            chosen.append((row, relation))
                display.digits[phase] = digits
                accepted += [relation for _, relation in chosen]
                display.visible.update((phase, row.balance_column) for row, _ in chosen)
        self._display = (cells, display)
        return display

    def _n_text(self, cells: Cells, phase: str, arm: str) -> str:
        key = arm_n_key(phase, arm)
        if phase == "matched" and self.weighted and not cells.suppressed(key):
            return f"{cells.text(key)} ({formats.weighted_count(self.weighted_n[(phase, arm)])} weighted)"
        return cells.text(key)

    def _cell_text(self, cells: Cells, row: Table1Row, phase: str, arm: str) -> str:
        if row.kind == "heading":
            return ""
        summary = row.cell[(phase, arm)]
        if row.kind == "count":
            key = _count_key(phase, arm, row.balance_column)
            if cells.suppressed(key):
                return cells.text(key)
            n_key = arm_n_key(phase, arm)
            count = cells.text(key) if not (phase == "matched" and self.weighted) \
                else formats.weighted_count(summary.weighted)
            if cells.suppressed(n_key) or summary.share is None:
                return count
            return f"{count} ({formats.percent(summary.share)})"
        if cells.small(arm_n_key(phase, arm)) or self.n[(phase, arm)] == 0:
            return NOT_SHOWN
        plain = formats.year_like(row.covariate)  # 2009.5, not 2,009.5
        if row.kind == "mean_sd":
            return f"{_stat(summary.mean, plain)} ({_stat(summary.sd)})"
        return f"{_stat(summary.median, plain)} [{_stat(summary.q25, plain)}-{_stat(summary.q75, plain)}]"


def _count_key(phase: str, arm: str, column: str, without: bool = False) -> tuple:
    return ("table1", phase, arm, column, "without") if without else ("table1", phase, arm, column)


def _stat(value, plain: bool = False) -> str:
    return formats.number(value, 1, grouping=not plain)


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def weighted_quantiles(x, w, qs: Sequence[float]) -> list[float]:
    """Quantiles of ``x`` with weights ``w``: numpy's linear quantiles when all weights are equal,
    else the inverted weighted CDF (the smallest x whose cumulative weight share reaches q)."""
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    keep = w > 0
    x, w = x[keep], w[keep]
    if len(x) == 0:
        return [float("nan")] * len(qs)
    if np.allclose(w, w[0]):
        return [float(v) for v in np.quantile(x, qs)]
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    cumulative = np.cumsum(w) / w.sum()
    return [float(x[min(np.searchsorted(cumulative, q - 1e-12, side="left"), len(x) - 1)]) for q in qs]


def match_weights(cohort: pd.DataFrame, matched: pd.DataFrame | None, person: str = "person_id") -> np.ndarray | None:
    """Each cohort person's match weight (0 for persons not in the matched sample), in cohort order."""
    if matched is None:
        return None
    for frame, name in ((cohort, "cohort.parquet"), (matched, "matched.parquet")):
        if person not in frame.columns:
            raise UserError(f"{name} has no '{person}' column")
    if "weight" not in matched.columns:
        raise UserError("matched.parquet has no 'weight' column")
    ids = matched[person].astype(str)
    unknown = sorted(set(ids) - set(cohort[person].astype(str)))
    if unknown:
        raise UserError(f"matched.parquet has {len(unknown)} person(s) not in cohort.parquet "
                        f"(first: {unknown[0]}): the two files are not from the same run")
    weights = matched.assign(_id=ids).groupby("_id")["weight"].sum()
    return cohort[person].astype(str).map(weights).fillna(0.0).to_numpy(dtype=float)


def build_table1(cohort: pd.DataFrame, matched: pd.DataFrame | None, covariates: Sequence[str],
                 treatment: tuple[str, str], *, arm_column: str = "arm", person: str = "person_id",
                 median_covariates: Sequence[str] = ("age",),
                 denominator: str = "pooled") -> Table1:
    """Table 1 of ``cohort`` by ``arm_column`` (treated, control) before and after matching."""
    treated_arm, control_arm = (str(a) for a in treatment)
    if arm_column not in cohort.columns:
        raise UserError(f"cohort.parquet has no '{arm_column}' column")
    labels = cohort[arm_column].astype(str)
    present = sorted(labels.unique())
    for arm in (treated_arm, control_arm):
        if arm not in present:
            raise UserError(f"arm '{arm}' has no persons in cohort.parquet (arms: {', '.join(present)})")
    cohort = cohort[labels.isin([treated_arm, control_arm])].reset_index(drop=True)
    treated = (cohort[arm_column].astype(str) == treated_arm).to_numpy()
    weight = match_weights(cohort, matched, person)
    design = design_matrix(cohort, covariates)
    balance = balance_table(design.balance, treated, weight, denominator)
    smd = {"cohort": dict(zip(balance["covariate"], balance["smd_before"])),
           "matched": dict(zip(balance["covariate"], balance["smd_after"]))}

    arms = (treated_arm, control_arm)
    in_arm = {treated_arm: treated, control_arm: ~treated}
    phase_weights = {"cohort": np.ones(len(cohort))}
    if weight is not None:
        phase_weights["matched"] = weight

    def masks(phase: str, arm: str) -> tuple[np.ndarray, np.ndarray]:
        w = phase_weights[phase]
        rows = in_arm[arm] & (w > 0)
        return rows, w[rows]

    n = {(phase, arm): int(masks(phase, arm)[0].sum()) for phase in phase_weights for arm in arms}
    weighted_n = {(phase, arm): float(masks(phase, arm)[1].sum()) for phase in phase_weights for arm in arms}
    rows: list[Table1Row] = []
    for covariate in covariates:
        columns = design.columns_of[covariate]
        categorical = covariate in design.reference
        if categorical:
            rows.append(Table1Row(covariate, covariate, "heading"))
        for column in columns:
            values = design.balance[column].to_numpy(dtype=float)
            if categorical or _is_binary(values):
                label = column.split("=", 1)[1] if categorical else covariate
                row = Table1Row(label, covariate, "count", column, indent=categorical)
                for phase in phase_weights:
                    for arm in arms:
                        rows_in, w = masks(phase, arm)
                        has = values[rows_in] == 1.0
                        row.cell[(phase, arm)] = Summary(persons=int(has.sum()), weighted=float(w[has].sum()),
                                                         denominator=float(w.sum()))
                    row.smd[phase] = smd[phase].get(column)
                rows.append(row)
                continue
            mean_row = Table1Row(f"{covariate}, mean (SD)", covariate, "mean_sd", column)
            median_row = Table1Row(f"{covariate}, median [IQR]", covariate, "median_iqr", column, indent=False)
            for phase in phase_weights:
                for arm in arms:
                    rows_in, w = masks(phase, arm)
                    x = values[rows_in]
                    mean = float(np.average(x, weights=w)) if len(x) else float("nan")
                    sd = float(np.sqrt(weighted_variance(x, w, binary=False))) if len(x) > 1 else float("nan")
                    q25, median, q75 = weighted_quantiles(x, w, (0.25, 0.5, 0.75))
                    mean_row.cell[(phase, arm)] = Summary(mean=mean, sd=sd)
                    median_row.cell[(phase, arm)] = Summary(median=median, q25=q25, q75=q75)
                mean_row.smd[phase] = smd[phase].get(column)
            rows.append(mean_row)
            if covariate in median_covariates:
                rows.append(median_row)
    weighted = weight is not None and not np.allclose(weight[weight > 0], 1.0)
    return Table1(arms=arms, rows=rows, n=n, weighted_n=weighted_n, balance=balance,
                  matched=weight is not None, weighted=bool(weighted), denominator=str(denominator))
