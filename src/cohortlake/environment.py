"""Settings a user gives through the environment, each checked where a step reads it.

A bad value is one line naming the variable, what it holds and what was expected (an
``EnvironmentProblem``, exit code 1), before any Spark JVM starts, instead of a Python
or Java traceback from deep inside Spark. Read when used, not at import, so that a
bad value cannot break ``cohortlake --help``.
"""

from __future__ import annotations

import os
import re

from cohortlake.errors import EnvironmentProblem

# What Spark's SparkContext.setLogLevel accepts (case-insensitive).
SPARK_LOG_LEVELS = ("ALL", "DEBUG", "ERROR", "FATAL", "INFO", "OFF", "TRACE", "WARN")
# A JVM heap size as Spark's spark.driver.memory takes it: a number, optionally k, m, g or t.
MEMORY_SIZE = re.compile(r"^[1-9][0-9]*[kmgt]?$", re.IGNORECASE)
# The master URLs Spark 4 starts a session on (SparkSubmit refuses anything else).
MASTER_URL = re.compile(
    r"^(local(\[(\*|[1-9][0-9]*)(,[1-9][0-9]*)?\])?"
    r"|local-cluster\[[1-9][0-9]*,[1-9][0-9]*,[1-9][0-9]*\]"
    r"|yarn|spark://[^\s/]+|k8s://\S+)$")
MASTER_EXPECTED = "local, local[N], local[*], spark://HOST:PORT, yarn or k8s://URL"


def _text(variable: str) -> str:
    return os.environ.get(variable, "").strip()


def whole_number(variable: str, default: int, minimum: int = 0, unit: str = "") -> int:
    """A whole number of at least ``minimum``; ``default`` when unset or empty."""
    text = _text(variable)
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < minimum:
        what = f"a whole number{f' of {unit}' if unit else ''}" + (f" of at least {minimum}" if minimum else "")
        raise EnvironmentProblem(f"{variable}={text!r}: expected {what} (unset: {default})")
    return int(text)


def one_of(variable: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (case-insensitive, returned as spelled there); ``default`` when unset."""
    text = _text(variable)
    if not text:
        return default
    for choice in choices:
        if text.lower() == choice.lower():
            return choice
    raise EnvironmentProblem(f"{variable}={text!r}: expected one of {', '.join(choices)} (unset: {default})")


def memory_size(variable: str, default: str) -> str:
    """A JVM memory size such as 8g or 4096m; ``default`` when unset."""
    text = _text(variable)
    if not text:
        return default
    if not MEMORY_SIZE.match(text):
        raise EnvironmentProblem(f"{variable}={text!r}: expected a memory size such as 8g or 4096m (unset: {default})")
    return text


def check_master(master: str, given_as: str) -> str:
    """``master`` when Spark can start a session on it; ``given_as`` names where it came from."""
    if not MASTER_URL.match(master):
        raise EnvironmentProblem(f"{given_as} {master!r}: expected a Spark master URL: {MASTER_EXPECTED}")
    return master
