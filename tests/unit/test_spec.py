"""The cohort-definition language: shipped definitions, code normalisation, errors, explain, schema.

No Spark here: these run in about a second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from cohortlake.errors import UserError
from cohortlake.spec import Definition, explain, json_schema, load_definition
from cohortlake.spec.codes import CodeEntry, CodeError, CodeSystem, matches, normalise
from cohortlake.spec.model import Covariate
from cohortlake.yamlfile import YamlError, load_located

from paths import REPO
DEFS = REPO / "cohort_defs"
SHIPPED = sorted(DEFS.glob("*.yaml"))
REFERENCE = DEFS / "hcc_sorafenib_landmark.yaml"

REFERENCE_RULES = [
    "HCC tumor",
    "First primary",
    "Diagnosed 2008-2011, month known",
    "Not autopsy / death-certificate only",
    "Advanced stage",
    "Age 66+ at diagnosis",
    "Alive at diagnosis date",
    "Parts A and B, fee-for-service",
    "Part D",
    "No other HCC-directed therapy in [-30, +60]",
    "No sorafenib before diagnosis",
    "Alive at landmark",
]


@pytest.fixture(scope="module")
def reference() -> Definition:
    return load_definition(REFERENCE)


# --- shipped definitions ------------------------------------------------------------------


def test_five_definitions_are_shipped():
    assert {p.stem for p in SHIPPED} == {
        "hcc_sorafenib_landmark",
        "second_line_tki_ici",
        "sorafenib_duration_groups",
        "sorafenib_bleeding_thromboembolism",
        "sorafenib_time_varying_response",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_definition_loads_and_explains(path):
    definition = load_definition(path)
    assert definition.cohort == path.stem
    assert len(definition.sha256) == 64
    for name in definition.codesets:  # every include resolves and normalises
        assert definition.codeset(name).entries or definition.codeset(name).generic_names
    assert explain(definition).startswith(f"# {definition.title}")


def test_reference_has_the_twelve_rules_in_order(reference):
    assert [c.name for c in reference.criteria] == REFERENCE_RULES
    assert [c.kind for c in reference.criteria] == [
        "index_exists", "tumor", "tumor", "tumor", "tumor", "age", "alive",
        "coverage", "coverage", "occurrence", "washout", "alive",
    ]


def test_reference_rules_say_what_the_study_says(reference):
    c = {i: crit.rule for i, crit in enumerate(reference.criteria, 1)}
    assert c[2].sequence_number == ("00", "01")
    assert (c[3].diagnosis_year.min, c[3].diagnosis_year.max, c[3].diagnosis_month_known) == (2008, 2011, True)
    assert set(c[4].reporting_source.exclude) == {"autopsy_only", "death_certificate_only"}
    assert set(c[5].stage) == {"regional", "distant"}
    assert (c[6].at, c[6].min, c[6].max) == ("index", 66, None)
    assert c[7].through.days == -1
    assert set(c[8].require) == {"part_a", "part_b", "fee_for_service"}
    assert (c[8].window.from_, c[8].window.to, c[8].window.unit) == (-12, 2, "months")
    assert c[8].truncate_at_death and c[8].allowed_gap_days == 0
    assert (set(c[9].require), set(c[9].exclude)) == ({"part_d"}, {"retiree_drug_subsidy"})
    assert (c[9].window.from_, c[9].window.to) == (0, 2)
    assert c[10].codesets == ("liver_resection", "liver_transplant", "ablation", "tace_embolization", "radiation")
    assert (c[10].window.from_, c[10].window.to, c[10].bound) == (-30, 60, ("at_most", 0))
    assert (c[11].codesets, c[11].days, c[11].as_window().from_, c[11].as_window().to) == (("sorafenib",), 365, -365, -1)
    assert c[12].through == "landmark"
    assert reference.landmark("landmark").days == 60
    assert [a.name for a in reference.arms] == ["sorafenib", "untreated"]
    assert (reference.arms[0].rule.window.from_, reference.arms[0].rule.window.to) == (0, 60)
    assert reference.followup.start == "landmark"
    assert [e.kind for e in reference.followup.end] == ["death", "study_end"]
    assert str(reference.study_period.end) == "2013-12-31"
    sorafenib = reference.exposures["sorafenib"]
    assert (sorafenib.grace_days, sorafenib.stockpiling) == (30, False)
    matching = reference.matching
    assert (matching.caliper, matching.smd_threshold, matching.ratio, matching.replacement) == (0.2, 0.1, 1, False)
    assert (matching.scale.value, matching.caliper_in_sd) == ("logit", True)
    assert (matching.treatment.arm, matching.treatment.control) == ("sorafenib", "untreated")


def _as_tuples(definition, name):
    out = set()
    for e in definition.codeset(name).entries:
        out.add((e.system.value, e.kind, e.value if e.kind != "range" else f"{e.low}-{e.high}"))
    return out


REFERENCE_CODES = {
    "liver_site": {("icdo3_site", "exact", "C220")},
    "hcc_histology": {("icdo3_histology", "range", "8170-8175")},
    "sorafenib": {("ndc", "exact", "50419048858")},
    "liver_resection": {("hcpcs", "exact", c) for c in ("47120", "47122", "47125", "47130")}
    | {("icd9pcs", "exact", "5022"), ("icd9pcs", "exact", "503")},
    "liver_transplant": {("hcpcs", "exact", "47135"), ("icd9pcs", "exact", "5051"), ("icd9pcs", "exact", "5059")},
    "ablation": {("hcpcs", "exact", c) for c in ("47370", "47371", "47380", "47381", "47382")}
    | {("icd9pcs", "exact", c) for c in ("5023", "5024", "5025", "5026")},
    "tace_embolization": {("hcpcs", "exact", c) for c in ("37204", "37243", "75894", "S2095")},
    "radiation": {
        ("hcpcs", "range", "77371-77373"), ("hcpcs", "range", "77401-77416"), ("hcpcs", "exact", "77418"),
        ("icd9pcs", "prefix", "922"), ("icd9cm", "exact", "V580"),
    },
    "cirrhosis": {("icd9cm", "exact", c) for c in ("5712", "5715", "5716")},
    "hepatitis_b": {("icd9cm", "prefix", "0702"), ("icd9cm", "prefix", "0703"), ("icd9cm", "exact", "V0261")},
    "hepatitis_c": {("icd9cm", "exact", c) for c in ("07041", "07044", "07051", "07054", "07070", "07071", "V0262")},
    "alcoholic_liver_disease": {("icd9cm", "range", "5710-5713")},
    "ascites": {("icd9cm", "prefix", "7895")},
    "hepatic_encephalopathy": {("icd9cm", "exact", "5722")},
    "esophageal_varices": {("icd9cm", "exact", "4560"), ("icd9cm", "exact", "4561"), ("icd9cm", "prefix", "4562")},
    "jaundice": {("icd9cm", "exact", "7824")},
}


def test_reference_code_sets_are_the_study_table(reference):
    assert set(reference.codesets) == set(REFERENCE_CODES)
    for name, expected in REFERENCE_CODES.items():
        assert _as_tuples(reference, name) == expected, name
    assert reference.codeset("sorafenib").generic_names == ("sorafenib",)
    assert reference.codeset("sorafenib").matches_generic_name("SORAFENIB TOSYLATE")
    radiation = reference.codeset("radiation")
    assert [radiation.matches("hcpcs", c) for c in ("77400", "77401", "77416", "77417", "77372")] == [
        False, True, True, False, True,
    ]
    assert radiation.matches("icd9pcs", "9223") and not radiation.matches("icd9pcs", "9230")
    assert radiation.matches("icd9cm", "V580") and not radiation.matches("hcpcs", "V580")


def test_comorbidity_indices_default_to_the_macros_window_and_rule_out(reference):
    conditions = reference.codesets_in_file("nci_comorbidity")
    assert list(conditions) == ["acute_mi", "history_mi", "chf", "pvd", "cvd", "copd", "dementia", "paralysis",
                                "diabetes", "diabetes_comp", "renal_disease", "mild_liver_disease", "liver_disease",
                                "ulcers", "rheum_disease", "aids"]
    assert conditions["chf"].matches("icd9cm", "42832") and conditions["diabetes"].matches("icd9cm", "25092")
    rule = Covariate.model_validate({"name": "cci", "charlson": {}}).rule
    assert (rule.window.from_, rule.window.to, rule.window.unit.value, rule.window.relative_to) == (-12, -1, "months", "index")
    assert rule.rule_out is True and rule.without_claims.value == "zero" and rule.conditions == "nci_comorbidity"


def test_a_conditions_file_must_define_the_macros_conditions_with_diagnosis_codes(tmp_path):
    (tmp_path / "codesets").mkdir()
    own = tmp_path / "codesets" / "my_conditions.yaml"
    own.write_text('acute_mi:\n  icd9cm: ["410x"]\n  hcpcs: ["92920"]\nfrailty:\n  icd9cm: ["797"]\n')
    path = _write(tmp_path, BASE + "covariates:\n  - {name: nci, nci_comorbidity: {conditions: my_conditions}}\n")
    errors = _errors(path)
    assert errors[0].startswith(f"{path}:25: covariates[1] \"nci\".nci_comorbidity.conditions: my_conditions.yaml must define "
                                "the NCI macro's sixteen conditions (acute_mi, history_mi, ")
    assert errors[0].endswith(": missing history_mi, chf, pvd, cvd, copd, dementia, paralysis, diabetes, "
                              "diabetes_comp, renal_disease, mild_liver_disease, liver_disease, ulcers, rheum_disease, "
                              "aids; not a condition of the macro: frailty")
    assert errors[1:] == [f"{own}:1: acute_mi: the macro reads ICD-9-CM and ICD-10-CM diagnosis codes only, not hcpcs"]


# --- code normalisation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "eleven"),
    [
        ("1234-5678-90", "01234567890"),   # 4-4-2
        ("50419-488-58", "50419048858"),   # 5-3-2
        ("12345-6789-1", "12345678901"),   # 5-4-1
        ("50419-0488-58", "50419048858"),  # 5-4-2 already 11 digits
        ("50419048858", "50419048858"),
    ],
)
def test_ndc_normalises_to_eleven_digits(written, eleven):
    entry = normalise("ndc", written)
    assert (entry.kind, entry.value, entry.as_written) == ("exact", eleven, written)


@pytest.mark.parametrize("written", ["070.2x", "0702*", "070.2X", "0702xx"])
def test_prefix_spellings(written):
    entry = normalise(CodeSystem.icd9cm, written)
    assert (entry.kind, entry.value) == ("prefix", "0702")
    assert matches(entry, "07020") and matches(entry, "070.22") and not matches(entry, "07030")


def test_dots_are_removed_and_ranges_are_inclusive():
    assert normalise("icd9cm", "V58.0") == CodeEntry(CodeSystem.icd9cm, "exact", "V58.0", value="V580")
    assert normalise("icd9pcs", "92.2x").value == "922"
    assert normalise("icdo3_site", "C22.0").value == "C220"
    radiation = normalise("hcpcs", "77401-77416")
    assert (radiation.kind, radiation.low, radiation.high) == ("range", "77401", "77416")
    assert [matches(radiation, c) for c in ("77400", "77401", "77416", "77417")] == [False, True, True, False]


def test_each_kind_matches_and_no_more():
    exact = normalise("icd9cm", "571.5")
    assert matches(exact, "5715") and matches(exact, "571.5") and not matches(exact, "57150")
    assert not matches(exact, None)
    histology = normalise("icdo3_histology", "8170-8175")
    assert [matches(histology, c) for c in ("8169", "8170", "8173", "8175", "8176")] == [False, True, True, True, False]
    # A range of categories covers the codes under them (first len(low) characters compared).
    hypertension = normalise("icd9cm", "401-405")
    assert [matches(hypertension, c) for c in ("4019", "40501", "400", "4060", "40")] == [True, True, False, False, False]
    # ICD-10-PCS: X is a real character, only '*' marks a prefix.
    assert normalise("icd10pcs", "0DB68ZX").kind == "exact"
    assert normalise("icd10pcs", "0DB6*").value == "0DB6"


@pytest.mark.parametrize(
    ("system", "written", "message"),
    [
        ("icd9cm", "57.5", "misplaced dot in '57.5': a icd9cm code has it after 3 characters"),
        ("icd9pcs", "502.2", "misplaced dot"),
        ("icd9cm", "V5", "not a icd9cm code"),
        ("icd10cm", "K7", "not a icd10cm code"),
        ("hcpcs", "4712", "not a hcpcs code"),
        ("hcpcs", "77416-77401", "range low '77416' is after high '77401'"),
        ("icd9cm", "571-571.5", "must have the same length"),
        ("ndc", "5041948858", "a 10-digit NDC needs its dashes"),
        ("ndc", "50419-48-858", "not an NDC"),
        ("icdo3_histology", "8170/3", "not a icdo3_histology code"),
        ("icd9pcs", "", "non-empty"),
    ],
)
def test_malformed_entries_are_rejected(system, written, message):
    with pytest.raises(CodeError, match=message.replace("(", r"\(")):
        normalise(system, written)


# --- errors: exact file:line: field: message ---------------------------------------------------

BASE = """\
cohort: tiny
title: Tiny
study_period: {start: 2008-01-01, end: 2013-12-31}
codesets:
  sorafenib:
    ndc: ["50419-488-58"]
  radiation:
    hcpcs: ["77401-77416"]
