"""What a test patient expects, read against the definition's output contract (``engine.columns``).

:class:`Contract` builds, per definition, the pydantic models of an expected cohort row
(one field per output column, checked by its kind), of ``rows:`` for an ``each`` index,
and of an events row; their mistakes read as the rest of the file's
(:class:`cohortlake.assure.model.Part`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Callable, ClassVar

from pydantic import BeforeValidator, TypeAdapter, create_model

from cohortlake.assure.model import Found, Part, a_date, listing, mistake, nullable, one_of, shown
from cohortlake.engine.columns import (
    ARM,
    DATE,
    EVENT_BASE,
    FIXED_COLUMNS,
    FLAG,
    WHOLE,
    arm_names,
    cohort_columns,
    event_columns,
    step_names,
)
from cohortlake.spec.model import Definition, Occurrence


# ---------------------------------------------------------------------------------------
# Expected rows, read against the definition's output contract
# ---------------------------------------------------------------------------------------


@dataclass
class ExpectedRow:
    """What one episode (or, without ``rows``, the person) should come out as."""

    excluded_at: str | None = None
    """The attrition step name where it leaves; None = included."""
    columns: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] | None = None
    index_date: dt.date | None = None
    """Only in ``rows``: which episode."""

    @property
    def included(self) -> bool:
        return self.excluded_at is None


def _value_check(kind: str, arms: list[str]) -> Callable[[Any], Any]:
    if kind == DATE:
        return nullable(a_date)
    if kind == ARM:
        return nullable(one_of(arms))

    def check(value: Any) -> Any:
        if kind in (WHOLE, FLAG):
            if isinstance(value, bool) or not isinstance(value, int) or (kind == FLAG and value not in (0, 1)):
                raise mistake(f"expected {'0 or 1' if kind == FLAG else 'a whole number'}, got {shown(value)}")
        elif isinstance(value, (list, dict)):
            raise mistake(f"expected one value, got {shown(value)}")
        return value
    return nullable(check)


class _Row(Part):
    """An expected cohort row; its column fields are added per definition (:attr:`Contract.row`)."""

    CONTRACT: ClassVar[Contract]
    IN_ROWS: ClassVar[bool] = False

    excluded_at: Any = None
    included: Any = None

    @classmethod
    def not_a_mapping(cls, value: Any) -> str:
        return "expected a mapping: {excluded_at: <criterion name>} or {included: true, <column>: <value>, ...}"

    @classmethod
    def unknown(cls, key: str) -> str:
        if key in cls.CONTRACT.event_names:
            return f"'{key}' is a column of the events rows: list them under events:"
        return f"unknown column '{key}'; the cohort has: {listing(cls.CONTRACT.kinds)}"

    @classmethod
    def before(cls, data: dict) -> tuple[list[Found], set[str]]:
        moot = set(data) - ({"index_date"} if cls.IN_ROWS else set())
        forms = [key for key in ("excluded_at", "included", "rows") if key in data]
        if len(forms) != 1:
            return [((), "give exactly one of excluded_at: <criterion name>, included: true"
                         + ("" if cls.IN_ROWS else ", rows: [...]")
                         + (f"; not {' and '.join(forms)}" if forms else ""))], moot
        steps = cls.CONTRACT.steps
        if "excluded_at" in data:
            step = data["excluded_at"]
            if step not in steps:
                return [(("excluded_at",), f"{step!r} is not an attrition step of this definition; "
                                           f"use one of: {'; '.join(steps)}")], moot
            kept = ("excluded_at", "index_date" if cls.IN_ROWS else "rows")
            extra = [key for key in data if key in cls.model_fields and key not in kept]
            if extra:
                return [((extra[0],), "an excluded person has no cohort columns; only excluded_at is checked")], moot
            return [], set()
        if data["included"] is not True:
            return [(("included",), "write included: true, or excluded_at: <criterion name> to say where "
                                    "the person leaves")], moot
        return [], set()

    def expected(self) -> ExpectedRow:
        columns = {key: getattr(self, key) for key in self._given if key in self.CONTRACT.kinds}
        index_date = columns.pop("index_date", None) if self.IN_ROWS else None
        if self.excluded_at is not None:
            return ExpectedRow(self.excluded_at, index_date=index_date)
        return ExpectedRow(None, columns, getattr(self, "events", None), index_date)


class _Episodes(Part):
    """``rows:``, one expected row per episode, for definitions whose index is ``each``."""

    CONTRACT: ClassVar[Contract]

    @classmethod
    def unknown(cls, key: str) -> None:
        return None  # before() names the first key beside rows

    @classmethod
    def before(cls, data: dict) -> tuple[list[Found], set[str]]:
        if not cls.CONTRACT.each:
            return [(("rows",), "rows: is for definitions whose index is `occurrence: each`; this one has one "
                                "episode per person: write excluded_at or included: true directly")], set(data)
        extra = [key for key in data if key != "rows"]
        if extra:
            return [((extra[0],), "with rows:, put every expectation inside the rows")], set(data)
        return [], set()

    def after(self) -> list[Found]:
        if self.rows is None:  # left unread: a mistake around it was reported
            return []
        dates = [row.index_date for row in self.expected()]
        for i, day in enumerate(dates):
            if day in dates[:i]:
                return [(("rows", i, "index_date"), f"two rows for the episode of {day}")]
        return []

    def expected(self) -> list[ExpectedRow]:
        return [row.expected() for row in self.rows]


def _episode_list(value: Any) -> list:
    if not isinstance(value, list) or not value:
        raise mistake(f"expected a list of episodes [{{index_date: ..., included: true, ...}}], got {shown(value)}")
    return value


def _events_check(contract: Contract) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not contract.events:
            raise mistake("this definition has no time_varying covariates, so it has no events rows")
        if not isinstance(value, list):  # [] = no rows (no follow-up, or 0 days of it)
            raise mistake(f"expected a list of rows [{{start_day: 0, stop_day: N, event: 0|1, ...}}] or [] for none, "
                          f"got {shown(value)}")
        rows = TypeAdapter(list[contract.event_row]).validate_python(value)
        return [{key: getattr(row, key) for key in row._given} for row in rows]
    return check


class Contract:
    """What a test file may expect of a definition's build: columns by kind, steps, arms, events."""

    def __init__(self, definition: Definition):
        self.definition = definition
        columns = {name: kind for name, kind in cohort_columns(definition).items() if name != "person_id"}
        # Listed as messages always listed them: the fixed dates, the other fixed columns, then the rest.
        order = sorted(columns, key=lambda c: (c not in FIXED_COLUMNS, c in FIXED_COLUMNS and columns[c] != DATE))
        self.kinds = {name: columns[name] for name in order}
        self.steps = step_names(definition)
        self.arms = arm_names(definition)
        self.events = event_columns(definition)
        self.event_names = self.events or EVENT_BASE
        self.each = getattr(definition.index.rule, "occurrence", Occurrence.first) == Occurrence.each

    def _row_model(self, in_rows: bool) -> type[_Row]:
        fields: dict[str, Any] = {name: (Annotated[Any, BeforeValidator(_value_check(kind, self.arms))], None)
                                  for name, kind in self.kinds.items()}
        fields["events"] = (Annotated[Any, BeforeValidator(_events_check(self))], None)
        model = create_model("ExpectedEpisode" if in_rows else "Expected", __base__=_Row, **fields)
        model.CONTRACT, model.IN_ROWS = self, in_rows
        if in_rows:
            model.NEEDS = {"index_date": "each row needs the index_date of its episode"}
        return model

    @cached_property
    def row(self) -> type[_Row]:
        return self._row_model(in_rows=False)

    @cached_property
    def episodes(self) -> type[_Episodes]:
        rows = Annotated[tuple[self._row_model(in_rows=True), ...], BeforeValidator(_episode_list)]
        model = create_model("ExpectedEpisodes", __base__=_Episodes, rows=(rows, None))
        model.CONTRACT = self
        return model

    @cached_property
    def event_row(self) -> type[Part]:
        fields = {name: (Annotated[Any, BeforeValidator(_value_check(WHOLE if name in EVENT_BASE[:2] else FLAG, []))],
                         None) for name in self.events}
        model = create_model("ExpectedEvents", __base__=Part, **fields)
        model.WHAT = "an events row"
        return model
