"""The plain-English text of every rule kind, in a registry keyed like the engine's rules: (OneOf class, kind).

``explain.py`` renders a whole definition from these texts.
"""

from __future__ import annotations

from typing import Any, Callable

from cohortlake.spec.model import (
    Arm,
    CoverageRule,
    Covariate,
    Criterion,
    Definition,
    EventSpec,
    ExposurePoint,
    FollowupEnd,
    Index,
    OneOf,
    Outcome,
    TimeVarying,
    Unit,
    Window,
)


def signed(n: int) -> str:
    return f"+{n}" if n > 0 else str(n)


def words(items, last: str = "or") -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def anchor_text(value: Any) -> str:
    if isinstance(value, ExposurePoint):
        return f"the {value.at} of the first `{value.exposure}` era starting on or after index"
    return "index" if value == "index" else f"the `{value}` landmark date"


def days_text(n: int) -> str:
    return f"{n} day" if abs(n) == 1 else f"{n} days"


def in_window(w: Window) -> str:
    """"in days -30 to +60 from index", or "on day 0 from index" for a one-day window."""
    return ("on " if w.from_ == w.to and w.unit is Unit.days else "in ") + window(w)


def window(w: Window) -> str:
    """E.g. "days -30 to +60 from index", "months -12 to +2 from the index month"."""
    if w.unit is Unit.months:
        anchor = anchor_text(w.relative_to)
        anchor = "the index month" if anchor == "index" else f"the month of {anchor}"
        span = f"month {signed(w.from_)}" if w.from_ == w.to else f"months {signed(w.from_)} to {signed(w.to)}"
        return f"calendar {span} from {anchor}"
    span = f"day {signed(w.from_)}" if w.from_ == w.to else f"days {signed(w.from_)} to {signed(w.to)}"
    return f"{span} from {anchor_text(w.relative_to)}"


def _events(spec: EventSpec | Any, codesets=None, tables=None, settings=None, one: bool = False) -> str:
    codesets = codesets if codesets is not None else spec.codesets
    tables = tables if tables is not None else spec.tables
    settings = settings if settings is not None else getattr(spec, "settings", None)
    where = f" ({words(settings)} claims)" if settings else ""
    return f"{words(tables)} event{'' if one else 's'}{where} of {words(f'`{c}`' for c in codesets)}"


def coverage_text(rule: CoverageRule) -> str:
    parts = []
    if rule.require:
        every = "every month" if rule.window.unit is Unit.months else "every day"
        parts.append(f"{words(rule.require, 'and')} held {every} of {window(rule.window)}")
    if rule.exclude:
        parts.append(f"no {words(rule.exclude)} {in_window(rule.window)}")
    notes = [f"gaps up to {rule.allowed_gap_days} days allowed" if rule.allowed_gap_days else "no gap allowed"]
    if rule.truncate_at_death:
        notes.append("not required after death")
    return "; ".join(parts) + f" ({', '.join(notes)})"


# -- one text per rule kind, keyed like the engine's rules: (OneOf class, kind) ---------------

TEXTS: dict[tuple[type[OneOf], str], Callable[[Any, Definition], str]] = {}


def text(kind_of: type[OneOf], kind: str):
    """Register the plain-English text of ``kind`` of ``kind_of``: a function of (item, definition)."""
    if kind not in kind_of.choices:
        raise ValueError(f"{kind_of.__name__} has no kind {kind!r}")

    def register(function):
        TEXTS[(kind_of, kind)] = function
        return function

    return register


def rule_text(item: OneOf, d: Definition | None = None) -> str:
    """The registered text of the item's kind."""
    try:
        function = TEXTS[(type(item), item.kind)]
    except KeyError:
        raise AssertionError(f"no explain text for {type(item).__name__} kind {item.kind}") from None
    return function(item, d)


def criterion_text(c: Criterion, d: Definition) -> str:
    """The rule of one criterion in plain English."""
    return rule_text(c, d)


def index_text(index: Index, d: Definition) -> str:
    """The index date in plain English."""
    return rule_text(index, d)


def arm_text(arm: Arm) -> str:
    """The arm rule in plain English."""
    return rule_text(arm)


