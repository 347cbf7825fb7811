"""Load a cohort definition: YAML → Definition, with included code sets, checked across sections.

Every problem is collected and raised once as a YamlError whose lines read
``file:line: field: what is allowed``. When one section of the file is malformed the
others are still validated and cross-checked, so an analyst sees all mistakes at once.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import types
import typing
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Iterator

from pydantic import BaseModel, TypeAdapter, ValidationError

from cohortlake import resources
from cohortlake.spec.comorbidity import CONDITIONS as COMORBIDITY_CONDITIONS
from cohortlake.spec.model import (
    NAME_PATTERN,
    TABLE_SYSTEMS,
    AgeCriterion,
    AgeCovariate,
    AliveCriterion,
    Arm,
    CodeSet,
    Covariate,
    Definition,
    EventSpec,
    EventTable,
    Exposure,
    ExposureEnd,
    ExposureEvent,
    ExposurePoint,
    ExposureSource,
    Followup,
    Landmark,
    Name,
    OccurrenceCriterion,
    TumorIndex,
    Window,
)
from cohortlake.yamlfile import LocatedYaml, Problem, YamlError, load_located, read_text

Loc = tuple[Any, ...]
CODESET_FILE = TypeAdapter(dict[Name, CodeSet])


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {_json_key(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    return key.isoformat() if isinstance(key, (date, datetime)) else str(key)


def as_json(data: Any) -> str:
    """YAML data as JSON text, dates as YYYY-MM-DD.

    Definitions are validated from this text in pydantic's strict JSON mode: a number is
    taken only where a number was written ("60" and true are not 60), a boolean only where
    true or false was, while enums, lists and dates read from their plain spellings.
    """
    return json.dumps(_jsonable(data), allow_nan=True)


def _problem(located: LocatedYaml, loc: Loc, message: str) -> Problem:
    return Problem(located.path, located.line_of(loc), field_path(located.data, loc), message)


def field_path(data: Any, loc: Loc) -> str:
    """A YAML path as messages print it: list items numbered from 1 as explain numbers them, and a
    named item's name beside its number, e.g. ``criteria[10] "No other HCC-directed therapy".occurrence``."""
    out = ""
    current = data
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part + 1}]"
            item = current[part] if isinstance(current, list) and 0 <= part < len(current) else None
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name:
                out += f' "{name}"'
            current = item
        else:
            out += ("." if out else "") + str(part)
            current = current.get(part) if isinstance(current, dict) else None
    return out or "(top level)"


# What a strict scalar type expects, by pydantic error type.
_EXPECTED = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "float_type": "a number", "float_parsing": "a number",
    "string_type": "text",
    "date_type": "a date written YYYY-MM-DD", "date_parsing": "a date written YYYY-MM-DD",
    "date_from_datetime_parsing": "a date written YYYY-MM-DD", "date_from_datetime_inexact": "a date written YYYY-MM-DD",
}


def given(value: Any, expected: str = "") -> str:
    """What a value in the YAML is, for a message: text '60', the number 1.5, true, a list, ..."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "an empty value"
    if isinstance(value, (int, float)):
        return f"the number {value:g}" if isinstance(value, float) else f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        if expected == "true or false" and value.strip().lower() in ("yes", "no", "on", "off", "y", "n"):
            return f"text '{shown}' (write true or false for a yes/no setting)"
        if "number" in expected and re.fullmatch(r"\s*[-+]?\d+(\.\d*)?\s*", value):
            return f"text '{shown}' (a number in quotes; write it without quotes)"
        return f"text '{shown}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"


# ---------------------------------------------------------------------------------------
# Pydantic errors → problems
# ---------------------------------------------------------------------------------------

_PATTERN_MESSAGES = {
    NAME_PATTERN: "is not a valid name: use a lower-case letter, then lower-case letters, digits or _",
    r"^\d{2}$": "is not a two-digit sequence number such as '00'",
    r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$": "is not an include: write <file stem>.<set name>, e.g. liver_disease.cirrhosis",
}


def _options(tp: Any) -> list[Any]:
    """The alternatives a type annotation allows, with Annotated and None stripped."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _options(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [o for arg in typing.get_args(tp) if arg is not type(None) for o in _options(arg)]
    return [tp]


