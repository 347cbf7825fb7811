"""The NCI comorbidity index and the Charlson score against the NCI's macro itself.

Authority: NCI.comorbidity.macro.sas (ICD-9 + ICD-10 version), created 9/21/2021,
updated 3/15/2022. Held against it three ways:

* its code lists, transcribed below from the macro's data step, read with SAS's own
  semantics (``in:`` and ``<=:`` compare the blank-padded code truncated to the
  literal's length) and compared with the shipped code-set file on every code of a
  sweep around the lists;
* its two formulas (transcribed in the reference evaluator) over all 2^16 combinations
  of the sixteen conditions, for the shared terms and for the Spark column;
* hand-written patients, one family per condition and code system, at the window's
  edges, the ±30-day margin the rule-out reads, and each rule-out confirmation, built
  by the reference evaluator and by the Spark engine with the values worked out here.
"""

from __future__ import annotations

import itertools
import string
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from cohortlake.spec import load_definition
from cohortlake.spec.comorbidity import CONDITIONS, TERMS, ComorbidityIndex, index_value
from cohortlake.assure.timeline import frames_from_rows
from reference_evaluator import evaluate, macro_charlson, macro_nci_index

from paths import REPO
CODESETS_DIR = REPO / "cohort_defs" / "codesets"

# --- the macro's lists, as its ICD-9 and ICD-10 blocks write them: (in: values, ranges) ----

MACRO_ICD9 = {
    "acute_mi": (["410"], []),
    "history_mi": (["412"], []),
    "chf": (["39891", "40201", "40211", "40291", "40401", "40403", "40411", "40413", "40491", "40493", "428"],
            [("4254", "4259")]),
    "pvd": (["0930", "440", "441", "4471", "5571", "5579", "V434"], [("4431", "4439")]),
    "cvd": (["36234"], [("430", "438")]),
    "copd": (["4168", "4169", "5064", "5081", "5088"], [("490", "505")]),
    "dementia": (["290", "2941", "3312"], []),
    "paralysis": (["3341", "342", "343", "3449"], [("3440", "3446")]),
    "diabetes": (["2500", "2501", "2502", "2503", "2508", "2509"], []),
    "diabetes_comp": (["2504", "2505", "2506", "2507"], []),
    "renal_disease": (["40301", "40311", "40391", "40402", "40403", "40412", "40413", "40492", "40493", "582", "585",
                       "586", "5880", "V420", "V451", "V56"], [("5830", "5837")]),
    "mild_liver_disease": (["07022", "07023", "07032", "07033", "07044", "07054", "0706", "0709", "570", "571", "5733",
                            "5734", "5738", "5739", "V427"], []),
    "liver_disease": ([], [("4560", "4562"), ("5722", "5728")]),
    "ulcers": ([], [("531", "534")]),
    "rheum_disease": (["4465", "7148", "725"], [("7100", "7104"), ("7140", "7142")]),
    "aids": ([], [("042", "044")]),
}
MACRO_ICD10 = {
    "acute_mi": (["I21", "I22"], []),
    "history_mi": (["I252"], []),
    "chf": (["I099", "I110", "I130", "I132", "I255", "I420", "I43", "I50", "P290"], [("I425", "I429")]),
    "pvd": (["I70", "I71", "I731", "I738", "I739", "I771", "I790", "I792", "K551", "K558", "K559", "Z958", "Z959"], []),
    "cvd": (["G45", "G46", "H340", "I6"], []),
    "copd": (["I278", "I279", "J684", "J701", "J703"], [("J40", "J47"), ("J60", "J67")]),
    "dementia": (["F051", "G30", "G311"], [("F00", "F03")]),
    "paralysis": (["G041", "G114", "G801", "G802", "G81", "G82", "G839"], [("G830", "G834")]),
    "diabetes": (["E100", "E101", "E106", "E108", "E109", "E110", "E111", "E116", "E118", "E119", "E130", "E131",
                  "E136", "E138", "E139"], []),
    "diabetes_comp": (["E102", "E103", "E104", "E105", "E107", "E112", "E113", "E114", "E115", "E117", "E132", "E133",
                       "E134", "E135", "E137"], []),
    "renal_disease": (["I120", "I131", "N18", "N19", "N250", "Z940", "Z992"],
                      [("N032", "N037"), ("N052", "N057"), ("Z490", "Z492")]),
    "mild_liver_disease": (["B18", "K709", "K717", "K73", "K74", "K760", "K768", "K769", "Z944"],
                           [("K700", "K703"), ("K713", "K715"), ("K762", "K764")]),
    "liver_disease": (["I850", "I859", "I864", "I982", "K704", "K711", "K721", "K729", "K765", "K766", "K767"], []),
    "ulcers": ([], [("K25", "K28")]),
    "rheum_disease": (["M05", "M06", "M315", "M32", "M33", "M34", "M351", "M353", "M360"], []),
    "aids": (["B20", "B21", "B22", "B24"], []),
}
MACRO = {"icd9cm": MACRO_ICD9, "icd10cm": MACRO_ICD10}


