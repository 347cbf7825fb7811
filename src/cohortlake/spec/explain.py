"""Render a Definition as print-friendly Markdown: every rule in one line of plain English."""

from __future__ import annotations

from typing import Any

from cohortlake.spec.codes import CodeSystem
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
    Outcome,
    TimeVarying,
    Unit,
    Window,
)

SYSTEM_LABELS = {
    CodeSystem.icd9cm: "ICD-9-CM diagnosis",
    CodeSystem.icd10cm: "ICD-10-CM diagnosis",
    CodeSystem.icd9pcs: "ICD-9-CM procedure",
    CodeSystem.icd10pcs: "ICD-10-PCS procedure",
    CodeSystem.hcpcs: "CPT/HCPCS",
    CodeSystem.ndc: "NDC",
    CodeSystem.icdo3_site: "ICD-O-3 site",
    CodeSystem.icdo3_histology: "ICD-O-3 histology",
    "generic_name": "generic name contains",
}


def _signed(n: int) -> str:
    return f"+{n}" if n > 0 else str(n)


def _words(items, last: str = "or") -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def _anchor(value: Any) -> str:
    if isinstance(value, ExposurePoint):
        return f"the {value.at} of the {value.exposure} era"
    return "index" if value == "index" else f"landmark `{value}`"


def window(w: Window) -> str:
    """E.g. "days -30 to +60 from index", "months -12 to +2 from the index month"."""
    if w.unit is Unit.months:
        anchor = _anchor(w.relative_to)
        anchor = f"the {anchor} month" if anchor == "index" or anchor.startswith("landmark") else f"the month of {anchor}"
        span = f"month {_signed(w.from_)}" if w.from_ == w.to else f"months {_signed(w.from_)} to {_signed(w.to)}"
        return f"calendar {span} from {anchor}"
    span = f"day {_signed(w.from_)}" if w.from_ == w.to else f"days {_signed(w.from_)} to {_signed(w.to)}"
    return f"{span} from {_anchor(w.relative_to)}"


def _events(spec: EventSpec | Any, codesets=None, tables=None, settings=None) -> str:
    codesets = codesets if codesets is not None else spec.codesets
    tables = tables if tables is not None else spec.tables
    settings = settings if settings is not None else getattr(spec, "settings", None)
    where = f" ({_words(settings)} claims)" if settings else ""
    return f"{_words(tables)} events{where} of {_words(f'`{c}`' for c in codesets)}"


def _coverage(rule: CoverageRule) -> str:
    parts = []
    if rule.require:
        every = "every month" if rule.window.unit is Unit.months else "every day"
        parts.append(f"{_words(rule.require, 'and')} held {every} of {window(rule.window)}")
    if rule.exclude:
        parts.append(f"no {_words(rule.exclude)} in {window(rule.window)}")
    notes = [f"gaps up to {rule.allowed_gap_days} days allowed" if rule.allowed_gap_days else "no gap allowed"]
    if rule.truncate_at_death:
        notes.append("not required after death")
    return "; ".join(parts) + f" ({', '.join(notes)})"


