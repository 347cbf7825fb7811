"""The silver, cohort and matched suites, pinned: name, severity, type and arguments of every expectation.

The quality tests read their expectations from these same files, so deleting or loosening
one would fail nothing there; here it does. An intended change to a suite changes this
list in the same commit. SQL queries are pinned by the first 12 hex digits of their
SHA-256 (``sql:…``). Bronze suites are held against the mappings by test_quality_suites.py.
"""

from __future__ import annotations

import hashlib
import json

from cohortlake.quality.suites import suites_dir


def _argument(value):
    if isinstance(value, str) and len(value) > 60:
        return "sql:" + hashlib.sha256(value.encode()).hexdigest()[:12]
    return value


def _pinned_form(path) -> list[tuple[str, str, str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(e["severity"], e["type"], json.dumps({k: _argument(v) for k, v in sorted(e["kwargs"].items())},
                                                   sort_keys=True))
            for e in data["expectations"]]


PINNED = {
    'cohort.attrition': [
        ('critical', 'unexpected_rows_expectation', '{"description": "attrition is monotone non-increasing", "unexpected_rows_query": "sql:f89b38353d5b"}'),
        ('critical', 'unexpected_rows_expectation', '{"description": "each step\'s excluded count is the drop from the step before", "unexpected_rows_query": "sql:6eab4462d704"}'),
        ('critical', 'unexpected_rows_expectation', '{"description": "the last step\'s count equals the cohort\'s row count", "unexpected_rows_query": "sql:f0bc8571cf48"}'),
    ],
    'cohort.cohort': [
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "person_id"}'),
        ('critical', 'expect_column_values_to_be_unique', '{"column": "person_id"}'),
        ('critical', 'expect_column_values_to_be_between', '{"column": "index_date", "max_value": {"$PARAMETER": "study_end"}, "min_value": {"$PARAMETER": "study_start"}}'),
        ('critical', 'expect_column_pair_values_a_to_be_greater_than_b', '{"column_A": "landmark_date", "column_B": "index_date", "ignore_row_if": "either_value_is_missing", "or_equal": true}'),
        ('critical', 'expect_column_values_to_be_between', '{"column": "time_days", "min_value": 0}'),
        ('critical', 'expect_column_values_to_be_in_set', '{"column": "event", "value_set": [0, 1]}'),
        ('critical', 'expect_column_values_to_be_in_set', '{"column": "arm", "value_set": {"$PARAMETER": "arms"}}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "arm"}'),
    ],
    'cohort.events': [
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "person_id"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "start_day"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "stop_day"}'),
        ('critical', 'expect_column_pair_values_a_to_be_greater_than_b', '{"column_A": "stop_day", "column_B": "start_day"}'),
        ('critical', 'expect_column_values_to_be_between', '{"column": "start_day", "min_value": 0}'),
        ('critical', 'expect_column_values_to_be_in_set', '{"column": "event", "value_set": [0, 1]}'),
    ],
    'matched.balance': [
        ('critical', 'expect_column_values_to_be_between', '{"column": "smd_after", "max_value": {"$PARAMETER": "smd_high"}, "min_value": {"$PARAMETER": "smd_low"}}'),
        ('warning', 'expect_column_values_to_be_between', '{"column": "var_ratio_after", "max_value": 2.0, "min_value": 0.5}'),
    ],
    'matched.dataset': [
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "person_id"}'),
        ('critical', 'expect_column_values_to_be_unique', '{"column": "person_id"}'),
        ('critical', 'expect_column_values_to_be_between', '{"column": "ps", "max_value": 1, "min_value": 0, "strict_max": true, "strict_min": true}'),
        ('critical', 'unexpected_rows_expectation', '{"description": "every matched set has a treated and a comparator person", "unexpected_rows_query": "sql:2230a8883d2d"}'),
        ('critical', 'expect_column_values_to_be_between', '{"column": "time_days", "min_value": 0}'),
        ('critical', 'expect_column_values_to_be_in_set', '{"column": "event", "value_set": [0, 1]}'),
    ],
    'silver.death': [
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "death_date"}'),
        ('critical', 'expect_column_values_to_be_unique', '{"column": "person_id"}'),
    ],
    'silver.diagnosis': [
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "person_id"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "date"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "code"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "code_system"}'),
        ('critical', 'expect_column_values_to_be_in_set', '{"column": "code_system", "value_set": ["icd9cm", "icd10cm", "hcpcs"]}'),
        ('critical', 'unexpected_rows_expectation', '{"description": "sql:02fbaef58f4f", "unexpected_rows_query": "sql:d3d37e8d234e"}'),
        ('warning', 'unexpected_rows_expectation', '{"description": "every row\'s person is in silver/person", "unexpected_rows_query": "sql:2adf7a8623fe"}'),
    ],
    'silver.dispensing': [
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "person_id"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "date"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "ndc"}'),
        ('critical', 'expect_column_values_to_match_regex', '{"column": "ndc", "mostly": 0.95, "regex": "^[0-9]{11}$"}'),
        ('warning', 'expect_column_values_to_be_between', '{"column": "days_supply", "max_value": 365, "min_value": 1, "mostly": 0.999}'),
        ('warning', 'expect_column_values_to_be_between', '{"column": "quantity", "min_value": 0, "mostly": 0.999, "strict_min": true}'),
        ('warning', 'unexpected_rows_expectation', '{"description": "every row\'s person is in silver/person", "unexpected_rows_query": "sql:2adf7a8623fe"}'),
    ],
    'silver.enrollment': [
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "person_id"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "coverage"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "start_date"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "end_date"}'),
        ('critical', 'expect_column_values_to_be_in_set', '{"column": "coverage", "value_set": ["part_a", "part_b", "hmo", "part_d", "retiree_drug_subsidy", "dual"]}'),
        ('critical', 'expect_column_pair_values_a_to_be_greater_than_b', '{"column_A": "end_date", "column_B": "start_date", "or_equal": true}'),
        ('critical', 'unexpected_rows_expectation', '{"description": "spans of one person and coverage type do not overlap", "unexpected_rows_query": "sql:a0c00a076192"}'),
        ('warning', 'unexpected_rows_expectation', '{"description": "every row\'s person is in silver/person", "unexpected_rows_query": "sql:2adf7a8623fe"}'),
    ],
    'silver.person': [
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "person_id"}'),
        ('critical', 'expect_column_values_to_be_unique', '{"column": "person_id"}'),
        ('critical', 'expect_column_values_to_be_in_set', '{"column": "sex", "value_set": ["male", "female", "unknown"]}'),
        ('warning', 'expect_column_values_to_not_be_null', '{"column": "birth_date", "mostly": 0.99}'),
        ('warning', 'expect_column_values_to_be_between', '{"column": "birth_date", "max_value": "2025-12-31", "min_value": "1890-01-01", "mostly": 0.999}'),
    ],
    'silver.person_year': [
        ('critical', 'expect_compound_columns_to_be_unique', '{"column_list": ["person_id", "year"]}'),
    ],
    'silver.procedure': [
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "person_id"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "date"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "code"}'),
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "code_system"}'),
        ('critical', 'expect_column_values_to_be_in_set', '{"column": "code_system", "value_set": ["icd9pcs", "icd10pcs", "hcpcs"]}'),
        ('critical', 'unexpected_rows_expectation', '{"description": "sql:5b8c0e4c25c9", "unexpected_rows_query": "sql:cf30c2f25c8f"}'),
        ('warning', 'unexpected_rows_expectation', '{"description": "every row\'s person is in silver/person", "unexpected_rows_query": "sql:2adf7a8623fe"}'),
    ],
    'silver.tumor': [
        ('critical', 'expect_column_values_to_not_be_null', '{"column": "person_id"}'),
        ('critical', 'expect_compound_columns_to_be_unique', '{"column_list": ["person_id", "sequence_number"]}'),
        ('warning', 'expect_column_values_to_be_between', '{"column": "diagnosis_month", "max_value": 12, "min_value": 1}'),
        ('warning', 'unexpected_rows_expectation', '{"description": "every row\'s person is in silver/person", "unexpected_rows_query": "sql:2adf7a8623fe"}'),
    ],
}


def test_silver_cohort_and_matched_suites_are_exactly_the_pinned_expectations():
    files = {p.stem: p for p in suites_dir().glob("*.json") if not p.name.startswith("bronze.")}
    assert sorted(files) == sorted(PINNED)
    for name, path in sorted(files.items()):
        assert _pinned_form(path) == PINNED[name], name
