"""Data-quality gates: Great Expectations suites (expectations/), runs stored in the lake, Data Docs."""