def criterion_text(c: Criterion, d: Definition) -> str:
    """The rule of one criterion in plain English."""
    rule = c.rule
    match c.kind:
        case "index_exists":
            return f"has an index date (a qualifying {d.index.kind})"
        case "tumor":
            parts = []
            if rule.sequence_number is not None:
                parts.append(f"sequence number {_words(rule.sequence_number)}")
            if rule.diagnosis_year is not None:
                lo, hi = rule.diagnosis_year.min, rule.diagnosis_year.max
                parts.append(f"diagnosis year {lo}-{hi}" if lo and hi else f"diagnosis year {'≥ ' + str(lo) if lo else '≤ ' + str(hi)}")
            if rule.diagnosis_month_known is not None:
                parts.append("diagnosis month known" if rule.diagnosis_month_known else "diagnosis month unknown")
            if rule.reporting_source is not None:
                rs = rule.reporting_source
                parts.append(f"reporting source {'not ' + _words(rs.exclude, 'nor') if rs.exclude else _words(rs.include)}")
            if rule.stage is not None:
                parts.append(f"stage {_words(rule.stage)}")
            if rule.behavior is not None:
                parts.append(f"behavior {_words(rule.behavior)}")
            return "index tumor: " + "; ".join(parts)
        case "age":
            at = "index" if rule.at == "index" else f"landmark {rule.at}"
            if rule.min is not None and rule.max is not None:
                return f"age at {at} {rule.min}-{rule.max} years"
            return f"age at {at} {'≥ ' + str(rule.min) if rule.min is not None else '≤ ' + str(rule.max)} years"
        case "sex":
            return f"sex {_words(rule)}"
        case "alive":
            through = rule.through
            if isinstance(through, str):
                return f"no death on or before the `{through}` landmark date"
            return f"no death on or before day {_signed(through.days)} from index"
        case "coverage":
            return _coverage(rule)
        case "occurrence":
            what = f"{rule.exposure.name} era {rule.exposure.at}s" if rule.exposure else _events(rule)
            bound, n = rule.bound
            counted = {"distinct_dates": "distinct dates", "claims": "claims", "events": "events"}[rule.count]
            if bound == "at_most" and n == 0:
                return f"no {what} in {window(rule.window)}"
            words = {"at_least": "at least", "at_most": "at most", "exactly": "exactly"}[bound]
            counted = counted.removesuffix("s") if n == 1 else counted
            return f"{words} {n} {counted} with {what} in {window(rule.window)}"
        case "washout":
            return f"no {_events(rule)} in {window(rule.as_window())}"
        case "index_period":
            return f"index date from {rule.start or 'any date'} to {rule.end or 'any date'}"
    raise AssertionError(c.kind)


def index_text(index: Index, d: Definition) -> str:
    """The index date in plain English."""
    rule = index.rule
    match index.kind:
        case "tumor":
            parts = []
            if rule.primary_site:
                parts.append(f"primary site in {_words(_code_ref(s, d) for s in rule.primary_site)}")
            if rule.histology:
                parts.append(f"histology in {_words(_code_ref(h, d) for h in rule.histology)}")
            if rule.behavior:
                parts.append(f"behavior {_words(rule.behavior)}")
            choose = rule.choose.value.replace("_", " ")
            return (
                f"Registry tumor with {'; '.join(parts) or 'any site'}. The index tumor is the qualifying tumor "
                f"with the {choose}. Index date = day {rule.date.day_of_month} of its diagnosis month "
                "(unknown month: no index date)."
            )
        case "event":
            return f"The {rule.occurrence} {_events(rule)}."
        case "exposure":
            return f"The {rule.at} of the {rule.occurrence} `{rule.name}` era."
        case "regimen":
            return f"The {rule.at} of the {rule.occurrence} `{rule.name}` regimen."
    raise AssertionError(index.kind)


def _code_ref(item: str, d: Definition) -> str:
    return f"`{item}`" if item in d.codesets else item


def arm_text(arm: Arm) -> str:
    """The arm rule in plain English."""
    rule = arm.rule
    match arm.kind:
        case "exposure_start":
            return f"first `{rule.exposure}` record in {window(rule.window)}"
        case "era_duration":
            bounds = [f"≥ {rule.min_days}" if rule.min_days is not None else "", f"≤ {rule.max_days}" if rule.max_days is not None else ""]
            return f"first `{rule.exposure}` era from index lasts {' and '.join(b for b in bounds if b)} days"
        case "era_on_at":
            return f"a `{rule.exposure}` era covers landmark {rule.landmark}"
        case "regimen":
            return f"regimen `{rule.name}` starts in {window(rule.window)}"
        case "otherwise":
            return "everyone not in an earlier arm"
    raise AssertionError(arm.kind)