def sas_flags(lists: dict, code: str) -> set[str]:
    """Conditions the macro flags for one upper-case code, with SAS's =: and <=: on a blank-padded $7 value."""
    padded = code.ljust(7)
    found = set()
    for condition, (values, ranges) in lists.items():
        if any(padded[:len(v)] == v for v in values) or any(
            low <= padded[:len(low)] and padded[:len(high)] <= high for low, high in ranges
        ):
            found.add(condition)
    return found


def _stems(lists: dict) -> set[str]:
    """Every literal of the lists, and its neighbours in the last character."""
    stems = set()
    for values, ranges in lists.values():
        for literal in [*values, *(b for r in ranges for b in r)]:
            stems.add(literal)
            for step in (-1, 1):
                last = chr(ord(literal[-1]) + step)
                if last.isalnum():
                    stems.add(literal[:-1] + last)
    return stems


def icd9_sweep() -> set[str]:
    codes = {f"{n:03d}" for n in range(1000)} | {f"{n:04d}" for n in range(10000)}
    codes |= {f"V{n:02d}" for n in range(100)} | {f"V{n:03d}" for n in range(1000)}
    codes |= {f"E{n}" for n in range(800, 1000)} | {f"E{n}" for n in range(8000, 10000)}
    for stem in _stems(MACRO_ICD9):
        for tail_length in range(1, 6 - len(stem)):
            codes |= {stem + "".join(t) for t in itertools.product(string.digits, repeat=tail_length)}
    return {c for c in codes if len(c) <= 5}


def icd10_sweep() -> set[str]:
    letters = sorted({v[0] for values, ranges in MACRO_ICD10.values() for v in [*values, *(b for r in ranges for b in r)]}
                     | {"A", "C", "R"})
    codes = {f"{letter}{n:02d}" for letter in letters for n in range(100)}
    codes |= {f"{letter}{n:02d}{d}" for letter in letters for n in range(100) for d in "0123456789X"}
    for stem in _stems(MACRO_ICD10):
        codes |= {stem + t for t in (*"0123456789AXZ", "00", "19", "9A", "X1")}
    return codes


def _index_by_first_character(codesets, system):
    """(condition, entry) pairs by the first character a matching code can have (the sweep's shortcut)."""
    from cohortlake.spec.codes import matches

    by_first: dict[str, list] = {}
    for condition, codeset in codesets.items():
        for entry in codeset.for_system(system):
            if entry.kind == "range":
                firsts = [c for c in string.digits + string.ascii_uppercase if entry.low[0] <= c <= entry.high[0]]
            else:
                firsts = [entry.value[0]]
            for first in firsts:
                by_first.setdefault(first, []).append((condition, entry))
    return lambda code: {condition for condition, entry in by_first.get(code[0], []) if matches(entry, code)}


@pytest.fixture(scope="module")
def shipped_conditions():
    path = CODESETS_DIR.parent / "hcc_sorafenib_landmark.yaml"
    return load_definition(path).codesets_in_file("nci_comorbidity")


def test_the_shipped_file_defines_the_macros_sixteen_conditions(shipped_conditions):
    assert tuple(shipped_conditions) == CONDITIONS
    assert all(codeset.systems == {"icd9cm", "icd10cm"} for codeset in shipped_conditions.values())


