"""spark-submit entry point: the same options and exit codes as `cohortlake run`.

    spark-submit --py-files dist/cohortlake.zip jobs/run_study.py cohort_defs/X.yaml --lake URI --out DIR [--raw RAW --layout L]
"""

import sys

from cohortlake.job import run_job

if __name__ == "__main__":
    sys.exit(run_job("run_study", sys.argv[1:], __file__))
