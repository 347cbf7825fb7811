"""What the language can tell about follow-up before any data is read.

The attrition steps the language adds after the criteria live here, for the engine, the
test-patient runner and ``explain`` alike:

* ``In landmark <name> analysis`` when follow-up starts at a landmark that no criterion
  guarantees;
* ``alive_step``: when follow-up ends at death, a recorded death before follow-up starts
  (a fill or claim dated after death, a SEER death imputed to mid-month) would make
  follow-up run backwards. Such persons leave at "Alive at index" (or "Alive at follow-up
  start" when follow-up starts later), unless a criterion or the follow-up landmark's own
  analysis already excludes every death before the start. A death on the start day stays
  (follow-up of 0 days);
* ``FOLLOWUP_STEP``: when follow-up starts after the index (at a landmark or an exposure
  point), a definition may admit an index so late that follow-up would start after the
  study ends (a landmark 90 days after an index allowed up to the study end). Such
  persons leave at this step, unless the definition guarantees that follow-up starts on
  or before the study end: the latest index date its criteria allow plus the follow-up
  start's offset from the index is not after the study end.

``check`` words the same bound as a warning with the index-period end that avoids it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from cohortlake.spec.model import Definition, ExposurePoint, Landmark

FOLLOWUP_STEP = "Follow-up starts on or before the study end"
ALIVE_AT_INDEX = "Alive at index"
ALIVE_AT_START = "Alive at follow-up start"


def landmark_step(d: Definition) -> Landmark | None:
    """The follow-up landmark whose analysis is an implied attrition step ("In landmark <name>
    analysis"), unless a criterion guarantees it (alive through it, and no coverage rule)."""
    start = d.followup.start
    if not isinstance(start, str) or start == "index":
        return None
    landmark = d.landmark(start)
    guaranteed = landmark.require_coverage is None and any(
        c.kind == "alive" and c.alive.through == start for c in d.criteria)
    return None if guaranteed else landmark


def implied_steps(d: Definition) -> list[str]:
    """The attrition steps the language adds after the criteria, in order."""
    landmark, alive = landmark_step(d), alive_step(d)
    return (([f"In landmark {landmark.name} analysis"] if landmark else []) + ([alive] if alive else [])
            + ([FOLLOWUP_STEP] if needs_followup_step(d) else []))


def alive_step(d: Definition) -> str | None:
    """The implied step that removes persons whose recorded death precedes follow-up start, or None.

    It is there when follow-up ends at death, unless the definition already excludes every
    death before the start: follow-up starts at a landmark whose analysis requires being
    alive through it, or an ``alive`` criterion reaches at least the day before the start.
    """
    if not any(end.death for end in d.followup.end):
        return None
    start = d.followup.start
    if isinstance(start, str) and start != "index" and d.landmark(start).require_alive:
        return None  # the landmark's analysis (implied step or criterion) needs no death on or before it
    offset = followup_offset(d)
    if offset is not None:
        for criterion in d.criteria:
            if criterion.kind != "alive":
                continue
            through = criterion.alive.through
            reach = through.days if not isinstance(through, str) else anchor_offset(d, through)
            if reach is not None and reach >= offset - 1:
                return None
    return ALIVE_AT_INDEX if start == "index" else ALIVE_AT_START


@dataclass(frozen=True)
class IndexBound:
    """The latest index date the criteria allow, and which rule says so (criterion number from 1)."""

    latest: date
    criterion: int
    rule: str


def latest_index(d: Definition) -> IndexBound | None:
    """The latest index date the criteria allow, or None when nothing bounds it."""
    bounds: list[IndexBound] = []
    for number, criterion in enumerate(d.criteria, 1):
        if criterion.kind == "index_period" and criterion.index_period.end is not None:
            bounds.append(IndexBound(criterion.index_period.end, number, "index_period"))
        elif criterion.kind == "tumor" and d.index.kind == "tumor":
            years = criterion.tumor.diagnosis_year
            if years is not None and years.max is not None:
                # the index is a day of the diagnosis month: the latest is that day of December
                bounds.append(IndexBound(date(years.max, 12, d.index.tumor.date.day_of_month), number, "tumor"))
    return min(bounds, key=lambda b: b.latest) if bounds else None


def anchor_offset(d: Definition, anchor) -> int | None:
    """Days from the index to an anchor (index, a landmark, an exposure point) when the
    definition fixes them; None when they depend on the data."""
    if anchor == "index":
        return 0
    if isinstance(anchor, ExposurePoint):
        # the first era of the index exposure starting on or after the index is the index's own era
        index = d.index
        same = (index.kind == "exposure" and index.exposure.name == anchor.exposure
                and index.exposure.at.value == "start" and anchor.at.value == "start")
        return 0 if same else None
    landmark = d.landmark(anchor)
    base = anchor_offset(d, landmark.from_)
    return None if base is None else base + landmark.days


def followup_offset(d: Definition) -> int | None:
    """Days from the index to follow-up start, when the definition fixes them; None otherwise."""
    return anchor_offset(d, d.followup.start)


def latest_followup_start(d: Definition) -> date | None:
    """The latest follow-up start the definition allows, or None when it cannot be told."""
    bound, offset = latest_index(d), followup_offset(d)
    if bound is None or offset is None:
        return None
    return bound.latest + timedelta(days=offset)


def needs_followup_step(d: Definition) -> bool:
    """Whether the implied step FOLLOWUP_STEP is part of the attrition: the criteria do not keep
    follow-up's start within the study. This holds for follow-up from the index too: an index
    found in claims is not bounded by the study period unless an index_period (or a tumor
    index's diagnosis_year) bounds it."""
    latest = latest_followup_start(d)
    return latest is None or latest > d.study_period.end


@dataclass(frozen=True)
class Finding:
    """A lint finding: where (a path in the definition) and what to do."""

    path: tuple
    message: str


def followup_warnings(d: Definition) -> list[Finding]:
    """Follow-up that can start after the study end, with the index-period end that avoids it."""
    bound, offset = latest_index(d), followup_offset(d)
    end = d.study_period.end
    if offset is None:
        return []  # the offset depends on the data (the implied step guards)
    by = end - timedelta(days=offset)
    leave = f"such persons leave at the step '{FOLLOWUP_STEP}'"
    after = "at" if offset == 0 else f"{offset} days after"
    if bound is None:
        return [Finding(("index",), f"nothing bounds the index date and follow-up starts {after} it, so "
                                    f"it can start after the study end ({end}): add an index_period that ends by "
                                    f"{by}; until then {leave}")]
    if bound.latest + timedelta(days=offset) <= end:
        return []
    if bound.rule == "index_period":
        what, fix = f"index_period ends {bound.latest}", f"end the index period by {by}"
    else:
        what, fix = f"diagnoses are allowed up to {bound.latest.year}", f"add an index_period that ends by {by}"
    return [Finding(("criteria", bound.criterion - 1, bound.rule),
                    f"{what} but follow-up starts {after} the index, after the study end ({end}) for "
                    f"the latest: {fix}; {leave}")]


def washout_warnings(d: Definition) -> list[Finding]:
    """Washouts that can never exclude anyone: the index is the first record of the same codes ever."""
    index = d.index
    out: list[Finding] = []
    if index.kind == "exposure" and index.exposure.occurrence.value == "first" and index.exposure.at.value == "start":
        exposure = d.exposures.get(index.exposure.name)
        if exposure is None:
            return out
        table = "dispensing" if exposure.source.value == "dispensing" else "procedure"
        codesets, tables, what = set(exposure.codesets), {table}, f"the first `{index.exposure.name}` record ever"
    elif index.kind == "event" and index.event.occurrence.value == "first" and not index.event.settings:
        codesets, tables, what = set(index.event.codesets), {t.value for t in index.event.tables}, "the first such event ever"
    else:
        return out
    for number, criterion in enumerate(d.criteria):
        if criterion.kind != "washout":
            continue
        rule = criterion.washout
        if set(rule.codesets) <= codesets and {t.value for t in rule.tables} <= tables and not rule.settings:
            out.append(Finding(("criteria", number, "washout"), (
                f"this washout can never exclude anyone: the index is {what}, so no record of "
                f"{', '.join(f'`{c}`' for c in rule.codesets)} precedes it; look back with other codes or "
                f"index on a later occurrence")))
    return out


def definition_warnings(d: Definition) -> list[Finding]:
    """Everything check warns about in a definition that loads without problems."""
    return followup_warnings(d) + washout_warnings(d)