@pytest.mark.parametrize("system, sweep", [("icd9cm", icd9_sweep), ("icd10cm", icd10_sweep)])
def test_code_lists_flag_exactly_what_the_macro_flags(shipped_conditions, system, sweep):
    ours = _index_by_first_character(shipped_conditions, system)
    codes = sweep()
    assert len(codes) > 10_000
    differences = {code: (sorted(sas_flags(MACRO[system], code)), sorted(ours(code)))
                   for code in sorted(codes) if sas_flags(MACRO[system], code) != ours(code)}
    assert differences == {}, f"{len(differences)} codes differ (macro, ours): {list(differences.items())[:20]}"
    # the sweep reaches every condition
    assert {c for code in codes for c in sas_flags(MACRO[system], code)} == set(CONDITIONS)


@pytest.mark.parametrize("code, system, flagged", [
    ("25080", "icd9cm", {"diabetes"}), ("25092", "icd9cm", {"diabetes"}),    # 250.8x / 250.9x are prefixes
    ("25000", "icd9cm", {"diabetes"}), ("25040", "icd9cm", {"diabetes_comp"}),
    ("4373", "icd9cm", {"cvd"}),                                                # not PVD in the macro
    ("5831", "icd9cm", {"renal_disease"}),
    ("F05", "icd10cm", set()), ("F0390", "icd10cm", {"dementia"}),             # F05 is delirium; F00-F03 dementia
    ("Z4931", "icd10cm", set()), ("Z4901", "icd10cm", {"renal_disease"}),      # Z49.0-Z49.2 only
    ("I8510", "icd10cm", set()), ("I8500", "icd10cm", {"liver_disease"}),     # I85.1x (secondary varices) not listed
    ("P290", "icd10cm", {"chf"}), ("E1165", "icd10cm", {"diabetes"}), ("E1122", "icd10cm", {"diabetes_comp"}),
    ("E119", "icd10cm", {"diabetes"}), ("E149", "icd10cm", set()),             # E14 removed 3/15/2022
])
def test_codes_the_issue_names(shipped_conditions, code, system, flagged):
    assert {c for c, s in shipped_conditions.items() if s.matches(system, code)} == flagged
    assert sas_flags(MACRO[system], code) == flagged


# --- the formulas ------------------------------------------------------------------------

ALL_COMBINATIONS = [dict(zip(CONDITIONS, bits)) for bits in itertools.product((False, True), repeat=len(CONDITIONS))]


def test_both_indices_equal_the_macros_formulas_over_every_combination():
    assert len(ALL_COMBINATIONS) == 2 ** 16
    for present in ALL_COMBINATIONS:
        assert index_value(ComorbidityIndex.nci, present) == macro_nci_index(present)
        assert index_value(ComorbidityIndex.charlson, present) == macro_charlson(present)


def test_the_macros_weights_worked_by_hand():
    def nci(*names):
        return index_value("nci", {n: True for n in names})

    def charlson(*names):
        return index_value("charlson", {n: True for n in names})

    assert nci("chf") == 0.64441 and nci("dementia") == 0.72219 and nci("acute_mi") == 0.12624
    assert nci("acute_mi", "history_mi") == 0.20623          # both add: no supersession in the NCI index
    assert charlson("acute_mi", "history_mi") == 1.0         # one point together in Charlson
    assert nci("diabetes") == nci("diabetes_comp") == nci("diabetes", "diabetes_comp") == 0.29408
    assert charlson("diabetes") == 1 and charlson("diabetes_comp") == charlson("diabetes", "diabetes_comp") == 2
    assert nci("mild_liver_disease", "liver_disease") == 0.73803
    assert charlson("mild_liver_disease") == 1 and charlson("mild_liver_disease", "liver_disease") == 3
    assert nci(*CONDITIONS) == 5.41746 and charlson(*CONDITIONS) == 23
    assert nci() == charlson() == 0.0
    assert {t.weight for t in TERMS[ComorbidityIndex.charlson]} == {1, 2, 3, 6}


@pytest.mark.spark
def test_the_spark_column_equals_the_macros_formulas_over_every_combination(spark):
    from pyspark.sql import functions as F

    from cohortlake.engine.rules.covariates import comorbidity_index_column

    # combination n sets condition i when bit i of n is 1
    frame = spark.range(2 ** len(CONDITIONS)).select(
        "id", *[((F.col("id").bitwiseAND(1 << i)) != 0).alias(c) for i, c in enumerate(CONDITIONS)])
    present = {c: F.col(c) for c in CONDITIONS}
    got = frame.select(
        "id",
        comorbidity_index_column(ComorbidityIndex.nci, present).alias("nci"),
        comorbidity_index_column(ComorbidityIndex.charlson, present).alias("charlson"),
    ).toPandas()
    assert len(got) == 2 ** 16
    for n, nci, charlson in got.itertuples(index=False):
        flags = {c: bool(n >> i & 1) for i, c in enumerate(CONDITIONS)}
        assert (nci, charlson) == (macro_nci_index(flags), macro_charlson(flags)), flags


