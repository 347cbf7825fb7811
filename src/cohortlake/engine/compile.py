"""Compile a cohort definition into Spark plans over the canonical tables.

Shape of a build (see ``cohort_defs/README.md`` for what every rule means):

1. **Tag**: each claims table is scanned once, its rows hash-joined against the
   broadcast keys of every code set the definition uses (``codes.py``); the result, a
   few columns per matching row, is persisted and every rule reads it.
2. **Eras** of every exposure and regimen from the tagged rows (``eras.py``).
3. **Episodes**: the population with its index date(s) and the anchor dates
   (landmarks, exposure points, follow-up start).
4. **One aggregation per source**: tagged events ⋈ episodes grouped by episode computes
   every windowed count, first date and comorbidity condition at once; eras ⋈ episodes likewise;
   coverage rules over enrollment spans (``coverage.py``).
5. **Flags and columns**: each criterion is a boolean column per episode; attrition is
   the histogram of how many leading criteria an episode passes (no per-step jobs);
   arms, follow-up, outcomes and covariates are column expressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Callable

from pydantic import BaseModel
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cohortlake.engine.codes import EVENT_COLUMNS, TableNeed, tag_events
from cohortlake.engine.coverage import CoverageCheck, answer_checks
from cohortlake.engine.eras import all_eras
from cohortlake.spec.comorbidity import CONDITIONS as COMORBIDITY_CONDITIONS
from cohortlake.spec.comorbidity import DECIMALS, RULE_OUT_MARGIN_DAYS, TERMS, ComorbidityIndex
from cohortlake.spec.followup import FOLLOWUP_STEP, alive_step, landmark_step, needs_followup_step
from cohortlake.spec.model import (
    SEER_CODES,
    Behavior,
    Boundary,
    CountMode,
    Coverage,
    CoverageRule,
    Definition,
    EraChoice,
    EventSpec,
    EventTable,
    Exposure,
    ExposurePoint,
    ExposureSource,
    Occurrence,
    ReportingSource,
    Setting,
    Stage,
    TumorChoice,
    TumorField,
    Unit,
    Window,
    WithoutClaims,
    seer_code,
)

EPISODE = ["person_id", "index_date"]
FIXED_COLUMNS = (
    "person_id", "index_date", "arm", "landmark_date", "first_exposure_date",
    "followup_start", "followup_end", "event", "time_days",
)
POPULATION_STEP = "Persons in the data"
NO_ARMS = "all"


@dataclass
class Step:
    """One attrition step: its name and its per-episode flag."""

    name: str
    flag: Column


@dataclass
class Aggregates:
    """Aggregate expressions collected from every rule, computed in one groupBy per source."""

    prefix: str
    items: list[tuple[str, Column]] = field(default_factory=list)

    def add(self, expression: Column) -> str:
        name = f"_{self.prefix}{len(self.items)}"
        self.items.append((name, expression))
        return name


def _anchor_column(anchor) -> Column:
    if isinstance(anchor, ExposurePoint):
        return F.col(f"_xp_{anchor.exposure}_{anchor.at.value}")
    if anchor == "index":
        return F.col("index_date")
    return F.col(f"_lm_{anchor}")


def window_bounds(window: Window, anchor=None) -> tuple[Column, Column]:
    """First and last day of a window as date columns of the episode frame."""
    base = _anchor_column(window.relative_to if anchor is None else anchor)
    if window.unit is Unit.months:
        month = F.trunc(base, "month")
        return F.add_months(month, window.from_), F.last_day(F.add_months(month, window.to))
    return F.date_add(base, window.from_), F.date_add(base, window.to)


def age_at(birth: Column, at: Column) -> Column:
    """Whole years; a birthday counts on its anniversary (29 February on 1 March)."""
    before_birthday = (F.month(at) < F.month(birth)) | (
        (F.month(at) == F.month(birth)) & (F.dayofmonth(at) < F.dayofmonth(birth))
    )
    return (F.year(at) - F.year(birth) - F.when(before_birthday, 1).otherwise(0)).cast("int")


def _named(field_type, code: Column) -> Column:
    expression = None
    for value, raw in SEER_CODES[field_type].items():
        expression = (F.when(code == raw, F.lit(value.value)) if expression is None
                      else expression.when(code == raw, F.lit(value.value)))
    return expression.otherwise(code)


class Compiler:
    """Builds every plan of one definition; see the module docstring for the shape."""

    def __init__(self, definition: Definition, frames: dict[str, DataFrame]):
        self.d = definition
        self.frames = frames
        self.spark: SparkSession = next(iter(frames.values())).sparkSession
        self.event_aggs = Aggregates("ev")
        self.era_aggs = Aggregates("er")
        self.claim_aggs = Aggregates("cl")
        self.coverage_checks: list[CoverageCheck] = []
        self._comorbidity_flags: dict[tuple, dict[str, Column]] = {}
        self.cached: list[DataFrame] = []

    # -- inputs -------------------------------------------------------------------------

    def table(self, name: str) -> DataFrame:
        from cohortlake.sources.canonical import SCHEMAS

        if name in self.frames:
            return self.frames[name]
        return self.spark.createDataFrame([], SCHEMAS[name])

    def _persist(self, frame: DataFrame) -> DataFrame:
        frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        self.cached.append(frame)
        return frame

    def release(self) -> None:
        """Drop everything this build persisted."""
        for frame in self.cached:
            frame.unpersist()
        self.cached.clear()

    def event_specs(self) -> list[tuple[tuple[str, ...], tuple[EventTable, ...]]]:
        """(code sets, tables) of every rule that reads coded events."""
        d = self.d
        specs: list[tuple[tuple[str, ...], tuple[EventTable, ...]]] = []

        def add(spec) -> None:
            specs.append((tuple(spec.codesets), tuple(spec.tables)))

        if d.index.kind == "event":
            add(d.index.event)
        for criterion in d.criteria:
            if criterion.kind == "occurrence" and criterion.occurrence.codesets is not None:
                add(criterion.occurrence)
            elif criterion.kind == "washout":
                add(criterion.washout)
        for exposure in d.exposures.values():
            table = EventTable.dispensing if exposure.source is ExposureSource.dispensing else EventTable.procedure
            specs.append((tuple(exposure.codesets), (table,)))
        for outcome in d.outcomes:
            if outcome.kind == "event":
                add(outcome.event)
        for varying in d.time_varying:
            if varying.kind == "event":
                add(varying.event)
        for covariate in d.covariates:
            if covariate.kind in ("flag", "count"):
                add(covariate.rule)
            elif covariate.kind in ("nci_comorbidity", "charlson"):
                stem = covariate.rule.conditions
                specs.append((tuple(f"{stem}.{c}" for c in COMORBIDITY_CONDITIONS), (EventTable.diagnosis,)))
        return specs

    def tagged_events(self) -> DataFrame:
        """Rows of the claims tables in any code set the definition uses (one scan each)."""
        per_table: dict[EventTable, dict[str, object]] = {}
        for sets, tables in self.event_specs():
            for table in tables:
                for name in sets:
                    per_table.setdefault(table, {})[name] = self.d.codeset(name)
        frames = [
            tag_events(self.spark, self.table(table.value), TableNeed(table, tuple(sets.values())))
            for table, sets in sorted(per_table.items())
        ]
        if not frames:
            from pyspark.sql.types import DateType, IntegerType, StringType, StructField, StructType

            schema = StructType([
                StructField(c, DateType() if c == "date" else IntegerType() if c == "days_supply" else StringType())
                for c in EVENT_COLUMNS
            ])
            return self.spark.createDataFrame([], schema)
        events = frames[0]
        for frame in frames[1:]:
            events = events.unionByName(frame)
        return self._persist(events)

    # -- conditions on tagged events ---------------------------------------------------

    @staticmethod
    def event_condition(codesets, tables, settings=None) -> Column:
        condition = F.col("codeset").isin([str(s) for s in codesets]) & F.col("table").isin([t.value for t in tables])
        if settings:
            condition = condition & (F.col("setting").isNull() | F.col("setting").isin([s.value for s in settings]))
        return condition

    @staticmethod
    def record_condition(exposure: Exposure) -> Column:
        sets = [str(s) for s in exposure.codesets]
        if exposure.source is ExposureSource.dispensing:
            return (F.col("table") == "dispensing") & F.col("codeset").isin(sets)
        return (
            (F.col("table") == "procedure") & F.col("codeset").isin(sets)
            & F.col("setting").isin([s.value for s in exposure.record_settings()])
        )

    def count_events(self, condition: Column, mode: CountMode) -> str:
        value = {CountMode.distinct_dates: F.col("date"), CountMode.claims: F.col("claim_key"),
                 CountMode.events: F.col("row_key")}[mode]
        return self.event_aggs.add(F.size(F.collect_set(F.when(condition, value))))

    def in_window(self, window: Window, anchor=None) -> tuple[Column, Column, Column]:
        lo, hi = window_bounds(window, anchor)
        return lo, hi, F.col("date").between(lo, hi)

    # -- episodes -------------------------------------------------------------------------

    def index_rows(self, events: DataFrame, eras: DataFrame | None) -> DataFrame:
        """(person_id, index_date, tumor fields...) of every index (several per person with 'each')."""
        index = self.d.index
        if index.kind == "tumor":
            return self.tumor_index(index.tumor)
        if index.kind == "event":
            spec = index.event
            rows = events.where(self.event_condition(spec.codesets, spec.tables, spec.settings))
            return self._dates(rows.select("person_id", F.col("date").alias("index_date")), spec.occurrence)
        rule = index.rule
        label = rule.name if index.kind == "exposure" else f"regimen:{rule.name}"
        boundary = "era_start" if rule.at is Boundary.start else "era_end"
        rows = eras.where(F.col("exposure") == label).select("person_id", F.col(boundary).alias("index_date"))
        return self._dates(rows, rule.occurrence)

    @staticmethod
    def _dates(rows: DataFrame, occurrence: Occurrence) -> DataFrame:
        if occurrence is Occurrence.first:
            return rows.groupBy("person_id").agg(F.min("index_date").alias("index_date"))
        return rows.distinct()

    def tumor_index(self, rule) -> DataFrame:
        tumors = self.table("tumor")
        condition = F.lit(True)
        for column, written, system in (("primary_site", rule.primary_site, "icdo3_site"),
                                        ("histology", rule.histology, "icdo3_histology")):
            if written:
                condition = condition & self._tumor_code_matches(column, written, system)
        if rule.behavior:
            condition = condition & F.col("behavior").isin([seer_code(b) for b in rule.behavior])
        known_month = F.col("diagnosis_month").between(1, 12)
        year_key = F.coalesce(F.col("diagnosis_year"), F.lit(10**6))
        month_key = F.when(known_month, F.col("diagnosis_month")).otherwise(F.lit(99))
        tail = [F.col(c).asc_nulls_last() for c in ("histology", "primary_site", "behavior", "historic_stage", "reporting_source")]
        if rule.choose is TumorChoice.lowest_sequence_number:
            order = [F.col("sequence_number").asc_nulls_last(), year_key, month_key, *tail]
        else:
            order = [year_key, month_key, F.col("sequence_number").asc_nulls_last(), *tail]
        from pyspark.sql import Window as W

        ranked = tumors.where(condition).withColumn("_rank", F.row_number().over(W.partitionBy("person_id").orderBy(*order)))
        chosen = ranked.where(F.col("_rank") == 1)
        index_date = F.when(
            F.col("diagnosis_year").isNotNull() & known_month,
            F.make_date(F.col("diagnosis_year"), F.col("diagnosis_month"), F.lit(rule.date.day_of_month)),
        )
        fields = ("sequence_number", "diagnosis_year", "diagnosis_month", "primary_site", "histology",
                  "behavior", "historic_stage", "reporting_source")
        return chosen.select("person_id", index_date.alias("index_date"), *[F.col(f).alias(f"_t_{f}") for f in fields])

    def _tumor_code_matches(self, column: str, written, system: str) -> Column:
        import re

        from cohortlake.spec.codes import normalise

        entries = []
        for item in written:
            if re.fullmatch(r"[a-z][a-z0-9_]*", item):
                entries.extend(self.d.codeset(item).for_system(system))
            else:
                entries.append(normalise(system, item))
        code = F.upper(F.regexp_replace(F.col(column), r"\.", ""))
        condition = F.lit(False)
        for entry in entries:
            if entry.kind == "exact":
                condition = condition | (code == entry.value)
            elif entry.kind == "prefix":
                condition = condition | code.startswith(entry.value)
            else:
                head = F.substring(code, 1, len(entry.low))
                condition = condition | ((F.length(head) == len(entry.low)) & head.between(entry.low, entry.high))
        return condition

    def episodes(self, index_rows: DataFrame) -> DataFrame:
        """The population (person table ∪ indexed persons), one row per episode."""
        persons = self.table("person").select("person_id").unionByName(index_rows.select("person_id")).distinct()
        indexed = index_rows.withColumn("_has_index", F.lit(True))
        episodes = persons.join(indexed, "person_id", "left").withColumn(
            "_has_index", F.coalesce(F.col("_has_index"), F.lit(False))
        )
        person = self.table("person").groupBy("person_id").agg(
            F.first("birth_date").alias("_birth_date"), F.first("sex").alias("_sex"), F.first("race").alias("_race")
        )
        death = self.table("death").groupBy("person_id").agg(F.min("death_date").alias("_death_date"))
        return episodes.join(person, "person_id", "left").join(death, "person_id", "left")

    def exposure_points(self) -> set[str]:
        """Exposures used as anchors (landmark from, window relative_to, follow-up start)."""
        points: set[str] = set()

        def visit(value) -> None:
            if isinstance(value, ExposurePoint):
                points.add(value.exposure)
            elif isinstance(value, dict):
                for item in value.values():
                    visit(item)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    visit(item)
            elif isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    visit(getattr(value, name))

        visit(self.d)
        return points

    def with_anchors(self, episodes: DataFrame, eras: DataFrame | None) -> DataFrame:
        points = sorted(self.exposure_points())
        if points:
            aggs = []
            for name in points:
                first_from_index = (F.col("exposure") == name) & (F.col("era_start") >= F.col("index_date"))
                aggs.append(F.min(F.when(first_from_index, F.col("era_start"))).alias(f"_xp_{name}_start"))
                aggs.append(F.min_by(F.col("era_end"), F.when(first_from_index, F.col("era_start"))).alias(f"_xp_{name}_end"))
            joined = episodes.where(F.col("index_date").isNotNull()).select(*EPISODE).join(eras, "person_id")
            anchors = joined.groupBy(*EPISODE).agg(*aggs)
            episodes = episodes.join(anchors, EPISODE, "left")
        for landmark in self.d.landmarks:
            episodes = episodes.withColumn(f"_lm_{landmark.name}", F.date_add(_anchor_column(landmark.from_), landmark.days))
        return episodes.withColumn("_fs", _anchor_column(self.d.followup.start))

    # -- rules ----------------------------------------------------------------------------

    def coverage_check(self, rule: CoverageRule, column_prefix: str, default_anchor=None) -> Column:
        window = rule.window
        anchor = default_anchor if (default_anchor is not None and "relative_to" not in window.model_fields_set) else None
        lo, hi = window_bounds(window, anchor)
        if rule.truncate_at_death:
            death = F.col("_death_date")
            cut = F.last_day(death) if window.unit is Unit.months else death
            hi = F.least(hi, cut)
        flags = []
        for mode, types in (("require", rule.require), ("exclude", rule.exclude)):
            for coverage in types:
                column = f"_cv_{column_prefix}_{mode}_{coverage.value}"
                self.coverage_checks.append(CoverageCheck(column, mode, coverage, lo, hi, rule.allowed_gap_days))
                flags.append(F.col(column))
        valid = lo.isNotNull() & hi.isNotNull()
        result = valid
        for flag in flags:
            result = result & F.coalesce(flag, F.lit(False))
        return result

    def occurrence_count(self, rule, window: Window) -> tuple[Column, Column]:
        """(count column, anchor-exists column) of an occurrence-like rule."""
        lo, hi, inside = self.in_window(window)
        if getattr(rule, "exposure", None) is not None:
            label = rule.exposure.name
            boundary = "era_start" if rule.exposure.at is Boundary.start else "era_end"
            name = self.era_aggs.add(F.size(F.collect_set(F.when(
                (F.col("exposure") == label) & F.col(boundary).between(lo, hi), F.col(boundary)))))
        else:
            condition = self.event_condition(rule.codesets, rule.tables, rule.settings) & inside
            name = self.count_events(condition, getattr(rule, "count", CountMode.distinct_dates))
        return F.coalesce(F.col(name), F.lit(0)), lo.isNotNull()

    def criterion_flag(self, number: int, criterion) -> Column:
        kind, rule = criterion.kind, criterion.rule
        death = F.col("_death_date")
        if kind == "index_exists":
            return F.col("_has_index")
        if kind == "tumor":
            return self.tumor_flag(rule)
        if kind == "age":
            age = age_at(F.col("_birth_date"), _anchor_column(rule.at))
            flag = age.isNotNull()
            if rule.min is not None:
                flag = flag & (age >= rule.min)
            if rule.max is not None:
                flag = flag & (age <= rule.max)
            return flag
        if kind == "sex":
            return F.col("_sex").isin([s.value for s in rule])
        if kind == "alive":
            through = rule.through
            day = F.date_add(F.col("index_date"), through.days) if hasattr(through, "days") else _anchor_column(through)
            return day.isNotNull() & (death.isNull() | (death > day))
        if kind == "index_period":
            flag = F.col("index_date").isNotNull()
            if rule.start is not None:
                flag = flag & (F.col("index_date") >= F.lit(rule.start))
            if rule.end is not None:
                flag = flag & (F.col("index_date") <= F.lit(rule.end))
            return flag
        if kind == "coverage":
            return self.coverage_check(rule, f"c{number}")
        if kind == "occurrence":
            count, valid = self.occurrence_count(rule, rule.window)
            bound, n = rule.bound
            compare = {"at_least": count >= n, "at_most": count <= n, "exactly": count == n}[bound]
            return valid & compare
        if kind == "washout":
            count, valid = self.occurrence_count(rule, rule.as_window())
            return valid & (count == 0)
        raise ValueError(f"no engine rule for criterion kind {kind}")

    def tumor_flag(self, rule) -> Column:
        flag = F.lit(True)
        if rule.sequence_number is not None:
            flag = flag & F.col("_t_sequence_number").isin(list(rule.sequence_number))
        if rule.diagnosis_year is not None:
            year = F.col("_t_diagnosis_year")
            flag = flag & year.isNotNull()
            if rule.diagnosis_year.min is not None:
                flag = flag & (year >= rule.diagnosis_year.min)
            if rule.diagnosis_year.max is not None:
                flag = flag & (year <= rule.diagnosis_year.max)
        if rule.diagnosis_month_known is not None:
            month = F.col("_t_diagnosis_month")
            known = month.between(1, 12)
            flag = flag & month.isNotNull() & (known if rule.diagnosis_month_known else ~known)
        if rule.reporting_source is not None:
            source = F.col("_t_reporting_source")
            if rule.reporting_source.include is not None:
                flag = flag & source.isin([seer_code(s) for s in rule.reporting_source.include])
            else:
                flag = flag & source.isNotNull() & ~source.isin([seer_code(s) for s in rule.reporting_source.exclude])
        if rule.stage is not None:
            flag = flag & F.col("_t_historic_stage").isin([seer_code(s) for s in rule.stage])
        if rule.behavior is not None:
            flag = flag & F.col("_t_behavior").isin([seer_code(b) for b in rule.behavior])
        return flag

    def landmark_flag(self, landmark) -> Column:
        day = F.col(f"_lm_{landmark.name}")
        flag = day.isNotNull()
        if landmark.require_alive:
            flag = flag & (F.col("_death_date").isNull() | (F.col("_death_date") > day))
        if landmark.require_coverage is not None:
            flag = flag & self.coverage_check(landmark.require_coverage, f"lm_{landmark.name}", default_anchor=landmark.name)
        return flag

    def steps(self) -> list[Step]:
        steps = [Step(c.name, self.criterion_flag(i, c)) for i, c in enumerate(self.d.criteria, 1)]
        landmark = landmark_step(self.d)
        if landmark is not None:
            steps.append(Step(f"In landmark {landmark.name} analysis", F.col(f"_in_{landmark.name}")))
        alive = alive_step(self.d)
        if alive is not None:
            # a recorded death before follow-up starts would make follow-up run backwards
            death, start = F.col("_death_date"), F.col("_fs")
            steps.append(Step(alive, death.isNull() | start.isNull() | (death >= start)))
        if needs_followup_step(self.d):
            # a follow-up start after the study end would make follow-up run backwards
            start = F.col("_fs")
            steps.append(Step(FOLLOWUP_STEP, start.isNull() | (start <= F.lit(self.d.study_period.end))))
        return steps

    # -- arms, follow-up, outcomes ---------------------------------------------------------

    def arm_columns(self) -> tuple[Column, Column]:
        arm = None
        first_date = None
        for rule in self.d.arms:
            kind = rule.kind
            if kind == "otherwise":
                holds, when_date = F.lit(True), F.lit(None).cast("date")
            elif kind == "exposure_start":
                exposure = self.d.exposures[rule.exposure_start.exposure]
                lo, hi, inside = self.in_window(rule.exposure_start.window)
                name = self.event_aggs.add(F.min(F.when(self.record_condition(exposure) & inside, F.col("date"))))
                when_date = F.col(name)
                holds = when_date.isNotNull()
            elif kind == "era_duration":
                spec = rule.era_duration
                first = (F.col("exposure") == spec.exposure) & (F.col("era_start") >= F.col("index_date"))
                start = self.era_aggs.add(F.min(F.when(first, F.col("era_start"))))
                end = self.era_aggs.add(F.min_by(F.col("era_end"), F.when(first, F.col("era_start"))))
                duration = F.datediff(F.col(end), F.col(start)) + 1
                holds = F.col(start).isNotNull()
                if spec.min_days is not None:
                    holds = holds & (duration >= spec.min_days)
                if spec.max_days is not None:
                    holds = holds & (duration <= spec.max_days)
                when_date = F.col(start)
            elif kind == "era_on_at":
                spec = rule.era_on_at
                day = F.col(f"_lm_{spec.landmark}")
                covering = (F.col("exposure") == spec.exposure) & (F.col("era_start") <= day) & (F.col("era_end") >= day)
                when_date = F.col(self.era_aggs.add(F.min(F.when(covering, F.col("era_start")))))
                holds = when_date.isNotNull()
            else:  # regimen
                spec = rule.regimen
                lo, hi = window_bounds(spec.window)
                starts = (F.col("exposure") == f"regimen:{spec.name}") & F.col("era_start").between(lo, hi)
                when_date = F.col(self.era_aggs.add(F.min(F.when(starts, F.col("era_start")))))
                holds = when_date.isNotNull()
            if arm is None:
                arm, first_date = F.when(holds, F.lit(rule.name)), F.when(holds, when_date)
            else:
                arm, first_date = arm.when(holds, F.lit(rule.name)), first_date.when(holds, when_date)
        if arm is None:
            return F.lit(NO_ARMS), F.lit(None).cast("date")
        return arm, first_date

    def followup_end(self) -> Column:
        ends = []
        fs = F.col("_fs")
        for item in self.d.followup.end:
            kind = item.kind
            if kind == "death":
                ends.append(F.col("_death_date"))
            elif kind == "study_end":
                ends.append(F.lit(self.d.study_period.end))
            elif kind == "coverage_end":
                for coverage in item.coverage_end.require:
                    column = f"_cvend_{coverage.value}_{len(self.coverage_checks)}"
                    self.coverage_checks.append(CoverageCheck(column, "run_end", coverage, gap=item.coverage_end.allowed_gap_days, start=fs))
                    ends.append(F.col(column))
            else:
                spec = item.exposure_end
                until = F.date_add(F.col("era_end"), spec.grace_days)
                current = (F.col("exposure") == spec.exposure) & (F.col("era_start") <= fs) & (until >= fs)
                name = self.era_aggs.add(F.max(F.when(current, until)))
                ends.append(F.coalesce(F.col(name), fs))
        return F.least(*ends) if len(ends) > 1 else ends[0]

    def outcome_dates(self) -> dict[str, Column]:
        """Date each outcome occurs within follow-up (null when it does not)."""
        fs, fe = F.col("_fs"), F.col("followup_end")
        dates = {}
        for outcome in self.d.outcomes:
            if outcome.kind == "death":
                raw = F.col("_death_date")
                dates[outcome.name] = F.when(raw.between(fs, fe), raw)
            else:
                spec = outcome.event
                condition = self.event_condition(spec.codesets, spec.tables, spec.settings) & (F.col("date") > fs)
                first = F.col(self.event_aggs.add(F.min(F.when(condition, F.col("date")))))
                dates[outcome.name] = F.when(first <= fe, first)
        return dates

    def switch_dates(self) -> dict[str, Column]:
        """First event after follow-up start of each time-varying covariate."""
        fs = F.col("_fs")
        switches = {}
        for varying in self.d.time_varying:
            if varying.kind == "event":
                spec = varying.event
                condition = self.event_condition(spec.codesets, spec.tables, spec.settings) & (F.col("date") > fs)
                switches[varying.name] = F.col(self.event_aggs.add(F.min(F.when(condition, F.col("date")))))
            else:
                boundary = "era_start" if varying.exposure.at is Boundary.start else "era_end"
                condition = (F.col("exposure") == varying.exposure.name) & (F.col(boundary) > fs)
                switches[varying.name] = F.col(self.era_aggs.add(F.min(F.when(condition, F.col(boundary)))))
        return switches

    # -- covariates ----------------------------------------------------------------------

    def covariate_columns(self) -> list[tuple[str, Callable[[dict[str, Column]], Column]]]:
        """(name, builder) per covariate; builders get the earlier covariates' columns (scores)."""
        out = []
        for covariate in self.d.covariates:
            out.append((covariate.name, self.covariate(covariate)))
        return out

    def covariate(self, covariate) -> Callable[[dict[str, Column]], Column]:
        kind, rule = covariate.kind, covariate.rule
        if kind == "age":
            column = age_at(F.col("_birth_date"), _anchor_column(rule.at))
        elif kind == "sex":
            column = F.col("_sex")
        elif kind == "race":
            if rule.groups:
                column = None
                for group, races in rule.groups.items():
                    test = F.col("_race").isin([r.value for r in races])
                    column = F.when(test, F.lit(group)) if column is None else column.when(test, F.lit(group))
            else:
                column = F.col("_race")
        elif kind == "index_year":
            column = F.year("index_date")
        elif kind == "tumor_field":
            raw = F.col(f"_t_{'historic_stage' if rule.field is TumorField.stage else rule.field.value}")
            named = {TumorField.stage: Stage, TumorField.behavior: Behavior, TumorField.reporting_source: ReportingSource}
            column = _named(named[rule.field], raw) if rule.field in named else raw
        elif kind == "coverage_flag":
            lo, hi = window_bounds(rule.window)
            name = f"_cvflag_{covariate.name}"
            self.coverage_checks.append(CoverageCheck(name, "any", rule.coverage, lo, hi))
            column = F.when(lo.isNotNull(), F.coalesce(F.col(name), F.lit(0)))
        elif kind in ("nci_comorbidity", "charlson"):
            column = self.comorbidity_index(ComorbidityIndex.nci if kind == "nci_comorbidity" else ComorbidityIndex.charlson, rule)
        elif kind in ("flag", "count"):
            lo, hi, inside = self.in_window(rule.window)
            condition = self.event_condition(rule.codesets, rule.tables, rule.settings) & inside
            mode = CountMode.distinct_dates if kind == "flag" else rule.count
            count = F.coalesce(F.col(self.count_events(condition, mode)), F.lit(0))
            value = F.when(count >= rule.at_least, 1).otherwise(0) if kind == "flag" else count
            column = F.when(lo.isNotNull(), value)
        elif kind == "score":
            return lambda earlier, rule=rule: self.score(rule, earlier)
        elif kind == "exposure_duration":
            exposure = F.col("exposure") == rule.exposure
            duration = F.datediff(F.col("era_end"), F.col("era_start")) + 1
            if rule.era is EraChoice.first_from_index:
                order = F.when(exposure & (F.col("era_start") >= F.col("index_date")), F.col("era_start"))
                column = F.col(self.era_aggs.add(F.min_by(duration, order)))
            else:
                order = F.when(exposure & (F.col("era_start") < F.col("index_date")), F.col("era_start"))
                column = F.col(self.era_aggs.add(F.max_by(duration, order)))
        else:
            raise ValueError(f"no engine rule for covariate kind {kind}")
        return lambda earlier, column=column: column

    def comorbidity_conditions(self, rule) -> dict[str, Column]:
        """Whether each of the macro's conditions is present, as NCI.comorbidity.macro.sas decides it.

        A condition needs a diagnosis claim starting in the window. With rule-out, it
        also needs a MedPAR (inpatient) claim for it, or its first and last claims more
        than 30 days apart, both read from 30 days before to 30 days after the window.
        """
        key = (rule.conditions, rule.window, rule.rule_out)
        if key in self._comorbidity_flags:
            return self._comorbidity_flags[key]
        lo, hi, inside = self.in_window(rule.window)
        margin = RULE_OUT_MARGIN_DAYS
        around = F.col("date").between(F.date_sub(lo, margin), F.date_add(hi, margin))
        present: dict[str, Column] = {}
        for name in COMORBIDITY_CONDITIONS:
            of_condition = (F.col("codeset") == f"{rule.conditions}.{name}") & (F.col("table") == EventTable.diagnosis.value)
            in_window = F.col(self.event_aggs.add(F.max(F.when(of_condition & inside, 1)))).isNotNull()
            if not rule.rule_out:
                present[name] = in_window
                continue
            nearby = of_condition & around
            hospital = F.col(self.event_aggs.add(F.max(F.when(nearby & (F.col("setting") == Setting.inpatient.value), 1))))
            first = F.col(self.event_aggs.add(F.min(F.when(nearby, F.col("date")))))
            last = F.col(self.event_aggs.add(F.max(F.when(nearby, F.col("date")))))
            present[name] = in_window & (hospital.isNotNull() | (F.datediff(last, first) > margin))
        self._comorbidity_flags[key] = present
        return present

    def comorbidity_index(self, index: ComorbidityIndex, rule) -> Column:
        """The macro's Charlson score or NCI index over its condition flags (terms in spec.comorbidity)."""
        lo, _ = window_bounds(rule.window)
        value = comorbidity_index_column(index, self.comorbidity_conditions(rule))
        if rule.without_claims is WithoutClaims.missing:
            value = F.when(self.any_claim_in(rule.window), value)
        return F.when(lo.isNotNull(), value)

    def any_claim_in(self, window: Window) -> Column:
        """Whether the episode has any diagnosis claim starting in the window (read by one extra aggregation)."""
        lo, hi = window_bounds(window)
        return F.col(self.claim_aggs.add(F.max(F.when(F.col("date").between(lo, hi), 1)))).isNotNull()

    def score(self, rule, earlier: dict[str, Column]) -> Column:
        total = F.lit(0.0)
        for term in rule.terms:
            value = earlier[term.covariate]
            if term.equals is not None:
                test = value.cast("string") == F.lit(term.equals)
            elif term.at_least is not None:
                test = value.cast("double") >= F.lit(float(term.at_least))
            else:
                test = value.cast("double") == F.lit(1.0)
            total = total + F.when(F.coalesce(test, F.lit(False)), F.lit(float(term.points))).otherwise(F.lit(0.0))
        if not rule.groups:
            return total
        banded = None
        for group in rule.groups:
            test = F.lit(True)
            if group.min is not None:
                test = test & (total >= F.lit(float(group.min)))
            if group.max is not None:
                test = test & (total <= F.lit(float(group.max)))
            banded = F.when(test, F.lit(group.name)) if banded is None else banded.when(test, F.lit(group.name))
        return banded


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


