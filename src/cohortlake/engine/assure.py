"""Test patients ("assure"): tiny person timelines stored beside a definition, with the result expected for each.

``cohortlake assure cohort_defs/X.yaml`` reads ``cohort_defs/tests/X.yaml``, turns every
test patient into canonical (silver) rows, builds the cohort with the Spark engine and
prints one line per patient: PASS or FAIL, its id and description, and for a failure
each expected value next to the one the engine produced.

The test file
-------------
::

    definition: ../X.yaml          # optional; default: the file of the same name one folder up
    templates:                     # optional; named timelines that patients start from
      base:
        person: {birth_date: 1935-06-01, sex: male, race: white}
        death: 2010-01-20
        tumors: [{sequence_number: "00", diagnosis_year: 2009, diagnosis_month: 3, ...}]
        enrollment: [{coverage: [part_a, part_b, part_d], start: 2008-01-01, end: 2011-12-31}]
        diagnoses: [{date: 2009-03-01, code: "571.5"}]
        procedures: [{date: 2009-03-20, code: "47120", setting: outpatient}]
        fills: [{date: 2009-03-20, ndc: "50419-488-58", generic_name: SORAFENIB, days_supply: 30}]
      treated: {like: base, add: {fills: [...]}}     # a template may start from another
    patients:
      - id: sorafenib_day_60       # becomes the person_id; letters, digits, _ - .
        description: First fill on day +60 (last day of the window) is treated
        like: base                 # start from a template ...
        set: {death: null}         # ... replace whole keys (null clears death) ...
        add: {fills: [...]}        # ... and append to its lists
        expect: {included: true, arm: sorafenib, first_exposure_date: 2009-05-14}
      - id: written_out            # or give the timeline keys directly, without like
        person: {...}
        expect: {excluded_at: HCC tumor}

Timeline keys (each optional except ``person``):

- ``person``: ``birth_date`` (a date, or null for none), ``sex``, ``race`` (the
  definition language's values).
- ``death``: the death date, or null.
- ``tumors``: registry rows: ``sequence_number`` (quoted, two digits) and optionally
  ``diagnosis_year``, ``diagnosis_month`` (a number; 99 or null = unknown),
  ``primary_site`` (``C22.0`` or ``C220``), ``histology`` (quoted, ``"8170"``),
  ``behavior``, ``historic_stage``, ``reporting_source`` (a name such as ``malignant``,
  ``distant``, ``autopsy_only``, or the registry code as quoted text), ``death_year``,
  ``death_month``. A field left out is missing (null).
- ``enrollment``: spans ``{coverage, start, end}`` (inclusive); ``coverage`` is one of
  part_a, part_b, part_d, hmo, dual, retiree_drug_subsidy, or a list of them (one span
  each). Fee-for-service is not stored: it is every day without an ``hmo`` span.
- ``diagnoses``: ``{date, code}`` and optionally ``system`` (default icd9cm before
  2015-10-01, icd10cm from then), ``setting`` (inpatient, outpatient, carrier; default
  carrier), ``claim_id`` (default: one claim per row).
- ``procedures``: like diagnoses; ``system`` defaults to hcpcs for a five-character code,
  else icd9pcs before 2015-10-01 and icd10pcs from then.
- ``fills``: ``{date, ndc}`` and optionally ``generic_name``, ``brand_name``,
  ``days_supply`` (null = missing), ``quantity``, ``claim_id``.

Codes are written as in code sets (quoted, dots optional); they are stored without dots,
in upper case, NDCs as 11 digits.

``expect`` is one of:

- ``{excluded_at: <criterion name>}``: the person leaves the cohort at that attrition
  step (a person without an index leaves at step 1);
- ``{included: true, <column>: <value>, ...}``: the person is in the cohort and each
  listed column has the value (null = empty); unlisted columns are not checked.
  ``events: [{start_day, stop_day, event, <time-varying covariate>: 0|1}, ...]`` lists
  every start/stop row of the person, in order (only the listed columns are checked);
- ``{rows: [...]}`` for definitions whose index is ``each``: one entry per episode, each
  with its ``index_date`` and either ``excluded_at`` or ``included: true`` plus columns.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cohortlake.errors import UserError
from cohortlake.spec.codes import CodeError, CodeSystem, canonical_code, normalise
from cohortlake.spec.followup import implied_steps
from cohortlake.spec.model import (
    SEER_CODES,
    Behavior,
    Coverage,
    Definition,
    Occurrence,
    Race,
    ReportingSource,
    Setting,
    Sex,
    Stage,
)
from cohortlake.yamlfile import LocatedYaml, YamlError, load_located

Loc = tuple[Any, ...]

TABLES = ("person", "death", "enrollment", "tumor", "diagnosis", "procedure", "dispensing")
ICD10_FROM = date(2015, 10, 1)
SOURCE_TABLE = "assure"

TIMELINE_KEYS = ("person", "death", "tumors", "enrollment", "diagnoses", "procedures", "fills")
LIST_KEYS = ("tumors", "enrollment", "diagnoses", "procedures", "fills")
TEMPLATE_KEYS = ("description", "like", "set", "add", *TIMELINE_KEYS)
PATIENT_KEYS = ("id", "description", "like", "set", "add", "expect", *TIMELINE_KEYS)
FILE_KEYS = ("definition", "templates", "patients")

PERSON_FIELDS = ("birth_date", "sex", "race")
TUMOR_FIELDS = (
    "sequence_number", "diagnosis_year", "diagnosis_month", "primary_site", "histology", "behavior",
    "historic_stage", "reporting_source", "death_year", "death_month",
)
ENROLLMENT_FIELDS = ("coverage", "start", "end")
CODED_FIELDS = ("date", "code", "system", "setting", "claim_id")
FILL_FIELDS = ("date", "ndc", "generic_name", "brand_name", "days_supply", "quantity", "claim_id")
STORED_COVERAGE = tuple(c.value for c in Coverage if c is not Coverage.fee_for_service)
DIAGNOSIS_SYSTEMS = (CodeSystem.icd9cm.value, CodeSystem.icd10cm.value)
PROCEDURE_SYSTEMS = (CodeSystem.hcpcs.value, CodeSystem.icd9pcs.value, CodeSystem.icd10pcs.value)
REGISTRY_ENUMS = {"behavior": Behavior, "historic_stage": Stage, "reporting_source": ReportingSource}
PATIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
EVENT_BASE = ("start_day", "stop_day", "event")


class AssureFileError(YamlError):
    """Problems in a test-patient file, one ``file:line: field: message`` line each."""


# ---------------------------------------------------------------------------------------
# What a test file holds once read
# ---------------------------------------------------------------------------------------


@dataclass
class Expectation:
    """What one episode (or, without ``rows``, the person) should come out as."""

    excluded_at: str | None = None
    """The attrition step name where it leaves; None = included."""
    columns: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] | None = None
    index_date: date | None = None
    """Only in ``rows``: which episode."""

    @property
    def included(self) -> bool:
        return self.excluded_at is None


@dataclass
class AssurePatient:
    id: str
    description: str
    line: int | None
    timeline: dict[str, Any]
    expect: Expectation | None = None
    rows: list[Expectation] | None = None


@dataclass
class AssureSuite:
    """A read and checked test file, with the definition it tests."""

    path: str
    definition: Definition
    patients: list[AssurePatient]

    def tables(self) -> dict[str, list[dict]]:
        """Canonical rows of every patient."""
        return rows_for(self.patients)


# ---------------------------------------------------------------------------------------
# Problems, placed in the file
# ---------------------------------------------------------------------------------------


class _Problems:
    def __init__(self, located: LocatedYaml):
        self.located = located
        self.items: list[tuple[int, str]] = []

    def add(self, loc: Loc, message: str) -> None:
        line = self.located.line_of(loc)
        where = f"{self.located.path}:{line}" if line else self.located.path
        name = ".".join(map(str, loc)) or "(top level)"
        self.items.append((line or 0, f"{where}: {name}: {message}"))

    def raise_if_any(self) -> None:
        if self.items:
            ordered = sorted(self.items, key=lambda item: item[0])
            raise AssureFileError("\n".join(dict.fromkeys(text for _, text in ordered)))


def _listing(values) -> str:
    return ", ".join(str(v) for v in values)


def _mapping(p: _Problems, loc: Loc, value: Any, allowed, what: str) -> dict | None:
    """A mapping whose keys are all allowed, else None (problems recorded)."""
    if not isinstance(value, dict):
        p.add(loc, f"expected {what} (a mapping of key: value), got {_shown(value)}")
        return None
    for key in value:
        if key not in allowed:
            p.add(loc + (key,), f"unknown key '{key}'; allowed: {_listing(allowed)}")
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def _date(p: _Problems, loc: Loc, value: Any, *, nullable: bool = False) -> date | None | bool:
    """A date from YAML (2009-03-15, or the same quoted); False when invalid."""
    if value is None:
        if nullable:
            return None
        p.add(loc, "a date is required, written YYYY-MM-DD")
        return False
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            p.add(loc, f"'{value}' is not a real date ({exc})")
            return False
    p.add(loc, f"expected a date written YYYY-MM-DD, got {_shown(value)}")
    return False


def _text(p: _Problems, loc: Loc, value: Any, *, nullable: bool = False, code: bool = False) -> str | None | bool:
    if value is None and nullable:
        return None
    if isinstance(value, str) and value.strip():
        return value.strip()
    if code and isinstance(value, (int, float)) and not isinstance(value, bool):
        p.add(loc, f"write codes as quoted text, e.g. '{value}'; unquoted, YAML reads {value!r} as a number")
        return False
    p.add(loc, f"expected text, got {_shown(value)}")
    return False


def _int(p: _Problems, loc: Loc, value: Any, *, nullable: bool = False) -> int | None | bool:
    if value is None and nullable:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    p.add(loc, f"expected a whole number, got {_shown(value)}")
    return False


def _choice(p: _Problems, loc: Loc, value: Any, choices) -> str | bool:
    if isinstance(value, str) and value in choices:
        return value
    p.add(loc, f"{_shown(value) if not isinstance(value, str) else repr(value)} is not allowed; use one of: {_listing(choices)}")
    return False


def _bad(*values) -> bool:
    return any(v is False for v in values)


# ---------------------------------------------------------------------------------------
# Timelines
# ---------------------------------------------------------------------------------------


def _read_person(p: _Problems, loc: Loc, value: Any) -> dict | None:
    data = _mapping(p, loc, value, PERSON_FIELDS, "a person {birth_date, sex, race}")
    if data is None:
        return None
    for name in PERSON_FIELDS:
        if name not in data:
            p.add(loc, f"person needs {name}" + (" (null when unknown)" if name == "birth_date" else ""))
    birth = _date(p, loc + ("birth_date",), data.get("birth_date"), nullable=True)
    sex = _choice(p, loc + ("sex",), data.get("sex"), [s.value for s in Sex]) if "sex" in data else False
    race = _choice(p, loc + ("race",), data.get("race"), [r.value for r in Race]) if "race" in data else False
    if _bad(birth, sex, race):
        return None
    return {"birth_date": birth, "sex": sex, "race": race}


def _registry_code(p: _Problems, loc: Loc, name: str, value: Any) -> str | None | bool:
    """A tumor field as the registry stores it: names become their SEER codes."""
    if value is None:
        return None
    enum = REGISTRY_ENUMS[name]
    names = [e.value for e in enum]
    if isinstance(value, str) and value in names:
        return SEER_CODES[enum][enum(value)]
    if isinstance(value, str) and re.fullmatch(r"\d", value.strip()):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        p.add(loc, f"write the registry code quoted ('{value}') or use a name: {_listing(names)}")
        return False
    p.add(loc, f"{value!r} is not allowed; use one of: {_listing(names)}, or a one-digit registry code in quotes")
    return False


def _read_tumor(p: _Problems, loc: Loc, value: Any) -> dict | None:
    data = _mapping(p, loc, value, TUMOR_FIELDS, "a tumor")
    if data is None:
        return None
    row: dict[str, Any] = {}
    ok = True
    if "sequence_number" not in data:
        p.add(loc, "a tumor needs sequence_number (two digits in quotes, e.g. '00')")
        ok = False
    else:
        seq = data["sequence_number"]
        if isinstance(seq, str) and re.fullmatch(r"\d{2}", seq):
            row["sequence_number"] = seq
        else:
            p.add(loc + ("sequence_number",), f"expected two digits in quotes such as '00', got {_shown(seq)}")
            ok = False
    for name in ("diagnosis_year", "diagnosis_month", "death_year", "death_month"):
        row[name] = _int(p, loc + (name,), data.get(name), nullable=True)
    site = data.get("primary_site")
    if site is None:
        row["primary_site"] = None
    elif isinstance(site, str) and re.fullmatch(r"C\d{2}\.?\d?", site.strip().upper()):
        row["primary_site"] = site.strip().upper().replace(".", "")
    else:
        p.add(loc + ("primary_site",), f"expected an ICD-O-3 site such as C22.0, got {_shown(site)}")
        ok = False
    histology = data.get("histology")
    if histology is None:
        row["histology"] = None
    elif isinstance(histology, str) and re.fullmatch(r"\d{4}", histology.strip()):
        row["histology"] = histology.strip()
    else:
        hint = " in quotes" if isinstance(histology, int) else ""
        p.add(loc + ("histology",), f"expected a four-digit ICD-O-3 histology{hint} such as '8170', got {_shown(histology)}")
        ok = False
    for name in REGISTRY_ENUMS:
        row[name] = _registry_code(p, loc + (name,), name, data.get(name))
    if not ok or _bad(*row.values()):
        return None
    return row


def _read_enrollment(p: _Problems, loc: Loc, value: Any) -> list[dict] | None:
    data = _mapping(p, loc, value, ENROLLMENT_FIELDS, "an enrollment span {coverage, start, end}")
    if data is None:
        return None
    for name in ENROLLMENT_FIELDS:
        if name not in data:
            p.add(loc, f"an enrollment span needs {name}")
    coverage = data.get("coverage")
    types = coverage if isinstance(coverage, list) else [coverage]
    if coverage == []:
        p.add(loc + ("coverage",), f"give at least one coverage type: {_listing(STORED_COVERAGE)}")
    chosen = []
    for i, kind in enumerate(types):
        here = loc + ("coverage", i) if isinstance(coverage, list) else loc + ("coverage",)
        if kind == Coverage.fee_for_service.value:
            p.add(here, "fee_for_service is not stored: it holds on every day without an hmo span")
            chosen.append(False)
        elif "coverage" in data:
            chosen.append(_choice(p, here, kind, STORED_COVERAGE))
    start = _date(p, loc + ("start",), data.get("start")) if "start" in data else False
    end = _date(p, loc + ("end",), data.get("end")) if "end" in data else False
    if _bad(start, end, *chosen) or not chosen:
        return None
    if start > end:
        p.add(loc + ("end",), f"end {end} is before start {start}")
        return None
    return [{"coverage": kind, "start_date": start, "end_date": end} for kind in chosen]


def _read_coded(p: _Problems, loc: Loc, value: Any, table: str) -> dict | None:
    what = "a diagnosis {date, code}" if table == "diagnosis" else "a procedure {date, code}"
    data = _mapping(p, loc, value, CODED_FIELDS, what)
    if data is None:
        return None
    for name in ("date", "code"):
        if name not in data:
            p.add(loc, f"{what.split(' {')[0]} needs {name}")
    day = _date(p, loc + ("date",), data.get("date")) if "date" in data else False
    code = _text(p, loc + ("code",), data.get("code"), code=True) if "code" in data else False
    setting = Setting.carrier.value
    if "setting" in data:
        setting = _choice(p, loc + ("setting",), data["setting"], [s.value for s in Setting])
    claim = _text(p, loc + ("claim_id",), data.get("claim_id")) if "claim_id" in data else None
    systems = DIAGNOSIS_SYSTEMS if table == "diagnosis" else PROCEDURE_SYSTEMS
    if "system" in data:
        system = _choice(p, loc + ("system",), data.get("system"), systems)
    elif _bad(day, code):
        system = False
    elif table == "diagnosis":
        system = "icd9cm" if day < ICD10_FROM else "icd10cm"
    else:
        clean = code.replace(".", "")
        system = "hcpcs" if len(clean) == 5 else ("icd9pcs" if day < ICD10_FROM else "icd10pcs")
    if _bad(day, code, setting, claim, system):
        return None
    try:
        entry = normalise(system, code)
    except CodeError as exc:
        why = f"'{code}' does not fit {system}: " + str(exc).replace(", a prefix ending in x or *, or a range low-high", "")
        if "system" not in data:
            why += (f" ({system} was chosen by the code's " + ("length and " if table == "procedure" else "")
                    + "date; give system: to choose another)")
        p.add(loc + ("code",), why)
        return None
    if entry.kind != "exact":
        p.add(loc + ("code",), f"'{code}' is a {entry.kind} of {system} codes; a claim row holds one exact code")
        return None
    return {"date": day, "code": canonical_code(system, code), "code_system": system, "setting": setting, "claim_id": claim}


def _read_fill(p: _Problems, loc: Loc, value: Any) -> dict | None:
    data = _mapping(p, loc, value, FILL_FIELDS, "a fill {date, ndc, ...}")
    if data is None:
        return None
    for name in ("date", "ndc"):
        if name not in data:
            p.add(loc, f"a fill needs {name}")
    day = _date(p, loc + ("date",), data.get("date")) if "date" in data else False
    ndc = _text(p, loc + ("ndc",), data.get("ndc"), code=True) if "ndc" in data else False
    row: dict[str, Any] = {"date": day}
    if ndc:
        try:
            entry = normalise("ndc", ndc)
            if entry.kind != "exact":
                raise CodeError("a fill holds one exact NDC, not a prefix")
            row["ndc"] = entry.value
        except CodeError as exc:
            p.add(loc + ("ndc",), f"'{ndc}' is not an NDC: {exc}")
            ndc = False
    row["generic_name"] = _text(p, loc + ("generic_name",), data.get("generic_name"), nullable=True)
    row["brand_name"] = _text(p, loc + ("brand_name",), data.get("brand_name"), nullable=True)
    row["days_supply"] = _int(p, loc + ("days_supply",), data.get("days_supply"), nullable=True)
    quantity = data.get("quantity")
    if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, (int, float))):
        p.add(loc + ("quantity",), f"expected a number, got {_shown(quantity)}")
        quantity = False
    row["quantity"] = None if quantity is None else (quantity if quantity is False else float(quantity))
    row["claim_id"] = _text(p, loc + ("claim_id",), data.get("claim_id")) if "claim_id" in data else None
    if _bad(day, ndc, *row.values()):
        return None
    return row


_LIST_READERS = {
    "tumors": _read_tumor,
    "enrollment": _read_enrollment,
    "diagnoses": lambda p, loc, v: _read_coded(p, loc, v, "diagnosis"),
    "procedures": lambda p, loc, v: _read_coded(p, loc, v, "procedure"),
    "fills": _read_fill,
}


def _read_timeline_key(p: _Problems, loc: Loc, key: str, value: Any) -> tuple[bool, Any]:
    """(ok, value) of one timeline key as written at loc."""
    if key == "person":
        person = _read_person(p, loc, value)
        return person is not None, person
    if key == "death":
        death = _date(p, loc, value, nullable=True)
        return death is not False, death
    if value is None:
        return True, []
    if not isinstance(value, list):
        p.add(loc, f"expected a list of {key}, e.g. [{{...}}, {{...}}], got {_shown(value)}")
        return False, None
    items, ok = [], True
    for i, item in enumerate(value):
        read = _LIST_READERS[key](p, loc + (i,), item)
        if read is None:
            ok = False
        elif key == "enrollment":
            items.extend(read)
        else:
            items.append(read)
    return ok, items


def _read_changes(p: _Problems, loc: Loc, raw: dict) -> tuple[bool, dict, dict]:
    """The set: and add: of a template or patient, read."""
    ok = True
    replaced: dict[str, Any] = {}
    appended: dict[str, list] = {}
    if "set" in raw:
        changes = _mapping(p, loc + ("set",), raw["set"], TIMELINE_KEYS, "the keys to replace")
        ok &= changes is not None
        for key, value in (changes or {}).items():
            if key in TIMELINE_KEYS:
                if key == "person" and value is None:
                    p.add(loc + ("set", key), "every test patient needs a person row")
                    ok = False
                    continue
                good, read = _read_timeline_key(p, loc + ("set", key), key, value)
                ok &= good
                replaced[key] = read
    if "add" in raw:
        changes = _mapping(p, loc + ("add",), raw["add"], LIST_KEYS, "lists to append to")
        ok &= changes is not None
        for key, value in (changes or {}).items():
            if key in LIST_KEYS:
                good, read = _read_timeline_key(p, loc + ("add", key), key, value)
                ok &= good
                appended[key] = read
    return ok, replaced, appended


def _empty_timeline() -> dict[str, Any]:
    return {"person": None, "death": None, **{key: [] for key in LIST_KEYS}}


class _Templates:
    """Templates resolved on demand, each from its own (validated) parts."""

    def __init__(self, p: _Problems, raw: Any):
        self.p = p
        self.raw = raw if isinstance(raw, dict) else {}
        self.resolved: dict[str, dict | None] = {}
        self.resolving: list[str] = []
        if raw is not None and not isinstance(raw, dict):
            p.add(("templates",), f"expected a mapping of template name: timeline, got {_shown(raw)}")
        for name in self.raw:
            self.get(name)

    def get(self, name: str) -> dict | None:
        if name in self.resolved:
            return self.resolved[name]
        if name in self.resolving:
            cycle = " → ".join(self.resolving[self.resolving.index(name):] + [name])
            self.p.add(("templates", name, "like"), f"templates start from each other in a circle: {cycle}")
            return None
        self.resolving.append(name)
        try:
            self.resolved[name] = build_timeline(self.p, ("templates", name), self.raw[name], self, TEMPLATE_KEYS)
        finally:
            self.resolving.pop()
        return self.resolved[name]


def build_timeline(p: _Problems, loc: Loc, raw: Any, templates: _Templates, allowed) -> dict | None:
    """A template's or patient's timeline: its own keys, or a template changed by set: and add:."""
    data = _mapping(p, loc, raw, allowed, "a timeline")
    if data is None:
        return None
    given = [key for key in TIMELINE_KEYS if key in data]
    if "like" in data:
        if given:
            p.add(loc + (given[0],), f"with like:, change the template with set: {{{given[0]}: ...}} or add: "
                                      f"instead of writing {given[0]} directly")
            return None
        name = data["like"]
        if not isinstance(name, str) or name not in templates.raw:
            p.add(loc + ("like",), f"unknown template {name!r}; defined: {_listing(templates.raw) or 'none'}")
            return None
        base = templates.get(name)
        ok, replaced, appended = _read_changes(p, loc, data)
        if base is None or not ok:
            return None
        timeline = {key: (list(value) if isinstance(value, list) else value) for key, value in base.items()}
        timeline.update(replaced)
        for key, items in appended.items():
            timeline[key] = timeline[key] + items
        return timeline
    for key in ("set", "add"):
        if key in data:
            p.add(loc + (key,), f"{key}: changes a template; give like: <template name> first "
                                f"(or write the timeline keys directly)")
            return None
    timeline = _empty_timeline()
    ok = True
    for key in given:
        good, value = _read_timeline_key(p, loc + (key,), key, data[key])
        ok &= good
        timeline[key] = value
    return timeline if ok else None


# ---------------------------------------------------------------------------------------
# Expectations, checked against the definition
# ---------------------------------------------------------------------------------------


@dataclass
class _Columns:
    """What may be expected of a definition's cohort: columns by kind, steps, arms."""

    kinds: dict[str, str]
    events: tuple[str, ...]
    steps: list[str]
    arms: list[str]
    each: bool

    @classmethod
    def of(cls, d: Definition) -> _Columns:
        kinds = {name: "date" for name in ("index_date", "landmark_date", "first_exposure_date",
                                            "followup_start", "followup_end")}
        kinds.update(arm="arm", event="int", time_days="int")
        for covariate in d.covariates:
            kinds[covariate.name] = "value"
        for landmark in d.landmarks:
            if len(d.landmarks) > 1:  # one landmark: its date is landmark_date
                kinds[f"{landmark.name}_date"] = "date"
            kinds[f"in_{landmark.name}"] = "flag"
        for outcome in d.outcomes:
            kinds[f"{outcome.name}_date"] = "date"
            kinds[f"{outcome.name}_event"] = "int"
            kinds[f"{outcome.name}_time_days"] = "int"
        events = EVENT_BASE + tuple(t.name for t in d.time_varying)
        arms = [arm.name for arm in d.arms] or ["all"]
        each = getattr(d.index.rule, "occurrence", Occurrence.first) == Occurrence.each
        return cls(kinds, events, attrition_steps(d), arms, each)


