"""The small-cell rule: suppression of every count that leaves the lakehouse (CMS / NCI cell-size rule).

SEER-Medicare's data use agreement forbids showing a count of 1-10 persons, or anything a
reader can work one out from. This module is the one place that rule lives: the threshold
(:data:`SMALL_CELL_MAX`), the predicate (:func:`is_small`), how a suppressed cell is shown
(:data:`SMALL`, :data:`HIDDEN`), what a reader knows of one (:func:`reader_bounds`), the
audiences it applies to and what they are told (:data:`AUDIENCES`, :data:`NOT_FOR_RELEASE`,
:data:`RELEASE_NOTE`, :data:`RULE`), and the suppression itself. Every layer that prints a
count (the quality page, the survival plots, the study report) and the release checker
(:mod:`cohortlake.report.disclosure`) import it; it imports nothing of theirs and no Spark,
so producers and checker cannot drift apart. ``tests/unit/test_disclosure_rule.py`` fails on a
threshold compared anywhere else.

*Primary* suppression: a count of 1-10 persons is shown as ``<11``; 0 stays 0.

*Complementary* suppression: a reader who knows a total can subtract the shown cells
from it. Counts are therefore registered together with the sums a reader can form
(:class:`Group`: members adding up to a total), and while some group has exactly one
cell the reader cannot see, and that cell must be protected, the smallest non-zero
shown member of the group is hidden too (shown as ``*``), the total only when no member
is left. This runs until stable across all groups, rows and columns alike. Which cell
goes is a choice by cost: each cell has a :class:`Priority` and the lowest goes first
(then members before the total, then the smallest count). Ordinary counts go first,
then *keep* cells (the cohort's size), then *denominators* (an arm's N before matching,
the denominator of a column of percentages), and the *headline* figures last (each
arm's N after matching, its deaths): a few unmatched persons hide the arm's N before
matching, not the matched N that the balance table, the Love plot and the estimates
stand on.

The one-unknown rule alone still leaks through the bounds a reader knows: ``<11`` is
1-10, and a complementary ``*`` is at least 11 (it was not small, and zeros are shown),
so a row ``<11 + * = 12`` gives 1 and 11; so do two ``<11`` adding up to 2, and sums
that run over several groups at once. After the rule, the smallest and largest value a
reader can give every protected cell is computed (a linear programme over all groups);
a small cell pinned to one whole number gets another complementary cell, in one of its
groups or else the nearest group linked to it through suppressed cells, and the rule
runs again.

Cells a table does not print but a reader can derive (the persons *without* a 0/1
covariate, N minus the persons with it) are registered as *unpublished*: they hide
nothing from the reader's arithmetic on their own, yet must be protected when small.

Percentages are shown only when both their count and their denominator are shown.

All of this is for what leaves the secure environment (the *release* audience). The
analyst's own view inside it shows every count: ``Cells(rule=False)``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

import numpy as np

SMALL_CELL_MAX = 10
"""The largest count that must not be shown: 1-10 persons are small; 0 is shown."""
SMALLEST_SHOWN = SMALL_CELL_MAX + 1
"""The smallest non-zero count shown as counted."""
SMALL = f"<{SMALLEST_SHOWN}"
"""How a count of 1-10 is shown."""
HIDDEN = "*"
"""How a count hidden by complementary suppression is shown."""
RULE = (f"Counts of 1-{SMALL_CELL_MAX} persons are shown as {SMALL}. Where a reader could work such a count out "
        f"from a total and the other cells, further cells are hidden as {HIDDEN} (complementary suppression). "
        f"Percentages of a hidden count, or of a hidden denominator, are not shown.")

ANALYST, RELEASE = "analyst", "release"
AUDIENCES = (ANALYST, RELEASE)
"""The analyst's view inside the secure environment (every count) and the set that may leave it."""
NOT_FOR_RELEASE = (f"ANALYST VIEW - NOT FOR RELEASE: contains cells under {SMALLEST_SHOWN} "
                   f"(counts of 1-{SMALL_CELL_MAX} persons); it must not leave the secure environment")
"""Said on every page, plot and table of the analyst view."""
RELEASE_NOTE = (f"Release set: small-cell rule applied (counts of 1-{SMALL_CELL_MAX} shown as {SMALL}, "
                f"complementary cells as {HIDDEN})")


