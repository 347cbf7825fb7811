"""spark-submit entry point: the same options and exit codes as `cohortlake analyze`.

    spark-submit --py-files dist/cohortlake.zip jobs/analyze.py cohort_defs/X.yaml --out DIR
"""

import sys

from cohortlake.job import run_job

if __name__ == "__main__":
    sys.exit(run_job("analyze", sys.argv[1:], __file__))