def attrition_steps(d: Definition) -> list[str]:
    """Attrition step names after the population (step 1 first), as the README defines them."""
    return [criterion.name for criterion in d.criteria] + implied_steps(d)


def _value(p: _Problems, loc: Loc, kind: str, value: Any, columns: _Columns) -> tuple[bool, Any]:
    if value is None:
        return True, None
    if kind == "date":
        day = _date(p, loc, value)
        return day is not False, day
    if kind in ("int", "flag"):
        if isinstance(value, bool) or not isinstance(value, int) or (kind == "flag" and value not in (0, 1)):
            p.add(loc, f"expected {'0 or 1' if kind == 'flag' else 'a whole number'}, got {_shown(value)}")
            return False, None
        return True, value
    if kind == "arm":
        arm = _choice(p, loc, value, columns.arms)
        return arm is not False, arm
    if isinstance(value, (list, dict)):
        p.add(loc, f"expected one value, got {_shown(value)}")
        return False, None
    return True, value


def _read_events(p: _Problems, loc: Loc, value: Any, columns: _Columns) -> list[dict] | None:
    if len(columns.events) == len(EVENT_BASE):
        p.add(loc, "this definition has no time_varying covariates, so it has no events rows")
        return None
    if not isinstance(value, list):  # [] = no rows (no follow-up, or 0 days of it)
        p.add(loc, f"expected a list of rows [{{start_day: 0, stop_day: N, event: 0|1, ...}}] or [] for none, "
                   f"got {_shown(value)}")
        return None
    rows, ok = [], True
    for i, raw in enumerate(value):
        data = _mapping(p, loc + (i,), raw, columns.events, "an events row")
        if data is None:
            ok = False
            continue
        row = {}
        for key, item in data.items():
            if key in columns.events:
                good, read = _value(p, loc + (i, key), "int" if key in EVENT_BASE[:2] else "flag", item, columns)
                ok &= good
                row[key] = read
        rows.append(row)
    return rows if ok else None


