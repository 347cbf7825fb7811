"""The cohort-definition language as typed, frozen models.

One class per concept of the YAML. Every model forbids unknown keys so a typo is an
error, never a silently ignored rule. Checks that need only one object (a window's
``from`` ≤ ``to``, "exactly one rule per criterion") live here; checks across the
definition (references, unique names) live in ``load.py``. Attribute docstrings become
the JSON Schema descriptions that editors show.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cohortlake.spec.matching import MatchingSettings
from cohortlake.vocabulary import (
    SEER_CODES,
    TABLE_SYSTEMS,
    Behavior,
    Coverage,
    EventTable,
    Race,
    ReportingSource,
    Setting,
    Sex,
    Stage,
    seer_code,
)
from cohortlake.spec.codes import (
    CodeEntry,
    CodeError,
    CodeSystem,
    NormalisedCodeSet,
    normalise,
    normalise_generic_name,
)

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class Spec(BaseModel):
    """Base of every language model: frozen, unknown keys rejected."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )


def _problem(kind: str, message: str) -> PydanticCustomError:
    # Custom errors keep the message verbatim (no "Value error, " prefix).
    return PydanticCustomError(kind, message)


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
"""An identifier: lower-case letter, then lower-case letters, digits or _."""

NonNegative = Annotated[int, Field(ge=0)]


# ---------------------------------------------------------------------------------------
# Enums. Named values, never integer codes. The vocabularies of the canonical tables
# (coverage, setting, code systems, tumor values and their SEER_CODES) live in
# cohortlake.vocabulary and are part of this namespace through the import above.
# ---------------------------------------------------------------------------------------


class Unit(StrEnum):
    """Unit of a window: days from the anchor date, or calendar months from its month."""

    days = "days"
    months = "months"


class Boundary(StrEnum):
    """Start or end of an exposure era (or regimen)."""

    start = "start"
    end = "end"


class Occurrence(StrEnum):
    """Which occurrences of an event become index dates."""

    first = "first"
    each = "each"


class CountMode(StrEnum):
    """What an occurrence count counts."""

    distinct_dates = "distinct_dates"
    claims = "claims"
    events = "events"


class TumorChoice(StrEnum):
    """Which qualifying tumor becomes the index tumor."""

    lowest_sequence_number = "lowest_sequence_number"
    earliest_diagnosis = "earliest_diagnosis"


class ExposureSource(StrEnum):
    """Where exposure records come from."""

    dispensing = "dispensing"
    administration = "administration"


class TumorField(StrEnum):
    """Index-tumor fields a covariate can carry."""

    stage = "stage"
    sequence_number = "sequence_number"
    reporting_source = "reporting_source"
    histology = "histology"
    behavior = "behavior"
    primary_site = "primary_site"


class EraChoice(StrEnum):
    """Which era of an exposure a duration covariate measures."""

    first_from_index = "first_from_index"
    last_before_index = "last_before_index"


# ---------------------------------------------------------------------------------------
# Code sets
# ---------------------------------------------------------------------------------------


def _quoted(value: Any) -> Any:
    # YAML turns unquoted codes into numbers and loses digits (070.70 → 70.7, 0702 → 450).
    if not isinstance(value, str):
        raise _problem("code_not_text", "write codes as quoted text, e.g. '070.70'; unquoted, YAML reads them as numbers")
    return value


def _code_of(system: CodeSystem):
    def check(value: str) -> str:
        try:
            normalise(system, value)
        except CodeError as exc:
            raise _problem("code_syntax", str(exc)) from None
        return value

    return check


def _codes(system: CodeSystem) -> Any:
    entry = Annotated[str, BeforeValidator(_quoted), AfterValidator(_code_of(system))]
    return tuple[entry, ...]


def _generic_name(value: str) -> str:
    try:
        normalise_generic_name(value)
    except CodeError as exc:
        raise _problem("generic_name", str(exc)) from None
    return value


IncludeRef = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]


