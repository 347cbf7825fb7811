"""Hypothesis strategies of the generative tests: patient histories and definitions.

Small patient histories (dates clustered around a per-person base date at window-boundary
offsets, same-day duplicates, nulls, deaths) and definitions assembled from the
language's features, one strategy per rule kind in ``STRATEGIES`` keyed like the engine's
rules. ``tests/generative/test_generative.py`` builds them with the engine and the
reference evaluator; ``tests/unit/test_rule_kinds.py`` checks every kind has a strategy.
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

import yaml
from hypothesis import strategies as st

from cohortlake.spec import Definition, load_definition
from cohortlake.spec.model import Arm, Covariate, Criterion, FollowupEnd, Index, OneOf, Outcome, TimeVarying
from paths import REPO
from reference_evaluator import TABLES

CODESETS_DIR = REPO / "cohort_defs" / "codesets"

# ---------------------------------------------------------------------------------------
# The fixed vocabulary: codes in the data, code sets in the definitions
# ---------------------------------------------------------------------------------------

DX_CODES = [
    ("5715", "icd9cm"), ("K7460", "icd10cm"),           # liver (index)
    ("1550", "icd9cm"), ("C220", "icd10cm"),            # hcc
    ("5780", "icd9cm"), ("5789", "icd9cm"),             # bleed
    ("4101", "icd9cm"), ("412", "icd9cm"),              # acute and history of MI: one Charlson term, two NCI terms
    ("5722", "icd9cm"), ("5716", "icd9cm"),             # moderate/severe and mild liver disease: one NCI term
    ("2500", "icd9cm"), ("25040", "icd9cm"),            # diabetes, with complications
    ("I5022", "icd10cm"),                                # CHF in ICD-10
    ("4280", "icd9cm"), ("V580", "icd9cm"), ("5715", "icd10cm"),
]
PX_CODES = [
    ("47120", "hcpcs"), ("J9299", "hcpcs"), ("77401", "hcpcs"), ("77416", "hcpcs"), ("77417", "hcpcs"),
    ("5022", "icd9pcs"), ("0FT00ZZ", "icd10pcs"), ("4101", "icd9pcs"),
]
DRUGS = [  # (ndc, generic name)
    ("50419048858", "SORAFENIB"), ("50419048858", None), ("99999999999", "sorafenib tosylate"),
    ("50419017103", "regorafenib"), ("62856071030", "Lenvatinib"), ("11111111111", "metformin"),
]

CODESETS = {
    "liver": {"icd9cm": ["571.5"], "icd10cm": ["K74x"]},
    "hcc": {"icd9cm": ["155.0"], "icd10cm": ["C22.0"]},
    "bleed": {"icd9cm": ["578x"]},
    "mi": {"icd9cm": ["410x", "412"]},
    "resection": {"hcpcs": ["47120"], "icd9pcs": ["50.22"]},
    "radiation": {"hcpcs": ["77401-77416"], "icd9cm": ["V58.0"]},
    "sorafenib": {"ndc": ["50419-488-58"], "generic_name": ["sorafenib"]},
    "tki": {"generic_name": ["regorafenib", "lenvatinib"]},
    "ici": {"hcpcs": ["J9299"]},
    "liver_site": {"icdo3_site": ["C22.0"]},
    "hcc_histology": {"icdo3_histology": ["8170-8175"]},
}
DX_SETS = ["liver", "hcc", "bleed", "mi", "radiation"]
PX_SETS = ["resection", "radiation", "ici"]
DRUG_SETS = ["sorafenib", "tki"]
EXPOSURES = ["sor", "tki", "ici"]
COVERAGES = ["part_a", "part_b", "part_d", "hmo", "dual", "retiree_drug_subsidy"]

FIRST, LAST = date(2007, 1, 1), date(2014, 12, 31)
BOUNDARY_OFFSETS = [-400, -366, -365, -364, -183, -91, -90, -61, -60, -59, -31, -30, -29, -2, -1,
                    0, 0, 0, 1, 2, 10, 29, 30, 31, 59, 60, 61, 89, 90, 91, 120, 180, 364, 365, 366]


def chance(draw, percent: int) -> bool:
    return draw(st.integers(0, 99)) < percent


def clamp(day: date) -> date:
    return min(max(day, FIRST), LAST)


# ---------------------------------------------------------------------------------------
# Patient histories
# ---------------------------------------------------------------------------------------

BASES = st.one_of(
    st.builds(lambda y, m: date(y, m, 15), st.integers(2008, 2012), st.integers(1, 12)),
    st.dates(date(2008, 3, 1), date(2012, 12, 31)),
    st.sampled_from([date(2010, 1, 31), date(2012, 2, 29), date(2009, 12, 31), date(2011, 3, 1)]),
)
OFFSETS = st.one_of(st.sampled_from(BOUNDARY_OFFSETS), st.integers(-420, 420))


@st.composite
def patient(draw, pid: str) -> dict[str, list[dict]]:
    """One person's rows in every table, dates around a base date."""
    base = draw(BASES)

    def day(offset=None) -> date:
        return clamp(base + timedelta(days=draw(OFFSETS) if offset is None else offset))

    rows: dict[str, list[dict]] = {t: [] for t in TABLES}
    if chance(draw, 90):
        birth = draw(st.one_of(
            st.dates(date(1925, 1, 1), date(1950, 12, 31)),
            # a 66th (or 65th) birthday near the base date, and 29 February
            st.builds(lambda y, o: date(base.year - y, base.month, 1) + timedelta(days=o),
                      st.sampled_from([65, 66, 75]), st.sampled_from([-1, 0, 14, 15, 16])),
            st.just(date(1944, 2, 29)),
            st.none(),
        ))
        rows["person"].append({
            "person_id": pid, "birth_date": birth,
            "sex": draw(st.sampled_from(["male", "female", "unknown"])),
            "race": draw(st.sampled_from(["white", "black", "other", "asian", "hispanic", "native_american", "unknown"])),
        })
    if chance(draw, 35):
        rows["death"].append({"person_id": pid, "death_date": day(), "source": "mbsf", "precision": "day"})

    for coverage in COVERAGES:
        main = coverage in ("part_a", "part_b", "part_d")
        mode = draw(st.sampled_from(["full", "full", "pieces", "none"] if main else ["none", "none", "pieces"]))
        if mode == "full":
            rows["enrollment"].append({"person_id": pid, "coverage": coverage,
                                       "start_date": date(2005, 1, 1), "end_date": date(2015, 12, 31)})
        elif mode == "pieces":
            start = day()
            if chance(draw, 40):
                start = start.replace(day=1)
            for _ in range(draw(st.integers(1, 3))):
                end = start + timedelta(days=draw(st.one_of(st.integers(0, 500), st.sampled_from([29, 30, 60, 365]))))
                rows["enrollment"].append({"person_id": pid, "coverage": coverage, "start_date": start, "end_date": end})
                start = end + timedelta(days=1 + draw(st.sampled_from([-5, 0, 0, 1, 2, 3, 4, 30, 100])))

    seqs = draw(st.lists(st.sampled_from(["00", "01", "02", "03"]), min_size=1 if chance(draw, 80) else 0,
                         max_size=2, unique=True))
    for i, seq in enumerate(seqs):
        typical = i == 0 and chance(draw, 70)  # most first tumors are HCC diagnosed in the base month
        rows["tumor"].append({
            "person_id": pid, "sequence_number": seq,
            "diagnosis_year": base.year if typical else draw(st.sampled_from([base.year, base.year - 1, 2012, None])),
            "diagnosis_month": base.month if typical else draw(st.sampled_from([base.month, 1, 12, None, 99])),
            "primary_site": "C220" if typical else draw(st.sampled_from(["C220", "C221", "C340", None])),
            "histology": draw(st.sampled_from(["8170", "8170", "8175"] if typical else ["8170", "8175", "8140", None])),
            "behavior": "3" if typical else draw(st.sampled_from(["3", "2", None])),
            "historic_stage": draw(st.sampled_from(["0", "1", "2", "4", "4", "8", "9", None])),
            "reporting_source": draw(st.sampled_from(["1", "1", "4", "6", "7", None])),
            "death_year": None, "death_month": None,
        })

    def claim_fields(table: str) -> dict:
        setting = draw(st.sampled_from(["inpatient", "outpatient", "carrier"]))
        source = {"inpatient": "medpar", "outpatient": "outpatient_base", "carrier": "nch_line"}[setting]
        return {"setting": setting, "source_table": source,
                "claim_id": draw(st.sampled_from(["k1", "k2", "k3", "k4", None])),
                "source_column": "DGNS_1_CD" if table == "diagnosis" else "HCPCS_CD"}

    # Index-like events at the base date, often.
    if chance(draw, 85):
        rows["diagnosis"].append({"person_id": pid, "date": base, "code": "5715", "code_system": "icd9cm",
                                  **claim_fields("diagnosis")})

    def add_fill(day_, drug, days_supply):
        ndc, generic = drug
        rows["dispensing"].append({
            "person_id": pid, "date": clamp(day_), "ndc": ndc, "generic_name": generic, "brand_name": None,
            "quantity": draw(st.sampled_from([30.0, 60.0, None])), "days_supply": days_supply,
            "source_table": "pde", "claim_id": draw(st.sampled_from(["d1", "d2", "d3", None])),
        })

    # A treatment course: sorafenib from about the base date, later a TKI, ICI infusions near it.
    gaps = st.sampled_from([20, 25, 29, 30, 31, 45, 59, 60, 61, 90])
    supplies = st.sampled_from([None, 0, 7, 30, 30, 30, 60, 90, 400])
    course = base + timedelta(days=draw(st.sampled_from([0, 0, 1, 10, 30, -1, -30, -365])))
    first_sorafenib = course
    if chance(draw, 60):
        day_ = course
        for _ in range(draw(st.integers(1, 4))):
            add_fill(day_, draw(st.sampled_from(DRUGS[:3])), draw(supplies))
            day_ += timedelta(days=draw(gaps))
        course = day_ + timedelta(days=draw(st.sampled_from([0, 10, 30, 59, 60, 61, 90])))
    with_tki = chance(draw, 45)
    if with_tki:
        if chance(draw, 30):  # together with sorafenib (regimens anchored on either)
            course = first_sorafenib + timedelta(days=draw(st.sampled_from([0, 7, 8, 30, 31])))
        day_ = course
        for _ in range(draw(st.integers(1, 3))):
            add_fill(day_, draw(st.sampled_from(DRUGS[3:5])), draw(supplies))
            day_ += timedelta(days=draw(gaps))
    if chance(draw, 60 if with_tki else 20):
        day_ = course + timedelta(days=draw(st.sampled_from([-31, -30, -7, 0, 0, 7, 30, 31, 61])))
        for _ in range(draw(st.integers(1, 3))):
            rows["procedure"].append({"person_id": pid, "date": clamp(day_), "code": "J9299", "code_system": "hcpcs",
                                      **claim_fields("procedure")})
            day_ += timedelta(days=draw(st.sampled_from([14, 21, 22, 30, 60])))

    for _ in range(draw(st.integers(0, 9))):
        code, system = draw(st.sampled_from(DX_CODES))
        rows["diagnosis"].append({"person_id": pid, "date": day(), "code": code, "code_system": system,
                                  **claim_fields("diagnosis")})
    for _ in range(draw(st.integers(0, 4))):
        code, system = draw(st.sampled_from(PX_CODES))
        rows["procedure"].append({"person_id": pid, "date": day(), "code": code, "code_system": system,
                                  **claim_fields("procedure")})
    fill_offsets = st.sampled_from([0, 0, 10, 20, 29, 30, 31, 45, 59, 60, 61, 75, 89, 90, 91, 120, -30, -300, -366])
    for _ in range(draw(st.integers(0, 3))):
        add_fill(base + timedelta(days=draw(fill_offsets)), draw(st.sampled_from(DRUGS)),
                 draw(st.sampled_from([None, 0, 1, 7, 30, 30, 30, 60, 90, 400])))
    # Exact same-day duplicates.
    for table in ("diagnosis", "procedure", "dispensing"):
        if rows[table] and chance(draw, 20):
            rows[table].append(dict(draw(st.sampled_from(rows[table]))))
    return rows