def _read_expectation(p: _Problems, loc: Loc, raw: Any, columns: _Columns, in_rows: bool) -> Expectation | None:
    special = ("excluded_at", "included", "events") + (("index_date",) if in_rows else ("rows",))
    allowed = [*special, *columns.kinds]
    if not isinstance(raw, dict):
        p.add(loc, "expected a mapping: {excluded_at: <criterion name>} or {included: true, <column>: <value>, ...}")
        return None
    ok = True
    for key in raw:
        if key not in allowed and key not in columns.kinds:
            if key in columns.events:
                p.add(loc + (key,), f"'{key}' is a column of the events rows: list them under events:")
            else:
                p.add(loc + (key,), f"unknown column '{key}'; the cohort has: {_listing(columns.kinds)}")
            ok = False
    expectation = Expectation()
    if in_rows:
        if "index_date" not in raw:
            p.add(loc, "each row needs the index_date of its episode")
            ok = False
        else:
            day = _date(p, loc + ("index_date",), raw["index_date"])
            ok &= day is not False
            expectation.index_date = day or None
    forms = [key for key in ("excluded_at", "included", "rows") if key in raw]
    if len(forms) != 1:
        p.add(loc, "give exactly one of excluded_at: <criterion name>, included: true"
                   + ("" if in_rows else ", rows: [...]") + (f"; not {' and '.join(forms)}" if forms else ""))
        return None
    if "excluded_at" in raw:
        step = raw["excluded_at"]
        if step not in columns.steps:
            p.add(loc + ("excluded_at",), f"{step!r} is not an attrition step of this definition; "
                                          f"use one of: {'; '.join(columns.steps)}")
            return None
        extra = [key for key in raw if key in allowed and key not in ("excluded_at", *special[3:])]
        if extra:
            p.add(loc + (extra[0],), "an excluded person has no cohort columns; only excluded_at is checked")
            return None
        expectation.excluded_at = step
        return expectation if ok else None
    if "rows" in raw:
        return None  # handled by the caller
    if raw["included"] is not True:
        p.add(loc + ("included",), "write included: true, or excluded_at: <criterion name> to say where the person leaves")
        return None
    for key, value in raw.items():
        if key in columns.kinds:
            good, read = _value(p, loc + (key,), columns.kinds[key], value, columns)
            ok &= good
            expectation.columns[key] = read
    if "events" in raw:
        events = _read_events(p, loc + ("events",), raw["events"], columns)
        ok &= events is not None
        expectation.events = events
    return expectation if ok else None


