"""The survival analysis's results as small frozen dataclasses, read by attribute.

Like lifelines' fitters, which expose what they estimated as attributes
(``median_survival_time_``, ``hazard_ratios_``, ``confidence_intervals_``) and a
``summary`` table, every result here is an object whose attributes name its figures:
``results.cox.adjusted.hazard_ratios["sorafenib"].hr``, ``curve.median.months.estimate``.
The report reads these attributes; nothing walks nested dicts by string keys.

Each class has ``to_json()``, the dict that ``results.json`` holds (the keys, their order
and the values exactly as the analysis has always written them), and ``from_json()``,
which reads such a dict back. ``from_json`` is lenient: a key that is missing reads as
None (or empty), so a ``results.json`` written by hand or by an older run still loads, and
the report says "not available" where a figure is absent. No lifelines, no Spark: the
report imports this module to read a results file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

OMIT_NONE = {"omit_none": True}
"""Field metadata: the key is left out of the JSON when the value is None (it is written
only in some analyses: weights, a horizon, a note)."""


def _json(value):
    if is_dataclass(value):
        return value.to_json()
    if isinstance(value, Mapping):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(item) for item in value]
    return value


class JsonResult:
    """``to_json()`` for the dataclasses below: fields in declaration order, nested results
    as their JSON, a field marked :data:`OMIT_NONE` left out when None; ``from_json()`` for
    a class of plain fields (classes with nested results override it)."""

    def to_json(self) -> dict:
        return {f.name: _json(getattr(self, f.name)) for f in fields(self)
                if not (f.metadata.get("omit_none") and getattr(self, f.name) is None)}

    @classmethod
    def from_json(cls, data):
        """Read ``to_json()``'s dict back; a class with nested results reads those itself."""
        return cls(**_read(data, *(f.name for f in fields(cls))))


def _mapping(data) -> Mapping:
    return data if isinstance(data, Mapping) else {}


def _read(data, *names) -> dict[str, Any]:
    """The named keys of ``data`` (None where missing) as keyword arguments."""
    data = _mapping(data)
    return {name: data.get(name) for name in names}


def _optional(reader, data):
    return None if data is None else reader(data)


def _by_label(reader, data) -> dict:
    return {str(label): reader(item) for label, item in _mapping(data).items()}


# --------------------------------------------------------------------------- Kaplan-Meier


@dataclass(frozen=True, kw_only=True)
class Estimate(JsonResult):
    """A point estimate with its 95% CI; None where not reached or not defined."""
    estimate: float | None
    ci_lower: float | None
    ci_upper: float | None


@dataclass(frozen=True, kw_only=True)
class Quantile(JsonResult):
    """A quantile of survival time (the median, a quartile) in days and in months."""
    days: Estimate
    months: Estimate

    @classmethod
    def from_json(cls, data) -> Quantile:
        data = _mapping(data)
        return cls(days=Estimate.from_json(data.get("days")), months=Estimate.from_json(data.get("months")))


@dataclass(frozen=True, kw_only=True)
class AtRisk(JsonResult):
    """Persons still followed (time >= ``time``), unweighted."""
    time: float
    n: int


@dataclass(frozen=True, kw_only=True)
class SurvivalAt(JsonResult):
    """S(horizon) with its 95% CI; estimates None (and a note) when follow-up ends before it."""
    horizon_days: float
    estimate: float | None
    ci_lower: float | None
    ci_upper: float | None
    note: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class KaplanMeierCurve(JsonResult):
    """One Kaplan-Meier curve's figures: persons, events, median and quartiles, numbers at risk."""
    n: int
    events: int
    weighted_n: float | None = field(default=None, metadata=OMIT_NONE)
    weighted_events: float | None = field(default=None, metadata=OMIT_NONE)
    median: Quantile
    q25: Quantile
    q75: Quantile
    at_risk: tuple[AtRisk, ...] = ()
    survival_at_horizon: SurvivalAt | None = field(default=None, metadata=OMIT_NONE)

    @classmethod
    def from_json(cls, data) -> KaplanMeierCurve:
        data = _mapping(data)
        return cls(**_read(data, "n", "events", "weighted_n", "weighted_events"),
                   median=Quantile.from_json(data.get("median")), q25=Quantile.from_json(data.get("q25")),
                   q75=Quantile.from_json(data.get("q75")),
                   at_risk=tuple(AtRisk.from_json(entry) for entry in data.get("at_risk") or ()),
                   survival_at_horizon=_optional(SurvivalAt.from_json, data.get("survival_at_horizon")))


