"""The index event and the ordered criteria (each one attrition step)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag, model_validator

from cohortlake.spec.model.base import (
    Boundary,
    CountMode,
    Empty,
    EventSpec,
    ExposureEvent,
    Name,
    NonNegative,
    Occurrence,
    OneOf,
    Spec,
    TumorChoice,
    Window,
    _problem,
)
from cohortlake.spec.model.codesets import _quoted, _ref_or_code
from cohortlake.vocabulary import (
    Behavior,
    CodeSystem,
    Coverage,
    EventTable,
    ReportingSource,
    Setting,
    Sex,
    Stage,
)


# --- index ------------------------------------------------------------------------------


class TumorDate(Spec):
    """How the month-precision diagnosis date becomes a day."""

    day_of_month: int = Field(default=15, ge=1, le=28)
    """Day used for the diagnosis month; an unknown month gives no index date."""


class TumorIndex(Spec):
    """Index = a registry tumor's diagnosis date."""

    primary_site: _ref_or_code(CodeSystem.icdo3_site) = ()
    """Code-set names (their icdo3_site entries) or inline ICD-O-3 site codes; empty = any."""
    histology: _ref_or_code(CodeSystem.icdo3_histology) = ()
    """Code-set names (their icdo3_histology entries) or inline histology codes; empty = any."""
    behavior: tuple[Behavior, ...] = ()
    """Allowed behaviours; empty = any."""
    choose: TumorChoice = TumorChoice.lowest_sequence_number
    """Which qualifying tumor is the index tumor."""
    date: TumorDate = TumorDate()
    """Diagnosis-date imputation."""


class EventIndex(EventSpec):
    """Index = the date of a coded claims event."""

    occurrence: Occurrence = Occurrence.first


class ExposureIndex(Spec):
    """Index = the start or end of an exposure era."""

    name: Name
    """Name of an exposure under `exposures`."""
    at: Boundary = Boundary.start
    occurrence: Occurrence = Occurrence.first


class RegimenIndex(Spec):
    """Index = the start or end of a regimen (combination of exposures)."""

    name: Name
    """Name of a regimen under `regimens`."""
    at: Boundary = Boundary.start
    occurrence: Occurrence = Occurrence.first


class Index(OneOf):
    """The index date: exactly one of tumor, event, exposure, regimen."""

    choices: ClassVar = ("tumor", "event", "exposure", "regimen")
    what: ClassVar = "index kind"

    tumor: TumorIndex | None = None
    """A SEER registry tumor."""
    event: EventIndex | None = None
    """A claims event from code sets."""
    exposure: ExposureIndex | None = None
    """A derived event: start or end of an exposure era."""
    regimen: RegimenIndex | None = None
    """A derived event: start or end of a regimen."""


# --- criteria ---------------------------------------------------------------------------


