"""What a reader can work out from a release set, and the checker that proves it shows no
count of 1-10 persons, directly or derived.

A reader of the release set knows every count it prints, the sums they form (the
attrition steps, each arm's levels of a covariate and its N, the arms and the cohort,
matched and unmatched persons, 1:1 pairs), that ``<11`` is 1-10 and ``*`` at least 11,
and the figures printed *as rounded*: a percentage of a count and its denominator
(one decimal), and the standardized mean difference of a 0/1 covariate (three
decimals), which is a function of the two arms' counts and sizes before matching, and
after matching of the matched counts and sizes too. :class:`Reader` gives each unknown
count the range a reader can give it: linear programmes over the sums
(:func:`cohortlake.report.cells.linear_ranges`), narrowed by every rounded figure whose
counts are known but one or two (enumerated: whole numbers within the range for which
the printed figure comes out), until nothing narrows. A small count, or a count never
printed (N minus the persons with a covariate, the unmatched persons), that a reader
can pin to one whole number from 1 to 10 is a leak.

:func:`check_release` builds that reader from the files of a release folder alone
(``study.json`` and the CSV tables the report shows, with ``report.html`` scanned for a
printed 1-10) and names every file and cell that leaks.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from cohortlake.report.cells import HIDDEN, SMALL, SMALL_CELL_MAX, linear_ranges

SMD_DIGITS = 3
"""Decimals of a printed SMD; a release set prints them with fewer when three would give a small count away."""
PERCENT_HALF_WIDTH = 0.05
"""A percentage printed with one decimal lies within this of the printed value."""
ENUMERATION_LIMIT = 2_000_000
"""Most whole-number candidates tried for the unknowns of one rounded figure."""
UNBOUNDED_SPAN = 1_000_000
"""How far above its lower end an unbounded unknown is enumerated."""


@dataclass(frozen=True)
class Relation:
    """A printed, rounded figure that ties counts together: ``holds(values)`` (arrays of the
    cells' values, broadcast) is True where the figure comes out as printed."""

    label: str
    cells: tuple[Hashable, ...]
    holds: Callable[[dict], np.ndarray]


def smd_relation(label: str, printed: float, before: tuple, after: tuple | None = None,
                 denominator: str = "pooled", digits: int = SMD_DIGITS) -> Relation:
    """The SMD of a 0/1 column as printed with ``digits`` decimals. ``before``: the cells
    (n1, n0, N1, N0) of the persons with it and each arm's N before matching (they give the
    denominator); ``after``: (q1, q0, M1, M0) after matching, for an SMD after matching."""
    cells = tuple(before) + (tuple(after) if after is not None else ())
    half_width = 0.5 * 10.0 ** -digits

    def holds(values):
        with np.errstate(divide="ignore", invalid="ignore"):
            n1, n0, big1, big0 = (np.asarray(values[c], dtype=float) for c in before)
            p1, p0 = n1 / big1, n0 / big0
            var1, var0 = p1 * (1 - p1), p0 * (1 - p0)
            pooled = np.sqrt((var1 + var0) / 2)
            scale = np.where(np.sqrt(var1) > 0, np.sqrt(var1), pooled) if denominator == "treated" else pooled
            if after is None:
                difference = p1 - p0
            else:
                q1, q0, m1, m0 = (np.asarray(values[c], dtype=float) for c in after)
                difference = q1 / m1 - q0 / m0
            smd = np.where(scale > 0, difference / scale, np.where(difference == 0, 0.0, np.nan))
            return np.abs(smd - printed) <= half_width + 1e-9

    return Relation(label, cells, holds)


def percent_relation(label: str, printed: float, count: Hashable, denominator: Hashable) -> Relation:
    """``count`` as a percentage of ``denominator``, printed with one decimal."""

    def holds(values):
        with np.errstate(divide="ignore", invalid="ignore"):
            share = 100.0 * np.asarray(values[count], dtype=float) / np.asarray(values[denominator], dtype=float)
            return np.abs(share - printed) <= PERCENT_HALF_WIDTH + 1e-9

    return Relation(label, (count, denominator), holds)


class Reader:
    """What a reader can give each unknown count: ``known`` values, ``bounds`` of the unknowns
    (low, high; high may be inf), linear ``equations`` (``{cell: coefficient}``, sum),
    ``orders`` (a >= b) and rounded ``relations``."""

    def __init__(self, known: Mapping[Hashable, int], bounds: Mapping[Hashable, tuple[float, float]],
                 equations: Iterable[tuple[Mapping, float]] = (), relations: Iterable[Relation] = (),
                 orders: Iterable[tuple[Hashable, Hashable]] = ()):
        self.known = dict(known)
        self.bounds = {cell: (float(low), float(high)) for cell, (low, high) in bounds.items()}
        self.equations = list(equations)
        self.relations = list(relations)
        self.orders = list(orders)
        self._ranges: dict | None = None

    def ranges(self, cells: Iterable[Hashable] | None = None) -> dict[Hashable, tuple[float, float]]:
        """The range of each of ``cells`` (default: every unknown) after the sums and the rounded
        figures have narrowed them."""
        cells = list(self.bounds) if cells is None else [cell for cell in cells if cell in self.bounds]
        if self._ranges is None or any(cell not in self._ranges for cell in cells):
            self._ranges = self._learn(cells)
        return {cell: self._ranges[cell] for cell in cells}

    def pinned(self, cells: Iterable[Hashable] | None = None) -> dict[Hashable, int]:
        """The unknowns (default: all) a reader can pin to one whole number, with that number."""
        ranges = self.ranges(cells)
        found = {}
        for cell in ranges:
            low, high = ranges[cell]
            if math.isfinite(high) and math.floor(high + 1e-7) <= math.ceil(low - 1e-7):
                found[cell] = int(round(low))
        return found

    def small_pinned(self, cells: Iterable[Hashable]) -> dict[Hashable, int]:
        """Of ``cells``, those pinned to a whole number from 1 to 10."""
        return {cell: value for cell, value in self.pinned(cells).items() if 1 <= value <= SMALL_CELL_MAX}

    def _learn(self, targets: list, rounds: int = 12) -> dict:
        """LP ranges of the targets and of every unknown a rounded figure involves, narrowed by
        those figures, round after round until nothing narrows."""
        bounds = dict(self.bounds)
        watched = list(dict.fromkeys([c for r in self.relations for c in r.cells if c in bounds] + list(targets)))
        for _ in range(rounds):
            ranges = linear_ranges(self.known, bounds, self.equations, watched, self.orders)
            bounds.update({cell: _whole(ranges[cell]) for cell in watched})
            narrowed = False
            for relation in self.relations:
                for cell, (low, high) in self._narrow(relation, bounds).items():
                    if (low, high) != bounds[cell]:
                        bounds[cell] = (low, high)
                        narrowed = True
            if not narrowed:
                return ranges
        return linear_ranges(self.known, bounds, self.equations, watched, self.orders)

    def _narrow(self, relation: Relation, bounds: dict) -> dict:
        """New bounds of the relation's one or two open unknowns: the hull of the whole numbers
        in their ranges for which the printed figure comes out."""
        values, open_cells = {}, []
        for cell in relation.cells:
            if cell in self.known:
                values[cell] = float(self.known[cell])
            elif cell in bounds and bounds[cell][0] == bounds[cell][1]:
                values[cell] = bounds[cell][0]
            elif cell in bounds:
                open_cells.append(cell)
            else:
                return {}  # a cell the reader knows nothing of
        open_cells = list(dict.fromkeys(open_cells))
        if not open_cells or len(open_cells) > 2:
            return {}
        axes = []
        for cell in open_cells:
            low, high = bounds[cell]
            if math.isinf(high):
                if len(open_cells) > 1:
                    return {}
                high = low + UNBOUNDED_SPAN
            axes.append(np.arange(math.ceil(low), math.floor(high) + 1, dtype=float))
        if math.prod(len(axis) for axis in axes) > ENUMERATION_LIMIT or not all(len(axis) for axis in axes):
            return {}
        grids = np.meshgrid(*axes, indexing="ij")
        values.update({cell: grid for cell, grid in zip(open_cells, grids)})
        fits = np.broadcast_to(relation.holds(values), grids[0].shape)
        if not fits.any():
            return {}  # the figure does not come out for any value: rounding the reader cannot model
        narrowed = {}
        for cell, grid in zip(open_cells, grids):
            chosen = grid[fits]
            low, high = float(chosen.min()), float(chosen.max())
            if math.isinf(bounds[cell][1]) and high >= bounds[cell][0] + UNBOUNDED_SPAN:
                high = math.inf  # the figure holds to the end of what was tried: still unbounded
            narrowed[cell] = (max(low, bounds[cell][0]), min(high, bounds[cell][1]))
        return narrowed


def _whole(bounds: tuple[float, float]) -> tuple[float, float]:
    low, high = bounds
    return (float(math.ceil(low - 1e-7)), high if math.isinf(high) else float(math.floor(high + 1e-7)))
