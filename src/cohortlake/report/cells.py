"""Small-cell suppression of every count that leaves the lakehouse (CMS / NCI cell-size rule).

*Primary* suppression: a count of 1-10 persons is shown as ``<11``; 0 stays 0.

*Complementary* suppression: a reader who knows a total can subtract the shown cells
from it. Counts are therefore registered together with the sums a reader can form
(:class:`Group`: members adding up to a total), and while some group has exactly one
cell the reader cannot see, and that cell must be protected, the smallest non-zero
shown member of the group is hidden too (shown as ``*``), the total only when no member
is left. This runs until stable across all groups, rows and columns alike. Cells marked
*keep* (an arm's N, the denominator of a whole column of percentages) are passed over
while a group has another cell to hide.

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
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

SMALL_CELL_MAX = 10
SMALL = f"<{SMALL_CELL_MAX + 1}"
"""How a count of 1-10 is shown."""
HIDDEN = "*"
"""How a count hidden by complementary suppression is shown."""
RULE = (f"Counts of 1-{SMALL_CELL_MAX} persons are shown as {SMALL}. Where a reader could work such a count out "
        f"from a total and the other cells, further cells are hidden as {HIDDEN} (complementary suppression). "
        f"Percentages of a hidden count, or of a hidden denominator, are not shown.")


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


def small_cell(count: int) -> str:
    """A count as it may be published on its own: 1-10 become ``<11``; 0 and 11+ as they are."""
    return SMALL if is_small(count) else f"{int(count):,}"


def suppress(counts: Mapping[Hashable, int], groups: Iterable[Group],
             unpublished: Iterable[Hashable] = (), keep: Iterable[Hashable] = ()) -> dict[Hashable, Status]:
    """The status of every cell after primary and complementary suppression.

    ``counts`` are non-negative whole numbers of persons; every cell of a group must be in
    ``counts``. ``unpublished`` cells are never printed (but a reader can derive them).
    ``keep`` cells (denominators of many percentages, such as an arm's N) are hidden only
    when a group offers nothing else.

    A group whose only protected unknown has no other non-zero cell to hide with (its
    total published elsewhere and every other member 0) stays as it is: the cell then
    equals that published figure, which must be protected where it is published.
    """
    groups = list(groups)
    unpublished = set(unpublished)
    keep = frozenset(keep)
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


def _candidate(group: Group, counts, status, keep=frozenset()) -> Hashable | None:
    """The cell to hide next in a group: its smallest non-zero shown member, else its shown total;
    cells to keep come last."""
    options = [(c in keep, False, counts[c], i, c) for i, c in enumerate(group.members)
               if status[c] is Status.shown and counts[c] > 0]
    if group.total is not None and status[group.total] is Status.shown and counts[group.total] > 0:
        options.append((group.total in keep, True, counts[group.total], len(options), group.total))
    return min(options)[-1] if options else None


def _one_unknown_rule(counts, groups: list[Group], status: dict, keep=frozenset()) -> None:
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
    from scipy.optimize import linprog

    unknown = [cell for cell in counts if status[cell].suppressed]
    if cells is None:
        cells = [cell for cell in unknown if status[cell].protected]
    cells = list(cells)
    if not cells:
        return {}
    position = {cell: i for i, cell in enumerate(unknown)}
    rows, sums = [], []
    for group in groups:
        row = np.zeros(len(unknown))
        value = 0.0
        terms = [(cell, 1.0) for cell in group.members]
        if group.total is None:
            value = float(sum(counts[cell] for cell in group.members))  # published elsewhere
        else:
            terms.append((group.total, -1.0))
        for cell, sign in terms:
            if cell in position:
                row[position[cell]] += sign
            else:
                value -= sign * counts[cell]
        if row.any():
            rows.append(row)
            sums.append(value)
    bounds = [(1, SMALL_CELL_MAX) if status[cell] is Status.small
              else (SMALL_CELL_MAX + 1, None) if status[cell] is Status.hidden else (0, None)
              for cell in unknown]
    equalities = {"A_eq": np.array(rows), "b_eq": np.array(sums)} if rows else {}
    ranges = {}
    for cell in cells:
        objective = np.zeros(len(unknown))
        objective[position[cell]] = 1.0
        low = linprog(objective, bounds=bounds, method="highs", **equalities)
        high = linprog(-objective, bounds=bounds, method="highs", **equalities)
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


def _hide_beside(pinned: list[Hashable], counts, groups: list[Group], status: dict, keep=frozenset()) -> bool:
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
                status[min(options, key=lambda c: (c in keep, counts[c]))] = Status.hidden
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

    def __init__(self):
        self.counts: dict[Hashable, int] = {}
        self.groups: list[Group] = []
        self.unpublished: set[Hashable] = set()
        self._published: set[Hashable] = set()
        self.keep: set[Hashable] = set()
        self._status: dict[Hashable, Status] | None = None

    def add(self, key: Hashable, count, *, published: bool = True, keep: bool = False) -> Hashable:
        """Register a count under ``key`` (registering the same key twice needs the same count).

        ``keep``: a denominator or total that many other figures depend on; complementary
        suppression hides it only when a group offers no other cell.
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
            self.keep.add(key)
        return key

    def group(self, members: Iterable[Hashable], total: Hashable | None = None) -> None:
        if self._status is not None:
            raise RuntimeError("cells were already suppressed; register every group before reading text")
        self.groups.append(Group(members, total))

    @property
    def status(self) -> dict[Hashable, Status]:
        if self._status is None:
            self._status = suppress(self.counts, self.groups, self.unpublished, self.keep)
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
