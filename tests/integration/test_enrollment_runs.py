"""Coverage spans from monthly indicators: the mask → runs table and ``mapper.enrollment``.

The runs table is checked against a plain Python reading of every 12-month mask, and
the spans against hand-written beneficiary-years (gaps, a December-January join across
years, a missing year, month counts).
"""

from datetime import date

from cohortlake.sources import mapper
from cohortlake.sources.mapping import EnrollmentBlock


def python_runs(mask: int) -> list[tuple[int, int]]:
    runs, first = [], None
    for month in range(1, 14):
        covered = month <= 12 and bool(mask >> (month - 1) & 1)
        if covered and first is None:
            first = month
        if not covered and first is not None:
            runs.append((first, month - 1))
            first = None
    return runs


def test_mask_runs_is_every_run_of_every_mask(spark):
    got: dict[int, list[tuple[int, int]]] = {}
    for row in mapper.mask_runs(spark).collect():
        got.setdefault(row["mask"], []).append((row["first"], row["last"]))
    expected = {mask: python_runs(mask) for mask in range(1, 1 << 12)}
    assert {mask: sorted(runs) for mask, runs in got.items()} == expected
    assert sum(len(r) for r in expected.values()) == 13_312


MONTHS = [f"IND_{m:02d}" for m in range(1, 13)]


def monthly_rows(spark, years: dict[tuple[str, int], str]):
    """(person, year) → 12 characters, one indicator per month."""
    data = [(person, str(year), *list(flags)) for (person, year), flags in years.items()]
    return spark.createDataFrame(data, ["PID", "YR", *MONTHS])


def spans(df):
    return sorted((r["person_id"], r["coverage"], r["start_date"], r["end_date"]) for r in df.collect())


def test_monthly_indicators_become_spans_merged_across_years(spark):
    block = EnrollmentBlock.model_validate({
        "from": "mbsf", "person_id": "PID", "year": "YR",
        "monthly": {"part_a": {"column": "IND_{01..12}", "in": ["1", "3"]},
                    "hmo": {"column": "IND_{01..12}", "not_in": ["0", "1", "3"]}},
    })
    rows = monthly_rows(spark, {
        ("p1", 2010): "000111111111",  # April-December, joins January-February 2011
        ("p1", 2011): "330000000011",  # and November 2011 on, through 2012 (absent year → gap)
        ("p1", 2013): "111111111111",
        ("p2", 2010): "1010H0110000",  # single months and a run; H is an HMO month
        ("p3", 2010): "000000000000",  # never covered: no span
    })
    assert spans(mapper.enrollment(block, rows)) == [
        ("p1", "part_a", date(2010, 4, 1), date(2011, 2, 28)),
        ("p1", "part_a", date(2011, 11, 1), date(2011, 12, 31)),
        ("p1", "part_a", date(2013, 1, 1), date(2013, 12, 31)),
        ("p2", "hmo", date(2010, 5, 1), date(2010, 5, 31)),
        ("p2", "part_a", date(2010, 1, 1), date(2010, 1, 31)),
        ("p2", "part_a", date(2010, 3, 1), date(2010, 3, 31)),
        ("p2", "part_a", date(2010, 7, 1), date(2010, 8, 31)),
    ]


def test_month_counts_cover_january_onwards(spark):
    block = EnrollmentBlock.model_validate({
        "from": "summary", "person_id": "PID", "year": "YR", "month_counts": {"part_d": "N"},
    })
    rows = spark.createDataFrame(
        [("p1", "2008", "12"), ("p1", "2009", "3"), ("p2", "2008", "0"), ("p3", "2008", None), ("p4", "2008", "15")],
        "PID string, YR string, N string")
    assert spans(mapper.enrollment(block, rows)) == [
        ("p1", "part_d", date(2008, 1, 1), date(2009, 3, 31)),
        ("p4", "part_d", date(2008, 1, 1), date(2008, 12, 31)),
    ]