def _read_patient(p: _Problems, i: int, raw: Any, templates: _Templates, columns: _Columns,
                  seen: dict[str, int]) -> AssurePatient | None:
    loc = ("patients", i)
    if not isinstance(raw, dict):
        p.add(loc, f"expected a patient mapping (id:, description:, like:, expect:, ...), got {_shown(raw)}")
        return None
    ok = True
    pid = raw.get("id")
    if not isinstance(pid, str) or not PATIENT_ID.fullmatch(pid):
        p.add(loc + ("id",) if "id" in raw else loc,
              "each patient needs an id: letters, digits, _ - . (it becomes the person_id)"
              + (f", got {_shown(pid)}" if "id" in raw else ""))
        ok = False
    elif pid in seen:
        p.add(loc + ("id",), f"id '{pid}' is already used by the patient at line {seen[pid]}")
        ok = False
    else:
        seen[pid] = p.located.line_of(loc) or 0
    description = raw.get("description", "")
    if not isinstance(description, str):
        p.add(loc + ("description",), f"expected text, got {_shown(description)}")
        ok = False
    own = {k: v for k, v in raw.items() if k not in ("id", "description", "expect")}
    timeline = build_timeline(p, loc, own, templates, PATIENT_KEYS)
    if timeline is not None and timeline["person"] is None:
        p.add(loc, "the patient has no person: give person: {birth_date, sex, race} (or like: a template with one)")
        ok = False
    if "expect" not in raw:
        p.add(loc, "the patient needs expect: {excluded_at: ...} or {included: true, ...}")
        return None
    expect, rows = None, None
    raw_expect = raw["expect"]
    if isinstance(raw_expect, dict) and "rows" in raw_expect:
        rows = _read_rows(p, loc + ("expect",), raw_expect, columns)
        ok &= rows is not None
    else:
        expect = _read_expectation(p, loc + ("expect",), raw_expect, columns, in_rows=False)
        ok &= expect is not None
    if not ok or timeline is None:
        return None
    return AssurePatient(pid, description.strip(), p.located.line_of(loc), timeline, expect, rows)


