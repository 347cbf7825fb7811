"""The attrition of a cohort (``attrition.csv``) as the steps of a flow diagram, its counts
registered for small-cell suppression.

Each step's persons remaining plus its persons excluded add up to the persons remaining
after the step before, so a step is a group of cells whose total is the previous
remaining count: hiding a small exclusion hides a neighbour too. A first row without a
step before it (not a starting population) has no published total, so no group.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cohortlake.cells import Cells
from cohortlake.errors import UserError

COLUMNS = ("step", "name", "persons_remaining", "persons_excluded")


@dataclass(frozen=True)
class AttritionStep:
    step: int
    name: str
    remaining: int
    excluded: int | None
    """None when the file leaves it empty (a starting population)."""

    @property
    def remaining_key(self) -> tuple:
        return ("attrition", self.step, "remaining")

    @property
    def excluded_key(self) -> tuple:
        return ("attrition", self.step, "excluded")


def read_attrition(path: str | Path) -> list[AttritionStep]:
    """The rows of ``attrition.csv`` in step order, as given."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise UserError(f"{path}: cannot be read as CSV ({str(error).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(frame.columns)})")
    steps = []
    for row in frame.sort_values("step", kind="stable").itertuples(index=False):
        excluded = None if pd.isna(row.persons_excluded) else int(row.persons_excluded)
        if pd.isna(row.persons_remaining):
            raise UserError(f"{path}: step {row.step} has no persons_remaining")
        steps.append(AttritionStep(int(row.step), str(row.name), int(row.persons_remaining), excluded))
    return steps


def register_attrition(steps: list[AttritionStep], cells: Cells) -> None:
    """Register every remaining and excluded count, and each step's sum with the step before."""
    previous = None
    for step in steps:
        cells.add(step.remaining_key, step.remaining)
        if step.excluded is not None:
            cells.add(step.excluded_key, step.excluded)
            if previous is not None:
                cells.group([step.remaining_key, step.excluded_key], previous.remaining_key)
        previous = step


def flow_rows(steps: list[AttritionStep], cells: Cells) -> list[dict]:
    """One dict per step for the diagram: step, name, remaining text, excluded text (or None)."""
    return [{"step": step.step, "name": step.name, "remaining": cells.text(step.remaining_key),
             "excluded": None if step.excluded is None or step is steps[0] and step.excluded == 0
             else cells.text(step.excluded_key)}
            for step in steps]