@dataclass
class BuildResult:
    """What a build produces: Spark frames (lazy) plus the attrition (computed)."""

    cohort: DataFrame
    attrition: list[tuple[int, str, int, int]]
    events: DataFrame | None
    flags: DataFrame
    compiler: Compiler

    def release(self) -> None:
        """Free the build's cached frames once its outputs are written."""
        self.compiler.release()


def build_cohort(definition: Definition, frames: dict[str, DataFrame]) -> BuildResult:
    """Compile and run a definition over canonical tables (name → DataFrame)."""
    c = Compiler(definition, frames)
    events = c.tagged_events()
    eras = all_eras(definition, events)
    if eras is not None:
        eras = c._persist(eras)
    episodes = c.episodes(c.index_rows(events, eras))
    # Every aggregation below starts from the episodes: compute them once.
    episodes = c._persist(c.with_anchors(episodes, eras))

    # Compile every rule to column expressions first: that fills the aggregate lists, so
    # one aggregation per source computes them all.
    steps = c.steps()
    landmark_flags = {lm.name: c.landmark_flag(lm) for lm in definition.landmarks}
    arm, first_exposure = c.arm_columns()
    followup_end = c.followup_end()
    covariates = c.covariate_columns()
    switches = c.switch_dates()
    outcome_dates = c.outcome_dates()

    # Event aggregation plus the anchors it needs, then era aggregation.
    needed = [col for col in episodes.columns if col.startswith(("_lm_", "_xp_")) or col in ("_fs",)]
    base = episodes.where(F.col("index_date").isNotNull()).select(*EPISODE, *needed)
    if c.event_aggs.items:
        joined = events.join(base, "person_id")
        event_values = joined.groupBy(*EPISODE).agg(*[expr.alias(name) for name, expr in c.event_aggs.items])
        episodes = episodes.join(event_values, EPISODE, "left")
    if c.claim_aggs.items:
        # Only an index that is empty without claims (as the NCI macro's) reads every
        # diagnosis date, not just the coded events: one more scan, asked for by name.
        claim_dates = c.table("diagnosis").select("person_id", "date").distinct()
        joined = claim_dates.join(base, "person_id")
        claim_values = joined.groupBy(*EPISODE).agg(*[expr.alias(name) for name, expr in c.claim_aggs.items])
        episodes = episodes.join(claim_values, EPISODE, "left")
    if c.era_aggs.items:
        joined = eras.join(base, "person_id")
        era_values = joined.groupBy(*EPISODE).agg(*[expr.alias(name) for name, expr in c.era_aggs.items])
        episodes = episodes.join(era_values, EPISODE, "left")
    coverage = answer_checks(episodes.where(F.col("index_date").isNotNull()), c.table("enrollment"), c.coverage_checks)
    if coverage is not None:
        episodes = episodes.join(coverage, EPISODE, "left")

    for name, flag in landmark_flags.items():
        episodes = episodes.withColumn(f"_in_{name}", F.coalesce(flag, F.lit(False)))
    flag_names = [f"step_{i}" for i in range(1, len(steps) + 1)]
    for name, step in zip(flag_names, steps):
        episodes = episodes.withColumn(name, F.coalesce(step.flag, F.lit(False)))
    depth = F.lit(0)
    passed = F.lit(True)
    for name in flag_names:
        passed = passed & F.col(name)
        depth = depth + F.when(passed, 1).otherwise(0)
    episodes = episodes.withColumn("_depth", depth)
    episodes = c._persist(episodes)

    attrition = _attrition(episodes, [s.name for s in steps])
    flags = episodes.select(*EPISODE, *flag_names)

    included = episodes.where(F.col("_depth") == len(steps))
    included = included.withColumn("arm", arm).withColumn("first_exposure_date", first_exposure)
    included = included.withColumn("followup_start", F.col("_fs")).withColumn("followup_end", followup_end)
    landmark_date = _landmark_date(definition)
    included = included.withColumn("landmark_date", landmark_date)
    outcome_columns, event, time_days = _outcomes(definition, outcome_dates)
    for name, column in outcome_columns:
        included = included.withColumn(name, column)
    included = included.withColumn("event", event).withColumn("time_days", time_days)
    earlier: dict[str, Column] = {}
    for name, builder in covariates:
        column = builder(earlier)
        included = included.withColumn(name, column)
        earlier[name] = F.col(name)
    extra = []
    several = len(definition.landmarks) > 1
    for landmark in definition.landmarks:
        if several:
            included = included.withColumn(f"{landmark.name}_date", F.col(f"_lm_{landmark.name}"))
            extra.append(f"{landmark.name}_date")
        included = included.withColumn(f"in_{landmark.name}", F.col(f"_in_{landmark.name}").cast("int"))
        extra.append(f"in_{landmark.name}")
    extra += [name for name, _ in outcome_columns]
    for name, column in switches.items():
        included = included.withColumn(f"_sw_{name}", column)
    cohort_all = c._persist(included)
    cohort = cohort_all.select(*FIXED_COLUMNS, *[name for name, _ in covariates], *extra)
    events_table = _time_varying_rows(cohort_all, list(switches)) if switches else None
    return BuildResult(cohort, attrition, events_table, flags, c)


