"""A plain, per-person reference evaluator of cohort definitions: no Spark, no pandas.

It reads ``cohort_defs/README.md`` sentence by sentence and evaluates one person's rows
at a time with simple loops, so that it is obviously right; the generative tests hold
the Spark engine against it. Speed does not matter here, clarity does.

Where the README leaves something open, the reading chosen is written next to the code
as ``READING:``.

Input: ``tables`` = {table name: list of row dicts} of the canonical (silver) tables
(a missing key is an empty table). Output: :class:`Result` with the cohort rows (dicts
keyed by the engine's cohort columns), the attrition steps and the time-varying rows.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from typing import Any, Callable

from cohortlake.spec.codes import CodeSystem, NormalisedCodeSet, matches, normalise
from cohortlake.spec.followup import FOLLOWUP_STEP, alive_step, needs_followup_step
from cohortlake.spec.model import (
    NAME_PATTERN,
    Arm,
    Boundary,
    Covariate,
    CoverageRule,
    Criterion,
    DayOffset,
    Definition,
    EraChoice,
    ExposurePoint,
    ExposureSource,
    FollowupEnd,
    Index,
    Landmark,
    Occurrence,
    OneOf,
    Outcome,
    TimeVarying,
    TumorChoice,
    Unit,
    Window,
)
from cohortlake.vocabulary import (
    SEER_CODES,
    TABLE_SYSTEMS,
    Behavior,
    Coverage,
    EventTable,
    ReportingSource,
    Stage,
)

COMORBIDITY_NAMES = ("acute_mi", "history_mi", "chf", "pvd", "cvd", "copd", "dementia", "paralysis", "diabetes",
                     "diabetes_comp", "renal_disease", "mild_liver_disease", "liver_disease", "ulcers", "rheum_disease",
                     "aids")


def macro_charlson(c: dict[str, bool]) -> float:
    """The macro's Charlson statement, transcribed term by term (SAS: true = 1)."""
    score = (1 * (c["acute_mi"] or c["history_mi"]) + 1 * c["chf"] + 1 * c["pvd"] + 1 * c["cvd"] + 1 * c["copd"]
             + 1 * c["dementia"] + 2 * c["paralysis"] + 1 * (c["diabetes"] and not c["diabetes_comp"])
             + 2 * c["diabetes_comp"] + 2 * c["renal_disease"]
             + 1 * (c["mild_liver_disease"] and not c["liver_disease"]) + 3 * c["liver_disease"] + 1 * c["ulcers"]
             + 1 * c["rheum_disease"] + 6 * c["aids"])
    return float(score)


def macro_nci_index(c: dict[str, bool]) -> float:
    """The macro's NCI_index statement, transcribed term by term, rounded to its weights' 5 decimals."""
    index = (0.12624 * c["acute_mi"] + 0.07999 * c["history_mi"] + 0.64441 * c["chf"] + 0.26232 * c["pvd"]
             + 0.27868 * c["cvd"] + 0.52487 * c["copd"] + 0.72219 * c["dementia"] + 0.39882 * c["paralysis"]
             + 0.29408 * (c["diabetes"] or c["diabetes_comp"]) + 0.47010 * c["renal_disease"]
             + 0.73803 * (c["mild_liver_disease"] or c["liver_disease"]) + 0.07506 * c["ulcers"]
             + 0.21905 * c["rheum_disease"] + 0.58362 * c["aids"])
    return round(index, 5)


TABLES = ("person", "death", "enrollment", "tumor", "diagnosis", "procedure", "dispensing")
EVENT_TABLES = ("diagnosis", "procedure", "dispensing")


@dataclass
class Result:
    """What a build produces: cohort rows, attrition steps, time-varying rows (or None)."""

    cohort: list[dict]
    attrition: list[tuple[int, str, int, int]]
    events: list[dict] | None


# ---------------------------------------------------------------------------------------
# Column lists
# ---------------------------------------------------------------------------------------

BASE_COLUMNS = [
    "person_id", "index_date", "arm", "landmark_date", "first_exposure_date",
    "followup_start", "followup_end", "event", "time_days",
]


def cohort_columns(definition: Definition) -> list[str]:
    """The cohort's columns, in order.

    `in_<landmark>` for every landmark, `<landmark>_date` only when there are several.
    READING: should a landmark named `landmark` then give a second `landmark_date`, the
    name appears once, where the base column is, holding the base column's value.
    """
    columns = list(BASE_COLUMNS)
    columns += [c.name for c in definition.covariates]
    several = len(definition.landmarks) > 1
    for landmark in definition.landmarks:
        columns += ([f"{landmark.name}_date"] if several else []) + [f"in_{landmark.name}"]
    for outcome in definition.outcomes:
        columns += [f"{outcome.name}_date", f"{outcome.name}_event", f"{outcome.name}_time_days"]
    return list(dict.fromkeys(columns))


def event_columns(definition: Definition) -> list[str]:
    """The columns of the time-varying (start/stop) table, in order."""
    return ["person_id", "index_date", "start_day", "stop_day", "event"] + [t.name for t in definition.time_varying]


# ---------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------


def plus_days(day: date, n: int) -> date:
    return day + timedelta(days=n)


def days_between(first: date, last: date) -> int:
    return (last - first).days


