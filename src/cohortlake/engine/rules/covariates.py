"""Covariates: one column each, in order (a score reads the earlier covariates' columns by name)."""

from __future__ import annotations

import hashlib

from pyspark.sql import Column
from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.engine.coverage import CoverageCheck
from cohortlake.engine.rules.base import (
    CLAIMS,
    ERAS,
    EVENTS,
    Compiled,
    Context,
    Needs,
    Read,
    age_at,
    anchor_column,
    count_events,
    count_up_to,
    event_condition,
    in_window,
    reads,
    rule,
    window_bounds,
)
from cohortlake.spec.comorbidity import CONDITIONS as COMORBIDITY_CONDITIONS
from cohortlake.spec.comorbidity import DECIMALS, RULE_OUT_MARGIN_DAYS, TERMS, ComorbidityIndex
from cohortlake.spec.model import CountMode, Covariate, EraChoice, ScoreCovariate, TumorField, WithoutClaims
from cohortlake.vocabulary import SEER_CODES, Behavior, EventTable, ReportingSource, Setting, Stage


@rule(Covariate, "age")
def age(context: Context, covariate: Covariate) -> Compiled:
    return Compiled(age_at(F.col(columns.BIRTH_DATE), anchor_column(covariate.rule.at)))


@rule(Covariate, "sex")
def sex(context: Context, covariate: Covariate) -> Compiled:
    return Compiled(F.col(columns.SEX))


@rule(Covariate, "race")
def race(context: Context, covariate: Covariate) -> Compiled:
    groups = covariate.rule.groups
    if not groups:
        return Compiled(F.col(columns.RACE))
    column = None
    for group, races in groups.items():
        test = F.col(columns.RACE).isin([r.value for r in races])
        column = F.when(test, F.lit(group)) if column is None else column.when(test, F.lit(group))
    return Compiled(column)


@rule(Covariate, "index_year")
def index_year(context: Context, covariate: Covariate) -> Compiled:
    return Compiled(F.year("index_date"))


_NAMED_FIELDS = {TumorField.stage: Stage, TumorField.behavior: Behavior, TumorField.reporting_source: ReportingSource}


@rule(Covariate, "tumor_field")
def tumor_field(context: Context, covariate: Covariate) -> Compiled:
    field = covariate.rule.field
    raw = F.col(columns.tumor_field("historic_stage" if field is TumorField.stage else field.value))
    if field not in _NAMED_FIELDS:
        return Compiled(raw)
    named = None
    for value, code in SEER_CODES[_NAMED_FIELDS[field]].items():
        named = F.when(raw == code, F.lit(value.value)) if named is None else named.when(raw == code, F.lit(value.value))
    return Compiled(named.otherwise(raw))


@rule(Covariate, "coverage_flag")
def coverage_flag(context: Context, covariate: Covariate) -> Compiled:
    spec = covariate.rule
    lo, hi = window_bounds(spec.window)
    check = CoverageCheck(columns.coverage_answer(context.scope, "any", spec.coverage.value), "any", spec.coverage, lo, hi)
    return Compiled(F.when(lo.isNotNull(), F.coalesce(F.col(check.column), F.lit(0))), Needs(coverage=(check,)))


@rule(Covariate, "nci_comorbidity")
def nci_comorbidity(context: Context, covariate: Covariate) -> Compiled:
    return comorbidity_index(context, ComorbidityIndex.nci, covariate.rule)


@rule(Covariate, "charlson")
def charlson(context: Context, covariate: Covariate) -> Compiled:
    return comorbidity_index(context, ComorbidityIndex.charlson, covariate.rule)


@rule(Covariate, "flag")
def flag(context: Context, covariate: Covariate) -> Compiled:
    spec = covariate.rule
    count, lo, needs = _count(context, spec, CountMode.distinct_dates, up_to=count_up_to("at_least", spec.at_least))
    return Compiled(F.when(lo.isNotNull(), F.when(count >= spec.at_least, 1).otherwise(0)), needs)


@rule(Covariate, "count")
def count(context: Context, covariate: Covariate) -> Compiled:
    value, lo, needs = _count(context, covariate.rule, covariate.rule.count)
    return Compiled(F.when(lo.isNotNull(), value), needs)


def _count(context: Context, spec, mode: CountMode, up_to: int | None = None) -> tuple[Column, Column, Needs]:
    lo, _, inside = in_window(spec.window)
    condition = event_condition(spec.codesets, spec.tables, spec.settings) & inside
    value, needs = count_events(context, "count", condition, mode, up_to)
    return F.coalesce(value, F.lit(0)), lo, reads(spec) + needs