def _read_rows(p: _Problems, loc: Loc, raw: dict, columns: _Columns) -> list[Expectation] | None:
    if not columns.each:
        p.add(loc + ("rows",), "rows: is for definitions whose index is `occurrence: each`; this one has one "
                               "episode per person: write excluded_at or included: true directly")
        return None
    extra = [key for key in raw if key != "rows"]
    if extra:
        p.add(loc + (extra[0],), "with rows:, put every expectation inside the rows")
        return None
    value = raw["rows"]
    if not isinstance(value, list) or not value:
        p.add(loc + ("rows",), f"expected a list of episodes [{{index_date: ..., included: true, ...}}], got {_shown(value)}")
        return None
    rows = [_read_expectation(p, loc + ("rows", i), item, columns, in_rows=True) for i, item in enumerate(value)]
    if any(row is None for row in rows):
        return None
    dates = [row.index_date for row in rows]
    for i, day in enumerate(dates):
        if day in dates[:i]:
            p.add(loc + ("rows", i, "index_date"), f"two rows for the episode of {day}")
            return None
    return rows


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def default_tests_path(definition_path: str | Path) -> Path:
    """cohort_defs/X.yaml → cohort_defs/tests/X.yaml."""
    definition_path = Path(definition_path)
    return definition_path.parent / "tests" / definition_path.name


