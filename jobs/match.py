"""spark-submit entry point: the same options and exit codes as `cohortlake match`.

    spark-submit --py-files dist/cohortlake.zip jobs/match.py cohort_defs/X.yaml --lake URI --out DIR
"""

import sys

from cohortlake.job import run_job

if __name__ == "__main__":
    sys.exit(run_job("match", sys.argv[1:], __file__))
