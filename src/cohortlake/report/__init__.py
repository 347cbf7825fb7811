"""The study report: one self-contained HTML file from a run's output folder, every count
through the small-cell rule (:mod:`cohortlake.report.cells`)."""

from cohortlake.report.cells import Cells, Group, Status, count_text, small_cell, suppress, suppress_grid
from cohortlake.report.html import REPORT_FILE, build_context, write_report
from cohortlake.report.reference import PUBLISHED, ReferenceTable
from cohortlake.report.table1 import Table1, build_table1

__all__ = ["Cells", "Group", "PUBLISHED", "REPORT_FILE", "ReferenceTable", "Status", "Table1", "build_context",
           "build_table1", "count_text", "small_cell", "suppress", "suppress_grid", "write_report"]
