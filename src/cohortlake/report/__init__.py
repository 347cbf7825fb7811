"""The study report: one self-contained HTML file from a run's output folder, every count
through the small-cell rule (:mod:`cohortlake.report.cells`)."""

from cohortlake.report.cells import Cells, Group, Status, count_text, small_cell, suppress, suppress_grid
from cohortlake.report.disclosure import Leak, check_release
from cohortlake.report.html import AUDIENCES, REPORT_FILE, build_context, write_report, write_reports
from cohortlake.report.reference import PUBLISHED, ReferenceTable
from cohortlake.report.table1 import Table1, build_table1

__all__ = ["AUDIENCES", "Cells", "Group", "Leak", "PUBLISHED", "REPORT_FILE", "ReferenceTable", "Status", "Table1",
           "build_context", "build_table1", "check_release", "count_text", "small_cell", "suppress", "suppress_grid",
           "write_report", "write_reports"]