def _end_text(end: FollowupEnd, d: Definition) -> str:
    match end.kind:
        case "death":
            return "death"
        case "study_end":
            return f"study end ({d.study_period.end})"
        case "coverage_end":
            gap = f", gaps up to {end.rule.allowed_gap_days} days bridged" if end.rule.allowed_gap_days else ""
            return f"end of {_words(end.rule.require, 'and')} coverage{gap}"
        case "exposure_end":
            return f"end of the `{end.rule.exposure}` era + {end.rule.grace_days} days"
    raise AssertionError(end.kind)


def outcome_text(outcome: Outcome | TimeVarying) -> str:
    """An outcome or time-varying event in plain English."""
    if outcome.kind == "death":
        text = "death"
    elif outcome.kind == "exposure":
        text = f"first `{outcome.rule.name}` era {outcome.rule.at} after follow-up start"
    else:
        text = f"first {_events(outcome.rule)} after follow-up start"
    competing = getattr(outcome, "competing", ())
    return text + (f"; competing risk: {_words(competing, 'and')}" if competing else "")


def covariate_text(c: Covariate) -> str:
    """A covariate's definition in plain English."""
    rule = c.rule
    match c.kind:
        case "age":
            return f"age in years at {'index' if rule.at == 'index' else 'landmark ' + rule.at}"
        case "sex":
            return "sex"
        case "race":
            if not rule.groups:
                return "race"
            return "race: " + "; ".join(f"{g} = {_words(races)}" for g, races in rule.groups.items())
        case "index_year":
            return "calendar year of the index date"
        case "tumor_field":
            return f"index tumor {rule.field}"
        case "coverage_flag":
            return f"1 if {rule.coverage} on any day of {window(rule.window)}"
        case "nci_comorbidity" | "charlson":
            index = "NCI comorbidity index (the macro's weights" if c.kind == "nci_comorbidity" else "Charlson score (the macro's points"
            rule_out = ("with the macro's rule-out (outpatient/carrier diagnoses confirmed by MedPAR or by claims "
                        "more than 30 days apart, reading 30 days past the window)") if rule.rule_out else "without rule-out"
            empty = "empty" if rule.without_claims.value == "missing" else "0"
            return (f"{index}, NCI.comorbidity.macro.sas 2022; conditions `{rule.conditions}`) from diagnosis claims in "
                    f"{window(rule.window)}, {rule_out}; {empty} without a claim in the window")
        case "flag":
            least = f"at least {rule.at_least} " if rule.at_least > 1 else ""
            return f"1 if {least}{_events(rule)} in {window(rule.window)}"
        case "count":
            return f"number of {rule.count.value.replace('_', ' ')} with {_events(rule)} in {window(rule.window)}"
        case "score":
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
        case "exposure_duration":
            return f"days of the {rule.era.value.replace('_', ' ')} `{rule.exposure}` era"
    raise AssertionError(c.kind)


def _codes_table(d: Definition) -> list[str]:
    lines = ["| code set | description | system | codes |", "|---|---|---|---|"]
    for name, raw in d.codesets.items():
        try:
            resolved = d.codeset(name)
            entries, generics, description = resolved.entries, resolved.generic_names, resolved.description
        except KeyError:  # includes not loaded (built in code): show the set as written
            entries, generics, description = raw.entries(), raw.generic_name, raw.description
        rows = []
        for system in CodeSystem:
            written = [e.as_written for e in entries if e.system == system]
            if written:
                rows.append((SYSTEM_LABELS[system], ", ".join(written)))
        if generics:
            rows.append((SYSTEM_LABELS["generic_name"], ", ".join(generics)))
        note = f" (includes {', '.join(raw.include)})" if raw.include else ""
        for i, (system, codes) in enumerate(rows or [("", "")]):
            first = i == 0
            lines.append(
                f"| {'`' + name + '`' if first else ''} | {((description or '') + note) if first else ''} | {system} | {codes} |"
            )
    return lines


