"""The rule registry and what a rule returns.

A rule is one small function per (OneOf class, kind) of the model, registered with
``@rule(Criterion, "alive")``. It reads a frozen :class:`Context` (the definition and
the rule's place in it) and the rule, and returns its column expression with the
:class:`Needs` it asks for: code sets to tag, aggregates per source, coverage checks.
Rules share no mutable state, so they can be compiled in any order; ``build_cohort``
adds up every rule's needs and runs one aggregation per source.

Aggregates are named from the rule's place (``Context.scope``) and the piece asked for
(``columns.aggregate``); two rules asking for the same name ask for the same value
(the comorbidity conditions of an NCI index and a Charlson score over one window).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from pyspark.sql import Column
from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.engine.coverage import CoverageCheck
from cohortlake.spec.model import (
    Boundary,
    CountMode,
    Definition,
    Exposure,
    ExposurePoint,
    ExposureSource,
    OneOf,
    Unit,
    Window,
)
from cohortlake.vocabulary import EventTable

EVENTS, ERAS, CLAIMS = "events", "eras", "claims"
"""The sources aggregated once per build: tagged events, eras, diagnosis claim dates."""


@dataclass(frozen=True)
class Aggregate:
    """One aggregate expression over a source, grouped by episode into column ``name``."""

    source: str
    name: str
    expression: Column


@dataclass(frozen=True)
class Read:
    """Code sets a rule reads in these tables (the tagging scan keeps their rows)."""

    codesets: tuple[str, ...]
    tables: tuple[EventTable, ...]


@dataclass(frozen=True)
class Needs:
    """What a rule needs computed before its column can be evaluated."""

    reads: tuple[Read, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()
    coverage: tuple[CoverageCheck, ...] = ()

    def __add__(self, other: Needs) -> Needs:
        return Needs(self.reads + other.reads, self.aggregates + other.aggregates, self.coverage + other.coverage)

    @staticmethod
    def total(items) -> Needs:
        out = Needs()
        for item in items:
            out = out + item
        return out

    def of(self, source: str) -> list[Aggregate]:
        """This source's aggregates, each name once (the first asked), in the order asked."""
        seen: dict[str, Aggregate] = {}
        for item in self.aggregates:
            if item.source == source:
                seen.setdefault(item.name, item)
        return list(seen.values())


@dataclass(frozen=True)
class Compiled:
    """A rule's column (flag, date or value) and its needs."""

    column: Column
    needs: Needs = Needs()


@dataclass(frozen=True)
class Context:
    """Read-only: the definition and where in it the rule being compiled sits."""

    definition: Definition
    scope: str = ""

    def at(self, scope: str) -> Context:
        return replace(self, scope=scope)

    def aggregated(self, source: str, part: str, expression: Column, *, scope: str | None = None) -> tuple[Column, Needs]:
        """The column of an aggregate this rule asks for, and the need that asks for it."""
        name = columns.aggregate(self.scope if scope is None else scope, part)
        return F.col(name), Needs(aggregates=(Aggregate(source, name, expression),))


# -- the registry ---------------------------------------------------------------------------

RULES: dict[tuple[type[OneOf], str], Callable[..., Any]] = {}


def rule(kind_of: type[OneOf], kind: str):
    """Register the engine rule of ``kind`` of ``kind_of`` (a model OneOf class)."""
    if kind not in kind_of.choices:
        raise ValueError(f"{kind_of.__name__} has no kind {kind!r}")

    def register(function):
        if (kind_of, kind) in RULES:
            raise ValueError(f"two engine rules for {kind_of.__name__}.{kind}")
        RULES[(kind_of, kind)] = function
        return function

    return register


def compile_rule(context: Context, item: OneOf):
    """The registered rule of the item's kind, applied."""
    try:
        function = RULES[(type(item), item.kind)]
    except KeyError:
        raise ValueError(f"no engine rule for {type(item).__name__} kind {item.kind}") from None
    return function(context, item)


# -- helpers the rules share ------------------------------------------------------------------