class Status(StrEnum):
    """What the reader sees of a cell."""

    shown = "shown"
    small = "small"
    """1-10: shown as ``<11`` (primary suppression)."""
    hidden = "hidden"
    """Hidden by complementary suppression: shown as ``*``."""
    unpublished = "unpublished"
    """Not printed anywhere, and not small: an unknown to the reader that needs no protection."""
    unpublished_small = "unpublished_small"
    """Not printed anywhere, 1-10: the reader must not be able to derive it."""

    @property
    def suppressed(self) -> bool:
        return self is not Status.shown

    @property
    def protected(self) -> bool:
        return self in (Status.small, Status.hidden, Status.unpublished_small)


class Priority(IntEnum):
    """How late complementary suppression may hide a cell: lowest first."""

    ordinary = 0
    keep = 1
    """A total other figures stand on (the cohort's size)."""
    denominator = 2
    """An arm's N before matching: the denominator of a column of percentages."""
    headline = 3
    """An arm's N after matching, its deaths: the figures the study's results stand on."""


@dataclass(frozen=True)
class Group:
    """Cells whose sum a reader knows: ``total`` (another cell), or a figure published elsewhere (None)."""

    members: tuple[Hashable, ...]
    total: Hashable | None = None

    def __post_init__(self):
        object.__setattr__(self, "members", tuple(self.members))

    @property
    def cells(self) -> tuple[Hashable, ...]:
        return self.members + (() if self.total is None else (self.total,))


def is_small(count) -> bool:
    """True for a count of 1-10 persons."""
    return count is not None and 1 <= count <= SMALL_CELL_MAX


def small_cell(count: int, *, rule: bool = True, whole: bool = True) -> str:
    """A count as it may be published on its own: 1-10 become ``<11``; 0 and 11+ as they are.

    ``rule=False`` is the analyst's view inside the secure environment: every count as
    counted. ``whole`` prints ``int(count)``, as the report's tables always have; the
    survival plot passes ``whole=False`` and prints the count as given, as it always has
    (its counts, persons and numbers at risk, are whole numbers already).
    """
    if rule and is_small(count):
        return SMALL
    return f"{int(count):,}" if whole else f"{count:,}"


def suppress(counts: Mapping[Hashable, int], groups: Iterable[Group],
             unpublished: Iterable[Hashable] = (), keep: Iterable[Hashable] | Mapping[Hashable, int] = ()
             ) -> dict[Hashable, Status]:
    """The status of every cell after primary and complementary suppression.

    ``counts`` are non-negative whole numbers of persons; every cell of a group must be in
    ``counts``. ``unpublished`` cells are never printed (but a reader can derive them).
    ``keep`` cells (denominators of many percentages, such as an arm's N) are hidden only
    when a group offers nothing else; a mapping gives each such cell its :class:`Priority`
    (the higher, the later it is hidden).

    A group whose only protected unknown has no other non-zero cell to hide with (its
    total published elsewhere and every other member 0) stays as it is: the cell then
    equals that published figure, which must be protected where it is published.
    """
    groups = list(groups)
    unpublished = set(unpublished)
    keep = _priorities(keep)
    for group in groups:
        for cell in group.cells:
            if cell not in counts:
                raise KeyError(f"cell {cell!r} of a group has no count")
    status: dict[Hashable, Status] = {}
    for cell, count in counts.items():
        if count is None or count < 0 or int(count) != count:
            raise ValueError(f"cell {cell!r}: a count must be a whole number >= 0, got {count!r}")
        if cell in unpublished:
            status[cell] = Status.unpublished_small if is_small(count) else Status.unpublished
        else:
            status[cell] = Status.small if is_small(count) else Status.shown
    while True:
        _one_unknown_rule(counts, groups, status, keep)
        pinned = _pinned(counts, groups, status)
        if not pinned or not _hide_beside(pinned, counts, groups, status, keep):
            return status


def _priorities(keep) -> dict[Hashable, int]:
    if isinstance(keep, Mapping):
        return {cell: int(priority) for cell, priority in keep.items()}
    return {cell: int(Priority.keep) for cell in keep}


def _candidate(group: Group, counts, status, keep=None) -> Hashable | None:
    """The cell to hide next in a group: the cheapest shown non-zero cell, by priority (lowest
    first), then members before the total, then the smallest count."""
    keep = keep or {}
    options = [(keep.get(c, 0), False, counts[c], i, c) for i, c in enumerate(group.members)
               if status[c] is Status.shown and counts[c] > 0]
    if group.total is not None and status[group.total] is Status.shown and counts[group.total] > 0:
        options.append((keep.get(group.total, 0), True, counts[group.total], len(options), group.total))
    return min(options)[-1] if options else None


