"""Every rule kind of the model, one small function each, in a registry keyed by (OneOf class, kind).

``compile_rules(definition)`` compiles each rule of a definition to its column and its
needs (no Spark job runs); ``build_cohort`` tags, aggregates and evaluates them.

- ``index.py``: Index kinds → the index rows;
- ``criteria.py``: Criterion kinds → per-episode flags (and the landmark analysis);
- ``arms.py``: Arm kinds → whether the arm holds and its first exposure date;
- ``followup.py``: FollowupEnd kinds → the date follow-up ends;
- ``outcomes.py``: Outcome and TimeVarying kinds → the date each occurs / switches on;
- ``covariates.py``: Covariate kinds → one column each.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.engine.rules import arms, covariates, criteria, followup, index, outcomes  # noqa: F401 (registers)
from cohortlake.engine.rules.base import RULES, Compiled, Context, Needs, Read, compile_rule, first, rule
from cohortlake.spec.followup import alive_step, landmark_step, needs_followup_step
from cohortlake.spec.model import Definition, ExposureSource
from cohortlake.vocabulary import EventTable

__all__ = ["RULES", "Compiled", "Context", "Needs", "Rules", "compile_rules", "rule"]


@dataclass(frozen=True)
class Rules:
    """Every rule of a definition compiled: columns of the episode frame (or of the cohort), and their needs."""

    index: index.IndexRule
    steps: tuple[Column, ...]
    """The per-episode flag of each attrition step, in the order of ``columns.step_names``."""
    landmarks: dict[str, Column]
    arm: Column
    first_exposure_date: Column
    followup_end: Column
    outcomes: dict[str, Column]
    switches: dict[str, Column]
    covariates: dict[str, Column]
    needs: Needs


def compile_rules(definition: Definition) -> Rules:
    """Compile every rule; each asks for what it needs, added up here (no order between rules)."""
    context = Context(definition)
    needs: list[Needs] = []

    def compiled(scope: str, item) -> Column:
        result = compile_rule(context.at(scope), item)
        needs.append(result.needs)
        return result.column

    index_rule = compile_rule(context.at("index"), definition.index)
    needs.append(index_rule.needs)
    steps = [compiled(f"c{number}", criterion) for number, criterion in enumerate(definition.criteria, 1)]
    for exposure in definition.exposures.values():
        table = EventTable.dispensing if exposure.source is ExposureSource.dispensing else EventTable.procedure
        needs.append(Needs(reads=(Read(tuple(exposure.codesets), (table,)),)))
    landmarks = {}
    for landmark in definition.landmarks:
        analysis = criteria.landmark_analysis(context.at(f"lm_{landmark.name}"), landmark)
        landmarks[landmark.name] = analysis.column
        needs.append(analysis.needs)
    steps += implied_flags(definition)
    arm, first_date = _arms(context, definition, needs)
    end = first([compiled(f"end{number}", item) for number, item in enumerate(definition.followup.end)])
    outcome_dates = {o.name: compiled(f"out_{o.name}", o) for o in definition.outcomes}
    switches = {t.name: compiled(f"tv_{t.name}", t) for t in definition.time_varying}
    covariate_columns = {c.name: compiled(f"cv_{c.name}", c) for c in definition.covariates}
    return Rules(index_rule, tuple(steps), landmarks, arm, first_date, end, outcome_dates, switches,
                 covariate_columns, Needs.total(needs))


def _arms(context: Context, definition: Definition, needs: list[Needs]) -> tuple[Column, Column]:
    arm = first_date = None
    for number, item in enumerate(definition.arms):
        result = compile_rule(context.at(f"arm{number}"), item)
        needs.append(result.needs)
        if arm is None:
            arm, first_date = F.when(result.holds, F.lit(item.name)), F.when(result.holds, result.first_date)
        else:
            arm, first_date = arm.when(result.holds, F.lit(item.name)), first_date.when(result.holds, result.first_date)
    if arm is None:
        return F.lit(columns.NO_ARMS), F.lit(None).cast("date")
    return arm, first_date


def implied_flags(definition: Definition) -> list[Column]:
    """The flags of the implied steps (``spec.followup.implied_steps``), in that order."""
    flags = []
    death, start = F.col(columns.DEATH_DATE), F.col(columns.FOLLOWUP_START)
    landmark = landmark_step(definition)
    if landmark is not None:
        flags.append(F.col(columns.in_landmark_flag(landmark.name)))
    if alive_step(definition) is not None:
        # a recorded death before follow-up starts would make follow-up run backwards
        flags.append(death.isNull() | start.isNull() | (death >= start))
    if needs_followup_step(definition):
        # a follow-up start after the study end would make follow-up run backwards
        flags.append(start.isNull() | (start <= F.lit(definition.study_period.end)))
    return flags