def _load_yaml(path: Path) -> LocatedYaml:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AssureFileError(f"{path}: file not found") from None
    try:
        return load_located(str(path), text)
    except ValueError as exc:
        # YAML's own date parsing rejects an unquoted impossible date (2009-02-30) without a line.
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
        p.add(("definition",), f"expected the definition's path relative to this file, got {_shown(written)}")
        p.raise_if_any()
    return path.parent / written


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
    columns = _Columns.of(definition)
    for key in data:
        if key not in FILE_KEYS:
            p.add((key,), f"unknown key '{key}'; allowed: {_listing(FILE_KEYS)}")
    templates = _Templates(p, data.get("templates"))
    raw_patients = data.get("patients")
    patients: list[AssurePatient] = []
    if not isinstance(raw_patients, list) or not raw_patients:
        p.add(("patients",) if "patients" in data else (), "patients: needs a list of test patients")
    else:
        seen: dict[str, int] = {}
        for i, raw in enumerate(raw_patients):
            patient = _read_patient(p, i, raw, templates, columns, seen)
            if patient is not None:
                patients.append(patient)
    p.raise_if_any()
    return AssureSuite(str(path), definition, patients)


# ---------------------------------------------------------------------------------------
# Timelines → canonical rows → Spark frames
# ---------------------------------------------------------------------------------------


