"""How the report writes numbers: estimates with CIs, p values, percentages, not-reached medians."""

from __future__ import annotations

import math

NOT_AVAILABLE = "n/a"
NOT_REACHED = "NR"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def number(value, digits: int = 2, missing: str = NOT_AVAILABLE) -> str:
    """``value`` with ``digits`` decimals; ``missing`` for None, NaN or infinity."""
    return missing if _missing(value) else f"{value:,.{digits}f}"


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
    return missing if _missing(share) else f"{100.0 * share:.{digits}f}%"


def weighted_count(value) -> str:
    """A (weighted) number of persons: whole numbers as integers, else one decimal."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def smd(value) -> str:
    return "" if _missing(value) else f"{value:.3f}"
