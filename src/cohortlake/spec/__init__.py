"""The cohort-definition language: YAML → typed, frozen model; checks, explain, JSON Schema.

Imports no Spark: analysts lint and explain definitions in a second, and the engine
compiles the same ``Definition`` later.
"""

from cohortlake.spec.codes import CodeEntry, CodeSystem, NormalisedCodeSet, matches, normalise
from cohortlake.spec.explain import explain
from cohortlake.spec.load import load_definition
from cohortlake.spec.model import Definition
from cohortlake.spec.schema import json_schema

__all__ = [
    "CodeEntry",
    "CodeSystem",
    "Definition",
    "NormalisedCodeSet",
    "explain",
    "json_schema",
    "load_definition",
    "matches",
    "normalise",
]