# --- hand-written patients ------------------------------------------------------------------

# One ICD-9 and one ICD-10 code per condition; ICD-10 patients have their index in 2017.
EXAMPLES = {
    "acute_mi": ("41071", "I214"), "history_mi": ("412", "I252"), "chf": ("4254", "I5022"),
    "pvd": ("4439", "I7025"), "cvd": ("436", "I639"), "copd": ("496", "J449"), "dementia": ("2900", "G309"),
    "paralysis": ("3440", "G8190"), "diabetes": ("25080", "E119"), "diabetes_comp": ("25060", "E1122"),
    "renal_disease": ("5859", "N184"), "mild_liver_disease": ("5715", "K7460"), "liver_disease": ("5723", "I8500"),
    "ulcers": ("5319", "K259"), "rheum_disease": ("7140", "M0579"), "aids": ("042", "B20"),
}
INDEX = {"icd9cm": date(2010, 6, 15), "icd10cm": date(2017, 6, 15)}
# The index claim (in the rule-out's margin after the window) carries no condition's code.
HCC = {"icd9cm": "1550", "icd10cm": "C220"}


def window_of(index: date) -> tuple[date, date]:
    """Months -12..-1: the first day of the month a year before the index month to the last day before it."""
    start = date(index.year - 1, index.month, 1)
    return start, date(index.year, index.month, 1) - timedelta(days=1)


# Each variant: claims as (where, day offset, setting), and whether the condition is
# flagged without and with rule-out. `where` is "start" or "end": the offset counts from
# the window's first or last day.
VARIANTS = {
    "inpatient_mid_window": ([("start", 100, "inpatient")], True, True),
    "window_first_day": ([("start", 0, "inpatient")], True, True),
    "window_last_day": ([("end", 0, "inpatient")], True, True),
    "day_before_window": ([("start", -1, "inpatient")], False, False),
    "day_after_window": ([("end", 1, "inpatient")], False, False),
    "one_carrier_claim": ([("start", 100, "carrier")], True, False),
    "outpatient_30_days_apart": ([("start", 100, "outpatient"), ("start", 130, "carrier")], True, False),
    "outpatient_31_days_apart": ([("start", 100, "outpatient"), ("start", 131, "carrier")], True, True),
    "confirmed_31_days_after_the_window": ([("end", -5, "carrier"), ("end", 26, "outpatient")], True, True),
    "confirmed_on_the_margins_last_day": ([("start", 5, "carrier"), ("start", -30, "outpatient")], True, True),
    "second_claim_beyond_the_margin": ([("start", 5, "carrier"), ("start", -31, "outpatient")], True, False),
    "medpar_in_the_margin": ([("end", -2, "carrier"), ("end", 30, "inpatient")], True, True),
    "medpar_beyond_the_margin": ([("end", -2, "carrier"), ("end", 31, "inpatient")], True, False),
    "only_in_the_margin": ([("start", -10, "inpatient"), ("end", 10, "inpatient")], False, False),
}


def _patients():
    rows: dict[str, list[dict]] = {}
    expected: dict[str, tuple[str, bool, bool]] = {}
    serial = itertools.count()

    def add(table, row):
        rows.setdefault(table, []).append(row)

    for condition, examples in EXAMPLES.items():
        for system, code in zip(("icd9cm", "icd10cm"), examples):
            index = INDEX[system]
            first, last = window_of(index)
            for variant, (claims, plain, ruled) in VARIANTS.items():
                pid = f"{condition}.{system}.{variant}"
                add("person", {"person_id": pid, "birth_date": date(1940, 1, 1), "sex": "male", "race": "white"})
                add("diagnosis", _dx(pid, index, HCC[system], system, "inpatient", next(serial)))
                days = [(first if where == "start" else last) + timedelta(days=offset) for where, offset, _ in claims]
                for day, (_, _, setting) in zip(days, claims):
                    add("diagnosis", _dx(pid, day, code, system, setting, next(serial)))
                expected[pid] = (condition, plain, ruled, any(first <= day <= last for day in days))
    # no claim at all in the window (only the index claim): 0, or empty as the macro leaves them out
    for system, index in INDEX.items():
        pid = f"none.{system}.no_claims"
        add("person", {"person_id": pid, "birth_date": date(1940, 1, 1), "sex": "female", "race": "white"})
        add("diagnosis", _dx(pid, index, HCC[system], system, "inpatient", next(serial)))
        expected[pid] = (None, False, False, False)
    return rows, expected


