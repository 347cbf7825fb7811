"""The small-cell rule as the report's modules import it: all of it is :mod:`cohortlake.cells`.

The rule moved down to the package's top level so that the quality page and the survival
plots, which are lower layers than the report, apply it without importing the report.
Nothing is defined here; these names are the same objects as there.
"""

from cohortlake.cells import (  # noqa: F401 (re-exported)
    HIDDEN, RULE, SMALL, SMALL_CELL_MAX, SMALLEST_SHOWN, Cells, GridSuppression, Group, Priority, Status,
    count_percent_text, count_text, grid_groups, group_equations, is_small, linear_ranges, percent_text,
    reader_bounds, reader_range, small_cell, suppress, suppress_grid,
)
