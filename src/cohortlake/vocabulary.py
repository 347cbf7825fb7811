"""The canonical (silver) tables and the words their values are written in: one module.

Spark-free on purpose: the language (``spec``), the mapping files (``sources``), the
synthetic data (``synth``) and the test files (``assure``) all take their enums and
table columns from here, so a coverage type, a claim setting or a code system is spelled
once. ``sources/canonical.py`` turns :data:`TABLES` into Spark schemas.

The canonical tables are modelled on the Sentinel Common Data Model. Every raw layout
reaches them through its mapping file; everything downstream reads only these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

# ---------------------------------------------------------------------------------------
# The canonical tables
# ---------------------------------------------------------------------------------------

# Type words of canonical columns; sources/canonical.py maps each to a Spark type.
STRING, DATE, INTEGER, DOUBLE, STRING_MAP = "string", "date", "integer", "double", "map<string,string>"


@dataclass(frozen=True)
class Column:
    """One column of a canonical table: name, type word, and whether it may be null."""

    name: str
    type: str
    nullable: bool


def _table(*columns: tuple[str, str, bool]) -> tuple[Column, ...]:
    return tuple(Column(name, type_, nullable) for name, type_, nullable in columns)


_EVENT = _table(
    ("person_id", STRING, False),
    ("date", DATE, False),
    ("code", STRING, False),
    ("code_system", STRING, False),
    ("setting", STRING, False),
    ("source_table", STRING, False),
    ("claim_id", STRING, True),
    ("source_column", STRING, False),
)

TABLES: dict[str, tuple[Column, ...]] = {
    "person": _table(
        ("person_id", STRING, False), ("birth_date", DATE, True), ("sex", STRING, False), ("race", STRING, False)
    ),
    "person_year": _table(("person_id", STRING, False), ("year", INTEGER, False), ("attributes", STRING_MAP, False)),
    "enrollment": _table(
        ("person_id", STRING, False), ("coverage", STRING, False), ("start_date", DATE, False), ("end_date", DATE, False)
    ),
    "tumor": _table(
        ("person_id", STRING, False),
        ("sequence_number", STRING, False),
        ("diagnosis_year", INTEGER, True),
        ("diagnosis_month", INTEGER, True),
        ("primary_site", STRING, True),
        ("histology", STRING, True),
        ("behavior", STRING, True),
        ("historic_stage", STRING, True),
        ("reporting_source", STRING, True),
        ("death_year", INTEGER, True),
        ("death_month", INTEGER, True),
    ),
    "diagnosis": _EVENT,
    "procedure": _EVENT,
    "dispensing": _table(
        ("person_id", STRING, False),
        ("date", DATE, False),
        ("ndc", STRING, False),
        ("generic_name", STRING, True),
        ("brand_name", STRING, True),
        ("quantity", DOUBLE, True),
        ("days_supply", INTEGER, True),
        ("source_table", STRING, False),
        ("claim_id", STRING, True),
    ),
    "death": _table(
        ("person_id", STRING, False), ("death_date", DATE, False), ("source", STRING, False), ("precision", STRING, False)
    ),
}

SILVER_TABLES: tuple[str, ...] = tuple(TABLES)


def columns(table: str) -> tuple[str, ...]:
    """Column names of a canonical table, in order."""
    return tuple(column.name for column in TABLES[table])


# ---------------------------------------------------------------------------------------
# Person and enrollment
# ---------------------------------------------------------------------------------------


class Sex(StrEnum):
    """Sex as in the canonical person table."""

    male = "male"
    female = "female"
    unknown = "unknown"


class Race(StrEnum):
    """Race as in the canonical person table."""

    white = "white"
    black = "black"
    other = "other"
    asian = "asian"
    hispanic = "hispanic"
    native_american = "native_american"
    unknown = "unknown"


class Coverage(StrEnum):
    """Coverage types of the canonical enrollment table; fee_for_service means "no hmo"."""

    part_a = "part_a"
    part_b = "part_b"
    part_d = "part_d"
    hmo = "hmo"
    fee_for_service = "fee_for_service"
    dual = "dual"
    retiree_drug_subsidy = "retiree_drug_subsidy"


# fee_for_service is never delivered: the enrollment table holds spans of the other
# types, and a definition's fee_for_service is derived as "covered, and no hmo".
DERIVED_COVERAGES: tuple[Coverage, ...] = (Coverage.fee_for_service,)
DELIVERED_COVERAGES: tuple[str, ...] = tuple(c.value for c in Coverage if c not in DERIVED_COVERAGES)
"""Coverage values a mapping file can fill and silver.enrollment holds, in enum order."""


# ---------------------------------------------------------------------------------------
# Claims: event tables, settings, code systems
# ---------------------------------------------------------------------------------------


class EventTable(StrEnum):
    """Canonical claims tables that hold coded events."""

    diagnosis = "diagnosis"
    procedure = "procedure"
    dispensing = "dispensing"


class Setting(StrEnum):
    """Claim setting of a diagnosis or procedure row."""

    inpatient = "inpatient"
    outpatient = "outpatient"
    carrier = "carrier"


# A mapping file's event feed may also name "pharmacy"; no definition selects on it.
FEED_SETTINGS: tuple[str, ...] = (*(s.value for s in Setting), "pharmacy")
"""Settings a mapping file's diagnosis or procedure feed can declare."""


