"""The language's base: the frozen ``Spec`` model, names, enums, windows and anchors, and
the "exactly one of" objects every rule kind is built on.

The vocabularies of the canonical tables (coverage, setting, event table, code systems,
tumor values) come from ``cohortlake.vocabulary``; the package re-exports them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from cohortlake.vocabulary import EventTable, Setting


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
