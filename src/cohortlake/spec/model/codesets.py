"""Code sets as written in a definition: one tuple of codes per system, checked entry by entry."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from cohortlake.spec.codes import CodeEntry, CodeError, normalise, normalise_generic_name
from cohortlake.spec.model.base import NAME_PATTERN, Spec, _problem
from cohortlake.vocabulary import CodeSystem


# ---------------------------------------------------------------------------------------
# Code sets
# ---------------------------------------------------------------------------------------


def _quoted(value: Any) -> Any:
    # YAML turns unquoted codes into numbers and loses digits (070.70 → 70.7, 0702 → 450).
    if not isinstance(value, str):
        raise _problem("code_not_text", "write codes as quoted text, e.g. '070.70'; unquoted, YAML reads them as numbers")
    return value


def _code_of(system: CodeSystem):
    def check(value: str) -> str:
        try:
            normalise(system, value)
        except CodeError as exc:
            raise _problem("code_syntax", str(exc)) from None
        return value

    return check


def _codes(system: CodeSystem) -> Any:
    entry = Annotated[str, BeforeValidator(_quoted), AfterValidator(_code_of(system))]
    return tuple[entry, ...]


def _generic_name(value: str) -> str:
    try:
        normalise_generic_name(value)
    except CodeError as exc:
        raise _problem("generic_name", str(exc)) from None
    return value


IncludeRef = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]


class CodeSet(Spec):
    """A named set of codes, per coding system; entries are exact codes, prefixes (070.2x, 0702*) or ranges (77401-77416)."""

    description: str | None = None
    """What the set means, for readers of explain."""
    icd9cm: _codes(CodeSystem.icd9cm) = ()
    """ICD-9-CM diagnosis codes (dots optional)."""
    icd10cm: _codes(CodeSystem.icd10cm) = ()
    """ICD-10-CM diagnosis codes (dots optional)."""
    icd9pcs: _codes(CodeSystem.icd9pcs) = ()
    """ICD-9-CM procedure codes (volume 3)."""
    icd10pcs: _codes(CodeSystem.icd10pcs) = ()
    """ICD-10-PCS procedure codes; a prefix ends in '*' only (X is a real character)."""
    hcpcs: _codes(CodeSystem.hcpcs) = ()
    """CPT and HCPCS level II codes."""
    ndc: _codes(CodeSystem.ndc) = ()
    """National Drug Codes: 11 digits, or dashed 4-4-2 / 5-3-2 / 5-4-1 (normalised to 11 digits)."""
    icdo3_site: _codes(CodeSystem.icdo3_site) = ()
    """ICD-O-3 topography (primary site), e.g. C22.0."""
    icdo3_histology: _codes(CodeSystem.icdo3_histology) = ()
    """ICD-O-3 histology (4 digits), e.g. 8170-8175."""
    generic_name: tuple[Annotated[str, AfterValidator(_generic_name)], ...] = ()
    """Case-insensitive substrings matched in dispensing.generic_name."""
    include: tuple[IncludeRef, ...] = ()
    """Shared sets to add, as <file stem under cohort_defs/codesets/>.<set name>."""

    @model_validator(mode="after")
    def _not_empty(self) -> CodeSet:
        if not self.include and not any(getattr(self, s) for s in (*CodeSystem, "generic_name")):
            raise _problem("empty_codeset", "a code set needs codes in at least one system, or an include")
        return self

    def entries(self) -> tuple[CodeEntry, ...]:
        """This set's own entries, normalised (includes not followed)."""
        return tuple(normalise(system, e) for system in CodeSystem for e in getattr(self, system))

    def systems(self) -> set[str]:
        """Systems with entries in this set itself (generic_name counts as one)."""
        return {s for s in (*CodeSystem, "generic_name") if getattr(self, s)}



def _ref_or_code(system: CodeSystem):
    def check(value: str) -> str:
        if isinstance(value, str) and re.fullmatch(NAME_PATTERN, value):
            return value  # a code-set name; load.py checks it exists
        return _code_of(system)(value)

    return tuple[Annotated[str, BeforeValidator(_quoted), AfterValidator(check)], ...]