@st.composite
def histories(draw, min_persons: int = 10, max_persons: int = 25) -> dict[str, list[dict]]:
    n = draw(st.integers(min_persons, max_persons))
    tables: dict[str, list[dict]] = {t: [] for t in TABLES}
    for i in range(n):
        for table, rows in draw(patient(f"p{i:02d}")).items():
            tables[table].extend(rows)
    return tables


# ---------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------


class Draft:
    """A definition being drawn: knows which names exist so references stay valid."""

    def __init__(self, draw, index_kind: str):
        self.draw = draw
        self.index_kind = index_kind
        self.landmarks: list[str] = []

    def pick(self, options):
        return self.draw(st.sampled_from(list(options)))

    def chance(self, percent: int) -> bool:
        return chance(self.draw, percent)

    def some(self, options, min_size=1, max_size=None):
        options = list(options)
        return self.draw(st.lists(st.sampled_from(options), min_size=min_size, max_size=max_size or len(options),
                                  unique=True))

    # --- pieces

    def anchor(self, allow_landmarks: bool = True):
        choices = ["index", "index", "index", "point"] + (["landmark"] if allow_landmarks and self.landmarks else [])
        kind = self.pick(choices)
        if kind == "index":
            return "index"
        if kind == "landmark":
            return self.pick(self.landmarks)
        return {"exposure": self.pick(EXPOSURES), "at": self.pick(["start", "end"])}

    def window(self, relative: bool = True) -> dict:
        if self.chance(25):
            lo, hi = self.pick([(-12, 2), (0, 2), (-12, -1), (0, 0), (-6, 0), (-1, 1), (-2, -1)])
            w = {"from": lo, "to": hi, "unit": "months"}
        else:
            lo, hi = self.pick([(-365, 0), (-30, 60), (-60, -1), (0, 90), (0, 0), (-365, -1), (-60, 0), (1, 60),
                                (-90, 30), (0, 30)])
            w = {"from": lo, "to": hi}
        if relative and self.chance(25):
            w["relative_to"] = self.anchor()
        return w

    def event_spec(self, sets=None) -> dict:
        tables = self.some(["diagnosis", "procedure", "dispensing"], max_size=2)
        usable = ([s for s in DX_SETS if "diagnosis" in tables] + [s for s in PX_SETS if "procedure" in tables]
                  + [s for s in DRUG_SETS if "dispensing" in tables])
        spec = {"codesets": self.some(sets or usable, max_size=2), "tables": tables}
        if self.chance(25):
            spec["settings"] = self.some(["inpatient", "outpatient", "carrier"], max_size=2)
        return spec

    def diagnosis_spec(self) -> dict:
        spec = {"codesets": self.some(["bleed", "mi", "hcc", "liver"], max_size=2), "tables": ["diagnosis"]}
        if self.chance(25):
            spec["settings"] = self.some(["inpatient", "outpatient", "carrier"], max_size=2)
        return spec

    def coverage_rule(self, window=None) -> dict:
        rule = {"window": window or self.window()}
        # Mostly satisfiable rules (the usual Parts A, B, D and fee-for-service), now and then anything.
        pool = ["part_a", "part_b", "part_d", "fee_for_service", "hmo", "dual", "retiree_drug_subsidy"]
        usual = pool[:4] if self.chance(80) else pool
        require = self.some(usual, min_size=0, max_size=3)
        rare = ["hmo", "dual", "retiree_drug_subsidy"] if self.chance(80) else pool
        candidates = [c for c in rare if c not in require]
        exclude = self.some(candidates, min_size=0 if require else 1, max_size=1) if candidates else []
        if require:
            rule["require"] = require
        if exclude:
            rule["exclude"] = exclude
        if self.chance(40):
            rule["allowed_gap_days"] = self.pick([0, 1, 3, 30])
        if self.chance(40):
            rule["truncate_at_death"] = self.pick([True, False])
        return rule

    # --- sections

    def rule(self, kind_of: type[OneOf], kind: str, **context):
        """The body of one rule of ``kind`` (what goes under its key), drawn by its registered strategy."""
        return STRATEGIES[(kind_of, kind)](self, **context)

    def index(self) -> dict:
        return {self.index_kind: self.rule(Index, self.index_kind)}

    def exposures(self) -> dict:
        def dispensing(codeset):
            e = {"codesets": [codeset], "source": "dispensing", "grace_days": self.pick([0, 1, 15, 30]),
                 "stockpiling": self.pick([True, False])}
            if self.chance(50):
                default = self.pick([10, 30])
                e["days_supply"] = {"default": default, "min": self.pick([1, 5, 10]), "max": self.pick([30, 60, 365])}
            return e

        ici = {"codesets": ["ici"], "source": "administration", "administration_days": self.pick([1, 14, 21]),
               "grace_days": self.pick([0, 7, 30])}
        if self.chance(30):
            ici["settings"] = self.some(["inpatient", "outpatient", "carrier"])
        return {"sor": dispensing("sorafenib"), "tki": dispensing("tki"), "ici": ici}

    def regimens(self) -> dict:
        anchor = self.pick(["sor", "tki"])
        others = [e for e in EXPOSURES if e != anchor]
        return {"combo": {"anchor": anchor, "with": self.some(others), "within_days": self.pick([0, 7, 30, 60])}}

    def landmark_list(self, count: int) -> list[dict]:
        out = []
        for name in ["lm_a", "lm_b"][:count]:
            lm: dict = {"name": name, "days": self.pick([0, 30, 60, 90])}
            if self.chance(30):
                lm["from"] = {"exposure": self.pick(EXPOSURES), "at": self.pick(["start", "end"])}
            if self.chance(40):
                lm["require_alive"] = self.pick([True, False])
            if self.chance(35):
                window = self.pick([{"from": -30, "to": 0}, {"from": 0, "to": 30}, {"from": -1, "to": 0, "unit": "months"},
                                    {"from": 0, "to": 0, "relative_to": "index"}])
                lm["require_coverage"] = self.coverage_rule(dict(window))
            out.append(lm)
        self.landmarks = [lm["name"] for lm in out]
        return out

    def criterion(self, kind: str) -> dict:
        return {kind: self.rule(Criterion, kind)}

    def criteria(self, rich: bool) -> list[dict]:
        kinds = ["age", "sex", "alive", "index_period", "coverage", "occurrence", "washout"]
        if self.index_kind == "tumor":
            kinds += ["tumor", "tumor"]
        chosen = self.draw(st.lists(st.sampled_from(kinds), min_size=0, max_size=5 if rich else 2))
        position = self.draw(st.integers(0, len(chosen))) if rich and self.chance(30) else 0
        chosen.insert(position, "index_exists")
        return [dict(self.criterion(kind), name=f"Step {i + 1} {kind}") for i, kind in enumerate(chosen)]

    def arms(self) -> list[dict]:
        kinds = ["exposure_start", "era_duration", "regimen"] + (["era_on_at"] if self.landmarks else [])
        arms = []
        for i, kind in enumerate(self.draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=3))):
            arms.append({"name": f"arm_{i}", kind: self.rule(Arm, kind)})
        return arms + [{"name": "rest", "otherwise": self.rule(Arm, "otherwise")}]

    def end(self, kind: str):
        body = self.rule(FollowupEnd, kind)
        return kind if body is True else {kind: body}  # death and study_end are written as words

    def followup(self, rich: bool) -> dict:
        start = "index"
        if rich:
            choices = ["index", "index", "point"] + (["landmark", "landmark"] if self.landmarks else [])
            kind = self.pick(choices)
            if kind == "landmark":
                start = self.pick(self.landmarks)
            elif kind == "point":
                start = {"exposure": self.pick(EXPOSURES), "at": "start"}
        ends: list = [self.end("study_end")]
        if self.chance(80):
            ends.append(self.end("death"))
        if rich and self.chance(40):
            ends.append(self.end("coverage_end"))
        if rich and self.chance(40):
            ends.append(self.end("exposure_end"))
        return {"start": start, "end": self.draw(st.permutations(ends))}

    def outcomes(self) -> list[dict]:
        names = self.some(["death", "bleed_o", "mi_o", "liver_o"], min_size=0, max_size=3)
        out = []
        for name in names:
            outcome: dict = {"name": name}
            if name == "death":
                outcome["death"] = self.rule(Outcome, "death")
            else:
                outcome["event"] = self.rule(Outcome, "event", name=name)
            others = [n for n in names if n != name]
            if others and self.chance(50):
                outcome["competing"] = self.some(others)
            out.append(outcome)
        return out

    def time_varying(self) -> list[dict]:
        out = []
        for i in range(self.draw(st.integers(1, 2))):
            kind = "exposure" if self.chance(50) else "event"
            out.append({"name": f"tv_{i}", kind: self.rule(TimeVarying, kind)})
        return out

    def covariates(self, kinds_pool: list[str], max_size: int) -> list[dict]:
        if self.index_kind != "tumor":
            kinds_pool = [k for k in kinds_pool if k != "tumor_field"]
        kinds = self.draw(st.lists(st.sampled_from(kinds_pool), min_size=1, max_size=max_size))
        out: list[dict] = []
        for i, kind in enumerate(kinds):
            rule = self.rule(Covariate, kind, earlier=out)
            if rule is None:  # a score without a term
                continue
            out.append({"name": f"cv_{i}_{kind}", kind: rule})
        return out


