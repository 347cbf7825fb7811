"""spark-submit entry point: the same options and exit codes as `cohortlake build`.

    spark-submit --py-files dist/cohortlake.zip jobs/build_cohort.py cohort_defs/X.yaml --lake URI [--out DIR]
"""

import sys

from cohortlake.job import run_job

if __name__ == "__main__":
    sys.exit(run_job("build_cohort", sys.argv[1:], __file__))
