"""The test-file model in pydantic: timelines, templates, patients and the rows they expect.

Every mapping of a test file is a :class:`Part`: pydantic validates its fields, and the
part reports an unknown key, a missing key or a value that is not a mapping in the test
file's own words. A value's mistake is a ``PydanticCustomError`` of type ``assure``
carrying its message; :mod:`cohortlake.assure.load` places pydantic's errors in the
file as ``Problem``\\ s (``file:line: field: message``), as ``spec.load`` does for a
definition.

What a patient may expect depends on the definition it tests: ``assure.expect.Contract``
builds those models from the engine's output contract, and a patient's ``expect:`` is
read by the one in the validation context.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated, Any, Callable, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, PrivateAttr, ValidationError, ValidationInfo, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from cohortlake.spec.codes import CodeError, canonical_code, normalise
from cohortlake.vocabulary import (
    DELIVERED_COVERAGES,
    ICD10_FROM,
    SEER_CODES,
    TABLE_SYSTEMS,
    Behavior,
    CodeSystem,
    Coverage,
    EventTable,
    Race,
    ReportingSource,
    Setting,
    Sex,
    Stage,
)

if TYPE_CHECKING:
    from cohortlake.assure.expect import Contract

Loc = tuple[Any, ...]
Found = tuple[Loc, str]
"""A mistake inside a part: where (relative to the part) and what."""

TIMELINE_KEYS = ("person", "death", "tumors", "enrollment", "diagnoses", "procedures", "fills")
LIST_KEYS = TIMELINE_KEYS[2:]
CHANGES = ("set", "add")
PATIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ERROR = "assure"
LENIENT = "lenient"


# ---------------------------------------------------------------------------------------
# Mistakes in the file's words
# ---------------------------------------------------------------------------------------


def mistake(message: str) -> PydanticCustomError:
    """A value's mistake, reported at the value."""
    return PydanticCustomError(ERROR, "{message}", {"message": message})


def message_of(error: dict) -> str:
    """The text of one of pydantic's errors: ours as written, pydantic's own as it says it."""
    return error["ctx"]["message"] if error["type"] == ERROR else error["msg"]


