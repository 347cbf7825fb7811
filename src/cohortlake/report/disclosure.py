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
(:func:`cohortlake.cells.linear_ranges`), narrowed by every rounded figure whose
counts are known but one or two (enumerated: whole numbers within the range for which
the printed figure comes out), until nothing narrows. A small count, or a count never
printed (N minus the persons with a covariate, the unmatched persons), that a reader
can pin to one whole number from 1 to 10 is a leak.

:func:`check_release` builds that reader from the files of a release folder alone
(``study.json`` and the CSV tables the report shows, with ``report.html`` scanned for a
printed 1-10) and names every file and cell that leaks.

What is small, how ``<11`` and ``*`` are printed and what a reader knows of them are the
small-cell rule's (:mod:`cohortlake.cells`), the same objects the report, the quality page
and the plots print with, so the checker cannot drift from them.
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

from cohortlake.cells import (HIDDEN, SMALL, SMALL_CELL_MAX, SMALLEST_SHOWN, Status, is_small, linear_ranges,
                              reader_bounds)

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
        return {cell: value for cell, value in self.pinned(cells).items() if is_small(value)}

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


# --------------------------------------------------------------------------- the checker

COUNT = re.compile(r"^\s*(\d[\d,]*)(?:\s*\((-?\d+(?:\.\d+)?)%\))?")
NUMBER = re.compile(r"^-?\d+(?:\.(\d+))?$")


@dataclass(frozen=True)
class Leak:
    """A file and cell of a release set that shows, or lets a reader work out, a count of 1-10."""

    file: str
    cell: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}: {self.cell}: {self.detail}"


@dataclass
class _Model:
    """The reader's knowledge as parsed from the files: printed counts, unknowns, sums, rounded figures."""

    known: dict = field(default_factory=dict)
    bounds: dict = field(default_factory=dict)
    origin: dict = field(default_factory=dict)
    derived: set = field(default_factory=set)
    equations: list = field(default_factory=list)
    orders: list = field(default_factory=list)
    relations: list = field(default_factory=list)
    leaks: list = field(default_factory=list)

    def count(self, key, text: str, file: str, where: str) -> float | None:
        """Register a printed count; returns its printed percentage, if any."""
        text = (text or "").strip()
        self.origin.setdefault(key, (file, where))
        if text == SMALL:
            self.bounds[key] = reader_bounds(Status.small)
            return None
        if text.startswith(HIDDEN):
            self.bounds[key] = reader_bounds(Status.hidden)
            return None
        match = COUNT.match(text)
        if not match:
            return None
        value = int(match.group(1).replace(",", ""))
        if is_small(value):
            self.leaks.append(Leak(file, where, f"prints {value}, a count of 1-{SMALL_CELL_MAX}"))
        self.known[key] = value
        return float(match.group(2)) if match.group(2) else None

    def unknown(self, key, file: str, where: str) -> None:
        """A count never printed that a reader can derive (N minus the persons with a covariate, ...)."""
        if key not in self.known and key not in self.bounds:
            self.bounds[key] = (0.0, math.inf)
            self.derived.add(key)
        self.origin.setdefault(key, (file, where))

    def has(self, key) -> bool:
        return key in self.known or key in self.bounds

    def equal_sum(self, members, total, assumed: bool = False) -> None:
        """members add up to total; an ``assumed`` sum (a link the reader supposes) is left out when
        the printed figures contradict it."""
        cells = list(members) + [total]
        if not all(self.has(c) for c in cells):
            return
        if assumed and all(c in self.known for c in cells) and \
                sum(self.known[c] for c in members) != self.known[total]:
            return
        terms: dict = {}
        for cell in members:
            terms[cell] = terms.get(cell, 0.0) + 1.0
        terms[total] = terms.get(total, 0.0) - 1.0
        self.equations.append((terms, 0.0))


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    return list(csv.DictReader(lines))


def _printed_number(text: str) -> tuple[float, int] | None:
    match = NUMBER.match((text or "").strip())
    if not match:
        return None
    return float(text), len(match.group(1) or "")


