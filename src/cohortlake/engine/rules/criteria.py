"""Criteria: one per-episode flag per kind (``cohort_defs/README.md``, "Criteria"), plus the landmark analysis."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.engine.coverage import CoverageCheck
from cohortlake.engine.rules.base import (
    ERAS,
    Compiled,
    Context,
    Needs,
    age_at,
    anchor_column,
    boundary_column,
    count_events,
    count_up_to,
    distinct_count,
    event_condition,
    in_window,
    reads,
    rule,
    window_bounds,
)
from cohortlake.spec.model import CountMode, CoverageRule, Criterion, Landmark, Unit, Window
from cohortlake.vocabulary import seer_code


@rule(Criterion, "index_exists")
def index_exists(context: Context, criterion: Criterion) -> Compiled:
    return Compiled(F.col(columns.HAS_INDEX))


@rule(Criterion, "tumor")
def tumor(context: Context, criterion: Criterion) -> Compiled:
    spec = criterion.rule
    field = lambda name: F.col(columns.tumor_field(name))  # noqa: E731
    flag = F.lit(True)
    if spec.sequence_number is not None:
        flag = flag & field("sequence_number").isin(list(spec.sequence_number))
    if spec.diagnosis_year is not None:
        year = field("diagnosis_year")
        flag = flag & year.isNotNull()
        if spec.diagnosis_year.min is not None:
            flag = flag & (year >= spec.diagnosis_year.min)
        if spec.diagnosis_year.max is not None:
            flag = flag & (year <= spec.diagnosis_year.max)
    if spec.diagnosis_month_known is not None:
        month = field("diagnosis_month")
        known = month.between(1, 12)
        flag = flag & month.isNotNull() & (known if spec.diagnosis_month_known else ~known)
    if spec.reporting_source is not None:
        source = field("reporting_source")
        if spec.reporting_source.include is not None:
            flag = flag & source.isin([seer_code(s) for s in spec.reporting_source.include])
        else:
            flag = flag & source.isNotNull() & ~source.isin([seer_code(s) for s in spec.reporting_source.exclude])
    if spec.stage is not None:
        flag = flag & field("historic_stage").isin([seer_code(s) for s in spec.stage])
    if spec.behavior is not None:
        flag = flag & field("behavior").isin([seer_code(b) for b in spec.behavior])
    return Compiled(flag)


@rule(Criterion, "age")
def age(context: Context, criterion: Criterion) -> Compiled:
    spec = criterion.rule
    years = age_at(F.col(columns.BIRTH_DATE), anchor_column(spec.at))
    flag = years.isNotNull()
    if spec.min is not None:
        flag = flag & (years >= spec.min)
    if spec.max is not None:
        flag = flag & (years <= spec.max)
    return Compiled(flag)


@rule(Criterion, "sex")
def sex(context: Context, criterion: Criterion) -> Compiled:
    return Compiled(F.col(columns.SEX).isin([s.value for s in criterion.rule]))


@rule(Criterion, "alive")
def alive(context: Context, criterion: Criterion) -> Compiled:
    through = criterion.rule.through
    day = F.date_add(F.col("index_date"), through.days) if hasattr(through, "days") else anchor_column(through)
    death = F.col(columns.DEATH_DATE)
    return Compiled(day.isNotNull() & (death.isNull() | (death > day)))


@rule(Criterion, "index_period")
def index_period(context: Context, criterion: Criterion) -> Compiled:
    spec = criterion.rule
    flag = F.col("index_date").isNotNull()
    if spec.start is not None:
        flag = flag & (F.col("index_date") >= F.lit(spec.start))
    if spec.end is not None:
        flag = flag & (F.col("index_date") <= F.lit(spec.end))
    return Compiled(flag)


@rule(Criterion, "coverage")
def coverage(context: Context, criterion: Criterion) -> Compiled:
    return coverage_check(context, criterion.rule)


@rule(Criterion, "occurrence")
def occurrence(context: Context, criterion: Criterion) -> Compiled:
    spec = criterion.rule
    bound, n = spec.bound
    count, valid, needs = occurrence_count(context, spec, spec.window, count_up_to(bound, n))
    compare = {"at_least": count >= n, "at_most": count <= n, "exactly": count == n}[bound]
    return Compiled(valid & compare, needs)


@rule(Criterion, "washout")
def washout(context: Context, criterion: Criterion) -> Compiled:
    spec = criterion.rule
    count, valid, needs = occurrence_count(context, spec, spec.as_window(), up_to=1)
    return Compiled(valid & (count == 0), needs)


def occurrence_count(context: Context, spec, window: Window, up_to: int | None) -> tuple[Column, Column, Needs]:
    """(count, anchor exists, needs) of an occurrence-like rule: events, or era starts (ends).

    ``up_to``: the largest count the rule tells apart (``distinct_count``)."""
    lo, hi, inside = in_window(window)
    if getattr(spec, "exposure", None) is not None:
        boundary = boundary_column(spec.exposure.at)
        dates = F.when((F.col("exposure") == spec.exposure.name) & F.col(boundary).between(lo, hi), F.col(boundary))
        count, needs = distinct_count(context, ERAS, "count", dates, up_to)
    else:
        condition = event_condition(spec.codesets, spec.tables, spec.settings) & inside
        count, needs = count_events(context, "count", condition, getattr(spec, "count", CountMode.distinct_dates), up_to)
        needs = reads(spec) + needs
    return F.coalesce(count, F.lit(0)), lo.isNotNull(), needs


def coverage_check(context: Context, spec: CoverageRule, default_anchor=None) -> Compiled:
    """Every required type held and every excluded type absent over the window (see coverage.py)."""
    window = spec.window
    anchor = default_anchor if (default_anchor is not None and "relative_to" not in window.model_fields_set) else None
    lo, hi = window_bounds(window, anchor)
    if spec.truncate_at_death:
        death = F.col(columns.DEATH_DATE)
        hi = F.least(hi, F.last_day(death) if window.unit is Unit.months else death)
    checks = []
    for mode, types in (("require", spec.require), ("exclude", spec.exclude)):
        for kind in types:
            name = columns.coverage_answer(context.scope, mode, kind.value)
            checks.append(CoverageCheck(name, mode, kind, lo, hi, spec.allowed_gap_days))
    flag = lo.isNotNull() & hi.isNotNull()
    for check in checks:
        flag = flag & F.coalesce(F.col(check.column), F.lit(False))
    return Compiled(flag, Needs(coverage=tuple(checks)))


def landmark_analysis(context: Context, landmark: Landmark) -> Compiled:
    """The episode is in the landmark's analysis: alive through it, and its coverage rule holds."""
    day = F.col(columns.landmark_day(landmark.name))
    flag = day.isNotNull()
    needs = Needs()
    if landmark.require_alive:
        death = F.col(columns.DEATH_DATE)
        flag = flag & (death.isNull() | (death > day))
    if landmark.require_coverage is not None:
        covered = coverage_check(context, landmark.require_coverage, default_anchor=landmark.name)
        flag, needs = flag & covered.column, covered.needs
    return Compiled(flag, needs)
