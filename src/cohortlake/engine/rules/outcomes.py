"""Outcomes (the date each occurs within follow-up) and time-varying covariates (the date each switches on)."""

from __future__ import annotations

from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.engine.rules.base import (
    ERAS,
    EVENTS,
    Compiled,
    Context,
    boundary_column,
    event_condition,
    reads,
    rule,
)
from cohortlake.spec.model import Outcome, TimeVarying

FOLLOWUP_END = "followup_end"  # the cohort column, present when outcomes are evaluated


@rule(Outcome, "death")
def death(context: Context, outcome: Outcome) -> Compiled:
    died = F.col(columns.DEATH_DATE)
    return Compiled(F.when(died.between(F.col(columns.FOLLOWUP_START), F.col(FOLLOWUP_END)), died))


@rule(Outcome, "event")
def event(context: Context, outcome: Outcome) -> Compiled:
    first, needs = first_event_after_start(context, outcome.rule)
    return Compiled(F.when(first <= F.col(FOLLOWUP_END), first), reads(outcome.rule) + needs)


@rule(TimeVarying, "event")
def event_switch(context: Context, varying: TimeVarying) -> Compiled:
    first, needs = first_event_after_start(context, varying.rule)
    return Compiled(first, reads(varying.rule) + needs)


@rule(TimeVarying, "exposure")
def exposure_switch(context: Context, varying: TimeVarying) -> Compiled:
    spec = varying.rule
    boundary = boundary_column(spec.at)
    after = (F.col("exposure") == spec.name) & (F.col(boundary) > F.col(columns.FOLLOWUP_START))
    first, needs = context.aggregated(ERAS, "first", F.min(F.when(after, F.col(boundary))))
    return Compiled(first, needs)


def first_event_after_start(context: Context, spec):
    """The first event of the rule's code sets strictly after follow-up start."""
    condition = event_condition(spec.codesets, spec.tables, spec.settings) & (F.col("date") > F.col(columns.FOLLOWUP_START))
    return context.aggregated(EVENTS, "first", F.min(F.when(condition, F.col("date"))))
