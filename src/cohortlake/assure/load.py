"""Reading a test file: YAML → checked patients with resolved timelines, or every problem at once.

Each template and patient is validated on its own (:mod:`cohortlake.assure.model`), so
one broken patient does not hide another's mistakes; templates are then resolved
(``like:``, ``set:``, ``add:``) and every problem is raised once, in file order, as
``file:line: field: message`` lines through the located ``Problem`` of ``yamlfile``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cohortlake.assure.expect import Contract, ExpectedRow
from cohortlake.assure.model import (
    CHANGES,
    LENIENT,
    PATIENT_ID,
    TIMELINE_KEYS,
    Part,
    Patient,
    Timeline,
    empty_timeline,
    listing,
    message_of,
    shown,
)
from cohortlake.assure.timeline import tables_of, timeline_rows
from cohortlake.spec.model import Definition
from cohortlake.yamlfile import LocatedYaml, Problem, YamlError, load_located

Loc = tuple[Any, ...]
FILE_KEYS = ("definition", "templates", "patients")


class AssureFileError(YamlError):
    """Problems in a test-patient file, one ``file:line: field: message`` line each."""


@dataclass
class AssurePatient:
    id: str
    description: str
    line: int | None
    timeline: dict[str, Any]
    expect: ExpectedRow | None = None
    rows: list[ExpectedRow] | None = None


@dataclass
class AssureSuite:
    """A read and checked test file, with the definition it tests."""

    path: str
    definition: Definition
    patients: list[AssurePatient]

    def tables(self) -> dict[str, list[dict]]:
        """Canonical rows of every patient."""
        return tables_of([(patient.id, patient.timeline) for patient in self.patients])


def patient_rows(patient: AssurePatient) -> dict[str, list[dict]]:
    """One test patient's canonical rows."""
    return timeline_rows(patient.id, patient.timeline)


def default_tests_path(definition_path: str | Path) -> Path:
    """cohort_defs/X.yaml → cohort_defs/tests/X.yaml."""
    definition_path = Path(definition_path)
    return definition_path.parent / "tests" / definition_path.name


class _Problems:
    """The problems found in one test file, placed by its lines."""

    def __init__(self, located: LocatedYaml):
        self.located = located
        self.found: list[Problem] = []

    def add(self, loc: Loc, message: str) -> None:
        name = ".".join(map(str, loc)) or "(top level)"
        self.found.append(Problem(self.located.path, self.located.line_of(loc), name, message))

    def add_validation(self, loc: Loc, error: ValidationError) -> None:
        for item in error.errors():
            parts = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            self.add(loc + parts, message_of(item))

    def raise_if_any(self) -> None:
        if self.found:
            ordered = sorted(self.found, key=lambda problem: problem.line or 0)
            error = AssureFileError("\n".join(dict.fromkeys(str(problem) for problem in ordered)))
            raise error


def _load_yaml(path: Path) -> LocatedYaml:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AssureFileError(f"{path}: file not found") from None
    try:
        return load_located(str(path), text)
    except ValueError as exc:
        # An unquoted impossible date (2009-02-30): name every one in the file, each with its line.
        problems = []
        for number, line in enumerate(text.splitlines(), 1):
            content = line.split("#", 1)[0]
            for match in re.finditer(r"(?<![\w.-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\w.-])", content):
                try:
                    date(*map(int, match.groups()))
                except ValueError as why:
                    problems.append(f"{path}:{number}: '{match.group(0)}' is not a real date ({why})")
        raise AssureFileError("\n".join(problems) or f"{path}: not valid YAML: {exc}") from None


def _definition_path_in(located: LocatedYaml, path: Path) -> Path:
    data = located.data if isinstance(located.data, dict) else {}
    written = data.get("definition")
    if written is None:
        return path.parent.parent / path.name
    if not isinstance(written, str):
        p = _Problems(located)
        p.add(("definition",), f"expected the definition's path relative to this file, got {shown(written)}")
        p.raise_if_any()
    return path.parent / written


def _read(p: _Problems, loc: Loc, model: type[Part], item: Any, context: dict) -> Any:
    """The item read, its problems reported; read again leaving unknown keys out when only they were wrong."""
    try:
        return model.model_validate(item, context=context)
    except ValidationError as exc:
        p.add_validation(loc, exc)
    try:
        return model.model_validate(item, context={**context, LENIENT: True})
    except ValidationError:
        return None


def _timeline_part(item: Any) -> Timeline | None:
    """A wrong patient's timeline keys alone, read quietly (the patient's reading reported the problems)."""
    if not isinstance(item, dict):
        return None
    try:
        return Timeline.model_validate({key: value for key, value in item.items() if key in Timeline.model_fields},
                                       context={LENIENT: True})
    except ValidationError:
        return None


