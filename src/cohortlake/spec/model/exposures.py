"""Exposures (dispensing eras or administrations), regimens, and the arms built on them."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from cohortlake.spec.model.base import (
    ExposureSource,
    Name,
    NonNegative,
    OneOf,
    Spec,
    Window,
    _problem,
)
from cohortlake.vocabulary import Setting


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