def outcome_text(outcome: Outcome | TimeVarying) -> str:
    """An outcome or time-varying event in plain English."""
    competing = getattr(outcome, "competing", ())
    return rule_text(outcome) + (f"; competing risk: {words(competing, 'and')}" if competing else "")


def covariate_text(c: Covariate) -> str:
    """A covariate's definition in plain English."""
    return rule_text(c)


def end_text(end: FollowupEnd, d: Definition) -> str:
    return rule_text(end, d)


# criteria


@text(Criterion, "index_exists")
def _index_exists(c: Criterion, d: Definition) -> str:
    if d.index.tumor is not None:
        return ("has an index tumor (a qualifying registry tumor; a tumor whose diagnosis year or month is "
                "unknown passes this rule but gives no index date, so rules on dates fail later)")
    return f"has an index date (a qualifying {d.index.kind})"


@text(Criterion, "tumor")
def _tumor_criterion(c: Criterion, d: Definition) -> str:
    rule = c.rule
    parts = []
    if rule.sequence_number is not None:
        parts.append(f"sequence number {words(rule.sequence_number)}")
    if rule.diagnosis_year is not None:
        lo, hi = rule.diagnosis_year.min, rule.diagnosis_year.max
        parts.append(f"diagnosis year {lo}-{hi}" if lo and hi else f"diagnosis year {'≥ ' + str(lo) if lo else '≤ ' + str(hi)}")
    if rule.diagnosis_month_known is not None:
        parts.append("diagnosis month known" if rule.diagnosis_month_known else "diagnosis month unknown")
    if rule.reporting_source is not None:
        rs = rule.reporting_source
        parts.append(f"reporting source {'not ' + words(rs.exclude, 'nor') if rs.exclude else words(rs.include)}")
    if rule.stage is not None:
        parts.append(f"stage {words(rule.stage)}")
    if rule.behavior is not None:
        parts.append(f"behavior {words(rule.behavior)}")
    return "index tumor: " + "; ".join(parts)


@text(Criterion, "age")
def _age_criterion(c: Criterion, d: Definition) -> str:
    rule = c.rule
    at = "index" if rule.at == "index" else f"the `{rule.at}` landmark date"
    if rule.min is not None and rule.max is not None:
        return f"age at {at} {rule.min}-{rule.max} years"
    return f"age at {at} {'≥ ' + str(rule.min) if rule.min is not None else '≤ ' + str(rule.max)} years"


@text(Criterion, "sex")
def _sex_criterion(c: Criterion, d: Definition) -> str:
    return f"sex {words(c.rule)}"


@text(Criterion, "alive")
def _alive(c: Criterion, d: Definition) -> str:
    through = c.rule.through
    if isinstance(through, str):
        return f"no death on or before the `{through}` landmark date"
    return f"no death on or before day {signed(through.days)} from index"


@text(Criterion, "coverage")
def _coverage_criterion(c: Criterion, d: Definition) -> str:
    return coverage_text(c.rule)


@text(Criterion, "occurrence")
def _occurrence(c: Criterion, d: Definition) -> str:
    rule = c.rule
    if rule.exposure:
        what, counted = f"`{rule.exposure.name}` era {rule.exposure.at}s", "distinct dates"
    else:
        what = _events(rule)
        counted = {"distinct_dates": "distinct dates", "claims": "claims", "events": "event rows"}[rule.count]
    bound, n = rule.bound
    if bound == "at_most" and n == 0:
        return f"no {what} {in_window(rule.window)}"
    phrase = {"at_least": "at least", "at_most": "at most", "exactly": "exactly"}[bound]
    counted = counted.replace("dates", "date").replace("claims", "claim").replace("rows", "row") if n == 1 else counted
    return f"{phrase} {n} {counted} with {what} {in_window(rule.window)}"


@text(Criterion, "washout")
def _washout(c: Criterion, d: Definition) -> str:
    return f"no {_events(c.rule)} {in_window(c.rule.as_window())} (a {c.rule.days}-day washout)"


@text(Criterion, "index_period")
def _index_period(c: Criterion, d: Definition) -> str:
    rule = c.rule
    if rule.start and rule.end:
        return f"index date from {rule.start} to {rule.end}"
    return f"index date on or after {rule.start}" if rule.start else f"index date on or before {rule.end}"