class YearRange(Spec):
    """Inclusive bounds on a year; either may be left out."""

    min: int | None = None
    max: int | None = None

    @model_validator(mode="after")
    def _ordered(self) -> YearRange:
        if self.min is None and self.max is None:
            raise _problem("empty_range", "give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _problem("range_order", f"min ({self.min}) is after max ({self.max})")
        return self


class ReportingSourceFilter(Spec):
    """Keep tumors whose reporting source is in `include`, or not in `exclude`."""

    include: tuple[ReportingSource, ...] | None = None
    """Only these reporting sources."""
    exclude: tuple[ReportingSource, ...] | None = None
    """Any reporting source but these."""

    @model_validator(mode="after")
    def _one(self) -> ReportingSourceFilter:
        if (self.include is None) == (self.exclude is None):
            raise _problem("one_rule", "give exactly one of include or exclude")
        return self


SequenceNumber = Annotated[str, BeforeValidator(_quoted), Field(pattern=r"^\d{2}$")]


class TumorCriterion(Spec):
    """Filters on the index tumor's registry fields (tumor index only); all given filters must hold."""

    sequence_number: tuple[SequenceNumber, ...] | None = None
    """Allowed SEER sequence numbers, two digits quoted ('00' = one primary only)."""
    diagnosis_year: YearRange | None = None
    """Year of diagnosis bounds."""
    diagnosis_month_known: bool | None = None
    """true: month of diagnosis is 1-12."""
    reporting_source: ReportingSourceFilter | None = None
    stage: tuple[Stage, ...] | None = None
    """Allowed SEER historic stage A values."""
    behavior: tuple[Behavior, ...] | None = None
    """Allowed behaviours."""

    @model_validator(mode="after")
    def _something(self) -> TumorCriterion:
        if all(getattr(self, f) is None for f in type(self).model_fields):
            raise _problem("empty_rule", "give at least one tumor filter: " + ", ".join(type(self).model_fields))
        return self


class AgeCriterion(Spec):
    """Age in whole years (a birthday counts on its anniversary); no birth date fails."""

    at: Name = "index"
    """index, or a landmark name."""
    min: NonNegative | None = None
    """Lowest allowed age, inclusive."""
    max: NonNegative | None = None
    """Highest allowed age, inclusive."""

    @model_validator(mode="after")
    def _bounds(self) -> AgeCriterion:
        if self.min is None and self.max is None:
            raise _problem("empty_range", "give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _problem("range_order", f"min ({self.min}) is above max ({self.max})")
        return self


class DayOffset(Spec):
    """A day relative to index."""

    days: int
    """Days after the index date (the alive rule's last day)."""


def _through_tag(value: Any) -> str:
    return "~days" if isinstance(value, (dict, DayOffset)) else "~name"


class AliveCriterion(Spec):
    """No death on or before a date."""

    through: Annotated[
        Union[Annotated[DayOffset, Tag("~days")], Annotated[Name, Tag("~name")]],
        Discriminator(_through_tag),
    ]
    """{days: N} = index + N days, or a landmark name."""


class CoverageRule(Spec):
    """Coverage held (or not held) throughout a window, as Medicare enrollment spans."""

    require: tuple[Coverage, ...] = ()
    """Coverage types held every day (or month) of the window; fee_for_service = no hmo."""
    exclude: tuple[Coverage, ...] = ()
    """Coverage types that must not appear anywhere in the window."""
    window: Window
    """Months are calendar months relative to the anchor's month."""
    allowed_gap_days: NonNegative = 0
    """Uncovered stretches up to this many days are bridged (0 = continuous)."""
    truncate_at_death: bool = True
    """Days or months after the death day or month are not required."""

    @model_validator(mode="after")
    def _something(self) -> CoverageRule:
        if not self.require and not self.exclude:
            raise _problem("empty_rule", "give coverage types in require, exclude or both")
        both = sorted(set(self.require) & set(self.exclude))
        if both:
            raise _problem("coverage_conflict", f"{', '.join(both)} both required and excluded")
        return self


class OccurrenceCriterion(Spec):
    """Count events in a window and compare: at_least, at_most or exactly N."""

    codesets: tuple[Name, ...] | None = None
    """Code sets whose events count (with `tables`)."""
    tables: tuple[EventTable, ...] | None = None
    """Tables searched for the code sets' codes."""
    settings: tuple[Setting, ...] | None = None
    """Only rows from these claim settings; default all."""
    exposure: ExposureEvent | None = None
    """Instead of code sets: an exposure's era starts or ends."""
    window: Window
    at_least: NonNegative | None = None
    """Holds with at least this many events."""
    at_most: NonNegative | None = None
    """Holds with at most this many events (0 = none)."""
    exactly: NonNegative | None = None
    """Holds with exactly this many events."""
    count: CountMode = CountMode.distinct_dates
    """distinct_dates (default), claims, or events (code rows)."""

    @model_validator(mode="after")
    def _shape(self) -> OccurrenceCriterion:
        bounds = [b for b in ("at_least", "at_most", "exactly") if getattr(self, b) is not None]
        if len(bounds) != 1:
            raise _problem("one_rule", "give exactly one of at_least, at_most, exactly")
        if (self.codesets is None) == (self.exposure is None):
            raise _problem("one_rule", "give either codesets (with tables) or exposure")
        if self.codesets is not None and not self.tables:
            raise _problem("missing_tables", "codesets need tables: diagnosis, procedure and/or dispensing")
        if self.exposure is not None and (self.tables or self.settings):
            raise _problem("exposure_tables", "tables and settings apply to codesets, not to exposure")
        return self

    @property
    def bound(self) -> tuple[str, int]:
        """('at_least' | 'at_most' | 'exactly', N)."""
        return next((b, getattr(self, b)) for b in ("at_least", "at_most", "exactly") if getattr(self, b) is not None)


class WashoutCriterion(EventSpec):
    """No event of the code sets in the `days` days before index (window [-days, -1])."""

    days: int = Field(ge=1)
    """Days before index searched: [-days, -1]."""

    def as_window(self) -> Window:
        """The window this washout stands for."""
        return Window(from_=-self.days, to=-1)


class IndexPeriod(Spec):
    """The index date lies within [start, end]."""

    start: date | None = None
    end: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> IndexPeriod:
        if self.start is None and self.end is None:
            raise _problem("empty_range", "give start, end or both")
        if self.start and self.end and self.start > self.end:
            raise _problem("range_order", f"start ({self.start}) is after end ({self.end})")
        return self


class Criterion(OneOf):
    """One inclusion rule = one attrition step: a name and exactly one rule."""

    choices: ClassVar = (
        "index_exists", "tumor", "age", "sex", "alive", "coverage", "occurrence", "washout", "index_period",
    )

    name: str = Field(min_length=1)
    """Label of the attrition step."""
    index_exists: Empty | None = None
    """The person has an index date (a qualifying tumor, event or exposure); write {}."""
    tumor: TumorCriterion | None = None
    """Filters on the index tumor."""
    age: AgeCriterion | None = None
    sex: tuple[Sex, ...] | None = None
    """Allowed sexes."""
    alive: AliveCriterion | None = None
    coverage: CoverageRule | None = None
    occurrence: OccurrenceCriterion | None = None
    washout: WashoutCriterion | None = None
    index_period: IndexPeriod | None = None
    """The index date falls within these dates."""
