"""The mapping-file model: which raw columns feed which canonical columns.

A mapping file (YAML, one per raw layout, shipped in ``sources/mappings/``) names the
raw tables of a layout, how their text values are typed, and how rows become the
canonical tables. Repeated column groups are written as templates: ``DGNS_{1..25}_CD``
expands to ``DGNS_1_CD`` … ``DGNS_25_CD`` and ``HMO_IND_{01..12}`` keeps the zero
padding. Templates used together in one feed expand in lockstep (the i-th code pairs
with the i-th date).
"""

from __future__ import annotations

import datetime as dt
import re
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cohortlake.errors import UserError
from cohortlake.vocabulary import DELIVERED_COVERAGES, FEED_CODE_SYSTEMS, FEED_SETTINGS
from cohortlake.yamlfile import load_located, parse_model

# Package data read through importlib.resources, so the mappings load from a zip on
# spark-submit --py-files as well as from an installed package.
MAPPINGS = resources.files("cohortlake.sources") / "mappings"
TEMPLATE = re.compile(r"\{(\d+)\.\.(\d+)\}")
RawType = Literal["date", "integer", "number", "year", "month"]  # how a raw text column is typed


def expand(template: str) -> list[str]:
    """Expand one ``{a..b}`` range in a column template; a plain name expands to itself."""
    match = TEMPLATE.search(template)
    if not match:
        return [template]
    first, last = match.group(1), match.group(2)
    width = len(first) if first.startswith("0") and len(first) > 1 else 0
    return [
        template[: match.start()] + str(i).zfill(width) + template[match.end() :]
        for i in range(int(first), int(last) + 1)
    ]


def is_template(name: str) -> bool:
    return bool(TEMPLATE.search(name))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ColumnType(Strict):
    """How a raw text column is typed; a non-empty value that fails goes to quarantine."""

    type: RawType
    unknown: list[str] = Field(default_factory=list, description="values that mean 'unknown' and become missing")


class RawTable(Strict):
    files: str = Field(description="file-name pattern (glob), e.g. 'mbsf*'; .csv(.gz), .parquet, fixed-width "
                                   ".txt(.gz)/.dat(.gz), or SAS datasets .sas7bdat/.xpt")
    layout: str | None = Field(None, description="SAS program (INFILE/INPUT) giving the record layout of the "
                                                 "table's fixed-width files, relative to the raw folder; default: "
                                                 "the '<table>*.sas' file beside them")
    key: list[str] = Field(description="columns that identify a row in messages and quarantine")
    file_year: str | None = Field(None, description="regex with one group taking the year from the file name")
    not_null: list[str] = Field(default_factory=list, description="columns that must have a value")
    types: dict[str, RawType | ColumnType] = Field(default_factory=dict)

    def column_types(self) -> dict[str, ColumnType]:
        """Types per concrete column name, templates expanded."""
        out = {}
        for name, spec in self.types.items():
            spec = spec if isinstance(spec, ColumnType) else ColumnType(type=spec)
            for column in expand(name):
                out[column] = spec
        return out


class Recode(Strict):
    """A coded raw column turned into named values."""

    column: str
    values: dict[str, str]
    default: str = "unknown"


class PersonBlock(Strict):
    from_: str = Field(alias="from")
    person_id: str
    latest_by: str = Field(description="column ordering a person's rows; the latest row wins")
    birth_date: str
    sex: Recode
    race: Recode


class PersonYearBlock(Strict):
    from_: str = Field(alias="from")
    person_id: str
    year: str
    attributes: list[str]


class MonthlyRule(Strict):
    """A month counts as covered when its indicator column satisfies every given test."""

    column: str
    in_: list[str] | None = Field(None, alias="in")
    not_in: list[str] | None = None
    starts_with: list[str] | None = None

    @model_validator(mode="after")
    def _one_test(self):
        if not (self.in_ or self.not_in or self.starts_with):
            raise ValueError("give at least one of 'in', 'not_in', 'starts_with'")
        if len(expand(self.column)) != 12:
            raise ValueError(f"column template must expand to 12 monthly columns, e.g. 'HMO_IND_{{01..12}}'")
        return self


class EnrollmentBlock(Strict):
    """Coverage spans from per-month indicators or from yearly month counts."""

    from_: str = Field(alias="from")
    person_id: str
    year: str
    monthly: dict[Literal[DELIVERED_COVERAGES], MonthlyRule] | None = None
    month_counts: dict[Literal[DELIVERED_COVERAGES], str] | None = Field(
        None, description="column with the number of covered months; they are taken as January onwards"
    )

    @model_validator(mode="after")
    def _one_kind(self):
        if bool(self.monthly) == bool(self.month_counts):
            raise ValueError("give exactly one of 'monthly' or 'month_counts'")
        return self


class TumorBlock(Strict):
    from_: str = Field(alias="from")
    person_id: str
    sequence_number: str
    diagnosis_year: str
    diagnosis_month: str
    primary_site: str
    histology: str
    behavior: str
    historic_stage: str
    reporting_source: str
    death_year: str | None = None
    death_month: str | None = None


class Lookup(Strict):
    """Columns taken from another raw table of the same claim (e.g. a line's header date)."""

    from_: str = Field(alias="from")
    match_on: list[str] = Field(description="columns identifying the same claim in both tables")
    columns: list[str]