# index


@text(Index, "tumor")
def _tumor_index(index: Index, d: Definition) -> str:
    rule = index.rule
    parts = []
    if rule.primary_site:
        parts.append(f"primary site in {words(_code_ref(s, d) for s in rule.primary_site)}")
    if rule.histology:
        parts.append(f"histology in {words(_code_ref(h, d) for h in rule.histology)}")
    if rule.behavior:
        parts.append(f"behavior {words(rule.behavior)}")
    choose = rule.choose.value.replace("_", " ")
    return (
        f"Registry tumor with {'; '.join(parts) or 'any site'}. The index tumor is the qualifying tumor "
        f"with the {choose}. Index date = day {rule.date.day_of_month} of its diagnosis month "
        "(unknown month: no index date)."
    )


@text(Index, "event")
def _event_index(index: Index, d: Definition) -> str:
    rule = index.rule
    if rule.occurrence == "each":
        return f"Each distinct date of {_events(rule)} (every one an episode)."
    return f"The date of the first of the {_events(rule)}."


@text(Index, "exposure")
def _exposure_index(index: Index, d: Definition) -> str:
    rule = index.rule
    if rule.occurrence == "each":
        return f"The {rule.at} of each `{rule.name}` era (every one an episode)."
    return f"The {rule.at} of the first `{rule.name}` era."


@text(Index, "regimen")
def _regimen_index(index: Index, d: Definition) -> str:
    rule = index.rule
    if rule.occurrence == "each":
        return f"The {rule.at} of each `{rule.name}` regimen (every one an episode)."
    return f"The {rule.at} of the first `{rule.name}` regimen."


def _code_ref(item: str, d: Definition) -> str:
    return f"`{item}`" if item in d.codesets else item


# arms


@text(Arm, "exposure_start")
def _exposure_start(arm: Arm, d: Definition | None) -> str:
    return f"a `{arm.rule.exposure}` record (fill or administration) {in_window(arm.rule.window)}"


@text(Arm, "era_duration")
def _era_duration(arm: Arm, d: Definition | None) -> str:
    rule = arm.rule
    bounds = [f"at least {rule.min_days}" if rule.min_days is not None else "",
              f"at most {rule.max_days}" if rule.max_days is not None else ""]
    return (f"the first `{rule.exposure}` era starting on or after index lasts "
            f"{' and '.join(b for b in bounds if b)} days")


@text(Arm, "era_on_at")
def _era_on_at(arm: Arm, d: Definition | None) -> str:
    return f"an era of `{arm.rule.exposure}` covers the `{arm.rule.landmark}` landmark date"


@text(Arm, "regimen")
def _regimen_arm(arm: Arm, d: Definition | None) -> str:
    return f"the regimen `{arm.rule.name}` starts {in_window(arm.rule.window)}"


@text(Arm, "otherwise")
def _otherwise(arm: Arm, d: Definition | None) -> str:
    return "everyone not in an earlier arm"


# follow-up ends


@text(FollowupEnd, "death")
def _death_end(end: FollowupEnd, d: Definition) -> str:
    return "death"


@text(FollowupEnd, "study_end")
def _study_end(end: FollowupEnd, d: Definition) -> str:
    return f"study end ({d.study_period.end})"


@text(FollowupEnd, "coverage_end")
def _coverage_end(end: FollowupEnd, d: Definition) -> str:
    gap = f", gaps up to {days_text(end.rule.allowed_gap_days)} bridged" if end.rule.allowed_gap_days else ""
    return f"the last day of continuous {words(end.rule.require, 'and')} coverage{gap}"


@text(FollowupEnd, "exposure_end")
def _exposure_end(end: FollowupEnd, d: Definition) -> str:
    grace = f" + {days_text(end.rule.grace_days)}" if end.rule.grace_days else ""
    return f"the end of the `{end.rule.exposure}` era covering follow-up start{grace}"


# outcomes and time-varying covariates


@text(Outcome, "death")
def _death_outcome(outcome: Outcome, d: Definition | None) -> str:
    return "death"