# ---------------------------------------------------------------------------------------
# One strategy per rule kind, keyed like the engine's rules: (OneOf class, kind). Each
# draws the body written under the kind's key.
# ---------------------------------------------------------------------------------------

STRATEGIES: dict[tuple[type[OneOf], str], Callable[..., Any]] = {}


def strategy(kind_of: type[OneOf], *kinds: str):
    """Register the strategy drawing ``kinds`` of ``kind_of``."""
    def register(function):
        for kind in kinds:
            assert kind in kind_of.choices, (kind_of.__name__, kind)
            STRATEGIES[(kind_of, kind)] = function
        return function

    return register


# index


@strategy(Index, "tumor")
def _tumor_index(d: Draft) -> dict:
    rule: dict = {}
    if d.chance(70):
        rule["primary_site"] = d.pick([["liver_site"], ["C22.0"], ["C22x"], ["liver_site", "C34.0"]])
    if d.chance(60):
        rule["histology"] = d.pick([["hcc_histology"], ["8170"], ["8170-8175", "8140"]])
    if d.chance(50):
        rule["behavior"] = d.pick([["malignant"], ["malignant", "in_situ"], ["in_situ"]])
    rule["choose"] = d.pick(["lowest_sequence_number", "earliest_diagnosis"])
    if d.chance(50):
        rule["date"] = {"day_of_month": d.pick([1, 15, 28])}
    return rule


