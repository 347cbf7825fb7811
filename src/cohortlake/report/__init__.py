"""The study report: one self-contained HTML file from a run's output folder, every count
through the small-cell rule (:mod:`cohortlake.cells`, imported from there)."""

from cohortlake.report.disclosure import Leak, check_release
from cohortlake.report.html import AUDIENCES, REPORT_FILE, build_context, write_report, write_reports
from cohortlake.report.reference import PUBLISHED, ReferenceTable
from cohortlake.report.table1 import Table1, build_table1

__all__ = ["AUDIENCES", "Leak", "PUBLISHED", "REPORT_FILE", "ReferenceTable", "Table1", "build_context",
           "build_table1", "check_release", "write_report", "write_reports"]
