"""Each test patient's expectation against what the engine built, and the report of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cohortlake.assure.load import AssureSuite
from cohortlake.assure.expect import ExpectedRow
from cohortlake.engine.columns import step_flag


@dataclass
class PatientResult:
    id: str
    description: str
    passed: bool
    differences: list[str] = field(default_factory=list)


@dataclass
class AssureReport:
    """The outcome of one definition's test patients."""

    definition: str
    tests: str
    results: list[PatientResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[PatientResult]:
        return [r for r in self.results if not r.passed]

    def render(self) -> str:
        """One line per patient (PASS/FAIL, id, description, differences), then a summary line."""
        width = max((len(r.id) for r in self.results), default=0)
        lines = []
        for r in self.results:
            line = f"{'PASS' if r.passed else 'FAIL'}  {r.id:<{width}}  {r.description}"
            if not r.passed:
                line += "  ->  " + "; ".join(r.differences)
            lines.append(line.rstrip())
        failed = len(self.failures)
        lines.append(f"{self.tests}: {len(self.results)} test patients, "
                     + (f"{failed} failed" if failed else "all pass"))
        return "\n".join(lines)


@dataclass
class EngineRows:
    """What one build gave, as plain rows: cohort, per-episode step flags, events, step names."""

    cohort: list[dict]
    flags: list[dict]
    events: list[dict] | None
    steps: dict[int, str]


def shown(value: Any) -> str:
    """A value as the report writes it."""
    if value is None:
        return "empty"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return repr(value)
    return str(value)


def same(expected: Any, actual: Any) -> bool:
    """Equal as a cohort value: numbers numerically (1 == 1.0), dates as dates."""
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-9)
    if hasattr(actual, "date") and callable(actual.date) and isinstance(expected, date):
        actual = actual.date()
    return expected == actual


@dataclass
class _Episode:
    index_date: date | None
    excluded_at: str | None  # None = passes every step
    row: dict | None = None  # the cohort row when included
    events: list[dict] = field(default_factory=list)


def _describe(ep: _Episode) -> str:
    if ep.row is not None:
        arm = ep.row.get("arm")
        return "included" + (f" (arm {arm})" if arm not in (None, "all") else "")
    if ep.excluded_at is None:
        return "passes every step but is not in the cohort"
    return f"excluded at '{ep.excluded_at}'"


def _compare_one(expect: ExpectedRow, ep: _Episode | None, prefix: str = "") -> list[str]:
    if ep is None:
        return [f"{prefix}expected {'included' if expect.included else repr(expect.excluded_at)}, got no episode"]
    if not expect.included:
        if ep.row is None and ep.excluded_at == expect.excluded_at:
            return []
        return [f"{prefix}excluded_at: expected '{expect.excluded_at}', got {_describe(ep)}"]
    if ep.row is None:
        return [f"{prefix}included: expected included, got {_describe(ep)}"]
    out = []
    for column, value in expect.columns.items():
        if column not in ep.row:
            out.append(f"{prefix}{column}: expected {shown(value)}, got no such column in the cohort")
        elif not same(value, ep.row[column]):
            out.append(f"{prefix}{column}: expected {shown(value)}, got {shown(ep.row[column])}")
    if expect.events is not None:
        out += _compare_events(expect.events, ep.events, prefix)
    return out


def _compare_events(expected: list[dict], actual: list[dict], prefix: str) -> list[str]:
    actual = sorted(actual, key=lambda r: (r.get("start_day") is None, r.get("start_day"), r.get("stop_day")))
    if len(expected) != len(actual):
        def listing(rows):
            return ", ".join(f"[{shown(r.get('start_day'))}, {shown(r.get('stop_day'))}]" for r in rows) or "none"

        def count(rows):
            return f"{len(rows)} row{'' if len(rows) == 1 else 's'}"
        return [f"{prefix}events: expected {count(expected)} ({listing(expected)}), "
                f"got {count(actual)} ({listing(actual)})"]
    out = []
    for i, (want, got) in enumerate(zip(expected, actual)):
        for column, value in want.items():
            if column not in got:
                out.append(f"{prefix}events[{i}].{column}: expected {shown(value)}, got no such column")
            elif not same(value, got[column]):
                out.append(f"{prefix}events[{i}].{column}: expected {shown(value)}, got {shown(got[column])}")
    return out


def _first_failed(row: dict) -> int | None:
    """The first attrition step (1-based) whose flag does not hold on the episode; None = all hold."""
    step = 1
    while step_flag(step) in row:
        if row[step_flag(step)] is not True:
            return step
        step += 1
    return None


def _episodes(built: EngineRows) -> dict[str, list[_Episode]]:
    """Every person's episodes: where each leaves, its cohort row and its events rows."""
    episodes: dict[str, list[_Episode]] = {}
    for row in built.flags:
        failed = _first_failed(row)
        ep = _Episode(row.get("index_date"), None if failed is None else built.steps.get(failed, f"step {failed}"))
        episodes.setdefault(row["person_id"], []).append(ep)
    for row in built.cohort:
        found = episodes.setdefault(row["person_id"], [])
        match = next((ep for ep in found if ep.row is None and same(ep.index_date, row.get("index_date"))), None)
        if match is None:
            match = _Episode(row.get("index_date"), None)
            found.append(match)
        match.row = row
    for row in built.events or []:
        for ep in episodes.get(row["person_id"], []):
            if ep.row is not None and same(ep.index_date, row.get("index_date")):
                ep.events.append(row)
                break
    return episodes


def compare(suite: AssureSuite, built: EngineRows) -> AssureReport:
    """Each patient's expectation against the rows of the build."""
    first_step = built.steps.get(1, "step 1")
    episodes = _episodes(built)
    results = []
    for patient in suite.patients:
        found = episodes.get(patient.id) or [_Episode(None, first_step)]  # no index: out at step 1
        differences: list[str] = []
        if patient.rows is not None:
            unmatched = list(found)
            for expect in patient.rows:
                ep = next((e for e in unmatched if same(expect.index_date, e.index_date)), None)
                if ep is not None:
                    unmatched.remove(ep)
                differences += _compare_one(expect, ep, prefix=f"episode {shown(expect.index_date)}: ")
            for ep in unmatched:
                if ep.index_date is not None or ep.row is not None:
                    differences.append(f"episode {shown(ep.index_date)}: not expected, got {_describe(ep)}")
        elif patient.expect.included:
            included = [ep for ep in found if ep.row is not None]
            if len(included) > 1:
                differences.append(f"included: expected one cohort row, got {len(included)} "
                                   f"(index dates {', '.join(shown(e.index_date) for e in included)})")
            else:
                differences += _compare_one(patient.expect, included[0] if included else found[0])
        else:
            for ep in found:
                differences += _compare_one(patient.expect, ep)
        results.append(PatientResult(patient.id, patient.description, not differences, differences))
    return AssureReport(suite.definition.path or suite.definition.cohort, suite.path, results)