@strategy(Index, "event")
def _event_index(d: Draft) -> dict:
    spec = d.event_spec(sets=None)
    if d.chance(60):
        spec = {"codesets": ["liver"] + d.some(["hcc"], min_size=0), "tables": ["diagnosis"]}
    spec["occurrence"] = d.pick(["first", "first", "each"])
    return spec


@strategy(Index, "exposure")
def _exposure_index(d: Draft) -> dict:
    return {"name": d.pick(["sor", "sor", "tki", "ici"]), "at": d.pick(["start", "start", "end"]),
            "occurrence": d.pick(["first", "first", "each"])}


@strategy(Index, "regimen")
def _regimen_index(d: Draft) -> dict:
    return {"name": "combo", "at": d.pick(["start", "start", "end"]), "occurrence": d.pick(["first", "each"])}


# criteria


@strategy(Criterion, "index_exists")
def _index_exists(d: Draft) -> dict:
    return {}


@strategy(Criterion, "tumor")
def _tumor_criterion(d: Draft) -> dict:
    rule = {}
    for field in d.some(["sequence_number", "diagnosis_year", "diagnosis_month_known", "reporting_source",
                         "stage", "behavior"], max_size=3):
        rule[field] = {
            "sequence_number": lambda: d.some(["00", "01"]),
            "diagnosis_year": lambda: d.pick([{"min": 2008, "max": 2011}, {"min": 2010}, {"max": 2009}]),
            "diagnosis_month_known": lambda: d.pick([True, True, False]),
            "reporting_source": lambda: d.pick([{"exclude": ["autopsy_only", "death_certificate_only"]},
                                                {"include": ["hospital_inpatient"]}]),
            "stage": lambda: d.some(["regional", "distant", "localized"], max_size=2),
            "behavior": lambda: d.pick([["malignant"], ["malignant"], ["in_situ"]]),
        }[field]()
    return rule