class _CountSpans(HTMLParser):
    """The text of every element with class "count" in a page."""

    def __init__(self):
        super().__init__()
        self.counts: list[str] = []
        self._depth: list[bool] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "img", "meta", "link", "input", "hr"):
            return
        is_count = "count" in (dict(attrs).get("class") or "").split()
        self._depth.append(is_count)
        if is_count:
            self._text = []

    def handle_endtag(self, tag):
        if self._depth and self._depth.pop() and self._text is not None:
            self.counts.append("".join(self._text).strip())
            self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def check_release(folder: str | Path) -> list[Leak]:
    """Every way the release set in ``folder`` shows a count of 1-10 or lets a reader work one out,
    from its files alone (``study.json``, the CSV tables, ``report.html``); [] when none does."""
    folder = Path(folder)
    study_path = folder / "study.json"
    if not study_path.is_file():
        return [Leak("study.json", "-", "no study.json: not a release set written by cohortlake's report")]
    study = json.loads(study_path.read_text(encoding="utf-8"))
    model = _Model()
    if study.get("audience") != "release":
        model.leaks.append(Leak("study.json", "audience", f"the set is the {study.get('audience')!r} view, "
                                                          f"not a release set: it holds cells under {SMALLEST_SHOWN}"))
    page = folder / "report.html"
    if page.is_file():
        html = page.read_text(encoding="utf-8")
        if "NOT FOR RELEASE" in html:
            model.leaks.append(Leak("report.html", "notice", "the page says it is not for release"))
        spans = _CountSpans()
        spans.feed(html)
        for text in spans.counts:
            match = COUNT.match(text)
            if match and is_small(int(match.group(1).replace(",", ""))):
                model.leaks.append(Leak("report.html", f"count {text!r}", f"prints a count of 1-{SMALL_CELL_MAX}"))
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8") as handle:
            if "NOT FOR RELEASE" in handle.readline():
                model.leaks.append(Leak(path.name, "notice", "the table says it is not for release"))
    arms = ("treated", "control")
    _attrition(model, _rows(folder / "attrition.csv"))
    count_rows = _table1(model, _rows(folder / "table1.csv"), study)
    if study.get("matched"):
        for arm in arms:
            model.unknown(("unmatched", arm), "table1.csv", f"{study.get(arm, arm)} persons not matched (derived)")
            model.equal_sum([("n", "after", arm), ("unmatched", arm)], ("n", "before", arm))
        matching = study.get("matching") or {}
        if matching.get("ratio") == 1 and not matching.get("replacement") \
                and (matching.get("method") or "greedy_nearest_neighbor") == "greedy_nearest_neighbor":
            model.equal_sum([("n", "after", "treated")], ("n", "after", "control"), assumed=True)
    _survival(model, _rows(folder / "survival.csv"), _rows(folder / "at_risk.csv"), study)
    _reference(model, _rows(folder / "reference.csv"), study)
    _smds(model, count_rows, _rows(folder / "table1.csv"), _rows(folder / "balance.csv"), study)
    model.leaks.extend(_derivable(model))
    return model.leaks


def _attrition(model: _Model, rows: list[dict]) -> None:
    previous = None
    for row in rows:
        step = row["step"]
        remaining = ("attrition", step, "remaining")
        model.count(remaining, row["persons_remaining"], "attrition.csv", f"step {step} persons remaining")
        if row.get("persons_excluded", "").strip():
            excluded = ("attrition", step, "excluded")
            model.count(excluded, row["persons_excluded"], "attrition.csv", f"step {step} persons excluded")
            if previous is not None:
                model.equal_sum([remaining, excluded], previous)
        previous = remaining
    if previous is not None:
        model.equal_sum([("n", "before", "treated"), ("n", "before", "control")], previous, assumed=True)


def _table1(model: _Model, rows: list[dict], study: dict) -> dict:
    """Register Table 1's counts and sums; returns {column: covariate} of its count rows."""
    count_rows: dict = {}
    by_covariate: dict = {}
    for row in rows:
        phase = row["phase"]
        if row["kind"] == "n":
            for arm in ("treated", "control"):
                model.count(("n", phase, arm), row[arm], "table1.csv", f"N {phase} matching, {study.get(arm, arm)}")
            continue
        if row["kind"] != "count":
            continue
        column = row["column"]
        count_rows[column] = row["covariate"]
        by_covariate.setdefault((row["covariate"], phase), []).append(column)
        for arm in ("treated", "control"):
            key = ("count", phase, arm, column)
            share = model.count(key, row[arm], "table1.csv", f"{column} {phase} matching, {study.get(arm, arm)}")
            weighted = phase == "after" and study.get("weighted")
            if share is not None and not weighted:
                model.relations.append(percent_relation(f"{column} {phase} {arm} %", share, key, ("n", phase, arm)))
    for (covariate, phase), columns in by_covariate.items():
        for arm in ("treated", "control"):
            members = [("count", phase, arm, column) for column in columns]
            if len(columns) == 1:
                without = ("without", phase, arm, columns[0])
                model.unknown(without, "table1.csv", f"persons without {columns[0]} {phase} matching, "
                                                     f"{study.get(arm, arm)} (N minus the count)")
                members.append(without)
            model.equal_sum(members, ("n", phase, arm))
    return count_rows