def _one_unknown_rule(counts, groups: list[Group], status: dict, keep=None) -> None:
    changed = True
    while changed:
        changed = False
        for group in groups:
            unknown = [c for c in group.cells if status[c].suppressed]
            if len(unknown) == 1 and status[unknown[0]].protected:
                cell = _candidate(group, counts, status, keep)
                if cell is not None:
                    status[cell] = Status.hidden
                    changed = True


def reader_range(counts: Mapping[Hashable, int], groups: Sequence[Group], status: Mapping[Hashable, Status],
                 cells: Iterable[Hashable] | None = None) -> dict[Hashable, tuple[float, float]]:
    """The smallest and largest value a reader can give each suppressed cell (default: every protected one).

    The reader knows every shown count, every group's sum, that ``<11`` is 1-10, that
    ``*`` is at least 11 (a hidden cell was non-zero and not small) and that an
    unpublished cell is >= 0 (not that it is small). Each range is a linear programme
    over the suppressed cells (scipy's HiGHS), so sums that involve several groups at
    once count as well; the upper end is ``inf`` when unbounded.
    """
    unknown = [cell for cell in counts if status[cell].suppressed]
    if cells is None:
        cells = [cell for cell in unknown if status[cell].protected]
    known = {cell: count for cell, count in counts.items() if not status[cell].suppressed}
    bounds = {cell: reader_bounds(status[cell]) for cell in unknown}
    return linear_ranges(known, bounds, group_equations(groups, counts), cells)


def reader_bounds(status: Status) -> tuple[float, float]:
    """What the rule tells a reader of a suppressed cell: ``<11`` is 1-10, ``*`` at least 11, else >= 0."""
    if status is Status.small:
        return (1, SMALL_CELL_MAX)
    if status is Status.hidden:
        return (SMALLEST_SHOWN, math.inf)
    return (0, math.inf)


def group_equations(groups: Iterable[Group], counts: Mapping[Hashable, int] | None = None) -> list[tuple[dict, float]]:
    """Each group as ``({cell: coefficient}, right-hand side)``: members minus total = 0; a group
    without a total cell sums to its published figure (taken from ``counts``)."""
    equations = []
    for group in groups:
        terms: dict = {}
        for cell in group.members:
            terms[cell] = terms.get(cell, 0.0) + 1.0
        if group.total is None:
            value = float(sum(counts[cell] for cell in group.members))
        else:
            terms[group.total] = terms.get(group.total, 0.0) - 1.0
            value = 0.0
        equations.append((terms, value))
    return equations


def linear_ranges(known: Mapping[Hashable, float], bounds: Mapping[Hashable, tuple[float, float]],
                  equations: Iterable[tuple[Mapping[Hashable, float], float]], cells: Iterable[Hashable],
                  orders: Iterable[tuple[Hashable, Hashable]] = ()) -> dict[Hashable, tuple[float, float]]:
    """The smallest and largest value of each of ``cells`` (unknowns of ``bounds``) that a reader
    can give it: linear programmes over the unknowns, with the ``known`` values, the equations
    (``{cell: coefficient}``, sum) and ``orders`` (``(a, b)``: a >= b). Raises ValueError when
    what is known contradicts itself (no value fits)."""
    from scipy.optimize import linprog

    cells = list(cells)
    if not cells:
        return {}
    unknown = list(bounds)
    position = {cell: i for i, cell in enumerate(unknown)}

    def row_of(terms) -> tuple[np.ndarray, float]:
        row, constant = np.zeros(len(unknown)), 0.0
        for cell, coefficient in terms.items():
            if cell in position:
                row[position[cell]] += coefficient
            else:
                constant += coefficient * known[cell]
        return row, constant

    rows, sums = [], []
    for terms, value in equations:
        row, constant = row_of(terms)
        if row.any():
            rows.append(row)
            sums.append(value - constant)
        elif abs(value - constant) > 1e-6:
            raise ValueError(f"the published figures contradict one another: {dict(terms)} should sum to {value:g}")
    upper, limits = [], []
    for larger, smaller in orders:
        row, constant = row_of({smaller: 1.0, larger: -1.0})
        if row.any():
            upper.append(row)
            limits.append(-constant)
    options = {}
    if rows:
        options.update(A_eq=np.array(rows), b_eq=np.array(sums))
    if upper:
        options.update(A_ub=np.array(upper), b_ub=np.array(limits))
    box = [(bounds[cell][0], None if math.isinf(bounds[cell][1]) else bounds[cell][1]) for cell in unknown]
    ranges = {}
    for cell in cells:
        if cell not in position:
            ranges[cell] = (float(known[cell]), float(known[cell]))
            continue
        objective = np.zeros(len(unknown))
        objective[position[cell]] = 1.0
        low = linprog(objective, bounds=box, method="highs", **options)
        if low.status == 2:
            raise ValueError("the published figures contradict one another (no count fits them all)")
        high = linprog(-objective, bounds=box, method="highs", **options)
        if low.status != 0 or high.status not in (0, 3):
            raise RuntimeError(f"the reader's range of cell {cell!r} could not be computed ({low.message})")
        ranges[cell] = (float(low.fun), math.inf if high.status == 3 else float(-high.fun))
    return ranges


