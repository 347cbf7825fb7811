"""Render a Definition as print-friendly Markdown: every rule in one line of plain English."""

from __future__ import annotations

from cohortlake.spec.codes import CodeSystem
from cohortlake.spec.explain_rules import (anchor_text, arm_text, covariate_text, coverage_text, criterion_text,
                                           days_text, end_text, index_text, outcome_text, words)
from cohortlake.spec.followup import ALIVE_AT_INDEX, ALIVE_AT_START, FOLLOWUP_STEP, implied_steps
from cohortlake.spec.matching import MatchingSettings, Method, Scale
from cohortlake.spec.model import Definition

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
    for i, name in enumerate(implied_steps(d), len(d.criteria) + 1):
        if name in (ALIVE_AT_INDEX, ALIVE_AT_START):
            why = (f"implied: follow-up ends at death and starts at {anchor_text(d.followup.start)}, and no criterion "
                   f"excludes a recorded death before that day (fills and claims can be dated after death); "
                   f"such a death would run follow-up backwards, a death on the start day stays with 0 days")
        elif name == FOLLOWUP_STEP:
            why = (f"implied: follow-up starts at {anchor_text(d.followup.start)}, which the criteria do not keep "
                   f"on or before the study end ({d.study_period.end}); a later start would run follow-up backwards")
        else:
            why = "implied: follow-up starts at this landmark, and no criterion guarantees its analysis"
        out.append(f"{i}. {name} — {why}")
    out += [""]

    if d.exposures:
        out += ["## Exposures", ""]
        for name, e in d.exposures.items():
            if e.source == "dispensing":
                supply = (
                    f"days supply missing or < {e.days_supply.min} → {e.days_supply.default}, "
                    f"capped at {e.days_supply.max}"
                )
                source = f"Part D fills of {words(f'`{c}`' for c in e.codesets)}; {supply}"
            else:
                source = (
                    f"administrations ({words(e.record_settings())} procedure codes) of "
                    f"{words(f'`{c}`' for c in e.codesets)}, each covering {e.administration_days} days"
                )
            stock = "stockpiling (early refills shift forward)" if e.stockpiling else "no stockpiling"
            out.append(f"- **{name}** — {source}; era continues while the next record starts ≤ {e.grace_days} days after the era end; {stock}")
        out += [""]
    if d.regimens:
        out += ["## Regimens", ""]
        for name, r in d.regimens.items():
            out.append(f"- **{name}** — `{r.anchor}` era start with {words(f'`{w}`' for w in r.with_)} starting within {r.within_days} days (either side)")
        out += [""]
    if d.arms:
        out += ["## Arms (first matching rule wins)", ""]
        out += [f"{i}. **{a.name}** — {arm_text(a)}" for i, a in enumerate(d.arms, 1)]
        out += [""]
    if d.landmarks:
        out += ["## Landmarks", ""]
        for lm in d.landmarks:
            needs = []
            if lm.require_alive:
                needs.append("alive on the landmark date")
            if lm.require_coverage:
                needs.append("coverage: " + coverage_text(lm.require_coverage))
            out.append(f"- **{lm.name}** — {days_text(lm.days)} after {anchor_text(lm.from_)}"
                       + (f"; in its analysis: {', '.join(needs)}" if needs else ""))
        out += [""]
    ends = [end_text(e, d) for e in d.followup.end]
    end = f"ends at the earliest of {words(ends)}" if len(ends) > 1 else f"ends at {ends[0]}"
    out += ["## Follow-up", "", f"Starts at {anchor_text(d.followup.start)}; {end}.", ""]
    if d.outcomes:
        out += ["## Outcomes", ""] + [f"- **{o.name}** — {outcome_text(o)}" for o in d.outcomes] + [""]
    if d.time_varying:
        out += ["## Time-varying covariates", ""] + [f"- **{t.name}** — 0 until {outcome_text(t)}, then 1" for t in d.time_varying] + [""]
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
            stop = "stops the build" if e.severity == "critical" else "reported"
            out.append(f"- {e.covariate}: {', '.join(parts)} ({e.severity}: {stop})")
        out += [""]
    if d.matching:
        out += ["## Matching", "", *(f"- {line}" for line in matching_lines(d.matching)), ""]
    return "\n".join(out)


def _listing(names) -> str:
    return words([f"`{n}`" for n in names], "and") or "none"


def matching_lines(m: MatchingSettings) -> list[str]:
    """The matching section in plain English, every setting shown (defaults marked)."""
    def mark(field: str) -> str:
        return "" if field in m.model_fields_set else " [default]"

    lines = []
    if m.treatment is not None:
        lines.append(f"Compares arm `{m.treatment.arm}` (treated) with arm `{m.treatment.control}` (control).")
    penalty = f", L2 penalty {m.l2:g}" if m.l2 else ""
    lines.append(f"Propensity score: {m.ps_model.value} regression of the treatment on {_listing(m.ps_covariates)}"
                 f"{penalty}{mark('ps_model')}.")
    if m.method is Method.greedy_nearest_neighbor:
        scale = "the logit of the propensity score" if m.scale is Scale.logit else "the propensity score"
        units = {None: "standard deviations of the matching scale", "sd_of_logit": "standard deviations of the logit",
                 "sd_of_probability": "standard deviations of the propensity score",
                 "sd": "standard deviations of the matching scale", "raw": "units of the matching scale"}
        caliper = ("no caliper" if m.caliper is None else
                   f"caliper {m.caliper:g} {units[m.caliper_scale.value if m.caliper_scale else None]} (inclusive)")
        order = {"nearest": "globally nearest pair first", "largest": "highest propensity score first",
                 "smallest": "lowest propensity score first", "random": f"in a random order (seed {m.seed})",
                 "data": "in data order"}[m.order.value]
        lines.append(f"Greedy nearest-neighbour matching on {scale}{mark('scale')}: up to {m.ratio} control"
                     f"{'s' if m.ratio != 1 else ''} per treated person{mark('ratio')}, "
                     f"{'with' if m.replacement else 'without'} replacement{mark('replacement')}, "
                     f"{caliper}{mark('caliper')}, {order}{mark('order')}.")
        if m.exact:
            lines.append(f"Matched only within equal values of {_listing(m.exact)}.")
    elif m.method is Method.iptw:
        lines.append(f"Inverse probability of treatment weights for the {m.estimand.value.upper()}{mark('estimand')}, "
                     f"{'stabilized' if m.stabilized else 'not stabilized'}{mark('stabilized')}; every person is kept.")
    else:
        lines.append("Overlap weights (treated 1 - ps, controls ps); every person is kept.")
    denominator = ("the pooled SD" if m.smd_denominator.value == "pooled" else "the treated group's SD")
    lines.append(f"Balance: every |standardized mean difference| after matching at most {m.smd_threshold:g}"
                 f"{mark('smd_threshold')} (divided by {denominator} before matching{mark('smd_denominator')}); "
                 f"equipoise = the share with a preference score in [{m.equipoise[0]:g}, {m.equipoise[1]:g}]"
                 f"{mark('equipoise')}.")
    return lines