@dataclass(frozen=True, kw_only=True)
class LogRank(JsonResult):
    """The log-rank test of equal survival across all groups."""
    test: str
    chi2: float | None
    df: int
    p: float | None


# --------------------------------------------------------------------------- Cox


@dataclass(frozen=True, kw_only=True)
class HazardRatio(JsonResult):
    """One Cox term: the hazard ratio exp(coef) with its 95% CI, p, the coefficient and its SE."""
    hr: float | None
    ci_lower: float | None
    ci_upper: float | None
    p: float | None
    coef: float
    se: float


@dataclass(frozen=True, kw_only=True)
class PHTest(JsonResult):
    chi2: float
    p: float | None


@dataclass(frozen=True, kw_only=True)
class PHCheck(JsonResult):
    """The scaled-Schoenfeld test per term; ``any_violation`` when some term has p < ``alpha``."""
    test: str
    alpha: float
    terms: dict[str, PHTest]
    any_violation: bool
    violating_terms: list[str]

    @classmethod
    def from_json(cls, data) -> PHCheck:
        data = _mapping(data)
        return cls(**_read(data, "test", "alpha", "any_violation"), terms=_by_label(PHTest.from_json, data.get("terms")),
                   violating_terms=list(data.get("violating_terms") or []))


@dataclass(frozen=True, kw_only=True)
class CoxFit(JsonResult):
    """A Cox model's hazard ratios of every group against the reference (crude or adjusted)."""
    model: str
    n: int
    events: int
    reference_group: str
    hazard_ratios: dict[str, HazardRatio]
    covariates: list[str]
    covariate_terms: dict[str, HazardRatio]
    covariate_reference_levels: dict[str, str]
    variance: str
    ties: str
    ph_check: PHCheck | None

    @property
    def summary(self):
        """Every term (groups, then covariates) as a table, as lifelines' ``summary``."""
        return _terms_table({**self.hazard_ratios, **self.covariate_terms}, "hr")

    @classmethod
    def from_json(cls, data) -> CoxFit:
        data = _mapping(data)
        return cls(**_read(data, "model", "n", "events", "reference_group", "variance", "ties"),
                   hazard_ratios=_by_label(HazardRatio.from_json, data.get("hazard_ratios")),
                   covariates=list(data.get("covariates") or []),
                   covariate_terms=_by_label(HazardRatio.from_json, data.get("covariate_terms")),
                   covariate_reference_levels=dict(data.get("covariate_reference_levels") or {}),
                   ph_check=_optional(PHCheck.from_json, data.get("ph_check")))


@dataclass(frozen=True, kw_only=True)
class CoxModels(JsonResult):
    crude: CoxFit | None
    adjusted: CoxFit | None

    @property
    def primary(self) -> CoxFit | None:
        """The model the study leads with: the adjusted one when there is one."""
        return self.adjusted or self.crude

    @classmethod
    def from_json(cls, data) -> CoxModels:
        data = _mapping(data)
        return cls(crude=_optional(CoxFit.from_json, data.get("crude")),
                   adjusted=_optional(CoxFit.from_json, data.get("adjusted")))


def _terms_table(terms: Mapping[str, Any], ratio: str):
    import pandas as pd

    return pd.DataFrame([{ratio: getattr(t, ratio), "ci_lower": t.ci_lower, "ci_upper": t.ci_upper, "p": t.p,
                          "coef": t.coef, "se": t.se} for t in terms.values()],
                        index=pd.Index(list(terms), name="term"), columns=[ratio, "ci_lower", "ci_upper", "p", "coef", "se"])


# --------------------------------------------------------------------------- risk at a horizon


@dataclass(frozen=True, kw_only=True)
class RiskAt(JsonResult):
    """One group's risk by the horizon, 1 - KM, with its 95% CI (None and a note past follow-up)."""
    horizon_days: float
    method: str
    risk: float | None
    ci_lower: float | None
    ci_upper: float | None
    events_by_horizon: int
    n_status_known: int
    note: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class RiskRatio(JsonResult):
    """One group's risk ratio exp(coef) against the reference, with its 95% CI and p."""
    rr: float | None
    ci_lower: float | None
    ci_upper: float | None
    p: float | None
    coef: float
    se: float


