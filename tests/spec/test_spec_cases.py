"""Per-feature spec cases (tests/spec/<group>/<kind>/<case>.yaml) on both evaluators.

Each case is a handful of hand-written patients on the days that matter, with the result
the language reference (cohort_defs/README.md) gives for each; the README shows every case
as its example. The reference evaluator runs them always (plain Python, fast); the Spark
engine runs them under the `spark` marker, one build per case.
"""

from __future__ import annotations

import pytest

from spec_runner import case_files, case_id, check, load_case, reference_rows, spark_rows

# Cases the engine or the evaluator gets wrong against the README: id → why.
XFAIL: dict[str, str] = {}
XFAIL_SPARK: dict[str, str] = {}
XFAIL_REFERENCE: dict[str, str] = {}

CASES = case_files()


def _params(extra: dict[str, str]):
    out = []
    for path in CASES:
        name = case_id(path)
        reason = XFAIL.get(name) or extra.get(name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(path, id=name, marks=marks))
    return out


def test_there_are_cases():
    assert len(CASES) >= 1


@pytest.mark.parametrize("path", _params(XFAIL_REFERENCE))
def test_case_on_reference_evaluator(path):
    suite = load_case(path)
    failures = check(suite, reference_rows(suite))
    assert failures is None, f"\n{case_id(path)} on the reference evaluator:\n{failures}"


@pytest.mark.parametrize("path", _params(XFAIL_SPARK))
def test_case_on_spark(spark, path):
    suite = load_case(path)
    failures = check(suite, spark_rows(spark, suite))
    assert failures is None, f"\n{case_id(path)} on the Spark engine:\n{failures}"
