"""Spark SQL text: literals for expressions written as text.

Where a plan is built from many small expressions (the synthetic generator's model, the
engine's code sets), writing them as SQL text and handing them to Spark in one call
(``F.expr``, ``selectExpr``) replaces one JVM round trip per operator and value of
PySpark's Column API. ``Sql`` marks text that is an expression; ``lit`` writes a Python
value as a literal the parser reads back exactly (with Spark's default string escapes).
"""

from __future__ import annotations

from typing import Any


class Sql(str):
    """SQL expression text (as opposed to a string value)."""


def lit(value: Any) -> Sql:
    """SQL literal for a Python value; ``Sql`` passes through unchanged."""
    if isinstance(value, Sql):
        return value
    if value is None:
        return Sql("NULL")
    if isinstance(value, bool):
        return Sql("TRUE" if value else "FALSE")
    if isinstance(value, int):
        return Sql(f"{value}" if -(2**31) <= value < 2**31 else f"{value}L")
    if isinstance(value, float):
        return Sql(f"{value!r}D")
    if isinstance(value, str):
        return Sql("'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'")
    raise TypeError(f"no SQL literal for {value!r}")