def patient_rows(patient: AssurePatient) -> dict[str, list[dict]]:
    """One patient's canonical rows; claim ids and source columns keep every row distinct."""
    pid, t = patient.id, patient.timeline
    tables: dict[str, list[dict]] = {name: [] for name in TABLES}
    person = t["person"]
    tables["person"].append({"person_id": pid, **person})
    if t["death"] is not None:
        tables["death"].append({"person_id": pid, "death_date": t["death"], "source": "test", "precision": "day"})
    for span in t["enrollment"]:
        tables["enrollment"].append({"person_id": pid, **span})
    for tumor in t["tumors"]:
        tables["tumor"].append({"person_id": pid, **{name: tumor.get(name) for name in TUMOR_FIELDS}})
    for table, key, short in (("diagnosis", "diagnoses", "dx"), ("procedure", "procedures", "px")):
        for n, event in enumerate(t[key], 1):
            tables[table].append({
                "person_id": pid, "date": event["date"], "code": event["code"], "code_system": event["code_system"],
                "setting": event["setting"], "source_table": SOURCE_TABLE,
                "claim_id": event["claim_id"] or f"{pid}-{short}{n}", "source_column": f"{key}.{n}",
            })
    for n, fill in enumerate(t["fills"], 1):
        tables["dispensing"].append({
            "person_id": pid, "date": fill["date"], "ndc": fill["ndc"], "generic_name": fill["generic_name"],
            "brand_name": fill["brand_name"], "quantity": fill["quantity"], "days_supply": fill["days_supply"],
            "source_table": SOURCE_TABLE, "claim_id": fill["claim_id"] or f"{pid}-fill{n}",
        })
    return tables