index:
  tumor: {behavior: [malignant]}
criteria:
  - name: has tumor
    index_exists: {}
  - name: no radiation
    occurrence: {codesets: [radiation], tables: [procedure], window: {from: -30, to: 60}, at_most: 0}
arms:
  - name: treated
    exposure_start: {exposure: sorafenib, window: {from: 0, to: 60}}
  - name: untreated
    otherwise: true
exposures:
  sorafenib: {codesets: [sorafenib], source: dispensing, grace_days: 30}
followup: {start: index, end: [death, study_end]}
"""


def _write(tmp_path: Path, text: str, name: str = "def.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _errors(path: Path) -> list[str]:
    with pytest.raises(YamlError) as caught:
        load_definition(path)
    assert isinstance(caught.value, UserError)
    return str(caught.value).splitlines()


def test_base_case_loads(tmp_path):
    definition = load_definition(_write(tmp_path, BASE))
    assert definition.codeset("radiation").matches("hcpcs", "77405")


def test_unknown_field(tmp_path):
    path = _write(tmp_path, BASE.replace("    index_exists: {}", "    index_exists: {}\n    colour: red"))
    assert _errors(path) == [
        f"{path}:14: criteria[1] \"has tumor\".colour: unknown field; allowed: name, index_exists, tumor, age, sex, alive, "
        "coverage, occurrence, washout, index_period"
    ]


def test_unknown_code_set(tmp_path):
    path = _write(tmp_path, BASE.replace("codesets: [radiation]", "codesets: [radiaton]"))
    assert _errors(path) == [f"{path}:15: criteria[2] \"no radiation\".occurrence.codesets[1]: unknown code set 'radiaton'; defined: sorafenib, radiation"]


def test_two_otherwise_arms(tmp_path):
    path = _write(tmp_path, BASE.replace("    exposure_start: {exposure: sorafenib, window: {from: 0, to: 60}}", "    otherwise: true"))
    assert _errors(path) == [f"{path}:20: arms[2] \"untreated\".otherwise: only one arm may be `otherwise`; arm 'treated' already is"]


def test_otherwise_must_come_last(tmp_path):
    text = BASE.replace(
        "  - name: treated\n    exposure_start: {exposure: sorafenib, window: {from: 0, to: 60}}\n  - name: untreated\n    otherwise: true",
        "  - name: untreated\n    otherwise: true\n  - name: treated\n    exposure_start: {exposure: sorafenib, window: {from: 0, to: 60}}",
    )
    path = _write(tmp_path, text)
    assert _errors(path) == [f"{path}:18: arms[1] \"untreated\".otherwise: the `otherwise` arm must be the last arm"]


def test_window_from_after_to(tmp_path):
    path = _write(tmp_path, BASE.replace("window: {from: -30, to: 60}", "window: {from: 60, to: -30}"))
    assert _errors(path) == [f"{path}:15: criteria[2] \"no radiation\".occurrence.window: from (60) is after to (-30); a window needs from <= to"]


def test_misspelt_enum_lists_allowed_values(tmp_path):
    path = _write(tmp_path, BASE.replace("behavior: [malignant]", "behavior: [malignent]"))
    assert _errors(path) == [
        f"{path}:10: index.tumor.behavior[1]: 'malignent' is not allowed; use one of: benign, uncertain, in_situ, malignant"
    ]


def test_malformed_code_names_its_line(tmp_path):
    path = _write(tmp_path, BASE.replace('hcpcs: ["77401-77416"]', 'hcpcs:\n      - "77401"\n      - "7740"\n      - 77418'))
    assert _errors(path) == [
        f"{path}:10: codesets.radiation.hcpcs[2]: not a hcpcs code; expected 5 characters: 4 digits + a digit or "
        "letter (CPT), or a letter + 4 digits (HCPCS level II), a prefix ending in x or *, or a range low-high",
        f"{path}:11: codesets.radiation.hcpcs[3]: write codes as quoted text, e.g. '070.70'; unquoted, YAML reads them as numbers",
    ]


def test_tumor_criterion_needs_tumor_index(tmp_path):
    text = BASE.replace("  tumor: {behavior: [malignant]}", "  event: {codesets: [radiation], tables: [procedure]}")
    text = text.replace("    index_exists: {}", "    tumor: {stage: [distant]}")
    path = _write(tmp_path, text)
    assert _errors(path) == [f"{path}:13: criteria[1] \"has tumor\".tumor: tumor filters need index: tumor; the index is an event, not a tumor"]


def test_dispensing_code_set_needs_ndc_or_generic_name(tmp_path):
    path = _write(tmp_path, BASE.replace("  sorafenib: {codesets: [sorafenib]", "  sorafenib: {codesets: [radiation]"))
    assert _errors(path) == [
        f"{path}:22: exposures.sorafenib.codesets[1]: code set 'radiation' has no codes usable for dispensing "
        "(ndc or generic_name); it needs one of: generic_name, ndc"
    ]


def test_missing_include_file_and_set(tmp_path):
    (tmp_path / "codesets").mkdir()
    (tmp_path / "codesets" / "liver.yaml").write_text('cirrhosis:\n  icd9cm: ["571.5"]\n')
    path = _write(tmp_path, BASE.replace('    ndc: ["50419-488-58"]', '    include: [liver.cirrosis, drugs.sorafenib]'))
    assert _errors(path) == [
        f"{path}:6: codesets.sorafenib.include[1]: no set 'cirrosis' in liver.yaml; it has: cirrhosis",
        f"{path}:6: codesets.sorafenib.include[2]: no code-set file drugs.yaml; looked in {tmp_path / 'codesets'}, "
        f"{(DEFS / 'codesets').resolve()}",  # the shipped library, where it really is
    ]


def test_every_problem_is_reported_at_once(tmp_path):
    text = (
        BASE.replace("behavior: [malignant]", "behavior: [malignent]")
        .replace("window: {from: -30, to: 60}", "window: {from: 60, to: -30}")
        .replace("exposure: sorafenib, window", "exposure: sorafenb, window")
        .replace("  - name: no radiation", "  - name: has tumor")
        .replace("end: [death, study_end]", "end: [death, stuy_end]")
    )
    path = _write(tmp_path, text)
    assert _errors(path) == [
        f"{path}:10: index.tumor.behavior[1]: 'malignent' is not allowed; use one of: benign, uncertain, in_situ, malignant",
        f"{path}:14: criteria[2] \"has tumor\".name: criterion name 'has tumor' is used twice",
        f"{path}:15: criteria[2] \"has tumor\".occurrence.window: from (60) is after to (-30); a window needs from <= to",
        f"{path}:18: arms[1] \"treated\".exposure_start.exposure: unknown exposure 'sorafenb'; defined: sorafenib",
        f"{path}:23: followup.end[2]: 'stuy_end' is not allowed; use death, study_end, {{coverage_end: ...}} or {{exposure_end: ...}}",
    ]


def test_exactly_one_rule_per_criterion(tmp_path):
    path = _write(tmp_path, BASE.replace("    index_exists: {}", "    index_exists: {}\n    sex: [female]"))
    assert _errors(path) == [
        f"{path}:12: criteria[1] \"has tumor\": give exactly one rule, not index_exists and sex (one of: index_exists, tumor, "
        "age, sex, alive, coverage, occurrence, washout, index_period)"
    ]


def test_missing_required_field_and_bad_name(tmp_path):
    path = _write(tmp_path, BASE.replace("cohort: tiny\ntitle: Tiny\n", "cohort: Tiny-Cohort\n"))
    assert _errors(path) == [
        f"{path}:1: cohort: 'Tiny-Cohort' is not a valid name: use a lower-case letter, then lower-case letters, digits or _",
        f"{path}:1: title: required field is missing",
    ]


def test_unknown_landmark_anchor(tmp_path):
    path = _write(tmp_path, BASE.replace("followup: {start: index", "followup: {start: landmrk"))
    assert _errors(path) == [
        f"{path}:23: followup.start: unknown anchor 'landmrk'; use one of: index, or {{exposure: NAME, at: start|end}}"
    ]


def test_definition_is_frozen(reference):
    with pytest.raises(ValidationError):
        reference.cohort = "other"


def test_hash_covers_included_files(tmp_path):
    (tmp_path / "codesets").mkdir()
    shared = tmp_path / "codesets" / "drugs.yaml"
    shared.write_text('sorafenib:\n  ndc: ["50419-488-58"]\n')
    path = _write(tmp_path, BASE.replace('    ndc: ["50419-488-58"]', "    include: [drugs.sorafenib]"))
    first = load_definition(path).sha256
    shared.write_text('sorafenib:\n  ndc: ["50419-488-58"]\n  generic_name: [sorafenib]\n')
    assert load_definition(path).sha256 != first


# --- explain and schema ----------------------------------------------------------------------------


def test_explain_lists_numbered_criteria_and_code_tables(reference):
    text = explain(reference)
    lines = text.splitlines()
    for number, name in enumerate(REFERENCE_RULES, 1):
        assert any(line.startswith(f"{number}. {name} — ") for line in lines), name
    assert "6. Age 66+ at diagnosis — age at index ≥ 66 years" in lines
    assert "| code set | description | system | codes |" in lines
    assert any("`radiation`" in line and "V58.0" in line for line in lines)
    assert "|  |  | CPT/HCPCS | 77371-77373, 77401-77416, 77418 |" in lines
    assert "**Study period:** 2008-01-01 to 2013-12-31 (study end 2013-12-31)" in lines
    for heading in ("## Index", "## Exposures", "## Arms", "## Landmarks", "## Follow-up", "## Outcomes", "## Covariates"):
        assert heading in text


def _plain(data):
    return json.loads(json.dumps(data, default=str))  # YAML dates → ISO strings, as an editor sees them


def test_json_schema_validates_every_shipped_file():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["criteria"]["description"]
    validator = jsonschema.Draft202012Validator(schema)
    for path in SHIPPED:
        errors = list(validator.iter_errors(_plain(load_located(path).data)))
        assert not errors, (path, errors[:1])
    codesets = jsonschema.Draft202012Validator(json_schema("codesets"))
    for path in sorted((DEFS / "codesets").glob("*.yaml")):
        assert not list(codesets.iter_errors(_plain(load_located(path).data))), path


def test_json_schema_rejects_an_unknown_field():
    jsonschema = pytest.importorskip("jsonschema")
    data = _plain(load_located(REFERENCE).data)
    data["criteria"][0]["colour"] = "red"
    assert list(jsonschema.Draft202012Validator(json_schema()).iter_errors(data))


# --- no Spark ------------------------------------------------------------------------------------------


def test_importing_spec_does_not_import_pyspark():
    code = (
        "import sys, cohortlake.spec as s; "
        "s.load_definition(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(REFERENCE)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_problems_in_a_shared_file_name_that_file(tmp_path):
    (tmp_path / "codesets").mkdir()
    shared = tmp_path / "codesets" / "drugs.yaml"
    shared.write_text('sorafenib:\n  ndc:\n    - "50419-488-58"\n    - "5041948858"\n')
    path = _write(tmp_path, BASE.replace('    ndc: ["50419-488-58"]', "    include: [drugs.sorafenib]"))
    assert _errors(path) == [
        f"{path}:6: codesets.sorafenib.include[1]: drugs.yaml has errors (reported separately)",
        f"{shared}:4: sorafenib.ndc[2]: a 10-digit NDC needs its dashes (4-4-2, 5-3-2 or 5-4-1) to be converted to 11 digits",
    ]


def test_unknown_code_system(tmp_path):
    path = _write(tmp_path, BASE.replace('    hcpcs: ["77401-77416"]', '    icd11: ["2C12"]'))
    assert _errors(path) == [
        f"{path}:8: codesets.radiation.icd11: unknown field; allowed: description, icd9cm, icd10cm, icd9pcs, "
        "icd10pcs, hcpcs, ndc, icdo3_site, icdo3_histology, generic_name, include"
    ]


def test_wrong_type_names_the_expected_type(tmp_path):
    path = _write(tmp_path, BASE.replace("window: {from: 0, to: 60}", "window: {from: zero, to: 60}"))
    assert _errors(path) == [
        f"{path}:18: arms[1] \"treated\".exposure_start.window.from: expected a whole number, got text 'zero'"
    ]


def test_output_column_clash(tmp_path):
    path = _write(tmp_path, BASE + "covariates:\n  - {name: arm, sex: {}}\n")
    line = len(textwrap.dedent(BASE).splitlines()) + 2
    assert _errors(path) == [
        f"{path}:{line}: covariates[1] \"arm\".name: covariate 'arm' makes cohort column 'arm', already a fixed cohort column; rename it"
    ]


MATCHING = "covariates:\n  - {name: age, age: {at: index}}\n  - {name: sex, sex: {}}\nmatching:\n"


def test_matching_names_known_arms_and_covariates(tmp_path):
    path = _write(tmp_path, BASE + MATCHING + "  treatment: {arm: treatd, control: untreated}\n  ps_covariates: [age, sexx]\n")
    line = len(textwrap.dedent(BASE).splitlines()) + 5
    assert _errors(path) == [
        f"{path}:{line}: matching.treatment.arm: unknown arm 'treatd'; defined: treated, untreated",
        f"{path}:{line + 1}: matching.ps_covariates[2]: unknown covariate 'sexx'; defined: age, sex",
    ]


def test_matching_settings_are_checked_where_written(tmp_path):
    path = _write(tmp_path, BASE + MATCHING + "  treatment: {arm: treated, control: untreated}\n  ps_covariates: [age]\n"
                  "  order: random\n  caliper: 0\n")
    line = len(textwrap.dedent(BASE).splitlines()) + 4
    errors = _errors(path)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:{line}: matching: ")
    assert "caliper must be > 0 (got 0.0); write 'none' for no caliper" in errors[0]


def test_matching_needs_the_compared_arms(tmp_path):
    path = _write(tmp_path, BASE + MATCHING + "  ps_covariates: [age]\n")
    line = len(textwrap.dedent(BASE).splitlines()) + 4
    assert _errors(path) == [
        f"{path}:{line}: matching: say which arms are compared: treatment: {{arm: <treated arm>, control: <arm>}}"]