@text(Outcome, "event")
@text(TimeVarying, "event")
def _first_event(outcome: Outcome | TimeVarying, d: Definition | None) -> str:
    return f"the first {_events(outcome.rule, one=True)} after follow-up start"


@text(TimeVarying, "exposure")
def _first_era_point(varying: TimeVarying, d: Definition | None) -> str:
    return f"the first `{varying.rule.name}` era {varying.rule.at} after follow-up start"


# covariates


@text(Covariate, "age")
def _age_covariate(c: Covariate, d: Definition | None) -> str:
    return f"age in whole years at {'index' if c.rule.at == 'index' else 'the `' + c.rule.at + '` landmark date'}"


@text(Covariate, "sex")
def _sex_covariate(c: Covariate, d: Definition | None) -> str:
    return "sex"


@text(Covariate, "race")
def _race(c: Covariate, d: Definition | None) -> str:
    if not c.rule.groups:
        return "race"
    return "race: " + "; ".join(f"{g} = {words(races)}" for g, races in c.rule.groups.items())


@text(Covariate, "index_year")
def _index_year(c: Covariate, d: Definition | None) -> str:
    return "calendar year of the index date"


@text(Covariate, "tumor_field")
def _tumor_field(c: Covariate, d: Definition | None) -> str:
    return f"index tumor {c.rule.field}"


@text(Covariate, "coverage_flag")
def _coverage_flag(c: Covariate, d: Definition | None) -> str:
    return f"1 if {c.rule.coverage} is held on any day of {window(c.rule.window)}, else 0"


def _comorbidity(index: str, rule) -> str:
    rule_out = ("with the macro's rule-out (outpatient/carrier diagnoses confirmed by MedPAR or by claims "
                "more than 30 days apart, reading 30 days past the window)") if rule.rule_out else "without rule-out"
    empty = "empty" if rule.without_claims.value == "missing" else "0"
    return (f"{index}, NCI.comorbidity.macro.sas 2022; conditions `{rule.conditions}`) from diagnosis claims in "
            f"{window(rule.window)}, {rule_out}; {empty} without a claim in the window")


@text(Covariate, "nci_comorbidity")
def _nci(c: Covariate, d: Definition | None) -> str:
    return _comorbidity("NCI comorbidity index (the macro's weights", c.rule)


@text(Covariate, "charlson")
def _charlson(c: Covariate, d: Definition | None) -> str:
    return _comorbidity("Charlson score (the macro's points", c.rule)


@text(Covariate, "flag")
def _flag(c: Covariate, d: Definition | None) -> str:
    rule = c.rule
    if rule.at_least > 1:
        return f"1 if at least {rule.at_least} distinct dates with {_events(rule)} {in_window(rule.window)}, else 0"
    return f"1 if any {_events(rule, one=True)} {in_window(rule.window)}, else 0"


@text(Covariate, "count")
def _count(c: Covariate, d: Definition | None) -> str:
    counted = {"distinct_dates": "distinct dates", "claims": "claims", "events": "event rows"}[c.rule.count]
    return f"number of {counted} with {_events(c.rule)} {in_window(c.rule.window)}"


@text(Covariate, "score")
def _score(c: Covariate, d: Definition | None) -> str:
    rule = c.rule
    terms = " + ".join(
        f"{t.points:g}×({t.covariate}{' ≥ ' + format(t.at_least, 'g') if t.at_least is not None else ''}{' = ' + t.equals if t.equals else ''})"
        for t in rule.terms
    )
    groups = ""
    if rule.groups:
        groups = "; groups " + ", ".join(
            f"{g.name} [{'' if g.min is None else format(g.min, 'g')}, {'' if g.max is None else format(g.max, 'g')}]"
            for g in rule.groups
        )
    return f"score = {terms}{groups}"


@text(Covariate, "exposure_duration")
def _exposure_duration(c: Covariate, d: Definition | None) -> str:
    rule = c.rule
    which = ("the first `{0}` era starting on or after index" if rule.era == "first_from_index"
             else "the last `{0}` era starting before index").format(rule.exposure)
    return f"duration in days (end - start + 1) of {which}; empty when there is none"
