"""Turning analysis columns into model inputs: group levels and covariate indicators.

Cox and binomial regression share these so that a covariate means the same thing in
both models (same indicators, same reference level).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cohortlake.errors import UserError

DAYS_PER_MONTH = 30.4375  # 365.25 / 12: months as the reference study reports them


def finite_or_none(value) -> float | None:
    """A float for JSON: None for NaN and infinity (a median not reached, a bound not defined)."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def group_levels(groups: pd.Series, reference=None) -> list[str]:
    """The group labels in report order: the reference first, then the others sorted.

    Without an explicit reference the first label in sorted order is the reference.
    A reference that no row carries is an error: a comparison needs rows in every group.
    """
    present = sorted(groups.astype(str).unique())
    if reference is None:
        return present
    reference = str(reference)
    if reference not in present:
        raise UserError(f"reference group '{reference}' has no rows (groups present: {', '.join(present)})")
    return [reference] + [level for level in present if level != reference]


def group_term(group: str, level: str) -> str:
    """The model term of a group level, named like a categorical covariate's: ``arm=sorafenib``."""
    return f"{group}={level}"


def group_indicators(groups: pd.Series, levels: Sequence[str]) -> pd.DataFrame:
    """0/1 columns :func:`group_term` for every level but the first (the reference)."""
    labels = groups.astype(str)
    return pd.DataFrame(
        {group_term(str(groups.name), level): (labels == level).astype(float).to_numpy() for level in levels[1:]},
        index=groups.index,
    )


def is_categorical(column: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def covariate_design(frame: pd.DataFrame,
                     covariates: Sequence[str]) -> tuple[pd.DataFrame, dict[str, list[str]], dict[str, str]]:
    """Model columns for the covariates.

    Numeric covariates enter as they are. Text, categorical and boolean covariates become
    0/1 indicators ``<name>=<level>`` against a reference level, the first level in sorted
    order (as R's ``factor`` does). Returns the design, each covariate's design columns,
    and each categorical covariate's reference level.

    A covariate that does not vary (or a categorical one with a single level) cannot be
    estimated and is an error naming it.
    """
    columns: dict[str, np.ndarray] = {}
    terms: dict[str, list[str]] = {}
    references: dict[str, str] = {}
    for name in covariates:
        column = frame[name]
        if is_categorical(column):
            labels = column.astype(str)
            levels = sorted(labels.unique())
            if len(levels) < 2:
                raise UserError(f"covariate '{name}' is constant (every row is '{levels[0]}'); drop it from the covariates")
            references[name] = levels[0]
            terms[name] = []
            for level in levels[1:]:
                term = f"{name}={level}"
                columns[term] = (labels == level).astype(float).to_numpy()
                terms[name].append(term)
        else:
            values = column.astype(float).to_numpy()
            if np.nanmax(values) == np.nanmin(values):
                raise UserError(f"covariate '{name}' is constant (every row is {values[0]:g}); drop it from the covariates")
            columns[name] = values
            terms[name] = [name]
    return pd.DataFrame(columns, index=frame.index), terms, references


def covariate_of_term(term: str, terms: dict[str, list[str]]) -> str:
    """The covariate a design column came from (for messages that name what the user wrote)."""
    for covariate, design_columns in terms.items():
        if term in design_columns:
            return covariate
    return term


def check_identifiable(design: pd.DataFrame, owners: dict[str, str]) -> None:
    """Error naming the first covariate whose column is a linear combination of the ones before it.

    A model with an intercept (or a Cox baseline hazard, which absorbs one) cannot separate
    collinear columns; lifelines and statsmodels only say the matrix is singular.
    """
    columns = [np.ones(len(design))]
    seen: list[str] = []
    for term in design.columns:
        values = design[term].to_numpy(dtype=float)
        scale = np.max(np.abs(values)) or 1.0  # the rank tolerance is relative: put columns on one scale
        candidate = np.column_stack([*columns, values / scale])
        owner = owners.get(term, term)
        if np.linalg.matrix_rank(candidate) < candidate.shape[1]:
            before = f" ({', '.join(dict.fromkeys(seen))})" if seen else ""
            raise UserError(f"covariate '{owner}' is collinear with the columns before it{before}: "
                            f"its effect cannot be separated; drop it or recode it")
        columns.append(candidate[:, -1])
        seen.append(owner)