class _Templates:
    """Templates read one by one and resolved on demand, each from its own (checked) parts."""

    def __init__(self, p: _Problems, raw: Any):
        self.p = p
        self.raw = raw if isinstance(raw, dict) else {}
        self.read: dict[str, Timeline | None] = {}
        self.resolved: dict[str, dict | None] = {}
        self.resolving: list[str] = []
        if raw is not None and not isinstance(raw, dict):
            p.add(("templates",), f"expected a mapping of template name: timeline, got {shown(raw)}")
        for name, item in self.raw.items():
            item, known = self.known_like(("templates", name), item)
            read = _read(p, ("templates", name), Timeline, item, {})
            self.read[name] = read if known else None
        for name in self.raw:
            self.get(name)

    def known_like(self, loc: Loc, raw: Any) -> tuple[Any, bool]:
        """(the item to read, whether its like: names a template); set: and add: of no template go unread."""
        if isinstance(raw, dict) and "like" in raw and not any(key in raw for key in TIMELINE_KEYS):
            name = raw["like"]
            if not isinstance(name, str) or name not in self.raw:
                self.p.add(loc + ("like",), f"unknown template {name!r}; defined: {listing(self.raw) or 'none'}")
                return {key: value for key, value in raw.items() if key not in CHANGES}, False
        return raw, True

    def get(self, name: str) -> dict | None:
        if name in self.resolved:
            return self.resolved[name]
        if name in self.resolving:
            cycle = " → ".join(self.resolving[self.resolving.index(name):] + [name])
            self.p.add(("templates", name, "like"), f"templates start from each other in a circle: {cycle}")
            return None
        self.resolving.append(name)
        try:
            part = self.read[name]
            self.resolved[name] = None if part is None else self.timeline(("templates", name), part)
        finally:
            self.resolving.pop()
        return self.resolved[name]

    def timeline(self, loc: Loc, part: Timeline) -> dict | None:
        """A template's or patient's timeline: its own keys, or a template changed by set: and add:."""
        if "like" not in part._given:
            return {**empty_timeline(), **part.given()}
        base = self.get(part.like)
        if base is None:
            return None
        timeline = {key: (list(value) if isinstance(value, list) else value) for key, value in base.items()}
        if part.set is not None:
            timeline.update(part.set.given())
        if part.add is not None:
            for key, items in part.add.given().items():
                timeline[key] = timeline[key] + items
        return timeline


def _patients(p: _Problems, raw: list, templates: _Templates, contract: Contract) -> list[AssurePatient]:
    patients: list[AssurePatient] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        loc = ("patients", i)
        pid = item.get("id") if isinstance(item, dict) else None
        repeated = isinstance(pid, str) and PATIENT_ID.fullmatch(pid) is not None and pid in seen
        if repeated:
            p.add(loc + ("id",), f"id '{pid}' is already used by the patient at line {seen[pid]}")
        elif isinstance(pid, str) and PATIENT_ID.fullmatch(pid):
            seen[pid] = p.located.line_of(loc) or 0
        item, known = templates.known_like(loc, item)
        patient = _read(p, loc, Patient, item, {"contract": contract})
        # The timeline resolves even when the id or the expectation is wrong: its problems show too.
        part = patient if patient is not None else _timeline_part(item)
        timeline = templates.timeline(loc, part) if known and part is not None else None
        if timeline is not None and timeline["person"] is None:
            p.add(loc, "the patient has no person: give person: {birth_date, sex, race} (or like: a template with one)")
            continue
        if patient is None or timeline is None or repeated:
            continue
        expected = patient.expect.expected()
        one, rows = (None, expected) if isinstance(expected, list) else (expected, None)
        patients.append(AssurePatient(patient.id, patient.description, p.located.line_of(loc), timeline, one, rows))
    return patients


def load_suite(tests_path: str | Path, definition: Definition | None = None,
               definition_path: str | Path | None = None) -> AssureSuite:
    """Read and check a test-patient file; every problem is reported as file:line: field: message.

    Without ``definition`` the file's ``definition:`` (or the same file name one folder
    up) is loaded. With ``definition_path`` the file must not name another definition.
    """
    from cohortlake.spec.load import load_definition

    path = Path(tests_path)
    located = _load_yaml(path)
    p = _Problems(located)
    if not isinstance(located.data, dict):
        p.add((), "a test file is a mapping with patients: (and optionally definition:, templates:)")
        p.raise_if_any()
    data = located.data
    named = _definition_path_in(located, path)
    if definition_path is not None and "definition" in data:
        if named.resolve() != Path(definition_path).resolve():
            p.add(("definition",), f"this file tests {named}, not {definition_path}")
            p.raise_if_any()
    if definition is None:
        if not named.is_file():
            where = ("definition",) if "definition" in data else ()
            p.add(where, f"no definition file {named}" + ("" if "definition" in data else
                  " (the default: the same file name one folder up; give definition: <path> otherwise)"))
            p.raise_if_any()
        definition = load_definition(definition_path or named)
    for key in data:
        if key not in FILE_KEYS:
            p.add((key,), f"unknown key '{key}'; allowed: {listing(FILE_KEYS)}")
    templates = _Templates(p, data.get("templates"))
    raw = data.get("patients")
    patients: list[AssurePatient] = []
    if not isinstance(raw, list) or not raw:
        p.add(("patients",) if "patients" in data else (), "patients: needs a list of test patients")
    else:
        patients = _patients(p, raw, templates, Contract(definition))
    p.raise_if_any()
    return AssureSuite(str(path), definition, patients)