def _type_at(loc: Loc) -> list[Any]:
    """Best-effort: the type(s) found at a field path of a Definition."""
    current: list[Any] = [Definition]
    for part in loc:
        following: list[Any] = []
        for option in (o for tp in current for o in _options(tp)):
            origin = typing.get_origin(option)
            if isinstance(option, type) and issubclass(option, BaseModel) and isinstance(part, str):
                for name, info in option.model_fields.items():
                    if part in (name, info.alias):
                        following.append(info.annotation)
            elif origin in (tuple, list) and isinstance(part, int):
                following.append(typing.get_args(option)[0])
            elif origin is dict:
                following.append(typing.get_args(option)[1])
        current = following
    return current


def _allowed_fields(loc: Loc) -> list[str]:
    for option in (o for tp in _type_at(loc) for o in _options(tp)):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return [info.alias or name for name, info in option.model_fields.items()]
    return []


def _listing(expected: str) -> str:
    return expected.replace("'", "").replace(" or ", ", ")


def _message(item: dict, loc: Loc, root: type[BaseModel]) -> str:
    kind, ctx, value = item["type"], item.get("ctx", {}), item.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_fields(loc[:-1]) if root is Definition else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.75) if loc else []
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return "unknown field" + hint + (f" allowed: {', '.join(allowed)}" if hint else f"; allowed: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return "required field is missing"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {given(value, _EXPECTED[kind])}"
    if kind == "literal_error" and ctx.get("expected") == "True":
        return f"expected true, got {given(value)}"
    if kind in ("enum", "literal_error"):
        return f"'{value}' is not allowed; use one of: {_listing(ctx.get('expected', ''))}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERN_MESSAGES:
        return f"'{value}' {_PATTERN_MESSAGES[ctx['pattern']]}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping (key: value), got {given(value)}"
    if kind in ("tuple_type", "list_type"):
        return f"expected a list, e.g. [a, b], got {given(value)}"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    return item["msg"].removeprefix("Value error, ")


def _from_pydantic(
    located: LocatedYaml, error: ValidationError, prefix: Loc = (), root: type[BaseModel] = Definition
) -> list[Problem]:
    problems = []
    for item in error.errors():
        # '~…' parts are our union tags and '[key]' marks a dict key: not in the YAML.
        loc = prefix + tuple(
            p for p in item["loc"]
            if not (isinstance(p, str) and (p.startswith(("~", "function-")) or p == "[key]"))
        )
        problems.append(_problem(located, loc, _message(item, loc, root)))
    return problems


# ---------------------------------------------------------------------------------------
# Validation by section, so one broken section does not hide the others' problems
# ---------------------------------------------------------------------------------------


def _validate(located: LocatedYaml, problems: list[Problem]) -> tuple[Definition | None, SimpleNamespace]:
    data = located.data
    if not isinstance(data, dict):
        problems.append(_problem(located, (), "a definition is a mapping of keys (cohort:, title:, index:, ...)"))
        return None, SimpleNamespace(**{name: None for name in Definition.model_fields})
    try:
        definition = Definition.model_validate_json(as_json(data), strict=True)
        return definition, SimpleNamespace(**{name: getattr(definition, name) for name in Definition.model_fields})
    except ValidationError as exc:
        problems.extend(_from_pydantic(located, exc))
    sections = {}
    for name, info in Definition.model_fields.items():
        if name not in data:
            sections[name] = None if info.is_required() else info.get_default(call_default_factory=True)
        else:
            sections[name] = _section(info, data[name])
    return None, SimpleNamespace(**sections)


def _section(info, value: Any) -> Any:
    """A top-level section validated alone; entries of a mapping or list one by one (None = invalid).

    Its errors were already reported by the whole-model validation; this only recovers
    the valid parts so the cross-reference checks can still run on them.
    """
    annotation = info.annotation
    origin = typing.get_origin(annotation)

    def attempt(tp: Any, item: Any) -> Any:
        try:
            return TypeAdapter(tp).validate_json(as_json(item), strict=True)
        except ValidationError:
            return None

    if origin is dict and isinstance(value, dict):
        item_type = typing.get_args(annotation)[1]
        return {key: attempt(item_type, item) for key, item in value.items()}
    if origin is tuple and isinstance(value, list):
        item_type = typing.get_args(annotation)[0]
        return tuple(attempt(item_type, item) for item in value)
    return attempt(Annotated[annotation, *info.metadata] if info.metadata else annotation, value)


# ---------------------------------------------------------------------------------------
# Shared code-set files
# ---------------------------------------------------------------------------------------


CODESETS_ENV = "COHORTLAKE_CODESETS"


def codeset_search_path(definition: str | Path, codesets_dir=None) -> list[Path]:
    """Where includes are looked up, in order: codesets/ beside the definition, then the library
    (``codesets_dir``, or the folders in $COHORTLAKE_CODESETS separated by the OS path separator),
    then the shipped library."""
    places = [Path(definition).parent / "codesets"]
    if codesets_dir is None:
        codesets_dir = [p for p in os.environ.get(CODESETS_ENV, "").split(os.pathsep) if p]
    elif isinstance(codesets_dir, (str, Path)):
        codesets_dir = [codesets_dir]
    places += [Path(p) for p in codesets_dir]
    shipped = resources.shipped_codesets()  # the package's cohort_defs/codesets
    if shipped.is_dir():
        places.append(shipped.resolve())
    unique: list[Path] = []
    for place in places:
        if not any(_same_dir(place, seen) for seen in unique):
            unique.append(place)
    return unique


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


class Library:
    """Shared code-set files read for one definition, keyed "<stem>.<set>"."""

    def __init__(self, places: list[Path], problems: list[Problem]):
        self.places = places
        self.problems = problems
        self.sets: dict[str, CodeSet] = {}
        self.texts: dict[str, str] = {}  # file path → text, for the definition hash
        self.located: dict[str, LocatedYaml] = {}
        self.paths: dict[str, Path] = {}  # stem → the file found
        self.broken: set[str] = set()  # stems whose file has problems of its own
        self.files: dict[str, dict[str, CodeSet] | None] = {}  # stem → sets, None if unreadable

    def searched(self) -> str:
        return ", ".join(str(place) for place in self.places)

    def file(self, stem: str) -> dict[str, CodeSet] | None:
        """The sets of <stem>.yaml, the first found along the search path, read and validated once."""
        if stem in self.files:
            return self.files[stem]
        self.files[stem] = None
        path = next((place / f"{stem}.yaml" for place in self.places if (place / f"{stem}.yaml").is_file()), None)
        if path is None:
            return None
        self.paths[stem] = path
        try:
            text = read_text(path)
            self.texts[str(path)] = text
            located = load_located(path, text, strict=True)
        except YamlError as exc:
            self.broken.add(stem)
            self.problems.append(Problem(str(path), exc.line, "", exc.problem or str(exc)))
            return None
        self.located[stem] = located
        problems = codeset_file_problems(located)
        if problems:
            self.broken.add(stem)
            self.problems.extend(problems)
            return None
        sets = CODESET_FILE.validate_json(as_json(located.data), strict=True)
        self.files[stem] = sets
        for name, codeset in sets.items():
            self.sets[f"{stem}.{name}"] = codeset
        for name, codeset in sets.items():
            self._follow_includes(located, (name,), codeset)
        return sets

    def resolve(self, ref: str) -> str | None:
        """Why an include "<stem>.<set>" cannot be resolved, or None if it can."""
        stem, name = ref.split(".", 1)
        sets = self.file(stem)
        if sets is None:
            if stem in self.broken:
                return f"{stem}.yaml has errors (reported separately)"
            return f"no code-set file {stem}.yaml; looked in {self.searched()}"
        if name not in sets:
            return f"no set '{name}' in {stem}.yaml; it has: {', '.join(sets) or 'none'}"
        return None

    def _follow_includes(self, located: LocatedYaml, loc: Loc, codeset: CodeSet) -> None:
        for i, ref in enumerate(codeset.include):
            why = self.resolve(ref)
            if why:
                self.problems.append(_problem(located, loc + ("include", i), why))


def codeset_file_problems(located: LocatedYaml) -> list[Problem]:
    """Problems of a shared code-set file on its own (its includes are followed by the Library)."""
    data = located.data if located.data is not None else {}
    if not isinstance(data, dict):
        return [_problem(located, (), "a code-set file is a mapping of set name → code set")]
    try:
        CODESET_FILE.validate_json(as_json(data), strict=True)
    except ValidationError as exc:
        return _from_pydantic(located, exc, root=CodeSet)
    return []


def _find_cycle(start: str, lookup) -> list[str] | None:
    """An include path from `start` back to itself, if any."""
    stack = [(start, [start])]
    while stack:
        name, path = stack.pop()
        codeset = lookup(name)
        for ref in codeset.include if codeset else ():
            if ref == start:
                return path + [ref]
            if ref not in path:
                stack.append((ref, path + [ref]))
    return None


# ---------------------------------------------------------------------------------------
# Cross-reference checks
# ---------------------------------------------------------------------------------------


def _walk(value: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    """Every model inside a section, with its YAML path (aliases, list indexes, dict keys)."""
    if isinstance(value, BaseModel):
        yield loc, value
        for name, info in type(value).model_fields.items():
            yield from _walk(getattr(value, name), loc + (info.alias or name,))
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            yield from _walk(item, loc + (i,))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, loc + (key,))


def _known(kind: str, name: str, names) -> str:
    return f"unknown {kind} '{name}'; defined: {', '.join(names) or 'none'}"


class _Checker:
    """Cross-section checks over validated sections (None = section invalid: its checks are skipped)."""

    def __init__(self, located: LocatedYaml, d: SimpleNamespace, library: Library, problems: list[Problem]):
        self.located, self.d, self.library, self.problems = located, d, library, problems

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append(_problem(self.located, loc, message))

    # --- code sets

    def lookup(self, name: str) -> CodeSet | None:
        if "." in name:
            return self.library.sets.get(name)
        return (self.d.codesets or {}).get(name)

    def systems(self, name: str, seen: frozenset = frozenset()) -> set[str] | None:
        """Coding systems a set holds, includes followed; None if something is unresolved."""
        codeset = self.lookup(name)
        if codeset is None or name in seen:
            return None
        found = set(codeset.systems())
        for ref in codeset.include:
            more = self.systems(ref, seen | {name})
            if more is None:
                return None
            found |= more
        return found

    def check_codesets(self) -> None:
        if self.d.codesets is None:
            return
        for name, codeset in self.d.codesets.items():
            for i, ref in enumerate(codeset.include if codeset else ()):
                why = self.library.resolve(ref)
                if why:
                    self.add(("codesets", name, "include", i), why)
        for name in (n for n, c in self.d.codesets.items() if c is not None):
            cycle = _find_cycle(name, self.lookup)
            if cycle:
                self.add(("codesets", name, "include"), "include cycle: " + " → ".join(cycle))

    def use_codesets(self, loc: Loc, names, tables, purpose: str | None = None) -> None:
        """Referenced sets exist and hold codes some listed table can match."""
        known = self.names("codesets")
        if known is None:
            return
        for i, name in enumerate(names):
            if name not in known:
                self.add(loc + (i,), _known("code set", name, known))
                continue
            systems = self.systems(name)
            if systems is None or not tables:
                continue
            usable = {str(s) for t in tables for s in TABLE_SYSTEMS[t]}
            if not systems & usable:
                where = purpose or "tables " + ", ".join(tables)
                self.add(loc + (i,), f"code set '{name}' has no codes usable for {where}; it needs one of: {', '.join(sorted(usable))}")

    def tumor_refs(self, loc: Loc, index: TumorIndex) -> None:
        for field, system in (("primary_site", "icdo3_site"), ("histology", "icdo3_histology")):
            for i, item in enumerate(getattr(index, field)):
                known = self.names("codesets")
                if known is None or not _is_name(item):
                    continue
                if item not in known:
                    self.add(loc + (field, i), _known("code set", item, known))
                elif (systems := self.systems(item)) is not None and system not in systems:
                    self.add(loc + (field, i), f"code set '{item}' has no {system} entries")

    # --- names of things

    def names(self, section: str) -> list[str] | None:
        """Names defined in a section, read from the YAML itself so a broken entry still counts.

        None (unknown: checks against it are skipped) when the section is broken, or missing while
        an unknown top-level key looks like its misspelling: that one typo is the problem to report,
        not every reference to the section.
        """
        data = self.located.data if isinstance(self.located.data, dict) else {}
        if section not in data:
            unknown = [str(key) for key in data if key not in Definition.model_fields]
            if difflib.get_close_matches(section, unknown, n=1, cutoff=0.75):
                return None
        raw = data.get(section)
        if isinstance(raw, dict):
            return [str(key) for key in raw]
        if isinstance(raw, list):
            return [item["name"] for item in raw if isinstance(item, dict) and isinstance(item.get("name"), str)]
        return None if raw is not None else []

    def ref(self, loc: Loc, kind: str, section: str, name: str) -> None:
        known = self.names(section)
        if known is not None and name not in known:
            self.add(loc, _known(kind, name, known))

    def anchor(self, loc: Loc, value: Any, allow_landmarks: bool = True) -> None:
        """A string anchor is index or a landmark name (ExposurePoint is checked when walked)."""
        if not isinstance(value, str) or value == "index":
            return
        landmarks = self.names("landmarks")
        if not allow_landmarks:
            self.add(loc, f"'{value}' is not allowed; use index or {{exposure: NAME, at: start|end}}")
        elif landmarks is not None and value not in landmarks:
            choices = ", ".join(["index", *landmarks])
            self.add(loc, f"unknown anchor '{value}'; use one of: {choices}, or {{exposure: NAME, at: start|end}}")

    def unique(self, section: str, what: str) -> None:
        raw = self.located.data.get(section) if isinstance(self.located.data, dict) else None
        seen: set[str] = set()
        for i, item in enumerate(raw if isinstance(raw, list) else ()):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                self.add((section, i, "name"), f"{what} name '{name}' is used twice")
            seen.add(name)

    # --- the checks

    def run(self) -> None:
        d = self.d
        self.check_codesets()
        for section in ("criteria", "covariates", "arms", "outcomes", "landmarks", "time_varying"):
            self.unique(section, section.rstrip("s").replace("_", "-") if section != "criteria" else "criterion")
        for section in Definition.model_fields:
            value = getattr(d, section)
            if value is not None:
                for loc, model in _walk(value, (section,)):
                    self.check_model(loc, model)
        self.check_index_kind()
        self.check_arms()
        self.check_covariate_order()
        self.check_output_columns()
        self.check_matching()

    def check_matching(self) -> None:
        """The matching section names arms and covariates this definition makes."""
        matching = self.d.matching
        if matching is None:
            return
        covariates = self.d.covariates
        if covariates is not None and None not in covariates:
            names = [c.name for c in covariates]
            for field in ("ps_covariates", "exact"):
                for i, name in enumerate(getattr(matching, field)):
                    if name not in names:
                        self.add(("matching", field, i), _known("covariate", name, names))
            if not matching.ps_covariates:
                self.add(("matching", "ps_covariates"), "name the covariates of the propensity-score model")
        arms = self.d.arms
        if arms is not None and None not in arms:
            names = [a.name for a in arms]
            if matching.treatment is None:
                self.add(("matching",), "say which arms are compared: treatment: {arm: <treated arm>, control: <arm>}")
            elif len(names) < 2:
                self.add(("matching", "treatment"), "matching compares two arms; define `arms:` first")
            else:
                for field in ("arm", "control"):
                    value = getattr(matching.treatment, field)
                    if value not in names:
                        self.add(("matching", "treatment", field), _known("arm", value, names))

    def check_output_columns(self) -> None:
        """Covariates, landmarks and outcomes become cohort columns: their names must not clash."""
        fixed = ("person_id", "index_date", "arm", "landmark_date", "first_exposure_date",
                 "followup_start", "followup_end", "event", "time_days")
        owners: dict[str, str] = {column: "a fixed cohort column" for column in fixed}
        landmarks = [lm for lm in (self.d.landmarks or ()) if lm is not None]
        produced: list[tuple[Loc, str, str]] = []
        for i, covariate in enumerate(self.d.covariates or ()):
            if covariate is not None:
                produced.append((("covariates", i, "name"), covariate.name, f"covariate '{covariate.name}'"))
        for i, landmark in enumerate(landmarks):
            columns = [f"in_{landmark.name}"] + ([f"{landmark.name}_date"] if len(landmarks) > 1 else [])
            for column in columns:
                produced.append((("landmarks", i, "name"), column, f"landmark '{landmark.name}'"))
        for i, outcome in enumerate(self.d.outcomes or ()):
            if outcome is not None:
                for suffix in ("date", "event", "time_days"):
                    produced.append((("outcomes", i, "name"), f"{outcome.name}_{suffix}", f"outcome '{outcome.name}'"))
        for loc, column, owner in produced:
            if column in owners and owners[column] != owner:
                self.add(loc, f"{owner} makes cohort column '{column}', already {owners[column]}; rename it")
            owners.setdefault(column, owner)

    def check_model(self, loc: Loc, model: BaseModel) -> None:
        if isinstance(model, EventSpec):
            self.use_codesets(loc + ("codesets",), model.codesets, model.tables)
        elif isinstance(model, OccurrenceCriterion) and model.codesets is not None:
            self.use_codesets(loc + ("codesets",), model.codesets, model.tables)
        elif isinstance(model, Exposure):
            table = EventTable.dispensing if model.source is ExposureSource.dispensing else EventTable.procedure
            purpose = "dispensing (ndc or generic_name)" if table is EventTable.dispensing else "administration (procedure codes)"
            self.use_codesets(loc + ("codesets",), model.codesets, (table,), purpose)
        elif isinstance(model, TumorIndex):
            self.tumor_refs(loc, model)
        elif isinstance(model, ExposurePoint):
            self.ref(loc + ("exposure",), "exposure", "exposures", model.exposure)
        elif isinstance(model, ExposureEvent):
            self.ref(loc + ("name",), "exposure", "exposures", model.name)
        elif isinstance(model, ExposureEnd):
            self.ref(loc + ("exposure",), "exposure", "exposures", model.exposure)
        elif isinstance(model, Window):
            self.anchor(loc + ("relative_to",), model.relative_to)
        elif isinstance(model, Landmark):
            self.anchor(loc + ("from",), model.from_, allow_landmarks=False)
        elif isinstance(model, Followup):
            self.anchor(loc + ("start",), model.start)
        elif isinstance(model, AliveCriterion) and isinstance(model.through, str):
            self.anchor(loc + ("through",), model.through)
        elif isinstance(model, (AgeCriterion, AgeCovariate)):
            self.anchor(loc + ("at",), model.at)
        kind = loc[0]
        if kind == "index" and len(loc) == 2 and loc[1] in ("exposure", "regimen"):
            section = "exposures" if loc[1] == "exposure" else "regimens"
            self.ref(loc + ("name",), loc[1], section, model.name)
        if kind == "regimens" and len(loc) == 2:
            self.ref(loc + ("anchor",), "exposure", "exposures", model.anchor)
            for i, name in enumerate(model.with_):
                self.ref(loc + ("with", i), "exposure", "exposures", name)
                if name == model.anchor:
                    self.add(loc + ("with", i), f"'{name}' is the anchor; `with` lists the other exposures")
        if kind == "arms" and len(loc) == 3:
            arm_rule = loc[2]
            if arm_rule in ("exposure_start", "era_duration", "era_on_at"):
                self.ref(loc + ("exposure",), "exposure", "exposures", model.exposure)
            if arm_rule == "era_on_at":
                self.ref(loc + ("landmark",), "landmark", "landmarks", model.landmark)
            if arm_rule == "regimen":
                self.ref(loc + ("name",), "regimen", "regimens", model.name)
        if kind == "outcomes" and len(loc) == 2:
            for i, name in enumerate(model.competing):
                self.ref(loc + ("competing", i), "outcome", "outcomes", name)
                if name == model.name:
                    self.add(loc + ("competing", i), "an outcome cannot compete with itself")
        if kind == "covariates" and len(loc) == 3 and loc[2] == "exposure_duration":
            self.ref(loc + ("exposure",), "exposure", "exposures", model.exposure)
        if kind == "covariates" and len(loc) == 3 and loc[2] in ("nci_comorbidity", "charlson"):
            self.comorbidity_conditions(loc + ("conditions",), model.conditions)
        if kind == "expectations" and len(loc) == 2:
            self.ref(loc + ("covariate",), "covariate", "covariates", model.covariate)

    def comorbidity_conditions(self, loc: Loc, stem: str) -> None:
        sets = self.library.file(stem)
        if sets is None:
            if stem not in self.library.broken:
                self.add(loc, f"no code-set file {stem}.yaml with the comorbidity conditions; "
                              f"looked in {self.library.searched()}")
            return
        # The indices' formulas name the macro's sixteen conditions: a file must define
        # exactly those, or a condition would silently count nothing.
        missing = [c for c in COMORBIDITY_CONDITIONS if c not in sets]
        extra = [name for name in sets if name not in COMORBIDITY_CONDITIONS]
        if missing or extra:
            what = "; ".join(part for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"not a condition of the macro: {', '.join(extra)}" if extra else "",
            ) if part)
            self.add(loc, f"{stem}.yaml must define the NCI macro's sixteen conditions "
                          f"({', '.join(COMORBIDITY_CONDITIONS)}): {what}")
        located = self.library.located[stem]
        for name, codeset in sets.items():
            other = sorted(codeset.systems() - {"icd9cm", "icd10cm"})
            if other:
                self.problems.append(_problem(located, (name,), f"the macro reads ICD-9-CM and ICD-10-CM diagnosis "
                                                                f"codes only, not {', '.join(other)}"))

    def check_index_kind(self) -> None:
        if self.d.index is None or self.d.index.kind == "tumor":
            return
        why = f"the index is an {self.d.index.kind}, not a tumor"
        for i, criterion in enumerate(self.d.criteria or ()):
            if criterion is not None and criterion.kind == "tumor":
                self.add(("criteria", i, "tumor"), f"tumor filters need index: tumor; {why}")
        for i, covariate in enumerate(self.d.covariates or ()):
            if covariate is not None and covariate.kind == "tumor_field":
                self.add(("covariates", i, "tumor_field"), f"tumor fields need index: tumor; {why}")

    def check_arms(self) -> None:
        arms: tuple[Arm, ...] | None = self.d.arms
        if not arms or None in arms:
            return
        otherwise = [i for i, arm in enumerate(arms) if arm.otherwise]
        if not otherwise:
            self.add(("arms",), "the last arm must be `otherwise: true` (everyone not in an earlier arm)")
        for i in otherwise[1:]:
            self.add(("arms", i, "otherwise"), f"only one arm may be `otherwise`; arm '{arms[otherwise[0]].name}' already is")
        if otherwise and otherwise[0] != len(arms) - 1 and len(otherwise) == 1:
            self.add(("arms", otherwise[0], "otherwise"), "the `otherwise` arm must be the last arm")

    def check_covariate_order(self) -> None:
        covariates: tuple[Covariate, ...] | None = self.d.covariates
        for i, covariate in enumerate(covariates or ()):
            if covariate is None or covariate.kind != "score" or None in covariates[:i]:
                continue
            earlier = {c.name: c.kind for c in covariates[:i]}
            for j, term in enumerate(covariate.score.terms):
                if term.covariate not in earlier:
                    self.add(("covariates", i, "score", "terms", j, "covariate"),
                             f"'{term.covariate}' must be a covariate listed before this score")
                elif (earlier[term.covariate] in ("sex", "race", "tumor_field")) != (term.equals is not None):
                    self.add(("covariates", i, "score", "terms", j),
                             "use `equals` for a categorical covariate (sex, race, tumor_field) and only for one")