class CodeSet(Spec):
    """A named set of codes, per coding system; entries are exact codes, prefixes (070.2x, 0702*) or ranges (77401-77416)."""

    description: str | None = None
    """What the set means, for readers of explain."""
    icd9cm: _codes(CodeSystem.icd9cm) = ()
    """ICD-9-CM diagnosis codes (dots optional)."""
    icd10cm: _codes(CodeSystem.icd10cm) = ()
    """ICD-10-CM diagnosis codes (dots optional)."""
    icd9pcs: _codes(CodeSystem.icd9pcs) = ()
    """ICD-9-CM procedure codes (volume 3)."""
    icd10pcs: _codes(CodeSystem.icd10pcs) = ()
    """ICD-10-PCS procedure codes; a prefix ends in '*' only (X is a real character)."""
    hcpcs: _codes(CodeSystem.hcpcs) = ()
    """CPT and HCPCS level II codes."""
    ndc: _codes(CodeSystem.ndc) = ()
    """National Drug Codes: 11 digits, or dashed 4-4-2 / 5-3-2 / 5-4-1 (normalised to 11 digits)."""
    icdo3_site: _codes(CodeSystem.icdo3_site) = ()
    """ICD-O-3 topography (primary site), e.g. C22.0."""
    icdo3_histology: _codes(CodeSystem.icdo3_histology) = ()
    """ICD-O-3 histology (4 digits), e.g. 8170-8175."""
    generic_name: tuple[Annotated[str, AfterValidator(_generic_name)], ...] = ()
    """Case-insensitive substrings matched in dispensing.generic_name."""
    include: tuple[IncludeRef, ...] = ()
    """Shared sets to add, as <file stem under cohort_defs/codesets/>.<set name>."""

    @model_validator(mode="after")
    def _not_empty(self) -> CodeSet:
        if not self.include and not any(getattr(self, s) for s in (*CodeSystem, "generic_name")):
            raise _problem("empty_codeset", "a code set needs codes in at least one system, or an include")
        return self

    def entries(self) -> tuple[CodeEntry, ...]:
        """This set's own entries, normalised (includes not followed)."""
        return tuple(normalise(system, e) for system in CodeSystem for e in getattr(self, system))

    def systems(self) -> set[str]:
        """Systems with entries in this set itself (generic_name counts as one)."""
        return {s for s in (*CodeSystem, "generic_name") if getattr(self, s)}


# ---------------------------------------------------------------------------------------
# Windows and anchors
# ---------------------------------------------------------------------------------------


class ExposurePoint(Spec):
    """The start or end of an exposure's era, used as an anchor date."""

    exposure: Name
    """Name of an exposure under `exposures`."""
    at: Boundary
    """start or end of the era."""


def _anchor_tag(value: Any) -> str:
    return "~point" if isinstance(value, dict) or isinstance(value, ExposurePoint) else "~name"


# Tags start with '~' so the error reporter can drop them from field paths.
Anchor = Annotated[
    Union[Annotated[Name, Tag("~name")], Annotated[ExposurePoint, Tag("~point")]],
    Discriminator(_anchor_tag),
]
"""`index`, a landmark name, or {exposure: NAME, at: start|end}."""


class Window(Spec):
    """An inclusive span relative to an anchor: days by default, or calendar months from the anchor's month."""

    from_: int = Field(alias="from")
    """First day (or month) of the window, inclusive; negative = before the anchor."""
    to: int
    """Last day (or month) of the window, inclusive."""
    unit: Unit = Unit.days
    """days, or months (calendar months m relative to the anchor's month)."""
    relative_to: Anchor = "index"
    """index (default), a landmark name, or {exposure: NAME, at: start|end}."""

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.from_ > self.to:
            raise _problem("window_order", f"from ({self.from_}) is after to ({self.to}); a window needs from <= to")
        return self


# ---------------------------------------------------------------------------------------
# "Exactly one of" objects: criteria, index, arms, outcomes, covariates, ...
# ---------------------------------------------------------------------------------------