def _pinned(counts, groups: list[Group], status: dict) -> list[Hashable]:
    """Small cells (shown as ``<11`` or unpublished) a reader can pin down to one whole number.

    A complementary cell pinned to its value is no disclosure in itself (it is not small);
    it only matters through the small cells it then pins, and those are checked.
    """
    grouped = {cell for group in groups for cell in group.cells}
    small = [cell for cell, state in status.items()
             if state in (Status.small, Status.unpublished_small) and cell in grouped]
    pinned = []
    for cell, (low, high) in reader_range(counts, groups, status, small).items():
        if math.isfinite(high) and math.floor(high + 1e-7) <= math.ceil(low - 1e-7):
            pinned.append(cell)
    return pinned


def _hide_beside(pinned: list[Hashable], counts, groups: list[Group], status: dict, keep=None) -> bool:
    """Hide one more cell near the first pinned cell that has one; False when none has.

    Nearest first: a candidate of a group holding the pinned cell, else of a group reached
    from it through suppressed cells (the sums that pin it), level by level.
    """
    for cell in pinned:
        reached, frontier, seen = {cell}, [cell], set()
        while frontier:
            level = [i for i, group in enumerate(groups) if i not in seen
                     and any(c in group.cells for c in frontier)]
            seen.update(level)
            options = [candidate for i in level for candidate in [_candidate(groups[i], counts, status, keep)]
                       if candidate is not None]
            if options:
                status[min(options, key=lambda c: ((keep or {}).get(c, 0), counts[c]))] = Status.hidden
                return True
            frontier = [c for i in level for c in groups[i].cells if status[c].suppressed and c not in reached]
            reached.update(frontier)
    return False


def count_text(count, status: Status) -> str:
    """A count as printed: the number, ``<11`` or ``*``."""
    if status is Status.small:
        return SMALL
    if status.suppressed:
        return HIDDEN
    return f"{int(count):,}"


def percent_text(count, denominator, count_status: Status = Status.shown,
                 denominator_status: Status = Status.shown, digits: int = 1) -> str:
    """``12.5%``, or "" when the count or the denominator is suppressed (or the denominator is 0)."""
    if count_status.suppressed or denominator_status.suppressed or not denominator:
        return ""
    return f"{100.0 * count / denominator:.{digits}f}%"


def count_percent_text(count, denominator, count_status: Status = Status.shown,
                       denominator_status: Status = Status.shown, digits: int = 1) -> str:
    """``n (p%)`` as in a Table 1; the percentage left out when it would uncover a suppressed count."""
    percent = percent_text(count, denominator, count_status, denominator_status, digits)
    text = count_text(count, count_status)
    return f"{text} ({percent})" if percent else text


def grid_groups(n_rows: int, n_columns: int, row_totals: bool = True,
                column_totals: bool = True) -> tuple[list[tuple], list[Group]]:
    """Cell keys and groups of a table with margins: ``(i, j)``, ``("row", i)``, ``("column", j)``, ``("total",)``."""
    keys = [(i, j) for i in range(n_rows) for j in range(n_columns)]
    groups = []
    if row_totals:
        keys += [("row", i) for i in range(n_rows)]
        groups += [Group([(i, j) for j in range(n_columns)], ("row", i)) for i in range(n_rows)]
    if column_totals:
        keys += [("column", j) for j in range(n_columns)]
        groups += [Group([(i, j) for i in range(n_rows)], ("column", j)) for j in range(n_columns)]
    if row_totals and column_totals:
        keys.append(("total",))
        groups += [Group([("row", i) for i in range(n_rows)], ("total",)),
                   Group([("column", j) for j in range(n_columns)], ("total",))]
    return keys, groups


