"""The ``matching:`` section of a cohort definition, as a typed model.

Defaults follow OHDSI CohortMethod (``createMatchOnPsArgs``): greedy 1:1 nearest-neighbour
matching without replacement on the logit of the propensity score, caliper 0.2 standard
deviations of that logit, SMD threshold 0.1. Where CohortMethod has a fixed behaviour we
keep it as the default and name it: its greedy matcher takes the globally nearest
treated-control pair first (``order: nearest``), in rounds of one control per treated
person when ``ratio`` > 1.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from cohortlake.errors import UserError


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError("matching", message)


class PsModel(StrEnum):
    """How the propensity score is estimated."""

    logistic = "logistic"


class Scale(StrEnum):
    """The scale persons are matched on."""

    logit = "logit"
    """log(ps / (1 - ps)); CohortMethod's and Austin's (2011) recommendation."""
    probability = "probability"
    """The propensity score itself."""


class Method(StrEnum):
    """How treated and control persons are made comparable."""

    greedy_nearest_neighbor = "greedy_nearest_neighbor"
    iptw = "iptw"
    """Inverse probability of treatment weights (every person kept, weighted)."""
    overlap_weights = "overlap_weights"
    """Li, Morgan & Zaslavsky (2018): treated 1 - ps, controls ps."""


class Order(StrEnum):
    """In which order treated persons pick their nearest control (without replacement)."""

    nearest = "nearest"
    """Globally nearest pair first (CohortMethod's greedy matcher; MatchIt's m.order="closest")."""
    largest = "largest"
    """Highest propensity score first (MatchIt's default for a propensity-score distance)."""
    smallest = "smallest"
    """Lowest propensity score first."""
    random = "random"
    """A random order from ``seed``."""
    data = "data"
    """Row order of the data."""


class CaliperScale(StrEnum):
    """Units of ``caliper``."""

    sd_of_logit = "sd_of_logit"
    """Standard deviations of logit(ps) over all persons (requires ``scale: logit``)."""
    sd_of_probability = "sd_of_probability"
    """Standard deviations of ps over all persons (requires ``scale: probability``)."""
    sd = "sd"
    """Standard deviations of the matching scale, whichever it is."""
    raw = "raw"
    """Units of the matching scale itself."""


class SmdDenominator(StrEnum):
    """The standard deviation that divides a mean difference (always from the sample before matching)."""

    pooled = "pooled"
    """sqrt((s1² + s0²) / 2), CohortMethod's."""
    treated = "treated"
    """The treated group's SD, MatchIt's for the ATT."""


class Estimand(StrEnum):
    ate = "ate"
    att = "att"


def _caliper(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, bool):  # YAML `caliper: yes` is not a width
        raise _problem("caliper must be a positive number of units or 'none'")
    return value


Caliper = Annotated[float | None, BeforeValidator(_caliper)]


class TreatmentArms(BaseModel):
    """Which value of the arm column is the treated group and which the control group."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    arm: str = Field(min_length=1)
    """The treated arm (target)."""
    control: str = Field(min_length=1)
    """The comparator arm."""

    @model_validator(mode="after")
    def _different(self) -> TreatmentArms:
        if self.arm == self.control:
            raise _problem(f"arm and control are both '{self.arm}'; they must differ")
        return self


# Fields that only mean something for greedy matching: set with a weighting method, they
# would be silently ignored, so they are an error instead.
MATCHING_ONLY = ("ratio", "replacement", "caliper", "caliper_scale", "order", "exact")


class MatchingSettings(BaseModel):
    """Propensity-score estimation, matching or weighting, and balance diagnostics."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    treatment: TreatmentArms | None = None
    """Arm values: {arm: treated value, control: comparator value}."""
    ps_covariates: tuple[str, ...] = Field(default=(), min_length=0)
    """Baseline covariates of the propensity-score model (names of covariate columns)."""
    ps_model: PsModel = PsModel.logistic
    l2: float = Field(default=0.0, ge=0.0)
    """L2 (ridge) penalty of the logistic model; 0 = an ordinary maximum-likelihood fit."""
    scale: Scale = Scale.logit
    method: Method = Method.greedy_nearest_neighbor
    ratio: int = Field(default=1, ge=1, le=100)
    """At most this many controls per treated person (1:k), taken in rounds of one."""
    replacement: bool = False
    """A control may be matched to several treated persons (default false)."""
    caliper: Caliper = 0.2
    """Largest allowed distance (inclusive), in ``caliper_scale`` units; 'none' for no caliper."""
    caliper_scale: CaliperScale | None = None
    """Default: standard deviations of the matching scale (sd_of_logit for scale: logit)."""
    order: Order = Order.nearest
    seed: int | None = Field(default=None, ge=0)
    """Seed of ``order: random``."""
    exact: tuple[str, ...] = ()
    """Covariates matched exactly: persons are matched only within their stratum."""
    estimand: Estimand = Estimand.ate
    """For ``method: iptw``: ATE or ATT weights."""
    stabilized: bool = False
    """For ``method: iptw``: multiply weights by the marginal probability of the arm received."""
    smd_threshold: float = Field(default=0.1, gt=0.0)
    """Largest |standardized mean difference| after matching that the balance gate accepts (default 0.1)."""
    smd_denominator: SmdDenominator = SmdDenominator.pooled
    equipoise: tuple[float, float] = (0.3, 0.7)
    """Bounds of the preference score (Walker et al. 2013) counted as equipoise."""

    @model_validator(mode="after")
    def _consistent(self) -> MatchingSettings:
        if self.caliper is not None and not self.caliper > 0:
            raise _problem(f"caliper must be > 0 (got {self.caliper}); write 'none' for no caliper")
        if self.caliper_scale is CaliperScale.sd_of_logit and self.scale is not Scale.logit:
            raise _problem("caliper_scale sd_of_logit needs scale: logit (use sd_of_probability, sd or raw)")
        if self.caliper_scale is CaliperScale.sd_of_probability and self.scale is not Scale.probability:
            raise _problem("caliper_scale sd_of_probability needs scale: probability (use sd_of_logit, sd or raw)")
        if self.order is Order.random and self.seed is None:
            raise _problem("order: random needs a seed, so the same inputs give the same matches")
        low, high = self.equipoise
        if not 0.0 <= low < high <= 1.0:
            raise _problem(f"equipoise bounds must satisfy 0 <= low < high <= 1 (got [{low}, {high}])")
        if self.method is not Method.greedy_nearest_neighbor:
            given = [name for name in MATCHING_ONLY if name in self.model_fields_set]
            if given:
                raise _problem(f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} to "
                               f"method greedy_nearest_neighbor, not {self.method.value}")
        if len(set(self.ps_covariates)) != len(self.ps_covariates):
            raise _problem("ps_covariates lists a name twice")
        return self

    @property
    def caliper_in_sd(self) -> bool:
        """True when ``caliper`` counts standard deviations of the matching scale."""
        return (self.caliper_scale or CaliperScale.sd) is not CaliperScale.raw