@strategy(Criterion, "age")
def _age_criterion(d: Draft) -> dict:
    rule = d.pick([{"min": 66}, {"min": 75}, {"max": 70}, {"min": 66, "max": 80}])
    if d.landmarks and d.chance(25):
        rule = dict(rule, at=d.pick(d.landmarks))
    return rule


@strategy(Criterion, "sex")
def _sex_criterion(d: Draft) -> list:
    return d.some(["male", "female", "unknown"], max_size=2)


@strategy(Criterion, "alive")
def _alive(d: Draft) -> dict:
    if d.landmarks and d.chance(50):
        return {"through": d.pick(d.landmarks)}
    return {"through": {"days": d.pick([-1, 0, 30, 60])}}


@strategy(Criterion, "index_period")
def _index_period(d: Draft) -> dict:
    return d.pick([{"start": "2009-01-01", "end": "2011-12-31"}, {"start": "2010-06-15"}, {"end": "2010-06-15"}])


@strategy(Criterion, "coverage")
def _coverage(d: Draft) -> dict:
    return d.coverage_rule()


@strategy(Criterion, "occurrence")
def _occurrence(d: Draft) -> dict:
    if d.chance(25):
        rule = {"exposure": {"name": d.pick(EXPOSURES), "at": d.pick(["start", "end"])}}
    else:
        rule = d.event_spec()
        if d.chance(40):
            rule["count"] = d.pick(["distinct_dates", "claims", "events"])
    rule["window"] = d.window()
    bound = d.pick(["at_least", "at_most", "exactly"])
    rule[bound] = d.pick([0, 1, 1, 2])
    return rule