class OneOf(Spec):
    """A model holding exactly one of its optional `choices` fields (the rule kind)."""

    choices: ClassVar[tuple[str, ...]] = ()
    what: ClassVar[str] = "rule"

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [c for c in self.choices if getattr(self, c) is not None]
        if len(given) != 1:
            options = ", ".join(self.choices)
            if given:
                raise _problem("one_rule", f"give exactly one {self.what}, not {' and '.join(given)} (one of: {options})")
            raise _problem("one_rule", f"give exactly one {self.what}: one of {options}")
        return self

    @property
    def kind(self) -> str:
        """Which choice this object holds."""
        return next(c for c in self.choices if getattr(self, c) is not None)

    @property
    def rule(self) -> Any:
        """The one choice's value."""
        return getattr(self, self.kind)


class Empty(Spec):
    """A rule without settings: write {}."""


class EventSpec(Spec):
    """Coded events: rows of the given tables whose code is in any of the code sets."""

    codesets: tuple[Name, ...] = Field(min_length=1)
    """Names of code sets under `codesets`."""
    tables: tuple[EventTable, ...] = Field(min_length=1)
    """diagnosis, procedure and/or dispensing."""
    settings: tuple[Setting, ...] | None = None
    """Only rows from these claim settings (inpatient, outpatient, carrier); default all."""


class ExposureEvent(Spec):
    """The start or end of an exposure's eras, as an event."""

    name: Name
    """Name of an exposure under `exposures`."""
    at: Boundary = Boundary.start


# --- index ------------------------------------------------------------------------------


def _ref_or_code(system: CodeSystem):
    def check(value: str) -> str:
        if isinstance(value, str) and re.fullmatch(NAME_PATTERN, value):
            return value  # a code-set name; load.py checks it exists
        return _code_of(system)(value)

    return tuple[Annotated[str, BeforeValidator(_quoted), AfterValidator(check)], ...]


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


# --- exposures, regimens ----------------------------------------------------------------