def shown(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def listing(values) -> str:
    return ", ".join(str(v) for v in values)


class Part(BaseModel):
    """A mapping of the test file; subclasses name its keys as fields.

    ``WHAT`` says what the mapping is ("a fill {date, ndc, ...}"), ``NEEDS`` gives the
    message for each required key left out (reported at the mapping) and ``KEYS`` the
    allowed keys in the order messages list them (default: the fields). :meth:`before`
    may find mistakes among the keys and leave keys unread (an earlier mistake makes
    them moot); :meth:`after` checks the read part as a whole.
    """

    model_config = ConfigDict(extra="forbid")

    WHAT: ClassVar[str] = "a mapping"
    NEEDS: ClassVar[dict[str, str]] = {}
    KEYS: ClassVar[tuple[str, ...]] = ()
    _given: tuple[str, ...] = PrivateAttr(default=())

    @classmethod
    def not_a_mapping(cls, value: Any) -> str:
        return f"expected {cls.WHAT} (a mapping of key: value), got {shown(value)}"

    @classmethod
    def unknown(cls, key: str) -> str | None:
        return f"unknown key '{key}'; allowed: {listing(cls.KEYS or cls.model_fields)}"

    @classmethod
    def before(cls, data: dict) -> tuple[list[Found], set[str]]:
        return [], set()

    def after(self) -> list[Found]:
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _in_file_words(cls, data: Any, handler, info: ValidationInfo) -> Part:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise mistake(cls.not_a_mapping(data))
        # Leniently (a second reading, for templates and patients already found wrong) an
        # unknown key is left out, as it never stopped the rest of a mapping being used.
        lenient = bool(info.context and info.context.get(LENIENT))
        found: list[Found] = [((key,), text) for key in data if key not in cls.model_fields and not lenient
                              for text in [cls.unknown(key)] if text]
        found += [((), text) for key, text in cls.NEEDS.items() if key not in data]
        early, unread = cls.before(data)
        found += early
        read = {key: value for key, value in data.items() if key in cls.model_fields and key not in unread}
        errors: list[dict] = []
        value = None
        try:
            value = handler(read)
        except ValidationError as exc:
            errors = [e for e in exc.errors() if not (e["type"] == "missing" and e["loc"] and e["loc"][-1] in cls.NEEDS)]
        if value is not None:
            value._given = tuple(read)
            found += value.after()
        if found or errors:
            details = [InitErrorDetails(type=mistake(text), loc=loc, input=None) for loc, text in found]
            details += [InitErrorDetails(type=mistake(message_of(e)), loc=e["loc"], input=e.get("input"))
                        for e in errors]
            raise ValidationError.from_exception_data(cls.__name__, details)
        return value


# ---------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------


def nullable(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def a_date(value: Any) -> dt.date:
    """A date from YAML (2009-03-15, or the same quoted)."""
    if value is None:
        raise mistake("a date is required, written YYYY-MM-DD")
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError as exc:
            raise mistake(f"'{value}' is not a real date ({exc})") from None
    raise mistake(f"expected a date written YYYY-MM-DD, got {shown(value)}")


def text(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise mistake(f"expected text, got {shown(value)}")


def code_text(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise mistake(f"write codes as quoted text, e.g. '{value}'; unquoted, YAML reads {value!r} as a number")
    return text(value)


def whole(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise mistake(f"expected a whole number, got {shown(value)}")


def one_of(choices) -> Callable[[Any], str]:
    values = [str(choice) for choice in choices]

    def check(value: Any) -> str:
        if isinstance(value, str) and value in values:
            return value
        raise mistake(f"{repr(value) if isinstance(value, str) else shown(value)} is not allowed; "
                      f"use one of: {listing(values)}")
    return check


Day = Annotated[dt.date, BeforeValidator(a_date)]
MaybeDay = Annotated[dt.date | None, BeforeValidator(nullable(a_date))]
Text = Annotated[str, BeforeValidator(text)]
MaybeText = Annotated[str | None, BeforeValidator(nullable(text))]
MaybeWhole = Annotated[int | None, BeforeValidator(nullable(whole))]


# ---------------------------------------------------------------------------------------
# Timeline entries
# ---------------------------------------------------------------------------------------


class Person(Part):
    WHAT = "a person {birth_date, sex, race}"
    NEEDS = {"birth_date": "person needs birth_date (null when unknown)", "sex": "person needs sex",
             "race": "person needs race"}

    birth_date: MaybeDay
    sex: Annotated[str, BeforeValidator(one_of(Sex))]
    race: Annotated[str, BeforeValidator(one_of(Race))]


def _sequence_number(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"\d{2}", value):
        return value
    raise mistake(f"expected two digits in quotes such as '00', got {shown(value)}")


def _site(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"C\d{2}\.?\d?", value.strip().upper()):
        return value.strip().upper().replace(".", "")
    raise mistake(f"expected an ICD-O-3 site such as C22.0, got {shown(value)}")


def _histology(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"\d{4}", value.strip()):
        return value.strip()
    hint = " in quotes" if isinstance(value, int) else ""
    raise mistake(f"expected a four-digit ICD-O-3 histology{hint} such as '8170', got {shown(value)}")


def registry_code(enum) -> Callable[[Any], str]:
    """A tumor field as the registry stores it: names become their SEER codes."""
    names = [e.value for e in enum]

    def check(value: Any) -> str:
        if isinstance(value, str) and value in names:
            return SEER_CODES[enum][enum(value)]
        if isinstance(value, str) and re.fullmatch(r"\d", value.strip()):
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool):
            raise mistake(f"write the registry code quoted ('{value}') or use a name: {listing(names)}")
        raise mistake(f"{value!r} is not allowed; use one of: {listing(names)}, or a one-digit registry code in quotes")
    return nullable(check)


class Tumor(Part):
    WHAT = "a tumor"
    NEEDS = {"sequence_number": "a tumor needs sequence_number (two digits in quotes, e.g. '00')"}

    sequence_number: Annotated[str, BeforeValidator(_sequence_number)]
    diagnosis_year: MaybeWhole = None
    diagnosis_month: MaybeWhole = None
    primary_site: Annotated[str | None, BeforeValidator(nullable(_site))] = None
    histology: Annotated[str | None, BeforeValidator(nullable(_histology))] = None
    behavior: Annotated[str | None, BeforeValidator(registry_code(Behavior))] = None
    historic_stage: Annotated[str | None, BeforeValidator(registry_code(Stage))] = None
    reporting_source: Annotated[str | None, BeforeValidator(registry_code(ReportingSource))] = None
    death_year: MaybeWhole = None
    death_month: MaybeWhole = None


def _stored_coverage(value: Any) -> str:
    if value == Coverage.fee_for_service.value:
        raise mistake("fee_for_service is not stored: it holds on every day without an hmo span")
    return one_of(DELIVERED_COVERAGES)(value)


def _coverages(value: Any) -> list:
    if not isinstance(value, list):
        return [_stored_coverage(value)]
    if not value:
        raise mistake(f"give at least one coverage type: {listing(DELIVERED_COVERAGES)}")
    return value


class Span(Part):
    """An enrollment span; ``coverage`` may list several types (one canonical row each)."""

    WHAT = "an enrollment span {coverage, start, end}"
    NEEDS = {name: f"an enrollment span needs {name}" for name in ("coverage", "start", "end")}

    coverage: Annotated[tuple[Annotated[str, BeforeValidator(_stored_coverage)], ...], BeforeValidator(_coverages)]
    start: Day
    end: Day

    def after(self) -> list[Found]:
        return [(("end",), f"end {self.end} is before start {self.start}")] if self.start > self.end else []

    def rows(self) -> list[dict]:
        return [{"coverage": kind, "start_date": self.start, "end_date": self.end} for kind in self.coverage]


def _systems(table: EventTable) -> list[str]:
    """The code systems a row of the table may name, as messages list them (HCPCS first, as the default picks)."""
    return sorted((str(s) for s in TABLE_SYSTEMS[table]), key=lambda s: s != CodeSystem.hcpcs)


class Coded(Part):
    """A diagnosis or procedure row; the code system defaults by the code's date (and length)."""

    TABLE: ClassVar[EventTable]

    date: Day
    code: Annotated[str, BeforeValidator(code_text)]
    system: str | None = None
    setting: Annotated[str, BeforeValidator(one_of(Setting))] = Setting.carrier.value
    claim_id: Annotated[str | None, BeforeValidator(text)] = None

    def code_system(self) -> str:
        if self.system is not None:
            return self.system
        if self.TABLE is EventTable.diagnosis:
            return CodeSystem.icd9cm if self.date < ICD10_FROM else CodeSystem.icd10cm
        if len(self.code.replace(".", "")) == 5:
            return CodeSystem.hcpcs
        return CodeSystem.icd9pcs if self.date < ICD10_FROM else CodeSystem.icd10pcs

    def after(self) -> list[Found]:
        system = str(self.code_system())
        try:
            entry = normalise(system, self.code)
        except CodeError as exc:
            why = f"'{self.code}' does not fit {system}: " + str(exc).replace(
                ", a prefix ending in x or *, or a range low-high", "")
            if self.system is None:
                why += (f" ({system} was chosen by the code's "
                        + ("length and " if self.TABLE is EventTable.procedure else "")
                        + "date; give system: to choose another)")
            return [(("code",), why)]
        if entry.kind != "exact":
            return [(("code",), f"'{self.code}' is a {entry.kind} of {system} codes; a claim row holds one exact code")]
        return []

    def row(self) -> dict:
        system = str(self.code_system())
        return {"date": self.date, "code": canonical_code(system, self.code), "code_system": system,
                "setting": self.setting, "claim_id": self.claim_id}


class Diagnosis(Coded):
    TABLE = EventTable.diagnosis
    WHAT = "a diagnosis {date, code}"
    NEEDS = {"date": "a diagnosis needs date", "code": "a diagnosis needs code"}

    system: Annotated[str | None, BeforeValidator(one_of(_systems(EventTable.diagnosis)))] = None


class Procedure(Coded):
    TABLE = EventTable.procedure
    WHAT = "a procedure {date, code}"
    NEEDS = {"date": "a procedure needs date", "code": "a procedure needs code"}

    system: Annotated[str | None, BeforeValidator(one_of(_systems(EventTable.procedure)))] = None


def _ndc(value: Any) -> str:
    ndc = code_text(value)
    try:
        entry = normalise("ndc", ndc)
        if entry.kind != "exact":
            raise CodeError("a fill holds one exact NDC, not a prefix")
        return entry.value
    except CodeError as exc:
        raise mistake(f"'{ndc}' is not an NDC: {exc}") from None


def _quantity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise mistake(f"expected a number, got {shown(value)}")
    return float(value)


class Fill(Part):
    WHAT = "a fill {date, ndc, ...}"
    NEEDS = {"date": "a fill needs date", "ndc": "a fill needs ndc"}

    date: Day
    ndc: Annotated[str, BeforeValidator(_ndc)]
    generic_name: MaybeText = None
    brand_name: MaybeText = None
    days_supply: MaybeWhole = None
    quantity: Annotated[float | None, BeforeValidator(nullable(_quantity))] = None
    claim_id: Annotated[str | None, BeforeValidator(text)] = None


# ---------------------------------------------------------------------------------------
# Timelines, templates and patients
# ---------------------------------------------------------------------------------------


def list_of(key: str) -> BeforeValidator:
    def check(value: Any) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise mistake(f"expected a list of {key}, e.g. [{{...}}, {{...}}], got {shown(value)}")
        return value
    return BeforeValidator(check)


def _kept_person(value: Any) -> Any:
    if value is None:
        raise mistake("every test patient needs a person row")
    return value


class Lists(Part):
    """The list keys of a timeline (``add:`` appends to them)."""

    WHAT = "lists to append to"

    tumors: Annotated[tuple[Tumor, ...], list_of("tumors")] = ()
    enrollment: Annotated[tuple[Span, ...], list_of("enrollment")] = ()
    diagnoses: Annotated[tuple[Diagnosis, ...], list_of("diagnoses")] = ()
    procedures: Annotated[tuple[Procedure, ...], list_of("procedures")] = ()
    fills: Annotated[tuple[Fill, ...], list_of("fills")] = ()

    def given(self) -> dict[str, Any]:
        """The keys written, as timeline values (plain rows)."""
        out: dict[str, Any] = {}
        for key in (key for key in self._given if key in TIMELINE_KEYS):
            value = getattr(self, key)
            if key == "person":
                out[key] = value.model_dump()
            elif key == "death":
                out[key] = value
            elif key == "enrollment":
                out[key] = [row for span in value for row in span.rows()]
            elif key in ("diagnoses", "procedures"):
                out[key] = [event.row() for event in value]
            else:
                out[key] = [item.model_dump() for item in value]
        return out


class Changes(Lists):
    """``set:`` replaces whole timeline keys."""

    WHAT = "the keys to replace"
    KEYS = TIMELINE_KEYS

    person: Annotated[Person, BeforeValidator(_kept_person)] = None
    death: MaybeDay = None


class Timeline(Lists):
    """A template: a timeline written out, or another template changed by ``set:`` and ``add:``."""

    WHAT = "a timeline"
    KEYS = ("description", "like", *CHANGES, *TIMELINE_KEYS)

    description: Any = None
    like: Any = None
    set: Changes = None
    add: Lists = None
    person: Person = None
    death: MaybeDay = None

    @classmethod
    def before(cls, data: dict) -> tuple[list[Found], set[str]]:
        given = [key for key in TIMELINE_KEYS if key in data]
        moot = {*CHANGES, *TIMELINE_KEYS}
        if "like" in data and given:
            return [((given[0],), f"with like:, change the template with set: {{{given[0]}: ...}} or add: "
                                  f"instead of writing {given[0]} directly")], moot
        for key in CHANGES:
            if "like" not in data and key in data:
                return [((key,), f"{key}: changes a template; give like: <template name> first "
                                 f"(or write the timeline keys directly)")], moot
        return [], set()


def empty_timeline() -> dict[str, Any]:
    return {"person": None, "death": None, **{key: [] for key in LIST_KEYS}}


def _patient_id(value: Any) -> str:
    if isinstance(value, str) and PATIENT_ID.fullmatch(value):
        return value
    raise mistake(f"each patient needs an id: letters, digits, _ - . (it becomes the person_id), got {shown(value)}")


def _description(value: Any) -> str:
    if not isinstance(value, str):
        raise mistake(f"expected text, got {shown(value)}")
    return value.strip()


def _expectation(value: Any, info: ValidationInfo) -> Any:
    contract: Contract = info.context["contract"]
    model = contract.episodes if isinstance(value, dict) and "rows" in value else contract.row
    return model.model_validate(value, context=info.context)


class Patient(Timeline):
    """A test patient: an id, a timeline, and what the engine should make of it."""

    KEYS = ("id", "description", "like", *CHANGES, "expect", *TIMELINE_KEYS)
    NEEDS = {"id": "each patient needs an id: letters, digits, _ - . (it becomes the person_id)",
             "expect": "the patient needs expect: {excluded_at: ...} or {included: true, ...}"}

    id: Annotated[str, BeforeValidator(_patient_id)]
    description: Annotated[str, BeforeValidator(_description)] = ""
    expect: Annotated[Any, BeforeValidator(_expectation)]

    @classmethod
    def not_a_mapping(cls, value: Any) -> str:
        return f"expected a patient mapping (id:, description:, like:, expect:, ...), got {shown(value)}"