class CodeSystem(StrEnum):
    """Coding systems a code set can list entries for."""

    icd9cm = "icd9cm"
    icd10cm = "icd10cm"
    icd9pcs = "icd9pcs"
    icd10pcs = "icd10pcs"
    hcpcs = "hcpcs"
    ndc = "ndc"
    icdo3_site = "icdo3_site"
    icdo3_histology = "icdo3_histology"


GENERIC_NAME = "generic_name"
"""The dispensing table's drug name, listable in a code set beside ``ndc``."""

# Which code systems each table's rows carry: a code set used on a table must list one.
TABLE_SYSTEMS: dict[EventTable, tuple[str, ...]] = {
    EventTable.diagnosis: (CodeSystem.icd9cm, CodeSystem.icd10cm),
    EventTable.procedure: (CodeSystem.icd9pcs, CodeSystem.icd10pcs, CodeSystem.hcpcs),
    EventTable.dispensing: (CodeSystem.ndc, GENERIC_NAME),
}

ICD10_FROM = date(2015, 10, 1)
"""First day of ICD-10 coding in US claims; the default switch of a by-date code system."""

# A mapping feed's code_system: a stored system, or one chosen per row by the event date
# (ICD-9 before the switch, ICD-10 from it). The value is the code kind the mapper checks
# the raw text against (sources/mapper.py CODE_FORMATS).
FEED_CODE_SYSTEMS: dict[str, str] = {
    "icd9cm": "diagnosis",
    "icd10cm": "diagnosis",
    "icd9pcs": "procedure",
    "icd10pcs": "procedure",
    "hcpcs": "hcpcs",
    "icd_diagnosis_by_date": "diagnosis",
    "icd_procedure_by_date": "procedure",
}
BY_DATE_SYSTEMS: dict[str, tuple[CodeSystem, CodeSystem]] = {
    "icd_diagnosis_by_date": (CodeSystem.icd9cm, CodeSystem.icd10cm),
    "icd_procedure_by_date": (CodeSystem.icd9pcs, CodeSystem.icd10pcs),
}
"""A by-date feed system → (the system before the switch date, the system from it)."""


# ---------------------------------------------------------------------------------------
# Registry tumors. Named values, never integer codes; the registry codes are SEER_CODES.
# ---------------------------------------------------------------------------------------


class Behavior(StrEnum):
    """ICD-O-3 behaviour of a registry tumor."""

    benign = "benign"
    uncertain = "uncertain"
    in_situ = "in_situ"
    malignant = "malignant"


class ReportingSource(StrEnum):
    """SEER type of reporting source."""

    hospital_inpatient = "hospital_inpatient"
    radiation_or_chemo_facility = "radiation_or_chemo_facility"
    lab_only = "lab_only"
    physician_office = "physician_office"
    nursing_home = "nursing_home"
    autopsy_only = "autopsy_only"
    death_certificate_only = "death_certificate_only"
    other_hospital_outpatient = "other_hospital_outpatient"


class Stage(StrEnum):
    """SEER historic stage A."""

    in_situ = "in_situ"
    localized = "localized"
    regional = "regional"
    distant = "distant"
    not_applicable = "not_applicable"
    unstaged = "unstaged"


# The one place where named enum values meet the registry's codes (the engine compiles
# filters with these; the seer-medicare mapping keeps the raw codes in silver.tumor).
SEER_CODES: dict[type[StrEnum], dict[StrEnum, str]] = {
    Behavior: {
        Behavior.benign: "0",
        Behavior.uncertain: "1",
        Behavior.in_situ: "2",
        Behavior.malignant: "3",
    },
    ReportingSource: {
        ReportingSource.hospital_inpatient: "1",
        ReportingSource.radiation_or_chemo_facility: "2",
        ReportingSource.lab_only: "3",
        ReportingSource.physician_office: "4",
        ReportingSource.nursing_home: "5",
        ReportingSource.autopsy_only: "6",
        ReportingSource.death_certificate_only: "7",
        ReportingSource.other_hospital_outpatient: "8",
    },
    Stage: {
        Stage.in_situ: "0",
        Stage.localized: "1",
        Stage.regional: "2",
        Stage.distant: "4",
        Stage.not_applicable: "8",
        Stage.unstaged: "9",
    },
}


def seer_code(value: StrEnum) -> str:
    """The registry code of a named tumor value (e.g. Stage.distant → "4")."""
    return SEER_CODES[type(value)][value]