def _dx(pid, day, code, system, setting, serial):
    source = {"inpatient": "medpar", "outpatient": "outpatient_base", "carrier": "nch_base"}[setting]
    return {"person_id": pid, "date": day, "code": code, "code_system": system, "setting": setting,
            "source_table": source, "claim_id": f"c{serial}", "source_column": "DGNS_1_CD"}


@pytest.fixture(scope="module")
def patient_definition(tmp_path_factory):
    path = tmp_path_factory.mktemp("comorbidity") / "comorbidity.yaml"
    path.write_text(yaml.safe_dump({
        "cohort": "comorbidity", "title": "Comorbidity indices on hand-written patients",
        "study_period": {"start": "2008-01-01", "end": "2018-12-31"},
        "codesets": {"hcc": {"icd9cm": ["155.0"], "icd10cm": ["C22.0"]}},
        "index": {"event": {"codesets": ["hcc"], "tables": ["diagnosis"]}},
        "criteria": [{"name": "Has index", "index_exists": {}}],
        "followup": {"start": "index", "end": ["study_end"]},
        "covariates": [
            {"name": "nci_plain", "nci_comorbidity": {"rule_out": False}},
            {"name": "nci_ruled", "nci_comorbidity": {}},
            {"name": "charlson_plain", "charlson": {"rule_out": False}},
            {"name": "charlson_ruled", "charlson": {"rule_out": True, "without_claims": "missing"}},
        ],
    }, sort_keys=False))
    return load_definition(path, codesets_dir=CODESETS_DIR)


def _want(expected):
    def value(index, condition, flagged):
        return index_value(index, {condition: True}) if flagged else 0.0

    want = {}
    for pid, (condition, plain, ruled, any_claim_in_window) in expected.items():
        want[pid] = {
            "nci_plain": value("nci", condition, plain), "nci_ruled": value("nci", condition, ruled),
            "charlson_plain": value("charlson", condition, plain),
            # without_claims: missing
            "charlson_ruled": value("charlson", condition, ruled) if any_claim_in_window else None,
        }
    return want


COLUMNS = ("nci_plain", "nci_ruled", "charlson_plain", "charlson_ruled")


def test_patients_by_the_reference_evaluator(patient_definition):
    rows, expected = _patients()
    got = {r["person_id"]: {c: r[c] for c in COLUMNS} for r in evaluate(patient_definition, rows).cohort}
    want = _want(expected)
    assert got == want
    # the variants really differ: the rule-out removes some, the margin confirms others
    assert got["chf.icd9cm.one_carrier_claim"] == {"nci_plain": 0.64441, "nci_ruled": 0.0,
                                                    "charlson_plain": 1.0, "charlson_ruled": 0.0}
    assert got["aids.icd10cm.confirmed_31_days_after_the_window"]["charlson_ruled"] == 6.0


@pytest.mark.spark
@pytest.mark.parametrize("condition", CONDITIONS)
def test_patients_by_the_spark_engine(built_patients, condition):
    got, want = built_patients
    mine = {pid for pid in want if pid.startswith(condition + ".") or (condition == CONDITIONS[0] and pid.startswith("none."))}
    assert {pid: got[pid] for pid in mine} == {pid: want[pid] for pid in mine}


@pytest.fixture(scope="module")
def built_patients(spark, patient_definition):
    from cohortlake.engine import build_cohort

    rows, expected = _patients()
    built = build_cohort(patient_definition, frames_from_rows(spark, rows))
    try:
        got = {r["person_id"]: {c: r[c] for c in COLUMNS} for r in built.cohort.select("person_id", *COLUMNS).collect()}
    finally:
        built.release()
    return got, _want(expected)