def _landmark_date(definition: Definition) -> Column:
    start = definition.followup.start
    if isinstance(start, str) and start != "index":
        return F.col(f"_lm_{start}")
    if definition.landmarks:
        return F.col(f"_lm_{definition.landmarks[0].name}")
    return F.lit(None).cast("date")


def _outcomes(definition: Definition, dates: dict[str, Column]):
    fs, fe = F.col("followup_start"), F.col("followup_end")
    columns: list[tuple[str, Column]] = []
    for outcome in definition.outcomes:
        own = dates[outcome.name]
        competitors = [dates[name] for name in outcome.competing]
        rival = (F.least(*competitors) if len(competitors) > 1 else competitors[0]) if competitors else F.lit(None).cast("date")
        status = F.when(own.isNotNull() & (rival.isNull() | (own <= rival)), 1).when(rival.isNotNull(), 2).otherwise(0)
        until = F.when(status == 1, own).when(status == 2, rival).otherwise(fe)
        columns += [
            (f"{outcome.name}_date", own),
            (f"{outcome.name}_event", status.cast("int")),
            (f"{outcome.name}_time_days", F.datediff(until, fs).cast("int")),
        ]
    if definition.outcomes:
        first = definition.outcomes[0].name
        return columns, F.col(f"{first}_event"), F.col(f"{first}_time_days")
    died = F.col("_death_date").between(fs, fe)
    event = F.when(died, 1).otherwise(0).cast("int")
    return columns, event, F.datediff(F.when(died, F.col("_death_date")).otherwise(fe), fs).cast("int")