@dataclass(frozen=True)
class GridSuppression:
    """A table of counts and its margins after suppression, as statuses and as printed text."""

    counts: dict
    status: dict

    def text(self, key) -> str:
        return count_text(self.counts[key], self.status[key])


def suppress_grid(grid: Sequence[Sequence[int]], row_totals: bool = True,
                  column_totals: bool = True) -> GridSuppression:
    """Suppress a rows-by-columns table of counts whose row and/or column totals are shown."""
    rows = [list(row) for row in grid]
    n_rows, n_columns = len(rows), len(rows[0]) if rows else 0
    if any(len(row) != n_columns for row in rows):
        raise ValueError("every row of the table needs the same number of cells")
    keys, groups = grid_groups(n_rows, n_columns, row_totals, column_totals)
    counts = {(i, j): int(rows[i][j]) for i in range(n_rows) for j in range(n_columns)}
    for key in keys:
        if key[0] == "row":
            counts[key] = sum(rows[key[1]])
        elif key[0] == "column":
            counts[key] = sum(row[key[1]] for row in rows)
        elif key == ("total",):
            counts[key] = sum(map(sum, rows))
    return GridSuppression(counts, suppress(counts, groups))


class Cells:
    """Every count one report publishes, with the sums a reader can form, suppressed jointly.

    Register counts (:meth:`add`) and groups (:meth:`group`) from every table first, then
    read text (:meth:`text`, :meth:`count_percent`): the first read suppresses once over
    all of them, so a count printed in two tables is the same cell in both.
    """

    def __init__(self, rule: bool = True):
        self.rule = rule
        """False for the analyst's view inside the secure environment: every count shown."""
        self.counts: dict[Hashable, int] = {}
        self.groups: list[Group] = []
        self.unpublished: set[Hashable] = set()
        self._published: set[Hashable] = set()
        self.keep: dict[Hashable, int] = {}
        self._status: dict[Hashable, Status] | None = None

    def add(self, key: Hashable, count, *, published: bool = True, keep: bool | Priority = False) -> Hashable:
        """Register a count under ``key`` (registering the same key twice needs the same count).

        ``keep``: a denominator or total that many other figures depend on; complementary
        suppression hides it only when a group offers no other cell. ``True`` is
        :attr:`Priority.keep`; a :class:`Priority` says how late it may go (the highest
        given for a key counts).
        """
        if self._status is not None:
            raise RuntimeError("cells were already suppressed; register every count before reading text")
        value = float(count)
        if not value.is_integer() or value < 0:
            raise ValueError(f"cell {key!r}: a count must be a whole number >= 0, got {count!r}")
        count = int(value)
        if key in self.counts and self.counts[key] != count:
            raise ValueError(f"cell {key!r} registered as {self.counts[key]} and as {count}")
        self.counts[key] = count
        if published:
            self._published.add(key)
            self.unpublished.discard(key)
        elif key not in self._published:
            self.unpublished.add(key)
        if keep:
            priority = int(Priority.keep if keep is True else keep)
            self.keep[key] = max(priority, self.keep.get(key, 0))
        return key

    def group(self, members: Iterable[Hashable], total: Hashable | None = None) -> None:
        if self._status is not None:
            raise RuntimeError("cells were already suppressed; register every group before reading text")
        self.groups.append(Group(members, total))

    @property
    def status(self) -> dict[Hashable, Status]:
        if self._status is None:
            if self.rule:
                self._status = suppress(self.counts, self.groups, self.unpublished, self.keep)
            else:
                self._status = {key: Status.unpublished if key in self.unpublished else Status.shown
                                for key in self.counts}
        return self._status

    def __contains__(self, key) -> bool:
        return key in self.counts

    def text(self, key) -> str:
        return count_text(self.counts[key], self.status[key])

    def suppressed(self, key) -> bool:
        return self.status[key].suppressed

    def small(self, key) -> bool:
        return self.status[key] is Status.small

    def percent(self, key, denominator_key, digits: int = 1) -> str:
        return percent_text(self.counts[key], self.counts[denominator_key], self.status[key],
                            self.status[denominator_key], digits)

    def count_percent(self, key, denominator_key, digits: int = 1) -> str:
        return count_percent_text(self.counts[key], self.counts[denominator_key], self.status[key],
                                  self.status[denominator_key], digits)