def rows_for(patients: list[AssurePatient]) -> dict[str, list[dict]]:
    """Canonical rows of several patients, table by table."""
    tables: dict[str, list[dict]] = {name: [] for name in TABLES}
    for patient in patients:
        for name, rows in patient_rows(patient).items():
            tables[name].extend(rows)
    return tables


def frames_from_rows(spark, tables: dict[str, list[dict]]) -> dict:
    """Spark DataFrames with the canonical schemas holding the rows (a missing table is empty).

    The rows travel as Arrow tables, so the frames are plain JVM data: scanning them
    starts no Python workers.
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from cohortlake.sources.canonical import SCHEMAS

    frames = {}
    for name in TABLES:
        schema = SCHEMAS[name]
        rows = [{f.name: row.get(f.name) for f in schema.fields} for row in tables.get(name, [])]
        table = pa.Table.from_pylist(rows, schema=to_arrow_schema(schema))
        frames[name] = spark.createDataFrame(table, schema=schema).coalesce(1)
    return frames


# ---------------------------------------------------------------------------------------
# Comparing with what the engine built
# ---------------------------------------------------------------------------------------


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


def _compare_one(expect: Expectation, ep: _Episode | None, prefix: str = "") -> list[str]:
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


@dataclass
class EngineRows:
    """What one build gave, as plain rows: cohort, per-episode step flags, events, step names."""

    cohort: list[dict]
    flags: list[dict]
    events: list[dict] | None
    steps: dict[int, str]


def compare(suite: AssureSuite, built: EngineRows) -> AssureReport:
    """Each patient's expectation against the rows of the build."""
    flags = built.flags
    flag_columns = sorted((int(k.split("_", 1)[1]), k) for row in flags[:1] for k in row if re.fullmatch(r"step_\d+", k))
    first_step = built.steps.get(1, "step 1")
    episodes: dict[str, list[_Episode]] = {}
    for row in flags:
        failed = next((k for k, name in flag_columns if row[name] is not True), None)
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


def _plain(row) -> dict:
    return row.asDict(recursive=True) if hasattr(row, "asDict") else dict(row)


def engine_rows(spark, suite: AssureSuite) -> EngineRows:
    """Build the suite's definition over all its patients at once (one engine run)."""
    from cohortlake.engine import build_cohort
    from cohortlake.lake.session import session_conf

    # A few hundred rows: one shuffle partition instead of many near-empty tasks, and no
    # adaptive re-planning (on data this small it costs more than it saves: about 40%).
    with session_conf(spark, {"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false"}):
        result = build_cohort(suite.definition, frames_from_rows(spark, suite.tables()))
        try:
            return EngineRows(
                cohort=[_plain(r) for r in result.cohort.collect()],
                flags=[_plain(r) for r in result.flags.collect()],
                events=[_plain(r) for r in result.events.collect()] if result.events is not None else None,
                steps={int(step): str(name) for step, name, *_ in result.attrition},
            )
        finally:
            release = getattr(result, "release", None)
            if release is not None:
                release()


def run_suite(spark, suite: AssureSuite) -> AssureReport:
    """Build the suite's definition over its patients and compare with their expectations."""
    return compare(suite, engine_rows(spark, suite))


def run_assure(spark, definition_path: str | Path, tests_path: str | Path | None = None) -> AssureReport:
    """Run the test patients of a definition (default: cohort_defs/tests/<same file name>)."""
    from cohortlake.spec.load import load_definition

    definition_path = Path(definition_path)
    tests_path = Path(tests_path) if tests_path else default_tests_path(definition_path)
    if not tests_path.is_file():
        raise UserError(f"{tests_path}: no test patients for {definition_path} (write them in "
                        f"{default_tests_path(definition_path)}, or give --tests FILE)")
    definition = load_definition(definition_path)
    suite = load_suite(tests_path, definition, definition_path=definition_path)
    return run_suite(spark, suite)