def explain(d: Definition) -> str:
    """Markdown rendering of a definition: the rules a reader checks against the protocol."""
    out = [f"# {d.title}", "", f"Cohort `{d.cohort}`" + (f" · definition sha256 `{d.sha256[:12]}`" if d.path else ""), ""]
    if d.description:
        out += [d.description.strip(), ""]
    out += [f"**Study period:** {d.study_period.start} to {d.study_period.end} (study end {d.study_period.end})", ""]

    if d.codesets:
        out += ["## Code sets", "", *_codes_table(d), ""]

    out += ["## Index", "", index_text(d.index, d), ""]

    out += ["## Criteria (attrition steps, in order)", ""]
    out += [f"{i}. {c.name} — {criterion_text(c, d)}" for i, c in enumerate(d.criteria, 1)]
    out += [""]

    if d.exposures:
        out += ["## Exposures", ""]
        for name, e in d.exposures.items():
            if e.source == "dispensing":
                supply = (
                    f"days supply missing or < {e.days_supply.min} → {e.days_supply.default}, "
                    f"capped at {e.days_supply.max}"
                )
                source = f"Part D fills of {_words(f'`{c}`' for c in e.codesets)}; {supply}"
            else:
                source = (
                    f"administrations ({_words(e.record_settings())} procedure codes) of "
                    f"{_words(f'`{c}`' for c in e.codesets)}, each covering {e.administration_days} days"
                )
            stock = "stockpiling (early refills shift forward)" if e.stockpiling else "no stockpiling"
            out.append(f"- **{name}** — {source}; era continues while the next record starts ≤ {e.grace_days} days after the era end; {stock}")
        out += [""]
    if d.regimens:
        out += ["## Regimens", ""]
        for name, r in d.regimens.items():
            out.append(f"- **{name}** — `{r.anchor}` era start with {_words(f'`{w}`' for w in r.with_)} starting within {r.within_days} days (either side)")
        out += [""]
    if d.arms:
        out += ["## Arms (first matching rule wins)", ""]
        out += [f"{i}. **{a.name}** — {arm_text(a)}" for i, a in enumerate(d.arms, 1)]
        out += [""]
    if d.landmarks:
        out += ["## Landmarks", ""]
        for lm in d.landmarks:
            needs = [n for n, on in (("alive", lm.require_alive), ("covered: " + _coverage(lm.require_coverage) if lm.require_coverage else "", bool(lm.require_coverage))) if on]
            out.append(f"- **{lm.name}** — {_anchor(lm.from_)} + {lm.days} days" + (f"; requires {', '.join(needs)}" if needs else ""))
        out += [""]
    out += ["## Follow-up", "", f"Starts at {_anchor(d.followup.start)}; ends at the earliest of {_words((_end_text(e, d) for e in d.followup.end))}.", ""]
    if d.outcomes:
        out += ["## Outcomes", ""] + [f"- **{o.name}** — {outcome_text(o)}" for o in d.outcomes] + [""]
    if d.time_varying:
        out += ["## Time-varying covariates", ""] + [f"- **{t.name}** — 0 until the {outcome_text(t)}, then 1" for t in d.time_varying] + [""]
    if d.covariates:
        out += ["## Covariates", "", "| covariate | definition |", "|---|---|"]
        out += [f"| {c.name} | {covariate_text(c)} |" for c in d.covariates] + [""]
    if d.expectations:
        out += ["## Data-quality expectations", ""]
        for e in d.expectations:
            parts = []
            if e.mean_between:
                parts.append(f"mean in [{e.mean_between[0]:g}, {e.mean_between[1]:g}]")
            if e.missing_at_most is not None:
                parts.append(f"missing ≤ {e.missing_at_most:g}")
            out.append(f"- {e.covariate}: {', '.join(parts)} ({e.severity})")
        out += [""]
    if d.matching:
        settings = d.matching.model_dump(mode="json", exclude_unset=True)
        out += ["## Matching", ""] + [f"- {key}: {value}" for key, value in settings.items()] + [""]
    return "\n".join(out)