class DaysSupply(Spec):
    """Days-supply handling: missing or below `min` → `default`; above `max` → capped at `max`."""

    default: int = Field(default=30, ge=1)
    """Days a fill covers when its days supply is missing or below min."""
    min: int = Field(default=1, ge=1)
    max: int = Field(default=365, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> DaysSupply:
        if not self.min <= self.default <= self.max:
            raise _problem("range_order", f"need min <= default <= max, got {self.min}, {self.default}, {self.max}")
        return self


class Exposure(Spec):
    """A drug exposure collapsed into eras: records → covered days → eras bridged by the grace period."""

    codesets: tuple[Name, ...] = Field(min_length=1)
    """Code sets identifying the drug (NDC / generic names for dispensing, HCPCS for administration)."""
    source: ExposureSource
    """dispensing (Part D fills) or administration (Part B procedure codes)."""
    days_supply: DaysSupply = DaysSupply()
    """Dispensing only."""
    administration_days: int | None = Field(default=None, ge=1)
    """Administration only: days one administration is assumed to cover."""
    settings: tuple[Setting, ...] | None = None
    """Administration only: claim settings searched (default carrier and outpatient)."""
    grace_days: NonNegative
    """An era continues while the next record starts at most this many days after the era's end."""
    stockpiling: bool = False
    """true: an early refill starts the day after the previous supply runs out."""

    @model_validator(mode="after")
    def _by_source(self) -> Exposure:
        if self.source is ExposureSource.administration:
            if self.administration_days is None:
                raise _problem("missing_field", "administration exposures need administration_days")
        elif self.administration_days is not None or self.settings is not None:
            raise _problem("wrong_source", "administration_days and settings apply to source: administration only")
        return self

    def record_settings(self) -> tuple[Setting, ...]:
        """Claim settings searched for administrations."""
        return self.settings or (Setting.carrier, Setting.outpatient)


class Regimen(Spec):
    """A combination: the anchor exposure's era start with a `with` exposure starting within N days of it (either side)."""

    anchor: Name
    """The exposure whose era start is the regimen start."""
    with_: tuple[Name, ...] = Field(alias="with", min_length=1)
    """Exposures of which one must start within `within_days` of the anchor's start."""
    within_days: NonNegative
    """Largest distance in days, before or after the anchor start."""


# --- arms, landmarks, follow-up, outcomes ------------------------------------------------


class ExposureStartArm(Spec):
    """The first record (fill or administration) of the exposure dated in the window; its date is first_exposure_date."""

    exposure: Name
    """Name of an exposure under `exposures`."""
    window: Window


class EraDurationArm(Spec):
    """The first era starting on or after index lasts between min_days and max_days (inclusive)."""

    exposure: Name
    """Name of an exposure under `exposures`."""
    min_days: NonNegative | None = None
    """Shortest duration (days, inclusive) of the first era on or after index."""
    max_days: NonNegative | None = None
    """Longest duration (days, inclusive) of the first era on or after index."""

    @model_validator(mode="after")
    def _bounds(self) -> EraDurationArm:
        if self.min_days is None and self.max_days is None:
            raise _problem("empty_range", "give min_days, max_days or both")
        if self.min_days is not None and self.max_days is not None and self.min_days > self.max_days:
            raise _problem("range_order", f"min_days ({self.min_days}) is above max_days ({self.max_days})")
        return self


class EraOnAtArm(Spec):
    """An era of the exposure covers the landmark date."""

    exposure: Name
    """Name of an exposure under `exposures`."""
    landmark: Name
    """Name of a landmark under `landmarks`."""


class RegimenArm(Spec):
    """The regimen starts within the window."""

    name: Name
    window: Window


class Arm(OneOf):
    """A treatment group; the first arm whose rule holds wins, the last is `otherwise: true`."""

    choices: ClassVar = ("exposure_start", "era_duration", "era_on_at", "regimen", "otherwise")
    what: ClassVar = "arm rule"

    name: Name
    exposure_start: ExposureStartArm | None = None
    era_duration: EraDurationArm | None = None
    era_on_at: EraOnAtArm | None = None
    regimen: RegimenArm | None = None
    otherwise: Literal[True] | None = None
    """Everyone not in an earlier arm."""


class Landmark(Spec):
    """A date `days` after an anchor; who is alive (and covered) then enters this landmark's analysis."""

    name: Name
    days: int
    """Days from the anchor to the landmark date."""
    from_: Anchor = Field(default="index", alias="from")
    """index, or {exposure: NAME, at: start|end}."""
    require_alive: bool = True
    """Persons who died on or before the landmark date leave this landmark's analysis."""
    require_coverage: CoverageRule | None = None
    """Optional coverage rule; its window is relative to the landmark unless it says otherwise."""


class CoverageEnd(Spec):
    """Follow-up ends when the required coverage stops (after bridging allowed gaps)."""

    require: tuple[Coverage, ...] = Field(min_length=1)
    allowed_gap_days: NonNegative = 0
    """Uncovered days bridged between spans (0 = none)."""


class ExposureEnd(Spec):
    """Follow-up ends at the end of the exposure's era (the one current at follow-up start) plus grace days."""

    exposure: Name
    """Name of an exposure under `exposures`."""
    grace_days: NonNegative = 0
    """Days added to the era's end (default 0)."""


class FollowupEnd(OneOf):
    """One reason follow-up ends; the earliest wins."""

    choices: ClassVar = ("death", "study_end", "coverage_end", "exposure_end")
    what: ClassVar = "end reason"

    death: Literal[True] | None = None
    """true: follow-up ends at death."""
    study_end: Literal[True] | None = None
    """true: follow-up ends at study_period.end."""
    coverage_end: CoverageEnd | None = None
    exposure_end: ExposureEnd | None = None


def _end_word(value: str) -> FollowupEnd:
    if value not in ("death", "study_end"):
        raise _problem(
            "followup_end",
            f"'{value}' is not allowed; use death, study_end, {{coverage_end: ...}} or {{exposure_end: ...}}",
        )
    return FollowupEnd(**{value: True})


# `death` and `study_end` are written as words; the other reasons as one-key mappings.
EndItem = Annotated[
    Union[
        Annotated[str, AfterValidator(_end_word), WithJsonSchema({"enum": ["death", "study_end"]}), Tag("~word")],
        Annotated[FollowupEnd, Tag("~reason")],
    ],
    Discriminator(lambda value: "~word" if isinstance(value, str) else "~reason"),
]


class Followup(Spec):
    """When follow-up starts, and the events that end it (earliest wins)."""

    start: Anchor = "index"
    """index, a landmark name, or {exposure: NAME, at: start}."""
    end: tuple[EndItem, ...] = Field(min_length=1)
    """death, study_end (study_period.end), {coverage_end: ...}, {exposure_end: ...}."""


class Outcome(OneOf):
    """An outcome: death, or the first event of code sets after follow-up start."""

    choices: ClassVar = ("death", "event")
    what: ClassVar = "outcome kind"

    name: Name
    death: Empty | None = None
    event: EventSpec | None = None
    competing: tuple[Name, ...] = ()
    """Outcomes that compete with this one (cumulative incidence, not 1 - KM)."""


class TimeVarying(OneOf):
    """A covariate that switches from 0 to 1 at the first event after follow-up start (start/stop rows)."""

    choices: ClassVar = ("event", "exposure")
    what: ClassVar = "event kind"

    name: Name
    event: EventSpec | None = None
    exposure: ExposureEvent | None = None


# --- covariates -------------------------------------------------------------------------


class AgeCovariate(Spec):
    """Age in whole years."""

    at: Name = "index"
    """index, or a landmark name."""


class RaceCovariate(Spec):
    """Race, optionally collapsed into named groups."""

    groups: dict[Name, tuple[Race, ...]] | None = None
    """Group name → races in it; a race in no group is empty."""

    @model_validator(mode="after")
    def _disjoint(self) -> RaceCovariate:
        seen: dict[Race, str] = {}
        for group, races in (self.groups or {}).items():
            for race in races:
                if race in seen:
                    raise _problem("race_group", f"{race} is in both {seen[race]} and {group}")
                seen[race] = group
        return self


class TumorFieldCovariate(Spec):
    """A field of the index tumor (tumor index only)."""

    field: TumorField


class CoverageFlagCovariate(Spec):
    """1 if the coverage type is held on any day of the window."""

    coverage: Coverage
    window: Window


class WithoutClaims(StrEnum):
    """What a comorbidity index is for a person with no diagnosis claim in its window."""

    zero = "zero"
    """0, as for a person whose claims show none of the conditions."""
    missing = "missing"
    """Empty, as the NCI macro leaves such persons out of its output."""


def _nci_window() -> Window:
    return Window(from_=-12, to=-1, unit=Unit.months)


class ComorbidityIndexCovariate(Spec):
    """One of the NCI macro's comorbidity indices from diagnosis claims (NCI.comorbidity.macro.sas, 2022)."""

    window: Window = Field(default_factory=_nci_window)
    """Claims whose start date is in this window; default the 12 calendar months before the index month, as NCI recommends."""
    rule_out: bool = True
    """true (the macro's RULEOUT=Y): an outpatient or carrier diagnosis counts only when an inpatient (MedPAR) claim
    or claims more than 30 days apart confirm it, looking 30 days past both ends of the window."""
    without_claims: WithoutClaims = WithoutClaims.zero
    """zero (default): 0 for a person with no diagnosis claim in the window; missing: empty, as the macro leaves them out."""
    conditions: Name = "nci_comorbidity"
    """Code-set file (under cohort_defs/codesets/) defining the macro's sixteen conditions."""


class NciComorbidityCovariate(ComorbidityIndexCovariate):
    """The NCI comorbidity index: the macro's weighted sum of its sixteen conditions (e.g. 0.64441 for CHF)."""


class CharlsonCovariate(ComorbidityIndexCovariate):
    """The Charlson score as the NCI macro computes it (integer points, severe forms replacing mild ones)."""


class FlagCovariate(EventSpec):
    """1 if at least `at_least` events of the code sets fall in the window."""

    window: Window
    at_least: int = Field(default=1, ge=1)
    """Events (distinct dates) needed for a 1 (default 1)."""


class CountCovariate(EventSpec):
    """Number of events of the code sets in the window."""

    window: Window
    count: CountMode = CountMode.distinct_dates


class ScoreTerm(Spec):
    """Points added when a covariate is 1 (flags), at least `at_least` (numbers) or equal to `equals` (categories)."""

    covariate: Name
    """An earlier covariate."""
    at_least: float | None = None
    """For a number: points when the covariate is at least this."""
    equals: str | None = None
    """For sex, race groups or tumor fields: the value that scores."""
    points: float = 1
    """Points added when the term holds (default 1)."""

    @model_validator(mode="after")
    def _one_test(self) -> ScoreTerm:
        if self.at_least is not None and self.equals is not None:
            raise _problem("one_rule", "give at_least or equals, not both")
        return self


class ScoreGroup(Spec):
    """A named band of the score, min and max inclusive."""

    name: Name
    min: float | None = None
    max: float | None = None


class ScoreCovariate(Spec):
    """Sum of points over earlier covariates, optionally banded into groups."""

    terms: tuple[ScoreTerm, ...] = Field(min_length=1)
    groups: tuple[ScoreGroup, ...] | None = None
    """Bands in increasing order, not overlapping; the covariate becomes the band name."""

    @model_validator(mode="after")
    def _bands(self) -> ScoreCovariate:
        previous = None
        for group in self.groups or ():
            if group.min is not None and group.max is not None and group.min > group.max:
                raise _problem("range_order", f"group {group.name}: min ({group.min}) is above max ({group.max})")
            if previous is not None and (group.min is None or previous.max is None or group.min <= previous.max):
                raise _problem("score_groups", f"groups must increase without overlap: {previous.name} then {group.name}")
            previous = group
        return self


class ExposureDurationCovariate(Spec):
    """Length in days of one era of an exposure."""

    exposure: Name
    """Name of an exposure under `exposures`."""
    era: EraChoice = EraChoice.first_from_index
    """first_from_index, or last_before_index (e.g. prior sorafenib)."""


class Covariate(OneOf):
    """A baseline covariate column: a name and exactly one kind."""

    choices: ClassVar = (
        "age", "sex", "race", "index_year", "tumor_field", "coverage_flag", "nci_comorbidity",
        "charlson", "flag", "count", "score", "exposure_duration",
    )
    what: ClassVar = "covariate kind"

    name: Name
    age: AgeCovariate | None = None
    sex: Empty | None = None
    race: RaceCovariate | None = None
    index_year: Empty | None = None
    """Calendar year of the index date."""
    tumor_field: TumorFieldCovariate | None = None
    coverage_flag: CoverageFlagCovariate | None = None
    nci_comorbidity: NciComorbidityCovariate | None = None
    charlson: CharlsonCovariate | None = None
    flag: FlagCovariate | None = None
    count: CountCovariate | None = None
    score: ScoreCovariate | None = None
    exposure_duration: ExposureDurationCovariate | None = None


class Expectation(Spec):
    """A data-quality expectation on a covariate of the built cohort."""

    covariate: Name
    """Name of a covariate under `covariates`."""
    mean_between: tuple[float, float] | None = None
    """Mean (share of 1s for a flag) within [low, high]."""
    missing_at_most: float | None = Field(default=None, ge=0, le=1)
    """Largest allowed share of missing values."""
    severity: Literal["critical", "warning"] = "warning"
    """critical stops the pipeline when the built cohort breaks the rule; warning reports it."""

    @model_validator(mode="after")
    def _something(self) -> Expectation:
        if self.mean_between is None and self.missing_at_most is None:
            raise _problem("empty_rule", "give mean_between, missing_at_most or both")
        if self.mean_between and self.mean_between[0] > self.mean_between[1]:
            raise _problem("range_order", "mean_between needs [low, high] with low <= high")
        return self


# ---------------------------------------------------------------------------------------
# The definition
# ---------------------------------------------------------------------------------------


class StudyPeriod(Spec):
    """Calendar bounds of the study; `end` is study_end for follow-up."""

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> StudyPeriod:
        if self.start > self.end:
            raise _problem("range_order", f"start ({self.start}) is after end ({self.end})")
        return self


class Definition(Spec):
    """A cohort definition: code sets, index, ordered criteria (attrition), exposures, arms, landmarks, follow-up, outcomes, covariates."""

    cohort: Name
    """Identifier; the cohort's tables go under cohorts/<cohort>/ in the lake."""
    title: str
    description: str | None = None
    study_period: StudyPeriod
    codesets: dict[Name, CodeSet] = {}
    index: Index
    criteria: tuple[Criterion, ...] = Field(min_length=1)
    """Ordered; each criterion is one attrition step."""
    exposures: dict[Name, Exposure] = {}
    regimens: dict[Name, Regimen] = {}
    arms: tuple[Arm, ...] = ()
    """First matching arm wins; the last is `otherwise: true`. None = one group."""
    landmarks: tuple[Landmark, ...] = ()
    followup: Followup
    outcomes: tuple[Outcome, ...] = ()
    time_varying: tuple[TimeVarying, ...] = ()
    covariates: tuple[Covariate, ...] = ()
    expectations: tuple[Expectation, ...] = ()
    matching: MatchingSettings | None = None
    """Propensity-score estimation, matching or weighting, and balance settings."""

    # Set by load_definition: shared sets reachable through `include` (and the comorbidity
    # conditions), keyed "<file stem>.<set>", and the hash of every file read.
    _library: dict[str, CodeSet] = PrivateAttr(default_factory=dict)
    _sha256: str | None = PrivateAttr(default=None)
    _path: str | None = PrivateAttr(default=None)

    @property
    def sha256(self) -> str:
        """Hash of the definition file's text plus every included file's text."""
        if self._sha256 is None:  # built in code, not from files
            return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
        return self._sha256

    @property
    def path(self) -> str | None:
        """The file this definition was loaded from."""
        return self._path

    def raw_codeset(self, name: str) -> CodeSet:
        """A set as written: a local name, or "<file>.<set>" from an included file."""
        sets = self._library if "." in name else self.codesets
        if name not in sets:
            raise KeyError(f"no code set '{name}'")
        return sets[name]

    def codeset(self, name: str) -> NormalisedCodeSet:
        """A code set with includes merged and every entry normalised."""
        entries: list[CodeEntry] = []
        generic: list[str] = []
        seen: set[str] = set()

        def add(set_name: str) -> None:
            if set_name in seen:
                return
            seen.add(set_name)
            raw = self.raw_codeset(set_name)
            entries.extend(e for e in raw.entries() if e not in entries)
            generic.extend(g for g in map(normalise_generic_name, raw.generic_name) if g not in generic)
            for included in raw.include:
                add(included)

        add(name)
        top = self.raw_codeset(name)
        # A set that only wraps an include reads best with the included set's description.
        description = top.description or next(
            (self.raw_codeset(ref).description for ref in top.include if self.raw_codeset(ref).description), None
        )
        return NormalisedCodeSet(name, description, tuple(entries), tuple(generic))

    def codesets_in_file(self, stem: str) -> dict[str, NormalisedCodeSet]:
        """Every loaded set of a shared file (e.g. the comorbidity conditions), normalised, by set name."""
        prefix = stem + "."
        return {key[len(prefix):]: self.codeset(key) for key in self._library if key.startswith(prefix)}

    def landmark(self, name: str) -> Landmark:
        """A landmark by name."""
        return next(lm for lm in self.landmarks if lm.name == name)
