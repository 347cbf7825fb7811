"""JSON Schema (draft 2020-12) of cohort definitions and shared code-set files, for editors."""

from __future__ import annotations

from typing import Literal

from pydantic import TypeAdapter

from cohortlake.spec.model import CodeSet, Definition, Name

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(kind: Literal["definition", "codesets"] = "definition") -> dict:
    """JSON Schema of a cohort definition YAML (or, with kind="codesets", of a cohort_defs/codesets/ file)."""
    if kind == "definition":
        schema = Definition.model_json_schema(by_alias=True, mode="validation")
        title = "cohortlake cohort definition"
    elif kind == "codesets":
        schema = TypeAdapter(dict[Name, CodeSet]).json_schema(by_alias=True, mode="validation")
        schema["description"] = "Shared code sets: set name → code set; include them as <file stem>.<set name>."
        title = "cohortlake shared code sets"
    else:
        raise ValueError(f"unknown schema kind {kind!r}")
    return {"$schema": DRAFT, "title": title, **{k: v for k, v in schema.items() if k != "title"}}