def _attrition(episodes: DataFrame, names: list[str]) -> list[tuple[int, str, int, int]]:
    """Persons remaining after each step from one histogram of per-person depth."""
    per_person = episodes.groupBy("person_id").agg(F.max("_depth").alias("depth"))
    histogram = {row["depth"]: row["n"] for row in per_person.groupBy("depth").agg(F.count("*").alias("n")).collect()}
    population = sum(histogram.values())
    rows = [(0, POPULATION_STEP, population, 0)]
    previous = population
    for step, name in enumerate(names, 1):
        remaining = sum(n for depth, n in histogram.items() if depth >= step)
        rows.append((step, name, remaining, previous - remaining))
        previous = remaining
    return rows


def _time_varying_rows(cohort: DataFrame, names: list[str]) -> DataFrame:
    """Counting-process rows: follow-up cut at each covariate's switch day."""
    time = F.col("time_days")
    switch_days = [
        F.when(F.col(f"_sw_{n}").isNotNull() & (F.datediff(F.col(f"_sw_{n}"), F.col("followup_start")) < time),
               F.datediff(F.col(f"_sw_{n}"), F.col("followup_start")))
        for n in names
    ]
    # Counting-process rows need stop_day > start_day (R's survival and lifelines reject anything
    # else), so an episode with no follow-up, or 0 days of it, has no rows.
    rows = cohort.where(time.isNotNull() & (time > 0)).select(
        "person_id", "index_date", "event", "time_days",
        *[day.alias(f"_day_{n}") for n, day in zip(names, switch_days)],
    )
    cuts = F.array_sort(F.array_distinct(F.filter(F.array(*[F.col(f"_day_{n}") for n in names]), lambda x: x.isNotNull())))
    bounds = F.concat(F.array(F.lit(0)), cuts, F.array(time))
    rows = rows.withColumn("_bounds", bounds)
    intervals = F.transform(
        F.sequence(F.lit(0), F.greatest(F.size("_bounds") - 2, F.lit(0))),
        lambda i: F.struct(F.element_at("_bounds", i + 1).alias("start_day"), F.element_at("_bounds", i + 2).alias("stop_day")),
    )
    rows = rows.withColumn("_interval", F.explode(intervals)).select(
        "person_id", "index_date", "event", "time_days",
        *[f"_day_{n}" for n in names], F.col("_interval.start_day").alias("start_day"), F.col("_interval.stop_day").alias("stop_day"),
    )
    last = F.col("stop_day") == F.col("time_days")
    return rows.select(
        "person_id", "index_date", "start_day", "stop_day",
        F.when(last, F.col("event")).otherwise(0).cast("int").alias("event"),
        *[F.when(F.col(f"_day_{n}").isNotNull() & (F.col(f"_day_{n}") <= F.col("start_day")), 1).otherwise(0).alias(n)
          for n in names],
    )
