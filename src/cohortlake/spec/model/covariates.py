"""Covariates at index, and the expectations the built cohort's covariates must meet."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from cohortlake.spec.model.base import (
    CountMode,
    Empty,
    EraChoice,
    EventSpec,
    Name,
    OneOf,
    Spec,
    TumorField,
    Unit,
    Window,
    _problem,
)
from cohortlake.vocabulary import Coverage, Race


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