def _survival(model: _Model, rows: list[dict], at_risk: list[dict], study: dict) -> None:
    names = {study.get("treated"): "treated", study.get("control"): "control"}
    for row in rows:
        arm = names.get(row["arm"], row["arm"])
        persons, deaths = ("persons", arm), ("deaths", arm)
        model.count(persons, row["persons"], "survival.csv", f"{row['arm']} persons")
        model.count(deaths, row["deaths"], "survival.csv", f"{row['arm']} deaths")
        model.unknown(("no_death", arm), "survival.csv", f"{row['arm']} persons without a death (derived)")
        model.equal_sum([deaths, ("no_death", arm)], persons)
        if study.get("matched"):
            model.equal_sum([persons], ("n", "after", arm), assumed=True)
        if (row.get("deaths_by_horizon") or "").strip():
            by = ("deaths_by", arm)
            model.count(by, row["deaths_by_horizon"], "survival.csv", f"{row['arm']} deaths by the horizon")
            model.unknown(("rest_by", arm), "survival.csv", f"{row['arm']} persons without a death by the horizon")
            model.unknown(("later", arm), "survival.csv", f"{row['arm']} deaths after the horizon (derived)")
            model.equal_sum([by, ("rest_by", arm)], persons)
            model.equal_sum([by, ("later", arm)], deaths)
    previous: dict = {}
    for row in at_risk:
        arm = names.get(row["arm"], row["arm"])
        key = ("at_risk", arm, row["day"])
        model.count(key, row["at_risk"], "at_risk.csv", f"{row['arm']} at risk on day {row['day']}")
        if float(row["day"]) == 0 and model.has(("persons", arm)):
            model.equal_sum([key], ("persons", arm), assumed=True)
        if arm in previous:
            model.orders.append((previous[arm], key))  # numbers at risk only fall
        previous[arm] = key


def _reference(model: _Model, rows: list[dict], study: dict) -> None:
    for row in rows:
        text = row.get("this_run") or ""
        if row["figure"].startswith("patients with") and COUNT.match(text) or text.startswith((SMALL, HIDDEN)):
            if row["figure"].startswith("patients with"):
                model.count(("reference", "n"), text.split(" (")[0], "reference.csv", row["figure"])
                model.equal_sum([("n", "before", "treated"), ("n", "before", "control")], ("reference", "n"),
                                assumed=True)
        if row["figure"].startswith("received") and re.match(r"^\d+(\.\d)?%$", text):
            if model.has(("reference", "n")) and model.has(("n", "before", "treated")):
                model.relations.append(percent_relation("share treated", float(text[:-1]), ("n", "before", "treated"),
                                                        ("reference", "n")))
        if row["figure"] == "PS-matched sample":
            parts = re.match(r"^(\S+) .+ vs (\S+) ", text)
            if parts:
                for arm, value in zip(("treated", "control"), parts.groups()):
                    key = ("reference", "matched", arm)
                    model.count(key, value, "reference.csv", f"PS-matched sample, {study.get(arm, arm)}")
                    model.equal_sum([key], ("n", "after", arm), assumed=True)


def _smds(model: _Model, count_rows: dict, table1: list[dict], balance: list[dict], study: dict) -> None:
    denominator = study.get("smd_denominator") or "pooled"
    printed = []
    for row in table1:
        if row["kind"] == "count":
            printed.append((row["column"], row["phase"], row["smd"], "table1.csv"))
    for row in balance:
        printed.append((row["covariate"], "before", row["smd_before"], "balance.csv"))
        printed.append((row["covariate"], "after", row["smd_after"], "balance.csv"))
    for column, phase, text, file in printed:
        number = _printed_number(text)
        if column not in count_rows or number is None:
            continue
        if phase == "after" and study.get("weighted"):
            continue
        before = (("count", "before", "treated", column), ("count", "before", "control", column),
                  ("n", "before", "treated"), ("n", "before", "control"))
        after = None if phase == "before" else (("count", "after", "treated", column),
                                                ("count", "after", "control", column),
                                                ("n", "after", "treated"), ("n", "after", "control"))
        cells = before + (after or ())
        if all(model.has(cell) for cell in cells):
            model.relations.append(smd_relation(f"{file}: SMD {phase} matching of {column}", number[0], before,
                                                after, denominator, number[1]))


def _derivable(model: _Model) -> list[Leak]:
    small = [cell for cell, (low, high) in model.bounds.items()
             if cell in model.derived or (low, high) == reader_bounds(Status.small)]
    reader = Reader(model.known, model.bounds, model.equations, model.relations, model.orders)
    try:
        pinned = reader.small_pinned(small)
    except ValueError as error:
        return [Leak("(all tables)", "-", f"{error}: a printed count, {SMALL} or {HIDDEN} does not fit the others")]
    leaks = []
    for cell, value in pinned.items():
        file, where = model.origin.get(cell, ("?", repr(cell)))
        leaks.append(Leak(file, where, f"a reader can work out that it is {value}"))
    return leaks