def first_day_of_month(anchor: date, offset: int) -> date:
    """First day of the calendar month `offset` months from anchor's month."""
    months = anchor.year * 12 + (anchor.month - 1) + offset
    return date(months // 12, months % 12 + 1, 1)


def last_day_of_month(anchor: date, offset: int) -> date:
    """Last day of the calendar month `offset` months from anchor's month."""
    first = first_day_of_month(anchor, offset)
    return date(first.year, first.month, calendar.monthrange(first.year, first.month)[1])


def window_bounds(window: Window, anchor: date | None) -> tuple[date, date] | None:
    """The window's first and last day around anchor; None when the anchor is missing."""
    if anchor is None:
        return None
    if window.unit == Unit.days:
        return plus_days(anchor, window.from_), plus_days(anchor, window.to)
    return first_day_of_month(anchor, window.from_), last_day_of_month(anchor, window.to)


def age_on(birth: date | None, day: date | None) -> int | None:
    """Whole years; a birthday counts on its anniversary (29 February on 1 March)."""
    if birth is None or day is None:
        return None
    years = day.year - birth.year
    # Comparing (month, day) pairs: (2, 28) < (2, 29) but (3, 1) > (2, 29), so a
    # 29 February birthday counts on 1 March in a non-leap year.
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years


def each_day(first: date, last: date):
    day = first
    while day <= last:
        yield day
        day = plus_days(day, 1)


# ---------------------------------------------------------------------------------------
# One person's rows
# ---------------------------------------------------------------------------------------


@dataclass
class PersonRows:
    person_id: str
    person: dict | None = None
    death: dict | None = None
    enrollment: list[dict] = field(default_factory=list)
    tumor: list[dict] = field(default_factory=list)
    diagnosis: list[dict] = field(default_factory=list)
    procedure: list[dict] = field(default_factory=list)
    dispensing: list[dict] = field(default_factory=list)

    @property
    def death_date(self) -> date | None:
        return self.death["death_date"] if self.death else None

    @property
    def birth_date(self) -> date | None:
        return self.person.get("birth_date") if self.person else None


def group_by_person(tables: dict[str, list[dict]]) -> dict[str, PersonRows]:
    people: dict[str, PersonRows] = {}

    def rows_of(pid: str) -> PersonRows:
        if pid not in people:
            people[pid] = PersonRows(pid)
        return people[pid]

    for row in tables.get("person", []):
        rows_of(row["person_id"]).person = row
    for row in tables.get("death", []):
        rows_of(row["person_id"]).death = row
    for name in ("enrollment", "tumor", "diagnosis", "procedure", "dispensing"):
        for row in tables.get(name, []):
            getattr(rows_of(row["person_id"]), name).append(row)
    return people


# ---------------------------------------------------------------------------------------
# Eras
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """An exposure record: its date and the days it covers."""

    date: date
    days: int


@dataclass(frozen=True)
class Era:
    start: date
    end: date

    @property
    def duration(self) -> int:
        return days_between(self.start, self.end) + 1


def build_eras(records: list[Record], grace_days: int, stockpiling: bool) -> list[Era]:
    """Records by date → eras (README "Exposures and eras").

    READING: the era goes on while the record's own (dispensing) date is at most
    grace_days after the era's current end, as the README's formula `date ≤ end +
    grace_days` says; with stockpiling a record dated on or before the running supply's
    end therefore always continues the era (even with grace 0) and is then moved to
    start the day after that end.
    """
    eras: list[Era] = []
    start = end = None
    for record in sorted(records, key=lambda r: r.date):
        if start is None:
            start, end = record.date, plus_days(record.date, record.days - 1)
            continue
        if record.date <= plus_days(end, grace_days):
            record_start = record.date
            if stockpiling and record.date <= end:
                record_start = plus_days(end, 1)
            end = max(end, plus_days(record_start, record.days - 1))
        else:
            eras.append(Era(start, end))
            start, end = record.date, plus_days(record.date, record.days - 1)
    if start is not None:
        eras.append(Era(start, end))
    return eras


# ---------------------------------------------------------------------------------------
# The evaluator
# ---------------------------------------------------------------------------------------

STAGE_NAMES = {code: value.value for value, code in SEER_CODES[Stage].items()}
BEHAVIOR_NAMES = {code: value.value for value, code in SEER_CODES[Behavior].items()}
REPORTING_NAMES = {code: value.value for value, code in SEER_CODES[ReportingSource].items()}


def month_known(month: int | None) -> bool:
    return month is not None and 1 <= month <= 12


@dataclass
class Episode:
    """One index of one person (a person without an index has one episode without one)."""

    rows: PersonRows
    has_index: bool
    index_date: date | None
    tumor: dict | None = None


class Evaluator:
    """Evaluates one definition over the rows of one person at a time."""

    def __init__(self, definition: Definition):
        self.d = definition
        self._codesets: dict[str, NormalisedCodeSet] = {}

    # --- code sets and events ---------------------------------------------------------

    def codeset(self, name: str) -> NormalisedCodeSet:
        if name not in self._codesets:
            self._codesets[name] = self.d.codeset(name)
        return self._codesets[name]

    def row_matches(self, table: str, row: dict, sets: list[NormalisedCodeSet]) -> bool:
        """Whether a row of a claims table is an event of any of the code sets."""
        if table == "dispensing":
            return any(s.matches(CodeSystem.ndc, row.get("ndc")) or s.matches_generic_name(row.get("generic_name"))
                       for s in sets)
        system = row.get("code_system")
        if system not in [str(s) for s in TABLE_SYSTEMS[EventTable(table)]]:
            return False
        return any(s.matches(system, row.get("code")) for s in sets)

    def events(self, rows: PersonRows, codesets, tables, settings=None) -> list[tuple[str, dict]]:
        """(table, row) of every event of the code sets in the tables (and settings)."""
        sets = [self.codeset(n) for n in codesets]
        found = []
        for table in tables:
            table = str(table)
            for row in getattr(rows, table):
                # Dispensing rows have no setting and are kept by any `settings`.
                if settings is not None and table != "dispensing" and row.get("setting") not in [str(s) for s in settings]:
                    continue
                if self.row_matches(table, row, sets):
                    found.append((table, row))
        return found

    @staticmethod
    def count(events: list[tuple[str, dict]], mode: str) -> int:
        if mode == "distinct_dates":
            return len({row["date"] for _, row in events})
        if mode == "claims":
            # READING: a missing claim id is a value like any other, so (table, None) is
            # one pair.
            return len({(row.get("source_table"), row.get("claim_id")) for _, row in events})
        # events: distinct rows; identical rows of one table count once.
        return len({(table, tuple(sorted(row.items()))) for table, row in events})

    # --- exposures, eras, regimens ----------------------------------------------------

    def records(self, rows: PersonRows, name: str) -> list[Record]:
        exposure = self.d.exposures[name]
        found = []
        if exposure.source == ExposureSource.dispensing:
            # READING: a fill is a row; identical rows are one fill (as identical rows
            # are one event when counting). Distinct fills on one day are each a record.
            supply = exposure.days_supply
            fills = []
            for _, row in self.events(rows, exposure.codesets, ["dispensing"]):
                if row not in fills:
                    fills.append(row)
            for row in fills:
                days = row.get("days_supply")
                if days is None or days < supply.min:
                    days = supply.default
                days = min(days, supply.max)
                found.append(Record(row["date"], days))
        else:
            # One record per distinct administration date.
            dates = {row["date"] for _, row in self.events(rows, exposure.codesets, ["procedure"],
                                                           exposure.record_settings())}
            for day in sorted(dates):
                found.append(Record(day, exposure.administration_days))
        return found

    def eras(self, rows: PersonRows, name: str) -> list[Era]:
        exposure = self.d.exposures[name]
        return build_eras(self.records(rows, name), exposure.grace_days, exposure.stockpiling)

    def regimens(self, rows: PersonRows, name: str) -> list[Era]:
        """Regimen (start, end): anchor era starts with a `with` era start within N days."""
        regimen = self.d.regimens[name]
        other_starts = [era.start for other in regimen.with_ for era in self.eras(rows, other)]
        found = []
        for era in self.eras(rows, regimen.anchor):
            if any(abs(days_between(era.start, s)) <= regimen.within_days for s in other_starts):
                found.append(era)
        return found

    @staticmethod
    def boundary(eras: list[Era], at) -> list[date]:
        return [era.start if at == Boundary.start else era.end for era in eras]

    # --- index ------------------------------------------------------------------------

    def tumor_allowed(self, tumor: dict) -> bool:
        spec = self.d.index.tumor

        def allowed(items, system: CodeSystem, value) -> bool:
            if not items:
                return True
            if value is None:
                return False
            for item in items:
                if re.fullmatch(NAME_PATTERN, item):
                    entries = self.codeset(item).for_system(system)
                else:
                    entries = (normalise(system, item),)
                if any(matches(e, value) for e in entries):
                    return True
            return False

        if not allowed(spec.primary_site, CodeSystem.icdo3_site, tumor.get("primary_site")):
            return False
        if not allowed(spec.histology, CodeSystem.icdo3_histology, tumor.get("histology")):
            return False
        if spec.behavior and tumor.get("behavior") not in [SEER_CODES[Behavior][b] for b in spec.behavior]:
            return False
        return True

    def index_tumor(self, rows: PersonRows) -> dict | None:
        spec = self.d.index.tumor
        candidates = [t for t in rows.tumor if self.tumor_allowed(t)]
        if not candidates:
            return None

        # Unknown years and months sort after known ones.
        def year_key(t):
            return (t.get("diagnosis_year") is None, t.get("diagnosis_year") or 0)

        def month_key(t):
            known = month_known(t.get("diagnosis_month"))
            return (not known, t.get("diagnosis_month") if known else 0)

        # Remaining ties: smallest histology, primary site, behaviour, stage, reporting
        # source as text. READING: a missing value sorts after every value.
        def rest_key(t):
            fields = ("histology", "primary_site", "behavior", "historic_stage", "reporting_source")
            return tuple((t.get(f) is None, t.get(f) or "") for f in fields)

        if spec.choose == TumorChoice.lowest_sequence_number:
            key = lambda t: (t["sequence_number"], year_key(t), month_key(t), rest_key(t))  # noqa: E731
        else:
            key = lambda t: (year_key(t), month_key(t), t["sequence_number"], rest_key(t))  # noqa: E731
        return sorted(candidates, key=key)[0]

    def episodes(self, rows: PersonRows) -> list[Episode]:
        """The person's index episodes (empty when the index rule finds nothing)."""
        return case_of(self.d.index)(self, rows, self.d.index.rule)

    # --- anchors, landmarks -----------------------------------------------------------

    def first_era_from_index(self, ep: Episode, exposure: str) -> Era | None:
        if ep.index_date is None:
            return None
        for era in self.eras(ep.rows, exposure):  # eras are in date order
            if era.start >= ep.index_date:
                return era
        return None

    def anchor_date(self, ep: Episode, anchor) -> date | None:
        if isinstance(anchor, ExposurePoint):
            era = self.first_era_from_index(ep, anchor.exposure)
            if era is None:
                return None
            return era.start if anchor.at == Boundary.start else era.end
        if anchor == "index":
            return ep.index_date
        return self.landmark_date(ep, self.d.landmark(anchor))

    def landmark_date(self, ep: Episode, landmark: Landmark) -> date | None:
        anchor = self.anchor_date(ep, landmark.from_)
        return None if anchor is None else plus_days(anchor, landmark.days)

    def in_landmark(self, ep: Episode, landmark: Landmark) -> bool:
        """In the landmark's analysis. READING: a missing landmark date means not in it."""
        day = self.landmark_date(ep, landmark)
        if day is None:
            return False
        death = ep.rows.death_date
        if landmark.require_alive and death is not None and death <= day:
            return False
        rule = landmark.require_coverage
        if rule is not None:
            # Relative to the landmark unless the window names relative_to.
            if "relative_to" in rule.window.model_fields_set:
                anchor = self.anchor_date(ep, rule.window.relative_to)
            else:
                anchor = day
            if not self.coverage_holds(ep, rule, anchor):
                return False
        return True

    # --- coverage ---------------------------------------------------------------------

    @staticmethod
    def held(rows: PersonRows, coverage, day: date) -> bool:
        """Whether the coverage type is held on the day (fee_for_service = no hmo span)."""
        if coverage == Coverage.fee_for_service:
            return not any(s["coverage"] == "hmo" and s["start_date"] <= day <= s["end_date"] for s in rows.enrollment)
        return any(s["coverage"] == str(coverage) and s["start_date"] <= day <= s["end_date"] for s in rows.enrollment)

    def coverage_holds(self, ep: Episode, rule: CoverageRule, anchor: date | None) -> bool:
        bounds = window_bounds(rule.window, anchor)
        if bounds is None:
            return False
        first, last = bounds
        death = ep.rows.death_date
        if rule.truncate_at_death and death is not None:
            cut = death if rule.window.unit == Unit.days else last_day_of_month(death, 0)
            last = min(last, cut)
        if last < first:
            return True
        for coverage in rule.require:
            stretch = 0
            for day in each_day(first, last):
                stretch = 0 if self.held(ep.rows, coverage, day) else stretch + 1
                if stretch > rule.allowed_gap_days:
                    return False
        for coverage in rule.exclude:
            if any(self.held(ep.rows, coverage, day) for day in each_day(first, last)):
                return False
        return True

    # --- criteria ---------------------------------------------------------------------

    def window_dates(self, ep: Episode, window: Window) -> tuple[date, date] | None:
        return window_bounds(window, self.anchor_date(ep, window.relative_to))

    def tumor_holds(self, ep: Episode, rule) -> bool:
        tumor = ep.tumor
        if tumor is None:
            return False
        if rule.sequence_number is not None and tumor.get("sequence_number") not in rule.sequence_number:
            return False
        if rule.diagnosis_year is not None:
            year = tumor.get("diagnosis_year")
            if year is None:
                return False
            if rule.diagnosis_year.min is not None and year < rule.diagnosis_year.min:
                return False
            if rule.diagnosis_year.max is not None and year > rule.diagnosis_year.max:
                return False
        if rule.diagnosis_month_known is not None:
            # A missing month fails the filter either way ("a missing field fails any
            # filter on it"); `false` therefore holds only for a stored month outside 1-12.
            month = tumor.get("diagnosis_month")
            if month is None or month_known(month) != rule.diagnosis_month_known:
                return False
        if rule.reporting_source is not None:
            source = tumor.get("reporting_source")
            if source is None:
                return False
            if rule.reporting_source.include is not None:
                if source not in [SEER_CODES[ReportingSource][r] for r in rule.reporting_source.include]:
                    return False
            elif source in [SEER_CODES[ReportingSource][r] for r in rule.reporting_source.exclude]:
                return False
        if rule.stage is not None and tumor.get("historic_stage") not in [SEER_CODES[Stage][s] for s in rule.stage]:
            return False
        if rule.behavior is not None and tumor.get("behavior") not in [SEER_CODES[Behavior][b] for b in rule.behavior]:
            return False
        return True

    def occurrence_count(self, ep: Episode, rule, bounds: tuple[date, date]) -> int:
        first, last = bounds
        if rule.exposure is not None:
            dates = self.boundary(self.eras(ep.rows, rule.exposure.name), rule.exposure.at)
            return len({d for d in dates if first <= d <= last})
        found = [(t, r) for t, r in self.events(ep.rows, rule.codesets, rule.tables, rule.settings)
                 if first <= r["date"] <= last]
        return self.count(found, rule.count)

    def criterion_holds(self, ep: Episode, criterion) -> bool:
        return case_of(criterion)(self, ep, criterion.rule)

    def landmark_step(self) -> Landmark | None:
        """The follow-up landmark whose analysis is an extra attrition step, if any."""
        start = self.d.followup.start
        if not isinstance(start, str) or start == "index":
            return None
        landmark = self.d.landmark(start)
        guaranteed = landmark.require_coverage is None and any(
            c.alive is not None and c.alive.through == start for c in self.d.criteria
        )
        return None if guaranteed else landmark

    # --- arms -------------------------------------------------------------------------

    def arm(self, ep: Episode) -> tuple[str, date | None]:
        if not self.d.arms:
            return "all", None
        for arm in self.d.arms:
            holds, first_date = case_of(arm)(self, ep, arm.rule)
            if holds:
                return arm.name, first_date
        raise AssertionError("arms end with `otherwise: true`")

    # --- follow-up and outcomes -------------------------------------------------------

    def coverage_end(self, rows: PersonRows, coverage, allowed_gap: int, start: date) -> date | None:
        """Last day of the run of coverage (gaps ≤ allowed_gap bridged) holding `start`.

        READING: the run is taken after bridging, so a start inside a bridged gap is
        covered; a start not in any run gives `start`. fee_for_service (no hmo) is a run
        that may never end: None then (no end from this type).
        """
        if coverage == Coverage.fee_for_service:
            hmo = sorted((s["start_date"], s["end_date"]) for s in rows.enrollment if s["coverage"] == "hmo")
            # Uncovered (hmo) stretches, merged, longer than the gap end the run.
            merged: list[list[date]] = []
            for s, e in hmo:
                if merged and s <= plus_days(merged[-1][1], 1):
                    merged[-1][1] = max(merged[-1][1], e)
                else:
                    merged.append([s, e])
            long = [(s, e) for s, e in merged if days_between(s, e) + 1 > allowed_gap]
            for s, e in long:
                if s <= start <= e:
                    return start
            after = [s for s, e in long if s > start]
            return plus_days(min(after), -1) if after else None
        spans = sorted((s["start_date"], s["end_date"]) for s in rows.enrollment if s["coverage"] == str(coverage))
        runs: list[list[date]] = []
        for s, e in spans:
            # Bridge: the uncovered days between the run and this span are at most the gap.
            if runs and days_between(runs[-1][1], s) - 1 <= allowed_gap:
                runs[-1][1] = max(runs[-1][1], e)
            else:
                runs.append([s, e])
        for s, e in runs:
            if s <= start <= e:
                return e
        return start

    def followup(self, ep: Episode) -> tuple[date | None, date | None]:
        """(followup_start, followup_end).

        READING: followup_end is the earliest of the end reasons that have a date, even
        when followup_start is missing (death and study_end do not need it; coverage_end
        and exposure_end then give the missing start, i.e. nothing).
        """
        start = self.anchor_date(ep, self.d.followup.start)
        ends = [case_of(reason)(self, ep, reason.rule, start) for reason in self.d.followup.end]
        ends = [day for day in ends if day is not None]
        return start, (min(ends) if ends else None)

    def outcome_date(self, ep: Episode, outcome, start: date, end: date) -> date | None:
        """When the outcome occurs within follow-up, or None."""
        return case_of(outcome)(self, ep, outcome.rule, start, end)

    def outcomes(self, ep: Episode, start: date | None, end: date | None) -> list[tuple[date | None, int | None, int | None]]:
        """(date, event, time_days) per outcome (an implicit death outcome when none).

        o_date = the date o occurs within follow-up (whatever its competitors do);
        o_event = 1 when o occurs on or before every competing outcome, 2 when a
        competing outcome occurs and o does not or occurs later, else 0; o_time_days =
        days to the earlier of o and its competing outcomes, else to followup_end.
        """
        outcomes = self.d.outcomes
        if not outcomes:
            from cohortlake.spec.model import Empty, Outcome

            outcomes = (Outcome(name="death", death=Empty()),)
        if start is None or end is None:
            # READING: without follow-up nothing occurs (event 0) and no time is counted.
            return [(None, 0, None) for _ in outcomes]
        occurs = {o.name: self.outcome_date(ep, o, start, end) for o in outcomes}
        found = []
        for outcome in outcomes:
            own = occurs[outcome.name]
            competing = [occurs[c] for c in outcome.competing if occurs[c] is not None]
            first_competing = min(competing) if competing else None
            if own is not None and (first_competing is None or own <= first_competing):
                found.append((own, 1, days_between(start, own)))
            elif first_competing is not None:
                found.append((own, 2, days_between(start, first_competing)))
            else:
                found.append((None, 0, days_between(start, end)))
        return found

    # --- covariates -------------------------------------------------------------------

    def comorbid_conditions(self, ep: Episode, spec) -> set[str] | None:
        """The conditions NCI.comorbidity.macro.sas flags for the episode, as its data steps read.

        A claim counts by its start date. Without rule-out: a condition is flagged by any
        diagnosis claim in the window. With rule-out the macro reads claims from 30 days
        before to 30 days after the window; a condition flagged in the window is kept
        when a MedPAR claim (inpatient) has it, or its last claim is more than 30 days
        after its first.
        """
        bounds = self.window_dates(ep, spec.window)
        if bounds is None:
            return None
        first, last = bounds
        if spec.rule_out:
            first_read, last_read = first - timedelta(days=30), last + timedelta(days=30)
        else:
            first_read, last_read = first, last
        flagged = set()
        for name, codeset in self.d.codesets_in_file(spec.conditions).items():
            dates, in_window, hospital = [], False, False
            for row in ep.rows.diagnosis:
                if not (first_read <= row["date"] <= last_read) or not self.row_matches("diagnosis", row, [codeset]):
                    continue
                dates.append(row["date"])
                in_window = in_window or first <= row["date"] <= last
                hospital = hospital or row.get("setting") == "inpatient"
            if not in_window:
                continue
            if spec.rule_out and not hospital and days_between(min(dates), max(dates)) <= 30:
                continue
            flagged.add(name)
        return flagged

    def comorbidity_index(self, ep: Episode, spec, index) -> float | None:
        flagged = self.comorbid_conditions(ep, spec)
        if flagged is None:
            return None
        if spec.without_claims == "missing":
            first, last = self.window_dates(ep, spec.window)
            if not any(first <= row["date"] <= last for row in ep.rows.diagnosis):
                return None  # the macro outputs only persons with a claim in the window
        present = {name: name in flagged for name in COMORBIDITY_NAMES}
        return index(present)

    def covariate(self, ep: Episode, covariate, earlier: dict[str, Any]):
        return case_of(covariate)(self, ep, covariate.rule, earlier)

    # --- time-varying -----------------------------------------------------------------

    def switch_day(self, ep: Episode, tv, start: date, time_days: int) -> int | None:
        dates = case_of(tv)(self, ep, tv.rule)
        after = [d for d in dates if d > start]
        if not after:
            return None
        day = days_between(start, min(after))
        return day if day < time_days else None

    def event_rows(self, ep: Episode, row: dict) -> list[dict]:
        start, time_days, event = row["followup_start"], row["time_days"], row["event"]
        # README: no follow-up, or 0 days of it, has no rows (every row has stop_day > start_day).
        if start is None or time_days is None or time_days <= 0:
            return []
        switches = {tv.name: self.switch_day(ep, tv, start, time_days) for tv in self.d.time_varying}
        cuts = sorted({0, time_days} | {s for s in switches.values() if s is not None})
        spans = list(zip(cuts[:-1], cuts[1:]))
        out = []
        for i, (lo, hi) in enumerate(spans):
            item = {
                "person_id": ep.rows.person_id,
                "index_date": ep.index_date,
                "start_day": lo,
                "stop_day": hi,
                "event": event if i == len(spans) - 1 else 0,
            }
            for name, switch in switches.items():
                item[name] = int(switch is not None and switch <= lo)
            out.append(item)
        return out

    # --- one episode's cohort row -----------------------------------------------------

    def cohort_row(self, ep: Episode) -> dict:
        arm, first_exposure = self.arm(ep)
        start, end = self.followup(ep)
        outcomes = self.outcomes(ep, start, end)
        landmark_dates = {lm.name: self.landmark_date(ep, lm) for lm in self.d.landmarks}
        followup_landmark = self.d.followup.start
        if isinstance(followup_landmark, str) and followup_landmark in landmark_dates:
            landmark_date = landmark_dates[followup_landmark]
        elif self.d.landmarks:
            landmark_date = landmark_dates[self.d.landmarks[0].name]
        else:
            landmark_date = None
        row: dict[str, Any] = {
            "person_id": ep.rows.person_id,
            "index_date": ep.index_date,
            "arm": arm,
            "landmark_date": landmark_date,
            "first_exposure_date": first_exposure,
            "followup_start": start,
            "followup_end": end,
            "event": outcomes[0][1],
            "time_days": outcomes[0][2],
        }
        for covariate in self.d.covariates:
            row[covariate.name] = self.covariate(ep, covariate, row)
        for landmark in self.d.landmarks:
            if len(self.d.landmarks) > 1:
                row.setdefault(f"{landmark.name}_date", landmark_dates[landmark.name])
            row[f"in_{landmark.name}"] = int(self.in_landmark(ep, landmark))
        for outcome, (day, event, time_days) in zip(self.d.outcomes, outcomes):
            row[f"{outcome.name}_date"] = day
            row[f"{outcome.name}_event"] = event
            row[f"{outcome.name}_time_days"] = time_days
        return {c: row[c] for c in cohort_columns(self.d)}

    # --- the whole build --------------------------------------------------------------

    @cached_property
    def implied(self) -> tuple[Landmark | None, str | None, bool]:
        """The implied steps: the landmark's analysis (read here), and which of the alive and
        study-end steps spec.followup adds."""
        return self.landmark_step(), alive_step(self.d), needs_followup_step(self.d)

    def step_names(self) -> list[str]:
        """The attrition steps: the criteria, then the implied steps."""
        extra, alive, followup = self.implied
        return ([c.name for c in self.d.criteria] + ([f"In landmark {extra.name} analysis"] if extra else [])
                + ([alive] if alive else []) + ([FOLLOWUP_STEP] if followup else []))

    def step_flags(self, ep: Episode) -> list[bool]:
        """Whether the episode passes each attrition step of step_names()."""
        extra, alive, followup = self.implied
        flags = [self.criterion_holds(ep, c) for c in self.d.criteria]
        if extra is not None:
            flags.append(self.in_landmark(ep, extra))
        start = self.anchor_date(ep, self.d.followup.start) if ep.index_date else None
        if alive is not None:
            # README: a death on the start day stays (0 days); before it, the person leaves
            death = ep.rows.death_date
            flags.append(start is None or death is None or death >= start)
        if followup:
            flags.append(start is None or start <= self.d.study_period.end)
        return flags

    def run(self, tables: dict[str, list[dict]]) -> Result:
        people = group_by_person(tables)
        # The population: everyone in `person` plus everyone the index rule finds.
        episodes_of: dict[str, list[Episode]] = {}
        for pid, rows in people.items():
            found = self.episodes(rows)
            if rows.person is not None or found:
                episodes_of[pid] = found or [Episode(rows, False, None)]

        names = self.step_names()
        # flags[pid] = one list of per-step flags per episode
        flags = {pid: [self.step_flags(ep) for ep in episodes] for pid, episodes in episodes_of.items()}
        attrition = [(0, "Persons in the data", len(episodes_of), 0)]
        previous = len(episodes_of)
        for k, name in enumerate(names, 1):
            remaining = sum(1 for pid in flags if any(all(f[:k]) for f in flags[pid]))
            attrition.append((k, name, remaining, previous - remaining))
            previous = remaining

        cohort, events = [], []
        for pid in sorted(episodes_of):
            for ep, ep_flags in zip(episodes_of[pid], flags[pid]):
                if all(ep_flags):
                    row = self.cohort_row(ep)
                    cohort.append(row)
                    if self.d.time_varying:
                        events.extend(self.event_rows(ep, row))
        return Result(cohort, attrition, events if self.d.time_varying else None)


# ---------------------------------------------------------------------------------------
# One case per rule kind, keyed like the engine's rules: (OneOf class, kind)
# ---------------------------------------------------------------------------------------

CASES: dict[tuple[type[OneOf], str], Callable[..., Any]] = {}


def case(kind_of: type[OneOf], kind: str):
    """Register the reference reading of ``kind`` of ``kind_of``."""
    assert kind in kind_of.choices, (kind_of.__name__, kind)

    def register(function):
        CASES[(kind_of, kind)] = function
        return function

    return register


def case_of(item: OneOf) -> Callable[..., Any]:
    try:
        return CASES[(type(item), item.kind)]
    except KeyError:
        raise ValueError(f"no reference case for {type(item).__name__} kind {item.kind}") from None


# index: (evaluator, person rows, rule) → episodes


@case(Index, "tumor")
def _tumor_index(ev: Evaluator, rows: PersonRows, rule) -> list[Episode]:
    tumor = ev.index_tumor(rows)
    if tumor is None:
        return []
    year, month = tumor.get("diagnosis_year"), tumor.get("diagnosis_month")
    day = None
    if year is not None and month_known(month):
        day = date(year, month, rule.date.day_of_month)
    return [Episode(rows, True, day, tumor)]


def _dated_episodes(rows: PersonRows, dates: list[date], occurrence) -> list[Episode]:
    if not dates:
        return []
    if occurrence == Occurrence.first:
        dates = dates[:1]
    return [Episode(rows, True, day) for day in dates]


@case(Index, "event")
def _event_index(ev: Evaluator, rows: PersonRows, spec) -> list[Episode]:
    dates = sorted({row["date"] for _, row in ev.events(rows, spec.codesets, spec.tables, spec.settings)})
    return _dated_episodes(rows, dates, spec.occurrence)


@case(Index, "exposure")
def _exposure_index(ev: Evaluator, rows: PersonRows, spec) -> list[Episode]:
    return _dated_episodes(rows, sorted(set(ev.boundary(ev.eras(rows, spec.name), spec.at))), spec.occurrence)


@case(Index, "regimen")
def _regimen_index(ev: Evaluator, rows: PersonRows, spec) -> list[Episode]:
    return _dated_episodes(rows, sorted(set(ev.boundary(ev.regimens(rows, spec.name), spec.at))), spec.occurrence)


# criteria: (evaluator, episode, rule) → holds


@case(Criterion, "index_exists")
def _index_exists(ev: Evaluator, ep: Episode, rule) -> bool:
    return ep.has_index


@case(Criterion, "tumor")
def _tumor_criterion(ev: Evaluator, ep: Episode, rule) -> bool:
    return ev.tumor_holds(ep, rule)


@case(Criterion, "age")
def _age_criterion(ev: Evaluator, ep: Episode, rule) -> bool:
    age = age_on(ep.rows.birth_date, ev.anchor_date(ep, rule.at))
    if age is None:
        return False
    return (rule.min is None or age >= rule.min) and (rule.max is None or age <= rule.max)


@case(Criterion, "sex")
def _sex_criterion(ev: Evaluator, ep: Episode, rule) -> bool:
    sex = ep.rows.person.get("sex") if ep.rows.person else None
    return sex in [str(s) for s in rule]


@case(Criterion, "alive")
def _alive(ev: Evaluator, ep: Episode, rule) -> bool:
    if isinstance(rule.through, DayOffset):
        through = None if ep.index_date is None else plus_days(ep.index_date, rule.through.days)
    else:
        through = ev.anchor_date(ep, rule.through)
    if through is None:
        return False
    death = ep.rows.death_date
    return death is None or death > through


@case(Criterion, "index_period")
def _index_period(ev: Evaluator, ep: Episode, rule) -> bool:
    day = ep.index_date
    if day is None:
        return False
    return (rule.start is None or day >= rule.start) and (rule.end is None or day <= rule.end)


@case(Criterion, "coverage")
def _coverage(ev: Evaluator, ep: Episode, rule) -> bool:
    return ev.coverage_holds(ep, rule, ev.anchor_date(ep, rule.window.relative_to))


@case(Criterion, "occurrence")
def _occurrence(ev: Evaluator, ep: Episode, rule) -> bool:
    bounds = ev.window_dates(ep, rule.window)
    if bounds is None:
        return False
    n = ev.occurrence_count(ep, rule, bounds)
    bound, value = rule.bound
    return {"at_least": n >= value, "at_most": n <= value, "exactly": n == value}[bound]


@case(Criterion, "washout")
def _washout(ev: Evaluator, ep: Episode, rule) -> bool:
    if ep.index_date is None:
        return False
    first, last = plus_days(ep.index_date, -rule.days), plus_days(ep.index_date, -1)
    found = [r for _, r in ev.events(ep.rows, rule.codesets, rule.tables, rule.settings)
             if first <= r["date"] <= last]
    return len(found) == 0


# arms: (evaluator, episode, rule) → (holds, first exposure date)

NOT_IN_ARM = (False, None)


@case(Arm, "otherwise")
def _otherwise(ev: Evaluator, ep: Episode, rule) -> tuple[bool, date | None]:
    return True, None


@case(Arm, "exposure_start")
def _exposure_start(ev: Evaluator, ep: Episode, rule) -> tuple[bool, date | None]:
    bounds = ev.window_dates(ep, rule.window)
    if bounds is None:
        return NOT_IN_ARM
    dates = sorted(r.date for r in ev.records(ep.rows, rule.exposure) if bounds[0] <= r.date <= bounds[1])
    return (True, dates[0]) if dates else NOT_IN_ARM


@case(Arm, "era_duration")
def _era_duration(ev: Evaluator, ep: Episode, rule) -> tuple[bool, date | None]:
    era = ev.first_era_from_index(ep, rule.exposure)
    if era is None:
        return NOT_IN_ARM
    if (rule.min_days is None or era.duration >= rule.min_days) and (
        rule.max_days is None or era.duration <= rule.max_days
    ):
        return True, era.start
    return NOT_IN_ARM


@case(Arm, "era_on_at")
def _era_on_at(ev: Evaluator, ep: Episode, rule) -> tuple[bool, date | None]:
    day = ev.landmark_date(ep, ev.d.landmark(rule.landmark))
    if day is None:
        return NOT_IN_ARM
    # Eras do not overlap, so at most one covers the day.
    covering = [era for era in ev.eras(ep.rows, rule.exposure) if era.start <= day <= era.end]
    return (True, covering[0].start) if covering else NOT_IN_ARM


@case(Arm, "regimen")
def _regimen_arm(ev: Evaluator, ep: Episode, rule) -> tuple[bool, date | None]:
    bounds = ev.window_dates(ep, rule.window)
    if bounds is None:
        return NOT_IN_ARM
    # READING: with several regimen starts in the window, the earliest.
    starts = sorted(r.start for r in ev.regimens(ep.rows, rule.name) if bounds[0] <= r.start <= bounds[1])
    return (True, starts[0]) if starts else NOT_IN_ARM


# follow-up ends: (evaluator, episode, rule, follow-up start) → the end date, or None
# READING: followup_end is the earliest of the end reasons that have a date, even when
# followup_start is missing (death and study_end do not need it; coverage_end and
# exposure_end then give the missing start, i.e. nothing).


@case(FollowupEnd, "death")
def _death_end(ev: Evaluator, ep: Episode, rule, start: date | None) -> date | None:
    return ep.rows.death_date


@case(FollowupEnd, "study_end")
def _study_end(ev: Evaluator, ep: Episode, rule, start: date | None) -> date | None:
    return ev.d.study_period.end


@case(FollowupEnd, "coverage_end")
def _coverage_end(ev: Evaluator, ep: Episode, rule, start: date | None) -> date | None:
    if start is None:
        return None
    found = [ev.coverage_end(ep.rows, c, rule.allowed_gap_days, start) for c in rule.require]
    found = [d for d in found if d is not None]
    return min(found) if found else None


@case(FollowupEnd, "exposure_end")
def _exposure_end(ev: Evaluator, ep: Episode, rule, start: date | None) -> date | None:
    if start is None:
        return None
    covering = [era for era in ev.eras(ep.rows, rule.exposure)
                if era.start <= start <= plus_days(era.end, rule.grace_days)]
    return plus_days(covering[0].end, rule.grace_days) if covering else start


# outcomes: (evaluator, episode, rule, follow-up start, end) → the date it occurs, or None


@case(Outcome, "death")
def _death_outcome(ev: Evaluator, ep: Episode, rule, start: date, end: date) -> date | None:
    death = ep.rows.death_date
    return death if death is not None and start <= death <= end else None


@case(Outcome, "event")
def _event_outcome(ev: Evaluator, ep: Episode, spec, start: date, end: date) -> date | None:
    dates = [r["date"] for _, r in ev.events(ep.rows, spec.codesets, spec.tables, spec.settings)
             if start < r["date"] <= end]
    return min(dates) if dates else None


# time-varying covariates: (evaluator, episode, rule) → the candidate switch dates


@case(TimeVarying, "event")
def _event_switch(ev: Evaluator, ep: Episode, spec) -> list[date]:
    return [r["date"] for _, r in ev.events(ep.rows, spec.codesets, spec.tables, spec.settings)]


@case(TimeVarying, "exposure")
def _exposure_switch(ev: Evaluator, ep: Episode, spec) -> list[date]:
    return ev.boundary(ev.eras(ep.rows, spec.name), spec.at)


# covariates: (evaluator, episode, rule, the row's earlier columns) → the value


@case(Covariate, "age")
def _age_covariate(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    return age_on(ep.rows.birth_date, ev.anchor_date(ep, spec.at))


@case(Covariate, "sex")
def _sex_covariate(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    return ep.rows.person.get("sex") if ep.rows.person else None


@case(Covariate, "race")
def _race(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    race = ep.rows.person.get("race") if ep.rows.person else None
    if spec.groups is None or race is None:
        return race
    return next((group for group, races in spec.groups.items() if race in [str(r) for r in races]), None)


@case(Covariate, "index_year")
def _index_year(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    return ep.index_date.year if ep.index_date else None


@case(Covariate, "tumor_field")
def _tumor_field(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    if ep.tumor is None:
        return None
    # Named values by their names; a code without a name stays as stored.
    field_name = str(spec.field)
    if field_name == "stage":
        code = ep.tumor.get("historic_stage")
        return STAGE_NAMES.get(code, code)
    if field_name == "behavior":
        code = ep.tumor.get("behavior")
        return BEHAVIOR_NAMES.get(code, code)
    if field_name == "reporting_source":
        code = ep.tumor.get("reporting_source")
        return REPORTING_NAMES.get(code, code)
    return ep.tumor.get(field_name)


@case(Covariate, "coverage_flag")
def _coverage_flag(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    bounds = ev.window_dates(ep, spec.window)
    if bounds is None:
        return None
    return int(any(ev.held(ep.rows, spec.coverage, day) for day in each_day(*bounds)))


def _found_in_window(ev: Evaluator, ep: Episode, spec) -> list | None:
    bounds = ev.window_dates(ep, spec.window)
    if bounds is None:
        return None
    return [(t, r) for t, r in ev.events(ep.rows, spec.codesets, spec.tables, spec.settings)
            if bounds[0] <= r["date"] <= bounds[1]]


@case(Covariate, "flag")
def _flag(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    found = _found_in_window(ev, ep, spec)
    return None if found is None else int(ev.count(found, "distinct_dates") >= spec.at_least)


@case(Covariate, "count")
def _count(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    found = _found_in_window(ev, ep, spec)
    return None if found is None else ev.count(found, spec.count)


@case(Covariate, "nci_comorbidity")
def _nci(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    return ev.comorbidity_index(ep, spec, macro_nci_index)


@case(Covariate, "charlson")
def _charlson(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    return ev.comorbidity_index(ep, spec, macro_charlson)


@case(Covariate, "score")
def _score(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    score = 0.0
    for term in spec.terms:
        value = earlier.get(term.covariate)
        if value is None:
            continue  # an empty covariate scores nothing
        if term.equals is not None:
            scores = str(value) == term.equals
        elif term.at_least is not None:
            scores = value >= term.at_least
        else:
            scores = value == 1
        if scores:
            score += term.points
    if spec.groups is None:
        return float(score)
    for group in spec.groups:
        if (group.min is None or score >= group.min) and (group.max is None or score <= group.max):
            return group.name
    return None


@case(Covariate, "exposure_duration")
def _exposure_duration(ev: Evaluator, ep: Episode, spec, earlier: dict[str, Any]):
    if ep.index_date is None:
        return None
    eras = ev.eras(ep.rows, spec.exposure)
    if spec.era == EraChoice.first_from_index:
        chosen = [e for e in eras if e.start >= ep.index_date][:1]
    else:
        chosen = [e for e in eras if e.start < ep.index_date][-1:]
    return chosen[0].duration if chosen else None


def evaluate(definition: Definition, tables: dict[str, list[dict]]) -> Result:
    """Build the cohort of `definition` over plain row dicts, one person at a time."""
    return Evaluator(definition).run(tables)