def anchor_column(anchor) -> Column:
    """The date column of an anchor: index, a landmark name, or an exposure point."""
    if isinstance(anchor, ExposurePoint):
        return F.col(columns.exposure_point(anchor))
    if anchor == "index":
        return F.col("index_date")
    return F.col(columns.landmark_day(anchor))


def window_bounds(window: Window, anchor=None) -> tuple[Column, Column]:
    """First and last day of a window as date columns of the episode frame."""
    base = anchor_column(window.relative_to if anchor is None else anchor)
    if window.unit is Unit.months:
        month = F.trunc(base, "month")
        return F.add_months(month, window.from_), F.last_day(F.add_months(month, window.to))
    return F.date_add(base, window.from_), F.date_add(base, window.to)


def in_window(window: Window, anchor=None) -> tuple[Column, Column, Column]:
    lo, hi = window_bounds(window, anchor)
    return lo, hi, F.col("date").between(lo, hi)


def age_at(birth: Column, at: Column) -> Column:
    """Whole years; a birthday counts on its anniversary (29 February on 1 March)."""
    before_birthday = (F.month(at) < F.month(birth)) | (
        (F.month(at) == F.month(birth)) & (F.dayofmonth(at) < F.dayofmonth(birth))
    )
    return (F.year(at) - F.year(birth) - F.when(before_birthday, 1).otherwise(0)).cast("int")


def reads(spec) -> Needs:
    """The code sets and tables of an event rule, to be tagged."""
    return Needs(reads=(Read(tuple(spec.codesets), tuple(spec.tables)),))


def event_condition(codesets, tables, settings=None) -> Column:
    condition = F.col("codeset").isin([str(s) for s in codesets]) & F.col("table").isin([t.value for t in tables])
    if settings:
        condition = condition & (F.col("setting").isNull() | F.col("setting").isin([s.value for s in settings]))
    return condition


def record_condition(exposure: Exposure) -> Column:
    sets = [str(s) for s in exposure.codesets]
    if exposure.source is ExposureSource.dispensing:
        return (F.col("table") == "dispensing") & F.col("codeset").isin(sets)
    return (
        (F.col("table") == "procedure") & F.col("codeset").isin(sets)
        & F.col("setting").isin([s.value for s in exposure.record_settings()])
    )


def distinct_count(context: Context, source: str, part: str, value: Column,
                   up_to: int | None = None) -> tuple[Column, Needs]:
    """How many distinct non-null values ``value`` takes over an episode's rows of ``source``.

    ``up_to`` is the largest count the caller tells apart (it compares the count with at
    most that number; ``None``: the exact count). Up to 1, the count is whether any row
    has a value (0 or 1, null for none): a plain ``max``, which Spark aggregates in
    generated code. A set of values (``collect_set``) would put the whole aggregation of
    the source, every other aggregate with it, into Spark's object aggregation, which
    evaluates its inputs row by row without generated code. Callers coalesce null to 0.
    """
    if up_to is not None and up_to <= 1:
        return context.aggregated(source, f"{part}_any", F.max(F.when(value.isNotNull(), F.lit(1))))
    return context.aggregated(source, part, F.size(F.collect_set(value)))


def count_up_to(bound: str, n: int) -> int:
    """The largest count a comparison ``at_least | at_most | exactly`` N tells apart."""
    return n if bound == "at_least" else n + 1


def count_events(context: Context, part: str, condition: Column, mode: CountMode,
                 up_to: int | None = None) -> tuple[Column, Needs]:
    value = {CountMode.distinct_dates: F.col("date"), CountMode.claims: F.col("claim_key"),
             CountMode.events: F.col("row_key")}[mode]
    return distinct_count(context, EVENTS, part, F.when(condition, value), up_to)


def boundary_column(at: Boundary) -> str:
    return "era_start" if at is Boundary.start else "era_end"


def first(columns_: list[Column]) -> Column:
    """The earliest non-empty of several dates (one date: itself)."""
    return F.least(*columns_) if len(columns_) > 1 else columns_[0]