@strategy(Criterion, "washout")
def _washout(d: Draft) -> dict:
    return dict(d.event_spec(), days=d.pick([30, 180, 365]))


# arms


@strategy(Arm, "exposure_start")
def _exposure_start(d: Draft) -> dict:
    return {"exposure": d.pick(EXPOSURES), "window": d.window()}


@strategy(Arm, "era_duration")
def _era_duration(d: Draft) -> dict:
    rule = {"exposure": d.pick(EXPOSURES)}
    rule.update(d.pick([{"min_days": 60}, {"max_days": 30}, {"min_days": 30, "max_days": 90}]))
    return rule


@strategy(Arm, "era_on_at")
def _era_on_at(d: Draft) -> dict:
    return {"exposure": d.pick(EXPOSURES), "landmark": d.pick(d.landmarks)}


@strategy(Arm, "regimen")
def _regimen_arm(d: Draft) -> dict:
    return {"name": "combo", "window": d.window()}


@strategy(Arm, "otherwise")
@strategy(FollowupEnd, "death", "study_end")
def _true(d: Draft) -> bool:
    return True


# follow-up ends


@strategy(FollowupEnd, "coverage_end")
def _coverage_end(d: Draft) -> dict:
    return {"require": d.some(["part_a", "part_b", "part_d", "fee_for_service"], max_size=2),
            "allowed_gap_days": d.pick([0, 1, 3, 30])}