def _located(where: str | None, loc: tuple) -> str:
    field = ".".join(str(part) for part in ("matching",) + tuple(loc))
    if where:
        from cohortlake.yamlfile import load_located

        try:
            line = load_located(where).line_of(("matching",) + tuple(loc))
        except UserError:
            line = None
        return f"{where}:{line}: {field}" if line else f"{where}: {field}"
    return field


def parse_matching(data: dict | None, where: str | None = None) -> MatchingSettings:
    """Validate a ``matching:`` mapping; problems raise one UserError naming each field (and line)."""
    try:
        return MatchingSettings.model_validate(data or {})
    except ValidationError as error:
        lines = []
        for item in error.errors():
            loc = tuple(part for part in item["loc"] if not isinstance(part, str) or not part.startswith("function-"))
            message = item["msg"]
            if item["type"] == "extra_forbidden":
                allowed = ", ".join(MatchingSettings.model_fields) if len(loc) == 1 else "arm, control"
                message = f"unknown key (allowed: {allowed})"
            elif item["type"] == "enum":
                message = f"{message}, got '{item.get('input')}'"
            lines.append(f"{_located(where, loc)}: {message}")
        raise UserError("; ".join(lines)) from None


def matching_settings(definition) -> MatchingSettings:
    """The settings of a loaded cohort ``Definition`` (its ``matching:`` section, or the defaults)."""
    return definition.matching or MatchingSettings()
