"""Build a cohort: a definition compiled to Spark plans over the canonical tables.

Shape of a build (see ``cohort_defs/README.md`` for what every rule means):

1. **Compile** every rule to a column expression and what it needs (``rules/``); no job runs.
2. **Tag**: each claims table is scanned once, its rows sieved by hash-set lookups in
   the union of every code set a rule reads, then tested set by set (``events.py``,
   ``codes.py``); the result, a few columns per matching row, is persisted and every
   rule reads it. An index made from canonical tables alone (a tumor) comes first, and
   only the rows of persons with an index date are kept.
3. **Eras** of every exposure and regimen from the tagged rows (``eras.py``).
4. **Episodes**: the population with its index date(s) and the anchor dates
   (landmarks, exposure points, follow-up start) (``episodes.py``).
5. **One aggregation per source**: tagged events ⋈ episodes grouped by episode computes
   every aggregate the rules asked for at once; diagnosis claim dates and eras likewise;
   coverage checks over enrollment spans (``coverage.py``).
6. **Flags and columns**: attrition is the histogram of how many leading step flags an
   episode passes (``attrition.py``, no per-step jobs); arms, follow-up, outcomes and
   covariates are the compiled column expressions (``outputs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.engine import columns
from cohortlake.engine.attrition import Attrition, with_depth
from cohortlake.engine.columns import EPISODE
from cohortlake.engine.coverage import answer_checks
from cohortlake.engine.episodes import population, with_anchors
from cohortlake.engine.eras import all_eras
from cohortlake.engine.events import Inputs, tagged_events
from cohortlake.engine.outputs import landmark_date, outcome_columns, time_varying_rows
from cohortlake.engine.rules import Needs, compile_rules
from cohortlake.engine.rules.base import CLAIMS, ERAS, EVENTS
from cohortlake.engine.rules.covariates import reads_covariates
from cohortlake.engine.rules.index import Inputs as IndexInputs
from cohortlake.spec.model import Definition


@dataclass
class BuildResult:
    """What a build produces: Spark frames (lazy) plus the attrition (computed)."""

    cohort: DataFrame
    attrition: list[tuple[int, str, int, int]]
    events: DataFrame | None
    flags: DataFrame
    inputs: Inputs

    def release(self) -> None:
        """Free the build's cached frames once its outputs are written."""
        self.inputs.release()


def build_cohort(definition: Definition, frames: dict[str, DataFrame]) -> BuildResult:
    """Compile and run a definition over canonical tables (name → DataFrame)."""
    rules = compile_rules(definition)
    inputs = Inputs(frames)
    index_rows = indexed = None
    if rules.index.tables_only:
        # Made first, so that only the claims rows of persons with an index date are kept.
        index_rows = inputs.persist(rules.index.rows(IndexInputs(inputs.table, None, None)))
        indexed = index_rows.where(F.col("index_date").isNotNull()).select("person_id")
    events = tagged_events(inputs, definition, rules.needs.reads, indexed)
    eras = all_eras(definition, events)
    if eras is not None:
        eras = inputs.persist(eras)
    if index_rows is None:
        index_rows = rules.index.rows(IndexInputs(inputs.table, events, eras))
    # Every aggregation below starts from the episodes: compute them once.
    episodes = inputs.persist(with_anchors(definition, population(inputs, index_rows), eras))
    episodes = _aggregated(inputs, episodes, events, eras, rules.needs)

    # Columns are added a projection at a time, not one by one: every DataFrame call is
    # analysed again over the whole plan so far, and a build's planning is most of a small one.
    if rules.landmarks:
        episodes = episodes.withColumns({columns.in_landmark_flag(name): F.coalesce(flag, F.lit(False))
                                         for name, flag in rules.landmarks.items()})
    names = columns.step_names(definition)
    assert len(names) == len(rules.steps), (names, len(rules.steps))
    episodes = inputs.persist(with_depth(episodes, list(rules.steps)))
    attrition = Attrition.of(episodes, names)
    flags = episodes.select(*EPISODE, *[columns.step_flag(n) for n in range(1, len(names) + 1)])

    included = episodes.where(F.col(columns.DEPTH) == len(names))
    follow = {"arm": rules.arm, "first_exposure_date": rules.first_exposure_date,
              "followup_start": F.col(columns.FOLLOWUP_START), "followup_end": rules.followup_end,
              "landmark_date": landmark_date(definition)}
    for landmark in definition.landmarks:
        if len(definition.landmarks) > 1:
            follow[columns.landmark_date(landmark.name)] = F.col(columns.landmark_day(landmark.name))
        follow[columns.in_landmark(landmark.name)] = F.col(columns.in_landmark_flag(landmark.name)).cast("int")
    for name, column in rules.switches.items():
        follow[columns.switch_date(name)] = column
    outcomes, event, time_days = outcome_columns(definition, rules.outcomes)
    # Each projection reads only columns of those before it: outcomes read the follow-up, the
    # cohort's event and time read the outcomes, a score reads earlier covariates.
    for projection in [follow, dict(outcomes), {"event": event, "time_days": time_days},
                       *_covariate_projections(definition, rules.covariates)]:
        if projection:
            included = included.withColumns(projection)
    cohort_all = inputs.persist(included)
    cohort = cohort_all.select(*columns.cohort_columns(definition))
    events_table = time_varying_rows(cohort_all, list(rules.switches)) if rules.switches else None
    return BuildResult(cohort, attrition.rows(), events_table, flags, inputs)


def _covariate_projections(definition: Definition, compiled: dict[str, Column]) -> list[dict[str, Column]]:
    """The covariates, in order, in as few projections as can be: one that reads an earlier covariate starts a new one."""
    projections: list[dict[str, Column]] = [{}]
    for covariate in definition.covariates:
        if reads_covariates(covariate) & projections[-1].keys():
            projections.append({})
        projections[-1][covariate.name] = compiled[covariate.name]
    return projections


def _aggregated(inputs: Inputs, episodes: DataFrame, events: DataFrame, eras: DataFrame | None,
                needs: Needs) -> DataFrame:
    """Every aggregate the rules asked for, in one groupBy per source, joined back to the episodes."""
    anchors = [c for c in episodes.columns if columns.is_anchor(c)]
    base = episodes.where(F.col("index_date").isNotNull()).select(*EPISODE, *anchors)
    sources = {
        EVENTS: lambda: events,
        # Only an index that is empty without claims (as the NCI macro's) reads every
        # diagnosis date, not just the coded events: one more scan, asked for by name.
        CLAIMS: lambda: inputs.table("diagnosis").select("person_id", "date").distinct(),
        ERAS: lambda: eras,
    }
    for source, rows in sources.items():
        aggregates = needs.of(source)
        if aggregates:
            values = rows().join(base, "person_id").groupBy(*EPISODE).agg(
                *[item.expression.alias(item.name) for item in aggregates])
            episodes = episodes.join(values, list(EPISODE), "left")
    coverage = answer_checks(episodes.where(F.col("index_date").isNotNull()), inputs.table("enrollment"),
                             list(needs.coverage))
    if coverage is not None:
        episodes = episodes.join(coverage, list(EPISODE), "left")
    return episodes