@strategy(FollowupEnd, "exposure_end")
def _exposure_end(d: Draft) -> dict:
    return {"exposure": d.pick(EXPOSURES), "grace_days": d.pick([0, 10, 30])}


# outcomes and time-varying covariates


@strategy(Outcome, "death")
def _death_outcome(d: Draft) -> dict:
    return {}


@strategy(Outcome, "event")
def _event_outcome(d: Draft, name: str = "bleed_o") -> dict:
    return d.diagnosis_spec() if d.chance(30) else {
        "codesets": [{"bleed_o": "bleed", "mi_o": "mi", "liver_o": "liver"}[name]], "tables": ["diagnosis"]}


@strategy(TimeVarying, "exposure")
def _exposure_switch(d: Draft) -> dict:
    return {"name": d.pick(EXPOSURES), "at": d.pick(["start", "end"])}


@strategy(TimeVarying, "event")
def _event_switch(d: Draft) -> dict:
    return d.diagnosis_spec()


# covariates (``earlier``: the covariates drawn before this one)


@strategy(Covariate, "age")
def _age_covariate(d: Draft, earlier: list[dict]) -> dict:
    return {"at": d.pick(d.landmarks)} if d.landmarks and d.chance(30) else {}


@strategy(Covariate, "sex", "index_year")
def _empty(d: Draft, earlier: list[dict]) -> dict:
    return {}


@strategy(Covariate, "race")
def _race(d: Draft, earlier: list[dict]) -> dict:
    return d.pick([{}, {"groups": {"white": ["white"], "black": ["black"], "other": ["other", "asian", "hispanic"]}}])


@strategy(Covariate, "tumor_field")
def _tumor_field(d: Draft, earlier: list[dict]) -> dict:
    return {"field": d.pick(["stage", "sequence_number", "reporting_source", "histology", "behavior", "primary_site"])}


@strategy(Covariate, "coverage_flag")
def _coverage_flag(d: Draft, earlier: list[dict]) -> dict:
    return {"coverage": d.pick(["dual", "hmo", "part_d", "fee_for_service"]), "window": d.window()}


@strategy(Covariate, "nci_comorbidity", "charlson")
def _comorbidity(d: Draft, earlier: list[dict]) -> dict:
    rule = {"window": d.window(relative=False), "rule_out": d.pick([True, False])}
    if d.chance(40):
        rule["without_claims"] = "missing"
    return rule


@strategy(Covariate, "flag")
def _flag(d: Draft, earlier: list[dict]) -> dict:
    rule = dict(d.event_spec(), window=d.window())
    if d.chance(30):
        rule["at_least"] = 2
    return rule


@strategy(Covariate, "count")
def _count(d: Draft, earlier: list[dict]) -> dict:
    return dict(d.event_spec(), window=d.window(), count=d.pick(["distinct_dates", "claims", "events"]))


@strategy(Covariate, "exposure_duration")
def _exposure_duration(d: Draft, earlier: list[dict]) -> dict:
    return {"exposure": d.pick(EXPOSURES), "era": d.pick(["first_from_index", "last_before_index"])}