@dataclass(frozen=True, kw_only=True)
class RiskRatioFit(JsonResult):
    """Risk ratios by the horizon among persons with known status (log-binomial or modified Poisson)."""
    model: str
    horizon_days: float
    method: str
    fallback_reason: str | None
    variance: str
    population: str
    n_status_known: int
    n_status_unknown: int
    reference_group: str
    proportions: dict[str, float]
    risk_ratios: dict[str, RiskRatio]
    covariates: list[str]
    covariate_reference_levels: dict[str, str]

    @property
    def summary(self):
        """The group terms as a table, as lifelines' ``summary``."""
        return _terms_table(self.risk_ratios, "rr")

    @classmethod
    def from_json(cls, data) -> RiskRatioFit:
        data = _mapping(data)
        return cls(**_read(data, "model", "horizon_days", "method", "fallback_reason", "variance", "population",
                           "n_status_known", "n_status_unknown", "reference_group"),
                   proportions=dict(data.get("proportions") or {}),
                   risk_ratios=_by_label(RiskRatio.from_json, data.get("risk_ratios")),
                   covariates=list(data.get("covariates") or []),
                   covariate_reference_levels=dict(data.get("covariate_reference_levels") or {}))


@dataclass(frozen=True, kw_only=True)
class RiskSummary(JsonResult):
    """Risk by the horizon per group, and the crude and adjusted risk ratios."""
    horizon_days: float
    by_group: dict[str, RiskAt]
    rr_crude: RiskRatioFit | None = None
    rr_adjusted: RiskRatioFit | None = None

    def ratios(self) -> dict[str, RiskRatioFit | None]:
        """The two risk-ratio models by their JSON name (``rr_crude``, ``rr_adjusted``)."""
        return {"rr_crude": self.rr_crude, "rr_adjusted": self.rr_adjusted}

    @classmethod
    def from_json(cls, data) -> RiskSummary:
        data = _mapping(data)
        return cls(horizon_days=data.get("horizon_days"), by_group=_by_label(RiskAt.from_json, data.get("by_group")),
                   rr_crude=_optional(RiskRatioFit.from_json, data.get("rr_crude")),
                   rr_adjusted=_optional(RiskRatioFit.from_json, data.get("rr_adjusted")))


# --------------------------------------------------------------------------- competing risks


@dataclass(frozen=True, kw_only=True)
class IncidencePoint(JsonResult):
    """Cumulative incidence at one time with its 95% CI (None past the group's follow-up)."""
    time: float
    cif: float | None
    ci_lower: float | None
    ci_upper: float | None


@dataclass(frozen=True, kw_only=True)
class GroupIncidence(JsonResult):
    """One group's persons, events by type, and cumulative incidence curve of each type."""
    n: int
    events: dict[str, int]
    cumulative_incidence: dict[str, list[IncidencePoint]]

    @classmethod
    def from_json(cls, data) -> GroupIncidence:
        data = _mapping(data)
        return cls(n=data.get("n"), events=dict(data.get("events") or {}),
                   cumulative_incidence={str(kind): [IncidencePoint.from_json(p) for p in points or ()]
                                         for kind, points in _mapping(data.get("cumulative_incidence")).items()})


@dataclass(frozen=True, kw_only=True)
class CumulativeIncidence(JsonResult):
    method: str
    event_column: str
    event_types: list[str]
    by_group: dict[str, GroupIncidence]

    @classmethod
    def from_json(cls, data) -> CumulativeIncidence:
        data = _mapping(data)
        return cls(**_read(data, "method", "event_column"), event_types=list(data.get("event_types") or []),
                   by_group=_by_label(GroupIncidence.from_json, data.get("by_group")))


# --------------------------------------------------------------------------- one analysis


@dataclass(frozen=True, kw_only=True)
class SurvivalInput(JsonResult):
    """What was analysed: the source and the role of each column; times in days."""
    source: str
    time: str
    event: str
    group: str | None
    covariates: list[str]
    cluster: str | None
    weights: str | None
    event_type: str | None
    horizon_days: float | None
    time_unit: str
    days_per_month: float
    left_out_unmatched: int | None = field(default=None, metadata=OMIT_NONE)
    """Rows psmatch left unmatched and the analysis left out (``run_survival`` only)."""

    @classmethod
    def from_json(cls, data) -> SurvivalInput:
        data = _mapping(data)
        return cls(**_read(data, "source", "time", "event", "group", "cluster", "weights", "event_type",
                           "horizon_days", "time_unit", "days_per_month", "left_out_unmatched"),
                   covariates=list(data.get("covariates") or []))


