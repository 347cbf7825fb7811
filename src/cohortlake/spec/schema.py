"""JSON Schema (draft 2020-12) of cohort definitions, shared code-set files and test-patient files, for editors.

The schema is generated from the same pydantic models check validates with, then made as
strict as JSON Schema can be without cross-references: code patterns per code system,
exactly one rule per criterion (arm, covariate, ...), bounds, names of map keys, and a
description on every property. What only check can decide (a referenced code set
exists, a range's low end is below its high end, a dashed NDC's layout) stays in check;
tests/unit/test_schema.py records each place where the two intentionally differ.

Validate YAML data against it in its JSON form (:func:`as_instance`): a YAML date is a
string in JSON, as editors' YAML support reads it.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Literal

from pydantic import BaseModel

from cohortlake.spec.codes import SCHEMA_PATTERNS, CodeSystem
from cohortlake.spec.model import NAME_PATTERN, Definition, OneOf
from cohortlake.vocabulary import Setting

DRAFT = "https://json-schema.org/draft/2020-12/schema"
Kind = Literal["definition", "codesets", "tests"]


def as_instance(data: Any) -> Any:
    """YAML data as the JSON a schema validator (or an editor) sees: dates as YYYY-MM-DD text."""
    from cohortlake.spec.messages import as_json

    return json.loads(as_json(data))


def _models() -> dict[str, type]:
    """Every model class reachable from a Definition, by the name pydantic gives its $def."""
    found: dict[str, type] = {}

    def visit(cls: type) -> None:
        if cls.__name__ in found:
            return
        found[cls.__name__] = cls
        for info in cls.model_fields.values():
            for arg in _classes(info.annotation):
                visit(arg)

    visit(Definition)
    return found


def _classes(annotation: Any) -> list[type]:
    import typing

    out: list[type] = []
    stack = [annotation]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            out.append(item)
        stack.extend(typing.get_args(item))
    return out


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _strict_maps(schema: dict) -> None:
    """patternProperties with nothing for other keys → propertyNames + additionalProperties."""
    for node in _walk(schema):
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1:
            (pattern, value), = patterns.items()
            del node["patternProperties"]
            node["propertyNames"] = {"pattern": pattern}
            node["additionalProperties"] = value


def _one_rule(defs: dict, models: dict[str, type]) -> None:
    """A OneOf model needs exactly one of its rule keys (null is not a way to leave one out)."""
    for name, cls in models.items():
        if not issubclass(cls, OneOf) or name not in defs:
            continue
        definition = defs[name]
        for choice in cls.choices:
            prop = definition["properties"][choice]
            if "anyOf" in prop:
                kept = [option for option in prop["anyOf"] if option != {"type": "null"}]
                prop.pop("anyOf")
                prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
            prop.pop("default", None)
        definition["oneOf"] = [{"required": [choice]} for choice in cls.choices]


def _descriptions(schema: dict) -> None:
    """Every property gets a description: its own docstring, else the one of the model or enum it holds."""
    defs = schema.get("$defs", {})

    def described(prop: dict) -> str | None:
        if "description" in prop:
            return prop["description"]
        for option in [prop, *prop.get("anyOf", []), *prop.get("oneOf", []), prop.get("items", {}),
                       prop.get("additionalProperties", {}) if isinstance(prop.get("additionalProperties"), dict) else {}]:
            ref = option.get("$ref") if isinstance(option, dict) else None
            if ref and "description" in defs.get(ref.split("/")[-1], {}):
                return defs[ref.split("/")[-1]]["description"]
        return None

    for node in _walk(schema):
        for name, prop in (node.get("properties") or {}).items():
            if isinstance(prop, dict) and "description" not in prop:
                prop["description"] = described(prop) or FALLBACK_DESCRIPTIONS.get(name) or name.replace("_", " ")


# Words for the few plain fields whose meaning is their name (a window's anchor, a range's ends).
FALLBACK_DESCRIPTIONS = {
    "name": "Identifier: lower-case letter, then lower-case letters, digits or _.",
    "title": "Title shown by explain and in the report.",
    "description": "Free text for readers.",
    "min": "Lowest allowed value, inclusive.",
    "max": "Highest allowed value, inclusive.",
    "start": "First day, inclusive (YYYY-MM-DD).",
    "end": "Last day, inclusive (YYYY-MM-DD).",
}


def _caliper(defs: dict) -> None:
    prop = defs["MatchingSettings"]["properties"]["caliper"]
    prop.pop("anyOf", None)
    prop["anyOf"] = [{"type": "number", "exclusiveMinimum": 0}, {"const": "none"}, {"type": "null"}]


def _codes(defs: dict) -> None:
    """Code entries: the characters and shapes each system allows (check also normalises and orders ranges)."""
    for system in CodeSystem:
        defs["CodeSet"]["properties"][system.value]["items"] = {"type": "string", "pattern": SCHEMA_PATTERNS[system]}
    for field, system in (("primary_site", CodeSystem.icdo3_site), ("histology", CodeSystem.icdo3_histology)):
        defs["TumorIndex"]["properties"][field]["items"] = {
            "type": "string", "anyOf": [{"pattern": NAME_PATTERN}, {"pattern": SCHEMA_PATTERNS[system]}]}
    defs["CodeSet"]["properties"]["generic_name"]["items"] = {"type": "string", "pattern": r"\S"}


def _definition_schema() -> dict:
    schema = Definition.model_json_schema(by_alias=True, mode="validation")
    defs = schema["$defs"]
    _codes(defs)
    _caliper(defs)
    _one_rule(defs, _models())
    _strict_maps(schema)
    _descriptions(schema)
    return schema


def _codesets_schema() -> dict:
    definition = _definition_schema()
    schema = {
        "type": "object",
        "description": "Shared code sets: set name → code set; a definition includes one as <file stem>.<set name>.",
        "propertyNames": {"pattern": NAME_PATTERN},
        "additionalProperties": {"$ref": "#/$defs/CodeSet"},
        "$defs": {"CodeSet": definition["$defs"]["CodeSet"]},
    }
    return schema


def _tests_schema() -> dict:
    date = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "description": "A date, YYYY-MM-DD."}
    nullable_date = {"anyOf": [date, {"type": "null"}], "description": "A date, YYYY-MM-DD, or null."}
    text = {"type": "string"}
    coded = {"type": "object", "additionalProperties": False, "required": ["date", "code"],
             "description": "A diagnosis or procedure claim line.",
             "properties": {"date": date, "code": {**text, "description": "The code as written (dots allowed)."},
                            "system": {**text, "description": "Code system; default by the date (ICD-9 before 2015-10-01)."},
                            "setting": {"enum": [s.value for s in Setting], "description": "Claim setting."},
                            "claim_id": {**text, "description": "Claim id; default one per line."}}}
    timeline = {
        "person": {"type": "object", "description": "The person row: birth_date, sex, race.",
                   "additionalProperties": False,
                   "properties": {"birth_date": nullable_date, "sex": {**text, "description": "male, female or unknown."},
                                  "race": {**text, "description": "Race as in the person table."}}},
        "death": nullable_date,
        "tumors": {"type": "array", "description": "Registry tumors (the tumor table's fields).",
                   "items": {"type": "object"}},
        "enrollment": {"type": "array", "description": "Coverage spans: {coverage: type or [types], start, end}.",
                       "items": {"type": "object", "required": ["coverage", "start", "end"],
                                 "additionalProperties": False,
                                 "properties": {"coverage": {"anyOf": [text, {"type": "array", "items": text}],
                                                             "description": "Coverage type(s)."},
                                                "start": date, "end": date}}},
        "diagnoses": {"type": "array", "description": "Diagnosis claim lines.", "items": coded},
        "procedures": {"type": "array", "description": "Procedure claim lines.", "items": coded},
        "fills": {"type": "array", "description": "Part D fills: date, ndc, generic_name, days_supply, ...",
                  "items": {"type": "object", "required": ["date"]}},
    }
    changes = {"like": {**text, "description": "Start from this template."},
               "set": {"type": "object", "description": "Replace these timeline keys.",
                       "propertyNames": {"enum": list(timeline)}},
               "add": {"type": "object", "description": "Append to these timeline lists.",
                       "propertyNames": {"enum": ["tumors", "enrollment", "diagnoses", "procedures", "fills"]}},
               "description": {**text, "description": "What the patient shows."}}
    template = {"type": "object", "additionalProperties": False, "description": "A named timeline patients start from.",
                "properties": {**changes, **timeline}}
    patient = {"type": "object", "additionalProperties": False, "required": ["id", "expect"],
               "description": "A test patient: a timeline and the result the definition must give it.",
               "properties": {"id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                                     "description": "Unique id, printed by assure."},
                              **changes, **timeline,
                              "expect": {"type": "object", "description": (
                                  "{excluded_at: <criterion name>} or {included: true, <cohort column>: value, ...}"),
                                  "anyOf": [{"required": ["excluded_at"]}, {"required": ["included"]},
                                            {"required": ["rows"]}]}}}
    return {"type": "object", "additionalProperties": False, "required": ["patients"],
            "description": "Test patients of a definition, run by cohortlake assure.",
            "properties": {"definition": {**text, "description": "The definition's path, relative to this file."},
                           "templates": {"type": "object", "description": "Named timelines.",
                                         "additionalProperties": template},
                           "patients": {"type": "array", "minItems": 1, "items": patient,
                                        "description": "The test patients."}}}


def json_schema(kind: Kind = "definition") -> dict:
    """JSON Schema of a cohort definition YAML, a shared code-set file (kind="codesets") or a
    test-patient file (kind="tests")."""
    if kind == "definition":
        schema, title = _definition_schema(), "cohortlake cohort definition"
    elif kind == "codesets":
        schema, title = _codesets_schema(), "cohortlake shared code sets"
    elif kind == "tests":
        schema, title = _tests_schema(), "cohortlake test patients"
    else:
        raise ValueError(f"unknown schema kind {kind!r}")
    return {"$schema": DRAFT, "title": title, **{k: v for k, v in copy.deepcopy(schema).items() if k != "title"}}

