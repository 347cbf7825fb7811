"""Expectation suites as files: find them, check them, and pick the ones for a stage.

A suite file in ``expectations/`` (shipped in the package; $COHORTLAKE_EXPECTATIONS names
another folder) is a Great Expectations 1.x suite (``name``,
``expectations`` with ``type``, ``kwargs``, ``severity``, optional ``notes`` and
``meta``) whose ``meta.cohortlake`` says which lake table it validates:
``{"stage": "bronze"|"silver"|"cohort"|"matched", "table": "...", "layout": ...}``.
Thresholds (``mostly``) and severities live only in those files, so a data steward
changes them without touching code. This module imports no Spark and no GX.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cohortlake.errors import UserError
from cohortlake.resources import shipped_expectations

STAGES = ("bronze", "silver", "cohort", "matched")
SEVERITIES = ("critical", "warning", "info")
SUITES_ENV = "COHORTLAKE_EXPECTATIONS"


def suites_dir() -> Path:
    """The suite folder: $COHORTLAKE_EXPECTATIONS, else the suites shipped in the package."""
    configured = os.environ.get(SUITES_ENV)
    if configured:
        return Path(configured)
    return shipped_expectations()


@dataclass
class SuiteFile:
    """One suite as written in its file."""

    name: str
    stage: str
    table: str
    """Lake table it validates; ``{cohort}`` stands for the cohort's name."""
    expectations: list[dict]
    path: str
    layout: str | None = None
    notes: str | None = None
    meta: dict = field(default_factory=dict)

    def for_table(self, table: str, name: str | None = None, extra: list[dict] | None = None) -> SuiteFile:
        """A copy bound to a concrete table (and optionally renamed, with more expectations)."""
        return SuiteFile(name or self.name, self.stage, table, list(self.expectations) + list(extra or []),
                         self.path, self.layout, self.notes, self.meta)


def _problem(path: Path, where: str, what: str) -> UserError:
    return UserError(f"{path}: {where}: {what}")


def read_suite(path: Path) -> SuiteFile:
    """Parse and check one suite file; one clear error naming the file and the expectation."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: line {error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise _problem(path, "name", "expected a JSON object with a suite 'name'")
    ours = (data.get("meta") or {}).get("cohortlake") or {}
    if ours.get("stage") not in STAGES:
        raise _problem(path, "meta.cohortlake.stage", f"expected one of {', '.join(STAGES)}, found {ours.get('stage')!r}")
    if not isinstance(ours.get("table"), str):
        raise _problem(path, "meta.cohortlake.table", "expected the lake table the suite validates, e.g. 'silver/person'")
    expectations = data.get("expectations")
    if not isinstance(expectations, list):
        raise _problem(path, "expectations", "expected a list")
    for i, expectation in enumerate(expectations):
        where = f"expectations[{i}]"
        if not isinstance(expectation, dict) or not isinstance(expectation.get("type"), str):
            raise _problem(path, where, "expected an object with 'type' (e.g. expect_column_values_to_not_be_null) and 'kwargs'")
        if expectation.get("severity", "critical") not in SEVERITIES:
            raise _problem(path, f"{where}.severity", f"expected one of {', '.join(SEVERITIES)}, found {expectation.get('severity')!r}")
        if not isinstance(expectation.get("kwargs", {}), dict):
            raise _problem(path, f"{where}.kwargs", "expected an object")
    return SuiteFile(data["name"], ours["stage"], ours["table"], expectations, str(path), ours.get("layout"),
                     data.get("notes"), data.get("meta") or {})


def load_suites(directory: Path | None = None) -> dict[str, SuiteFile]:
    """Every suite file of the folder by suite name."""
    directory = Path(directory or suites_dir())
    if not directory.is_dir():
        raise UserError(f"{directory}: no expectations folder (set {SUITES_ENV} to the folder with the suite files)")
    suites: dict[str, SuiteFile] = {}
    for path in sorted(directory.glob("*.json")):
        suite = read_suite(path)
        if suite.name in suites:
            raise UserError(f"{path}: suite name '{suite.name}' is also used by {suites[suite.name].path}")
        suites[suite.name] = suite
    return suites


def select(suites: dict[str, SuiteFile], stage: str, layout: str | None = None, names: list[str] | None = None) -> list[SuiteFile]:
    """The suites of one stage (and raw layout), optionally only those named."""
    chosen = [s for s in suites.values() if s.stage == stage and (stage != "bronze" or s.layout == layout)]
    if names:
        chosen = [s for s in chosen if s.name in names]
    return chosen


def check_names(suites: dict[str, SuiteFile], names: list[str]) -> None:
    unknown = [n for n in names if n not in suites]
    if unknown:
        raise UserError(f"no suite named {', '.join(unknown)}; the suites are: {', '.join(sorted(suites))}")


def definition_expectations(definition) -> list[dict]:
    """A definition's own ``expectations:`` as GX expectations on the cohort table."""
    out = []
    for rule in definition.expectations:
        source = {"meta": {"source": f"definition {definition.cohort}"}}
        if rule.mean_between is not None:
            low, high = rule.mean_between
            out.append({"type": "expect_column_mean_to_be_between", "severity": rule.severity,
                        "kwargs": {"column": rule.covariate, "min_value": low, "max_value": high},
                        "notes": f"from the definition: mean (share of 1s for a flag) of {rule.covariate} within [{low}, {high}]",
                        **source})
        if rule.missing_at_most is not None:
            kwargs = {"column": rule.covariate}
            if rule.missing_at_most > 0:
                kwargs["mostly"] = round(1 - rule.missing_at_most, 12)
            out.append({"type": "expect_column_values_to_not_be_null", "severity": rule.severity, "kwargs": kwargs,
                        "notes": f"from the definition: at most {rule.missing_at_most:.1%} of {rule.covariate} missing",
                        **source})
    return out


def cohort_parameters(definition) -> dict:
    """Suite parameters of the cohort suites, from a definition."""
    arms = [arm.name for arm in definition.arms] or ["all"]
    return {"study_start": definition.study_period.start.isoformat(),
            "study_end": definition.study_period.end.isoformat(), "arms": arms}