def _is_name(text: str) -> bool:
    return re.fullmatch(NAME_PATTERN, text) is not None


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------


def load_definition(path: str | Path, *, codesets_dir=None) -> Definition:
    """Load and check a cohort definition; raise YamlError listing every problem as file:line: field: message.

    Includes resolve in :func:`codeset_search_path` order; ``codesets_dir`` (a folder or a
    list of folders) is the library searched after ``codesets/`` beside the definition.
    """
    path = Path(path)
    text = read_text(path)
    located = load_located(str(path), text, strict=True)
    problems: list[Problem] = []
    definition, sections = _validate(located, problems)
    library = Library(codeset_search_path(path, codesets_dir), problems)
    _Checker(located, sections, library, problems).run()
    if problems:
        # The definition's own problems first, in file order; then those of shared files.
        problems = list(dict.fromkeys(problems))
        problems.sort(key=lambda p: (p.path != located.path, p.path, p.line or 0))
        error = YamlError("\n".join(dict.fromkeys(str(p) for p in problems)))
        error.problems = problems
        raise error

    digest = hashlib.sha256(text.encode("utf-8"))
    for file_path in sorted(library.texts):
        digest.update(f"\0{Path(file_path).name}\0".encode() + library.texts[file_path].encode("utf-8"))
    definition._library = dict(library.sets)
    definition._sha256 = digest.hexdigest()
    definition._path = str(path)
    return definition
