"""Column names of a build: the cohort's output contract and the engine's internal names.

No Spark here: ``assure`` reads the output contract to check a test file before any Spark
session starts, and the engine's rules name their working columns through the functions
below instead of coining string prefixes in place.

Output contract (``cohort_defs/README.md``, "What a build writes"):

- the cohort table: ``cohort_columns(definition)``, name → kind, in the order written;
- the attrition: ``step_names(definition)``, the steps after the population (step 1 first);
- the counting-process events table (only with ``time_varying``): ``event_columns``.
"""

from __future__ import annotations

from cohortlake.spec.followup import implied_steps
from cohortlake.spec.model import Definition, ExposurePoint

EPISODE = ("person_id", "index_date")
"""The key of an episode: a person and one index date (several with ``occurrence: each``)."""

FIXED_COLUMNS = (
    "person_id", "index_date", "arm", "landmark_date", "first_exposure_date",
    "followup_start", "followup_end", "event", "time_days",
)
"""The cohort columns every definition writes, before its covariates."""

POPULATION_STEP = "Persons in the data"
"""Step 0 of every attrition table."""

NO_ARMS = "all"
"""The arm of every episode when a definition has no arms."""

EVENT_BASE = ("start_day", "stop_day", "event")
"""The events table's columns after the episode key, before one 0/1 column per time-varying covariate."""

# Kinds of an output column, as a test file's expected rows are read.
DATE, WHOLE, FLAG, ARM, VALUE = "date", "int", "flag", "arm", "value"

_FIXED_KINDS = {
    "person_id": VALUE, "index_date": DATE, "arm": ARM, "landmark_date": DATE, "first_exposure_date": DATE,
    "followup_start": DATE, "followup_end": DATE, "event": WHOLE, "time_days": WHOLE,
}


def cohort_columns(definition: Definition) -> dict[str, str]:
    """Every column of the definition's cohort table → its kind, in the order the build writes them."""
    columns = dict(_FIXED_KINDS)
    for covariate in definition.covariates:
        columns[covariate.name] = VALUE
    several = len(definition.landmarks) > 1  # one landmark: its date is landmark_date
    for landmark in definition.landmarks:
        if several:
            columns[landmark_date(landmark.name)] = DATE
        columns[in_landmark(landmark.name)] = FLAG
    for outcome in definition.outcomes:
        date, event, time = outcome_columns(outcome.name)
        columns.update({date: DATE, event: WHOLE, time: WHOLE})
    return columns


def landmark_date(name: str) -> str:
    """The output column of a landmark's date when a definition has several landmarks."""
    return f"{name}_date"


def in_landmark(name: str) -> str:
    """The output 0/1 column: the episode is in the landmark analysis."""
    return f"in_{name}"


def outcome_columns(name: str) -> tuple[str, str, str]:
    """An outcome's date, event (0 censored, 1 the outcome, 2 a competing one) and time columns."""
    return f"{name}_date", f"{name}_event", f"{name}_time_days"


def event_columns(definition: Definition) -> tuple[str, ...]:
    """The events table's columns after the episode key (empty without time-varying covariates)."""
    if not definition.time_varying:
        return ()
    return EVENT_BASE + tuple(t.name for t in definition.time_varying)


def arm_names(definition: Definition) -> list[str]:
    """The values the ``arm`` column can take."""
    return [arm.name for arm in definition.arms] or [NO_ARMS]


def step_names(definition: Definition) -> list[str]:
    """Attrition step names after the population (step 1 first): the criteria, then the implied steps."""
    return [criterion.name for criterion in definition.criteria] + implied_steps(definition)


def step_flag(number: int) -> str:
    """The per-episode flag column of attrition step ``number`` (1-based) in the flags table."""
    return f"step_{number}"


# --- internal working columns (never written) ---------------------------------------------
# Every column the episode frame carries is named here. The tagging, era and coverage
# plans (codes.py, eras.py, coverage.py) use a few scratch columns of their own inside
# their subplans; those never reach the episode frame.

FOLLOWUP_START = "_fs"
DEATH_DATE = "_death_date"
DEPTH = "_depth"
"""How many leading steps an episode passes."""


def landmark_day(name: str) -> str:
    """A landmark's date on the episode frame."""
    return f"_lm_{name}"


def in_landmark_flag(name: str) -> str:
    """The boolean: the episode is in the landmark's analysis."""
    return f"_in_{name}"


def exposure_point(point: ExposurePoint) -> str:
    """The start or end date of the first era of an exposure on or after the index."""
    return f"_xp_{point.exposure}_{point.at.value}"


def tumor_field(field: str) -> str:
    """A field of the index tumor carried on the episode frame."""
    return f"_t_{field}"


def coverage_answer(prefix: str, mode: str, coverage: str) -> str:
    """The answer of one coverage check."""
    return f"_cv_{prefix}_{mode}_{coverage}"


def switch_date(name: str) -> str:
    """The day a time-varying covariate switches on."""
    return f"_sw_{name}"


def is_anchor(column: str) -> bool:
    """A working column an aggregation needs beside the episode key: anchors and follow-up start."""
    return column.startswith(("_lm_", "_xp_")) or column == FOLLOWUP_START


HAS_INDEX = "_has_index"
"""The person has an index (tumor: an index tumor, even one without a date)."""
BIRTH_DATE, SEX, RACE = "_birth_date", "_sex", "_race"
"""The person's fields carried on the episode frame."""
RANK = "_rank"
"""A row's rank among a person's candidate index tumors."""


def aggregate(scope: str, part: str) -> str:
    """An aggregate a rule asks for: ``scope`` names the rule's place in the definition, ``part`` its piece."""
    return f"_ag_{scope}_{part}"


def switch_day(name: str) -> str:
    """A time-varying covariate's switch day (days from follow-up start) while cutting follow-up."""
    return f"_day_{name}"


CUTS, INTERVAL = "_bounds", "_interval"
"""Working columns of the counting-process rows: the cut days of follow-up, one interval of them."""