@dataclass(frozen=True, kw_only=True)
class SurvivalResults(JsonResult):
    """The whole survival analysis of one table; steps that do not apply are None."""
    input: SurvivalInput | None
    n: int
    events: int
    reference_group: str | None
    groups: dict[str, KaplanMeierCurve]
    logrank: LogRank | None = None
    cox: CoxModels | None = None
    risk: RiskSummary | None = None
    competing_risks: CumulativeIncidence | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def primary_cox(self) -> CoxFit | None:
        """The adjusted Cox model when there is one, else the crude one; None without a group."""
        return self.cox.primary if self.cox is not None else None

    def risk_ratio(self, model: str) -> RiskRatioFit | None:
        """``rr_crude`` or ``rr_adjusted``; None without a horizon or that model."""
        return self.risk.ratios()[model] if self.risk is not None else None

    @classmethod
    def from_json(cls, data) -> SurvivalResults:
        data = _mapping(data)
        return cls(input=_optional(SurvivalInput.from_json, data.get("input")),
                   **_read(data, "n", "events", "reference_group"),
                   groups=_by_label(KaplanMeierCurve.from_json, data.get("groups")),
                   logrank=_optional(LogRank.from_json, data.get("logrank")),
                   cox=_optional(CoxModels.from_json, data.get("cox")),
                   risk=_optional(RiskSummary.from_json, data.get("risk")),
                   competing_risks=_optional(CumulativeIncidence.from_json, data.get("competing_risks")),
                   notes=list(data.get("notes") or []))


# --------------------------------------------------------------------------- a definition's study


@dataclass(frozen=True, kw_only=True)
class Treatment(JsonResult):
    """The compared arms: the treated ``arm`` and the ``control``."""
    arm: str | None
    control: str | None


@dataclass(frozen=True, kw_only=True)
class MatchingSummary(JsonResult):
    """The matching settings and what the match step recorded (``matching.json``, ``balance.csv``)."""
    method: str | None = None
    scale: str | None = None
    caliper: float | None = None
    ratio: int | None = None
    replacement: bool | None = None
    order: str | None = None
    smd_threshold: float | None = None
    ps_method: str | None = None
    n_treated: int | None = None
    n_control: int | None = None
    matched_treated: int | None = None
    matched_control: int | None = None
    equipoise: float | None = None
    max_abs_smd_after: float | None = None
    balance_passed: bool | None = None
    smd_denominator: str | None = field(default=None, metadata=OMIT_NONE)
    """Table 1's SMD denominator when a results file names one (the report's default: pooled)."""

    def matched(self, side: str) -> int | None:
        """Persons matched on ``side`` (``treated`` or ``control``)."""
        return self.matched_treated if side == "treated" else self.matched_control

    @classmethod
    def from_json(cls, data) -> MatchingSummary:
        return cls(**_read(data, *(f.name for f in fields(cls))))


@dataclass(frozen=True, kw_only=True)
class Quartiles(JsonResult):
    median: float | None
    q25: float | None
    q75: float | None


@dataclass(frozen=True, kw_only=True)
class Duration(JsonResult):
    """Median and IQR of the treated arm's exposure duration in days, from a covariate."""
    median: float | None
    q25: float | None
    q75: float | None
    covariate: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class Descriptive(JsonResult):
    """The unmatched figures of the reference table, from the built cohort."""
    population: str | None = None
    n: int | None = None
    treated_share: float | None = None
    duration_days: Duration | None = None
    survival_from_first_rx_months: Quartiles | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data) -> Descriptive:
        data = _mapping(data)
        return cls(**_read(data, "population", "n", "treated_share"),
                   duration_days=_optional(Duration.from_json, data.get("duration_days") or None),
                   survival_from_first_rx_months=_optional(Quartiles.from_json,
                                                           data.get("survival_from_first_rx_months") or None),
                   notes=list(data.get("notes") or []))


@dataclass(frozen=True, kw_only=True)
class StudyFiles(JsonResult):
    km_plot: str | None


@dataclass(frozen=True, kw_only=True)
class StudyResults(JsonResult):
    """A definition's study analysis: what ``results.json`` in the run's folder holds."""
    cohort: str | None
    title: str | None
    treatment: Treatment
    covariates: list[str]
    horizon_days: float | None
    reference_study: bool | None
    matching: MatchingSummary
    survival: SurvivalResults | None
    descriptive: Descriptive | None
    files: StudyFiles | None

    @classmethod
    def from_json(cls, data) -> StudyResults:
        data = _mapping(data)
        return cls(**_read(data, "cohort", "title", "horizon_days", "reference_study"),
                   treatment=Treatment.from_json(data.get("treatment")),
                   covariates=list(data.get("covariates") or []),
                   matching=MatchingSummary.from_json(data.get("matching")),
                   survival=_optional(SurvivalResults.from_json, data.get("survival") or None),
                   descriptive=_optional(Descriptive.from_json, data.get("descriptive") or None),
                   files=_optional(StudyFiles.from_json, data.get("files")))