class EventFeed(Strict):
    """Rows of one raw table feeding ``diagnosis`` or ``procedure``, one event per code column."""

    from_: str = Field(alias="from")
    person_id: str
    claim_id: str
    setting: Literal[FEED_SETTINGS]
    code: str
    date: list[str] = Field(description="first non-empty of these columns is the event date")
    code_system: Literal[tuple(FEED_CODE_SYSTEMS)]
    lookup: Lookup | None = None

    @field_validator("date", mode="before")
    @classmethod
    def _date_list(cls, value):
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _lockstep(self):
        sizes = {len(expand(t)) for t in [self.code, *self.date] if is_template(t)}
        if len(sizes) > 1:
            raise ValueError(f"templates in one feed must expand to the same count, got {sorted(sizes)}")
        return self

    def positions(self) -> list[tuple[str, list[str]]]:
        """(code column, date columns in priority order) for each position of the feed."""
        codes = expand(self.code)
        dates = [expand(d) if is_template(d) else [d] * len(codes) for d in self.date]
        return [(code, [d[i] for d in dates]) for i, code in enumerate(codes)]


class DispensingFeed(Strict):
    from_: str = Field(alias="from")
    person_id: str
    claim_id: str
    date: str
    ndc: str
    quantity: str
    days_supply: str
    generic_name: str | None = None
    brand_name: str | None = None


class DeathSource(Strict):
    """One source of death dates; earlier sources in the list win."""

    from_: str = Field(alias="from")
    name: str
    person_id: str
    date: str | None = None
    year: str | None = None
    month: str | None = None
    day_of_month: int = Field(15, ge=1, le=28, description="day used when only the month is known")
    latest_by: str | None = Field(None, description="when a person has several rows, take the latest that has a date")

    @model_validator(mode="after")
    def _date_or_month(self):
        if bool(self.date) == bool(self.year and self.month):
            raise ValueError("give either 'date', or 'year' and 'month'")
        return self


class Mapping(Strict):
    layout: str
    description: str
    icd10_from: dt.date = Field(description="service dates on or after this use ICD-10 codes")
    raw: dict[str, RawTable]
    person: PersonBlock
    person_year: PersonYearBlock | None = None
    enrollment: list[EnrollmentBlock]
    tumor: TumorBlock | None = None
    diagnosis: list[EventFeed]
    procedure: list[EventFeed]
    dispensing: list[DispensingFeed]
    death: list[DeathSource]

    @model_validator(mode="after")
    def _known_tables(self):
        for block_name, block in self.blocks():
            tables = [block.from_] + ([block.lookup.from_] if getattr(block, "lookup", None) else [])
            for table in tables:
                if table not in self.raw:
                    raise ValueError(f"{block_name}: raw table '{table}' is not declared under 'raw' ({', '.join(self.raw)})")
        return self

    def blocks(self):
        """Every canonical block as (label, block)."""
        yield "person", self.person
        if self.person_year:
            yield "person_year", self.person_year
        if self.tumor:
            yield "tumor", self.tumor
        for group in ("enrollment", "diagnosis", "procedure", "dispensing", "death"):
            for i, block in enumerate(getattr(self, group)):
                yield f"{group}[{i}]", block

    def columns_used(self, table: str) -> tuple[set[str], set[str]]:
        """(required plain columns, optional template-expanded columns) of one raw table."""
        required: set[str] = set(self.raw[table].key) | set(self.raw[table].not_null)
        optional: set[str] = set()

        def add(name: str | None):
            if not name:
                return
            (optional if is_template(name) else required).update(expand(name))

        for _, block in self.blocks():
            if block.from_ == table:
                for field_name, value in block:
                    if field_name in ("from_", "lookup", "code_system", "setting", "name", "day_of_month"):
                        continue
                    if isinstance(value, Recode):
                        add(value.column)
                    elif isinstance(value, dict):
                        for rule in value.values():
                            add(rule.column if isinstance(rule, MonthlyRule) else rule)
                    elif isinstance(value, list):
                        for item in value:
                            add(item)
                    elif isinstance(value, str):
                        add(value)
            lookup = getattr(block, "lookup", None)
            if lookup and block.from_ == table:
                # columns brought in from the looked-up table are not this table's
                required.difference_update(lookup.columns)
            if lookup and lookup.from_ == table:
                required.update(lookup.match_on)
                required.update(lookup.columns)
        derived = {"FILE_YEAR"} if self.raw[table].file_year else set()
        return required - derived, optional - required


def load_mapping(layout_or_path: str) -> Mapping:
    """Load a shipped layout by name (``seer-medicare``) or a mapping file by path."""
    path = Path(layout_or_path)
    if not path.suffix:
        shipped = MAPPINGS / f"{layout_or_path}.yaml"
        if not shipped.is_file():
            raise UserError(f"unknown layout '{layout_or_path}'; known layouts: {', '.join(known_layouts())}")
        return parse_model(Mapping, load_located(str(shipped), shipped.read_text(encoding="utf-8")))
    return parse_model(Mapping, load_located(path))


def known_layouts() -> list[str]:
    return sorted(entry.name[: -len(".yaml")] for entry in MAPPINGS.iterdir() if entry.name.endswith(".yaml"))
