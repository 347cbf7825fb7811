"""Located problems from YAML data: field paths, how a given value reads, and one message per
pydantic error, so every problem reads ``file:line: field: what is allowed``."""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from cohortlake.spec.model import NAME_PATTERN, CodeSet, Definition, Name
from cohortlake.yamlfile import LocatedYaml, Problem


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