@strategy(Covariate, "score")
def _score(d: Draft, earlier: list[dict]) -> dict | None:
    terms = []
    for covariate in earlier:
        earlier_kind = next(k for k in covariate if k != "name")
        if earlier_kind == "score" and covariate["score"].get("groups"):
            continue
        if not d.chance(70):
            continue
        if earlier_kind in ("sex", "race", "tumor_field"):
            value = {"sex": "male", "race": d.pick(["white", "black", "other"]),
                     "tumor_field": d.pick(["distant", "00", "malignant", "C220"])}[earlier_kind]
            term = {"covariate": covariate["name"], "equals": value}
        elif earlier_kind in ("flag", "coverage_flag") and d.chance(70):
            term = {"covariate": covariate["name"]}
        else:
            term = {"covariate": covariate["name"], "at_least": d.pick([1, 2, 66, 75, 30])}
        if d.chance(40):
            term["points"] = d.pick([0.5, 2, 3])
        terms.append(term)
    if not terms:
        return None
    rule = {"terms": terms}
    if d.chance(50):
        rule["groups"] = d.pick([
            [{"name": "low", "max": 0}, {"name": "mid", "min": 0.5, "max": 2}, {"name": "high", "min": 3}],
            [{"name": "some", "min": 1}],
        ])
    return rule


ALL_COVARIATES = ["age", "sex", "race", "index_year", "tumor_field", "coverage_flag", "nci_comorbidity", "charlson",
                  "flag", "count", "score", "exposure_duration"]


@st.composite
def definitions(draw, focus: str) -> dict:
    """A definition dict exercising one feature group richly and the others lightly."""
    index_kind = draw(st.sampled_from({
        "criteria": ["tumor", "tumor", "event", "exposure", "regimen"],
        "exposures": ["exposure", "exposure", "regimen", "event", "tumor"],
        "followup": ["event", "exposure", "tumor", "regimen"],
        "covariates": ["tumor", "event", "exposure"],
    }[focus]))
    draft = Draft(draw, index_kind)
    d: dict = {
        "cohort": "generated",
        "title": f"Generated ({focus})",
        "study_period": {"start": "2008-01-01", "end": draw(st.sampled_from(["2012-12-31", "2013-12-31"]))},
        "codesets": CODESETS,
        "exposures": draft.exposures(),
        "regimens": draft.regimens(),
    }
    landmark_count = draw(st.integers(0, 2)) if focus in ("exposures", "followup", "criteria") else draw(st.integers(0, 1))
    landmarks = draft.landmark_list(landmark_count)
    if landmarks:
        d["landmarks"] = landmarks
    d["index"] = draft.index()
    d["criteria"] = draft.criteria(rich=focus == "criteria")
    if focus == "exposures" or draft.chance(20):
        d["arms"] = draft.arms()
    d["followup"] = draft.followup(rich=focus in ("followup", "exposures"))
    if focus == "followup" or draft.chance(20):
        outcomes = draft.outcomes()
        if outcomes:
            d["outcomes"] = outcomes
    if focus == "followup" and draft.chance(70):
        d["time_varying"] = draft.time_varying()
    pool = {
        "criteria": ["age", "sex", "flag", "coverage_flag"],
        "exposures": ["exposure_duration", "exposure_duration", "age", "flag"],
        "followup": ["age", "count"],
        "covariates": ALL_COVARIATES + ["score", "score", "nci_comorbidity", "charlson", "flag"],
    }[focus]
    covariates = draft.covariates(pool, max_size=8 if focus == "covariates" else 2)
    if covariates:
        d["covariates"] = covariates
    return d


def load(d: dict) -> Definition:
    """Validate the dict with the model, then load it as a file (code-set files, cross-checks)."""
    Definition.model_validate(d)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generated.yaml"
        path.write_text(yaml.safe_dump(d, sort_keys=False))
        return load_definition(path, codesets_dir=CODESETS_DIR)


def definition_yaml(definition: Definition) -> str:
    d = definition.model_dump(mode="json", by_alias=True, exclude_unset=True)
    d.pop("codesets", None)  # the fixed CODESETS of this module
    return yaml.safe_dump(d, sort_keys=False, width=120)


def kinds_in(value) -> set[tuple[type[OneOf], str]]:
    """Every (OneOf class, kind) a definition (or any part of it) holds."""
    found: set[tuple[type[OneOf], str]] = set()
    if isinstance(value, OneOf):
        found.add((type(value), value.kind))
    if isinstance(value, dict):
        for item in value.values():
            found |= kinds_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= kinds_in(item)
    elif hasattr(type(value), "model_fields"):
        for name in type(value).model_fields:
            found |= kinds_in(getattr(value, name))
    return found
