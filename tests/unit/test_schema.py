"""The JSON Schema and check agree wherever both can decide.

Every shipped file, and each broken case below, goes through both: `cohortlake check`'s
loader and jsonschema with the schema `cohortlake schema` prints. A case where they differ
names why (INTENTIONAL): the schema cannot see across the file (references, a range's
order, one date after another), or is deliberately stricter (null is not a way to leave a
rule out).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cohortlake.errors import UserError
from cohortlake.spec import json_schema, load_definition
from cohortlake.spec.schema import as_instance
from cohortlake.yamlfile import load_located

jsonschema = pytest.importorskip("jsonschema")

from paths import REPO
DEFS = REPO / "cohort_defs"
REFERENCE = DEFS / "hcc_sorafenib_landmark.yaml"


def _validator(kind: str = "definition"):
    schema = json_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("kind, pattern", [("definition", "*.yaml"), ("codesets", "codesets/*.yaml"),
                                           ("tests", "tests/*.yaml")])
def test_every_shipped_file_passes_the_schema(kind, pattern):
    validator = _validator(kind)
    paths = sorted(DEFS.glob(pattern))
    assert paths
    for path in paths:
        errors = list(validator.iter_errors(as_instance(load_located(path).data)))
        assert not errors, (path, errors[0].message)


def test_a_plain_safe_load_validates_once_dates_are_text():
    data = yaml.safe_load(REFERENCE.read_text())
    assert not list(_validator().iter_errors(as_instance(data)))


def test_the_init_scaffold_passes_the_schemas(tmp_path):
    from cohortlake.spec.scaffold import scaffold

    definition, codesets, tests = scaffold("first", tmp_path)
    for kind, path in (("definition", definition), ("codesets", codesets), ("tests", tests)):
        assert not list(_validator(kind).iter_errors(as_instance(load_located(path).data))), path


def test_every_property_has_a_description():
    schema = json_schema()
    missing = [(name, prop) for name, model in [("Definition", schema), *schema["$defs"].items()]
               for prop, value in model.get("properties", {}).items() if not value.get("description")]
    assert not missing
    assert len(schema["$defs"]) > 40


# (name, text to replace in the reference, replacement, check accepts, schema accepts, why they differ)
CASES = [
    ("unchanged", "", "", True, True, None),
    ("unknown top-level field", "study_period:", "colour: red\nstudy_period:", False, False, None),
    ("criterion with two rules", "    index_exists: {}", "    index_exists: {}\n    sex: [male]", False, False, None),
    ("criterion with no rule", "    index_exists: {}", "", False, False, None),
    ("negative caliper", "  caliper: 0.2", "  caliper: -0.2", False, False, None),
    ("zero caliper", "  caliper: 0.2", "  caliper: 0", False, False, None),
    ("caliper none", "  caliper: 0.2", "  caliper: none", True, True, None),
    ("code-set name breaks the pattern", "  liver_resection:", "  Liver-Resection:", False, False, None),
    ("exposure name breaks the pattern", "exposures:\n  sorafenib:", "exposures:\n  Sorafenib:", False, False, None),
    ("icd9cm code of letters", '"50.22", "50.3"', '"50.22", "ABC"', False, False, None),
    ("hcpcs code too long", '"47135"', '"471350"', False, False, None),
    ("ndc of 9 digits", "", "", True, True, None),
    ("days as quoted number", "    days: 60", '    days: "60"', False, False, None),
    ("days as yes", "    days: 60", "    days: yes", False, False, None),
    ("grace_days as true", "    grace_days: 30", "    grace_days: true", False, False, None),
    ("negative grace_days", "    grace_days: 30", "    grace_days: -1", False, False, None),
    ("day_of_month 31", "day_of_month: 15", "day_of_month: 31", False, False, None),
    ("bad enum", "behavior: [malignant]", "behavior: [malignent]", False, False, None),
    ("title as a number", "title: ", "title: 12 #", False, False, None),
    ("window from after to", "window: {from: -30, to: 60}", "window: {from: 60, to: -30}", False, True,
     "INTENTIONAL: compares two values"),
    ("unknown code set", "codesets: [liver_resection,", "codesets: [liver_resektion,", False, True,
     "INTENTIONAL: a reference across the file"),
    ("range low above high", '"77401-77416"', '"77416-77401"', False, True,
     "INTENTIONAL: the order of a range's ends"),
    ("misplaced dot", '"V58.0"', '"V5.80"', False, False, None),
    ("range bounds of different lengths", '"77401-77416"', '"77401-7741"', False, False, None),
    ("study period reversed", "study_period: {start: 2008-01-01, end: 2013-12-31}",
     "study_period: {start: 2014-01-01, end: 2013-12-31}", False, True, "INTENTIONAL: compares two dates"),
    ("null rule beside a rule", "    index_exists: {}", "    index_exists: {}\n    sex: null", True, False,
     "INTENTIONAL: the schema does not offer null as a way to leave a rule out"),
]


@pytest.mark.parametrize("name, old, new, check_ok, schema_ok, why", CASES, ids=[c[0] for c in CASES])
def test_check_and_schema_agree_or_say_why(tmp_path, name, old, new, check_ok, schema_ok, why):
    text = REFERENCE.read_text(encoding="utf-8")
    if old:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "def.yaml"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "codesets").symlink_to(DEFS / "codesets")
    try:
        load_definition(path)
        checked = True
    except UserError:
        checked = False
    errors = list(_validator().iter_errors(as_instance(load_located(path, strict=True).data)))
    assert (checked, not errors) == (check_ok, schema_ok), (checked, [e.message for e in errors[:2]])
    assert (check_ok == schema_ok) == (why is None)


@pytest.mark.parametrize("system, good, bad", [
    ("icd9cm", ["571.5", "V58.0", "E935.2", "070.2x", "0702*", "401-405"], ["ABC", "57A", "1234567", "57"]),
    ("icd10cm", ["K74.60", "C22.0", "K70x", "I10-I16"], ["74.60", "K", "K74.600000"]),
    ("icd9pcs", ["50.22", "92.2x"], ["ABC", "50222"]),
    ("icd10pcs", ["0FT00ZZ", "0FT*"], ["0FT00ZO", "0FT00ZZZ"]),
    ("hcpcs", ["47120", "S2095", "77401-77416"], ["4712", "471200", "SS095"]),
    ("ndc", ["50419048858", "50419-488-58", "0002-1234-01", "50419*"], ["5041948858A", "50419-488"]),
    ("icdo3_site", ["C22.0", "C22x"], ["D22.0", "C2222"]),
    ("icdo3_histology", ["8170", "8170-8175", "817x"], ["81700", "ABCD"]),
])
def test_code_patterns_agree_with_check(system, good, bad):
    from cohortlake.spec.codes import CodeError, normalise

    codeset = _validator("codesets")
    for code in good:
        normalise(system, code)
        assert not list(codeset.iter_errors({"s": {system: [code]}})), code
    for code in bad:
        with pytest.raises(CodeError):
            normalise(system, code)
        assert list(codeset.iter_errors({"s": {system: [code]}})), code
