"""Landmarks, follow-up (when it ends), outcomes and time-varying events."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import AfterValidator, Discriminator, Field, Tag, WithJsonSchema

from cohortlake.spec.model.base import (
    Anchor,
    Empty,
    EventSpec,
    ExposureEvent,
    Name,
    NonNegative,
    OneOf,
    Spec,
    _problem,
)
from cohortlake.spec.model.criteria import CoverageRule
from cohortlake.vocabulary import Coverage


# --- landmarks, follow-up, outcomes, time-varying events -------------------------------


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
