"""How the report writes numbers: estimates with CIs, p values, percentages, not-reached medians.

Counts and sums of persons take thousands separators (``1,532``); years, calendar
figures and identifiers never do (``2009.5``, not ``2,009.5``): :func:`year_like` tells
them apart by name. A value that rounds to zero is written without a sign (``0.000``,
never ``-0.000``); a missing value (None, NaN, infinity) as ``n/a`` or as the caller says.
"""

from __future__ import annotations

import math
import re

NOT_AVAILABLE = "n/a"
NOT_REACHED = "NR"
YEAR_LIKE = re.compile(r"(^|_)(year|yr|calendar|id|code|zip)(_|$)|year$", re.IGNORECASE)
"""Names of figures printed without thousands separators: diagnosis_year, index_year, person_id, ..."""


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def year_like(name: str | None) -> bool:
    """True for a covariate or column whose values are years, calendar figures or identifiers."""
    return bool(name) and bool(YEAR_LIKE.search(str(name)))


def _fixed(value: float, digits: int, grouping: bool) -> str:
    text = f"{value:{',' if grouping else ''}.{digits}f}"
    # -0.000: a negative value that rounds to zero is zero
    return text[1:] if text.startswith("-") and not any(ch in "123456789" for ch in text) else text


def number(value, digits: int = 2, missing: str = NOT_AVAILABLE, grouping: bool = True) -> str:
    """``value`` with ``digits`` decimals; ``missing`` for None, NaN or infinity; ``grouping=False``
    for years and identifiers."""
    return missing if _missing(value) else _fixed(float(value), digits, grouping)


def plain(value) -> str:
    """A number as a plain figure: whole numbers without decimals, never a thousands separator (days, years)."""
    if _missing(value):
        return NOT_AVAILABLE
    value = float(value)
    return str(int(value)) if value.is_integer() else _fixed(value, 1, False)


def estimate_ci(estimate, lower, upper, digits: int = 2, missing: str = NOT_AVAILABLE) -> str:
    """``0.95 (0.78-1.16)``; a missing part shows as ``missing``."""
    show = lambda x: number(x, digits, missing)  # noqa: E731
    return f"{show(estimate)} ({show(lower)}-{show(upper)})"


def p_value(p) -> str:
    """``p`` with 3 decimals, ``<0.001`` below that; n/a when missing."""
    if _missing(p):
        return NOT_AVAILABLE
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def percent(share, digits: int = 1, missing: str = NOT_AVAILABLE) -> str:
    """A share in [0, 1] as ``44.0%``."""
    return missing if _missing(share) else _fixed(100.0 * float(share), digits, False) + "%"


def weighted_count(value) -> str:
    """A (weighted) number of persons: whole numbers as integers, else one decimal."""
    if _missing(value):
        return NOT_AVAILABLE
    value = float(value)
    return _fixed(value, 0, True) if value.is_integer() else _fixed(value, 1, True)


def smd(value, digits: int = 3) -> str:
    """An SMD with three decimals (or ``digits``); "" when missing."""
    return "" if _missing(value) else _fixed(float(value), digits, False)