@rule(Covariate, "score")
def score(context: Context, covariate: Covariate) -> Compiled:
    spec = covariate.rule
    total = F.lit(0.0)
    for term in spec.terms:
        value = F.col(term.covariate)  # an earlier covariate, already a column of the cohort
        if term.equals is not None:
            test = value.cast("string") == F.lit(term.equals)
        elif term.at_least is not None:
            test = value.cast("double") >= F.lit(float(term.at_least))
        else:
            test = value.cast("double") == F.lit(1.0)
        total = total + F.when(F.coalesce(test, F.lit(False)), F.lit(float(term.points))).otherwise(F.lit(0.0))
    if not spec.groups:
        return Compiled(total)
    banded = None
    for group in spec.groups:
        test = F.lit(True)
        if group.min is not None:
            test = test & (total >= F.lit(float(group.min)))
        if group.max is not None:
            test = test & (total <= F.lit(float(group.max)))
        banded = F.when(test, F.lit(group.name)) if banded is None else banded.when(test, F.lit(group.name))
    return Compiled(banded)


def reads_covariates(covariate: Covariate) -> set[str]:
    """The earlier covariates a covariate's column reads by name (a score's terms)."""
    return {term.covariate for term in covariate.rule.terms} if isinstance(covariate.rule, ScoreCovariate) else set()


@rule(Covariate, "exposure_duration")
def exposure_duration(context: Context, covariate: Covariate) -> Compiled:
    spec = covariate.rule
    exposure = F.col("exposure") == spec.exposure
    duration = F.datediff(F.col("era_end"), F.col("era_start")) + 1
    if spec.era is EraChoice.first_from_index:
        order = F.when(exposure & (F.col("era_start") >= F.col("index_date")), F.col("era_start"))
        column, needs = context.aggregated(ERAS, "duration", F.min_by(duration, order))
    else:
        order = F.when(exposure & (F.col("era_start") < F.col("index_date")), F.col("era_start"))
        column, needs = context.aggregated(ERAS, "duration", F.max_by(duration, order))
    return Compiled(column, needs)


# -- the NCI macro's comorbidity indices --------------------------------------------------------


def comorbidity_conditions(context: Context, spec) -> tuple[dict[str, Column], Needs]:
    """Whether each of the macro's conditions is present, as NCI.comorbidity.macro.sas decides it.

    A condition needs a diagnosis claim starting in the window. With rule-out, it
    also needs a MedPAR (inpatient) claim for it, or its first and last claims more
    than 30 days apart, both read from 30 days before to 30 days after the window.
    The aggregates are named from (conditions, window, rule-out), so an NCI index and a
    Charlson score over the same claims share them.
    """
    key = hashlib.sha1(repr((spec.conditions, spec.window, spec.rule_out)).encode()).hexdigest()[:10]
    scope = f"comorbidity_{key}"
    lo, hi, inside = in_window(spec.window)
    margin = RULE_OUT_MARGIN_DAYS
    around = F.col("date").between(F.date_sub(lo, margin), F.date_add(hi, margin))
    names = tuple(f"{spec.conditions}.{name}" for name in COMORBIDITY_CONDITIONS)
    needs = Needs(reads=(Read(names, (EventTable.diagnosis,)),))
    present: dict[str, Column] = {}
    for name, codeset in zip(COMORBIDITY_CONDITIONS, names):
        def ask(part: str, expression: Column) -> Column:
            nonlocal needs
            column, asked = context.aggregated(EVENTS, f"{name}_{part}", expression, scope=scope)
            needs = needs + asked
            return column

        of_condition = (F.col("codeset") == codeset) & (F.col("table") == EventTable.diagnosis.value)
        in_window_ = ask("in", F.max(F.when(of_condition & inside, 1))).isNotNull()
        if not spec.rule_out:
            present[name] = in_window_
            continue
        nearby = of_condition & around
        hospital = ask("inpatient", F.max(F.when(nearby & (F.col("setting") == Setting.inpatient.value), 1)))
        first = ask("first", F.min(F.when(nearby, F.col("date"))))
        last = ask("last", F.max(F.when(nearby, F.col("date"))))
        present[name] = in_window_ & (hospital.isNotNull() | (F.datediff(last, first) > margin))
    return present, needs


def comorbidity_index(context: Context, index: ComorbidityIndex, spec) -> Compiled:
    """The macro's Charlson score or NCI index over its condition flags (terms in spec.comorbidity)."""
    lo, hi = window_bounds(spec.window)
    present, needs = comorbidity_conditions(context, spec)
    value = comorbidity_index_column(index, present)
    if spec.without_claims is WithoutClaims.missing:
        # Only an index that is empty without claims (as the NCI macro's) reads every
        # diagnosis date, not just the coded events: one more scan, asked for by name.
        any_claim, asked = context.aggregated(CLAIMS, "any", F.max(F.when(F.col("date").between(lo, hi), 1)))
        value, needs = F.when(any_claim.isNotNull(), value), needs + asked
    return Compiled(F.when(lo.isNotNull(), value), needs)


def comorbidity_index_column(index: ComorbidityIndex, present: dict[str, Column]) -> Column:
    """The index's terms (spec.comorbidity) over boolean condition columns, rounded to the weights' decimals."""
    total = F.lit(0.0)
    for term in TERMS[index]:
        test = F.lit(False)
        for name in term.any_of:
            test = test | present[name]
        for name in term.none_of:
            test = test & ~present[name]
        total = total + F.when(test, F.lit(float(term.weight))).otherwise(F.lit(0.0))
    return F.round(total, DECIMALS)
